-- loam.query: the chainable, immutable query over a table or a model.
--
--   local q = db:table("orders")                      -- or Order:where{...}
--   local rows = q:where{ status = "paid", total = op.gt(100) }
--                 :order_by("-created_at"):limit(20):all()
--
-- Building (each returns a NEW query; the receiver never changes):
--   where(cond)            cond: { col = value, ... } (AND; loam.null -> IS NULL,
--                          an array -> IN, op helpers, op.in_(query)), query.raw(...)
--                          or op.and_/or_/not_; several calls AND together
--   select(...)            "col", "t.col", "*", "t.*", query.raw(...), { expr, as = "name" }
--                          (on a model, "*" and "<table>.*" are its declared columns)
--   distinct()
--   order_by(...)          "col", "-col" (DESC), { "col", desc = true, nulls = "last" }, raw
--   limit(n), offset(n), page(n, per_page)
--   join(target, on [, alias]), left_join(...)
--                          target: table name or model; on: { ["a.x"] = "b.y" } (string
--                          values name columns), a condition, or query.raw(...)
--   group_by(...), having(cond)
--   for_update{ skip_locked = true }   (PostgreSQL only: SQLite raises misuse)
--   include(...)           model queries: relations to load with the rows
--                          (loam.include: nested, batched or joined, options)
--   lazy([flag])           lazy loading for the instances of this query (default
--                          true; loam.relation)
-- select, order_by, group_by, join, where and include add to what the query
-- has; limit, offset, page, distinct, for_update and lazy set.
--
-- A where table whose pairs all vanished (every value nil) is refused: a
-- nil value cannot be seen once it is in a table, and an empty condition
-- would match every row.  Model sources validate every column name against
-- the model and coerce every value through Model:coerce.
--
-- Running:
--   all() -> array            rows, or instances (Model:_load) for a model source
--                              whose projection is plain columns of the model (its
--                              declared columns, by name, when nothing is selected)
--   first() -> row | nil       the same with LIMIT 1
--   each() -> iterator         streams; 'break' or an error finalizes the statement;
--                              refused with include (the connection runs one
--                              statement at a time, so nothing can load meanwhile)
--   count()                    the number of rows all() would return, one
--                              statement in the database (see below)
--   sum(col), avg(col), min(col), max(col)
--                              the same over those rows; nil when the database
--                              gives NULL; 'col' a column name, a select alias
--                              or query.raw (see below)
--   exists() -> boolean        the query's own projection with LIMIT 1
--   pluck(col) -> array        one column's values (loam.null for NULL)
--   update_all{ col = value }, delete_all() -> rows changed; the query may
--                              hold where conditions only
--   paginate{ order = {...}, limit = n, after = cursor [, tiebreak = cols] }
--                              -> rows, next_cursor (nil on the last page).
--                              'order' defaults to the query's order_by; the
--                              primary key (or 'id', or 'tiebreak') is appended
--                              so the order is total; NULLs sort as the largest
--                              value unless an item says 'nulls'; any mix of
--                              directions works.  The cursor is opaque text.
--   to_sql() -> sql, params    the statement all() runs
--   explain([{ big = n }]) -> the plan: an array of lines, full scans of
--                              big tables flagged (loam.explain)
--
-- The module: query.new(db, source) (db:table(name) of loam.database),
-- query.op, query.raw(sql, params), query.methods (names that start a chain, for model forwarding), query.Query (the methods),
-- query.is_query(v), query.ast(q) (the SELECT AST of q, without includes).
--
-- SQL text comes from the core's renderer only.  A statement runs
-- straight from its AST through db:run, which binds the rendered values in
-- C.  A query is immutable, so one that runs the same statement a second
-- time prepares it once (db:prepare) and keeps it on itself: later runs
-- bind its values in C and walk no AST.  count() and the aggregates are
-- one SELECT each, never rows counted in Lua:
--  * a query whose rows are simply those that match (no limit/offset,
--    distinct, group_by or having) gets the aggregate in place of its
--    projection, without its order and lock:
--      SELECT count(*) AS "n" FROM "orders" WHERE ...
--  * any other query is aggregated over its own rows, as a subquery
--    without its lock, keeping its ORDER BY only when limit/offset choose
--    rows by it:
--      SELECT count(*) AS "n" FROM (<the query>) AS "__loam_q"
--      SELECT sum("__loam_q"."total") AS "v" FROM (<the query>) AS "__loam_q"
--    So counts honour limit/offset and count distinct rows, or groups.
--    The aggregated column must be one the query selects (misuse
--    otherwise); with group_by/having the rows are the groups, so the
--    aggregate runs over the groups' values (the largest per-customer
--    total, say) and the column must be selected by name, not through
--    '*', which holds no grouped value.  A raw expression is evaluated over
--    the subquery's rows: it names their columns unqualified.
-- explain() renders the SELECT of all() with the 'explain' flag: the core
-- writes EXPLAIN (PostgreSQL) or EXPLAIN QUERY PLAN (SQLite) before it.

local core = require "loam.core"
local errors = require "loam.errors"
local explain = require "loam.explain"
local expr = require "loam.expr"
local include = require "loam.include"
local instance = require "loam.instance"
local loader = require "loam.loader"
local paginate = require "loam.paginate"

