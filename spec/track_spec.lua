-- spec/track_spec.lua: query counting, the N+1 detector, unused eager
-- loads, budgets and the busted assertions, on every backend.
--
-- Call sites are compared with lines of this file: the line is taken with
-- debug.getinfo right above the statement that must be named, so the
-- expectation moves with the code.

local loam = require "loam"
local helper = require "spec.helper"
local track = require "loam.track"
require "loam.assertions"

local catch, next_line = helper.catch, helper.next_line

-- The file name call sites use for this spec.
local FILE = debug.getinfo(1, "S").short_src

-- The call site of 'line' of this file.
local function at(line)
  return FILE .. ":" .. line
end

local TABLES = { "orders", "customers" }

local function declare(db)
  local Customer = db:model("customers", {
    loam.id(),
    loam.text("email", { length = 255, null = false, unique = true }),
    loam.enum("tier", { "free", "pro" }, { default = "free" }),
  })
  local Order = db:model("orders", {
    loam.id(),
    loam.bigint("customer_id", { null = false, references = Customer, on_delete = "cascade" }),
    loam.text("status", { length = 20, null = false, default = "new" }),
    loam.integer("total_cents", { null = false, check = "total_cents >= 0" }),
  })
  return Customer, Order
end

-- Collects log lines in 'into'.
local function collector(into)
  return function(message) into[#into + 1] = message end
end

-- Whether 'db' has a hook: on_query gives back the one it replaces.
local function hook_of(db)
  local fn = db:on_query(nil)
  db:on_query(fn)
  return fn
end

for backend in helper.each_backend() do
  describe(backend.label .. ":", function()
    local db, Customer, Order, ids

    before_each(function()
      db = helper.connect(backend)
      helper.drop_tables(db, TABLES)
      Customer, Order = declare(db)
      loam.create_tables(db, { Customer, Order })
      local ada = Customer:create { email = "ada@example.com", tier = "pro" }
      local rows = {}
      for i = 1, 10 do
        rows[i] = { customer_id = ada.id, status = i % 2 == 0 and "paid" or "new",
                    total_cents = 100 * i }
      end
      Order:insert_many(rows)
      ids = Order:order_by("id"):pluck("id")
    end)

    after_each(function()
      if tostring(db) ~= "loam.Database (closed)" then db:track(false) end
      helper.finish(db, TABLES)
    end)

    describe("loam.track", function()
      it("counts every statement, by fingerprint, with the normalised SQL and call sites",
         function()
        local first, second, count_site
        local report = db:track(function()
          first = at(next_line())
          Order:find(ids[1])
          second = at(next_line())
          Order:find(ids[2])
          count_site = at(next_line())
          Order:where { status = "paid" }:count()
          db:query("select 1 as one where 'a' = 'a'")
        end)
        assert.are.equal(4, report.queries)
        assert.are.equal(2 + 1 + 1, report.rows)
        assert.are.equal(0, report.errors)
        assert.are.equal(3, #report.statements)
        local find = report.statements[1]
        assert.are.equal(2, find.count)
        assert.are.equal(2, find.rows)
        assert.matches('^SELECT .* FROM "orders" WHERE', find.sql)
        assert.are.same({ { site = first, count = 1 }, { site = second, count = 1 } },
          find.sites)
        assert.are.equal(find, report.by_fingerprint[find.fingerprint])
        assert.matches("^%x+$", find.fingerprint)
        assert.are.same({ { site = count_site, count = 1 } }, report.statements[2].sites)
        -- Literals of raw SQL become placeholders in the normalised text.
        assert.are.equal("select ? as one where ? = ?", report.statements[3].sql)
        assert.are.same({}, report.n_plus_one)
        assert.are.same({}, report.unused)
      end)

      it("matches the connection's own counters", function()
        local before = db:stats()
        local report = db:track(function()
          Order:all()
          Order:find(ids[3])
          pcall(db.query, db, "select * from no_such_table")
        end)
        local after = db:stats()
        assert.are.equal(after.queries - before.queries, report.queries)
        assert.are.equal(after.rows - before.rows, report.rows)
        assert.are.equal(1, report.errors)
        assert.are.equal(11, report.rows)
      end)

      it("flags a loop of find calls and names its line", function()
        local site
        local report = db:track(function()
          site = at(next_line())
          for i = 1, 10 do Order:find(ids[i]) end
        end)
        assert.are.equal(10, report.queries)
        assert.are.equal(1, #report.n_plus_one)
        local f = report.n_plus_one[1]
        assert.are.equal(10, f.count)
        assert.are.equal(site, f.site)
        assert.are.equal(site, f.stack[1])
        assert.are.equal(report.statements[1].fingerprint, f.fingerprint)
        assert.are.equal(report.statements[1].sql, f.sql)
        assert.matches("N+1 query at " .. site .. ": ran 10 times", tostring(report), 1, true)
      end)

      it("does not flag a loop under the threshold", function()
        local report = db:track(function()
          for i = 1, 2 do Order:find(ids[i]) end
        end)
        assert.are.equal(2, track.DEFAULT_THRESHOLD)
        assert.are.same({}, report.n_plus_one)
        report = db:track(function()
          for i = 1, 5 do Order:find(ids[i]) end
        end, { threshold = 5 })
        assert.are.same({}, report.n_plus_one)
        report = db:track(function()
          for i = 1, 2 do Order:find(ids[i]) end
        end, { threshold = 1 })
        assert.are.equal(1, #report.n_plus_one)
      end)

      it("does not take the same SQL from different call sites for an N+1", function()
        local report = db:track(function()
          Order:find(ids[1])
          Order:find(ids[2])
          Order:find(ids[3])
          Order:find(ids[4])
        end)
        assert.are.equal(1, #report.statements)
        assert.are.equal(4, report.statements[1].count)
        assert.are.equal(4, #report.statements[1].sites)
        assert.are.same({}, report.n_plus_one)
      end)

      it("tells a helper called from several lines from a helper called in a loop", function()
        local inside
        -- Not a tail call, which would leave no frame of the helper.
        local function get(i)
          inside = at(next_line())
          local found = Order:find(ids[i])
          return found
        end
        local report = db:track(function()
          get(1)
          get(2)
          get(3)
        end)
        -- One call site (the helper's line), three different stacks.
        assert.are.same({ { site = inside, count = 3 } }, report.statements[1].sites)
        assert.are.same({}, report.n_plus_one)
        local loop
        report = db:track(function()
          loop = at(next_line())
          for i = 1, 4 do get(i) end
        end)
        assert.are.equal(1, #report.n_plus_one)
        assert.are.equal(inside, report.n_plus_one[1].site)
        assert.are.equal(loop, report.n_plus_one[1].stack[2])
      end)

      it("raises n_plus_one with the call site when the scope ends (raise mode)", function()
        local site
        local finished = false
        local err = catch(function()
          db:track(function()
            site = at(next_line())
            for i = 1, 10 do Order:find(ids[i]) end
            finished = true
          end, { mode = "raise" })
        end)
        assert.is_true(finished)
        assert.are.equal("n_plus_one", err.code)
        assert.are.equal(site, err.site)
        assert.are.equal(10, err.count)
        assert.matches("^%x+$", err.fingerprint)
        assert.are.equal(("N+1 query at %s: ran 10 times (threshold 2), fingerprint %s: %s")
          :format(site, err.fingerprint, err.sql), err.message)
        assert.are.equal(10, err.report.queries)
        assert.is_nil(hook_of(db))
        -- Nothing to find: the scope returns normally.
        local report, value = db:track(function()
          Order:find(ids[1])
          return "done"
        end, { mode = "raise" })
        assert.are.equal(1, report.queries)
        assert.are.equal("done", value)
      end)

      it("logs N+1s when the scope ends (warn mode)", function()
        local logged, site = {}, nil
        local report = db:track(function()
          site = at(next_line())
          for i = 1, 3 do Order:find(ids[i]) end
          Order:find(ids[1])
        end, { mode = "warn", log = collector(logged) })
        assert.are.equal(1, #report.n_plus_one)
        assert.are.equal(1, #logged)
        assert.are.equal(("N+1 query at %s: ran 3 times (threshold 2), fingerprint %s: %s")
          :format(site, report.n_plus_one[1].fingerprint, report.n_plus_one[1].sql), logged[1])
      end)

      it("returns fn's results after the report", function()
        local report, a, b, c = loam.track(db, function() return 1, nil, 3 end)
        assert.are.equal(0, report.queries)
        assert.are.equal(1, a)
        assert.is_nil(b)
        assert.are.equal(3, c)
      end)

      it("lets an error of fn through unchanged and removes its hook", function()
        local boom = {}
        local ok, err = pcall(db.track, db, function()
          Order:find(ids[1])
          error(boom)
        end, { mode = "raise" })
        assert.is_false(ok)
        assert.are.equal(boom, err)
        assert.is_nil(hook_of(db))
      end)

      it("nests: each scope counts what runs inside it, inner scopes included", function()
        local inner
        local outer = db:track(function()
          Order:find(ids[1])
          inner = db:track(function()
            Order:find(ids[2])
            Order:count()
          end)
          Order:find(ids[3])
        end)
        assert.are.equal(2, inner.queries)
        assert.are.equal(4, outer.queries)
        assert.is_nil(hook_of(db))
      end)

      it("chains a hook that was set before and puts it back", function()
        local seen = {}
        local mine = function(ev) seen[#seen + 1] = ev.sql end
        db:on_query(mine)
        local report = db:track(function() Order:find(ids[1]) end)
        assert.are.equal(1, report.queries)
        assert.are.equal(1, #seen)
        assert.are.equal(mine, hook_of(db))
        Order:find(ids[2])
        assert.are.equal(2, #seen)
        db:on_query(nil)
      end)

      it("keeps a hook the scope's function set", function()
        local mine = function() end
        db:track(function() db:on_query(mine) end)
        assert.are.equal(mine, hook_of(db))
        db:on_query(nil)
      end)

      it("tracks every connection it is given", function()
        local other = helper.connect(backend)
        local report = loam.track({ db, other, db }, function()
          Order:find(ids[1])
          other:query("select 1 as one")
        end)
        assert.are.equal(2, report.queries)
        assert.is_nil(hook_of(other))
        other:close()
      end)

      it("refuses a closed connection and leaves no hook on the others", function()
        local other = helper.connect(backend)
        other:close()
        local line = next_line()
        local err = helper.caught(pcall(loam.track, { db, other }, function() end))
        assert.are.equal("misuse", err.code)
        assert.are.equal("attempt to use a closed database (db:reconnect() opens it again)", err.message)
        assert.are.equal(at(line) .. ": ", err.where)
        assert.is_nil(hook_of(db))
      end)

      it("ends cleanly when fn closes the connection", function()
        local report = db:track(function()
          Order:find(ids[1])
          db:close()
        end)
        assert.are.equal(1, report.queries)
      end)

      it("refuses what it cannot use", function()
        local err = catch(loam.track, "db", function() end)
        assert.are.equal("misuse", err.code)
        assert.are.equal('loam.track expects a connection or an array of connections, '
          .. 'got string ("db")', err.message)
        err = catch(db.track, db, 42)
        assert.are.equal("db:track expects a function (a scope), a table of settings or "
          .. "false, got integer (42)", err.message)
        err = catch(db.track, db, function() end, { threshold = 0 })
        assert.are.equal("loam.track: option 'threshold' must be an integer of at least 1, "
          .. "got integer (0)", err.message)
        err = catch(db.track, db, function() end, { mode = "loud" })
        assert.are.equal('loam.track: option \'mode\' must be one of "raise", "report", '
          .. '"warn", got string ("loud")', err.message)
        err = catch(db.track, db, function() end, { tresholds = 1 })
        assert.are.equal("loam.track: unknown option 'tresholds' (known: log, mode, "
          .. "threshold)", err.message)
        err = catch(loam.track, db, "not a function")
        assert.are.equal('loam.track expects a function to run, got string ("not a function")',
          err.message)
        assert.is_nil(hook_of(db))
      end)
    end)

    describe("the connection-wide detector", function()
      it("warns once per unit; units are coroutines, reset by db:track_reset()", function()
        local logged = {}
        db:track { log = collector(logged) }
        local site
        local function loop()
          site = at(next_line())
          for i = 1, 10 do Order:find(ids[i]) end
        end
        -- Workers run the loop from the same stack, each in its coroutine.
        local function worker()
          return coroutine.wrap(function()
            while true do
              loop()
              coroutine.yield()
            end
          end)
        end
        local a, b = worker(), worker()
        a()
        assert.are.equal(1, #logged)
        assert.matches("N+1 query at " .. site .. ": ran 3 times (threshold 2)", logged[1],
          1, true)
        a()
        assert.are.equal(1, #logged)   -- the same unit: said already
        b()
        assert.are.equal(2, #logged)   -- another coroutine, another unit
        db:track_reset()
        a()
        assert.are.equal(3, #logged)
        db:track(false)
        assert.is_nil(hook_of(db))
        a()
        assert.are.equal(3, #logged)
      end)

      it("raises from the statement that crosses the threshold (raise mode)", function()
        db:track { mode = "raise", threshold = 1 }
        local done, site = 0, nil
        local err = catch(function()
          site = at(next_line())
          for i = 1, 10 do Order:find(ids[i]); done = done + 1 end
        end)
        assert.are.equal(1, done)
        assert.are.equal("n_plus_one", err.code)
        assert.are.equal(2, err.count)
        assert.are.equal(site, err.site)
        assert.are.equal(site .. ": ", err.where)
      end)

      it("runs beside scopes, which keep their own counts", function()
        local logged = {}
        db:track { log = collector(logged) }
        local report = db:track(function()
          for i = 1, 3 do Order:find(ids[i]) end
        end)
        assert.are.equal(1, #report.n_plus_one)
        assert.are.equal(1, #logged)
        -- The scope ended; the switch still listens.
        assert.is_not_nil(hook_of(db))
        db:track(false)
        assert.is_nil(hook_of(db))
      end)

      it("refuses bad settings", function()
        local err = catch(db.track, db, { mode = "report" })
        assert.are.equal('db:track: option \'mode\' must be one of "raise", "warn", '
          .. 'got string ("report")', err.message)
        err = catch(db.track, db, {}, {})
        assert.are.equal("db:track{...} takes one table of settings", err.message)
        assert.is_nil(hook_of(db))
      end)
    end)

    describe("budgets", function()
      it("returns fn's results within the budget", function()
        local a, b = loam.budget(db, { queries = 2, rows = 2 }, function()
          return Order:find(ids[1]).id, Order:find(ids[2]).id
        end)
        assert.are.equal(ids[1], a)
        assert.are.equal(ids[2], b)
        assert.is_nil(hook_of(db))
      end)

      it("raises budget_exceeded naming what went over, by how much, and where", function()
        local loop, all
        local err = catch(db.budget, db, { queries = 3, rows = 5 }, function()
          loop = at(next_line())
          for i = 1, 5 do Order:find(ids[i]) end
          all = at(next_line())
          Order:all()
        end)
        assert.are.equal("budget_exceeded", err.code)
        assert.are.same({ queries = { limit = 3, actual = 6 }, rows = { limit = 5, actual = 15 } },
          err.exceeded)
        local find, scan = err.report.statements[1].sql, err.report.statements[2].sql
        assert.are.equal(table.concat({
          "query budget exceeded: 6 queries, 3 over the limit of 3; "
            .. "15 rows, 10 over the limit of 5",
          "  5  " .. find,
          "     " .. loop .. " (5)",
          "  1  " .. scan,
          "     " .. all .. " (1)",
        }, "\n"), err.message)
        assert.is_nil(hook_of(db))
      end)

      it("checks only the limits it is given", function()
        local err = catch(loam.budget, db, { rows = 0 }, function() Order:find(ids[1]) end)
        assert.are.same({ rows = { limit = 0, actual = 1 } }, err.exceeded)
        loam.budget(db, { rows = 0 }, function() Order:find(-1) end)
      end)

      it("logs instead of raising with action = \"log\"", function()
        local logged = {}
        local value = loam.budget(db, { queries = 1, action = "log", log = collector(logged) },
          function()
            Order:find(ids[1])
            Order:find(ids[2])
            return "kept"
          end)
        assert.are.equal("kept", value)
        assert.are.equal(1, #logged)
        assert.matches("^query budget exceeded: 2 queries, 1 over the limit of 1\n", logged[1])
      end)

      it("refuses limits it cannot check", function()
        local err = catch(loam.budget, db, {}, function() end)
        assert.are.equal("loam.budget: limits need 'queries' or 'rows'", err.message)
        err = catch(loam.budget, db, { queries = -1 }, function() end)
        assert.are.equal("loam.budget: option 'queries' must be an integer of at least 0, "
          .. "got integer (-1)", err.message)
        assert.are.equal("ok", loam.budget(db, { queries = 1.0 }, function() return "ok" end))
        err = catch(loam.budget, db, { queries = 1.5 }, function() end)
        assert.are.equal("loam.budget: option 'queries' must be an integer of at least 0, "
          .. "got float (1.5)", err.message)
        err = catch(loam.budget, db, { queries = 1, action = "panic" }, function() end)
        assert.are.equal('loam.budget: option \'action\' must be one of "log", "raise", '
          .. 'got string ("panic")', err.message)
      end)
    end)

    describe("assertions", function()
      local function two_finds()
        Order:find(ids[1])
        Order:find(ids[2])
      end

      it("assert.queries passes on the exact count and lists the statements otherwise",
         function()
        local report = assert.queries(db, 2, two_finds)
        assert.are.equal(2, report.queries)
        local ok, message = pcall(assert.queries, db, 3, two_finds)
        assert.is_false(ok)
        assert.matches("Expected exactly 3 queries, but 2 ran:\n2 queries, 2 rows\n  2  SELECT",
          message, 1, true)
        local first = at(debug.getinfo(two_finds, "S").linedefined + 1)
        assert.matches(first .. " (1), ", message, 1, true)
        assert.is_not.queries(db, 3, two_finds)
        ok, message = pcall(assert.is_not.queries, db, 2, two_finds)
        assert.is_false(ok)
        assert.matches("Expected other than 2 queries, but 2 ran:", message, 1, true)
      end)

      it("assert.max_queries passes up to the limit", function()
        assert.max_queries(db, 2, two_finds)
        assert.max_queries(db, 5, two_finds)
        local ok, message = pcall(assert.max_queries, db, 1, two_finds)
        assert.is_false(ok)
        assert.matches("Expected at most 1 queries, but 2 ran:", message, 1, true)
      end)

      it("assert.no_n_plus_one fails on a loop, naming its line", function()
        assert.no_n_plus_one(db, two_finds)
        local site
        local ok, message = pcall(assert.no_n_plus_one, db, function()
          site = at(next_line())
          for i = 1, 4 do Order:find(ids[i]) end
        end)
        assert.is_false(ok)
        assert.matches("Expected no N+1 queries, but found:\n", message, 1, true)
        assert.matches("N+1 query at " .. site .. ": ran 4 times", message, 1, true)
        assert.matches("  4  SELECT", message, 1, true)
        -- A lower threshold finds the two-step loop.
        ok = pcall(assert.no_n_plus_one, db, function()
          for i = 1, 2 do Order:find(ids[i]) end
        end, { threshold = 1 })
        assert.is_false(ok)
      end)

      it("names the misuse", function()
        local ok, message = pcall(assert.queries, db, "two", two_finds)
        assert.is_false(ok)
        assert.matches("assert.queries: argument #2 must be a non-negative integer count",
          message, 1, true)
        ok, message = pcall(assert.queries, db, 2)
        assert.is_false(ok)
        assert.matches("assert.queries: argument #3 must be the function to run", message, 1,
          true)
      end)
    end)

    describe("unused eager loads", function()
      before_each(function()
        Order:belongs_to("customer", Customer, { key = "customer_id", inverse = "orders" })
        Customer:has_many("orders", Order, { key = "customer_id", inverse = "customer" })
      end)

      it("reports an included relation that is never read, with the including line",
         function()
        local site
        local report = db:track(function()
          site = at(next_line())
          Order:include("customer"):all()
        end)
        assert.are.same({ { model = "orders", relation = "customer", site = site } },
          report.unused)
        assert.matches("unused eager load: orders.customer, loaded at " .. site
          .. " and never read", tostring(report), 1, true)
      end)

      it("does not report a relation read on any one instance", function()
        local report = db:track(function()
          local orders = Order:include("customer"):all()
          assert.are.equal("ada@example.com", orders[4].customer.email)
        end)
        assert.are.same({}, report.unused)
      end)

      it("reports nested includes level by level", function()
        local site
        local report = db:track(function()
          site = at(next_line())
          local customers = Customer:include { orders = "customer" }:all()
          assert.are.equal(10, #customers[1].orders)
        end)
        -- The orders were read, the customer of each order never was.
        assert.are.same({ { model = "orders", relation = "customer", site = site } },
          report.unused)
      end)

      it("logs unused eager loads in warn and raise modes", function()
        local logged = {}
        db:track(function()
          Order:include("customer"):all()
        end, { mode = "raise", log = collector(logged) })
        assert.are.equal(1, #logged)
        assert.matches("^unused eager load: orders.customer", logged[1])
      end)

      it("keeps its books through the relation hooks", function()
        local site
        local orders = Order:order_by("id"):all()
        local report = db:track(function()
          track.eager_loaded(orders, "customer")
          site = at(next_line())
          track.eager_loaded({ orders[1] }, "items")
          track.relation_read(orders[7], "customer")
          track.relation_read(orders[1], "unknown")
          track.eager_loaded({}, "customer")
        end)
        assert.are.same({ { model = "orders", relation = "items", site = site } },
          report.unused)
        -- Outside any scope the hooks do nothing.
        track.eager_loaded(orders, "customer")
        track.relation_read(orders[1], "customer")
      end)

      it("ignores eager loads on connections the scope does not track", function()
        local other = helper.connect(backend)
        local report = loam.track(other, function()
          Order:include("customer"):all()
        end)
        assert.are.same({}, report.unused)
        assert.are.equal(0, report.queries)
        other:close()
      end)
    end)
  end)
end
