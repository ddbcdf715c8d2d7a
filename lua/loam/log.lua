-- loam.log: the query log and the slow-query log of a Database, one line
-- per statement, with nothing of the values unless allowed.
--
--   db:log{ ... } / db:log(false)    switches the logs of a Database (on
--                                    every connection it opens later too)
--                                    and returns the settings it replaced
--     queries   true: a line for every statement (the default unless
--               slow_ms is given)
--     slow_ms   a statement that took at least this many milliseconds is
--               also written to the slow-query log, with its plan
--     window_s  a slow entry is written at most once per statement shape
--               (fingerprint) in this many seconds (default 60; 0: always);
--               the next one says how many were left out meanwhile
--     plan      false: slow entries without the plan (default true)
--     big       the rows from which a full scan in a plan is flagged
--               (default 1000, see loam.explain)
--     allow     { "table.column" | "column", ... }: the columns whose
--               bound values are shown; every other value is shown as its
--               type and size (loam.core.redact_params)
--     out       function(line, entry) or a file (default io.stderr): where
--               the lines go; 'entry' holds kind ("query" or "slow"), sql
--               and params (redacted), site, ms, rows, fingerprint, error,
--               plan (slow entries), and skipped (slow entries left out)
--
--   log.switch(db, settings | false)  db:log
--   log.check(settings, what) -> settings   checked, defaults filled in
--   log.from_env(value, allow) -> settings | nil
--                            LOAM_LOG ("queries", "slow", "slow=MS", comma
--                            separated) and LOAM_LOG_ALLOW (comma separated
--                            columns); loam.connect reads both
--   log.merge(a, b) -> settings   'b' over 'a', either may be nil
--
-- A line:
--   [query] 0.052 ms, 1 row, app.lua:14: SELECT ... WHERE ("id" = ?) -- $1=<integer>
-- The SQL is redacted (loam.core.redact): string literals become '…',
-- numbers …, comments go, and it is one line.  The site is the first
-- frame outside loam, as in loam.track.  A failed statement ends with
-- "failed: CODE".  A slow entry is the same line marked [slow], then the
-- plan, each line indented under it, and the flags of loam.explain.
--
-- The plan is captured by running EXPLAIN after the statement, on the same
-- connection: never after a failed statement nor in a transaction that
-- failed, and inside an open transaction within a savepoint, so that an
-- EXPLAIN that fails cannot end it.  Statements a hook runs are not
-- reported to hooks, so the EXPLAIN never logs itself.
--
-- The logs listen through db:on_query like loam.track: the hook is set
-- while a log is on and the hook that was there before still runs, so a
-- Database without a log pays nothing.

local core = require "loam.core"
local errors = require "loam.errors"
local explain = require "loam.explain"

local misuse = errors.misuse
local where = core.where
local redact, redact_params = core.redact, core.redact_params

local log = {}

local KEYS = { "allow", "big", "out", "plan", "queries", "slow_ms", "window_s" }
local VALID = {}
for _, k in ipairs(KEYS) do VALID[k] = true end

local DEFAULT_WINDOW_S = 60
local DEFAULT_SLOW_MS = 100

