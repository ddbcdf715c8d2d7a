-- spec/errors_spec.lua: the error objects raised by failed statements and by
-- misuse, the same 'code' on every backend, and statements that fail
-- leaving their table as it was.

local loam = require "loam"
local helper = require "spec.helper"

local catch = helper.catch

for backend, pg in helper.each_backend() do
  describe(backend.label .. ":", function()
    local db

    before_each(function()
      db = helper.connect(backend)
      helper.drop_tables(db, { "child", "parent", "people", "checked" })
      helper.table(db, "people",
        "id integer primary key, email text not null constraint people_email_key unique, "
          .. "name text not null",
        "id bigserial primary key, email text not null constraint people_email_key unique, "
          .. "name text not null")
      helper.table(db, "parent", "id integer primary key", "id bigint primary key")
      helper.table(db, "child",
        "id integer primary key, parent_id integer constraint child_parent_fkey "
          .. "references parent (id)",
        "id bigint primary key, parent_id bigint constraint child_parent_fkey "
          .. "references parent (id)")
      helper.table(db, "checked", "v integer constraint checked_v_positive check (v > 0)")
      db:exec("insert into people (email, name) values (?, ?)", { "a@example.com", "Ann" })
      db:exec("insert into parent (id) values (1)")
    end)

    after_each(function()
      db:close()
    end)

    it("raises unique_violation", function()
      local err = catch(db.exec, db, "insert into people (email, name) values (?, ?)",
        { "a@example.com", "Again" })
      assert.are.equal("unique_violation", err.code)
      if pg then
        assert.are.equal("23505", err.sqlstate)
        assert.are.equal("people_email_key", err.constraint)
        assert.are.equal("people", err.table)
        assert.are.equal('duplicate key value violates unique constraint "people_email_key"',
          err.message)
        assert.are.equal("Key (email)=(a@example.com) already exists.", err.detail)
      else
        assert.is_nil(err.sqlstate)
        assert.are.equal("people", err.table)
        assert.are.equal("email", err.column)
        assert.are.equal("UNIQUE constraint failed: people.email", err.message)
      end
      assert.are.equal(1, helper.count(db, "people"))
    end)

    it("formats an error object with where, code, message and SQLSTATE", function()
      local ok, err = pcall(function()
        db:exec("insert into people (email, name) values (?, ?)", { "a@example.com", "B" })
      end)
      assert.is_false(ok)
      assert.matches("^spec/errors_spec.lua:%d+: $", err.where)
      if pg then
        assert.are.equal(err.where .. "loam.unique_violation: duplicate key value violates "
          .. 'unique constraint "people_email_key" (SQLSTATE 23505)', tostring(err))
      else
        assert.are.equal(err.where .. "loam.unique_violation: UNIQUE constraint failed: people.email",
          tostring(err))
      end
    end)

    it("raises foreign_key_violation", function()
      local err = catch(db.exec, db, "insert into child (id, parent_id) values (?, ?)", { 1, 99 })
      assert.are.equal("foreign_key_violation", err.code)
      if pg then
        assert.are.equal("23503", err.sqlstate)
        assert.are.equal("child_parent_fkey", err.constraint)
        assert.are.equal("child", err.table)
        assert.matches('violates foreign key constraint "child_parent_fkey"', err.message, 1, true)
      else
        assert.are.equal("FOREIGN KEY constraint failed", err.message)
      end
      assert.are.equal(0, helper.count(db, "child"))
    end)

    it("raises not_null_violation", function()
      local err = catch(db.exec, db, "insert into people (email, name) values (?, ?)",
        { "b@example.com", loam.null })
      assert.are.equal("not_null_violation", err.code)
      assert.are.equal("people", err.table)
      assert.are.equal("name", err.column)
      if pg then
        assert.are.equal("23502", err.sqlstate)
        assert.matches('null value in column "name"', err.message, 1, true)
      else
        assert.are.equal("NOT NULL constraint failed: people.name", err.message)
      end
      assert.are.equal(1, helper.count(db, "people"))
    end)

    it("raises check_violation", function()
      local err = catch(db.exec, db, "insert into checked (v) values (?)", { -1 })
      assert.are.equal("check_violation", err.code)
      assert.are.equal("checked_v_positive", err.constraint)
      if pg then
        assert.are.equal("23514", err.sqlstate)
        assert.are.equal("checked", err.table)
        assert.matches('violates check constraint "checked_v_positive"', err.message, 1, true)
      else
        assert.are.equal("CHECK constraint failed: checked_v_positive", err.message)
      end
      assert.are.equal(0, helper.count(db, "checked"))
    end)

    it("applies nothing of a statement that fails halfway", function()
      local err = catch(db.exec, db,
        "insert into people (email, name) values (?, ?), (?, ?), (?, ?)",
        { "new1@example.com", "N1", "new2@example.com", "N2", "a@example.com", "Dup" })
      assert.are.equal("unique_violation", err.code)
      assert.are.equal(1, helper.count(db, "people"))
      assert.are.same({ { email = "a@example.com" } }, db:query("select email from people"))
      db:exec("insert into checked (v) values (5), (20)")
      err = catch(db.exec, db, "update checked set v = v - 10")
      assert.are.equal("check_violation", err.code)
      assert.are.same({ { v = 5 }, { v = 20 } }, db:query("select v from checked order by v"))
    end)

    it("raises syntax_error", function()
      local err = catch(db.query, db, "selec 1")
      assert.are.equal("syntax_error", err.code)
      if pg then
        assert.are.equal("42601", err.sqlstate)
        assert.are.equal('syntax error at or near "selec"', err.message)
      else
        assert.are.equal('near "selec": syntax error', err.message)
      end
    end)

    it("raises undefined_table", function()
      local err = catch(db.query, db, "select * from no_such_table")
      assert.are.equal("undefined_table", err.code)
      if pg then
        assert.are.equal("42P01", err.sqlstate)
        assert.are.equal('relation "no_such_table" does not exist', err.message)
      else
        assert.are.equal("no such table: no_such_table", err.message)
      end
    end)

    it("raises the same error from each", function()
      local err = catch(function()
        for _ in db:each("select * from no_such_table") do end
      end)
      assert.are.equal("undefined_table", err.code)
      assert.matches("^spec/errors_spec.lua:%d+: $", err.where)
    end)

    it("names the Lua caller when a method is called straight through pcall", function()
      local line = debug.getinfo(1, "l").currentline + 1
      local ok, err = pcall(db.exec, db, "select * from no_such_table")
      assert.is_false(ok)
      assert.are.equal("undefined_table", err.code)
      assert.are.equal("spec/errors_spec.lua:" .. line .. ": ", err.where)
    end)

    it("raises misuse for a wrong parameter count, with a hint about NULL", function()
      local err = catch(db.query, db, "select cast(? as integer) as a, cast(? as integer) as b",
        { 1 })
      assert.are.equal("misuse", err.code)
      assert.is_nil(err.sqlstate)
      assert.are.equal("statement takes 2 parameters, got 1 (write loam.null for NULL parameters)",
        err.message)
      err = catch(db.exec, db, "insert into checked (v) values (?)", {})
      assert.are.equal("statement takes 1 parameter, got 0 (write loam.null for NULL parameters)",
        err.message)
      err = catch(db.each, db, "select 1 as one", { 1 })
      assert.are.equal("statement takes 0 parameters, got 1 (write loam.null for NULL parameters)",
        err.message)
    end)

    it("raises misuse for a value that cannot be bound", function()
      local err = catch(db.query, db, "select ? as a", { {} })
      assert.are.equal("misuse", err.code)
      assert.are.equal("parameter #1: cannot bind a table", err.message)
      err = catch(db.exec, db, "select ? as a, ? as b", { 1, print })
      assert.are.equal("parameter #2: cannot bind a function", err.message)
      err = catch(db.query, db, "select ? as a", { db:connection() })
      assert.are.equal("parameter #1: cannot bind a loam.Conn", err.message)
      err = catch(db.each, db, "select ? as a", { coroutine.create(print) })
      assert.are.equal("parameter #1: cannot bind a thread", err.message)
    end)

    it("raises misuse for a nil hole in the parameters", function()
      local params = { 1, 2, 3 }
      params[2] = nil
      local err = catch(db.query, db, "select ? as a, ? as b, ? as c", params)
      assert.are.equal("misuse", err.code)
      assert.matches("(write loam.null for NULL parameters)", err.message, 1, true)
    end)

    it("raises misuse for arguments of the wrong type", function()
      local err = catch(function() return db:query(nil) end)
      assert.are.equal("misuse", err.code)
      assert.are.equal("bad argument #1 to 'query' (string expected, got nil)", err.message)
      err = catch(function() return db:exec("select 1", "x") end)
      assert.are.equal("bad argument #2 to 'exec' (table expected, got string)", err.message)
      err = catch(function() return db:each(42) end)
      assert.are.equal("bad argument #1 to 'each' (string expected, got number)", err.message)
      err = catch(function() return loam.blob({}) end)
      assert.are.equal("bad argument #1 to 'blob' (string expected, got table)", err.message)
    end)

    it("raises misuse for two statements in one call", function()
      local err = catch(db.exec, db, "select 1; select 2")
      assert.are.equal("misuse", err.code)
      assert.is_string(err.message)
    end)

    it("raises undefined_function for a function that does not exist", function()
      local err = catch(db.query, db, "select no_such_fn(1) as x")
      if pg then
        assert.are.equal("undefined_function", err.code)
        assert.are.equal("42883", err.sqlstate)
        assert.are.equal("function no_such_fn(integer) does not exist", err.message)
      else
        -- SQLite reports it as plain SQLITE_ERROR, with no code of its own.
        assert.are.equal("database_error", err.code)
        assert.are.equal("no such function: no_such_fn", err.message)
      end
      assert.are.equal(1, db:query("select 1 as one")[1].one)
    end)

    it("refuses more parameters than the backend takes, before sending anything", function()
      helper.table(db, "nums", "v integer", "v bigint")
      local function insert(n, nvalues)
        local values = {}
        for i = 1, nvalues or n do values[i] = i end
        return db.exec, db, "insert into nums (v) values " .. ("(?),"):rep(n - 1) .. "(?)", values
      end
      local err = catch(insert(300000))
      assert.are.equal("misuse", err.code)
      local limit = tonumber(err.message:match("takes at most (%d+)"))
      local name = pg and "PostgreSQL" or "SQLite"
      local suffix = pg and "" or " (SQLITE_LIMIT_VARIABLE_NUMBER)"
      assert.are.equal("statement has 300000 parameters; " .. name .. " takes at most " .. limit
        .. suffix, err.message)
      if pg then assert.are.equal(65535, limit) end
      err = catch(insert(limit + 1))
      assert.are.equal("misuse", err.code)
      assert.are.equal("statement has " .. (limit + 1) .. " parameters; " .. name
        .. " takes at most " .. limit .. suffix, err.message)
      -- More placeholders than the limit with fewer values is misuse too.
      err = catch(insert(limit + 1, 1))
      assert.are.equal("misuse", err.code)
      assert.are.equal(0, helper.count(db, "nums"))
      local exec, _, sql, values = insert(limit)
      exec(db, sql, values)
      assert.are.equal(limit, helper.count(db, "nums"))
      db:exec("drop table nums")
    end)

    if not pg then
      it("raises disk_full when the database reaches max_page_count", function()
        helper.table(db, "big", "b blob")
        db:exec("insert into big values (?)", { loam.blob(("k"):rep(100)) })
        db:exec("vacuum")  -- no free pages left over from other tests
        local pages = db:query("pragma page_count")[1].page_count
        db:query("pragma max_page_count = " .. (pages + 2))
        local err = catch(db.exec, db, "insert into big values (?)",
          { loam.blob(("x"):rep(100000)) })
        assert.are.equal("disk_full", err.code)
        assert.are.equal("database or disk is full", err.message)
        assert.is_nil(err.sqlstate)
        assert.are.equal(1, helper.count(db, "big"))
        db:exec("drop table big")
      end)
    end

    it("leaves the connection usable after an error", function()
      catch(db.query, db, "select * from no_such_table")
      catch(db.exec, db, "insert into checked (v) values (?)", { 0 })
      assert.are.equal(1, db:query("select 1 as one")[1].one)
    end)

    if pg then
      it("raises data_error for a NUL byte in text, and takes it as a blob", function()
        local err = catch(db.query, db, "select ? as t", { "a\0b" })
        assert.are.equal("data_error", err.code)
        assert.are.equal("parameter 1: text contains a NUL byte; bind it as a blob", err.message)
        local r = db:query("select ? as b", { loam.blob("a\0b") })[1]
        assert.are.equal("a\0b", r.b)
      end)

      it("raises an error met in the middle of a stream and ends the stream", function()
        local n = 0
        local err = catch(function()
          for _ in db:each("select 1 / (5000 - g) as x from generate_series(1, 10000) as g") do
            n = n + 1
          end
        end)
        assert.are.equal("22012", err.sqlstate)
        assert.are.equal("data_error", err.code)
        assert.are.equal("division by zero", err.message)
        assert.is_true(n < 5000)
        assert.are.equal(1, db:query("select 1 as one")[1].one)
      end)
    end
  end)
