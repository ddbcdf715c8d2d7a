-- loam.include: include trees, and the plans of the statements that load
-- them.
--
-- q:include(...), loam.preload(list, ...) and lazy loading all describe
-- what to load as a tree of relations; this module builds and checks those
-- trees and turns each level into the AST of one statement.  Running the
-- statements and making their rows into instances is loam.loader's part.
--
-- Include items: "name", { name = nested }, { name = { options } }; a table
-- value holds nested includes (positional or name = nested, or under
-- 'include') and options: strategy = "batched" | "joined", select = columns,
-- where = condition, order_by = item or array, limit = n (per parent).  A
-- later include of the same relation refines the earlier one, option by
-- option.  A relation may come back further down a path (a manager's
-- manager), one level per level written.  Mistakes (unknown relations, an
-- include table that contains itself, a joined load that would multiply
-- rows, a per-parent limit the strategy cannot keep) are misuse errors
-- raised when the include is given, not when it runs.
--
-- Strategies.  A batched relation loads in a statement of its own, one per
-- relation per level whatever the number of parents: its spec for
-- db:load_batch.  A joined relation is LEFT JOINed into the statement of
-- the level above it under an internal alias, its columns renamed so the
-- loader can split them out again; at most one joined collection per
-- statement, since each multiplies the rows.
--
-- The module: include.tree(M, tree, ...) (a new include tree),
-- include.root_ast(ast, state) (a query's SELECT with its joined relations),
-- include.plan_of(owner, M) and include.spec_of(node) (for the loader),
-- include.inverse_of(rel), and, for the messages of loam.relation,
-- include.show_name(v) and include.relation_list(M).
--
-- SQL text comes from the core only: ASTs go to db:run and db:prepare
-- (through the query layer) and db:load_batch.
--
-- The query layer requires this module, so the options of a node (where,
-- order_by, select) are compiled by the function each model carries from
-- it, M._include_options (loam.query's include_options).

local errors = require "loam.errors"
local expr = require "loam.expr"

local raise = errors.raise
local misuse = errors.misuse

local include = {}

-- {======================================================================
-- Relations in messages, and their inverses
-- =======================================================================

-- A name as given, quoted, or the short form of what was given instead.
local function show_name(v)
  return type(v) == "string" and "'" .. v .. "'" or errors.show(v)
end

-- The relations of M, for a message about one it does not have.
local function relation_list(M)
  if #M._relation_names == 0 then return "it declares none" end
  return "relations: " .. table.concat(M._relation_names, ", ")
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

-- Refuses an include table that contains itself, the one way to write an
-- include without end; 'open' holds the tables being read around it.  A
-- relation may appear again further down a path (a manager's manager):
-- each level written is one more statement, and what is written is finite.
local function enter(open, t, name)
  if open[t] then
    misuse("include%s: the include table contains itself; write each level to load "
      .. "(an include is finite)", name and " " .. name or "")
  end
  open[t] = true
end

local add_items

-- The node for relation 'name' of M, with 'value' as given after it.
local function make_node(M, name, value, open)
  local rel = M.relations[name]
  if rel == nil then
    misuse("include: %s has no relation %s (%s)", M.table, show_name(name), relation_list(M))
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
    enter(open, value, name)
    local opts = {}
    for k, v in pairs(value) do
      if INCLUDE_OPTIONS[k] then
        opts[k] = v
      elseif math.type(k) ~= "integer" and type(k) ~= "string" then
        misuse("include %s: key %s is neither a relation name nor an option", name, errors.show(k))
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
          errors.show(opts.strategy))
      end
      node.strategy = opts.strategy
    end
    if opts.limit ~= nil then
      if math.type(opts.limit) ~= "integer" or opts.limit < 1 then
        misuse("include %s: limit (per %s) must be an integer >= 1, got %s", name,
          M.table, errors.show(opts.limit))
      end
      if rel.one then
        misuse("include %s: limit applies to collections, and %s.%s is a %s", name, M.table,
          name, rel.kind)
      end
      node.limit = opts.limit
    end
    T._include_options(node, T, opts)
  elseif value ~= true then
    misuse("include %s: expected true, a relation name or a table, got %s", name,
      errors.show(value))
  end
  for i = 1, sub.n do
    add_items(T, node.children, sub[i], open)
  end
  if type(value) == "table" then open[value] = nil end
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
function add_items(M, children, item, open)
  if type(item) == "string" then
    add_node(children, make_node(M, item, true, open))
  elseif type(item) == "table" and getmetatable(item) == nil then
    enter(open, item)
    local n = #item
    for i = 1, n do
      if item[i] == nil then misuse("include: item #%d is nil", i) end
      add_items(M, children, item[i], open)
    end
    local names = {}
    for k in pairs(item) do
      if type(k) == "string" then
        names[#names + 1] = k
      elseif math.type(k) ~= "integer" or k < 1 or k > n then
        misuse("include: key %s is neither a relation name nor a position", errors.show(k))
      end
    end
    table.sort(names)  -- one include, one order of statements
    for _, k in ipairs(names) do
      add_node(children, make_node(M, k, item[k], open))
    end
    open[item] = nil
  else
    misuse("include: expected a relation name or a table, got %s", errors.show(item))
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
function include.tree(M, tree, ...)
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

-- The SQL names of the columns (fields) 'cols' of model M; names of a
-- join table without a model stay as given.
local function sql_cols(M, cols)
  if M == nil then return cols end
  local out = {}
  for i, c in ipairs(cols) do out[i] = M._column[c] end
  return out
end

-- The projection of field 'name' of M from the table (or alias) 'tname'.
local function field_column(M, tname, name)
  local c = M._column[name]
  local e = { k = "col", table = tname, name = c }
  if c == name then return e end
  return { k = "alias", expr = e, as = name }
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
            expr = { k = "col", table = alias, name = T._column[name] } }
        end
        for _, c in ipairs(rel.target_keys) do j.match[#j.match + 1] = c end
        local on = eq_all(alias, sql_cols(T, rel.target_keys), ref, sql_cols(PM, rel.owner_keys))
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
function include.root_ast(ast, s)
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

-- Whether the keys 'fields' of model M lead an index of its table, as the
-- model declares it: its primary key, a unique column or unique
-- constraint, or an index without a predicate (a partial index serves
-- only the queries that imply its predicate).  For one key column the
-- core then renders the key list as '= ANY($1)' on PostgreSQL, which
-- probes that index (loam_qb_in_indexed); composite keys keep the
-- unnest form either way, so only one column is asked about.
local function key_indexed(M, fields)
  if #fields ~= 1 then return false end
  local field = fields[1]
  local name = M._column[field]
  if M.primary_key[1] == field or M.column_map[field].unique then return true end
  for _, u in ipairs(M.uniques) do
    if u.columns[1] == name then return true end
  end
  for _, ix in ipairs(M.indexes) do
    if ix.columns[1] == name and ix.where == nil then return true end
  end
  return false
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
    columns[i] = field_column(T, tname, c)
  end
  for _, c in ipairs(plan.columns) do columns[#columns + 1] = c end
  -- The key columns' types let PostgreSQL compare text keys with dates,
  -- timestamps and numerics (see loader.lua's exact_keys).
  local joins, key, key_types, indexed = {}, {}, {}, nil
  if rel.through ~= nil then
    local JM = rel.through_model
    joins[1] = { kind = "inner", table = { name = rel.through },
                 on = eq_all(rel.through, sql_cols(JM, rel.through_target), tname,
                             sql_cols(T, rel.target_keys)) }
    for i, c in ipairs(sql_cols(JM, rel.through_owner)) do
      key[i] = { k = "col", table = rel.through, name = c }
      key_types[i] = JM.column_map[rel.through_owner[i]].type
    end
    indexed = key_indexed(JM, rel.through_owner)
  else
    for i, c in ipairs(sql_cols(T, rel.target_keys)) do
      key[i] = { k = "col", table = tname, name = c }
      key_types[i] = T.column_map[rel.target_keys[i]].type
    end
    indexed = key_indexed(T, rel.target_keys)
  end
  for _, jn in ipairs(plan.joins) do joins[#joins + 1] = jn end
  local order = qualify_list(node.order, tname)
  if node.limit ~= nil and #order == 0 then
    -- Which rows a per-parent limit keeps must not depend on the plan.
    for _, c in ipairs(sql_cols(T, T.primary_key)) do
      order[#order + 1] = { expr = { k = "col", table = tname, name = c } }
    end
  end
  for _, o in ipairs(plan.order) do order[#order + 1] = o end
  spec = {
    query = { k = "select", columns = columns, from = { name = tname }, joins = joins,
              where = qualify(node.where, tname), order = order },
    key = key,
    key_types = key_types,
    key_indexed = indexed,
    one = rel.one and plan.collection == nil,
    limit_per_key = node.limit,
  }
  node._spec = spec
  return spec
end

-- }======================================================================

include.show_name = show_name
include.relation_list = relation_list
include.inverse_of = inverse_of
include.plan_of = plan_of
include.spec_of = spec_of

return include
