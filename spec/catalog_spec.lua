-- spec/catalog_spec.lua: what the database holds and what its backend
-- does, asked of the core ('conn:table_exists',
-- 'loam.core.MIGRATIONS_TABLE', 'conn:exact_numeric'), and the hint of a
-- wrong parameter count, which follows the count, not the message text.

local core = require "loam.core"
local helper = require "spec.helper"

local catch = helper.catch

describe("loam.core.MIGRATIONS_TABLE", function()
  it("names the table migrations record themselves in", function()
    assert.are.equal("loam_migrations", core.MIGRATIONS_TABLE)
  end)
end)

for backend, pg in helper.each_backend() do
  describe(backend.label .. ": conn:table_exists", function()
    local db

    before_each(function()
      db = helper.connect(backend)
      helper.drop_tables(db, { "cat_t", "cat_other" })
    end)

    after_each(function()
      helper.finish(db, { "cat_t" })
    end)

    it("answers whether the table exists, by its name as stored", function()
      assert.is_false(db:table_exists("cat_t"))
      db:exec("create table cat_t (id integer)")
      assert.is_true(db:table_exists("cat_t"))
      assert.is_false(db:table_exists("CAT_T"))
      assert.is_false(db:table_exists("cat_%"))
      assert.is_false(db:table_exists(core.MIGRATIONS_TABLE))
    end)

    if pg then
      it("looks in the current schema of the search_path only", function()
        db:exec("drop schema if exists cat_s cascade")
        db:exec("create schema cat_s")
        db:exec("create table cat_s.cat_other (id integer)")
        assert.is_false(db:table_exists("cat_other"))
        db:exec("set search_path to cat_s, public")
        assert.is_true(db:table_exists("cat_other"))
        db:exec("reset search_path")
        db:exec("drop schema cat_s cascade")
      end)

      it("raises the database's error, and the transaction stays as it was", function()
        db:exec("create table cat_t (id integer)")
        db:exec("begin")
        db:exec("insert into cat_t (id) values (1)")
        catch(db.exec, db, "select 1/0")
        local err = catch(db.table_exists, db, "cat_t")
        assert.are.equal("transaction_aborted", err.code)
        assert.are.equal("25P02", err.sqlstate)
        db:exec("rollback")
        assert.are.equal(0, helper.count(db, "cat_t"))
        assert.is_true(db:table_exists("cat_t"))
      end)
    else
      it("looks in the main database only: not temp tables", function()
        db:exec("create temp table cat_other (id integer)")
        assert.is_false(db:table_exists("cat_other"))
      end)
    end

    it("does not count views", function()
      db:exec("create view cat_v as select 1 as one")
      local ok, exists = pcall(db.table_exists, db, "cat_v")
      db:exec("drop view cat_v")
      assert.is_true(ok)
      assert.is_false(exists)
    end)

    it("refuses a closed connection, a missing name and a name with a NUL byte", function()
      local err = catch(db.table_exists, db, nil)
      assert.are.equal("misuse", err.code)
      assert.are.equal("table_exists: table name must be a string, got nil", err.message)
      err = catch(db.table_exists, db, 42)
      assert.are.equal("table_exists: table name must be a string, got number", err.message)
      db:exec("create table cat_t (id integer)")
      err = catch(db.table_exists, db, "cat_t\0junk")
      assert.are.equal("misuse", err.code)
      assert.are.equal("table_exists: table name contains a NUL byte at position 6", err.message)
      assert.is_true(db:table_exists("cat_t"))
      helper.drop_tables(db, { "cat_t" })
      db:close()
      err = catch(db.table_exists, db, "cat_t")
      assert.are.equal("misuse", err.code)
      assert.are.equal("attempt to use a closed database (db:reconnect() opens it again)", err.message)
    end)
  end)

  describe(backend.label .. ": conn:exact_numeric", function()
    it("tells whether a numeric column keeps every digit, as the database shows", function()
      local db = helper.connect(backend)
      helper.table(db, "cat_num", "x numeric")
      db:exec("insert into cat_num (x) values (cast(? as numeric))", { "12345678901234567890.5" })
      local x = db:query("select x from cat_num")[1].x
      assert.are.equal(x == "12345678901234567890.5", db:exact_numeric())
      assert.are.equal(pg and true or false, db:exact_numeric())
      helper.finish(db, { "cat_num" })
      local err = catch(db.exact_numeric, db)
      assert.are.equal("misuse", err.code)
      assert.are.equal("attempt to use a closed database (db:reconnect() opens it again)", err.message)
    end)
  end)

  describe(backend.label .. ": the NULL hint of a wrong parameter count", function()
    local db

    before_each(function()
      db = helper.connect(backend)
    end)

    after_each(function()
      db:close()
    end)

    it("comes with a count other than the statement's, on query, exec and each", function()
      local err = catch(db.query, db, "select ? as a, ? as b", { 1 })
      assert.are.equal("misuse", err.code)
      assert.are.equal("statement takes 2 parameters, got 1 (write loam.null for NULL parameters)",
        err.message)
      err = catch(db.exec, db, "select $1 as a", {})
      assert.are.equal("statement takes 1 parameter, got 0 (write loam.null for NULL parameters)",
        err.message)
      err = catch(db.each, db, "select 1 as one", { 1 })
      assert.are.equal("statement takes 0 parameters, got 1 (write loam.null for NULL parameters)",
        err.message)
    end)

    it("does not come with other misuse", function()
      local err = catch(db.query, db, "select ?, $1", { 1 })
      assert.are.equal("misuse", err.code)
      assert.are.equal("SQL mixes '?' and numbered placeholders ('$1'); use one style",
        err.message)
      err = catch(db.query, db, "select 1; select ?", { 1 })
      assert.are.equal("misuse", err.code)
      assert.are.equal("SQL holds more than one statement; run them one at a time", err.message)
      err = catch(db.query, db, "select $2 as a", { 1, 2 })
      assert.are.equal("SQL uses placeholder 2 but not 1: every parameter must appear in the text",
        err.message)
      if not pg then
        err = catch(db.query, db, "select :name as a", { 1 })
        assert.are.equal("misuse", err.code)
        assert.are.equal("SQL holds placeholders loam does not read: write them as '?' or '$n' "
          .. "(not ':name', '@name' or '$name'), outside literals, quoted names and comments",
          err.message)
      end
    end)

    it("does not come with a database error", function()
      local err = catch(db.query, db, "select ? from no_such_table", { 1 })
      assert.are.equal("undefined_table", err.code)
      assert.is_nil(err.message:find("loam.null", 1, true))
    end)
  end)
end
