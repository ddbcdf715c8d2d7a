-- loam.migrate.file: migration files, read from the migrations folder.
--
-- A migration is migrations/<UTC yyyymmddHHMMSS>_<name>.lua (name: a-z,
-- 0-9 and _); version and name come from the file name, the checksum the
-- history keeps from its bytes.  The file is a Lua chunk run in its own
-- environment (a fresh table whose __index is _G, a name found nowhere
-- being refused as an unknown operation), which holds
-- 'migration', one constructor per operation (loam.migrate.ops), loam's
-- column constructors (id, text, integer, ...), 'sql', 'now' and 'null'
-- as loam has them, and 'loam' itself:
--
--   return migration {
--     parent = "20261201090000",      -- nil for the first; { a, b } to merge
--     change = { add_column("orders", text("status")) },   -- down derived
--     -- or: up = { ... }, down = { ... }
--     allow = { rule_name = "why this is safe here" },     -- loam migrate lint
--   }
--
-- or a data migration, whose operations change rows and never the schema
-- (execute and backfill; its backfills come first):
--
--   return data_migration {
--     parent = "20261204120000",
--     up = { backfill("orders", { set = { status = "new" }, where = { status = null } }) },
--     down = {},
--   }
--
-- The core's runner runs the backfills of a data migration first, batch
-- by batch under its lease, then its execute operations in one
-- transaction with the history row; so its backfills come first.
--
--   file.parse_name(basename) -> version, name | nil, why
--   file.load(path [, shown]) -> migration
--       { version, name, path, parents, kind = "schema" | "data", source, up,
--         down (nil: derived by the core), reversible, irreversible (why
--         not, or nil), allow }
--   file.read(dir [, shown]) -> migrations sorted by version, or raises on
--       the first bad file ('shown(path)' is how paths appear in messages)
--
-- Every problem raises a loam error object naming the file (and the line,
-- when there is one): a syntax error is 'syntax_error', anything else
-- 'misuse'.  Nothing is applied while files are read, so a bad file
-- anywhere stops a run before it starts.

local loam = require "loam"
local core = require "loam.core"
local errors = require "loam.errors"
local types = require "loam.types"
local ops = require "loam.migrate.ops"
local host = require "loam.cli.host"
local cli = require "loam.cli"

local show = errors.show

local file = {}

file.NAME_FORM = "<UTC yyyymmddHHMMSS>_<name>.lua, the name of a-z, 0-9 and _ "
  .. "(20261204120000_add_orders_status.lua)"

local function fail(code, where, fmt, ...)
  errors.raise(code, string.format(fmt, ...), nil, where)
end

-- The version and name of a migration file's base name, or nil and why.
function file.parse_name(base)
  local version, name = base:match("^(%d+)_([a-z0-9_]+)%.lua$")
  if version == nil or #version ~= 14 then
    return nil, "is not named " .. file.NAME_FORM
  end
  local mo, d, h, mi, s = version:match("^%d%d%d%d(%d%d)(%d%d)(%d%d)(%d%d)(%d%d)$")
  mo, d, h, mi, s = tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s)
  if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or s > 59 then
    return nil, ("has the version %s, which is not a UTC time yyyymmddHHMMSS"):format(version)
  end
  return version, name
end

local MIGRATION_KEYS = { "parent", "change", "up", "down", "allow" }

-- The operations of list 'k' of the declaration 'spec', checked.
local function op_list(spec, k, where, label, kind)
  local list = spec[k]
  if type(list) ~= "table" or getmetatable(list) ~= nil then
    fail("misuse", where, "%s: '%s' must be an array of operations, got %s", label, k, show(list))
  end
  for key in pairs(list) do
    if math.type(key) ~= "integer" or key < 1 or key > #list then
      fail("misuse", where, "%s: '%s' must be an array of operations, it has the key %s", label,
        k, show(key))
    end
  end
  for i, op in ipairs(list) do
    if not ops.is_op(op) then
      fail("misuse", where, "%s: %s #%d is not an operation (add_column(...), execute(...) and "
        .. "the like), got %s", label, k, i, show(op))
    end
    if kind == "data" and not ops.DATA[op.op] then
      fail("misuse", op.at .. ": ", "%s: data_migration: %s #%d, %s, changes the schema; a data "
        .. "migration holds only execute and backfill (put %s in a migration { } of its own)",
        label, k, i, op.op, op.op)
    end
    if kind == "schema" and not ops.SCHEMA[op.op] then
      fail("misuse", op.at .. ": ", "%s: migration: %s #%d, %s, changes rows in batches outside "
        .. "a transaction, which a schema migration must not; put it in a data_migration { } of "
        .. "its own", label, k, i, op.op)
    end
  end
  return list
