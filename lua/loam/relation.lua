-- loam.relation: relations between models: declaring them, reading them
-- (strictly, or lazily when enabled) and serializing what was loaded.
--
-- Declared on models once both exist, so two models may point at each other:
--
--   Order:belongs_to("customer", Customer, { key = "customer_id", inverse = "orders" })
--   Customer:has_many("orders", Order, { key = "customer_id", inverse = "customer" })
--   Customer:has_one("profile", Profile)              -- key: the one column of
--                                                     -- profiles referencing customers
--   Order:has_many("tags", Tag, { through = "order_tags", key = "order_id",
--                                 target_key = "tag_id" })
--   Line:belongs_to("shipment", Shipment, { key = { "order_id", "line_no" },
--                                          references = { "order_id", "no" } })
--
-- Keys.  belongs_to: 'key' names columns of the declaring model, 'references'
-- the target's (default: its primary key).  has_one/has_many: 'key' names
-- columns of the target, 'references' the declaring model's (default: its
-- primary key).  through (has_many only; a table name or a model): 'key' and
-- 'target_key' name the join table's columns matching 'references' (the
-- declaring model's, default its primary key) and 'target_references' (the
-- target's, default its primary key).  A missing 'key' is found from the
-- foreign keys the models declare, when exactly one column fits.  'inverse'
-- names the target's relation back: loading order.items then sets every
-- item's 'order' without a query.  Mistakes (unknown columns, a name that
-- clashes with a column, a method or an include option, keys of different
-- types, unknown options) are misuse errors naming model, relation and the
-- declaring line; a wrong 'inverse' is reported when it is first used.
--
-- Loading.  Strict by default: reading a relation that was not loaded raises
-- 'not_loaded', naming the fix.  Relations load
--   * eagerly: q:include("customer", { items = "product" }) (a query method)
--     or loam.preload(list, ...) for instances in hand.  One query per
--     relation per level whatever the number of parents, every relation of
--     one level in ONE db:load_batch call (pipelined on PostgreSQL); or
--     joined into the parent's own query (strategy = "joined");
--   * lazily, when enabled (q:lazy() or Model:lazy() for one query,
--     Model:lazy_loading(true), db:lazy_loading(true) as defaults, the
--     latter kept by the Database as 'db._lazy'): the
--     first read loads the relation for every instance of the result set the
--     instance came from, in one query.
-- Include items and their options are loam.include's (it plans what each
-- statement loads); loam.loader runs the statements and keeps what they
-- loaded.
--
-- Loaded values live in the instance's state, never among its fields
-- (loam.loader): reads go through the instance's __index (loam.model),
-- which calls relation.read.  Serialization never loads: inst:to_table{ include = ... } adds
-- the loaded relations it names (include = true: every loaded one), and
-- raises not_loaded for one that is not.
--
-- The module: relation.declare(M, kind, name, target, opts),
-- relation.model_lazy(M, flag), relation.read(inst, rel) (for the instances' __index),
-- relation.forget(inst [, changed]), relation.serialize(inst, out, include,
-- nulls).
--
-- Modules: this one declares relations and reads them; it requires
-- loam.loader, which requires loam.include, and neither requires this one,
-- so a lazy read can load without a cycle.

local core = require "loam.core"
local errors = require "loam.errors"
local types = require "loam.types"
local expr = require "loam.expr"
local track = require "loam.track"
local include = require "loam.include"
local loader = require "loam.loader"
local instance = require "loam.instance"

local null = core.null
local raise = errors.raise
local misuse = errors.misuse
local show_name = include.show_name
local relation_list = include.relation_list
local NONE = loader.NONE
local STATE = instance.KEY
local model_of = instance.model_of

local relation = {}


-- {======================================================================
-- Declaring relations
-- =======================================================================

local OPTIONS = {
  belongs_to = { key = true, references = true, inverse = true },
  has_one = { key = true, references = true, inverse = true },
  has_many = { key = true, references = true, inverse = true, through = true,
               target_key = true, target_references = true },
}

-- Names a relation cannot take: the options of include and to_table tables,
-- where a relation name and an option share one table.
local RESERVED = {
  include = true, strategy = true, select = true, where = true, order_by = true,
  limit = true, only = true, except = true, nulls = true,
}

-- Column types that hold the same values, for comparing keys.
local TYPE_CLASS = { id = "integer", integer = "integer", bigint = "integer",
                     text = "text", enum = "text" }

-- The columns a key option names, checked against 'map' (a column map),
-- or nil when the option is absent.
local function key_columns(fail, value, map, what, owner)
  if value == nil then return nil end
  local list = value
  if type(list) == "string" then list = { list } end
  if type(list) ~= "table" or getmetatable(list) ~= nil or #list == 0 then
    fail("'%s' must be a column name or an array of them, got %s", what, errors.show(value))
  end
  local out = {}
  for i, name in ipairs(list) do
    if map ~= nil and (type(name) ~= "string" or map[name] == nil) then
      local names = {}
      for j, c in ipairs(owner.columns) do names[j] = c.name end
      fail("'%s': %s is not a column of %s (columns: %s)", what, show_name(name), owner.table,
        table.concat(names, ", "))
    elseif map == nil then
      local problem = types.ident_problem(name)
      if problem then fail("'%s': column name %s", what, problem) end
    end
    out[i] = name
  end
  return out
end

-- The one column of 'M' that references table 'tname', or nil.
local function referencing_column(M, tname)
  local found
  for _, col in ipairs(M.columns) do
    if col.references ~= nil and col.references.table == tname then
      if found ~= nil then return nil end
      found = col.name
    end
  end
  return found
end

-- Refuses key pairs whose column types cannot hold the same values.
local function check_types(fail, a_model, a_cols, b_model, b_cols)
  if #a_cols ~= #b_cols then
    fail("the key has %d column(s) (%s) but matches %d (%s)", #a_cols, table.concat(a_cols, ", "),
      #b_cols, table.concat(b_cols, ", "))
  end
  if a_model == nil or b_model == nil then return end
  for i, a in ipairs(a_cols) do
    local ta, tb = a_model.column_map[a].type, b_model.column_map[b_cols[i]].type
    if (TYPE_CLASS[ta] or ta) ~= (TYPE_CLASS[tb] or tb) then
      fail("key %s.%s (%s) cannot match %s.%s (%s): the types differ", a_model.table, a, ta,
        b_model.table, b_cols[i], tb)
    end
  end
end

local read  -- reads a relation of an instance, defined with the reading

function relation.declare(M, kind, name, target, opts)
  local where = errors.where()
  local label = M.table .. "." .. tostring(name)
  local function fail(fmt, ...)
    raise("misuse", label .. ": " .. string.format(fmt, ...),
      { model = M.table, relation = type(name) == "string" and name or nil }, where)
  end
  if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
    label = M.table .. "." .. kind
    fail("the relation name must be a Lua identifier, got %s", errors.show(name))
  end
  if M.column_map[name] ~= nil then
    fail("the name is a column of %s; name the relation differently", M.table)
  end
  if M.relations[name] ~= nil then
    fail("the relation is declared twice")
  end
  if RESERVED[name] then
    fail("'%s' is an option of include and to_table tables and cannot name a relation", name)
  end
  if M.methods[name] ~= nil then
    fail("a relation of this name would hide the instance method '%s'", name)
  end
  if type(target) ~= "table" or rawget(target, "__model") ~= true then
    fail("the target must be a model, got %s", errors.show(target))
  end
  if target.db ~= M.db then
    fail("%s and %s are declared on different databases", M.table, target.table)
  end
  if opts == nil then
    opts = {}
  elseif type(opts) ~= "table" or getmetatable(opts) ~= nil then
    fail("options must be a table, got %s", errors.show(opts))
  end
  for k in pairs(opts) do
    if not OPTIONS[kind][k] then
      local hint = ""
      if kind ~= "has_many" and OPTIONS.has_many[k] then
        hint = " (many-to-many relations are has_many ... through)"
      end
      fail("unknown %s option %s%s", kind, show_name(k), hint)
    end
  end
  if opts.inverse ~= nil and (type(opts.inverse) ~= "string" or opts.inverse == "") then
    fail("'inverse' must be a relation name, got %s", errors.show(opts.inverse))
  end

  local T = target
  local rel = { name = name, kind = kind, model = M, target = T, one = kind ~= "has_many",
                inverse = opts.inverse, where = where }
  local function primary_key(X, what)
    if #X.primary_key == 0 then
      fail("%s has no primary key: give '%s'", X.table, what)
    end
    return X.primary_key
  end

  if kind == "belongs_to" then
    local refs = key_columns(fail, opts.references, T.column_map, "references", T)
      or primary_key(T, "references")
    local keys = key_columns(fail, opts.key, M.column_map, "key", M)
    if keys == nil then
      local guess = #refs == 1 and (M.column_map[name .. "_id"] and name .. "_id"
        or referencing_column(M, T.table))
      if not guess then
        fail("no 'key' given and none found (no column %s_id, and not exactly one column "
          .. "referencing %s)", name, T.table)
      end
      keys = { guess }
    end
    check_types(fail, M, keys, T, refs)
    rel.owner_keys, rel.target_keys = keys, refs
  elseif opts.through == nil then
    local refs = key_columns(fail, opts.references, M.column_map, "references", M)
      or primary_key(M, "references")
    local keys = key_columns(fail, opts.key, T.column_map, "key", T)
    if keys == nil then
      local guess = #refs == 1 and referencing_column(T, M.table)
      if not guess then
        fail("no 'key' given and none found (not exactly one column of %s references %s)",
          T.table, M.table)
      end
      keys = { guess }
    end
    check_types(fail, M, refs, T, keys)
    rel.owner_keys, rel.target_keys = refs, keys
  else
    local through, JM = opts.through, nil
    if type(through) == "table" and rawget(through, "__model") == true then
      JM, through = through, through.table
    elseif type(through) ~= "string" or types.ident_problem(through) then
      fail("'through' must be a table name or a model, got %s", errors.show(opts.through))
    end
    if through == T.table or through == M.table then
      fail("'through' names %s itself; it must be the join table", through)
    end
    local refs = key_columns(fail, opts.references, M.column_map, "references", M)
      or primary_key(M, "references")
    local trefs = key_columns(fail, opts.target_references, T.column_map,
      "target_references", T) or primary_key(T, "target_references")
    local jmap = JM and JM.column_map
    local keys = key_columns(fail, opts.key, jmap, "key", JM)
    local tkeys = key_columns(fail, opts.target_key, jmap, "target_key", JM)
    if keys == nil and JM and #refs == 1 and M ~= T then
      local guess = referencing_column(JM, M.table)
      keys = guess and { guess }
    end
    if tkeys == nil and JM and #trefs == 1 and M ~= T then
      local guess = referencing_column(JM, T.table)
      tkeys = guess and { guess }
    end
    if keys == nil or tkeys == nil then
      fail("a relation through %s needs '%s' (the join table's column%s matching %s)", through,
        keys == nil and "key" or "target_key", "(s)",
        keys == nil and M.table or T.table)
    end
    check_types(fail, M, refs, JM, keys)
    check_types(fail, T, trefs, JM, tkeys)
    rel.owner_keys, rel.target_keys = refs, trefs
    rel.through, rel.through_owner, rel.through_target = through, keys, tkeys
    rel.through_model = JM
  end

  M.relations[name] = rel
  M._relation_names[#M._relation_names + 1] = name
  return M
end

-- Model:lazy_loading(flag): the model's default for lazy loading.
function relation.model_lazy(M, flag)
  if type(flag) ~= "boolean" then
    misuse("%s: lazy_loading expects true or false, got %s (q:lazy() and %s:lazy() start a "
      .. "query that loads lazily)", M.table, errors.show(flag), M.table)
  end
  M._lazy = flag
  return M
end

-- }======================================================================


-- {======================================================================
-- Reading: strict by default, lazy when enabled
-- =======================================================================

-- include("x"), include{ a = "x" }, include{ a = { b = "x" } }, ...
local function include_text(path, name)
  if #path == 0 then return string.format("include(%q)", name) end
  local s = string.format("%q", name)
  for i = #path, 1, -1 do
    s = string.format("{ %s = %s }", path[i], s)
  end
  return "include" .. s
end

local function lazy_enabled(M, set)
  if set ~= nil and set.lazy ~= nil then return set.lazy end
  if M._lazy ~= nil then return M._lazy end
  return M.db._lazy == true
end

local function not_loaded(rel, set)
  local M = rel.model
  local path, root = set and set.path or {}, set and set.root or M.table
  local where = #path == 0 and "to the query that loaded it"
    or "to the query on " .. root .. " that loaded it"
  raise("not_loaded", string.format("%s.%s is not loaded: add %s %s, or call "
    .. "loam.preload(list, %q) (strict loading; lazy loading is opt-in: q:lazy(), "
    .. "Model:lazy_loading(true), db:lazy_loading(true))", M.table, rel.name, include_text(path, rel.name), where,
    rel.name), { model = M.table, relation = rel.name })
end

-- The value of relation 'rel' of 'inst' (nil for a to-one relation with no
-- row), loaded first when lazy loading is on for it.
function read(inst, rel)
  local t = inst[STATE]
  local v = t and t[rel.slot]
  if v == nil then
    local set = t and t[rel.model._peers]
    if not lazy_enabled(rel.model, set) then
      not_loaded(rel, set)
    end
    loader.load_peers(inst, rel, set)
    v = inst[STATE][rel.slot]
  end
  track.relation_read(inst, rel.name)
  if v == NONE then return nil end
  return v
end

-- Drops the loaded relations of 'inst' (all of them, or those whose keys
-- on the instance are among the 'changed' columns): they no longer
-- describe its row.
function relation.forget(inst, changed)
  local t = inst[STATE]
  if t == nil then return end
  local M = model_of(inst)
  for _, rel in pairs(M.relations) do
    local slot = rel.slot
    if t[slot] ~= nil then
      if changed == nil then
        t[slot] = nil
      else
        for _, c in ipairs(rel.owner_keys) do
          if changed[c] then
            t[slot] = nil
            break
          end
        end
      end
    end
  end
end

-- }======================================================================


-- {======================================================================
-- Serialization: loaded relations only, never a query
-- =======================================================================

local TO_TABLE_OPTIONS = { only = true, except = true, nulls = true, include = true }

local function loaded_value(inst, M, name)
  local rel = M.relations[name]
  if rel == nil then
    misuse("to_table: %s has no relation %s (%s)", M.table, show_name(name), relation_list(M))
  end
  local t = inst[STATE]
  local v = t and t[rel.slot]
  if v == nil then not_loaded(rel, t and t[M._peers]) end
  return v
end

-- { name = spec } of an include value of to_table: names, tables of
-- name = nested, or true.
local function spec_entries(M, include, into)
  if include == true then
    for _, name in ipairs(M._relation_names) do into[name] = into[name] or true end
  elseif type(include) == "string" then
    into[include] = into[include] or true
  elseif type(include) == "table" and getmetatable(include) == nil then
    for i = 1, #include do spec_entries(M, include[i], into) end
    for k, v in pairs(include) do
      if type(k) == "string" then
        into[k] = v
      elseif math.type(k) ~= "integer" or k < 1 or k > #include then
        misuse("to_table include: key %s is neither a relation name nor a position",
          errors.show(k))
      end
    end
  else
    misuse("to_table include: expected true, a relation name or a table, got %s",
      errors.show(include))
  end
  return into
end

local serialize

-- The table of related instance 'c' after 'spec': true, a relation name,
-- or a table of to_table options (only, except, nulls, include) and nested
-- relations.  'seen' holds the instances and include tables being
-- serialized around it, 'all' says include = true.
local function child_table(c, spec, nulls, seen, all)
  local opts, include = { nulls = nulls }, nil
  if spec == true then
    include = all or nil
  elseif type(spec) == "string" then
    include = spec
  elseif type(spec) == "table" and getmetatable(spec) == nil then
    if seen[spec] then
      misuse("to_table include: an include table contains itself")
    end
    include = {}
    for k, v in pairs(spec) do
      if TO_TABLE_OPTIONS[k] then
        if k ~= "include" then opts[k] = v end
      else
        include[k] = v
      end
    end
    include[#include + 1] = spec.include
    if next(include) == nil then include = nil end
  else
    misuse("to_table include: expected true, a relation name or a table, got %s",
      errors.show(spec))
  end
  local out = c:to_table(opts)
  if include ~= nil then
    local mark = type(spec) == "table"
    if mark then seen[spec] = true end
    serialize(c, out, include, opts.nulls, seen)
    if mark then seen[spec] = nil end
  end
  return out
end

-- Adds the loaded relations 'include' names to 'out', the table of
-- instance 'inst'.  include = true adds every loaded relation, recursively,
-- except those leading back to an instance already being serialized (the
-- inverse of the relation that led here).
function serialize(inst, out, include, nulls, seen)
  local M = model_of(inst)
  seen = seen or {}
  local mark = type(include) == "table"
  seen[inst] = true
  if mark then seen[include] = true end
  local all = include == true
  local entries = spec_entries(M, include, {})
  for _, name in ipairs(M._relation_names) do
    local spec = entries[name]
    if spec ~= nil then
      local v
      if all then
        local t = inst[STATE]
        v = t and t[M.relations[name].slot]
      else
        v = loaded_value(inst, M, name)
      end
      if v == NONE then
        if nulls then out[name] = null end
      elseif v ~= nil and M.relations[name].one then
        if not (all and seen[v]) then out[name] = child_table(v, spec, nulls, seen, all) end
      elseif v ~= nil then
        local list = {}
        for _, c in ipairs(v) do
          if not (all and seen[c]) then list[#list + 1] = child_table(c, spec, nulls, seen, all) end
        end
        out[name] = list
      end
      entries[name] = nil
    end
  end
  local extra = next(entries)
  if extra ~= nil then
    misuse("to_table: %s has no relation %s (%s)", M.table, show_name(extra), relation_list(M))
  end
  seen[inst] = nil
  if mark then seen[include] = nil end
end

relation.serialize = serialize
relation.read = read

-- }======================================================================

return relation
