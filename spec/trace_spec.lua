-- spec/trace_spec.lua: the instrumentation of connections from Lua:
-- db:stats(), db:on_query(fn) events (one per statement, in the caller's
-- coroutine, with its stack), hooks that raise, clearing and replacing
-- hooks, and loam.core.fingerprint.

local loam = require "loam"
local core = require "loam.core"
local helper = require "spec.helper"

local catch = helper.catch

-- The first Lua frame below the hook: the code whose statement ended.
local function caller_line()
  local level = 3
  while true do
    local info = debug.getinfo(level, "Sl")
    if info == nil then
      return nil
    end
    -- Past C and the Database's methods, which call the connection's.
    if info.what ~= "C" and not info.short_src:find("loam/database.lua", 1, true) then
      return info.short_src, info.currentline
    end
    level = level + 1
  end
end

for backend, pg in helper.each_backend() do
  describe(backend.label .. ":", function()
    local db, events

    local function recorder(e)
      events[#events + 1] = e
    end

    before_each(function()
      db = helper.connect(backend)
      helper.table(db, "trace_items", "id integer primary key, name text",
        "id bigint primary key, name text")
      db:exec("insert into trace_items (id, name) values (1, 'a'), (2, 'b'), (3, 'c')")
      events = {}
    end)

    after_each(function()
      db:close()
    end)

    describe("stats", function()
      it("counts statements, rows, errors and time", function()
        local before = db:stats()
        assert.are.equal(3, #db:query("select * from trace_items"))
        db:exec("update trace_items set name = ? where id = ?", { "x", 1 })
        for _ in db:each("select id from trace_items") do end
        catch(db.query, db, "select * from trace_nowhere")
        local after = db:stats()
        assert.are.equal(4, after.queries - before.queries)
        assert.are.equal(6, after.rows - before.rows)
        assert.are.equal(1, after.errors - before.errors)
        assert.are.equal("float", math.type(after.ms))
        assert.is_true(after.ms >= before.ms)
      end)

      it("needs an open connection", function()
        db:close()
        local err = catch(db.stats, db)
        assert.are.equal("misuse", err.code)
        assert.are.equal("attempt to use a closed database (db:reconnect() opens it again)", err.message)
      end)
    end)

    describe("on_query", function()
      it("reports each statement once, with its fields", function()
        assert.is_nil(db:on_query(recorder))
        db:query("select id, name from trace_items where id in (1, 2) order by id")
        assert.are.equal(1, #events)
        local e = events[1]
        assert.are.equal("select id, name from trace_items where id in (1, 2) order by id", e.sql)
        assert.are.equal("select id, name from trace_items where id in (?) order by id",
          e.normalized)
        assert.matches("^%x+$", e.fingerprint)
        assert.are.equal(16, #e.fingerprint)
        assert.are.equal(core.fingerprint(e.sql), e.fingerprint)
        assert.are.equal(2, e.rows)
        assert.are.equal(0, e.nparams)
        assert.is_true(e.ms >= 0)
        assert.is_nil(e.error)

        db:exec("update trace_items set name = ? where id = ?", { "z", 3 })
        assert.are.equal(2, #events)
        assert.are.equal(2, events[2].nparams)
        assert.are.equal(0, events[2].rows)
        assert.are.equal("update trace_items set name = ? where id = ?", events[2].normalized)
      end)

      it("gives one fingerprint to statements that differ only in values", function()
        db:on_query(recorder)
        for id = 1, 3 do
          db:query("select name from trace_items where id = " .. id)
          db:query("select name from trace_items where id = ?", { id })
        end
        for i = 2, #events do
          assert.are.equal(events[1].fingerprint, events[i].fingerprint)
        end
        db:query("select id from trace_items where name = ?", { "a" })
        assert.are_not.equal(events[1].fingerprint, events[#events].fingerprint)
      end)

      it("reports db:each when the iteration ends", function()
        db:on_query(recorder)
        local seen = 0
        for _ in db:each("select id from trace_items order by id") do
          assert.are.equal(0, #events)
          seen = seen + 1
        end
        assert.are.equal(3, seen)
        assert.are.equal(1, #events)
        assert.are.equal(3, events[1].rows)

        for _ in db:each("select id from trace_items order by id") do
          break
        end
        assert.are.equal(2, #events)
        assert.are.equal(1, events[2].rows)

        local err = catch(function()
          for _ in db:each("select id from trace_items") do
            error(setmetatable({ code = "body", message = "in the body" }, loam.Error))
          end
        end)
        assert.are.equal("body", err.code)
        assert.are.equal(3, #events)
      end)

      it("reports failed statements with their error code", function()
        db:on_query(recorder)
        local err = catch(db.query, db, "select * from trace_nowhere")
        assert.are.equal("undefined_table", err.code)
        assert.are.equal(1, #events)
        assert.are.equal("undefined_table", events[1].error)
        catch(db.exec, db, "insert into trace_items (id) values (1)")
        assert.are.equal("unique_violation", events[2].error)
        catch(db.query, db, "select ?", {})
        assert.are.equal("misuse", events[3].error)
        assert.are.equal(3, db:stats().errors)
      end)

      it("runs in the caller's coroutine, with the caller's stack", function()
        local where = {}
        db:on_query(function(e)
          where[#where + 1] = { co = coroutine.running(), line = select(2, caller_line()),
                                src = (caller_line()) }
        end)
        local line = helper.next_line()
        db:query("select 1 as one")
        assert.are.equal(line, where[1].line)
        assert.matches("trace_spec%.lua$", where[1].src)

        local co = coroutine.create(function()
          db:exec("select 1")
          coroutine.yield()
          for _ in db:each("select id from trace_items") do end
        end)
        assert.is_true(coroutine.resume(co))
        assert.are.equal(co, where[2].co)
        assert.is_true(coroutine.resume(co))
        assert.are.equal(co, where[3].co)
      end)

      it("returns the previous hook, and replaces it", function()
        local other = {}
        local function second(e) other[#other + 1] = e end
        assert.is_nil(db:on_query(recorder))
        assert.are.equal(recorder, db:on_query(second))
        db:query("select 1")
        assert.are.equal(0, #events)
        assert.are.equal(1, #other)
        assert.are.equal(second, db:on_query(nil))
        assert.is_nil(db:on_query(nil))
      end)

      it("stops when cleared; the counters go on", function()
        db:on_query(recorder)
        db:query("select 1")
        db:on_query(nil)
        local before = db:stats().queries
        db:query("select 1")
        db:exec("select 1")
        for _ in db:each("select 1") do end
        assert.are.equal(1, #events)
        assert.are.equal(before + 3, db:stats().queries)
      end)

      it("does not report the statements a hook runs itself", function()
        local inner
        db:on_query(function(e)
          events[#events + 1] = e
          inner = db:query("select count(*) as n from trace_items")[1].n
        end)
        db:query("select 1")
        assert.are.equal(1, #events)
        assert.are.equal(3, inner)
        assert.are.equal("select 1", events[1].sql)
      end)

      it("keeps hooks per connection", function()
        local db2 = helper.connect(backend)
        local other = {}
        db:on_query(recorder)
        db2:on_query(function(e) other[#other + 1] = e end)
        db:query("select 1")
        db2:query("select 2")
        db2:query("select 3")
        assert.are.equal(1, #events)
        assert.are.equal(2, #other)
        db2:close()
      end)

      it("refuses anything but a function or nil", function()
        local err = catch(db.on_query, db, 42)
        assert.are.equal("misuse", err.code)
        assert.matches("function or nil expected, got number", err.message)
      end)
    end)

    describe("a hook that raises", function()
      local function boom()
        error(setmetatable({ code = "hook", message = "from the hook" }, loam.Error))
      end

      -- No statement may be left open: dropping the table would then fail
      -- (SQLite: the table is locked; PostgreSQL: the connection is busy).
      local function still_works()
        db:on_query(nil)
        assert.are.equal(3, #db:query("select * from trace_items"))
        helper.drop_tables(db, { "trace_items" })
      end

      it("makes db:query raise its error, after the statement ended", function()
        local before = db:stats()
        db:on_query(boom)
        local err = catch(db.query, db, "select * from trace_items")
        assert.are.equal("hook", err.code)
        local after = db:stats()
        assert.are.equal(1, after.queries - before.queries)
        assert.are.equal(3, after.rows - before.rows)
        assert.are.equal(0, after.errors - before.errors)
        still_works()
      end)

      it("makes db:exec raise its error; the change is made", function()
        db:on_query(boom)
        local err = catch(db.exec, db, "update trace_items set name = 'q' where id = 1")
        assert.are.equal("hook", err.code)
        db:on_query(nil)
        assert.are.equal("q", db:query("select name from trace_items where id = 1")[1].name)
        still_works()
      end)

      it("makes db:each raise at its end, on every way out", function()
        db:on_query(boom)
        local err = catch(function()
          for _ in db:each("select * from trace_items") do end
        end)
        assert.are.equal("hook", err.code)
        err = catch(function()
          for _ in db:each("select * from trace_items") do break end
        end)
        assert.are.equal("hook", err.code)
        still_works()
      end)

      it("never hides the error of a failing statement", function()
        db:on_query(boom)
        local err = catch(db.query, db, "select * from trace_nowhere")
        assert.are.equal("undefined_table", err.code)
        err = catch(function()
          for _ in db:each("select * from trace_items") do
            error(setmetatable({ code = "body", message = "in the body" }, loam.Error))
          end
        end)
        assert.are.equal("body", err.code)
        still_works()
      end)

      it("can raise a plain string", function()
        db:on_query(function() error("plain", 0) end)
        local ok, err = pcall(db.query, db, "select 1")
        assert.is_false(ok)
        assert.are.equal("plain", err)
        still_works()
      end)
    end)

    it("lets a connection with a hook be collected", function()
      local db2 = helper.connect(backend)
      local n = 0
      db2:on_query(function() n = n + 1 end)
      local iter = db2:each("select 1 union all select 2")
      iter = nil   -- luacheck: ignore (dropped on purpose, still open)
      db2 = nil    -- luacheck: ignore
      collectgarbage()
      collectgarbage()
      db:query("select 1")
      assert.is_true(n <= 1)
    end)
  end)
end

describe("loam.core.fingerprint", function()
  it("gives 16 hex digits and the normalised text", function()
    local fp, text = core.fingerprint("SELECT  *  FROM t WHERE a = 'x' AND b IN (1, 2, $3) -- c")
    assert.are.equal("SELECT * FROM t WHERE a = ? AND b IN (?)", text)
    assert.matches("^" .. ("%x"):rep(16) .. "$", fp)
    assert.are.equal(fp, (core.fingerprint("SELECT * FROM t WHERE a = ? AND b IN (?)")))
    assert.are_not.equal(fp, (core.fingerprint("SELECT * FROM t WHERE a = ?")))
  end)

  it("refuses a non-string", function()
    local err = catch(core.fingerprint, 12)
    assert.are.equal("misuse", err.code)
  end)
end)
