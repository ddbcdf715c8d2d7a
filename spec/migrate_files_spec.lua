-- spec/migrate_files_spec.lua: migration files (loam.migrate.file) run by
-- the core's runner through the binding (core.migrate_up, _down, _status,
-- migration_sql), on SQLite and PostgreSQL: every operation, written in
-- files, applied and reverted; a failure leaving schema and history as
-- they were; edited files, two heads, missing parents, irreversible
-- downs; and the file errors, each named by file and line.
--
-- On PostgreSQL each case runs in a schema of its own (the URL's
-- search_path), so the runner's tables never meet the other specs'.

local helper = require "spec.helper"
local loam = require "loam"
local core = require "loam.core"
local file = require "loam.migrate.file"

local tmpdir = helper.tmpdir

local function write(dir, name, text)
  helper.write(dir .. "/" .. name, text)
end

local nschemas = 0

-- A database of its own for one case: a SQLite file, or a PostgreSQL
-- schema (dropped by 'done').
local function fresh(backend)
  if backend.name ~= "postgres" then
    local url = "sqlite:" .. helper.tmpname(".db")
    return loam.connect(url), function() end, url
  end
  nschemas = nschemas + 1
  local schema = ("loam_migspec_%d_%d"):format(nschemas, math.random(1, 1e9))
  local admin = loam.connect(backend.url)
  admin:exec("CREATE SCHEMA " .. schema)
  local url = backend.url .. "&options=-csearch_path%3D" .. schema
  local db = loam.connect(url)
  return db, function()
    db:close()
    admin:exec("DROP SCHEMA " .. schema .. " CASCADE")
    admin:close()
  end, url
end

