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
        assert.are.equal(eq, list, column .. " = " .. require("loam.errors").show(v))
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
      -- A list mixing integers and floats keeps every integer exact.
      same_as_equality("i", { MAXI - 1, 0.5, MINI + 1 })
      same_as_equality("f", { 0, 0.1, 1e308 })
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

-- PostgreSQL prints timestamptz in the session's zone and style, which
-- every loam connection sets to UTC and ISO: the same text as SQLite's
-- canonical form, with nothing set here.
for backend in helper.each_backend() do
  describe(backend.label .. ": dates and timestamps", function()
    local db, Event

    before_each(function()
      db = helper.connect(backend)
      helper.drop_tables(db, { "events" })
      Event = db:model("events", {
        loam.id(),
        loam.text("name"),
        loam.timestamp("at"),
        loam.date("day"),
      })
      loam.create_tables(db, { Event })
      for _, e in ipairs {
        { "new year", "2021-01-01T00:00:00", "2021-01-01" },
        { "same instant", "2021-01-01 02:00:00+02:00", "20210101" },
        { "a quarter", "2021-06-01T12:00:00.25Z", "2021-06-01" },
        { "eve", "2020-12-31 23:59:59.999999", "2020-12-31" },
        { "date only", "2021-06-01", "2021-06-02" },
        { "offset", "2021-06-01T13:00:00.250000+0100", "2021-06-01" },
        { "west", "2021-05-31T23:30-12:30", "2021-05-31" },
      } do
        Event:create { name = e[1], at = e[2], day = e[3] }
      end
    end)

    after_each(function()
      helper.finish(db, { "events" })
    end)

    local function names(q)
      local out = {}
      for i, r in ipairs(q:order_by("id"):all()) do out[i] = r.name end
      return table.concat(out, ",")
    end

    it("reads back one canonical UTC text on both backends", function()
      local got = {}
      for i, r in ipairs(Event:order_by("id"):all()) do got[i] = r.at .. " " .. r.day end
      assert.are.same({
        "2021-01-01 00:00:00+00 2021-01-01",
        "2021-01-01 00:00:00+00 2021-01-01",
        "2021-06-01 12:00:00.25+00 2021-06-01",
        "2020-12-31 23:59:59.999999+00 2020-12-31",
        "2021-06-01 00:00:00+00 2021-06-02",
        "2021-06-01 12:00:00.25+00 2021-06-01",
        "2021-06-01 12:00:00+00 2021-05-31",
      }, got)
    end)

    it("compares instants, whatever form the value is written in", function()
      assert.are.equal("new year,same instant", names(Event:where { at = "2021-01-01T00:00:00" }))
      assert.are.equal("new year,same instant", names(Event:where { at = "2021-01-01" }))
      assert.are.equal("new year,same instant", names(Event:where { at = "2021-01-01T01:00+01" }))
      assert.are.equal("a quarter,offset", names(Event:where { at = "2021-06-01 12:00:00.250Z" }))
      assert.are.equal("new year,same instant,a quarter,date only,offset,west",
        names(Event:where { at = op.gte("2021-01-01T00:00:00Z") }))
      assert.are.equal("eve", names(Event:where { at = op.lt("2021-01-01") }))
      assert.are.equal("a quarter,offset,west",
        names(Event:where { at = op.gt("2021-06-01T11:59:59.999999Z") }))
      assert.are.equal("west", names(Event:where { at = op.between("2021-06-01T12:00:00Z",
        "2021-06-01T12:00:00.249999Z") }))
      assert.are.equal("new year,same instant,eve",
        names(Event:where { at = { "2021-01-01T00:00:00Z", "2020-12-31T23:59:59.999999" } }))
      assert.are.equal("eve,new year,same instant,date only,west,a quarter,offset", (function()
        local out = {}
        for i, r in ipairs(Event:order_by("at", "id"):all()) do out[i] = r.name end
        return table.concat(out, ",")
      end)())
    end)

    it("compares dates", function()
      assert.are.equal("new year,same instant", names(Event:where { day = "2021-01-01" }))
      assert.are.equal("new year,same instant", names(Event:where { day = "20210101" }))
      assert.are.equal("date only", names(Event:where { day = op.gt("2021-06-01") }))
      assert.are.equal("a quarter,date only,offset,west",
        names(Event:where { day = op.between("2021-05-31", "20210602") }))
      assert.are.equal("a quarter,eve,offset",
        names(Event:where { day = { "2020-12-31", "2021-06-01" } }))
    end)

    it("refuses what is not an ISO-8601 date or timestamp, before any SQL", function()
      for _, case in ipairs {
        { "at", "2021-01-01T00:00:00.1234567", "more than 6 fractional digits" },
        { "at", "0001-01-01T00:30:00+01:00", "out of range (years 0001 to 9999 in UTC)" },
        { "at", "2021-02-29 10:00", "expected ISO-8601 timestamp" },
        { "at", "2021-01-01 25:00", "expected ISO-8601 timestamp" },
        { "at", "2021-01-01 10:00:00+2", "expected ISO-8601 timestamp" },
        { "at", "2021-01-01 10:00:00 UTC", "expected ISO-8601 timestamp" },
        { "at", "yesterday", "expected ISO-8601 timestamp" },
        { "at", 1609459200, "expected ISO-8601 timestamp" },
        { "day", "2021-01-01T00:00:00", 'expected date "YYYY-MM-DD" or "YYYYMMDD"' },
        { "day", "2021-1-1", 'expected date "YYYY-MM-DD" or "YYYYMMDD"' },
        { "day", "0000-01-01", 'expected date "YYYY-MM-DD" or "YYYYMMDD"' },
      } do
        local before = helper.count(db, "events")
        local err = catch(Event.create, Event, { name = "bad", [case[1]] = case[2] })
        assert.are.equal("validation_error", err.code)
        assert.are.equal("events", err.model)
        assert.are.equal(case[1], err.column)
        assert.matches("events." .. case[1] .. ": ", err.message, 1, true)
        assert.matches(case[3], err.message, 1, true)
        if type(case[2]) == "string" then
          assert.matches(case[2], err.message, 1, true)
        end
        assert.are.equal(before, helper.count(db, "events"))
        err = catch(function() return Event:where { [case[1]] = case[2] }:count() end)
        assert.are.equal("validation_error", err.code)
      end
    end)
  end)
