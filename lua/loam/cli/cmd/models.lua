-- loam models: the project's models and the live database side by side.

return {
  summary = "write models from the database (pull), draw them (diagram)",
  usage = "loam models COMMAND [options]",
  help = [[
Commands that read the models of the project, or write them from the
database the project's URL names.]],
  subcommands = { "pull", "diagram" },
}
