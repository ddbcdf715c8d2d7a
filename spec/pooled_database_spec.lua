-- spec/pooled_database_spec.lua: a Database over the process's pool
-- (loam.connect(url, { pool = {...} })): each statement checks a
-- connection out and hands it back, a transaction and a statement read
-- row by row keep theirs to the end, one pool per URL, metrics, the
-- acquire timeout naming the Lua line that holds the connection, lost
-- checkouts, and dead connections discarded with no code in the
-- application.  Threads sharing the pool: spec/host_threads_spec.lua.

local loam = require "loam"
local database = require "loam.database"
local helper = require "spec.helper"

local catch = helper.catch

-- A URL of this spec's own per test, so that its pools are its own: the
-- process keeps one pool per URL, whose options the first open fixes.
local serial = 0
local function url_of(backend, pg)
  serial = serial + 1
  if pg then return backend.url .. "&application_name=pooled_db_" .. serial end
  return backend.url .. "?busy_timeout=" .. (5000 + serial)
end

-- A plain connection's id for the session of a pooled statement (PostgreSQL).
local function backend_pid(db)
  return db:query("select pg_backend_pid() as pid")[1].pid
end

for backend, pg in helper.each_backend() do
  if not backend.memory then
    describe(backend.label .. ": pooled Database", function()
      it("checks a connection out for each statement and hands it back", function()
        local db = loam.connect(url_of(backend, pg), { pool = { size = 2, max_overflow = 0 } })
        assert.are.equal("loam.Conn (" .. backend.name .. ", pooled)", tostring(db:connection()))
        assert.are.equal("loam.Database (" .. backend.name .. ")", tostring(db))
        assert.are.same({ { x = 1 } }, db:query("select 1 as x"))
        db:exec("select 1")
        local stats = db:pool_stats()
        assert.are.equal(0, stats.in_use)
        assert.are.equal(1, stats.idle)
        assert.are.equal(2, stats.acquires)
        assert.are.equal(2, stats.size)
        assert.is_true(stats.wait_max_ns >= 0)
        -- The backend and rendering need no connection.
        assert.are.equal(backend.name, db:backend())
        assert.are.equal(2, db:pool_stats().acquires)
        db:close()
        local err = catch(db.query, db, "select 1")
        assert.are.equal("attempt to use a closed database (db:reconnect() opens it again)",
          err.message)
        err = catch(db.pool_stats, db)
        assert.are.equal("misuse", err.code)
        db:reconnect()
        assert.are.same({ { x = 2 } }, db:query("select 2 as x"))
        db:close()
      end)

      it("keeps one connection for a whole transaction, and gives it back whatever happens",
        function()
        local db = loam.connect(url_of(backend, pg), { pool = { size = 2, max_overflow = 0 } })
        helper.table(db, "pooled_items", "n integer")
        local seen
        db:transaction(function()
          db:exec("insert into pooled_items values (1)")
          -- The same connection: the uncommitted row is there.
          seen = helper.count(db, "pooled_items")
          assert.are.equal(1, db:pool_stats().in_use)
          db:transaction(function()
            db:exec("insert into pooled_items values (2)")
            assert.are.equal(1, db:pool_stats().in_use)
          end)
        end)
        assert.are.equal(1, seen)
        assert.are.equal(0, db:pool_stats().in_use)
        local err = catch(db.transaction, db, function()
          db:exec("insert into pooled_items values (3)")
          db:exec("insert into no_such_table values (1)")
        end)
        assert.are.equal("undefined_table", err.code)
        assert.are.equal(0, db:pool_stats().in_use)
        assert.are.equal(2, helper.count(db, "pooled_items"))
        db:exec("drop table pooled_items")
        db:close()
      end)

      it("runs models on pooled connections, their prepared statements kept", function()
        local db = loam.connect(url_of(backend, pg), { pool = true })
        local Item = db:model("pooled_models", { loam.id(), loam.integer("n") })
        db:drop_tables { Item }
        db:create_tables { Item }
        local c = db:connection()
        for i = 1, 3 do
          local item = Item:create { n = i }
          db:transaction(function()
            local found = Item:find(item.id)
            found.n = found.n * 10
            found:save()
          end)
        end
        assert.are.equal(c, db:connection())
        assert.are.same({ 10, 20, 30 }, Item:order_by("id"):pluck("n"))
        assert.are.equal(0, db:pool_stats().in_use)
        db:drop_tables { Item }
        db:close()
      end)

      it("keeps the connection of a statement read row by row until it ends", function()
        local db = loam.connect(url_of(backend, pg), { pool = { size = 1, max_overflow = 0 } })
        local n = 0
        for _ in db:each("select 1 as x union all select 2") do
          n = n + 1
          assert.are.equal(1, db:pool_stats().in_use)
        end
        assert.are.equal(2, n)
        assert.are.equal(0, db:pool_stats().in_use)
        for _ in db:each("select 1 as x union all select 2") do break end
        assert.are.equal(0, db:pool_stats().in_use)
        -- A prepared statement's too; its run takes one for the call.
        helper.table(db, "pooled_each", "x integer")
        db:exec("insert into pooled_each values (1), (2)")
        local p = db:prepare { k = "select", columns = { { k = "col", name = "x" } },
          from = { name = "pooled_each" } }
        n = 0
        for _ in p:each() do
          n = n + 1
          assert.are.equal(1, db:pool_stats().in_use)
        end
        assert.are.equal(2, n)
        assert.are.equal(2, #p:run())
        assert.are.equal(0, db:pool_stats().in_use)
        db:exec("drop table pooled_each")
        db:close()
      end)

      it("holds one connection across calls through database.hold", function()
        local db = loam.connect(url_of(backend, pg), { pool = { size = 2, max_overflow = 0 } })
        do
          local pin <close> = database.hold(db:connection())
          db:query("select 1")
          db:query("select 1")
          assert.are.equal(1, db:pool_stats().in_use)
        end
        assert.are.equal(0, db:pool_stats().in_use)
        assert.are.equal(1, db:pool_stats().acquires)
        do
          local pin <close> = db:hold()
          db:query("select 1")
          assert.are.equal(1, db:pool_stats().in_use)
        end
        assert.are.equal(0, db:pool_stats().in_use)
        local plain = loam.connect(backend.url)
        assert.is_nil(database.hold(plain:connection()))
        assert.is_nil(plain:hold())
        local err = catch(plain.pool_stats, plain)
        assert.are.equal("db:pool_stats: this database has no pool (loam.connect(url, "
          .. "{ pool = { ... } }) makes one)", err.message)
        plain:close()
        db:close()
      end)

      it("is one pool per URL: the same options share it, others are refused by name",
        function()
        local url = url_of(backend, pg)
        local a = loam.connect(url, { pool = { size = 2 } })
        local b = loam.connect(url, { pool = { size = 2, max_overflow = 5 } })
        a:query("select 1")
        assert.are.equal(1, b:pool_stats().acquires)
        local err = catch(loam.connect, url, { pool = { size = 3, acquire_timeout_ms = 10 },
          statement_cache = 0 })
        assert.are.equal("misuse", err.code)
        assert.are.equal("loam_pool_open: this process already has a pool for that URL with "
          .. "other options: size 2 (this open asks for 3), acquire_timeout_ms 30000 (this open "
          .. "asks for 10), conn.statement_cache 64 (this open asks for 0) (one pool per URL: "
          .. "open it with the same options)", err.message)
        a:close()
        assert.are.same({ { x = 1 } }, b:query("select 1 as x"))
        b:close()
      end)

      it("refuses pool options it does not know, and misplaced ones", function()
        local url = url_of(backend, pg)
        local err = catch(loam.connect, url, { pool = 4 })
        assert.are.equal("loam.connect: option 'pool' must be true or a table of pool options, "
          .. "got integer (4)", err.message)
        err = catch(loam.connect, url, { pool = { sise = 4 } })
        assert.are.equal("loam.connect: unknown pool option 'sise' (the pool takes size, "
          .. "max_overflow, acquire_timeout_ms, max_lifetime_ms, idle_timeout_ms, "
          .. "health_check_ms, leak_threshold_ms, processes)", err.message)
        err = catch(loam.connect, url, { pool = {}, size = 4 })
        assert.are.equal("loam.connect: 'size' is a pool option: write it inside 'pool' "
          .. "({ pool = { size = ... } })", err.message)
        err = catch(loam.connect, url, { pool = { size = 0 } })
        assert.are.equal("misuse", err.code)
        assert.are.equal("loam_pool_open: 'size' must be 1 to 1000, got 0", err.message)
        err = catch(loam.connect, url, { pool = { processes = 0 } })
        assert.are.equal("loam_pool_open: 'processes' must be 1 to 10000, got 0", err.message)
      end)

      it("times out naming the Lua line that holds the connection", function()
        local url = url_of(backend, pg)
        local opts = { pool = { size = 1, max_overflow = 0, acquire_timeout_ms = 50 } }
        local db = loam.connect(url, opts)
        local other = loam.connect(url, opts)
        local line = helper.next_line()
        local err = helper.caught(pcall(db.transaction, db, function()
          db:query("select 1")
          other:query("select 2")   -- the pool's one connection is the transaction's
        end))
        assert.are.equal("pool_timeout", err.code)
        local where = ("spec/pooled_database_spec.lua:%d"):format(line)
        assert.is_truthy(err.message:find("^pool exhausted: no connection free after %d+%.%d+ s "
          .. "%(size 1, max_overflow 0: 1 in use, 0 more waiting%); checked out:\n  acquired at "
          .. where:gsub("%p", "%%%0") .. ", held %d+%.%d+ s"), err.message)
        if pg then
          assert.is_truthy(err.message:find("; server: idle in transaction for %d+%.%d+ s: select 1"),
            err.message)
        end
        assert.are.equal(0, db:pool_stats().in_use)
        assert.are.equal(1, db:pool_stats().timeouts)
        other:close()
        db:close()
      end)

      it("takes back, and counts as a leak, a held connection its Database lost", function()
        local url = url_of(backend, pg)
        local db = loam.connect(url, { pool = { size = 2, max_overflow = 0 } })
        local co = coroutine.wrap(function()
          local lost = loam.connect(url, { pool = { size = 2, max_overflow = 0 } })
          local pin <close> = database.hold(lost:connection())
          lost:query("select 1")
          coroutine.yield()
        end)
        co()
        assert.are.equal(1, db:pool_stats().in_use)
        co = nil
        collectgarbage()
        collectgarbage()
        assert.are.equal(0, db:pool_stats().in_use)
        assert.are.equal(1, db:pool_stats().leaks)
        db:close()
      end)

      it("counts a connection held past leak_threshold_ms as a leak, once", function()
        local url = url_of(backend, pg)
        local opts = { pool = { size = 2, max_overflow = 0, leak_threshold_ms = 1 } }
        local db = loam.connect(url, opts)
        local other = loam.connect(url, opts)
        do
          local pin <close> = db:hold()   -- reported on stderr, with this line
          db:query("select 1")
          -- The pool looks for leaks inside its calls: some of them, a while later.
          local deadline = os.time() + 30
          while other:pool_stats().leaks == 0 and os.time() < deadline do
            other:query("select 1")
          end
          assert.are.equal(1, other:pool_stats().leaks)
          other:query("select 1")
          assert.are.equal(1, other:pool_stats().leaks)
        end
        assert.are.equal(0, db:pool_stats().in_use)
        other:close()
        db:close()
      end)

      it("reports each statement's wait for the pool and its execution apart", function()
        local db = loam.connect(url_of(backend, pg), { pool = true })
        local events = {}
        db:on_query(function(ev) events[#events + 1] = ev end)
        db:query("select 1")
        db:transaction(function()
          db:query("select 2")
          db:query("select 3")
        end)
        db:on_query(nil)
        assert.is_true(#events >= 3)
        for _, ev in ipairs(events) do
          assert.are.equal("number", type(ev.wait_ms))
          assert.is_true(ev.wait_ms >= 0 and ev.ms >= 0)
        end
        db:close()
      end)

      it("refuses a pooled handle at pool:release, and a closed pool", function()
        local core = require "loam.core"
        local url = url_of(backend, pg)
        local pool = core.pool_open(url, { size = 1, max_overflow = 0 })
        local h = pool:handle()
        assert.are.same({ { x = 1 } }, h:query("select 1 as x"))
        local err = catch(pool.release, pool, h)
        assert.are.equal("pool:release: a pooled handle hands its connections back itself",
          err.message)
        pool:close()
        err = catch(h.query, h, "select 1")
        assert.are.equal("misuse", err.code)
        assert.are.equal("attempt to use a closed pool", err.message)
        assert.are.equal("loam.Conn (closed)", tostring(h))
        assert.is_true(h:close())
        err = catch(h.query, h, "select 1")
        assert.are.equal("attempt to use a closed connection", err.message)
      end)

      if pg then
        it("discards a connection whose session ended; the next statement gets a healthy one",
          function()
          -- No health check on checkout: the dead connection is met by a statement.
          local db = loam.connect(url_of(backend, pg),
            { pool = { size = 1, max_overflow = 0, health_check_ms = 600000 } })
          local killer = loam.connect(backend.url)
          local pid = backend_pid(db)
          killer:query("select pg_terminate_backend(?)", { pid })
          local err = catch(db.query, db, "select 1")
          assert.are.equal("connection_failed", err.code)
          assert.are.same({ { x = 1 } }, db:query("select 1 as x"))
          assert.are_not.equal(pid, backend_pid(db))
          assert.are.equal(1, db:pool_stats().discarded)
          killer:close()
          db:close()
        end)

        it("tries a connection idle past health_check_ms, so a restart costs nothing", function()
          local db = loam.connect(url_of(backend, pg),
            { pool = { size = 1, max_overflow = 0, health_check_ms = 0 } })
          local killer = loam.connect(backend.url)
          killer:query("select pg_terminate_backend(?)", { backend_pid(db) })
          assert.are.same({ { x = 1 } }, db:query("select 1 as x"))
          assert.are.equal(1, db:pool_stats().discarded)
          killer:close()
          db:close()
        end)

        it("fails a transaction whose session is terminated, commits nothing, and recovers",
          function()
          local db = loam.connect(url_of(backend, pg), { pool = { size = 2, max_overflow = 0 } })
          local killer = loam.connect(backend.url)
          helper.table(killer, "pooled_killed", "n integer")
          local err = catch(db.transaction, db, function()
            db:exec("insert into pooled_killed values (1)")
            killer:query("select pg_terminate_backend(?)", { backend_pid(db) })
            db:exec("insert into pooled_killed values (2)")
          end)
          assert.are.equal("connection_failed", err.code)
          assert.are.equal(0, helper.count(killer, "pooled_killed"))
          assert.are.equal(0, db:pool_stats().in_use)
          assert.are.same({ { x = 1 } }, db:query("select 1 as x"))
          killer:exec("drop table pooled_killed")
          killer:close()
          db:close()
        end)
      end
    end)
  end
end
