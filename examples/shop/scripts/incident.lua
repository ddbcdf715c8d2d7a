-- scripts/incident.lua: the classic incident, a page of 100 orders with
-- each order's customer and line items, written four ways.  `make demo`
-- runs it with `loam run`, which gives it the project's Database (db)
-- and models (Order, Customer, LineItem, ...).

local PAGE = 100

-- What 'fn' costs: statements, rows and their time (db:track), and the
-- CPU time of this process (the Lua and loam work around the SQL).
local function measure(label, fn)
  local t0 = os.clock()
  local report, lines = db:track(fn)
  return { label = label, queries = report.queries, rows = report.rows, sql_ms = report.ms,
           cpu_ms = (os.clock() - t0) * 1000, lines = lines, report = report }
end

-- The page as a template walks it: each order's customer and items.
local function render(orders)
  local lines = 0
  for _, o in ipairs(orders) do
    local _ = o.customer.email
    lines = lines + #o.items
  end
  return lines
end

local function page() return Order:order_by("number"):limit(PAGE) end

print(("a page of %d orders, each with its customer and line items"):format(PAGE))

print("\n1. naive: the template reads relations the query did not load")
local ok, err = pcall(function() return render(page():all()) end)
assert(not ok, "strict loading should have refused")
print(("   %s: %s"):format(err.code, err.message))

print("\n2. the N+1 written by hand: a lookup per order")
local n1 = measure("lookup per order", function()
  local lines = 0
  for _, o in ipairs(page():all()) do
    local _ = Customer:find(o.customer_id).email
    lines = lines + LineItem:where { order_id = o.id }:count()
  end
  return lines
end)
for _, f in ipairs(n1.report.n_plus_one) do
  print(("   N+1 at %s: ran %d times: %s"):format(f.site, f.count, f.sql))
end

print("\n3. lazy loading, opted into: a relation loads for the whole page at first read")
local lazy = measure("lazy", function() return render(page():lazy():all()) end)
print(("   %d statements"):format(lazy.queries))

print("\n4. include(\"customer\", \"items\"): the relations come with the page")
local incl = measure("include", function()
  return render(page():include("customer", "items"):all())
end)
print(("   %d statements"):format(incl.queries))

print(("\n%-18s %8s %8s %8s %11s %11s"):format("", "queries", "rows", "lines", "SQL time",
                                              "CPU time"))
for _, r in ipairs { n1, lazy, incl } do
  print(("%-18s %8d %8d %8d %8.1f ms %8.1f ms"):format(r.label, r.queries, r.rows, r.lines,
                                                      r.sql_ms, r.cpu_ms))
end

local s = db:pool_stats()
print(("\npool: size %d, open %d, in use %d, idle %d; %d acquires, %d timeouts, %d leaks; "
       .. "wait p99 %.3f ms"):format(s.size, s.open, s.in_use, s.idle, s.acquires, s.timeouts,
                                     s.leaks, s.wait_p99_ns / 1e6))
