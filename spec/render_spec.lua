-- spec/render_spec.lua: the query AST through core.render and conn:render:
-- exact SQL and parameters on both dialects, the error objects a bad AST
-- raises, and rendered statements run on every backend.

local loam = require "loam"
local core = require "loam.core"
local helper = require "spec.helper"

local null = loam.null

local function col(name, t) return { k = "col", name = name, table = t } end
local function val(v) return { k = "val", v = v } end
local function op(o, l, r) return { k = "op", op = o, l = l, r = r } end

local catch = helper.catch

-- The error object of rendering 'ast' for 'dialect', with its code checked.
local function refused(code, dialect, ast, opts)
  local err = catch(core.render, dialect, ast, opts)
  assert.are.equal(code, err.code)
  return err.message
end

local function is_blob(v)
  return getmetatable(v) ~= nil and tostring(v):match("^loam%.blob") ~= nil
end

describe("core.render", function()
  local select_ast = {
    k = "select",
    columns = { col("id", "o"), { k = "alias", expr = { k = "agg", fn = "count" }, as = "n" } },
    from = { name = "orders", as = "o" },
    joins = { { kind = "left", table = { name = "customers", as = "c" },
                on = op("=", col("customer_id", "o"), col("id", "c")) } },
    where = { k = "and",
              op("ILIKE", col("email", "c"), val("%@x")),
              { k = "in", expr = col("status", "o"), list = { "paid", 'it"s' } },
              { k = "raw", sql = "o.total > ? OR o.vip", params = { 10 } } },
    group = { col("id", "o") },
    order = { { expr = col("id", "o"), desc = true, nulls = "last" } },
    limit = 5,
    offset = 10,
  }

  it("renders a SELECT for SQLite", function()
    local out = core.render("sqlite", select_ast)
    assert.are.equal(1, #out)
    assert.are.equal('SELECT "o"."id", count(*) AS "n" FROM "orders" AS "o" LEFT JOIN '
      .. '"customers" AS "c" ON ("o"."customer_id" = "c"."id") WHERE (("c"."email" LIKE ?) '
      .. 'AND ("o"."status" IN (SELECT k1 FROM loam_keys(?))) AND (o.total > ? OR o.vip)) '
      .. 'GROUP BY "o"."id" ORDER BY "o"."id" DESC NULLS LAST LIMIT ? OFFSET ?', out[1].sql)
    -- The list is a blob in loam's key list form (core/src/conn/sqlite_keys.c).
    local list = out[1].params[2]
    out[1].params[2] = debug.getuservalue(list)
    assert.are.equal("loam.Blob", getmetatable(list).__name)
    assert.are.same({ "%@x", "lk\1\1" .. "t" .. string.pack("<s4", "paid") .. "t"
      .. string.pack("<s4", 'it"s'), 10, 5, 10 }, out[1].params)
    assert.are.equal(5, out[1].n)
  end)

  it("renders the same SELECT for PostgreSQL", function()
    local out = core.render("postgres", select_ast)
    assert.are.equal('SELECT "o"."id", count(*) AS "n" FROM "orders" AS "o" LEFT JOIN '
      .. '"customers" AS "c" ON ("o"."customer_id" = "c"."id") WHERE (("c"."email" ILIKE $1) '
      .. 'AND ("o"."status" IN (SELECT * FROM unnest($2::text[]))) AND (o.total > $3 OR o.vip)) '
      .. 'GROUP BY "o"."id" ORDER BY "o"."id" DESC NULLS LAST LIMIT $4 OFFSET $5', out[1].sql)
    assert.are.same({ "%@x", '{"paid","it\\"s"}', 10, 5, 10 }, out[1].params)
  end)

  it("gives the same text for lists of any length", function()
    local function where_in(list)
      return core.render("postgres", { k = "select", from = { name = "t" },
        where = { k = "in", expr = col("id"), list = list } })[1]
    end
    local big = {}
    for i = 1, 100000 do big[i] = i end
    local a, b = where_in({ 1 }), where_in(big)
    assert.are.equal(a.sql, b.sql)
    assert.are.equal(1, b.n)
    assert.are.equal('SELECT * FROM "t" WHERE (1 = 0)', where_in({}).sql)
  end)

  it("keeps trailing NULLs and blobs as bindable values", function()
    local out = core.render("sqlite", { k = "insert", into = "t", columns = { "a", "b", "c" },
      rows = { { loam.blob("\0\1"), "x", null } }, returning = { "id" } })
    assert.are.equal('INSERT INTO "t" ("a", "b", "c") VALUES (?, ?, ?) RETURNING "id"', out[1].sql)
    assert.are.equal(3, out[1].n)
    assert.are.equal(3, #out[1].params)
    assert.is_true(is_blob(out[1].params[1]))
    assert.are.equal(2, #out[1].params[1])
    assert.are.equal(null, out[1].params[3])
  end)

  it("chunks a large INSERT under the parameter budget", function()
    local rows = {}
    for i = 1, 7 do rows[i] = { i, i * 10 } end
    local out = core.render("postgres", { k = "insert", into = "t", columns = { "a", "b" },
      rows = rows, conflict = { target = { "a" }, action = "nothing" } }, { max_params = 6 })
    assert.are.equal(3, #out)
    assert.are.equal('INSERT INTO "t" ("a", "b") VALUES ($1, $2), ($3, $4), ($5, $6) '
      .. 'ON CONFLICT ("a") DO NOTHING', out[1].sql)
    assert.are.equal(out[1].sql, out[2].sql)
    assert.are.equal('INSERT INTO "t" ("a", "b") VALUES ($1, $2) ON CONFLICT ("a") DO NOTHING',
      out[3].sql)
    assert.are.same({ 4, 40, 5, 50, 6, 60 }, out[2].params)
    assert.are.same({ 7, 70 }, out[3].params)
    for i = 1, 3 do assert.are.equal("insert", out[i].kind) end
  end)

  it("renders UPDATE and DELETE with upsert pieces", function()
    local out = core.render("postgres", { k = "update", table = "t",
      set = { { col = "a", expr = val(1) }, { col = "b", expr = { k = "excluded", name = "b" } } },
      where = { k = "null", expr = col("c"), negate = true }, returning = { "id", col("a") } })
    assert.are.equal('UPDATE "t" SET "a" = $1, "b" = EXCLUDED."b" WHERE ("c" IS NOT NULL) '
      .. 'RETURNING "id", "a"', out[1].sql)
    out = core.render("sqlite", { k = "delete", from = "t",
      where = { k = "between", expr = col("a"), lo = val(1), hi = val(2), negate = true } })
    assert.are.equal('DELETE FROM "t" WHERE ("a" NOT BETWEEN ? AND ?)', out[1].sql)
    assert.are.same({ 1, 2 }, out[1].params)
    assert.are.equal("delete", out[1].kind)
  end)

  it("gives each statement its kind", function()
    assert.are.equal("select", core.render("sqlite", select_ast)[1].kind)
    assert.are.equal("update", core.render("sqlite", { k = "update", table = "t",
      set = { { col = "a", expr = val(1) } } })[1].kind)
  end)

  it("raises misuse for a bad AST, naming the problem", function()
    local function sel(where) return { k = "select", from = { name = "t" }, where = where } end
    assert.matches("unknown expression kind 'foo'", refused("misuse", "sqlite", sel({ k = "foo" })))
    assert.matches("unknown operator 'LIKEE'",
      refused("misuse", "sqlite", sel(op("LIKEE", col("a"), val(1)))))
    assert.matches("'op' node needs 'l' and 'r'",
      refused("misuse", "sqlite", sel({ k = "op", op = "=", l = col("a") })))
    assert.matches("invalid identifier: empty name",
      refused("misuse", "postgres", sel(op("=", col(""), val(1)))))
    assert.matches("longer than 63 bytes",
      refused("misuse", "postgres", sel(op("=", col(("x"):rep(64)), val(1)))))
    assert.matches("'name' holds a NUL byte",
      refused("misuse", "postgres", sel(op("=", col("a\0b"), val(1)))))
    assert.matches("IN list: value 2 is NULL",
      refused("misuse", "sqlite", sel({ k = "in", expr = col("a"), list = { 1, null } })))
    assert.matches("IN list value 2 is nil %(write loam.null for NULL%)",
      refused("misuse", "sqlite", sel({ k = "in", expr = col("a"), list = { 1, nil, 3 } })))
    assert.matches("the 'v' of a 'val' node is a table",
      refused("misuse", "sqlite", sel(op("=", col("a"), val({})))))
    assert.matches("FOR UPDATE/FOR SHARE is PostgreSQL only",
      refused("misuse", "sqlite",
        { k = "select", from = { name = "t" }, lock = { mode = "update" } }))
    assert.matches("INSERT: row 2 has 1 value for 2 columns", refused("misuse", "postgres",
      { k = "insert", into = "t", columns = { "a", "b" }, rows = { { 1, 2 }, { 3 } } }))
    assert.matches("no rows", refused("misuse", "postgres",
      { k = "insert", into = "t", columns = { "a" }, rows = {} }))
    assert.matches("'create_table' is DDL", refused("misuse", "sqlite", { k = "create_table" }))
    assert.matches("unknown dialect 'mysql'", refused("misuse", "mysql", sel()))
    assert.matches("unknown option 'max'", refused("misuse", "sqlite", sel(), { max = 1 }))
  end)

  it("raises data_error for a value the backend cannot take", function()
    local ast = { k = "select", from = { name = "t" },
                  where = { k = "in", expr = col("a"), list = { 1, 0 / 0 } } }
    assert.matches("SQLite cannot store", refused("data_error", "sqlite", ast))
    assert.are.equal("{1,NaN}", core.render("postgres", ast)[1].params[1])
    ast.where = { k = "in", expr = col("a"), list = { "a\0b" } }
    assert.matches("NUL byte", refused("data_error", "postgres", ast))
  end)
end)

for backend, pg in helper.each_backend() do
  describe(backend.label .. ": conn:render", function()
    local db

    -- Runs every statement of 'ast'; returns the rows of the last one.
    local function run(ast, opts)
      local rows
      for _, st in ipairs(db:render(ast, opts)) do rows = db:query(st.sql, st.params) end
      return rows
    end

    before_each(function()
      db = helper.connect(backend)
      helper.table(db, "rtags", "id integer primary key, name text unique, data blob, n integer",
        "id bigint primary key, name text unique, data bytea, n bigint")
    end)

    after_each(function()
      db:close()
    end)

    it("renders in the connection's dialect", function()
      local st = db:render({ k = "select", from = { name = "rtags" },
                             where = op("=", col("id"), val(1)) })[1]
      assert.are.equal(pg and 'SELECT * FROM "rtags" WHERE ("id" = $1)'
                          or 'SELECT * FROM "rtags" WHERE ("id" = ?)', st.sql)
    end)

    it("inserts in chunks, matches IN lists and upserts", function()
      local names = { 'a"b', "c\\d", "", "NULL", "{x,y}", "it's", "h\xc3\xa9" }
      local rows = {}
      for i, name in ipairs(names) do rows[i] = { i, name, loam.blob("\0" .. i), null } end
      run({ k = "insert", into = "rtags", columns = { "id", "name", "data", "n" }, rows = rows },
        { max_params = 9 })
      assert.are.equal(#names, helper.count(db, "rtags"))

      local found = run({ k = "select", columns = { col("id") }, from = { name = "rtags" },
        where = { k = "in", expr = col("name"), list = names }, order = { { expr = col("id") } } })
      assert.are.equal(#names, #found)
      for i = 1, #names do assert.are.equal(i, found[i].id) end

      local none = run({ k = "select", from = { name = "rtags" },
        where = { k = "in", expr = col("name"), list = names, negate = true } })
      assert.are.equal(0, #none)

      local blob = run({ k = "select", columns = { col("data") }, from = { name = "rtags" },
        where = op("=", col("data"), val(loam.blob("\0" .. 3))) })
      assert.are.equal("\0" .. 3, blob[1].data)

      run({ k = "insert", into = "rtags", columns = { "id", "name" }, rows = { { 99, "it's" } },
        conflict = { target = { "name" }, action = "update",
                     set = { { col = "n", expr = { k = "raw", sql = "? + 1", params = { 41 } } } },
                     where = { k = "null", expr = col("n", "rtags") } } })
      local up = db:query("select id, n from rtags where name = ?", { "it's" })
      assert.are.same({ { id = 6, n = 42 } }, up)
      assert.are.equal(#names, helper.count(db, "rtags"))
    end)

    it("asks for the plan with the dialect's EXPLAIN, on the outermost SELECT only", function()
      local ast = { k = "select", from = { name = "rtags" }, where = op("=", col("id"), val(1)),
                    explain = true }
      local st = db:render(ast)[1]
      assert.are.equal(pg and 'EXPLAIN SELECT * FROM "rtags" WHERE ("id" = $1)'
                          or 'EXPLAIN QUERY PLAN SELECT * FROM "rtags" WHERE ("id" = ?)', st.sql)
      local plan = db:run(ast)
      assert.is_true(#plan > 0)
      if pg then assert.is_string(plan[1]["QUERY PLAN"])
      else assert.is_string(plan[1].detail) end

      local err = catch(db.render, db, { k = "select", from = { name = "rtags" },
        where = { k = "in", expr = col("id"),
                  query = { k = "select", columns = { col("id") }, from = { name = "rtags" },
                            explain = true } } })
      assert.are.equal("misuse", err.code)
      assert.matches("EXPLAIN belongs to the outermost statement", err.message, 1, true)
    end)

    if pg then
      it("locks with FOR UPDATE SKIP LOCKED", function()
        local other = helper.connect(backend)
        run({ k = "insert", into = "rtags", columns = { "id" }, rows = { { 1 }, { 2 } } })
        local pick = { k = "select", columns = { col("id") }, from = { name = "rtags" },
          order = { { expr = col("id") } }, limit = 1,
          lock = { mode = "update", skip_locked = true } }
        db:exec("begin")
        assert.are.equal(1, run(pick)[1].id)
        local st = other:render(pick)[1]
        assert.are.equal('SELECT "id" FROM "rtags" ORDER BY "id" ASC LIMIT $1 '
          .. 'FOR UPDATE SKIP LOCKED', st.sql)
        other:exec("begin")
        assert.are.equal(2, other:query(st.sql, st.params)[1].id)
        other:exec("rollback")
        db:exec("rollback")
        other:close()
      end)
    end
  end)
end
