-- loam migrate redo: reverts the newest applied migration and applies it again.

local migrate = require "loam.cli.cmd.migrate"

return {
  summary = "revert the newest applied migration and apply it again",
  usage = "loam migrate redo",
  help = [[
Reverts the newest applied migration, as 'loam migrate down' does, then
applies it again, as 'loam migrate up --to' its version would: a check
that its down and up both work, while writing it.]],
  run = function(ctx)
    local migs = migrate.files(ctx)
    local db <close> = migrate.connect(ctx)
    local reverted = migrate.revert(ctx, db, migs, 1, false)
    local m = reverted[1]
    if m == nil then return end
    migrate.progress("applying %s ...", migrate.label(m))
    migrate.apply(db, migs, m, migrate.run_options(ctx))
    ctx:say("applied %s", migrate.label(m))
  end,
}
