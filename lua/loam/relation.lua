-- loam.relation: relations between models, and loading them without N+1.
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
--   * lazily, when enabled (Model:lazy(true), q:lazy(), db:lazy(true)): the
--     first read loads the relation for every instance of the result set the
--     instance came from, in one query.
-- Include items: "name", { name = nested }, { name = { options } }; a table
-- value holds nested includes (positional or name = nested, or under
-- 'include') and options: strategy = "batched" | "joined", select = columns,
-- where = condition, order_by = item or array, limit = n (per parent).
--
-- Loaded values live in a weak side table, never in the instance: columns
-- stay plain fields, to_table and save never see relations, and nothing a
-- table of columns holds can clash with them.  Reads go through the
-- instance's __index (installed with the first relation of a model).
-- Serialization never loads: inst:to_table{ include = ... } adds the loaded
-- relations it names (include = true: every loaded one), and raises
-- not_loaded for one that is not.
--
-- The module: relation.declare(M, kind, name, target, opts),
-- relation.model_lazy(M, flag), relation.install(ConnMethods) (db:lazy),
-- relation.include(M, tree, ...) (a new include tree), relation.root_ast(ast,
-- state), relation.load(state, rows), relation.adopt(rows, state),
-- relation.preload(list, ...), relation.forget(inst [, changed]),
-- relation.serialize(inst, out, include, nulls).
--
-- SQL text comes from the core only: ASTs go to db:render (through the
-- query layer) and db:load_batch.

local core = require "loam.core"
local types = require "loam.types"
local expr = require "loam.expr"
local track = require "loam.track"

local null = core.null
local raise = types.raise
local misuse = expr.misuse

local relation = {}

-- The query layer requires this module, so it is looked up when first
-- needed rather than when this file loads (loam.model likewise, below).
local function Q()
  return require "loam.query"
end


