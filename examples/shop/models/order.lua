-- Orders, known by their number; each has a customer and line items.
local loam = require "loam"

return function(db, models)
  models.Order = db:model("orders", {
    loam.id(),
    loam.text("number", { length = 20, null = false, unique = true }),
    loam.bigint("customer_id", { null = false, references = "customers" }),
    loam.enum("status", { "new", "paid", "shipped" }, { default = "new" }),
    loam.integer("total_cents", { null = false, default = 0 }),
  }, { indexes = { { "customer_id" } } })
  return function()
    models.Order:belongs_to("customer", models.Customer, { inverse = "orders" })
    models.Order:has_many("items", models.LineItem, { inverse = "order" })
  end
end
