-- spec/relation_spec.lua: relations between models on every backend:
-- declaring them (and every mistake a declaration can make), eager loading
-- with include (batched and joined, nested, with per-relation options),
-- strict loading and its error, lazy loading per model, query and
-- connection, loam.preload, serialization that never queries, composite
-- keys matched as exact tuples, and the bad inputs of each.
--
-- Query counts come from db:stats(); "no query" is also shown by closing
-- the connection first, since any statement would then raise.

local loam = require "loam"
local helper = require "spec.helper"
local query = require "loam.query"

local catch, next_line = helper.catch, helper.next_line
local op = loam.op

local function at(line)
  return "spec/relation_spec.lua:" .. line .. ": "
end

local TABLES = { "parcels", "shipments", "order_tags", "tags", "order_items", "products",
                 "profiles", "orders", "customers", "employees" }

local function declare(db)
  local m = {}
  m.Customer = db:model("customers", {
    loam.id(),
    loam.text("email", { null = false }),
    loam.enum("tier", { "free", "pro" }, { default = "free" }),
  })
  m.Profile = db:model("profiles", {
    loam.id(),
    loam.bigint("customer_id", { references = m.Customer, unique = true }),
    loam.text("bio"),
  })
  m.Order = db:model("orders", {
    loam.id(),
    loam.bigint("customer_id", { references = m.Customer }),
    loam.text("status", { null = false, default = "new" }),
    loam.integer("total_cents", { null = false, default = 0 }),
  })
  m.Product = db:model("products", {
    loam.id(),
    loam.text("name", { null = false }),
  })
  m.Item = db:model("order_items", {
    loam.id(),
    loam.bigint("order_id", { null = false, references = m.Order }),
    loam.bigint("product_id", { references = m.Product }),
    loam.integer("qty", { null = false }),
  })
  m.Tag = db:model("tags", { loam.id(), loam.text("name", { null = false }) })
  m.OrderTag = db:model("order_tags", {
    loam.bigint("order_id", { null = false, references = m.Order }),
    loam.bigint("tag_id", { null = false, references = m.Tag }),
  }, { primary_key = { "order_id", "tag_id" } })
  m.Shipment = db:model("shipments", {
    loam.bigint("order_id"),
    loam.integer("no"),
    loam.text("carrier"),
  }, { primary_key = { "order_id", "no" } })
  m.Parcel = db:model("parcels", {
    loam.id(),
    loam.bigint("order_id"),
    loam.integer("shipment_no"),
    loam.integer("grams"),
  })
  m.Employee = db:model("employees", {
    loam.id(),
    loam.text("name"),
    loam.bigint("manager_id", { references = "employees" }),
  })

  m.Customer:has_many("orders", m.Order, { inverse = "customer" })
  m.Customer:has_one("profile", m.Profile, { inverse = "customer" })
  m.Profile:belongs_to("customer", m.Customer, { inverse = "profile" })
  m.Order:belongs_to("customer", m.Customer, { inverse = "orders" })
  m.Order:has_many("items", m.Item, { inverse = "order" })
  m.Order:has_many("tags", m.Tag, { through = m.OrderTag })
  m.Order:has_many("shipments", m.Shipment, { key = "order_id" })
  m.Shipment:belongs_to("order", m.Order)
  m.Item:belongs_to("order", m.Order, { inverse = "items" })
  m.Item:belongs_to("product", m.Product)
  m.Shipment:has_many("parcels", m.Parcel, { key = { "order_id", "shipment_no" },
    references = { "order_id", "no" }, inverse = "shipment" })
  m.Parcel:belongs_to("shipment", m.Shipment, { key = { "order_id", "shipment_no" },
    references = { "order_id", "no" }, inverse = "parcels" })
  m.Employee:belongs_to("manager", m.Employee)
  m.Employee:has_many("reports", m.Employee, { key = "manager_id", inverse = "manager" })
  return m
end

-- ada (pro, a profile) has orders 1 (2 items, tags gift+rush) and 2 (1 item,
-- tag gift); bob has order 3 (no items); order 4 has no customer (NULL) and
-- 1 item; cy has no order.  Shipments (1,1), (1,2), (2,1) have parcels;
-- parcel 5 points at (2,2), which does not exist.
local function seed(m)
  local d = {}
  d.ada = m.Customer:create { email = "ada@example.com", tier = "pro" }
  d.bob = m.Customer:create { email = "bob@example.com" }
  d.cy = m.Customer:create { email = "cy@example.com" }
  d.profile = m.Profile:create { customer_id = d.ada.id, bio = "likes fruit" }
  d.apple = m.Product:create { name = "apple" }
  d.pear = m.Product:create { name = "pear" }
  d.o1 = m.Order:create { customer_id = d.ada.id, status = "paid", total_cents = 300 }
  d.o2 = m.Order:create { customer_id = d.ada.id, total_cents = 100 }
  d.o3 = m.Order:create { customer_id = d.bob.id, status = "paid", total_cents = 50 }
  d.o4 = m.Order:create { customer_id = loam.null, total_cents = 70 }
  m.Item:create { order_id = d.o1.id, product_id = d.apple.id, qty = 1 }
  m.Item:create { order_id = d.o1.id, product_id = d.pear.id, qty = 2 }
  m.Item:create { order_id = d.o2.id, product_id = d.apple.id, qty = 3 }
  m.Item:create { order_id = d.o4.id, product_id = loam.null, qty = 4 }
  d.gift = m.Tag:create { name = "gift" }
  d.rush = m.Tag:create { name = "rush" }
  m.OrderTag:create { order_id = d.o1.id, tag_id = d.gift.id }
  m.OrderTag:create { order_id = d.o1.id, tag_id = d.rush.id }
  m.OrderTag:create { order_id = d.o2.id, tag_id = d.gift.id }
  m.Shipment:create { order_id = d.o1.id, no = 1, carrier = "ups" }
  m.Shipment:create { order_id = d.o1.id, no = 2, carrier = "dhl" }
  m.Shipment:create { order_id = d.o2.id, no = 1, carrier = "fedex" }
  m.Parcel:create { order_id = d.o1.id, shipment_no = 1, grams = 100 }
  m.Parcel:create { order_id = d.o1.id, shipment_no = 1, grams = 200 }
  m.Parcel:create { order_id = d.o1.id, shipment_no = 2, grams = 300 }
  m.Parcel:create { order_id = d.o2.id, shipment_no = 1, grams = 400 }
  m.Parcel:create { order_id = d.o2.id, shipment_no = 2, grams = 500 }
  return d
