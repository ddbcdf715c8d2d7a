-- spec/key_lists_spec.lua: the key list of a batched relation load, chosen
-- from what the models declare, on every backend.
--
-- On PostgreSQL a relation whose one key column leads an index of its
-- table (a primary key, a unique column or unique constraint, an index
-- without a predicate) sends its keys as '= ANY($1::T[])', which the
-- planner turns into index probes; every other key (an unindexed foreign
-- key, a partial index, a composite key) keeps
-- 'IN (SELECT * FROM unnest($1::T[]))', which it hashes.  SQLite always
-- reads its list through loam_keys.  The rows are the same either way:
-- each load below is checked against the data, not only its SQL.

local loam = require "loam"
local helper = require "spec.helper"

local TABLES = { "kl_invoices", "kl_order_tags", "kl_tags", "kl_notes", "kl_items", "kl_profiles",
                 "kl_orders", "kl_customers" }

local function declare(db)
  local m = {}
  m.Customer = db:model("kl_customers", { loam.id(), loam.text("email") })
  m.Order = db:model("kl_orders", {
    loam.id(),
    loam.bigint("customer_id", { references = m.Customer }),   -- no index
    loam.text("status"),
  })
  m.Profile = db:model("kl_profiles", {
    loam.id(),
    loam.bigint("customer_id", { references = m.Customer, unique = true }),
    loam.text("bio"),
  })
  m.Item = db:model("kl_items", {
    loam.id(),
    loam.bigint("order_id", { references = m.Order }),
    loam.integer("qty"),
  }, { indexes = { { "order_id", "qty" } } })
  m.Note = db:model("kl_notes", {
    loam.id(),
    loam.bigint("order_id", { references = m.Order }),
    loam.text("body"),
  }, { indexes = { { "order_id", where = "body IS NOT NULL" } } })
  m.Tag = db:model("kl_tags", { loam.id(), loam.text("name") })
  m.OrderTag = db:model("kl_order_tags", {
    loam.bigint("order_id", { references = m.Order }),
    loam.bigint("tag_id", { references = m.Tag }),
  }, { primary_key = { "order_id", "tag_id" } })
  m.Invoice = db:model("kl_invoices", {
    loam.id(),
    loam.integer("number"),
    loam.bigint("order_id", { references = m.Order }),
  }, { uniques = { { "order_id", "number" } } })

  m.Customer:has_many("orders", m.Order)
  m.Customer:has_one("profile", m.Profile)
  m.Order:belongs_to("customer", m.Customer)
  m.Order:has_many("items", m.Item)
  m.Order:has_many("notes", m.Note)
  m.Order:has_many("tags", m.Tag, { through = m.OrderTag })
  m.Order:has_many("invoices", m.Invoice)
  return m
end

-- ada has orders 1 and 2, bob order 3, order 4 has no customer; cy has
-- nothing.  Only ada has a profile.
local function seed(m)
  local ada = m.Customer:create { email = "ada" }
  local bob = m.Customer:create { email = "bob" }
  m.Customer:create { email = "cy" }
  m.Profile:create { customer_id = ada.id, bio = "hi" }
  local o = {
    m.Order:create { customer_id = ada.id, status = "a1" },
    m.Order:create { customer_id = ada.id, status = "a2" },
    m.Order:create { customer_id = bob.id, status = "b1" },
    m.Order:create { customer_id = loam.null, status = "x" },
  }
  m.Item:create { order_id = o[1].id, qty = 2 }
  m.Item:create { order_id = o[1].id, qty = 1 }
  m.Item:create { order_id = o[2].id, qty = 5 }
  m.Item:create { order_id = o[4].id, qty = 7 }
  m.Note:create { order_id = o[1].id, body = "n1" }
  m.Note:create { order_id = o[3].id, body = loam.null }
  m.Note:create { order_id = o[3].id, body = "n3" }
  local gift, rush = m.Tag:create { name = "gift" }, m.Tag:create { name = "rush" }
  m.OrderTag:create { order_id = o[1].id, tag_id = gift.id }
  m.OrderTag:create { order_id = o[1].id, tag_id = rush.id }
  m.OrderTag:create { order_id = o[2].id, tag_id = gift.id }
  m.Invoice:create { order_id = o[2].id, number = 1 }
end

