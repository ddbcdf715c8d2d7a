-- spec/migrate_data_spec.lua: data migrations (data_migration { ... }) and
-- their backfills, on SQLite and PostgreSQL: the backfill constructor's
-- checks, the refusal of schema and data operations in one file, batches by
-- key ranges, a failed run resumed, dry runs, down, and a refused run that
-- backfills nothing.

local helper = require "spec.helper"
local loam_db = require "loam"
local ops = require "loam.migrate.ops"
local file = require "loam.migrate.file"

local q = helper.shell_quote
local loam = helper.loam
local write = helper.write

local ORDERS = [[
return migration {
  change = { create_table("orders", { id(), text("status"), integer("cents") }) },
}
]]

local BACKFILL = [[
return data_migration {
  parent = "20260101000001",
  up = {
    backfill("orders", { set = { status = "new" }, where = { status = null }, batch = 2 }),
    execute("UPDATE orders SET cents = 0 WHERE cents IS NULL"),
  },
  down = {
    backfill("orders", { set = { status = null }, where_sql = "status = 'new'", batch = 3 }),
  },
}
]]

local function read_one(text)
  local dir = helper.tmpdir()
  write(dir .. "/20260101000001_a.lua", text)
  return helper.catch(file.read, dir), dir
end

describe("backfill(...)", function()
  it("makes an op table with where it was called", function()
    local op = ops.backfill("orders", { set = { status = "new" }, where = { status = loam_db.null } })
    assert.same({ "backfill", "orders", 1000, "new" }, { op.op, op.table, op.batch, op.set.status })
    assert.matches("migrate_data_spec.lua:%d+$", op.at)
  end)

  it("refuses bad arguments, naming them", function()
    local cases = {
      { { nil }, "backfill: needs options { set = { column = value } or set_sql" },
      { { { set = { a = 1 }, where = { a = 2 }, batc = 5 } },
        "backfill: unknown option 'batc' (valid options: set, set_sql, where, where_sql, batch, "
        .. "key)" },
      { { { where = { a = 1 } } }, "backfill: needs one of 'set' (a table { column = value }) "
        .. "and 'set_sql'" },
      { { { set = { a = 1 }, set_sql = "a = 1", where = { a = 1 } } }, "needs one of 'set'" },
      { { { set = { a = 1 } } }, "backfill: needs one of 'where' (a table { column = value }) "
        .. "and 'where_sql' (a predicate): the rows still to change" },
      { { { set = {}, where = { a = 1 } } }, "set must be a table { column = value, ... } with "
        .. "at least one column" },
      { { { set = { a = {} }, where = { a = 1 } } }, "set.a must be a string, number, boolean "
        .. "or loam.null, got table" },
      { { { set = { a = 1 }, where = { a = 1 }, batch = 0 } }, "option 'batch' must be a "
        .. "positive integer, got integer (0)" },
      { { { set = { a = 1 }, where = { a = 1 }, batch = 1.5 } }, "option 'batch' must be a "
        .. "positive integer" },
      { { { set_sql = " ", where = { a = 1 } } }, "set_sql must be a non-empty SQL string" },
      { { { set = { a = 1 }, where = { a = 1 } }, 3 }, "backfill" },
    }
    for _, case in ipairs(cases) do
      local err = helper.catch(ops.backfill, "orders", table.unpack(case[1]))
      assert.equal("misuse", err.code, case[2])
      assert.matches(case[2], err.message, 1, true)
    end
    local err = helper.catch(ops.backfill, "", { set = { a = 1 }, where = { a = 1 } })
    assert.equal("misuse", err.code)
  end)
end)

