-- loam.database: the Database, what loam.connect returns.  It holds one
-- connection of the core ('loam.Conn'), or a pooled handle on the
-- process's pool for its URL, and everything that must outlive it: the models declared on it, their relations, the lazy-loading
-- default, the query hook and the tracking state.  Models are declared
-- once per process and run on whichever connection the Database hands out
-- (database.connection), so after db:reconnect() the same models, the
-- same relations and the queries kept in variables work on the new one.
--
--   database.connect(url [, opts]) -> db    opts: those of the core's
--                                           connect (statement_cache,
--                                           busy_timeout_ms, connect_timeout_s,
--                                           ...), and 'pool': true or a table
--                                           of the pool's options (size,
--                                           max_overflow, acquire_timeout_ms,
--                                           max_lifetime_ms, idle_timeout_ms,
--                                           health_check_ms, leak_threshold_ms,
--                                           processes); 'replicas' (a list of
--                                           URLs), 'max_lag_ms',
--                                           'replica_check_ms', 'replica_log'
--                                           (loam.replicas, "Replicas" below);
--                                           LOAM_LOG and LOAM_LOG_ALLOW
--                                           in the environment switch its
--                                           logs on (loam.log)
--   database.is_database(v)                 whether 'v' is a Database
--   database.hold(c)                        see "Pooled" below
--
-- Pooled.  With 'pool', the Database runs on the process's one pool for
-- its URL (core.pool_open: the same URL and options from any Lua state or
-- thread of the process give the same pool, other options a misuse error
-- naming them) through a pooled handle ('pool:handle()'): a 'loam.Conn'
-- whose every call checks a connection out for its duration and hands it
-- back after, so statements outside a transaction each take one, a
-- statement read row by row (each) keeps its own until it ends, and
-- db:transaction keeps one for its whole run (the core's transaction is
-- one call, and the calls inside it find the connection out already).
-- Code that must run several calls into the core on one connection, a
-- transaction made of more than one call say, takes it through the one
-- seam 'hold':
--   local pin <close> = database.hold(c)   -- c = conn_of(db): the handle
-- which keeps the connection checked out until 'pin' closes, and is nil
-- (nothing to keep) on a Database without a pool.  A connection found
-- dead is discarded by the pool and the next call gets a healthy one.
--
-- Methods, on the connection in use (see db:connection()):
--   db:query, exec, each, run, insert_rows, render, render_ddl, prepare, load_batch,
--   stats, cached_statements, table_exists, exact_numeric, backend, hold,
--   transaction_status, introspect, writes
--                               the connection's own, unchanged: the
--                               core's C functions themselves, which
--                               accept a Database as self
--   db:transaction([opts,] fn, ...)
--                               fn(...) inside a transaction; the model
--                               statements that fn runs use the
--                               transaction's connection; opts (isolation,
--                               read_only, retry, warn_after_ms, log, tag)
--                               are the core's (bindings/lua_tx.c)
--   db:after_commit(fn), db:after_rollback(fn)
--                               hooks of the running transaction
--   db:on_query(fn | nil)       the query hook, kept by the Database: a
--                               new connection gets it too
--   db:close()                  closes the connection; every later use
--                               raises misuse until db:reconnect()
--   db:reconnect()              closes the connection if open and opens a
--                               new one with the same URL and options
--   db:connection()             the connection an operation runs on now
--   db:reader()                 the connection a read runs on now: a
--                               replica's, or that of db:connection()
--   db:primary(fn, ...)         fn(...) with every read on the primary
--   db:replicas()               the state of each replica (misuse without)
--   db:pool_stats()             the pool's metrics (misuse without a pool),
--                               with 'replicas' when there are
--   db:model(table, columns [, options]), db:table(name),
--   db:create_tables(models), db:drop_tables(models), db:lazy_loading(flag),
--   db:track(fn | settings | false), db:track_reset(), db:budget(limits, fn)
--   db:log(settings | false)    the query log and the slow-query log (loam.log)
--   db:explain(query | sql [, params] [, opts])
--                               the plan, full scans of big tables flagged
--                               (loam.explain)
--
-- Fields the Lua layer reads (none is for applications):
--   _conn     the Database's open connection (or pooled handle), or nil
--             once closed
--   _pool     the 'loam.Pool' of a pooled Database, or nil
--   _c        the connection operations run on now: that of a running
--             db:transaction, else _conn (see 'conn_of'); nil once closed.
--             The core reads it too (DATABASE_CONN in
--             bindings/lua_loam_int.h): the methods above take the
--             connection from it, so its name is fixed in both places
--   _depth    how many db:transaction calls are running
--   _replicas the replica set (loam.replicas), or nil
--   _dirty    raw SQL ran on the primary since the last read (replicas)
--   _seen     the primary's 'writes()' when '_wlsn' was read (replicas)
--   _wlsn     the primary's WAL position reads must see (replicas)
--   _force    how many db:primary calls are running
--   _restore  what the outermost db:transaction puts back when it ends
--   _models   table name -> the model last declared for it: a reference by
--             table name points at that model's primary key (loam.model)
--   _lazy     the lazy-loading default of the models (loam.relation)
--   _track    the tracking state (loam.track), or nil when nothing listens
--   _hook     the query hook set through db:on_query, or nil
--   _log      the state of the logs (loam.log), or nil when they are off
--
-- State that belongs to one connection (prepared statements, the core's
-- statement cache and counters) is kept per connection, keyed by it, so a
-- new connection starts with fresh state and an old one takes its own along.