end

for backend, pg in helper.each_backend() do
  describe(backend.label .. ": batched loading over a numeric key column", function()
    local db

    before_each(function()
      db = helper.connect(backend)
      helper.table(db, "num_keys", "id integer primary key, k numeric, label text",
        "id integer primary key, k numeric, label text")
      for _, r in ipairs { { 1, "1.0", "one" }, { 2, "2.5", "two and a half" }, { 3, 3, "three" },
                           { 4, "1", "one again" } } do
        db:exec("insert into num_keys (id, k, label) values (?, ?, ?)", r)
      end
    end)

    after_each(function()
      helper.finish(db, { "num_keys" })
    end)

    it("matches a numeric 1.0 with the integer key 1, and 2.5 with 2.5", function()
      local q = { k = "select", from = { name = "num_keys" }, order = { { expr = col("id") } } }
      local res = db:load_batch { { query = q, key = { col("k") }, keys = { 1, 2.5, 3, 4, 1.0 } } }
      assert.are.equal("1,4", ids(res[1][1]))
      assert.are.equal("2", ids(res[1][2]))
      assert.are.equal("3", ids(res[1][3]))
      assert.are.equal("", ids(res[1][4]))
      assert.are.equal(res[1][1], res[1][5])
    end)
  end)
end

describe("sqlite: loam_keys reads only well-formed key lists", function()
  it("refuses a malformed blob or a missing argument with an error", function()
    local db <close> = loam.connect("sqlite::memory:")
    for _, case in ipairs {
      { loam.blob("lk\1\1i\1\2"), "a number is cut short" },
      { loam.blob("lk\1\1t\9\0\0\0abc"), "a text is cut short" },
      { loam.blob("lk\1\2i\1\0\0\0\0\0\0\0"), "a tuple is cut short" },
      { loam.blob("lk\1\1x"), "unknown value tag" },
      { loam.blob("xx\1\1"), "bad header" },
      { "lk\1\1", "the argument is not a blob" },
    } do
      local err = catch(db.query, db, "select * from loam_keys(?)", { case[1] })
      assert.are.equal("database_error", err.code)
      assert.matches("loam_keys: malformed key list (" .. case[2] .. ")", err.message, 1, true)
    end
    local err = catch(db.query, db, "select * from loam_keys")
    assert.matches("loam_keys takes one argument", err.message, 1, true)
    local rows = db:query("select k1, k2 from loam_keys(?)",
      { loam.blob("lk\1\2" .. string.pack("<c1i8c1s4", "i", -1, "t", "a\0b")) })
    assert.are.same({ { k1 = -1, k2 = "a\0b" } }, rows)
  end)
end)

