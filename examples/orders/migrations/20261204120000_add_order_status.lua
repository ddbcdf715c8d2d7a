return migration {
  parent = "20261201090000",
  change = {
    add_column("orders", text("status", { null = false, default = "new" })),
    add_index("orders", { "status" }, { concurrently = true }),
  },
}