-- {======================================================================
-- Settings
-- =======================================================================

local function nonneg(v)
  return type(v) == "number" and v >= 0 and v == v
end

function log.check(s, what)
  what = what or "log"
  if type(s) ~= "table" or getmetatable(s) ~= nil then
    misuse("%s: settings must be a table or false, got %s", what, errors.show(s))
  end
  for k in pairs(s) do
    if not VALID[k] then
      misuse("%s: unknown setting '%s' (valid: %s)", what, tostring(k), table.concat(KEYS, ", "))
    end
  end
  local c = {}
  if s.slow_ms ~= nil and not nonneg(s.slow_ms) then
    misuse("%s: slow_ms must be a number of milliseconds (0 or more), got %s", what,
      errors.show(s.slow_ms))
  end
  c.slow_ms = s.slow_ms
  if s.queries ~= nil and type(s.queries) ~= "boolean" then
    misuse("%s: queries must be true or false, got %s", what, errors.show(s.queries))
  end
  if s.queries == nil then c.queries = s.slow_ms == nil else c.queries = s.queries end
  if s.window_s ~= nil and not nonneg(s.window_s) then
    misuse("%s: window_s must be a number of seconds (0 or more), got %s", what,
      errors.show(s.window_s))
  end
  c.window_s = s.window_s or DEFAULT_WINDOW_S
  if s.plan ~= nil and type(s.plan) ~= "boolean" then
    misuse("%s: plan must be true or false, got %s", what, errors.show(s.plan))
  end
  c.plan = s.plan ~= false
  c.big = explain.check({ big = s.big }, what)
  local allow = s.allow or {}
  if type(allow) ~= "table" then
    misuse("%s: allow must be an array of \"table.column\" or \"column\", got %s", what,
      errors.show(allow))
  end
  c.allow = {}
  for i, a in ipairs(allow) do
    if type(a) ~= "string" or not a:match("^[^.]+$") and not a:match("^[^.]+%.[^.]+$") then
      misuse("%s: allow[%d] must be \"table.column\" or \"column\", got %s", what, i,
        errors.show(a))
    end
    c.allow[i] = a
  end
  local out = s.out
  if out ~= nil and type(out) ~= "function" and not (io.type(out) == "file") then
    misuse("%s: out must be a function(line, entry) or a file, got %s", what, errors.show(out))
  end
  c.out = out
  return c
end

function log.merge(a, b)
  if a == nil then return b end
  if b == nil then return a end
  local m = {}
  for k, v in pairs(a) do m[k] = v end
  for k, v in pairs(b) do m[k] = v end
  return m
end

local function split(s)
  local parts = {}
  for part in s:gmatch("[^,]+") do
    part = part:match("^%s*(.-)%s*$")
    if part ~= "" then parts[#parts + 1] = part end
  end
  return parts
end

function log.from_env(value, allow)
  if value == nil or value == "" then return nil end
  local s = {}
  for _, part in ipairs(split(value)) do
    local ms = part:match("^slow=(.*)$")
    if part == "queries" then
      s.queries = true
    elseif part == "slow" then
      s.slow_ms = s.slow_ms or DEFAULT_SLOW_MS
    elseif ms ~= nil and tonumber(ms) ~= nil and tonumber(ms) >= 0 then
      s.slow_ms = tonumber(ms)
    else
      misuse("LOAM_LOG: unknown part '%s' (valid: queries, slow, slow=MS; comma separated)", part)
    end
  end
  if allow ~= nil and allow ~= "" then s.allow = split(allow) end
  return s
end

-- }======================================================================


-- {======================================================================
-- Writing
-- =======================================================================

local function write(st, line, entry)
  local out = st.out
  if out == nil then
    io.stderr:write(line, "\n")
  elseif type(out) == "function" then
    out(line, entry)
  else
    out:write(line, "\n")
  end
end

local function line_of(entry)
  local rows = entry.rows == 1 and "1 row" or (entry.rows .. " rows")
  local parts = { ("[%s] %.3f ms, %s, %s: %s"):format(entry.kind, entry.ms, rows, entry.site,
    entry.sql) }
  if entry.params ~= "" then parts[#parts + 1] = " -- " .. entry.params end
  if entry.error ~= nil then parts[#parts + 1] = " failed: " .. entry.error end
  if entry.skipped ~= nil and entry.skipped > 0 then
    parts[#parts + 1] = (" (%d more like it since the last entry)"):format(entry.skipped)
  end
  if entry.plan ~= nil then
    for _, l in ipairs(entry.plan) do parts[#parts + 1] = "\n  " .. l end
    for _, f in ipairs(entry.plan.flags or {}) do parts[#parts + 1] = "\n  ! " .. f.message end
  elseif entry.no_plan ~= nil then
    parts[#parts + 1] = "\n  (no plan: " .. entry.no_plan .. ")"
  end
  return table.concat(parts)
end

local PLANNED = { SELECT = true, WITH = true, INSERT = true, UPDATE = true, DELETE = true,
                  VALUES = true }

-- The plan of statement 'ev' on 'db', or nil and why not.
local function capture(db, st, ev)
  if ev.error ~= nil then return nil, "the statement failed" end
  local word = ev.sql:match("^%s*(%a+)")
  if word == nil or not PLANNED[word:upper()] then return nil, "not a query" end
  local status = db:transaction_status()
  if status == "failed" then return nil, "the transaction has failed" end
  local opts = { big = st.big }
  local ok, plan
  if status == "open" and db:backend() == "postgres" then
    ok, plan = pcall(db.transaction, db, explain.run, db, ev.sql, ev.params, opts)
  else
    ok, plan = pcall(explain.run, db, ev.sql, ev.params, opts)
  end
  if not ok then
    return nil, (type(plan) == "table" and plan.code) or "EXPLAIN failed"
  end
  return plan
end

local function on_statement(db, st, ev)
  local slow = st.slow_ms ~= nil and ev.ms >= st.slow_ms
  if st.queries or slow then
    local site = where(2)
    local entry = {
      kind = "query", sql = redact(ev.sql),
      params = ev.params and redact_params(ev.sql, ev.params, st.allow) or "",
      site = site and site:sub(1, -3) or "?", ms = ev.ms, rows = ev.rows,
      fingerprint = ev.fingerprint, error = ev.error,
    }
    if st.queries then write(st, line_of(entry), entry) end
    if slow then
      local fp, now = ev.fingerprint, os.time()
      local last = st.last[fp]
      if last ~= nil and st.window_s > 0 and now - last < st.window_s then
        st.skipped[fp] = (st.skipped[fp] or 0) + 1
      else
        st.last[fp] = now
        entry.kind, entry.skipped = "slow", st.skipped[fp] or 0
        st.skipped[fp] = nil
        if st.plan then entry.plan, entry.no_plan = capture(db, st, ev) end
        write(st, line_of(entry), entry)
      end
    end
  end
end

-- }======================================================================


-- The hook stays in the chain once set: another listener (loam.track) may
-- have chained to it meanwhile.  Switched off, it only passes events on,
-- and it leaves the chain when it is the last hook set.
function log.switch(db, settings)
  db:connection()   -- a closed Database refuses; the error names the caller's line
  local old = db._log
  if settings == false or settings == nil then
    if old ~= nil then
      db._log = nil
      old.link.st = nil
      local current = db:on_query(old.link.prev)
      if current ~= old.hook then db:on_query(current) end
    end
    return old and old.settings or nil
  end
  local st = log.check(settings)
  st.settings = settings
  st.last, st.skipped = {}, {}
  if old ~= nil then
    st.hook, st.link = old.hook, old.link
  else
    local link = {}
    st.link = link
    st.hook = function(ev)
      local s = link.st
      if s ~= nil then on_statement(db, s, ev) end
      if link.prev ~= nil then link.prev(ev) end
    end
    link.prev = db:on_query(st.hook)
  end
  st.link.st = st
  db._log = st
  return old and old.settings or nil
end

return log
