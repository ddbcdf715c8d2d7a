-- Customers, known by their email.
local loam = require "loam"

return function(db, models)
  models.Customer = db:model("customers", {
    loam.id(),
    loam.text("email", { length = 255, null = false, unique = true }),
    loam.text("name", { length = 100, null = false }),
    loam.enum("tier", { "free", "pro" }, { default = "free" }),
  })
  return function()
    models.Customer:has_many("orders", models.Order, { inverse = "customer" })
  end
end
