-- spec/cli_spec.lua: the `loam` command line (loam.cli): help, exit
-- statuses, the config file and its search, where the database URL comes
-- from, and the commands init, run and console on SQLite and PostgreSQL.
-- Every case runs the host under test as a subprocess in a directory of
-- its own.
--
-- The host under test is helper.host().

local helper = require "spec.helper"

local host = helper.host()
local q = helper.shell_quote

local write = helper.write

local exists = require("loam.config").exists

local tmpdir, loam = helper.tmpdir, helper.loam

local function one_line(err)
  assert.matches("^[^\n]*\n$", err)
end

describe("loam help", function()
  it("prints the usage, the commands and the rules on stdout, exit 0", function()
    local dir = tmpdir()
    local out, err, code = loam(dir, "help")
    assert.are.equal(0, code)
    assert.are.equal("", err)
    assert.matches("^usage: loam %[options%] %[script %[args%]%]", out)
    for _, cmd in ipairs { "help", "init", "run", "console", "migrate", "models", "seed" } do
      assert.matches("\n  " .. cmd .. " +%S", out)
    end
    assert.matches("names a command, unless a file of that name exists", out, 1, true)
    assert.matches("LOAM_DATABASE_URL, DATABASE_URL", out, 1, true)
    for _, opt in ipairs { "--help", "-h" } do
      local out2, err2, code2 = loam(dir, opt)
      assert.are.equal(0, code2)
      assert.are.equal("", err2)
      assert.are.equal(out, out2)
    end
  end)

  it("of a command is the same as COMMAND --help", function()
    local dir = tmpdir()
    for _, cmd in ipairs { "init", "run", "console", "help" } do
      local out, err, code = loam(dir, "help " .. cmd)
      assert.are.equal(0, code)
      assert.are.equal("", err)
      assert.matches("^usage: loam " .. cmd .. " ", out)
      local out2, _, code2 = loam(dir, cmd .. " --help")
      assert.are.equal(0, code2)
      assert.are.equal(out, out2)
      local out3 = loam(dir, cmd .. " -h")
      assert.are.equal(out, out3)
    end
  end)

  it("of an unknown command is a usage error with the nearest name, exit 2", function()
    local out, err, code = loam(tmpdir(), "help consol")
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.matches("^loam: usage_error: unknown command 'consol'; did you mean 'console'%?\n"
                   .. "usage: loam", err)
  end)

  it("--version prints the versions, exit 0", function()
    local out, err, code = loam(tmpdir(), "--version")
    assert.are.equal(0, code)
    assert.are.equal("", err)
    assert.matches("^loam %d+%.%d+%.%d+\nLua 5%.4%.%d+, SQLite [%d.]+, libpq %d+%.%d+\n$", out)
  end)
end)

