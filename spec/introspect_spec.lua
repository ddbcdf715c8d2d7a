-- spec/introspect_spec.lua: db:introspect([tables]), what a live database
-- holds as plain Lua tables (bindings/lua_introspect.c over
-- loam_introspect): tables, columns, keys, checks, foreign keys with
-- their actions, indexes partial and on expressions; and its errors.

local helper = require "spec.helper"

local catch = helper.catch

local TABLES = { "is_items", "is_people" }

for backend, pg in helper.each_backend() do
  describe(backend.label .. ": db:introspect", function()
    local db

    before_each(function()
      db = helper.connect(backend)
      helper.drop_tables(db, TABLES)
      db:exec([[create table is_people (
        id integer primary key,
        name varchar(40) not null constraint is_people_name_key unique,
        boss_id integer constraint is_people_boss_fk references is_people (id) on delete set null,
        amount numeric(10,2) default 0,
        constraint is_people_amount_check check (amount >= 0))]])
      db:exec([[create table is_items (
        person_id integer not null,
        pos integer not null,
        label text,
        constraint is_items_pkey primary key (person_id, pos),
        constraint is_items_person_fk foreign key (person_id) references is_people (id)
          on delete cascade on update restrict)]])
      db:exec("create index is_items_label_idx on is_items (lower(label)) where pos > 0")
    end)

    after_each(function()
      helper.finish(db, TABLES)
    end)

    it("reads tables, columns, keys, checks, foreign keys and indexes", function()
      local s = db:introspect(TABLES)
      assert.are.equal(pg and "postgres" or "sqlite", s.backend)
      assert.are.same({ "is_items", "is_people" }, { s.tables[1].name, s.tables[2].name })
      local people, items = s.by_name.is_people, s.by_name.is_items
      assert.are.equal(people, s.tables[2])

      local cols = {}
      for i, c in ipairs(people.columns) do cols[i] = c.name end
      assert.are.same({ "id", "name", "boss_id", "amount" }, cols)
      local name = people.by_name.name
      assert.are.equal("text", name.loam_type)
      assert.are.equal(40, name.length)
      assert.is_true(name.not_null)
      assert.is_false(name.generated)
      local amount = people.by_name.amount
      assert.are.same({ "numeric", 10, 2, false }, { amount.loam_type, amount.precision,
                                                     amount.scale, amount.not_null })
      assert.are.equal("0", amount.default)
      assert.is_nil(people.by_name.boss_id.default)
      assert.are.same({ "id" }, people.primary_key.columns)
      assert.are.same({ { name = "is_people_name_key", columns = { "name" } } }, people.uniques)
      assert.are.equal(1, #people.checks)
      assert.are.equal("is_people_amount_check", people.checks[1].name)
      assert.is_true(people.checks[1].validated)
      assert.are.same({ {
        name = "is_people_boss_fk", columns = { "boss_id" }, ref_table = "is_people",
        ref_columns = { "id" }, on_delete = "set null", on_update = "no action", validated = true,
      } }, people.fks)

      assert.are.same({ name = "is_items_pkey", columns = { "person_id", "pos" } },
                      items.primary_key)
      assert.are.equal("cascade", items.fks[1].on_delete)
      assert.are.equal("restrict", items.fks[1].on_update)
      local ix = items.indexes[1]
      assert.are.equal("is_items_label_idx", ix.name)
      assert.is_false(ix.unique)
      assert.is_true(ix.valid)
      assert.are.same({ false }, ix.columns)
      assert.is_truthy(ix.exprs[1]:find("lower", 1, true))
      assert.is_truthy(ix.where:find("pos > 0", 1, true))
      assert.are.same({}, items.triggers)
      if pg then
        assert.is_nil(items.sql)
      else
        assert.is_truthy(items.sql:find("CREATE TABLE", 1, true))
      end
    end)

    it("reads every table without an argument, only those named with one", function()
      local all = db:introspect()
      assert.is_not_nil(all.by_name.is_people)
      assert.is_not_nil(all.by_name.is_items)
      local one = db:introspect { "is_items", "is_items" }
      assert.are.equal(1, #one.tables)
      assert.are.equal("is_items", one.tables[1].name)
    end)

    if pg then
      it("reports a NOT VALID foreign key and check as not validated", function()
        db:exec("alter table is_items add constraint is_items_pos_check check (pos > 0) not valid")
        db:exec([[alter table is_items add constraint is_items_person2_fk foreign key (person_id)
                  references is_people (id) not valid]])
        local t = db:introspect({ "is_items" }).tables[1]
        assert.is_false(t.checks[1].validated)
        -- sorted by name: "person2" before "person_"
        assert.are.equal("is_items_person2_fk", t.fks[1].name)
        assert.is_false(t.fks[1].validated)
        assert.is_true(t.fks[2].validated)
      end)
    end

    it("refuses an unknown table with undefined_table naming it", function()
      local err = catch(db.introspect, db, { "is_people", "is_nothing" })
      assert.are.equal("undefined_table", err.code)
      assert.is_truthy(err.message:find("'is_nothing'", 1, true))
    end)

    it("refuses arguments that are not an array of names", function()
      local err = catch(db.introspect, db, "is_people")
      assert.are.equal("misuse", err.code)
      assert.are.equal("introspect: tables must be an array of table names, got string",
                       err.message)
      err = catch(db.introspect, db, { "is_people", 7 })
      assert.are.equal("introspect: table name #2 must be a string, got number", err.message)
      err = catch(db.introspect, db, { "is\0people" })
      assert.are.equal("introspect: table name #1 contains a NUL byte", err.message)
    end)

    it("refuses a closed Database", function()
      local other = helper.connect(backend)
      other:close()
      local err = catch(other.introspect, other)
      assert.are.equal("misuse", err.code)
    end)
  end)
end
