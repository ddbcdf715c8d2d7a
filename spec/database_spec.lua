-- spec/database_spec.lua: the Database that loam.connect returns: its type
-- and methods, the connection it hands out, reconnecting (after a backend
-- killed by the server on PostgreSQL, after a close on SQLite), models,
-- relations, prepared statements and tracking that outlive a connection,
-- transactions, and the errors of a closed Database.

local loam = require "loam"
local core = require "loam.core"
local helper = require "spec.helper"

local catch = helper.catch
local next_line = helper.next_line

local CLOSED = "attempt to use a closed database (db:reconnect() opens it again)"

-- The methods the core gives a connection, and no others.
local CONN_METHODS = {
  "after_commit", "after_rollback", "backend", "cached_statements", "close", "each", "exact_numeric",
  "exec", "hold", "insert_rows",
  "introspect", "load_batch",
  "on_query", "prepare", "query", "render", "render_ddl", "run", "stats", "table_exists",
  "transaction", "transaction_status", "writes",
}

-- Customers and their orders, declared once for every connection the
-- Database will have.
local function declare(db)
  local Customer = db:model("db_customers", {
    loam.id(),
    loam.text("name", { null = false }),
  })
  local Order = db:model("db_orders", {
    loam.id(),
    loam.integer("customer_id", { references = Customer, null = false }),
    loam.integer("total", { null = false }),
  })
  Order:belongs_to("customer", Customer, { inverse = "orders" })
  Customer:has_many("orders", Order, { inverse = "customer" })
  return Customer, Order
end

