-- loam.replicas: the read replicas of a Database (PostgreSQL streaming
-- replicas), which of them a read may use now, and what the Database
-- reports about them.  loam.database routes; this module keeps the state.
--
-- A replica is usable when its last check found it in recovery (a standby,
-- not a promoted primary) and replaying no more than 'max_lag_ms' behind
-- what it has received (see 'lag'); a failed check (server down,
-- connection lost) makes it unusable until a later check passes, and a
-- connection that was never opened is opened then.  Checks are one short
-- query each, spaced 'check_ms' apart per replica, so a healthy replica
-- costs nothing on most reads.  A replica that turns unusable, or usable
-- again, is reported once through 'log' (stderr by default).
--
-- Read-your-writes.  The core counts the statements that may have written
-- on each connection ('conn:writes()': all but SELECTs, a pooled handle
-- summing its checkouts), hand-prepared ones included, and the Database
-- also marks itself after raw SQL; the next read outside a transaction
-- asks the primary for its WAL insert position (one round trip, once per
-- run of writes) and from then on a replica serves reads only once it has
-- replayed up to that position: until then they go to the primary.
--
--   replicas.options(opts)        the replica options of loam.connect,
--                                 checked: nil when there are none, else
--                                 { urls, max_lag_ms, check_ms, log }
--   replicas.open(o, open_target, hook)
--                                 the set, each replica opened and checked
--                                 (one that cannot be reached is skipped
--                                 and reported)
--   replicas.pick(set, primary, need_lsn)
--                                 the connection a read uses now
--   replicas.primary_lsn(set, c)  the primary's WAL insert position, a number
--                                 (and its WAL page and segment sizes, kept
--                                 in 'set')
--   replicas.caught_up(replay, need, block, segment)
--                                 whether a replica at 'replay' has what was
--                                 written before the primary's 'need'
--   replicas.each_conn(set)       the open connections of the set
--   replicas.set_hook(set, fn)    the query hook of every replica connection
--   replicas.close(set)
--   replicas.status(set, pooled)  one table per replica (and the primary's
--                                 reads), for db:replicas() and pool_stats

local core = require "loam.core"
local errors = require "loam.errors"

local clock = core.clock_ms

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

-- "X/Y", PostgreSQL's text of a WAL position, as one integer.
local function lsn(text)
  local hi, lo = text:match("^(%x+)/(%x+)$")
  return (tonumber(hi, 16) << 32) | tonumber(lo, 16)
end

-- Runs 'sql' on 'c' with its query hook set aside, so that the checks made
-- here are not counted as the application's statements (loam.track, the
-- query log).  Returns the first row.
local function quiet(c, sql)
  local hook = c:on_query(nil)
  local ok, rows = pcall(c.query, c, sql)
  if hook ~= nil then c:on_query(hook) end
  if not ok then error(rows, 0) end
  return rows[1]
end

-- Whether a replica that has replayed up to 'replay' has what the primary
-- had written when its insert position was 'need'.  The insert position
-- is where the next record will start: when the last record ended at a
-- page boundary, that is past the page's header (24 bytes, or 40 at the
-- start of a segment), while the replica's position is the record's end.
-- 'block' and 'segment' are the primary's WAL page and segment sizes
-- (wal_block_size, wal_segment_size), read with the position: a server
-- built or initialised with other sizes than the defaults is compared by
-- its own.
function replicas.caught_up(replay, need, block, segment)
  if replay >= need then return true end
  return (need % segment == 40 and replay == need - 40)
      or (need % block == 24 and replay == need - 24)
end
local caught_up = replicas.caught_up

-- The primary's WAL insert position, and its page and segment sizes,
-- which 'set' keeps for 'caught_up'.
function replicas.primary_lsn(set, c)
  local row = quiet(c, "SELECT pg_current_wal_insert_lsn()::text AS l, "
    .. "current_setting('wal_block_size')::bigint AS block, "
    .. "pg_size_bytes(current_setting('wal_segment_size')) AS segment")
  set.block, set.segment = row.block, row.segment
  return lsn(row.l)
end

-- What a replica answers about itself: whether it is a standby, the
-- position it has replayed to and the position it has received to.
local CHECK = [[
SELECT pg_is_in_recovery() AS standby,
       COALESCE(pg_last_wal_replay_lsn(), '0/0')::text AS replay,
       COALESCE(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), '0/0')::text AS received]]

-- The lag of 't', from what its checks saw.  Nothing received and not yet
-- replayed is no lag.  WAL waiting to be replayed is remembered with the
-- time it was first seen waiting ('wait_lsn', 'wait_since'); while the
-- replica has not replayed past it, its lag is at least the time since.
-- Once it has, the lag was at least until the check before, and the WAL
-- waiting now is remembered in its place.  So a replica that falls behind
-- is seen at its second check, and a replica that was merely replaying
-- what had just arrived is never counted as lagging: the age of its last
-- replayed transaction (pg_last_xact_replay_timestamp) would be, after
-- the primary was idle.
local function lag(t, replay, received, now, before)
  if replay >= received then
    t.wait_lsn, t.wait_since = nil, nil
    return 0
  end
  local since = t.wait_since
  if since == nil then
    t.wait_lsn, t.wait_since = received, now
    return 0
  end
  if replay < t.wait_lsn then return now - since end
  t.wait_lsn, t.wait_since = received, now
  return before - since
end

