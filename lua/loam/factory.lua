-- loam.factory: rows for tests, made from defaults.  Seeds are the data a
-- database must hold; factories make the rows one test needs, each unique
-- where it must be, with only what the test is about written out.
--
--   local factory = require "loam.factory"
--   local customers = factory.define(Customer, {
--     email = factory.sequence "user%d@example.com",   -- user1@..., user2@...
--     tier = "free",
--   })
--   local orders = factory.define(Order, {
--     customer_id = factory.association(customers),    -- a new customer
--     total_cents = 1000,
--     note = function(v) return v.total_cents .. " cents" end,  -- from the others
--   })
--   orders:build { total_cents = 5 }     -- a table of values: nothing is saved
--   orders:create()                      -- an instance, saved, with its customer
--   orders:create { customer_id = ada }  -- an instance given for an association
--   orders:create_list(3, { total_cents = 7 }), orders:build_list(2, function(i) ... end)
--
-- A default is a value, a sequence (factory.sequence(fmt or fn): the
-- factory's count, from 1, formatted or passed to fn), an association
-- (factory.association(parent_factory [, overrides]) on a foreign-key
-- column: 'create' creates the parent unless the column is given, and
-- stores its key) or a function of the other values (called once those
-- are known, overrides included).  Overrides replace defaults; an
-- instance given for a foreign-key column stands for its key.  'build'
-- never touches the database: an association it is not given stays unset.
-- Names that are not columns of the model are a misuse error, where the
-- factory is defined or used.

local errors = require "loam.errors"
local model = require "loam.model"

local factory = {}

local Sequence = { __name = "loam.factory.sequence" }
local Association = { __name = "loam.factory.association" }

local Factory = { __name = "loam.Factory" }
Factory.__index = Factory

local function misuse(fmt, ...)
  errors.raise("misuse", fmt:format(...))
end

-- A value that counts: 'fmt' is a format for the count ("user%d@x") or
-- a function of it.
function factory.sequence(fmt)
  if type(fmt) ~= "string" and type(fmt) ~= "function" then
    misuse("factory.sequence expects a format string or a function of the count, got %s",
      errors.show(fmt))
  end
  return setmetatable({ fmt = fmt }, Sequence)
end

-- A foreign-key value: the key of a row 'parent' (a factory) creates,
-- with 'overrides'.
function factory.association(parent, overrides)
  if getmetatable(parent) ~= Factory then
    misuse("factory.association expects a factory (factory.define), got %s", errors.show(parent))
  end
  return setmetatable({ parent = parent, overrides = overrides }, Association)
end

local function check_names(M, values, what)
  for k in pairs(values) do
    if type(k) ~= "string" or M.column_map[k] == nil then
      misuse("%s: %s: unknown column %s (columns: %s)", M.table, what,
        type(k) == "string" and ("'" .. k .. "'") or errors.show(k), table.concat(M._names, ", "))
    end
  end
end

function factory.define(M, defaults)
  if type(M) ~= "table" or M.__model ~= true then
    misuse("factory.define expects a model, got %s", errors.show(M))
  end
  defaults = defaults or {}
  if type(defaults) ~= "table" then
    misuse("%s: factory defaults must be a table of column values, got %s", M.table,
      errors.show(defaults))
  end
  check_names(M, defaults, "factory default")
  for k, v in pairs(defaults) do
    if getmetatable(v) == Association and M.column_map[k].references == nil then
      misuse("%s: factory default %s: an association belongs on a foreign-key column", M.table, k)
    end
  end
  return setmetatable({ model = M, defaults = defaults, count = 0 }, Factory)
end

function Factory.__tostring(f)
  return "loam.Factory(" .. f.model.table .. ")"
end

-- The key a row of the parent model gives a foreign key column of M.
local function key_of(inst)
  local P = model.of(inst)
  return inst[P.primary_key[1]]
end

-- The values of one row: overrides over defaults, sequences counted,
-- functions called last; 'save' creates the associations' parents.
local function values_of(f, overrides, save)
  local M = f.model
  overrides = overrides or {}
  if type(overrides) ~= "table" or getmetatable(overrides) ~= nil then
    misuse("%s: factory overrides must be a table of column values, got %s", M.table,
      errors.show(overrides))
  end
  check_names(M, overrides, "factory override")
  f.count = f.count + 1
  local n = f.count
  local out, later = {}, {}
  for _, name in ipairs(M._names) do
    local v = overrides[name]
    if v == nil then v = f.defaults[name] end
    local mt = getmetatable(v)
    if mt == Sequence then
      v = type(v.fmt) == "function" and v.fmt(n) or v.fmt:format(n)
    elseif mt == Association then
      v = save and key_of(v.parent:create(v.overrides)) or nil
    elseif type(v) == "function" then
      later[#later + 1] = name
    elseif type(v) == "table" and model.of(v) ~= nil then
      v = key_of(v)
    end
    out[name] = v
  end
  for _, name in ipairs(later) do out[name] = out[name](out) end
  return out
end

-- The values of a row, nothing saved.
function Factory:build(overrides)
  return values_of(self, overrides, false)
end

-- A saved row, its associations created first; an instance.
function Factory:create(overrides)
  return self.model:create(values_of(self, overrides, true))
end

local function list(f, method, n, overrides)
  if math.type(n) ~= "integer" or n < 0 then
    misuse("%s: %s_list expects a count, got %s", f.model.table, method, errors.show(n))
  end
  local out = {}
  for i = 1, n do
    local o = overrides
    if type(o) == "function" then o = o(i) end
    out[i] = f[method](f, o)
  end
  return out
end

function Factory:build_list(n, overrides)
  return list(self, "build", n, overrides)
end

function Factory:create_list(n, overrides)
  return list(self, "create", n, overrides)
end

return factory
