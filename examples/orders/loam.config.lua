-- examples/orders/loam.config.lua: a small project with migrations, for the
-- README's section on them.  Its database is the file orders.db beside
-- this config.
environments = {
  development = { url = "sqlite:orders.db" },
}
