return migration {
  change = {
    create_table("customers", {
      id(),
      text("email", { length = 255, null = false, unique = true }),
    }),
    create_table("orders", {
      id(),
      bigint("customer_id", { null = false, references = "customers", on_delete = "cascade" }),
      integer("total_cents", { null = false, default = 0 }),
    }),
    add_index("orders", { "customer_id" }),
  },
}
