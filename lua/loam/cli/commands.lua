-- loam.cli.commands: the commands of `loam`, in the order 'loam help'
-- lists them.  A command is the module loam.cli.cmd.<name> (see loam.cli
-- for what it returns); adding one is writing that file and adding its
-- name here.  Modules are loaded only when a command line or the help
-- needs them.

local commands = {}

commands.names = {
  "help",
  "init",
  "run",
  "console",
  "migrate",
  "models",
  "seed",
}

function commands.module(name)
  return "loam.cli.cmd." .. name
end

return commands
