-- bench/harness.lua: what the benchmark's Lua peers share, apart from the
-- database API each of them stands on.
--
-- The sizes come from the environment (bench/run sets them), the keys,
-- pages and inserted rows are functions of their number, as in the C
-- peers (bench/peer_c.h); each workload returns a check string folded
-- from what it read, which must be the same in every run and every peer.
-- 'main' runs W1-W4 in the rounds bench/run asks for on stdin or, with
-- "M1" as the last argument, only the stream, in a fresh process, so that
-- its growth of the peak RSS is its own.  Results go to stdout as
-- tab-separated RESULT lines for bench/report.lua.

local clock = require "bench_clock"

local H = {}

H.PAGE_SIZE = 100      -- orders on a W3 page
H.INSERT_CHUNK = 1000  -- rows per multi-row INSERT in W4 (but see peer_luadbi.lua)

local function size (name)
  local v = math.tointeger(tonumber(os.getenv(name) or ""))
  if not v or v <= 0 then
    error(name .. ": missing or not a positive integer in the environment")
  end
  return v
end

H.N = {
  customers = size "BENCH_CUSTOMERS", orders = size "BENCH_ORDERS",
  lookups = size "BENCH_LOOKUPS", pages = size "BENCH_PAGES",
  inserts = size "BENCH_INSERTS", stream = size "BENCH_STREAM",
}
local N = H.N

-- The order id of the 'i'th W2 lookup (from 0): scattered, each at most once.
function H.lookup_key (i) return (i * 7919) % N.orders + 1 end

