-- spec/tx_begin_spec.lua: when db:transaction's BEGIN reaches the server.
-- On PostgreSQL it goes with the transaction's first statement (in one
-- round trip when that statement is prepared already), so a transaction
-- that runs nothing sends nothing; SQLite sends BEGIN IMMEDIATE at once.
-- What the caller sees is the same: the statements in order, a failing
-- first statement rolling everything back, the read-only and isolation
-- options, a retried serialization failure.

local loam = require "loam"
local helper = require "spec.helper"

local catch = helper.catch

for backend, pg in helper.each_backend() do
  describe(backend.label .. ": BEGIN", function()
    local db, Counter
    local begin = pg and "BEGIN" or "BEGIN IMMEDIATE"

    local function statements(fn) return helper.statements(db, fn) end

    -- The W5 transaction: read a row by key (locking it on PostgreSQL), update it.
    local function bump(id, by)
      local q = pg and Counter:for_update() or Counter
      local c = q:where { id = id }:first()
      c.hits = c.hits + by
      c:save()
      return c.hits
    end

    before_each(function()
      db = helper.connect(backend)
      helper.table(db, "txb_counters", "id INTEGER PRIMARY KEY, hits INTEGER NOT NULL")
      Counter = db:model("txb_counters", { loam.id(), loam.integer("hits") })
      Counter:create { id = 1, hits = 0 }
      Counter:create { id = 2, hits = 0 }
      -- Twice outside a transaction: the statements are prepared from then on.
      bump(1, 0)
      bump(1, 0)
    end)

    after_each(function()
      helper.finish(db, { "txb_counters" })
    end)

    it("sends nothing on PostgreSQL for a transaction that runs nothing", function()
      local texts = statements(function()
        assert.are.equal("done", db:transaction(function() return "done" end))
        db:transaction(function()
          db:transaction(function() end)  -- a savepoint needs the transaction: BEGIN goes
        end)
      end)
      if pg then
        assert.are.same({ "BEGIN", "SAVEPOINT loam_sp_2", "RELEASE SAVEPOINT loam_sp_2",
                          "COMMIT" }, texts)
      else
        assert.are.same({ begin, "COMMIT", begin, "SAVEPOINT loam_sp_2",
                          "RELEASE SAVEPOINT loam_sp_2", "COMMIT" }, texts)
      end
    end)

    it("reports BEGIN before the first statement, which runs inside the transaction", function()
      local texts = statements(function()
        assert.are.equal(5, db:transaction(function() return bump(2, 5) end))
      end)
      assert.are.equal(begin, texts[1])
      assert.matches("^SELECT", texts[2]:upper())
      assert.matches("^UPDATE", texts[3]:upper())
      assert.are.equal("COMMIT", texts[4])
      assert.are.equal(4, #texts)
      -- Raised after the first statement: rolled back, so the UPDATE was inside.
      local raised = setmetatable({}, { __tostring = function() return "mine" end })
      local ok, err = pcall(db.transaction, db, function()
        bump(2, 1)
        error(raised)
      end)
      assert.is_false(ok)
      assert.are.equal(raised, err)
      assert.are.equal(5, Counter:find(2).hits)
      assert.are.equal("idle", db:transaction_status())
    end)

    it("rolls back when the first statement fails, and the connection goes on", function()
      local err = catch(db.transaction, db, function()
        db:exec("insert into txb_counters (id, hits) values (?, ?)", { 1, 0 })  -- the key is taken
      end)
      assert.are.equal("unique_violation", err.code)
      assert.are.equal("idle", db:transaction_status())
      -- Prepared now: the same failure when it goes out with BEGIN.
      err = catch(db.transaction, db, function()
        db:exec("insert into txb_counters (id, hits) values (?, ?)", { 1, 0 })
      end)
      assert.are.equal("unique_violation", err.code)
      assert.are.equal("idle", db:transaction_status())
      assert.are.equal(2, Counter:count())
      assert.are.equal(1, db:transaction(function() return bump(1, 1) end))
    end)

    it("keeps read-only and the isolation level on a prepared first statement", function()
      local err = catch(db.transaction, db, { read_only = true }, function() bump(1, 1) end)
      assert.are.equal("read_only", err.code)
      assert.are.equal(0, Counter:find(1).hits)
      if pg then
        -- A serialization failure at the first write, retried: the second attempt goes through.
        local other <close> = loam.connect(backend.url)
        local runs = 0
        db:transaction({ isolation = "serializable", retry = { attempts = 3, base_ms = 1 } },
          function()
            runs = runs + 1
            local c = Counter:where { id = 1 }:first()
            if runs == 1 then other:exec("update txb_counters set hits = hits + 100") end
            c.hits = c.hits + 1
            c:save()
          end)
        assert.are.equal(2, runs)
        assert.are.equal(101, Counter:find(1).hits)
      end
    end)
  end)
end
