-- loam.explain: query plans as people read them, on both backends, with the
-- full scans of big tables flagged.
--
--   explain.run(db, sql [, params [, opts]]) -> plan
--                            runs EXPLAIN QUERY PLAN (SQLite) or EXPLAIN
--                            (PostgreSQL) on 'sql' with 'params' bound
--   explain.plan(db, rows [, opts]) -> plan
--                            the plan of the rows such an EXPLAIN returned
--                            (Query:explain renders its own EXPLAIN)
--   explain.check(opts, what) -> big
--                            the options checked: opts.big (default 1000)
--
-- A plan is an array of lines (SQLite's tree indented two spaces a level,
-- PostgreSQL's text as it prints it) with 'flags', one per table read
-- whole that holds at least opts.big rows: { table, rows, estimate (true
-- when PostgreSQL's statistics gave 'rows'), message }.  tostring(plan)
-- prints the lines and then each flag's message after '! '.
--
-- A full scan is a line 'SCAN t' without an index (SQLite) or 'Seq Scan
-- on t' (PostgreSQL).  The size of 't' comes from PostgreSQL's statistics
-- (pg_class.reltuples) when the table was ever analyzed, else from
-- counting, which stops at ten times opts.big so that a huge table costs
-- no full count; a name that is not a table (an alias, a subquery) is not
-- looked up.  Those lookups are plain reads, which a transaction that can
-- go on survives; EXPLAIN itself runs in the caller's transaction, if any.

local errors = require "loam.errors"

local misuse = errors.misuse

local explain = {}

local DEFAULT_BIG = 1000

local Plan = { __name = "loam.Plan" }
Plan.__index = Plan

function Plan.__tostring(p)
  local out = {}
  for i, line in ipairs(p) do out[i] = line end
  for _, f in ipairs(p.flags) do out[#out + 1] = "! " .. f.message end
  return table.concat(out, "\n")
end

function explain.check(opts, what)
  if opts == nil then return DEFAULT_BIG end
  if type(opts) ~= "table" then
    misuse("%s: options must be a table, got %s", what, errors.show(opts))
  end
  for k in pairs(opts) do
    if k ~= "big" then
      misuse("%s: unknown option '%s' (valid: big)", what, tostring(k))
    end
  end
  local big = opts.big
  if big == nil then return DEFAULT_BIG end
  if math.type(big) ~= "integer" or big < 1 then
    misuse("%s: big must be a positive integer (rows), got %s", what, errors.show(big))
  end
  return big
end

-- The lines of the rows of an EXPLAIN on 'backend'.
local function lines_of(backend, rows)
  local lines = {}
  if backend == "postgres" then
    for i, row in ipairs(rows) do lines[i] = row["QUERY PLAN"] end
  else
    -- SQLite reports a tree through 'parent'; each line is indented by its depth.
    local depth = { [0] = -1 }
    for i, row in ipairs(rows) do
      local d = (depth[row.parent] or -1) + 1
      depth[row.id] = d
      lines[i] = ("  "):rep(d) .. row.detail
    end
  end
  return lines
end

-- The table that 'line' reads whole, or nil.
local function scanned(backend, line)
  local name
  if backend == "postgres" then
    name = line:match("Seq Scan on ([%w_$.\"]+)")
  else
    name = line:match("^%s*SCAN TABLE ([%w_$\"]+)%s*$") or line:match("^%s*SCAN ([%w_$\"]+)%s*$")
  end
  if name == nil then return nil end
  return (name:gsub('^"(.*)"$', "%1"):gsub('""', '"'))
end

local function quote(name)
  return '"' .. name:gsub('"', '""') .. '"'
end

-- The rows of table 'name': a number and whether it is an estimate; nil
-- for a name that is no table.
local function table_rows(db, backend, name, big)
  if not db:table_exists(name) then return nil end
  if backend == "postgres" then
    local r = db:query("SELECT reltuples::bigint AS n FROM pg_class WHERE oid = to_regclass(?)",
                       { quote(name) })[1]
    if r ~= nil and r.n >= 0 then return r.n, true end
  end
  local cap = big * 10
  local r = db:query(("SELECT count(*) AS n FROM (SELECT 1 FROM %s LIMIT %d) AS t")
                     :format(quote(name), cap))[1]
  return r.n, false, r.n >= cap
end

function explain.plan(db, rows, opts)
  local big = explain.check(opts, "explain")
  local backend = db:backend()
  local plan = setmetatable(lines_of(backend, rows), Plan)
  plan.flags = {}
  local seen = {}
  for _, line in ipairs(plan) do
    local name = scanned(backend, line)
    if name ~= nil and not seen[name] then
      seen[name] = true
      local n, estimate, capped = table_rows(db, backend, name, big)
      if n ~= nil and n >= big then
        local size = (capped and "more than %d rows" or estimate and "about %d rows"
                      or "%d rows"):format(n)
        plan.flags[#plan.flags + 1] = {
          table = name, rows = n, estimate = estimate,
          message = ("full scan of %s (%s; big is %d): no index serves this condition")
                    :format(name, size, big),
        }
      end
    end
  end
  return plan
end

local PREFIX = { postgres = "EXPLAIN ", sqlite = "EXPLAIN QUERY PLAN " }

function explain.run(db, sql, params, opts)
  if type(sql) ~= "string" then
    misuse("explain: SQL text or a query expected, got %s", errors.show(sql))
  end
  local big = explain.check(opts, "explain")
  local rows = db:query(PREFIX[db:backend()] .. sql, params)
  return explain.plan(db, rows, { big = big })
end

return explain