end

-- Checks that the backfills of a data migration's list 'list' come first:
-- the core runs them batch by batch, then the execute operations in one
-- transaction with the history row.
local function fills_first(list, k, label)
  local executes = false
  for i, op in ipairs(list) do
    if op.op == "backfill" and executes then
      fail("misuse", op.at .. ": ", "%s: data_migration: %s #%d, backfill, follows an execute; "
        .. "the backfills of a data migration come first (they run in batches, then the "
        .. "executes run in one transaction with the history row)", label, k, i)
    end
    executes = executes or op.op ~= "backfill"
  end
end

-- Checks the declaration 'spec' of migration() or, 'kind' "data",
-- data_migration(), and makes the migration.
local function declare(spec, where, label, kind)
  local ctor = kind == "data" and "data_migration" or "migration"
  if type(spec) ~= "table" or getmetatable(spec) ~= nil then
    fail("misuse", where, "%s: " .. ctor .. " expects a table { parent =, change = } or { parent =, "
      .. "up =, down = }, got %s", label, show(spec))
  end
  for k in pairs(spec) do
    local known = false
    for _, n in ipairs(MIGRATION_KEYS) do known = known or k == n end
    if not known then
      fail("misuse", where, "%s: unknown field %s of a migration (valid fields: %s)", label,
        type(k) == "string" and "'" .. k .. "'" or show(k), table.concat(MIGRATION_KEYS, ", "))
    end
  end
  local m = { kind = kind, parents = {}, allow = {} }
  local parent = spec.parent
  if type(parent) == "string" then
    parent = { parent }
  end
  if parent ~= nil then
    if type(parent) ~= "table" or #parent == 0 then
      fail("misuse", where, "%s: parent must be a version (\"20261201090000\") or, for a merge, "
        .. "an array of them, got %s", label, show(spec.parent))
    end
    for i, p in ipairs(parent) do
      if type(p) ~= "string" or not p:match("^%d+$") or #p ~= 14 then
        fail("misuse", where, "%s: parent #%d must be a version of 14 digits, got %s", label, i,
          show(p))
      end
      m.parents[i] = p
    end
  end
  if spec.change ~= nil then
    if spec.up ~= nil or spec.down ~= nil then
      fail("misuse", where, "%s: a migration has 'change' (its down derived) or 'up' and "
        .. "'down', not both", label)
    end
    m.up = op_list(spec, "change", where, label, kind)
    for i, op in ipairs(m.up) do
      if op.op == "backfill" then
        fail("misuse", op.at .. ": ", "%s: data_migration: change #%d, backfill, cannot be "
          .. "reversed (the values it overwrites are not kept): write up and down", label, i)
      end
      local why = core.op_irreversible(op)
      if why ~= nil and m.irreversible == nil then
        m.irreversible = ("step %d (%s): %s"):format(i, op.op, why)
      end
    end
    m.reversible = m.irreversible == nil
  elseif spec.up ~= nil then
    m.up = op_list(spec, "up", where, label, kind)
    if spec.down == nil then
      fail("misuse", where, "%s: a migration with 'up' needs 'down' (down = {} when nothing is "
        .. "to undo), or 'change' instead of 'up' to derive it", label)
    end
    m.down = op_list(spec, "down", where, label, kind)
    m.reversible = true
  else
    fail("misuse", where, "%s: a migration needs 'change' or 'up' and 'down'", label)
  end
  if kind == "data" then
    fills_first(m.up, spec.change ~= nil and "change" or "up", label)
    if m.down ~= nil then fills_first(m.down, "down", label) end
  end
  if spec.allow ~= nil then
    if type(spec.allow) ~= "table" then
      fail("misuse", where, "%s: allow must be a table { rule = \"reason\" }, got %s", label,
        show(spec.allow))
    end
    for rule, reason in pairs(spec.allow) do
      if type(rule) ~= "string" then
        fail("misuse", where, "%s: allow takes rule names as keys, got %s", label, show(rule))
      end
      if type(reason) ~= "string" or not reason:find("%S") then
        fail("misuse", where, "%s: allow.%s needs a written reason (allow = { %s = \"why it is "
          .. "safe here\" }), got %s", label, rule, rule, show(reason))
      end
      m.allow[rule] = reason
    end
  end
  return setmetatable(m, { __name = "loam.Migration" })
