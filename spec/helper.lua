-- spec/helper.lua: what every loam spec needs to reach real databases.
--
-- busted loads this file once before the specs ('helper' in .busted); the
-- specs take the same table with 'require "spec.helper"'.
--
--   helper.backends()        the databases each spec runs against: a fresh
--                            SQLite file, SQLite ':memory:' and PostgreSQL
--                            (LOAM_TEST_PG, which must be set: PostgreSQL
--                            specs never skip silently; LOAM_TEST_SKIP_PG=1
--                            drops them with a loud warning)
--   helper.each_backend()    the same for a generic 'for': backend, and
--                            whether it is PostgreSQL
--   helper.postgres()        the PostgreSQL entry alone (nil when skipped)
--   helper.connect(backend)  a connection to one of them
--   helper.table(db, name, sqlite_ddl, pg_ddl)
--                            (re)creates a table from a column list, so a spec
--                            starts from a known state on the shared database
--   helper.tmpname(suffix)   a temporary file name, removed at exit
--   helper.pg_socket()       host (socket directory) and port of the test server
--   helper.drop_tables(db, names)
--                            drops the tables that exist, in the order given
--   helper.finish(db, names) drops the tables and closes the connection
--                            (teardown; a connection the spec closed is left)
--   helper.count(db, name)   the number of rows of a table
--   helper.statements(db, fn) the SQL of every statement that ends while
--                            'fn' runs (through the query hook)
--   helper.catch(f, ...)     the loam error object 'f' raises (an assertion
--                            fails when it raises nothing or something else)
--   helper.caught(pcall(f, ...))
--                            the same, for specs that check 'err.where':
--                            loam's Lua layer names the first caller outside
--                            it, which must be the spec, not this file
--   helper.next_line()       the line after the caller's, for messages that
--                            must name a line of the spec
--   helper.host()            the 'loam' program under test: LOAM_TEST_HOST
--                            (the harness sets it to the host running the
--                            specs), else build/bin/loam of this checkout
--   helper.shell_quote(s)    's' quoted for the shell
--   helper.write(path, text) writes a file
--   helper.tmpdir()          a fresh directory, removed when the Lua state closes
--   helper.loam(dir, args [, env [, input]]) -> stdout, stderr, exit status
--                            runs `loam ARGS` (the host under test) in 'dir'
--                            with the URL variables unset and 'env' added,
--                            'input' on stdin (none: /dev/null)

local loam = require "loam"
-- busted's 'assert' (luassert): the specs find it as a global of the
-- environment busted runs them in, which this file does not share.
local luassert = require "luassert"

local helper = {}

-- Names handed out by 'tmpname'; the files and SQLite's companions
-- (journal, WAL, shared memory) are removed when the Lua state closes.
local tmpfiles = {}

helper._reaper = setmetatable({}, {
  __gc = function()
    for _, name in ipairs(tmpfiles) do
      for _, suffix in ipairs { "", "-journal", "-wal", "-shm" } do
        os.remove(name .. suffix)
      end
    end
  end,
})