end

local mount_tmpfs, unmount = helper.mount_tmpfs, helper.unmount

describe("sqlite files:", function()
  local probe, why = mount_tmpfs("64k")
  if probe then unmount(probe) end

  if probe then
    it("raises disk_full when the file system is full, keeping what was there", function()
      local dir = assert(mount_tmpfs("256k"))
      local db
      finally(function()
        if db then db:close() end
        unmount(dir)
      end)
      db = loam.connect("sqlite:" .. dir .. "/full.db")
      db:exec("create table big (b blob)")
      db:exec("insert into big values (?)", { loam.blob(("k"):rep(1000)) })
      local err = catch(db.exec, db, "insert into big values (?)",
        { loam.blob(("x"):rep(1024 * 1024)) })
      assert.are.equal("disk_full", err.code)
      assert.are.equal("database or disk is full", err.message)
      assert.are.equal(1, helper.count(db, "big"))
      assert.are.same({ { n = 1000 } }, db:query("select length(b) as n from big"))
    end)
  else
    pending("disk_full on a full file system: " .. why
      .. "; max_page_count covers the code on every SQLite backend")
  end

  it("raises corrupt for a database whose pages were overwritten", function()
    local path = helper.tmpname(".db")
    local db = loam.connect("sqlite:" .. path .. "?journal_mode=delete")
    db:exec("create table t (id integer primary key, v text)")
    for _ = 1, 100 do db:exec("insert into t (v) values (?)", { ("v"):rep(200) }) end
    local size = db:query("pragma page_size")[1].page_size
    db:close()
    -- Page 1 (the header and the schema) stays; page 2, the table's root, becomes garbage.
    local f = assert(io.open(path, "r+b"))
    f:seek("set", size)
    f:write(("\255"):rep(size))
    f:close()
    db = loam.connect("sqlite:" .. path .. "?journal_mode=delete")
    local err = catch(db.query, db, "select count(*) as n from t")
    assert.are.equal("corrupt", err.code)
    assert.are.equal("database disk image is malformed", err.message)
    assert.is_nil(err.sqlstate)
    assert.are.equal(1, db:query("select 1 as one")[1].one)
    db:close()
  end)

  -- /proc/self/mem is a file whose reads and writes at offset 0 fail in the
  -- kernel: a real I/O error, without a broken disk.
  local mem = io.open("/proc/self/mem", "rb")
  if mem then
    mem:close()
    it("raises io_error when the operating system fails the file's I/O", function()
      local err = catch(loam.connect, "sqlite:/proc/self/mem?journal_mode=memory")
      assert.are.equal("io_error", err.code)
      assert.are.equal("cannot open SQLite database '/proc/self/mem': disk I/O error", err.message)
    end)
  else
    pending("io_error: no /proc/self/mem to fail I/O on (not Linux)")
  end
end)

