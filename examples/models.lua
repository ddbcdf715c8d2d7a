-- examples/models.lua: models, queries and what they send to the database.
--
--   build/bin/loam examples/models.lua                  (in-memory SQLite)
--   build/bin/loam examples/models.lua postgresql:///shop?host=/run/postgresql
--
-- Declares two models, creates their tables straight from the models (a
-- throwaway database: production schemas change through migrations),
-- writes and reads rows through instances and chainable queries, and
-- prints the SQL of a few queries.

local loam = require "loam"
local op = loam.op

local db <close> = loam.connect(arg[1] or "sqlite::memory:")

local Customer = db:model("customers", {
  loam.id(),
  loam.text("email", { length = 255, null = false, unique = true }),
  loam.enum("tier", { "free", "pro" }, { default = "free" }),
})

local Order = db:model("orders", {
  loam.id(),
  loam.bigint("customer_id", { null = false, references = Customer, on_delete = "cascade" }),
  loam.text("status", { length = 20, null = false, default = "new" }),
  loam.integer("total_cents", { null = false, check = "total_cents >= 0" }),
}, { indexes = { { "customer_id", "status" } } })

db:drop_tables { Order, Customer }
db:create_tables { Customer, Order }

local ada = Customer:create { email = "ada@example.com", tier = "pro" }
local bob = Customer:create { email = "bob@example.com" }
print(("created %s (id %d, tier %s) and %s (tier %s)"):format(ada.email, ada.id, ada.tier,
                                                               bob.email, bob.tier))

Order:insert_many {
  { customer_id = ada.id, status = "paid", total_cents = 1250 },
  { customer_id = ada.id, status = "paid", total_cents = 400 },
  { customer_id = bob.id, status = "new", total_cents = 9900 },
  { customer_id = bob.id, status = "paid", total_cents = 300 },
}

local paid = Order:where { status = "paid", total_cents = op.gte(400) }:order_by("-total_cents")
for _, o in ipairs(paid:all()) do
  print(("order %d: %d cents"):format(o.id, o.total_cents))
end
print("paid orders:", Order:where { status = "paid" }:count(),
      "sum:", Order:where { status = "paid" }:sum("total_cents"))

local sql, params = paid:limit(10):to_sql()
print(sql)
print("params:", table.concat(params, ", "))

bob.tier = "pro"
bob:save()                                   -- UPDATE of the changed column only
print("pro customers:", table.concat(Customer:where { tier = "pro" }:order_by("id"):pluck("email"), ", "))

local rows, cursor = Order:order_by("id"):paginate { limit = 3 }
print(("page 1: %d orders, next cursor %s"):format(#rows, cursor and "present" or "none"))
rows, cursor = Order:order_by("id"):paginate { limit = 3, after = cursor }
print(("page 2: %d orders, next cursor %s"):format(#rows, cursor and "present" or "none"))

local ok, err = pcall(Order.create, Order, { customer_id = ada.id, total_cents = "12x" })
print(err.code, err.column)
print(tostring(err))
ok, err = pcall(Customer.create, Customer, { email = "eve@example.com", tier = "gold" })
print(tostring(err))
print(loam.null == ada:to_table().tier, ada:to_table { only = { "email" } }.email)

-- The tables go again, so the next example (or run) starts from nothing.
db:drop_tables { Order, Customer }
