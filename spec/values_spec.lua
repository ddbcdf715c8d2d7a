-- spec/values_spec.lua: values mean the same on every backend.  A key list
-- matches exactly what equality matches, for every kind of value, in
-- where-lists, tuple lists and the batched loader; dates, timestamps,
-- numerics, floats and json columns of models are checked, stored and read
-- back alike on SQLite and PostgreSQL.

local loam = require "loam"
local helper = require "spec.helper"

local null = loam.null
local op = loam.op

local function catch(f, ...)
  return helper.caught(pcall(f, ...))
end

local function col(name) return { k = "col", name = name } end

-- The ids of rows, sorted, as "1,2,3".
local function ids(rows)
  local out = {}
  for i, r in ipairs(rows) do out[i] = r.id end
  table.sort(out)
  for i, v in ipairs(out) do out[i] = tostring(v) end
  return table.concat(out, ",")
end

local MAXI, MINI = math.maxinteger, math.mininteger

for backend, pg in helper.each_backend() do
  describe(backend.label .. ": key lists match what equality matches", function()
    local db

    before_each(function()
      db = helper.connect(backend)
      helper.table(db, "vals",
        "id integer primary key, s text, i integer, f real, b boolean, n numeric",
        "id integer primary key, s text, i bigint, f double precision, b boolean, n numeric")
      local rows = {
        { 1, "admin", 1, 0.1, true, 1 },
        { 2, "Admin", MAXI, 0.1 + 0.2, false, 2.5 },
        { 3, "admin ", MINI, math.huge, true, null },
        { 4, "", MAXI - 1, -math.huge, null, 10 },
        { 5, "é\1\31\"\\,{}NULL", MINI + 1, 1e308, false, null },
        { 6, "x", 0, -0.0, true, null },
      }
      if not pg then
        -- PostgreSQL text cannot hold NUL bytes; SQLite's can.
        rows[#rows + 1] = { 7, "admin\0-x", 7, 5e-324, false, null }
      end
      for _, r in ipairs(rows) do
        db:exec("insert into vals (id, s, i, f, b, n) values (?, ?, ?, ?, ?, ?)", r)
      end
    end)

    after_each(function()
      helper.finish(db, { "vals" })
    end)

    -- Equality and a one-value list, and a list of all probes at once,
    -- find the same rows.
    local function same_as_equality(column, probes)
      local union = {}
      for _, v in ipairs(probes) do
        local eq = ids(db:table("vals"):where { [column] = v }:all())
        local list = ids(db:table("vals"):where { [column] = { v } }:all())
        assert.are.equal(eq, list, column .. " = " .. require("loam.types").show(v))
        assert.are.equal(#db:table("vals"):where { [column] = { v } }:all(),
          db:table("vals"):where { [column] = { v } }:count())
        for id in eq:gmatch("%d+") do union[#union + 1] = { id = tonumber(id) } end
      end
      local dedup, seen = {}, {}
      for _, r in ipairs(union) do
        if not seen[r.id] then seen[r.id] = true; dedup[#dedup + 1] = r end
      end
      assert.are.equal(ids(dedup), ids(db:table("vals"):where { [column] = probes }:all()))
    end

    it("for text, NUL bytes and any bytes included", function()
      same_as_equality("s", { "admin", "Admin", "admin ", "", "é\1\31\"\\,{}NULL", "nope" })
      if pg then
        -- Neither equality nor a list can carry a NUL byte to PostgreSQL.
        local e1 = catch(function() return db:table("vals"):where { s = "admin\0-x" }:count() end)
        local e2 = catch(function() return db:table("vals"):where { s = { "admin\0-x" } }:count() end)
        assert.are.equal("data_error", e1.code)
        assert.are.equal("data_error", e2.code)
        assert.matches("NUL", e2.message)
      else
        same_as_equality("s", { "admin\0-x", "admin\0", "admin\0-x\0" })
        assert.are.equal(0, db:table("vals"):where { s = { "admin\0-y" } }:count())
        assert.are.equal(1, db:table("vals"):where { s = { "admin\0-x" } }:count())
      end
    end)

    it("for 64-bit integers at the limits", function()
      same_as_equality("i", { 1, MAXI, MINI, MAXI - 1, MINI + 1, 0, 2 })
      -- An integral float matches the integer, as equality does.
      same_as_equality("i", { 1.0, 0.0 })
    end)

    it("for floats, infinities and -0.0", function()
      local probes = { 0.1, 0.1 + 0.2, 0.3, math.huge, -math.huge, 1e308, 0.0, -0.0 }
      if not pg then probes[#probes + 1] = 5e-324 end
      same_as_equality("f", probes)
    end)

    it("for booleans", function()
      same_as_equality("b", { true, false })
    end)

    it("for numbers against a numeric column", function()
      same_as_equality("n", { 1, 2.5, 10, 3 })
    end)

    it("treats NaN in a list as equality does", function()
      local ok1, r1 = pcall(function() return db:table("vals"):where { f = 0 / 0 }:count() end)
      local ok2, r2 = pcall(function() return db:table("vals"):where { f = { 0 / 0 } }:count() end)
      assert.are.equal(ok1, ok2)
      if pg then
        -- PostgreSQL's NaN equals NaN; no row holds one.
        assert.are.equal(r1, r2)
      else
        -- SQLite would store NaN as NULL: refused either way.
        assert.are.equal("data_error", r1.code)
        assert.are.equal(r1.code, r2.code)
        assert.matches("NaN", r2.message)
      end
    end)

    it("refuses blobs in a list on both backends", function()
      local e = catch(function() return db:table("vals"):where { s = { loam.blob("x") } }:count() end)
      assert.are.equal("misuse", e.code)
      assert.matches("blob, which a list cannot hold", e.message)
    end)

    it("in tuple lists", function()
      local function tuples(t)
        local rows = db:run { k = "select", columns = { col("id") }, from = { name = "vals" },
          where = { k = "in", exprs = { col("s"), col("i") }, tuples = t } }
        return ids(rows)
      end
      assert.are.equal("1,2,3,4", tuples { { "admin", 1 }, { "Admin", MAXI }, { "admin ", MINI },
        { "", MAXI - 1 }, { "admin", MAXI } })
      assert.are.equal("", tuples { { "admin", 2 }, { "Admin", MAXI - 1 } })
      assert.are.equal("5", tuples { { "é\1\31\"\\,{}NULL", MINI + 1 } })
      if not pg then
        assert.are.equal("7", tuples { { "admin\0-x", 7 } })
        assert.are.equal("", tuples { { "admin\0-y", 7 } })
      end
      local e = catch(function()
        local exprs, t = {}, {}
        for c = 1, 33 do exprs[c] = col("i"); t[c] = 1 end
        return db:run { k = "select", from = { name = "vals" },
          where = { k = "in", exprs = exprs, tuples = { t } } }
      end)
      assert.are.equal("misuse", e.code)
      assert.matches("33 columns, more than the 32", e.message)
    end)

    it("in the batched loader", function()
      local q = { k = "select", from = { name = "vals" }, order = { { expr = col("id") } } }
      local keys = { "admin", "Admin", "nope", "admin " }
      if not pg then keys[#keys + 1] = "admin\0-x"; keys[#keys + 1] = "admin\0" end
      local res = db:load_batch { { query = q, key = { col("s") }, keys = keys } }
      assert.are.equal("1", ids(res[1][1]))
      assert.are.equal("2", ids(res[1][2]))
      assert.are.equal("", ids(res[1][3]))
      assert.are.equal("3", ids(res[1][4]))
      if not pg then
        assert.are.equal("7", ids(res[1][5]))
        assert.are.equal("", ids(res[1][6]))
      end
      res = db:load_batch { { query = q, key = { col("i") }, keys = { MAXI, MINI, MAXI - 1, 5 } } }
      assert.are.equal("2", ids(res[1][1]))
      assert.are.equal("3", ids(res[1][2]))
      assert.are.equal("4", ids(res[1][3]))
      assert.are.equal("", ids(res[1][4]))
      res = db:load_batch { { query = q, key = { col("s"), col("i") },
        keys = { { "admin", 1 }, { "admin", MAXI }, { "", MAXI - 1 } } } }
      assert.are.equal("1", ids(res[1][1]))
      assert.are.equal("", ids(res[1][2]))
      assert.are.equal("4", ids(res[1][3]))
    end)

    it("with one statement text whatever the length of the list", function()
      local short = db:table("vals"):where { i = { 1, 2 } }:to_sql()
      local list = {}
      for k = 1, 10000 do list[k] = k end
      local long, params = db:table("vals"):where { i = list }:to_sql()
      assert.are.equal(short, long)
      assert.are.equal(1, #params)
      assert.are.equal(pg and 1 or 2, db:table("vals"):where { i = list }:count())
    end)
  end)
end
