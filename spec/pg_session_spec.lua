-- spec/pg_session_spec.lua: the session settings loam sets on its own
-- PostgreSQL connections, which role and database settings cannot undo.
-- The role 'loam_odd' has every setting loam relies on turned the wrong
-- way; a connection as that role must still read and write like any other.

local loam = require "loam"
local helper = require "spec.helper"

if not helper.postgres() then return end

local function url_for(user, extra)
  local host, port = helper.pg_socket()
  local url = "postgresql://" .. user .. "@/loam_test?host=" .. host
  if port ~= nil and port ~= "" then url = url .. "&port=" .. port end
  return url .. (extra or "")
end

describe("postgres session settings", function()
  setup(function()
    local admin = helper.connect(helper.postgres())
    if #admin:query("SELECT 1 AS x FROM pg_roles WHERE rolname = 'loam_odd'") == 0 then
      admin:exec("CREATE ROLE loam_odd LOGIN")
    end
    admin:exec("GRANT ALL ON SCHEMA public TO loam_odd")
    admin:exec("ALTER ROLE loam_odd SET standard_conforming_strings = off")
    admin:exec("ALTER ROLE loam_odd SET DateStyle = 'SQL, DMY'")
    admin:exec("ALTER ROLE loam_odd SET IntervalStyle = 'sql_standard'")
    admin:exec("ALTER ROLE loam_odd SET TimeZone = 'Asia/Tokyo'")
    admin:exec("ALTER ROLE loam_odd SET extra_float_digits = -3")
    admin:exec("ALTER ROLE loam_odd SET client_encoding = 'LATIN1'")
    admin:close()
  end)

  it("the role's own settings really are the odd ones (psql-like session without loam's)", function()
    -- A plain SQL check that the role settings exist: loam's connection
    -- must override them, so they are read from the catalog.
    local admin = helper.connect(helper.postgres())
    local rows = admin:query([[SELECT unnest(s.setconfig) AS c FROM pg_db_role_setting s
                               JOIN pg_roles r ON r.oid = s.setrole
                               WHERE r.rolname = 'loam_odd' ORDER BY 1]])
    admin:close()
    local got = {}
    for _, r in ipairs(rows) do got[#got + 1] = r.c end
    assert.are.same({ "DateStyle=SQL, DMY", "IntervalStyle=sql_standard", "TimeZone=Asia/Tokyo",
                      "client_encoding=LATIN1", "extra_float_digits=-3",
                      "standard_conforming_strings=off" }, got)
  end)

  it("are set on loam's connections, whatever the role says", function()
    local db = loam.connect(url_for("loam_odd"))
    local function show(name)
      return db:query("SELECT current_setting(?) AS v", { name })[1].v
    end
    assert.are.equal("loam_odd", db:query("SELECT current_user AS u")[1].u)
    assert.are.equal("on", show("standard_conforming_strings"))
    assert.are.equal("UTF8", show("client_encoding"))
    assert.are.equal("ISO, MDY", show("DateStyle"))
    assert.are.equal("postgres", show("IntervalStyle"))
    assert.are.equal("UTC", show("TimeZone"))
    assert.are.equal("3", show("extra_float_digits"))
    db:close()
  end)

  it("keep literals with backslashes, '?' inside them, floats, dates and intervals exact", function()
    local db = loam.connect(url_for("loam_odd"))
    local row = db:query([[SELECT 'C:\tmp\?' AS path, ? AS p,
                                  0.1::float8 + 0.2::float8 AS f,
                                  '2026-03-04 05:06:07+09'::timestamptz::text AS ts,
                                  '2026-03-04'::date::text AS d,
                                  '1 day 2 hours'::interval::text AS i]], { "x" })[1]
    assert.are.equal("C:\\tmp\\?", row.path)
    assert.are.equal("x", row.p)
    assert.are.equal(0.1 + 0.2, row.f)
    assert.are.equal("2026-03-03 20:06:07+00", row.ts)
    assert.are.equal("2026-03-04", row.d)
    assert.are.equal("1 day 02:00:00", row.i)
    assert.are.equal(1 / 3, db:query("SELECT ?::float8 AS f", { 1 / 3 })[1].f)
    db:close()
  end)

  it("keep DDL literals with backslashes as written", function()
    local db = loam.connect(url_for("loam_odd"))
    db:exec("DROP TABLE IF EXISTS loam_odd_t")
    db:exec(db:render_ddl({ k = "create_table", name = "loam_odd_t", columns = {
      { name = "id", type = "id" },
      { name = "path", type = "text", default = "C:\\tmp\\new" },
    } }))
    db:exec("INSERT INTO loam_odd_t DEFAULT VALUES")
    assert.are.equal("C:\\tmp\\new", db:query("SELECT path FROM loam_odd_t")[1].path)
    db:exec("DROP TABLE loam_odd_t")
    db:close()
  end)

  it("win over the same settings in the URL's own 'options', which are kept otherwise", function()
    local db = loam.connect(url_for("loam_odd",
      "&options=-c%20statement_timeout%3D4321%20-c%20TimeZone%3DEurope/Paris"))
    local function setting(name)
      return db:query("SELECT current_setting(?) AS v", { name })[1].v
    end
    assert.are.equal("4321ms", setting("statement_timeout"))
    assert.are.equal("UTC", setting("TimeZone"))
    assert.are.equal("on", setting("standard_conforming_strings"))
    db:close()
  end)
end)