describe("loam usage errors", function()
  it("an unknown command prints the usage and suggests the nearest, exit 2", function()
    local out, err, code = loam(tmpdir(), "runn x.lua")
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.matches("^loam: usage_error: unknown command 'runn'; did you mean 'run'%?\n", err)
    assert.matches("\nusage: loam %[options%] %[script %[args%]%]\n", err)
    -- Nothing near: no suggestion.
    _, err, code = loam(tmpdir(), "frobnicate")
    assert.are.equal(2, code)
    assert.matches("^loam: usage_error: unknown command 'frobnicate'\n", err)
    -- A script after global options is no command: 'loam run' is.
    _, err, code = loam(tmpdir(), "--db sqlite::memory: app.lua")
    assert.are.equal(2, code)
    assert.matches("^loam: usage_error: unknown command 'app.lua'; to run a script with the "
                   .. "project, 'loam run app.lua'\n", err)
  end)

  it("an unknown option of a command names the command, exit 2", function()
    local dir = tmpdir()
    local out, err, code = loam(dir, "init --forse")
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.matches("^loam: usage_error: unknown option '%-%-forse' for 'loam init'\n"
                   .. "usage: loam init %[DIR%]\n", err)
    assert.is_false(exists(dir .. "/loam.config.lua"))
    _, err, code = loam(dir, "run --verbos x.lua")
    assert.are.equal(2, code)
    assert.matches("^loam: usage_error: unknown option '%-%-verbos' for 'loam run'; "
                   .. "did you mean '%-%-verbose'%?\n", err)
  end)

  it("a missing value, a missing or extra argument, exit 2", function()
    local dir = tmpdir()
    local _, err, code = loam(dir, "run --db")
    assert.are.equal(2, code)
    assert.matches("^loam: usage_error: option '%-%-db' needs a value %(URL%)\n", err)
    _, err, code = loam(dir, "run")
    assert.are.equal(2, code)
    assert.matches("^loam: usage_error: 'loam run' needs a script to run\n", err)
    _, err, code = loam(dir, "init a b")
    assert.are.equal(2, code)
    assert.matches("^loam: usage_error: 'loam init' takes at most 1 argument, not 'b'\n", err)
    _, err, code = loam(dir, "console extra")
    assert.are.equal(2, code)
    assert.matches("^loam: usage_error: 'loam console' takes no arguments, not 'extra'\n", err)
    _, err, code = loam(dir, "--verbose=yes help")
    assert.are.equal(2, code)
    assert.matches("^loam: usage_error: option '%-%-verbose' takes no value\n", err)
  end)

  it("a file named like a command runs as a script; a path always does", function()
    local dir = tmpdir()
    write(dir .. "/console", "print('the script', ...)\n")
    local out, err, code = loam(dir, "console a")
    assert.are.equal(0, code)
    assert.are.equal("", err)
    assert.are.equal("the script\ta\n", out)
    out = loam(dir, "./console b")
    assert.are.equal("the script\tb\n", out)
  end)
end)

describe("loam init", function()
  it("creates the config and the folders and says so", function()
    local dir = tmpdir()
    local out, err, code = loam(dir, "init")
    assert.are.equal(0, code)
    assert.are.equal("", err)
    assert.are.equal("created models/\ncreated migrations/\ncreated seeds/\n"
                     .. "created loam.config.lua\n", out)
    for _, d in ipairs { "models", "migrations", "seeds" } do
      assert.is_true(os.execute("test -d " .. q(dir .. "/" .. d)))
    end
    -- The config it writes is valid and selects its development database.
    out, err, code = loam(dir, "--verbose run /dev/null")
    assert.are.equal(0, code)
    assert.matches("loam: database: sqlite:" .. dir:gsub("%p", "%%%0")
                   .. "/development.db %(from environments.development.url of ", err)
  end)

  it("into a new folder, named as given", function()
    local dir = tmpdir()
    local out, _, code = loam(dir, "init app")
    assert.are.equal(0, code)
    assert.are.equal("created app/\ncreated app/models/\ncreated app/migrations/\n"
                     .. "created app/seeds/\ncreated app/loam.config.lua\n", out)
    assert.is_true(exists(dir .. "/app/loam.config.lua"))
  end)

  it("refuses to overwrite a config and changes nothing, exit 1", function()
    local dir = tmpdir()
    write(dir .. "/loam.config.lua", "models = 'm'\n")
    local out, err, code = loam(dir, "init")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("loam: exists: loam.config.lua already exists; "
                     .. "loam init leaves it as it is\n", err)
    assert.are.equal("models = 'm'\n", helper.slurp(dir .. "/loam.config.lua"))
    assert.is_falsy(os.execute("test -d " .. q(dir .. "/models")))
  end)
end)

-- A project: a config with the given text, a models folder with one model
-- file, and a subfolder to run from.
local MODEL = [[
local loam = require "loam"
return function(db, models)
  models.Item = db:model("cli_spec_items", {
    loam.id(),
    loam.text("name", { null = false }),
  })
  return function()
    models.relations_ran = models.Tag ~= nil
  end
end
]]
local TAG_MODEL = [[
local loam = require "loam"
return function(db, models)
  models.Tag = db:model("cli_spec_tags", { loam.id(), loam.text("label") })
end
]]

