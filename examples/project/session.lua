db:create_tables { Customer, Order }
ada = Customer:create { email = "ada@example.com", tier = "pro" }
Order:create { customer_id = ada.id, total_cents = 1250 }
Customer:find(1)
db:query("SELECT id, customer_id, total_cents FROM orders")
for _, o in ipairs(Order:all()) do
  print(o.id, o.total_cents)
end
Customer:create { email = "ada@example.com" }
= #Customer:all()
