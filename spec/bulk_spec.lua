-- spec/bulk_spec.lua: db:insert_rows(table, columns, rows), many rows in
-- one call (multi-row VALUES; COPY on PostgreSQL): values go in as INSERT
-- puts them, rows that cannot be bound are refused before any SQL, a
-- constraint violation raises the INSERT's error and leaves no row, and
-- Model:insert_many goes this way when it returns no instances.

local loam = require "loam"
local helper = require "spec.helper"

local catch = helper.catch

for backend, pg in helper.each_backend() do
  describe(backend.label .. ": db:insert_rows", function()
    local db

    -- The SQL of every statement that ends while 'fn' runs.
    local function statements(fn) return helper.statements(db, fn) end

    local cols = { "k", "t", "b", "d", "x" }

    before_each(function()
      db = helper.connect(backend)
      for _, name in ipairs { "bulk_a", "bulk_b" } do
        helper.table(db, name,
          "k INTEGER PRIMARY KEY, t TEXT, b BOOLEAN, d REAL, x BLOB, w INTEGER CONSTRAINT "
            .. name .. "_w_check CHECK (w >= 0)",
          "k bigint PRIMARY KEY, t text, b boolean, d double precision, x bytea, w integer "
            .. "CONSTRAINT " .. name .. "_w_check CHECK (w >= 0)")
      end
    end)

    after_each(function()
      helper.finish(db, { "bulk_a", "bulk_b" })
    end)

    -- 'n' rows with every kind of value and the bytes COPY must escape.
    local function rows(n)
      local texts = { "plain", "tab\there", "new\nline", "back\\slash", "\\N", "", "\r" }
      local doubles = { 0.1, -1 / 3, 1e300, math.huge, -math.huge, 2.5 }
      local out = {}
      for i = 1, n do
        out[i] = {
          i,
          i % 9 == 0 and loam.null or texts[i % #texts + 1],
          i % 4 == 0 and loam.null or i % 2 == 0,
          i % 5 == 0 and loam.null or doubles[i % #doubles + 1],
          i % 3 == 0 and loam.null or loam.blob(string.char(0, i % 256, 92, 9, 10, 255)),
        }
      end
      return out
    end

    it("puts every value in as INSERT does, and returns the count", function()
      local list = rows(150)
      local texts = statements(function()
        assert.are.equal(150, db:insert_rows("bulk_a", cols, list))
      end)
      assert.are.equal(1, #texts)
      assert.are.equal(pg and 'COPY "bulk_a" ("k", "t", "b", "d", "x") FROM STDIN'
        or "INSERT", pg and texts[1] or texts[1]:sub(1, 6))
      for _, r in ipairs(list) do
        db:exec("INSERT INTO bulk_b (k, t, b, d, x) VALUES (?, ?, ?, ?, ?)", r)
      end
      local a = db:query("SELECT * FROM bulk_a ORDER BY k")
      local b = db:query("SELECT * FROM bulk_b ORDER BY k")
      assert.are.same(b, a)
      assert.are.equal(string.char(0, 2, 92, 9, 10, 255), a[2].x)
      assert.are.equal("tab\there", a[1].t)
    end)

    it("inserts nothing for no rows, and sends nothing", function()
      local texts = statements(function()
        assert.are.equal(0, db:insert_rows("bulk_a", cols, {}))
      end)
      assert.are.same({}, texts)
    end)

    it("refuses rows it cannot bind before any SQL, naming the row", function()
      local list = rows(100)
      local texts = statements(function()
        list[7] = { 7, "x", true, 1.5 }
        local err = catch(db.insert_rows, db, "bulk_a", cols, list)
        assert.are.equal("misuse", err.code)
        assert.are.equal("insert_rows: row 7 has 4 values for 5 columns (write loam.null for "
          .. "NULL)", err.message)
        list[7] = { 7, "x", true, 1.5, print }
        err = catch(db.insert_rows, db, "bulk_a", cols, list)
        assert.are.equal("insert_rows: row 7, column x: cannot bind a function", err.message)
        list[7] = "row"
        err = catch(db.insert_rows, db, "bulk_a", cols, list)
        assert.are.equal("insert_rows: row 7 must be an array of values, not a string",
          err.message)
        list[7] = { 7, "x", true, 1.5, loam.null }
        err = catch(db.insert_rows, db, "bulk_a", {}, list)
        assert.are.equal("insert_rows: the columns must be a non-empty array of names",
          err.message)
        err = catch(db.insert_rows, db, "bulk_a", { "k", 2 }, list)
        assert.are.equal("insert_rows: column #2 must be a string, not a number", err.message)
        err = catch(db.insert_rows, db, "bulk_a", { "k", "t\0" }, list)
        assert.are.equal("insert_rows: column #2 holds a NUL byte", err.message)
        list[7] = { 7, pg and "a\0b" or "x", true, pg and 1.5 or 0 / 0, loam.null }
        err = catch(db.insert_rows, db, "bulk_a", cols, list)
        assert.are.equal("data_error", err.code)
        assert.are.equal(pg and "INSERT row 7, column t: text contains a NUL byte; bind it as "
          .. "a blob" or "INSERT row 7, column d: SQLite cannot store NaN", err.message)
      end)
      assert.are.same({}, texts)
      assert.are.equal(0, helper.count(db, "bulk_a"))
    end)

    -- core.insert_records is Model:insert_many's road in: rows keyed by
    -- field with a row shape; a shape it cannot use is a misuse, before any SQL.
    it("insert_records refuses a shape it cannot use, before any SQL", function()
      local core = require "loam.core"
      local id = function(v) return v end
      local function shape(over)
        local sh = { columns = { "k", "t" }, fields = { "k", "t" },
                     quick = { { kind = "integer" }, false }, coerce = { id, id } }
        for key, v in pairs(over) do sh[key] = v end
        return sh
      end
      local function full() error("no row goes the full way here") end
      local list = { { k = 1, t = "a" }, { k = 2, t = "b" } }
      local texts = statements(function()
        local cases = {
          { shape {}, "bulk\0a", "insert_records: the table name holds a NUL byte" },
          { shape { quick = "x" }, "bulk_a",
            "insert_records: the shape needs arrays 'fields', 'quick' and 'coerce'" },
          { shape { fields = { "k", 2 } }, "bulk_a",
            "insert_records: field #2 must be a string, not a number" },
          { shape { coerce = { id, "f" } }, "bulk_a",
            "insert_records: coercer #2 must be a function, not a string" },
          { shape { quick = { { kind = "float" } } }, "bulk_a",
            "insert_records: quick test #1 has an unknown kind" },
          { shape { columns = { "k", 2 } }, "bulk_a",
            "insert_rows: column #2 must be a string, not a number" },
        }
        for i, case in ipairs(cases) do
          local err = catch(core.insert_records, db, case[2], case[1], list, { 1, "a" }, full)
          assert.are.equal("misuse", err.code, "case " .. i)
          assert.are.equal(case[3], err.message, "case " .. i)
        end
      end)
      assert.are.same({}, texts)
      assert.are.equal(2, core.insert_records(db, "bulk_a", shape {}, list, { 1, "a" }, full))
      assert.are.same({ { k = 1, t = "a" }, { k = 2, t = "b" } },
        db:query("SELECT k, t FROM bulk_a ORDER BY k"))
    end)

    it("raises the INSERT's constraint error and leaves no row, in one statement or many",
      function()
        -- 32766 / 6 parameters: 5461 rows a chunk on SQLite; one COPY on PostgreSQL.
        for _, n in ipairs { 10, 100, 12000 } do
          local list = {}
          for i = 1, n do list[i] = { i, "t", true, 1.5, loam.null, i } end
          list[n][6] = -1
          local err = catch(db.insert_rows, db, "bulk_a", { "k", "t", "b", "d", "x", "w" }, list)
          assert.are.equal("check_violation", err.code)
          assert.are.equal("bulk_a_w_check", err.constraint)
          assert.are.equal(0, helper.count(db, "bulk_a"))
          list[n] = { 1, "t", true, 1.5, loam.null, 1 }
          err = catch(db.insert_rows, db, "bulk_a", { "k", "t", "b", "d", "x", "w" }, list)
          assert.are.equal("unique_violation", err.code)
          if pg then assert.are.equal("bulk_a_pkey", err.constraint) end
          assert.are.equal(0, helper.count(db, "bulk_a"))
        end
      end)

    it("joins an open transaction, which a rollback takes back", function()
      local list = rows(100)
      local ok = pcall(db.transaction, db, function()
        db:insert_rows("bulk_a", cols, list)
        assert.are.equal(100, helper.count(db, "bulk_a"))
        error("undo")
      end)
      assert.is_false(ok)
      assert.are.equal(0, helper.count(db, "bulk_a"))
    end)
  end)

  describe(backend.label .. ": Model:insert_many without returning", function()
    local db, Item

    before_each(function()
      db = helper.connect(backend)
      helper.drop_tables(db, { "bulk_items" })
      Item = db:model("bulk_items", {
        loam.id(),
        loam.text("sku", { null = false, unique = true }),
        loam.integer("qty", { null = false }),
        loam.numeric("price", { precision = 10, scale = 2 }),
        loam.timestamp("at"),
        loam.json("meta"),
      })
      db:create_tables { Item }
    end)

    after_each(function()
      helper.finish(db, { "bulk_items" })
    end)

    it("inserts through db:insert_rows, COPY on PostgreSQL", function()
      local list = {}
      for i = 1, 200 do
        list[i] = { sku = "s" .. i, qty = i, price = i + 0.5, at = "2021-01-01T00:00:00Z",
                    meta = { i = i, tags = { "a\tb" } } }
      end
      local texts = {}
      db:on_query(function(e) texts[#texts + 1] = e.sql end)
      assert.are.equal(200, Item:insert_many(list))
      db:on_query(nil)
      assert.are.equal(1, #texts)
      assert.are.equal(pg and "COPY" or "INSERT", texts[1]:match("^%u+"))
      local it2 = Item:find(2)
      local one = Item:create { sku = "c2", qty = 2, price = 2.5, at = "2021-01-01T00:00:00Z",
                                meta = { i = 2, tags = { "a\tb" } } }
      assert.are.equal("2.50", it2.price)
      assert.are.equal("2021-01-01 00:00:00+00", it2.at)
      assert.are.same({ one.qty, one.price, one.at, one.meta },
                      { it2.qty, it2.price, it2.at, it2.meta })
    end)

    it("raises unique_violation with the constraint's name and inserts nothing", function()
      local list = {}
      for i = 1, 100 do list[i] = { sku = "s" .. (i % 99), qty = i } end
      local err = catch(Item.insert_many, Item, list)
      assert.are.equal("unique_violation", err.code)
      if pg then assert.are.equal("bulk_items_sku_key", err.constraint) end
      assert.are.equal(0, helper.count(db, "bulk_items"))
    end)
  end)
end