local core = require "loam.core"
local errors = require "loam.errors"
local explain = require "loam.explain"
local log = require "loam.log"
local query = require "loam.query"
local model = require "loam.model"
local replicas = require "loam.replicas"
local schema = require "loam.schema"
local track = require "loam.track"

local raise = errors.raise

local database = {}

local Database = { __name = "loam.Database" }
Database.__index = Database

local function is_database(v)
  return getmetatable(v) == Database
end

-- Raises for 'db', which has no open connection or is no Database at all;
-- 'name' is the method called.
local function unusable(db, name)
  if not is_database(db) then
    raise("misuse", string.format("bad argument #1 to '%s' (loam.Database expected, got %s)",
      name, errors.show(db)))
  end
  raise("misuse", "attempt to use a closed database (db:reconnect() opens it again)")
end

-- The connection for this operation: the one a running transaction holds,
-- else the Database's own.  Every statement of the Database and of its
-- models and queries asks here (models and queries as db:connection()),
-- once per operation; 'name' is the method called, for errors.
local function conn_of(db, name)
  local c = type(db) == "table" and db._c
  if not c then unusable(db, name or "connection") end
  return c
end

-- The field 'field' of Database 'db' (its pool, its replicas) for method
-- 'name'; a misuse error saying the Database has 'missing' when it is nil.
local function part(db, name, field, missing)
  if not is_database(db) then unusable(db, name) end
  local v = db[field]
  if v == nil then
    if db._conn == nil then unusable(db, name) end
    raise("misuse", "db:" .. name .. ": this database has " .. missing)
  end
  return v
end

local route  -- see "Replicas"

local function attach(db, c, pool, set)
  if db._hook ~= nil then c:on_query(db._hook) end
  db._conn, db._c, db._pool, db._replicas = c, c, pool, set
  if set ~= nil then db._seen = c:writes() end
  route(db, set ~= nil)
end

-- The options of a pool, as core.pool_open takes them beside the connection's.
local POOL_OPTIONS = { "size", "max_overflow", "acquire_timeout_ms", "max_lifetime_ms",
  "idle_timeout_ms", "health_check_ms", "leak_threshold_ms", "processes" }
local is_pool_option = {}
for _, name in ipairs(POOL_OPTIONS) do is_pool_option[name] = true end