end

-- The environment a migration file runs in; 'declared' receives what
-- migration() makes.
local function environment(label, declared)
  -- A name that is neither here nor a global is a typo of an operation
  -- far more often than a deliberate nil: it is refused, with the list.
  local env = setmetatable({}, { __index = function(_, k)
    local v = _G[k]
    if v == nil then
      local near = type(k) == "string" and cli.nearest(k, ops.NAMES)
      fail("misuse", errors.where(), "%s is not an operation%s (operations: %s)",
        type(k) == "string" and "'" .. k .. "'" or show(k),
        near and (", did you mean '" .. near .. "'?") or "", table.concat(ops.NAMES, ", "))
    end
    return v
  end })
  for _, name in ipairs(ops.NAMES) do env[name] = ops[name] end
  for name, f in pairs(types.constructors) do env[name] = f end
  env.sql, env.now, env.null = types.sql, types.now, core.null
  env.loam = loam
  local function declarer(kind, ctor)
    return function(spec, ...)
      local where = errors.where()
      if select("#", ...) > 0 then
        fail("misuse", where, "%s: %s takes one table", label, ctor)
      end
      if declared.m ~= nil then
        fail("misuse", where, "%s: a file declares one migration or data_migration, not two "
          .. "(schema and data changes are never mixed in one file)", label)
      end
      declared.m = declare(spec, where, label, kind)
      return declared.m
    end
  end
  env.migration = declarer("schema", "migration")
  env.data_migration = declarer("data", "data_migration")
  return env
end

-- Reads the migration file 'path'; 'shown' is how it appears in messages
-- (default: as given).
function file.load(path, shown)
  shown = shown or path
  local base = path:match("([^/]*)$")
  local version, name = file.parse_name(base)
  if version == nil then
    fail("misuse", "", "%s %s", shown, name)
  end
  local f, ferr = io.open(path, "rb")
  if f == nil then
    fail("io_error", "", "cannot read %s", ferr)
  end
  local source = f:read("a")
  f:close()
  local declared = {}
  local chunk, serr = load(source, "@" .. shown, "t", environment(shown, declared))
  if chunk == nil then
    fail("syntax_error", "", "%s", serr)
  end
  local ok, result = pcall(chunk)
  if not ok then
    if type(result) == "table" and result.code ~= nil then
      error(result, 0)
    end
    fail("misuse", "", "%s", tostring(result))
  end
  local m = declared.m
  if m == nil then
    fail("misuse", shown .. ": ", "the file declares no migration (return migration { ... } or "
      .. "data_migration { ... })")
  end
  if result ~= m then
    fail("misuse", shown .. ": ", "the file must return what migration { ... } returns, got %s",
      show(result))
  end
  m.version, m.name, m.path, m.source = version, name, path, source
  return m
end

-- The migrations of folder 'dir', by version.  A file whose name does
-- not end in .lua, or that starts with a dot, is not a migration.
function file.read(dir, shown)
  shown = shown or function(p) return p end
  local names = host.dir(dir)
  if names == nil then
    fail("io_error", "", "no migrations folder %s", shown(dir))
  end
  table.sort(names)
  local list, by_version = {}, {}
  for _, base in ipairs(names) do
    if base:match("%.lua$") and base:sub(1, 1) ~= "." then
      local path = dir .. "/" .. base
      local m = file.load(path, shown(path))
      local other = by_version[m.version]
      if other ~= nil then
        fail("migration_conflict", "", "%s and %s have the same version %s; give one of them "
          .. "a later one", shown(other.path), shown(path), m.version)
      end
      by_version[m.version] = m
      list[#list + 1] = m
    end
  end
  table.sort(list, function(a, b) return a.version < b.version end)
  return list
end

return file
