-- spec/factory_spec.lua: test factories (loam.factory) on SQLite and
-- PostgreSQL, used the way a busted spec uses them: defaults, sequences,
-- overrides, values computed from others, associations that create their
-- parent, build (nothing saved) and create (saved), and lists.

local helper = require "spec.helper"
local loam = require "loam"
local factory = require "loam.factory"

local TABLES = { "fac_orders", "fac_customers" }

for backend in helper.each_backend() do
  describe(backend.label .. ": factories", function()
    local db, Customer, Order, customers, orders

    before_each(function()
      db = helper.connect(backend)
      helper.drop_tables(db, TABLES)
      Customer = db:model("fac_customers", {
        loam.id(),
        loam.text("email", { null = false, unique = true }),
        loam.enum("tier", { "free", "pro" }, { null = false }),
      })
      Order = db:model("fac_orders", {
        loam.id(),
        loam.bigint("customer_id", { null = false, references = Customer }),
        loam.integer("total_cents", { null = false }),
        loam.text("note"),
      })
      db:create_tables { Customer, Order }
      customers = factory.define(Customer, {
        email = factory.sequence "user%d@example.com",
        tier = "free",
      })
      orders = factory.define(Order, {
        customer_id = factory.association(customers, { tier = "pro" }),
        total_cents = 1000,
        note = function(v) return v.total_cents .. " cents" end,
      })
    end)

    after_each(function()
      helper.finish(db, TABLES)
    end)

    it("build values from defaults and sequences, and save nothing", function()
      local a, b = customers:build(), customers:build { tier = "pro" }
      assert.are.same({ email = "user1@example.com", tier = "free" }, a)
      assert.are.same({ email = "user2@example.com", tier = "pro" }, b)
      assert.are.same({ total_cents = 5, note = "5 cents" }, orders:build { total_cents = 5 })
      assert.are.equal(0, helper.count(db, "fac_customers"))
      assert.are.equal(0, helper.count(db, "fac_orders"))
    end)

    it("create instances, with the parent an association needs", function()
      local o = orders:create()
      assert.are.equal(Order, require("loam.model").of(o))
      assert.are.equal(1000, o.total_cents)
      assert.are.equal("1000 cents", o.note)
      local c = Customer:find(o.customer_id)
      assert.are.equal("user1@example.com", c.email)
      assert.are.equal("pro", c.tier)
      assert.are.equal(1, helper.count(db, "fac_orders"))
    end)

    it("take an instance or a key for an association, and create no parent then", function()
      local ada = customers:create { email = "ada@example.com" }
      local o1 = orders:create { customer_id = ada, total_cents = 250 }
      local o2 = orders:create { customer_id = ada.id }
      assert.are.same({ ada.id, ada.id }, { o1.customer_id, o2.customer_id })
      assert.are.equal("250 cents", o1.note)
      assert.are.equal(1, helper.count(db, "fac_customers"))
    end)

    it("make lists, with overrides per item", function()
      local list = customers:create_list(3, function(i) return { tier = i == 2 and "pro" or "free" } end)
      assert.are.equal(3, #list)
      assert.are.same({ "free", "pro", "free" }, { list[1].tier, list[2].tier, list[3].tier })
      local ada = list[1]
      local os = orders:create_list(2, { customer_id = ada })
      assert.are.same({ ada.id, ada.id }, { os[1].customer_id, os[2].customer_id })
      assert.are.equal(2, #orders:build_list(2))
      assert.are.equal(3, helper.count(db, "fac_customers"))
      assert.are.same({}, customers:create_list(0))
    end)

    it("let a unique default collide only when the test says so", function()
      customers:create { email = "same@example.com" }
      local err = helper.catch(customers.create, customers, { email = "same@example.com" })
      assert.are.equal("unique_violation", err.code)
    end)

    it("refuse names that are not columns, and misused helpers", function()
      local err = helper.catch(factory.define, Customer, { emial = "x" })
      assert.are.equal("misuse", err.code)
      assert.are.equal("fac_customers: factory default: unknown column 'emial' (columns: id, "
        .. "email, tier)", err.message)
      err = helper.catch(customers.build, customers, { teir = "pro" })
      assert.are.equal("fac_customers: factory override: unknown column 'teir' (columns: id, "
        .. "email, tier)", err.message)
      err = helper.catch(factory.define, Customer, { tier = factory.association(customers) })
      assert.matches("an association belongs on a foreign-key column", err.message, 1, true)
      err = helper.catch(factory.association, Customer)
      assert.matches("expects a factory", err.message, 1, true)
      err = helper.catch(factory.sequence, 12)
      assert.matches("expects a format string or a function", err.message, 1, true)
      err = helper.catch(customers.create_list, customers, -1)
      assert.matches("create_list expects a count", err.message, 1, true)
      err = helper.catch(factory.define, {})
      assert.matches("expects a model", err.message, 1, true)
    end)
  end)
end
