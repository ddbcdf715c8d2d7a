-- loam models pull [TABLE...]: model files from the live database.

local config = require "loam.config"
local host = require "loam.cli.host"
local pull = require "loam.migrate.pull"

return {
  summary = "write a model file for each table of the database",
  usage = "loam models pull [options] [TABLE...]",
  help = [[
Reads the tables of the database (every table, or those named) and writes
one model file per table into the models folder: models/<table>.lua, the
columns with their types, nulls, defaults, keys, checks and indexes, and
in the function it returns the relations: belongs_to for each foreign key,
has_many (has_one for a unique key) back on the referenced model.  What a
model cannot declare (a foreign key over several columns, an index on an
expression, a type loam does not know) is named in a comment at the top of
the file.  With tables named, relations to the others name the models
pull would give them.  An existing file is left as it is and nothing is written,
unless --force.  Prints the files written.]],
  options = {
    { "--force", "overwrite model files that exist" },
    { "--dir", "DIR", "write into DIR instead of the config's models folder" },
  },
  args = { min = 0 },
  run = function(ctx)
    local p = ctx:project()
    local db <close> = p:connect()
    -- Every table is read, so a foreign key to a table not pulled still
    -- finds the key it references; the names are checked first.
    local only = nil
    if #ctx.args > 0 then
      db:introspect(ctx.args)
      only = {}
      for _, t in ipairs(ctx.args) do only[t] = true end
    end
    local files = pull.models(db:introspect(), only)
    if #files == 0 then
      ctx:say("no tables to pull")
      return
    end
    local dir = ctx.opts.dir and config.join(host.getcwd(), ctx.opts.dir) or p.models_dir
    local cwd = host.getcwd()
    local shown = dir:sub(1, #cwd + 1) == cwd .. "/" and dir:sub(#cwd + 2) or dir
    if not ctx.opts.force then
      for _, f in ipairs(files) do
        if config.exists(config.join(dir, f.file)) then
          ctx:fail("exists", "%s/%s exists; nothing written (--force overwrites)", shown, f.file)
        end
      end
    end
    if host.dir(dir) == nil then
      local ok, err = host.mkdir(dir)
      if not ok then ctx:fail("io_error", "cannot create %s", err) end
    end
    for _, f in ipairs(files) do
      local path = config.join(dir, f.file)
      local out, err = io.open(path, "w")
      if out == nil then ctx:fail("io_error", "cannot write %s", err) end
      out:write(f.text)
      out:close()
      ctx:say("wrote %s/%s (%s, model %s)", shown, f.file, f.table, f.name)
      for _, n in ipairs(f.notes) do ctx:say("  not declared: %s", n) end
    end
  end,
}
