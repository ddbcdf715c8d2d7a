-- spec/migrate_data_spec.lua: data migrations (data_migration { ... }) and
-- their backfills, on SQLite and PostgreSQL: the backfill constructor's
-- checks, the refusal of schema and data operations in one file, batches by
-- key ranges, a failed run resumed, dry runs, down, and a refused run that
-- backfills nothing.

local helper = require "spec.helper"
local loam_db = require "loam"
local ops = require "loam.migrate.ops"
local file = require "loam.migrate.file"
local core = require "loam.core"

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
        .. "key, pause_ms)" },
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
  it("read with their backfills first, as the core runs them", function()
    local dir = helper.tmpdir()
    write(dir .. "/20260101000001_orders.lua", ORDERS)
    write(dir .. "/20260101000002_fill.lua", BACKFILL)
    local migs = file.read(dir)
    assert.same({ "schema", "data" }, { migs[1].kind, migs[2].kind })
    local m = migs[2]
    assert.same({ 2, 1 }, { #m.up, #m.down })
    assert.same({ "backfill", "execute", "backfill" }, { m.up[1].op, m.up[2].op, m.down[1].op })
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
    assert.same({ true, "data", 1, "execute" }, { m.reversible, m.kind, #m.up, m.up[1].op })
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
        -- the backfill is journaled as done, the migration unrecorded
        out = loam(dir, "migrate status " .. db)
        assert.matches("20260101000002  fill    partial       1 steps done", out, 1, true)
        -- the next run skips the backfill done and runs the rest
        conn:exec("INSERT INTO orders (id) VALUES (6)")
        conn:exec("UPDATE orders SET status = 'kept' WHERE id = 1")
        write(path, BACKFILL)
        out, err, code = loam(dir, "migrate up " .. db)
        assert.same({ 0, "", "applied 20260101000002_fill\n" }, { code, err, out })
        assert.same({ { 1, "kept", 0 }, { 2, "new", 0 }, { 3, "paid", 0 }, { 4, "new", 0 },
                      { 5, "new", 0 }, { 6, "NULL", 0 } }, rows(conn))
        assert.equal(0, conn:query("SELECT count(*) AS n FROM loam_migration_steps")[1].n)
        assert.equal(0, conn:query("SELECT count(*) AS n FROM loam_migration_progress")[1].n)
      end)

      -- The statement 'sql' with its placeholders as the backend writes them.
      local function placeholders(sql)
        if backend.name ~= "postgres" then return sql end
        local i = 0
        return (sql:gsub("%?", function() i = i + 1; return "$" .. i end))
      end

      it("--dry-run prints the plan and the first batch as the core renders them", function()
        local conn <close> = loam_db.connect(url)
        seed(conn)
        write(dir .. "/migrations/20260101000002_fill.lua", BACKFILL)
        local out, err, code = loam(dir, "migrate up --dry-run " .. db)
        assert.same({ 0, "" }, { code, err })
        assert.equal("-- 20260101000002_fill (up)\n"
          .. "-- backfill orders: batches of 2 rows by id, each in a transaction of its own; "
          .. "the first:\n"
          .. placeholders('SELECT max("id") AS "hi" FROM (SELECT "id" FROM "orders" WHERE '
          .. '("status" IS NULL) ORDER BY "id" ASC LIMIT ?) AS "b"') .. ";  -- 2\n"
          .. placeholders('UPDATE "orders" SET "status" = ? WHERE (("id" <= ?) AND ("status" '
          .. "IS NULL))") .. ";  -- 'new', 2\n"
          .. "-- then, in one transaction with the history row:\n"
          .. "UPDATE orders SET cents = 0 WHERE cents IS NULL;\n", out)
        assert.equal("NULL", rows(conn)[1][2])
        loam(dir, "migrate up " .. db)
        out, err, code = loam(dir, "migrate down --dry-run " .. db)
        assert.same({ 0, "" }, { code, err })
        assert.matches(placeholders('UPDATE "orders" SET "status" = ? WHERE (("id" <= ?) AND '
          .. "(status = 'new'))") .. ";  -- NULL, 4", out, 1, true)
        assert.equal("new", rows(conn)[1][2])
        -- nothing left to change
        conn:exec("UPDATE orders SET status = 'x'")
        out = loam(dir, "migrate down --dry-run " .. db)
        assert.matches("-- (no row is left to change)\n", out, 1, true)
      end)

      it("checks a backfill against its table before the first batch", function()
        local conn <close> = loam_db.connect(url)
        seed(conn)
        local path = dir .. "/migrations/20260101000002_fill.lua"
        local function fill(opts)
          write(path, 'return data_migration {\n  parent = "20260101000001",\n  up = {\n'
            .. "    backfill(\"orders\", " .. opts .. "),\n"
            .. '    execute("UPDATE orders SET cents = 1"),\n  },\n  down = {},\n}\n')
        end
        local cases = {
          { '{ set = { status = "n" }, where = { status = null } }', "later",
            "undefined_table: migration 20260101000002 (fill), step 1 (backfill): backfill of "
            .. "table 'later': no such table" },
          { '{ set = { colour = "n" }, where = { status = null } }', nil,
            "undefined_column: migration 20260101000002 (fill), step 1 (backfill): backfill of "
            .. "table 'orders': the SET column 'colour' does not exist" },
          { '{ set = { status = "n" }, where = { status = null }, key = "cents" }', nil,
            "misuse: migration 20260101000002 (fill), step 1 (backfill): backfill of table "
            .. "'orders': the key column 'cents' is not unique" },
          { '{ set = { status = "n" }, where = { status = null }, batch = 2000000 }', nil,
            "misuse: migration 20260101000002 (fill), step 1 (backfill): backfill of table "
            .. "'orders': batch size 2000000 is out of range (1 to 1000000)" },
        }
        for _, case in ipairs(cases) do
          fill(case[1])
          if case[2] then
            write(path, (io.open(path):read("a"):gsub('backfill%("orders"', 'backfill("later"')))
          end
          -- a run names the migration and step; a dry run fails the same way
          local code_, why = case[3]:match("^([%w_]+): migration [^:]*: (.*)$")
          for _, dry in ipairs({ "", "--dry-run " }) do
            local out, err, code = loam(dir, "migrate up " .. dry .. db)
            assert.equal(1, code)
            assert.matches("loam: " .. (dry == "" and case[3] or code_ .. ": " .. why), err, 1,
              true)
            if dry == "" then assert.equal("", out) end
          end
          assert.same({ { 1, "NULL", "NULL" }, { 2, "NULL", "NULL" } },
            { rows(conn)[1], rows(conn)[2] })
          out = loam(dir, "migrate status " .. db)
          assert.matches("20260101000002  fill    pending", out, 1, true)
        end
      end)

      it("a table without a one-column key needs a unique key =", function()
        local conn <close> = loam_db.connect(url)
        conn:exec("CREATE TABLE pairs (a INTEGER NOT NULL, b INTEGER NOT NULL, k INTEGER NOT "
          .. "NULL UNIQUE, note TEXT, PRIMARY KEY (a, b))")
        conn:exec("INSERT INTO pairs VALUES (1, 1, 7, NULL), (1, 2, 8, NULL), (2, 1, 9, 'x')")
        write(dir .. "/migrations/20260101000002_fill.lua", 'return data_migration {\n'
          .. '  parent = "20260101000001",\n  up = {\n    backfill("pairs", { set = { note = '
          .. '"n" }, where = { note = null } }),\n  },\n  down = {},\n}\n')
        local out, err, code = loam(dir, "migrate up " .. db)
        assert.same({ 1, "" }, { code, out })
        assert.matches("loam: misuse: migration 20260101000002 (fill), step 1 (backfill): "
          .. "backfill of table 'pairs': the table has a primary key of several columns, and "
          .. "the batches are ranges of one unique column: name it as the key", err, 1, true)
        write(dir .. "/migrations/20260101000002_fill.lua", 'return data_migration {\n'
          .. '  parent = "20260101000001",\n  up = {\n    backfill("pairs", { set = { note = '
          .. '"n" }, where_sql = "note IS NULL", key = "k", batch = 1 }),\n  },\n  down = {},\n}\n')
        out, err, code = loam(dir, "migrate up " .. db)
        assert.same({ 0, "", "applied 20260101000002_fill\n" }, { code, err, out })
        local notes = {}
        for _, r in ipairs(conn:query("SELECT note FROM pairs ORDER BY a, b")) do
          notes[#notes + 1] = r.note
        end
        assert.same({ "n", "n", "x" }, notes)
        conn:exec("DROP TABLE pairs")
      end)

      it("reports each batch to a progress function, which cannot stop the run", function()
        local conn <close> = loam_db.connect(url)
        seed(conn)
        write(dir .. "/migrations/20260101000002_fill.lua", BACKFILL)
        local migs = file.read(dir .. "/migrations")
        local err = helper.catch(core.migrate_up, conn, migs, { progress = 1 })
        assert.same({ "misuse", "migration option 'progress' must be a function, not a number" },
          { err.code, err.message })
        local calls = {}
        assert.equal(1, core.migrate_up(conn, migs, { progress = function(...)
          calls[#calls + 1] = { ... }
          error("a broken progress display")
        end }))
        assert.same({ { "20260101000002", 1, "orders", 2, 1 },
                      { "20260101000002", 1, "orders", 4, 2 } }, calls)
        assert.equal("new", rows(conn)[5][2])
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