local function states(db, migs)
  local out = {}
  for _, s in ipairs(core.migrate_status(db, migs)) do out[#out + 1] = s.version .. " " .. s.state end
  return out
end


-- Whether 'sql' runs without an error.
local function ok(db, sql, params)
  return (pcall(db.exec, db, sql, params))
end

local EVERY_OP = {
  ["20260101000001_customers.lua"] = [[
return migration {
  change = {
    create_table("customers", { id(), text("email", { null = false, unique = true }) }),
    create_table("orders", {
      id(),
      bigint("customer_id"),
      integer("qty", { default = 1 }),
      text("note"),
    }),
    execute("INSERT INTO customers (email) VALUES (?)", { "a@example.com" },
            { down = "DELETE FROM customers" }),
  },
}
]],
  ["20260101000002_order_columns.lua"] = [[
return migration {
  parent = "20260101000001",
  change = {
    add_column("orders", text("status", { null = false, default = "new" })),
    rename_column("orders", "note", "remark"),
    alter_column("orders", "qty", { type = bigint("qty"), default = 2, null = false,
                                    before = integer("qty", { default = 1 }) }),
    add_index("orders", { "status" }, { where = "status <> 'done'" }),
    add_index("orders", { "customer_id", "status" }, { unique = true, name = "orders_cs" }),
  },
}
]],
  ["20260101000003_constraints.lua"] = [[
return migration {
  parent = "20260101000002",
  change = {
    add_foreign_key("orders", { "customer_id" }, "customers", { "id" },
                    { on_delete = "cascade", not_valid = true }),
    validate_foreign_key("orders", "orders_customer_id_fkey"),
    add_check("orders", "orders_qty_positive", "qty > 0"),
    rename_table("orders", "purchases"),
  },
}
]],
  ["20260101000004_drops.lua"] = [[
return migration {
  parent = "20260101000003",
  up = {
    drop_check("purchases", "orders_qty_positive"),
    drop_foreign_key("purchases", "orders_customer_id_fkey"),
    drop_index("purchases", "orders_cs"),
    drop_column("purchases", "remark"),
    create_table("scratch", { id() }),
    drop_table("scratch"),
  },
  down = {
    add_column("purchases", text("remark")),
    add_index("purchases", { "customer_id", "status" }, { unique = true, name = "orders_cs" }),
    add_foreign_key("purchases", { "customer_id" }, "customers", { "id" },
                    { on_delete = "cascade", name = "orders_customer_id_fkey" }),
    add_check("purchases", "orders_qty_positive", "qty > 0"),
  },
}
]],
}

local function folder(files)
  local dir = tmpdir()
  for name, text in pairs(files) do write(dir, name, text) end
  return dir
end

for backend in helper.each_backend() do
  if not backend.memory then
    describe(backend.label .. ": migration files", function()
      it("apply every operation in order and revert them all", function()
        local db, done = fresh(backend)
        local migs = file.read(folder(EVERY_OP))
        assert.equal(4, #migs)
        assert.equal(4, core.migrate_up(db, migs))
        assert.same({ "20260101000001 applied", "20260101000002 applied",
                      "20260101000003 applied", "20260101000004 applied" }, states(db, migs))
        assert.is_true(db:table_exists("purchases"))
        assert.is_false(db:table_exists("orders"))
        assert.is_false(db:table_exists("scratch"))
        local c = db:query("SELECT id FROM customers")[1].id
        -- status defaults to 'new', qty to 2 and is NOT NULL, remark is gone
        db:exec("INSERT INTO purchases (customer_id) VALUES (?)", { c })
        local row = db:query("SELECT status, qty FROM purchases")[1]
        assert.same({ status = "new", qty = 2 }, row)
        assert.is_false(ok(db, "INSERT INTO purchases (customer_id, qty) VALUES (?, NULL)", { c }))
        assert.is_false(ok(db, "SELECT remark FROM purchases"))
        -- the check and the foreign key were dropped by the last migration
        assert.is_true(ok(db, "INSERT INTO purchases (customer_id, qty) VALUES (?, -1)", { c }))
        db:exec("DELETE FROM purchases")

        assert.equal(1, core.migrate_down(db, migs, 1))
        -- down of 4 put the check and the foreign key back
        assert.is_false(ok(db, "INSERT INTO purchases (customer_id, qty) VALUES (?, -1)", { c }))
        assert.is_true(ok(db, "SELECT remark FROM purchases"))
        if backend.name == "sqlite" then db:exec("PRAGMA foreign_keys = ON") end
        db:exec("INSERT INTO purchases (customer_id) VALUES (?)", { c })
        db:exec("DELETE FROM customers")
        assert.equal(0, helper.count(db, "purchases"))   -- on delete cascade

        assert.equal(3, core.migrate_down(db, migs, 3))
        for _, t in ipairs { "customers", "orders", "purchases" } do
          assert.is_false(db:table_exists(t), t)
        end
        assert.same({ "20260101000001 pending", "20260101000002 pending",
                      "20260101000003 pending", "20260101000004 pending" }, states(db, migs))
        -- and up again, from nothing
        assert.equal(4, core.migrate_up(db, migs))
        done()
      end)

      it("leave schema and history as they were when a migration fails", function()
        local db, done = fresh(backend)
        local dir = folder {
          ["20260101000001_a.lua"] = 'return migration { change = { create_table("t", { id() }) } }',
          ["20260101000002_b.lua"] = [[
return migration {
  parent = "20260101000001",
  change = {
    add_column("t", text("x")),
    create_table("u", { id() }),
    execute("INSERT INTO no_such_table VALUES (1)", nil, { down = "SELECT 1" }),
  },
}
]],
        }
        local migs = file.read(dir)
        local err = helper.catch(core.migrate_up, db, migs)
        assert.equal("undefined_table", err.code)
        assert.matches("^migration 20260101000002 %(b%), step 3 %(execute%): ", err.message)
        assert.same({ "20260101000001 applied", "20260101000002 pending" }, states(db, migs))
        assert.is_false(ok(db, "SELECT x FROM t"))
        assert.is_false(db:table_exists("u"))
        done()
      end)

      it("report an applied file that changed, and refuse to go on", function()
        local db, done = fresh(backend)
        local dir = folder {
          ["20260101000001_a.lua"] = 'return migration { change = { create_table("t", { id() }) } }',
        }
        assert.equal(1, core.migrate_up(db, file.read(dir)))
        write(dir, "20260101000001_a.lua",
          'return migration { change = { create_table("t", { id(), text("x") }) } }')
        write(dir, "20260101000002_b.lua",
          'return migration { parent = "20260101000001", change = { create_table("u", { id() }) } }')
        local migs = file.read(dir)
        assert.same({ "20260101000001 changed", "20260101000002 pending" }, states(db, migs))
        local err = helper.catch(core.migrate_up, db, migs)
        assert.equal("checksum_mismatch", err.code)
        assert.matches("20260101000001", err.message)
        assert.is_false(db:table_exists("u"))
        done()
      end)

      it("refuse two heads and a missing parent; a merge migration joins the heads", function()
        local db, done = fresh(backend)
        local dir = folder {
          ["20260101000001_a.lua"] = 'return migration { change = { create_table("t", { id() }) } }',
          ["20260101000002_b.lua"] =
            'return migration { parent = "20260101000001", change = { add_column("t", text("b")) } }',
          ["20260101000003_c.lua"] =
            'return migration { parent = "20260101000001", change = { add_column("t", text("c")) } }',
        }
        local err = helper.catch(core.migrate_up, db, file.read(dir))
        assert.equal("migration_conflict", err.code)
        assert.equal("two heads: 20260101000002 (b) and 20260101000003 (c) are both followed by "
          .. "no migration, as after a merge of two branches; add a merge migration that "
          .. "follows both", err.message)
        assert.is_false(db:table_exists("t"))
        write(dir, "20260101000004_merge.lua",
          'return migration { parent = { "20260101000002", "20260101000003" }, change = {} }')
        assert.equal(4, core.migrate_up(db, file.read(dir)))
        assert.is_true(ok(db, "SELECT b, c FROM t"))

        write(dir, "20260101000005_d.lua",
          'return migration { parent = "20260101000009", change = {} }')
        err = helper.catch(core.migrate_up, db, file.read(dir))
        assert.equal("migration_conflict", err.code)
        assert.equal("migration 20260101000005 (d) follows 20260101000009, which is not among "
          .. "the migrations", err.message)
        done()
      end)

      it("refuse to revert an irreversible migration, naming the step and why", function()
        local db, done = fresh(backend)
        local dir = folder {
          ["20260101000001_a.lua"] =
            'return migration { change = { create_table("t", { id(), text("x") }) } }',
          ["20260101000002_b.lua"] =
            'return migration { parent = "20260101000001", change = { drop_column("t", "x") } }',
        }
        local migs = file.read(dir)
        assert.is_false(migs[2].reversible)
        assert.equal(2, core.migrate_up(db, migs))
        local err = helper.catch(core.migrate_down, db, migs, 1)
        assert.equal("misuse", err.code)
        assert.equal("migration 20260101000002 (b) cannot be reverted: its down is derived from "
          .. "its operations, and step 1 (drop_column): drop_column on table 't': cannot be "
          .. "reversed: the column's values are gone; write the 'down' yourself",
          err.message)
        assert.same({ "20260101000001 applied", "20260101000002 applied" }, states(db, migs))
        done()
      end)

      it("render the exact statements of a migration without running them", function()
        local db, done = fresh(backend)
        local dir = folder {
          ["20260101000001_a.lua"] = [[
return migration {
  change = {
    create_table("t", { id(), text("x") }),
    add_index("t", { "x" }, { concurrently = true }),
  },
}
]],
        }
        local migs = file.read(dir)
        local sql, outside = core.migration_sql(db, migs[1], "up", {})
        if backend.name == "postgres" then
          assert.same({ 'CREATE TABLE "t" ("id" bigint GENERATED BY DEFAULT AS IDENTITY '
            .. 'CONSTRAINT "t_pkey" PRIMARY KEY, "x" text)',
            'CREATE INDEX CONCURRENTLY "t_x_idx" ON "t" ("x")' }, sql)
          assert.is_true(outside)
        else
          assert.same({ 'CREATE TABLE "t" ("id" INTEGER CONSTRAINT "t_pkey" PRIMARY KEY, '
            .. '"x" TEXT)', 'CREATE INDEX "t_x_idx" ON "t" ("x")' }, sql)
          assert.is_false(outside)
        end
        assert.is_false(db:table_exists("t"))
        assert.same({ "20260101000001 pending" }, states(db, migs))
        -- a down runs as its up: on PostgreSQL, step by step, the index dropped concurrently
        sql, outside = core.migration_sql(db, migs[1], "down")
        assert.same({ backend.name == "postgres" and 'DROP INDEX CONCURRENTLY "t_x_idx"'
          or 'DROP INDEX "t_x_idx"', 'DROP TABLE "t"' }, sql)
        assert.equal(backend.name == "postgres", outside)
        done()
      end)
    end)
  end
end

describe("migration files that are wrong", function()
  local function read_one(name, text)
    local dir = tmpdir()
    write(dir, name, text)
    return helper.catch(file.read, dir), dir
  end

  it("name a syntax error by file and line", function()
    local err, dir = read_one("20260101000001_a.lua", "return migration {\n  change = {\n  x y\n}")
    assert.equal("syntax_error", err.code)
    assert.equal(dir .. "/20260101000001_a.lua:3: '}' expected (to close '{' at line 2) near 'y'",
      err.message)
  end)

  it("name a runtime error by file and line", function()
    local err, dir = read_one("20260101000001_a.lua", "local x = nil\n\nreturn x.y")
    assert.equal("misuse", err.code)
    assert.equal(dir .. "/20260101000001_a.lua:3: attempt to index a nil value (local 'x')",
      err.message)
  end)

  it("name an unknown operation, list the valid ones and point at its line", function()
    local err, dir = read_one("20260101000001_a.lua",
      "return migration {\n  change = { add_colum('t', text('x')) },\n}")
    assert.equal("misuse", err.code)
    assert.equal(dir .. "/20260101000001_a.lua:2: ", err.where)
    assert.matches("^'add_colum' is not an operation, did you mean 'add_column'%? %(operations: "
      .. "create_table, drop_table, ", err.message)
  end)

  it("name an unknown option of an operation at its line", function()
    local err, dir = read_one("20260101000001_a.lua",
      "return migration {\n  change = {\n    add_index('t', { 'x' }, { uniq = true }),\n  },\n}")
    assert.equal("misuse", err.code)
    assert.equal(dir .. "/20260101000001_a.lua:3: ", err.where)
    assert.equal("add_index: unknown option 'uniq' (valid options: name, unique, where, "
      .. "concurrently)", err.message)
  end)

  it("refuse a file name that is not <version>_<name>.lua", function()
    for _, name in ipairs { "2026_a.lua", "20260101000001-a.lua", "20260101000001_A.lua",
                            "20261301000001_a.lua" } do
      local err = read_one(name, "return migration { change = {} }")
      assert.equal("misuse", err.code, name)
      assert.matches(name, err.message, 1, true)
    end
  end)

  it("refuse what is not a migration", function()
    local cases = {
      { "return 1", "the file declares no migration (return migration { ... } or "
        .. "data_migration { ... })" },
      { "migration { change = {} }\nreturn 1", "the file must return what migration { ... } "
        .. "returns, got integer (1)" },
      { "return migration { chnage = {} }", "unknown field 'chnage' of a migration (valid "
        .. "fields: parent, change, up, down, allow)" },
      { "return migration { up = {} }", "a migration with 'up' needs 'down' (down = {} when "
        .. "nothing is to undo), or 'change' instead of 'up' to derive it" },
      { "return migration { change = { 1 } }", "change #1 is not an operation (add_column(...), "
        .. "execute(...) and the like), got integer (1)" },
      { "return migration { parent = 'x', change = {} }", "parent #1 must be a version of 14 "
        .. "digits, got string (\"x\")" },
      { "return migration { change = {}, allow = { index_not_concurrent = '' } }",
        "allow.index_not_concurrent needs a written reason (allow = { index_not_concurrent = "
        .. "\"why it is safe here\" }), got string (\"\")" },
    }
    for _, case in ipairs(cases) do
      local err = read_one("20260101000001_a.lua", case[1])
      assert.equal("misuse", err.code, case[1])
      assert.matches(case[2], err.message, 1, true)
    end
  end)

  it("refuse two files of one version", function()
    local dir = tmpdir()
    write(dir, "20260101000001_a.lua", "return migration { change = {} }")
    write(dir, "20260101000001_b.lua", "return migration { change = {} }")
    local err = helper.catch(file.read, dir)
    assert.equal("migration_conflict", err.code)
    assert.equal(dir .. "/20260101000001_a.lua and " .. dir .. "/20260101000001_b.lua have the "
      .. "same version 20260101000001; give one of them a later one", err.message)
  end)
end)

describe("the migration functions of loam.core", function()
  local function mig(up)
    return { version = "20260101000001", name = "x", source = "", parents = {}, up = up }
  end

  it("refuse bad migrations, operations and options, naming them", function()
    local db = loam.connect("sqlite::memory:")
    local cases = {
      { core.migrate_up, { db, { mig { { op = "frobnicate" } } } },
        "DDL AST: migration 20260101000001 (x): up step 1: unknown operation 'frobnicate'" },
      { core.migrate_up, { db, { mig { { op = "add_column", table = "t", colum = {} } } } },
        "DDL AST: migration 20260101000001 (x): up step 1 (add_column) has an unknown field "
        .. "'colum'" },
      { core.migrate_up, { db, { mig { "x" } } },
        "migration 20260101000001 (x): up step 1 must be an operation table, not a string" },
      { core.migrate_up, { db, { { version = "1" } } }, "DDL AST: migration has no 'name'" },
      { core.migrate_up, { db, {}, { lock_wait_ms = "x" } }, "bad argument #3 to 'migrate_up' "
        .. "(option 'lock_wait_ms' must be a non-negative integer or \"forever\")" },
      { core.migrate_up, { db, {}, { to = 1 } },
        "migration option 'to' must be a string, not a number" },
      { core.migrate_down, { db, {}, -1 },
        "migrate_down: steps must be a non-negative integer, got -1" },
      { core.migration_sql, { db, mig {}, "sideways" },
        "bad argument #3 to 'migration_sql' (\"up\" or \"down\" expected)" },
      { core.migrate_status, { 1, {} },
        "bad argument #1 to 'migrate_status' (loam.Database expected, got number)" },
    }
    for _, case in ipairs(cases) do
      local err = helper.catch(case[1], table.unpack(case[2]))
      assert.equal("misuse", err.code)
      assert.equal(case[3], err.message)
    end
    assert.same({}, core.migrate_status(db, {}))
    assert.is_false(db:table_exists("loam_migrations"))
    db:close()
  end)

  it("say why an operation cannot be undone, and give the history's checksum", function()
    assert.equal("drop_table on table 't': cannot be reversed: its rows are gone; write the "
      .. "'down' yourself", core.op_irreversible { op = "drop_table", table = "t" })
    assert.is_nil(core.op_irreversible { op = "rename_table", table = "t", new_name = "u" })
    assert.equal("e71fa2190541574b", core.migration_checksum("abc"))
  end)
end)
