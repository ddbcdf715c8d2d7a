-- spec/query_api_spec.lua: the chainable query (loam.query) on every
-- backend: conditions and operator helpers, projections, joins, grouping,
-- ordering and both kinds of pagination, every way of running a query,
-- immutability and the statement cache, model sources (validation,
-- coercion, instances) and the bad input that must fail loudly.

local loam = require "loam"
local query = require "loam.query"
local model = require "loam.model"
local helper = require "spec.helper"

local op, raw = query.op, query.raw

-- pcall runs here, not in spec/helper.lua, so that errors raised by the
-- Lua layer name this spec as their caller ('where').
local function catch(f, ...)
  return helper.caught(pcall(f, ...))
end

-- Misuse raised by the query layer points at the line of this spec.
local function misuse(f, ...)
  local err = catch(f, ...)
  assert.are.equal("misuse", err.code, tostring(err))
  assert.matches("query_api_spec%.lua:%d+: $", err.where)
  return err
end

local function ids(rows)
  local out = {}
  for i, r in ipairs(rows) do out[i] = r.id end
  return out
end

local ORDER_COLUMNS = "id, customer_id, status, total, score, note"

for backend, pg in helper.each_backend() do
  describe(backend.label .. ":", function()
    local db

    -- The method table of connections, where db:render lives.
    local function conn_methods(conn)
      return getmetatable(conn).__index
    end

    before_each(function()
      db = helper.connect(backend)
      db:exec("drop table if exists orders")
      helper.table(db, "customers",
        "id integer primary key, name text not null, tier text",
        "id bigserial primary key, name text not null, tier text")
      helper.table(db, "orders",
        "id integer primary key, customer_id integer references customers (id), "
          .. "status text not null, total integer not null, score real, note text",
        "id bigserial primary key, customer_id bigint references customers (id), "
          .. "status text not null, total bigint not null, score double precision, note text")
      for _, c in ipairs { { "Ann", "pro" }, { "Bob", "free" }, { "Cid", loam.null } } do
        db:exec("insert into customers (name, tier) values (?, ?)", c)
      end
      for _, o in ipairs {
        { 1, "paid", 100, 1.5, "first" },
        { 1, "paid", 250, 2.5, loam.null },
        { 2, "pending", 75, loam.null, "rush" },
        { 2, "refunded", 300, 0.5, loam.null },
        { 3, "paid", 50, 3.25, "gift" },
        { loam.null, "pending", 10, 1.0, loam.null },
      } do
        db:exec("insert into orders (customer_id, status, total, score, note) "
          .. "values (?, ?, ?, ?, ?)", o)
      end
    end)

    after_each(function()
      db:close()
    end)

    local function orders()
      return db:table("orders")
    end

    -- The ids of the orders 'cond' selects, in id order.
    local function where_ids(cond)
      return ids(orders():where(cond):order_by("id"):all())
    end

    describe("where", function()
      it("ANDs the pairs of an equality table", function()
        assert.are.same({ 1, 2 }, where_ids { status = "paid", customer_id = 1 })
        assert.are.same({}, where_ids { status = "paid", customer_id = 2 })
      end)

      it("reads loam.null as IS NULL and an array as IN", function()
        assert.are.same({ 2, 4, 6 }, where_ids { note = loam.null })
        assert.are.same({ 1, 3, 5 }, where_ids { id = { 1, 3, 5, 99 } })
        assert.are.same({ 3, 4, 6 }, where_ids { status = { "pending", "refunded" } })
      end)

      it("takes every operator helper", function()
        assert.are.same({ 1 }, where_ids { total = op.eq(100) })
        assert.are.same({ 3, 4, 6 }, where_ids { status = op.ne("paid") })
        assert.are.same({ 5, 6 }, where_ids { total = op.lt(75) })
        assert.are.same({ 3, 5, 6 }, where_ids { total = op.lte(75) })
        assert.are.same({ 4 }, where_ids { total = op.gt(250) })
        assert.are.same({ 2, 4 }, where_ids { total = op.gte(250) })
        assert.are.same({ 3 }, where_ids { note = op.like("r%") })
        assert.are.same({ 3 }, where_ids { note = op.ilike("R%") })
        assert.are.same({ 4 }, where_ids { status = op.not_like("p%") })
        assert.are.same({ 1, 3, 5 }, where_ids { total = op.between(50, 100) })
        assert.are.same({ 2, 4, 6 }, where_ids { total = op.not_between(50, 100) })
        assert.are.same({ 1, 2, 5 }, where_ids { customer_id = op.in_ { 1, 3 } })
        assert.are.same({ 3, 4, 5 }, where_ids { customer_id = op.not_in { 1 } })
        assert.are.same({ 2, 4, 6 }, where_ids { note = op.is_null() })
        assert.are.same({ 1, 3, 5 }, where_ids { note = op.not_null() })
        assert.are.same({ 2, 4, 6 }, where_ids { note = op.eq(loam.null) })
        assert.are.same({ 1, 3, 5 }, where_ids { note = op.ne(loam.null) })
      end)

      it("takes a query as the list of op.in_ and op.not_in", function()
        local pro = db:table("customers"):select("id"):where { tier = "pro" }
        assert.are.same({ 1, 2 }, where_ids { customer_id = op.in_(pro) })
        assert.are.same({ 3, 4, 5 }, where_ids { customer_id = op.not_in(pro) })
      end)

      it("combines where tables and helpers with and_, or_ and not_", function()
        assert.are.same({ 4, 5, 6 },
          where_ids(op.or_ { { status = "refunded" }, { total = op.lt(60) } }))
        assert.are.same({ 4, 5, 6 }, where_ids { total = op.or_ { op.lt(60), op.gt(260) } })
        assert.are.same({ 3, 4, 6 }, where_ids(op.not_ { status = "paid" }))
        assert.are.same({ 1, 2 },
          where_ids(op.and_ { { status = "paid" }, { total = op.gte(100) } }))
        assert.are.same({ 2, 5 },
          where_ids { status = "paid", op.or_ { { customer_id = 3 }, { total = 250 } } })
        assert.are.same({ 1, 3, 5, 6 }, where_ids { total = op.not_(op.gt(100)) })
        assert.are.same({}, where_ids(op.or_ {}))
      end)

      it("takes raw SQL with parameters", function()
        assert.are.same({ 1, 2, 5 }, where_ids(raw("lower(status) = ?", { "paid" })))
        assert.are.same({ 2, 4 }, where_ids { total = op.gt(raw("? * 2", { 100 })) })
      end)

      it("ANDs several calls", function()
        assert.are.same({ 1, 2 },
          ids(orders():where { status = "paid" }:where { customer_id = 1 }:order_by("id"):all()))
      end)

      it("returns no rows for an empty IN list, and all rows for an empty NOT IN", function()
        assert.are.same({}, where_ids { id = {} })
        assert.are.same({}, where_ids { id = op.in_ {} })
        assert.are.same({ 1, 2, 3, 4, 5, 6 }, where_ids { id = op.not_in {} })
      end)

      it("takes an IN list of 100,000 values in one statement", function()
        local list = {}
        for i = 1, 100000 do list[i] = i * 2 - 1 end  -- odd ids
        local q = orders():where { id = list }
        local sql, params = q:to_sql()
        assert.are.equal(1, #params)
        assert.is_true(#sql < 200)
        assert.are.same({ 1, 3, 5 }, ids(q:order_by("id"):all()))
        assert.are.equal(3, q:count())
        local texts = {}
        for i = 1, 100000 do texts[i] = "s" .. i end
        texts[#texts + 1] = "paid"
        assert.are.equal(3, orders():where { status = texts }:count())
      end)
    end)

    describe("select", function()
      it("projects columns, qualified columns and aliased raw SQL", function()
        local rows = orders():select("id", "orders.status", { raw("total * ?", { 2 }), as = "double" },
          { "note", as = "remark" }):where { id = 1 }:all()
        assert.are.same({ { id = 1, status = "paid", double = 200, remark = "first" } }, rows)
      end)

      it("adds to the columns of an earlier select", function()
        local rows = orders():select("id"):select("total"):where { id = 2 }:all()
        assert.are.same({ { id = 2, total = 250 } }, rows)
      end)

      it("drops duplicates with distinct", function()
        local rows = orders():select("status"):distinct():order_by("status"):all()
        assert.are.same({ { status = "paid" }, { status = "pending" }, { status = "refunded" } },
          rows)
      end)
    end)

    describe("order_by", function()
      it("sorts ascending, descending with '-', and by several columns", function()
        assert.are.same({ 4, 2, 1, 3, 5, 6 }, ids(orders():order_by("-total"):all()))
        assert.are.same({ 2, 1, 5, 3, 6, 4 },
          ids(orders():order_by("status", "-total"):all()))
        assert.are.same({ 2, 1, 5, 3, 6, 4 },
          ids(orders():order_by("status"):order_by { "total", desc = true }:all()))
      end)

      it("places NULLs first or last as asked, on every backend", function()
        assert.are.same({ 4, 6, 1, 2, 5, 3 },
          ids(orders():order_by { "score", nulls = "last" }:all()))
        assert.are.same({ 3, 4, 6, 1, 2, 5 },
          ids(orders():order_by { "score", nulls = "first" }:all()))
        assert.are.same({ 3, 5, 2, 1, 6, 4 },
          ids(orders():order_by { "score", desc = true, nulls = "first" }:all()))
      end)

      it("orders by a select alias and by raw SQL", function()
        local rows = orders():select("id", { raw("total % ?", { 7 }), as = "r" })
          :order_by("r", "id"):all()
        assert.are.same({ 5, 1, 6, 2, 3, 4 }, ids(rows))  -- r by id: 2, 5, 5, 6, 1, 3
        assert.are.same({ 4, 2, 1, 3, 5, 6 }, ids(orders():order_by(raw("total * ?", { -1 })):all()))
      end)
    end)

    describe("limit, offset and page", function()
      it("limits and skips rows", function()
        assert.are.same({ 1, 2 }, ids(orders():order_by("id"):limit(2):all()))
        assert.are.same({ 3, 4 }, ids(orders():order_by("id"):limit(2):offset(2):all()))
        assert.are.same({ 5, 6 }, ids(orders():order_by("id"):offset(4):all()))
        assert.are.same({}, ids(orders():limit(0):all()))
      end)

      it("pages by number", function()
        assert.are.same({ 3, 4 }, ids(orders():order_by("id"):page(2, 2):all()))
        assert.are.same({ 5, 6 }, ids(orders():order_by("id"):page(2, 4):all()))
        assert.are.same({}, ids(orders():order_by("id"):page(3, 4):all()))
      end)

      it("refuses counts that are not non-negative integers", function()
        local err = misuse(orders().limit, orders(), -1)
        assert.are.equal("limit: an integer >= 0 expected, got -1", err.message)
        err = misuse(orders().offset, orders(), 1.5)
        assert.are.equal("offset: an integer >= 0 expected, got 1.5", err.message)
        err = misuse(orders().page, orders(), 0, 10)
        assert.are.equal("page: an integer >= 1 expected, got 0", err.message)
      end)
    end)

    describe("joins", function()
      local on = { ["orders.customer_id"] = "customers.id" }

      it("joins on column pairs and filters on the joined table", function()
        local rows = orders():join("customers", on):where { ["customers.tier"] = "pro" }
          :select("orders.id", { "customers.name", as = "customer" }):order_by("orders.id"):all()
        assert.are.same({ { id = 1, customer = "Ann" }, { id = 2, customer = "Ann" } }, rows)
      end)

      it("projects the source's columns when nothing is selected", function()
        local rows = orders():join("customers", on):where { ["customers.name"] = "Cid" }:all()
        assert.are.same({ { id = 5, customer_id = 3, status = "paid", total = 50, score = 3.25,
                            note = "gift" } }, rows)
      end)

      it("left joins", function()
        local rows = orders():left_join("customers", on)
          :where { ["customers.id"] = loam.null }:all()
        assert.are.same({ 6 }, ids(rows))
      end)

      it("takes an alias and raw ON SQL", function()
        assert.are.same({ 3, 4 }, ids(orders():join("customers", { ["orders.customer_id"] = "c.id" }, "c")
          :where { ["c.name"] = "Bob" }:order_by("orders.id"):all()))
        assert.are.same({ 1, 2 }, ids(orders()
          :join("customers", raw("customers.id = orders.customer_id and customers.tier = ?", { "pro" }))
          :order_by("orders.id"):all()))
      end)

      it("mixes column pairs and conditions in ON", function()
        local q = orders():join("customers", { ["orders.customer_id"] = "customers.id",
                                               ["customers.tier"] = op.ne("pro") })
        assert.are.same({ 3, 4 }, ids(q:order_by("orders.id"):all()))
      end)
    end)

    describe("group_by and having", function()
      it("groups and filters groups", function()
        local q = orders():select("customer_id", { raw("count(*)"), as = "n" })
          :where { customer_id = op.not_null() }:group_by("customer_id"):order_by("customer_id")
        assert.are.same({ { customer_id = 1, n = 2 }, { customer_id = 2, n = 2 },
                          { customer_id = 3, n = 1 } }, q:all())
        assert.are.same({ { customer_id = 1, n = 2 }, { customer_id = 2, n = 2 } },
          q:having(raw("count(*) > ?", { 1 })):all())
        assert.are.same({ { customer_id = 2, n = 2 }, { customer_id = 3, n = 1 } },
          q:having { customer_id = op.gt(1) }:all())
        assert.are.equal(3, q:count())
      end)
    end)

    describe("for_update", function()
      if pg then
        it("locks rows and skips locked ones", function()
          local q = orders():where { status = "paid" }:order_by("id"):for_update { skip_locked = true }
          assert.matches("FOR UPDATE SKIP LOCKED$", (q:to_sql()))
          local other = helper.connect(backend)
          other:exec("begin")
          assert.are.same({ 1 }, ids(other:table("orders"):where { id = 1 }:for_update():all()))
          db:exec("begin")
          assert.are.same({ 2, 5 }, ids(q:all()))
          db:exec("rollback")
          other:exec("rollback")
          other:close()
        end)
      else
        it("is refused by SQLite", function()
          local err = catch(orders():for_update { skip_locked = true }.all,
            orders():for_update { skip_locked = true })
          assert.are.equal("misuse", err.code)
          assert.matches("query_api_spec%.lua:%d+: $", err.where)
        end)
      end

      it("refuses unknown options", function()
        local err = misuse(orders().for_update, orders(), { skip_lock = true })
        assert.are.equal("for_update: unknown option 'skip_lock'", err.message)
      end)
    end)

    describe("running", function()
      it("all returns an array of rows", function()
        local rows = orders():where { id = 3 }:all()
        assert.are.same({ { id = 3, customer_id = 2, status = "pending", total = 75,
                            score = loam.null, note = "rush" } }, rows)
        assert.are.same({}, orders():where { id = 99 }:all())
      end)

      it("first returns one row or nil, leaving the query as it was", function()
        local q = orders():order_by("-total")
        local sql = q:to_sql()
        assert.are.equal(4, q:first().id)
        assert.are.equal(sql, (q:to_sql()))
        assert.are.equal(6, #q:all())
        assert.is_nil(q:where { id = 99 }:first())
        assert.is_nil(q:limit(0):first())
      end)

      it("each streams rows and finalizes its statement on break", function()
        local seen = {}
        for row in orders():order_by("id"):each() do seen[#seen + 1] = row.id end
        assert.are.same({ 1, 2, 3, 4, 5, 6 }, seen)
        local iter, state, ctl, closing = orders():order_by("id"):each()
        for row in iter, state, ctl, closing do
          if row.id == 2 then break end
        end
        assert.are.equal("loam.Stmt (closed)", tostring(closing))
        assert.are.equal(6, orders():count())
      end)

      it("counts in the database, honouring limit and offset", function()
        assert.are.equal(6, orders():count())
        local paid = orders():where { status = "paid" }
        assert.are.equal(3, paid:count())
        assert.are.equal(2, paid:limit(2):count())
        assert.are.equal(3, paid:order_by("id"):limit(10):count())
        assert.are.equal(1, paid:offset(2):count())
        assert.are.equal(1, paid:offset(1):limit(1):count())
        assert.are.equal(0, paid:offset(5):count())
        assert.are.equal(0, paid:limit(0):count())
        assert.are.equal(3, orders():select("status"):distinct():count())
        assert.are.equal(2, orders():select("status"):distinct():order_by("status"):offset(1)
          :limit(2):count())
        assert.are.equal(2, orders():join("customers", { ["orders.customer_id"] = "customers.id" })
          :where { ["customers.tier"] = "pro" }:count())
      end)

      -- The statements 'f' runs on the connection, in order.
      local function statements(f)
        local sqls = {}
        db:on_query(function(ev) sqls[#sqls + 1] = ev.sql end)
        local ok, err = pcall(f)
        db:on_query(nil)
        assert(ok, err)
        return sqls
      end

      -- 'sql' written with '?' placeholders, numbered for PostgreSQL.
      local function dialect(sql)
        if not pg then return sql end
        local n = 0
        return (sql:gsub("%?", function()
          n = n + 1
          return "$" .. n
        end))
      end

      it("counts a plain query with count(*) and any other over its rows as a subquery",
         function()
        local paid = orders():where { status = "paid" }
        local grouped = orders():select("customer_id", { raw("count(*)"), as = "n" })
          :group_by("customer_id"):having(raw("count(*) > ?", { 1 }))
        local counts
        local sqls = statements(function()
          counts = {
            paid:order_by("id"):count(),
            paid:order_by("id"):limit(2):offset(1):count(),
            orders():select("status"):distinct():order_by("status"):count(),
            grouped:count(),
          }
        end)
        assert.are.same({ 3, 2, 3, 2 }, counts)
        assert.are.same({
          dialect('SELECT count(*) AS "n" FROM "orders" WHERE ("status" = ?)'),
          dialect('SELECT count(*) AS "n" FROM (SELECT * FROM "orders" WHERE ("status" = ?) '
            .. 'ORDER BY "id" ASC LIMIT ? OFFSET ?) AS "__loam_q"'),
          'SELECT count(*) AS "n" FROM (SELECT DISTINCT "status" FROM "orders") AS "__loam_q"',
          dialect('SELECT count(*) AS "n" FROM (SELECT "customer_id", count(*) AS "n" FROM '
            .. '"orders" GROUP BY "customer_id" HAVING (count(*) > ?)) AS "__loam_q"'),
        }, sqls)
      end)

      it("counts 10,000 DISTINCT rows with one statement", function()
        helper.table(db, "many", "id integer primary key, v integer not null",
          "id bigserial primary key, v bigint not null")
        -- 20,000 rows, each value twice.
        db:exec("insert into many (v) with recursive s(i) as (select 1 union all "
          .. "select i + 1 from s where i < 20000) select i % 10000 from s")
        local q = db:table("many"):select("v"):distinct()
        local before = db:stats().queries
        assert.are.equal(10000, q:count())
        assert.are.equal(1, db:stats().queries - before)
        before = db:stats().queries
        assert.are.equal(2500, q:order_by("v"):limit(2500):count())
        assert.are.equal(1, db:stats().queries - before)
        db:exec("drop table many")
      end)

      it("computes sum, avg, min and max in the database", function()
        assert.are.equal(785, orders():sum("total"))
        assert.are.equal("integer", math.type(orders():sum("total")))
        local paid = orders():where { status = "paid" }
        assert.are.equal(400, paid:sum("total"))
        assert.is_true(math.abs(paid:avg("total") - 400 / 3) < 1e-9)
        assert.are.equal(50, paid:min("total"))
        assert.are.equal(250, paid:max("total"))
        assert.are.equal("refunded", orders():max("status"))
        assert.are.equal(8.75, orders():sum("score"))
        assert.are.equal(800, paid:sum(raw("total * ?", { 2 })))
        assert.is_nil(orders():where { id = 99 }:sum("total"))
        assert.is_nil(orders():where { id = 99 }:max("total"))
      end)

      it("aggregates over the rows of a query with limit/offset or distinct", function()
        local paid = orders():where { status = "paid" }
        local v
        local sqls = statements(function()
          v = paid:order_by("-total"):limit(2):sum("total")
        end)
        assert.are.equal(350, v)
        assert.are.same({ dialect('SELECT sum("__loam_q"."total") AS "v" FROM (SELECT * FROM '
          .. '"orders" WHERE ("status" = ?) ORDER BY "total" DESC LIMIT ?) AS "__loam_q"') }, sqls)
        assert.are.equal(60, orders():order_by("id"):offset(4):sum("total"))
        assert.are.equal(175, orders():order_by("id"):limit(2):avg("total"))
        assert.are.equal(100, paid:order_by("total"):offset(1):min("total"))
        -- Raw SQL reads the subquery's columns by their names.
        assert.are.equal(300, paid:order_by("total"):limit(2):sum(raw("total * ?", { 2 })))
        -- NULL is one distinct row and adds nothing.
        local customers = orders():select("customer_id"):distinct()
        assert.are.equal(4, customers:count())
        assert.are.equal(6, customers:sum("customer_id"))
        assert.are.equal(3, customers:max("orders.customer_id"))
        assert.are.equal("refunded", orders():select("status"):distinct():max("status"))
        assert.are.equal(1, orders():select({ raw("total / 100"), as = "h" }):distinct()
          :order_by("h"):limit(2):max("h"))
      end)

      it("aggregates the groups of a grouped query by their selected values", function()
        -- The largest order of each customer (and of the orders without one).
        local grouped = orders():select("customer_id", { raw("max(total)"), as = "t" })
          :group_by("customer_id")
        local v
        local sqls = statements(function() v = grouped:max("t") end)
        assert.are.equal(300, v)
        assert.are.same({ 'SELECT max("__loam_q"."t") AS "v" FROM (SELECT "customer_id", '
          .. 'max(total) AS "t" FROM "orders" GROUP BY "customer_id") AS "__loam_q"' }, sqls)
        assert.are.equal(4, grouped:count())
        assert.are.equal(10, grouped:min("t"))
        assert.are.equal(610, grouped:sum("t"))
        assert.are.equal(152.5, grouped:avg("t"))
        assert.are.equal(6, grouped:sum("customer_id"))
        assert.are.equal(1220, grouped:sum(raw("t * ?", { 2 })))
        assert.are.equal(250, grouped:having(raw("max(total) > ?", { 100 })):min("t"))
      end)

      it("refuses an aggregate over rows that do not hold its column", function()
        local q = orders():where { status = "paid" }:select("id"):limit(1)
        local err = misuse(q.sum, q, "total")
        assert.are.equal("sum: 'total' is not among the columns the query selects; with "
          .. "limit/offset, distinct or group_by/having, sum runs over the query's own rows, "
          .. "so select it", err.message)
        q = orders():select("customers.id"):join("customers",
          { ["orders.customer_id"] = "customers.id" }):distinct()
        assert.matches("^max: 'id' is not among", misuse(q.max, q, "id").message)
        q = orders():group_by("customer_id")
        assert.are.equal("avg: with group_by/having the query's rows are its groups, and '*' "
          .. "holds no grouped value; select 'total' by name (a grouped column or an alias)",
          misuse(q.avg, q, "total").message)
        q = orders():select("customer_id", { raw("max(total)"), as = "t" }):group_by("customer_id")
        assert.matches("^min: 'total' is not among", misuse(q.min, q, "total").message)
      end)

      it("tells whether a row exists", function()
        assert.is_true(orders():where { status = "paid" }:exists())
        assert.is_false(orders():where { status = "lost" }:exists())
        assert.is_false(orders():order_by("id"):offset(6):exists())
        assert.is_true(orders():order_by("id"):offset(5):exists())
      end)

      it("plucks one column", function()
        assert.are.same({ 1, 2, 5 }, orders():where { status = "paid" }:order_by("id"):pluck("id"))
        assert.are.same({ "first", loam.null, "rush" },
          orders():order_by("id"):limit(3):pluck("note"))
        assert.are.same({ 200, 500 },
          orders():where { customer_id = 1 }:order_by("id"):pluck(raw("total * ?", { 2 })))
      end)

      it("updates the rows that match", function()
        local n = orders():where { status = "pending" }
          :update_all { note = "late", total = raw("total + ?", { 1 }) }
        assert.are.equal(2, n)
        assert.are.same({ { note = "late", total = 76 }, { note = "late", total = 11 } },
          db:query("select note, total from orders where status = 'pending' order by id"))
        assert.are.equal(0, orders():where { id = 99 }:update_all { note = "x" })
        assert.are.equal(1, orders():where { id = 1 }:update_all { note = loam.null })
        assert.are.equal(loam.null, db:query("select note from orders where id = 1")[1].note)
      end)

      it("deletes the rows that match", function()
        assert.are.equal(3, orders():where { status = "paid" }:delete_all())
        assert.are.same({ 3, 4, 6 }, ids(orders():order_by("id"):all()))
        assert.are.equal(0, orders():where { status = "paid" }:delete_all())
      end)

      it("refuses update_all and delete_all on more than conditions", function()
        local q = orders():where { status = "paid" }:order_by("id")
        local err = misuse(q.delete_all, q)
        assert.matches("^delete_all: the query may only have where conditions, not order_by",
          err.message)
        err = misuse(q.update_all, orders():limit(1), { note = "x" })
        assert.matches("^update_all: the query may only have where conditions, not limit/offset",
          err.message)
        assert.are.equal(6, orders():count())
        assert.are.equal(3, orders():where { note = op.not_null() }:count())
      end)

      it("explains the plan of the statement all() runs", function()
        local lines = orders():where { status = "paid" }:explain()
        assert.is_true(#lines >= 1)
        for _, line in ipairs(lines) do assert.are.equal("string", type(line)) end
        assert.matches("orders", table.concat(lines, "\n"))
        if pg then
          assert.matches("Scan on orders", table.concat(lines, "\n"))
        else
          assert.matches("SCAN orders", lines[1])
        end
      end)
    end)

    describe("to_sql", function()
      it("renders the exact text and parameters of a filtered, ordered page", function()
        local sql, params = orders():where { status = "paid", customer_id = 1 }
          :order_by("-total"):limit(10):to_sql()
        if pg then
          assert.are.equal('SELECT * FROM "orders" WHERE (("customer_id" = $1) AND ("status" = $2)) '
            .. 'ORDER BY "total" DESC LIMIT $3', sql)
        else
          assert.are.equal('SELECT * FROM "orders" WHERE (("customer_id" = ?) AND ("status" = ?)) '
            .. 'ORDER BY "total" DESC LIMIT ?', sql)
        end
        assert.are.same({ 1, "paid", 10 }, { table.unpack(params, 1, 3) })
      end)

      it("renders the exact text of a join with an IN list", function()
        local sql = orders():select("orders.id", { "customers.name", as = "customer" })
          :join("customers", { ["orders.customer_id"] = "customers.id" })
          :where { ["orders.id"] = { 1, 2 } }:to_sql()
        local head = 'SELECT "orders"."id", "customers"."name" AS "customer" FROM "orders" '
          .. 'INNER JOIN "customers" ON ("orders"."customer_id" = "customers"."id") WHERE '
        if pg then
          assert.are.equal(head .. '("orders"."id" IN (SELECT * FROM unnest($1::int8[])))', sql)
        else
          assert.are.equal(head .. '("orders"."id" IN (SELECT k1 FROM loam_keys(?)))', sql)
        end
      end)

      it("renders one text for one shape, whatever the values", function()
        local a = orders():where { status = "paid", total = op.gt(1) }:to_sql()
        local b = orders():where { total = op.gt(500), status = "x" }:to_sql()
        assert.are.equal(a, b)
      end)
    end)

    describe("immutability", function()
      it("leaves the receiver of every building method unchanged", function()
        local q = orders():where { status = "paid" }
        local sql, params = q:to_sql()
        local n = #params
        local derived = {
          q:where { customer_id = 1 }, q:select("id"), q:distinct(), q:order_by("id"),
          q:limit(1), q:offset(1), q:page(2, 2), q:group_by("id"),
          q:having(raw("count(*) > ?", { 0 })),
          q:join("customers", { ["orders.customer_id"] = "customers.id" }),
          q:left_join("customers", { ["orders.customer_id"] = "customers.id" }),
        }
        for _, d in ipairs(derived) do
          assert.are_not.equal(sql, (d:to_sql()))
        end
        local sql2, params2 = q:to_sql()
        assert.are.equal(sql, sql2)
        assert.are.equal(n, #params2)
        assert.are.same({ 1, 2, 5 }, ids(q:order_by("id"):all()))
        -- Two queries derived from one share nothing.
        local a, b = q:where { customer_id = 1 }, q:where { customer_id = 3 }
        assert.are.same({ 1, 2 }, ids(a:order_by("id"):all()))
        assert.are.same({ 5 }, ids(b:order_by("id"):all()))
      end)

      it("refuses assignment to a query", function()
        local q = orders()
        local err = misuse(function() q.limit = 5 end)
        assert.are.equal("queries are immutable: every method returns a new query", err.message)
      end)

      it("renders a query once, however often it runs", function()
        local methods = conn_methods(db:connection())
        local prepare, calls = methods.prepare, 0
        methods.prepare = function(...)
          calls = calls + 1
          return prepare(...)
        end
        local ok, err = pcall(function()
          local q = orders():where { status = "paid" }
          q:all()
          q:all()
          for _ in q:each() do end
          q:to_sql()
          assert.are.equal(1, calls)
          q:count()
          q:count()
          q:first()
          q:first()
          assert.are.equal(3, calls)
        end)
        methods.prepare = prepare
        assert(ok, err)
      end)
    end)

    describe("first of one equality on a kept query", function()
      -- where{ col = value }:first() on a query kept aside has one shape
      -- whatever the value: its statement is prepared once on the kept
      -- query, and each value bound into its slot must read its own row.
      local function statuses(q, col, values)
        local out = {}
        for i, v in ipairs(values) do
          local r = q:where { [col] = v }:first()
          out[i] = r and r.status or false
        end
        return out
      end

      it("reads each value's own row, however often the shape runs", function()
        local base = orders():order_by("id")
        assert.are.same({ "paid", "paid", "pending", "refunded", "paid", "pending", false,
                          "paid", "refunded" },
          statuses(base, "id", { 1, 2, 3, 4, 5, 6, 7, 1, 4 }))
        assert.are.same({ 1, 3, 4, 1 }, ids {
          base:where { status = "paid" }:first(), base:where { status = "pending" }:first(),
          base:where { status = "refunded" }:first(), base:where { status = "paid" }:first() })
        assert.is_nil(base:where { status = "void" }:first())
      end)

      it("keeps the kept query's own values, also when they equal the new one", function()
        -- The kept query's limit, and its own condition on total, are parameters
        -- too: only the new value's slot changes.
        local base = orders():where { customer_id = 2 }:order_by("-total"):limit(2)
        assert.are.same({ "refunded", "refunded", "refunded", false, false },
          statuses(base, "customer_id", { 2, 2, 2, 1, 3 }))
        assert.are.same({ "pending", false, "pending", false },
          statuses(base, "total", { 75, 2, 75, 300 + 1 }))
        local twos = orders():where { total = 250 }
        assert.are.same({ false, "paid", false, "paid" }, statuses(twos, "id", { 1, 2, 3, 2 }))
      end)

      it("runs a float and a text value of the same column in their own shapes", function()
        local base = orders()
        assert.are.same({ "paid", "paid", "paid", false, "paid" },
          statuses(base, "score", { 1.5, 2.5, 1.5, 9.5, 3.25 }))
        assert.are.same({ "paid", "pending", "paid" },
          statuses(base, "note", { "first", "rush", "gift" }))
      end)

      it("coerces and refuses the values of a model's column as before", function()
        local Order = db:model("orders", { loam.id(), loam.bigint("customer_id"),
          loam.text("status", { null = false }), loam.integer("total", { null = false }),
          loam.float("score"), loam.text("note") })
        local base = Order:order_by("id")
        assert.are.same({ "paid", "pending", "paid", "paid" },
          statuses(base, "id", { 1, 3, 5, 2.0 }))
        for _ = 1, 3 do
          local err = catch(function() return base:where { id = "3" }:first() end)
          assert.are.equal("validation_error", err.code)
          assert.are.equal('orders.id: expected integer, got string ("3")', err.message)
        end
      end)

      it("gives a query that does all a query does, once the shape is known", function()
        -- After the first where{ id = ... } of a kept query, the next ones
        -- make their query's state only when something besides first()
        -- asks for it: each must still be a whole query of its own.
        local base = orders():order_by("id")
        assert.are.same({ "paid" }, statuses(base, "id", { 1 }))
        local q3, q4 = base:where { id = 3 }, base:where { id = 4 }
        assert.is_true(query.is_query(q3))
        assert.are.equal("loam.Query (orders)", tostring(q4))
        assert.are.same({ 3 }, ids(q3:all()))
        assert.are.equal(1, q4:count())
        assert.are.same({ 4 }, ids(q4:where { status = "refunded" }:all()))
        assert.are.same({}, ids(q4:where { status = "paid" }:all()))
        local sql, params = base:where { id = 5 }:to_sql()
        assert.truthy(sql:find("WHERE", 1, true))
        assert.are.same({ 5 }, params)
        assert.has_error(function() q3.x = 1 end)
        -- first() of such a query, and of one made after, read their own rows.
        assert.are.equal("pending", base:where { id = 6 }:first().status)
        local q2 = base:where { id = 2 }
        assert.are.same({ 2 }, ids(q2:all()))
        assert.are.equal("paid", q2:first().status)
        assert.is_nil(base:where { id = 7 }:first())
        -- Two pairs, another value type, or a condition that is no plain table
        -- take the usual way.
        assert.are.same({ 4 }, ids(base:where { id = 4, status = "refunded" }:all()))
        assert.are.equal("refunded", base:where { id = 4.0 }:first().status)
        assert.are.same({ 3, 4 }, ids(base:where(op.or_ { { id = 3 }, { id = 4 } }):all()))
        assert.are.same({ 4 }, ids(base:where { id = op.eq(4) }:all()))
        assert.are.equal("refunded", base:where { id = op.eq(4) }:first().status)
      end)
    end)

    describe("keyset pagination", function()
      -- 25 rows with many ties in 'grp' and 'name'.
      local function events()
        helper.table(db, "events",
          "id integer primary key, grp integer not null, name text not null, amount real",
          "id bigserial primary key, grp bigint not null, name text not null, "
            .. "amount double precision")
        local names = { "ant", "bee", "cat" }
        for i = 1, 25 do
          db:exec("insert into events (grp, name, amount) values (?, ?, ?)",
            { i % 4, names[i % 3 + 1], (i % 5) / 2 })
        end
        return db:table("events")
      end

      -- Walks every page; returns the ids in page order and the page sizes.
      local function walk(q, opts)
        local seen, sizes, cursor = {}, {}, nil
        repeat
          local o = {}
          for k, v in pairs(opts) do o[k] = v end
          o.after = cursor
          local rows
          rows, cursor = q:paginate(o)
          sizes[#sizes + 1] = #rows
          for _, r in ipairs(rows) do seen[#seen + 1] = r.id end
          assert.is_true(#sizes <= 30, "pagination does not end")
        until cursor == nil
        return seen, sizes
      end

      -- The ids of all rows sorted by 'less' in Lua.
      local function sorted(less)
        local rows = db:query("select * from events")
        table.sort(rows, less)
        return ids(rows)
      end

      it("walks all pages of 25 rows with ties, mixed ASC/DESC", function()
        local q = events()
        local expect = sorted(function(a, b)
          if a.grp ~= b.grp then return a.grp < b.grp end
          if a.name ~= b.name then return a.name > b.name end
          return a.id < b.id
        end)
        local seen, sizes = walk(q, { order = { "grp", "-name" }, limit = 7 })
        assert.are.same(expect, seen)
        assert.are.same({ 7, 7, 7, 4 }, sizes)
        seen, sizes = walk(q, { order = { "grp", { "name", desc = true } }, limit = 5 })
        assert.are.same(expect, seen)
        assert.are.same({ 5, 5, 5, 5, 5 }, sizes)
        expect = sorted(function(a, b)
          if a.amount ~= b.amount then return a.amount > b.amount end
          if a.name ~= b.name then return a.name < b.name end
          return a.id > b.id
        end)
        seen = walk(q, { order = { "-amount", "name" }, tiebreak = "-id", limit = 4 })
        assert.are.same(expect, seen)
      end)

      it("walks a model's NOT NULL columns without NULL placement", function()
        events()
        local Event = db:model("events", { loam.id(), loam.integer("grp", { null = false }),
          loam.text("name", { null = false }), loam.float("amount") })
        local expect = sorted(function(a, b)
          if a.grp ~= b.grp then return a.grp > b.grp end
          if a.name ~= b.name then return a.name < b.name end
          return a.id < b.id
        end)
        -- The statements as they reach the connection: pages run through
        -- db:run, which renders without handing the text to Lua.
        local texts = {}
        local hook = db:on_query(function(e) texts[#texts + 1] = e.sql end)
        local ok, seen = pcall(walk, Event, { order = { "-grp", "name" }, limit = 4 })
        db:on_query(hook)
        assert(ok, seen)
        assert.are.same(expect, seen)
        assert.are.equal(7, #texts)  -- 25 rows, 4 a page
        for _, sql in ipairs(texts) do
          assert.is_nil(sql:find("NULL", 1, true), sql)
        end
      end)

      it("takes the order from order_by and keeps the where conditions", function()
        local q = events():where { grp = op.ne(0) }:order_by("-grp")
        local expect = sorted(function(a, b)
          if a.grp ~= b.grp then return a.grp > b.grp end
          return a.id < b.id
        end)
        local want = {}
        for _, id in ipairs(expect) do
          if db:query("select grp from events where id = ?", { id })[1].grp ~= 0 then
            want[#want + 1] = id
          end
        end
        assert.are.same(want, (walk(q, { limit = 6 })))
      end)

      it("returns no cursor for a single or empty page", function()
        local q = events()
        local rows, cursor = q:paginate { order = { "id" }, limit = 25 }
        assert.are.equal(25, #rows)
        assert.is_nil(cursor)
        rows, cursor = q:where { grp = 99 }:paginate { order = { "id" }, limit = 5 }
        assert.are.same({}, rows)
        assert.is_nil(cursor)
      end)

      it("places NULLs last unless told otherwise, in both directions", function()
        helper.table(db, "ranked", "id integer primary key, r integer", "id bigint primary key, r bigint")
        local rs = { 3, loam.null, 1, 3, loam.null, 2, 1, loam.null, 5, 2 }
        for i, r in ipairs(rs) do db:exec("insert into ranked (id, r) values (?, ?)", { i, r }) end
        local q = db:table("ranked")
        local function expect(desc, nulls_first)
          local all = db:query("select * from ranked")
          table.sort(all, function(a, b)
            local an, bn = a.r == loam.null, b.r == loam.null
            if an ~= bn then
              if nulls_first then return an end
              return bn
            end
            if not an and a.r ~= b.r then
              if desc then return a.r > b.r end
              return a.r < b.r
            end
            return a.id < b.id
          end)
          return ids(all)
        end
        assert.are.same(expect(false, false), (walk(q, { order = { "r" }, limit = 3 })))
        assert.are.same(expect(true, true), (walk(q, { order = { "-r" }, limit = 3 })))
        assert.are.same(expect(false, true),
          (walk(q, { order = { { "r", nulls = "first" } }, limit = 2 })))
        assert.are.same(expect(true, false),
          (walk(q, { order = { { "r", desc = true, nulls = "last" } }, limit = 4 })))
      end)

      it("round-trips strings, integers, floats, booleans and NULL in its cursor", function()
        helper.table(db, "kinds",
          "id integer primary key, s text, i integer, f real, b boolean, n integer",
          "id bigint primary key, s text, i bigint, f double precision, b boolean, n bigint")
        local third = 1 / 3
        local next_third = string.unpack("<d", string.pack("<i8",
          string.unpack("<i8", string.pack("<d", third)) + 1))
        local values = {
          { "", math.mininteger, third, false },
          { "", math.mininteger, next_third, false },
          { "", math.maxinteger, -1e300, false },
          { "日本語 ✓", 0, 0.1, true },
          { "日本語 ✓", 0, 0.1, false },
          { "a\"b'c\\d", 7, 1e-300, true },
          { "a\"b'c\\d", 7, 1e-300, false },
          { "z", -1, 2.5, true },
        }
        for i, v in ipairs(values) do
          db:exec("insert into kinds (id, s, i, f, b, n) values (?, ?, ?, ?, ?, ?)",
            { i, v[1], v[2], v[3], v[4], loam.null })
        end
        local q = db:table("kinds")
        local order = { "n", "s", "-i", "f", "b" }
        local all = q:order_by("n", "s", "-i", "f", "b", "id"):all()
        local seen = walk(q, { order = order, limit = 1 })
        assert.are.same(ids(all), seen)
        assert.are.equal(#values, #seen)
      end)

      it("refuses a garbled, tampered or foreign cursor", function()
        local q = events()
        local _, cursor = q:paginate { order = { "grp", "-name" }, limit = 3 }
        assert.are.equal("string", type(cursor))
        local flipped = cursor:sub(1, 5) .. (cursor:sub(6, 6) == "A" and "B" or "A") .. cursor:sub(7)
        for _, bad in ipairs { flipped, cursor:sub(1, -2), cursor .. "A", "!!!", "", 42, {} } do
          local err = misuse(q.paginate, q, { order = { "grp", "-name" }, limit = 3, after = bad })
          assert.are.equal("invalid pagination cursor", err.message)
        end
        local err = misuse(q.paginate, q, { order = { "grp", "name" }, limit = 3, after = cursor })
        assert.are.equal("invalid pagination cursor", err.message)
      end)

      it("refuses raw ordering, limit/offset and unknown options", function()
        local q = events()
        local err = misuse(q.paginate, q, { order = { raw("grp") }, limit = 3 })
        assert.are.equal("paginate: orders by columns only, not raw SQL", err.message)
        err = misuse(q.paginate, q:limit(3), { order = { "grp" }, limit = 3 })
        assert.are.equal("paginate: the query has limit/offset; paginate sets its own",
          err.message)
        err = misuse(q.paginate, q, { order = { "grp" }, per_page = 3 })
        assert.are.equal("paginate: unknown option 'per_page'", err.message)
        err = misuse(q.paginate, q, { order = { "grp" } })
        assert.are.equal("paginate: limit: an integer >= 1 expected, got nil", err.message)
      end)

      it("needs its ordering columns in the projection", function()
        local q = events():select("name")
        local err = misuse(q.paginate, q, { order = { "grp" }, limit = 3 })
        assert.are.equal("paginate: ordering column 'grp' is not among the selected columns",
          err.message)
      end)
    end)

    describe("model sources", function()
      local Order, Customer

      before_each(function()
        Customer = db:model("customers", { loam.id(), loam.text("name", { null = false }),
                                           loam.text("tier") })
        Order = db:model("orders", { loam.id(), loam.bigint("customer_id"),
          loam.text("status", { null = false }), loam.integer("total", { null = false }),
          loam.float("score"), loam.text("note") })
      end)

      local function order_q()
        return query.new(db, Order)
      end

      it("is where a model's query methods start", function()
        assert.are.same({ 1, 2, 5 }, ids(Order:where { status = "paid" }:order_by("id"):all()))
        assert.are.equal(6, Order:count())
        local err = misuse(Order.where, Order, { nope = 1 })
        assert.are.equal("orders", err.model)
      end)

      it("returns instances from all, first and each", function()
        local rows = order_q():where { status = "paid" }:order_by("id"):all()
        assert.are.same({ 1, 2, 5 }, ids(rows))
        for _, r in ipairs(rows) do assert.are.equal(Order, model.of(r)) end
        assert.are.equal(Order, model.of(order_q():first()))
        for r in order_q():each() do assert.are.equal(Order, model.of(r)) end
        local sub = order_q():select("id", "status"):first()
        assert.are.equal(Order, model.of(sub))
        local rows2, cursor = order_q():paginate { order = { "-total" }, limit = 2 }
        assert.are.same({ 4, 2 }, ids(rows2))
        assert.are.equal(Order, model.of(rows2[1]))
        assert.are.same({ 1, 3 }, ids((order_q():paginate { order = { "-total" }, limit = 2,
                                                           after = cursor })))
      end)

      it("streams instances with each that save what changed, joined or not, whole or in part",
        function()
          local seen, fields = {}, {}
          for r in order_q():order_by("id"):each() do
            assert.are.equal(Order, model.of(r))
            seen[#seen + 1] = r
          end
          assert.are.same({ 1, 2, 3, 4, 5, 6 }, ids(seen))
          for k in pairs(seen[1]) do fields[#fields + 1] = k end
          table.sort(fields)
          assert.are.same({ "customer_id", "id", "note", "score", "status", "total" }, fields)
          seen[1].note = "streamed"
          seen[1]:save()
          assert.are.equal("streamed", Order:find(1).note)
          assert.are.equal(seen[2].status, Order:find(2).status)
          local joined = {}
          for r in order_q():join(Customer, { ["orders.customer_id"] = "customers.id" })
              :order_by("orders.id"):each() do
            assert.are.equal(Order, model.of(r))
            joined[#joined + 1] = r
          end
          assert.is_true(#joined > 0)
          joined[1].total = joined[1].total + 1
          joined[1]:save()
          assert.are.equal(joined[1].total, Order:find(joined[1].id).total)
          for r in order_q():select("id", "status"):order_by("id"):each() do
            assert.are.equal(Order, model.of(r))
            assert.is_nil(rawget(r, "total"))
          end
        end)

      it("returns plain rows for projections that are not plain columns", function()
        local r = order_q():select("id", { raw("total * ?", { 2 }), as = "double" })
          :where { id = 1 }:first()
        assert.is_nil(getmetatable(r))
        assert.are.same({ id = 1, double = 200 }, r)
        r = order_q():select({ "status", as = "s" }):where { id = 1 }:first()
        assert.is_nil(getmetatable(r))
        r = order_q():join(Customer, { ["orders.customer_id"] = "customers.id" })
          :select("orders.id", "customers.name"):where { ["orders.id"] = 1 }:first()
        assert.is_nil(getmetatable(r))
        assert.are.same({ 1, 2, 5 }, order_q():where { status = "paid" }:order_by("id"):pluck("id"))
      end)

      it("names the model and its columns for an unknown column", function()
        local msg = "orders: unknown column 'nope' (columns: " .. ORDER_COLUMNS .. ")"
        local q = order_q()
        local err = misuse(q.where, q, { nope = 1 })
        assert.are.equal(msg, err.message)
        assert.are.equal("orders", err.model)
        assert.are.equal("nope", err.column)
        assert.are.equal(msg, misuse(q.where, q, { nope = op.gt(1) }).message)
        assert.are.equal(msg, misuse(q.order_by, q, "-nope").message)
        assert.are.equal(msg, misuse(q.select, q, "nope").message)
        assert.are.equal(msg, misuse(q.select, q, { "nope", as = "x" }).message)
        assert.are.equal(msg, misuse(q.group_by, q, "nope").message)
        assert.are.equal(msg, misuse(q.pluck, q, "nope").message)
        assert.are.equal(msg, misuse(q.sum, q, "nope").message)
        assert.are.equal(msg, misuse(q:limit(1).sum, q:limit(1), "nope").message)
        assert.are.equal(msg, misuse(q.update_all, q, { nope = 1 }).message)
        assert.are.equal(msg, misuse(q.where, q, { ["orders.nope"] = 1 }).message)
        local j = q:join(Customer, { ["orders.customer_id"] = "customers.id" })
        assert.are.equal("customers: unknown column 'nope' (columns: id, name, tier)",
          misuse(j.where, j, { ["customers.nope"] = 1 }).message)
        assert.are.equal("customers: unknown column 'nope' (columns: id, name, tier)",
          misuse(q.join, q, Customer, { ["orders.customer_id"] = "customers.nope" }).message)
      end)

      it("coerces values for their columns, IN lists element by element", function()
        local sql, params = order_q():where { total = 100.0 }:to_sql()
        assert.matches('"total"', sql)
        assert.are.equal("integer", math.type(params[1]))
        assert.are.same({ 1 }, ids(order_q():where { total = 100.0 }:all()))
        assert.are.same({ 1, 3 }, ids(order_q():where { id = { 1.0, 3.0 } }:order_by("id"):all()))
        assert.are.same({ 2, 4 }, ids(order_q():where { total = op.between(250.0, 300.0) }
          :order_by("id"):all()))
        local err = catch(order_q().where, order_q(), { total = "12x" })
        assert.are.equal("validation_error", err.code)
        assert.are.equal("orders", err.model)
        assert.are.equal("total", err.column)
        assert.matches("query_api_spec%.lua:%d+: $", err.where)
        err = catch(order_q().where, order_q(), { id = { 1, "x" } })
        assert.are.equal("validation_error", err.code)
        assert.are.equal("id", err.column)
        err = catch(order_q().where, order_q(), { total = op.gt("x") })
        assert.are.equal("validation_error", err.code)
      end)

      it("coerces update_all values and changes nothing when one is invalid", function()
        assert.are.equal(1, order_q():where { id = 1 }:update_all { total = 5.0 })
        local t = db:query("select total from orders where id = 1")[1].total
        assert.are.equal(5, t)
        assert.are.equal("integer", math.type(t))
        local err = catch(order_q().update_all, order_q(), { total = "x" })
        assert.are.equal("validation_error", err.code)
        assert.are.equal(785 - 95, order_q():sum("total"))
      end)
    end)

    describe("bad input", function()
      it("refuses an unknown operator", function()
        local err = misuse(function() return op.regex("^a") end)
        assert.matches("^unknown operator 'op.regex' %(operators: op.and_, op.between, ", err.message)
        err = misuse(orders().where, orders(), { total = { gt = 5 } })
        assert.matches("^unknown operator 'gt' in the value of 'total' %(use an operator helper: ",
          err.message)
        err = misuse(orders().where, orders(), { total = op.gt })
        assert.are.equal("cannot compare 'total' with a function", err.message)
        err = misuse(orders().where, orders(), op.gt(5))
        assert.are.equal("op.gt needs a column: use it as a value, as in where{ price = op.gt(...) }",
          err.message)
      end)

      it("tells nil from loam.null", function()
        local hint = "nil is not NULL: use loam.null for SQL NULL"
        local err = misuse(op.eq, nil)
        assert.are.equal("op.eq: argument #1 is nil (" .. hint .. ")", err.message)
        err = misuse(op.between, 1, nil)
        assert.are.equal("op.between: argument #2 is nil (" .. hint .. ")", err.message)
        err = misuse(orders().where, orders(), { status = nil })
        assert.are.equal("empty condition table (a pair whose value is nil vanishes from a "
          .. "Lua table; " .. hint .. ")", err.message)
        err = misuse(orders().where, orders(), nil)
        assert.are.equal("a condition must be a table of column = value pairs, query.raw(...) "
          .. "or an op combinator, got nil (" .. hint .. ")", err.message)
        err = misuse(orders().where, orders(), { id = op.in_ { 1, nil, 3 } })
        assert.are.equal("op.in_: the list for 'id' must be an array without holes, or a query ("
          .. hint .. ")", err.message)
        err = misuse(orders().update_all, orders(), { note = nil })
        assert.matches(hint, err.message, 1, true)
        err = misuse(query.raw, "a = ? and b = ?", { 1, nil, 3 })
        assert.are.equal("query.raw: parameters must be an array without holes (" .. hint .. ")",
          err.message)
        err = misuse(orders().where, orders(), { total = op.gt(loam.null) })
        assert.are.equal("op.gt(loam.null) for 'total' is never true: use op.is_null() or "
          .. "op.not_null()", err.message)
        err = catch(orders():where { id = { 1, loam.null } }.all, orders():where { id = { 1, loam.null } })
        assert.are.equal("misuse", err.code)
        assert.are.equal(6, orders():count())
      end)

      it("binds injection attempts in values", function()
        local evil = "x'); DROP TABLE orders; --"
        local q = orders():where { status = evil, note = op.like(evil) }
        local sql = q:to_sql()
        assert.is_nil(sql:find("DROP", 1, true))
        assert.are.same({}, q:all())
        assert.are.equal(1, orders():where { id = 1 }:update_all { note = evil })
        assert.are.equal(evil, orders():where { note = evil }:first().note)
        assert.are.equal(6, orders():count())
      end)

      it("quotes injection attempts in identifiers, which fail as unknown columns", function()
        local evil = 'name"; DROP TABLE orders; --'
        for _, q in ipairs {
          orders():where { [evil] = 1 },
          orders():select(evil),
          orders():order_by(evil),
          orders():where { ["orders." .. evil] = 1 },
        } do
          local err = catch(q.all, q)
          assert.are.equal("undefined_column", err.code)
          assert.matches("query_api_spec%.lua:%d+: $", err.where)
        end
        local err = catch(orders().update_all, orders(), { [evil] = 1 })
        assert.are.equal("undefined_column", err.code)
        err = catch(db:table(evil).all, db:table(evil))
        assert.are.equal("undefined_table", err.code)
        assert.are.equal(6, orders():count())
        assert.are.equal(6, helper.count(db, "orders"))
      end)

      it("stores and compares infinities in a double column", function()
        local inf = math.huge
        assert.are.equal(1, orders():where { id = 1 }:update_all { score = inf })
        assert.are.equal(1, orders():where { id = 2 }:update_all { score = -inf })
        assert.are.same({ 1 }, ids(orders():where { score = inf }:all()))
        assert.are.same({ 2 }, ids(orders():where { score = -inf }:all()))
        assert.are.same({ 1, 2 }, ids(orders():where { score = { inf, -inf } }:order_by("id"):all()))
        assert.are.same({ 1 }, ids(orders():where { score = op.gt(1e308) }:all()))
        assert.are.equal(inf, orders():max("score"))
        assert.are.equal(-inf, orders():min("score"))
        assert.are.equal(-inf, orders():where { id = 2 }:first().score)
      end)

      if pg then
        it("stores NaN in a double column on PostgreSQL", function()
          local nan = 0 / 0
          assert.are.equal(1, orders():where { id = 3 }:update_all { score = nan })
          assert.are.same({ 3 }, ids(orders():where { score = nan }:all()))
          local v = orders():where { id = 3 }:pluck("score")[1]
          assert.is_true(v ~= v)
          local m = orders():max("score")  -- PostgreSQL sorts NaN above infinity
          assert.is_true(m ~= m)
        end)
      else
        it("refuses NaN on SQLite, which would store NULL", function()
          local v = 0 / 0
          local q = orders():where { score = v }
          local err = catch(q.all, q)
          assert.are.equal("data_error", err.code)
          err = catch(orders():where { id = 1 }.update_all, orders():where { id = 1 }, { score = v })
          assert.are.equal("data_error", err.code)
          assert.matches("NaN", err.message)
          assert.are.equal(1.5, orders():where { id = 1 }:first().score)
        end)
      end

      it("refuses malformed arguments to building methods", function()
        local q = orders()
        assert.are.equal("select: no columns given", misuse(q.select, q).message)
        assert.are.equal("order_by: 'nulls' must be \"first\" or \"last\", got middle",
          misuse(q.order_by, q, { "id", nulls = "middle" }).message)
        assert.are.equal("join: a table name or a model expected, got number",
          misuse(q.join, q, 5, {}).message)
        assert.are.equal("query.new: a table name or a model expected, got nil",
          misuse(query.new, db, nil).message)
        assert.are.equal("a query as the value of 'customer_id': write op.in_(query)",
          misuse(q.where, q, { customer_id = db:table("customers"):select("id") }).message)
      end)
    end)
  end)
end

describe("query module", function()
  it("lists the methods that start a chain", function()
    for _, name in ipairs { "where", "select", "order_by", "limit", "join", "paginate", "all",
                            "first", "each", "count", "pluck", "update_all", "delete_all",
                            "to_sql", "explain" } do
      local found = false
      for _, m in ipairs(query.methods) do found = found or m == name end
      assert.is_true(found, name)
    end
  end)

  it("keeps loam.op read-only", function()
    local err = catch(function() query.op.foo = function() end end)
    assert.are.equal("misuse", err.code)
    assert.are.equal("loam.op is read-only", err.message)
  end)
end)