local null = core.null
local STATE = instance.KEY
local misuse = errors.misuse
local condition = expr.condition
local is_raw = expr.is_raw

local query = {}

local Query = {}
local QueryMT = {
  __name = "loam.Query",
  __index = Query,
  __newindex = function()
    misuse("queries are immutable: every method returns a new query")
  end,
  __tostring = function(q)
    return "loam.Query (" .. q._s.table .. ")"
  end,
}

local is_query  -- whether a value is a query (after the short way of 'where')

local select_ast  -- the SELECT AST of a state, defined with the rendering


-- {======================================================================
-- State: a plain table copied by every building method
-- =======================================================================

-- Fields: db, model (or nil), table, scope (table name or alias -> model or
-- false, for validating "t.col"), where, having, joins, group, order (arrays),
-- columns (nil: all), aliases (set of select aliases), plain (the projection
-- is plain columns of the source), distinct, limit, offset, lock, includes
-- (an include tree of loam.include, or nil), lazy (nil: not said).

local function make(s)
  -- '_cache' holds the statements prepared for this query, by connection
  -- and purpose (see 'cache_of').
  return setmetatable({ _s = s, _cache = {} }, QueryMT)
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- A new query: the receiver's state with 'changes' applied.
local function derive(q, changes)
  local s = copy(q._s)
  for k, v in pairs(changes) do s[k] = v end
  return make(s)
end

-- A copy of array 'a' with the values of 'b' appended.
local function append(a, b)
  local c = table.move(a, 1, #a, 1, {})
  return table.move(b, 1, #b, #c + 1, c)
end

-- The same error, message and fields as the model's own for its columns.
local function unknown_column(m, name)
  local names = {}
  for i, c in ipairs(m.columns) do names[i] = c.name end
  errors.raise("misuse", ("%s: unknown column '%s' (columns: %s)"):format(m.table, name,
              table.concat(names, ", ")), { model = m.table, column = name })
end

-- Resolves "col" or "t.col": its AST and, when a model declares it, the
-- model for validation and coercion.  Unqualified names belong to the source.
local function resolve(s, key)
  if type(key) ~= "string" then
    misuse("column name expected, got %s%s", type(key),
           key == nil and " (" .. expr.NIL_HINT .. ")" or "")
  end
  local qual, name = key:match("^([^.]+)%.(.+)$")
  local m
  if qual ~= nil then
    m = s.scope[qual] or nil
  else
    name = key
    m = s.model
  end
  local decl = m and m.column_map[name]
  if m ~= nil and decl == nil then
    unknown_column(m, name)
  end
  -- 'name' is the field, 'column' the name in SQL (they differ when the
  -- model declares the column with option 'column').
  local column = decl and m._column[name] or name
  local ast = { k = "col", table = qual, name = column }
  return { ast = ast, model = m, decl = decl, name = name, column = column, key = key,
           qual = qual }
end

-- The projection of column 'col' (a 'resolve' result): selected AS its
-- field when its SQL name differs, so rows hold it under the field.
local function as_field(col)
  if col.column == col.name then return col.ast end
  return { k = "alias", expr = col.ast, as = col.name }
end

-- The declared columns of model 'm', as projected for its instances,
-- qualified with the model's table when 'qualified' (the query joins).
local function model_columns(m, qualified)
  if not qualified then return m._select end
  local t = m._qualified
  if t == nil then
    t = {}
    for i, e in ipairs(m._select) do
      if e.k == "alias" then
        t[i] = { k = "alias", as = e.as, expr = { k = "col", table = m.table, name = e.expr.name } }
      else
        t[i] = { k = "col", table = m.table, name = e.name }
      end
    end
    m._qualified = t
  end
  return t
end

-- Whether the model declares column 'col' (a 'resolve' result) never NULL.
local function never_null(col)
  local m, decl = col.model, col.decl
  if m == nil then return false end
  if decl.null == false or decl.type == "id" then return true end
  for _, name in ipairs(m.primary_key or {}) do
    if name == col.name then return true end
  end
  return false
end

local function context(s)
  return {
    column = function(key) return resolve(s, key) end,
    coerce = function(col, v)
      if col.model ~= nil then return col.model:coerce(col.name, v) end
      return v
    end,
    subquery = function(v)
      if is_query(v) then return select_ast(v._s) end
      return nil
    end,
  }
end

local function and_of(list)
  if #list == 0 then return nil end
  if #list == 1 then return list[1] end
  return table.move(list, 1, #list, 1, { k = "and" })
end

local function check_count(name, n, min)
  local i = type(n) == "number" and math.tointeger(n)
  if not i or i < min then
    misuse("%s: an integer >= %d expected, got %s", name, min, tostring(n))
  end
  return i
end

-- Refuses keys of option table 'opts' that 'known' lacks: a misspelt option
-- must not be ignored silently.
local function check_options(name, opts, known)
  if type(opts) ~= "table" then
    misuse("%s: an options table expected, got %s", name, type(opts))
  end
  for k in pairs(opts) do
    if not known[k] then misuse("%s: unknown option '%s'", name, tostring(k)) end
  end
end

-- }======================================================================


-- {======================================================================
-- Building methods
-- =======================================================================

-- A condition comparing one column with one number or string, added to a
-- query: the query that results has the same shape whatever the value, so
-- it remembers the query it came from ('_parent'), a name for its shape
-- ('_shape') and the value ('_arg'), for 'first' (see 'shaped_first').
local function equality_shape(node)
  if node.k ~= "op" or node.op ~= "=" or node.l.k ~= "col" or node.r.k ~= "val" then
    return nil
  end
  local v = node.r.v
  local tv = math.type(v) or type(v)
  if tv ~= "integer" and tv ~= "float" and tv ~= "string" then return nil end
  return "first where " .. (node.l.table or "") .. "." .. node.l.name .. " = " .. tv, v
end

-- A query that 'where' made by the short way (see 'short_where'): its
-- state is built the first time anything but 'first' asks for it, and it
-- is then an ordinary query.
local LazyMT

-- Gives the query 'q' of the short way its state, as the usual way would
-- have made it, and makes it an ordinary query.
local function materialize(q)
  local col = rawget(q, "_col")
  local s = q._parent._s
  local node = { k = "op", op = "=", l = { k = "col", table = col.qual, name = col.column },
                 r = { k = "val", v = rawget(q, "_arg") } }
  local t = copy(s)
  t.where = append(s.where, { node })
  rawset(q, "_s", t)
  rawset(q, "_cache", {})
  rawset(q, "_col", nil)
  setmetatable(q, QueryMT)
end

LazyMT = {
  __name = QueryMT.__name,
  __newindex = QueryMT.__newindex,
  __index = function(q, key)
    local m = key == "first" and Query.first or nil
    if m ~= nil then return m end
    materialize(q)
    return q[key]
  end,
  __tostring = function(q)
    materialize(q)
    return tostring(q)
  end,
}

is_query = function(v)
  local mt = getmetatable(v)
  return mt == QueryMT or mt == LazyMT
end

-- The short way of 'where{ col = v }', one column and one number or
-- string, on a query where the usual way already resolved 'col' and gave
-- the shape of the coerced value's type ('_eq', by column key): the value
-- is coerced as the usual way coerces it, and the query that results has
-- no state until something other than 'first' needs one (LazyMT).  Nil
-- for anything else, which takes the usual way.
local function short_where(self, cond)
  local eq = rawget(self, "_eq")
  if eq == nil or type(cond) ~= "table" or getmetatable(cond) ~= nil then return nil end
  local key, v = next(cond)
  local col = eq[key]
  if col == nil or next(cond, key) ~= nil then return nil end
  local tv = math.type(v) or type(v)
  if tv ~= "integer" and tv ~= "float" and tv ~= "string" then return nil end
  if col.model ~= nil then v = col.model:coerce(col.name, v) end
  local shape = col.shapes[math.type(v) or type(v)]
  if shape == nil then return nil end
  return setmetatable({ _parent = self, _shape = shape, _arg = v, _col = col }, LazyMT)
end

-- Remembers on 'self' what the short way needs of column 'key' for the
-- shape 'shape' of a value of type 'tv' (see 'short_where').
local function remember_shape(self, key, tv, shape)
  local eq = rawget(self, "_eq")
  if eq == nil then
    eq = {}
    rawset(self, "_eq", eq)
  end
  local col = eq[key]
  if col == nil then
    local r = resolve(self._s, key)
    col = { model = r.model, name = r.name, qual = r.qual, column = r.column, shapes = {} }
    eq[key] = col
  end
  col.shapes[tv] = shape
end

function Query:where(cond)
  local q = short_where(self, cond)
  if q ~= nil then return q end
  local s = self._s
  local node = condition(context(s), cond)
  q = derive(self, { where = append(s.where, { node }) })
  local shape, v = equality_shape(node)
  if shape ~= nil then
    rawset(q, "_parent", self)
    rawset(q, "_shape", shape)
    rawset(q, "_arg", v)
    -- A plain table of one pair: the column's key is its key.
    local key = getmetatable(cond) == nil and next(cond) or nil
    if type(key) == "string" and next(cond, key) == nil then
      remember_shape(self, key, math.type(v) or type(v), shape)
    end
  end
  return q
end

function Query:having(cond)
  local s = self._s
  return derive(self, { having = append(s.having, { condition(context(s), cond) }) })
end

-- One projection: its AST, whether it is a plain column of the source, and
-- the alias it declares.
local function projection(s, item)
  if is_raw(item) then return item, false end
  if type(item) == "string" then
    if item == "*" then return { k = "star" }, true end
    if item:sub(-2) == ".*" then
      local qual = item:sub(1, -3)
      return { k = "star", table = qual }, qual == s.table
    end
    local col = resolve(s, item)
    return as_field(col), col.qual == nil or col.qual == s.table
  end
  if type(item) == "table" and getmetatable(item) == nil and item.as ~= nil then
    if type(item.as) ~= "string" then misuse("select: alias must be a string") end
    local e = item[1]
    if not is_raw(e) then e = resolve(s, e).ast end
    return { k = "alias", expr = e, as = item.as }, false, item.as
  end
  misuse("select: a column name, query.raw(...) or { expr, as = \"name\" } expected, got %s",
         type(item))
end

function Query:select(...)
  local s, n = self._s, select("#", ...)
  if n == 0 then misuse("select: no columns given") end
  local cols, aliases, plain = {}, copy(s.aliases), s.plain
  for i = 1, n do
    local ast, is_plain, alias = projection(s, (select(i, ...)))
    cols[i] = ast
    plain = plain and is_plain
    if alias then aliases[alias] = true end
  end
  return derive(self, { columns = append(s.columns or {}, cols), aliases = aliases,
                        plain = plain })
end

function Query:distinct()
  return derive(self, { distinct = true })
end

local NULLS = { first = true, last = true }

-- One ordering item: { expr, desc, nulls, key }, 'key' being the row field
-- that holds its value (nil for raw SQL), 'id' naming it for cursors.
local function ordering(s, item)
  local spec, desc, nulls = item, false, nil
  if type(item) == "table" and getmetatable(item) == nil then
    check_options("order_by", item, { [1] = true, desc = true, nulls = true })
    spec, desc, nulls = item[1], item.desc == true, item.nulls
    if item.desc ~= nil and type(item.desc) ~= "boolean" then
      misuse("order_by: 'desc' must be a boolean")
    end
    if nulls ~= nil and not NULLS[nulls] then
      misuse("order_by: 'nulls' must be \"first\" or \"last\", got %s", tostring(nulls))
    end
  end
  if is_raw(spec) then
    return { expr = spec, desc = desc, nulls = nulls }
  end
  if type(spec) ~= "string" then
    misuse("order_by: a column name, query.raw(...) or { col, desc = true } expected, got %s",
           type(spec))
  end
  if spec:sub(1, 1) == "-" then
    spec, desc = spec:sub(2), true
  end
  if s.aliases[spec] then
    return { expr = { k = "col", name = spec }, desc = desc, nulls = nulls, key = spec,
             id = "=" .. spec }
  end
  local col = resolve(s, spec)
  return { expr = col.ast, desc = desc, nulls = nulls, key = col.name,
           id = (col.qual or s.table) .. "." .. col.name, never_null = never_null(col) }
end

local function orderings(s, list, name)
  local out = {}
  for i = 1, list.n or #list do
    if list[i] == nil then misuse("%s: item #%d is nil", name, i) end
    out[i] = ordering(s, list[i])
  end
  return out
end

function Query:order_by(...)
  local s = self._s
  if select("#", ...) == 0 then misuse("order_by: no columns given") end
  return derive(self, { order = append(s.order, orderings(s, table.pack(...), "order_by")) })
end

function Query:group_by(...)
  local s, n = self._s, select("#", ...)
  if n == 0 then misuse("group_by: no columns given") end
  local group = {}
  for i = 1, n do
    local item = (select(i, ...))
    group[i] = is_raw(item) and item or resolve(s, item).ast
  end
  return derive(self, { group = append(s.group, group) })
end

function Query:limit(n)
  return derive(self, { limit = check_count("limit", n, 0) })
end

function Query:offset(n)
  return derive(self, { offset = check_count("offset", n, 0) })
end

function Query:page(n, per_page)
  n = check_count("page", n, 1)
  per_page = check_count("page: per_page", per_page, 1)
  return derive(self, { limit = per_page, offset = (n - 1) * per_page })
end

-- The ON condition: pairs whose value is a string compare two columns; any
-- other entry is a condition as in 'where'.
local function on_condition(ctx, on)
  if type(on) ~= "table" or getmetatable(on) ~= nil then
    return condition(ctx, on)
  end
  local keys, conds = {}, {}
  for k, v in pairs(on) do
    if type(k) == "string" and type(v) == "string" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  local rest = copy(on)
  for _, k in ipairs(keys) do
    conds[#conds + 1] = { k = "op", op = "=", l = ctx.column(k).ast, r = ctx.column(on[k]).ast }
    rest[k] = nil
  end
  if next(rest) ~= nil or #conds == 0 then
    -- An empty ON table goes through too, for the error 'where' would raise.
    conds[#conds + 1] = condition(ctx, rest)
  end
  return and_of(conds)
end

local function add_join(self, kind, target, on, alias)
  local s = self._s
  local name, m
  if type(target) == "string" then
    name = target
  elseif type(target) == "table" and target.__model then
    name, m = target.table, target
  else
    misuse("%s: a table name or a model expected, got %s",
           kind == "inner" and "join" or "left_join", type(target))
  end
  if alias ~= nil and type(alias) ~= "string" then
    misuse("join: alias must be a string, got %s", type(alias))
  end
  local scope = copy(s.scope)
  scope[alias or name] = m or false
  local t = copy(s)
  t.scope = scope
  local join = { kind = kind, table = { name = name, as = alias },
                 on = on_condition(context(t), on) }
  return derive(self, { scope = scope, joins = append(s.joins, { join }) })
end

function Query:join(target, on, alias)
  return add_join(self, "inner", target, on, alias)
end

function Query:left_join(target, on, alias)
  return add_join(self, "left", target, on, alias)
end

function Query:include(...)
  local s = self._s
  if s.model == nil then
    misuse("include: %s is a table query, whose rows have no relations; start from a model",
           s.table)
  end
  return derive(self, { includes = include.tree(s.model, s.includes, ...) })
end

function Query:lazy(flag)
  if flag == nil then flag = true end
  if type(flag) ~= "boolean" then
    misuse("lazy: true or false expected, got %s", type(flag))
  end
  return derive(self, { lazy = flag })
end

function Query:for_update(opts)
  opts = opts or {}
  check_options("for_update", opts, { skip_locked = true })
  return derive(self, { lock = { mode = "update", skip_locked = opts.skip_locked == true } })
end

-- }======================================================================


-- {======================================================================
-- Rendering
-- =======================================================================

local function order_ast(order)
  local out = {}
  for i, o in ipairs(order) do
    out[i] = { expr = o.expr, desc = o.desc, nulls = o.nulls }
  end
  return out
end

-- The SELECT AST of state 's'.  A model source selects its declared
-- columns, by name (never '*', which would bring columns the model does not
-- know into its instances, where save could not send them), qualified when
-- the query joins; '*' and '<table>.*' of the source mean them too.  A
-- table source with joins projects its own columns ("orders".*): joined
-- tables would otherwise overwrite its fields.
function select_ast(s)
  local columns, m = s.columns, s.model
  local joined = #s.joins > 0
  if columns == nil then
    if m ~= nil then
      columns = model_columns(m, joined)
    elseif joined then
      columns = { { k = "star", table = s.table } }
    end
  elseif m ~= nil then
    local expanded
    for i, e in ipairs(columns) do
      if e.k == "star" and (e.table == nil or e.table == s.table) then
        expanded = expanded or table.move(columns, 1, i - 1, 1, {})
        table.move(model_columns(m, joined or e.table ~= nil), 1, #m._select, #expanded + 1,
          expanded)
      elseif expanded then
        expanded[#expanded + 1] = e
      end
    end
    columns = expanded or columns
  end
  return {
    k = "select",
    distinct = s.distinct,
    columns = columns,
    from = { name = s.table },
    joins = s.joins,
    where = and_of(s.where),
    group = s.group,
    having = and_of(s.having),
    order = order_ast(s.order),
    limit = s.limit,
    offset = s.offset,
    lock = s.lock,
  }
end

-- The statements of query 'q' prepared on the connection this operation
-- runs on: a prepared statement belongs to one connection, so a query kept
-- across db:reconnect() (or, later, run on another connection) prepares
-- afresh there.  '_cache' maps each connection to { purpose -> the
-- prepared statement, or false: ran once, not prepared (see 'run') }.
local function cache_of(q, c)
  local s = q._s
  -- Reads go where the Database sends them (db:reader()); a locking read
  -- stays with the writes (a replica cannot lock rows).  'c', when given,
  -- is the connection this operation already took.
  c = c or (s.lock == nil and s.db:reader() or s.db:connection())
  local cache = q._cache[c]
  if cache == nil then
    cache = {}
    q._cache[c] = cache
  end
  return cache, c
end

-- The shape of the instances that the rows of a stream of query state
-- 's' are made into as they are read, or nil: that of the model of a
-- model query that selects the model's own columns, all of them.
local function shape_of(s)
  return s.model ~= nil and s.plain and s.columns == nil and s.model._shape or nil
end

-- The statement for 'purpose', built by 'build(state)' and prepared (its
-- rendered form kept in C, see db:prepare) the first time only.
local function prepared(q, purpose, build, cache, c)
  local p = cache[purpose]
  if not p then
    p = c:prepare(build(q._s))
    cache[purpose] = p
  end
  return p
end

local function statement(q, purpose, build)
  return prepared(q, purpose, build, cache_of(q))
end

-- The rows of the statement for 'purpose'.  Its first run goes through
-- db:run, which renders and binds without handing the values to Lua and
-- back.  A second run prepares the statement for every later one, which
-- then skips building, converting and rendering the AST and binds the
-- rendered values in C.  A query that runs once would prepare a statement
-- it never reuses.
local function run(q, purpose, build, conn)
  local cache, c = cache_of(q, conn)
  if cache[purpose] == nil then
    cache[purpose] = false  -- ran once
    return c:run(build(q._s))
  end
  return prepared(q, purpose, build, cache, c):run()
end

-- The SELECT that loads instances: with the joined relations of the
-- query's includes (loam.include), which counting must not see.
local function load_ast(s)
  return include.root_ast(select_ast(s), s)
end

local function main_statement(q)
  return statement(q, "all", load_ast)
end

-- A copy of the state 't' that reads one row at most: 'first' and
-- 'exists' need no more (a limit of 0 stays 0).
local function one_row(t)
  t = copy(t)
  t.limit = math.min(t.limit or 1, 1)
  return t
end

-- The rows as instances when the source is a model and the projection
-- holds whole columns of it.
local function loads(s)
  return s.model ~= nil and s.plain
end

-- Rows become instances; loam.loader splits joined relations out, loads
-- the included ones and remembers the set for lazy loading.
local function load_rows(s, rows)
  if loads(s) then
    if s.includes ~= nil or next(s.model.relations) ~= nil then
      return loader.load(s, rows)
    end
    s.model:_load_all(rows)
  elseif s.includes ~= nil then
    misuse("include: the query selects expressions other than columns of %s, so its rows " ..
           "are not instances and cannot hold relations", s.table)
  end
  return rows
end

-- Refuses parts of a query that a whole-table statement would ignore.
local function only_filters(s, what)
  local extra
  if #s.joins > 0 then extra = "joins"
  elseif #s.order > 0 then extra = "order_by"
  elseif s.limit ~= nil or s.offset ~= nil then extra = "limit/offset"
  elseif #s.group > 0 or #s.having > 0 then extra = "group_by/having"
  elseif s.columns ~= nil then extra = "select"
  elseif s.distinct then extra = "distinct"
  elseif s.lock ~= nil then extra = "for_update"
  end
  if extra ~= nil then
    misuse("%s: the query may only have where conditions, not %s " ..
           "(filter by a subquery instead: where{ id = op.in_(q:select(\"id\")) })", what, extra)
  end
end

-- Rendering runs nothing, so it takes no replica's turn: the statement is
-- prepared on the primary's connection.
function Query:to_sql()
  return prepared(self, "all", load_ast, cache_of(self, self._s.db:connection())):sql()
end

-- }======================================================================


-- {======================================================================
-- Running
-- =======================================================================

function Query:all()
  return load_rows(self._s, run(self, "all", load_ast))
end

local function first_ast(t)
  return load_ast(one_row(t))
end

-- A value that marks the slot of a shape's value (see 'shape_statement').
local SLOT = "\0loam: the slot of a shaped query's value"

-- Whether 'v' is a number or a string: a value that a prepared statement's
-- slot takes back and binds as the rendering bound it (model.lua's save
-- binds only these too).
local function plain_value(v)
  local t = math.type(v) or type(v)
  return t == "integer" or t == "float" or t == "string"
end

-- The statement of the shape of query 'q' (see 'equality_shape'), prepared
-- on connection 'c', and the values to run it with, its slot's at 'slot';
-- or nil when binding values one by one could change what it means: unless
-- the shape renders its value as one parameter, found by rendering the
-- statement with a mark in its place (a value is always a placeholder, so
-- the text is the same for every value), and every other parameter is a
-- plain value (given back and bound again unchanged).
local function shape_statement(q, c)
  local s = q._s
  local where = table.move(s.where, 1, #s.where, 1, {})
  local node = where[#where]
  where[#where] = { k = node.k, op = node.op, l = node.l, r = { k = "val", v = SLOT } }
  local marked = copy(s)
  marked.where = where
  local p = c:prepare(first_ast(marked))
  local _, values = p:sql()
  local slot, usable = nil, true
  for i = 1, #values do
    if values[i] == SLOT and slot == nil then
      slot = i
    elseif values[i] == SLOT or not plain_value(values[i]) then
      usable = false
    end
  end
  if slot == nil or not usable then
    p:close()
    return nil
  end
  return p, values, slot
end

-- 'first' of a query made by 'where' with one equality ('equality_shape'):
-- its statement, prepared once per connection on the query it came from
-- for every query of that shape, binds the value into its slot, with no
-- AST built, converted or rendered.  The shape's first run goes the usual
-- way, the second prepares (when 'shape_statement' allows: else the shape
-- always goes the usual way).  Returns false when the usual way is to be
-- taken.
local function shaped_first(q)
  local cache, c = cache_of(q._parent)
  local shape = q._shape
  local st = cache[shape]
  if st == nil then
    cache[shape] = false
    return false, c
  elseif st == false then
    local p, values, slot = shape_statement(q, c)
    st = p and { p = p, values = values, slot = slot, n = #values } or true
    cache[shape] = st
  end
  if st == true then return false, c end
  local values = st.values
  values[st.slot] = q._arg
  local row = st.p:first(table.unpack(values, 1, st.n))
  if row == nil then return nil end
  -- Loading reads the model, the projection, the includes and the lazy
  -- flag of the state, which 'where' leaves as the parent has them.
  return load_rows(rawget(q, "_s") or q._parent._s, { row })[1]
end

function Query:first()
  local c  -- the connection shaped_first took, when it leaves the query to 'run'
  if self._shape ~= nil then
    local r
    r, c = shaped_first(self)
    if r ~= false then return r end
  end
  local rows = run(self, "first", first_ast, c)
  if rows[1] == nil then return nil end
  return load_rows(self._s, rows)[1]
end

function Query:each()
  local s = self._s
  if s.includes ~= nil then
    misuse("each: cannot load includes while streaming (a connection runs one statement " ..
           "at a time); use all(), or paginate{...} for pages that each load their includes")
  end
  -- A stream of the model's columns reads its rows as instances in C
  -- ('prepared:instances'): a Lua function per row costs more than making
  -- the instance does.  Rows read by 'all' are loaded by one generated
  -- loop instead (loam.model), which builds them as cheaply as C does.
  local p, shape = main_statement(self), shape_of(s)
  p:instances(shape)
  local iter, state, ctl, closing = p:each()
  if not loads(s) then
    return iter, state, ctl, closing
  end
  local load = s.model._load_row
  -- Streamed instances are each a set of their own, and the query's lazy
  -- flag, when said, goes with them.
  local remember = s.lazy ~= nil and loader.adopt
  if not remember and shape then
    return iter, state, ctl, closing
  end
  -- The statement stays the closing value, so 'break' still finalizes it.
  return function(st_)
    local row = iter(st_)
    if row == nil then return nil end
    if row[STATE] == nil then load(row) end
    if remember then remember({ row }, s) end
    return row
  end, state, ctl, closing
end

function Query:exists()
  return run(self, "exists", function(t)
    t = one_row(t)
    if t.offset == nil then t.order = {} end  -- order matters only to skip rows
    return select_ast(t)
  end)[1] ~= nil
end

-- The alias of the query's own rows when count() and the aggregates run
-- over them as a subquery.
local ROWS = "__loam_q"

-- Whether the rows a query returns differ from the rows that match: then
-- an aggregate must run over the query itself to see the same rows.
local function shapes_rows(s)
  return s.limit ~= nil or s.offset ~= nil or s.distinct or #s.group > 0 or #s.having > 0
end

-- SELECT 'column' (an aggregate) over the rows of state 't': in place of
-- the projection when the rows are those that match, else over the query
-- as a subquery.  Neither needs the lock, nor the order unless limit or
-- offset choose rows by it.
local function aggregate_ast(t, column)
  t = copy(t)
  t.lock = nil
  if t.limit == nil and t.offset == nil then t.order = {} end
  if shapes_rows(t) then
    return { k = "select", columns = { column }, from = { query = select_ast(t), as = ROWS } }
  end
  t.columns = { column }
  return select_ast(t)
end

-- The name under which the rows of state 's' hold column 'col', for an
-- aggregate over them.  A projection that plainly lacks it is refused;
-- raw SQL in the projection may hold anything, which the database judges.
-- A '*' holds it only without grouping: its columns are not grouped values.
local function row_column(s, fn, col)
  if s.aliases[col] then return col end
  local c = resolve(s, col)
  local qual = c.qual or s.table
  local grouped = #s.group > 0 or #s.having > 0
  local star = false
  for _, item in ipairs(s.columns or { { k = "star", table = s.table } }) do
    if is_raw(item) then return c.name end
    local e = item.k == "alias" and item.as == c.name and item.expr or item
    if e.k == "col" and e.name == c.column and (e.table or s.table) == qual then
      return c.name
    end
    star = star or (item.k == "star" and (item.table == nil or item.table == qual))
  end
  -- The model's '*' projects fields; a table's '*' (or a joined model's)
  -- projects SQL names.
  if star and not grouped then
    return (s.model ~= nil and qual == s.table) and c.name or c.column
  end
  if star then
    misuse("%s: with group_by/having the query's rows are its groups, and '*' holds no " ..
           "grouped value; select '%s' by name (a grouped column or an alias)", fn, col)
  end
  misuse("%s: '%s' is not among the columns the query selects; with limit/offset, distinct " ..
         "or group_by/having, %s runs over the query's own rows, so select it", fn, col, fn)
end

function Query:count()
  return run(self, "count", function(t)
    return aggregate_ast(t, { k = "alias", expr = { k = "agg", fn = "count" }, as = "n" })
  end)[1].n
end

-- Whether the aggregate of 'col' over the rows of state 's' is numeric
-- typed, so that PostgreSQL gives it as numeric text.  sum and avg always
-- are.  min and max take the type of their column: numeric when its model
-- declares it so.  A select alias, raw SQL and a table query declare no
-- type, and their text stays text: a text column may hold "10" too.
local function numeric_result(s, fn, col)
  if fn == "sum" or fn == "avg" then return true end
  if is_raw(col) or s.aliases[col] then return false end
  local decl = resolve(s, col).decl
  return decl ~= nil and decl.type == "numeric"
end

-- sum/avg/min/max of 'col' (a column name or query.raw) over the rows the
-- query returns.  NULL (no rows) is nil.  A numeric-typed result that
-- PostgreSQL sends as numeric text becomes a Lua number, as SQLite gives
-- it: an integer when it has no fraction and fits 64 bits, else a float,
-- which keeps about 15 significant digits, so a sum of numeric(20,2)
-- values may come back rounded.  Exact decimals are read as text with
-- pluck or all(), which leave numeric columns as PostgreSQL sends them.
-- Text that is no Lua number ('NaN') is returned as it is.
local function aggregate(fn)
  return function(self, col)
    local s = self._s
    local function build(t)
      local e = col
      if not is_raw(col) then
        e = shapes_rows(t) and { k = "col", table = ROWS, name = row_column(t, fn, col) }
            or resolve(t, col).ast
      end
      return aggregate_ast(t, { k = "alias", expr = { k = "agg", fn = fn, expr = e }, as = "v" })
    end
    local rows
    if is_raw(col) then
      rows = s.db:run(build(s))
    else
      rows = run(self, fn .. "\0" .. tostring(col), build)
    end
    local v = rows[1].v
    if v == null then return nil end
    if type(v) == "string" and numeric_result(s, fn, col) then
      return tonumber(v) or v
    end
    return v
  end
end

Query.sum = aggregate("sum")
Query.avg = aggregate("avg")
Query.min = aggregate("min")
Query.max = aggregate("max")

function Query:pluck(col)
  local s = self._s
  local key
  local function build(t)
    t = copy(t)
    if is_raw(col) then
      t.columns = { { k = "alias", expr = col, as = "value" } }
    else
      t.columns = { as_field(resolve(t, col)) }
    end
    return select_ast(t)
  end
  local rows
  if is_raw(col) then
    rows, key = s.db:run(build(s)), "value"
  else
    rows = run(self, "pluck\0" .. tostring(col), build)
    key = resolve(s, col).name
  end
  for i = 1, #rows do rows[i] = rows[i][key] end
  return rows
end

function Query:update_all(values)
  local s = self._s
  only_filters(s, "update_all")
  if type(values) ~= "table" or getmetatable(values) ~= nil then
    misuse("update_all: a table of column = value pairs expected, got %s", type(values))
  end
  local keys = {}
  for k in pairs(values) do
    if type(k) ~= "string" then misuse("update_all: key %s is not a column name", tostring(k)) end
    keys[#keys + 1] = k
  end
  if #keys == 0 then
    misuse("update_all: no columns to set (a pair whose value is nil vanishes from a " ..
           "Lua table; %s)", expr.NIL_HINT)
  end
  table.sort(keys)
  local ctx, set = context(s), {}
  for i, k in ipairs(keys) do
    local col = ctx.column(k)
    if col.qual ~= nil and col.qual ~= s.table then
      misuse("update_all: '%s' is not a column of '%s'", k, s.table)
    end
    local v = values[k]
    if not is_raw(v) then v = { k = "val", v = ctx.coerce(col, v) } end
    set[i] = { col = col.column, expr = v }
  end
  return (s.db:run { k = "update", table = s.table, set = set, where = and_of(s.where) })
end

function Query:delete_all()
  local s = self._s
  only_filters(s, "delete_all")
  return (s.db:run { k = "delete", from = s.table, where = and_of(s.where) })
end

function Query:explain(opts)
  local s = self._s
  local big = explain.check(opts, "explain")
  local ast = load_ast(s)
  ast.explain = true
  return explain.plan(s.db, s.db:run(ast), { big = big })
end

-- }======================================================================


-- {======================================================================
-- Keyset pagination (loam.paginate builds pages with these helpers)
-- =======================================================================

Query.paginate = paginate.method {
  and_of = and_of, ordering = ordering, orderings = orderings,
  check_options = check_options, check_count = check_count,
  copy = copy, append = append, load_ast = load_ast, load_rows = load_rows,
}

-- }======================================================================


-- {======================================================================
-- The module
-- =======================================================================

-- The conditions, ordering and projection an include node loads with,
-- compiled by a query on the target 'T', so they are checked and coerced
-- as any query's.  loam.include, which this module requires, reaches it
-- through the model: loam.model gives it to every model it declares, as
-- M._include_options.
function query.include_options(node, T, opts)
  local q = query.new(T.db, T)
  if opts.where ~= nil then
    node.where = query.ast(q:where(opts.where)).where
  end
  if opts.order_by ~= nil then
    local list = opts.order_by
    if type(list) ~= "table" or getmetatable(list) ~= nil or list.desc ~= nil
       or list.nulls ~= nil then
      list = { list }
    end
    node.order = query.ast(q:order_by(table.unpack(list, 1, #list))).order
  end
  if opts.select ~= nil then
    local list = opts.select
    if type(list) == "string" then list = { list } end
    if type(list) ~= "table" or getmetatable(list) ~= nil or #list == 0 then
      misuse("include %s: select must be a column name or an array of them, got %s",
        node.name, errors.show(opts.select))
    end
    for i, c in ipairs(list) do
      if type(c) ~= "string" or c:find(".", 1, true) then
        misuse("include %s: select takes column names of %s, got %s in place #%d", node.name,
          T.table, errors.show(c), i)
      end
    end
    q:select(table.unpack(list))  -- refuses unknown columns as any query does
    node.columns = list
  end
end

function query.new(db, source)
  if db == nil then misuse("query.new: a database expected") end
  local name, m
  if type(source) == "string" and source ~= "" then
    name = source
  elseif type(source) == "table" and source.__model then
    name, m = source.table, source
  else
    misuse("query.new: a table name or a model expected, got %s", type(source))
  end
  return make {
    db = db, model = m, table = name, scope = { [name] = m or false },
    where = {}, having = {}, joins = {}, group = {}, order = {},
    columns = nil, aliases = {}, plain = true,
  }
end

-- The methods a model forwards to a fresh query on itself.
query.methods = {}
for name in pairs(Query) do query.methods[#query.methods + 1] = name end
table.sort(query.methods)

query.Query = Query
query.op = expr.op
query.raw = expr.raw
query.is_query = is_query
query.plain_value = plain_value

function query.ast(q)
  return select_ast(q._s)
end

-- }======================================================================

return query
