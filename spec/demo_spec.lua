-- spec/demo_spec.lua: `make demo` (examples/shop/demo.sh) on a new
-- database and again on the same one, on an SQLite file and on a
-- PostgreSQL database of its own (the shop's tables and migration history
-- must not meet the other specs' tables).  The README shows its output,
-- which spec/readme_spec.lua compares.

local loam = require "loam"
local helper = require "spec.helper"

local host = helper.host()

local function demo(url)
  local p = assert(io.popen(("bash examples/shop/demo.sh %s %s 'the test database' 2>&1"):format(
    helper.shell_quote(host), helper.shell_quote(url))))
  local out = p:read("a")
  local ok = p:close()
  assert.is_true(ok, out)
  return out
end

local function count(text, pattern)
  local n = 0
  for _ in text:gmatch(pattern) do n = n + 1 end
  return n
end

local function check_runs(url)
  local first = demo(url)
  assert.matches("\n==> migrate up\napplied 20261201090000_create_shop\n", first, 1, true)
  assert.matches("products: 20 inserted, 0 updated, 0 unchanged", first, 1, true)
  assert.matches("line_items: 600 inserted, 0 updated, 0 unchanged", first, 1, true)
  -- The first run's second seed, and every seed of the second run, change nothing.
  assert.are.equal(1, count(first, "line_items: 0 inserted, 0 updated, 600 unchanged"))
  assert.matches("not_loaded: orders.customer is not loaded", first, 1, true)
  assert.are.equal(2, count(first, "N%+1 at scripts/incident%.lua:%d+: ran 100 times"))
  assert.matches("\nlookup per order +201 +300 +300 ", first)
  assert.matches("\nlazy +3 +450 +300 ", first)
  assert.matches("\ninclude +3 +450 +300 ", first)
  assert.matches("\npool: size 4, open %d, in use 0, idle %d; %d+ acquires, 0 timeouts, 0 leaks", first)

  local second = demo(url)
  assert.matches("\n==> migrate up\nnothing to apply\n", second, 1, true)
  for _, t in ipairs { "products: 0 inserted, 0 updated, 20 unchanged",
                       "customers: 0 inserted, 0 updated, 50 unchanged",
                       "orders: 0 inserted, 0 updated, 200 unchanged",
                       "line_items: 0 inserted, 0 updated, 600 unchanged" } do
    assert.are.equal(2, count(second, t:gsub("%p", "%%%0")), t)
  end
  assert.matches("\ninclude +3 +450 +300 ", second)
end

describe("make demo", function()
  it("sqlite file: runs on a new database, then again on the same one, changing nothing", function()
    check_runs("sqlite:" .. helper.tmpname(".db"))
  end)

  local pg = helper.postgres()
  if pg then
    it("postgres: runs on a new database, then again on the same one, changing nothing", function()
      local admin <close> = loam.connect(pg.url)
      local name = "loam_demo_spec_" .. tostring(os.time())
      admin:exec("CREATE DATABASE " .. name)
      local ok, err = pcall(check_runs, (pg.url:gsub("^(postgresql:///)[%w_]+", "%1" .. name)))
      admin:exec("DROP DATABASE " .. name .. " WITH (FORCE)")
      assert(ok, err)
    end)
  end
end)