describe("data migration files", function()
  it("read with their backfills apart from what the core runs", function()
    local dir = helper.tmpdir()
    write(dir .. "/20260101000001_orders.lua", ORDERS)
    write(dir .. "/20260101000002_fill.lua", BACKFILL)
    local migs = file.read(dir)
    assert.same({ "schema", "data" }, { migs[1].kind, migs[2].kind })
    assert.is_nil(migs[1].backfill)
    local m = migs[2]
    assert.same({ 1, 1, 1, 0 }, { #m.backfill.up, #m.up, #m.backfill.down, #m.down })
    assert.equal("execute", m.up[1].op)
  end)

  it("refuse a schema operation in a data migration, naming it and its line", function()
    local err, dir = read_one('return data_migration {\n  up = {\n    execute("UPDATE t SET a '
      .. '= 1"),\n    add_column("t", text("b")),\n  },\n  down = {},\n}')
    assert.equal("misuse", err.code)
    assert.equal(dir .. "/20260101000001_a.lua:4: ", err.where)
    assert.equal(dir .. "/20260101000001_a.lua: data_migration: up #2, add_column, changes the "
      .. "schema; a data migration holds only execute and backfill (put add_column in a "
      .. "migration { } of its own)", err.message)
  end)

  it("refuse a backfill in a schema migration", function()
    local err, dir = read_one('return migration {\n  up = {\n    add_column("t", text("b")),\n'
      .. '    backfill("t", { set = { b = "x" }, where = { b = null } }),\n  },\n  down = {},\n}')
    assert.equal("misuse", err.code)
    assert.equal(dir .. "/20260101000001_a.lua:4: ", err.where)
    assert.matches("migration: up #2, backfill, changes rows in batches outside a transaction, "
      .. "which a schema migration must not; put it in a data_migration { } of its own",
      err.message, 1, true)
  end)

  it("refuse the other mistakes of a data migration", function()
    local cases = {
      { 'return data_migration {\n  change = {\n    backfill("t", { set = { b = 1 }, where = '
        .. '{ b = null } }),\n  },\n}', "data_migration: change #1, backfill, cannot be "
        .. "reversed (the values it overwrites are not kept): write up and down" },
      { 'return data_migration {\n  up = {\n    execute("DELETE FROM t"),\n    backfill("t", '
        .. '{ set = { b = 1 }, where = { b = null } }),\n  },\n  down = {},\n}',
        "data_migration: up #2, backfill, follows an execute; the backfills of a data "
        .. "migration come first" },
      { 'migration { change = {} }\nreturn data_migration { change = {} }', "a file declares "
        .. "one migration or data_migration, not two (schema and data changes are never mixed "
        .. "in one file)" },
      { 'return data_migration { up = {} }', "a migration with 'up' needs 'down'" },
      { 'return data_migration({ change = {} }, 2)', "data_migration takes one table" },
      { 'return data_migration(1)', "data_migration expects a table" },
    }
    for _, case in ipairs(cases) do
      local err = read_one(case[1])
      assert.equal("misuse", err.code, case[1])
      assert.matches(case[2], err.message, 1, true)
    end
  end)

  it("with change: executes whose down is given are reversed", function()
    local dir = helper.tmpdir()
    write(dir .. "/20260101000001_a.lua", 'return data_migration {\n  change = {\n    '
      .. 'execute("UPDATE t SET a = 1", nil, { down = "UPDATE t SET a = 0" }),\n  },\n}')
    local m = file.read(dir)[1]
    assert.same({ true, "data", 0, 1 }, { m.reversible, m.kind, #m.backfill.up, #m.up })
  end)
end)

for backend in helper.each_backend() do
  if not backend.memory then
    describe(backend.label .. ": loam migrate with a data migration", function()
      local dir, url, done, db

      before_each(function()
        dir, url, done = helper.migrate_project(backend)
        db = "--db " .. q(url)
        write(dir .. "/migrations/20260101000001_orders.lua", ORDERS)
        local _, err, code = loam(dir, "migrate up " .. db)
        assert.same({ 0, "" }, { code, err })
      end)

      after_each(function() done() end)

      local function rows(conn)
        local list = {}
        for _, r in ipairs(conn:query("SELECT id, status, cents FROM orders ORDER BY id")) do
          list[#list + 1] = { r.id, r.status == loam_db.null and "NULL" or r.status,
                              r.cents == loam_db.null and "NULL" or r.cents }
        end
        return list
      end

      local function seed(conn)
        for i = 1, 5 do
          conn:exec("INSERT INTO orders (id, status) VALUES (?, ?)",
            { i, i == 3 and "paid" or loam_db.null })
        end
      end

      it("backfills in batches, runs its executes, records it, and reverts it", function()
        local conn <close> = loam_db.connect(url)
        seed(conn)
        write(dir .. "/migrations/20260101000002_fill.lua", BACKFILL)
        local out, err, code = loam(dir, "migrate up " .. db)
        assert.same({ 0, "", "applied 20260101000002_fill\n" }, { code, err, out })
        assert.same({ { 1, "new", 0 }, { 2, "new", 0 }, { 3, "paid", 0 }, { 4, "new", 0 },
                      { 5, "new", 0 } }, rows(conn))
        out = loam(dir, "migrate status " .. db)
        assert.matches("20260101000002  fill    applied", out, 1, true)
        out, err, code = loam(dir, "migrate down " .. db)
        assert.same({ 0, "", "reverted 20260101000002_fill\n" }, { code, err, out })
        assert.same({ { 1, "NULL", 0 }, { 2, "NULL", 0 }, { 3, "paid", 0 }, { 4, "NULL", 0 },
                      { 5, "NULL", 0 } }, rows(conn))
        out = loam(dir, "migrate status " .. db)
        assert.matches("20260101000002  fill    pending", out, 1, true)
        out, err, code = loam(dir, "migrate up " .. db)
        assert.same({ 0, "" }, { code, err })
        out, err, code = loam(dir, "migrate redo " .. db)
        assert.same({ 0, "", "reverted 20260101000002_fill\napplied 20260101000002_fill\n" },
          { code, err, out })
        assert.equal("new", rows(conn)[1][2])
      end)

      it("a failed run leaves it unrecorded, its batches done; the next run resumes", function()
        local conn <close> = loam_db.connect(url)
        seed(conn)
        local path = dir .. "/migrations/20260101000002_fill.lua"
        write(path, (BACKFILL:gsub("UPDATE orders SET cents", "UPDATE nowhere SET cents")))
        local out, err, code = loam(dir, "migrate up " .. db)
        assert.same({ 1, "" }, { code, out })
        assert.matches("nowhere", err, 1, true)
        assert.same({ { 1, "new", "NULL" }, { 2, "new", "NULL" }, { 3, "paid", "NULL" },
                      { 4, "new", "NULL" }, { 5, "new", "NULL" } }, rows(conn))
        out = loam(dir, "migrate status " .. db)
        assert.matches("20260101000002  fill    pending", out, 1, true)
        -- a row written meanwhile is still to do; the rows done are skipped
        conn:exec("INSERT INTO orders (id) VALUES (6)")
        conn:exec("UPDATE orders SET status = 'kept' WHERE id = 1")
        write(path, BACKFILL)
        out, err, code = loam(dir, "migrate up " .. db)
        assert.same({ 0, "", "applied 20260101000002_fill\n" }, { code, err, out })
        assert.same({ { 1, "kept", 0 }, { 2, "new", 0 }, { 3, "paid", 0 }, { 4, "new", 0 },
                      { 5, "new", 0 }, { 6, "new", 0 } }, rows(conn))
      end)

      it("--dry-run prints the statements of a batch and changes nothing", function()
        local conn <close> = loam_db.connect(url)
        seed(conn)
        write(dir .. "/migrations/20260101000002_fill.lua", BACKFILL)
        local out, err, code = loam(dir, "migrate up --dry-run " .. db)
        assert.same({ 0, "" }, { code, err })
        assert.equal("-- 20260101000002_fill (up)\n"
          .. "-- backfill orders, in batches of 2 by id, each batch:\n"
          .. 'SELECT max("id") AS hi FROM (SELECT "id" FROM "orders" WHERE "id" > ? AND '
          .. '"status" IS NULL ORDER BY "id" LIMIT 2) AS b;  -- ? = the last key of the batch '
          .. "before\n"
          .. 'UPDATE "orders" SET "status" = ? WHERE "id" > ? AND "id" <= ? AND "status" IS '
          .. "NULL;  -- ? = 'new', the last key of the batch before, the batch's last key\n"
          .. "-- then, in one transaction with the history row:\n"
          .. "UPDATE orders SET cents = 0 WHERE cents IS NULL;\n", out)
        assert.equal("NULL", rows(conn)[1][2])
        loam(dir, "migrate up " .. db)
        out, err, code = loam(dir, "migrate down --dry-run " .. db)
        assert.same({ 0, "" }, { code, err })
        assert.matches('UPDATE "orders" SET "status" = ? WHERE "id" > ? AND "id" <= ? AND '
          .. "(status = 'new');  -- ? = NULL, the last key of the batch before, the batch's "
          .. "last key", out, 1, true)
        assert.equal("new", rows(conn)[1][2])
      end)

      it("a dry run of a backfill of a table not there yet needs key =", function()
        write(dir .. "/migrations/20260101000002_fill.lua", 'return data_migration {\n'
          .. '  parent = "20260101000001",\n  up = {\n    backfill("later", { set = { a = 1 }, '
          .. 'where = { a = null } }),\n  },\n  down = {},\n}\n')
        local out, err, code = loam(dir, "migrate up --dry-run " .. db)
        assert.same({ 1, "-- 20260101000002_fill (up)\n" }, { code, out })
        assert.equal("loam: undefined_table: migrations/20260101000002_fill.lua:4: backfill: "
          .. "table 'later' does not exist (yet: a dry run of the migration that creates it "
          .. "cannot read its primary key; give key = \"column\" or apply that migration "
          .. "first)\n", err)
        write(dir .. "/migrations/20260101000002_fill.lua", 'return data_migration {\n'
          .. '  parent = "20260101000001",\n  up = {\n    backfill("later", { set = { a = 1 }, '
          .. 'where = { a = null }, key = "k" }),\n  },\n  down = {},\n}\n')
        out, err, code = loam(dir, "migrate up --dry-run " .. db)
        assert.same({ 0, "" }, { code, err })
        assert.matches('UPDATE "later" SET "a" = ? WHERE "k" > ? AND "k" <= ? AND "a" IS NULL;',
          out, 1, true)
      end)

      it("a table without a one-column key needs key =", function()
        local conn <close> = loam_db.connect(url)
        conn:exec("CREATE TABLE pairs (a INTEGER NOT NULL, b INTEGER NOT NULL, note TEXT, "
          .. "PRIMARY KEY (a, b))")
        conn:exec("INSERT INTO pairs VALUES (1, 1, NULL), (1, 2, NULL), (2, 1, 'x')")
        write(dir .. "/migrations/20260101000002_fill.lua", 'return data_migration {\n'
          .. '  parent = "20260101000001",\n  up = {\n    backfill("pairs", { set = { note = '
          .. '"n" }, where = { note = null } }),\n  },\n  down = {},\n}\n')
        local out, err, code = loam(dir, "migrate up " .. db)
        assert.same({ 1, "" }, { code, out })
        assert.matches("migrations/20260101000002_fill.lua:4: backfill: table 'pairs' has a "
          .. "primary key of 2 columns, and its batches are ranges of one key column: give key "
          .. '= "column"', err, 1, true)
        write(dir .. "/migrations/20260101000002_fill.lua", 'return data_migration {\n'
          .. '  parent = "20260101000001",\n  up = {\n    backfill("pairs", { set = { note = '
          .. '"n" }, where_sql = "note IS NULL", key = "b", batch = 1 }),\n  },\n  down = {},\n}\n')
        out, err, code = loam(dir, "migrate up " .. db)
        assert.same({ 0, "", "applied 20260101000002_fill\n" }, { code, err, out })
        local notes = {}
        for _, r in ipairs(conn:query("SELECT note FROM pairs ORDER BY a, b")) do
          notes[#notes + 1] = r.note
        end
        assert.same({ "n", "n", "x" }, notes)
        conn:exec("DROP TABLE pairs")
      end)

      it("a run the core refuses backfills nothing", function()
        local conn <close> = loam_db.connect(url)
        seed(conn)
        write(dir .. "/migrations/20260101000002_fill.lua", BACKFILL)
        -- an edited applied file: the core refuses before any batch
        write(dir .. "/migrations/20260101000001_orders.lua", ORDERS .. "-- edited\n")
        local out, err, code = loam(dir, "migrate up " .. db)
        assert.same({ 1, "" }, { code, out })
        assert.matches("was changed after it was applied", err, 1, true)
        assert.equal("NULL", rows(conn)[1][2])
      end)
    end)
  end
end
