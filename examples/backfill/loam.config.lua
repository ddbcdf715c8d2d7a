-- examples/backfill/loam.config.lua: a project with a data migration, for
-- the README's section on them.  Its database is the file backfill.db
-- beside this config.
environments = {
  development = { url = "sqlite:backfill.db" },
}
