-- loam migrate new NAME: an empty migration that follows the head.

local migrate = require "loam.cli.cmd.migrate"

return {
  summary = "write an empty migration that follows the newest one",
  usage = "loam migrate new NAME",
  help = [[
Writes <migrations>/<UTC yyyymmddHHMMSS>_NAME.lua whose parent is the
head (the migration no other follows), with an empty 'change' list to
fill in, and prints its path.  NAME is made of a-z, 0-9 and _.  With two
heads it refuses: 'loam migrate merge' joins them first.]],
  args = { min = 1, max = 1, what = "a NAME for the migration" },
  run = function(ctx)
    local name = ctx.args[1]
    migrate.check_name(ctx, name)
    local migs = migrate.files(ctx)
    local head = migrate.head(ctx, migs, "this one")
    local parent = head and ('  parent = "%s",\n'):format(head.version) or ""
    local path = migrate.write(ctx, migrate.new_version(migs), name, ([[
return migration {
%s  change = {
  },
}
]]):format(parent))
    ctx:say("created %s", path)
  end,
}
