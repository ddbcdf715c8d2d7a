-- loam migrate merge [NAME]: the migration that joins two heads.

local migrate = require "loam.cli.cmd.migrate"

return {
  summary = "write the migration that joins two heads",
  usage = "loam migrate merge [NAME]",
  help = [[
When two branches each added a migration after the same one, both are
heads (no migration follows them) and 'loam migrate up' refuses to run.
merge writes <migrations>/<UTC yyyymmddHHMMSS>_NAME.lua (NAME: merge by
default) whose parents are every head, with nothing to change, and
prints its path.  With one head there is nothing to merge: an error.]],
  args = { min = 0, max = 1 },
  run = function(ctx)
    local name = ctx.args[1] or "merge"
    migrate.check_name(ctx, name)
    local migs = migrate.files(ctx)
    local heads = migrate.heads(migs)
    if #heads < 2 then
      ctx:fail("misuse", "%s: nothing to merge", #heads == 0 and "no migrations"
        or "one head (" .. migrate.label(heads[1]) .. ")")
    end
    local parents, labels = {}, {}
    for i, h in ipairs(heads) do
      parents[i] = ('"%s"'):format(h.version)
      labels[i] = migrate.label(h)
    end
    local path = migrate.write(ctx, migrate.new_version(migs), name, ([[
-- Joins %s.
return migration {
  parent = { %s },
  change = {},
}
]]):format(table.concat(labels, " and "), table.concat(parents, ", ")))
    ctx:say("created %s", path)
  end,
}
