-- loam.expr: conditions for the chainable query, from Lua values to the
-- query AST (see the AST notes: SQL text itself is rendered by the core).
--
--   expr.op          operator helpers used as values in where tables:
--                      eq ne lt lte gt gte like ilike not_like not_ilike
--                      between(a, b) not_between(a, b) in_(list | query)
--                      not_in(list | query) is_null() not_null()
--                    and combinators over where tables or helpers:
--                      and_{...} or_{...} not_(x)
--   expr.raw(sql [, params])
--                    a raw SQL fragment with its own '?' parameters
--   expr.condition(ctx, node)
--                    the AST of a where table, raw fragment or combinator
--   expr.is_raw(v), expr.NIL_HINT
--   expr.array_len(t)
--                    a helper shared with loam.query (errors are made by
--                    loam.errors, like every error object of the Lua layer)
--
-- A helper is checked when it is made (nil is refused there, since a nil
-- that reaches a table vanishes silently); columns are resolved and values
-- coerced when the condition is added to a query, through 'ctx':
--   ctx.column(key)        -> { ast = col AST, model = Model|nil, name = column }
--   ctx.coerce(col, value) -> the value to bind for column 'col'
--   ctx.subquery(v)        -> the SELECT AST of query 'v', or nil if 'v' is no query

local core = require "loam.core"
local errors = require "loam.errors"

local null = core.null

local expr = {}

local misuse = errors.misuse

local NIL_HINT = "nil is not NULL: use loam.null for SQL NULL"

-- The length of 't' when it is a plain array without holes, else nil.
function expr.array_len(t)
  if getmetatable(t) ~= nil then return nil end
  local n, count = #t, 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return nil end
    count = count + 1
  end
  return count == n and n or nil
end

local array_len = expr.array_len


-- {======================================================================
-- Raw fragments
-- =======================================================================

-- A raw fragment is its own AST node; the metatable only marks it.
local Raw = { __name = "loam.raw" }

function expr.raw(sql, params)
  if type(sql) ~= "string" then
    misuse("query.raw: SQL text expected, got %s", type(sql))
  end
  if params == nil then
    params = {}
  elseif type(params) ~= "table" or array_len(params) == nil then
    misuse("query.raw: parameters must be an array without holes (%s)", NIL_HINT)
  end
  return setmetatable({ k = "raw", sql = sql, params = params }, Raw)
end

function expr.is_raw(v)
  return getmetatable(v) == Raw
end

-- }======================================================================


