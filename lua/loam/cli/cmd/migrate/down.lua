-- loam migrate down: reverts the newest applied migrations.

local migrate = require "loam.cli.cmd.migrate"

local function steps_of(ctx)
  local s = ctx.opts.steps
  if s == nil then return 1 end
  local n = math.tointeger(tonumber(s))
  if n == nil or n < 1 then
    ctx:usage("--steps takes a positive whole number, not '%s'", s)
  end
  return n
end

return {
  summary = "revert the newest applied migrations",
  usage = "loam migrate down [--steps N] [--dry-run]",
  help = [[
Reverts the newest applied migration (N of them with --steps), newest
first, each by its 'down' in a transaction with the removal of its
history row (a down that drops or builds an index concurrently runs as
such an up does: step by step outside a transaction, journaled, so a
failed run resumes), and prints a line for each.  A migration written with
'change' has its down derived from its operations; one of them that
cannot be undone (dropping a table or a column loses its data) makes
the migration irreversible, and down refuses before anything runs,
naming the step and why.]],
  options = {
    { "--steps", "N", "how many migrations to revert (default 1)" },
    { "--dry-run", "print the SQL that would revert them, in order, and run nothing" },
  },
  run = function(ctx)
    local steps = steps_of(ctx)
    local migs = migrate.files(ctx)
    local db <close> = migrate.connect(ctx)
    migrate.revert(ctx, db, migs, steps, ctx.opts.dry_run)
  end,
}
