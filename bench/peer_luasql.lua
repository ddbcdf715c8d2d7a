-- bench/peer_luasql.lua: the benchmark's workloads on LuaSQL 2.6 (Debian's
-- lua-sql-sqlite3 and lua-sql-postgres), as its users write them.
--
--   build/bin/loam bench/peer_luasql.lua URL [M1]
--
-- URL is the one loam takes ('sqlite:FILE' or 'postgresql:///DB?host=..').
-- LuaSQL has no bound parameters: statements are text, integers formatted
-- into it and strings quoted with 'conn:escape'.  Rows are fetched as
-- tables keyed by column name; W4 inserts multi-row VALUES (and, for
-- comparison, one statement per row) with autocommit off.  Everything
-- else runs in autocommit, LuaSQL's default.

local H = require "harness"

local url, stream = arg[1], arg[2] == "M1"
assert(url, "usage: peer_luasql.lua URL [M1]")
local N = H.N

local env, db, backend
if url:match("^sqlite:") then
  backend = "sqlite"
  env = require("luasql.sqlite3").sqlite3()
  db = assert(env:connect(url:sub(#"sqlite:" + 1)))
else
  backend = "postgres"
  env = require("luasql.postgres").postgres()
  db = assert(env:connect(url))  -- libpq takes the URL as the database name
end

local function exec (sql)
  local r, err = db:execute(sql)
  if not r then error(err .. ": " .. sql) end
  return r
end

if backend == "sqlite" then
  exec("PRAGMA journal_mode = WAL"):close()
  exec("PRAGMA synchronous = NORMAL")
  exec("PRAGMA foreign_keys = ON")
end

-- 'sql' with each '?' replaced by the next of the integers '...'.
local function literal (sql, ...)
  local args, i = { ... }, 0
  return (sql:gsub("%?", function () i = i + 1; return ("%d"):format(args[i]) end))
end

-- Every row of the query 'sql', into 'out' (an array).
local function query (sql, out)
  local cur = exec(sql)
  local row = cur:fetch({}, "a")
  while row do
    out[#out + 1] = row
    row = cur:fetch({}, "a")
  end
  cur:close()
  return out
end


local function w4_check_and_undo ()
  local r = query(literal(H.SQL.inserted, N.orders), {})[1]
  exec(literal(H.SQL.undo, N.orders))
  return H.inserted_check(r)
end

local function values (r)
  local customer_id, status, total_cents, note = H.insert_row(r)
  return ("(%d, '%s', %d, '%s')"):format(customer_id, db:escape(status), total_cents,
                                         db:escape(note))
end

-- Runs 'fn' in one transaction.
local function transaction (fn)
  db:setautocommit(false)
  fn()
  assert(db:commit())
  db:setautocommit(true)
end

local workloads = {
  { "W1", function ()
    return H.fold_orders(query(H.SQL.orders, {}))
  end },
  { "W2", function ()
    local orders = {}
    for i = 0, N.lookups - 1 do query(literal(H.SQL.lookup, H.lookup_key(i)), orders) end
    return H.fold_orders(orders)
  end },
  { "W3", function ()
    return H.pages {
      page = function (after, limit) return query(literal(H.SQL.page, after, limit), {}) end,
      customers = function (ids)
        return query(H.SQL.customers_in .. "(" .. table.concat(ids, ", ") .. ")", {})
      end,
      items = function (ids)
        return query(H.SQL.items_in .. "(" .. table.concat(ids, ", ") .. ")", {})
      end,
    }
  end },
  { "W4", function ()
    transaction(function ()
      H.chunks(H.INSERT_CHUNK, function (r, n)
        local rows = {}
        for i = 0, n - 1 do rows[i + 1] = values(r + i) end
        exec(H.SQL.insert .. table.concat(rows, ", "))
      end)
    end)
  end, after = w4_check_and_undo },
  { "W4loop", function ()
    transaction(function ()
      for r = 1, N.inserts do exec(H.SQL.insert .. values(r)) end
    end)
  end, after = w4_check_and_undo },
}

local function m1 ()
  local count, sum = 0, 0
  local cur = exec(H.SQL.stream)
  local r = cur:fetch({}, "a")
  while r do
    count, sum = count + 1, sum + r.n + #r.label
    r = cur:fetch(r, "a")
  end
  cur:close()
  return ("%d:%d"):format(count, sum)
end

H.main("luasql", backend, workloads, m1, stream)
db:close()
env:close()
