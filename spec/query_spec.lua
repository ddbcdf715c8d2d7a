-- spec/query_spec.lua: query, exec and each on every backend: parameters of
-- every type, typed results, generated ids, and streaming that always
-- finalizes its statement.

local loam = require "loam"
local helper = require "spec.helper"

-- A table with one column of each kind, in each dialect.
local TYPES_SQLITE = "id integer primary key, i integer, f real, b boolean, "
  .. "t text, bl blob, n integer"
local TYPES_PG = "id bigserial primary key, i bigint, f double precision, b boolean, "
  .. "t text, bl bytea, n bigint"

local function count_to(backend, n)
  if backend.name == "postgres" then
    return "select g as n from generate_series(1, " .. n .. ") as g"
  end
  return "with recursive c(n) as (select 1 union all select n + 1 from c where n < "
    .. n .. ") select n from c"
end

for backend, pg in helper.each_backend() do
  describe(backend.label .. ":", function()
    local db

    before_each(function()
      db = helper.connect(backend)
      helper.table(db, "vals", TYPES_SQLITE, TYPES_PG)
    end)

    after_each(function()
      db:close()
    end)

    it("returns an empty array when there are no rows", function()
      assert.are.same({}, db:query("select * from vals"))
    end)

    it("binds and returns values of every type", function()
      local text = "héllo wörld ✓ 日本語"
      local bytes = "a\0b\255\0"
      db:exec("insert into vals (i, f, b, t, bl, n) values (?, ?, ?, ?, ?, ?)",
        { 42, 2.5, true, text, loam.blob(bytes), loam.null })
      db:exec("insert into vals (i, f, b, t, bl, n) values (?, ?, ?, ?, ?, ?)",
        { -7, -0.125, false, "", loam.blob(""), 3 })
      local rows = db:query("select i, f, b, t, bl, n from vals order by id")
      assert.are.equal(2, #rows)
      local r = rows[1]
      assert.are.equal(42, r.i)
      assert.are.equal("integer", math.type(r.i))
      assert.are.equal(2.5, r.f)
      assert.are.equal("float", math.type(r.f))
      assert.are.equal(true, r.b)
      assert.are.equal(text, r.t)
      assert.are.equal(bytes, r.bl)
      assert.are.equal(loam.null, r.n)
      assert.is_true(loam.isnull(r.n))
      r = rows[2]
      assert.are.same({ i = -7, f = -0.125, b = false, t = "", bl = "", n = 3 }, r)
    end)

    it("keeps the key of a NULL column", function()
      db:exec("insert into vals (i) values (?)", { loam.null })
      local r = db:query("select i, t from vals")[1]
      local keys = {}
      for k in pairs(r) do keys[#keys + 1] = k end
      table.sort(keys)
      assert.are.same({ "i", "t" }, keys)
      assert.are.equal(loam.null, r.i)
      assert.are.equal(loam.null, r.t)
    end)

    it("keeps 64-bit integers exact", function()
      db:exec("insert into vals (i) values (?)", { math.maxinteger })
      db:exec("insert into vals (i) values (?)", { math.mininteger })
      db:exec("insert into vals (i) values (?)", { 9007199254740993 })  -- 2^53 + 1
      local rows = db:query("select i from vals order by id")
      assert.are.equal(math.maxinteger, rows[1].i)
      assert.are.equal(math.mininteger, rows[2].i)
      assert.are.equal(9007199254740993, rows[3].i)
      assert.are.equal("integer", math.type(rows[1].i))
      local r = db:query("select i from vals where i = ?", { math.maxinteger })
      assert.are.equal(1, #r)
    end)

    it("returns floats as floats", function()
      for _, v in ipairs { 0.1, -1e300, 1e-300, 3.0 } do
        db:exec("insert into vals (f) values (?)", { v })
      end
      local rows = db:query("select f from vals order by id")
      assert.are.same({ { f = 0.1 }, { f = -1e300 }, { f = 1e-300 }, { f = 3.0 } }, rows)
      assert.are.equal("float", math.type(rows[4].f))
    end)

    it("returns booleans as booleans", function()
      db:exec("insert into vals (b) values (?)", { true })
      db:exec("insert into vals (b) values (?)", { false })
      local rows = db:query("select b from vals where b = ? order by id", { true })
      assert.are.same({ { b = true } }, rows)
      rows = db:query("select b from vals order by id")
      assert.are.same({ { b = true }, { b = false } }, rows)
    end)

    it("leaves '?' inside string literals alone", function()
      local r = db:query("select '?' as q, 'a ? b' as q2, cast(? as integer) as v", { 7 })[1]
      assert.are.same({ q = "?", q2 = "a ? b", v = 7 }, r)
    end)

    if pg then
      it("takes $n placeholders", function()
        local r = db:query("select cast($2 as integer) - cast($1 as integer) as d", { 1, 10 })[1]
        assert.are.equal(9, r.d)
      end)
    end

    it("names columns as the statement does", function()
      local r = db:query("select 1 as \"Mixed Case\", 2 as lower")[1]
      assert.are.same({ ["Mixed Case"] = 1, lower = 2 }, r)
    end)

    it("returns changes and the generated id from exec", function()
      local changes, id = db:exec("insert into vals (t) values (?) returning id", { "a" })
      assert.are.equal(1, changes)
      assert.are.equal("integer", math.type(id))
      local changes2, id2 = db:exec("insert into vals (t) values (?) returning id", { "b" })
      assert.are.equal(1, changes2)
      assert.are.equal(id + 1, id2)
      assert.are.equal("a", db:query("select t from vals where id = ?", { id })[1].t)
    end)

    it("returns a RETURNING value of any type as the id", function()
      local changes, t = db:exec("insert into vals (t) values (?) returning t", { "x-1" })
      assert.are.equal(1, changes)
      assert.are.equal("x-1", t)
    end)

    if pg then
      it("returns no id for an INSERT without RETURNING", function()
        local changes, id = db:exec("insert into vals (t) values ('a')")
        assert.are.equal(1, changes)
        assert.is_nil(id)
      end)
    else
      it("returns the rowid for an INSERT without RETURNING", function()
        local changes, id = db:exec("insert into vals (t) values ('a')")
        assert.are.equal(1, changes)
        assert.are.equal(1, id)
        changes, id = db:exec("insert into vals (t) values ('b')")
        assert.are.equal(2, id)
      end)
    end

    it("returns the rows changed by UPDATE and DELETE, and no id", function()
      for i = 1, 5 do
        db:exec("insert into vals (i) values (?)", { i })
      end
      local changes, id = db:exec("update vals set t = 'big' where i > ?", { 2 })
      assert.are.equal(3, changes)
      assert.is_nil(id)
      changes = db:exec("delete from vals where t = ?", { "big" })
      assert.are.equal(3, changes)
      changes = db:exec("update vals set t = 'none' where i > 100")
      assert.are.equal(0, changes)
      assert.are.equal(2, helper.count(db, "vals"))
    end)

    it("takes many parameters", function()
      local params, marks = {}, {}
      for i = 1, 40 do
        params[i] = i
        marks[i] = "cast(? as integer) as c" .. i
      end
      local r = db:query("select " .. table.concat(marks, ", "), params)[1]
      for i = 1, 40 do
        assert.are.equal(i, r["c" .. i])
      end
    end)

    describe("each", function()
      it("streams many rows", function()
        local n, sum = 0, 0
        for row in db:each(count_to(backend, 10000)) do
          n = n + 1
          sum = sum + row.n
        end
        assert.are.equal(10000, n)
        assert.are.equal(10000 * 10001 // 2, sum)
      end)

      it("binds parameters and builds rows like query", function()
        db:exec("insert into vals (i, t, n) values (?, ?, ?)", { 1, "one", loam.null })
        db:exec("insert into vals (i, t, n) values (?, ?, ?)", { 2, "two", 5 })
        local rows = {}
        for row in db:each("select i, t, n from vals where i >= ? order by i", { 1 }) do
          rows[#rows + 1] = row
        end
        assert.are.same(db:query("select i, t, n from vals order by i"), rows)
        assert.are.equal(loam.null, rows[1].n)
      end)

      it("finalizes the statement when the rows run out", function()
        local iter, state, ctl, stmt = db:each("select 1 as one")
        assert.are.equal("loam.Stmt (open)", tostring(stmt))
        for _ in iter, state, ctl, stmt do end
        assert.are.equal("loam.Stmt (closed)", tostring(stmt))
        assert.are.equal(1, db:query("select 1 as one")[1].one)
      end)

      it("finalizes the statement on break", function()
        local iter, state, ctl, stmt = db:each(count_to(backend, 10000))
        local n = 0
        for row in iter, state, ctl, stmt do
          n = n + 1
          if row.n == 5 then break end
        end
        assert.are.equal(5, n)
        assert.are.equal("loam.Stmt (closed)", tostring(stmt))
        -- On PostgreSQL this only works when the stream was ended.
        assert.are.equal(2, db:query("select 2 as two")[1].two)
        local again = 0
        for _ in db:each(count_to(backend, 3)) do again = again + 1 end
        assert.are.equal(3, again)
      end)

      it("finalizes the statement when the loop body raises", function()
        local iter, state, ctl, stmt = db:each(count_to(backend, 10000))
        local ok, err = pcall(function()
          for row in iter, state, ctl, stmt do
            if row.n == 3 then error("body failed", 0) end
          end
        end)
        assert.is_false(ok)
        assert.are.equal("body failed", err)
        assert.are.equal("loam.Stmt (closed)", tostring(stmt))
        assert.are.equal(2, db:query("select 2 as two")[1].two)
      end)

      it("refuses to go on after the statement was closed", function()
        local iter, state = db:each("select 1 as one")
        state:close()
        local ok, err = pcall(iter, state)
        assert.is_false(ok)
        assert.are.equal("misuse", err.code)
        assert.are.equal("attempt to use a closed statement", err.message)
      end)

      it("raises misuse when the connection closes during the loop", function()
        local ok, err = pcall(function()
          for _ in db:each(count_to(backend, 10)) do
            db:close()
          end
        end)
        assert.is_false(ok)
        assert.are.equal("misuse", err.code)
        assert.are.equal("attempt to use a closed connection", err.message)
        db = helper.connect(backend)  -- for after_each
      end)

      it("keeps its connection alive while iterating", function()
        local conn = helper.connect(backend):connection()
        local iter, state = conn:each(count_to(backend, 3))
        local weak = setmetatable({ conn }, { __mode = "v" })
        conn = nil  -- luacheck: ignore
        collectgarbage()
        collectgarbage()
        assert.is_not_nil(weak[1])
        local n = 0
        for row in iter, state do n = n + row.n end
        assert.are.equal(6, n)
        state, iter = nil, nil  -- luacheck: ignore
        collectgarbage()
        collectgarbage()
        assert.is_nil(weak[1])
      end)

      if pg then
        it("runs nothing else on the connection while streaming", function()
          local ok, err
          for _ in db:each(count_to(backend, 10)) do
            ok, err = pcall(db.query, db, "select 1 as one")
            break
          end
          assert.is_false(ok)
          assert.are.equal("misuse", err.code)
          assert.matches("busy streaming", err.message, 1, true)
          assert.are.equal(1, db:query("select 1 as one")[1].one)
        end)
      end
    end)
  end)
end
