-- spec/generate_spec.lua: the models against the live database
-- (loam.migrate.diff), the operations written as a migration file
-- (loam.migrate.writer), and `loam migrate generate` / `loam migrate
-- check`, on SQLite and PostgreSQL.

local loam = require "loam"
local helper = require "spec.helper"
local diff = require "loam.migrate.diff"
local writer = require "loam.migrate.writer"
local ops = require "loam.migrate.ops"
local types = require "loam.types"
local core = require "loam.core"
local file = require "loam.migrate.file"

local function summaries(result)
  local out = {}
  for i, op in ipairs(result.ops) do out[i] = diff.summary(op) end
  return out
end

-- The operations of a migration file's text, read with the constructors
-- a migration file has (loam.migrate.ops and the column constructors).
local function read_migration(text)
  local env = setmetatable({ migration = function(t) return t end }, { __index = _G })
  for _, n in ipairs(ops.NAMES) do env[n] = ops[n] end
  for n, f in pairs(types.constructors) do env[n] = f end
  return assert(load(text, "=migration", "t", env))()
end

-- A Database where the spec's tables are the only ones: a schema of its
-- own on PostgreSQL (first on the search_path), a new file on SQLite.
local function isolated(backend, pg)
  if pg then
    local db = helper.connect(backend)
    db:exec("drop schema if exists gen_s cascade")
    db:exec("create schema gen_s")
    db:exec("set search_path to gen_s")
    return db
  end
  if backend.url == "sqlite::memory:" then return loam.connect(backend.url) end
  return loam.connect("sqlite:" .. helper.tmpname(".db"))
end

local function release(db, pg)
  if pg then db:exec("drop schema gen_s cascade") end
  db:close()
end

-- Applies the differences of 'models' with the database as the generated
-- migration file, through the runner: models → generate → up.  Each call
-- adds a file to one migrations folder, after the one before.
local function migrator(db)
  local dir, n, parent = helper.tmpdir(), 0, nil
  return function(models, opts)
    local r = diff.diff(models, db, opts)
    assert.are.same({}, r.errors)
    n = n + 1
    local version = ("202601010000%02d"):format(n)
    helper.write(("%s/%s_step%d.lua"):format(dir, version, n),
                 writer.text(r.ops, { parent = parent }))
    parent = version
    assert.are.equal(1, core.migrate_up(db, file.read(dir)))
    return r
  end
end

local function v1(db)
  local A = db:model("gen_authors", {
    loam.id(),
    loam.text("name", { length = 60, null = false }),
    loam.enum("tier", { "free", "pro" }, { default = "free" }),
  }, { indexes = { { "name" } } })
  local P = db:model("gen_posts", {
    loam.id(),
    loam.bigint("author_id", { null = false, references = A, on_delete = "cascade" }),
    loam.bigint("reply_to", { references = "gen_posts" }),
    loam.text("title", { null = false }),
    loam.integer("score", { default = 0 }),
  }, { checks = { gen_posts_score_positive = "score >= 0" } })
  local T = db:model("gen_tags", {
    loam.bigint("post_id", { references = P }),
    loam.text("tag"),
  }, { primary_key = { "post_id", "tag" } })
  return { Author = A, Post = P, Tag = T }
end

