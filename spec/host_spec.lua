-- spec/host_spec.lua: the 'loam' command as a new user meets it: run from
-- its build tree in any directory with nothing set up, its options, and
-- the names its argument errors give.
--
-- The host under test is LOAM_TEST_HOST (set by the test harness to the
-- host that runs the specs), else build/bin/loam of this checkout.

local helper = require "spec.helper"
local loam = require "loam"

local root = assert(io.popen("pwd")):read("l")
local host = helper.host()
local q = helper.shell_quote

local slurp = helper.slurp

-- Runs 'cmd' through the shell in directory 'dir' and returns its standard
-- output, its standard error and its exit status.
local function run(dir, cmd)
  local errfile = helper.tmpname(".err")
  local p = assert(io.popen(("cd %s && %s 2>%s"):format(q(dir), cmd, q(errfile))))
  local out = p:read("a")
  local _, how, code = p:close()
  assert.are.equal("exit", how)
  return out, slurp(errfile), code
end

-- The host with an empty environment (a sanitizer's settings kept, so an
-- instrumented host reports as it does under the harness).
local function bare(args, env)
  local keep = {}
  for _, k in ipairs { "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS" } do
    local v = os.getenv(k)
    if v ~= nil then keep[#keep + 1] = k .. "=" .. q(v) end
  end
  for k, v in pairs(env or {}) do keep[#keep + 1] = k .. "=" .. q(v) end
  return ("env -i %s %s %s"):format(table.concat(keep, " "), q(host), args)
end

local query_script = [[
local loam = require "loam"
local db <close> = loam.connect("sqlite::memory:")
print(package.searchpath("loam", package.path), db:query("SELECT 40 + 2 AS n")[1].n)
]]

describe("the loam host of the build tree", function()
  it("finds the checkout's Lua files from any directory with no environment", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. q(dir)))
    local script = dir .. "/app.lua"
    local f = assert(io.open(script, "w"))
    f:write(query_script)
    f:close()
    local out, err, code = run(dir, bare("app.lua"))
    os.remove(script)
    os.remove(dir)
    assert.are.equal("", err)
    assert.are.equal(0, code)
    local found, answer = out:match("^(.-)\t(.*)$")
    assert.are.equal("42\n", answer)
    assert.are.equal(run("/", "realpath " .. q(root .. "/lua/loam/init.lua")),
                     run("/", "realpath " .. q(found)))
  end)

  it("honours an explicitly set LUA_PATH", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. q(dir)))
    local f = assert(io.open(dir .. "/loam.lua", "w"))
    f:write('return { version = "from LUA_PATH" }\n')
    f:close()
    local out, err, code = run("/", bare("-e " .. q('print(require("loam").version)'),
                                         { LUA_PATH = dir .. "/?.lua" }))
    os.remove(dir .. "/loam.lua")
    os.remove(dir)
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.are.equal("from LUA_PATH\n", out)
    -- A LUA_PATH that leads nowhere is not second-guessed either.
    out, err, code = run("/", bare("-e " .. q('require "loam"'), { LUA_PATH = "/nonexistent/?.lua" }))
    assert.are.equal(1, code)
    assert.matches("module 'loam' not found", err, 1, true)
    assert.are.equal("", out)
  end)

  it("passes a script its arguments, as lua does", function()
    local script = helper.tmpname(".lua")
    local f = assert(io.open(script, "w"))
    f:write("print(#arg, arg[0] == ..., select('#', ...), arg[1], arg[2])\n")
    f:close()
    local out, err, code = run("/", bare(q(script) .. " one two"))
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.are.equal("2\tfalse\t2\tone\ttwo\n", out)
  end)
end)

describe("loam's options", function()
  local usage_head = "usage: loam [options] [script [args]]    run a Lua script with loam built in\n"

  it("--help and -h print the usage on stdout and exit 0", function()
    for _, opt in ipairs { "--help", "-h" } do
      local out, err, code = run("/", bare(opt))
      assert.are.equal(0, code)
      assert.are.equal("", err)
      assert.are.equal(usage_head, out:sub(1, #usage_head))
      assert.matches("\n  --version      show the versions of loam, Lua, SQLite and libpq\n", out, 1, true)
    end
  end)

  it("--version prints loam's version and those of Lua, SQLite and libpq, exit 0", function()
    local out, err, code = run("/", bare("--version"))
    assert.are.equal(0, code)
    assert.are.equal("", err)
    local db <close> = loam.connect("sqlite::memory:")
    local sqlite = db:query("SELECT sqlite_version() AS v")[1].v
    local lua_release = _VERSION:gsub("%.", "%%.") .. "%.%d+"
    assert.matches("^loam " .. loam.version:gsub("%.", "%%.") .. "\n" .. lua_release
                   .. ", SQLite " .. sqlite:gsub("%.", "%%.") .. ", libpq %d+%.%d+\n$", out)
  end)

  it("refuses an unknown option with the usage on stderr and exit status 2", function()
    for _, opt in ipairs { "--frobnicate", "-x", "--helpme", "-v -x" } do
      local out, err, code = run("/", bare(opt .. " examples/models.lua"))
      assert.are.equal(2, code)
      assert.are.equal("", out)
      local head = ("loam: usage_error: unknown option '%s'"):format(opt:match("%S+$"))
      assert.are.equal(head, err:sub(1, #head))
      assert.matches("\nusage: loam [options] [script [args]]\n", err, 1, true)
    end
    local out, err, code = run("/", bare("-e"))
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.matches("^loam: usage_error: option '%-e' needs an argument\nusage: ", err)
  end)

  it("still runs -v and -e as lua does", function()
    local out, err, code = run("/", bare("-v -e " .. q("print(1 + 1)")))
    assert.are.equal(0, code)
    assert.are.equal("", err)
    assert.are.equal(("loam %s (Lua 5.4)\n2\n"):format(loam.version), out)
  end)
end)

describe("argument errors of the binding", function()
  local core = require "loam.core"

  -- Calls 'f' through pcall, where Lua itself knows no name for it.
  local function check(name, f, ...)
    local err = helper.catch(f, ...)
    assert.are.equal("misuse", err.code)
    assert.matches("bad argument #%d to '" .. name .. "'", err.message)
  end

  it("name the method or function also when called through pcall", function()
    local db <close> = loam.connect("sqlite::memory:")
    check("query", db.query, db, 5)
    check("exec", db.exec, db, "SELECT 1", 7)
    check("each", db.each, db, 5)
    check("connect", core.connect, 5)
    check("connect", loam.connect, 5)
    check("blob", core.blob, {})
  end)

  it("count self as argument 0 when called as a method", function()
    local db <close> = loam.connect("sqlite::memory:")
    local err = helper.catch(function() db:query("SELECT 1", 5) end)
    assert.are.equal("bad argument #2 to 'query' (table expected, got number)", err.message)
    err = helper.catch(function() db:query(5) end)
    assert.are.equal("bad argument #1 to 'query' (string expected, got number)", err.message)
  end)
end)
