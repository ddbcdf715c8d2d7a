-- bench/bench_lua.lua: the workloads of bench_sqlite.c through the Lua API.
--
--   build/bin/loam bench/bench_lua.lua          ('make bench' runs it)
--
-- An in-memory SQLite database, so the time is loam's and Lua's own work;
-- compare with the "loam ms" column of bench_sqlite: the difference is the
-- cost of building Lua rows and crossing into C.  Times are CPU time
-- (os.clock), the best of LOAM_BENCH_RUNS runs (default 5).

local loam = require "loam"

local ROWS = 10000
local runs = tonumber(os.getenv("LOAM_BENCH_RUNS") or "") or 5

local function timed (fn)
  local t0 = os.clock()
  fn()
  return (os.clock() - t0) * 1000
end

local workloads = {
  { name = "insert 10000 rows, one transaction (exec)" },
  { name = "select 10000 rows, every column (query)" },
  { name = "select 10000 rows, every column (each)" },
  { name = "10000 point selects by key (query)" },
}

local function keep (w, ms)
  if not w.ms or ms < w.ms then w.ms = ms end
end

for _ = 1, runs do
  local db = loam.connect("sqlite::memory:")
  db:exec("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL," ..
          " qty INTEGER NOT NULL, price REAL NOT NULL)")
  local sum = 0

  keep(workloads[1], timed(function ()
    db:exec("BEGIN")
    for i = 0, ROWS - 1 do
      db:exec("INSERT INTO items (name, qty, price) VALUES (?, ?, ?)",
              { string.format("item-%05d", i), i % 100, i * 0.25 })
    end
    db:exec("COMMIT")
  end))

  keep(workloads[2], timed(function ()
    for _, row in ipairs(db:query("SELECT id, name, qty, price FROM items ORDER BY id")) do
      sum = sum + row.id + #row.name + row.qty + row.price
    end
  end))

  keep(workloads[3], timed(function ()
    for row in db:each("SELECT id, name, qty, price FROM items ORDER BY id") do
      sum = sum + row.id + #row.name + row.qty + row.price
    end
  end))

  keep(workloads[4], timed(function ()
    for i = 0, ROWS - 1 do
      local row = db:query("SELECT id, name, qty, price FROM items WHERE id = ?",
                           { (i * 7919) % ROWS + 1 })[1]
      sum = sum + row.id + #row.name + row.qty + row.price
    end
  end))

  assert(sum > 0)
  db:close()
end

print(string.format("\nLua API (%s), in-memory SQLite, CPU time, best of %d runs", _VERSION, runs))
print(string.format("  %-42s %10s %10s", "workload", "ms", "us/row"))
print(string.format("  %-42s %10s %10s", string.rep("-", 42), "------", "------"))
for _, w in ipairs(workloads) do
  print(string.format("  %-42s %10.1f %10.2f", w.name, w.ms, w.ms * 1000 / ROWS))
end
