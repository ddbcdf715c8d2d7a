-- loam migrate: the project's migrations.

return {
  summary = "write, check and run the project's migrations",
  usage = "loam migrate COMMAND [options]",
  help = [[
Commands over the migrations folder and the database migrations run on
(the environment's migration_url, else its url).]],
  subcommands = { "generate", "check" },
}