-- The options of core.pool_open for 'opts' of loam.connect: the
-- connection's, and those inside 'pool' (true: none), checked.
local function pool_options(opts)
  local wanted = opts.pool or true
  if wanted ~= true and (type(wanted) ~= "table" or getmetatable(wanted) ~= nil) then
    errors.misuse("loam.connect: option 'pool' must be true or a table of pool options, got %s",
      errors.show(wanted))
  end
  local flat = {}
  for k, v in pairs(opts) do
    if is_pool_option[k] then
      errors.misuse("loam.connect: '%s' is a pool option: write it inside 'pool' "
        .. "({ pool = { %s = ... } })", k, k)
    end
    if k ~= "pool" then flat[k] = v end
  end
  if wanted ~= true then
    for k, v in pairs(wanted) do
      if not is_pool_option[k] then
        errors.misuse("loam.connect: unknown pool option %s (the pool takes %s)",
          type(k) == "string" and "'" .. k .. "'" or errors.show(k),
          table.concat(POOL_OPTIONS, ", "))
      end
      flat[k] = v
    end
  end
  return flat
end

-- A connection, or with opts.pool a pooled handle and its pool.
local function open(url, opts)
  if not (type(opts) == "table" and opts.pool) then return core.connect(url, opts) end
  local pool = core.pool_open(url, pool_options(opts))
  return pool:handle(), pool
end

local function copy_opts(opts)
  if type(opts) ~= "table" then return opts end
  local copy = {}
  for k, v in pairs(opts) do copy[k] = v end
  if type(copy.pool) == "table" then copy.pool = copy_opts(copy.pool) end
  return copy
end

-- The primary's connection (or pooled handle) and pool, and with replica
-- options the replicas (loam.replicas), opened with the same options.
local function open_all(db, url, opts)
  local ro = replicas.options(opts)
  if ro == nil then return open(url, opts) end
  if type(url) == "string" and url:match("^sqlite:") then
    errors.misuse("loam.connect: replicas are PostgreSQL servers, and this database is SQLite")
  end
  local own = {}
  for k, v in pairs(opts) do
    if not replicas.OPTIONS[k] then own[k] = v end
  end
  local c, pool = open(url, own)
  local ok, set = true, c:backend()
  if set ~= "postgres" then
    ok, set = pcall(errors.misuse, "loam.connect: replicas are PostgreSQL servers, and this "
      .. "database is %s", set)
  else
    -- Each replica's pool: with 'pool', the process's for its URL, with the
    -- Database's pool options; without, the Database's own.
    ok, set = pcall(function()
      return replicas.open(ro, pool_options(own), pool ~= nil, db._hook)
    end)
  end
  if not ok then
    c:close()
    if pool ~= nil then pool:close() end
    error(set, 0)
  end
  return c, pool, set
end

function database.connect(url, opts)
  local db = setmetatable({ _url = url, _opts = copy_opts(opts), _models = {} }, Database)
  attach(db, open_all(db, url, opts))
  local ok, settings = pcall(log.from_env, os.getenv("LOAM_LOG"), os.getenv("LOAM_LOG_ALLOW"))
  if not ok then
    db:close()
    error(settings, 0)
  end
  if settings ~= nil then log.switch(db, settings) end
  return db
end

database.is_database = is_database

-- The seam for code that needs one pooled connection across several calls
-- (see "Pooled" above): a value for a '<close>' variable, nil without a pool.
function database.hold(c)
  return c:hold()
end


