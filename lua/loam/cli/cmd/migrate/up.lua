-- loam migrate up: applies the pending migrations, in version order.

local core = require "loam.core"
local migrate = require "loam.cli.cmd.migrate"

return {
  summary = "apply the pending migrations",
  usage = "loam migrate up [--to VERSION] [--dry-run] [--out-of-order]",
  help = [[
Applies each pending migration in version order, each in a transaction of
its own with its history row (one that builds an index concurrently runs
step by step outside a transaction, and a failed run resumes; a data
migration runs its backfills first, in batches, each batch committed on
its own with its last key journaled, and a failed run resumes after the
last batch done), and prints a line
for each.  One migrator at a time: another run waits for the first
(up to a minute), then fails naming it.  A failing migration leaves
schema and history as they were before it; those before it stay applied.
Refused, before anything runs: two heads ('loam migrate merge'), a
missing parent, an applied migration whose file changed, and a pending
migration older than the newest applied one (unless --out-of-order).  On
PostgreSQL the pending migrations are linted first ('loam migrate lint'):
a finding stops the run.]],
  options = {
    { "--to", "VERSION", "stop after the migration of this version" },
    { "--dry-run", "print the SQL of each pending migration, in order, and run nothing" },
    { "--out-of-order", "also apply pending migrations older than the newest applied one" },
  },
  run = function(ctx)
    local migs = migrate.files(ctx)
    local to = ctx.opts.to
    if to ~= nil then
      local found = false
      for _, m in ipairs(migs) do found = found or m.version == to end
      if not found then
        ctx:fail("misuse", "--to %s: no migration has this version", to)
      end
    end
    local db <close> = migrate.connect(ctx)
    local by_version = {}
    for _, m in ipairs(migs) do by_version[m.version] = m end
    local pending = {}
    for _, r in ipairs(core.migrate_status(db, migs)) do
      local go = r.state == "pending" or r.state == "partial"
        or (r.state == "out_of_order" and ctx.opts.out_of_order)
      if r.state == "out_of_order" and not ctx.opts.out_of_order then
        ctx:fail("migration_conflict", "migration %s is older than the newest applied one and "
          .. "was not applied: it is out of order; --out-of-order applies it", migrate.label(r))
      end
      if go and (to == nil or r.version <= to) then
        pending[#pending + 1] = by_version[r.version]
      end
    end
    if #pending == 0 then
      ctx:say("nothing to apply")
      return
    end
    if db:backend() == "postgres" then
      local n = migrate.lint(ctx, db, pending, io.stderr)
      if n > 0 then
        ctx:fail("lint", "%d finding%s in the pending migrations (above): make each change "
          .. "the safe way, or silence its rule in the migration with a reason", n,
          n == 1 and "" or "s")
      end
    end
    if ctx.opts.dry_run then
      local touched = {}
      for _, m in ipairs(pending) do migrate.print_sql(ctx, db, m, "up", touched) end
      return
    end
    local opts = migrate.run_options(ctx)
    opts.out_of_order = ctx.opts.out_of_order == true
    for _, m in ipairs(pending) do
      migrate.progress("applying %s ...", migrate.label(m))
      if migrate.apply(db, migs, m, opts) > 0 then
        ctx:say("applied %s", migrate.label(m))
      end
    end
  end,
}