-- {======================================================================
-- State kept beside instances
-- =======================================================================

-- instance -> { relation name -> value }.  A to-one relation loaded with no
-- row holds NONE, so "loaded, nothing there" differs from "not loaded".
local loaded = setmetatable({}, { __mode = "k" })
local NONE = setmetatable({}, { __name = "loam.none" })

-- instance -> the result set it came from: { list = weak array of the
-- instances, n = count, root = table name of the query's model, path =
-- relation names from there, lazy = the query's lazy flag or nil }.  The
-- list is weak so that one instance kept alive does not keep its peers.
local peers = setmetatable({}, { __mode = "k" })
local WEAK = { __mode = "v" }

-- connection -> lazy flag (db:lazy).
local lazy_conns = setmetatable({}, { __mode = "k" })

-- The model layer requires this module too; 'model.of' is found late.
local function model_of(v)
  return require("loam.model").of(v)
end

local function set_value(inst, name, v)
  local t = loaded[inst]
  if t == nil then
    t = {}
    loaded[inst] = t
  end
  t[name] = v
end

local function is_loaded(inst, name)
  local t = loaded[inst]
  return t ~= nil and t[name] ~= nil
end

-- }======================================================================


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

local function show_name(v)
  return type(v) == "string" and "'" .. v .. "'" or types.show(v)
end

-- The columns a key option names, checked against 'map' (a column map),
-- or nil when the option is absent.
local function key_columns(fail, value, map, what, owner)
  if value == nil then return nil end
  local list = value
  if type(list) == "string" then list = { list } end
  if type(list) ~= "table" or getmetatable(list) ~= nil or #list == 0 then
    fail("'%s' must be a column name or an array of them, got %s", what, types.show(value))
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

local read  -- reads a relation of an instance, defined with the loading

-- Instances of a model with relations read them through '__index'; the
-- methods come first, as before.
local function install_reader(M)
  local meta = M._meta
  if type(meta.__index) == "function" then return end
  local methods, rels = M.methods, M.relations
  meta.__index = function(inst, key)
    local m = methods[key]
    if m ~= nil then return m end
    local rel = rels[key]
    if rel ~= nil then return read(inst, rel) end
    return nil
  end
  -- Assigning to a relation name would hide the relation behind a plain
  -- field that save and to_table ignore.
  meta.__newindex = function(inst, key, v)
    local rel = rels[key]
    if rel ~= nil then
      local fix = rel.kind == "belongs_to" and "set " .. table.concat(rel.owner_keys, ", ")
        .. " instead" or "relations are loaded (include, loam.preload), not assigned"
      raise("misuse", string.format("%s.%s is a relation, not a column: %s", M.table, key, fix),
        { model = M.table, relation = key })
    end
    rawset(inst, key, v)
  end
end

function relation.declare(M, kind, name, target, opts)
  local where = types.where()
  local label = M.table .. "." .. tostring(name)
  local function fail(fmt, ...)
    raise("misuse", label .. ": " .. string.format(fmt, ...),
      { model = M.table, relation = type(name) == "string" and name or nil }, where)
  end
  if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
    label = M.table .. "." .. kind
    fail("the relation name must be a Lua identifier, got %s", types.show(name))
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
    fail("the target must be a model, got %s", types.show(target))
  end
  if target.db ~= M.db then
    fail("%s and %s are bound to different connections", M.table, target.table)
  end
  if opts == nil then
    opts = {}
  elseif type(opts) ~= "table" or getmetatable(opts) ~= nil then
    fail("options must be a table, got %s", types.show(opts))
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
    fail("'inverse' must be a relation name, got %s", types.show(opts.inverse))
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
      fail("'through' must be a table name or a model, got %s", types.show(opts.through))
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
  end

  M.relations[name] = rel
  M._relation_names[#M._relation_names + 1] = name
  install_reader(M)
  return M
end

-- Model:lazy(flag): the model's default for lazy loading.
function relation.model_lazy(M, flag)
  if type(flag) ~= "boolean" then
    misuse("%s: lazy expects true or false, got %s (q:lazy() is the query's switch)", M.table,
      types.show(flag))
  end
  M._lazy = flag
  return M
end

-- db:lazy(flag): the connection's default, below the model's and the query's.
function relation.install(Conn)
  function Conn:lazy(flag)
    if type(flag) ~= "boolean" then
      misuse("db:lazy expects true or false, got %s", types.show(flag))
    end
    lazy_conns[self] = flag
    return self
  end
end

-- The relation of T that mirrors 'rel' (its 'inverse'), checked on first
-- use: it must lead back to rel's model over the same keys.
local function inverse_of(rel)
  if rel.inverse == nil then return nil end
  if rel._inverse ~= nil then return rel._inverse end
  local T, M = rel.target, rel.model
  local inv = T.relations[rel.inverse]
  local function fail(fmt, ...)
    raise("misuse", string.format("%s.%s: inverse %s: ", M.table, rel.name, show_name(rel.inverse))
      .. string.format(fmt, ...), { model = M.table, relation = rel.name }, rel.where)
  end
  if inv == nil then
    fail("%s has no such relation", T.table)
  end
  local same = inv.target == M and rel.through == nil and inv.through == nil
    and #inv.owner_keys == #rel.target_keys
  for i = 1, same and #inv.owner_keys or 0 do
    same = same and inv.owner_keys[i] == rel.target_keys[i]
      and inv.target_keys[i] == rel.owner_keys[i]
  end
  if not same then
    fail("%s.%s does not lead back to %s over the same keys", T.table, inv.name, M.table)
  end
  rel._inverse = inv
  return inv
end

-- }======================================================================


-- {======================================================================
-- Include trees
-- =======================================================================

-- A tree is { model = M, children = { node, ... } }; a node is
-- { rel, name, strategy, columns (select, or nil), where (AST or nil),
--   order (AST items), limit, children, given (the options given, for
--   merging) }.  Trees are immutable once built: queries share them, and
-- plans are cached on them.

local INCLUDE_OPTIONS = { include = true, strategy = true, select = true, where = true,
                          order_by = true, limit = true }
local STRATEGIES = { batched = true, joined = true }

local function relation_list(M)
  if #M._relation_names == 0 then return "it declares none" end
  return "relations: " .. table.concat(M._relation_names, ", ")
end

local function path_text(path, rel)
  local parts = {}
  for i, r in ipairs(path) do parts[i] = r.model.table .. "." .. r.name end
  parts[#parts + 1] = rel.model.table .. "." .. rel.name
  return table.concat(parts, " -> ")
end

-- The conditions, ordering and projection a node loads with, compiled by
-- a query on the target, so they are checked and coerced as any query's.
local function compile_options(node, T, opts)
  local q = Q().new(T.db, T)
  if opts.where ~= nil then
    node.where = Q().ast(q:where(opts.where)).where
  end
  if opts.order_by ~= nil then
    local list = opts.order_by
    if type(list) ~= "table" or getmetatable(list) ~= nil or list.desc ~= nil
       or list.nulls ~= nil then
      list = { list }
    end
    node.order = Q().ast(q:order_by(table.unpack(list, 1, #list))).order
  end
  if opts.select ~= nil then
    local list = opts.select
    if type(list) == "string" then list = { list } end
    if type(list) ~= "table" or getmetatable(list) ~= nil or #list == 0 then
      misuse("include %s: select must be a column name or an array of them, got %s",
        node.name, types.show(opts.select))
    end
    for i, c in ipairs(list) do
      if type(c) ~= "string" or c:find(".", 1, true) then
        misuse("include %s: select takes column names of %s, got %s in place #%d", node.name,
          T.table, types.show(c), i)
      end
    end
    q:select(table.unpack(list))  -- refuses unknown columns as any query does
    node.columns = list
  end
end

local add_items

-- The node for relation 'name' of M, with 'value' as given after it.
local function make_node(M, name, value, path)
  local rel = M.relations[name]
  if rel == nil then
    misuse("include: %s has no relation %s (%s)", M.table, show_name(name), relation_list(M))
  end
  for _, r in ipairs(path) do
    if r == rel then
      misuse("include: %s.%s is re-entered on the path %s; an include path may hold a "
        .. "relation once (load further levels with loam.preload on the loaded instances)",
        M.table, name, path_text(path, rel))
    end
  end
  inverse_of(rel)
  local T = rel.target
  local node = { rel = rel, name = name, strategy = "batched", order = {}, children = {},
                 given = {} }
  local sub = { n = 0 }
  local function nested(v)
    sub.n = sub.n + 1
    sub[sub.n] = v
  end
  if type(value) == "string" then
    nested(value)
  elseif type(value) == "table" and getmetatable(value) == nil then
    local opts = {}
    for k, v in pairs(value) do
      if INCLUDE_OPTIONS[k] then
        opts[k] = v
      elseif math.type(k) ~= "integer" and type(k) ~= "string" then
        misuse("include %s: key %s is neither a relation name nor an option", name, types.show(k))
      end
    end
    -- Relation names and positional items are nested includes; the options
    -- cannot clash with them (relation names exclude option names).
    local rest = {}
    for k, v in pairs(value) do
      if not INCLUDE_OPTIONS[k] then rest[k] = v end
    end
    if next(rest) ~= nil then nested(rest) end
    if opts.include ~= nil then nested(opts.include) end
    for k in pairs(opts) do node.given[k] = true end
    if opts.strategy ~= nil then
      if not STRATEGIES[opts.strategy] then
        misuse("include %s: strategy must be \"batched\" or \"joined\", got %s", name,
          types.show(opts.strategy))
      end
      node.strategy = opts.strategy
    end
    if opts.limit ~= nil then
      if math.type(opts.limit) ~= "integer" or opts.limit < 1 then
        misuse("include %s: limit (per %s) must be an integer >= 1, got %s", name,
          M.table, types.show(opts.limit))
      end
      if rel.one then
        misuse("include %s: limit applies to collections, and %s.%s is a %s", name, M.table,
          name, rel.kind)
      end
      node.limit = opts.limit
    end
    compile_options(node, T, opts)
  elseif value ~= true then
    misuse("include %s: expected true, a relation name or a table, got %s", name,
      types.show(value))
  end
  local child_path = table.move(path, 1, #path, 1, {})
  child_path[#child_path + 1] = rel
  for i = 1, sub.n do
    add_items(T, node.children, sub[i], child_path)
  end
  return node
end

-- The node fields each include option sets.
local OPTION_FIELD = { strategy = "strategy", select = "columns", where = "where",
                       order_by = "order", limit = "limit" }

-- A copy of 'old' with the options and children of 'new' added: a later
-- include of the same relation refines it, option by option.
local function merge(old, new)
  local m = {}
  for k, v in pairs(old) do m[k] = v end
  m._plan, m._spec = nil, nil
  m.given = {}
  for k in pairs(old.given) do m.given[k] = true end
  for k in pairs(new.given) do
    local field = OPTION_FIELD[k]
    if field then m[field] = new[field] end
    m.given[k] = true
  end
  m.children = table.move(old.children, 1, #old.children, 1, {})
  for _, c in ipairs(new.children) do
    local found = false
    for i, o in ipairs(m.children) do
      if o.name == c.name then
        m.children[i], found = merge(o, c), true
        break
      end
    end
    if not found then m.children[#m.children + 1] = c end
  end
  return m
end

local function add_node(children, node)
  for i, o in ipairs(children) do
    if o.name == node.name then
      children[i] = merge(o, node)
      return
    end
  end
  children[#children + 1] = node
end

-- Adds the nodes 'item' names to 'children' (relations of M).
function add_items(M, children, item, path)
  if type(item) == "string" then
    add_node(children, make_node(M, item, true, path))
  elseif type(item) == "table" and getmetatable(item) == nil then
    local n = #item
    for i = 1, n do
      if item[i] == nil then misuse("include: item #%d is nil", i) end
      add_items(M, children, item[i], path)
    end
    local names = {}
    for k in pairs(item) do
      if type(k) == "string" then
        names[#names + 1] = k
      elseif math.type(k) ~= "integer" or k < 1 or k > n then
        misuse("include: key %s is neither a relation name nor a position", types.show(k))
      end
    end
    table.sort(names)  -- one include, one order of statements
    for _, k in ipairs(names) do
      add_node(children, make_node(M, k, item[k], path))
    end
  else
    misuse("include: expected a relation name or a table, got %s", types.show(item))
  end
end

local plan_of

-- Checks every node of 'tree' once its includes are merged (a later
-- include may add a strategy to an earlier limit), and every level's plan,
-- which raises on a refused join.
local function check_tree(M, node)
  local rel = node.rel
  if node.strategy == "joined" then
    if rel.through ~= nil then
      misuse("include %s: the joined strategy loads direct relations; %s.%s goes through %s "
        .. "(use the batched strategy)", node.name, rel.model.table, node.name, rel.through)
    end
    if node.limit ~= nil then
      misuse("include %s: a per-parent limit needs the batched strategy", node.name)
    end
  end
  plan_of(node, M)
  for _, c in ipairs(node.children) do
    check_tree(c.rel.target, c)
  end
end

-- A new tree: 'tree' (or none) with the include items '...' added.
function relation.include(M, tree, ...)
  local n = select("#", ...)
  if n == 0 then misuse("include: no relations given") end
  local children = tree and table.move(tree.children, 1, #tree.children, 1, {}) or {}
  for i = 1, n do
    local item = (select(i, ...))
    if item == nil then misuse("include: argument #%d is nil", i) end
    add_items(M, children, item, {})
  end
  local new = { model = M, children = children }
  check_tree(M, new)
  return new
end

-- }======================================================================


-- {======================================================================
-- Plans: what one statement loads
-- =======================================================================

-- A copy of expression AST 'e' whose unqualified columns name 'tname'.  A
-- subquery keeps its own scope; raw SQL is left alone, or refused where
-- the table is an alias the user cannot know ('what' says which).
local function qualify(e, tname, what)
  if type(e) ~= "table" then return e end
  local k = e.k
  if k == "col" or k == "star" then
    if e.table ~= nil then return e end
    return { k = k, table = tname, name = e.name }
  elseif k == "raw" then
    if what then
      misuse("include %s: a joined relation takes conditions and orderings by column, not "
        .. "raw SQL (its table has an internal alias; use the batched strategy)", what)
    end
    return e
  elseif k == "val" or k == "excluded" then
    return e
  end
  local c = {}
  for key, v in pairs(e) do
    if key == "query" or key == "list" or type(v) ~= "table" then
      c[key] = v
    else
      c[key] = qualify(v, tname, what)
    end
  end
  return c
end

local function qualify_list(list, tname, what)
  local out = {}
  for i, e in ipairs(list or {}) do out[i] = qualify(e, tname, what) end
  return out
end

-- The columns of T a node loads: all, or those selected plus the keys the
-- loading itself needs (primary key, this relation's keys, its children's).
local function node_columns(node, T)
  if node.columns == nil then return T._names end
  local want = {}
  for _, c in ipairs(node.columns) do want[c] = true end
  for _, c in ipairs(T.primary_key) do want[c] = true end
  for _, c in ipairs(node.rel.target_keys) do want[c] = true end
  for _, child in ipairs(node.children) do
    for _, c in ipairs(child.rel.owner_keys) do want[c] = true end
  end
  local out = {}
  for _, c in ipairs(T._names) do
    if want[c] then out[#out + 1] = c end
  end
  return out
end

local function eq_all(l_table, l_cols, r_table, r_cols)
  local cond = { k = "and" }
  for i, c in ipairs(l_cols) do
    cond[i] = { k = "op", op = "=", l = { k = "col", table = l_table, name = c },
                r = { k = "col", table = r_table, name = r_cols[i] } }
  end
  return #cond == 1 and cond[1] or cond
end

local function collection_refused(M, names)
  misuse("include: a joined load of %s in one query is refused: it multiplies rows (each "
    .. "%s row comes back once per combination of their rows: 3 of one and 4 of the other "
    .. "make 12 rows, and each further collection multiplies again); load collections with "
    .. "the batched strategy (the default), one query per relation", table.concat(names, " and "),
    M.table)
end

-- The plan of the statement that loads the rows of 'owner' (a tree, or a
-- batched node) whose model is M, with the joined relations below it:
--   joined = { { node, alias, names, aliases, match, parent (index, 0 for
--   the level's own rows), collection }, ... } in tree order, collection =
--   index of the one joined collection or nil, and the AST parts to add:
--   joins, columns, order.
function plan_of(owner, M)
  local plan = owner._plan
  if plan ~= nil then return plan end
  plan = { model = M, joined = {}, joins = {}, columns = {}, order = {} }
  local collections = {}
  local function walk(children, parent, ref, PM)
    for _, node in ipairs(children) do
      if node.strategy == "joined" then
        local rel, T = node.rel, node.rel.target
        local i = #plan.joined + 1
        local alias = "__loam_j" .. i
        local j = { node = node, alias = alias, names = {}, aliases = {}, parent = parent,
                    collection = not rel.one, model = T, match = {} }
        for k, name in ipairs(node_columns(node, T)) do
          j.names[k], j.aliases[k] = name, alias .. "_" .. k
          plan.columns[#plan.columns + 1] = { k = "alias", as = j.aliases[k],
            expr = { k = "col", table = alias, name = name } }
        end
        for _, c in ipairs(rel.target_keys) do j.match[#j.match + 1] = c end
        local on = eq_all(alias, rel.target_keys, ref, rel.owner_keys)
        if node.where ~= nil then
          on = { k = "and", on, qualify(node.where, alias, node.name) }
        end
        plan.joins[#plan.joins + 1] = { kind = "left", table = { name = T.table, as = alias },
                                        on = on }
        if j.collection then
          collections[#collections + 1] = PM.table .. "." .. node.name
          plan.collection = i
          for _, o in ipairs(qualify_list(node.order, alias, node.name)) do
            plan.order[#plan.order + 1] = o
          end
        end
        plan.joined[i] = j
        walk(node.children, i, alias, T)
      end
    end
  end
  walk(owner.children, 0, M.table, M)
  if #collections > 1 then collection_refused(M, collections) end
  if plan.collection then
    -- Rows repeat once per collection row: the rows above the collection
    -- are told apart by their primary keys.
    local j = plan.joined[plan.collection]
    local need = { M }
    local p = j.parent
    while p ~= 0 do
      need[#need + 1] = plan.joined[p].model
      p = plan.joined[p].parent
    end
    for _, X in ipairs(need) do
      if #X.primary_key == 0 then
        misuse("include: the joined collection %s.%s needs a primary key on %s to tell its "
          .. "rows apart; use the batched strategy", j.node.rel.model.table, j.node.name, X.table)
      end
    end
    if owner.limit ~= nil then
      misuse("include %s: a per-parent limit counts rows, which the joined collection %s "
        .. "multiplies; use the batched strategy for %s", owner.name, j.node.name, j.node.name)
    end
  end
  owner._plan = plan
  return plan
end

-- The statement 'all' runs for query state 's': its SELECT with the joined
-- relations of its includes added, every column the query names qualified
-- with its table (the joined tables may have columns of the same names).
function relation.root_ast(ast, s)
  local tree = s.includes
  if tree == nil then return ast end
  local plan = plan_of(tree, s.model)
  if #plan.joined == 0 then return ast end
  local j = plan.collection and plan.joined[plan.collection]
  if j and (ast.limit ~= nil or ast.offset ~= nil) then
    misuse("include: the joined collection %s.%s cannot load under limit/offset (first, "
      .. "page, paginate): LIMIT would count the joined rows, one per %s row, not the %s; "
      .. "use the batched strategy (the default)", s.model.table, j.node.name,
      j.model.table, s.model.table)
  end
  local t, name = {}, s.table
  for k, v in pairs(ast) do t[k] = v end
  if ast.columns == nil or #ast.columns == 0 then
    t.columns = { { k = "star", table = name } }
  else
    t.columns = qualify_list(ast.columns, name)
  end
  t.where = qualify(ast.where, name)
  t.having = qualify(ast.having, name)
  t.group = qualify_list(ast.group, name)
  t.order = qualify_list(ast.order, name)
  for _, c in ipairs(plan.columns) do t.columns[#t.columns + 1] = c end
  t.joins = table.move(ast.joins or {}, 1, #(ast.joins or {}), 1, {})
  for _, jn in ipairs(plan.joins) do t.joins[#t.joins + 1] = jn end
  for _, o in ipairs(plan.order) do t.order[#t.order + 1] = o end
  return t
end

-- The load_batch spec of a batched node, without its keys; built once.
local function spec_of(node)
  local spec = node._spec
  if spec ~= nil then return spec end
  local rel, T = node.rel, node.rel.target
  local plan = plan_of(node, T)
  local tname = T.table
  local columns = {}
  for i, c in ipairs(node_columns(node, T)) do
    columns[i] = { k = "col", table = tname, name = c }
  end
  for _, c in ipairs(plan.columns) do columns[#columns + 1] = c end
  local joins, key = {}, {}
  if rel.through ~= nil then
    joins[1] = { kind = "inner", table = { name = rel.through },
                 on = eq_all(rel.through, rel.through_target, tname, rel.target_keys) }
    for i, c in ipairs(rel.through_owner) do
      key[i] = { k = "col", table = rel.through, name = c }
    end
  else
    for i, c in ipairs(rel.target_keys) do key[i] = { k = "col", table = tname, name = c } end
  end
  for _, jn in ipairs(plan.joins) do joins[#joins + 1] = jn end
  local order = qualify_list(node.order, tname)
  if node.limit ~= nil and #order == 0 then
    -- Which rows a per-parent limit keeps must not depend on the plan.
    for _, c in ipairs(T.primary_key) do
      order[#order + 1] = { expr = { k = "col", table = tname, name = c } }
    end
  end
  for _, o in ipairs(plan.order) do order[#order + 1] = o end
  spec = {
    query = { k = "select", columns = columns, from = { name = tname }, joins = joins,
              where = qualify(node.where, tname), order = order },
    key = key,
    one = rel.one and plan.collection == nil,
    limit_per_key = node.limit,
  }
  node._spec = spec
  return spec
end

-- }======================================================================


-- {======================================================================
-- Loading
-- =======================================================================

-- A value to tell rows of one model apart by their primary key (or nil
-- when the model has none).
local function identity(row, pk)
  if #pk == 1 then return row[pk[1]] end
  if #pk == 0 then return nil end
  local parts = {}
  for i, c in ipairs(pk) do
    local v = row[c]
    parts[i] = (math.type(v) or type(v)) .. ":" .. tostring(v)
  end
  return table.concat(parts, "\0")
end

-- Per-load state of the relations a plan joins: for each joined relation,
-- the instances made (by identity), the parents it was set on, and the
-- members of each parent's collection.
local function joined_state(plan)
  local st = {}
  for i = 1, #plan.joined do
    st[i] = { made = {}, children = {}, parents = {}, seen_parent = {}, members = {} }
  end
  return st
end

-- Moves the columns of joined relation 'j' out of 'row': the related row,
-- or nil when the LEFT JOIN matched none (its key columns are NULL).
local function extract(row, j)
  local child = {}
  local names, aliases = j.names, j.aliases
  for k = 1, #names do
    local a = aliases[k]
    child[names[k]] = row[a]
    row[a] = nil
  end
  for _, c in ipairs(j.match) do
    if child[c] ~= null then return child end
  end
  return nil
end

-- Splits the rows of one statement (or of one parent's group) with 'plan'
-- and returns the distinct instances of the plan's model: 'rows' itself,
-- loaded in place, when nothing is joined.  'firsts' maps the identity of
-- a repeated row (a joined collection repeats its parent) to the first
-- row, which becomes the instance.
local function split(plan, rows, st, firsts)
  local M, joined = plan.model, plan.joined
  if #joined == 0 then
    for i = 1, #rows do M:_load(rows[i]) end
    return rows
  end
  local out = {}
  local pk = M.primary_key
  local coll = plan.collection
  local got = {}
  for _, row in ipairs(rows) do
    local owner, first = row, true
    if coll then
      local id = identity(row, pk)
      if id == nil then
        misuse("include: the joined collection needs the primary key of %s (%s) among the "
          .. "selected columns", M.table, table.concat(pk, ", "))
      end
      owner = firsts[id]
      if owner == nil then
        firsts[id] = row
        owner = row
      else
        first = false
      end
    end
    for i = 1, #joined do
      local j, s = joined[i], st[i]
      local child = extract(row, j)
      if child ~= nil then
        local id = identity(child, j.model.primary_key)
        local made = id ~= nil and s.made[id]
        if made then
          child = made
        else
          j.model:_load(child)
          if id ~= nil then s.made[id] = child end
          s.children[#s.children + 1] = child
        end
      end
      got[i] = child
      local parent
      if j.parent == 0 then parent = owner else parent = got[j.parent] end
      if parent ~= nil then
        local name = j.node.name
        if not s.seen_parent[parent] then
          s.seen_parent[parent] = true
          s.parents[#s.parents + 1] = parent
          if j.collection then
            set_value(parent, name, {})
            s.members[parent] = {}
          end
        end
        if j.collection then
          if child ~= nil and not s.members[parent][child] then
            s.members[parent][child] = true
            local list = loaded[parent][name]
            list[#list + 1] = child
          end
        else
          set_value(parent, name, child or NONE)
        end
      end
    end
    if first then
      M:_load(row)
      out[#out + 1] = row
    end
  end
  return out
end

-- Remembers that the instances of 'list' came from one result set, for
-- lazy loading and for the strict error's advice.  'info' holds root, path
-- and lazy.
local function remember(list, info)
  local n = #list
  if n == 0 then return end
  local M = model_of(list[1])
  if M == nil or next(M.relations) == nil then return end
  local set = { list = table.move(list, 1, n, 1, setmetatable({}, WEAK)), n = n,
                root = info.root, path = info.path, lazy = info.lazy }
  for i = 1, n do peers[list[i]] = set end
end

-- Sets relation 'rel' back on the children of each parent, when the
-- inverse is to-one: a to-many inverse cannot be set from a subset.
local function set_inverse(rel, parents)
  local inv = inverse_of(rel)
  if inv == nil or not inv.one then return end
  local name, iname = rel.name, inv.name
  for _, p in ipairs(parents) do
    local v = loaded[p][name]
    if rel.one then
      if v ~= NONE then set_value(v, iname, p) end
    else
      for _, c in ipairs(v) do set_value(c, iname, p) end
    end
  end
end

local function child_info(info, name)
  local path = table.move(info.path, 1, #info.path, 1, {})
  path[#path + 1] = name
  return { root = info.root, path = path, lazy = info.lazy }
end

-- After 'node' was loaded for 'parents' (its values set): remembers the
-- children as a set, sets the inverse, tells the tracker, and queues the
-- batched relations below it.  Joined ones were loaded with it.
local function finish(node, parents, children, info, queue)
  local ci = child_info(info, node.name)
  remember(children, ci)
  set_inverse(node.rel, parents)
  track.eager_loaded(parents, node.name)
  for _, c in ipairs(node.children) do
    if c.strategy ~= "joined" then
      queue[#queue + 1] = { node = c, parents = children, info = ci }
    end
  end
end

-- Finishes every joined relation of 'plan' after a split.
local function finish_joined(plan, st, info, queue)
  -- The info of each joined relation follows its place in the plan.
  local infos = { [0] = info }
  for i, j in ipairs(plan.joined) do
    local pinfo = infos[j.parent]
    infos[i] = child_info(pinfo, j.node.name)
    finish(j.node, st[i].parents, st[i].children, pinfo, queue)
  end
end

-- The value of key column 'c' of relation 'rel' on instance 'p', checked as
-- the model checks values: one the user assigned may be of the wrong type.
local function key_value(p, rel, c)
  local v = rawget(p, c)
  if v == nil then
    local M = rel.model
    misuse("%s.%s needs column %s, which the instance does not hold (select it to load %s)",
      M.table, rel.name, c, rel.name)
  end
  if v == null then return v end
  return rel.model:coerce(c, v)
end

-- The key of relation 'rel' on instance 'p': a value, or an array for a
-- composite key.
local function key_of(p, rel)
  local cols = rel.owner_keys
  if #cols == 1 then return key_value(p, rel, cols[1]) end
  local t = {}
  for i, c in ipairs(cols) do t[i] = key_value(p, rel, c) end
  return t
end

local function has_null(k)
  if k == null then return true end
  if type(k) == "table" then
    for _, v in ipairs(k) do
      if v == null then return true end
    end
  end
  return false
end

-- Sets the values of one batched task from its groups (nil: nothing was
-- sent, every key held a NULL).  Returns the distinct children: equal keys
-- share one group, which is made into instances once.
local function assign(task, groups)
  local node, need, plan = task.node, task.need, task.plan
  local name, one = node.rel.name, node.rel.one
  local st, firsts = task.st, {}
  local done, children = {}, {}
  for i, p in ipairs(need) do
    local g = groups and groups[i]
    if one and task.spec_one then
      if g == nil then
        set_value(p, name, NONE)
      else
        local inst = done[g]
        if inst == nil then
          inst = split(plan, { g }, st, firsts)[1]
          done[g] = inst
          children[#children + 1] = inst
        end
        set_value(p, name, inst)
      end
    else
      local list = g and done[g]
      if g == nil then
        list = {}
      elseif list == nil then
        list = split(plan, g, st, {})
        done[g] = list
        table.move(list, 1, #list, #children + 1, children)
      else
        list = table.move(list, 1, #list, 1, {})  -- each parent its own array
      end
      if one then
        set_value(p, name, list[1] or NONE)
      else
        set_value(p, name, list)
      end
    end
  end
  return children
end

-- Adds to 'children' those that parents skipped by the load (they held
-- the relation already) hold.
local function loaded_children(parents, need, name, children)
  local skip, have = {}, {}
  for _, p in ipairs(need) do skip[p] = true end
  for _, c in ipairs(children) do have[c] = true end
  for _, p in ipairs(parents) do
    if not skip[p] then
      local v = loaded[p][name]
      local list = type(v) == "table" and getmetatable(v) == nil and v or { v }
      for _, c in ipairs(list) do
        if c ~= NONE and not have[c] then
          have[c] = true
          children[#children + 1] = c
        end
      end
    end
  end
end

-- Loads the queued batched relations level by level: every relation of one
-- level in one db:load_batch call.  Parents that hold the relation already
-- are skipped, and their children still get the levels below.
local function run(db, queue)
  while #queue > 0 do
    local specs, tasks = {}, queue
    queue = {}
    for _, task in ipairs(tasks) do
      local node, rel = task.node, task.node.rel
      local name = rel.name
      local parents, need, keys, seen, sent = {}, {}, {}, {}, false
      for _, p in ipairs(task.parents) do
        if not seen[p] then
          seen[p] = true
          parents[#parents + 1] = p
          local t = loaded[p]
          if t == nil or t[name] == nil then
            local k = key_of(p, rel)
            need[#need + 1], keys[#keys + 1] = p, k
            sent = sent or not has_null(k)
          end
        end
      end
      task.parents, task.need = parents, need
      task.plan = plan_of(node, rel.target)
      task.st = joined_state(task.plan)
      if sent then
        local spec = spec_of(node)
        task.spec_one = spec.one
        specs[#specs + 1] = { query = spec.query, key = spec.key, keys = keys, one = spec.one,
                              limit_per_key = spec.limit_per_key }
        task.index = #specs
      else
        task.spec_one = true
      end
    end
    local results = #specs > 0 and db:load_batch(specs) or {}
    for _, task in ipairs(tasks) do
      local groups = task.index and results[task.index]
      local children = assign(task, groups)
      if #task.need < #task.parents then
        loaded_children(task.parents, task.need, task.node.name, children)
      end
      finish(task.node, task.parents, children, task.info, queue)
      finish_joined(task.plan, task.st, child_info(task.info, task.node.name), queue)
    end
  end
end

-- The info of the result set of query state 's'.
local function root_info(s)
  return { root = s.model.table, path = {}, lazy = s.lazy }
end

-- Makes the rows of query state 's' (a model query) into instances: splits
-- the joined relations out, remembers the set, loads the batched ones.
function relation.load(s, rows)
  local M, tree = s.model, s.includes
  if tree == nil then
    for i = 1, #rows do M:_load(rows[i]) end
    remember(rows, root_info(s))
    return rows
  end
  local plan = plan_of(tree, M)
  local st = joined_state(plan)
  local out = split(plan, rows, st, {})
  local info = root_info(s)
  remember(out, info)
  local queue = {}
  for _, c in ipairs(tree.children) do
    if c.strategy ~= "joined" then
      queue[#queue + 1] = { node = c, parents = out, info = info }
    end
  end
  finish_joined(plan, st, info, queue)
  run(s.db, queue)
  return out
end

-- Remembers the instances 'rows' of query state 's' as one result set (for
-- rows loaded one by one, which carry the query's lazy flag).
function relation.adopt(rows, s)
  remember(rows, root_info(s))
  return rows
end

-- loam.preload(list, ...): loads relations for instances in hand, as
-- include would.  A joined relation at the top has no query to join into
-- and loads batched.
function relation.preload(list, ...)
  if type(list) ~= "table" or getmetatable(list) ~= nil then
    misuse("preload: expected an array of instances, got %s", types.show(list))
  end
  local n = #list
  local M = n > 0 and model_of(list[1])
  if n > 0 and not M then
    misuse("preload: item #1 is not an instance of a model, got %s", types.show(list[1]))
  end
  local meta = M and M._meta
  for i = 2, n do
    if getmetatable(list[i]) ~= meta then
      misuse("preload: item #%d is not an instance of %s, got %s", i, M.table,
        types.show(list[i]))
    end
  end
  if n == 0 then
    if select("#", ...) == 0 then misuse("preload: no relations given") end
    return list
  end
  local tree = relation.include(M, nil, ...)
  local first = peers[list[1]]
  local info = { root = first and first.root or M.table, path = first and first.path or {},
                 lazy = first and first.lazy }
  local queue = {}
  for _, c in ipairs(tree.children) do
    queue[#queue + 1] = { node = c, parents = list, info = info }
  end
  run(M.db, queue)
  return list
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
  return lazy_conns[M.db] == true
end

local function not_loaded(rel, set)
  local M = rel.model
  local path, root = set and set.path or {}, set and set.root or M.table
  local where = #path == 0 and "to the query that loaded it"
    or "to the query on " .. root .. " that loaded it"
  raise("not_loaded", string.format("%s.%s is not loaded: add %s %s, or call "
    .. "loam.preload(list, %q) (strict loading; lazy loading is opt-in: Model:lazy(true), "
    .. "q:lazy(), db:lazy(true))", M.table, rel.name, include_text(path, rel.name), where,
    rel.name), { model = M.table, relation = rel.name })
end

-- Loads 'rel' for every live instance of the set 'inst' came from.
local function lazy_load(inst, rel, set)
  local M = rel.model
  local list = { inst }
  if set ~= nil then
    local l = set.list
    for i = 1, set.n do
      local p = l[i]
      if p ~= nil and p ~= inst and not is_loaded(p, rel.name) and getmetatable(p) == M._meta then
        list[#list + 1] = p
      end
    end
  end
  local node = rel._lazy_node
  if node == nil then
    inverse_of(rel)
    node = { rel = rel, name = rel.name, strategy = "batched", order = {}, children = {},
             given = {} }
    rel._lazy_node = node
  end
  local info = { root = set and set.root or M.table, path = set and set.path or {},
                 lazy = set and set.lazy }
  run(M.db, { { node = node, parents = list, info = info } })
end

function read(inst, rel)
  local t = loaded[inst]
  local v = t and t[rel.name]
  if v == nil then
    local set = peers[inst]
    if not lazy_enabled(rel.model, set) then
      not_loaded(rel, set)
    end
    expr.guard(lazy_load, inst, rel, set)
    v = loaded[inst][rel.name]
  end
  track.relation_read(inst, rel.name)
  if v == NONE then return nil end
  return v
end

-- Drops the loaded relations of 'inst' (all of them, or those whose keys
-- on the instance are among the 'changed' columns): they no longer
-- describe its row.
function relation.forget(inst, changed)
  local t = loaded[inst]
  if t == nil then return end
  if changed == nil then
    loaded[inst] = nil
    return
  end
  local M = model_of(inst)
  for name in pairs(t) do
    for _, c in ipairs(M.relations[name].owner_keys) do
      if changed[c] then
        t[name] = nil
        break
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
  local t = loaded[inst]
  local v = t and t[name]
  if v == nil then not_loaded(rel, peers[inst]) end
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
          types.show(k))
      end
    end
  else
    misuse("to_table include: expected true, a relation name or a table, got %s",
      types.show(include))
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
      types.show(spec))
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
        local t = loaded[inst]
        v = t and t[name]
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

-- }======================================================================

return relation
