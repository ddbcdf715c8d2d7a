-- spec/batch_spec.lua: db:load_batch, the batched relation loader, on every
-- backend, and the query AST nodes it rests on (a subquery in FROM,
-- row_number() OVER, tuple IN) through core.render.

local loam = require "loam"
local core = require "loam.core"
local helper = require "spec.helper"

local null = loam.null
local catch = helper.catch

local function col(name, t) return { k = "col", name = name, table = t } end

local function items_query(order_desc)
  return { k = "select", from = { name = "batch_items" },
           order = { { expr = col("id"), desc = order_desc } } }
end

-- The ids of an array of rows, as "1,2,3".
local function ids(rows)
  local out = {}
  for i, r in ipairs(rows) do out[i] = tostring(r.id) end
  return table.concat(out, ",")
end

describe("query AST for batched loading", function()
  it("renders a subquery in FROM, row_number() OVER and tuple IN", function()
    local ast = {
      k = "select",
      from = { as = "sub", query = {
        k = "select",
        columns = { col("id"), { k = "alias", as = "rn", expr = {
          k = "row_number", partition = { col("order_id") },
          order = { { expr = col("id"), desc = true, nulls = "last" } } } } },
        from = { name = "items" },
        where = { k = "in", exprs = { col("order_id"), col("sku") },
                  tuples = { { 1, "a" }, { 2, "b" } } },
      } },
      where = { k = "op", op = "<=", l = col("rn"), r = { k = "val", v = 3 } },
    }
    local s = core.render("sqlite", ast)[1]
    assert.are.equal('SELECT * FROM (SELECT "id", row_number() OVER (PARTITION BY "order_id" '
      .. 'ORDER BY "id" DESC NULLS LAST) AS "rn" FROM "items" WHERE (("order_id", "sku") IN '
      .. '(SELECT k1, k2 FROM loam_keys(?)))) AS "sub" WHERE ("rn" <= ?)', s.sql)
    s.params[1] = debug.getuservalue(s.params[1])
    assert.are.same({ "lk\1\2" .. string.pack("<c1i8c1s4c1i8c1s4", "i", 1, "t", "a", "i", 2, "t", "b"),
      3 }, s.params)
    local p = core.render("postgres", ast)[1]
    assert.are.equal('SELECT * FROM (SELECT "id", row_number() OVER (PARTITION BY "order_id" '
      .. 'ORDER BY "id" DESC NULLS LAST) AS "rn" FROM "items" WHERE (("order_id", "sku") IN '
      .. '(SELECT * FROM unnest($1::int8[], $2::text[])))) AS "sub" WHERE ("rn" <= $3)', p.sql)
    assert.are.same({ "{1,2}", '{"a","b"}', 3 }, p.params)
  end)

  it("refuses malformed nodes with misuse errors", function()
    local err = catch(core.render, "sqlite", { k = "select", from = { query = { k = "select" } } })
    assert.are.equal("misuse", err.code)
    assert.matches("'from' needs 'as'", err.message)
    err = catch(core.render, "sqlite", { k = "select", from = { name = "t" },
      where = { k = "in", exprs = { col("a"), col("b") }, tuples = { { 1 } } } })
    assert.matches("tuple 1 must be an array of 2 values", err.message)
    err = catch(core.render, "postgres", { k = "select", from = { name = "t" },
      where = { k = "in", exprs = { col("a") }, tuples = { { null } } } })
    assert.matches("IN list: tuple 1 value 1 is NULL", err.message)
    err = catch(core.render, "sqlite", { k = "select", from = { as = "s", query = { k = "delete", from = "t" } } })
    assert.matches("a subquery must be a 'select'", err.message)
  end)
end)

