-- Products, known by their SKU.
local loam = require "loam"

return function(db, models)
  models.Product = db:model("products", {
    loam.id(),
    loam.text("sku", { length = 32, null = false, unique = true }),
    loam.text("name", { length = 100, null = false }),
    loam.integer("price_cents", { null = false, check = "price_cents >= 0" }),
  })
end
