-- loam migrate generate NAME: a migration from the models' differences
-- with the database.

local core = require "loam.core"
local diff = require "loam.migrate.diff"
local migrate = require "loam.cli.cmd.migrate"
local writer = require "loam.migrate.writer"

return {
  summary = "write a migration that makes the database what the models declare",
  usage = "loam migrate generate [options] NAME",
  help = [[
Compares the models of the models folder with the database migrations run
on and writes <migrations>/<UTC yyyymmddHHMMSS>_NAME.lua (NAME: a-z, 0-9
and _), whose parent is the head: 'change' when every operation can be
undone, else 'up' and 'down'.  Prints the file and its operations, or "no
changes" and writes nothing.  Every migration must be applied first.
Renames are never guessed: a model declares them, renamed_from = "old" on
a column, or in the model's options for its table.  A column that is gone
while another of the same type is new, without that declaration, is an
error naming both.  Tables and columns that no model has any more are
dropped only with --allow-drops; without it each is an error.  Checks
and indexes compare by their definitions as the database prints them,
UNIQUE constraints and foreign keys by their columns; a changed primary
key is refused, naming the table.]],
  options = {
    { "--allow-drops", "drop tables and columns the models no longer declare" },
  },
  args = { min = 1, max = 1, what = "a NAME for the migration" },
  run = function(ctx)
    local name = ctx.args[1]
    migrate.check_name(ctx, name)
    local migs = migrate.files(ctx)
    local head = migrate.head(ctx, migs, "the generated one")
    local db <close> = migrate.connect(ctx)
    -- The database must be what the migrations make, or the difference
    -- would repeat what a pending migration does.
    local pending = {}
    for _, r in ipairs(core.migrate_status(db, migs)) do
      if r.state == "pending" then pending[#pending + 1] = r.version end
    end
    if #pending > 0 then
      ctx:fail("migration_conflict", "%d migration%s not applied (%s): 'loam migrate up' first, "
        .. "then generate", #pending, #pending == 1 and " is" or "s are",
        table.concat(pending, ", "))
    end
    local models = ctx:project():load_models(db)
    local result = diff.diff(models, db, { allow_drops = ctx.opts.allow_drops })
    if #result.errors > 0 then
      ctx:fail("misuse", "%s", table.concat(result.errors, "; "))
    end
    if #result.ops == 0 then
      ctx:say("no changes")
      return
    end
    local version = migrate.new_version(migs)
    local text = writer.text(result.ops, {
      parent = head and head.version,
      title = ("%s_%s.lua: written by `loam migrate generate` from the models."):format(
        version, name),
    })
    ctx:say("wrote %s", migrate.write(ctx, version, name, text))
    for _, op in ipairs(result.ops) do ctx:say("  %s", diff.summary(op)) end
  end,
}