-- The first check of a replica reports only a failure.
local function report(set, t, healthy, why)
  local was = t.healthy
  if was == healthy then return end
  t.healthy = healthy
  if healthy then
    if was == nil then return end
    set.log(string.format("replica %d is used again (lag %d ms)", t.index, t.lag_ms))
  else
    set.log(string.format("replica %d skipped: %s; reads go to %s", t.index, why,
      #set.targets > 1 and "the other replicas or the primary" or "the primary"))
  end
end

-- An error as one line: libpq's messages can run over several.
local function message(err)
  local text = tostring(err)
  if type(err) == "table" and err.code then
    text = err.code .. ": " .. tostring(err.message)
  end
  return (text:gsub("%s*\n%s*", " "))
end

-- Opens the connection of 't' (or its pool's handle) when it has none;
-- false and a message when that fails.
local function ensure(set, t)
  if t.conn ~= nil then return true end
  local ok, c, pool = pcall(set.open_target, t.url)
  if not ok then
    -- A URL that cannot be read, or options its pool refuses, will never
    -- open: that is the caller's error, not a replica that is down.
    if type(c) == "table" and (c.code == "invalid_url" or c.code == "misuse") then
      error(c, 0)
    end
    return false, message(c)
  end
  if set.hook ~= nil then c:on_query(set.hook) end
  t.conn, t.pool = c, pool
  return true
end

-- Checks 't' now: opens it if needed, asks it the CHECK query, and
-- records (and reports a change of) whether it is usable.
local function check(set, t, now)
  local before = t.checked
  t.checked = now
  local ok, why = ensure(set, t)
  local row
  if ok then
    ok, row = pcall(quiet, t.conn, CHECK)
    if not ok then
      why = message(row)
      -- A connection of its own is replaced at the next check; a pool
      -- already drops a dead connection and opens another when asked.
      if t.pool == nil then
        pcall(t.conn.close, t.conn)
        t.conn = nil
      end
    end
  end
  if not ok then
    t.error, t.wait_lsn, t.wait_since = why, nil, nil
    return report(set, t, false, why)
  end
  local replay = lsn(row.replay)
  t.replay, t.error = replay, nil
  t.lag_ms = math.floor(lag(t, replay, lsn(row.received), now, before))
  if not row.standby then
    t.error = "it is not in recovery (a primary, not a replica)"
  elseif t.lag_ms > set.max_lag_ms then
    t.error = string.format("replay lag %d ms is over max_lag_ms %d", t.lag_ms, set.max_lag_ms)
  end
  report(set, t, t.error == nil, t.error)
end

-- 'open_target(url)' opens a connection (or a pool and its handle) to one
-- replica; 'hook' is the Database's query hook, given to each.
function replicas.open(o, open_target, hook)
  local set = { targets = {}, max_lag_ms = o.max_lag_ms, check_ms = o.check_ms, log = o.log,
                open_target = open_target, hook = hook, next = 0, primary_reads = 0 }
  local now = clock()
  for i, url in ipairs(o.urls) do
    set.targets[i] = { index = i, url = url, reads = 0, checked = now }
  end
  for _, t in ipairs(set.targets) do
    local ok, err = pcall(check, set, t, now)
    if not ok then
      replicas.close(set)
      error(err, 0)
    end
  end
  return set
end

-- The connection for a read: the next usable replica in turn that has
-- replayed 'need' (the primary's position after this Database's last
-- write, or nil), else 'primary'.  A replica due for a check is checked
-- first, and one behind 'need' is asked again, as its position may have
-- moved since.
function replicas.pick(set, primary, need)
  local targets, now = set.targets, clock()
  local n = #targets
  for i = 1, n do
    local t = targets[(set.next + i - 1) % n + 1]
    if now - t.checked >= set.check_ms then check(set, t, now)
    elseif t.healthy and need ~= nil and not caught_up(t.replay, need, set.block, set.segment)
    then check(set, t, now) end
    if t.healthy and (need == nil or caught_up(t.replay, need, set.block, set.segment)) then
      set.next = t.index % n
      t.reads = t.reads + 1
      return t.conn
    end
  end
  set.primary_reads = set.primary_reads + 1
  return primary
end

function replicas.each_conn(set)
  local i = 0
  return function()
    repeat
      i = i + 1
      local t = set.targets[i]
      if t == nil then return nil end
      if t.conn ~= nil then return t.conn end
    until false
  end
end

function replicas.set_hook(set, fn)
  set.hook = fn
  for c in replicas.each_conn(set) do c:on_query(fn) end
end

function replicas.close(set)
  for _, t in ipairs(set.targets) do
    local c, pool = t.conn, t.pool
    t.conn, t.pool, t.healthy = nil, nil, false
    if c ~= nil then pcall(c.close, c) end
    if pool ~= nil then pcall(pool.close, pool) end
  end
end

-- One table per replica: its index, whether reads may use it, its replay
-- lag at the last check, the reads sent to it and, when it is skipped, why;
-- with 'pooled', its pool's metrics too.  'primary_reads' is the reads that
-- went to the primary instead.
function replicas.status(set, pooled)
  local out = { primary_reads = set.primary_reads }
  for i, t in ipairs(set.targets) do
    local s = { index = i, healthy = t.healthy == true, lag_ms = t.lag_ms, reads = t.reads,
                error = t.error }
    if pooled and t.pool ~= nil then s.pool = t.pool:stats() end
    out[i] = s
  end
  return out
end

return replicas
