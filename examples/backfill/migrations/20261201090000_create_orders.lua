return migration {
  change = {
    create_table("orders", { id(), integer("total_cents", { null = false }), text("status") }),
  },
}
