-- spec/migrate_lint_spec.lua: the safety linter (loam.migrate.lint).
-- Each rule is caught by a fixture, a migration file, and silenced by a
-- written reason in that file; rules know their backends and PostgreSQL
-- server versions, and the models the project still uses.

local helper = require "spec.helper"
local file = require "loam.migrate.file"
local lint = require "loam.migrate.lint"

local PG15 = { backend = "postgres", server_version = 150004,
               models = { orders = { id = true, note = true, qty = true } } }
local PG10 = { backend = "postgres", server_version = 100023 }
local SQLITE = { backend = "sqlite", models = PG15.models }

-- rule, the operation that breaks it, the context it is checked in, the message
local FIXTURES = {
  { "index_not_concurrent", 'add_index("orders", { "note" })', PG15,
    "add_index on existing table orders without concurrently" },
  { "foreign_key_validated", 'add_foreign_key("orders", "customer_id", "customers", "id")', PG15,
    "add_foreign_key orders_customer_id_fkey on existing table orders without not_valid" },
  { "check_validated", 'add_check("orders", "orders_qty", "qty > 0")', PG15,
    "add_check orders_qty on existing table orders without not_valid" },
  { "unique_not_concurrent", 'add_unique("orders", { "note" })', PG15,
    "add_unique orders_note_key on existing table orders" },
  { "set_not_null", 'alter_column("orders", "note", { null = false })', PG15,
    "alter_column orders.note sets NOT NULL directly" },
  { "volatile_default", 'add_column("orders", text("token", { default = sql("md5(random()::text)") }))',
    PG15, "add_column orders.token with the SQL default md5(random()::text)" },
  { "constant_default_rewrite", 'add_column("orders", integer("n", { default = 0 }))', PG10,
    "add_column orders.n with a default" },
  { "type_change_rewrite", 'alter_column("orders", "qty", { type = bigint("qty") })', PG15,
    "alter_column orders.qty changes its type to bigint" },
  { "rename_in_use", 'rename_column("orders", "note", "remark")', SQLITE,
    "rename_column orders.note, which a model still declares" },
  { "drop_column_in_use", 'drop_column("orders", "note")', PG15,
    "drop_column orders.note, which a model still declares" },
  { "not_null_without_default", 'add_column("orders", text("code", { null = false }))', SQLITE,
    "add_column orders.code is NOT NULL without a default" },
  { "schema_and_data", 'add_column("orders", text("code")),\n    execute("UPDATE orders SET code = note")',
    SQLITE, "execute UPDATE in a migration that also changes the schema" },
}

local function migration(body, allow)
  local dir = helper.tmpdir()
  local path = dir .. "/20260101000001_fixture.lua"
  local f = assert(io.open(path, "w"))
  f:write("return migration {\n  change = {\n    ", body, ",\n  },\n",
          allow and ("  allow = { %s = %q },\n"):format(allow, "reviewed: the table is small")
          or "", "}\n")
  f:close()
  return file.load(path), path
end

describe("the migration linter", function()
  it("lists every rule with why, the safe way and where it applies", function()
    local names = {}
    for _, r in ipairs(lint.RULES) do
      names[#names + 1] = r.name
      assert.is_string(r.why)
      assert.is_string(r.safe)
      assert.is_table(r.backends)
    end
    local fixtures = {}
    for _, fx in ipairs(FIXTURES) do fixtures[#fixtures + 1] = fx[1] end
    assert.same(names, fixtures)
  end)

  for _, fx in ipairs(FIXTURES) do
    local rule, body, ctx, message = fx[1], fx[2], fx[3], fx[4]
    it("catches " .. rule .. " and takes a written reason to silence it", function()
      local m, path = migration(body)
      local found = lint.check({ m }, ctx)
      assert.equal(1, #found)
      assert.equal(rule, found[1].rule)
      assert.equal(message, found[1].message)
      assert.matches("^" .. path:gsub("%p", "%%%0") .. ":%d+$", found[1].at)
      assert.equal(lint.by_name[rule].safe, found[1].safe)
      assert.equal(found[1].at .. ": " .. rule .. ": " .. message .. "\n  why: "
        .. found[1].why .. "\n  safe: " .. found[1].safe .. "\n  silence: allow = { " .. rule
        .. " = \"the reason\" }", lint.format(found[1]))
      assert.same({}, lint.check({ (migration(body, rule)) }, ctx))
    end)
  end

  it("leaves tables the migration creates alone, and rules to their backends and versions",
     function()
    local m = migration('create_table("t", { id(), text("x") }),\n    add_index("t", { "x" }),\n'
      .. '    add_check("t", "t_x", "x <> \'\'")')
    assert.same({}, lint.check({ m }, PG15))
    m = migration('add_index("orders", { "note" })')
    assert.same({}, lint.check({ m }, SQLITE))
    m = migration('add_column("orders", integer("n", { default = 0 }))')
    assert.same({}, lint.check({ m }, PG15))
    m = migration('drop_column("orders", "note")')
    assert.same({}, lint.check({ m }, { backend = "postgres", server_version = 150004 }))
  end)

  it("refuses an allow that names no rule", function()
    local m, path = migration('add_index("orders", { "note" })', "index_not_concurent")
    local err = helper.catch(lint.check, { m }, PG15)
    assert.equal("misuse", err.code)
    assert.equal(path .. ": allow names no rule 'index_not_concurent' (rules: "
      .. "index_not_concurrent, foreign_key_validated, check_validated, unique_not_concurrent, "
      .. "set_not_null, "
      .. "volatile_default, constant_default_rewrite, type_change_rewrite, rename_in_use, "
      .. "drop_column_in_use, not_null_without_default, schema_and_data)", err.message)
  end)
end)
