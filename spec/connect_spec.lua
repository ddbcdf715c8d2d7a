-- spec/connect_spec.lua: opening and closing connections on every backend,
-- connection options, and the errors of URLs and servers that cannot be
-- reached.

local loam = require "loam"
local helper = require "spec.helper"

local catch = helper.catch

describe("loam", function()
  it("exports the core API", function()
    assert.are.equal("0.1.0", loam.version)
    assert.are.equal("function", type(loam.connect))
    assert.are.equal("loam.null", tostring(loam.null))
    assert.is_true(loam.isnull(loam.null))
    assert.is_false(loam.isnull(nil))
    assert.is_false(loam.isnull(false))
    assert.are.equal("loam.blob (3 bytes)", tostring(loam.blob("a\0b")))
    assert.are.equal(3, #loam.blob("a\0b"))
  end)

  it("exposes the connection methods for the Lua layer", function()
    local core = require "loam.core"
    assert.are.equal("function", type(core.Conn.query))
    assert.are.equal(core.Error, loam.Error)
  end)

  it("refuses a URL that is not a string", function()
    local err = catch(function() return loam.connect(nil) end)
    assert.are.equal("misuse", err.code)
    assert.are.equal("bad argument #1 to 'connect' (string expected, got nil)", err.message)
  end)

  it("refuses an unknown option by name", function()
    local err = catch(function()
      return loam.connect("sqlite::memory:", { statement_cahce = 4 })
    end)
    assert.are.equal("misuse", err.code)
    assert.are.equal("bad argument #2 to 'connect' (unknown option 'statement_cahce')", err.message)
    assert.is_nil(err.sqlstate)
  end)

  it("refuses an option value that is not a non-negative integer", function()
    local err = catch(function()
      return loam.connect("sqlite::memory:", { busy_timeout_ms = "soon" })
    end)
    assert.are.equal("misuse", err.code)
    assert.are.equal("bad argument #2 to 'connect' "
      .. "(option 'busy_timeout_ms' must be a non-negative integer or \"forever\")", err.message)
    err = catch(loam.connect, "sqlite::memory:", { statement_cache = -1 })
    assert.are.equal("misuse", err.code)
    err = catch(function() return loam.connect("sqlite::memory:", 42) end)
    assert.are.equal("bad argument #2 to 'connect' (table expected, got number)", err.message)
  end)

  it("reports a malformed URL as invalid_url", function()
    local err = catch(loam.connect, "not a url")
    assert.are.equal("invalid_url", err.code)
    assert.is_string(err.message)
    assert.is_nil(err.sqlstate)
  end)

  it("reports an unknown scheme as invalid_url", function()
    local err = catch(loam.connect, "mysql://x")
    assert.are.equal("invalid_url", err.code)
    assert.matches("mysql", err.message, 1, true)
  end)

  it("reports an SQLite file that cannot be opened as connection_failed", function()
    local err = catch(loam.connect, "sqlite:/nonexistent/dir/x.db")
    assert.are.equal("connection_failed", err.code)
    assert.matches("/nonexistent/dir/x.db", err.message, 1, true)
  end)
end)

for backend in helper.each_backend() do
  describe(backend.label .. ":", function()
    it("connects, names its backend and closes", function()
      local db = helper.connect(backend)
      assert.are.equal(backend.name, db:backend())
      assert.are.equal("loam.Database (" .. backend.name .. ")", tostring(db))
      assert.is_true(db:close())
      assert.are.equal("loam.Database (closed)", tostring(db))
    end)

    it("closes twice without complaint", function()
      local db = helper.connect(backend)
      assert.is_true(db:close())
      assert.is_true(db:close())
    end)

    it("closes a <close> variable at the end of its scope", function()
      local seen
      do
        local db <close> = helper.connect(backend)
        seen = db
        assert.are.equal(1, db:query("select 1 as one")[1].one)
      end
      assert.are.equal("loam.Database (closed)", tostring(seen))
    end)

    it("closes a <close> variable when an error leaves its scope", function()
      local seen
      local ok, err = pcall(function()
        local db <close> = helper.connect(backend)
        seen = db
        error("leaving", 0)
      end)
      assert.is_false(ok)
      assert.are.equal("leaving", err)
      assert.are.equal("loam.Database (closed)", tostring(seen))
    end)

    it("raises misuse on every use after close", function()
      local db = helper.connect(backend)
      db:close()
      -- No tail calls: the line of a function that ended in one is gone.
      for _, call in ipairs {
        function() local _ = db:query("select 1") end,
        function() local _ = db:exec("select 1") end,
        function() local _ = db:each("select 1") end,
        function() local _ = db:backend() end,
        function() local _ = db:cached_statements() end,
      } do
        local err = catch(call)
        assert.are.equal("misuse", err.code)
        assert.are.equal("attempt to use a closed database (db:reconnect() opens it again)",
          err.message)
        assert.matches("^spec/connect_spec.lua:%d+: $", err.where)
        assert.matches("^spec/connect_spec.lua:%d+: loam.misuse: attempt to use a closed database",
          tostring(err))
      end
    end)

    it("raises misuse when a method is called on something else", function()
      local db = helper.connect(backend)
      local err = catch(function() return db.query({}, "select 1") end)
      assert.are.equal("misuse", err.code)
      assert.are.equal("bad argument #1 to 'query' (loam.Database expected, got table)", err.message)
      err = catch(function() return db.query(nil, "select 1") end)
      assert.are.equal("bad argument #1 to 'query' (loam.Database expected, got nil)", err.message)
      db:close()
    end)

    it("keeps prepared statements, unless told not to", function()
      local db = helper.connect(backend)
      db:query("select 1 as one")
      db:query("select 1 as one")
      assert.are.equal(1, db:cached_statements())
      db:close()
      db = helper.connect(backend, { statement_cache = 0 })
      db:query("select 1 as one")
      assert.are.equal(0, db:cached_statements())
      db:close()
    end)

    it("is closed by the garbage collector", function()
      local db = helper.connect(backend)
      local weak = setmetatable({ db }, { __mode = "v" })
      db = nil  -- luacheck: ignore
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak[1])
    end)
  end)
