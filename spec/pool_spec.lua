-- spec/pool_spec.lua: the binding of the connection pool ('loam.core'
-- pool_open, 'loam.Pool'): checkouts are ordinary connections that go back
-- to their pool when closed or collected, timeouts name where each
-- checkout was acquired, and misuse is refused by name.  The pool itself
-- (threads, dead connections, timeouts) is tested in spec/c/test_pool.c.

local core = require "loam.core"
local helper = require "spec.helper"

local catch = helper.catch

for backend, pg in helper.each_backend() do
  if not backend.memory then
    describe(backend.label .. ": pool", function()
      -- A URL of this spec's own, so that its pools are its own.
      local url = pg and (backend.url .. "&application_name=pool_spec") or backend.url

      it("checks connections out and back in, with metrics", function()
        local pool = core.pool_open(url, { size = 2, max_overflow = 0 })
        assert.are.equal("loam.Pool", tostring(pool))
        local db = pool:acquire("worker.lua:1")
        assert.are.equal(pg and "postgres" or "sqlite", db:backend())
        assert.are.same({ { x = 1 } }, db:query("select 1 as x"))
        local stats = pool:stats()
        assert.are.equal(1, stats.in_use)
        assert.are.equal(1, stats.acquires)
        assert.is_true(pool:release(db))
        assert.are.equal("loam.Conn (closed)", tostring(db))
        local err = catch(db.query, db, "select 1")
        assert.are.equal("attempt to use a closed connection", err.message)
        stats = pool:stats()
        assert.are.equal(0, stats.in_use)
        assert.are.equal(1, stats.idle)
        assert.are.equal(2, stats.size)
        assert.are.equal(0, stats.timeouts)
        assert.is_true(stats.wait_max_ns >= stats.wait_p99_ns)
        assert.is_true(pool:close())
        assert.is_true(pool:close())
        assert.are.equal("loam.Pool (closed)", tostring(pool))
      end)

      it("takes a checkout back when it is closed or collected", function()
        local pool = core.pool_open(url, { size = 1, max_overflow = 0 })
        local db = pool:acquire()
        assert.is_true(db:close())
        assert.are.equal(0, pool:stats().in_use)
        do
          local _ <close> = pool:acquire()
          assert.are.equal(1, pool:stats().in_use)
        end
        assert.are.equal(0, pool:stats().in_use)
        pool:acquire()   -- dropped at once: back in the pool, and a leak (on stderr)
        collectgarbage()
        collectgarbage()
        assert.are.equal(0, pool:stats().in_use)
        assert.are.equal(3, pool:stats().acquires)
        assert.are.equal(1, pool:stats().leaks)
        pool:close()
      end)

      it("rolls back what a checkout left open", function()
        local pool = core.pool_open(url, { size = 1, max_overflow = 0 })
        local db = pool:acquire()
        helper.table(db, "pool_spec_items", "n integer")
        db:exec(pg and "begin" or "begin immediate")
        db:exec("insert into pool_spec_items values (1)")
        pool:release(db)
        db = pool:acquire()
        assert.are.equal(0, helper.count(db, "pool_spec_items"))
        db:exec("drop table pool_spec_items")
        db:close()
        pool:close()
      end)

      it("names where each checkout was acquired when it times out", function()
        local pool = core.pool_open(url, { size = 1, max_overflow = 0, acquire_timeout_ms = 50 })
        local line = helper.next_line()
        local held = pool:acquire()
        local err = catch(pool.acquire, pool, "report.lua:9")
        assert.are.equal("pool_timeout", err.code)
        assert.matches("^pool exhausted: no connection free after %d+%.%d%d%d s %(size 1, "
          .. "max_overflow 0: 1 in use, 0 more waiting%); checked out:\n  acquired at "
          .. "[^\n]*pool_spec%.lua:" .. line .. ", held %d+%.%d%d%d s", err.message)
        held:close()
        assert.are.equal(1, pool:stats().timeouts)
        pool:close()
      end)

      it("is one pool per URL: other options are an error", function()
        local a = core.pool_open(url, { size = 2 })
        local b = core.pool_open(url, { size = 2, statement_cache = 64 })
        local db = a:acquire()
        assert.are.equal(1, b:stats().in_use)
        db:close()
        local err = catch(core.pool_open, url, { size = 3 })
        assert.are.equal("misuse", err.code)
        assert.are.equal("loam_pool_open: this process already has a pool for that URL with "
          .. "other options: size 2 (this open asks for 3) (one pool per URL: open it with the "
          .. "same options)",
          err.message)
        a:close()
        b:close()
      end)

      it("refuses bad options, other pools' connections and a closed pool", function()
        local err = catch(core.pool_open, url, { sise = 2 })
        assert.are.equal("bad argument #2 to 'pool_open' (unknown option 'sise')", err.message)
        err = catch(core.pool_open, url, { size = 0 })
        assert.are.equal("misuse", err.code)
        assert.are.equal("loam_pool_open: 'size' must be 1 to 1000, got 0", err.message)
        err = catch(core.pool_open, url, { size = -1 })
        assert.are.equal("bad argument #2 to 'pool_open' "
          .. "(option 'size' must be a non-negative integer or \"forever\")", err.message)
        local pool = core.pool_open(url, { size = 1, acquire_timeout_ms = "forever",
                                           statement_timeout_ms = 5000 })
        local plain = core.connect(url)
        err = catch(pool.release, pool, plain)
        assert.are.equal("pool:release: the connection is not one of this pool's", err.message)
        plain:close()
        err = catch(pool.release, pool, 42)
        assert.are.equal("misuse", err.code)
        pool:close()
        err = catch(pool.acquire, pool)
        assert.are.equal("attempt to use a closed pool", err.message)
      end)
    end)
  end
end
