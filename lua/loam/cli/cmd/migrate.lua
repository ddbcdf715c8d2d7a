-- loam migrate COMMAND: the group of the migration commands, and what
-- they share: the migrations folder, its files, the connection on the
-- migration URL, heads, new file names and the lines a run prints.

local core = require "loam.core"
local config = require "loam.config"
local file = require "loam.migrate.file"
local lint = require "loam.migrate.lint"
local project = require "loam.project"
local host = require "loam.cli.host"

local migrate = {
  summary = "write, apply, revert and check migrations",
  usage = "loam migrate COMMAND [options] [args]",
  help = [[
Migrations are the files of the config's migrations folder (default
migrations/ beside loam.config.lua), each
<UTC yyyymmddHHMMSS>_<name>.lua and naming its parent.  They run on the
environment's migration_url when it has one (an owner role), else on its
database URL (see 'loam help').  The README's section "Migrations"
describes the file format and the operations.]],
  subcommands = { "new", "generate", "up", "down", "redo", "status", "lint", "check", "merge" },
}

-- The migrations folder of the project and how its paths are shown:
-- relative to the current directory when under it.
function migrate.folder(ctx)
  local p = ctx:project()
  local dir = p.config and p.config.migrations or config.join(p.root, "migrations")
  local prefix = p.cwd:gsub("/$", "") .. "/"
  local function shown(path)
    if path:sub(1, #prefix) == prefix then return path:sub(#prefix + 1) end
    return path
  end
  return dir, shown
end

-- The migrations of the folder, by version.
function migrate.files(ctx)
  local dir, shown = migrate.folder(ctx)
  return file.read(dir, shown), dir, shown
end

-- A Database on the migration URL (closed by the caller, or at exit).
function migrate.connect(ctx)
  return ctx:project():connect(true)
end

-- The migrations no other one follows.
function migrate.heads(migs)
  local followed, heads = {}, {}
  for _, m in ipairs(migs) do
    for _, p in ipairs(m.parents) do followed[p] = true end
  end
  for _, m in ipairs(migs) do
    if not followed[m.version] then heads[#heads + 1] = m end
  end
  return heads
end

-- The one head a new migration follows (nil for the first); two heads
-- are refused, naming 'what' is being written.
function migrate.head(ctx, migs, what)
  local heads = migrate.heads(migs)
  if #heads > 1 then
    ctx:fail("migration_conflict", "two heads, %s and %s: 'loam migrate merge' writes the "
      .. "migration that joins them, then write %s", migrate.label(heads[1]),
      migrate.label(heads[2]), what)
  end
  return heads[1]
end

-- "20261204120000_add_order_status": how a migration is named in lines.
function migrate.label(m)
  return m.version .. "_" .. (m.name or "?")
end

-- The version of a file written now: the current UTC time, or one
-- second after the newest of 'migs' when that is later (two files written
-- within a second keep their order).
function migrate.new_version(migs)
  local now = os.date("!%Y%m%d%H%M%S")
  local newest = migs[#migs] and migs[#migs].version
  if newest ~= nil and newest >= now then
    local t = {}
    t.year, t.month, t.day, t.hour, t.min, t.sec = newest:match(
      "^(%d%d%d%d)(%d%d)(%d%d)(%d%d)(%d%d)(%d%d)$")
    for k, v in pairs(t) do t[k] = tonumber(v) end
    t.sec = t.sec + 1
    now = os.date("%Y%m%d%H%M%S", os.time(t))
  end
  return now
end

-- Writes a new migration file 'version'_'name' with 'text'; refuses to
-- overwrite.  Returns its path as shown.
function migrate.write(ctx, version, name, text)
  local dir, shown = migrate.folder(ctx)
  if host.dir(dir) == nil then
    ctx:fail("io_error", "no migrations folder %s ('loam init' makes one)", shown(dir))
  end
  local path = dir .. "/" .. version .. "_" .. name .. ".lua"
  if config.exists(path) then
    ctx:fail("exists", "%s already exists", shown(path))
  end
  local f, err = io.open(path, "w")
  if f == nil then ctx:fail("io_error", "cannot write %s", err) end
  f:write(text)
  f:close()
  return shown(path)
end

-- Checks a migration name given on the command line.
function migrate.check_name(ctx, name)
  if not name:match("^[a-z0-9_]+$") then
    ctx:usage("a migration name is made of a-z, 0-9 and _ (add_orders_status), not '%s'", name)
  end
end

-- A progress line on stderr, when it is a terminal: a long run shows what
-- it is doing, and a pipe or a log gets the results alone.
function migrate.progress(fmt, ...)
  if host.isatty(2) then
    io.stderr:write(fmt:format(...), "\n")
  end
end

-- The options of a run from the command line.
function migrate.run_options(ctx)
  return { owner = (os.getenv("USER") or "loam") .. " (loam migrate)" }
end

-- How a parameter of a dry run's statement is shown.
local function shown(v)
  if v == core.null then return "NULL" end
  if type(v) == "string" then return "'" .. v:gsub("'", "''") .. "'" end
  return tostring(v)
end

-- Prints a statement of a dry run, its parameters after it.
local function say_stmt(ctx, sql, params)
  if params == nil or #params == 0 then return ctx:say("%s;", sql) end
  local list = {}
  for i, v in ipairs(params) do list[i] = shown(v) end
  ctx:say("%s;  -- %s", sql, table.concat(list, ", "))
end

-- Prints the statements of migration 'm' in direction 'dir' as a dry run
-- shows them; 'touched' follows the tables changed by those before.  A
-- backfill shows its plan: how it batches, and the statements of its first
-- batch as the core renders them, with their parameters.
function migrate.print_sql(ctx, db, m, dir, touched)
  local stmts, outside = core.migration_sql(db, m, dir, touched)
  ctx:say("-- %s (%s%s)", migrate.label(m), dir,
    outside and ", outside a transaction, step by step" or "")
  local fills = 0
  for _, s in ipairs(stmts) do
    if type(s) == "table" then
      fills = fills + 1
      ctx:say("-- backfill %s: batches of %d rows by %s, each in a transaction of its own; "
        .. "the first:", s.backfill, s.batch, s.key)
      say_stmt(ctx, s.select, s.select_params)
      if s.update ~= nil then say_stmt(ctx, s.update, s.update_params)
      else ctx:say("-- (no row is left to change)") end
    else
      if fills > 0 then
        ctx:say("-- then, in one transaction with the history row:")
        fills = 0
      end
      ctx:say("%s;", s)
    end
  end
end

-- The run option that shows, on a terminal, how far each backfill has got
-- (nil elsewhere), and the function that ends its line after a run.
local function batch_progress()
  if not host.isatty(2) then return nil, function() end end
  local drawn = false
  return function(_, _, tname, rows, batches)
    drawn = true
    io.stderr:write(("\rbackfill %s: %d rows in %d batches"):format(tname, rows, batches))
  end, function()
    if drawn then io.stderr:write("\n") end
    drawn = false
  end
end

-- Applies migration 'm' of 'migs' with the run options 'opts' and those
-- pending before it; returns how many the core applied.  The core runs
-- the backfills of a data migration, batch by batch under its lease.
function migrate.apply(db, migs, m, opts)
  local o, done = {}, nil
  for k, v in pairs(opts) do o[k] = v end
  o.to = m.version
  o.progress, done = batch_progress()
  local n = core.migrate_up(db, migs, o)
  done()
  return n
end

-- Reverts the 'steps' newest applied migrations one by one, printing a
-- line for each (with 'dry', prints their SQL instead); returns them.
function migrate.revert(ctx, db, migs, steps, dry)
  local by_version = {}
  for _, m in ipairs(migs) do by_version[m.version] = m end
  local rows, targets = core.migrate_status(db, migs), {}
  for i = #rows, 1, -1 do
    local r = rows[i]
    if #targets < steps and (r.state == "applied" or r.state == "changed" or
                             r.state == "missing") then
      targets[#targets + 1] = by_version[r.version] or r
    end
  end
  if #targets == 0 then
    ctx:say("nothing to revert")
    return targets
  end
  if dry then
    local touched = {}
    for _, m in ipairs(targets) do
      if m.source == nil then
        ctx:fail("migration_conflict", "migration %s is applied but no file has its version: it "
          .. "cannot be reverted without its down", m.version)
      end
      migrate.print_sql(ctx, db, m, "down", touched)
    end
    return targets
  end
  local opts, done = migrate.run_options(ctx), nil
  opts.progress, done = batch_progress()
  for _, m in ipairs(targets) do
    migrate.progress("reverting %s ...", migrate.label(m))
    local n = core.migrate_down(db, migs, 1, opts)
    done()
    if n > 0 then
      ctx:say("reverted %s", migrate.label(m))
    end
  end
  return targets
end

-- The lint findings of 'migs' on 'db', with the project's models for the
-- rules that need them; each is printed to 'out'.  Returns their number.
function migrate.lint(ctx, db, migs, out)
  local findings = lint.check(migs, lint.context(db, ctx:project():load_models(db)))
  for _, f in ipairs(findings) do out:write(lint.format(f), "\n") end
  return #findings
end

-- URLs are shown without their password.
migrate.redact = project.redact

return migrate