local function project(config_text)
  local dir = tmpdir()
  if config_text then write(dir .. "/loam.config.lua", config_text) end
  assert(os.execute("mkdir -p " .. q(dir .. "/models") .. " " .. q(dir .. "/sub/deeper") .. " "
                    .. q(dir .. "/data")))
  write(dir .. "/models/item.lua", MODEL)
  write(dir .. "/models/tag.lua", TAG_MODEL)
  return dir
end

local CONFIG = [[
environments = {
  development = { url = "sqlite:dev.db" },
  test = { url = "sqlite:data/test.db", migration_url = "sqlite:owner.db" },
}
]]

describe("the project config", function()
  local function where(dir, args, env)
    local out, err, code = loam(dir, "--verbose " .. (args or "") .. " run /dev/null", env)
    assert.are.equal("", out)
    assert.are.equal(0, code, err)
    return err
  end

  it("is found from the current directory upward; relative SQLite paths follow it", function()
    local dir = project(CONFIG)
    local err = where(dir .. "/sub/deeper")
    assert.matches("^loam: config: " .. dir:gsub("%p", "%%%0") .. "/loam.config.lua\n", err)
    assert.matches("\nloam: environment: development %(from the default%)\n", err)
    assert.matches("\nloam: database: sqlite:" .. dir:gsub("%p", "%%%0") .. "/dev.db ", err)
    assert.matches("\nloam: models: 3 from " .. dir:gsub("%p", "%%%0") .. "/models\n", err)
    -- The database is the config's folder's, not the current directory's.
    assert.is_true(exists(dir .. "/dev.db"))
    assert.is_false(exists(dir .. "/sub/deeper/dev.db"))
  end)

  it("is optional: without one the default sqlite:loam.db is in the current directory", function()
    local dir = tmpdir()
    local err = where(dir)
    assert.matches("^loam: config: none found from " .. dir:gsub("%p", "%%%0")
                   .. " upward %(the defaults apply%)\n", err)
    assert.matches("\nloam: database: sqlite:" .. dir:gsub("%p", "%%%0")
                   .. "/loam.db %(from the default%)\n", err)
    assert.is_true(exists(dir .. "/loam.db"))
  end)

  it("selects the environment from --env, then LOAM_ENV, then development", function()
    local dir = project(CONFIG)
    local d = dir:gsub("%p", "%%%0")
    local err = where(dir, "--env test")
    assert.matches("loam: environment: test %(from %-%-env%)\n", err)
    assert.matches("loam: database: sqlite:" .. d .. "/data/test.db %(from environments.test.url of ",
                   err)
    err = where(dir, nil, { LOAM_ENV = "test" })
    assert.matches("loam: environment: test %(from LOAM_ENV%)\n", err)
    err = where(dir, "--env=development", { LOAM_ENV = "test" })
    assert.matches("loam: environment: development %(from %-%-env%)\n", err)
    local out, err2, code = loam(dir, "--env staging run /dev/null")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal(("loam: config_error: environment 'staging' is not declared in %s/loam.config.lua "
                      .. "(declared: development, test)\n"):format(dir), err2)
  end)

  it("gives the URL from --db, LOAM_DATABASE_URL, DATABASE_URL, the config, the default", function()
    local dir = project(CONFIG)
    local all = { LOAM_DATABASE_URL = "sqlite:from_loam_var.db", DATABASE_URL = "sqlite:from_var.db" }
    local err = where(dir .. "/sub", "--db sqlite:from_option.db", all)
    assert.matches("loam: database: sqlite:from_option.db %(from %-%-db%)\n", err)
    err = where(dir .. "/sub", nil, all)
    assert.matches("loam: database: sqlite:from_loam_var.db %(from LOAM_DATABASE_URL%)\n", err)
    err = where(dir .. "/sub", nil, { DATABASE_URL = "sqlite:from_var.db" })
    assert.matches("loam: database: sqlite:from_var.db %(from DATABASE_URL%)\n", err)
    -- URLs from the command line and the environment are the user's: relative
    -- to the current directory.
    assert.is_true(exists(dir .. "/sub/from_option.db"))
    assert.is_true(exists(dir .. "/sub/from_loam_var.db"))
    assert.is_true(exists(dir .. "/sub/from_var.db"))
    err = where(dir .. "/sub", nil, { DATABASE_URL = "" })
    assert.matches("loam: database: sqlite:" .. dir:gsub("%p", "%%%0") .. "/dev.db %(from environments", err)
    -- A config without environments: the default, beside the config.
    write(dir .. "/loam.config.lua", "models = 'models'\n")
    err = where(dir .. "/sub")
    assert.matches("loam: database: sqlite:" .. dir:gsub("%p", "%%%0") .. "/loam.db %(from the default%)\n",
                   err)
  end)

  it("gives migrations their own URL (loam.config)", function()
    local config = require "loam.config"
    local dir = project(CONFIG)
    local cfg = config.load(dir .. "/loam.config.lua", dir)
    local none = function() return nil end
    assert.are.same({ "sqlite:" .. dir .. "/owner.db", "environments.test.migration_url of "
                      .. dir .. "/loam.config.lua" },
                    { config.database_url(cfg, "test", { migration = true, getenv = none }) })
    -- Without a migration_url, the runtime URL.
    assert.are.equal("sqlite:" .. dir .. "/dev.db",
                     (config.database_url(cfg, "development", { migration = true, getenv = none })))
    local vars = { LOAM_MIGRATION_DATABASE_URL = "postgresql://owner@h/db",
                   LOAM_DATABASE_URL = "postgresql://app@h/db" }
    local getenv = function(k) return vars[k] end
    assert.are.same({ "postgresql://owner@h/db", "LOAM_MIGRATION_DATABASE_URL" },
                    { config.database_url(cfg, "test", { migration = true, getenv = getenv }) })
    assert.are.same({ "postgresql://app@h/db", "LOAM_DATABASE_URL" },
                    { config.database_url(cfg, "test", { getenv = getenv }) })
    assert.are.same({ "sqlite:x.db", "--db" },
                    { config.database_url(cfg, "test", { db = "sqlite:x.db", migration = true,
                                                         getenv = getenv }) })
    -- A folder that URLs would misread is encoded.
    assert.are.equal("sqlite:/a%3Fb%25c/x.db", config.resolve_sqlite("sqlite:x.db", "/a?b%c"))
    assert.are.equal("sqlite::memory:", config.resolve_sqlite("sqlite::memory:", "/a"))
    assert.are.equal("sqlite:/abs.db", config.resolve_sqlite("sqlite:/abs.db", "/a"))
  end)

  it("--config names the file; one that does not exist is an error", function()
    local dir = project(CONFIG)
    write(dir .. "/other.lua", "environments = { development = { url = 'sqlite:other.db' } }\n")
    local err = where(dir .. "/sub", "--config ../other.lua")
    assert.matches("loam: database: sqlite:" .. dir:gsub("%p", "%%%0") .. "/other.db ", err)
    local out, err2, code = loam(dir, "--config nope.lua run /dev/null")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("loam: config_error: config file nope.lua does not exist\n", err2)
  end)

  local function bad(text, want)
    local dir = project(text)
    local out, err, code = loam(dir .. "/sub", "run /dev/null")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    one_line(err)
    assert.are.equal(want:gsub("DIR", dir) .. "\n", err)
    assert.is_false(exists(dir .. "/loam.db"))
  end

  it("with a syntax error is reported as file:line, one line, exit 1", function()
    bad("models = 'models'\nenvironments = {\n  development = { url = 'sqlite:x.db' },\n",
        "loam: config_error: DIR/loam.config.lua:4: unexpected symbol near <eof>")
  end)

  it("with a runtime error is reported as file:line, one line, exit 1", function()
    bad("models = 'models'\nlocal x = nil\nseeds = x.y\n",
        "loam: config_error: DIR/loam.config.lua:3: attempt to index a nil value (local 'x')")
  end)

  it("with an unknown key names it, its line and the valid keys", function()
    bad("models = 'models'\nmodles = 'x'\n",
        "loam: config_error: DIR/loam.config.lua:2: unknown key 'modles' "
        .. "(valid keys: environments, log, migrations, models, seeds)")
    bad("return { environment = {} }\n",
        "loam: config_error: DIR/loam.config.lua: unknown key 'environment' "
        .. "(valid keys: environments, log, migrations, models, seeds)")
    bad("environments = { development = { uri = 'sqlite:x.db' } }\n",
        "loam: config_error: DIR/loam.config.lua: environment 'development': unknown key 'uri' "
        .. "(valid keys: migration_url, pool, url)")
  end)

  it("with values of the wrong kind names them", function()
    bad("models = 5\n", "loam: config_error: DIR/loam.config.lua: 'models' must be a folder name "
                       .. "(a string), not a number")
    bad("environments = { development = 'sqlite:x.db' }\n",
        "loam: config_error: DIR/loam.config.lua: environment 'development' must be a table, not a string")
    bad("environments = { development = { url = os.getenv('LOAM_CLI_SPEC_UNSET') } }\n",
        "loam: config_error: environment 'development' of DIR/loam.config.lua has no url "
        .. "(an unset variable?)")
    bad("environments = { development = { url = 'sqlite:x.db', pool = 4 } }\n",
        "loam: config_error: DIR/loam.config.lua: environment 'development': 'pool' must be true "
        .. "or a table of pool options, not a number")
    bad("return 5\n", "loam: config_error: DIR/loam.config.lua: the config returns a number "
                      .. "(return nothing, or a table of environments, log, migrations, models, seeds)")
  end)
end)