-- The form each statement's key list took: "any", "unnest" or "keys" (SQLite).
local function forms(sqls)
  local out = {}
  for i, sql in ipairs(sqls) do
    out[i] = sql:find(" = ANY($1::", 1, true) and "any"
      or sql:find("IN (SELECT * FROM unnest($1::", 1, true) and "unnest"
      or sql:find("FROM loam_keys(?)", 1, true) and "keys" or sql
  end
  return out
end

local function field(list, name)
  local out = {}
  for i, v in ipairs(list) do out[i] = v[name] end
  return out
end

for backend, pg in helper.each_backend() do
  describe(backend.label .. ": key lists of batched relations", function()
    local db, m

    before_each(function()
      db = helper.connect(backend)
      helper.drop_tables(db, TABLES)
      m = declare(db)
      loam.create_tables(db, { m.Customer, m.Order, m.Profile, m.Item, m.Note, m.Tag,
                               m.OrderTag, m.Invoice })
      seed(m)
    end)

    after_each(function()
      helper.finish(db, TABLES)
    end)

    local function expect(list)
      if pg then return list end
      local out = {}
      for i in ipairs(list) do out[i] = "keys" end
      return out
    end

    it("probe a primary key, a unique column and the lead of an index", function()
      local orders
      local sqls = helper.statements(db, function()
        orders = m.Order:order_by("id")
          :include { "customer", "invoices", items = { order_by = "id" } }:all()
      end)
      -- the orders, then one statement per relation
      assert.are.same(expect { "any", "any", "any" }, forms { sqls[2], sqls[3], sqls[4] })
      assert.are.same({ "ada", "ada", "bob" }, { orders[1].customer.email,
        orders[2].customer.email, orders[3].customer.email })
      assert.are.equal(loam.null, orders[4].customer_id)
      assert.is_nil(orders[4].customer)
      assert.are.same({ { 2, 1 }, { 5 }, {}, { 7 } }, {
        field(orders[1].items, "qty"), field(orders[2].items, "qty"),
        field(orders[3].items, "qty"), field(orders[4].items, "qty") })
      assert.are.same({ {}, { 1 }, {}, {} }, {
        field(orders[1].invoices, "number"), field(orders[2].invoices, "number"),
        field(orders[3].invoices, "number"), field(orders[4].invoices, "number") })
    end)

    it("hash an unindexed foreign key and a partial index's column", function()
      local customers, orders
      local sqls = helper.statements(db, function()
        customers = m.Customer:order_by("id"):include { "profile", orders = { order_by = "id" } }:all()
        orders = m.Order:order_by("id"):include { notes = { order_by = "id" } }:all()
      end)
      assert.are.same(expect { "any", "unnest" }, forms { sqls[2], sqls[3] })
      assert.are.same(expect { "unnest" }, forms { sqls[5] })
      assert.are.same({ { "a1", "a2" }, { "b1" }, {} }, {
        field(customers[1].orders, "status"), field(customers[2].orders, "status"),
        field(customers[3].orders, "status") })
      assert.are.equal("hi", customers[1].profile.bio)
      assert.is_nil(customers[2].profile)
      assert.are.same({ { "n1" }, {}, { loam.null, "n3" }, {} }, {
        field(orders[1].notes, "body"), field(orders[2].notes, "body"),
        field(orders[3].notes, "body"), field(orders[4].notes, "body") })
    end)

    it("probe the join table's key of a has_many through", function()
      local orders
      local sqls = helper.statements(db, function()
        orders = m.Order:order_by("id"):include { tags = { order_by = "name" } }:all()
      end)
      assert.are.same(expect { "any" }, forms { sqls[2] })
      assert.are.same({ { "gift", "rush" }, { "gift" }, {}, {} }, {
        field(orders[1].tags, "name"), field(orders[2].tags, "name"),
        field(orders[3].tags, "name"), field(orders[4].tags, "name") })
    end)

    it("answer the same for duplicate parents and a per-parent limit", function()
      local orders = m.Order:order_by("id"):all()
      local twice = { orders[1], orders[2], orders[1], orders[4] }
      local sqls = helper.statements(db, function()
        loam.preload(twice, { items = { order_by = "qty", limit = 1 } })
      end)
      assert.are.same(expect { "any" }, forms(sqls))
      assert.are.same({ { 1 }, { 5 }, { 1 }, { 7 } }, {
        field(twice[1].items, "qty"), field(twice[2].items, "qty"),
        field(twice[3].items, "qty"), field(twice[4].items, "qty") })
    end)
  end)
end
