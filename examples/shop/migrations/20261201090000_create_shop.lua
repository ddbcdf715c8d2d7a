-- The shop's tables, as the models declare them.
return migration {
  change = {
    create_table("customers", {
      id(),
      text("email", { length = 255, null = false, unique = true }),
      text("name", { length = 100, null = false }),
      enum("tier", { "free", "pro" }, { default = "free" }),
    }),
    create_table("products", {
      id(),
      text("sku", { length = 32, null = false, unique = true }),
      text("name", { length = 100, null = false }),
      integer("price_cents", { null = false, check = "price_cents >= 0" }),
    }),
    create_table("orders", {
      id(),
      text("number", { length = 20, null = false, unique = true }),
      bigint("customer_id", { null = false, references = "customers" }),
      enum("status", { "new", "paid", "shipped" }, { default = "new" }),
      integer("total_cents", { null = false, default = 0 }),
    }),
    add_index("orders", { "customer_id" }),
    create_table("line_items", {
      id(),
      bigint("order_id", { null = false, references = "orders", on_delete = "cascade" }),
      bigint("product_id", { null = false, references = "products" }),
      integer("quantity", { null = false, check = "quantity > 0" }),
      integer("price_cents", { null = false }),
      uniques = { { "order_id", "product_id" } },
    }),
  },
}
