-- spec/migrate_cli_spec.lua: the commands of `loam migrate` (new, up,
-- down, redo, status, merge, lint) run as a user runs them, on SQLite and
-- PostgreSQL: their output, exit statuses (0, 1 for an error, 2 for a
-- usage error) and one-line errors, dry runs that print the exact SQL and
-- change nothing, two heads and their merge, two migrators at once, and
-- the migration URL of the config.

local helper = require "spec.helper"
local loam_db = require "loam"

local q = helper.shell_quote
local loam = helper.loam

local write = helper.write

local function ls(dir)
  local p = assert(io.popen("ls " .. q(dir)))
  local names = {}
  for n in p:lines() do names[#names + 1] = n end
  p:close()
  return names
end

local nschemas = 0

-- A project folder (loam init) and a database of its own: a SQLite file
-- or a PostgreSQL schema; 'done' drops the schema.
local function project(backend)
  local dir = helper.tmpdir()
  local _, _, code = loam(dir, "init")
  assert.equal(0, code)
  if backend.name ~= "postgres" then
    return dir, "sqlite:" .. dir .. "/app.db", function() end
  end
  nschemas = nschemas + 1
  local schema = ("loam_migcli_%d_%d"):format(nschemas, math.random(1, 1e9))
  local admin = loam_db.connect(backend.url)
  admin:exec("CREATE SCHEMA " .. schema)
  return dir, backend.url .. "&options=-csearch_path%3D" .. schema, function()
    admin:exec("DROP SCHEMA " .. schema .. " CASCADE")
    admin:close()
  end
end

local FIRST = [[
return migration {
  change = {
    create_table("orders", { id(), text("note") }),
  },
}
]]

local SECOND = [[
return migration {
  parent = "20260101000001",
  change = {
    add_index("orders", { "note" }, { concurrently = true }),
    add_column("orders", text("status", { null = false, default = "new" })),
  },
}
]]

for backend in helper.each_backend() do
  if not backend.memory then
    local pg = backend.name == "postgres"
    describe(backend.label .. ": loam migrate", function()
      it("new, up, status, down and redo", function()
        local dir, url, done = project(backend)
        local db = "--db " .. q(url)
        local out, err, code = loam(dir, "migrate new create_orders")
        assert.same({ 0, "" }, { code, err })
        local first = out:match("^created (migrations/%d+_create_orders%.lua)\n$")
        assert.is_truthy(first, out)
        write(dir .. "/" .. first, FIRST)
        out, err, code = loam(dir, "migrate new add_status")
        assert.same({ 0, "" }, { code, err })
        local second = out:match("^created (migrations/%d+_add_status%.lua)\n$")
        assert.is_truthy(second, out)
        local v1 = first:match("(%d+)_")
        assert.equal('return migration {\n  parent = "' .. v1 .. '",\n  change = {\n  },\n}\n',
          helper.slurp(dir .. "/" .. second))
        os.remove(dir .. "/" .. first)
        os.remove(dir .. "/" .. second)
        write(dir .. "/migrations/20260101000001_create_orders.lua", FIRST)
        write(dir .. "/migrations/20260101000002_add_status.lua", SECOND)

        out, err, code = loam(dir, "migrate status " .. db)
        assert.same({ 0, "" }, { code, err })
        assert.equal([[
version         name           state         applied at
20260101000001  create_orders  pending
20260101000002  add_status     pending
]], out)
        out, err, code = loam(dir, "migrate up " .. db)
        assert.same({ 0, "" }, { code, err })
        assert.equal("applied 20260101000001_create_orders\napplied 20260101000002_add_status\n",
          out)
        out, err, code = loam(dir, "migrate up " .. db)
        assert.same({ 0, "", "nothing to apply\n" }, { code, err, out })
        out = loam(dir, "migrate status " .. db)
        assert.matches("\n20260101000002  add_status     applied       %d%d%d%d%-%d%d%-%d%d "
          .. "%d%d:%d%d:%d%d\n$", out)

        out, err, code = loam(dir, "migrate down " .. db)
        assert.same({ 0, "", "reverted 20260101000002_add_status\n" }, { code, err, out })
        out, err, code = loam(dir, "migrate redo " .. db)
        assert.same({ 0, "", "reverted 20260101000001_create_orders\n"
          .. "applied 20260101000001_create_orders\n" }, { code, err, out })
        out, err, code = loam(dir, "migrate down --steps 5 " .. db)
        assert.same({ 0, "", "reverted 20260101000001_create_orders\n" }, { code, err, out })
        out, err, code = loam(dir, "migrate down " .. db)
        assert.same({ 0, "", "nothing to revert\n" }, { code, err, out })
        done()
      end)

      it("up and down --dry-run print the exact SQL in order and change nothing", function()
        local dir, url, done = project(backend)
        local db = "--db " .. q(url)
        write(dir .. "/migrations/20260101000001_create_orders.lua", FIRST)
        write(dir .. "/migrations/20260101000002_add_status.lua", SECOND)
        local out, err, code = loam(dir, "migrate up --dry-run " .. db)
        assert.same({ 0, "" }, { code, err })
        if pg then
          assert.equal([[
-- 20260101000001_create_orders (up)
CREATE TABLE "orders" ("id" bigint GENERATED BY DEFAULT AS IDENTITY CONSTRAINT "orders_pkey" PRIMARY KEY, "note" text);
-- 20260101000002_add_status (up, outside a transaction, step by step)
CREATE INDEX CONCURRENTLY "orders_note_idx" ON "orders" ("note");
ALTER TABLE "orders" ADD COLUMN "status" text NOT NULL DEFAULT 'new';
]], out)
        else
          assert.equal([[
-- 20260101000001_create_orders (up)
CREATE TABLE "orders" ("id" INTEGER CONSTRAINT "orders_pkey" PRIMARY KEY, "note" TEXT);
-- 20260101000002_add_status (up)
CREATE INDEX "orders_note_idx" ON "orders" ("note");
ALTER TABLE "orders" ADD COLUMN "status" TEXT NOT NULL DEFAULT 'new';
]], out)
        end
        out = loam(dir, "migrate status " .. db)
        assert.matches("create_orders  pending", out, 1, true)
        loam(dir, "migrate up " .. db)
        out, err, code = loam(dir, "migrate down --dry-run --steps 2 " .. db)
        assert.same({ 0, "" }, { code, err })
        -- a down runs in one transaction, so its index operations are not concurrent
        assert.equal("-- 20260101000002_add_status (down)\n"
          .. 'ALTER TABLE "orders" DROP COLUMN "status";\nDROP INDEX "orders_note_idx";\n'
          .. "-- 20260101000001_create_orders (down)\nDROP TABLE \"orders\";\n", out)
        out = loam(dir, "migrate status " .. db)
        assert.matches("add_status     applied", out, 1, true)
        done()
      end)

      it("refuse two heads on up (exit 1, one line); merge writes the migration that joins them",
         function()
        local dir, url, done = project(backend)
        local db = "--db " .. q(url)
        write(dir .. "/migrations/20260101000001_create_orders.lua", FIRST)
        write(dir .. "/migrations/20260101000002_add_status.lua", SECOND)
        write(dir .. "/migrations/20260101000003_add_total.lua",
          'return migration { parent = "20260101000001", change = { add_column("orders", '
          .. 'integer("total")) } }')
        local out, err, code = loam(dir, "migrate up " .. db)
        assert.same({ 1, "" }, { code, out })
        assert.equal("loam: migration_conflict: two heads: 20260101000002 (add_status) and "
          .. "20260101000003 (add_total) are both followed by no migration, as after a merge "
          .. "of two branches; add a merge migration that follows both\n", err)
        _, err, code = loam(dir, "migrate new more")
        assert.equal(1, code)
        assert.equal("loam: migration_conflict: two heads, 20260101000002_add_status and "
          .. "20260101000003_add_total: 'loam migrate merge' writes the migration that joins "
          .. "them, then write this one\n", err)
        out, err, code = loam(dir, "migrate merge")
        assert.same({ 0, "" }, { code, err })
        local path = out:match("^created (migrations/%d+_merge%.lua)\n$")
        assert.is_truthy(path, out)
        assert.equal("-- Joins 20260101000002_add_status and 20260101000003_add_total.\n"
          .. 'return migration {\n  parent = { "20260101000002", "20260101000003" },\n'
          .. "  change = {},\n}\n", helper.slurp(dir .. "/" .. path))
        out, err, code = loam(dir, "migrate up " .. db)
        assert.same({ 0, "" }, { code, err })
        assert.matches("applied 20260101000003_add_total\napplied %d+_merge\n$", out)
        _, err, code = loam(dir, "migrate merge")
        assert.equal(1, code)
        assert.matches("^loam: misuse: one head %(%d+_merge%): nothing to merge\n$", err)
        done()
      end)

      it("two up at once: one applies each migration, the other waits, nothing twice",
         function()
        local dir, url, done = project(backend)
        local slow = pg and "SELECT pg_sleep(1)"
          or "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) "
             .. "SELECT count(*) FROM c"
        write(dir .. "/migrations/20260101000001_create_orders.lua", ([[
return migration {
  change = {
    create_table("orders", { id(), text("note") }),
    execute(%q, nil, { down = "SELECT 1" }),
    execute("INSERT INTO orders (note) VALUES ('once')", nil, { down = "DELETE FROM orders" }),
  },
  allow = { schema_and_data = "the table is new and this is its first row" },
}
]]):format(slow))
        -- The database exists before the two start: two first opens of one new SQLite
        -- file at once can fail with busy while each switches it to WAL.
        assert.equal(0, select(3, loam(dir, "migrate status --db " .. q(url))))
        local cmd = ("cd %s && (%s migrate up --db %s > a.out 2> a.err; echo $? > a.rc) & "
          .. "(cd %s && %s migrate up --db %s > b.out 2> b.err; echo $? > b.rc) & wait"):format(
          q(dir), q(helper.host()), q(url), q(dir), q(helper.host()), q(url))
        assert.is_true(os.execute(cmd))
        local outs = helper.slurp(dir .. "/a.out") .. helper.slurp(dir .. "/b.out")
        assert.equal("0\n", helper.slurp(dir .. "/a.rc"), helper.slurp(dir .. "/a.err"))
        assert.equal("0\n", helper.slurp(dir .. "/b.rc"), helper.slurp(dir .. "/b.err"))
        local _, applied = outs:gsub("applied 20260101000001_create_orders", "")
        assert.equal(1, applied, outs)
        local db = loam_db.connect(url)
        assert.equal(1, helper.count(db, "orders"))
        assert.equal(1, helper.count(db, "loam_migrations"))
        db:close()
        done()
      end)

      it("lint the pending migrations; on PostgreSQL up runs the linter first", function()
        local dir, url, done = project(backend)
        local db = "--db " .. q(url)
        write(dir .. "/migrations/20260101000001_create_orders.lua", FIRST)
        loam(dir, "migrate up " .. db)
        local third = dir .. "/migrations/20260101000002_note_index.lua"
        write(third, 'return migration {\n  parent = "20260101000001",\n  change = {\n'
          .. '    add_index("orders", { "note" }),\n  },\n}\n')
        local finding = "migrations/20260101000002_note_index.lua:4: index_not_concurrent: "
          .. "add_index on existing table orders without concurrently\n"
          .. "  why: CREATE INDEX without CONCURRENTLY blocks every write to the table until "
          .. "the index is built\n"
          .. "  safe: add_index(..., { concurrently = true }), in a migration of its own (a "
          .. "concurrent build runs outside a transaction)\n"
          .. "  silence: allow = { index_not_concurrent = \"the reason\" }\n"
        local out, err, code = loam(dir, "migrate lint " .. db)
        if pg then
          assert.same({ 1, "", finding .. "1 finding in 1 migration\n" }, { code, err, out })
          out, err, code = loam(dir, "migrate up " .. db)
          assert.same({ 1, "" }, { code, out })
          assert.equal(finding .. "loam: lint: 1 finding in the pending migrations (above): "
            .. "make each change the safe way, or silence its rule in the migration with a "
            .. "reason\n", err)
          write(third, 'return migration {\n  parent = "20260101000001",\n  change = {\n'
            .. '    add_index("orders", { "note" }),\n  },\n'
            .. '  allow = { index_not_concurrent = "orders has a few rows" },\n}\n')
        else
          assert.same({ 0, "", "no findings in 1 migration\n" }, { code, err, out })
        end
        out, err, code = loam(dir, "migrate up " .. db)
        assert.same({ 0, "", "applied 20260101000002_note_index\n" }, { code, err, out })
        out, err, code = loam(dir, "migrate lint --all " .. db)
        assert.same({ 0, "", "no findings in 2 migrations\n" }, { code, err, out })
        done()
      end)

      it("refuse to revert an irreversible migration, in one line", function()
        local dir, url, done = project(backend)
        local db = "--db " .. q(url)
        write(dir .. "/migrations/20260101000001_create_orders.lua", FIRST)
        write(dir .. "/migrations/20260101000002_drop_note.lua",
          'return migration { parent = "20260101000001", change = { drop_column("orders", '
          .. '"note") } }')
        loam(dir, "migrate up " .. db)
        for _, args in ipairs { "migrate down ", "migrate down --dry-run " } do
          local out, err, code = loam(dir, args .. db)
          assert.same({ 1, "" }, { code, out })
          assert.equal("loam: misuse: migration 20260101000002 (drop_note) cannot be reverted: "
            .. "its down is derived from its operations, and step 1 (drop_column): drop_column "
            .. "on table 'orders': cannot be reversed: the column's values are gone; write the "
            .. "'down' yourself\n", err)
        end
        done()
      end)
    end)
  end
end

describe("loam migrate, whatever the database", function()
  it("status tells changed, missing and out-of-order migrations; up applies one out of order "
     .. "only when asked", function()
    local dir = helper.tmpdir()
    loam(dir, "init")
    write(dir .. "/migrations/20260101000001_create_orders.lua", FIRST)
    write(dir .. "/migrations/20260101000003_add_total.lua",
      'return migration { parent = "20260101000001", change = { add_column("orders", '
      .. 'integer("total")) } }')
    loam(dir, "migrate up")
    write(dir .. "/migrations/20260101000001_create_orders.lua", FIRST .. "-- edited\n")
    os.remove(dir .. "/migrations/20260101000003_add_total.lua")
    write(dir .. "/migrations/20260101000002_add_status.lua", SECOND)
    local out, err, code = loam(dir, "migrate status")
    assert.same({ 0, "" }, { code, err })
    out = out:gsub("%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d", "<when>")
    assert.equal([[
version         name           state         applied at
20260101000001  create_orders  changed       <when>  (applied, but the file changed since)
20260101000002  add_status     out_of_order  (older than the newest applied (up --out-of-order applies it))
20260101000003                 missing       <when>  (applied, but no file has this version)
]], out)
    write(dir .. "/migrations/20260101000001_create_orders.lua", FIRST)
    write(dir .. "/migrations/20260101000003_add_total.lua",
      'return migration { parent = "20260101000001", change = { add_column("orders", '
      .. 'integer("total")) } }')
    write(dir .. "/migrations/20260101000004_merge.lua",
      'return migration { parent = { "20260101000002", "20260101000003" }, change = {} }')
    out, err, code = loam(dir, "migrate up")
    assert.same({ 1, "" }, { code, out })
    assert.equal("loam: migration_conflict: migration 20260101000002_add_status is older than "
      .. "the newest applied one and was not applied: it is out of order; --out-of-order "
      .. "applies it\n", err)
    out, err, code = loam(dir, "migrate up --out-of-order")
    assert.same({ 0, "", "applied 20260101000002_add_status\napplied 20260101000004_merge\n" },
      { code, err, out })
  end)

  it("shows progress on a terminal only (under script(1), which gives it one)", function()
    local dir = helper.tmpdir()
    loam(dir, "init")
    write(dir .. "/migrations/20260101000001_create_orders.lua", FIRST)
    local cmd = ("cd %s && TERM=dumb script -qec %s /dev/null"):format(q(dir),
      q(q(helper.host()) .. " migrate up"))
    local p = assert(io.popen(cmd))
    local out = p:read("a"):gsub("\r", "")
    p:close()
    assert.equal("applying 20260101000001_create_orders ...\n"
      .. "applied 20260101000001_create_orders\n", out)
  end)

  it("needs a command: usage errors exit 2", function()
    local dir = helper.tmpdir()
    local out, err, code = loam(dir, "migrate")
    assert.same({ 2, "" }, { code, out })
    assert.matches("^loam: usage_error: 'loam migrate' needs a command: new, generate, up, "
      .. "down, redo, status, lint, check, merge\nusage: loam migrate COMMAND", err)
    _, err, code = loam(dir, "migrate upp")
    assert.equal(2, code)
    assert.matches("^loam: usage_error: unknown 'loam migrate' command 'upp'; did you mean "
      .. "'up'%?\n", err)
    _, err, code = loam(dir, "migrate down --steps x")
    assert.equal(2, code)
    assert.matches("^loam: usage_error: %-%-steps takes a positive whole number, not 'x'\n", err)
    _, err, code = loam(dir, "migrate new Bad-Name")
    assert.equal(2, code)
    assert.matches("^loam: usage_error: a migration name is made of a%-z, 0%-9 and _ ", err)
    _, err, code = loam(dir, "migrate up --force")
    assert.equal(2, code)
    assert.matches("^loam: usage_error: unknown option '%-%-force' for 'loam migrate up'", err)
  end)

  it("prints its help and each command's", function()
    local dir = helper.tmpdir()
    local out, err, code = loam(dir, "migrate --help")
    assert.same({ 0, "" }, { code, err })
    assert.matches("\nCommands:\n  new       write an empty migration", out, 1, true)
    out, err, code = loam(dir, "help migrate up")
    assert.same({ 0, "" }, { code, err })
    assert.matches("^usage: loam migrate up %[%-%-to VERSION%] %[%-%-dry%-run%] "
      .. "%[%-%-out%-of%-order%]\n", out)
  end)

  it("reports a bad migration file in one line naming file and line, and applies nothing",
     function()
    local dir = helper.tmpdir()
    loam(dir, "init")
    write(dir .. "/migrations/20260101000001_a.lua", FIRST)
    write(dir .. "/migrations/20260101000002_b.lua",
      'return migration {\n  parent = "20260101000001",\n  change = { add_column("orders", '
      .. 'text("x", { lenght = 3 })) },\n}\n')
    local out, err, code = loam(dir, "migrate up")
    assert.same({ 1, "" }, { code, out })
    assert.equal("loam: misuse: migrations/20260101000002_b.lua:3: orders.x: unknown option "
      .. "'lenght'\n", err)
    assert.is_falsy(io.open(dir .. "/loam.db"))
    write(dir .. "/migrations/20260101000002_b.lua", "return migration {\n  change = {\n")
    _, err, code = loam(dir, "migrate status")
    assert.equal(1, code)
    assert.equal("loam: syntax_error: migrations/20260101000002_b.lua:3: unexpected symbol near "
      .. "<eof>\n", err)
    write(dir .. "/migrations/2026_b.lua", "")
    os.remove(dir .. "/migrations/20260101000002_b.lua")
    _, err, code = loam(dir, "migrate up")
    assert.equal(1, code)
    assert.equal("loam: misuse: migrations/2026_b.lua is not named <UTC yyyymmddHHMMSS>_<name>"
      .. ".lua, the name of a-z, 0-9 and _ (20261204120000_add_orders_status.lua)\n", err)
  end)

  it("--to names a version that exists; a database it cannot reach is one line", function()
    local dir = helper.tmpdir()
    loam(dir, "init")
    write(dir .. "/migrations/20260101000001_a.lua", FIRST)
    local out, err, code = loam(dir, "migrate up --to 20260101000009")
    assert.same({ 1, "" }, { code, out })
    assert.equal("loam: misuse: --to 20260101000009: no migration has this version\n", err)
    out, err, code = loam(dir, "migrate status --db 'postgresql:///nodb?host=/nonexistent'")
    assert.same({ 1, "" }, { code, out })
    assert.matches("^loam: connection_failed: [^\n]*\n$", err)
  end)

  it("runs on the environment's migration_url, not its url", function()
    local dir = helper.tmpdir()
    write(dir .. "/loam.config.lua", 'environments = { development = { url = "sqlite:app.db", '
      .. 'migration_url = "sqlite:owner.db" } }\n')
    assert(os.execute("mkdir " .. q(dir .. "/migrations")))
    write(dir .. "/migrations/20260101000001_a.lua", FIRST)
    local out, err, code = loam(dir, "migrate up")
    assert.same({ 0, "", "applied 20260101000001_a\n" }, { code, err, out })
    local names = table.concat(ls(dir), " ")
    assert.matches("owner.db", names, 1, true)
    assert.is_nil(names:find("app.db", 1, true))
  end)
end)