for backend, pg in helper.each_backend() do
  describe(backend.label .. ": numeric columns", function()
    local db, Price

    before_each(function()
      db = helper.connect(backend)
      helper.drop_tables(db, { "prices" })
      Price = db:model("prices", {
        loam.id(),
        loam.numeric("amount", { precision = 12, scale = 2 }),
        loam.numeric("rate"),
      })
      loam.create_tables(db, { Price })
      for _, p in ipairs {
        { "10.5", "1.50" }, { 9.99, 0.1 }, { 100, "100" }, { "-0.25", "-0.000001" },
        { "1234567890.12", "123456789012345" },
      } do
        Price:create { amount = p[1], rate = p[2] }
      end
    end)

    after_each(function()
      helper.finish(db, { "prices" })
    end)

    local function col_of(q, name)
      local out = {}
      for i, r in ipairs(q:order_by("id"):all()) do out[i] = r[name] end
      return out
    end

    it("come back as the same decimal text on both backends", function()
      assert.are.same({ "10.50", "9.99", "100.00", "-0.25", "1234567890.12" }, col_of(Price, "amount"))
      assert.are.same({ "1.5", "0.1", "100", "-0.000001", "123456789012345" }, col_of(Price, "rate"))
      -- Raw SQL reads the same text.
      local rows = db:query("select amount, rate from prices where id = 3")
      assert.are.same({ amount = "100.00", rate = "100" }, rows[1])
    end)

    it("read back rounded to their scale after SQL arithmetic, as PostgreSQL rounds", function()
      -- 12.5 * 1.1 is 13.750000000000002 as a double on SQLite; -0.25 / 50 is -0.005.
      db:exec("update prices set amount = amount * 1.1 where id = 1")
      db:exec("update prices set amount = amount / 50 where id = 4")
      db:exec("update prices set amount = 9.995 where id = 2")
      assert.are.same({ "11.55", "10.00", "100.00", "-0.01", "1234567890.12" }, col_of(Price, "amount"))
    end)

    it("compare and sort as numbers", function()
      assert.are.same({ "10.50" }, col_of(Price:where { amount = "10.5" }, "amount"))
      assert.are.same({ "10.50" }, col_of(Price:where { amount = 10.5 }, "amount"))
      assert.are.same({ "10.50", "100.00", "1234567890.12" },
        col_of(Price:where { amount = op.gt("9.99") }, "amount"))
      assert.are.same({ "10.50", "9.99" },
        col_of(Price:where { amount = op.between(9, "10.50") }, "amount"))
      assert.are.same({ "10.50", "100.00" }, col_of(Price:where { amount = { "10.5", 100, "7" } }, "amount"))
      local sorted = {}
      for i, r in ipairs(Price:order_by("amount"):all()) do sorted[i] = r.amount end
      assert.are.same({ "-0.25", "9.99", "10.50", "100.00", "1234567890.12" }, sorted)
    end)

    it("refuse on SQLite what it cannot hold exactly, and keep every digit on PostgreSQL", function()
      local long = "1234567890.123456"
      if pg then
        local p = Price:create { rate = long }
        assert.are.equal(long, Price:find(p.id).rate)
      else
        local err = catch(Price.create, Price, { rate = long })
        assert.are.equal("validation_error", err.code)
        assert.are.equal("prices", err.model)
        assert.are.equal("rate", err.column)
        assert.are.equal('prices.rate: "1234567890.123456" has 16 significant digits; SQLite stores '
          .. "at most 15 exactly (or an integer within 64 bits)", err.message)
        assert.are.equal(5, helper.count(db, "prices"))
      end
      -- Within 64 bits an integer is exact on both.
      local big = Price:create { rate = "9223372036854775807" }
      assert.are.equal("9223372036854775807", Price:find(big.id).rate)
      local err = catch(Price.create, Price, { amount = "12345678901.5" })
      assert.are.equal("validation_error", err.code)
      assert.matches("does not fit numeric(12,2)", err.message, 1, true)
    end)
  end)