-- {======================================================================
-- Operator helpers
-- =======================================================================

local Helper = { __name = "loam.op" }

local function helper(t)
  return setmetatable(t, Helper)
end

local function checkvalue(name, v, pos)
  if v == nil then
    misuse("%s: argument #%d is nil (%s)", name, pos or 1, NIL_HINT)
  end
end

local op = {}

-- Comparison operators by helper name; their values are coerced for the
-- column, except LIKE patterns, which are text whatever the column is.
local COMPARE = {
  eq = "=", ne = "<>", lt = "<", lte = "<=", gt = ">", gte = ">=",
  like = "LIKE", ilike = "ILIKE", not_like = "NOT LIKE", not_ilike = "NOT ILIKE",
}
local PATTERN = { like = true, ilike = true, not_like = true, not_ilike = true }

for name, sqlop in pairs(COMPARE) do
  op[name] = function(v)
    checkvalue("op." .. name, v)
    if PATTERN[name] and type(v) ~= "string" and not expr.is_raw(v) then
      misuse("op.%s: pattern must be a string, got %s", name, type(v))
    end
    return helper { kind = "cmp", name = "op." .. name, op = sqlop, v = v,
                    pattern = PATTERN[name] }
  end
end

local function between(name, negate)
  return function(lo, hi)
    checkvalue(name, lo, 1)
    checkvalue(name, hi, 2)
    return helper { kind = "between", name = name, lo = lo, hi = hi, negate = negate }
  end
end
op.between = between("op.between", false)
op.not_between = between("op.not_between", true)

local function inlist(name, negate)
  return function(list)
    checkvalue(name, list)
    if type(list) ~= "table" then
      misuse("%s: a list or a query expected, got %s", name, type(list))
    end
    return helper { kind = "in", name = name, list = list, negate = negate }
  end
end
op.in_ = inlist("op.in_", false)
op.not_in = inlist("op.not_in", true)

function op.is_null()
  return helper { kind = "null", name = "op.is_null", negate = false }
end

function op.not_null()
  return helper { kind = "null", name = "op.not_null", negate = true }
end

local function combinator(kind)
  local name = "op." .. kind .. "_"
  return function(items)
    if type(items) ~= "table" or getmetatable(items) ~= nil or array_len(items) == nil then
      misuse("%s: an array of conditions expected (%s)", name, NIL_HINT)
    end
    return helper { kind = kind, name = name, items = items }
  end
end
op.and_ = combinator("and")
op.or_ = combinator("or")

function op.not_(item)
  checkvalue("op.not_", item)
  return helper { kind = "not", name = "op.not_", items = { item } }
end

local KNOWN = {}
for name in pairs(op) do KNOWN[#KNOWN + 1] = name end
table.sort(KNOWN)
local KNOWN_LIST = "op." .. table.concat(KNOWN, ", op.")

-- A misspelt helper is a misuse error naming the known ones, not a call of nil.
expr.op = setmetatable(op, {
  __index = function(_, name)
    misuse("unknown operator 'op.%s' (operators: %s)", tostring(name), KNOWN_LIST)
  end,
  __newindex = function()
    misuse("loam.op is read-only")
  end,
})

-- }======================================================================


-- {======================================================================
-- Compiling conditions
-- =======================================================================

local condition

local function val(v)
  return { k = "val", v = v }
end

-- The right-hand side of a comparison: a raw fragment as is, a value bound.
local function operand(ctx, col, v, coerce)
  if expr.is_raw(v) then return v end
  return val(coerce and ctx.coerce(col, v) or v)
end

local function in_list(ctx, col, h)
  local sub = ctx.subquery(h.list)
  if sub ~= nil then
    return { k = "in", expr = col.ast, query = sub, negate = h.negate }
  end
  local n = array_len(h.list)
  if n == nil then
    misuse("%s: the list for '%s' must be an array without holes, or a query (%s)",
           h.name, col.key, NIL_HINT)
  end
  local list = h.list
  if col.model ~= nil then
    -- Elements are coerced one by one; loam.null is left for the core to refuse.
    local coerced = table.move(list, 1, n, 1, {})
    for i = 1, n do
      if coerced[i] ~= null then coerced[i] = ctx.coerce(col, coerced[i]) end
    end
    list = coerced
  end
  -- PostgreSQL compares a list of text with these columns only as their type.
  local t = col.decl and col.decl.type
  local coltype = (t == "date" or t == "timestamp" or t == "numeric") and t or nil
  return { k = "in", expr = col.ast, list = list, negate = h.negate, coltype = coltype }
end

-- The condition a helper states about one column.
local function apply(ctx, h, col)
  local kind = h.kind
  if kind == "cmp" then
    if h.v == null then
      -- Comparing with NULL is never true, so only equality has a meaning.
      if h.op == "=" or h.op == "<>" then
        return { k = "null", expr = col.ast, negate = h.op == "<>" }
      end
      misuse("%s(loam.null) for '%s' is never true: use op.is_null() or op.not_null()",
             h.name, col.key)
    end
    return { k = "op", op = h.op, l = col.ast, r = operand(ctx, col, h.v, not h.pattern) }
  elseif kind == "between" then
    if h.lo == null or h.hi == null then
      misuse("%s for '%s': a bound is loam.null, which never matches", h.name, col.key)
    end
    return { k = "between", expr = col.ast, negate = h.negate,
             lo = operand(ctx, col, h.lo, true), hi = operand(ctx, col, h.hi, true) }
  elseif kind == "in" then
    return in_list(ctx, col, h)
  else  -- "null"
    return { k = "null", expr = col.ast, negate = h.negate }
  end
end

-- What 'v' says about column 'col' as the value of a where-table pair.
local function value_condition(ctx, col, v)
  if v == null then
    return { k = "null", expr = col.ast }
  end
  local tv = type(v)
  if tv == "table" then
    local mt = getmetatable(v)
    if mt == Helper then return condition(ctx, v, col) end
    if mt == Raw then return { k = "op", op = "=", l = col.ast, r = v } end
    if ctx.subquery(v) ~= nil then
      misuse("a query as the value of '%s': write op.in_(query)", col.key)
    end
    if mt == nil then
      if array_len(v) ~= nil then
        return in_list(ctx, col, { name = "IN list", list = v, negate = false })
      end
      local key = next(v)
      while math.type(key) == "integer" do key = next(v, key) end
      misuse("unknown operator '%s' in the value of '%s' (use an operator helper: %s)",
             tostring(key), col.key, KNOWN_LIST)
    end
  elseif tv == "number" or tv == "string" or tv == "boolean" or tv == "userdata" then
    return { k = "op", op = "=", l = col.ast, r = val(ctx.coerce(col, v)) }
  end
  misuse("cannot compare '%s' with a %s", col.key, tv)
end

-- Joins conditions with 'kind' ("and"/"or"); one condition stands alone.
local function join_all(kind, list)
  if #list == 1 then return list[1] end
  list.k = kind
  return list
end

-- A where table: positional entries are conditions, pairs compare columns.
-- Keys are sorted so one shape always renders one SQL text.
local function where_table(ctx, t)
  local keys, conds, n = {}, {}, #t
  for k in pairs(t) do
    if type(k) == "string" then
      keys[#keys + 1] = k
    elseif math.type(k) ~= "integer" or k < 1 or k > n then
      misuse("condition table: key %s is neither a column name nor a position", tostring(k))
    end
  end
  if n == 0 and #keys == 0 then
    misuse("empty condition table (a pair whose value is nil vanishes from a Lua table; %s)",
           NIL_HINT)
  end
  for i = 1, n do
    if t[i] == nil then misuse("condition table: entry #%d is nil (%s)", i, NIL_HINT) end
    conds[#conds + 1] = condition(ctx, t[i])
  end
  table.sort(keys)
  for _, key in ipairs(keys) do
    conds[#conds + 1] = value_condition(ctx, ctx.column(key), t[key])
  end
  return join_all("and", conds)
end

-- The AST of 'node' as a whole condition or, with 'col', as a condition on that
-- column (the children of combinators used as column values).
function condition(ctx, node, col)
  local mt = getmetatable(node)
  if mt == Raw then
    if col ~= nil then return value_condition(ctx, col, node) end
    return node
  elseif mt == Helper then
    local kind = node.kind
    if kind == "and" or kind == "or" then
      local conds = {}
      for i, item in ipairs(node.items) do conds[i] = condition(ctx, item, col) end
      if #conds == 0 then return { k = kind } end
      return join_all(kind, conds)
    elseif kind == "not" then
      return { k = "not", condition(ctx, node.items[1], col) }
    end
    if col == nil then
      misuse("%s needs a column: use it as a value, as in where{ price = %s(...) }",
             node.name, node.name)
    end
    return apply(ctx, node, col)
  elseif col ~= nil then
    return value_condition(ctx, col, node)
  elseif type(node) == "table" and mt == nil then
    return where_table(ctx, node)
  end
  misuse("a condition must be a table of column = value pairs, query.raw(...) " ..
         "or an op combinator, got %s", node == nil and "nil (" .. NIL_HINT .. ")" or type(node))
end

expr.condition = condition
expr.NIL_HINT = NIL_HINT

-- }======================================================================

return expr