-- The W3 pages are spread over the table: page 'p' (from 0) starts after this id.
function H.page_after (p) return p * (N.orders // N.pages) end

-- The W4 row 'r' (from 1): customer_id, status, total_cents, note.
function H.insert_row (r) return r % N.customers + 1, "new", r, "bulk " .. r end

-- A number as the drivers give it (integer, float or decimal text) as an integer.
function H.int (v)
  local i = math.tointeger(tonumber(v))
  if not i then error("not an integer: " .. tostring(v)) end
  return i
end

-- W1 and W2: the orders read, as 'count:sum(total_cents):sum(customer_id)'.
-- Plain '+' takes what every driver gives: integers, integral floats and
-- decimal text alike.
function H.fold_orders (orders)
  local total, customers = 0, 0
  for _, o in ipairs(orders) do
    total = total + o.total_cents
    customers = customers + o.customer_id
  end
  return ("%d:%d:%d"):format(#orders, total, customers)
end

-- The statements of the peers that write SQL, with '?' placeholders; the
-- C peers (bench/peer_c_*.c) write the same.
local ORDER_COLS = "id, customer_id, status, total_cents, note"
H.SQL = {
  orders = "SELECT " .. ORDER_COLS .. " FROM orders",
  lookup = "SELECT " .. ORDER_COLS .. " FROM orders WHERE id = ?",
  page = "SELECT " .. ORDER_COLS .. " FROM orders WHERE id > ? ORDER BY id LIMIT ?",
  customers_in = "SELECT id, name, email FROM customers WHERE id IN ",  -- then the list
  items_in = "SELECT id, order_id, sku, qty, price_cents FROM line_items WHERE order_id IN ",
  insert = "INSERT INTO orders (customer_id, status, total_cents, note) VALUES ",  -- then rows
  -- As text: LuaDBI 0.7 reads integers beyond 32 bits wrongly (5000050000
  -- comes back as 705082704), and the full-size sum is that large.
  inserted = "SELECT CAST(count(*) AS TEXT) AS n, CAST(sum(total_cents) AS TEXT) AS t," ..
             " CAST(sum(customer_id) AS TEXT) AS c FROM orders WHERE id > ?",
  undo = "DELETE FROM orders WHERE id > ?",
  stream = "SELECT id, label, n FROM m1_rows",
}

-- "?, ?, ... ?": the IN list of a W3 child query, always PAGE_SIZE long.
H.IN_LIST = "(" .. string.rep("?", H.PAGE_SIZE, ", ") .. ")"

-- A multi-row INSERT of 'n' W4 rows, and the parameters of rows first..first+n-1.
function H.insert_sql (n) return H.SQL.insert .. string.rep("(?, ?, ?, ?)", n, ", ") end

function H.insert_params (first, n)
  local params = {}
  for i = 0, n - 1 do
    params[4 * i + 1], params[4 * i + 2], params[4 * i + 3], params[4 * i + 4] =
      H.insert_row(first + i)
  end
  return params
end

-- W4: what the 'inserted' statement read, as the check.
function H.inserted_check (r) return ("%d:%d:%d"):format(H.int(r.n), H.int(r.t), H.int(r.c)) end

-- The keys for H.IN_LIST: 'keys' padded with its first key, which changes
-- nothing in an IN list and keeps one statement text for every page.
function H.padded (keys)
  local out = table.move(keys, 1, #keys, 1, {})
  for i = #keys + 1, H.PAGE_SIZE do out[i] = keys[1] end
  return out
end

-- The distinct customer ids of a page's orders, in order of first sight.
function H.customer_ids (orders)
  local ids, seen = {}, {}
  for _, o in ipairs(orders) do
    local c = H.int(o.customer_id)
    if not seen[c] then seen[c] = true; ids[#ids + 1] = c end
  end
  return ids
end

-- Joins a page read as plain rows: each order gets its 'customer' and its
-- 'items', as the model layer's include would give them.
function H.join_page (orders, customers, items)
  local by_id, by_order = {}, {}
  for _, c in ipairs(customers) do by_id[H.int(c.id)] = c end
  for _, o in ipairs(orders) do
    o.customer = assert(by_id[H.int(o.customer_id)], "an order's customer is not in its batch")
    o.items = {}
    by_order[H.int(o.id)] = o.items
  end
  for _, it in ipairs(items) do
    local list = assert(by_order[H.int(it.order_id)], "an item of no order on the page")
    list[#list + 1] = it
  end
end

-- W3: adds a page's orders, customers and items to the running check.
function H.fold_page (orders, count, sum)
  for _, o in ipairs(orders) do
    count = count + 1
    sum = sum + o.total_cents + o.customer.id
    for _, it in ipairs(o.items) do sum = sum + it.qty end
  end
  return count, sum
end

-- W3 for the peers that write SQL: 'q.page(after, limit)' reads a page of
-- orders, 'q.customers(ids)' and 'q.items(order_ids)' its children (the
-- ids as integers; padding them is the peer's business); the rows are
-- joined here.
function H.pages (q)
  local count, sum = 0, 0
  for p = 0, N.pages - 1 do
    local orders = q.page(H.page_after(p), H.PAGE_SIZE)
    local ids = {}
    for i, o in ipairs(orders) do ids[i] = H.int(o.id) end
    H.join_page(orders, q.customers(H.customer_ids(orders)), q.items(ids))
    count, sum = H.fold_page(orders, count, sum)
  end
  return ("%d:%d"):format(count, sum)
end

-- W4 in chunks: calls 'insert(first, n)' for rows first..first+n-1, 'chunk'
-- rows at a time.
function H.chunks (chunk, insert)
  local r = 1
  while r <= N.inserts do
    local n = math.min(chunk, N.inserts - r + 1)
    insert(r, n)
    r = r + n
  end
end

-- The peak resident set of this process so far, in kB ('VmHWM').
local function peak_rss_kb ()
  local f = assert(io.open("/proc/self/status"))
  local kb = f:read("a"):match("VmHWM:%s*(%d+)")
  f:close()
  return tonumber(kb)
end

local function report (peer, backend, name, ms, check, rss_kb)
  io.write(("RESULT\t%s\t%s\t%s\t%.3f\t%s\t%d\n"):format(peer, backend, name, ms, check, rss_kb))
  io.flush()
end

-- Runs the peer's workloads, an array of { name, fn [, after = fn] }, each
-- fn returning its check string, or, where the check must be read and the
-- work undone before the next round, its 'after' doing that untimed; 'm1'
-- is the stream, run once instead when 'stream' is set.  Otherwise the
-- rounds come from bench/run, one line on stdin each, as for the C peers
-- (bench/peer_c.h): "warm" runs every workload once untimed, "run" once
-- timed, with a RESULT line each; "DONE" ends a round's output.
function H.main (peer, backend, workloads, m1, stream)
  if stream then
    collectgarbage()
    local before = peak_rss_kb()
    local t0 = clock.now_ms()
    local check = m1()
    local ms = clock.now_ms() - t0
    report(peer, backend, "M1", ms, check, peak_rss_kb() - before)
    return
  end
  local first = {}
  for line in io.lines() do
    local timed = line == "run"
    if not timed and line ~= "warm" then error("stdin: expected 'warm' or 'run', not " .. line) end
    for i, w in ipairs(workloads) do
      collectgarbage()
      local t0 = clock.now_ms()
      local check = w[2]()
      local ms = clock.now_ms() - t0
      if w.after then check = w.after() end
      if not first[i] then first[i] = check
      elseif check ~= first[i] then
        error(("%s %s: rounds read different data (%s, then %s)"):format(peer, w[1], first[i],
                                                                         check))
      end
      if timed then report(peer, backend, w[1], ms, check, -1) end
    end
    io.write("DONE\n")
    io.flush()
  end
end

-- The parts of 'postgresql:///DB?host=DIR&user=USER' that LuaDBI takes
-- one by one: database, user, host.
function H.pg_parts (url)
  local db, query = url:match("^postgres[%w]*:///([^?]+)%??(.*)$")
  assert(db, "not a postgresql:///DB?host=... URL: " .. url)
  local opts = {}
  for k, v in query:gmatch("([^&=]+)=([^&]*)") do opts[k] = v end
  return db, opts.user, opts.host
end

return H