-- Runs every kind of model operation and checks what it gives; 'tag'
-- makes the rows of each round differ.
local function exercise(db, Customer, Order, tag, q, by_total)
  local c = Customer:create { name = "ada" .. tag }
  local o = Order:create { customer_id = c.id, total = 10 }
  assert.are.equal("ada" .. tag, Customer:find(c.id).name)
  assert.are.equal("ada" .. tag, Customer:find(c.id).name)  -- prepared by now
  o.total = 11
  o:save()
  assert.are.equal(11, Order:find(o.id).total)
  local orders = Order:where { customer_id = c.id }:include("customer"):all()
  assert.are.equal(1, #orders)
  assert.are.equal("ada" .. tag, orders[1].customer.name)
  -- A lazy load, as the Database's default says.
  local lazy = Customer:where { id = c.id }:all()
  assert.are.equal(11, lazy[1].orders[1].total)
  -- Queries kept in variables run on the connection of the moment.
  assert.are.equal(q:count(), q:count())
  assert.are.equal(#by_total:all(), #by_total:all())
  local report = db:track(function()
    for _, x in ipairs(Order:all()) do local _ = Customer:find(x.customer_id) end
  end)
  assert.is_true(report.queries >= 2)
  return c, o
end

describe("the Database", function()
  it("is what loam.connect returns, with the connection's methods and its own", function()
    local db = loam.connect("sqlite::memory:")
    assert.are.equal("loam.Database", getmetatable(db).__name)
    assert.are.equal("loam.Database (sqlite)", tostring(db))
    for _, name in ipairs(CONN_METHODS) do
      assert.are.equal("function", type(db[name]), name)
    end
    for _, name in ipairs { "model", "table", "create_tables", "drop_tables", "lazy_loading",
                            "track", "track_reset", "budget", "reconnect", "connection" } do
      assert.are.equal("function", type(db[name]), name)
    end
    local conn = db:connection()
    assert.are.equal("loam.Conn (sqlite)", tostring(conn))
    assert.are.equal(conn, db:connection())
    assert.are.equal(1, db:query("select 1 as one")[1].one)
    assert.is_true(db:close())
    assert.are.equal("loam.Conn (closed)", tostring(conn))
    assert.are.equal("loam.Database (closed)", tostring(db))
  end)

  it("leaves the connection's metatable with the core's methods only", function()
    loam.connect("sqlite::memory:"):close()  -- every Lua module is loaded by now
    local names = {}
    for name, f in pairs(core.Conn) do
      names[#names + 1] = name
      assert.are.equal("C", debug.getinfo(f, "S").what, name)
    end
    table.sort(names)
    assert.are.same(CONN_METHODS, names)
  end)

  it("refuses a method called on something that is no Database", function()
    local db = loam.connect("sqlite::memory:")
    local err = catch(db.exec, {}, "select 1")
    assert.are.equal("misuse", err.code)
    assert.are.equal("bad argument #1 to 'exec' (loam.Database expected, got table)",
      err.message)
    err = catch(db.reconnect, db:connection())
    assert.are.equal("bad argument #1 to 'reconnect' (loam.Database expected, got loam.Conn)",
      err.message)
    db:close()
  end)

  it("counts arguments as written when the connection refuses them", function()
    local db = loam.connect("sqlite::memory:")
    local err = catch(function() return db:query(42) end)
    assert.are.equal("bad argument #1 to 'query' (string expected, got number)", err.message)
    err = catch(function() return db:each(42) end)
    assert.are.equal("bad argument #1 to 'each' (string expected, got number)", err.message)
    db:close()
  end)

  it("reports a reconnect that fails, stays closed, and opens once it can", function()
    local dir = helper.tmpname("-dir")
    assert(os.execute("mkdir -p " .. dir))
    local db = loam.connect("sqlite:" .. dir .. "/app.db")
    db:exec("create table t (x integer)")
    assert(os.execute("rm -rf " .. dir))
    local err = catch(db.reconnect, db)
    assert.are.equal("connection_failed", err.code)
    assert.matches(dir .. "/app.db", err.message, 1, true)
    assert.are.equal("loam.Database (closed)", tostring(db))
    assert.are.equal(CLOSED, catch(db.query, db, "select 1").message)
    assert(os.execute("mkdir -p " .. dir))
    assert.are.equal(db, db:reconnect())
    assert.is_false(db:table_exists("t"))
    db:close()
    os.execute("rm -rf " .. dir)
  end)
end)

for backend, pg in helper.each_backend() do
  describe(backend.label .. ": the Database", function()
    local db

    before_each(function()
      db = helper.connect(backend)
      helper.drop_tables(db, { "db_orders", "db_customers" })
    end)

    after_each(function()
      if tostring(db) == "loam.Database (closed)" then db:reconnect() end
      helper.finish(db, { "db_orders", "db_customers" })
    end)

    it("reconnects with a new connection, closing the old one", function()
      local old = db:connection()
      assert.are.equal(db, db:reconnect())
      assert.are.equal("loam.Conn (closed)", tostring(old))
      assert.are_not.equal(old, db:connection())
      assert.are.equal("loam.Database (" .. backend.name .. ")", tostring(db))
      db:close()
      assert.are.equal(db, db:reconnect())
      assert.are.equal(1, db:query("select 1 as one")[1].one)
    end)

    it("keeps the options it was opened with", function()
      db:close()
      db = helper.connect(backend, { statement_cache = 0 })
      db:query("select 1 as one")
      db:reconnect()
      db:query("select 1 as one")
      assert.are.equal(0, db:cached_statements())
    end)

    it("runs the same models, relations, queries and tracking after the connection died",
       function()
      local Customer, Order = declare(db)
      db:create_tables { Customer, Order }
      db:lazy_loading(true)
      local q = Order:where { total = 11 }
      local by_total = Order:order_by("total")
      local seen = {}
      db:on_query(function(ev) seen[#seen + 1] = ev.sql end)
      local c1 = exercise(db, Customer, Order, "1", q, by_total)
      if pg then
        -- The server ends the backend; the connection learns it on next use.
        local pid = db:query("select pg_backend_pid() as pid")[1].pid
        local admin = helper.connect(backend)
        admin:query("select pg_terminate_backend(?) as ok", { pid })
        admin:close()
        local err = catch(Customer.find, Customer, c1.id)
        assert.are.equal("connection_failed", err.code)
      else
        db:close()
        assert.are.equal(CLOSED, catch(Customer.find, Customer, c1.id).message)
      end
      db:reconnect()
      if backend.memory then
        -- A new in-memory database is empty: the same models make it again.
        db:create_tables { Customer, Order }
      else
        assert.are.equal(c1.name, Customer:find(c1.id).name)
      end
      local before = #seen
      local c2 = exercise(db, Customer, Order, "2", q, by_total)
      assert.are.equal("ada2", c2.name)
      assert.is_true(#seen > before)  -- the hook came along
      assert.are.equal(backend.memory and 1 or 2, Customer:count())
    end)

    it("keeps the Database-wide detector across a reconnect", function()
      local Customer, Order = declare(db)
      db:create_tables { Customer, Order }
      local logged = {}
      db:track { mode = "warn", threshold = 2, log = function(m) logged[#logged + 1] = m end }
      db:reconnect()
      if backend.memory then db:create_tables { Customer, Order } end
      local c = Customer:create { name = "ada" }
      for _ = 1, 3 do Customer:find(c.id) end
      assert.are.equal(1, #logged)
      db:track(false)
    end)

    it("runs model statements inside a transaction on the transaction's connection", function()
      local Customer, Order = declare(db)
      db:create_tables { Customer, Order }
      local conn = db:connection()
      local ok, err = pcall(function()
        db:transaction(function()
          assert.are.equal(conn, db:connection())
          local c = Customer:create { name = "ada" }
          Order:create { customer_id = c.id, total = 5 }
          assert.are.equal(1, Order:where { customer_id = c.id }:count())
          db:transaction(function()
            assert.are.equal(conn, db:connection())
            Customer:create { name = "bob" }
          end)
          error({ code = "undo" })
        end)
      end)
      assert.is_false(ok)
      assert.are.equal("undo", err.code)
      assert.are.equal(0, Customer:count())
      assert.are.equal(0, Order:count())
      assert.are.equal("cy!", db:transaction(function()
        return Customer:create { name = "cy" }.name .. "!"
      end))
      assert.are.equal(1, Customer:count())
    end)

    it("refuses to reconnect inside a transaction, and the transaction goes on", function()
      local Customer = declare(db)
      db:create_tables { Customer }
      local conn = db:connection()
      db:transaction(function()
        Customer:create { name = "ada" }
        local line = next_line()
        local err = helper.caught(pcall(db.reconnect, db))
        assert.are.equal("misuse", err.code)
        assert.are.equal("reconnect: not inside a transaction (it would end the transaction's "
          .. "connection under it)", err.message)
        assert.are.equal("spec/database_spec.lua:" .. line .. ": ", err.where)
      end)
      assert.are.equal(conn, db:connection())
      assert.are.equal(1, Customer:count())
      db:reconnect()  -- the transaction is over: allowed again
    end)

    it("stays closed when a transaction's function closes it", function()
      local err = helper.caught(pcall(db.transaction, db, function() db:close() end))
      assert.are.equal("misuse", err.code)
      assert.are.equal("the connection was closed inside the transaction; nothing was committed",
        err.message)
      assert.are.equal("loam.Database (closed)", tostring(db))
      assert.are.equal(CLOSED, helper.caught(pcall(db.connection, db)).message)
      db:reconnect()
      assert.are.equal(1, db:query("select 1 as one")[1].one)
    end)

    it("refuses every use once closed, naming the calling line", function()
      local Customer, Order = declare(db)
      db:create_tables { Customer, Order }
      local q = Order:where { total = 1 }
      db:close()
      for _, call in ipairs {
        function() local _ = db:query("select 1") end,
        function() local _ = db:exec("select 1") end,
        function() local _ = db:each("select 1") end,
        function() local _ = db:run { k = "select", from = { name = "db_orders" } } end,
        function() local _ = db:render { k = "select", from = { name = "db_orders" } } end,
        function() local _ = db:prepare { k = "select", from = { name = "db_orders" } } end,
        function() local _ = db:transaction(function() end) end,
        function() local _ = db:connection() end,
        function() local _ = db:backend() end,
        function() local _ = db:model("db_more", { loam.id() }) end,
        function() local _ = Customer:find(1) end,
        function() local _ = Customer:create { name = "ada" } end,
        function() local _ = q:all() end,
        function() local _ = db:table("db_orders"):count() end,
        function() local _ = db:track(function() end) end,
      } do
        local line = debug.getinfo(call, "S").linedefined
        local err = helper.caught(pcall(call))
        assert.are.equal("misuse", err.code)
        assert.are.equal(CLOSED, err.message)
        assert.are.equal("spec/database_spec.lua:" .. line .. ": ", err.where)
      end
      assert.is_true(db:close())  -- closing again is fine
    end)
  end)
end
