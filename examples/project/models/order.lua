-- The orders of a customer (models/customer.lua loads first: files load
-- in name order, so 'models.Customer' is there to reference).
local loam = require "loam"

return function(db, models)
  models.Order = db:model("orders", {
    loam.id(),
    loam.bigint("customer_id", { null = false, references = models.Customer }),
    loam.integer("total_cents", { null = false }),
  })
  return function()
    models.Order:belongs_to("customer", models.Customer, { inverse = "orders" })
  end
end
