-- spec/transaction_options_spec.lua: db:transaction(opts, fn, ...): isolation
-- levels and read-only (what each backend honours, and the refusals),
-- after_commit / after_rollback hooks through savepoints, retries of a
-- real serialization failure and of SQLite's busy, the report of a long
-- transaction, a raw COMMIT inside, and every misuse of the options.

local loam = require "loam"
local helper = require "spec.helper"

local catch, next_line = helper.catch, helper.next_line
local SPEC = "spec/transaction_options_spec.lua"

-- Spends at least 'ms' milliseconds of the process's time, hence of the wall clock.
local function spend(ms)
  local stop = os.clock() + ms / 1000
  while os.clock() < stop do end
end

for backend, pg in helper.each_backend() do
  describe(backend.label .. ": transaction options", function()
    local db

    local function n(id)
      return db:query("select n from txo where id = ?", { id })[1].n
    end

    local function statements(fn) return helper.statements(db, fn) end

    before_each(function()
      db = helper.connect(backend)
      helper.table(db, "txo", "id INTEGER PRIMARY KEY, n INTEGER NOT NULL")
      db:exec("insert into txo (id, n) values (1, 0), (2, 0)")
    end)

    after_each(function()
      helper.finish(db, { "txo" })
    end)

    it("sets the isolation level where the backend honours it, and refuses the rest", function()
      local texts = statements(function()
        db:transaction({ isolation = "serializable" }, function()
          if pg then
            assert.are.equal("serializable",
              db:query("select current_setting('transaction_isolation') as l")[1].l)
          end
        end)
      end)
      assert.are.equal(pg and "BEGIN ISOLATION LEVEL SERIALIZABLE" or "BEGIN IMMEDIATE", texts[1])
      for _, level in ipairs { "read committed", "repeatable read" } do
        if pg then
          db:transaction({ isolation = level }, function()
            assert.are.equal(level,
              db:query("select current_setting('transaction_isolation') as l")[1].l)
          end)
        else
          local err
          texts = statements(function()
            err = catch(db.transaction, db, { isolation = level }, function() end)
          end)
          assert.are.equal("misuse", err.code)
          assert.are.equal("SQLite runs every transaction serializable and cannot give " .. level
            .. " isolation; ask for serializable or leave it out", err.message)
          assert.are.same({}, texts)  -- nothing was sent
        end
      end
    end)

    it("runs a read-only transaction, which refuses writes, and writes again after", function()
      local texts = statements(function()
        local line = next_line()
        local err = catch(db.transaction, db, { read_only = true }, function()
          assert.are.equal(2, helper.count(db, "txo"))
          db:exec("update txo set n = 1")
        end)
        assert.are.equal("read_only", err.code)
        assert.are.equal(SPEC .. ":" .. (line + 2) .. ": ", err.where)
      end)
      if pg then
        assert.are.equal("BEGIN READ ONLY", texts[1])
      else
        assert.are.same({ "BEGIN DEFERRED", "PRAGMA query_only = 1" }, { texts[1], texts[2] })
        assert.are.same({ "ROLLBACK", "PRAGMA query_only = 0" }, { texts[#texts - 1], texts[#texts] })
      end
      db:exec("update txo set n = 5 where id = 1")
      assert.are.equal("ok", db:transaction({ read_only = true, isolation = "serializable" },
        function() return "ok" end))
      db:exec("update txo set n = 6 where id = 1")
      assert.are.equal(6, n(1))
    end)

    it("refuses bad options and options of a nested transaction, naming the caller", function()
      local cases = {
        { { isolation = "snapshot" }, "transaction: isolation must be 'read committed', "
          .. "'repeatable read' or 'serializable', got 'snapshot'" },
        { { read_only = 1 }, "transaction: option 'read_only' must be a boolean, got a number" },
        { { retry = 3 }, "transaction: option 'retry' must be a table { attempts = n, base_ms = "
          .. "ms, max_ms = ms }, got a number" },
        { { retry = {} }, "transaction: option 'retry' needs attempts (1..1000)" },
        { { retry = { attempts = 0 } }, "transaction: option 'retry.attempts' must be "
          .. "1..1000, got 0" },
        { { retry = { attempts = 2, base_ms = 1.5 } }, "transaction: option 'retry.base_ms' "
          .. "must be an integer, got a number" },
        { { retry = { attempts = 2, tries = 1 } }, "transaction: unknown retry option 'tries' "
          .. "(attempts, base_ms, max_ms)" },
        { { retry = { attempts = 2, base_ms = 100, max_ms = 10 } }, "loam_tx_run: retry max_ms "
          .. "(10) is below base_ms (100)" },
        { { warn_after_ms = 0 }, "transaction: option 'warn_after_ms' must be 1..86400000, got 0" },
        { { log = "stderr" }, "transaction: option 'log' must be a function, got a string" },
        { { tag = 7 }, "transaction: option 'tag' must be a string, got a number" },
        { { timeout = 5 }, "transaction: unknown option 'timeout' (isolation, read_only, retry, "
          .. "warn_after_ms, log, tag)" },
      }
      for _, case in ipairs(cases) do
        local line = next_line()
        local err = helper.caught(pcall(db.transaction, db, case[1], function() error("never") end))
        assert.are.equal("misuse", err.code)
        assert.are.equal(case[2], err.message)
        assert.are.equal(SPEC .. ":" .. line .. ": ", err.where)
      end
      local outer = "isolation, read_only, warn_after_ms and log belong to the outermost "
        .. "transaction, and this one would be a savepoint inside an open transaction"
      db:transaction(function()
        for _, opts in ipairs { { isolation = "serializable" }, { read_only = true },
                                { warn_after_ms = 5 }, { log = print } } do
          assert.are.equal(outer, catch(db.transaction, db, opts, function() end).message)
        end
        assert.are.equal("retry belongs to the outermost transaction, and one is open: a "
          .. "savepoint cannot undo what made it fail",
          catch(db.transaction, db, { retry = { attempts = 2 } }, function() end).message)
        -- A tag alone is fine: the outermost one names the transaction.
        db:transaction({ tag = "inner" }, function() db:exec("update txo set n = 1") end)
      end)
      assert.are.equal(1, n(1))
    end)

    it("runs after_commit hooks once the outermost transaction committed", function()
      local heard = {}
      local function hear(what) return function() heard[#heard + 1] = what end end
      local result = db:transaction(function()
        db:exec("update txo set n = 1 where id = 1")
        db:after_commit(function()
          -- The transaction is over: its work is visible and the connection is free.
          heard[#heard + 1] = "a:" .. n(1)
          db:transaction(function() db:exec("update txo set n = 10 where id = 2") end)
        end)
        db:after_rollback(hear("never"))
        db:transaction(function() db:after_commit(hear("b")) end)  -- waits for the outer one
        assert.are.same({}, heard)
        local ok = pcall(db.transaction, db, function()
          db:after_commit(hear("dropped"))
          db:after_rollback(hear("c: its savepoint was undone"))
          error("undo")
        end)
        assert.is_false(ok)
        assert.are.same({ "c: its savepoint was undone" }, heard)
        return "done"
      end)
      assert.are.equal("done", result)
      assert.are.same({ "c: its savepoint was undone", "a:1", "b" }, heard)
      assert.are.equal(10, n(2))
    end)

    it("runs after_rollback hooks when the transaction fails, and drops after_commit", function()
      local heard = {}
      local err = catch(db.transaction, db, function()
        db:after_commit(function() heard[#heard + 1] = "commit" end)
        db:transaction(function()
          db:after_rollback(function() heard[#heard + 1] = "inner" end)
        end)
        db:after_rollback(function() heard[#heard + 1] = "outer" end)
        db:exec("update txo set n = 1 where id = 1")
        db:exec("insert into txo (id, n) values (1, 1)")  -- fails
      end)
      assert.are.equal("unique_violation", err.code)
      assert.are.same({ "inner", "outer" }, heard)
      assert.are.equal(0, n(1))
    end)

    it("reports a failing hook and keeps the commit", function()
      local logged = {}
      local line = next_line()
      local a, b = db:transaction({ log = function(m) logged[#logged + 1] = m end }, function()
        db:exec("update txo set n = 3 where id = 1")
        db:after_commit(function() error("mail server down") end)
        db:after_commit(function() logged[#logged + 1] = "second hook ran" end)
        pcall(db.transaction, db, function()  -- a savepoint's hook reports to the same log
          db:after_rollback(function() error({}) end)
          error("undo")
        end)
        return 1, 2
      end)
      assert.are.same({ 1, 2 }, { a, b })
      assert.matches("^after_rollback hook failed %(the transaction stands%): table: ", logged[1])
      assert.are.same({ "after_commit hook failed (the transaction stands): " .. SPEC .. ":"
        .. (line + 2) .. ": mail server down", "second hook ran" }, { logged[2], logged[3] })
      assert.are.equal(3, n(1))
    end)

    it("refuses hooks outside a transaction and hooks that are no functions", function()
      local line = next_line()
      local err = helper.caught(pcall(db.after_commit, db, function() end))
      assert.are.equal("misuse", err.code)
      assert.are.equal("after_commit / after_rollback (loam_tx_on_end): no transaction open "
        .. "(call loam_tx_begin first)", err.message)
      assert.are.equal(SPEC .. ":" .. line .. ": ", err.where)
      db:transaction(function()
        assert.are.equal("after_rollback: expects a function, got a string",
          catch(db.after_rollback, db, "nope").message)
      end)
      db:exec("BEGIN")
      db:transaction(function()
        assert.matches("the transaction was begun with raw SQL",
          catch(db.after_commit, db, print).message, 1, true)
      end)
      db:exec("ROLLBACK")
    end)

    it("reports a transaction open longer than warn_after_ms, with where it started", function()
      local logged = {}
      local line = next_line()
      db:transaction({ warn_after_ms = 5, log = function(m) logged[#logged + 1] = m end },
        function()
          db:exec("update txo set n = 1")
          spend(10)
          db:exec("update txo set n = 2")
          db:exec("update txo set n = 3")
        end)
      assert.are.equal(1, #logged)
      assert.matches("^a transaction has been open for %d+ ms %(started at "
        .. SPEC:gsub("%p", "%%%0") .. ":" .. line .. "%) and is still running statements$",
        logged[1])
      db:transaction({ warn_after_ms = 5, tag = "orders:checkout",
                       log = function(m) logged[#logged + 1] = m end }, function() spend(10) end)
      assert.matches("^a transaction was open for %d+ ms %(started at orders:checkout%) before "
        .. "it committed$", logged[2])
      db:transaction({ warn_after_ms = 60000, log = function(m) logged[#logged + 1] = m end },
        function() end)
      assert.are.equal(2, #logged)
    end)

    it("fails a raw COMMIT inside, and every statement after it", function()
      local line = next_line()
      local err = helper.caught(pcall(db.transaction, db, function()
        db:exec("update txo set n = 1 where id = 1")
        local inner = catch(db.exec, db, "COMMIT")
        assert.are.equal("misuse", inner.code)
        assert.matches("^this statement ended the transaction that db:transaction "
          .. "%(loam_tx_begin%) opened %(started at " .. SPEC:gsub("%p", "%%%0") .. ":" .. line
          .. "%): what ran in it before was committed", inner.message)
        db:exec("update txo set n = 2 where id = 2")  -- would autocommit: refused
      end))
      assert.are.equal("misuse", err.code)
      assert.matches("has ended under it %(a raw COMMIT or ROLLBACK, or the backend rolled it "
        .. "back%): this statement would run in autocommit; roll the level back first",
        err.message)
      assert.are.same({ 1, 0 }, { n(1), n(2) })  -- COMMIT kept the first; the second never ran
      db:exec("update txo set n = 2 where id = 2")  -- the transaction is over
      assert.are.equal(2, n(2))
    end)

    it("does not retry what a retry cannot cure, and passes other errors unchanged", function()
      local calls = 0
      local err = catch(db.transaction, db, { retry = { attempts = 3, base_ms = 0 } }, function()
        calls = calls + 1
        db:exec("insert into txo (id, n) values (1, 1)")
      end)
      assert.are.equal("unique_violation", err.code)
      assert.are.equal(1, err.attempts)
      assert.are.equal(1, calls)
      local ok, e = pcall(db.transaction, db, { retry = { attempts = 3 } }, function()
        error("plain", 0)
      end)
      assert.are.same({ false, "plain" }, { ok, e })
    end)
  end)
end

describe("sqlite file: retry", function()
  it("retries busy at BEGIN, gives up after the attempts, and succeeds once free", function()
    local url = "sqlite:" .. helper.tmpname(".db")
    local a = loam.connect(url)
    local b = loam.connect(url, { busy_timeout_ms = 0 })
    a:exec("create table t (n integer)")
    a:exec("BEGIN IMMEDIATE")  -- the write lock, held
    local calls = 0
    local function work()
      calls = calls + 1
      b:exec("insert into t values (1)")
      return "written"
    end
    local line = next_line()
    local err = helper.caught(pcall(b.transaction, b, { retry = { attempts = 3, base_ms = 1 } },
                                    work))
    assert.are.equal("busy", err.code)
    assert.are.equal(3, err.attempts)
    assert.matches("%(gave up after 3 attempts%)$", err.message)
    assert.are.equal(SPEC .. ":" .. line .. ": ", err.where)
    assert.are.equal(0, calls)
    a:exec("COMMIT")
    assert.are.equal("written", b:transaction({ retry = { attempts = 3 } }, work))
    assert.are.equal(1, helper.count(a, "t"))
    a:close()
    b:close()
  end)
end)

local pgb = helper.postgres()
if pgb then
  describe("postgres: retry", function()
    local db, other

    before_each(function()
      db, other = helper.connect(pgb), helper.connect(pgb)
      helper.table(db, "txo", "id INTEGER PRIMARY KEY, n INTEGER NOT NULL")
      db:exec("insert into txo (id, n) values (1, 0)")
    end)

    after_each(function()
      other:close()
      helper.finish(db, { "txo" })
    end)

    -- Reads row 1 under SERIALIZABLE; on the first call the other connection changes it
    -- before this transaction writes it: a real serialization failure.
    local calls
    local function read_then_write()
      calls = calls + 1
      db:query("select n from txo where id = 1")
      if calls == 1 then other:exec("update txo set n = n + 10 where id = 1") end
      db:exec("update txo set n = n + 1 where id = 1")
      return calls
    end

    it("re-runs the whole function after a serialization failure, and commits", function()
      calls = 0
      local err = catch(db.transaction, db, { isolation = "serializable" }, read_then_write)
      assert.are.equal("serialization_failure", err.code)
      assert.are.equal("40001", err.sqlstate)
      assert.is_nil(err.attempts)
      calls = 0
      local texts = helper.statements(db, function()
        assert.are.equal(2, db:transaction({ isolation = "serializable",
                                             retry = { attempts = 3, base_ms = 1 } },
                                           read_then_write))
      end)
      assert.are.equal(21, db:query("select n from txo where id = 1")[1].n)
      local begins, rollbacks = 0, 0
      for _, t in ipairs(texts) do
        if t == "BEGIN ISOLATION LEVEL SERIALIZABLE" then begins = begins + 1 end
        if t == "ROLLBACK" then rollbacks = rollbacks + 1 end
      end
      assert.are.same({ 2, 1 }, { begins, rollbacks })
    end)

    it("gives up after the last attempt with that attempt's error and the count", function()
      local runs = 0
      local err = catch(db.transaction, db,
        { isolation = "serializable", retry = { attempts = 2, base_ms = 1 } }, function()
          runs = runs + 1
          db:query("select n from txo where id = 1")
          other:exec("update txo set n = n + 10 where id = 1")
          db:exec("update txo set n = n + 1 where id = 1")
        end)
      assert.are.equal("serialization_failure", err.code)
      assert.are.equal(2, err.attempts)
      assert.matches("%(gave up after 2 attempts%)$", err.message)
      assert.are.equal(2, runs)
      assert.are.equal(20, db:query("select n from txo where id = 1")[1].n)
    end)
  end)
end

-- The pool's report goes to stderr from Lua: the script runs in a host of its own.
for backend, pg in helper.each_backend() do
  if not backend.memory then
    describe(backend.label .. ": the pool", function()
      it("reports a second checkout by a thread that holds one in a transaction", function()
        local script = helper.tmpname(".lua")
        local f = assert(io.open(script, "w"))
        f:write(([[
local core = require "loam.core"
local pool = core.pool_open(%q, { size = 2, max_overflow = 0 })
local a = pool:acquire()
local b = pool:acquire()  -- no transaction: nothing to say
b:close()
a:transaction(function()
  local c = pool:acquire()
  c:close()
end)
a:close()
pool:close()
print("done")
]]):format(backend.url .. (pg and "&application_name=tx_nested" or "")))
        f:close()
        local p = assert(io.popen(helper.shell_quote(helper.host()) .. " "
          .. helper.shell_quote(script) .. " 2>&1"))
        local out = p:read("a")
        p:close()
        local lines = {}
        for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
        assert.are.equal(2, #lines, out)
        assert.matches("^loam: pool warning: this thread holds a connection of the pool inside a transaction "
          .. "%(acquired %d+ ms ago at " .. script:gsub("%p", "%%%0") .. ":3%) and asks for "
          .. "another: when the pool is exhausted it waits for itself %(a pool self%-deadlock%)",
          lines[1])
        assert.are.equal("done", lines[2])
      end)
    end)
  end
end
