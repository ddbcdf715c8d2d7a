-- spec/tx_spec.lua: db:transaction(fn, ...): commit and results, rollback
-- and the original error raised again, nesting through savepoints (also
-- inside a transaction opened with raw SQL); and the statements that run
-- in one: a chunked insert_many whose third chunk fails, and
-- create_tables whose last model fails, leave nothing behind.

local loam = require "loam"
local helper = require "spec.helper"

local catch = helper.catch

for backend, pg in helper.each_backend() do
  describe(backend.label .. ": db:transaction", function()
    local db

    local function names()
      local out = {}
      for i, row in ipairs(db:query("select name from tx_items order by name")) do
        out[i] = row.name
      end
      return out
    end

    local function add(name)
      db:exec("insert into tx_items (name) values (?)", { name })
    end

    -- The SQL of every statement that ends while 'fn' runs.
    local function statements(fn) return helper.statements(db, fn) end

    local begin = pg and "BEGIN" or "BEGIN IMMEDIATE"

    before_each(function()
      db = helper.connect(backend)
      helper.table(db, "tx_items", "name TEXT NOT NULL UNIQUE")
    end)

    after_each(function()
      db:close()
    end)

    it("commits and returns what the function returns", function()
      local a, b, c, n
      local texts = statements(function()
        a, b, c = db:transaction(function(x, y)
          add(x)
          add(y)
          return 1, nil, "three"
        end, "a", "b")
      end)
      assert.are.same({ 1, nil, "three" }, { a, b, c })
      assert.are.same({ "a", "b" }, names())
      assert.are.equal(begin, texts[1])
      assert.are.equal("COMMIT", texts[#texts])
      n = select("#", db:transaction(function() end))
      assert.are.equal(0, n)
    end)

    it("rolls back and raises the same error object", function()
      local raised = setmetatable({}, { __tostring = function() return "mine" end })
      local ok, err = pcall(db.transaction, db, function()
        add("a")
        error(raised)
      end)
      assert.is_false(ok)
      assert.are.equal(raised, err)
      assert.are.same({}, names())

      -- A string is not given a position or anything else.
      ok, err = pcall(db.transaction, db, function() add("b"); error("no", 0) end)
      assert.are.same({ false, "no" }, { ok, err })
      assert.are.same({}, names())

      -- A failed statement: its loam error object, and the connection usable after.
      add("c")
      local texts
      texts = statements(function()
        err = catch(db.transaction, db, function()
          add("d")
          add("c")
        end)
      end)
      assert.are.equal("unique_violation", err.code)
      assert.are.equal("ROLLBACK", texts[#texts])
      assert.are.same({ "c" }, names())
    end)

    it("nests through savepoints: an inner rollback keeps the outer work", function()
      local texts = statements(function()
        db:transaction(function()
          add("a")
          local ok = pcall(db.transaction, db, function()
            add("b")
            add("a")  -- fails
          end)
          assert.is_false(ok)
          db:transaction(function() add("c") end)
        end)
      end)
      assert.are.same({ "a", "c" }, names())
      assert.are.same({ begin, "SAVEPOINT loam_sp_2", "ROLLBACK TO SAVEPOINT loam_sp_2",
                        "RELEASE SAVEPOINT loam_sp_2", "SAVEPOINT loam_sp_2",
                        "RELEASE SAVEPOINT loam_sp_2", "COMMIT" },
        (function()
          local out = {}
          for _, t in ipairs(texts) do
            if not t:find("tx_items") then out[#out + 1] = t end
          end
          return out
        end)())

      -- An outer rollback undoes what the inner level committed.
      pcall(db.transaction, db, function()
        db:transaction(function() add("d") end)
        error("undo", 0)
      end)
      assert.are.same({ "a", "c" }, names())
    end)

    it("inside a transaction opened with raw SQL, uses a savepoint", function()
      db:exec("BEGIN")
      add("a")
      local texts = statements(function()
        pcall(db.transaction, db, function() add("b"); error("no", 0) end)
      end)
      assert.are.equal("SAVEPOINT loam_sp_1", texts[1])
      db:transaction(function() add("c") end)
      db:exec("COMMIT")
      assert.are.same({ "a", "c" }, names())
    end)

    it("refuses a function that is not one, and commits nothing after a close", function()
      local err = catch(db.transaction, db, "nope")
      assert.are.equal("misuse", err.code)
      assert.are.equal("transaction: expects an options table or a function, got a string",
        err.message)
      err = catch(db.transaction, db, {}, 42)
      assert.are.equal("transaction: expects a function, got a number", err.message)
      err = catch(db.transaction, db, function() db:close() end)
      assert.are.equal("misuse", err.code)
      assert.are.equal("the connection was closed inside the transaction; nothing was committed",
        err.message)
      db = helper.connect(backend)
    end)

    if pg then
      it("refuses to commit a failed transaction, and rolls it back", function()
        local err = catch(db.transaction, db, function()
          add("a")
          pcall(add, "a")  -- the transaction fails; the function goes on
        end)
        assert.are.equal("transaction_aborted", err.code)
        assert.are.same({}, names())
      end)
    end
  end)

  describe(backend.label .. ": statements that run in one transaction", function()
    local db

    before_each(function()
      db = helper.connect(backend)
      helper.drop_tables(db, { "tx_wide", "tx_ma", "tx_mb", "tx_mc" })
    end)

    after_each(function()
      helper.drop_tables(db, { "tx_wide", "tx_ma", "tx_mb", "tx_mc" })
      db:close()
    end)

    it("an insert_many whose third chunk (or COPY) fails leaves the table unchanged", function()
      -- Ten parameters a row: 3276 rows a chunk on SQLite, 6553 on PostgreSQL.
      local cols = { loam.id(), loam.integer("k", { unique = true }) }
      for i = 1, 9 do cols[#cols + 1] = loam.integer("c" .. i) end
      local Wide = db:model("tx_wide", cols)
      db:create_tables { Wide }
      Wide:insert_many { { k = -1, c1 = 0, c2 = 0, c3 = 0, c4 = 0, c5 = 0, c6 = 0, c7 = 0,
                           c8 = 0, c9 = 0 } }
      local per_chunk = pg and 6553 or 3276
      local rows = {}
      for i = 1, 2 * per_chunk + 10 do
        rows[i] = { k = i, c1 = i, c2 = i, c3 = i, c4 = i, c5 = i, c6 = i, c7 = i, c8 = i, c9 = i }
      end
      rows[#rows].k = -1  -- taken: the last row, in the third chunk
      local inserts, copies = 0, 0
      db:on_query(function(e)
        if e.sql:find("^INSERT") then inserts = inserts + 1 end
        if e.sql:find("^COPY") then copies = copies + 1 end
      end)
      local err = catch(Wide.insert_many, Wide, rows)
      db:on_query(nil)
      assert.are.equal("unique_violation", err.code)
      -- PostgreSQL takes the rows in one COPY, which fails whole.
      assert.are.same(pg and { 0, 1 } or { 3, 0 }, { inserts, copies })
      assert.are.equal(1, helper.count(db, "tx_wide"))
    end)

    it("create_tables with a failing last model leaves none of the tables", function()
      local A = db:model("tx_ma", { loam.id() })
      local B = db:model("tx_mb", { loam.id(), loam.bigint("a_id", { references = A }) })
      local C = db:model("tx_mc", { loam.id() })
      db:exec("create table tx_mc (x integer)")  -- so creating C fails
      local err = catch(db.create_tables, db, { A, B, C })
      assert.are.equal("database_error", err.code)  -- the table exists already
      for _, t in ipairs { "tx_ma", "tx_mb" } do
        assert.are.equal("undefined_table", catch(helper.count, db, t).code)
      end
      assert.are.equal(0, helper.count(db, "tx_mc"))

      -- drop_tables is one transaction too, and works when nothing fails.
      db:exec("drop table tx_mc")
      db:create_tables { A, B, C }
      db:drop_tables { A, B, C }
      for _, t in ipairs { "tx_ma", "tx_mb", "tx_mc" } do
        assert.are.equal("undefined_table", catch(helper.count, db, t).code)
      end
    end)
  end)
end
