-- spec/replica_spec.lua: read-replica routing against a real streaming
-- replica of the test cluster (spec/support/pg-replica, started by the
-- harness: LOAM_TEST_PG_REPLICA, LOAM_TEST_PG_REPLICA_DIR).
--
-- Where a read ran is what the server says: the view 'whereami' answers
-- pg_is_in_recovery(), true on the replica only, so model code reading it
-- shows which server it reached.  The replica is stopped and started again
-- by the harness script (by its pid), and its replay is paused with
-- pg_wal_replay_pause() to make real lag.  Waits are bounded polls of the
-- replica's own state, never sleeps that assume a speed.  PostgreSQL only,
-- apart from the bad-input cases that name SQLite.

local loam = require "loam"
local helper = require "spec.helper"
local bookshelf = require "spec.support.bookshelf"

local catch = helper.catch

local function env(var)
  return helper.harness_env(var, "a replica")
end

local PRIMARY = helper.postgres().url
local REPLICA = env("LOAM_TEST_PG_REPLICA")
local REPLICA_DIR = env("LOAM_TEST_PG_REPLICA_DIR")

local function replica_script(action)
  local ok = os.execute("bash spec/support/pg-replica " .. action .. " '" .. REPLICA_DIR .. "'")
  assert(ok, "pg-replica " .. action .. " failed")
end

-- Calls 'f' until it answers true, pausing between tries; fails after
-- about a minute, so a replica that never gets there fails the test.
local function eventually(what, f)
  for _ = 1, 1200 do
    if f() then return end
    os.execute("sleep 0.05")
  end
  error("never happened: " .. what, 2)
end

-- The models of these tests, declared on 'db'.
-- Each item points at the one row of 'rep_whereami', so a batched load
-- of that relation says where it ran too.
local function models(db)
  local Where = db:model("rep_whereami", { loam.id(), loam.boolean("replica") })
  local Item = db:model("rep_items", { loam.id(), loam.text("name", { null = false }),
                                       loam.bigint("where_id") })
  Item:belongs_to("whereami", Where, { key = "where_id" })
  return Item, Where
end

