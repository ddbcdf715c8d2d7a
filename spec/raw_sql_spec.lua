-- spec/raw_sql_spec.lua: the user's own SQL text on both backends: text
-- holding a NUL byte is refused wherever SQL text enters (db:exec,
-- db:query, db:each, loam.raw, model checks, loam.sql defaults, index
-- predicates); placeholders mean the same on both backends ('?' by
-- position, '$n' and '?n' the n-th parameter, '??' the PostgreSQL
-- operator), and the parameter count is checked alike.

local loam = require "loam"
local helper = require "spec.helper"

local catch = helper.catch

for backend, pg in helper.each_backend() do
  describe(backend.label .. ": raw SQL", function()
    local db

    local function cents()
      local out = {}
      for _, r in ipairs(db:query("SELECT id, cents FROM t ORDER BY id")) do
        out[#out + 1] = r.id .. "=" .. r.cents
      end
      return table.concat(out, " ")
    end

    before_each(function()
      db = helper.connect(backend)
      helper.table(db, "t", "id integer primary key, cents integer not null",
                   "id bigint primary key, cents integer not null")
      db:exec("INSERT INTO t (id, cents) VALUES (1, 10), (2, 20), (500, 30)")
    end)

    after_each(function()
      helper.finish(db, { "t", "raw_nul" })
    end)

    describe("text with a NUL byte", function()
      it("is refused by exec, and nothing is deleted", function()
        local err = catch(function() return db:exec("DELETE FROM t\0 WHERE id = 999") end)
        assert.are.equal("misuse", err.code)
        assert.are.equal("bad argument #1 to 'exec' (SQL text contains a NUL byte at position 14)",
                         err.message)
        assert.are.equal("1=10 2=20 500=30", cents())
      end)

      it("is refused by query and each", function()
        local err = catch(function()
          return db:query("SELECT id FROM t WHERE id = ?\0 AND 1=0", { 1 })
        end)
        assert.are.equal("misuse", err.code)
        assert.are.equal("bad argument #1 to 'query' (SQL text contains a NUL byte at position 30)",
                         err.message)
        err = catch(function() return db:each("\0SELECT 1") end)
        assert.are.equal("misuse", err.code)
        assert.are.equal("bad argument #1 to 'each' (SQL text contains a NUL byte at position 1)",
                         err.message)
      end)

      it("is refused in loam.raw fragments of the query builder", function()
        local T = db:model("t", { loam.id(), loam.integer("cents") })
        local err = catch(function()
          return T:where(loam.raw("id = ?\0 OR 1 = 1", { 999 })):all()
        end)
        assert.are.equal("misuse", err.code)
        assert.matches("SQL text contains a NUL byte at position 7", err.message, 1, true)
        err = catch(function()
          return T:select({ loam.raw("cents\0 + 1"), as = "c" }):all()
        end)
        assert.are.equal("misuse", err.code)
        assert.matches("SQL text contains a NUL byte at position 6", err.message, 1, true)
        assert.are.equal("1=10 2=20 500=30", cents())
      end)

      it("is refused in model checks, loam.sql defaults and index predicates, creating nothing", function()
        local cases = {
          { { loam.id(), loam.integer("n", { check = "n > 0\0 OR TRUE" }) }, nil, 6 },
          { { loam.id(), loam.integer("n") }, { checks = { positive = "n > 0\0 OR TRUE" } }, 6 },
          { { loam.id(), loam.integer("n", { default = loam.sql("1\0 + 1") }) }, nil, 2 },
          { { loam.id(), loam.integer("n") }, { indexes = { { "n", where = "n > 0\0" } } }, 6 },
        }
        for _, c in ipairs(cases) do
          local M = db:model("raw_nul", c[1], c[2])
          local err = catch(db.create_tables, db, { M })
          assert.are.equal("misuse", err.code)
          assert.matches("SQL text contains a NUL byte at position " .. c[3], err.message, 1, true)
          local exists = pg and "SELECT to_regclass('raw_nul') IS NOT NULL AS e"
                         or "SELECT count(*) > 0 AS e FROM sqlite_master WHERE name = 'raw_nul'"
          local e = db:query(exists)[1].e
          assert.is_true(e == false or e == 0)
        end
      end)
    end)

    describe("placeholders", function()
      it("'$n' is the n-th parameter, whatever the order of appearance", function()
        assert.are.equal(1, db:exec("UPDATE t SET cents = $2 WHERE id = $1", { 1, 500 }))
        assert.are.equal("1=500 2=20 500=30", cents())
        local r = db:query("SELECT $2 AS b, $1 AS a, $2 AS b2", { "x", "y" })[1]
        assert.are.same({ b = "y", a = "x", b2 = "y" }, r)
      end)

      it("'?n' is the n-th parameter too", function()
        assert.are.equal(1, db:exec("UPDATE t SET cents = ?2 WHERE id = ?1", { 2, 77 }))
        assert.are.equal("1=10 2=77 500=30", cents())
        local n = 0
        for row in db:each("SELECT ?2 AS b, ?1 AS a", { "x", "y" }) do
          assert.are.same({ b = "y", a = "x" }, row)
          n = n + 1
        end
        assert.are.equal(1, n)
      end)

      it("refuses '?' mixed with '$n' or '?n', changing nothing", function()
        local err = catch(db.exec, db, "UPDATE t SET cents = ? WHERE id = $1", { 1 })
        assert.are.equal("misuse", err.code)
        assert.are.equal("SQL mixes '?' and numbered placeholders ('$1'); use one style",
                         err.message)
        err = catch(db.query, db, "SELECT ?2, ?, ?1", { 1, 2 })
        assert.are.equal("misuse", err.code)
        assert.are.equal("SQL mixes '?' and numbered placeholders ('?2'); use one style",
                         err.message)
        assert.are.equal("1=10 2=20 500=30", cents())
      end)

      it("counts parameters alike: gaps, too many, too few", function()
        local err = catch(db.exec, db, "UPDATE t SET cents = $3 WHERE id = $1", { 1, 2, 3 })
        assert.are.equal("misuse", err.code)
        assert.are.equal("SQL uses placeholder 3 but not 2: every parameter must appear in the text",
                         err.message)
        err = catch(db.query, db, "SELECT ? AS a, ? AS b", { 1, 2, 3 })
        assert.are.equal("misuse", err.code)
        assert.matches("^statement takes 2 parameters, got 3", err.message)
        err = catch(db.query, db, "SELECT $1 AS a, $2 AS b", { 1 })
        assert.matches("^statement takes 2 parameters, got 1", err.message)
        err = catch(db.query, db, "SELECT ?1 AS a", {})
        assert.matches("^statement takes 1 parameter, got 0", err.message)
        err = catch(db.query, db, "SELECT $0 AS a", { 1 })
        assert.are.equal("placeholder '$0' is out of range (1 to 65535)", err.message)
        assert.are.equal("1=10 2=20 500=30", cents())
      end)

      it("leaves '?' and '$n' alone inside literals, quoted names and comments", function()
        local sqls = {
          { "SELECT ?--?\n AS a", { 1 } },
          { "SELECT ?/*?*/ AS a", { 1 } },
          { "SELECT ?/* $1 ? */ AS a -- $2", { 1 } },
          { "SELECT $1--$2\n AS a", { 1 } },
          { "SELECT ? AS a, '?$1' AS \"?b\"", { 1 } },
        }
        for _, c in ipairs(sqls) do
          local row = db:query(c[1], c[2])[1]
          assert.are.equal(1, row.a, c[1])
        end
        assert.are.equal("?$1", db:query("SELECT ? AS a, '?$1' AS \"?b\"", { 1 })[1]["?b"])
      end)

      it("refuses placeholders loam does not read the same way on both backends", function()
        local err = catch(db.query, db, "SELECT :name AS a", { 1 })
        assert.are.equal("misuse", err.code)
        assert.matches(pg and "^statement takes 0 parameters, got 1"
                       or "^SQL holds placeholders loam does not read", err.message)
      end)

      if pg then
        it("'??' is the jsonb '?' operator beside parameters", function()
          local row = db:query("SELECT ?::jsonb ?? 'k' AS has, ? AS n", { '{"k": 1}', 5 })[1]
          assert.is_true(row.has)
          assert.are.equal(5, row.n)
        end)
      else
        it("'??' is refused: SQLite has no '?' operator", function()
          local err = catch(db.query, db, "SELECT '{}' ?? 'k' AS has")
          assert.are.equal("misuse", err.code)
          assert.are.equal("'??' (the literal '?' operator) exists on PostgreSQL only; "
                           .. "SQLite has no '?' operator", err.message)
        end)
      end
    end)
  end)
end

-- Integers bind where the server wants int2, int4, int8, numeric or oid,
-- exact to 64 bits, and come back as integers where the context says
-- nothing of their type.  Both with the statement cache and without it
-- (unnamed statements, as behind a transaction-pooling proxy).
for backend, pg in helper.each_backend() do
  for _, cache in ipairs({ 64, 0 }) do
    describe(backend.label .. ", statement_cache = " .. cache .. ": integer parameters", function()
      local db

      before_each(function()
        db = helper.connect(backend, { statement_cache = cache })
        helper.table(db, "ints",
          "id integer primary key, s smallint, i integer, b bigint, n numeric, o integer",
          "id integer primary key, s smallint, i integer, b bigint, n numeric, o oid")
      end)

      after_each(function()
        helper.finish(db, { "ints" })
      end)

      it("come back as integers from an untyped context", function()
        local r = db:query("SELECT ? AS x, coalesce(?, ?) AS y", { 5, 6, 7 })[1]
        assert.are.equal(5, r.x)
        assert.are.equal("integer", math.type(r.x))
        assert.are.equal(6, r.y)
        assert.are.equal("integer", math.type(r.y))
        assert.are.equal(math.maxinteger, db:query("SELECT ? AS x", { math.maxinteger })[1].x)
        assert.are.equal(math.mininteger, db:query("SELECT ? AS x", { math.mininteger })[1].x)
        assert.is_false(db:query("SELECT ? IS NULL AS z", { 1 })[1].z == true)
      end)

      it("insert into smallint, integer, bigint, numeric and oid columns, exactly", function()
        local big, near53 = math.maxinteger, 9007199254740993   -- 2^53 + 1
        db:exec("INSERT INTO ints (id, s, i, b, n, o) VALUES (?, ?, ?, ?, ?, ?)",
                { 1, 32767, 2147483647, big, near53, 4000000000 })
        db:exec("INSERT INTO ints (id, s, i, b, n, o) VALUES (?, ?, ?, ?, ?, ?)",
                { 2, -32768, -2147483648, math.mininteger, -near53, 7 })
        local rows = db:query("SELECT s, i, b, n, o FROM ints WHERE id = ? OR id = ? ORDER BY id",
                              { 1, 2 })
        assert.are.same({ 32767, 2147483647, big, 4000000000 },
                        { rows[1].s, rows[1].i, rows[1].b, rows[1].o })
        assert.are.same({ -32768, -2147483648, math.mininteger, 7 },
                        { rows[2].s, rows[2].i, rows[2].b, rows[2].o })
        -- numeric comes back as text on PostgreSQL; its digits are exact
        assert.are.equal("9007199254740993", tostring(rows[1].n))
        assert.are.equal("-9007199254740993", tostring(rows[2].n))
        assert.are.equal(1, db:query("SELECT count(*) AS c FROM ints WHERE n = ?", { near53 })[1].c)
        assert.are.equal(1, db:query("SELECT count(*) AS c FROM ints WHERE o = ?", { 7 })[1].c)
      end)

      it("compare with a narrower column or literal whatever their size", function()
        db:exec("INSERT INTO ints (id, s, i) VALUES (1, 1, 1)")
        for _, v in ipairs({ 1, 40000, 3000000000, math.maxinteger, math.mininteger }) do
          local want = v == 1 and 1 or 0
          assert.are.equal(want, db:query("SELECT count(*) AS c FROM ints WHERE s = ?", { v })[1].c)
          assert.are.equal(want, db:query("SELECT count(*) AS c FROM ints WHERE i = ?", { v })[1].c)
        end
        assert.are.equal(math.maxinteger, db:query("SELECT ? + 1 AS x", { math.maxinteger - 1 })[1].x)
        assert.is_true(db:query("SELECT ? = 1 AS t", { 1 })[1].t == true
                       or db:query("SELECT ? = 1 AS t", { 1 })[1].t == 1)
      end)

      it("keep a transaction intact when the server cannot infer their type", function()
        db:transaction(function()
          db:exec("INSERT INTO ints (id) VALUES (?)", { 1 })
          local r = db:query("SELECT ? IS NULL AS z, ? AS x", { 3, 4 })[1]
          assert.are.equal(4, r.x)
          db:exec("INSERT INTO ints (id) VALUES (?)", { 2 })
        end)
        assert.are.equal(2, helper.count(db, "ints"))
      end)

      if pg then
        it("work where the server wants int4: pg_terminate_backend, generate_series", function()
          local victim = helper.connect(backend)
          local pid = victim:query("SELECT pg_backend_pid() AS p")[1].p
          assert.is_true(db:query("SELECT pg_terminate_backend(?) AS t", { pid })[1].t)
          -- The victim's next statement with an integer is learned first: that fails as lost.
          local err = catch(function() return victim:query("SELECT ? AS x", { 1 }) end)
          assert.are.equal("connection_failed", err.code)
          assert.is_string(err.message)
          victim:close()
          assert.are.equal(10, db:query("SELECT count(*) AS c FROM generate_series(?, ?)",
                                        { 1, 10 })[1].c)
          assert.are.equal(5, db:query("SELECT ?::int2 AS x", { 5 })[1].x)
          assert.are.equal("pg_class", db:query("SELECT relname FROM pg_class WHERE oid = ?",
                                                { 1259 })[1].relname)
        end)

        it("report a value out of range of the wanted type as data_error", function()
          local err = catch(function()
            return db:exec("INSERT INTO ints (id, s) VALUES (?, ?)", { 1, 40000 })
          end)
          assert.are.equal("data_error", err.code)
          assert.are.equal(0, helper.count(db, "ints"))
        end)
      end
    end)
  end
end
