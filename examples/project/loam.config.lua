-- examples/project/loam.config.lua: a small project for `loam run` and
-- `loam console` (see the README's section on the `loam` command).  Its
-- development database lives in memory, so every run starts empty; give
-- another with --db or LOAM_DATABASE_URL.
environments = {
  development = { url = "sqlite::memory:" },
  test = { url = "sqlite:test.db" },
}
