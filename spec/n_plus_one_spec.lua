-- spec/n_plus_one_spec.lua: the scenario of the N+1 issue, end to end, on
-- every backend: a page of orders, each shown with its customer and its
-- line items (and each item with its product).
--
--   * the naive loop raises in strict mode (the default) instead of
--     running one query per order;
--   * include costs exactly 3 statements (orders, customers, items) for
--     10, 100 and 1,000 orders alike, the two relations of one level in
--     ONE db:load_batch call (one round trip on PostgreSQL: pipelined,
--     still counted as 2 statements);
--   * products add one statement batched, or none when joined into the
--     items' statement;
--   * the opt-in lazy mode runs the same naive loop in 3 statements too,
--     and the N+1 detector (loam.track) finds no repetition in it, while
--     it reports an included relation that nothing reads.
--
-- Statements are counted with db:stats(), the core's own counters.  The
-- N+1 detector itself is specified in spec/track_spec.lua.

local loam = require "loam"
local helper = require "spec.helper"
require "loam.assertions"

local TABLES = { "order_items", "products", "orders", "customers" }

local function declare(db)
  local Customer = db:model("customers", {
    loam.id(),
    loam.text("email", { null = false }),
  })
  local Order = db:model("orders", {
    loam.id(),
    loam.bigint("customer_id", { null = false, references = Customer }),
    loam.integer("total_cents", { null = false }),
  })
  local Product = db:model("products", {
    loam.id(),
    loam.text("name", { null = false }),
  })
  local Item = db:model("order_items", {
    loam.id(),
    loam.bigint("order_id", { null = false, references = Order }),
    loam.bigint("product_id", { null = false, references = Product }),
    loam.integer("qty", { null = false }),
  })
  Order:belongs_to("customer", Customer, { inverse = "orders" })
  Customer:has_many("orders", Order, { inverse = "customer" })
  Order:has_many("items", Item, { inverse = "order" })
  Item:belongs_to("order", Order, { inverse = "items" })
  Item:belongs_to("product", Product)
  return Customer, Order, Product, Item
end

-- 'n' orders over n/5 customers (at least one), 3 items each over 20 products.
local function seed(Customer, Order, Product, Item, n)
  local customers, products = {}, {}
  for i = 1, math.max(n // 5, 1) do customers[i] = { email = "c" .. i .. "@example.com" } end
  for i = 1, 20 do products[i] = { name = "product " .. i } end
  customers = Customer:insert_many(customers, { returning = true })
  products = Product:insert_many(products, { returning = true })
  local orders = {}
  for i = 1, n do
    orders[i] = { customer_id = customers[i % #customers + 1].id, total_cents = i }
  end
  orders = Order:insert_many(orders, { returning = true })
  local items = {}
  for i, o in ipairs(orders) do
    for j = 1, 3 do
      items[#items + 1] = { order_id = o.id, product_id = products[(i + j) % 20 + 1].id, qty = j }
    end
  end
  Item:insert_many(items)
end

-- What a page shows: every order with its customer and items (and, with
-- 'products', each item's product).
local function render(orders, products)
  local lines = {}
  for _, o in ipairs(orders) do
    local parts = {}
    for _, it in ipairs(o.items) do
      parts[#parts + 1] = products and (it.qty .. "x " .. it.product.name) or tostring(it.qty)
    end
    lines[#lines + 1] = o.customer.email .. ": " .. table.concat(parts, ", ")
  end
  return lines
end

-- The statements 'fn' runs on 'db', and the sizes of its db:load_batch
-- calls (one call per level of relations), spied on the methods of 'db'
-- (its metatable), which the loader calls.
local function measure(db, fn)
  local Database = getmetatable(db)
  local real = Database.load_batch
  local calls = {}
  Database.load_batch = function(self, specs)
    calls[#calls + 1] = #specs
    return real(self, specs)
  end
  local before = db:stats().queries
  local ok, result = pcall(fn)
  Database.load_batch = real
  if not ok then error(result, 0) end
  return db:stats().queries - before, calls, result
end

for backend in helper.each_backend() do
  describe(backend.label .. ": orders with their customers and line items", function()
    local db, Customer, Order, Product, Item

    before_each(function()
      db = helper.connect(backend)
      helper.drop_tables(db, TABLES)
      Customer, Order, Product, Item = declare(db)
      loam.create_tables(db, { Customer, Order, Product, Item })
    end)

    after_each(function()
      helper.drop_tables(db, TABLES)
      db:close()
    end)

    it("the naive loop raises in strict mode, before any query per order", function()
      seed(Customer, Order, Product, Item, 100)
      local n, _, err = measure(db, function()
        local orders = Order:all()
        return helper.catch(render, orders)
      end)
      assert.are.equal(1, n)
      assert.are.equal("not_loaded", err.code)
      assert.are.equal("orders", err.model)
      assert.are.equal("items", err.relation)
      assert.matches('add include("items")', err.message, 1, true)
    end)

    for _, count in ipairs { 10, 100, 1000 } do
      it(count .. " orders: include costs 3 statements, one load_batch call", function()
        seed(Customer, Order, Product, Item, count)
        local n, calls, lines = measure(db, function()
          return render(Order:include("customer", "items"):order_by("id"):all())
        end)
        assert.are.equal(count, #lines)
        assert.are.equal("c2@example.com: 1, 2, 3", lines[1])
        assert.are.equal(3, n)
        assert.are.same({ 2 }, calls)

        -- Products: one more level, or none when joined into the items' query.
        n, calls, lines = measure(db, function()
          return render(Order:include("customer", { items = "product" }):order_by("id"):all(), true)
        end)
        assert.are.equal("c2@example.com: 1x product 3, 2x product 4, 3x product 5", lines[1])
        assert.are.equal(4, n)
        assert.are.same({ 2, 1 }, calls)
        n, calls = measure(db, function()
          return render(Order:include("customer", { items = { product = { strategy = "joined" } } })
                             :order_by("id"):all(), true)
        end)
        assert.are.equal(3, n)
        assert.are.same({ 2 }, calls)
      end)
    end

    it("the opt-in lazy mode runs the naive loop in 3 statements too", function()
      seed(Customer, Order, Product, Item, 100)
      for _, make in ipairs {
        function() return Order:order_by("id"):lazy():all() end,              -- per query
        function() db:lazy_loading(true) return Order:order_by("id"):all() end,        -- per connection
        function() db:lazy_loading(false) Order:lazy_loading(true) return Order:order_by("id"):all() end,  -- per model
      } do
        local n, calls, lines = measure(db, function() return render(make()) end)
        assert.are.equal(100, #lines)
        assert.are.equal(3, n)
        assert.are.same({ 1, 1 }, calls)  -- each relation on its first read
      end
      -- The N+1 detector (loam.track) agrees: no statement repeats.
      assert.no_n_plus_one(db, function() render(Order:order_by("id"):all()) end)
    end)

    it("the detector reports an include whose relation nothing reads", function()
      seed(Customer, Order, Product, Item, 10)
      local report = loam.track(db, function()
        for _, o in ipairs(Order:include("customer", "items"):all()) do
          local _ = o.customer.email
        end
      end)
      assert.are.equal(3, report.queries)
      assert.are.same({}, report.n_plus_one)
      assert.are.equal(1, #report.unused)
      assert.are.equal("orders", report.unused[1].model)
      assert.are.equal("items", report.unused[1].relation)
    end)
  end)
end
