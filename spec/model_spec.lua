-- spec/model_spec.lua: declaring models (and every declaration error),
-- coercion and validation of every column type (and that a refused value
-- never reaches the database), enums checked by the database too, the
-- JSON encoder, and tables created and dropped straight from models.
--
-- LOAM_ENV=production is simulated by replacing os.getenv for the length
-- of one call ('with_env'), so the refusal is tested without a switch in
-- the API that could turn it off.

local loam = require "loam"
local core = require "loam.core"
local helper = require "spec.helper"
local errors = require "loam.errors"
local json = require "loam.json"

-- pcall runs here, not in spec/helper.lua, so that errors raised by the
-- Lua layer name this spec as their caller ('where').
local function catch(f, ...)
  return helper.caught(pcall(f, ...))
end

local next_line = helper.next_line

local function at(line)
  return "spec/model_spec.lua:" .. line .. ": "
end

-- Tables the specs create, children first so SQLite drops them in order.
local TABLES = { "line_items", "orders", "customers", "categories", "cyc_a", "cyc_b",
                 "kinds", "memberships", "loam_migrations", "plain" }

local function declare(db)
  local Customer = db:model("customers", {
    loam.id(),
    loam.text("email", { length = 255, null = false, unique = true }),
    loam.enum("tier", { "free", "pro" }, { default = "free" }),
    loam.boolean("active", { default = true }),
    loam.numeric("balance", { precision = 10, scale = 2 }),
    loam.timestamp("created_at", { default = loam.now }),
  }, { indexes = { { "tier", "active" }, { "email", unique = true, where = "active" } },
       checks = { balance_nonneg = "balance >= 0" } })
  local Order = db:model("orders", {
    loam.id(),
    loam.bigint("customer_id", { null = false, references = Customer, on_delete = "cascade" }),
    loam.integer("total_cents", { null = false, check = "total_cents >= 0" }),
  })
  return Customer, Order
end

-- One column of every type, all nullable, for coercion.
local function declare_kinds(db)
  return db:model("kinds", {
    loam.id(),
    loam.integer("i"),
    loam.bigint("b"),
    loam.float("f"),
    loam.text("t", { length = 5 }),
    loam.text("u"),
    loam.numeric("n", { precision = 6, scale = 2 }),
    loam.numeric("free_n"),
    loam.boolean("flag"),
    loam.date("d"),
    loam.timestamp("ts"),
    loam.json("doc"),
    loam.bytes("bin"),
    loam.enum("color", { "red", "green" }),
    loam.integer("required", { null = false, default = 0 }),
  })
end

-- Calls 'f' with LOAM_ENV set to 'value' as far as os.getenv can tell.
local function with_env(value, f)
  local real = os.getenv
  os.getenv = function(name)
    if name == "LOAM_ENV" then return value end
    return real(name)
  end
  local ok, err = pcall(f)
  os.getenv = real
  if not ok then error(err, 0) end
end

local function table_exists(db, name)
  local sql
  if db:backend() == "postgres" then
    sql = "select count(*) as n from information_schema.tables "
      .. "where table_name = ? and table_schema = current_schema()"
  else
    sql = "select count(*) as n from sqlite_master where type = 'table' and name = ?"
  end
  return db:query(sql, { name })[1].n > 0
end