describe("postgres files:", function()
  local backend = helper.postgres()
  if backend == nil then return end
  local probe, why = mount_tmpfs("64k")
  if probe then unmount(probe) end
  local db = helper.connect(backend)
  local datadir = db:query("select current_setting('data_directory') as d")[1].d
  db:close()
  local local_server = io.open(datadir .. "/PG_VERSION", "rb")
  if local_server then local_server:close() end

  if probe and local_server then
    it("raises disk_full when a tablespace's file system is full, keeping what was there",
      function()
        local dir = assert(mount_tmpfs("512k"))
        local conn
        -- The replica must not follow the tablespace into the same directory live.
        local resume_replica = helper.pause_replica()
        finally(function()
          if conn then
            conn:exec("drop table if exists small_full")
            conn:exec("drop tablespace if exists loam_small")
            conn:close()
          end
          unmount(dir, true)
          os.execute("chown --reference=" .. datadir .. " " .. dir)
          resume_replica()
          os.execute("rmdir " .. dir)
        end)
        -- The server runs as the owner of its data directory, which must own the tablespace.
        assert(os.execute("chown --reference=" .. datadir .. " " .. dir .. " && chmod 700 " .. dir))
        conn = helper.connect(backend)
        conn:exec("create tablespace loam_small location '" .. dir .. "'")
        conn:exec("create table small_full (b text) tablespace loam_small")
        conn:exec("insert into small_full values ('kept')")
        local err = catch(conn.exec, conn, "insert into small_full select md5(g::text) || "
          .. "repeat('x', 500) from generate_series(1, 10000) as g")
        assert.are.equal("disk_full", err.code)
        assert.are.equal("53100", err.sqlstate)
        assert.matches("^could not extend file", err.message)
        assert.are.same({ { b = "kept" } }, conn:query("select b from small_full"))
      end)

    it("raises corrupt for a table whose page on disk was overwritten", function()
      local conn = helper.connect(backend)
      finally(function()
        conn:exec("drop table if exists broken")
        conn:close()
      end)
      conn:exec("drop table if exists broken")
      conn:exec("create table broken (v text)")
      conn:exec("insert into broken select 'row ' || g from generate_series(1, 100) as g")
      -- VACUUM FULL writes a new file without passing through shared buffers, so
      -- the next read comes from the disk.
      conn:exec("vacuum full broken")
      local file = datadir .. "/" .. conn:query("select pg_relation_filepath('broken') as f")[1].f
      local f = assert(io.open(file, "r+b"))
      f:write(("\255"):rep(8192))
      f:close()
      local err = catch(conn.query, conn, "select count(*) as n from broken")
      assert.are.equal("corrupt", err.code)
      assert.are.equal("XX001", err.sqlstate)
      assert.matches("^invalid page in block 0 of relation", err.message)
      assert.are.equal(1, conn:query("select 1 as one")[1].one)
    end)
  else
    pending("disk_full and corrupt on PostgreSQL: "
      .. (local_server and why or "the server's data directory is not on this machine"))
  end
end)

describe("error objects", function()
  it("can be made and recognised from Lua", function()
    local e = setmetatable({ code = "custom", message = "made in Lua", where = "x.lua:1: " },
      loam.Error)
    assert.are.equal("x.lua:1: loam.custom: made in Lua", tostring(e))
    assert.are.equal("loam.error: (no message)", tostring(setmetatable({}, loam.Error)))
  end)
end)
