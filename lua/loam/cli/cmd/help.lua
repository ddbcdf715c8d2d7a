-- loam help [COMMAND...]: the help of loam, or of one command.

local cli = require "loam.cli"

return {
  summary = "show the help of loam or of a command",
  usage = "loam help [COMMAND [SUBCOMMAND]]",
  help = [[
Without a command: the usage of loam, its commands and the options every
command takes.  With one: that command's usage, what it does and its
options, as 'loam COMMAND --help' shows them.]],
  args = { min = 0, max = 2 },
  run = function(ctx)
    if #ctx.args == 0 then
      io.stdout:write(cli.help_text(ctx.registry))
      return
    end
    local spec
    for _, word in ipairs(ctx.args) do
      spec = cli.descend(spec, word, ctx.registry)
    end
    io.stdout:write(cli.command_help(spec))
  end,
}