for backend, pg in helper.each_backend() do
  describe(backend.label .. ": db:load_batch", function()
    local db

    before_each(function()
      db = helper.connect(backend)
      helper.table(db, "batch_items",
        "id integer primary key, order_id integer, sku text, price real, data blob",
        "id integer primary key, order_id integer, sku text, price double precision, data bytea")
      local rows = { { 1, 1, "a", 1.0 }, { 2, 1, "b", 2.5 }, { 3, 1, "c", 3.0 }, { 4, 1, "d", 1.0 },
                     { 5, 1, "e", 2.0 }, { 6, 2, "a", 1.0 }, { 7, 2, "b", 2.5 }, { 8, 4, "z", null } }
      for _, r in ipairs(rows) do
        db:exec("insert into batch_items (id, order_id, sku, price) values (?, ?, ?, ?)", r)
      end
    end)

    after_each(function()
      db:close()
    end)

    it("returns groups aligned with the keys; equal keys share one table", function()
      local res = db:load_batch {
        { query = items_query(), key = { col("order_id", "batch_items") },
          keys = { 2, 1, 2, null, 3, 1.0 } },
      }
      assert.are.equal(1, #res)
      local groups = res[1]
      assert.are.equal(6, #groups)
      assert.are.equal("6,7", ids(groups[1]))
      assert.are.equal("1,2,3,4,5", ids(groups[2]))
      assert.are.equal(groups[1], groups[3])
      assert.are.equal(groups[2], groups[6])
      assert.are.same({}, groups[4])
      assert.are.same({}, groups[5])
      assert.are_not.equal(groups[4], groups[5])
      local r = groups[2][2]
      assert.are.same({ id = 2, order_id = 1, sku = "b", price = 2.5, data = null }, r)
      assert.is_nil(r.__loam_k1)
      assert.are.equal("integer", math.type(r.id))
    end)

    it("matches float parent keys with an integral value as integers", function()
      local res = db:load_batch {
        { query = items_query(), key = { col("price") }, keys = { 1, 2.5, 1.0, 7 } },
      }
      assert.are.equal("1,4,6", ids(res[1][1]))
      assert.are.equal("2,7", ids(res[1][2]))
      assert.are.equal(res[1][1], res[1][3])
      assert.are.same({}, res[1][4])
    end)

    it("gives a row or nil with one = true", function()
      local res = db:load_batch {
        { query = items_query(true), key = { col("order_id") }, keys = { 1, 3, null, 2 }, one = true },
      }
      local g = res[1]
      assert.are.equal(5, g[1].id)
      assert.is_nil(g[2])
      assert.is_nil(g[3])
      assert.are.equal(7, g[4].id)
    end)

    it("limits the rows of each key with limit_per_key", function()
      local res = db:load_batch {
        { query = items_query(true), key = { col("order_id") }, keys = { 1, 2, 3, 4 },
          limit_per_key = 3 },
      }
      assert.are.same({ "5,4,3", "7,6", "", "8" },
        { ids(res[1][1]), ids(res[1][2]), ids(res[1][3]), ids(res[1][4]) })
      assert.is_nil(res[1][1][1].__loam_rn)
    end)

    it("matches composite keys as exact tuples, never their per-column superset", function()
      local res = db:load_batch {
        { query = { k = "select", columns = { col("id"), col("sku") }, from = { name = "batch_items" } },
          key = { col("order_id"), col("sku") },
          keys = { { 1, "a" }, { 2, "b" }, { 1, null }, null } },
      }
      local g = res[1]
      assert.are.equal("1", ids(g[1]))
      assert.are.equal("7", ids(g[2]))
      assert.are.same({}, g[3])
      assert.are.same({}, g[4])
      assert.are.same({ id = 1, sku = "a" }, g[1][1])
    end)

    it("binds text keys of date, timestamp and numeric columns as those types (key_types)",
      function()
      helper.table(db, "batch_typed", "id integer primary key, d date, n integer, x numeric, "
        .. "s text, at timestamp", "id integer primary key, d date, n integer, x numeric(30,2), "
        .. "s text, at timestamptz")
      db:exec("insert into batch_typed values (1, '2021-01-01', 1, 2.5, 'a', "
        .. "'2021-01-01 00:00:00+00'), (2, '2021-01-01', 2, 3, 'b', '2021-01-01 00:00:00.5+00'), "
        .. "(3, '2021-01-02', 1, 2.5, 'b', '2021-01-02 00:00:00+00')")
      local q = { k = "select", columns = { col("id") }, from = { name = "batch_typed" },
                  order = { { expr = col("id") } } }
      local res = db:load_batch {
        { query = q, key = { col("d"), col("n") }, key_types = { "date", "integer" },
          keys = { { "2021-01-01", 1 }, { "2021-01-02", 1 }, { "2021-01-02", 2 } } },
        { query = q, key = { col("x"), col("s") }, key_types = { "numeric", "text" },
          keys = { { "2.5", "a" }, { "2.50", "b" }, { "3", "b" }, { "2.5", "c" } } },
        { query = q, key = { col("at") }, key_types = { "timestamp" },
          keys = { "2021-01-01 00:00:00.5+00", "2021-01-02 00:00:00+00",
                   "2021-01-01 00:00:00+00" } },
      }
      assert.are.same({ "1", "3", "" }, { ids(res[1][1]), ids(res[1][2]), ids(res[1][3]) })
      -- numeric text matches by value: '2.5' is the 2.50 of numeric(30,2)
      assert.are.same({ "1", "3", "2", "" },
        { ids(res[2][1]), ids(res[2][2]), ids(res[2][3]), ids(res[2][4]) })
      assert.are.same({ "2", "3", "1" }, { ids(res[3][1]), ids(res[3][2]), ids(res[3][3]) })
      helper.drop_tables(db, { "batch_typed" })
    end)

    it("loads several specs in one call", function()
      local res = db:load_batch {
        { query = items_query(), key = { col("order_id") }, keys = { 1, 2 } },
        { query = items_query(), key = { col("sku") }, keys = { "a", "zz" } },
        { query = items_query(), key = { col("id") }, keys = { null } },
      }
      assert.are.equal(3, #res)
      assert.are.equal("6,7", ids(res[1][2]))
      assert.are.equal("1,6", ids(res[2][1]))
      assert.are.same({}, res[2][2])
      assert.are.same({ {} }, res[3])
      assert.are.same({}, db:load_batch {})
    end)

    it("loads through a join, keyed on the joined table, with blobs intact", function()
      helper.table(db, "batch_tags", "id integer primary key, name text, icon blob",
        "id integer primary key, name text, icon bytea")
      helper.table(db, "batch_item_tags", "item_id integer, tag_id integer",
        "item_id integer, tag_id integer")
      db:exec("insert into batch_tags values (1, 'red', ?), (2, 'big', ?)",
        { loam.blob("\0\1\255"), null })
      db:exec("insert into batch_item_tags values (1, 1), (1, 2), (2, 2), (7, 1)")
      local res = db:load_batch {
        { query = { k = "select", columns = { { k = "star", table = "t" } },
                    from = { name = "batch_tags", as = "t" },
                    joins = { { kind = "inner", table = { name = "batch_item_tags", as = "it" },
                                on = { k = "op", op = "=", l = col("tag_id", "it"), r = col("id", "t") } } },
                    order = { { expr = col("id", "t") } } },
          key = { col("item_id", "it") }, keys = { 1, 2, 3, 7 } },
      }
      local g = res[1]
      assert.are.same({ { id = 1, name = "red", icon = "\0\1\255" }, { id = 2, name = "big", icon = null } }, g[1])
      assert.are.same({ { id = 2, name = "big", icon = null } }, g[2])
      assert.are.same({}, g[3])
      assert.are.equal("red", g[4][1].name)
      assert.are_not.equal(g[1][1], g[4][1])
    end)

    it("loads 100,000 parent keys in one statement", function()
      db:exec("delete from batch_items")
      if pg then
        db:exec("insert into batch_items (id, order_id) select n, 100001 - n from generate_series(1, 100000) as n")
      else
        db:exec("insert into batch_items (id, order_id) with recursive s(n) as (select 1 union all "
          .. "select n + 1 from s where n < 100000) select n, 100001 - n from s")
      end
      local keys = {}
      for i = 1, 100000 do keys[i] = i end
      local seen = 0
      db:on_query(function() seen = seen + 1 end)
      local res = db:load_batch {
        { query = { k = "select", columns = { col("id") }, from = { name = "batch_items" } },
          key = { col("order_id") }, keys = keys },
      }
      db:on_query(nil)
      assert.are.equal(1, seen)
      local ok = #res[1] == 100000
      for i = 1, 100000 do
        local g = res[1][i]
        if #g ~= 1 or g[1].id ~= 100001 - i then ok = false break end
      end
      assert.is_true(ok)
    end)

    it("answers the same with key_indexed, which PostgreSQL gets as = ANY", function()
      db:exec("create index batch_items_order_idx on batch_items (order_id)")
      local sqls = {}
      db:on_query(function(ev) sqls[#sqls + 1] = ev.sql end)
      local keys = { 2, 1, 2, null, 3, 99 }
      local plain = db:load_batch { { query = items_query(true), key = { col("order_id") },
                                      keys = keys } }
      local probed = db:load_batch { { query = items_query(true), key = { col("order_id") },
                                       keys = keys, key_indexed = true } }
      local limited = db:load_batch { { query = items_query(true), key = { col("order_id") },
                                        keys = keys, key_indexed = true, limit_per_key = 1 } }
      db:on_query(nil)
      if pg then
        assert.matches('("order_id" IN (SELECT * FROM unnest($1::int8[])))', sqls[1], 1, true)
        assert.matches('("order_id" = ANY($1::int8[]))', sqls[2], 1, true)
        assert.matches('("order_id" = ANY($1::int8[]))', sqls[3], 1, true)
      else
        for i = 1, 3 do
          assert.matches('("order_id" IN (SELECT k1 FROM loam_keys(?)))', sqls[i], 1, true)
        end
      end
      assert.are.same(plain, probed)
      assert.are.equal("7,6", ids(probed[1][1]))
      assert.are.equal("5,4,3,2,1", ids(probed[1][2]))
      assert.are.equal(probed[1][1], probed[1][3])
      assert.are.same({ {}, {}, {} }, { probed[1][4], probed[1][5], probed[1][6] })
      assert.are.same({ "7", "5", "7", "", "", "" }, {
        ids(limited[1][1]), ids(limited[1][2]), ids(limited[1][3]), ids(limited[1][4]),
        ids(limited[1][5]), ids(limited[1][6]) })
    end)

    it("reports every statement, pipelined ones included", function()
      local sqls = {}
      db:on_query(function(ev) sqls[#sqls + 1] = ev.sql end)
      db:load_batch {
        { query = items_query(), key = { col("order_id") }, keys = { 1 } },
        { query = items_query(), key = { col("sku") }, keys = { "a" } },
      }
      db:on_query(nil)
      assert.are.equal(2, #sqls)
      assert.matches('"__loam_k1"', sqls[1])
    end)

    it("raises the database error of a failing spec and stays usable", function()
      local err = catch(db.load_batch, db, {
        { query = items_query(), key = { col("order_id") }, keys = { 1 } },
        { query = { k = "select", columns = { col("nope") }, from = { name = "batch_items" } },
          key = { col("order_id") }, keys = { 1 } },
      })
      assert.are.equal("undefined_column", err.code)
      assert.are.equal(1, db:query("select count(*) as n from batch_items where id = 1")[1].n)
      local res = db:load_batch { { query = items_query(), key = { col("order_id") }, keys = { 4 } } }
      assert.are.equal("8", ids(res[1][1]))
    end)

    it("refuses malformed specs with misuse errors naming the problem", function()
      local q = items_query()
      local cases = {
        { { { query = q, key = { col("order_id") }, keys = { 1 }, limit = 3 } },
          "spec 1: unknown field 'limit'" },
        { { { query = q, key = {}, keys = { 1 } } }, "spec 1: 'key' must be a non%-empty array" },
        { { { query = q, key = { col("a"), col("b") }, keys = { 1 } } },
          "spec 1: keys%[1%] must be an array of 2 values" },
        { { { query = q, key = { col("a"), col("b") }, keys = { { 1 } } } },
          "spec 1: keys%[1%] holds 1 values for 2 key expressions" },
        { { { query = q, key = { col("order_id") }, keys = { 1, "1" } } },
          "batch key 2: value 1 is of type text after keys of another type" },
        { { { query = q, key = { col("order_id") }, keys = { 1 }, limit_per_key = 0 } },
          "'limit_per_key' must be a positive integer" },
        { { { query = q, key = { col("order_id") }, keys = { 1 }, one = 1 } },
          "'one' must be a boolean" },
        { { { query = q, key = { col("order_id") }, keys = { 1 }, key_indexed = "yes" } },
          "spec 1: 'key_indexed' must be a boolean" },
        { { { query = q, key = { col("order_id") }, keys = { 1 }, key_index = true } },
          "spec 1: unknown field 'key_index' %(expected query, key, keys, limit_per_key, one, "
          .. "key_types, key_indexed%)" },
        { { { query = { k = "delete", from = "t" }, key = { col("order_id") }, keys = { 1 } } },
          "a subquery must be a 'select'" },
        { { { query = q, key = { col("order_id") }, keys = { 1 }, key_types = { "int" } } },
          "spec 1: key_types%[1%] is not a column type %(id, integer, bigint, text, numeric, "
          .. "boolean, float, date, timestamp, json, blob, enum%)" },
        { { { query = q, key = { col("order_id") }, keys = { 1 },
              key_types = { "date", "text" } } },
          "spec 1: 'key_types' must be an array of 1 column type names, one per key expression" },
        { { { query = q, key = { col("order_id") }, keys = { 1 }, key_types = "date" } },
          "spec 1: 'key_types' must be an array of 1 column type names" },
        { { 42 }, "spec 1 must be a table" },
      }
      for _, c in ipairs(cases) do
        local err = catch(db.load_batch, db, c[1])
        assert.are.equal("misuse", err.code)
        assert.matches(c[2], err.message)
      end
      local err = catch(db.load_batch, db, { { query = q, key = { col("order_id") }, keys = { 1, nil, 3 } } })
      assert.are.equal("misuse", err.code)
    end)
  end)
end
