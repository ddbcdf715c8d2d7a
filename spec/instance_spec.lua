-- spec/instance_spec.lua: instances of models on every backend: create
-- with defaults coming back, find and find_by, save and update sending the
-- changed columns only (and nothing when nothing changed), delete, reload,
-- insert_many in chunks, upsert, and serialization that never queries.
--
-- "Only the changed columns" is shown without spying on the connection:
-- another writer changes a column the instance also holds, and saving a
-- different column must leave that write in place.  "No query" is shown
-- by closing the connection first: any statement would then raise.

local loam = require "loam"
local helper = require "spec.helper"
local model = require "loam.model"

local catch, next_line = helper.catch, helper.next_line

local function at(line)
  return "spec/instance_spec.lua:" .. line .. ": "
end

local TABLES = { "orders", "customers", "memberships" }

local function declare(db)
  local Customer = db:model("customers", {
    loam.id(),
    loam.text("email", { length = 255, null = false, unique = true }),
    loam.enum("tier", { "free", "pro" }, { default = "free" }),
    loam.boolean("active", { default = true }),
    loam.text("name"),
    loam.json("prefs"),
    loam.timestamp("created_at", { default = loam.now }),
  })
  local Order = db:model("orders", {
    loam.id(),
    loam.bigint("customer_id", { null = false, references = Customer, on_delete = "cascade" }),
    loam.integer("total_cents", { null = false, check = "total_cents >= 0" }),
    loam.text("note"),
  })
  local Membership = db:model("memberships", {
    loam.bigint("user_id"),
    loam.bigint("group_id"),
    loam.text("role", { null = false }),
  }, { primary_key = { "user_id", "group_id" } })
  return Customer, Order, Membership
end

local function row(db, sql, params)
  return db:query(sql, params)[1]
end

