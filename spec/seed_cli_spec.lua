-- spec/seed_cli_spec.lua: `loam seed` on SQLite and PostgreSQL: the seeds
-- folder or named files, the report per table, --dry-run, the production
-- guard, --help, and the one-line errors and exit statuses.  The host
-- under test (helper.host()) runs as a subprocess in a project of its own.

local helper = require "spec.helper"

local host = helper.host()
local q = helper.shell_quote

local write = helper.write

-- A project: models (customers and their orders), a script that makes
-- the tables, and seeds whose names put orders before customers.
local function project()
  local d = helper.tmpdir()
  assert(os.execute(("mkdir %s/models %s/seeds"):format(q(d), q(d))))
  write(d .. "/loam.config.lua", 'environments = { development = { url = "sqlite:dev.db" } }\n')
  write(d .. "/models/shop.lua", [[
local loam = require "loam"
return function(db, models)
  models.Customer = db:model("cli_seed_customers", {
    loam.id(),
    loam.text("email", { null = false, unique = true }),
    loam.enum("tier", { "free", "pro" }, { default = "free" }),
  })
  models.Order = db:model("cli_seed_orders", {
    loam.id(),
    loam.text("number", { null = false, unique = true }),
    loam.bigint("customer_id", { null = false, references = models.Customer }),
  })
end
]])
  write(d .. "/schema.lua", [[
db:exec("DROP TABLE IF EXISTS cli_seed_orders")
db:exec("DROP TABLE IF EXISTS cli_seed_customers")
db:create_tables { Customer, Order }
]])
  write(d .. "/seeds/1_orders.lua", [[
seed "cli_seed_orders" {
  key = "number",
  { number = "A-1", customer_id = ref { email = "ada@example.com" } },
  { number = "A-2", customer_id = ref { email = "bob@example.com" } },
}
]])
  write(d .. "/seeds/2_customers.lua", [[
seed "cli_seed_customers" {
  key = "email",
  { email = "ada@example.com", tier = "pro" },
  { email = "bob@example.com" },
}
]])
  return d
end

local loam = helper.loam

