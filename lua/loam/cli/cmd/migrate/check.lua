-- loam migrate check: exits 1 when the models and the database differ.

local diff = require "loam.migrate.diff"
local migrate = require "loam.cli.cmd.migrate"

return {
  summary = "exit 1 when the models and the database differ (drift, for CI)",
  usage = "loam migrate check",
  help = [[
Compares the models of the models folder with the database, as 'loam
migrate generate' would, and prints what differs, one line each: the
operations a migration would need (drops included), the undeclared
renames and the primary key changes generate would refuse.  Exit status 0 and
"models and database agree" when nothing differs, 1 when something does.]],
  run = function(ctx)
    local db <close> = migrate.connect(ctx)
    local models = ctx:project():load_models(db)
    local result = diff.diff(models, db, { allow_drops = true })
    local lines = {}
    for _, op in ipairs(result.ops) do lines[#lines + 1] = diff.summary(op) end
    for _, e in ipairs(result.errors) do lines[#lines + 1] = e end
    if #lines == 0 then
      ctx:say("models and database agree")
      return 0
    end
    io.stdout:write(("models and database differ (%d):\n"):format(#lines))
    for _, l in ipairs(lines) do ctx:say("  %s", l) end
    return 1
  end,
}
