-- loam run scripts/report.lua [N]: makes N customers (default 2) with
-- orders, then prints what each spent.  'db', 'Customer' and 'Order' are
-- the globals `loam run` sets.
local n = tonumber(arg[1]) or 2

db:create_tables { Customer, Order }
for i = 1, n do
  local c = Customer:create { email = ("user%d@example.com"):format(i),
                              tier = i % 2 == 0 and "pro" or "free" }
  for k = 1, i do
    Order:create { customer_id = c.id, total_cents = 250 * k }
  end
end

for _, c in ipairs(Customer:include("orders"):order_by("id"):all()) do
  local cents = 0
  for _, o in ipairs(c.orders) do cents = cents + o.total_cents end
  print(c.email, c.tier, #c.orders .. " orders", cents .. " cents")
end
