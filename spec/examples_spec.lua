-- spec/examples_spec.lua: the example scripts (demo, models, relations) run and print
-- what the README shows, on every backend, so the documentation cannot
-- drift from the code; on PostgreSQL they run again and again on one
-- database, in any order.

local helper = require "spec.helper"

-- Runs 'path' as a script with 'url' as arg[1] and returns what it printed,
-- line by line.
local function run_example(path, url)
  local chunk = assert(loadfile(path))
  local out = {}
  local real_print = print
  _G.print = function(...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    for line in (table.concat(parts, "\t", 1, parts.n) .. "\n"):gmatch("(.-)\n") do
      out[#out + 1] = line
    end
  end
  local saved_arg = _G.arg
  _G.arg = { [0] = path, url }
  local ok, err = pcall(chunk, url)
  _G.print, _G.arg = real_print, saved_arg
  if not ok then error(err, 0) end
  return out
end

local expected_models = {
  "created ada@example.com (id 1, tier pro) and bob@example.com (tier free)",
  "order 1: 1250 cents",
  "order 2: 400 cents",
  "paid orders:\t3\tsum:\t1950",
  false,   -- the SQL text differs by dialect: checked below
  "params:\tpaid, 400, 10",
  "pro customers:\tada@example.com, bob@example.com",
  "page 1: 3 orders, next cursor present",
  "page 2: 1 orders, next cursor none",
  "validation_error\ttotal_cents",
  "examples/models.lua:64: loam.validation_error: orders.total_cents: expected integer, got string (\"12x\")",
  "examples/models.lua:67: loam.validation_error: customers.tier: expected one of \"free\", \"pro\", got string (\"gold\")",
  "false\tada@example.com",
}

for backend in helper.each_backend() do
  describe("examples/models.lua on " .. backend.label, function()
    it("prints what the README shows", function()
      local out = run_example("examples/models.lua", backend.url)
      assert.are.equal(#expected_models, #out)
      for i, line in ipairs(expected_models) do
        if line then assert.are.equal(line, out[i]) end
      end
      local p = backend.name == "postgres" and { "$1", "$2", "$3" } or { "?", "?", "?" }
      assert.are.equal(('SELECT "id", "customer_id", "status", "total_cents" FROM "orders" WHERE (("status" = %s) AND ("total_cents" >= %s))'
                        .. ' ORDER BY "total_cents" DESC LIMIT %s'):format(p[1], p[2], p[3]), out[5])
    end)
  end)
end

-- examples/relations.lua prints the same on every backend (its SQL has no
-- placeholders).
local relations_expected = {
  "  order 1  ada@example.com  1x apple, 1x pear",
  "  order 2  bob@example.com  2x apple, 1x pear",
  "  order 3  ada@example.com  3x apple, 1x pear",
  "include: 4 statements",
  "false\tnot_loaded",
  'examples/relations.lua:75: loam.not_loaded: orders.customer is not loaded: add '
    .. 'include("customer") to the query that loaded it, or call loam.preload(list, '
    .. '"customer") (strict loading; lazy loading is opt-in: q:lazy(), '
    .. 'Model:lazy_loading(true), db:lazy_loading(true))',
  "  order 1  ada@example.com  1x apple, 1x pear",
  "  order 2  bob@example.com  2x apple, 1x pear",
  "  order 3  ada@example.com  3x apple, 1x pear",
  "lazy: 4 statements",
  'SELECT "orders"."id", "orders"."customer_id", "__loam_j1"."id" AS "__loam_j1_1", '
    .. '"__loam_j1"."email" AS "__loam_j1_2" FROM "orders" LEFT JOIN "customers" AS "__loam_j1" ON ("__loam_j1"."id" = '
    .. '"orders"."customer_id") ORDER BY "orders"."id" ASC',
  "include: a joined load of customers.orders and orders.items in one query is refused: it "
    .. "multiplies rows (each customers row comes back once per combination of their rows: 3 "
    .. "of one and 4 of the other make 12 rows, and each further collection multiplies "
    .. "again); load collections with the batched strategy (the default), one query per "
    .. "relation",
  "ada@example.com\t2\t1\tapple",
}

for backend in helper.each_backend() do
  describe("examples/relations.lua on " .. backend.label, function()
    it("prints what the README shows", function()
      assert.are.same(relations_expected, run_example("examples/relations.lua", backend.url))
    end)
  end)
end

-- examples/demo.lua: the raw API.  Only the failed insert's message is the
-- backend's own.
local function demo_expected(url, pg)
  return {
    "connected to " .. url,
    "",
    "inserted apple    changes = 1, id = 1",
    "inserted banana   changes = 1, id = 2",
    "inserted cherry   changes = 1, id = 3",
    "inserted durian   changes = 1, id = 4",
    "",
    "db:query:",
    "  id  name    color     price_cents",
    "  --  ------  --------  -----------",
    "   1  apple   red               120",
    "   2  banana  yellow             45",
    "   3  cherry  dark red          900",
    "   4  durian  NULL             2500",
    "",
    "db:each, under one euro:",
    "  banana costs 45 cents",
    "",
    "inserting a second apple:",
    "  err.code    = unique_violation",
    "  tostring()  = examples/demo.lua:93: loam.unique_violation: " .. (pg
      and 'duplicate key value violates unique constraint "fruits_name_key" (SQLSTATE 23505)'
      or "UNIQUE constraint failed: fruits.name"),
    "  still 4 fruits",
  }
end

for backend, pg in helper.each_backend() do
  describe("examples/demo.lua on " .. backend.label, function()
    it("prints what the README shows", function()
      assert.are.same(demo_expected(backend.url, pg), run_example("examples/demo.lua", backend.url))
    end)
  end)
end

local pg = helper.postgres()
if pg ~= nil then
  describe("the examples on one PostgreSQL database", function()
    it("run twice in a row and after each other in any order, printing the same", function()
      local expected = {
        ["examples/demo.lua"] = demo_expected(pg.url, true),
        ["examples/relations.lua"] = relations_expected,
      }
      -- Every ordered pair of the three follows once: d-d, d-m, d-r, m-d,
      -- m-m, m-r, r-d, r-m, r-r.
      local order = { "d", "m", "r", "m", "d", "r", "r", "m", "m", "d", "d", "r", "d" }
      local names = { d = "examples/demo.lua", m = "examples/models.lua", r = "examples/relations.lua" }
      for i, key in ipairs(order) do
        local name = names[key]
        local ok, out = pcall(run_example, name, pg.url)
        assert(ok, ("run %d, %s: %s"):format(i, name, tostring(out)))
        if expected[name] then
          assert.are.same(expected[name], out)
        else
          assert.are.equal(#expected_models, #out)
          for j, line in ipairs(expected_models) do
            if line then assert.are.equal(line, out[j]) end
          end
        end
      end
      local db <close> = helper.connect(pg)
      helper.drop_tables(db, { "fruits" })
    end)
  end)
end