end

-- The statements 'fn' runs on 'db', and what it returns.
local function counting(db, fn)
  local before = db:stats().queries
  local result = fn()
  return db:stats().queries - before, result
end

-- The number of statements of each db:load_batch call 'fn' makes: one
-- call per level, however many relations the level holds.  The spy goes
-- on the methods of 'db' (its metatable), which the loader calls.
local function batch_calls(db, fn)
  local Database = getmetatable(db)
  local real = Database.load_batch
  local calls = {}
  Database.load_batch = function(self, specs)
    calls[#calls + 1] = #specs
    return real(self, specs)
  end
  local ok, err = pcall(fn)
  Database.load_batch = real
  if not ok then error(err, 0) end
  return calls
end

local function pluck(list, field)
  local out = {}
  for i, v in ipairs(list) do out[i] = v[field] end
  return out
end

for backend, pg in helper.each_backend() do
  describe(backend.label .. ":", function()
    local db, m, d

    before_each(function()
      db = helper.connect(backend)
      helper.drop_tables(db, TABLES)
      m = declare(db)
      loam.create_tables(db, { m.Customer, m.Profile, m.Order, m.Product, m.Item, m.Tag,
                               m.OrderTag, m.Shipment, m.Parcel, m.Employee })
      d = seed(m)
    end)

    after_each(function()
      helper.finish(db, TABLES)
    end)

    describe("declaring", function()
      it("keeps each relation's kind, keys and target", function()
        local r = m.Order.relations
        assert.are.same({ "customer", "items", "tags", "shipments" }, m.Order._relation_names)
        assert.are.equal("belongs_to", r.customer.kind)
        assert.are.same({ "customer_id" }, r.customer.owner_keys)
        assert.are.same({ "id" }, r.customer.target_keys)
        assert.are.equal(m.Customer, r.customer.target)
        assert.is_true(r.customer.one)
        assert.are.equal("has_many", r.items.kind)
        assert.are.same({ "id" }, r.items.owner_keys)
        assert.are.same({ "order_id" }, r.items.target_keys)
        assert.is_false(r.items.one)
        assert.are.equal("order_tags", r.tags.through)
        assert.are.same({ "order_id" }, r.tags.through_owner)
        assert.are.same({ "tag_id" }, r.tags.through_target)
        assert.are.same({ "order_id", "no" }, m.Parcel.relations.shipment.target_keys)
      end)

      it("finds a key from the foreign keys the models declare", function()
        -- Item:belongs_to("product") found product_id; Customer:has_one found
        -- profiles.customer_id, the one column of profiles referencing customers.
        assert.are.same({ "product_id" }, m.Item.relations.product.owner_keys)
        assert.are.same({ "customer_id" }, m.Customer.relations.profile.target_keys)
        assert.are.same({ "manager_id" }, m.Employee.relations.manager.owner_keys)
      end)

      it("returns the model, so declarations chain", function()
        local A = db:model("a_things", { loam.id() })
        local B = db:model("b_things", { loam.id(), loam.bigint("a_id", { references = A }) })
        assert.are.equal(B, B:belongs_to("a", A):belongs_to("a_again", A, { key = "a_id" }))
      end)

      -- Runs the declaration in 'f', which must raise misuse naming the
      -- line the declaration starts on (the line 'f' is defined on).
      local function refused(f)
        local err = catch(f)
        assert.are.equal("misuse", err.code)
        assert.are.equal(at(debug.getinfo(f, "S").linedefined), err.where)
        return err
      end

      it("refuses a key that is not a column, naming model, relation and line", function()
        local err = refused(function() m.Order:belongs_to("buyer", m.Customer,
          { key = "buyer_id" }) end)
        assert.are.equal("orders.buyer: 'key': 'buyer_id' is not a column of orders (columns: "
          .. "id, customer_id, status, total_cents)", err.message)
        assert.are.equal("orders", err.model)
        assert.are.equal("buyer", err.relation)
        err = refused(function() m.Customer:has_many("buys", m.Order, { key = "buyer_id" }) end)
        assert.are.equal("customers.buys: 'key': 'buyer_id' is not a column of orders (columns: "
          .. "id, customer_id, status, total_cents)", err.message)
        err = refused(function() m.Order:belongs_to("c2", m.Customer, { references = "mail" }) end)
        assert.matches("^orders.c2: 'references': 'mail' is not a column of customers", err.message)
      end)

      it("refuses names that clash with a column, a method, an option or a relation", function()
        local err = refused(function() m.Order:belongs_to("status", m.Customer,
          { key = "customer_id" }) end)
        assert.are.equal("orders.status: the name is a column of orders; name the relation "
          .. "differently", err.message)
        err = refused(function() m.Order:has_many("save", m.Item) end)
        assert.are.equal("orders.save: a relation of this name would hide the instance method "
          .. "'save'", err.message)
        function m.Order.methods.summary() return "" end
        err = refused(function() m.Order:has_many("summary", m.Item) end)
        assert.matches("would hide the instance method 'summary'", err.message)
        err = refused(function() m.Order:has_many("limit", m.Item) end)
        assert.are.equal("orders.limit: 'limit' is an option of include and to_table tables "
          .. "and cannot name a relation", err.message)
        err = refused(function() m.Order:has_many("items", m.Item) end)
        assert.are.equal("orders.items: the relation is declared twice", err.message)
        err = refused(function() m.Order:has_many("two words", m.Item) end)
        assert.are.equal('orders.has_many: the relation name must be a Lua identifier, got '
          .. 'string ("two words")', err.message)
      end)

      it("refuses bad targets and options", function()
        local err = refused(function() m.Order:belongs_to("buyer", "customers") end)
        assert.are.equal('orders.buyer: the target must be a model, got string ("customers")',
          err.message)
        err = refused(function() m.Order:belongs_to("buyer", m.Customer,
          { keys = "customer_id" }) end)
        assert.are.equal("orders.buyer: unknown belongs_to option 'keys'", err.message)
        err = refused(function() m.Order:has_one("tag", m.Tag, { through = "order_tags" }) end)
        assert.are.equal("orders.tag: unknown has_one option 'through' (many-to-many relations "
          .. "are has_many ... through)", err.message)
        err = refused(function() m.Order:belongs_to("buyer", m.Customer, "customer_id") end)
        assert.are.equal('orders.buyer: options must be a table, got string ("customer_id")',
          err.message)
        err = refused(function() m.Order:belongs_to("buyer", m.Customer, { key = "customer_id",
          inverse = 3 }) end)
        assert.are.equal("orders.buyer: 'inverse' must be a relation name, got integer (3)",
          err.message)
        local other <close> = loam.connect("sqlite::memory:")
        local Far = other:model("far", { loam.id() })
        err = refused(function() m.Order:belongs_to("far", Far, { key = "customer_id" }) end)
        assert.are.equal("orders.far: orders and far are declared on different databases",
          err.message)
      end)

      it("refuses keys whose types differ or whose lengths differ", function()
        local err = refused(function() m.Order:belongs_to("by_status", m.Customer,
          { key = "status" }) end)
        assert.are.equal("orders.by_status: key orders.status (text) cannot match customers.id "
          .. "(id): the types differ", err.message)
        err = refused(function() m.Parcel:belongs_to("ship", m.Shipment, { key = "order_id" }) end)
        assert.are.equal("parcels.ship: the key has 1 column(s) (order_id) but matches 2 "
          .. "(order_id, no)", err.message)
      end)

      it("refuses a missing key it cannot find", function()
        local err = refused(function() m.Product:has_many("tags", m.Tag) end)
        assert.are.equal("products.tags: no 'key' given and none found (not exactly one column "
          .. "of tags references products)", err.message)
        err = refused(function() m.Tag:belongs_to("product", m.Product) end)
        assert.are.equal("tags.product: no 'key' given and none found (no column product_id, "
          .. "and not exactly one column referencing products)", err.message)
        err = refused(function() m.Order:has_many("labels", m.Tag, { through = "order_tags",
          key = "order_id" }) end)
        assert.are.equal("orders.labels: a relation through order_tags needs 'target_key' (the "
          .. "join table's column(s) matching tags)", err.message)
        err = refused(function() m.Order:has_many("labels", m.Tag, { through = "tags", key = "id",
          target_key = "id" }) end)
        assert.are.equal("orders.labels: 'through' names tags itself; it must be the join table",
          err.message)
      end)

      it("reports a wrong inverse when first used, naming the declaring line", function()
        local line = next_line()
        m.Order:has_many("lines", m.Item, { inverse = "product" })
        local err = catch(function() return m.Order:include("lines") end)
        assert.are.equal("misuse", err.code)
        assert.are.equal("orders.lines: inverse 'product': order_items.product does not lead "
          .. "back to orders over the same keys", err.message)
        assert.are.equal(at(line), err.where)
        m.Order:has_many("lines2", m.Item, { inverse = "nothing" })
        err = catch(function() return m.Order:include("lines2") end)
        assert.are.equal("orders.lines2: inverse 'nothing': order_items has no such relation",
          err.message)
      end)

      it("keeps relations out of the instance's fields", function()
        local o = m.Order:include("customer"):where { id = d.o1.id }:first()
        assert.is_nil(rawget(o, "customer"))
        assert.are.equal("ada@example.com", o.customer.email)
        local keys = {}
        for k in pairs(o) do keys[#keys + 1] = k end
        table.sort(keys)
        assert.are.same({ "customer_id", "id", "status", "total_cents" }, keys)
        local line
        local err = catch(function()
          line = next_line()
          o.customer = d.bob
        end)
        assert.are.equal("misuse", err.code)
        assert.are.equal("orders.customer is a relation, not a column: set customer_id instead",
          err.message)
        assert.are.equal(at(line), err.where)
        assert.are.equal("orders", err.model)
        assert.are.equal("customer", err.field)
        err = catch(function() o.items = {} end)
        assert.are.equal("orders.items is a relation, not a column: relations are loaded "
          .. "(include, loam.preload), not assigned", err.message)
      end)
    end)

    describe("include, batched", function()
      it("loads belongs_to, has_many, has_one and through relations", function()
        local n, orders = counting(db, function()
          return m.Order:include("customer", "items", "tags"):order_by("id"):all()
        end)
        assert.are.equal(4, n)  -- orders, then customers + items + tags in one call
        assert.are.same({ "ada@example.com", "ada@example.com", "bob@example.com" },
          { orders[1].customer.email, orders[2].customer.email, orders[3].customer.email })
        assert.is_nil(orders[4].customer)  -- a NULL key
        assert.are.same({ 2, 1, 0, 1 }, { #orders[1].items, #orders[2].items,
                                          #orders[3].items, #orders[4].items })
        local names = pluck(orders[1].tags, "name")
        table.sort(names)
        assert.are.same({ "gift", "rush" }, names)
        assert.are.same({ "gift" }, pluck(orders[2].tags, "name"))
        assert.are.same({}, orders[3].tags)
        -- Equal keys load one row: ada's two orders share her instance.
        assert.are.equal(orders[1].customer, orders[2].customer)
        local customers = m.Customer:include("profile"):order_by("id"):all()
        assert.are.equal("likes fruit", customers[1].profile.bio)
        assert.is_nil(customers[2].profile)
        assert.are.equal(customers[1], customers[1].profile.customer)  -- the inverse
      end)

      it("costs one query per relation whatever the number of parents", function()
        for i = 1, 50 do
          local o = m.Order:create { customer_id = d.bob.id, total_cents = i }
          m.Item:create { order_id = o.id, qty = i }
        end
        local n, orders = counting(db, function()
          return m.Order:include("customer", "items"):all()
        end)
        assert.are.equal(3, n)
        assert.are.equal(54, #orders)
        n = counting(db, function()
          return m.Order:include("customer", "items"):limit(2):all()
        end)
        assert.are.equal(3, n)
      end)

      it("sets the inverse without another query", function()
        local n = counting(db, function()
          local customers = m.Customer:include("orders"):order_by("id"):all()
          for _, c in ipairs(customers) do
            for _, o in ipairs(c.orders) do
              assert.are.equal(c, o.customer)
            end
          end
          local orders = m.Order:include("items"):all()
          for _, o in ipairs(orders) do
            for _, it in ipairs(o.items) do
              assert.are.equal(o, it.order)
            end
          end
        end)
        assert.are.equal(4, n)
      end)

      it("loads nested relations, one level per call", function()
        local calls = batch_calls(db, function()
          local n, customers = counting(db, function()
            return m.Customer:include("profile", { orders = { "tags", items = "product" } })
                             :order_by("id"):all()
          end)
          assert.are.equal(6, n)
          return customers
        end)
        -- customers; profiles + orders; tags + items; products
        assert.are.same({ 2, 2, 1 }, calls)
        local customers = m.Customer:include("profile", { orders = { "tags", items = "product" } })
                                    :order_by("id"):all()
        local ada = customers[1]
        assert.are.same({ 2, 1 }, { #ada.orders[1].items + 0, #ada.orders[2].items })
        local names = {}
        for _, o in ipairs(ada.orders) do
          for _, it in ipairs(o.items) do names[#names + 1] = it.product.name end
        end
        table.sort(names)
        assert.are.same({ "apple", "apple", "pear" }, names)
        assert.are.same({}, customers[3].orders)
      end)

      it("sends nothing for parents whose keys are all NULL, nor for no parents", function()
        local n, orders = counting(db, function()
          return m.Order:include("customer"):where { customer_id = loam.null }:all()
        end)
        assert.are.equal(1, n)
        assert.are.equal(1, #orders)
        assert.is_nil(orders[1].customer)
        n = counting(db, function()
          return m.Order:include("customer", { items = "product" }):where { id = -1 }:all()
        end)
        assert.are.equal(1, n)
      end)

      it("gives nil for a belongs_to whose row no longer exists", function()
        -- shipments.order_id declares no foreign key, so its order can go.
        m.Shipment:create { order_id = 9999, no = 1, carrier = "gone" }
        local ships = m.Shipment:include("order"):order_by("order_id"):all()
        assert.are.equal(d.o1.id, ships[1].order.id)
        assert.is_nil(ships[4].order)
        assert.are.equal(9999, ships[4].order_id)
      end)

      it("filters, orders, projects and limits per parent", function()
        local customers = m.Customer:include {
          orders = { where = { status = "paid" }, order_by = "-total_cents",
                     select = "total_cents" },
        }:order_by("id"):all()
        local ada = customers[1]
        assert.are.same({ 300 }, pluck(ada.orders, "total_cents"))
        -- The keys the loading needs come along with the selected columns.
        assert.are.same({ customer_id = ada.id, id = d.o1.id, total_cents = 300 },
          ada.orders[1]:to_table())
        local top = m.Customer:include { orders = { order_by = { "-total_cents" }, limit = 1 } }
                              :order_by("id"):all()
        assert.are.same({ 300 }, pluck(top[1].orders, "total_cents"))
        assert.are.same({ 50 }, pluck(top[2].orders, "total_cents"))
        assert.are.same({}, top[3].orders)
        local items = m.Order:include { items = { order_by = "-qty", limit = 1 } }
                             :where { id = d.o1.id }:first()
        assert.are.same({ 2 }, pluck(items.items, "qty"))
        -- Without order_by, a limit keeps the first rows by primary key.
        local first = m.Order:include { items = { limit = 1 } }:where { id = d.o1.id }:first()
        assert.are.same({ 1 }, pluck(first.items, "qty"))
        local raw = m.Customer:include { orders = { where = loam.raw("total_cents > ?", { 99 }) } }
                              :order_by("id"):all()
        assert.are.equal(2, #raw[1].orders)
        assert.are.equal(0, #raw[2].orders)
      end)

      it("adds to a query without changing it, merging repeated relations", function()
        local base = m.Order:order_by("id")
        local with = base:include("customer")
        local more = with:include { customer = "profile" }:include("items")
        local orders = more:all()
        assert.are.equal("likes fruit", orders[1].customer.profile.bio)
        assert.are.equal(2, #orders[1].items)
        local plain = base:all()
        local err = catch(function() return plain[1].customer end)
        assert.are.equal("not_loaded", err.code)
        local partial = with:all()
        err = catch(function() return partial[1].customer.profile end)
        assert.are.equal("not_loaded", err.code)
        local limited = with:include { customer = { include = "orders" } }
          :include { customer = { orders = { limit = 1 } } }:all()
        assert.are.equal(1, #limited[1].customer.orders)
        -- A later include's options replace the earlier ones, option by option.
        local q = m.Order:include { customer = { strategy = "joined" } }
        assert.matches("LEFT JOIN", (q:to_sql()))
        assert.is_nil((q:include { customer = { strategy = "batched" } }:to_sql()):find("JOIN"))
        local err = catch(function()
          return m.Customer:include { orders = { limit = 1 } }
                           :include { orders = { strategy = "joined" } }
        end)
        assert.are.equal("include orders: a per-parent limit needs the batched strategy",
          err.message)
      end)

      it("filters and projects a many-to-many relation on the target's columns", function()
        -- Both tags and the join table could hold a column of one name: the
        -- conditions name the target's own.
        local orders = m.Order:include { tags = { where = { name = "rush" }, select = "name" } }
                              :order_by("id"):all()
        assert.are.same({ "rush" }, pluck(orders[1].tags, "name"))
        assert.are.same({}, orders[2].tags)
        assert.are.same({ id = d.rush.id, name = "rush" }, orders[1].tags[1]:to_table())
      end)

      it("loads a self-referencing relation", function()
        local boss = m.Employee:create { name = "boss" }
        local mid = m.Employee:create { name = "mid", manager_id = boss.id }
        m.Employee:create { name = "dev", manager_id = mid.id }
        local all = m.Employee:include("manager", "reports"):order_by("id"):all()
        assert.is_nil(all[1].manager)
        assert.are.equal("boss", all[2].manager.name)
        assert.are.same({ "dev" }, pluck(all[2].reports, "name"))
        assert.are.equal(all[2], all[2].reports[1].manager)
      end)

      it("loads includes on first and paginate", function()
        local o = m.Order:include("customer", "items"):order_by("id"):first()
        assert.are.equal("ada@example.com", o.customer.email)
        assert.are.equal(2, #o.items)
        local page, cursor = m.Order:include("customer"):paginate { order = "id", limit = 3 }
        assert.are.equal(3, #page)
        assert.are.equal("bob@example.com", page[3].customer.email)
        local rest = m.Order:include("customer")
                            :paginate { order = "id", limit = 3, after = cursor }
        assert.is_nil(rest[1].customer)
      end)
    end)

    describe("include, joined", function()
      it("loads to-one relations with a LEFT JOIN in the same query", function()
        local q = m.Order:include { customer = { strategy = "joined" } }:order_by("id")
        local sql = q:to_sql()
        assert.matches('LEFT JOIN "customers" AS "__loam_j1" ON %("__loam_j1"."id" = '
          .. '"orders"."customer_id"%)', sql)
        assert.matches('"__loam_j1"."email" AS "__loam_j1_2"', sql, 1, true)
        local n, orders = counting(db, function() return q:all() end)
        assert.are.equal(1, n)
        assert.are.equal(4, #orders)
        assert.are.equal("ada@example.com", orders[1].customer.email)
        assert.are.equal(orders[1].customer, orders[2].customer)
        assert.is_nil(orders[4].customer)  -- no match: nil
        -- The aliased columns were split out of the order's own fields.
        assert.are.same({ "customer_id", "id", "status", "total_cents" }, (function()
          local keys = {}
          for k in pairs(orders[1]) do keys[#keys + 1] = k end
          table.sort(keys)
          return keys
        end)())
      end)

      it("qualifies the query's own columns, which the joined table may share", function()
        -- Both tables have 'id'; orders also has 'status', products have 'name'.
        local orders = m.Order
          :include { customer = { strategy = "joined", where = { tier = "pro" } } }
          :where { id = { d.o1.id, d.o2.id, d.o3.id, d.o4.id } }
          :select("id", "customer_id", "status"):order_by("-id"):all()
        assert.are.equal(4, #orders)
        assert.are.equal("ada@example.com", orders[3].customer.email)
        assert.is_nil(orders[2].customer)  -- bob is not pro: the ON condition filters him
      end)

      it("loads one joined collection, telling repeated rows apart", function()
        local q = m.Order:include {
          items = { strategy = "joined", order_by = "-qty",
                    include = { product = { strategy = "joined" } } },
          customer = { strategy = "joined" },
        }:order_by("id")
        local n, orders = counting(db, function() return q:all() end)
        assert.are.equal(1, n)
        assert.are.equal(4, #orders)
        assert.are.same({ 2, 1 }, pluck(orders[1].items, "qty"))
        assert.are.same({ "pear", "apple" }, { orders[1].items[1].product.name,
                                               orders[1].items[2].product.name })
        assert.are.same({}, orders[3].items)
        assert.is_nil(orders[4].items[1].product)
        assert.are.equal(orders[1], orders[1].items[1].order)
      end)

      it("joins into the batched query of a level", function()
        local n, orders = counting(db, function()
          return m.Order:include("customer", { items = { product = { strategy = "joined" } } })
                        :order_by("id"):all()
        end)
        assert.are.equal(3, n)  -- orders, then customers + items joined with products
        assert.are.equal("pear", orders[1].items[2].product.name)
      end)

      it("joins has_one, projections and a collection below a to-one relation", function()
        local customers = m.Customer:include { profile = { strategy = "joined", select = "bio" } }
                                    :order_by("id"):all()
        assert.are.equal("likes fruit", customers[1].profile.bio)
        assert.are.equal(customers[1], customers[1].profile.customer)  -- the inverse
        assert.is_nil(customers[2].profile)
        -- The loaded profile holds the selected column and the keys loading needs.
        assert.are.same({ id = d.profile.id, customer_id = d.ada.id, bio = "likes fruit" },
          customers[1].profile:to_table())
        -- A batched belongs_to whose statement joins a collection: rows repeat per
        -- item and are told apart, and each order is still one instance.
        local n, items = counting(db, function()
          return m.Item:include { order = { items = { strategy = "joined", order_by = "qty" } } }
                       :order_by("id"):all()
        end)
        assert.are.equal(2, n)
        assert.are.equal(items[1].order, items[2].order)
        assert.are.same({ 1, 2 }, pluck(items[1].order.items, "qty"))
        assert.are.same({ 4 }, pluck(items[4].order.items, "qty"))
      end)

      it("refuses a joined load of two collections, explaining why", function()
        local err = catch(function()
          return m.Order:include { items = { strategy = "joined" },
                                   shipments = { strategy = "joined" } }
        end)
        assert.are.equal("misuse", err.code)
        assert.are.equal("include: a joined load of orders.items and orders.shipments in one "
          .. "query is refused: it multiplies rows (each orders row comes back once per "
          .. "combination of their rows: 3 of one and 4 of the other make 12 rows, and each "
          .. "further collection multiplies again); load collections with the batched strategy "
          .. "(the default), one query per relation", err.message)
        err = catch(function()
          return m.Customer:include { orders = { strategy = "joined",
                                                 include = { items = { strategy = "joined" } } } }
        end)
        assert.matches("joined load of customers.orders and orders.items in one query is refused",
          err.message, 1, true)
        -- Added by a later include, too.
        err = catch(function()
          return m.Order:include { items = { strategy = "joined" } }
                        :include { shipments = { strategy = "joined" } }
        end)
        assert.matches("is refused", err.message)
      end)

      it("refuses a joined collection under limit/offset, and other joined misuse", function()
        local q = m.Order:include { items = { strategy = "joined" } }
        local err = catch(function() return q:limit(2):all() end)
        assert.are.equal("include: the joined collection orders.items cannot load under "
          .. "limit/offset (first, page, paginate): LIMIT would count the joined rows, one per "
          .. "order_items row, not the orders; use the batched strategy (the default)",
          err.message)
        err = catch(function() return q:first() end)
        assert.matches("cannot load under limit/offset", err.message)
        err = catch(function() return m.Order:include { tags = { strategy = "joined" } } end)
        assert.are.equal("include tags: the joined strategy loads direct relations; orders.tags "
          .. "goes through order_tags (use the batched strategy)", err.message)
        err = catch(function()
          return m.Order:include { customer = { strategy = "joined",
                                                where = loam.raw("tier = 'pro'") } }:all()
        end)
        assert.matches("^include customer: a joined relation takes conditions and orderings by "
          .. "column, not raw SQL", err.message)
        err = catch(function()
          return m.Customer:include { orders = { strategy = "joined", limit = 2 } }
        end)
        assert.are.equal("include orders: a per-parent limit needs the batched strategy",
          err.message)
        err = catch(function() return m.Order:include { customer = { strategy = "join" } } end)
        assert.are.equal('include customer: strategy must be "batched" or "joined", got string '
          .. '("join")', err.message)
      end)
    end)

    describe("bad includes", function()
      it("lists the relations a model has when a name is unknown", function()
        local line
        local err = catch(function()
          line = next_line()
          local q = m.Order:include("custmer")
          return q
        end)
        assert.are.equal("misuse", err.code)
        assert.are.equal("include: orders has no relation 'custmer' (relations: customer, "
          .. "items, tags, shipments)", err.message)
        assert.are.equal(at(line), err.where)
        err = catch(function() return m.Order:include { items = "produce" } end)
        assert.are.equal("include: order_items has no relation 'produce' (relations: order, "
          .. "product)", err.message)
        err = catch(function() return m.Tag:include("orders") end)
        assert.are.equal("include: tags has no relation 'orders' (it declares none)",
          err.message)
      end)

      it("refuses an include table that contains itself, and takes a relation written again",
         function()
        local loop = {}
        loop.orders = { customer = loop }
        local line
        local err = catch(function()
          line = next_line()
          local q = m.Customer:include(loop)
          return q
        end)
        assert.are.equal("misuse", err.code)
        assert.are.equal("include customer: the include table contains itself; write each "
          .. "level to load (an include is finite)", err.message)
        assert.are.equal(at(line), err.where)
        local self_loop = {}
        self_loop[1] = self_loop
        err = catch(function() return m.Customer:include(self_loop) end)
        assert.are.equal("include: the include table contains itself; write each level to "
          .. "load (an include is finite)", err.message)
        -- A relation written again further down is one more level, and loads.
        local n, orders = counting(db, function()
          return m.Order:include { customer = { orders = "customer" } }:order_by("id"):all()
        end)
        assert.are.equal(3, n)
        assert.are.equal(orders[1].customer, orders[1].customer.orders[1].customer)
        -- The same relation on two different paths is no cycle.
        local orders = m.Order:include("customer", { items = { order = "customer" } }):all()
        assert.is_table(orders[1].items[1].order.customer)
      end)

      it("refuses bad items, options and queries that load no instances", function()
        local err = catch(function() return m.Order:include() end)
        assert.are.equal("include: no relations given", err.message)
        err = catch(function() return m.Order:include(42) end)
        assert.are.equal("include: expected a relation name or a table, got integer (42)",
          err.message)
        err = catch(function() return m.Order:include { customer = 3 } end)
        assert.are.equal("include customer: expected true, a relation name or a table, got "
          .. "integer (3)", err.message)
        err = catch(function() return m.Order:include { customer = { limit = 2 } } end)
        assert.are.equal("include customer: limit applies to collections, and orders.customer "
          .. "is a belongs_to", err.message)
        err = catch(function() return m.Order:include { items = { limit = 0 } } end)
        assert.are.equal("include items: limit (per orders) must be an integer >= 1, got "
          .. "integer (0)", err.message)
        err = catch(function()
          return m.Order:include { items = { select = { "qty", "nope" } } }
        end)
        assert.matches("^order_items: unknown column 'nope'", err.message)
        err = catch(function() return m.Order:include { items = { where = { qty = "many" } } } end)
        assert.are.equal("validation_error", err.code)
        err = catch(function() return db:table("orders"):include("customer") end)
        assert.are.equal("include: orders is a table query, whose rows have no relations; "
          .. "start from a model", err.message)
        err = catch(function()
          return m.Order:include("customer"):select({ "total_cents", as = "t" }):all()
        end)
        assert.are.equal("include: the query selects expressions other than columns of "
          .. "orders, so its rows are not instances and cannot hold relations", err.message)
        err = catch(function()
          for _ in m.Order:include("customer"):each() do end
        end)
        assert.matches("^each: cannot load includes while streaming", err.message)
      end)

      it("needs the key columns on the parents, of the right type", function()
        local err = catch(function()
          return m.Order:select("id", "total_cents"):include("customer"):all()
        end)
        assert.are.equal("misuse", err.code)
        assert.are.equal("orders.customer needs column customer_id, which the instance does "
          .. "not hold (select it to load customer)", err.message)
        local o = m.Order:find(d.o1.id)
        o.customer_id = "ada"
        local line
        err = catch(function()
          line = next_line()
          loam.preload({ o }, "customer")
        end)
        assert.are.equal("validation_error", err.code)
        assert.are.equal('orders.customer_id: expected integer, got string ("ada")', err.message)
        assert.are.equal(at(line), err.where)
      end)
    end)

    describe("strict loading", function()
      it("raises not_loaded naming model, relation, fix and line", function()
        local orders = m.Order:all()
        local line
        local err = catch(function()
          line = next_line()
          return orders[1].customer
        end)
        assert.are.equal("not_loaded", err.code)
        assert.are.equal(loam.Error, getmetatable(err))
        assert.are.equal("orders", err.model)
        assert.are.equal("customer", err.relation)
        assert.are.equal('orders.customer is not loaded: add include("customer") to the query '
          .. 'that loaded it, or call loam.preload(list, "customer") (strict loading; lazy '
          .. 'loading is opt-in: q:lazy(), Model:lazy_loading(true), db:lazy_loading(true))',
          err.message)
        assert.are.equal(at(line), err.where)
        assert.matches("^spec/relation_spec.lua:%d+: loam.not_loaded: orders.customer",
          tostring(err))
      end)

      it("names the include path from the query that loaded a nested instance", function()
        local orders = m.Order:include { items = "order" }:all()
        local err = catch(function() return orders[1].items[1].product end)
        assert.are.equal('order_items.product is not loaded: add include{ items = "product" } '
          .. 'to the query on orders that loaded it, or call loam.preload(list, "product") '
          .. '(strict loading; lazy loading is opt-in: q:lazy(), Model:lazy_loading(true), '
          .. 'db:lazy_loading(true))', err.message)
        local customers = m.Customer:include { orders = "items" }:all()
        err = catch(function() return customers[1].orders[1].items[1].product end)
        assert.matches('add include{ orders = { items = "product" } } to the query on customers',
          err.message, 1, true)
        local single = m.Order:find(d.o1.id)
        err = catch(function() return single.items end)
        assert.are.equal("not_loaded", err.code)
      end)

      it("reads loaded relations as plain values, nil for no row", function()
        local o = m.Order:include("customer", "items"):where { id = d.o4.id }:first()
        assert.is_nil(o.customer)
        assert.are.equal(1, #o.items)
        local e = catch(function() return o.items[1].product end)
        assert.are.equal("not_loaded", e.code)
      end)

      it("forgets relations whose keys a save changed, and all of them on reload", function()
        local o = m.Order:include("customer", "items"):where { id = d.o1.id }:first()
        o.total_cents = 301
        o:save()
        assert.are.equal("ada@example.com", o.customer.email)  -- its key did not change
        o.customer_id = d.bob.id
        o:save()
        local err = catch(function() return o.customer end)
        assert.are.equal("not_loaded", err.code)
        assert.are.equal(2, #o.items)
        o:reload()
        err = catch(function() return o.items end)
        assert.are.equal("not_loaded", err.code)
      end)
    end)

    describe("lazy loading", function()
      it("loads for the whole result set in one query, per model", function()
        m.Order:lazy_loading(true)
        local orders = m.Order:order_by("id"):all()
        local n = counting(db, function()
          for _, o in ipairs(orders) do
            local _ = o.customer
            local _ = o.items
          end
        end)
        assert.are.equal(2, n)
        assert.are.equal("bob@example.com", orders[3].customer.email)
        assert.is_nil(orders[4].customer)
        assert.are.equal(orders[1], orders[1].items[1].order)  -- the inverse, as eagerly
        -- Items came as one set: their products load together, once Item is lazy too.
        local err = catch(function() return orders[1].items[1].product end)
        assert.are.equal("not_loaded", err.code)
        m.Item:lazy_loading(true)
        n = counting(db, function()
          for _, o in ipairs(orders) do
            for _, it in ipairs(o.items) do local _ = it.product end
          end
        end)
        assert.are.equal(1, n)
        m.Order:lazy_loading(false)
        err = catch(function() return m.Order:first().customer end)
        assert.are.equal("not_loaded", err.code)
      end)

      it("is switched per query and per connection, the query first", function()
        local orders = m.Order:order_by("id"):lazy():all()
        local n = counting(db, function()
          for _, o in ipairs(orders) do local _ = o.customer end
        end)
        assert.are.equal(1, n)
        -- The query's flag goes with the instances it loaded, nested ones too.
        n = counting(db, function()
          for _, o in ipairs(orders) do
            local c = o.customer
            if c then local _ = c.profile end
          end
        end)
        assert.are.equal(1, n)
        assert.are.equal(db, db:lazy_loading(true))
        n = counting(db, function()
          for _, t in ipairs(m.Order:all()) do local _ = t.items end
        end)
        assert.are.equal(2, n)
        m.Order:lazy_loading(false)  -- the model's say comes before the connection's
        local err = catch(function() return m.Order:all()[1].items end)
        assert.are.equal("not_loaded", err.code)
        m.Customer:lazy_loading(true)
        err = catch(function() return m.Customer:order_by("id"):lazy(false):all()[1].orders end)
        assert.are.equal("not_loaded", err.code)  -- the query's say comes first
        assert.is_table(m.Customer:order_by("id"):all()[1].orders)
        db:lazy_loading(false)
        local e2 = catch(function() return m.Profile:all()[1].customer end)
        assert.are.equal("not_loaded", e2.code)
      end)

      it("loads once per set, even on instances kept after the list is gone", function()
        m.Order:lazy_loading(true)
        local first = m.Order:order_by("id"):all()[1]
        collectgarbage()
        local n = counting(db, function() return first.customer end)
        assert.are.equal(1, n)
        assert.are.equal("ada@example.com", first.customer.email)
        -- Streamed rows are sets of one: on SQLite each read loads for its
        -- row alone; PostgreSQL's connection belongs to the stream meanwhile.
        local n2 = counting(db, function()
          for o in m.Order:where { customer_id = d.ada.id }:lazy():each() do
            if pg then
              local err = catch(function() return o.customer end)
              assert.matches("connection is busy streaming another result", err.message)
            else
              assert.are.equal("ada@example.com", o.customer.email)
            end
          end
        end)
        if not pg then assert.are.equal(3, n2) end
        local o = m.Order:where { id = d.o3.id }:lazy():first()
        assert.are.equal("bob@example.com", o.customer.email)
      end)

      it("has one spelling per switch: Model:lazy() is a query, lazy_loading the defaults",
         function()
        -- Model:lazy() starts a query like every query method of a model.
        local orders = m.Order:lazy():order_by("id"):all()
        local n = counting(db, function()
          for _, o in ipairs(orders) do local _ = o.customer end
        end)
        assert.are.equal(1, n)
        assert.is_true(query.is_query(m.Order:lazy()))
        assert.is_true(query.is_query(m.Order:lazy(false)))
        local err = catch(function() return m.Order:lazy(false):all()[1].customer end)
        assert.are.equal("not_loaded", err.code)
        -- The defaults: the model's and the connection's, booleans only.
        local line
        err = catch(function()
          line = next_line()
          local M = m.Order:lazy_loading("yes")
          return M
        end)
        assert.are.equal("misuse", err.code)
        assert.are.equal('orders: lazy_loading expects true or false, got string ("yes") '
          .. "(q:lazy() and orders:lazy() start a query that loads lazily)", err.message)
        assert.are.equal(at(line), err.where)
        err = catch(function() return db:lazy_loading() end)
        assert.are.equal("db:lazy_loading expects true or false, got nil", err.message)
        err = catch(function() return m.Order:where { id = 1 }:lazy("no") end)
        assert.are.equal("lazy: true or false expected, got string", err.message)
        err = catch(function() return m.Order:lazy("no") end)
        assert.are.equal("lazy: true or false expected, got string", err.message)
        -- Nothing was switched on by the refused calls.
        err = catch(function() return m.Order:order_by("id"):all()[1].customer end)
        assert.are.equal("not_loaded", err.code)
      end)
    end)

    describe("preload", function()
      it("loads relations for instances in hand, like include", function()
        local orders = m.Order:order_by("id"):all()
        local n = counting(db, function()
          assert.are.equal(orders, loam.preload(orders, "customer", { items = "product" }))
        end)
        assert.are.equal(3, n)
        assert.are.equal("apple", orders[1].items[1].product.name)
        assert.are.equal("ada@example.com", orders[2].customer.email)
        -- What is loaded already is not loaded again, and nested levels still load.
        n = counting(db, function() loam.preload(orders, { customer = "profile" }) end)
        assert.are.equal(1, n)
        assert.are.equal("likes fruit", orders[1].customer.profile.bio)
        n = counting(db, function() loam.preload(orders, "customer") end)
        assert.are.equal(0, n)
      end)

      it("loads a joined top-level relation batched", function()
        local orders = m.Order:all()
        local n = counting(db, function()
          loam.preload(orders, { customer = { strategy = "joined" } })
        end)
        assert.are.equal(1, n)
        assert.is_table(orders[1].customer)
      end)

      it("refuses what is not a list of instances of one model", function()
        assert.are.same({}, loam.preload({}, "customer"))
        local err = catch(loam.preload, "orders", "customer")
        assert.are.equal('preload: expected an array of instances, got string ("orders")',
          err.message)
        err = catch(loam.preload, { {} }, "customer")
        assert.are.equal("preload: item #1 is not an instance of a model, got table",
          err.message)
        err = catch(loam.preload, { d.o1, d.ada }, "customer")
        assert.are.equal("preload: item #2 is not an instance of orders, got loam.Instance",
          err.message)
        err = catch(loam.preload, { d.o1 })
        assert.are.equal("include: no relations given", err.message)
        err = catch(loam.preload, { d.o1 }, "buyer")
        assert.matches("^include: orders has no relation 'buyer'", err.message)
      end)
    end)

    describe("to_table", function()
      it("includes the loaded relations it is asked for, recursively", function()
        local o = m.Order:include("customer", { items = "product" }, "tags")
                         :where { id = d.o1.id }:first()
        local t = o:to_table { include = { "customer", items = { "product", only = { "qty" } } } }
        assert.are.same({
          id = d.o1.id, customer_id = d.ada.id, status = "paid", total_cents = 300,
          customer = { id = d.ada.id, email = "ada@example.com", tier = "pro" },
          items = { { qty = 1, product = { id = d.apple.id, name = "apple" } },
                    { qty = 2, product = { id = d.pear.id, name = "pear" } } },
        }, t)
        assert.is_nil(getmetatable(t.customer))
        -- Without include, columns only, as before.
        assert.is_nil(o:to_table().customer)
      end)

      it("includes every loaded relation with include = true, not going back up", function()
        local c = m.Customer:include { orders = "items" }:where { id = d.ada.id }:first()
        local t = c:to_table { include = true, only = { "email" } }
        assert.are.equal("ada@example.com", t.email)
        assert.is_nil(t.id)
        assert.are.equal(2, #t.orders)
        assert.is_nil(t.orders[1].customer)  -- the inverse leads back to c
        assert.are.equal(2, #t.orders[1].items)
        assert.is_nil(t.orders[1].items[1].order)
        assert.is_nil(t.profile)  -- not loaded: left out
      end)

      it("never queries: it works on a closed connection", function()
        local orders = m.Order:include("customer", "items"):order_by("id"):all()
        db:close()
        local t = orders[4]:to_table { include = { "customer", "items" }, nulls = true }
        assert.are.equal(loam.null, t.customer)
        assert.are.equal(loam.null, t.customer_id)
        assert.are.equal(4, t.items[1].qty)
        assert.are.equal(loam.null, t.items[1].product_id)
        assert.is_nil(orders[4]:to_table { include = "customer" }.customer)
        local err = catch(orders[1].to_table, orders[1], { include = { items = "product" } })
        assert.are.equal("not_loaded", err.code)  -- raised, not loaded, even when lazy
        m.Item:lazy_loading(true)
        err = catch(orders[1].to_table, orders[1], { include = { items = "product" } })
        assert.are.equal("not_loaded", err.code)
        err = catch(orders[1].to_table, orders[1], { include = "buyer" })
        assert.are.equal("to_table: orders has no relation 'buyer' (relations: customer, "
          .. "items, tags, shipments)", err.message)
        local loop = {}
        loop.items = { order = loop }
        m.Item:lazy_loading(false)
        local o = orders[1]
        err = catch(o.to_table, o, { include = loop })
        assert.are.equal("to_table include: an include table contains itself", err.message)
        err = catch(o.to_table, o, { include = { customer = { only = { "mail" } } } })
        assert.matches("^customers: unknown column 'mail'", err.message)
      end)
    end)

    describe("composite keys", function()
      it("match exact tuples, never a per-column superset", function()
        local ships = m.Shipment:where(op.or_ {
          { order_id = d.o1.id, no = 2 }, { order_id = d.o2.id, no = 1 },
        }):order_by("order_id"):all()
        assert.are.equal(2, #ships)
        local before = db:stats()
        loam.preload(ships, "parcels")
        local after = db:stats()
        assert.are.equal(1, after.queries - before.queries)
        -- (1,1) and (2,2) match a per-column IN; exact tuples read 2 rows.
        assert.are.equal(2, after.rows - before.rows)
        assert.are.same({ 300 }, pluck(ships[1].parcels, "grams"))
        assert.are.same({ 400 }, pluck(ships[2].parcels, "grams"))
        assert.are.equal(ships[1], ships[1].parcels[1].shipment)
      end)

      it("load belongs_to over a composite key, nil where the row is missing", function()
        local parcels = m.Parcel:include("shipment"):order_by("id"):all()
        assert.are.same({ "ups", "ups", "dhl", "fedex" }, {
          parcels[1].shipment.carrier, parcels[2].shipment.carrier,
          parcels[3].shipment.carrier, parcels[4].shipment.carrier })
        assert.are.equal(parcels[1].shipment, parcels[2].shipment)
        assert.is_nil(parcels[5].shipment)  -- (2,2) does not exist
        local orders = m.Order:include { shipments = { "parcels", order_by = "no" } }
                              :order_by("id"):all()
        local ships = orders[1].shipments
        assert.are.same({ 2, 1 }, { #ships[1].parcels, #ships[2].parcels })
        local p = m.Parcel:create { order_id = d.o1.id, shipment_no = loam.null, grams = 1 }
        local n = counting(db, function() loam.preload({ p }, "shipment") end)
        assert.are.equal(0, n)  -- a key with a NULL matches nothing and is not sent
        assert.is_nil(p.shipment)
      end)
    end)
  end)
end