end

for backend in helper.each_backend() do
  describe(backend.label .. ": relations over numeric keys", function()
    local db, Parent, Kid

    before_each(function()
      db = helper.connect(backend)
      helper.drop_tables(db, { "kids", "parents" })
      Parent = db:model("parents", {
        loam.numeric("code", { primary_key = true, precision = 10, scale = 1 }),
        loam.text("name"),
      })
      Kid = db:model("kids", {
        loam.id(),
        loam.numeric("parent_code", { precision = 10, scale = 1, references = Parent }),
        loam.integer("n"),
      })
      Parent:has_many("kids", Kid, { key = "parent_code" })
      Kid:belongs_to("parent", Parent, { key = "parent_code" })
      loam.create_tables(db, { Parent, Kid })
      Parent:create { code = 1, name = "one" }
      Parent:create { code = "2.5", name = "two and a half" }
      Kid:create { parent_code = "1.0", n = 1 }
      Kid:create { parent_code = 2.5, n = 2 }
      Kid:create { parent_code = 1, n = 3 }
    end)

    after_each(function()
      helper.finish(db, { "kids", "parents" })
    end)

    it("load in batches on both sides, 1.0 matching 1", function()
      local got = {}
      for _, p in ipairs(Parent:include("kids"):order_by("code"):all()) do
        local ns = {}
        for _, k in ipairs(p.kids) do ns[#ns + 1] = k.n end
        table.sort(ns)
        got[#got + 1] = p.code .. ":" .. table.concat(ns, ",")
      end
      assert.are.same({ "1.0:1,3", "2.5:2" }, got)
      got = {}
      for _, k in ipairs(Kid:include("parent"):order_by("id"):all()) do
        got[#got + 1] = k.parent_code .. ":" .. k.parent.name
      end
      assert.are.same({ "1.0:one", "2.5:two and a half", "1.0:one" }, got)
    end)
  end)
end

for backend, pg in helper.each_backend() do
  describe(backend.label .. ": loam.now, the default of the current date and time", function()
    local db, Stamp

    before_each(function()
      db = helper.connect(backend)
      helper.drop_tables(db, { "stamps" })
      Stamp = db:model("stamps", {
        loam.id(),
        loam.text("name"),
        loam.timestamp("at", { default = loam.now, null = false }),
        loam.date("day", { default = loam.now }),
      })
      loam.create_tables(db, { Stamp })
    end)

    after_each(function()
      helper.finish(db, { "stamps", "stamps_raw" })
    end)

    local function names(q)
      local out = {}
      for i, r in ipairs(q:all()) do out[i] = r.name end
      return table.concat(out, ",")
    end

    it("writes the canonical text, which equals and sorts with values loam writes", function()
      Stamp:create { name = "past", at = "2000-01-01T00:00:00Z", day = "2000-01-01" }
      local now = Stamp:create { name = "now" }
      db:exec("insert into stamps (name) values ('raw')")
      Stamp:create { name = "future", at = "9999-12-31T23:59:59.999999Z", day = "9999-12-31" }
      assert.matches("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d%+00$", now.at:gsub("%.%d*[1-9]%+", "+"))
      assert.is_nil(now.at:find("0%+00$") and now.at:find("%.%d*0%+00$"))
      assert.matches("^%d%d%d%d%-%d%d%-%d%d$", now.day)
      -- One statement (SQLite) or one transaction (PostgreSQL): one instant.
      assert.are.equal(now.at:sub(1, 10), now.day)
      local raw = Stamp:where { name = "raw" }:first()
      assert.matches("%+00$", raw.at)
      -- Each value read back finds the rows that hold it, through loam and
      -- through raw SQL, and the order is the order of the text.
      local rows = Stamp:order_by("id"):all()
      for _, r in ipairs(rows) do
        local same = {}
        for _, o in ipairs(rows) do
          if o.at == r.at then same[#same + 1] = o.name end
        end
        assert.are.equal(table.concat(same, ","), names(Stamp:where { at = r.at }:order_by("id")))
        assert.are.equal(#same, db:query("select count(*) as n from stamps where at = ?",
          { r.at })[1].n)
      end
      assert.is_true(db:query("select count(*) as n from stamps where at = ? and day = ?",
        { now.at, now.day })[1].n >= 1)
      table.sort(rows, function(a, b) return a.at < b.at or (a.at == b.at and a.id < b.id) end)
      assert.are.equal("past", rows[1].name)
      assert.are.equal("future", rows[4].name)
      assert.are.equal(names { all = function() return rows end },
        names(Stamp:order_by("at", "id")))
      assert.are.equal("past", names(Stamp:where { at = loam.op.lt("2000-01-01T00:00:00.000001Z") }))
      assert.are.equal("future", names(Stamp:where { at = loam.op.gt("9000-01-01") }))
    end)

    it("is refused on a column of another type", function()
      local line = helper.next_line()
      local err = catch(db.model, db, "bad_now", { loam.id(), loam.text("t", { default = loam.now }) })
      assert.are.equal("misuse", err.code)
      assert.are.equal("bad_now.t: default loam.now needs a date or timestamp column, not text",
        err.message)
      assert.are.equal("t", err.column)
      assert.matches("values_spec.lua:" .. line .. ":", err.where, 1, true)
    end)

    it("replaces a raw SQL default on a date or timestamp column, which SQLite refuses", function()
      local function declare(kind, sql)
        return db:model("stamps_raw", { loam.id(), loam[kind]("at", { default = loam.sql(sql) }) })
      end
      if pg then
        -- PostgreSQL's own types make any expression's value canonical.
        local Raw = declare("timestamp", "CURRENT_TIMESTAMP")
        loam.create_tables(db, { Raw })
        local r = Raw:create {}
        assert.are.equal(1, Raw:where { at = r.at }:count())
        assert.matches("%+00$", r.at)
      else
        for _, case in ipairs { { "timestamp", "CURRENT_TIMESTAMP", "time" },
                                { "date", "CURRENT_DATE", "date" } } do
          local err = catch(declare, case[1], case[2])
          assert.are.equal("misuse", err.code)
          assert.are.equal("stamps_raw.at: a raw SQL default (loam.sql \"" .. case[2] .. "\") on a "
            .. case[1] .. " column cannot be known to write the canonical " .. case[1]
            .. " text on SQLite; write default = loam.now for the current " .. case[3],
            err.message)
          assert.are.equal("stamps_raw", err.model)
          assert.are.equal("at", err.column)
        end
        assert.are.equal(0, db:query("select count(*) as n from sqlite_master "
          .. "where name = 'stamps_raw'")[1].n)
      end
    end)
  end)
end

for backend, pg in helper.each_backend() do
  describe(backend.label .. ": relations keyed by dates, timestamps and numerics", function()
    local db, Slot, Booking, Lot, Piece, Shift, Log

    before_each(function()
      db = helper.connect(backend)
      helper.drop_tables(db, { "bookings", "slots", "pieces", "lots", "logs", "shifts" })
      Slot = db:model("slots", {
        loam.date("day"), loam.integer("no"), loam.text("room"),
      }, { primary_key = { "day", "no" } })
      Booking = db:model("bookings", {
        loam.id(), loam.date("day"), loam.integer("slot_no"), loam.text("who"),
      })
      Slot:has_many("bookings", Booking, { key = { "day", "slot_no" },
        references = { "day", "no" }, inverse = "slot" })
      Booking:belongs_to("slot", Slot, { key = { "day", "slot_no" },
        references = { "day", "no" }, inverse = "bookings" })
      Lot = db:model("lots", {
        loam.numeric("code", { precision = 30, scale = 1 }), loam.text("region"), loam.text("name"),
      }, { primary_key = { "code", "region" } })
      Piece = db:model("pieces", {
        loam.id(), loam.numeric("lot_code", { precision = 30, scale = 1 }),
        loam.text("lot_region"), loam.integer("n"),
      })
      Lot:has_many("pieces", Piece, { key = { "lot_code", "lot_region" },
        references = { "code", "region" }, inverse = "lot" })
      Piece:belongs_to("lot", Lot, { key = { "lot_code", "lot_region" },
        references = { "code", "region" }, inverse = "pieces" })
      Shift = db:model("shifts", { loam.timestamp("starts", { primary_key = true }) })
      Log = db:model("logs", { loam.id(), loam.timestamp("shift_starts"), loam.text("what") })
      Shift:has_many("logs", Log, { key = "shift_starts", inverse = "shift" })
      Log:belongs_to("shift", Shift, { key = "shift_starts", inverse = "logs" })
      loam.create_tables(db, { Slot, Booking, Lot, Piece, Shift, Log })

      Slot:create { day = "2021-01-01", no = 1, room = "a" }
      Slot:create { day = "2021-01-01", no = 2, room = "b" }
      Slot:create { day = "2021-01-02", no = 1, room = "c" }
      Booking:create { day = "20210101", slot_no = 2, who = "ann" }
      Booking:create { day = "2021-01-02", slot_no = 1, who = "bob" }
      Booking:create { day = "2021-01-01", slot_no = 2, who = "cy" }
      Booking:create { day = "2021-01-02", slot_no = 2, who = "dee" }  -- no such slot
      Lot:create { code = 1, region = "eu", name = "one" }
      Lot:create { code = "2.5", region = "eu", name = "two and a half" }
      Lot:create { code = "2.5", region = "us", name = "us two and a half" }
      Piece:create { lot_code = "1.0", lot_region = "eu", n = 1 }
      Piece:create { lot_code = 2.5, lot_region = "us", n = 2 }
      Piece:create { lot_code = "2.50", lot_region = "eu", n = 3 }
      Shift:create { starts = "2021-01-01T08:00:00+01:00" }
      Shift:create { starts = "2021-01-01T15:00:00.5Z" }
      Log:create { shift_starts = "2021-01-01 07:00:00Z", what = "open" }
      Log:create { shift_starts = "2021-01-01T16:00:00.500+01", what = "close" }
    end)

    after_each(function()
      helper.finish(db, { "bookings", "slots", "pieces", "lots", "logs", "shifts" })
    end)

    local function whos(list)
      local out = {}
      for i, b in ipairs(list) do out[i] = b.who or b.n or b.what end
      table.sort(out, function(a, b) return tostring(a) < tostring(b) end)
      return table.concat(out, ",")
    end

    it("load over a composite key of a date and an integer, both ways", function()
      local got = {}
      for _, s in ipairs(Slot:include("bookings"):order_by("day", "no"):all()) do
        got[#got + 1] = s.day .. "/" .. s.no .. ":" .. whos(s.bookings)
      end
      assert.are.same({ "2021-01-01/1:", "2021-01-01/2:ann,cy", "2021-01-02/1:bob" }, got)
      got = {}
      for _, b in ipairs(Booking:include("slot"):order_by("id"):all()) do
        got[#got + 1] = b.who .. ":" .. (b.slot and b.slot.room or "-")
      end
      assert.are.same({ "ann:b", "bob:c", "cy:b", "dee:-" }, got)
    end)

    it("load over a composite key of a numeric and a text, both ways", function()
      local got = {}
      for _, l in ipairs(Lot:include("pieces"):order_by("region", "code"):all()) do
        got[#got + 1] = l.code .. "/" .. l.region .. ":" .. whos(l.pieces)
      end
      assert.are.same({ "1.0/eu:1", "2.5/eu:3", "2.5/us:2" }, got)
      got = {}
      for _, p in ipairs(Piece:include("lot"):order_by("id"):all()) do
        got[#got + 1] = p.n .. ":" .. p.lot.name
      end
      assert.are.same({ "1:one", "2:us two and a half", "3:two and a half" }, got)
    end)

    it("load over a timestamp key, both ways", function()
      local got = {}
      for _, s in ipairs(Shift:include("logs"):order_by("starts"):all()) do
        got[#got + 1] = s.starts .. ":" .. whos(s.logs)
      end
      assert.are.same({ "2021-01-01 07:00:00+00:open", "2021-01-01 15:00:00.5+00:close" }, got)
      got = {}
      for _, l in ipairs(Log:include("shift"):order_by("id"):all()) do
        got[#got + 1] = l.what .. ":" .. l.shift.starts
      end
      assert.are.same({ "open:2021-01-01 07:00:00+00", "close:2021-01-01 15:00:00.5+00" }, got)
    end)

    it("load numeric keys of more than 15 digits exactly on PostgreSQL", function()
      local long, near = "12345678901234567890.5", "12345678901234567890.4"
      if not pg then
        -- SQLite cannot hold them: refused when written, as before.
        local err = catch(Lot.create, Lot, { code = long, region = "eu", name = "long" })
        assert.are.equal("validation_error", err.code)
        assert.are.equal("code", err.column)
        assert.are.equal(3, helper.count(db, "lots"))
        return
      end
      Lot:create { code = long, region = "eu", name = "long" }
      Lot:create { code = near, region = "eu", name = "near" }
      Piece:create { lot_code = long, lot_region = "eu", n = 4 }
      Piece:create { lot_code = "12345678901234567890.50", lot_region = "eu", n = 5 }
      Piece:create { lot_code = near, lot_region = "eu", n = 6 }
      local got = {}
      for _, l in ipairs(Lot:include("pieces"):order_by("code", "region"):all()) do
        got[#got + 1] = l.code .. "/" .. l.region .. ":" .. whos(l.pieces)
      end
      -- Short keys (numbers) and long ones (text) in one list.
      assert.are.same({ "1.0/eu:1", "2.5/eu:3", "2.5/us:2", near .. "/eu:6", long .. "/eu:4,5" },
        got)
      got = {}
      for _, p in ipairs(Piece:include("lot"):order_by("id"):all()) do
        got[#got + 1] = p.n .. ":" .. p.lot.name
      end
      assert.are.same({ "1:one", "2:us two and a half", "3:two and a half", "4:long", "5:long",
                        "6:near" }, got)
    end)
  end)
end
