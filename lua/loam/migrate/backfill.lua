-- loam.migrate.backfill: the backfills of data migrations, run in batches.
--
-- A backfill (loam.migrate.ops.backfill) updates the rows of a table that
-- its predicate still selects, a batch at a time by ranges of a key (the
-- table's one-column primary key, or 'key'):
--
--   SELECT max(k) FROM (SELECT k FROM t WHERE k > $last AND (where)
--                       ORDER BY k LIMIT batch) AS b            -- the batch's end
--   UPDATE t SET ... WHERE k > $last AND k <= $end AND (where)  -- the batch
--
-- Each UPDATE is a statement of its own outside any transaction, so it
-- commits at once and holds its row locks only while it runs: a long
-- backfill never blocks the table's writers for longer than a batch.  The
-- predicate makes it idempotent: a row done no longer matches, so a run
-- stopped half-way is resumed by running it again, which skips what is
-- done.  That is why a backfill is not journaled batch by batch: the
-- predicate is its journal.
--
--   backfill.run(db, op [, progress]) -> rows updated; 'progress(table,
--       rows so far, batches so far)' after each batch
--   backfill.statements(db, op) -> { { sql =, params = { text... } }, ... }:
--       what one batch runs, for a dry run (its parameters described)
--   backfill.key(db, op) -> the key column

local core = require "loam.core"
local errors = require "loam.errors"

local backfill = {}

local function quote(name)
  return '"' .. name:gsub('"', '""') .. '"'
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

-- The predicate of 'op' and its parameters.
local function predicate(op)
  if op.where_sql ~= nil then
    return "(" .. op.where_sql .. ")", {}
  end
  local parts, params = {}, {}
  for _, col in ipairs(sorted_keys(op.where)) do
    local v = op.where[col]
    if v == core.null then
      parts[#parts + 1] = quote(col) .. " IS NULL"
    else
      parts[#parts + 1] = quote(col) .. " = ?"
      params[#params + 1] = v
    end
  end
  return table.concat(parts, " AND "), params
end

-- The SET list of 'op' and its parameters.
local function assignments(op)
  if op.set_sql ~= nil then
    return op.set_sql, {}
  end
  local parts, params = {}, {}
  for _, col in ipairs(sorted_keys(op.set)) do
    parts[#parts + 1] = quote(col) .. " = ?"
    params[#params + 1] = op.set[col]
  end
  return table.concat(parts, ", "), params
end

-- The key the batches are ranges of: 'op.key', or the table's primary key
-- when it has one column.
function backfill.key(db, op)
  if op.key ~= nil then
    return op.key
  end
  if not db:table_exists(op.table) then
    errors.raise("undefined_table", ("backfill: table '%s' does not exist (yet: a dry run of "
      .. "the migration that creates it cannot read its primary key; give key = \"column\" or "
      .. "apply that migration first)"):format(op.table), nil, op.at .. ": ")
  end
  local schema = db:introspect({ op.table })
  local pk = schema.tables[1].primary_key
  if pk == nil or #pk.columns ~= 1 then
    errors.raise("misuse", ("backfill: table '%s' has %s, and its batches are ranges of one "
      .. "key column: give key = \"column\" (a unique, indexed one)"):format(op.table,
      pk == nil and "no primary key" or "a primary key of " .. #pk.columns .. " columns"),
      nil, op.at .. ": ")
  end
  return pk.columns[1]
end

local function append(to, from)
  for _, v in ipairs(from) do to[#to + 1] = v end
  return to
end

-- The two statements of a batch, with 'first' true for the first batch
-- (no lower bound), and the parameters of each but the key bounds.
local function batch_sql(op, key, first)
  local t, k = quote(op.table), quote(key)
  local pred, pparams = predicate(op)
  local set, sparams = assignments(op)
  local lower = first and "" or k .. " > ? AND "
  local bound = ("SELECT max(%s) AS hi FROM (SELECT %s FROM %s WHERE %s%s ORDER BY %s LIMIT %d) "
    .. "AS b"):format(k, k, t, lower, pred, k, op.batch)
  local update = ("UPDATE %s SET %s WHERE %s%s <= ? AND %s"):format(t, set, lower, k, pred)
  return bound, pparams, update, append(append({}, sparams), pparams)
end

function backfill.statements(db, op)
  local key = backfill.key(db, op)
  local bound, bparams, update, uparams = batch_sql(op, key, false)
  local nset = #uparams - #bparams
  local shown = function(v)
    if v == core.null then return "NULL" end
    if type(v) == "string" then return "'" .. v:gsub("'", "''") .. "'" end
    return tostring(v)
  end
  local b, u = { "the last key of the batch before" }, {}
  for i, v in ipairs(uparams) do
    if i == nset + 1 then
      u[#u + 1] = "the last key of the batch before"
      u[#u + 1] = "the batch's last key"
    end
    u[#u + 1] = shown(v)
  end
  if nset == #uparams then
    u[#u + 1] = "the last key of the batch before"
    u[#u + 1] = "the batch's last key"
  end
  for _, v in ipairs(bparams) do b[#b + 1] = shown(v) end
  return { { sql = bound, params = b }, { sql = update, params = u } }
end

function backfill.run(db, op, progress)
  local key = backfill.key(db, op)
  local rows, batches, last = 0, 0, nil
  while true do
    local bound, bparams, update, uparams = batch_sql(op, key, last == nil)
    local p = {}
    if last ~= nil then p[1] = last end
    local hi = db:query(bound, append(p, bparams))[1].hi
    if hi == nil or hi == core.null then
      return rows
    end
    p = append({}, uparams)
    if last ~= nil then
      -- the lower bound comes after the SET values, before the upper one
      table.insert(p, #uparams - #bparams + 1, last)
      table.insert(p, #uparams - #bparams + 2, hi)
    else
      table.insert(p, #uparams - #bparams + 1, hi)
    end
    rows = rows + db:exec(update, p)
    batches = batches + 1
    last = hi
    if progress then progress(op.table, rows, batches) end
  end
end

return backfill
