-- examples/shop/loam.config.lua: a project with migrations, for the
-- README's section on them.  Its database is the file shop.db beside
-- this config.
environments = {
  development = { url = "sqlite:shop.db" },
}