-- {======================================================================
-- The connection's methods
-- =======================================================================

-- A method itself, not a function that calls it: models ask once per
-- operation, and a call less is cheaper on the hot path.
Database.connection = conn_of
-- The connection reads run on: without replicas the same as
-- db:connection() (the same function, so no cost); a Database with
-- replicas has its own, 'read_conn' below, as a field of its own.
Database.reader = conn_of

-- The connection's own methods are the core's C functions themselves: the
-- core takes the connection in use from a Database given as self (field
-- '_c', see core.set_database), so a call costs no Lua frame on the hot
-- path, and an error raised under 'return db:query(...)' keeps the line
-- of the function that wrote it.  They raise misuse as 'unusable' does.
for _, name in ipairs { "query", "exec", "each", "run", "render", "render_ddl", "prepare",
  "load_batch", "stats", "cached_statements", "table_exists", "exact_numeric", "backend",
  "insert_rows", "hold", "transaction_status", "introspect", "writes" } do
  Database[name] = core.Conn[name]
end
core.set_database(Database)


-- {======================================================================
-- Replicas
-- =======================================================================

-- A Database with replicas (loam.replicas) sends reads to them: model
-- reads ask db:reader() for their connection, and db:run of a SELECT and
-- db:load_batch go there themselves.  Everything else (writes, raw SQL,
-- DDL, migrations, hand-prepared statements) runs on the primary, where
-- the core counts each statement that may write ('writes()', whatever
-- path ran it); raw SQL also marks the Database ('_dirty'), since a
-- SELECT may call a function that writes.  The next read then waits for
-- a replica that has replayed it (see loam.replicas).  Inside db:transaction and db:primary reads stay on the
-- primary.  These functions are fields of such a Database only; one
-- without replicas runs the core's functions with no check at all.
local crun, cload_batch = core.Conn.run, core.Conn.load_batch

local function read_conn(db)
  local c = conn_of(db, "reader")
  if (db._depth or 0) > 0 or (db._force or 0) > 0 then return c end
  return replicas.pick(db._replicas, c, db)
end

local function writes(name)
  local f = core.Conn[name]
  return function(db, ...)
    if is_database(db) then db._dirty = true end  -- else 'f' raises for it
    return f(db, ...)
  end
end

local routed = {
  reader = read_conn,
  run = function(db, ast, ...)
    if not is_database(db) then return crun(db, ast, ...) end  -- which raises for it
    if type(ast) == "table" and ast.k == "select" and ast.lock == nil then
      return crun(read_conn(db), ast, ...)
    end
    return crun(db, ast, ...)
  end,
  load_batch = function(db, ...)
    return cload_batch(read_conn(db), ...)
  end,
  query = writes("query"), exec = writes("exec"), each = writes("each"),
}

-- Puts the routed methods on a Database with replicas, or takes them off.
function route(db, on)
  for name, f in pairs(routed) do
    if on then rawset(db, name, f) else rawset(db, name, nil) end
  end
end

local Unforce = {
  __close = function(r) r.db._force = r.force end,
}

-- fn(...) with every read of this Database on the primary: for code that
-- must see what another process has just written.  Without replicas it
-- only calls fn.
function Database:primary(fn, ...)
  if not is_database(self) then unusable(self, "primary") end
  if type(fn) ~= "function" then
    errors.misuse("db:primary expects a function, got %s", errors.show(fn))
  end
  local force = self._force or 0
  local restore <close> = setmetatable({ db = self, force = force }, Unforce)
  self._force = force + 1
  return fn(...)
end

-- The state of each replica (loam.replicas.status); misuse without replicas.
function Database:replicas()
  return replicas.status(part(self, "replicas", "_replicas", "no replicas (loam.connect(url, "
    .. "{ replicas = { url, ... } }) gives it some)"), false)
end

-- }======================================================================

-- Puts back the connection that was in use before a transaction.
local Restore = {
  __close = function(r)
    -- A Database closed inside the transaction stays closed.
    local db = r.db
    db._depth = r.depth
    if db._conn ~= nil then db._c = r.prev end
  end,
}

-- The outermost call keeps its Restore on the Database ('_restore'): one
-- runs at a time, since a function inside cannot yield out of it.
function Database:transaction(fn, ...)
  local c = conn_of(self, "transaction")
  self._dirty = true  -- a transaction is taken to write (see "Replicas")
  local depth = self._depth or 0
  local restore = depth == 0 and self._restore
  if restore then
    restore.prev = self._c
  else
    restore = setmetatable({ db = self, prev = self._c, depth = depth }, Restore)
    if depth == 0 then self._restore = restore end
  end
  local _ <close> = restore
  self._c, self._depth = c, depth + 1
  return c:transaction(fn, ...)
end

-- The hooks of the running transaction are the core's, on its connection.
Database.after_commit = core.Conn.after_commit
Database.after_rollback = core.Conn.after_rollback

-- The hook stays with the Database; a closed one keeps it for the next
-- connection and returns the one it replaced.
function Database:on_query(fn)
  if not is_database(self) then unusable(self, "on_query") end
  local c, prev = self._conn, self._hook
  if c ~= nil then prev = c:on_query(fn) end
  if self._replicas ~= nil then replicas.set_hook(self._replicas, fn) end
  self._hook = fn
  return prev
end

function Database:close()
  if not is_database(self) then unusable(self, "close") end
  local c, pool, set = self._conn, self._pool, self._replicas
  -- Writes of this connection that no read has waited for yet are not
  -- forgotten with it: a reconnected Database reads them (see "Replicas").
  if set ~= nil and c ~= nil and c:writes() ~= self._seen then self._dirty = true end
  self._conn, self._c, self._pool, self._replicas = nil, nil, nil, nil
  if set ~= nil then replicas.close(set) end
  if c ~= nil then c:close() end
  if pool ~= nil then pool:close() end
  return true
end

Database.__close = Database.close

function Database:reconnect()
  if not is_database(self) then unusable(self, "reconnect") end
  if (self._depth or 0) > 0 then
    raise("misuse", "reconnect: not inside a transaction (it would end the transaction's "
      .. "connection under it)")
  end
  self:close()
  -- A failure leaves the Database closed, as it was after close.
  attach(self, open_all(self, self._url, self._opts))
  return self
end

-- The metrics of the pool (see core 'pool:stats()'): size, in use, idle,
-- waiting, acquires, timeouts, leaks, connections opened and discarded,
-- and the acquire wait (max and percentiles, in nanoseconds).
function Database:pool_stats()
  local stats = part(self, "pool_stats", "_pool", "no pool (loam.connect(url, "
    .. "{ pool = { ... } }) makes one)"):stats()
  if self._replicas ~= nil then stats.replicas = replicas.status(self._replicas, true) end
  return stats
end

function Database:__tostring()
  local c = self._conn
  return "loam.Database (" .. (c and c:backend() or "closed") .. ")"
end

-- }======================================================================


