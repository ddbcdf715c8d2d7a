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
      .. "(option 'busy_timeout_ms' must be a non-negative integer)", err.message)
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
      assert.are.equal("loam.Conn (" .. backend.name .. ")", tostring(db))
      assert.is_true(db:close())
      assert.are.equal("loam.Conn (closed)", tostring(db))
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
      assert.are.equal("loam.Conn (closed)", tostring(seen))
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
      assert.are.equal("loam.Conn (closed)", tostring(seen))
    end)

    it("raises misuse on every use after close", function()
      local db = helper.connect(backend)
      db:close()
      for _, call in ipairs {
        function() return db:query("select 1") end,
        function() return db:exec("select 1") end,
        function() return db:each("select 1") end,
        function() return db:backend() end,
        function() return db:cached_statements() end,
      } do
        local err = catch(call)
        assert.are.equal("misuse", err.code)
        assert.are.equal("attempt to use a closed connection", err.message)
        assert.matches("^spec/connect_spec.lua:%d+: $", err.where)
        assert.matches("^spec/connect_spec.lua:%d+: loam.misuse: attempt to use a closed connection$",
          tostring(err))
      end
    end)

    it("raises misuse when a method is called on something else", function()
      local db = helper.connect(backend)
      local err = catch(function() return db.query({}, "select 1") end)
      assert.are.equal("misuse", err.code)
      assert.are.equal("bad argument #1 to 'query' (loam.Conn expected, got table)", err.message)
      err = catch(function() return db.query(nil, "select 1") end)
      assert.are.equal("bad argument #1 to 'query' (loam.Conn expected, got nil)", err.message)
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
