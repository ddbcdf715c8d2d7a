-- A development data set: 50 customers, 200 orders, 600 line items.
-- Every value is computed from the row's number, so a second run
-- declares the same rows and changes nothing.

local customers, orders, items = {}, {}, {}
for c = 1, 50 do
  customers[c] = { email = ("customer%02d@example.com"):format(c),
                   name = ("Customer %d"):format(c),
                   tier = c % 5 == 0 and "pro" or "free" }
end
for o = 1, 200 do
  local number, total = ("A-%04d"):format(o), 0
  for line = 1, 3 do
    local p = (o * 7 + line * 3) % 20 + 1
    local quantity = (o + line) % 4 + 1
    total = total + quantity * 250 * p
    items[#items + 1] = { order_id = ref { number = number },
                          product_id = ref { sku = ("SKU-%03d"):format(p) },
                          quantity = quantity, price_cents = 250 * p }
  end
  orders[o] = { number = number,
                customer_id = ref { email = ("customer%02d@example.com"):format((o - 1) % 50 + 1) },
                status = ({ "new", "paid", "shipped" })[o % 3 + 1], total_cents = total }
end

seed "customers" { key = "email", table.unpack(customers) }
seed "orders" { key = "number", table.unpack(orders) }
seed "line_items" { key = { "order_id", "product_id" }, table.unpack(items) }