end

describe("postgres errors:", function()
  -- The database part of the test URL is all that changes here.
  local function pg_url(userinfo)
    local host, port = helper.pg_socket()
    local url = "postgresql://" .. userinfo .. "@/loam_test?host=" .. host
    if port ~= nil and port ~= "" then
      url = url .. "&port=" .. port
    end
    return url
  end

  if helper.postgres() then
    it("reports an unreachable server as connection_failed", function()
      local err = catch(loam.connect, "postgresql://nobody@127.0.0.1:1/x")
      assert.are.equal("connection_failed", err.code)
      assert.is_string(err.message)
      assert.is_true(#err.message > 0)
    end)

    it("reports a wrong password as auth_failed, without the password", function()
      local err = catch(loam.connect, pg_url("loam_pw:not-the-secret-7f3a"))
      assert.are.equal("auth_failed", err.code)
      assert.matches("loam_pw", err.message, 1, true)
      assert.is_nil(err.message:find("not-the-secret-7f3a", 1, true))
      assert.is_nil(tostring(err):find("not-the-secret-7f3a", 1, true))
    end)

    it("connects with the right password", function()
      local db = loam.connect(pg_url("loam_pw:secret"))
      assert.are.equal("loam_pw", db:query("select current_user as u")[1].u)
      db:close()
    end)
  end
end)

describe("URLs never show a password:", function()
  -- Each piece of each user name and password holds "SECRET"; every URL
  -- fails before any connection is tried.
  local urls = {
    "postgres://u:SECRET1/SECRET2@db.example/app",
    "postgres://u:Zx9SECRET?vQk7Wq@db.example/app",
    "postgres://u:SECRET1@SECRET2/SECRET3@db.example/app",
    "postgres://SECRETU%zz:SECRET1@h/db",
    "postgres://u:SECRET1%zz@h/db",
    "postgres://u:SECRET1@h:99999/db",
    "postgres://u:SECRET1@[::1/db",
    "postgres://u:SECRET1@h1,,h2/db",
    "postgres://u:SECRET1@h/db?flag",
    "postgres://h/db?password=SECRET1&SECRET2",
    "postgres://h/db?password=SECRET1&SECRET2=x",
    "postgres://h/db?password=SECRET1&sslmode=SECRET2",
    "postgres://h/db?password=SECRET1&port=SECRET2",
    "postgres:SECRETU:SECRET1@h/db",
    "mysql://SECRETU:SECRET1@h/db",
    "SECRETU:SECRET1@h/db",
    "sqlite://SECRETU:SECRET1@/tmp/x.db",
  }
  for _, url in ipairs(urls) do
    it("for " .. url:gsub("SECRET%w*", "..."), function()
      local err = catch(loam.connect, url)
      assert.are.equal("invalid_url", err.code)
      for k, v in pairs(err) do
        assert.is_nil(tostring(v):find("SECRET", 1, true), k .. ": " .. tostring(v))
      end
      assert.is_nil(tostring(err):find("SECRET", 1, true))
    end)
  end

  it("explains what to encode", function()
    local err = catch(loam.connect, "postgres://u:p/q@db.example/app")
    assert.are.equal("the URL has an '@' after a '/' or '?': percent-encode '@', '/' and '?' in "
      .. "the user name and password (%40, %2F, %3F) and '@' in the database name and options "
      .. "(%40)", err.message)
    err = catch(loam.connect, "postgres://h/db?password=p&q")
    assert.are.equal("URL option #2 has no value (it follows a password option: write '&' "
      .. "inside a password as %26)", err.message)
  end)
end)

-- The first byte of the two that say whether a database file is in WAL
-- mode (2) or uses a rollback journal (1); nil for a file too short.
local function header_version(path)
  local f = assert(io.open(path, "rb"))
  local head = f:read(20)
  f:close()
  return head and #head == 20 and head:byte(19) or nil
end

local read_file = helper.slurp

describe("sqlite files:", function()
  it("switches a writable file to WAL, or to the journal mode the URL names", function()
    for _, mode in ipairs { "wal", "delete", "truncate", "persist", "memory", "off" } do
      local path = helper.tmpname(".db")
      local url = "sqlite:" .. path .. (mode == "wal" and "" or "?journal_mode=" .. mode)
      local db = loam.connect(url)
      db:exec("create table t (x integer)")
      assert.are.equal(mode, db:query("pragma journal_mode")[1].journal_mode)
      db:close()
      assert.are.equal(mode == "wal" and 2 or 1, header_version(path))
    end
  end)

  it("takes journal_mode on a database in memory only where SQLite does", function()
    local db = loam.connect("sqlite::memory:?journal_mode=off")
    assert.are.equal("off", db:query("pragma journal_mode")[1].journal_mode)
    db:close()
    local err = catch(loam.connect, "sqlite::memory:?journal_mode=wal")
    assert.are.equal("invalid_url", err.code)
    assert.are.equal("SQLite URL option 'journal_mode': SQLite kept 'memory' instead of 'wal' "
      .. "(a database in memory takes only memory or off)", err.message)
  end)

  it("refuses a journal_mode or immutable value it does not know, and journal_mode on a "
    .. "read-only connection", function()
    local err = catch(loam.connect, "sqlite::memory:?journal_mode=fast")
    assert.are.equal("invalid_url", err.code)
    assert.are.equal("SQLite URL option 'journal_mode' must be wal, delete, truncate, persist, "
      .. "memory or off (got 'fast')", err.message)
    err = catch(loam.connect, "sqlite:x.db?immutable=yes")
    assert.are.equal("invalid_url", err.code)
    assert.are.equal("SQLite URL option 'immutable' must be 1, 0, true or false (got 'yes')",
      err.message)
    err = catch(loam.connect, "sqlite:x.db?mode=ro&journal_mode=wal")
    assert.are.equal("invalid_url", err.code)
    assert.are.equal("SQLite URL option 'journal_mode' needs a writable connection "
      .. "(not mode=ro or immutable=1)", err.message)
    err = catch(loam.connect, "sqlite::memory:?immutable=1")
    assert.are.equal("SQLite URL option 'immutable' needs a file", err.message)
  end)

  it("reads an immutable file, refuses writes to it and changes nothing on disk", function()
    -- '?', '%' and '#' in the name must survive the URI that 'immutable' needs.
    local path = helper.tmpname("?%#.db")
    local encoded = path:gsub("%%", "%%25"):gsub("%?", "%%3F"):gsub("#", "%%23")
    local db = loam.connect("sqlite:" .. encoded)
    db:exec("create table t (x integer)")
    db:exec("insert into t values (1), (2)")
    db:close()
    local before = read_file(path)
    for _, flag in ipairs { "1", "true" } do
      db = loam.connect("sqlite:" .. encoded .. "?immutable=" .. flag)
      assert.are.same({ { n = 2 } }, db:query("select count(*) as n from t"))
      local err = catch(db.exec, db, "insert into t values (3)")
      assert.are.equal("read_only", err.code)
      db:close()
    end
    assert.are.equal(before, read_file(path))
    db = loam.connect("sqlite:" .. encoded .. "?immutable=0")
    db:exec("insert into t values (3)")
    assert.are.equal(3, helper.count(db, "t"))
    db:close()
  end)

  -- A file this process may not write: mode 0444.  Root writes it anyway,
  -- so as root the reading runs in a child process as 'nobody'.
  local function uid()
    local p = io.popen("id -u")
    local id = p and p:read("l")
    if p then p:close() end
    return tonumber(id)
  end

  local child = [[
    local loam = require "loam"
    local db = loam.connect(arg[1])
    print("rows " .. db:query("select count(*) as n from t")[1].n)
    local ok, err = pcall(db.exec, db, "insert into t values (3)")
    print("write " .. (ok and "ok" or err.code .. ": " .. err.message))
    print("journal " .. db:query("pragma journal_mode")[1].journal_mode)
    db:close()
  ]]

  local host = arg and arg[-1]
  local root = uid() == 0
  local runner
  if root and host then
    for _, cmd in ipairs { "runuser -u nobody --",
                           "setpriv --reuid=nobody --regid=nogroup --clear-groups" } do
      if os.execute(cmd .. " true 2>/dev/null") then runner = cmd break end
    end
  end

  if not root or runner then
    it("opens a file it may not write, with and without mode=ro, without touching it", function()
      local path = helper.tmpname(".db")
      local db = loam.connect("sqlite:" .. path .. "?journal_mode=delete")
      db:exec("create table t (x integer)")
      db:exec("insert into t values (1), (2)")
      db:close()
      assert(os.execute("chmod 0444 " .. path))
      local before = read_file(path)
      for _, url in ipairs { "sqlite:" .. path .. "?mode=ro", "sqlite:" .. path } do
        local out
        if runner then
          local script = helper.tmpname(".lua")
          local f = assert(io.open(script, "w"))
          f:write(child)
          f:close()
          assert(os.execute("chmod 0644 " .. script))
          local p = assert(io.popen(runner .. " " .. host .. " " .. script .. " '" .. url
            .. "' 2>&1"))
          out = p:read("a")
          p:close()
        else
          local lines = {}
          local env = setmetatable({ arg = { url }, print = function(s) lines[#lines + 1] = s end },
            { __index = _G })
          assert(load(child, "child", "t", env))()
          out = table.concat(lines, "\n") .. "\n"
        end
        assert.are.equal("rows 2\nwrite read_only: attempt to write a readonly database\n"
          .. "journal delete\n", out)
      end
      assert.are.equal(1, header_version(path))
      assert.are.equal(before, read_file(path))
      assert.is_nil(io.open(path .. "-wal"))
    end)
  else
    pending("a file this process may not write: running as root, and neither runuser nor "
      .. "setpriv can switch to 'nobody' here")
  end
end)
