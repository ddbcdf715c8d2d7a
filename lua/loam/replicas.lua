-- loam.replicas: the read replicas of a Database (PostgreSQL streaming
-- replicas), as glue over the core's routing ('loam.Replicas',
-- core/src/pool/replica.c), which checks them, measures their lag, chooses
-- the server of each read and reports a replica skipped or used again.
-- loam.database routes; this module checks the options, keeps one pooled
-- handle per replica (on the pool the core checks it through) and hands
-- reads the right one.
--
-- Read-your-writes.  The core counts the statements that may have written
-- on each connection ('conn:writes()': all but SELECTs, a pooled handle
-- summing its checkouts), hand-prepared ones included, and the Database
-- also marks itself after raw SQL; the next read outside a transaction
-- has the core read the primary's WAL position (one round trip, once per
-- run of writes), and from then on a replica serves reads only once it
-- has replayed up to that position: until then they go to the primary.
--
--   replicas.options(opts)        the replica options of loam.connect,
--                                 checked: nil when there are none, else
--                                 { urls, max_lag_ms, check_ms, log }
--   replicas.open(o, pool_opts, pooled, hook)
--                                 the set: the core's routing, each replica's
--                                 pool opened with 'pool_opts' (those of
--                                 core.pool_open) and checked (one that
--                                 cannot be reached is skipped and reported)
--   replicas.pick(set, primary, db)
--                                 the connection a read of 'db' uses now
--   replicas.set_hook(set, fn)    the query hook of every replica handle
--   replicas.close(set)
--   replicas.status(set, pooled)  one table per replica (and the primary's
--                                 reads), for db:replicas() and pool_stats

local core = require "loam.core"
local errors = require "loam.errors"

local replicas = {}

-- The options of loam.connect that belong here, beside those of the core.
replicas.OPTIONS = { replicas = true, max_lag_ms = true, replica_check_ms = true,
                     replica_log = true }

local MAX_MS = 86400000

local function ms_option(opts, name, default)
  local v = opts[name]
  if v == nil then return default end
  if math.type(v) ~= "integer" or v < 0 or v > MAX_MS then
    errors.misuse("loam.connect: option '%s' must be an integer from 0 to %d (milliseconds), "
      .. "got %s", name, MAX_MS, errors.show(v))
  end
  return v
end

local function stderr_log(message)
  io.stderr:write("loam: ", message, "\n")
end

function replicas.options(opts)
  if type(opts) ~= "table" then return nil end
  local urls = opts.replicas
  if urls == nil then
    for name in pairs(replicas.OPTIONS) do
      if opts[name] ~= nil then
        errors.misuse("loam.connect: option '%s' is for replicas, and 'replicas' is not given",
          name)
      end
    end
    return nil
  end
  if type(urls) ~= "table" or getmetatable(urls) ~= nil or #urls == 0 then
    errors.misuse("loam.connect: option 'replicas' must be a non-empty list of URLs, got %s",
      errors.show(urls))
  end
  local list = {}
  for k, url in pairs(urls) do
    if math.type(k) ~= "integer" or k < 1 or k > #urls then
      errors.misuse("loam.connect: option 'replicas' must be a list of URLs, it has the key %s",
        errors.show(k))
    end
    if type(url) ~= "string" then
      errors.misuse("loam.connect: replica %d: a URL is a string, got %s", k, errors.show(url))
    end
    if url:match("^sqlite:") then
      errors.misuse("loam.connect: replica %d is an SQLite URL: replicas are PostgreSQL "
        .. "servers", k)
    end
    list[k] = url
  end
  local log = opts.replica_log
  if log ~= nil and type(log) ~= "function" then
    errors.misuse("loam.connect: option 'replica_log' must be a function, got %s",
      errors.show(log))
  end
  return { urls = list, max_lag_ms = ms_option(opts, "max_lag_ms", 1000),
           check_ms = ms_option(opts, "replica_check_ms", 1000), log = log or stderr_log }
end

-- 'pool_opts' are core.pool_open's options for each replica's pool (the
-- Database's pool options and connection options); with 'pooled' each
-- replica's pool is the process's for its URL, as the primary's is, else
-- the Database's own (with the pool's defaults), which no other Database
-- shares or clashes with.  'hook' is the Database's query hook, given to
-- each replica handle.
function replicas.open(o, pool_opts, pooled, hook)
  local flat = {}
  for k, v in pairs(pool_opts) do flat[k] = v end
  flat.max_lag_ms, flat.replica_check_ms = o.max_lag_ms, o.check_ms
  local routing = core.replicas_open(o.urls, flat, o.log, not pooled)
  return { routing = routing, hook = hook, pools = {}, handles = {} }
end

-- The handle of replica 'i' on its pool, which the core's check has
-- opened already (it answers a replica only then).
local function handle(set, i)
  local h = set.handles[i]
  if h == nil then
    local pool = set.routing:pool(i)
    h = pool:handle()
    if set.hook ~= nil then h:on_query(set.hook) end
    set.pools[i], set.handles[i] = pool, h
  end
  return h
end

-- The connection for a read of 'db' (reads outside a transaction): a
-- replica's handle, or 'primary'.  The primary's position is read again
-- after anything that may have written since it was last read: raw SQL
-- ('_dirty') or a statement counted by the core.
function replicas.pick(set, primary, db)
  local w = primary:writes()
  local wrote = db._dirty or w ~= db._seen
  local target, lsn = set.routing:route(primary, db._wlsn or 0, wrote)
  if wrote then db._wlsn, db._dirty, db._seen = lsn, false, w end
  if target == 0 then return primary end
  return handle(set, target)
end

function replicas.set_hook(set, fn)
  set.hook = fn
  for _, h in pairs(set.handles) do h:on_query(fn) end
end

function replicas.close(set)
  local handles, pools = set.handles, set.pools
  set.handles, set.pools = {}, {}
  for _, h in pairs(handles) do pcall(h.close, h) end
  for _, pool in pairs(pools) do pcall(pool.close, pool) end
  set.routing:close()
end

-- One table per replica: its index, whether reads may use it, its replay
-- lag at the last check, the reads sent to it and, when it is skipped, why;
-- with 'pooled', its pool's metrics too.  'primary_reads' is the reads that
-- went to the primary instead.
function replicas.status(set, pooled)
  return set.routing:stats(pooled)
end

return replicas
