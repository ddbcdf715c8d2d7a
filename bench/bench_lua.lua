-- bench/bench_lua.lua: the workloads of bench_sqlite.c through the Lua API,
-- raw SQL and models side by side.
--
--   build/bin/loam bench/bench_lua.lua          ('make bench' runs it)
--
-- An in-memory SQLite database, so the time is loam's and Lua's own work;
-- compare the raw-SQL column with the "loam ms" column of bench_sqlite: the
-- difference is the cost of building Lua rows and crossing into C.  The
-- model column does the same work through a model (instances with change
-- tracking, values coerced before binding); its ratio to the raw-SQL
-- column is what the model layer costs.  Times are CPU time (os.clock),
-- the best of LOAM_BENCH_RUNS runs (default 5).

local loam = require "loam"

local ROWS = 10000
local runs = tonumber(os.getenv("LOAM_BENCH_RUNS") or "") or 5

local function timed (fn)
  local t0 = os.clock()
  fn()
  return (os.clock() - t0) * 1000
end

local workloads = {
  { name = "insert 10000 rows, one transaction" },
  { name = "select 10000 rows, every column" },
  { name = "select 10000 rows, streamed" },
  { name = "10000 point selects by key" },
}

local function keep (w, side, ms)
  if not w[side] or ms < w[side] then w[side] = ms end
end

local function key (i) return (i * 7919) % ROWS + 1 end

local function read (row) return row.id + #row.name + row.qty + row.price end

for _ = 1, runs do
  local raw = loam.connect("sqlite::memory:")
  raw:exec("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL," ..
           " qty INTEGER NOT NULL, price REAL NOT NULL)")
  local db = loam.connect("sqlite::memory:")
  local Item = db:model("items", {
    loam.id(),
    loam.text("name", { null = false }),
    loam.integer("qty", { null = false }),
    loam.float("price", { null = false }),
  })
  db:create_tables { Item }
  local sum = 0

  keep(workloads[1], "raw", timed(function ()
    raw:exec("BEGIN")
    for i = 0, ROWS - 1 do
      raw:exec("INSERT INTO items (name, qty, price) VALUES (?, ?, ?)",
               { string.format("item-%05d", i), i % 100, i * 0.25 })
    end
    raw:exec("COMMIT")
  end))
  keep(workloads[1], "model", timed(function ()
    local rows = {}
    for i = 0, ROWS - 1 do
      rows[i + 1] = { name = string.format("item-%05d", i), qty = i % 100, price = i * 0.25 }
    end
    Item:insert_many(rows)
  end))

  keep(workloads[2], "raw", timed(function ()
    for _, row in ipairs(raw:query("SELECT id, name, qty, price FROM items ORDER BY id")) do
      sum = sum + read(row)
    end
  end))
  keep(workloads[2], "model", timed(function ()
    for _, item in ipairs(Item:order_by("id"):all()) do sum = sum + read(item) end
  end))

  keep(workloads[3], "raw", timed(function ()
    for row in raw:each("SELECT id, name, qty, price FROM items ORDER BY id") do
      sum = sum + read(row)
    end
  end))
  keep(workloads[3], "model", timed(function ()
    for item in Item:order_by("id"):each() do sum = sum + read(item) end
  end))

  keep(workloads[4], "raw", timed(function ()
    for i = 0, ROWS - 1 do
      sum = sum + read(raw:query("SELECT id, name, qty, price FROM items WHERE id = ?", { key(i) })[1])
    end
  end))
  keep(workloads[4], "model", timed(function ()
    for i = 0, ROWS - 1 do sum = sum + read(Item:find(key(i))) end
  end))

  assert(sum > 0)
  raw:close()
  db:close()
end

print(string.format("\nLua API (%s), in-memory SQLite, CPU time, best of %d runs", _VERSION, runs))
print(string.format("  %-36s %10s %10s %10s %12s", "workload", "raw SQL ms", "model ms",
                    "model/raw", "model us/row"))
print(string.format("  %-36s %10s %10s %10s %12s", string.rep("-", 36), "----------",
                    "--------", "---------", "------------"))
for _, w in ipairs(workloads) do
  print(string.format("  %-36s %10.1f %10.1f %10.2f %12.2f", w.name, w.raw, w.model,
                      w.model / w.raw, w.model * 1000 / ROWS))
end
