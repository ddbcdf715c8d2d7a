-- loam migrate generate NAME: a migration from the models' differences
-- with the database.

local config = require "loam.config"
local diff = require "loam.migrate.diff"
local host = require "loam.cli.host"
local writer = require "loam.migrate.writer"

-- The versions of the migration files in 'dir' (yyyymmddHHMMSS_name.lua).
local function versions(dir)
  local out = {}
  for _, n in ipairs(host.dir(dir) or {}) do
    local v = n:match("^(%d%d%d%d%d%d%d%d%d%d%d%d%d%d)_[a-z0-9_]+%.lua$")
    if v then out[#out + 1] = v end
  end
  table.sort(out)
  return out
end

return {
  summary = "write a migration that makes the database what the models declare",
  usage = "loam migrate generate [options] NAME",
  help = [[
Compares the models of the models folder with the database (run it with
every migration applied) and writes migrations/<UTC version>_NAME.lua
(NAME: lowercase letters, digits and '_'), whose parent is the newest
migration of the folder: 'change' when every operation can be undone,
else 'up' and 'down'.  Prints the file and its operations, or "no changes"
and writes nothing.
Renames are never guessed: a model declares them, renamed_from = "old" on
a column, or in the model's options for its table.  A column that is gone
while another of the same type is new, without that declaration, is an
error naming both.  Tables and columns that no model has any more are
dropped only with --allow-drops; without it each is an error.  What no
operation changes (a primary key, a UNIQUE constraint) is printed as a
note.]],
  options = {
    { "--allow-drops", "drop tables and columns the models no longer declare" },
  },
  args = { min = 1, max = 1, what = "a name for the migration" },
  run = function(ctx)
    local name = ctx.args[1]
    if not name:match("^[a-z0-9_]+$") then
      ctx:usage("migration name '%s': use lowercase letters, digits and '_'", name)
    end
    local p = ctx:project()
    local db <close> = p:connect(true)
    local models = p:load_models(db)
    local result = diff.diff(models, db:introspect(), { allow_drops = ctx.opts.allow_drops })
    if #result.errors > 0 then
      ctx:fail("misuse", "%s", table.concat(result.errors, "; "))
    end
    for _, n in ipairs(result.notes) do ctx:say("note: %s", n) end
    if #result.ops == 0 then
      ctx:say("no changes")
      return
    end
    local dir = p.config and p.config.migrations or config.join(p.root, "migrations")
    local existing = versions(dir)
    local version = writer.version(existing)
    local file = ("%s_%s.lua"):format(version, name)
    local text = writer.text(result.ops, {
      parent = existing[#existing],
      title = ("%s: written by `loam migrate generate` from the models."):format(file),
    })
    if host.dir(dir) == nil then
      local ok, err = host.mkdir(dir)
      if not ok then ctx:fail("io_error", "cannot create %s", err) end
    end
    local path = config.join(dir, file)
    local f, err = io.open(path, "w")
    if f == nil then ctx:fail("io_error", "cannot write %s", err) end
    f:write(text)
    f:close()
    local cwd = host.getcwd()
    ctx:say("wrote %s", path:sub(1, #cwd + 1) == cwd .. "/" and path:sub(#cwd + 2) or path)
    for _, op in ipairs(result.ops) do ctx:say("  %s", diff.summary(op)) end
  end,
}
