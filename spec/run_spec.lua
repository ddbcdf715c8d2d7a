-- spec/run_spec.lua: db:run(ast [, opts]), which renders a query AST and
-- runs its statements from the rendered values: rows of SELECT and
-- RETURNING, changes and id otherwise, chunked inserts statement by
-- statement in one transaction level, what the statement cache and the
-- query hooks see, and that a failing chunk leaves nothing behind.  Also the numbers that sum, avg, min and
-- max give for numeric columns.

local loam = require "loam"
local helper = require "spec.helper"

local null = loam.null
local catch = helper.catch

local function col(name) return { k = "col", name = name } end
local function val(v) return { k = "val", v = v } end
local function op(o, l, r) return { k = "op", op = o, l = l, r = r } end

-- An INSERT of the names in 'names' (column 'n' set to their position).
local function insert(names, returning)
  local rows = {}
  for i, name in ipairs(names) do rows[i] = { name, i } end
  return { k = "insert", into = "runs", columns = { "name", "n" }, rows = rows,
           returning = returning }
end

local by_id = { { expr = col("id") } }

for backend, pg in helper.each_backend() do
  describe(backend.label .. ": db:run", function()
    local db

    -- The SQL of every statement that ends while 'fn' runs.
    local function statements(fn) return helper.statements(db, fn) end

    local function names()
      local out = {}
      for i, row in ipairs(db:query("select name from runs order by id")) do out[i] = row.name end
      return out
    end

    before_each(function()
      db = helper.connect(backend)
      helper.table(db, "runs",
        "id integer primary key, name text not null unique, n integer, data blob",
        "id bigserial primary key, name text not null unique, n bigint, data bytea")
    end)

    after_each(function()
      db:close()
    end)

    it("returns the rows of a SELECT, built as db:query builds them", function()
      db:exec("insert into runs (name, n) values ('a', 1), ('b', NULL), ('c', 3)")
      local ast = { k = "select", from = { name = "runs" }, where = op("<>", col("name"), val("c")),
                    order = by_id }
      local rows = db:run(ast)
      local st = db:render(ast)[1]
      assert.are.same(db:query(st.sql, st.params), rows)
      assert.are.equal(2, #rows)
      assert.are.equal("b", rows[2].name)
      assert.are.equal(null, rows[2].n)
      assert.is_nil(rows[2].nothing)
      assert.are.same({}, db:run { k = "select", from = { name = "runs" },
                                   where = op("=", col("n"), val(99)) })
    end)

    it("binds the rendered values as they are: integers, blobs, NULL", function()
      local big, bytes = math.maxinteger, loam.blob("\0\1\255")
      local rows = db:run { k = "insert", into = "runs", columns = { "name", "n", "data" },
                            rows = { { "x", big, bytes }, { "y", math.mininteger, null } },
                            returning = { "name", "n", "data" } }
      assert.are.same({ { name = "x", n = big, data = "\0\1\255" },
                        { name = "y", n = math.mininteger, data = null } }, rows)
      local found = db:run { k = "select", columns = { col("name") }, from = { name = "runs" },
                             where = op("=", col("data"), val(bytes)) }
      assert.are.same({ { name = "x" } }, found)
    end)

    it("returns the rows of an INSERT with RETURNING", function()
      local rows = db:run(insert({ "a", "b" }, { "id", "name" }))
      assert.are.same({ { id = 1, name = "a" }, { id = 2, name = "b" } }, rows)
    end)

    it("gives changes and id without RETURNING, as db:exec does", function()
      local changes, id = db:run(insert { "a", "b", "c" })
      assert.are.equal(3, changes)
      if pg then
        assert.is_nil(id)  -- PostgreSQL names no key without RETURNING
      else
        assert.are.equal(3, id)  -- the rowid of the last row
      end
      changes, id = db:run { k = "update", table = "runs", set = { { col = "n", expr = val(0) } },
                             where = op(">", col("id"), val(1)) }
      assert.are.equal(2, changes)
      assert.is_nil(id)
      assert.are.equal(0, (db:run { k = "update", table = "runs",
        set = { { col = "n", expr = val(0) } }, where = op("=", col("id"), val(99)) }))
      assert.are.equal(1, (db:run { k = "delete", from = "runs",
                                    where = op("=", col("name"), val("a")) }))
      assert.are.same({ "b", "c" }, names())
      -- An empty RETURNING list returns nothing, so it counts.
      assert.are.equal(2, (db:run { k = "delete", from = "runs", returning = {} }))
    end)

    it("runs a chunked INSERT statement by statement, in order, in a transaction", function()
      local list = { "a", "b", "c", "d", "e" }
      local chunks = db:render(insert(list), { max_params = 4 })
      assert.are.equal(3, #chunks)  -- two rows of two values each, then one
      local changes, id
      local texts = statements(function()
        changes, id = db:run(insert(list), { max_params = 4 })
      end)
      assert.are.same({ pg and "BEGIN" or "BEGIN IMMEDIATE", chunks[1].sql, chunks[2].sql,
                        chunks[3].sql, "COMMIT" }, texts)
      assert.are.equal(chunks[1].sql, chunks[2].sql)
      assert.are.equal(5, changes)
      if pg then assert.is_nil(id) else assert.are.equal(5, id) end
      assert.are.same(list, names())

      local more = { "f", "g", "h" }
      local rows = db:run(insert(more, { "id", "name" }), { max_params = 5 })
      assert.are.same({ { id = 6, name = "f" }, { id = 7, name = "g" }, { id = 8, name = "h" } },
        rows)
    end)

    it("shares cached statements with db:query for the same shape", function()
      local function select_n(n)
        return { k = "select", from = { name = "runs" }, where = op("=", col("n"), val(n)) }
      end
      db:run(select_n(1))
      local cached = db:cached_statements()
      db:run(select_n(2))
      local st = db:render(select_n(3))[1]
      db:query(st.sql, st.params)
      assert.are.equal(cached, db:cached_statements())
      local before = db:stats().queries
      db:run(insert({ "a", "b", "c" }), { max_params = 2 })
      assert.are.equal(5, db:stats().queries - before)  -- BEGIN, three chunks, COMMIT
    end)

    describe("when a chunk fails", function()
      -- 'd' is taken, so the second chunk (c, d) fails and the third never runs.
      local clash = { "a", "b", "c", "d", "e", "f" }

      before_each(function()
        db:exec("insert into runs (name) values ('d')")
      end)

      it("raises the statement's error object; earlier chunks are rolled back", function()
        local err
        local texts = statements(function()
          err = catch(db.run, db, insert(clash), { max_params = 4 })
        end)
        assert.are.equal("unique_violation", err.code)
        if pg then
          assert.are.equal("23505", err.sqlstate)
          assert.are.equal("runs_name_key", err.constraint)
        end
        -- BEGIN, the first chunk, the failed second, ROLLBACK: the third never runs.
        assert.are.same({ pg and "BEGIN" or "BEGIN IMMEDIATE", "ROLLBACK" },
          { texts[1], texts[4] })
        assert.are.equal(4, #texts)
        assert.are.same({ "d" }, names())
      end)

      it("inside the caller's transaction, rolls back its savepoint only", function()
        db:exec("BEGIN")
        db:exec("insert into runs (name) values ('x')")
        local err = catch(db.run, db, insert(clash), { max_params = 4 })
        assert.are.equal("unique_violation", err.code)
        -- On PostgreSQL too the caller's transaction goes on after the savepoint's rollback.
        db:exec("COMMIT")
        assert.are.same({ "d", "x" }, names())
      end)

      it("with RETURNING, raises and returns no rows", function()
        local err = catch(db.run, db, insert(clash, { "id" }), { max_params = 4 })
        assert.are.equal("unique_violation", err.code)
        assert.are.same({ "d" }, names())
      end)
    end)

    describe("refuses", function()
      it("a bad AST or option before anything runs", function()
        local before = db:stats().queries
        local err = catch(db.run, db, { k = "insert", into = "runs", columns = { "name" } })
        assert.are.equal("misuse", err.code)
        assert.are.equal("query AST: 'insert' node needs 'rows'", err.message)
        err = catch(db.run, db, { k = "select", from = { name = "runs" } }, { rows = true })
        assert.are.equal("run: unknown option 'rows'", err.message)
        err = catch(db.run, db, { k = "select", from = { name = "runs" } }, { max_params = 0 })
        assert.are.equal("run: option 'max_params' must be a positive integer", err.message)
        err = catch(db.run, db, { k = "create_table", name = "t" })
        assert.are.equal("query AST: 'create_table' is DDL; render it with render_ddl",
          err.message)
        err = catch(db.run, db, { k = "update", table = "runs",
          set = { { col = "n", expr = val(1) }, { col = "name", expr = val("x") } } },
          { max_params = 1 })
        assert.are.equal("misuse", err.code)
        assert.are.equal(0, db:stats().queries - before)
      end)

      it("a closed connection", function()
        db:close()
        local err = catch(db.run, db, { k = "select", from = { name = "runs" } })
        assert.are.equal("misuse", err.code)
        assert.are.equal("attempt to use a closed database (db:reconnect() opens it again)", err.message)
      end)

      it("the next chunk when a query hook closed the connection", function()
        db:on_query(function() db:close() end)
        local err = catch(db.run, db, insert { "a", "b", "c" }, { max_params = 2 })
        assert.are.equal("misuse", err.code)
        assert.are.equal("attempt to use a closed connection", err.message)
        db = helper.connect(backend)
        if not backend.memory then
          -- Closed right after BEGIN: the backend rolled the transaction back.
          assert.are.same({}, names())
        end
      end)

      it("the next chunk when a query hook raises", function()
        db:on_query(function() error("hook says no", 0) end)
        local ok, err = pcall(db.run, db, insert { "a", "b", "c" }, { max_params = 2 })
        db:on_query(nil)
        assert.is_false(ok)
        assert.are.equal("hook says no", err)
        -- Raised at BEGIN's hook: nothing ran, and the transaction is rolled back.
        assert.are.same({}, names())
        db:exec("insert into runs (name) values ('z')")
        assert.are.same({ "z" }, names())
      end)
    end)
  end)

  describe(backend.label .. ": sum, avg, min and max of numeric columns", function()
    local db, Account

    before_each(function()
      db = helper.connect(backend)
      helper.drop_tables(db, { "accounts" })
      Account = db:model("accounts", {
        loam.id(),
        loam.text("code", { null = false }),
        loam.numeric("balance", { precision = 10, scale = 2, null = false }),
      })
      db:create_tables { Account }
      Account:insert_many { { code = "10", balance = "1.50" }, { code = "9", balance = "2.25" },
                            { code = "11", balance = 10 } }
    end)

    after_each(function()
      db:close()
    end)

    it("are Lua numbers on every backend", function()
      for fn, want in pairs { sum = 13.75, avg = 13.75 / 3, min = 1.5, max = 10 } do
        local v = Account[fn](Account, "balance")
        assert.are.equal("number", type(v), fn)
        assert.is_true(math.abs(v - want) < 1e-9, fn)
      end
      -- Over the query's own rows as a subquery too.
      assert.are.equal(2.25, Account:order_by("balance"):limit(2):max("balance"))
      assert.are.equal(10, Account:where { code = "11" }:min("balance"))
    end)

    it("leave text columns as text, digits or not", function()
      assert.are.equal("9", Account:max("code"))
      assert.are.equal("10", Account:min("code"))
    end)

    it("of a table query, which declares no types, are what the database gives", function()
      local v = db:table("accounts"):max("balance")
      if pg then
        assert.are.equal("10.00", v)  -- numeric text, exact
      else
        assert.are.equal(10, v)
      end
      assert.are.equal(13.75, db:table("accounts"):sum("balance"))
    end)
  end)
end
