-- spec/prepared_spec.lua: db:prepare(ast [, opts]), a statement rendered
-- once and kept in C: run and each with new values bound into its slots,
-- the text and values it was rendered with, the statement cache it shares
-- with db:query, and its misuse: a wrong parameter count, a closed
-- connection, use after close, and '<close>'.

local loam = require "loam"
local helper = require "spec.helper"

local null = loam.null
local catch = helper.catch

local function col(name) return { k = "col", name = name } end
local function val(v) return { k = "val", v = v } end
local function op(o, l, r) return { k = "op", op = o, l = l, r = r } end

local function by_name(name)
  return { k = "select", columns = { col("n") }, from = { name = "preps" },
           where = op("=", col("name"), val(name)) }
end

for backend in helper.each_backend() do
  describe(backend.label .. ": db:prepare", function()
    local db

    before_each(function()
      db = helper.connect(backend)
      helper.table(db, "preps", "id integer primary key, name text not null, n integer",
        "id bigserial primary key, name text not null, n bigint")
      db:exec("insert into preps (name, n) values ('a', 1), ('b', 2), ('c', NULL)")
    end)

    after_each(function()
      db:close()
    end)

    it("keys its rows by the names the columns have when it runs", function()
      local p = db:prepare { k = "select", columns = { { k = "star" } }, from = { name = "preps" },
                             where = op("=", col("name"), val("a")) }
      assert.are.same({ { id = 1, name = "a", n = 1 } }, p:run())
      assert.are.same({ { id = 2, name = "b", n = 2 } }, p:run("b"))
      db:exec("alter table preps rename column n to m")
      -- PostgreSQL may refuse a cached plan whose result changed; it never gives the old name.
      local ok, rows = pcall(p.run, p, "a")
      if ok then
        assert.are.same({ { id = 1, name = "a", m = 1 } }, rows)
      else
        assert.are.equal("loam.Error", getmetatable(rows).__name)
      end
    end)

    it("runs with the rendered values, or with new ones bound in their place", function()
      local p = db:prepare(by_name("a"))
      assert.are.same({ { n = 1 } }, p:run())
      assert.are.same({ { n = 2 } }, p:run("b"))
      assert.are.same({ { n = null } }, p:run("c"))
      assert.are.same({}, p:run("z"))
      assert.are.same({ { n = 1 } }, p:run())
      assert.are.equal("loam.Prepared (open)", tostring(p))
    end)

    it("gives the first row, or nil, with first", function()
      local p = db:prepare(by_name("a"))
      assert.are.same({ n = 1 }, p:first())
      assert.are.same({ n = 2 }, p:first("b"))
      assert.are.same({ n = null }, p:first("c"))
      assert.is_nil(p:first("z"))
      assert.are.same({ { n = 1 } }, p:run())  -- the statement runs again after first
      local upd = db:prepare { k = "update", table = "preps", set = { { col = "n", expr = val(7) } },
                               where = op("=", col("name"), val("zz")) }
      local ok, err = pcall(upd.first, upd)
      assert.is_false(ok)
      assert.are.equal("misuse", err.code)
      assert.matches("first: the statement returns no rows; use run", err.message, 1, true)
      p:close()
      ok, err = pcall(p.first, p)
      assert.is_false(ok)
      assert.matches("closed prepared statement", err.message, 1, true)
    end)

    it("keeps the text and values of db:render", function()
      local st = db:render(by_name("a"))[1]
      local sql, params = db:prepare(by_name("a")):sql()
      assert.are.equal(st.sql, sql)
      assert.are.same(st.params, params)
    end)

    it("gives changes and id for a statement without rows", function()
      local p = db:prepare { k = "update", table = "preps", set = { { col = "n", expr = val(7) } },
                             where = op("=", col("name"), val("a")) }
      assert.are.equal(1, (p:run()))
      assert.are.equal(1, (p:run(8, "b")))
      assert.are.equal(0, (p:run(9, "z")))
      assert.are.same({ { n = 7 }, { n = 8 } },
        db:query("select n from preps where name in ('a', 'b') order by name"))
    end)

    it("streams with each, and a break finalizes the statement", function()
      local p = db:prepare { k = "select", columns = { col("name") }, from = { name = "preps" },
                             where = op(">", col("id"), val(0)), order = { { expr = col("id") } } }
      local seen = {}
      for row in p:each() do seen[#seen + 1] = row.name end
      assert.are.same({ "a", "b", "c" }, seen)
      for row in p:each(1) do seen[#seen + 1] = row.name break end
      assert.are.same({ "a", "b", "c", "b" }, seen)
      assert.are.same({ { name = "c" } }, p:run(2))
    end)

    it("streams the rows of each as instances of a shape whose fields are its columns",
      function()
        local p = db:prepare { k = "select", columns = { col("id"), col("name") },
                               from = { name = "preps" }, where = op(">", col("id"), val(0)),
                               order = { { expr = col("id") } } }
        local meta = { __name = "shaped" }
        p:instances { meta, 3, { "id", "name" }, "\0state" }
        local rows = {}
        for row in p:each() do rows[#rows + 1] = row end
        assert.are.equal(3, #rows)
        assert.are.equal(meta, getmetatable(rows[3]))
        assert.are.same({ 2, "b" }, rawget(rows[2], "\0state"))
        assert.are.equal("c", rows[3].name)
        -- run and first read plain rows
        assert.is_nil(getmetatable(p:run()[1]))
        assert.is_nil(getmetatable(p:first()))
        -- a shape whose fields are not the columns gives plain rows
        p:instances { meta, 3, { "id", "n" }, "\0state" }
        rows = {}
        for row in p:each(1) do
          assert.is_nil(getmetatable(row))
          rows[#rows + 1] = row
        end
        assert.are.same({ { id = 2, name = "b" }, { id = 3, name = "c" } }, rows)
        p:instances(nil)
        for row in p:each(2) do assert.are.same({ id = 3, name = "c" }, row) end
        local err = catch(function() return p:instances(5) end)
        assert.are.equal("misuse", err.code)
        assert.are.equal("instances: the shape must be a table or nil, not a number", err.message)
      end)

    it("runs through the connection's statement cache", function()
      local p = db:prepare(by_name("a"))
      local before = db:cached_statements()
      p:run("a")
      p:run("b")
      assert.are.equal(before + 1, db:cached_statements())
      db:query(p:sql(), { "c" })
      assert.are.equal(before + 1, db:cached_statements())
    end)

    it("raises misuse for a wrong parameter count, and runs nothing", function()
      local p = db:prepare(by_name("a"))
      local err = catch(function() return p:run("a", "b") end)
      assert.are.equal("misuse", err.code)
      assert.are.equal("run: the statement takes 1 parameter(s), got 2", err.message)
      err = catch(function() return p:each("a", "b") end)
      assert.are.equal("each: the statement takes 1 parameter(s), got 2", err.message)
      local u = db:prepare { k = "update", table = "preps", set = { { col = "n", expr = val(7) } },
                             where = op("=", col("name"), val("a")) }
      err = catch(function() return u:run(5) end)
      assert.are.equal("run: the statement takes 2 parameter(s), got 1", err.message)
      assert.are.same({ { n = 1 } }, db:query("select n from preps where name = 'a'"))
      err = catch(function() return p:run({}) end)
      assert.are.equal("misuse", err.code)
    end)

    it("refuses a statement that renders as several", function()
      local rows = {}
      for i = 1, 5 do rows[i] = { "x" .. i, i } end
      local err = catch(db.prepare, db, { k = "insert", into = "preps", columns = { "name", "n" },
                                          rows = rows }, { max_params = 4 })
      assert.are.equal("misuse", err.code)
      assert.are.equal("prepare: the statement renders as 3 statements; run it with db:run",
        err.message)
      err = catch(db.prepare, db, { k = "select", from = {} })
      assert.are.equal("misuse", err.code)
    end)

    it("raises misuse on a closed connection, and keeps the connection alive", function()
      local other = helper.connect(backend)
      local p = other:prepare { k = "select", columns = { { k = "alias", expr = val(1), as = "one" } } }
      other = nil  -- luacheck: ignore
      collectgarbage()
      collectgarbage()
      assert.are.same({ { one = 1 } }, p:run())
      local q = db:prepare(by_name("a"))
      db:close()
      local err = catch(function() return q:run() end)
      assert.are.equal("misuse", err.code)
      assert.are.equal("attempt to use a closed connection", err.message)
      err = catch(function() return q:each("a") end)
      assert.are.equal("attempt to use a closed connection", err.message)
      err = catch(db.prepare, db, by_name("a"))
      assert.are.equal("attempt to use a closed database (db:reconnect() opens it again)", err.message)
      db = helper.connect(backend)
    end)

    it("raises misuse on use after close; closing again is fine", function()
      local p = db:prepare(by_name("a"))
      assert.is_true(p:close())
      assert.is_true(p:close())
      assert.are.equal("loam.Prepared (closed)", tostring(p))
      for _, call in ipairs {
        function() return p:run() end,
        function() return p:run("a") end,
        function() return p:each() end,
        function() return p:sql() end,
      } do
        local err = catch(call)
        assert.are.equal("misuse", err.code)
        assert.are.equal("attempt to use a closed prepared statement", err.message)
      end
    end)

    it("closes as a to-be-closed variable, on leaving and on an error", function()
      local kept
      do
        local p <close> = db:prepare(by_name("a"))
        kept = p
        assert.are.same({ { n = 1 } }, p:run())
      end
      assert.are.equal("loam.Prepared (closed)", tostring(kept))
      local ok = pcall(function()
        local p <close> = db:prepare(by_name("a"))
        kept = p
        error("leaving")
      end)
      assert.is_false(ok)
      assert.are.equal("loam.Prepared (closed)", tostring(kept))
    end)
  end)
end