-- A Database with the replica, whose messages about it go to 'log'.
local function connect(log, opts)
  opts = opts or {}
  opts.replicas = opts.replicas or { REPLICA }
  opts.replica_log = function(m) log[#log + 1] = m end
  return loam.connect(PRIMARY, opts)
end

describe("read replicas", function()
  local direct, replica

  setup(function()
    direct = loam.connect(PRIMARY)
    replica = loam.connect(REPLICA)
    direct:exec("DROP VIEW IF EXISTS rep_whereami")
    direct:exec("DROP TABLE IF EXISTS rep_items")
    direct:exec("CREATE TABLE rep_items (id bigserial PRIMARY KEY, name text NOT NULL, "
      .. "where_id bigint NOT NULL DEFAULT 1)")
    direct:exec("CREATE VIEW rep_whereami AS SELECT 1::bigint AS id, pg_is_in_recovery() AS replica")
    eventually("the replica has the view", function()
      return replica:query("SELECT to_regclass('rep_whereami') IS NOT NULL AS ok")[1].ok
    end)
  end)

  teardown(function()
    if replica then
      pcall(replica.exec, replica, "SELECT pg_wal_replay_resume()")
      replica:close()
    end
    if direct then
      direct:exec("DROP VIEW IF EXISTS rep_whereami")
      direct:exec("DROP TABLE IF EXISTS rep_items")
      direct:close()
    end
  end)

  it("runs the same model code with the same answers as the primary and PgBouncer", function()
    local want = bookshelf.run(direct, function() end)
    for _, opts in ipairs { {}, { pool = { size = 2 } } } do
      local log = {}
      local db = connect(log, opts)
      assert.same(want, bookshelf.run(db, function() end))
      assert.same({}, log)
      db:close()
    end
    local bouncer = loam.connect(env("LOAM_TEST_PGBOUNCER") .. "&pgbouncer=transaction")
    bouncer:exec("CREATE SCHEMA IF NOT EXISTS loam_bouncer")
    assert.same(want, bookshelf.run(bouncer, function() end))
    bouncer:close()
  end)

  for _, pooled in ipairs { false, true } do
    local label = pooled and "pooled: " or ""
    local opts = function(o)
      o = o or {}
      if pooled then o.pool = { size = 2 } end
      return o
    end

    it(label .. "reads outside a transaction go to the replica, writes to the primary",
      function()
      local log = {}
      local db = connect(log, opts())
      local Item, Where = models(db)
      -- The replica is a standby: the first read after connecting is its.
      assert.is_true(Where:find(1).replica)
      assert.is_true(Where:where { id = 1 }:first().replica)
      assert.same(1, Where:count())
      -- A write runs on the primary (a standby would refuse it) ...
      local it = Item:create { name = "written" }
      assert.same("written", direct:query("SELECT name FROM rep_items WHERE id = ?",
        { it.id })[1].name)
      -- ... and raw SQL too.
      assert.is_false(db:query("SELECT pg_is_in_recovery() AS r")[1].r)
      -- Reads come back to the replica once it has replayed the write,
      -- and then see it there.
      eventually("reads go to the replica again", function() return Where:find(1).replica end)
      assert.same("written", Item:find(it.id).name)
      -- Batched loads of relations go there too.
      local items = Item:include("whereami"):where { id = it.id }:all()
      assert.same({ "written", true }, { items[1].name, items[1].whereami.replica })
      local status = db:replicas()
      assert.is_true(status[1].healthy)
      assert.is_true(status[1].reads >= 4)
      assert.same({}, log)
      db:close()
    end)

    it(label .. "keeps db:transaction and db:primary on the primary", function()
      local db = connect({}, opts())
      local Item, Where = models(db)
      assert.is_true(Where:find(1).replica)
      db:transaction(function()
        assert.is_false(Where:find(1).replica)
        assert.is_false(Where:where { id = 1 }:first().replica)
        local it = Item:create { name = "in a transaction" }
        assert.is_false(Item:include("whereami"):where { id = it.id }:first().whereami.replica)
      end)
      eventually("reads go to the replica again", function() return Where:find(1).replica end)
      -- A locking read runs on the primary: a standby refuses FOR UPDATE.
      local locking = Item:where { name = "in a transaction" }:for_update()
      for _ = 1, 3 do assert.same("in a transaction", locking:first().name) end
      assert.same(false, db:primary(function() return Where:find(1).replica end))
      assert.same({ false, false }, db:primary(function()
        return { Where:find(1).replica, db:primary(function() return Where:find(1).replica end) }
      end))
      assert.is_true(Where:find(1).replica)
      -- An error inside db:primary does not leave the Database forced.
      assert.same({ false, "boom" }, { pcall(db.primary, db, function() error("boom", 0) end) })
      assert.is_true(Where:find(1).replica)
      db:close()
    end)

    it(label .. "reads its own writes while the replica lags behind them", function()
      local log = {}
      local db = connect(log, opts { max_lag_ms = 600000 })
      local Item, Where = models(db)
      local it = Item:create { name = "v1" }
      eventually("the replica replays the insert", function() return Where:find(1).replica end)
      replica:exec("SELECT pg_wal_replay_pause()")
      local ok, err = pcall(function()
        it.name = "v2"
        it:save()
        -- The replica cannot have it: reads go to the primary.
        assert.same("v2", Item:find(it.id).name)
        assert.same({ "v2" }, Item:where { id = it.id }:pluck("name"))
        assert.is_false(Where:find(1).replica)
        assert.same("v1", replica:query("SELECT name FROM rep_items WHERE id = ?",
          { it.id })[1].name)
      end)
      replica:exec("SELECT pg_wal_replay_resume()")
      assert(ok, err)
      eventually("the replica replays the update", function() return Where:find(1).replica end)
      assert.same("v2", Item:find(it.id).name)
      assert.same({}, log)
      db:close()
    end)

    it(label .. "reads its own writes after db:reconnect and after db:close", function()
      local log = {}
      local db = connect(log, opts { max_lag_ms = 600000 })
      local Item, Where = models(db)
      eventually("reads go to the replica", function() return Where:find(1).replica end)
      replica:exec("SELECT pg_wal_replay_pause()")
      local ok, err = pcall(function()
        -- The write ran on the connection that reconnect closes: it is still unseen.
        local a = Item:create { name = "before reconnect" }
        db:reconnect()
        assert.same("before reconnect", Item:find(a.id).name)
        local b = Item:create { name = "before close" }
        db:close()
        db:reconnect()
        assert.same("before close", Item:find(b.id).name)
        assert.is_false(Where:find(1).replica)
      end)
      replica:exec("SELECT pg_wal_replay_resume()")
      assert(ok, err)
      eventually("the replica replays the inserts", function() return Where:find(1).replica end)
      assert.same({}, log)
      db:close()
    end)

    it(label .. "reads a write made through a hand-prepared statement, not a stale replica",
      function()
      local log = {}
      local db = connect(log, opts { max_lag_ms = 600000 })
      local Item, Where = models(db)
      local it = Item:create { name = "p1" }
      -- Prepared before the pause, and before the reads that follow it.
      local rename = db:prepare { k = "update", table = "rep_items",
        set = { { col = "name", expr = { k = "val", v = "p2" } } },
        where = { k = "op", op = "=", l = { k = "col", name = "id" }, r = { k = "val", v = it.id } } }
      eventually("the replica replays the insert", function()
        return Where:find(1).replica and Item:find(it.id) ~= nil
      end)
      replica:exec("SELECT pg_wal_replay_pause()")
      local ok, err = pcall(function()
        assert.same(1, (rename:run()))
        -- The replica cannot have it: the read goes to the primary.
        assert.same("p2", Item:find(it.id).name)
        assert.is_false(Where:find(1).replica)
        assert.same("p1", replica:query("SELECT name FROM rep_items WHERE id = ?",
          { it.id })[1].name)
      end)
      replica:exec("SELECT pg_wal_replay_resume()")
      rename:close()
      assert(ok, err)
      eventually("the replica replays the update", function() return Where:find(1).replica end)
      assert.same("p2", Item:find(it.id).name)
      assert.same({}, log)
      db:close()
    end)

    it(label .. "skips a stopped replica with a warning and uses it again when it is back",
      function()
      local log = {}
      local db = connect(log, opts { replica_check_ms = 0 })
      local _, Where = models(db)
      assert.is_true(Where:find(1).replica)
      replica:close()
      replica_script("halt")
      local ok, err = pcall(function()
        assert.is_false(Where:find(1).replica)
        assert.is_false(Where:where { id = 1 }:first().replica)
        assert.same(1, #log)
        assert.matches("^replica 1 skipped: connection_failed: .*; reads go to the primary$",
          log[1])
        local status = db:replicas()
        assert.is_false(status[1].healthy)
        assert.matches("^connection_failed", status[1].error)
      end)
      replica_script("resume")
      replica = loam.connect(REPLICA)
      assert(ok, err)
      eventually("reads go to the replica again", function() return Where:find(1).replica end)
      assert.same(2, #log)
      assert.matches("^replica 1 is used again %(lag %d+ ms%)$", log[2])
      db:close()
    end)

    it(label .. "skips a replica that lags more than max_lag_ms", function()
      local log = {}
      local db = connect(log, opts { max_lag_ms = 1, replica_check_ms = 0 })
      local _, Where = models(db)
      -- The set-up's own writes may still be replaying: wait until they
      -- are, and forget what was said meanwhile.
      eventually("reads reach the replica", function() return Where:find(1).replica end)
      for i = #log, 1, -1 do log[i] = nil end
      replica:exec("SELECT pg_wal_replay_pause()")
      local ok, err = pcall(function()
        -- Another client writes; the replica receives it and cannot replay it.
        direct:exec("INSERT INTO rep_items (name) VALUES ('lag')")
        local lsn = direct:query("SELECT pg_current_wal_insert_lsn()::text AS l")[1].l
        eventually("the replica receives the insert", function()
          return replica:query("SELECT pg_last_wal_receive_lsn() >= ?::pg_lsn AS ok",
            { lsn })[1].ok
        end)
        eventually("the replica lags", function() return not Where:find(1).replica end)
        assert.same(1, #log)
        assert.matches("^replica 1 skipped: replay lag %d+ ms is over max_lag_ms 1; reads go "
          .. "to the primary$", log[1])
      end)
      replica:exec("SELECT pg_wal_replay_resume()")
      assert(ok, err)
      eventually("reads go to the replica again", function() return Where:find(1).replica end)
      assert.matches("^replica 1 is used again", log[2])
      db:close()
    end)
  end

  it("connects with a replica that is down, and uses it once it is up", function()
    replica:close()
    replica_script("halt")
    local dbs = {}
    local ok, err = pcall(function()
      for _, opts in ipairs { { replica_check_ms = 0 }, { replica_check_ms = 0, pool = {} } } do
        local log = {}
        local db = connect(log, opts)
        local _, Where = models(db)
        assert.same(1, #log)
        assert.matches("^replica 1 skipped: connection_failed: ", log[1])
        assert.is_false(Where:find(1).replica)
        dbs[#dbs + 1] = { db = db, log = log, Where = Where }
      end
    end)
    replica_script("resume")
    replica = loam.connect(REPLICA)
    assert(ok, err)
    for _, d in ipairs(dbs) do
      eventually("reads go to the replica", function() return d.Where:find(1).replica end)
      assert.same(2, #d.log)
      assert.matches("^replica 1 is used again", d.log[2])
      d.db:close()
    end
  end)

  it("reads go to the next usable replica; a primary given as replica is skipped", function()
    local log = {}
    local db = connect(log, { replicas = { PRIMARY, REPLICA } })
    local _, Where = models(db)
    assert.same({ "replica 1 skipped: it is not in recovery (a primary, not a replica); reads "
      .. "go to the other replicas or the primary" }, log)
    assert.is_true(Where:find(1).replica)
    assert.is_true(Where:find(1).replica)
    local status = db:replicas()
    assert.same({ false, true }, { status[1].healthy, status[2].healthy })
    assert.same(0, status[1].reads)
    assert.is_true(status[2].reads >= 2)
    assert.same(0, status.primary_reads)
    db:close()
    -- Usable replicas take turns.
    db = connect(log, { replicas = { REPLICA, REPLICA } })
    _, Where = models(db)
    for _ = 1, 4 do assert.is_true(Where:find(1).replica) end
    status = db:replicas()
    assert.is_true(status[1].reads >= 2 and status[2].reads >= 2)
    db:close()
  end)

  it("takes one replica a read: turns are even, each read counted once", function()
    local db = connect({}, { replicas = { REPLICA, REPLICA } })
    local _, Where = models(db)
    for _ = 1, 6 do assert.is_true(Where:find(1).replica) end
    for _ = 1, 6 do assert.is_true(Where:where{ id = 1 }:first().replica) end
    local status = db:replicas()
    assert.same({ 6, 6, 0 }, { status[1].reads, status[2].reads, status.primary_reads })
    db:close()
  end)

  it("shows each target in the pool's metrics", function()
    local db = connect({}, { pool = { size = 2 } })
    local _, Where = models(db)
    assert.is_true(Where:find(1).replica)
    local stats = db:pool_stats()
    assert.same(2, stats.size)
    assert.same(1, #stats.replicas)
    assert.is_true(stats.replicas[1].healthy)
    assert.is_true(stats.replicas[1].reads >= 1)
    assert.same(2, stats.replicas[1].pool.size)
    assert.is_true(stats.replicas[1].pool.acquires >= 2)  -- the check and the read
    db:close()
  end)

  it("reports the replicas' statements through the query hook, not its own checks", function()
    local db = connect({}, { replica_check_ms = 0 })
    local _, Where = models(db)
    local seen = {}
    db:on_query(function(e) seen[#seen + 1] = e.sql end)
    assert.is_true(Where:find(1).replica)
    assert.same(1, #seen)
    assert.matches("rep_whereami", seen[1])
    db:close()
  end)

  it("refuses bad replica options, naming them, and opens nothing", function()
    local function fails(url, opts)
      local err = catch(function() loam.connect(url, opts) end)
      return err.code, err.message
    end
    assert.same({ "misuse", "loam.connect: replicas are PostgreSQL servers, and this database "
      .. "is SQLite" }, { fails("sqlite::memory:", { replicas = { REPLICA } }) })
    assert.same({ "misuse", "loam.connect: replica 1 is an SQLite URL: replicas are "
      .. "PostgreSQL servers" }, { fails(PRIMARY, { replicas = { "sqlite::memory:" } }) })
    local code = fails(PRIMARY, { replicas = { "postgresql://[nonsense" } })
    assert.same("invalid_url", code)
    code = fails(PRIMARY, { replicas = { REPLICA, "mysql://x/y" } })
    assert.same("invalid_url", code)
    for _, v in ipairs { -1, 1.5, "10", 86400001 } do
      assert.same({ "misuse", "loam.connect: option 'max_lag_ms' must be an integer from 0 to "
        .. "86400000 (milliseconds), got " .. require("loam.errors").show(v) },
        { fails(PRIMARY, { replicas = { REPLICA }, max_lag_ms = v }) })
    end
    assert.same("misuse", (fails(PRIMARY, { replicas = { REPLICA }, replica_check_ms = -5 })))
    assert.same({ "misuse", "loam.connect: option 'replicas' must be a non-empty list of URLs, "
      .. "got table" }, { fails(PRIMARY, { replicas = {} }) })
    assert.same({ "misuse", "loam.connect: replica 1: a URL is a string, got integer (5)" },
      { fails(PRIMARY, { replicas = { 5 } }) })
    assert.same({ "misuse", "loam.connect: option 'max_lag_ms' is for replicas, and "
      .. "'replicas' is not given" }, { fails(PRIMARY, { max_lag_ms = 5 }) })
    assert.same("misuse", (fails(PRIMARY, { replicas = { REPLICA }, replica_log = "stderr" })))
    -- A pooled primary whose replica fails leaves no pool open: the same
    -- URL opens again with other pool options.
    assert.same("invalid_url", (fails(PRIMARY, { pool = { size = 3 },
      replicas = { "postgresql://[nonsense" } })))
    local db = loam.connect(PRIMARY, { pool = { size = 1 } })
    db:close()
    -- A replica's pool is the process's pool for its URL: other options are
    -- the pool's misuse error, not a replica that is down.
    local other = loam.connect(REPLICA, { pool = { size = 1 } })
    local err = catch(function()
      loam.connect(PRIMARY, { pool = { size = 2 }, replicas = { REPLICA } })
    end)
    assert.same("misuse", err.code)
    assert.matches("already has a pool for that URL with other options: size 1", err.message,
      1, true)
    other:close()
    db = loam.connect(PRIMARY, { pool = { size = 1 } })
    db:close()
  end)

  it("reads a Database's replicas through pools of its own without 'pool'", function()
    -- A pooled Database holds the process's pool of the replica URL; one
    -- without 'pool' reads through pools of its own, with no options to
    -- clash, and both read the replica.
    local pooled = connect({}, { pool = { size = 2 } })
    local plain = connect({}, {})
    for _, db in ipairs { pooled, plain } do
      local _, Where = models(db)
      assert.is_true(Where:find(1).replica)
    end
    local other = loam.connect(REPLICA, { pool = { size = 2 } })
    assert.same(1, #other:query("SELECT 1 AS one"))
    other:close()
    plain:close()
    pooled:close()
  end)

  it("changes nothing without replicas, on SQLite too", function()
    for backend in helper.each_backend() do
      local db = helper.connect(backend)
      assert.same(db:connection(), db:reader())
      assert.same(42, db:primary(function(x) return x end, 42))
      local err = catch(function() db:replicas() end)
      assert.same("misuse", err.code)
      assert.matches("has no replicas", err.message)
      assert.is_nil(rawget(db, "run"))
      db:close()
    end
  end)
end)
