-- The customers: declared once here, for every `loam run` script and
-- the console.
local loam = require "loam"

return function(db, models)
  models.Customer = db:model("customers", {
    loam.id(),
    loam.text("email", { length = 255, null = false, unique = true }),
    loam.enum("tier", { "free", "pro" }, { default = "free" }),
  })
  -- Runs once every model file has: the relation's target exists by then.
  return function()
    models.Customer:has_many("orders", models.Order, { inverse = "customer" })
  end
end
