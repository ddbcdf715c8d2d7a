-- spec/pgbouncer_spec.lua: PostgreSQL through a real PgBouncer in
-- transaction mode (spec/support/pgbouncer), with '?pgbouncer=transaction'.
--
-- LOAM_TEST_PGBOUNCER1 is a PgBouncer database with ONE server connection
-- that every client shares, whose sessions start in Europe/Paris; the same
-- model code runs there and on the server directly and must give the same
-- answers, while another client changes its own session's time zone on that
-- one server connection between the steps.  Without the mode the failure is
-- an error, never a wrong answer.  PostgreSQL only: SQLite refuses the
-- option.

local loam = require "loam"
local helper = require "spec.helper"

local catch = helper.catch

local function bouncer_url(var)
  return helper.harness_env(var, "a PgBouncer")
end

-- The same model code for every connection (spec/support/bookshelf.lua).
local run_models = require("spec.support.bookshelf").run

describe("PostgreSQL through PgBouncer in transaction mode", function()
  local direct

  setup(function()
    direct = helper.connect(helper.postgres())
    direct:exec("CREATE SCHEMA IF NOT EXISTS loam_bouncer1")
  end)

  teardown(function()
    if direct then direct:close() end
  end)

  it("runs the same model code with the same answers, one server connection for all", function()
    local url = bouncer_url("LOAM_TEST_PGBOUNCER1") .. "&pgbouncer=transaction"
    local want = run_models(direct, function() end)
    assert.same("1929-10-21 12:00:00+00", want[2])
    assert.same("2024-07-01 10:00:00+00", want[#want])

    -- Three clients of the one server connection: the Database, a pooled
    -- Database, and a client that sets its own session's time zone on it.
    local db = loam.connect(url)
    local pooled = loam.connect(url, { pool = { size = 2 } })
    local other = loam.connect(url)
    local pid = db:query("SELECT pg_backend_pid() AS p")[1].p
    assert.same(pid, other:query("SELECT pg_backend_pid() AS p")[1].p)
    assert.same(pid, pooled:query("SELECT pg_backend_pid() AS p")[1].p)
    local zones = { "America/New_York", "Asia/Tokyo", "Europe/Paris" }
    local n = 0
    local function between()
      n = n + 1
      other:exec("SET TimeZone TO '" .. zones[n % #zones + 1] .. "'")
      -- the other client really did change the shared server session
      assert.same(zones[n % #zones + 1], other:query("SHOW TimeZone")[1].TimeZone)
    end
    assert.same(want, run_models(db, between))
    assert.same(want, run_models(pooled, between))
    assert.same("UTC", db:query("SHOW TimeZone")[1].TimeZone)
    assert.same(0, db:cached_statements())
    db:close()
    pooled:close()
    other:close()
  end)

  it("without the mode, a dropped session setting is a clear connection error", function()
    local err = catch(loam.connect, bouncer_url("LOAM_TEST_PGBOUNCER1"))
    assert.same("connection_failed", err.code)
    assert.matches("the session has TimeZone 'Europe/Paris'; loam needs UTC %(the startup "
                   .. "options were dropped%)", err.message)
  end)

  it("without the mode, prepared statements on shared server connections are errors", function()
    local url = bouncer_url("LOAM_TEST_PGBOUNCER")
    local dbs, failures = {}, 0
    for i = 1, 6 do dbs[i] = loam.connect(url) end
    for _ = 1, 3 do
      for i = 1, 6 do
        local ok, e = pcall(function()
          return dbs[i]:query("SELECT $1::int + 1 AS x", { i })[1].x
        end)
        if ok then
          assert.same(i + 1, e)  -- never a wrong answer
        else
          failures = failures + 1
          assert.same("database_error", e.code)
          assert.matches('prepared statement "loam_%d+"', e.message)
        end
      end
    end
    assert.is_true(failures > 0)
    for i = 1, 6 do dbs[i]:close() end
    -- with it, the same clients all succeed
    for i = 1, 6 do dbs[i] = loam.connect(url .. "&pgbouncer=transaction") end
    for _ = 1, 3 do
      for i = 1, 6 do
        assert.same(i + 1, dbs[i]:query("SELECT $1::int + 1 AS x", { i })[1].x)
      end
    end
    for i = 1, 6 do dbs[i]:close() end
  end)

  it("a pool over it reports holders without server sessions it does not have", function()
    local url = bouncer_url("LOAM_TEST_PGBOUNCER") .. "&pgbouncer=transaction"
    local o = { pool = { size = 1, max_overflow = 0, acquire_timeout_ms = 50 } }
    local db1, db2 = loam.connect(url, o), loam.connect(url, o)
    assert.same(0, db1:cached_statements())
    local err
    db1:transaction(function()
      db1:query("SELECT 1")
      err = catch(db2.query, db2, "SELECT 2")
    end)
    assert.same("pool_timeout", err.code)
    assert.matches("(server state unavailable: behind PgBouncer a client has no server session "
                   .. "of its own)", err.message, 1, true)
    db2:close()
    db1:close()
  end)

  it("refuses what cannot hold through PgBouncer, naming it", function()
    local url = bouncer_url("LOAM_TEST_PGBOUNCER") .. "&pgbouncer=transaction"
    local err = catch(loam.connect, url, { statement_cache = 8 })
    assert.same("misuse", err.code)
    assert.matches("statement_cache 8 cannot be used with pgbouncer=transaction", err.message,
                   1, true)
    err = catch(loam.connect, url, { statement_timeout_ms = 500 })
    assert.same("misuse", err.code)
    assert.matches("statement_timeout_ms cannot be used with pgbouncer=transaction", err.message,
                   1, true)
    err = catch(loam.connect, url, { idle_in_tx_timeout_ms = 500 })
    assert.same("misuse", err.code)
    assert.matches("idle_in_tx_timeout_ms cannot be used", err.message, 1, true)
    err = catch(loam.connect, bouncer_url("LOAM_TEST_PGBOUNCER") .. "&pgbouncer=session")
    assert.same("invalid_url", err.code)
    assert.same("PostgreSQL URL option 'pgbouncer' must be 'transaction' (session pooling needs "
                .. "no option; statement pooling cannot run transactions) (got 'session')",
                err.message)
    err = catch(loam.connect, "sqlite::memory:?pgbouncer=transaction")
    assert.same("invalid_url", err.code)
    assert.same("SQLite URL option 'pgbouncer' is for PostgreSQL only (PgBouncer pools "
                .. "PostgreSQL connections)", err.message)
    -- a plain server takes the mode too (nothing it does needs PgBouncer)
    local db = loam.connect(helper.postgres().url .. "&pgbouncer=transaction")
    assert.same(0, db:cached_statements())
    assert.same(2, db:query("SELECT $1::int + 1 AS x", { 1 })[1].x)
    db:close()
  end)
end)