for backend, pg in helper.each_backend() do
  describe(backend.label .. ":", function()
    local db, Customer, Order, Membership

    before_each(function()
      db = helper.connect(backend)
      helper.drop_tables(db, TABLES)
      Customer, Order, Membership = declare(db)
      loam.create_tables(db, { Customer, Order, Membership })
    end)

    after_each(function()
      helper.finish(db, TABLES)
    end)

    describe("create", function()
      it("inserts and returns every column, defaults included", function()
        local c = Customer:create { email = "a@example.com" }
        assert.are.equal("integer", math.type(c.id))
        assert.are.equal("a@example.com", c.email)
        assert.are.equal("free", c.tier)
        assert.are.equal(true, c.active)
        assert.are.equal(loam.null, c.name)
        assert.matches("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d", c.created_at)
        assert.are.equal(1, helper.count(db, "customers"))
        assert.are.equal("a@example.com", row(db, "select email from customers where id = ?",
          { c.id }).email)
      end)

      it("makes instances that keep values as plain fields and know their model", function()
        local c = Customer:create { email = "a@example.com", prefs = { theme = "dark" } }
        assert.are.equal("a@example.com", rawget(c, "email"))
        assert.are.equal(Customer, model.of(c))
        assert.is_nil(model.of({}))
        assert.are.equal(Customer.methods.save, c.save)
        assert.are.equal("loam.Instance(customers id=" .. c.id .. ")", tostring(c))
        assert.is_string(c.prefs)  -- JSON comes back as text
        function Customer.methods:label()
          return self.email .. " (" .. self.tier .. ")"
        end
        assert.are.equal("a@example.com (free)", c:label())
        assert.is_nil(Order.methods.label)
      end)

      it("raises database errors naming the caller", function()
        Customer:create { email = "a@example.com" }
        local line
        local err = catch(function()
          line = next_line()
          Customer:create { email = "a@example.com" }
        end)
        assert.are.equal("unique_violation", err.code)
        assert.are.equal(at(line), err.where)
        assert.are.equal(1, helper.count(db, "customers"))
      end)

      it("refuses what is not a table of values", function()
        local err = catch(Customer.create, Customer, "a@example.com")
        assert.are.equal("misuse", err.code)
        assert.are.equal('customers: create expects a table of column values, got string '
          .. '("a@example.com")', err.message)
      end)
    end)

    describe("find", function()
      it("finds by primary key, and gives nil when there is no row", function()
        local c = Customer:create { email = "a@example.com" }
        local found = Customer:find(c.id)
        assert.are.same(c:to_table(), found:to_table())
        assert.are.equal(Customer, model.of(found))
        assert.is_nil(Customer:find(c.id + 1))
        assert.are.equal(c.id, Customer:find { id = c.id }.id)
        assert.are.equal(c.id, Customer:find(c.id + 0.0).id)
      end)

      it("finds by a composite key, in order or by name", function()
        Membership:create { user_id = 1, group_id = 2, role = "owner" }
        Membership:create { user_id = 2, group_id = 1, role = "guest" }
        assert.are.equal("owner", Membership:find(1, 2).role)
        assert.are.equal("guest", Membership:find { group_id = 1, user_id = 2 }.role)
        assert.is_nil(Membership:find(1, 1))
        local err = catch(Membership.find, Membership, 1)
        assert.are.equal("misuse", err.code)
        assert.are.equal("memberships: find expects 2 key value(s) (user_id, group_id), got 1",
          err.message)
        err = catch(Membership.find, Membership, { user_id = 1 })
        assert.are.equal("memberships: find needs a value for group_id", err.message)
        err = catch(Membership.find, Membership, { user_id = 1, group_id = 2, role = "x" })
        assert.are.equal("misuse", err.code)
        assert.are.equal('memberships: find takes the primary key (user_id, group_id), not '
          .. 'string ("role"); find_by takes any columns', err.message)
      end)

      it("finds by any columns with find_by", function()
        Customer:create { email = "a@example.com" }
        local b = Customer:create { email = "b@example.com", tier = "pro" }
        assert.are.equal(b.id, Customer:find_by { tier = "pro" }.id)
        assert.are.equal(b.id, Customer:find_by { email = "b@example.com", tier = "pro" }.id)
        assert.is_nil(Customer:find_by { email = "c@example.com" })
        assert.are.equal(b.id, Customer:find_by { name = loam.null, tier = "pro" }.id)
        local err = catch(Customer.find_by, Customer, { tier = "gold" })
        assert.are.equal("validation_error", err.code)
      end)
    end)

    describe("save", function()
      it("sends the changed columns only", function()
        local c = Customer:create { email = "a@example.com", name = "Ann" }
        -- Another writer changes the name after the instance was loaded.
        db:exec("update customers set name = ? where id = ?", { "Anne", c.id })
        c.tier = "pro"
        assert.are.equal(c, c:save())
        local r = row(db, "select name, tier from customers where id = ?", { c.id })
        assert.are.equal("Anne", r.name)
        assert.are.equal("pro", r.tier)
        -- The instance now holds the row as the database returned it.
        assert.are.equal("Anne", c.name)
      end)

      it("sends nothing when nothing changed", function()
        local c = Customer:create { email = "a@example.com" }
        c.tier = "free"  -- the value it already has
        db:close()
        assert.are.equal(c, c:save())
        assert.are.equal(c, c:update { email = "a@example.com", tier = "free" })
      end)

      it("takes NULL as loam.null and refuses nil", function()
        local c = Customer:create { email = "a@example.com", name = "Ann" }
        c.name = loam.null
        c:save()
        assert.are.equal(loam.null, row(db, "select name from customers").name)
        c.name = nil
        local err = catch(c.save, c)
        assert.are.equal("misuse", err.code)
        assert.are.equal("customers.name is nil; assign loam.null to store NULL", err.message)
      end)

      it("validates changed values and sends nothing when one is refused", function()
        local c = Customer:create { email = "a@example.com" }
        c.tier = "gold"
        local line
        local err = catch(function()
          line = next_line()
          c:save()
        end)
        assert.are.equal("validation_error", err.code)
        assert.are.equal("customers", err.model)
        assert.are.equal("tier", err.column)
        assert.are.equal('customers.tier: expected one of "free", "pro", got string ("gold")',
          err.message)
        assert.are.equal(at(line), err.where)
        assert.are.equal("free", row(db, "select tier from customers").tier)
      end)

      it("moves a row whose key changed, finding it by the loaded key", function()
        local m = Membership:create { user_id = 1, group_id = 2, role = "owner" }
        m.group_id = 3
        m:save()
        assert.is_nil(Membership:find(1, 2))
        assert.are.equal("owner", Membership:find(1, 3).role)
        m.role = "guest"
        m:save()
        assert.are.equal("guest", Membership:find(1, 3).role)
      end)

      it("raises not_found when the row is gone", function()
        local c = Customer:create { email = "a@example.com" }
        db:exec("delete from customers")
        c.tier = "pro"
        local err = catch(c.save, c)
        assert.are.equal("not_found", err.code)
        assert.are.equal("customers: save found no row with the instance's key (was it "
          .. "deleted?)", err.message)
        assert.are.equal(0, helper.count(db, "customers"))
      end)

      it("needs the primary key", function()
        Customer:create { email = "a@example.com" }
        local partial = Customer:select("email"):first()
        assert.are.same({ email = "a@example.com" }, partial:to_table())
        partial.email = "b@example.com"
        local err = catch(partial.save, partial)
        assert.are.equal("misuse", err.code)
        assert.are.equal("customers: save needs the primary key, and id is not loaded",
          err.message)
        assert.are.equal("a@example.com", row(db, "select email from customers").email)
      end)

      -- The UPDATE of one set of columns has one shape: it is prepared on its
      -- second run and later saves bind their values into it.
      it("saves the same columns again and again, each row its own values", function()
        local a = Customer:create { email = "a@example.com" }
        local b = Customer:create { email = "b@example.com" }
        for i = 1, 4 do
          a.name = "a" .. i
          a:save()
          b.name = "b" .. i
          b:save()
        end
        a.name, a.tier = "both", "pro"
        a:save()
        b.name = loam.null
        b:save()
        b.name = "back"
        b:save()
        b.active = false
        b:save()
        b.active = true
        b:save()
        assert.are.same({ { name = "both", tier = "pro", active = true },
                          { name = "back", tier = "free", active = true } },
          db:query("select name, tier, active from customers order by id"))
        assert.are.same({ "both", "back" }, { a.name, b.name })
        local m1 = Membership:create { user_id = 1, group_id = 2, role = "member" }
        local m2 = Membership:create { user_id = 2, group_id = 1, role = "member" }
        for i = 1, 3 do
          m1.role = "r" .. i
          m1:save()
          m2.role = "s" .. i
          m2:save()
        end
        m2:delete()
        m1.role, m2.role = "again", "gone"
        m1:save()
        local err = catch(m2.save, m2)
        assert.are.equal("not_found", err.code)
        assert.are.same({ { user_id = 1, group_id = 2, role = "again" } },
          db:query("select user_id, group_id, role from memberships"))
      end)
    end)

    describe("update", function()
      it("assigns and saves", function()
        local c = Customer:create { email = "a@example.com" }
        db:exec("update customers set name = ? where id = ?", { "Anne", c.id })
        c:update { tier = "pro", active = false }
        local r = row(db, "select tier, active, name from customers")
        assert.are.same({ tier = "pro", active = false, name = "Anne" }, r)
        assert.are.equal("pro", c.tier)
      end)

      it("checks every value before assigning any", function()
        local c = Customer:create { email = "a@example.com" }
        local err = catch(c.update, c, { tier = "pro", active = "no" })
        assert.are.equal("validation_error", err.code)
        assert.are.equal("active", err.column)
        assert.are.equal("free", c.tier)
        assert.are.equal("free", row(db, "select tier from customers").tier)
        err = catch(c.update, c, { tier = "pro", nope = 1 })
        assert.are.equal("misuse", err.code)
        assert.are.equal("free", c.tier)
      end)

      it("refuses to be called on something else", function()
        local c = Customer:create { email = "a@example.com" }
        local err = catch(c.update, { tier = "pro" })
        assert.are.equal("misuse", err.code)
        assert.are.equal("update must be called on an instance (inst:update(...)), got table",
          err.message)
      end)
    end)

    describe("delete and reload", function()
      it("deletes the row, and says whether there was one", function()
        local c = Customer:create { email = "a@example.com" }
        local keep = Customer:create { email = "b@example.com" }
        Order:create { customer_id = c.id, total_cents = 5 }
        assert.is_true(c:delete())
        assert.is_nil(Customer:find(c.id))
        assert.are.equal(0, helper.count(db, "orders"))
        assert.is_false(c:delete())
        assert.are.equal(keep.id, Customer:find(keep.id).id)
        assert.are.equal("a@example.com", c.email)  -- still readable
      end)

      it("reloads the row, dropping unsaved changes", function()
        local c = Customer:create { email = "a@example.com" }
        c.tier = "pro"
        db:exec("update customers set name = ? where id = ?", { "Anne", c.id })
        assert.are.equal(c, c:reload())
        assert.are.equal("free", c.tier)
        assert.are.equal("Anne", c.name)
        c:save()  -- nothing changed since the reload
        db:exec("delete from customers")
        local err = catch(c.reload, c)
        assert.are.equal("not_found", err.code)
      end)
    end)

    describe("insert_many", function()
      it("inserts rows and returns the count", function()
        local n = Customer:insert_many {
          { email = "a@example.com", tier = "pro" },
          { email = "b@example.com", tier = "free" },
          { email = "c@example.com", tier = "pro" },
        }
        assert.are.equal(3, n)
        assert.are.equal(2, Customer:where { tier = "pro" }:count())
        assert.are.equal(0, Customer:insert_many {})
      end)

      it("returns instances with returning = true", function()
        local list = Customer:insert_many({
          { email = "a@example.com" }, { email = "b@example.com" },
        }, { returning = true })
        assert.are.equal(2, #list)
        assert.are.equal("b@example.com", list[2].email)
        assert.are.equal("free", list[2].tier)
        assert.are.equal(Customer, model.of(list[1]))
        list[1]:update { tier = "pro" }
        assert.are.equal("pro", Customer:find(list[1].id).tier)
        assert.are.same({}, Customer:insert_many({}, { returning = true }))
      end)

      it("splits rows over several statements under the parameter limit", function()
        local rows = {}
        for i = 1, 40000 do
          rows[i] = { customer_id = 0, total_cents = i }
        end
        local c = Customer:create { email = "a@example.com" }
        for _, r in ipairs(rows) do r.customer_id = c.id end
        assert.are.equal(40000, Order:insert_many(rows))
        assert.are.equal(40000, helper.count(db, "orders"))
        assert.are.equal(40000 * 40001 // 2, Order:sum("total_cents"))
        local list = Order:insert_many(rows, { returning = true })
        assert.are.equal(40000, #list)
        assert.are.equal(40000, list[40000].total_cents)
      end)

      it("sends nothing when a row is refused", function()
        local err = catch(Customer.insert_many, Customer, {
          { email = "a@example.com" }, { email = "b@example.com" }, { email = "c", tier = "x" },
        })
        assert.are.equal("validation_error", err.code)
        assert.are.equal("tier", err.column)
        assert.are.equal(0, helper.count(db, "customers"))
      end)

      it("refuses a later row as it refuses the same row first", function()
        local good = { email = "a@example.com", tier = "pro" }
        local bad = {
          { email = "b@example.com", tier = "gold" },          -- enum value
          { email = 7, tier = "pro" },                          -- type
          { email = loam.null, tier = "pro" },                  -- NULL in NOT NULL
          { email = "b@example.com", tierr = "pro" },          -- unknown column
          { email = "b@example.com", tier = "pro", active = 1 },  -- type of an extra column
          { tier = "pro" },                                     -- required column missing
          "b@example.com",                                      -- not a table
          setmetatable({ email = "b@example.com", tier = "pro" }, {}),
        }
        for i, b in ipairs(bad) do
          local first = catch(Customer.insert_many, Customer, { b })
          local later = catch(Customer.insert_many, Customer, { good, good, b })
          assert.are.equal(first.code, later.code, "row " .. i)
          assert.are.equal(first.message, later.message, "row " .. i)
          assert.are.equal(first.column, later.column, "row " .. i)
        end
        assert.are.equal(0, helper.count(db, "customers"))
      end)

      -- Rows after the first are checked in C against each column's quick
      -- test (an integer in range, valid UTF-8 without NUL within the
      -- length); a value that fails it goes through the column's coercer,
      -- as in the first row.  Both ways must take and refuse alike.
      it("takes in a later row what it takes in the first, and stores the same", function()
        local cases = {
          { tier = "pro", active = false, name = loam.null, prefs = { a = { 1, 2 } },
            created_at = "2024-02-29T12:30:00+02:00" },
          { name = "\u{1F600} and \u{7FF}\u{FFFF}" },
          { name = "" },
        }
        for _, case in ipairs(cases) do
          db:exec("delete from customers")
          local rows = {}
          for k = 1, 3 do
            -- 255 characters of two bytes each but the last: at the length limit.
            rows[k] = { email = string.rep("é", 254) .. k }
            for f, v in pairs(case) do rows[k][f] = v end
          end
          assert.are.equal(3, Customer:insert_many(rows))
          local got = db:query("select email, tier, active, name, prefs, created_at from "
            .. "customers order by id")
          for _, f in ipairs { "tier", "active", "name", "prefs", "created_at" } do
            assert.are.same(got[1][f], got[3][f], f)
          end
          assert.are.equal(rows[3].email, got[3].email)
        end
        -- An integer column takes an integral float, and a 32-bit column its bounds.
        local c = Customer:create { email = "o@example.com" }
        assert.are.equal(3, Order:insert_many {
          { customer_id = c.id, total_cents = 2147483647 },
          { customer_id = c.id + 0.0, total_cents = 5.0 },
          { customer_id = c.id, total_cents = 0 },
        })
        assert.are.equal(2147483652, Order:sum("total_cents"))
      end)

      it("refuses a later value as it refuses the same value first", function()
        local c = Customer:create { email = "o@example.com" }
        local texts = {
          "\xC0\xAF", "\xE0\x80\xAF", "\xF0\x80\x80\xAF",   -- overlong forms
          "\xED\xA0\x80",                                 -- a surrogate
          "\xF4\x90\x80\x80", "\xF8\x88\x80\x80\x80",      -- past U+10FFFF
          "\xE2\x82", "\x80", "\xFF", "ab\xC3",             -- cut short, stray bytes
          "a\0b",                                           -- NUL
          string.rep("é", 256),                             -- longer than 255 characters
        }
        for i, t in ipairs(texts) do
          local first = catch(Customer.insert_many, Customer, { { email = t } })
          local later = catch(Customer.insert_many, Customer,
            { { email = "a@example.com" }, { email = "b@example.com" }, { email = t } })
          assert.are.equal("validation_error", first.code, "text " .. i)
          assert.are.equal(first.message, later.message, "text " .. i)
          assert.are.equal("email", later.column, "text " .. i)
        end
        for i, n in ipairs { 2147483648, -2147483649, 1.5, "7", math.huge, 0 / 0 } do
          local first = catch(Order.insert_many, Order, { { customer_id = c.id, total_cents = n } })
          local later = catch(Order.insert_many, Order, {
            { customer_id = c.id, total_cents = 1 }, { customer_id = c.id, total_cents = n } })
          assert.are.equal("validation_error", first.code, "number " .. i)
          assert.are.equal(first.message, later.message, "number " .. i)
          assert.are.equal("total_cents", later.column, "number " .. i)
        end
        -- A key that is no field, after the fields a row sets.
        local odd = { customer_id = c.id, total_cents = 3, [1] = "x" }
        local first = catch(Order.insert_many, Order, { odd })
        local later = catch(Order.insert_many, Order, {
          { customer_id = c.id, total_cents = 1 }, { customer_id = c.id, total_cents = 2 }, odd })
        assert.are.equal(first.code, later.code)
        assert.are.equal(first.message, later.message)
        assert.are.equal(0, helper.count(db, "orders"))
      end)

      it("keeps what the coercers make for later rows until the rows are sent", function()
        -- Every row's timestamp and JSON text is a new string made by its
        -- coercer while the rows are read; the collector runs meanwhile.
        local rows = {}
        for i = 1, 3000 do
          rows[i] = { email = "u" .. i .. "@example.com", prefs = { n = i, pad = ("p"):rep(i % 50) },
                      created_at = string.format("2024-01-01 00:%02d:%02d+01:00", i // 60 % 60,
                                                 i % 60) }
        end
        assert.are.equal(3000, Customer:insert_many(rows))
        local got = Customer:find_by { email = "u2999@example.com" }
        assert.matches('"n": ?2999', db:query("select prefs from customers where id = ?",
          { got.id })[1].prefs)
        assert.matches("^2023%-12%-31 23:49:59", got.created_at)
      end)

      it("inserts the rows up to the first hole of the list", function()
        assert.are.equal(2, Customer:insert_many {
          { email = "a@example.com" }, { email = "b@example.com" }, nil,
          { email = "c@example.com" },
        })
        assert.are.equal(2, helper.count(db, "customers"))
      end)

      it("needs every row to set the same columns", function()
        local err = catch(Customer.insert_many, Customer, {
          { email = "a@example.com", tier = "pro" }, { email = "b@example.com" },
        })
        assert.are.equal("misuse", err.code)
        assert.are.equal("customers: insert_many row 2 sets (email), row 1 sets (email, tier); "
          .. "every row must set the same columns", err.message)
        assert.are.equal(0, helper.count(db, "customers"))
        err = catch(Customer.insert_many, Customer, { { email = "a" } }, { returnin = true })
        assert.are.equal("customers: unknown insert_many option 'returnin'", err.message)
      end)
    end)

    describe("upsert", function()
      it("inserts, then updates the named columns on conflict", function()
        local a = Customer:upsert({ email = "a@example.com", tier = "free", name = "Ann" },
          { conflict = { "email" }, update = { "tier" } })
        assert.are.equal("free", a.tier)
        local b = Customer:upsert({ email = "a@example.com", tier = "pro", name = "Other" },
          { conflict = { "email" }, update = { "tier" } })
        assert.are.equal(a.id, b.id)
        assert.are.equal("pro", b.tier)
        assert.are.equal("Ann", b.name)
        assert.are.equal(1, helper.count(db, "customers"))
      end)

      it("updates every column but the target with update = true", function()
        local a = Customer:upsert({ email = "a@example.com", name = "Ann" },
          { conflict = "email", update = true })
        local b = Customer:upsert({ email = "a@example.com", name = "Anne", tier = "pro" },
          { conflict = "email", update = true })
        assert.are.equal(a.id, b.id)
        assert.are.same({ "Anne", "pro" }, { b.name, b.tier })
      end)

      it("does nothing on conflict without update, and returns nil", function()
        local a = Customer:upsert({ email = "a@example.com", name = "Ann" },
          { conflict = { "email" } })
        assert.are.equal("Ann", a.name)
        assert.is_nil(Customer:upsert({ email = "a@example.com", name = "Other" },
          { conflict = { "email" } }))
        assert.are.equal("Ann", row(db, "select name from customers").name)
      end)

      it("takes the primary key as the default target", function()
        local m = Membership:upsert({ user_id = 1, group_id = 2, role = "owner" },
          { update = { "role" } })
        assert.are.equal("owner", m.role)
        m = Membership:upsert({ user_id = 1, group_id = 2, role = "guest" }, { update = { "role" } })
        assert.are.equal("guest", m.role)
        assert.are.equal(1, helper.count(db, "memberships"))
      end)

      it("refuses to update a column the row does not set", function()
        local err = catch(Customer.upsert, Customer, { email = "a@example.com" },
          { conflict = { "email" }, update = { "tier" } })
        assert.are.equal("misuse", err.code)
        assert.are.equal("customers: upsert updates tier, which the row does not set",
          err.message)
        err = catch(Customer.upsert, Customer, { email = "a@example.com" },
          { conflict = { "mail" } })
        assert.are.equal("misuse", err.code)
        assert.are.equal(0, helper.count(db, "customers"))
      end)
    end)

    describe("to_table", function()
      it("gives the loaded columns, leaving NULL out unless asked", function()
        local c = Customer:create { email = "a@example.com", prefs = '{"a": 1}' }
        local t = c:to_table()
        assert.are.equal(nil, getmetatable(t))
        assert.are.same({ "active", "created_at", "email", "id", "prefs", "tier" },
          (function()
            local keys = {}
            for k in pairs(t) do keys[#keys + 1] = k end
            table.sort(keys)
            return keys
          end)())
        assert.are.equal(loam.null, c:to_table { nulls = true }.name)
        assert.are.same({ email = "a@example.com", tier = "free" },
          c:to_table { only = { "email", "tier", "name" } })
        assert.are.same({ email = "a@example.com", name = loam.null },
          c:to_table { only = { "email", "name" }, nulls = true })
        local without = c:to_table { except = { "created_at", "prefs" } }
        assert.are.same({ id = c.id, email = "a@example.com", tier = "free", active = true },
          without)
        t.email = "changed"
        assert.are.equal("a@example.com", c.email)
      end)

      it("never queries: it works on a closed connection", function()
        local c = Customer:create { email = "a@example.com" }
        local list = Customer:where { tier = "free" }:all()
        db:close()
        assert.are.equal("a@example.com", c:to_table().email)
        assert.are.equal(c.id, list[1]:to_table { only = { "id" } }.id)
        c.tier = "pro"  -- unsaved values are what the instance holds
        assert.are.equal("pro", c:to_table().tier)
      end)

      it("refuses unknown columns and options", function()
        local c = Customer:create { email = "a@example.com" }
        local err = catch(c.to_table, c, { only = { "emial" } })
        assert.are.equal("misuse", err.code)
        assert.matches("^customers: unknown column 'emial' %(columns: id, email", err.message)
        err = catch(c.to_table, c, { nul = true })
        assert.are.equal("customers: unknown to_table option 'nul'", err.message)
      end)
    end)

    describe("queries from the model", function()
      it("forwards every query method to a new query on the model", function()
        for _, name in ipairs(require("loam.query").methods) do
          assert.is_function(Customer[name], name)
        end
        Customer:create { email = "a@example.com", tier = "pro" }
        Customer:create { email = "b@example.com" }
        local pros = Customer:where { tier = "pro" }:all()
        assert.are.equal(1, #pros)
        assert.are.equal(Customer, model.of(pros[1]))
        assert.are.equal(2, Customer:count())
        assert.are.same({ "a@example.com", "b@example.com" }, Customer:order_by("email"):pluck("email"))
        if pg then
          assert.is_true(#Customer:where { tier = "pro" }:explain() > 0)
        end
      end)
    end)
  end)
end
