-- The operation constructors of migration files (loam.migrate.ops): the
-- op tables they make, and their strictness, which names the bad option
-- and lists the valid ones at the caller's line.
local helper = require "spec.helper"
local loam = require "loam"
local ops = require "loam.migrate.ops"

local function line() return debug.getinfo(2, "l").currentline end

describe("migration operations", function()
  it("make op tables that mirror loam_op, with the caller's file:line", function()
    local l = line() + 1
    local op = ops.add_column("orders", loam.text("status", { null = false, default = "new" }))
    assert.same({ name = "status", type = "text", null = false, default = "new" }, op.column)
    assert.equal("add_column", op.op)
    assert.equal("orders", op.table)
    assert.matches("migrate_ops_spec%.lua:" .. l .. "$", op.at)

    op = ops.add_index("orders", { "status" }, { concurrently = true, where = "status <> 'x'" })
    assert.same({ k = "create_index", table = "orders", columns = { "status" }, unique = false,
                  where = "status <> 'x'" }, op.index)
    assert.is_true(op.concurrently)

    op = ops.add_foreign_key("orders", "customer_id", "customers", "id", { on_delete = "cascade" })
    assert.equal("orders_customer_id_fkey", op.name)
    assert.same({ "customer_id" }, op.columns)
    assert.equal("cascade", op.on_delete)
    assert.is_false(op.not_valid)

    op = ops.execute("update t set a = ?", { 1 }, { down = "update t set a = 0" })
    assert.same({ 1 }, op.params)
    assert.equal("update t set a = 0", op.down_sql)
  end)

  it("create_table makes the create_table AST a model with those columns makes", function()
    local op = ops.create_table("items", {
      loam.id(),
      loam.text("sku", { length = 20, unique = true }),
      loam.integer("qty", { check = "qty >= 0" }),
      loam.bigint("order_id", { references = "orders", on_delete = "cascade" }),
    })
    local def = op.def
    assert.equal("create_table", def.k)
    assert.equal("items", def.name)
    assert.equal(4, #def.columns)
    assert.same({ table = "orders", on_delete = "cascade" }, def.columns[4].references)
    assert.same({ { name = "items_qty_check", sql = "qty >= 0" } }, def.checks)
    local err = helper.catch(ops.create_table, "items", { loam.id(), indexes = { { "id" } } })
    assert.equal("misuse", err.code)
    assert.equal("create_table: unknown option 'indexes' (valid options: primary_key, checks, "
      .. "uniques, foreign_keys)", err.message)
    -- A composite foreign key: the referenced columns as given, or none
    -- (the referenced table's primary key).
    op = ops.create_table("lines", {
      loam.bigint("order_id"), loam.integer("no"),
      foreign_keys = { { "order_id", "no", references = "order_lines", on_delete = "cascade" },
                       { "no", "order_id", references = "x", ref_columns = { "a", "b" },
                         name = "lines_x" } },
    })
    assert.same({ { name = "lines_order_id_no_fkey", columns = { "order_id", "no" },
                    ref_table = "order_lines", on_delete = "cascade" },
                  { name = "lines_x", columns = { "no", "order_id" }, ref_table = "x",
                    ref_columns = { "a", "b" } } }, op.def.foreign_keys)
  end)

  it("add_unique names the constraint as PostgreSQL would, unless given a name", function()
    local op = ops.add_unique("orders", { "customer_id", "code" })
    assert.same({ "orders", "orders_customer_id_code_key", { "customer_id", "code" } },
                { op.table, op.name, op.columns })
    op = ops.add_unique("orders", "code", { name = "orders_code_uq" })
    assert.same({ "orders_code_uq", { "code" } }, { op.name, op.columns })
    op = ops.drop_unique("orders", "orders_code_uq")
    assert.same({ "drop_unique", "orders", "orders_code_uq" }, { op.op, op.table, op.name })
  end)

  it("alter_column records what changes, the column as it becomes and as it was", function()
    local op = ops.alter_column("orders", "note", { null = false })
    assert.same({ type = false, null = true, default = false }, op.alter)
    assert.same({ name = "note", null = false }, op.column)
    assert.is_nil(op.before)
    op = ops.alter_column("orders", "qty", { type = loam.bigint("qty"), default = 0,
                                             before = loam.integer("qty") })
    assert.equal("bigint", op.column.type)
    assert.equal(0, op.column.default)
    assert.equal("integer", op.before.type)
    op = ops.alter_column("orders", "qty", { default = loam.null, before = loam.integer("qty", { default = 1 }) })
    assert.is_nil(op.column.default)
    assert.equal(1, op.before.default)
  end)

  it("refuse unknown options, naming them and the valid ones, at the caller's line", function()
    local l = helper.next_line()
    local ok, err = pcall(ops.add_index, "orders", { "status" }, { concurrent = true })
    err = helper.caught(ok, err)
    assert.equal("add_index: unknown option 'concurrent' (valid options: name, unique, where, "
      .. "concurrently)", err.message)
    assert.matches("migrate_ops_spec%.lua:" .. l .. ":", err.where)
  end)

  local bad = {
    { "drop_table", { "" }, "drop_table: table name must be a non-empty string, got string (\"\")" },
    { "add_column", { "t", "x" }, "add_column: the column must be a column declaration "
      .. "(text(...), integer(...) and the like), got string (\"x\")" },
    { "add_column", { "t", loam.integer("n", { check = "n > 0" }) },
      "add_column: column n: a check is a constraint of its own here; write "
      .. "add_check(\"t\", name, \"n > 0\")" },
    { "alter_column", { "t", "c", {} }, "alter_column: t.c: say what changes: type, null "
      .. "and/or default" },
    { "alter_column", { "t", "c", { default = 1 } }, "alter_column: t.c: a default is written "
      .. "for the column's type: give type = (the column as it becomes) or before = (the "
      .. "column as it was)" },
    { "alter_column", { "t", "c", { type = loam.text("d") } }, "alter_column: t.c: option "
      .. "'type' declares column 'd' (rename with rename_column)" },
    { "alter_column", { "t", "c", { nul = true } }, "alter_column: unknown option 'nul' (valid "
      .. "options: type, null, default, before)" },
    { "add_foreign_key", { "t", { "a", "b" }, "r", { "id" } }, "add_foreign_key: t: 2 columns "
      .. "reference 1 columns of r" },
    { "add_foreign_key", { "t", "a", "r", "id", { on_delete = "nothing" } }, "add_foreign_key: "
      .. "on_delete must be one of no action, restrict, cascade, set null, set default; got "
      .. "string (\"nothing\")" },
    { "add_check", { "t", "c", " " }, "add_check: the predicate must be a non-empty SQL string, "
      .. "got string (\" \")" },
    { "execute", { "select 1", { down = "x" } }, "execute: parameters must be an array, it has "
      .. "the key 'down' (options are the third argument: execute(sql, params, { down = ... }))" },
    { "drop_index", { "t", "i", { concurrently = 1 } }, "drop_index: option 'concurrently' must "
      .. "be a boolean, got integer (1)" },
    { "rename_table", { "a", "b", "c" }, "rename_table: takes at most 2 arguments, got 3" },
    { "add_unique", { "t", {} }, "add_unique: columns must be a column name or a non-empty array "
      .. "of them, got table" },
    { "add_unique", { "t", "a", { nam = "x" } }, "add_unique: unknown option 'nam' (valid "
      .. "options: name)" },
    { "drop_unique", { "t" }, "drop_unique: constraint name must be a non-empty string, got nil" },
  }
  for _, case in ipairs(bad) do
    it("refuse " .. case[1] .. " with " .. case[3]:sub(#case[1] + 3, #case[1] + 40), function()
      local err = helper.catch(ops[case[1]], table.unpack(case[2]))
      assert.equal("misuse", err.code)
      assert.equal(case[3], err.message)
    end)
  end
end)
