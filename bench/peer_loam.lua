-- bench/peer_loam.lua: the benchmark's workloads through loam, as a user
-- writes them: the model layer, or raw SQL.
--
--   build/bin/loam bench/peer_loam.lua model|raw URL [M1]
--
-- Only the database object's public methods are used: 'model', 'query',
-- 'each', 'exec' and 'transaction', and the models' own query methods
-- ('find', 'where', 'order_by', 'limit', 'include', 'all', 'each',
-- 'insert_many').  Every connection is set up as every peer's is:
-- synchronous=NORMAL on SQLite (loam itself turns on WAL and foreign keys).
-- W2 runs in autocommit, one statement per lookup.

local loam = require "loam"
local H = require "harness"

local mode, url, stream = arg[1], arg[2], arg[3] == "M1"
assert((mode == "model" or mode == "raw") and url, "usage: peer_loam.lua model|raw URL [M1]")
local N = H.N

local db = loam.connect(url)
local backend = url:match("^postgres") and "postgres" or "sqlite"
if backend == "sqlite" then db:exec("PRAGMA synchronous = NORMAL") end

-- {==================================================================
-- The model layer
-- ===================================================================

local Customer = db:model("customers", {
  loam.id(),
  loam.text("name", { null = false }),
  loam.text("email", { null = false }),
})
-- The indexes bench/data.lua makes, declared as a model declares its schema:
-- on PostgreSQL the batched loader probes an indexed key with '= ANY'.
local Order = db:model("orders", {
  loam.id(),
  loam.bigint("customer_id", { null = false, references = Customer }),
  loam.text("status", { null = false }),
  loam.integer("total_cents", { null = false }),
  loam.text("note"),
}, { indexes = { { "customer_id" } } })
local Item = db:model("line_items", {
  loam.id(),
  loam.bigint("order_id", { null = false, references = Order }),
  loam.text("sku", { null = false }),
  loam.integer("qty", { null = false }),
  loam.integer("price_cents", { null = false }),
}, { indexes = { { "order_id" } } })
local Row = db:model("m1_rows", { loam.id(), loam.text("label"), loam.bigint("n") })
Order:belongs_to("customer", Customer)
Order:has_many("items", Item)


-- What W4 inserted, then the table as it was; raw SQL in both modes.
local function w4_check_and_undo ()
  local r = db:query(H.SQL.inserted, { N.orders })[1]
  db:exec(H.SQL.undo, { N.orders })
  return H.inserted_check(r)
end

-- W2 must run in autocommit: after it no transaction may be open on the
-- connection.  PostgreSQL refuses SAVEPOINT outside a transaction block
-- (SQLSTATE 25P01); SQLite refuses BEGIN inside one.
local function assert_autocommit ()
  if backend == "postgres" then
    local ok, err = pcall(db.exec, db, "SAVEPOINT bench_probe")
    assert(not ok and err.sqlstate == "25P01", "W2 left a transaction open")
  else
    db:exec("BEGIN")
    db:exec("ROLLBACK")
  end
end

local model = {
  { "W1", function () return H.fold_orders(Order:all()) end },
  { "W2", function ()
    local orders = {}
    for i = 0, N.lookups - 1 do orders[i + 1] = Order:find(H.lookup_key(i)) end
    assert_autocommit()
    return H.fold_orders(orders)
  end },
  { "W3", function ()
    local count, sum = 0, 0
    local q = Order:include("customer", "items"):order_by("id"):limit(H.PAGE_SIZE)
    for p = 0, N.pages - 1 do
      count, sum = H.fold_page(q:where { id = loam.op.gt(H.page_after(p)) }:all(), count, sum)
    end
    return ("%d:%d"):format(count, sum)
  end },
  { "W4", function ()
    local rows = {}
    for r = 1, N.inserts do
      local customer_id, status, total_cents, note = H.insert_row(r)
      rows[r] = { customer_id = customer_id, status = status, total_cents = total_cents,
                  note = note }
    end
    Order:insert_many(rows)
  end, after = w4_check_and_undo },
}

local function model_stream ()
  local count, sum = 0, 0
  for r in Row:each() do count, sum = count + 1, sum + r.n + #r.label end
  return ("%d:%d"):format(count, sum)
end

-- }==================================================================

-- {==================================================================
-- Raw SQL
-- ===================================================================

local raw = {
  { "W1", function ()
    return H.fold_orders(db:query(H.SQL.orders))
  end },
  { "W2", function ()
    local orders = {}
    for i = 0, N.lookups - 1 do orders[i + 1] = db:query(H.SQL.lookup, { H.lookup_key(i) })[1] end
    assert_autocommit()
    return H.fold_orders(orders)
  end },
  { "W3", function ()
    local customers_sql = H.SQL.customers_in .. H.IN_LIST
    local items_sql = H.SQL.items_in .. H.IN_LIST
    return H.pages {
      page = function (after, limit) return db:query(H.SQL.page, { after, limit }) end,
      customers = function (ids) return db:query(customers_sql, H.padded(ids)) end,
      items = function (ids) return db:query(items_sql, H.padded(ids)) end,
    }
  end },
  { "W4", function ()
    db:transaction(function ()
      local chunk = H.insert_sql(H.INSERT_CHUNK)
      H.chunks(H.INSERT_CHUNK, function (r, n)
        db:exec(n == H.INSERT_CHUNK and chunk or H.insert_sql(n), H.insert_params(r, n))
      end)
    end)
  end, after = w4_check_and_undo },
  { "W4loop", function ()
    db:transaction(function ()
      local sql = H.insert_sql(1)
      for r = 1, N.inserts do db:exec(sql, { H.insert_row(r) }) end
    end)
  end, after = w4_check_and_undo },
}

local function raw_stream ()
  local count, sum = 0, 0
  for r in db:each(H.SQL.stream) do
    count, sum = count + 1, sum + r.n + #r.label
  end
  return ("%d:%d"):format(count, sum)
end

-- }==================================================================

if mode == "model" then H.main("loam model", backend, model, model_stream, stream)
else H.main("loam raw", backend, raw, raw_stream, stream) end
db:close()