for backend, pg in helper.each_backend() do
  describe(backend.label .. ": migrate diff", function()
    local db

    -- A database of its own: every table in it is the spec's.
    before_each(function()
      db = isolated(backend, pg)
    end)

    after_each(function()
      release(db, pg)
    end)

    it("creates what is missing, each table after those it references; then nothing", function()
      local models = v1(db)
      local r = diff.diff(models, db)
      assert.are.same({
        "create table gen_authors",
        "add index gen_authors_name_idx on gen_authors (name)",
        "create table gen_posts",
        "create table gen_tags",
      }, summaries(r))
      assert.are.same({}, r.errors)
      local text = writer.text(r.ops, { parent = "20260101000000" })
      assert.matches("change = {", text, 1, true)
      local m = read_migration(text)
      assert.are.equal("20260101000000", m.parent)
      assert.are.equal(4, #m.change)
      assert.are.same(r.ops[3].def.checks, m.change[3].def.checks)
      assert.are.same({ "post_id", "tag" }, m.change[4].def.primary_key)
      loam.create_tables(db, { models.Author, models.Post, models.Tag })
      r = diff.diff(models, db)
      assert.are.same({ ops = {}, errors = {} }, r)
    end)

    it("adds, alters and indexes what the models changed, reversibly", function()
      local m1 = v1(db)
      loam.create_tables(db, { m1.Author, m1.Post, m1.Tag })
      local A = db:model("gen_authors", {
        loam.id(),
        loam.text("name", { length = 80, null = false }),
        loam.enum("tier", { "free", "pro" }, { default = "pro" }),
        loam.text("bio"),
      }, { indexes = { { "tier" } } })
      local P = db:model("gen_posts", {
        loam.id(),
        loam.bigint("author_id", { null = false, references = A, on_delete = "cascade" }),
        loam.bigint("reply_to", { references = "gen_posts" }),
        loam.text("title"),
        loam.integer("score", { default = 0 }),
      }, { checks = { gen_posts_score_small = "score < 1000" } })
      local r = diff.diff({ A = A, P = P, T = m1.Tag }, db)
      assert.are.same({
        "alter column gen_authors.name (type)",
        "alter column gen_authors.tier (default)",
        "add column gen_authors.bio",
        "drop index gen_authors_name_idx on gen_authors",
        "add index gen_authors_tier_idx on gen_authors (tier)",
        "alter column gen_posts.title (null)",
        "drop check gen_posts_score_positive on gen_posts",
        "add check gen_posts_score_small on gen_posts",
      }, summaries(r))
      local text = writer.text(r.ops)
      -- Dropping an index or a check is undone by the file's own 'down'.
      assert.matches("  up = {", text, 1, true)
      assert.matches('    alter_column("gen_authors", "name", { type = text("name", { length = 80, '
                     .. 'null = false }), before = text("name", { length = 60, null = false }) }),',
                     text, 1, true)
      assert.matches('    alter_column("gen_authors", "tier", { default = "pro", before = '
                     .. 'enum("tier", { "free", "pro" }, { default = "free" }) }),', text, 1, true)
      assert.matches('    add_check("gen_posts", "gen_posts_score_positive", "score >= 0"),', text,
                     1, true)
      local m = read_migration(text)
      assert.are.equal(8, #m.up)
      assert.are.equal(8, #m.down)
      assert.are.same({ "add_index", "drop_index" }, { m.down[5].op, m.down[4].op })
    end)

    it("renames only what a model declares", function()
      local m1 = v1(db)
      loam.create_tables(db, { m1.Author, m1.Post, m1.Tag })
      local function authors(opts, name_opts)
        return db:model("gen_writers", {
          loam.id(),
          loam.text("full_name", name_opts),
          loam.enum("tier", { "free", "pro" }, { default = "free" }),
        }, opts)
      end
      -- Undeclared: the table is new, the old one has no model.
      local r = diff.diff({ A = authors({}, { length = 60, null = false }),
                            P = m1.Post, T = m1.Tag }, db)
      assert.are.same({ "table gen_authors is in the database but no model declares it; dropping "
                        .. "it loses its data: pass --allow-drops to generate the drop" }, r.errors)
      -- Declared table, undeclared column: an error naming both columns.
      r = diff.diff({ A = authors({ renamed_from = "gen_authors", indexes = { { "full_name" } } },
                                  { length = 60, null = false }), P = m1.Post, T = m1.Tag },
                    db)
      assert.are.same({ "gen_writers: column name is gone from the model and full_name is new, of "
                        .. "the same type; a rename is never guessed: declare it on the column "
                        .. "(renamed_from = \"name\") to rename, or generate the drop and the add "
                        .. "separately" }, r.errors)
      r = diff.diff({ A = authors({ renamed_from = "gen_authors" },
                                  { length = 60, null = false, renamed_from = "name" }),
                      P = m1.Post, T = m1.Tag }, db)
      assert.are.same({}, r.errors)
      assert.are.same({
        "rename table gen_authors to gen_writers",
        "rename column gen_writers.name to full_name",
        "drop index gen_authors_name_idx on gen_writers",
      }, summaries(r))
      local m = read_migration(writer.text(r.ops))
      assert.are.same({ "rename_table", "rename_column" }, { m.up[1].op, m.up[2].op })
    end)

    it("drops only with allow_drops, and writes the drop's down", function()
      local m1 = v1(db)
      loam.create_tables(db, { m1.Author, m1.Post, m1.Tag })
      local A = db:model("gen_authors", {
        loam.id(),
        loam.text("name", { length = 60, null = false }),
      }, { indexes = { { "name" } } })
      local r = diff.diff({ A = A, P = m1.Post }, db)
      assert.are.same({
        "gen_authors: column tier is in the database but not in the model; dropping it loses its "
          .. "data: pass --allow-drops to generate the drop",
        "table gen_tags is in the database but no model declares it; dropping it loses its data: "
          .. "pass --allow-drops to generate the drop",
      }, r.errors)
      r = diff.diff({ A = A, P = m1.Post }, db, { allow_drops = true })
      assert.are.same({ "drop column gen_authors.tier", "drop table gen_tags" }, summaries(r))
      local text = writer.text(r.ops)
      -- A dropped table cannot be made again from here: no down.
      assert.is_nil(text:find("down", 1, true))
      text = writer.text({ r.ops[1] })
      assert.matches('  down = {\n    add_column("gen_authors", enum("tier", { "free", "pro" }, '
                     .. '{ default = "free" })),', text, 1, true)
      assert.are.equal("add_column", read_migration(text).down[1].op)
    end)

    it("compares checks and index predicates as the database prints them", function()
      local function model(v)
        return db:model("gen_items", {
          loam.id(),
          loam.text("name", { null = false, check = v.name_check }),
          loam.text("status", { null = false }),
          loam.integer("price"),
          loam.timestamp("deleted_at"),
        }, { checks = { gen_items_status_known = v.status_check,
                        gen_items_price_range = "price BETWEEN 1 AND 1000" },
             indexes = { { "status", where = v.pred },
                         { "name", unique = v.unique, where = "deleted_at IS NULL" },
                         { "price", "status", name = "gen_items_price_ix" } } })
      end
      local v = { name_check = "lower(name) <> ''", status_check = "status IN ('new', 'paid')",
                  pred = "deleted_at IS NULL AND price > 0", unique = true }
      local up = migrator(db)
      assert.are.same({ "create table gen_items", "add index gen_items_status_idx on gen_items "
                        .. "(status)", "add index gen_items_name_idx on gen_items (name)",
                        "add index gen_items_price_ix on gen_items (price, status)" },
                      summaries(up({ I = model(v) })))
      -- models → generate → up → generate again: nothing, though PostgreSQL
      -- prints every one of them back otherwise.
      assert.are.same({ ops = {}, errors = {} }, diff.diff({ I = model(v) }, db))
      if pg then
        local live = db:introspect { "gen_items" }.tables[1]
        assert.are_not.equal("price BETWEEN 1 AND 1000", live.checks[2].sql)
      end
      -- The scratch tables it printed them on are gone with their transaction.
      for _, t in ipairs(db:introspect().tables) do
        assert.is_nil(t.name:match("^loam_migration_scratch"), t.name)
      end
      -- A model whose check the database cannot read fails the diff with the
      -- database's error, and leaves nothing behind either.
      local bad = { name_check = v.name_check, status_check = "no_such_column > 0",
                    pred = v.pred, unique = true }
      local err = helper.catch(diff.diff, { I = model(bad) }, db)
      assert.are.equal("undefined_column", err.code)
      assert.matches("no_such_column", err.message, 1, true)
      assert.are.same({ ops = {}, errors = {} }, diff.diff({ I = model(v) }, db))
      -- The same names, other definitions: each dropped and made again.
      v.status_check, v.name_check = "status IN ('new', 'paid', 'gone')", "length(name) > 1"
      v.pred, v.unique = "deleted_at IS NULL", false
      local r = up({ I = model(v) })
      assert.are.same({
        "drop check gen_items_name_check on gen_items",
        "drop check gen_items_status_known on gen_items",
        "add check gen_items_name_check on gen_items",
        "add check gen_items_status_known on gen_items",
        "drop index gen_items_name_idx on gen_items",
        "drop index gen_items_status_idx on gen_items",
        "add index gen_items_status_idx on gen_items (status)",
        "add index gen_items_name_idx on gen_items (name)",
      }, summaries(r))
      assert.are.same({ ops = {}, errors = {} }, diff.diff({ I = model(v) }, db))
      -- The new definitions hold.
      db:exec("insert into gen_items (name, status, price) values ('ab', 'gone', 5)")
      local err = helper.catch(db.exec, db,
                               "insert into gen_items (name, status, price) values ('a', 'new', 5)")
      assert.are.equal("check_violation", err.code)
      assert.matches("gen_items_name_check", err.message, 1, true)
      -- The unique index is unique no more.
      db:exec("insert into gen_items (name, status, price) values ('ab', 'new', 5)")
    end)

    it("compares foreign keys by their columns, composite ones and self-references too",
       function()
      local function models(on_delete, extra)
        local O = db:model("gen_orders", { loam.id() })
        local L = db:model("gen_lines", {
          loam.bigint("order_id", { null = false, references = O }),
          loam.integer("no", { null = false }),
          loam.integer("parent_no"),
        }, { primary_key = { "order_id", "no" },
             foreign_keys = { { "order_id", "parent_no", references = "gen_lines",
                                on_delete = on_delete } } })
        local S = db:model("gen_ships", {
          loam.id(),
          loam.bigint("order_id"),
          loam.integer("line_no"),
          extra,
        }, { foreign_keys = { { "order_id", "line_no", references = L,
                                ref_columns = { "order_id", "no" }, name = "gen_ships_line" } } })
        return { O = O, L = L, S = S }
      end
      local up = migrator(db)
      local r = up(models("cascade"))
      assert.are.same({ "create table gen_orders", "create table gen_lines", "create table gen_ships" },
                      summaries(r))
      local text = writer.text(r.ops)
      assert.matches('foreign_keys = { { "order_id", "parent_no", references = "gen_lines", '
                     .. 'ref_columns = { "order_id", "no" }, on_delete = "cascade" } },', text, 1,
                     true)
      assert.matches('foreign_keys = { { "order_id", "line_no", references = "gen_lines", '
                     .. 'ref_columns = { "order_id", "no" }, name = "gen_ships_line" } },', text, 1,
                     true)
      assert.are.same({ ops = {}, errors = {} }, diff.diff(models("cascade"), db))
      -- The keys hold on the tables the migration made.
      db:exec("insert into gen_orders (id) values (1)")
      db:exec("insert into gen_lines (order_id, no) values (1, 1)")
      db:exec("insert into gen_lines (order_id, no, parent_no) values (1, 2, 1)")
      local err = helper.catch(db.exec, db, "insert into gen_ships (order_id, line_no) values (1, 9)")
      assert.are.equal("foreign_key_violation", err.code)

      -- Another action: the key is dropped and added again; a new column's
      -- reference comes with the column.
      r = up(models("restrict", loam.bigint("order_ref", { references = "gen_orders" })))
      local want = {
        "add column gen_ships.order_ref",
        "drop foreign key gen_lines_order_id_parent_no_fkey on gen_lines",
        "add foreign key gen_lines_order_id_parent_no_fkey: gen_lines (order_id, parent_no) "
          .. "-> gen_lines",
      }
      if pg then
        want[4] = "validate foreign key gen_lines_order_id_parent_no_fkey on gen_lines"
      end
      table.sort(want)
      local got = summaries(r)
      table.sort(got)
      assert.are.same(want, got)
      assert.are.same({ ops = {}, errors = {} },
                      diff.diff(models("restrict", loam.bigint("order_ref",
                                                              { references = "gen_orders" })), db))
      local fks = db:introspect({ "gen_lines" }).tables[1].fks
      assert.are.same({ "restrict", { "order_id", "parent_no" } },
                      { fks[2].on_delete, fks[2].columns })
      -- A key the models no longer declare is dropped.
      local m = models("restrict", loam.bigint("order_ref", { references = "gen_orders" }))
      m.S = db:model("gen_ships", {
        loam.id(), loam.bigint("order_id"), loam.integer("line_no"), loam.bigint("order_ref"),
      })
      assert.are.same({ "drop foreign key gen_ships_line on gen_ships",
                        "drop foreign key gen_ships_order_ref_fkey on gen_ships" },
                      summaries(up(m)))
      db:exec("insert into gen_ships (order_id, line_no, order_ref) values (1, 9, 7)")
    end)

    it("refuses a composite foreign key a model declares badly, naming it", function()
      local function bad(opts)
        return helper.catch(db.model, db, "gen_bad", {
          loam.id(), loam.bigint("a", { null = false }), loam.bigint("b"),
        }, opts)
      end
      local cases = {
        { { foreign_keys = "x" }, "gen_bad: option foreign_keys must be an array, got string" },
        { { foreign_keys = { { "a", "c", references = "t" } } },
          "gen_bad: foreign key #1: unknown column 'c'" },
        { { foreign_keys = { { "a", "b" } } },
          "gen_bad: foreign key #1: references must be a model or a table name, got nil" },
        { { foreign_keys = { { "a", "b", references = "t", ref_columns = { "x" } } } },
          "gen_bad: foreign key #1: ref_columns must be an array of 2 column names, got" },
        { { foreign_keys = { { "a", "b", references = "t", on_delete = "nothing" } } },
          'gen_bad: foreign key #1: on_delete must be one of cascade, restrict, set null, set '
          .. 'default, no action; got string ("nothing")' },
        { { foreign_keys = { { "a", "b", references = "t", on_delete = "set null" } } },
          'gen_bad: foreign key #1: on_delete = "set null" on NOT NULL column a' },
        { { foreign_keys = { { "a", "b", references = "t", size = 1 } } },
          "gen_bad: foreign key #1: unknown option 'size'" },
        { { foreign_keys = { { "a", "b", references = "t" }, { "a", "b", references = "u" } } },
          'gen_bad: two constraints or indexes are named "gen_bad_a_b_fkey"; give one of them a '
          .. "'name'" },
      }
      for _, c in ipairs(cases) do
        local err = bad(c[1])
        assert.are.equal("misuse", err.code)
        assert.matches(c[2], err.message, 1, true)
      end
      -- Found when the DDL is made: the referenced model and its columns.
      local M = db:model("gen_bad", { loam.id(), loam.bigint("a"), loam.bigint("b") },
                         { foreign_keys = { { "a", "b", references = "gen_nothing" } } })
      local err = helper.catch(M.ddl, M)
      assert.are.equal("misuse", err.code)
      assert.matches("gen_bad: foreign key #1 (a, b) references table gen_nothing, and no model of "
                     .. "that table is declared on this database", err.message, 1, true)
      db:model("gen_nothing", { loam.id() })
      err = helper.catch(M.ddl, M)
      assert.matches("gen_bad: foreign key #1 (a, b) references gen_nothing, whose primary key has "
                     .. "1 columns, not 2", err.message, 1, true)
      M = db:model("gen_bad", { loam.id(), loam.bigint("a"), loam.bigint("b") },
                   { foreign_keys = { { "a", "b", references = "gen_nothing",
                                        ref_columns = { "id", "nope" } } } })
      err = helper.catch(M.ddl, M)
      assert.matches("gen_bad: foreign key #1 (a, b) references gen_nothing.nope, which is no "
                     .. "column of that model", err.message, 1, true)
    end)

    it("adds and drops UNIQUE constraints; refuses a primary key change, naming the table",
       function()
      local function model(name_unique, uniques, pk)
        return db:model("gen_people", {
          loam.text("id", { null = false }),
          loam.text("email", { null = false, unique = name_unique }),
          loam.text("team"),
          loam.text("nick"),
        }, { primary_key = pk or { "id" }, uniques = uniques })
      end
      local up = migrator(db)
      up({ P = model(true, { { "team", "nick" } }) })
      db:exec("insert into gen_people (id, email, team, nick) values ('1', 'a@x', 't', 'n')")
      -- The other way round: UNIQUE dropped from email, a new one on (email, team).
      local r = up({ P = model(false, { { "email", "team", name = "gen_people_pair" } }) })
      assert.are.same({
        "drop unique gen_people_email_key on gen_people",
        "drop unique gen_people_team_nick_key on gen_people",
        "add unique gen_people_pair on gen_people (email, team)",
      }, summaries(r))
      local text = writer.text(r.ops)
      assert.matches('    add_unique("gen_people", { "email", "team" }, { name = "gen_people_pair" }),',
                     text, 1, true)
      -- Its down adds back what it dropped.
      assert.matches('  down = {\n    drop_unique("gen_people", "gen_people_pair"),\n'
                     .. '    add_unique("gen_people", { "team", "nick" }),\n'
                     .. '    add_unique("gen_people", { "email" }),\n  },', text, 1, true)
      assert.are.same({ ops = {}, errors = {} },
                      diff.diff({ P = model(false, { { "email", "team", name = "gen_people_pair" } }) },
                                db))
      db:exec("insert into gen_people (id, email, team, nick) values ('2', 'a@x', 'u', 'n')")
      local err = helper.catch(db.exec, db,
                               "insert into gen_people (id, email, team) values ('3', 'a@x', 'u')")
      assert.are.equal("unique_violation", err.code)
      assert.are.equal(2, db:query("select count(*) as n from gen_people")[1].n)
      -- A primary key change is refused, naming the table and what to do.
      r = diff.diff({ P = model(false, { { "email", "team", name = "gen_people_pair" } },
                                { "id", "email" }) }, db)
      assert.are.same({}, r.ops)
      assert.are.equal(1, #r.errors)
      assert.matches("^gen_people: the primary key is %(id%) in the database and %(id, email%) in "
                     .. "the model; loam does not generate a primary key change", r.errors[1])
      assert.matches("write that migration yourself", r.errors[1], 1, true)
    end)
  end)
end

-- {======================================================================
-- The commands
-- =======================================================================

local q = helper.shell_quote

local write = helper.write

local MODELS = [[
local loam = require "loam"
return function(db, models)
  models.Author = db:model("cli_authors", {
    loam.id(),
    loam.text("%s", { null = false%s }),
  })
end
]]

local AUTHORS_SQLITE = "create table cli_authors (id integer primary key, name text not null)"
local AUTHORS_PG = [[create table cli_authors (id bigint generated by default as identity
                     primary key, name text not null)]]

-- A database of its own for the commands, which connect by URL: a new
-- SQLite file, a new PostgreSQL database.
local function cli_url(backend, pg)
  if not pg then return "sqlite:" .. helper.tmpname(".db") end
  local admin = helper.connect(backend)
  admin:exec("drop database if exists loam_gen_cli")
  admin:exec("create database loam_gen_cli")
  admin:close()
  local url = backend.url:gsub("^(postgresql://[^/]*/)[^?]*", "%1loam_gen_cli")
  return url
end

for backend, pg in helper.each_backend() do
  if backend.url ~= "sqlite::memory:" then
    describe(backend.label .. ": loam migrate generate and check", function()
      local dir, url

      before_each(function()
        dir = helper.tmpdir()
        url = cli_url(backend, pg)
        write(dir .. "/loam.config.lua", "environments = { development = { url = " .. ("%q"):format(url)
              .. " } }\n")
        assert(os.execute("mkdir " .. q(dir .. "/models") .. " " .. q(dir .. "/migrations")))
        write(dir .. "/models/author.lua", MODELS:format("name", ""))
      end)

      after_each(function()
        if pg then
          local admin = helper.connect(backend)
          admin:exec("drop database loam_gen_cli")
          admin:close()
        end
      end)

      -- The files of the migrations folder.
      local function migration_files()
        local p = assert(io.popen("ls " .. q(dir .. "/migrations")))
        local names = {}
        for n in p:lines() do names[#names + 1] = n end
        p:close()
        return names
      end

      it("writes the migration of the models after the head; up; then no changes", function()
        write(dir .. "/migrations/20200101000000_first.lua", "return migration { change = {} }\n")
        local out, err, code = helper.loam(dir, "migrate up")
        assert.are.same({ "", 0 }, { err, code })
        out, err, code = helper.loam(dir, "migrate check")
        assert.are.same({ "models and database differ (1):\n  create table cli_authors\n", "", 1 },
                        { out, err, code })
        out, err, code = helper.loam(dir, "migrate generate create_authors")
        assert.are.same({ "", 0 }, { err, code })
        local file = out:match("^wrote (migrations/%d+_create_authors%.lua)\n  create table cli_authors\n$")
        assert.is_not_nil(file, out)
        local text = helper.slurp(dir .. "/" .. file)
        local tail = 'parent = "20200101000000",\n  change = {\n    create_table("cli_authors", {\n'
                     .. '      id(),\n      text("name", { null = false }),\n    }),\n  },\n}\n'
        assert.are.equal(tail, text:sub(-#tail))
        -- Not applied yet: generating again would repeat it.
        out, err, code = helper.loam(dir, "migrate generate again")
        assert.are.equal("", out)
        assert.are.equal(1, code)
        assert.matches("^loam: migration_conflict: 1 migration is not applied %(%d+%): 'loam migrate "
                       .. "up' first, then generate\n$", err)
        out, err, code = helper.loam(dir, "migrate up")
        assert.are.same({ "", 0 }, { err, code })
        out, err, code = helper.loam(dir, "migrate generate again")
        assert.are.same({ "no changes\n", "", 0 }, { out, err, code })
        out, err, code = helper.loam(dir, "migrate check")
        assert.are.same({ "models and database agree\n", "", 0 }, { out, err, code })
        assert.are.equal(2, #migration_files())
      end)

      it("says no changes and writes nothing when models and database agree", function()
        local db = loam.connect(url)
        db:exec(pg and AUTHORS_PG or AUTHORS_SQLITE)
        db:close()
        local out, err, code = helper.loam(dir, "migrate generate nothing")
        assert.are.same({ "no changes\n", "", 0 }, { out, err, code })
        assert.are.same({}, migration_files())
        out, err, code = helper.loam(dir, "migrate check")
        assert.are.same({ "models and database agree\n", "", 0 }, { out, err, code })
      end)

      it("refuses an undeclared rename; a declared one keeps the column's data", function()
        local db = loam.connect(url)
        db:exec(pg and AUTHORS_PG or AUTHORS_SQLITE)
        db:exec("insert into cli_authors (name) values ('Ada')")
        db:close()
        write(dir .. "/models/author.lua", MODELS:format("full_name", ""))
        local out, err, code = helper.loam(dir, "migrate generate rename")
        assert.are.equal("", out)
        assert.are.equal(1, code)
        assert.matches("^loam: misuse: cli_authors: column name is gone from the model and full_name "
                       .. "is new, of the same type; a rename is never guessed: declare it on the "
                       .. 'column %(renamed_from = "name"%)', err)
        assert.are.same({}, migration_files())
        out, err, code = helper.loam(dir, "migrate check")
        assert.are.equal(1, code)
        assert.matches("models and database differ (2):\n  add column cli_authors.full_name\n"
                       .. "  cli_authors: column name is gone", out, 1, true)
        write(dir .. "/models/author.lua", MODELS:format("full_name", ', renamed_from = "name"'))
        out, err, code = helper.loam(dir, "migrate generate rename")
        assert.are.same({ "", 0 }, { err, code })
        assert.matches("  rename column cli_authors.name to full_name\n$", out)
        out, err, code = helper.loam(dir, "migrate up")
        assert.are.same({ "", 0 }, { err, code })
        db = loam.connect(url)
        assert.are.same({ { id = 1, full_name = "Ada" } },
                        db:query("select id, full_name from cli_authors"))
        db:close()
        out, err, code = helper.loam(dir, "migrate generate again")
        assert.are.same({ "no changes\n", "", 0 }, { out, err, code })
      end)

      it("reports a check or partial index changed under the same name, and regenerates it",
         function()
        local models = [[
local loam = require "loam"
return function(db, models)
  models.Item = db:model("cli_items", {
    loam.id(),
    loam.text("status", { null = false }),
    loam.integer("qty", { check = %q }),
  }, { indexes = { { "status", where = %q } } })
end
]]
        write(dir .. "/models/author.lua", models:format("qty >= 0", "status <> 'gone'"))
        local out, err, code = helper.loam(dir, "migrate generate create_items")
        assert.are.same({ "", 0 }, { err, code })
        out, err, code = helper.loam(dir, "migrate up")
        assert.are.same({ "", 0 }, { err, code })
        out, err, code = helper.loam(dir, "migrate check")
        assert.are.same({ "models and database agree\n", "", 0 }, { out, err, code })
        write(dir .. "/models/author.lua", models:format("qty BETWEEN 0 AND 9",
                                                         "status IN ('new', 'paid')"))
        out, err, code = helper.loam(dir, "migrate check")
        assert.are.same({ "models and database differ (4):\n"
                          .. "  drop check cli_items_qty_check on cli_items\n"
                          .. "  add check cli_items_qty_check on cli_items\n"
                          .. "  drop index cli_items_status_idx on cli_items\n"
                          .. "  add index cli_items_status_idx on cli_items (status)\n", "", 1 },
                        { out, err, code })
        out, err, code = helper.loam(dir, "migrate generate tighten")
        assert.are.same({ "", 0 }, { err, code })
        -- The linter stops a check and an index made the blocking way on
        -- PostgreSQL: this table is small.
        local path = dir .. "/" .. out:match("^wrote (%S+)")
        local text = helper.slurp(path)
        assert.matches('add_check("cli_items", "cli_items_qty_check", "qty BETWEEN 0 AND 9")', text,
                       1, true)
        helper.write(path, (text:gsub("return migration {\n", "return migration {\n  allow = { "
          .. "check_validated = \"a small table\", index_not_concurrent = \"a small table\" },\n")))
        out, err, code = helper.loam(dir, "migrate up")
        assert.are.same({ "", 0 }, { err, code })
        out, err, code = helper.loam(dir, "migrate generate again")
        assert.are.same({ "no changes\n", "", 0 }, { out, err, code })
        -- Its down puts the old definitions back, as the database printed them.
        out, err, code = helper.loam(dir, "migrate down")
        assert.are.same({ "", 0 }, { err, code })
        write(dir .. "/models/author.lua", models:format("qty >= 0", "status <> 'gone'"))
        out, err, code = helper.loam(dir, "migrate check")
        assert.are.same({ "models and database agree\n", "", 0 }, { out, err, code })
      end)

      it("refuses a bad name and a missing one with the usage", function()
        local _, err, code = helper.loam(dir, "migrate generate Bad-Name")
        assert.are.equal(2, code)
        assert.matches("^loam: usage_error: a migration name is made of a%-z, 0%-9 and _ "
                       .. "%(add_orders_status%), not 'Bad%-Name'\n", err)
        _, err, code = helper.loam(dir, "migrate generate")
        assert.are.equal(2, code)
        assert.matches("'loam migrate generate' needs a NAME for the migration", err, 1, true)
      end)
    end)
  end
end

-- }======================================================================
