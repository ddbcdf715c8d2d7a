-- examples/shop/loam.config.lua: the shop of `make demo` (the README's
-- quick start).  Run any `loam` command here; `make demo` gives the
-- database with --db (build/shop.db, or DB=URL).
environments = {
  development = { url = "sqlite:shop.db", pool = { size = 4 } },
}
