return data_migration {
  parent = "20261202090000",
  up = {
    backfill("orders", { set = { status = "new" }, where = { status = null }, batch = 2 }),
  },
  down = {},
}
