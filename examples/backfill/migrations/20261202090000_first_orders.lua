return data_migration {
  parent = "20261201090000",
  change = {
    execute("INSERT INTO orders (total_cents, status) VALUES (100, NULL), (250, 'paid'), "
      .. "(75, NULL), (990, NULL), (40, NULL)", nil, { down = "DELETE FROM orders" }),
  },
}
