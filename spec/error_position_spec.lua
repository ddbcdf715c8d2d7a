-- spec/error_position_spec.lua: an error raised anywhere below a model,
-- instance or query method (here the database's own, a missing table)
-- names the line of the program that called the method, whether the
-- method is called plainly, straight through 'pcall', or in a coroutine;
-- and the statement that failed changed nothing.

local loam = require "loam"
local core = require "loam.core"
local helper = require "spec.helper"

local SRC = debug.getinfo(1, "S").short_src

-- The line that calls it; each case below records it on the line of the
-- call it makes.
local at
local function here()
  at = debug.getinfo(2, "l").currentline
end

local function position()
  return SRC .. ":" .. at .. ": "
end

for backend in helper.each_backend() do
  describe(backend.label .. ": error positions", function()
    local db, Item, item, q

    before_each(function()
      db = helper.connect(backend)
      helper.drop_tables(db, { "pos_items" })
      Item = db:model("pos_items", {
        loam.id(),
        loam.text("email", { null = false, unique = true }),
        loam.integer("n"),
      })
      loam.create_tables(db, { Item })
      item = Item:create{ email = "a@example.com", n = 1 }
      q = Item:where{ n = 1 }
    end)

    after_each(function()
      helper.finish(db, { "pos_items" })
    end)

    -- Each case: the method's name, a function making the call on one line
    -- (recording that line), and the function and arguments for calling
    -- it straight through 'pcall'.
    local function cases()
      local list = {
        { "create", function() here(); Item:create{ email = "b@example.com" } end,
          function() return Item.create, Item, { email = "b@example.com" } end },
        { "find", function() here(); Item:find(1) end,
          function() return Item.find, Item, 1 end },
        { "find_by", function() here(); Item:find_by{ email = "a@example.com" } end,
          function() return Item.find_by, Item, { email = "a@example.com" } end },
        { "insert_many", function() here(); Item:insert_many{ { email = "c@example.com" } } end,
          function() return Item.insert_many, Item, { { email = "c@example.com" } } end },
        { "insert_many of rows read in C", function() here(); Item:insert_many{ { email = "c@example.com" }, { email = "e@example.com" }, { email = "f@example.com" } } end,
          function() return Item.insert_many, Item, { { email = "c@example.com" }, { email = "e@example.com" }, { email = "f@example.com" } } end },
        { "upsert", function() here(); Item:upsert({ email = "d@example.com" }, { conflict = { "email" } }) end,
          function() return Item.upsert, Item, { email = "d@example.com" }, { conflict = { "email" } } end },
        { "save", function() here(); item.n = 2; item:save() end,
          function() item.n = 2; return item.save, item end },
        { "update", function() here(); item:update{ n = 3 } end,
          function() return item.update, item, { n = 3 } end },
        { "delete", function() here(); item:delete() end,
          function() return item.delete, item end },
        { "reload", function() here(); item:reload() end,
          function() return item.reload, item end },
        { "all", function() here(); q:all() end,
          function() return q.all, q end },
        { "first", function() here(); q:first() end,
          function() return q.first, q end },
        { "count", function() here(); q:count() end,
          function() return q.count, q end },
        { "each", function() here(); for _ in q:each() do end end,
          function() return q.each, q end },
        { "paginate", function() here(); q:paginate{ order = { "id" }, limit = 2 } end,
          function() return q.paginate, q, { order = { "id" }, limit = 2 } end },
        { "update_all", function() here(); q:update_all{ n = 4 } end,
          function() return q.update_all, q, { n = 4 } end },
        { "delete_all", function() here(); q:delete_all() end,
          function() return q.delete_all, q end },
      }
      return list
    end

    -- The table goes away behind the model's back, so every statement of
    -- the methods above fails in the database.
    local function drop()
      db:exec("drop table pos_items")
    end

    local function check_missing(err)
      assert.are.equal("undefined_table", err.code)
      assert.matches("pos_items", err.message, 1, true)
      assert.are.equal(position(), err.where)
      assert.are.equal(position() .. "loam.undefined_table: " .. err.message
        .. (err.sqlstate and " (SQLSTATE " .. err.sqlstate .. ")" or ""), tostring(err))
    end

    for _, c in ipairs(cases()) do
      local name, direct = c[1], c[2]

      it(name .. " names the calling line", function()
        drop()
        at = nil
        check_missing(helper.catch(direct))
      end)

      it(name .. " names the line calling pcall when called straight through it", function()
        drop()
        local call = table.pack(c[3]())
        at = nil
        local ok, err = pcall(table.unpack(call, 1, call.n)); here()
        check_missing(helper.caught(ok, err))
      end)

      it(name .. " names the calling line inside a coroutine", function()
        drop()
        at = nil
        local co = coroutine.create(direct)
        check_missing(helper.caught(coroutine.resume(co)))
        assert.are.equal("dead", coroutine.status(co))
      end)
    end

    it("a unique violation in create names the calling line and adds no row", function()
      local err = helper.catch(function() here(); Item:create{ email = "a@example.com" } end)
      assert.are.equal("unique_violation", err.code)
      assert.are.equal(position(), err.where)
      assert.are.equal(1, Item:count())
    end)

    it("create_tables on a table that exists names the calling line and creates nothing",
       function()
      local Other = db:model("pos_others", { loam.id() })
      local err = helper.catch(function() here(); loam.create_tables(db, { Other, Item }) end)
      assert.are.equal(position(), err.where)
      assert.matches("pos_items", err.message, 1, true)
      -- One transaction: the table made before the failure is gone too.
      assert.are.equal("undefined_table",
        helper.catch(db.query, db, "select * from pos_others").code)
      assert.are.equal(1, Item:count())
    end)

    it("create_tables and drop_tables on a closed database name the calling line",
       function()
      db:close()
      local err = helper.catch(function() here(); loam.drop_tables(db, { Item }) end)
      assert.are.equal("misuse", err.code)
      assert.matches("closed database", err.message, 1, true)
      assert.are.equal(position(), err.where)
      local ok
      ok, err = pcall(loam.create_tables, db, { Item }); here()
      err = helper.caught(ok, err)
      assert.are.equal("misuse", err.code)
      assert.are.equal(position(), err.where)
      local co = coroutine.create(function() here(); loam.drop_tables(db, { Item }) end)
      err = helper.caught(coroutine.resume(co))
      assert.are.equal(position(), err.where)
    end)

    it("an error under 'return db:query(...)' names the line of that function", function()
      -- The Database's methods are the core's C functions: a tail call of
      -- one keeps the caller's frame, so its line stays in 'where'.
      local function lookup(sql) here(); return db:query(sql) end
      local err = helper.catch(lookup, "select * from pos_others")
      assert.are.equal("undefined_table", err.code)
      assert.are.equal(position(), err.where)
      err = helper.catch(function() here(); return db:exec("select * from pos_others") end)
      assert.are.equal("undefined_table", err.code)
      assert.are.equal(position(), err.where)
      err = helper.catch(function() here(); return db:each(42) end)
      assert.are.equal("bad argument #1 to 'each' (string expected, got number)", err.message)
      assert.are.equal(position(), err.where)
      db:close()
      err = helper.catch(function() here(); return db:query("select 1") end)
      assert.are.equal("attempt to use a closed database (db:reconnect() opens it again)",
        err.message)
      assert.are.equal(position(), err.where)
    end)

    it("a failed statement leaves the table as it was", function()
      Item:create{ email = "b@example.com", n = 1 }
      local err = helper.catch(function() here(); q:update_all{ email = "a@example.com" } end)
      assert.are.equal("unique_violation", err.code)
      assert.are.equal(position(), err.where)
      assert.are.same({ "a@example.com", "b@example.com" },
        Item:order_by("id"):pluck("email"))
    end)

    it("errors of loam's own checks keep naming the calling line", function()
      local err = helper.catch(function() here(); Item:where{ nope = 1 }:all() end)
      assert.are.equal("misuse", err.code)
      assert.are.equal(position(), err.where)
    end)

    it("keeps the traceback of the raise (nothing catches and re-raises in between)",
       function()
      drop()
      local trace
      local ok = xpcall(function() Item:create{ email = "b@example.com" } end,
        function(e) trace = debug.traceback(tostring(e), 2) return e end)
      assert.is_false(ok)
      -- The raise happened in loam's model module, below the user's call.
      assert.matches("loam[/\\]model%.lua:%d+: in", trace)
    end)

    it("loam.core.where names the first frame outside loam and its level", function()
      local pos, level = core.where(); here()
      assert.are.equal(position(), pos)
      assert.are.equal(1, level)
      local function callee() return core.where(2) end
      pos, level = callee(); here()
      assert.are.equal(position(), pos)
      assert.are.equal(2, level)
      -- Past the top of the stack there is no such frame.
      assert.are.same({ "", nil }, { core.where(1000) })
      local err = helper.catch(core.where, "x")
      assert.are.equal("misuse", err.code)
      assert.matches("bad argument #1 to 'where'", err.message, 1, true)
    end)
  end)
end