-- {======================================================================
-- Models, queries and tracking
-- =======================================================================

function Database:model(name, columns, options)
  if not is_database(self) then unusable(self, "model") end
  return model.new(self, name, columns, options)
end

function Database:table(name)
  if not is_database(self) then unusable(self, "table") end
  return query.new(self, name)
end

Database.create_tables = schema.create_tables
Database.drop_tables = schema.drop_tables

-- The default for lazy loading of the Database's models, below the
-- model's own and the query's.
function Database:lazy_loading(flag)
  if not is_database(self) then unusable(self, "lazy_loading") end
  if type(flag) ~= "boolean" then
    errors.misuse("db:lazy_loading expects true or false, got %s", errors.show(flag))
  end
  self._lazy = flag
  return self
end

-- db:track(fn [, opts]) is a scope; db:track{...} / db:track(false) the
-- Database-wide detector.
function Database:track(what, opts)
  if type(what) == "function" then
    return track.run(self, what, opts)
  end
  if what == false or (type(what) == "table" and getmetatable(what) == nil) then
    if opts ~= nil then
      raise("misuse", "db:track{...} takes one table of settings")
    end
    return track.switch(self, what)
  end
  raise("misuse", "db:track expects a function (a scope), a table of settings or false, got "
    .. errors.show(what))
end

function Database:log(settings)
  if not is_database(self) then unusable(self, "log") end
  return log.switch(self, settings)
end

-- db:explain(q [, opts]) for a query, db:explain(sql [, params [, opts]]) for SQL text.
function Database:explain(what, params, opts)
  if not is_database(self) then unusable(self, "explain") end
  if query.is_query(what) then
    if opts ~= nil then
      raise("misuse", "db:explain(query [, opts]): a query brings its own parameters")
    end
    return what:explain(params)
  end
  return explain.run(self, what, params, opts)
end

function Database:track_reset()
  return track.reset(self)
end

function Database:budget(limits, fn)
  return track.budget(self, limits, fn)
end

-- }======================================================================

return database
