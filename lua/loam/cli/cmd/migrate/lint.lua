-- loam migrate lint: the safety linter, over the pending migrations.

local core = require "loam.core"
local migrate = require "loam.cli.cmd.migrate"

return {
  summary = "check the pending migrations for changes that lock or break production",
  usage = "loam migrate lint [--all]",
  help = [[
Checks each pending migration (every migration with --all) against the
linter's rules for the database's backend and server version, and prints
each finding: where, what, why it is dangerous and the safe alternative.
Exit status 1 when there is a finding.  A migration silences a rule with
a written reason: allow = { rule_name = "why it is safe here" }.  The
rules that know the project's models (rename_in_use, drop_column_in_use)
read the models folder.  'loam migrate up' runs the linter first on
PostgreSQL.]],
  options = {
    { "--all", "check every migration, applied or not" },
  },
  run = function(ctx)
    local migs = migrate.files(ctx)
    local db <close> = migrate.connect(ctx)
    local list = migs
    if not ctx.opts.all then
      local pending = {}
      for _, r in ipairs(core.migrate_status(db, migs)) do
        if r.state == "pending" or r.state == "out_of_order" or r.state == "partial" then
          pending[r.version] = true
        end
      end
      list = {}
      for _, m in ipairs(migs) do
        if pending[m.version] then list[#list + 1] = m end
      end
    end
    local n = migrate.lint(ctx, db, list, io.stdout)
    if n > 0 then
      ctx:say("%d finding%s in %d migration%s", n, n == 1 and "" or "s", #list,
        #list == 1 and "" or "s")
      return 1
    end
    ctx:say("no findings in %d migration%s", #list, #list == 1 and "" or "s")
  end,
}