function helper.tmpname(suffix)
  local base = os.tmpname()  -- creates the file, which reserves the name
  tmpfiles[#tmpfiles + 1] = base
  if suffix == nil or suffix == "" then
    return base
  end
  local name = base .. suffix
  tmpfiles[#tmpfiles + 1] = name
  return name
end

local warned = false

local function pg_url()
  local url = os.getenv("LOAM_TEST_PG")
  if url ~= nil and url ~= "" then
    return url
  end
  if os.getenv("LOAM_TEST_SKIP_PG") == "1" then
    if not warned then
      warned = true
      io.stderr:write(("\n"):rep(1), ("!"):rep(72), "\n",
        "!! LOAM_TEST_SKIP_PG=1: the PostgreSQL specs are NOT running.\n",
        "!! Only SQLite was tested; do not take this run as a full pass.\n",
        ("!"):rep(72), "\n\n")
    end
    return nil
  end
  error("LOAM_TEST_PG is not set: the specs need a PostgreSQL server " ..
        "(run them through the test harness, or set LOAM_TEST_SKIP_PG=1 " ..
        "to run SQLite only)", 3)
end

function helper.backends()
  local list = {
    { name = "sqlite", label = "sqlite file", url = "sqlite:" .. helper.tmpname(".db") },
    { name = "sqlite", label = "sqlite memory", url = "sqlite::memory:", memory = true },
  }
  local url = pg_url()
  if url ~= nil then
    list[#list + 1] = { name = "postgres", label = "postgres", url = url }
  end
  return list
end

-- for backend, pg in helper.each_backend() do ... end
function helper.each_backend()
  local list, i = helper.backends(), 0
  return function()
    i = i + 1
    local backend = list[i]
    if backend ~= nil then
      return backend, backend.name == "postgres"
    end
  end
end

-- The PostgreSQL backend alone, or nil when LOAM_TEST_SKIP_PG=1 dropped it.
function helper.postgres()
  local url = pg_url()
  return url and { name = "postgres", label = "postgres", url = url }
end

function helper.connect(backend, opts)
  return loam.connect(backend.url, opts)
end

-- The value of 'var', which the test harness exports with 'what' it starts
-- (a PgBouncer, a replica): a spec that needs one never skips without it.
function helper.harness_env(var, what)
  local v = os.getenv(var)
  if v == nil or v == "" then
    error(var .. " is not set; the test harness starts " .. what, 2)
  end
  return v
end

-- The socket directory and port of the test server, for specs that build
-- URLs of their own (other roles, wrong passwords).
function helper.pg_socket()
  local host, port = os.getenv("LOAM_TEST_PG_HOST"), os.getenv("LOAM_TEST_PG_PORT")
  if host == nil or host == "" then
    error("LOAM_TEST_PG_HOST is not set (the test harness exports it with LOAM_TEST_PG)", 2)
  end
  return host, port
end

function helper.table(db, name, sqlite_ddl, pg_ddl)
  if db:backend() == "postgres" then
    db:exec("drop table if exists " .. name .. " cascade")
    db:exec("create table " .. name .. " (" .. (pg_ddl or sqlite_ddl) .. ")")
  else
    db:exec("drop table if exists " .. name)
    db:exec("create table " .. name .. " (" .. sqlite_ddl .. ")")
  end
end

-- Drops the tables in 'names' that exist; on PostgreSQL with whatever
-- depends on them, and SQLite needs children named before their parents.
function helper.drop_tables(db, names)
  local cascade = db:backend() == "postgres" and " cascade" or ""
  for _, t in ipairs(names) do
    db:exec("drop table if exists " .. t .. cascade)
  end
end

-- Teardown for a spec that made 'names' on 'db': drops them and closes
-- the connection, unless the spec closed it already.
function helper.finish(db, names)
  if tostring(db) ~= "loam.Database (closed)" then
    helper.drop_tables(db, names)
    db:close()
  end
end

-- Counts the rows of 'name'.
function helper.count(db, name)
  return db:query("select count(*) as n from " .. name)[1].n
end

-- The SQL of every statement that ends while 'fn' runs; the hook in
-- place before is put back, also when 'fn' raises.
function helper.statements(db, fn)
  local texts = {}
  local hook = db:on_query(function(e) texts[#texts + 1] = e.sql end)
  local ok, err = pcall(fn)
  db:on_query(hook)
  if not ok then error(err, 0) end
  return texts
end

-- Takes what 'pcall' returned and gives the error object raised; fails
-- when nothing was raised or something other than a loam error.
function helper.caught(ok, err)
  luassert.is_false(ok, "expected an error")
  luassert.are.equal(loam.Error, getmetatable(err), "not a loam error: " .. tostring(err))
  return err
end

-- Runs 'f' and returns the error object it raised, as 'caught'.  Errors
-- of loam's Lua layer then name this file in 'where'.
function helper.catch(f, ...)
  return helper.caught(pcall(f, ...))
end

-- The line after the one calling it, for errors that must name it.
function helper.next_line()
  return debug.getinfo(2, "l").currentline + 1
end

-- The whole content of the file at 'path'.
function helper.slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function helper.host()
  local host = os.getenv("LOAM_TEST_HOST")
  if host == nil or host == "" then
    host = assert(io.popen("pwd")):read("l") .. "/build/bin/loam"
  end
  return host
end

function helper.shell_quote(s)
  return "'" .. s:gsub("'", [['\'']]) .. "'"
end

function helper.write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local tmpdirs = setmetatable({}, { __gc = function(dirs)
  for _, d in ipairs(dirs) do os.execute("rm -rf " .. helper.shell_quote(d)) end
end })
helper._tmpdirs = tmpdirs

function helper.tmpdir()
  local p = assert(io.popen("mktemp -d /tmp/loam-spec.XXXXXX"))
  local d = p:read("l")
  p:close()
  tmpdirs[#tmpdirs + 1] = d
  return d
end

function helper.loam(dir, args, env, input)
  local q = helper.shell_quote
  local vars = {}
  for k, v in pairs(env or {}) do vars[#vars + 1] = k .. "=" .. q(v) end
  local errfile = helper.tmpname(".err")
  local infile = "/dev/null"
  if input ~= nil then
    infile = helper.tmpname(".in")
    helper.write(infile, input)
  end
  local cmd = ("cd %s && env -u LOAM_ENV -u LOAM_DATABASE_URL -u DATABASE_URL "
               .. "-u LOAM_MIGRATION_DATABASE_URL %s %s %s <%s 2>%s"):format(
    q(dir), table.concat(vars, " "), q(helper.host()), args, q(infile), q(errfile))
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local _, how, code = p:close()
  luassert.are.equal("exit", how)
  return out, helper.slurp(errfile), code
end

-- Mounts a tmpfs of 'size' on a new directory and returns it, or nil and
-- why not (mounting needs root or CAP_SYS_ADMIN).  'helper.unmount' undoes it.
local nschemas = 0

-- A project folder (loam init) and a database of its own for the
-- migration commands: a SQLite file or a PostgreSQL schema.  Returns the
-- folder, the database URL, and 'done', which drops the schema.
function helper.migrate_project(backend)
  local dir = helper.tmpdir()
  local _, _, code = helper.loam(dir, "init")
  assert(code == 0, "loam init failed in " .. dir)
  if backend.name ~= "postgres" then
    return dir, "sqlite:" .. dir .. "/app.db", function() end
  end
  nschemas = nschemas + 1
  local schema = ("loam_migcli_%d_%d"):format(nschemas, math.random(1, 1e9))
  local admin = require("loam").connect(backend.url)
  admin:exec("CREATE SCHEMA " .. schema)
  return dir, backend.url .. "&options=-csearch_path%3D" .. schema, function()
    admin:exec("DROP SCHEMA " .. schema .. " CASCADE")
    admin:close()
  end
end

function helper.mount_tmpfs(size)
  local mk = io.popen("mktemp -d /tmp/loam-tmpfs.XXXXXX")
  local dir = mk:read("l")
  mk:close()
  if dir == nil then return nil, "cannot create a directory for the mount" end
  local f = io.popen(("mount -t tmpfs -o size=%s loam-test %s 2>&1"):format(size, dir))
  local out = f:read("a")
  if f:close() ~= true then
    os.execute("rmdir " .. dir)
    return nil, "cannot mount a tmpfs here (" .. out:gsub("%s+$", "") .. ")"
  end
  return dir
end

-- 'keep': the directory stays, empty, for the caller to remove.
function helper.unmount(dir, keep)
  if not os.execute("umount " .. dir .. " 2>/dev/null") then
    os.execute("umount -l " .. dir .. " 2>/dev/null")
  end
  if not keep then os.execute("rmdir " .. dir) end
end

-- The harness's streaming replica (spec/support/pg-replica) runs on this
-- machine and replays what the primary does, and a tablespace is a path
-- that both would then use: replaying CREATE TABLESPACE empties the
-- directory under the primary, and the two servers write the same files.
-- A test that makes a tablespace pauses the replica's replay first, and
-- once it has dropped the tablespace calls the function this returns,
-- while the directory still exists (empty, and the server's OS user's):
-- replay resumes, runs through the tablespace's life in that directory,
-- and the function returns once the replica has replayed everything.
function helper.pause_replica()
  local url = os.getenv("LOAM_TEST_PG_REPLICA")
  if url == nil or url == "" then return function() end end
  local replica = loam.connect(url)
  replica:exec("SELECT pg_wal_replay_pause()")
  return function()
    local primary = loam.connect(pg_url())
    primary:exec("CHECKPOINT")  -- flushes the WAL: its end is what the replica must reach
    local lsn = primary:query("SELECT pg_current_wal_flush_lsn()::text AS l")[1].l
    primary:close()
    replica:exec("SELECT pg_wal_replay_resume()")
    local done = false
    for _ = 1, 1200 do
      done = replica:query("SELECT pg_last_wal_replay_lsn() >= ?::pg_lsn AS ok", { lsn })[1].ok
      if done then break end
      os.execute("sleep 0.05")
    end
    replica:close()
    assert(done, "the replica did not replay up to " .. lsn)
  end
end

-- The same table for 'require "spec.helper"' as for busted's own load, so
-- the warning above appears once per run.
package.loaded["spec.helper"] = package.loaded["spec.helper"] or helper

return package.loaded["spec.helper"]