describe("column declarations", function()
  local db

  before_each(function()
    db = loam.connect("sqlite::memory:")
  end)

  after_each(function()
    db:close()
  end)

  it("become DDL AST columns in declaration order", function()
    local Customer, Order = declare(db)
    assert.are.same({ "id", "email", "tier", "active", "balance", "created_at" },
      (function()
        local names = {}
        for i, c in ipairs(Customer.columns) do names[i] = c.name end
        return names
      end)())
    assert.are.same({ name = "id", type = "id", null = false }, Customer.columns[1])
    assert.are.same({ name = "email", type = "text", length = 255, null = false, unique = true },
      Customer.columns[2])
    assert.are.same({ name = "tier", type = "enum", values = { "free", "pro" }, null = true,
                      default = "free" }, Customer.columns[3])
    assert.are.same({ name = "balance", type = "numeric", precision = 10, scale = 2,
                      null = true }, Customer.columns[5])
    assert.are.equal(loam.now, Customer.columns[6].default)
    assert.are.same({ name = "customer_id", type = "bigint", null = false,
                      references = { table = "customers", column = "id",
                                     on_delete = "cascade" } }, Order.columns[2])
    assert.are.equal(Customer.columns[2], Customer.column_map.email)
    assert.are.same({ "id" }, Customer.primary_key)
    assert.is_true(Customer.__model)
    assert.are.equal("customers", Customer.table)
    assert.are.equal(db, Customer.db)
    assert.are.equal("loam.Model(customers)", tostring(Customer))
  end)

  it("names checks and indexes as documented", function()
    local Customer, Order = declare(db)
    assert.are.same({ { name = "balance_nonneg", sql = "balance >= 0" } }, Customer.checks)
    assert.are.same({ { name = "orders_total_cents_check", sql = "total_cents >= 0" } },
      Order.checks)
    assert.are.same({
      { k = "create_index", name = "customers_tier_active_idx", table = "customers",
        columns = { "tier", "active" }, unique = false },
      { k = "create_index", name = "customers_email_idx", table = "customers",
        columns = { "email" }, unique = true, where = "active" },
    }, Customer.indexes)
    local Kind = db:model("kinds", {
      loam.id(),
      loam.enum("color", { "red" }, { check = "color <> 'blue'" }),
      loam.integer("a"), loam.integer("b"),
    }, { uniques = { { "a", "b" }, { "b", name = "only_b" } } })
    -- The core checks an enum under <table>_<col>_check, so the column's own
    -- check takes the next name.
    assert.are.same({ { name = "kinds_color_check1", sql = "color <> 'blue'" } }, Kind.checks)
    assert.are.same({ { name = "kinds_a_b_key", columns = { "a", "b" } },
                      { name = "only_b", columns = { "b" } } }, Kind.uniques)
  end)

  it("takes a composite primary key and a single primary-key column", function()
    local Membership = db:model("memberships", {
      loam.bigint("user_id"),
      loam.bigint("group_id"),
      loam.text("role"),
    }, { primary_key = { "user_id", "group_id" } })
    assert.are.same({ "user_id", "group_id" }, Membership.primary_key)
    assert.is_false(Membership.column_map.user_id.null)
    assert.are.same({ "user_id", "group_id" }, Membership:ddl()[1].primary_key)
    local Plain = db:model("plain", { loam.text("code", { primary_key = true }) })
    assert.are.same({ "code" }, Plain.primary_key)
    assert.are.same({ name = "code", type = "text", null = false, primary_key = true },
      Plain.columns[1])
    assert.is_nil(Plain:ddl()[1].primary_key)
    local Custom = db:model("plain", { loam.id("plain_no") })
    assert.are.same({ "plain_no" }, Custom.primary_key)
  end)

  it("coerces defaults like values", function()
    local M = db:model("kinds", {
      loam.integer("i", { default = 3.0 }),
      loam.float("f", { default = 1 }),
      loam.json("doc", { default = { a = { 1, 2 } } }),
    })
    assert.are.equal("integer", math.type(M.column_map.i.default))
    assert.are.equal("float", math.type(M.column_map.f.default))
    assert.are.equal('{"a":[1,2]}', M.column_map.doc.default)
  end)

  -- Each case: the declaration (a function of db), the message, the column.
  local cases = {
    { "unknown option", function(d)
        return d:model("customers", { loam.id(), loam.text("email", { lenght = 5 }) })
      end, "customers.email: unknown option 'lenght'", "email" },
    { "option of another type", function(d)
        return d:model("customers", { loam.id(), loam.integer("n", { length = 5 }) })
      end, "customers.n: unknown option 'length'", "n" },
    { "option of the wrong type", function(d)
        return d:model("customers", { loam.text("email", { null = "no" }) })
      end, 'customers.email: option \'null\' must be a boolean, got string ("no")', "email" },
    { "duplicate column", function(d)
        return d:model("customers", { loam.id(), loam.text("email"), loam.integer("email") })
      end, "customers.email: the column is declared twice", "email" },
    { "bad enum default", function(d)
        return d:model("customers", { loam.enum("tier", { "free", "pro" }, { default = "gold" }) })
      end, 'customers.tier: bad default: expected one of "free", "pro", got string ("gold")',
      "tier" },
    { "default of the wrong type", function(d)
        return d:model("customers", { loam.integer("n", { default = "7" }) })
      end, 'customers.n: bad default: expected integer, got string ("7")', "n" },
    { "NULL default on a NOT NULL column", function(d)
        return d:model("customers", { loam.integer("n", { null = false, default = loam.null }) })
      end, "customers.n: bad default: cannot be NULL", "n" },
    { "enum without values", function(d)
        return d:model("customers", { loam.enum("tier", {}) })
      end, "customers.tier: enum values must be a non-empty array of strings, got table", "tier" },
    { "enum value twice", function(d)
        return d:model("customers", { loam.enum("tier", { "a", "a" }) })
      end, 'customers.tier: enum value "a" appears twice', "tier" },
    { "length that is not a positive integer", function(d)
        return d:model("customers", { loam.text("email", { length = 0 }) })
      end, "customers.email: length must be a positive integer, got integer (0)", "email" },
    { "scale over precision", function(d)
        return d:model("customers", { loam.numeric("n", { precision = 4, scale = 5 }) })
      end, "customers.n: scale must be an integer from 0 to the precision (4), got integer (5)",
      "n" },
    { "references to a non-model", function(d)
        return d:model("orders", { loam.bigint("customer_id", { references = {} }) })
      end, "orders.customer_id: references must be a model or a table name, got table",
      "customer_id" },
    { "on_delete without references", function(d)
        return d:model("orders", { loam.bigint("customer_id", { on_delete = "cascade" }) })
      end, "orders.customer_id: option 'on_delete' needs 'references'", "customer_id" },
    { "unknown action", function(d)
        return d:model("orders", { loam.bigint("c", { references = "customers",
                                                      on_delete = "explode" }) })
      end, "orders.c: on_delete must be one of cascade, restrict, set null, set default, "
        .. 'no action; got "explode"', "c" },
    { "set null on a NOT NULL column", function(d)
        return d:model("orders", { loam.bigint("c", { null = false, references = "customers",
                                                      on_delete = "set null" }) })
      end, 'orders.c: on_delete = "set null" on a NOT NULL column', "c" },
    { "a column named like an instance method", function(d)
        return d:model("orders", { loam.id(), loam.boolean("save") })
      end, "orders.save: a column of this name would hide the instance method 'save'", "save" },
    { "a bad column name", function(d)
        return d:model("orders", { loam.id(), loam.text(("x"):rep(64)) })
      end, "orders.x" .. ("x"):rep(63) .. ": column name \"" .. ("x"):rep(64)
        .. "\" is longer than 63 bytes", ("x"):rep(64) },
    { "extra arguments", function(d)
        return d:model("orders", { loam.text("a", {}, "extra") })
      end, "orders.a: too many arguments to loam.text", "a" },
  }

  for _, case in ipairs(cases) do
    local what, declare_it, message, column = case[1], case[2], case[3], case[4]
    it("refuses " .. what .. ", naming model, column and the declaring line", function()
      local err = catch(declare_it, db)
      assert.are.equal("misuse", err.code)
      assert.are.equal(message, err.message)
      assert.are.equal(column, err.column)
      assert.are.equal(err.message:match("^[^.]+"), err.model)
      assert.matches("^spec/model_spec.lua:%d+: $", err.where)
    end)
  end

  it("names the line of the column that is wrong", function()
    local line = next_line() + 3  -- the loam.text line below
    local err = catch(function()
      db:model("customers", {
        loam.id(),
        loam.text("email", { lenght = 255 }),
      })
    end)
    assert.are.equal(at(line), err.where)
    assert.are.equal(at(line) .. "loam.misuse: customers.email: unknown option 'lenght'",
      tostring(err))
  end)

  -- Errors of the model as a whole name the db:model line.
  local model_cases = {
    { "a model without columns", function(d) return d:model("customers", {}) end,
      "customers: a model needs an array of columns (loam.id(), loam.text(...), ...), got table" },
    { "a column that is no declaration (unknown type)", function(d)
        return d:model("customers", { loam.id(), { name = "x", type = "varchar" } })
      end, "customers: column #2 is not a column declaration (loam.text(...) and the like), "
        .. "got table" },
    { "an unknown model option", function(d)
        return d:model("customers", { loam.id() }, { index = {} })
      end, "customers: unknown model option 'index'" },
    { "two primary keys", function(d)
        return d:model("customers", { loam.id(), loam.text("code", { primary_key = true }) })
      end, "customers: two columns are primary keys (id, code); for a composite key use the "
        .. "model option primary_key = { ... }" },
    { "a primary key option beside loam.id", function(d)
        return d:model("customers", { loam.id(), loam.text("code") },
          { primary_key = { "id", "code" } })
      end, "customers: primary_key is given as an option and by column id" },
    { "an index on an unknown column", function(d)
        return d:model("customers", { loam.id() }, { indexes = { { "nope" } } })
      end, "customers: index #1: unknown column 'nope'" },
    { "an unknown index option", function(d)
        return d:model("customers", { loam.id() }, { indexes = { { "id", uniq = true } } })
      end, "customers: index #1: unknown option 'uniq'" },
    { "two indexes of one name", function(d)
        return d:model("customers", { loam.id(), loam.text("a") },
          { indexes = { { "a" }, { "a", unique = true } } })
      end, 'customers: two constraints or indexes are named "customers_a_idx"; give one of '
        .. "them a 'name'" },
    { "a unique constraint named like a column's", function(d)
        return d:model("customers", { loam.id(), loam.text("a", { unique = true }) },
          { uniques = { { "a" } } })
      end, 'customers: two constraints or indexes are named "customers_a_key"; give one of '
        .. "them a 'name'" },
    { "a column check whose generated name is too long", function(d)
        return d:model("customers", { loam.id(), loam.integer(("c"):rep(50), { check = "1 = 1" }) })
      end, "customers: the check of column " .. ("c"):rep(50) .. ' would be named "customers_'
        .. ("c"):rep(50) .. '_check" is longer than 63 bytes; declare it in the model option '
        .. "checks = { name = sql } with a shorter name" },
  }

  for _, case in ipairs(model_cases) do
    it("refuses " .. case[1], function()
      local line
      local err = catch(function()
        line = next_line()
        case[2](db)
      end)
      assert.are.equal("misuse", err.code)
      assert.are.equal(case[3], err.message)
      assert.are.equal("customers", err.model)
      assert.are.equal(at(line), err.where)
    end)
  end

  it("leaves generated index and unique names too long to keep whole to the core", function()
    local long = ("c"):rep(60)
    local M = db:model("customers", { loam.id(), loam.text(long), loam.text("a") },
      { indexes = { { long }, { "a" } }, uniques = { { long, "a" } } })
    assert.is_nil(M.indexes[1].name)
    assert.are.equal("customers_a_idx", M.indexes[2].name)
    assert.is_nil(M.uniques[1].name)
    local short = core.constraint_name("customers", { long }, "idx")
    assert.are.equal(core.IDENT_MAX, #short)
    assert.matches('INDEX "' .. short .. '" ON', db:render_ddl(M.indexes[1]), 1, true)
  end)

  it("refuses a bad table name", function()
    local err = catch(db.model, db, "", { loam.id() })
    assert.are.equal("misuse", err.code)
    assert.are.equal('db:model: table name must be a non-empty string, got string ("")',
      err.message)
    err = catch(db.model, db, 5, { loam.id() })
    assert.are.equal("db:model: table name must be a non-empty string, got integer (5)", err.message)
  end)

  it("names the db:model line for errors of the whole model", function()
    local line
    local err = catch(function()
      line = next_line()
      db:model("customers", { loam.id() }, { bogus = true })
    end)
    assert.are.equal(at(line), err.where)
  end)
end)


describe("the JSON encoder", function()
  it("writes scalars, arrays and objects with sorted keys", function()
    assert.are.equal('{"a":1,"b":[true,false,null],"c":{"d":"x"}}',
      json.encode { c = { d = "x" }, a = 1, b = { true, false, loam.null } })
    assert.are.equal("[]", json.encode {})
    assert.are.equal("[[[]]]", json.encode { { {} } })
    assert.are.equal("[1,-2,0.5,1e+300,0.1,3]", json.encode { 1, -2, 0.5, 1e300, 0.1, 3.0 })
    assert.are.equal(tostring(math.mininteger), json.encode { math.mininteger }:sub(2, -2))
  end)

  it("escapes strings", function()
    assert.are.equal([["a\"b\\c\n\t\r\b\f\u0001\u001f/é"]],
      json.encode { "a\"b\\c\n\t\r\b\f\1\31/é" }:sub(2, -2))
  end)

  it("keeps floats exact", function()
    for _, v in ipairs { 0.1, 1 / 3, 2 ^ 60 + 0.0, -1e-300, 123456789.123 } do
      assert.are.equal(v, tonumber(json.encode { v }:sub(2, -2)))
    end
  end)

  local refused = {
    { "NaN", { 0 / 0 }, "NaN and infinity have no JSON form" },
    { "infinity", { x = math.huge }, "NaN and infinity have no JSON form" },
    { "mixed keys", { 1, a = 2 }, "table mixes array indexes and string keys" },
    { "holes", { 1, nil, 3 }, "array has holes (use loam.null for null elements)" },
    { "float keys", { [1.5] = 1 }, "key float (1.5) is neither a string nor an array index" },
    { "functions", { print }, "function has no JSON form" },
    { "invalid UTF-8", { "\xff" }, "string is not valid UTF-8" },
  }
  for _, case in ipairs(refused) do
    it("refuses " .. case[1], function()
      local text, err = json.encode(case[2])
      assert.is_nil(text)
      assert.are.equal(case[3], err)
    end)
  end

  it("refuses cycles and keeps shared tables", function()
    local t = {}
    t.self = t
    local text, err = json.encode(t)
    assert.is_nil(text)
    assert.are.equal("table contains a cycle", err)
    local shared = { 1 }
    assert.are.equal('{"a":[1],"b":[1]}', json.encode { a = shared, b = shared })
  end)
end)


for backend, pg in helper.each_backend() do
  describe(backend.label .. ":", function()
    local db

    before_each(function()
      db = helper.connect(backend)
      helper.drop_tables(db, TABLES)
    end)

    after_each(function()
      helper.finish(db, TABLES)
    end)

    describe("coercion", function()
      local Kind

      before_each(function()
        Kind = declare_kinds(db)
        loam.create_tables(db, { Kind })
      end)

      -- Values each column takes, and what is bound for them.
      local accepted = {
        { "i", 7, 7 }, { "i", 7.0, 7 }, { "i", -2147483648, -2147483648 },
        { "b", math.maxinteger, math.maxinteger }, { "b", 2.0 ^ 53, 9007199254740992 },
        { "f", 1.5, 1.5 }, { "f", 2, 2.0 }, { "f", math.huge, math.huge },
        { "t", "héllo", "héllo" }, { "t", "", "" },
        { "u", ("é"):rep(1000), ("é"):rep(1000) },
        { "n", "1234.56", "1234.56" }, { "n", "-0.5", "-0.50" }, { "n", "0001.5", "1.50" },
        { "n", 9999.99, "9999.99" }, { "n", 12, "12.00" }, { "n", ".5", "0.50" },
        { "n", "+1.50", "1.50" }, { "n", "-0.00", "0.00" }, { "n", 0.125, "0.13" },
        { "free_n", "+1.50", "1.5" }, { "free_n", "-0.0", "0" },
        { "n", -0.125, "-0.13" }, { "free_n", 0.1, "0.1" }, { "free_n", 1e20, "100000000000000000000" },
        { "free_n", "123456789012345", "123456789012345" },
        { "free_n", "9223372036854775807", "9223372036854775807" },
        { "flag", false, false },
        { "d", "2024-02-29", "2024-02-29" },
        { "d", "20240229", "2024-02-29" },
        { "ts", "2024-02-29 23:59:60", "2024-03-01 00:00:00+00" },
        { "ts", "2024-01-01T00:00:00.123456Z", "2024-01-01 00:00:00.123456+00" },
        { "ts", "2024-01-01 10:30+02:00", "2024-01-01 08:30:00+00" },
        { "ts", "2026-11-24 01:42:28.5+00", "2026-11-24 01:42:28.5+00" },
        { "ts", "2024-01-01", "2024-01-01 00:00:00+00" },
        { "ts", "2024-01-01 24:00:00", "2024-01-02 00:00:00+00" },
        { "doc", { a = 1 }, '{"a":1}' }, { "doc", "[1, 2]", "[1, 2]" },
        { "color", "red", "red" },
        { "i", loam.null, loam.null },
      }
      for _, case in ipairs(accepted) do
        it("takes " .. errors.show(case[2]) .. " for " .. case[1], function()
          local v = Kind:coerce(case[1], case[2])
          assert.are.equal(case[3], v)
          assert.are.equal(math.type(case[3]), math.type(v))
        end)
      end

      it("wraps strings for blob columns and keeps blobs", function()
        local b = Kind:coerce("bin", "a\0b")
        assert.are.equal("loam.blob (3 bytes)", tostring(b))
        local given = loam.blob("xyz")
        assert.are.equal(given, Kind:coerce("bin", given))
      end)

      -- Values each column refuses, and the message.
      local refused = {
        { "i", "12x", 'expected integer, got string ("12x")' },
        { "i", 2.5, "expected integer, got float (2.5)" },
        { "i", 0 / 0, "expected integer, got float (nan)" },
        { "i", math.huge, "expected integer, got float (inf)" },
        { "i", -math.huge, "expected integer, got float (-inf)" },
        { "i", 2147483648, "2147483648 is out of range for integer" },
        { "i", true, "expected integer, got boolean (true)" },
        { "b", 2.0 ^ 63, "expected integer, got float (9.2233720368548e+18)" },
        { "f", "1.5", 'expected number, got string ("1.5")' },
        { "f", 0 / 0, "NaN is not a storable number" },
        { "t", "toolong", "text is 7 characters long, more than 5" },
        { "t", "\xff\xfe", "invalid UTF-8 at byte 1" },
        { "t", "a\0b", "text cannot hold NUL bytes (use a blob column)" },
        { "t", 5, "expected string, got integer (5)" },
        { "n", "12.345", '"12.345" does not fit numeric(6,2)' },
        { "n", 9999.995, "9999.995 does not fit numeric(6,2)" },
        { "n", "12345.1", '"12345.1" does not fit numeric(6,2)' },
        { "n", 10000, "10000 does not fit numeric(6,2)" },
        { "n", "1e5", 'expected number or decimal string, got string ("1e5")' },
        { "n", "12.", 'expected number or decimal string, got string ("12.")' },
        { "n", "", 'expected number or decimal string, got string ("")' },
        { "n", 0 / 0, "expected finite number or decimal string, got float (nan)" },
        { "flag", "true", 'expected boolean, got string ("true")' },
        { "flag", 1, "expected boolean, got integer (1)" },
        { "d", "2023-02-29", 'expected date "YYYY-MM-DD" or "YYYYMMDD", got string ("2023-02-29")' },
        { "d", "2024-1-1", 'expected date "YYYY-MM-DD" or "YYYYMMDD", got string ("2024-1-1")' },
        { "d", 20240101, 'expected date "YYYY-MM-DD" or "YYYYMMDD", got integer (20240101)' },
        { "ts", "2024-01-01 24:00:01", 'expected ISO-8601 timestamp '
          .. '"YYYY-MM-DD[( |T)HH:MM[:SS[.ffffff]]][Z|+HH[:MM]]", got string ("2024-01-01 24:00:01")' },
        { "ts", "2024-01-01 10:00:00+2", 'expected ISO-8601 timestamp '
          .. '"YYYY-MM-DD[( |T)HH:MM[:SS[.ffffff]]][Z|+HH[:MM]]", got string ("2024-01-01 10:00:00+2")' },
        { "doc", 5, "expected table or JSON text, got integer (5)" },
        { "doc", { 0 / 0 }, "cannot encode as JSON: NaN and infinity have no JSON form" },
        { "bin", 5, "expected string or loam.blob, got integer (5)" },
        { "color", "blue", 'expected one of "red", "green", got string ("blue")' },
        { "color", loam.blob("red"), 'expected one of "red", "green", got loam.Blob' },
        { "required", loam.null, "cannot be NULL" },
        { "i", ("x"):rep(50), 'expected integer, got string ("' .. ("x"):rep(37) .. '...")' },
        { "i", "a\nb", 'expected integer, got string ("a\\nb")' },
        { "i", "\xff", 'expected integer, got string ("\\255")' },
        { "i", ("é"):rep(30), 'expected integer, got string ("' .. ("é"):rep(18) .. '...")' },
      }

      for _, case in ipairs(refused) do
        it("refuses " .. errors.show(case[2]) .. " for " .. case[1]
          .. " and sends nothing", function()
          local line
          local values = { required = 1 }
          values[case[1]] = case[2]
          local err = catch(function()
            line = next_line()
            Kind:create(values)
          end)
          assert.are.equal("validation_error", err.code)
          assert.are.equal("kinds", err.model)
          assert.are.equal(case[1], err.column)
          assert.are.equal("kinds." .. case[1] .. ": " .. case[3], err.message)
          assert.are.equal(at(line), err.where)
          assert.are.equal(0, helper.count(db, "kinds"))
          local e2 = catch(Kind.coerce, Kind, case[1], case[2])
          assert.are.equal(err.message, e2.message)
        end)
      end

      it("refuses an unknown column, listing the columns", function()
        local err = catch(Kind.coerce, Kind, "nope", 1)
        assert.are.equal("misuse", err.code)
        assert.are.equal("kinds: unknown column 'nope' (columns: id, i, b, f, t, u, n, free_n, "
          .. "flag, d, ts, doc, bin, color, required)", err.message)
        err = catch(Kind.create, Kind, { nope = 1 })
        assert.are.equal("misuse", err.code)
        assert.are.equal(0, helper.count(db, "kinds"))
      end)

      it("refuses a missing required column before sending anything", function()
        local Customer = declare(db)
        loam.create_tables(db, { Customer })
        local err = catch(Customer.create, Customer, { tier = "pro" })
        assert.are.equal("validation_error", err.code)
        assert.are.equal("customers.email: is required (NOT NULL without a default)",
          err.message)
        assert.are.equal(0, helper.count(db, "customers"))
      end)

      it("coerces where values too", function()
        local line
        local err = catch(function()
          line = next_line()
          return Kind:where { color = "blue" }:all()
        end)
        assert.are.equal("validation_error", err.code)
        assert.are.equal('kinds.color: expected one of "red", "green", got string ("blue")',
          err.message)
        assert.are.equal(at(line), err.where)
        err = catch(Kind.find, Kind, "1")
        assert.are.equal("validation_error", err.code)
        assert.are.equal("id", err.column)
      end)

      it("stores what it takes, and reads it back", function()
        local k = Kind:create {
          i = 7.0, b = math.maxinteger, f = 2, t = "héllo", u = ("é"):rep(300),
          n = "1234.56", free_n = "12.5", flag = true, d = "2024-02-29",
          ts = "2024-01-01 10:30:00", doc = { name = "x", tags = { "a", "b" } },
          bin = "a\0b\255", color = "green", required = 0,
        }
        local row = db:query("select * from kinds")[1]
        assert.are.equal(7, row.i)
        assert.are.equal("integer", math.type(row.i))
        assert.are.equal(math.maxinteger, row.b)
        assert.are.equal(2.0, row.f)
        assert.are.equal("float", math.type(row.f))
        assert.are.equal("héllo", row.t)
        assert.are.equal(("é"):rep(300), row.u)
        assert.are.equal(true, row.flag)
        assert.are.equal("2024-02-29", row.d)
        assert.are.equal("a\0b\255", row.bin)
        assert.are.equal("green", row.color)
        assert.are.equal("1234.56", row.n)
        assert.are.equal("12.5", row.free_n)
        if pg then
          assert.are.equal(2.0, row.f)
          assert.are.equal("x", db:query("select doc->>'name' as n from kinds")[1].n)
          assert.are.equal("b", db:query("select doc->'tags'->>1 as n from kinds")[1].n)
        else
          assert.are.equal('{"name":"x","tags":["a","b"]}', row.doc)
        end
        assert.are.same(row, k:to_table { nulls = true })
      end)

      it("checks JSON text before any SQL, and the database checks it again", function()
        local err = catch(Kind.create, Kind, { doc = "{not json", required = 0 })
        assert.are.equal("validation_error", err.code)
        assert.are.equal("kinds", err.model)
        assert.are.equal("doc", err.column)
        assert.are.equal("kinds.doc: not JSON text: expected a string key at byte 2", err.message)
        assert.matches("^spec/model_spec.lua:%d+: $", err.where)
        assert.are.equal(0, helper.count(db, "kinds"))
        -- Raw SQL still meets the backend's own check.
        err = catch(db.exec, db, "insert into kinds (doc, required) values (?, 0)", { "{not json" })
        assert.are.equal(pg and "data_error" or "check_violation", err.code)
        assert.are.equal(0, helper.count(db, "kinds"))
      end)

      it("refuses JSON nested deeper than the limit, and cycles, naming the column", function()
        local deep, cur = {}, nil
        cur = deep
        for _ = 1, 200000 do cur[1] = {}; cur = cur[1] end
        local err = catch(Kind.create, Kind, { doc = deep, required = 0 })
        assert.are.equal("validation_error", err.code)
        assert.are.equal("doc", err.column)
        assert.are.equal("kinds.doc: cannot encode as JSON: tables nest deeper than 500 levels",
          err.message)
        local cyc = { a = {} }
        cyc.a.b = cyc
        err = catch(Kind.create, Kind, { doc = cyc, required = 0 })
        assert.are.equal("validation_error", err.code)
        assert.are.equal("kinds.doc: cannot encode as JSON: table contains a cycle", err.message)
        err = catch(Kind.create, Kind, { doc = ("["):rep(501) .. ("]"):rep(501), required = 0 })
        assert.are.equal("validation_error", err.code)
        assert.are.equal("kinds.doc: not JSON text: nests deeper than 500 levels", err.message)
        assert.are.equal(0, helper.count(db, "kinds"))
        -- 500 levels are stored, and read back, on both backends.
        local ok, at = {}, nil
        at = ok
        for _ = 1, 499 do at[1] = {}; at = at[1] end
        local k = Kind:create { doc = ok, required = 0 }
        local text = ("["):rep(500) .. ("]"):rep(500)
        assert.are.equal(text, (Kind:find(k.id).doc:gsub("%s", "")))
        Kind:create { doc = text, required = 0 }
        assert.are.equal(2, helper.count(db, "kinds"))
      end)

      it("refuses what either backend would refuse in JSON text", function()
        for _, case in ipairs {
          { '"\\u0000"', "\\u0000 (PostgreSQL cannot store it) at byte 2" },
          { '"\\ud800"', "unpaired surrogate at byte 2" },
          { "[1,]", "unexpected character at byte 4" },
          { "01", "text after the value at byte 2" },
          { "", "unexpected end at byte 1" },
          { "{'a':1}", "expected a string key at byte 2" },
          { "\xff", "not valid UTF-8" },
        } do
          local err = catch(Kind.create, Kind, { doc = case[1], required = 0 })
          assert.are.equal("validation_error", err.code)
          assert.are.equal("kinds.doc: not JSON text: " .. case[2], err.message)
        end
        assert.are.equal(0, helper.count(db, "kinds"))
        for _, text in ipairs { '{"a":[1,2.5e-3,{"b":null}],"c":"\\u00e9\\ud83d\\ude00"}', " true ",
                                "-0", '""' } do
          Kind:create { doc = text, required = 0 }
        end
        assert.are.equal(4, helper.count(db, "kinds"))
      end)
    end)

    describe("enums", function()
      it("are checked by the database too", function()
        local Customer = declare(db)
        loam.create_tables(db, { Customer })
        local err = catch(db.exec, db, "insert into customers (email, tier) values (?, ?)",
          { "a@example.com", "gold" })
        assert.are.equal("check_violation", err.code)
        assert.are.equal("customers_tier_check", err.constraint)
        assert.are.equal(0, helper.count(db, "customers"))
        db:exec("insert into customers (email, tier) values (?, ?)", { "a@example.com", "pro" })
        assert.are.equal(1, helper.count(db, "customers"))
      end)

      it("are checked in Lua before the database sees them", function()
        local Customer = declare(db)
        loam.create_tables(db, { Customer })
        local err = catch(Customer.create, Customer, { email = "a@example.com", tier = "gold" })
        assert.are.equal("validation_error", err.code)
        assert.are.equal("tier", err.column)
        assert.is_nil(err.constraint)
        assert.are.equal(0, helper.count(db, "customers"))
      end)
    end)

    describe("create_tables", function()
      it("creates tables, constraints and indexes in foreign-key order", function()
        local Customer, Order = declare(db)
        local LineItem = db:model("line_items", {
          loam.id(),
          loam.bigint("order_id", { null = false, references = Order, on_delete = "cascade" }),
          loam.text("sku", { null = false }),
        }, { indexes = { { "order_id" } } })
        local order = db:create_tables { LineItem, Order, Customer }
        assert.are.same({ Customer, Order, LineItem }, order)
        for _, t in ipairs { "customers", "orders", "line_items" } do
          assert.is_true(table_exists(db, t))
        end
        local c = Customer:create { email = "a@example.com" }
        local o = Order:create { customer_id = c.id, total_cents = 100 }
        LineItem:create { order_id = o.id, sku = "X-1" }
        -- foreign key, column check, model check, unique and partial unique index
        local err = catch(Order.create, Order, { customer_id = c.id + 100, total_cents = 1 })
        assert.are.equal("foreign_key_violation", err.code)
        err = catch(Order.create, Order, { customer_id = c.id, total_cents = -1 })
        assert.are.equal("check_violation", err.code)
        assert.are.equal("orders_total_cents_check", err.constraint)
        err = catch(Customer.create, Customer, { email = "b@example.com", balance = -1 })
        assert.are.equal("check_violation", err.code)
        assert.are.equal("balance_nonneg", err.constraint)
        err = catch(Customer.create, Customer, { email = "a@example.com" })
        assert.are.equal("unique_violation", err.code)
        -- ON DELETE CASCADE reaches the grandchildren
        db:exec("delete from customers")
        assert.are.equal(0, helper.count(db, "line_items"))
        if pg then
          local idx = db:query("select indexname from pg_indexes where tablename = ? "
            .. "order by indexname", { "customers" })
          local names = {}
          for i, r in ipairs(idx) do names[i] = r.indexname end
          assert.are.same({ "customers_email_idx", "customers_email_key", "customers_pkey",
                            "customers_tier_active_idx" }, names)
        else
          local idx = db:query("select name from sqlite_master where type = 'index' and "
            .. "tbl_name = ? and sql is not null order by name", { "customers" })
          assert.are.same({ { name = "customers_email_idx" }, { name = "customers_tier_active_idx" } },
            idx)
        end
      end)

      it("takes self-references", function()
        local Category = db:model("categories", {
          loam.id(),
          loam.bigint("parent_id", { references = "categories", on_delete = "cascade" }),
        })
        loam.create_tables(db, { Category })
        local root = Category:create {}
        local child = Category:create { parent_id = root.id }
        assert.are.equal(root.id, child.parent_id)
        root:delete()
        assert.are.equal(0, helper.count(db, "categories"))
      end)

      it("refuses a foreign-key cycle, naming the models, and creates nothing", function()
        local A = db:model("cyc_a", { loam.id(), loam.bigint("b_id", { references = "cyc_b" }) })
        local B = db:model("cyc_b", { loam.id(), loam.bigint("a_id", { references = "cyc_a" }) })
        local Customer = declare(db)
        local line
        local err = catch(function()
          line = next_line()
          loam.create_tables(db, { Customer, A, B })
        end)
        assert.are.equal("misuse", err.code)
        assert.are.equal("create_tables: the foreign keys of cyc_a, cyc_b form a cycle "
          .. "(cyc_a -> cyc_b -> cyc_a); create these tables with a migration", err.message)
        assert.are.equal(at(line), err.where)
        assert.is_false(table_exists(db, "customers"))
        assert.is_false(table_exists(db, "cyc_a"))
      end)

      it("refuses what is not a model", function()
        local err = catch(loam.create_tables, db, { {} })
        assert.are.equal("misuse", err.code)
        assert.are.equal("create_tables: item #1 is not a model, got table", err.message)
        err = catch(loam.create_tables, db, {})
        assert.are.equal("create_tables expects a non-empty array of models, got table",
          err.message)
      end)

      it("refuses to run with LOAM_ENV=production, and creates nothing", function()
        local Customer, Order = declare(db)
        local err
        with_env("production", function()
          err = catch(loam.create_tables, db, { Customer, Order })
        end)
        assert.are.equal("misuse", err.code)
        assert.are.equal("create_tables refuses to run with LOAM_ENV=production: a production "
          .. "schema changes only through migrations", err.message)
        assert.is_false(table_exists(db, "customers"))
        with_env("production", function()
          err = catch(db.drop_tables, db, { Customer, Order })
        end)
        assert.are.equal("drop_tables refuses to run with LOAM_ENV=production: a production "
          .. "schema changes only through migrations", err.message)
        with_env("development", function()
          loam.create_tables(db, { Customer, Order })
        end)
        assert.is_true(table_exists(db, "orders"))
      end)

      it("refuses a database with a migration history, and creates nothing", function()
        local Customer, Order = declare(db)
        db:exec("create table loam_migrations (version text primary key)")
        local err = catch(db.create_tables, db, { Customer, Order })
        assert.are.equal("misuse", err.code)
        assert.are.equal("create_tables refuses to run on a database with a migration history "
          .. "(table loam_migrations exists): its schema is managed by migrations; write a "
          .. "migration instead", err.message)
        assert.matches("^spec/model_spec.lua:%d+: $", err.where)
        assert.is_false(table_exists(db, "customers"))
        err = catch(loam.drop_tables, db, { Customer })
        assert.are.equal("misuse", err.code)
      end)

      it("fails on a table that exists, naming the caller", function()
        local Customer = declare(db)
        loam.create_tables(db, { Customer })
        local line
        local err = catch(function()
          line = next_line()
          loam.create_tables(db, { Customer })
        end)
        assert.are.equal(at(line), err.where)
      end)
    end)

    describe("drop_tables", function()
      it("drops in reverse foreign-key order, and skips tables that are gone", function()
        local Customer, Order = declare(db)
        loam.create_tables(db, { Customer, Order })
        local c = Customer:create { email = "a@example.com" }
        Order:create { customer_id = c.id, total_cents = 1 }
        assert.are.same({ Order, Customer }, loam.drop_tables(db, { Customer, Order }))
        assert.is_false(table_exists(db, "customers"))
        assert.is_false(table_exists(db, "orders"))
        assert.are.same({ Order, Customer }, db:drop_tables { Customer, Order })
      end)
    end)
  end)
end
