-- bench/peer_luadbi.lua: the benchmark's workloads on LuaDBI 0.7 (Debian's
-- lua-dbi-sqlite3 and lua-dbi-postgresql), as its users write them.
--
--   build/bin/loam bench/peer_luadbi.lua URL [M1]
--
-- URL is the one loam takes ('sqlite:FILE' or 'postgresql:///DB?host=..').
-- Statements are prepared once and executed with '?' parameters; rows are
-- fetched as tables keyed by column name; W3's child queries take a
-- fixed-length IN list; W4 inserts multi-row VALUES (and, for comparison,
-- one row per execution) with autocommit off.  Everything else runs in
-- autocommit, which LuaDBI leaves off unless asked.  On PostgreSQL, LuaDBI
-- rewrites '?' into '$n' only up to $999, so its chunks there are smaller.

local DBI = require "DBI"
local H = require "harness"

local url, stream = arg[1], arg[2] == "M1"
assert(url, "usage: peer_luadbi.lua URL [M1]")
local N = H.N

local db, backend
if url:match("^sqlite:") then
  backend = "sqlite"
  db = assert(DBI.Connect("SQLite3", url:sub(#"sqlite:" + 1)))
else
  backend = "postgres"
  local name, user, host = H.pg_parts(url)
  db = assert(DBI.Connect("PostgreSQL", name, user, nil, host))
end
db:autocommit(true)

local function prepare (sql) return assert(db:prepare(sql)) end

local function exec (sql, ...)
  local st = prepare(sql)
  assert(st:execute(...))
  st:close()
end

if backend == "sqlite" then
  exec("PRAGMA journal_mode = WAL")
  exec("PRAGMA synchronous = NORMAL")
  exec("PRAGMA foreign_keys = ON")
end

local CHUNK = backend == "postgres" and 200 or H.INSERT_CHUNK

-- Every row 'st' gives, into 'out' (an array).
local function fetch_all (st, out)
  for row in st:rows(true) do out[#out + 1] = row end
  return out
end


local function w4_check_and_undo ()
  local st = prepare(H.SQL.inserted)
  assert(st:execute(N.orders))
  local r = st:fetch(true)
  st:close()
  exec(H.SQL.undo, N.orders)
  return H.inserted_check(r)
end

-- Runs 'fn' in one transaction.
local function transaction (fn)
  db:autocommit(false)
  fn()
  assert(db:commit())
  db:autocommit(true)
end

local workloads = {
  { "W1", function ()
    local st = prepare(H.SQL.orders)
    assert(st:execute())
    local orders = fetch_all(st, {})
    st:close()
    return H.fold_orders(orders)
  end },
  { "W2", function ()
    local st, orders = prepare(H.SQL.lookup), {}
    for i = 0, N.lookups - 1 do
      assert(st:execute(H.lookup_key(i)))
      orders[i + 1] = st:fetch(true)
    end
    st:close()
    return H.fold_orders(orders)
  end },
  { "W3", function ()
    local page = prepare(H.SQL.page)
    local customers = prepare(H.SQL.customers_in .. H.IN_LIST)
    local items = prepare(H.SQL.items_in .. H.IN_LIST)
    local function read (st, ...)
      assert(st:execute(...))
      return fetch_all(st, {})
    end
    local check = H.pages {
      page = function (after, limit) return read(page, after, limit) end,
      customers = function (ids) return read(customers, table.unpack(H.padded(ids))) end,
      items = function (ids) return read(items, table.unpack(H.padded(ids))) end,
    }
    page:close(); customers:close(); items:close()
    return check
  end },
  { "W4", function ()
    transaction(function ()
      local chunk = prepare(H.insert_sql(CHUNK))
      H.chunks(CHUNK, function (r, n)
        local params = H.insert_params(r, n)
        if n == CHUNK then assert(chunk:execute(table.unpack(params, 1, 4 * n)))
        else exec(H.insert_sql(n), table.unpack(params, 1, 4 * n)) end
      end)
      chunk:close()
    end)
  end, after = w4_check_and_undo },
  { "W4loop", function ()
    transaction(function ()
      local st = prepare(H.insert_sql(1))
      for r = 1, N.inserts do assert(st:execute(H.insert_row(r))) end
      st:close()
    end)
  end, after = w4_check_and_undo },
}

local function m1 ()
  local count, sum = 0, 0
  local st = prepare(H.SQL.stream)
  assert(st:execute())
  for r in st:rows(true) do count, sum = count + 1, sum + r.n + #r.label end
  st:close()
  return ("%d:%d"):format(count, sum)
end

H.main("luadbi", backend, workloads, m1, stream)
db:close()
