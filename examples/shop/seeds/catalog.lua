-- The catalog: reference data, the same in every environment.
reference_data = true

local products = {}
for i = 1, 20 do
  products[i] = { sku = ("SKU-%03d"):format(i), name = ("Product %d"):format(i),
                  price_cents = 250 * i }
end
seed "products" { key = "sku", table.unpack(products) }
