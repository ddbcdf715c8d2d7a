-- The lines of an order: one product each, with the price paid.
local loam = require "loam"

return function(db, models)
  models.LineItem = db:model("line_items", {
    loam.id(),
    loam.bigint("order_id", { null = false, references = "orders", on_delete = "cascade" }),
    loam.bigint("product_id", { null = false, references = "products" }),
    loam.integer("quantity", { null = false, check = "quantity > 0" }),
    loam.integer("price_cents", { null = false }),
  }, { uniques = { { "order_id", "product_id" } } })
  return function()
    models.LineItem:belongs_to("order", models.Order, { inverse = "items" })
    models.LineItem:belongs_to("product", models.Product)
  end
end