for backend in helper.each_backend() do
  if not backend.memory then
    describe(backend.label .. ": loam seed", function()
      local dir, db

      before_each(function()
        dir = project()
        db = "--db " .. q(backend.url)
        local out, err, code = loam(dir, "run " .. db .. " schema.lua")
        assert.are.equal(0, code, out .. err)
      end)

      it("seeds the folder in foreign-key order; a second run changes nothing", function()
        local out, err, code = loam(dir, "seed " .. db)
        assert.are.equal("", err)
        assert.are.equal(0, code)
        assert.are.equal("cli_seed_customers: 2 inserted, 0 updated, 0 unchanged\n"
          .. "cli_seed_orders: 2 inserted, 0 updated, 0 unchanged\n", out)
        out, err, code = loam(dir, "seed " .. db)
        assert.are.equal(0, code, err)
        assert.are.equal("cli_seed_customers: 0 inserted, 0 updated, 2 unchanged\n"
          .. "cli_seed_orders: 0 inserted, 0 updated, 2 unchanged\n", out)
      end)

      it("--dry-run lists what would change and applies nothing", function()
        local out, err, code = loam(dir, "seed --dry-run " .. db .. " seeds/2_customers.lua")
        assert.are.equal(0, code, err)
        assert.are.equal("cli_seed_customers: 2 to insert, 0 to update, 0 unchanged\n"
          .. "  insert email = 'ada@example.com'\n  insert email = 'bob@example.com'\n"
          .. "dry run: nothing was applied\n", out)
        loam(dir, "seed " .. db .. " seeds/2_customers.lua")
        write(dir .. "/seeds/2_customers.lua", 'seed "cli_seed_customers" { key = "email", '
          .. '{ email = "bob@example.com", tier = "pro" } }')
        out = loam(dir, "seed " .. db .. " --dry-run")
        assert.are.equal("cli_seed_customers: 0 to insert, 1 to update, 0 unchanged\n"
          .. "  update email = 'bob@example.com' (tier)\n"
          .. "cli_seed_orders: 2 to insert, 0 to update, 0 unchanged\n"
          .. "  insert number = 'A-1'\n  insert number = 'A-2'\n"
          .. "dry run: nothing was applied\n", out)
        out = loam(dir, "seed " .. db .. " seeds/2_customers.lua")
        assert.are.equal("cli_seed_customers: 0 inserted, 1 updated, 0 unchanged\n", out)
      end)

      it("draws a progress bar on a terminal only (under script(1), which gives it one)",
         function()
        local cmd = ("cd %s && TERM=dumb script -qec %s /dev/null </dev/null"):format(q(dir),
          q(q(host) .. " seed " .. db))
        local p = assert(io.popen(cmd))
        local out = p:read("a")
        p:close()
        assert.matches("\r[##############################] 4/4 cli_seed_orders\27[K", out, 1, true)
        assert.matches("\r\27%[Kcli_seed_customers: 2 inserted, 0 updated, 0 unchanged\r?\n"
          .. "cli_seed_orders: 2 inserted", out)
        local piped = loam(dir, "seed " .. db)
        assert.are.equal("cli_seed_customers: 0 inserted, 0 updated, 2 unchanged\n"
          .. "cli_seed_orders: 0 inserted, 0 updated, 2 unchanged\n", piped)
      end)

      it("refuses production unless the files are reference data", function()
        local out, err, code = loam(dir, "seed " .. db, { LOAM_ENV = "production" })
        assert.are.equal(1, code)
        assert.are.equal("", out)
        assert.are.equal("loam: refused: the environment is production, and seeds/1_orders.lua, "
          .. "seeds/2_customers.lua are not reference data: seeds do not run in production "
          .. "unless the file says 'reference_data = true'\n", err)
        write(dir .. "/seeds/2_customers.lua", 'reference_data = true\nseed "cli_seed_customers" '
          .. '{ key = "email", { email = "ops@example.com" } }')
        out, err, code = loam(dir, "seed --env production " .. db .. " seeds/2_customers.lua")
        assert.are.equal(0, code, err)
        assert.are.equal("cli_seed_customers: 1 inserted, 0 updated, 0 unchanged\n", out)
      end)

      it("reports a bad seed as one line, exit 1, with nothing applied", function()
        write(dir .. "/seeds/2_customers.lua", 'seed "cli_seed_customers" {\n  key = "email",\n'
          .. '  { email = "ada@example.com" },\n')
        local out, err, code = loam(dir, "seed " .. db)
        assert.are.equal(1, code)
        assert.are.equal("", out)
        assert.are.equal("loam: syntax_error: seeds/2_customers.lua:4: unexpected symbol near "
          .. "<eof>\n", err)
        write(dir .. "/seeds/2_customers.lua", 'seed "cli_seed_customers" { key = "email",\n'
          .. '  { email = "ada@example.com" } }')
        out, err, code = loam(dir, "seed " .. db)
        assert.are.equal(1, code)
        assert.are.equal("loam: not_found: seeds/1_orders.lua:4: cli_seed_orders row 2: "
          .. "customer_id refers to cli_seed_customers with email = 'bob@example.com', and "
          .. "there is no such row (nor does this run seed it)\n", err)
        write(dir .. "/count.lua", 'print(Customer:count(), Order:count())')
        out = loam(dir, "run " .. db .. " count.lua")
        assert.are.equal("0\t0\n", out)
        out, err, code = loam(dir, "seed " .. db .. " nothing.lua")
        assert.are.equal(1, code)
        assert.are.equal("loam: not_found: cannot open seed file nothing.lua: No such file or "
          .. "directory\n", err)
      end)
    end)
  end
end

describe("loam seed", function()
  it("--help shows its usage and options", function()
    local out, err, code = loam(project(), "seed --help")
    assert.are.equal(0, code, err)
    assert.matches("^usage: loam seed %[options%] %[FILES%.%.%.%]\n", out)
    assert.matches("--dry-run  report what would change, apply nothing", out, 1, true)
    assert.matches("reference_data = true", out, 1, true)
  end)

  it("refuses an unknown option with the usage, exit 2", function()
    local out, err, code = loam(project(), "seed --dryrun")
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.are.equal("loam: usage_error: unknown option '--dryrun' for 'loam seed'; did you mean "
      .. "'--dry-run'?\nusage: loam seed [options] [FILES...]\nRun 'loam seed --help' for its "
      .. "options.\n", err)
  end)

  it("says so when the seeds folder holds no seed file", function()
    local dir = project()
    os.execute("rm " .. q(dir) .. "/seeds/*.lua")
    local out, err, code = loam(dir, "seed")
    assert.are.equal(0, code, err)
    assert.matches("^no seed files in .*/seeds\n$", out)
    os.execute("rmdir " .. q(dir) .. "/seeds")
    out, err, code = loam(dir, "seed")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("loam: not_found: no seeds folder " .. dir .. "/seeds (the config's 'seeds' "
      .. "names it)\n", err)
  end)
end)
