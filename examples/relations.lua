-- examples/relations.lua: relations, and loading them without N+1.
--
--   build/bin/loam examples/relations.lua                  (in-memory SQLite)
--   build/bin/loam examples/relations.lua postgresql:///shop?host=/run/postgresql
--
-- Declares a small shop (customers, orders, line items, products), loads a
-- page of orders with their customers and items the way a page would show
-- them, and prints how many statements that took: with include, the
-- strict error without it, lazy loading when opted in, a joined load, and
-- serialization of what was loaded.

local loam = require "loam"

local db <close> = loam.connect(arg[1] or "sqlite::memory:")

local Customer = db:model("customers", {
  loam.id(),
  loam.text("email", { null = false, unique = true }),
})
local Order = db:model("orders", {
  loam.id(),
  loam.bigint("customer_id", { null = false, references = Customer }),
})
local Product = db:model("products", { loam.id(), loam.text("name", { null = false }) })
local Item = db:model("order_items", {
  loam.id(),
  loam.bigint("order_id", { null = false, references = Order }),
  loam.bigint("product_id", { null = false, references = Product }),
  loam.integer("qty", { null = false }),
})

-- Relations come after the models, so two models can point at each other.
-- Keys are found from the foreign keys when one column fits.
Order:belongs_to("customer", Customer, { inverse = "orders" })
Customer:has_many("orders", Order, { inverse = "customer" })
Order:has_many("items", Item, { inverse = "order" })
Item:belongs_to("order", Order, { inverse = "items" })
Item:belongs_to("product", Product)

db:drop_tables { Item, Product, Order, Customer }
db:create_tables { Customer, Order, Product, Item }

local ada = Customer:create { email = "ada@example.com" }
local bob = Customer:create { email = "bob@example.com" }
local apple = Product:create { name = "apple" }
local pear = Product:create { name = "pear" }
for i, who in ipairs { ada, bob, ada } do
  local o = Order:create { customer_id = who.id }
  Item:create { order_id = o.id, product_id = apple.id, qty = i }
  Item:create { order_id = o.id, product_id = pear.id, qty = 1 }
end

-- The statements 'fn' runs, counted by the core.
local function statements(fn)
  local before = db:stats().queries
  fn()
  return db:stats().queries - before
end

local function show(orders)
  for _, o in ipairs(orders) do
    local parts = {}
    for _, it in ipairs(o.items) do parts[#parts + 1] = it.qty .. "x " .. it.product.name end
    print(("  order %d  %-16s %s"):format(o.id, o.customer.email, table.concat(parts, ", ")))
  end
end

local n = statements(function()
  show(Order:include("customer", { items = "product" }):order_by("id"):all())
end)
print("include: " .. n .. " statements")

-- Strict by default: an unloaded relation raises instead of querying.
local orders = Order:order_by("id"):all()
local ok, err = pcall(function() return orders[1].customer end)
print(ok, err.code)
print(tostring(err))

-- Lazy loading is opt-in; a read loads for the whole result set at once.
Order:lazy_loading(true)
Item:lazy_loading(true)
n = statements(function() show(Order:order_by("id"):all()) end)
print("lazy: " .. n .. " statements")
Order:lazy_loading(false)
Item:lazy_loading(false)

-- To-one relations can join into the parent's own statement.
local joined = Order:include { customer = { strategy = "joined" } }:order_by("id")
print((joined:to_sql()))

-- Two collections in one joined statement would multiply rows: refused.
ok, err = pcall(Customer.include, Customer,
                { orders = { strategy = "joined", include = { items = { strategy = "joined" } } } })
print(err.message)

-- Serialization includes what was loaded and never queries.
local o = Order:include("customer", { items = "product" }):order_by("id"):first()
db:drop_tables { Item, Product, Order, Customer }  -- the next example starts from nothing
db:close()
local t = o:to_table { include = { "customer", items = { "product", only = { "qty" } } } }
print(t.customer.email, #t.items, t.items[1].qty, t.items[1].product.name)
