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
      local r = diff.diff(models, db:introspect())
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
      r = diff.diff(models, db:introspect())
      assert.are.same({ ops = {}, notes = {}, errors = {} }, r)
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
      local r = diff.diff({ A = A, P = P, T = m1.Tag }, db:introspect())
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
                            P = m1.Post, T = m1.Tag }, db:introspect())
      assert.are.same({ "table gen_authors is in the database but no model declares it; dropping "
                        .. "it loses its data: pass --allow-drops to generate the drop" }, r.errors)
      -- Declared table, undeclared column: an error naming both columns.
      r = diff.diff({ A = authors({ renamed_from = "gen_authors", indexes = { { "full_name" } } },
                                  { length = 60, null = false }), P = m1.Post, T = m1.Tag },
                    db:introspect())
      assert.are.same({ "gen_writers: column name is gone from the model and full_name is new, of "
                        .. "the same type; a rename is never guessed: declare it on the column "
                        .. "(renamed_from = \"name\") to rename, or generate the drop and the add "
                        .. "separately" }, r.errors)
      r = diff.diff({ A = authors({ renamed_from = "gen_authors" },
                                  { length = 60, null = false, renamed_from = "name" }),
                      P = m1.Post, T = m1.Tag }, db:introspect())
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
      local r = diff.diff({ A = A, P = m1.Post }, db:introspect())
      assert.are.same({
        "gen_authors: column tier is in the database but not in the model; dropping it loses its "
          .. "data: pass --allow-drops to generate the drop",
        "table gen_tags is in the database but no model declares it; dropping it loses its data: "
          .. "pass --allow-drops to generate the drop",
      }, r.errors)
      r = diff.diff({ A = A, P = m1.Post }, db:introspect(), { allow_drops = true })
      assert.are.same({ "drop column gen_authors.tier", "drop table gen_tags" }, summaries(r))
      local text = writer.text(r.ops)
      -- A dropped table cannot be made again from here: no down.
      assert.is_nil(text:find("down", 1, true))
      text = writer.text({ r.ops[1] })
      assert.matches('  down = {\n    add_column("gen_authors", enum("tier", { "free", "pro" }, '
                     .. '{ default = "free" })),', text, 1, true)
      assert.are.equal("add_column", read_migration(text).down[1].op)
    end)

    it("notes what no operation changes", function()
      local m1 = v1(db)
      loam.create_tables(db, { m1.Author, m1.Post, m1.Tag })
      local A = db:model("gen_authors", {
        loam.id(),
        loam.text("name", { length = 60, null = false, unique = true }),
        loam.enum("tier", { "free", "pro" }, { default = "free" }),
      }, { indexes = { { "name" } } })
      local r = diff.diff({ A = A, P = m1.Post, T = m1.Tag }, db:introspect())
      assert.are.same({}, r.ops)
      assert.are.same({ "gen_authors.name: UNIQUE is in the model, not in the database; no "
                        .. "operation changes it" }, r.notes)
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