describe("loam run", function()
  local SCRIPT = [[
db:create_tables { Item, Tag }
Item:create { name = "first" }
Item:create { name = "second" }
local names = {}
for _, it in ipairs(Item:order_by("id"):all()) do names[#names + 1] = it.name end
print(table.concat(names, ","), models.Item == Item, models.relations_ran, db:backend())
print(arg[0], #arg, ...)
db:drop_tables { Item, Tag }
]]

  for backend, pg in helper.each_backend() do
    if not backend.memory then
      it(backend.label .. ": runs a script with the db, the models and arguments", function()
        local dir = project(CONFIG)
        write(dir .. "/sub/script.lua", SCRIPT)
        local out, err, code = loam(dir .. "/sub", "run --db " .. q(backend.url)
                                                   .. " script.lua one --two")
        assert.are.equal("", err)
        assert.are.equal(0, code)
        assert.are.equal(("first,second\ttrue\ttrue\t%s\nscript.lua\t2\tone\t--two\n"):format(
          pg and "postgres" or "sqlite"), out)
      end)

      it(backend.label .. ": a failing script is one line and exit 1; --trace adds the traceback",
         function()
        local dir = project(CONFIG)
        write(dir .. "/bad.lua", "db:query('SELECT * FROM cli_spec_nowhere')\n")
        local out, err, code = loam(dir, "run --db " .. q(backend.url) .. " bad.lua")
        assert.are.equal(1, code)
        assert.are.equal("", out)
        one_line(err)
        assert.matches("^loam: undefined_table: bad.lua:1: ", err)
        out, err, code = loam(dir, "--trace run --db " .. q(backend.url) .. " bad.lua")
        assert.are.equal(1, code)
        assert.matches("^loam: undefined_table: bad.lua:1: [^\n]*\nstack traceback:\n", err)
      end)
    end
  end

  for backend in helper.each_backend() do
    if not backend.memory then
      it(backend.label .. ": an environment's pool makes the script's Database pooled", function()
        local dir = project("environments = { development = { url = 'sqlite:dev.db', "
                            .. "pool = { size = 2 } } }\n")
        write(dir .. "/pooled.lua", "local s = db:pool_stats()\nprint(s.size, db:query('SELECT 1 AS n')[1].n)\n")
        local out, err, code = loam(dir, "run --db " .. q(backend.url) .. " pooled.lua")
        assert.are.equal("", err)
        assert.are.equal(0, code)
        assert.are.equal("2\t1\n", out)
      end)
    end
  end

  it("reports a missing script, a syntax error and a bad model file in one line", function()
    local dir = project(CONFIG)
    local out, err, code = loam(dir, "run nope.lua")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("loam: not_found: cannot open script nope.lua: No such file or directory\n", err)
    write(dir .. "/syntax.lua", "print(\n")
    _, err, code = loam(dir, "run syntax.lua")
    assert.are.equal(1, code)
    assert.are.equal("loam: syntax_error: syntax.lua:2: unexpected symbol near <eof>\n", err)
    write(dir .. "/ok.lua", "print('ran')\n")
    write(dir .. "/models/zz.lua", "return 42\n")
    out, err, code = loam(dir, "run ok.lua")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal(("loam: misuse: %s/models/zz.lua returns a number; a model file returns a "
                      .. "function(db, models)\n"):format(dir), err)
    write(dir .. "/models/zz.lua", "return function(db, models)\n  error('broken model')\nend\n")
    _, err, code = loam(dir, "run ok.lua")
    assert.are.equal(1, code)
    assert.are.equal(("loam: error: %s/models/zz.lua:2: broken model\n"):format(dir), err)
    write(dir .. "/models/zz.lua", "return function(\n")
    _, err, code = loam(dir, "run ok.lua")
    assert.are.equal(1, code)
    assert.matches("^loam: syntax_error: " .. dir:gsub("%p", "%%%0") .. "/models/zz.lua:2: ", err)
    one_line(err)
  end)

  it("reports a database that cannot be reached in one line, exit 1", function()
    local dir = project(nil)
    write(dir .. "/ok.lua", "print('ran')\n")
    local out, err, code = loam(dir, "run --db postgresql://loam:secret@127.0.0.1:1/none ok.lua")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    one_line(err)
    assert.matches("^loam: connection_failed: connection to server at \"127.0.0.1\", port 1 failed", err)
    assert.is_nil(err:find("secret", 1, true))
    out, err, code = loam(dir, "run --db sqlite:/nonexistent/dir/x.db ok.lua")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("loam: connection_failed: cannot open SQLite database '/nonexistent/dir/x.db': "
                     .. "unable to open database file\n", err)
  end)
end)

describe("loam console", function()
  local SESSION = table.concat({
    "db:create_tables { Item, Tag }",
    "Item:create { name = 'first' }",
    "Item:create { name = 'second, longer' }",
    "Item:order_by('id'):all()",
    "=#models.Item:all()",
    "for i = 1, 2 do",
    "  print('line', i)",
    "end",
    "db:query('SELECT name FROM cli_spec_items WHERE id = ?', { 2 })",
    "db:query('SELECT * FROM cli_spec_nowhere')",
    "error('boom')",
    "1 + 1, nil, 'x'",
    "local _ = db:drop_tables { Item, Tag }",
  }, "\n") .. "\n"

  local EXPECTED = [[
{ loam.Model(cli_spec_items), loam.Model(cli_spec_tags) }
loam.Instance(cli_spec_items id=1)
  id   = 1
  name = first
loam.Instance(cli_spec_items id=2)
  id   = 2
  name = second, longer
 id | name
----+----------------
  1 | first
  2 | second, longer
(2 rows)
2
line	1
line	2
 name
----------------
 second, longer
(1 row)
2
nil
x
]]

  for backend in helper.each_backend() do
    if not backend.memory then
      it(backend.label .. ": evaluates piped lines with the project's db and models", function()
        local dir = project(CONFIG)
        local out, err, code = loam(dir, "console --db " .. q(backend.url), nil, SESSION)
        assert.are.equal(EXPECTED, out)
        local lines = {}
        for l in err:gmatch("[^\n]+") do lines[#lines + 1] = l end
        assert.are.equal(2, #lines, err)
        assert.matches("^undefined_table: stdin:1: ", lines[1])
        assert.are.equal("error: stdin:1: boom", lines[2])
        -- Errors happened, and stdin is no terminal: exit 1.
        assert.are.equal(1, code)
      end)
    end
  end

  it("exits 0 when every chunk ran; an incomplete last chunk is an error", function()
    local dir = project(nil)
    local out, err, code = loam(dir, "console --db sqlite::memory:", nil, "x = 1\n= x + 1\n")
    assert.are.equal("2\n", out)
    assert.are.equal("", err)
    assert.are.equal(0, code)
    -- A model never hides a global of the same name; 'models' has it.
    write(dir .. "/models/aa.lua", "return function(db, models) models.string = 'a model' end\n")
    out, err, code = loam(dir, "console --db sqlite::memory:", nil,
                          "string.upper('a'), models.string, Item ~= nil\n")
    assert.are.equal("", err)
    assert.are.equal("A\na model\ntrue\n", out)
    out, err, code = loam(dir, "console --db sqlite::memory:", nil, "if true then\n")
    assert.are.equal("", out)
    assert.are.equal("error: stdin:1: 'end' expected near <eof>\n", err)
    assert.are.equal(1, code)
  end)

  it("prints tables of values and plain tables as fields", function()
    local out, err, code = loam(project(nil), "console --db sqlite::memory:", nil, table.concat({
      "{ b = 2, a = { 1, 2 } }",
      "{ 1, 'two', loam.null }",
      "{ { n = 1, id = 9, s = loam.null }, { n = 22 } }",
      "{}",
      "loam.null",
    }, "\n") .. "\n")
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.are.equal(table.concat({
      "table", "  a = { 1, 2 }", "  b = 2",
      "{ 1, two, NULL }",
      " id | n  | s", "----+----+------", "  9 |  1 | NULL", "    | 22 |", "(2 rows)",
      "{}",
      "NULL",
    }, "\n") .. "\n", out)
  end)

  it("on a terminal shows a banner and the prompts (under script(1), which gives it one)",
     function()
    local dir = project(nil)
    local cmd = ("cd %s && printf '1 + 1\\nif true then\\nprint(\"x\")\\nend\\n' | TERM=dumb "
                 .. "script -qec %s /dev/null"):format(q(dir), q(q(host) .. " console --db sqlite::memory:"))
    local p = assert(io.popen(cmd))
    local out = p:read("a"):gsub("\r", "")
    p:close()
    assert.matches("\nloam " .. require("loam").version:gsub("%p", "%%%0") .. " console, environment development, sqlite database; "
                   .. "models: Item, Tag, relations_ran\n", out)
    -- readline echoes each line after its prompt; without it the terminal
    -- echoed the input before the program read it.
    local p2 = assert(io.popen(q(host) .. " -e 'print(require(\"loam.cli.host\").readline ~= nil)'"))
    local readline = p2:read("a") == "true\n"
    p2:close()
    if readline then
      assert.matches("\nloam> 1 %+ 1\n2\nloam> if true then\n%.%.%.> print%(\"x\"%)\n"
                     .. "%.%.%.> end\nx\nloam> \n$", out)
    else
      assert.matches("\nloam> 2\nloam> %.%.%.> %.%.%.> x\nloam> \n$", out)
    end
  end)

  it("reports a database that cannot be reached in one line, exit 1", function()
    local out, err, code = loam(project(nil), "console --db postgresql://loam@127.0.0.1:1/none",
                                nil, "print(1)\n")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    one_line(err)
    assert.matches("^loam: connection_failed: ", err)
  end)
end)

describe("loam.cli for commands to come", function()
  -- A registry of its own, with a command that has subcommands, as
  -- 'loam migrate up' will: the parsing, the help and the errors.
  local PROGRAM = [[
package.preload["spec_cli.migrate"] = function()
  return { summary = "change the schema", usage = "loam migrate COMMAND",
           subcommands = { "up", "status" } }
end
package.preload["spec_cli.migrate.up"] = function()
  return {
    summary = "apply pending migrations", usage = "loam migrate up [--to V] [--dry-run]",
    options = { { "--to", "V", "stop at version V" }, { "--dry-run", "print the SQL only" } },
    run = function(ctx)
      print("up", ctx.opts.to, ctx.opts.dry_run, ctx.global.env, #ctx.args)
      if ctx.opts.to == "bad" then ctx:fail("invalid_version", "no version '%s'", ctx.opts.to) end
      return 3
    end,
  }
end
package.preload["spec_cli.migrate.status"] = function()
  return { summary = "list migrations", usage = "loam migrate status", run = function() end }
end
package.preload["spec_cli.broken"] = function()
  return { summary = "a command without its usage", run = function() end }
end
local registry = { names = { "migrate", "broken" },
                   module = function(n) return "spec_cli." .. n end }
os.exit(require("loam.cli").main(arg, registry))
]]

  local function cli(args)
    local dir = tmpdir()
    write(dir .. "/program.lua", PROGRAM)
    return loam(dir, "program.lua " .. args)
  end

  it("runs a subcommand with its options and the global ones", function()
    local out, err, code = cli("migrate up --to 20261204 --env test --dry-run")
    assert.are.equal("", err)
    assert.are.equal(3, code)
    assert.are.equal("up\t20261204\ttrue\ttest\t0\n", out)
    out, err, code = cli("--env=prod migrate up --to=bad")
    assert.are.equal(1, code)
    assert.are.equal("up\tbad\tnil\tprod\t0\n", out)
    assert.are.equal("loam: invalid_version: no version 'bad'\n", err)
  end)

  it("names the part a command module lacks", function()
    local out, err, code = cli("broken")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("loam: error: spec_cli.broken: 'usage' must be a string\n", err)
  end)

  it("lists the subcommands in the help and refuses unknown ones", function()
    local out, err, code = cli("migrate --help")
    assert.are.equal(0, code)
    assert.are.equal("", err)
    assert.matches("^usage: loam migrate COMMAND\n\nCommands:\n  up      apply pending migrations\n"
                   .. "  status  list migrations\n", out)
    out, err, code = cli("migrate up --help")
    assert.are.equal(0, code)
    assert.matches("^usage: loam migrate up %[%-%-to V%] %[%-%-dry%-run%]\n\nOptions:\n"
                   .. "  %-%-to V     stop at version V\n  %-%-dry%-run  print the SQL only\n", out)
    out, err, code = cli("migrate upp")
    assert.are.equal(2, code)
    assert.matches("^loam: usage_error: unknown 'loam migrate' command 'upp'; did you mean 'up'%?\n"
                   .. "usage: loam migrate COMMAND\n", err)
    _, err, code = cli("migrate")
    assert.are.equal(2, code)
    assert.matches("^loam: usage_error: 'loam migrate' needs a command: up, status\n", err)
    _, err, code = cli("migrate up --steps 2")
    assert.are.equal(2, code)
    assert.matches("^loam: usage_error: unknown option '%-%-steps' for 'loam migrate up'\n", err)
  end)
end)
