-- loam.track: query counts per scope, the N+1 detector, unused eager loads
-- and query budgets (promise 7 of the design: observable by default).
--
-- Everything here listens to a connection's statements through the core's
-- trace hook (db:on_query), which calls back after every statement with
-- its fingerprint (the hash of its normalised text), rows and time, in the
-- coroutine that ran it.  The hook is installed only while something
-- listens and removed when the last listener stops, restoring whatever
-- hook was there before, so an untracked connection pays nothing.
--
-- Scopes: counting and detection around a function
--
--   loam.track(db, fn [, opts]) -> report, fn's results
--   db:track(fn [, opts])       -> the same, on one connection
--     'db' is a connection or an array of connections: the scope sees the
--     statements those connections run while 'fn' runs (including those
--     of other coroutines that use them meanwhile).  Scopes nest: each one
--     counts everything that runs inside it, inner scopes included.
--     opts.threshold  an N+1 is one statement (one fingerprint) run more
--                     than this many times from one call stack; default 2
--                     (see DEFAULT_THRESHOLD for why)
--     opts.mode       "report" (default): findings are only in the report;
--                     "warn": they are also logged when the scope ends;
--                     "raise": an N+1 raises 'n_plus_one' when the scope
--                     ends (unused eager loads are logged, never raised:
--                     they cost time, not correctness)
--     opts.log        function(message) for "warn" (and unused eager loads
--                     under "raise"); default: a line on stderr
--   If 'fn' raises, the scope ends and the error goes on unchanged.
--   The 'n_plus_one' error object has 'fingerprint', 'count', 'site' and
--   'sql' of the largest finding, 'findings' (all of them) and 'report'
--   (absent when the connection-wide detector raises); its message has one
--   line per finding.
--
-- The report (tostring(report) prints it):
--   queries, rows, errors, ms     totals over the scope
--   threshold                     the threshold it was judged by
--   statements                    one entry per fingerprint, most frequent
--                                 first: { fingerprint, sql (normalised),
--                                 count, rows, ms, sites = { { site =
--                                 "file:line", count }, ... } }
--   by_fingerprint[fp]            the same entries by fingerprint
--   n_plus_one                    { { fingerprint, sql, count, site,
--                                 stack = { "file:line", ... } }, ... },
--                                 largest count first
--   unused                        { { model, relation, site }, ... }:
--                                 relations eager-loaded in the scope (site:
--                                 the line that ran the including query) and
--                                 never read on any of the instances loaded
--
-- Call sites.  A statement's site is the first stack frame outside loam's
-- own Lua files and C functions: the line of user code that caused it.
-- N+1 detection keys on the whole chain of such frames (the call stack
-- without loam), not on the first frame alone: a helper that finds a row
-- and is called from two places runs the same statement from the same
-- line twice without being a loop, while the same statement from the same
-- stack can only come from repetition.  Reports name the first frame;
-- 'stack' holds the whole chain, that frame first.  A function ending in
-- a tail call ('return Order:find(id)') has left the stack by then, so
-- its caller's line is the one named.
--
-- The connection-wide detector
--
--   db:track{ mode = "warn" | "raise", threshold = n, log = fn }
--   db:track(false)             turns it off
--   db:track_reset()            starts new units
--     Every statement of the connection is checked, with no scope to end.
--     The unit of detection is the coroutine that runs the statements,
--     until db:track_reset(): a server that gives each request its own
--     coroutine gets one unit per request for free, and one that serves
--     requests from a single coroutine calls db:track_reset() per request.
--     A finding is acted on once per unit, when the count first exceeds
--     the threshold: "warn" (the default) logs it, "raise" raises
--     'n_plus_one' from the statement that crossed it.  Unused eager loads
--     need an end to be known and are left to scopes.
--
-- Budgets: limits for production code
--
--   loam.budget(db, limits, fn) -> fn's results
--   db:budget(limits, fn)
--     limits.queries, limits.rows   the most statements 'fn' may run and
--                                   rows they may return (at least one)
--     limits.action                 "raise" (default): 'budget_exceeded'
--                                   naming what went over, by how much, and
--                                   the statements with their call sites;
--                                   "log": the same message to limits.log
--                                   (default stderr) and fn's results
--     Checked when 'fn' returns: a budget never interrupts work half-way.
--     The error object has 'exceeded' ({ queries = { limit =, actual = },
--     rows = ... }, only what went over) and 'report'.
--
-- The module: track.run (loam.track), track.budget (loam.budget),
-- track.install(ConnMethods) (db:track, db:track_reset, db:budget),
-- track.DEFAULT_THRESHOLD, and track.eager_loaded(instances, relname)
-- after an eager load (for loam.loader) and track.relation_read(instance,
-- relname) on every relation read (for loam.relation), which return at
-- once while no scope is open anywhere.

local core = require "loam.core"
local errors = require "loam.errors"
local instance = require "loam.instance"

local where = core.where
local raise = errors.raise
local model_of = instance.model_of

local track = {}

-- One repetition from the same stack is common and harmless: a retried
-- transaction runs its statements again, a caller asks the same thing
-- twice.  A third run from the same stack is a loop.  Tests whose fixtures
-- loop over only two parents set 'threshold = 1'.
local DEFAULT_THRESHOLD = 2

local MODES = { report = true, warn = true, raise = true }
local SWITCH_MODES = { warn = true, raise = true }
local BUDGET_ACTIONS = { raise = true, log = true }


-- {======================================================================
-- Messages
-- =======================================================================

local function stderr_log(message)
  io.stderr:write("loam: ", message, "\n")
end

-- Lines "  <count>  <sql>" and under each the call sites with their
-- counts, most frequent first: the listing every failure message shows.
local function statement_lines(out, statements)
  local width = 1
  for _, s in ipairs(statements) do
    width = math.max(width, #tostring(s.count))
  end
  local pad = string.rep(" ", width + 4)
  for _, s in ipairs(statements) do
    out[#out + 1] = string.format("  %" .. width .. "d  %s", s.count, s.sql)
    local sites = {}
    for i, at in ipairs(s.sites) do
      sites[i] = string.format("%s (%d)", at.site, at.count)
    end
    out[#out + 1] = pad .. table.concat(sites, ", ")
  end
end

local function finding_line(f, threshold)
  return string.format("N+1 query at %s: ran %d times (threshold %d), fingerprint %s: %s",
    f.site, f.count, threshold, f.fingerprint, f.sql)
end

local function unused_line(u)
  return string.format("unused eager load: %s.%s, loaded at %s and never read",
    u.model, u.relation, u.site)
end

-- The printable form of a report.
local function format_report(report)
  local out = { string.format("%d queries, %d rows", report.queries, report.rows) }
  statement_lines(out, report.statements)
  for _, f in ipairs(report.n_plus_one) do
    out[#out + 1] = finding_line(f, report.threshold)
  end
  for _, u in ipairs(report.unused) do
    out[#out + 1] = unused_line(u)
  end
  return table.concat(out, "\n")
end

local Report = { __name = "loam.TrackReport", __tostring = format_report }

-- }======================================================================


-- {======================================================================
-- Call sites
-- =======================================================================

-- The frames on the running coroutine's stack outside loam, from the
-- innermost: the first one's "file:line" and, when 'full', the array of
-- all of them.  Every frame of this module is loam's own, so the walk can
-- start here whatever called it.
local function callers(full)
  local pos, level = where(2)
  local site, stack = nil, nil
  if level ~= nil then
    site = pos:sub(1, -3)  -- "file:line" without the ": " of error positions
    if full then
      stack = { site }
      pos, level = where(level + 1)
      while level ~= nil do
        stack[#stack + 1] = pos:sub(1, -3)
        pos, level = where(level + 1)
      end
    end
  end
  return site or "?", stack
end

-- }======================================================================


-- {======================================================================
-- Scopes and the per-connection hook
-- =======================================================================

-- What a Database's hook serves, kept by the Database as 'db._track'
-- (loam.database), which also keeps the hook itself and gives it to every
-- new connection, so tracking goes on across db:reconnect().  The state
-- never refers to the Database.
--   scopes   open scopes on this Database, in opening order
--   detect   how many of them detect N+1s (they need whole stacks)
--   switch   the Database-wide detector's settings, or nil
--   prev     the hook that was set before, restored at the end
--   hook     the function given to db:on_query

-- Open scopes on every connection: the relation hooks return at once
-- while it is 0.
local active = 0

-- Eager loads recorded while scopes are open: { relname -> use } in each
-- instance's state (loam.instance) under the key 'uses', where a use is
-- { model, relation, site, read } shared by every scope open at the
-- time.  The key is new when the last scope closes, so the records of
-- scopes that were open before are never read again.
local weak_keys = { __mode = "k" }
local STATE, state_of = instance.KEY, instance.of
local uses = {}

local function new_scope(detect, threshold)
  return {
    detect = detect, threshold = threshold,
    queries = 0, rows = 0, errors = 0, ms = 0,
    statements = {},   -- entries in first-seen order
    by_fp = {},        -- fingerprint -> entry
    at = {},           -- fingerprint .. "\n" .. site -> { site, count }
    repeats = {},      -- fingerprint .. "\n" .. stack -> finding
    repeat_order = {},
    uses = {},         -- eager loads made while the scope was open
  }
end

-- Counts statement 'ev' in 'scope'.
local function record(scope, ev, fp, site, stack, stack_key)
  local rows, ms = ev.rows or 0, ev.ms or 0
  scope.queries = scope.queries + 1
  scope.rows = scope.rows + rows
  scope.ms = scope.ms + ms
  if ev.error ~= nil then
    scope.errors = scope.errors + 1
  end
  local s = scope.by_fp[fp]
  if s == nil then
    s = { fingerprint = fp, sql = ev.normalized or ev.sql, count = 0, rows = 0, ms = 0,
          sites = {} }
    scope.by_fp[fp] = s
    scope.statements[#scope.statements + 1] = s
  end
  s.count, s.rows, s.ms = s.count + 1, s.rows + rows, s.ms + ms
  local k = fp .. "\n" .. site
  local at = scope.at[k]
  if at == nil then
    at = { site = site, count = 0 }
    scope.at[k] = at
    s.sites[#s.sites + 1] = at
  end
  at.count = at.count + 1
  if scope.detect then
    k = fp .. "\n" .. stack_key
    local r = scope.repeats[k]
    if r == nil then
      r = { fingerprint = fp, sql = s.sql, count = 0, site = site, stack = stack }
      scope.repeats[k] = r
      scope.repeat_order[#scope.repeat_order + 1] = r
    end
    r.count = r.count + 1
  end
end

-- The connection-wide detector's view of statement 'ev': the finding to
-- raise, if any (logging happens here).
local function watch(sw, ev, fp, site, stack, stack_key)
  local co = coroutine.running()
  local unit = sw.units[co]
  if unit == nil then
    unit = {}
    sw.units[co] = unit
  end
  local k = fp .. "\n" .. stack_key
  local n = (unit[k] or 0) + 1
  unit[k] = n
  if n == sw.threshold + 1 then
    local f = { fingerprint = fp, sql = ev.normalized or ev.sql, count = n, site = site,
                stack = stack }
    if sw.mode == "raise" then
      return f
    end
    sw.log(finding_line(f, sw.threshold))
  end
  return nil
end

-- The error object of N+1 findings 'list' (at least one), largest first;
-- its fields name the largest.
local function raise_n_plus_one(list, threshold, report)
  local lines = {}
  for i, f in ipairs(list) do
    lines[i] = finding_line(f, threshold)
  end
  local top = list[1]
  raise("n_plus_one", table.concat(lines, "\n"), {
    fingerprint = top.fingerprint, count = top.count, site = top.site, sql = top.sql,
    findings = list, report = report,
  })
end

-- The hook of a connection with state 'st'.
local function dispatch(st, ev)
  local fp = ev.fingerprint or ev.sql
  local full = st.detect > 0 or st.switch ~= nil
  local site, stack = callers(full)
  local stack_key = full and table.concat(stack or {}, "\n") or nil
  for _, scope in ipairs(st.scopes) do
    record(scope, ev, fp, site, stack, stack_key)
  end
  local finding = st.switch and watch(st.switch, ev, fp, site, stack, stack_key)
  if st.prev ~= nil then
    st.prev(ev)
  end
  if finding then
    raise_n_plus_one({ finding }, st.switch.threshold)
  end
end

local function new_state(db)
  local st = { scopes = {}, detect = 0 }
  st.hook = function(ev) return dispatch(st, ev) end
  -- A closed Database refuses; the error names the caller's line.
  db:connection()
  st.prev = db:on_query(st.hook)
  db._track = st
  return st
end

-- Removes the hook of 'db' when nothing listens any more.  A hook the user
-- set meanwhile replaced ours; it stays.
local function release(db, st)
  if #st.scopes > 0 or st.switch ~= nil then
    return
  end
  db._track = nil
  -- The Database keeps its hook while closed, so this never refuses.
  local current = db:on_query(st.prev)
  if current ~= st.hook then
    db:on_query(current)
  end
end

local Closer = {}

-- Closes the scope of a to-be-closed value made by 'open': runs when the
-- scope's function returns or raises, or when attaching it failed half-way.
function Closer.__close(c)
  local scope = c.scope
  for _, db in ipairs(c.dbs) do
    local st = db._track
    if st ~= nil then
      for i = #st.scopes, 1, -1 do
        if st.scopes[i] == scope then
          table.remove(st.scopes, i)
          break
        end
      end
      if scope.detect then
        st.detect = st.detect - 1
      end
      release(db, st)
    end
  end
  active = active - 1
  if active == 0 then
    uses = {}
  end
end

-- Opens 'scope': the to-be-closed value that closes it.  It exists before
-- any hook is set, so a connection refusing its hook (a closed one) leaves
-- none behind on the connections attached before it.
local function open(scope)
  active = active + 1
  return setmetatable({ dbs = {}, scope = scope }, Closer)
end

-- Adds connections 'dbs' to the scope of 'closer'.
local function attach(closer, dbs)
  local scope = closer.scope
  for _, db in ipairs(dbs) do
    local st = db._track or new_state(db)
    st.scopes[#st.scopes + 1] = scope
    if scope.detect then
      st.detect = st.detect + 1
    end
    closer.dbs[#closer.dbs + 1] = db
  end
end

-- Runs 'fn' inside 'scope' on connections 'dbs'; returns its results
-- packed.  The scope closes however 'fn' ends.
local function run(dbs, scope, fn)
  local closer <close> = open(scope)
  attach(closer, dbs)
  return table.pack(fn())
end

-- Sorts 'list' by count, largest first, keeping the order of equals.
local function by_count(list)
  local pos = {}
  for i, v in ipairs(list) do pos[v] = i end
  table.sort(list, function(a, b)
    if a.count ~= b.count then return a.count > b.count end
    return pos[a] < pos[b]
  end)
  return list
end

-- The report of a closed scope.
local function report_of(scope)
  local statements = {}
  for i, s in ipairs(scope.statements) do
    by_count(s.sites)
    statements[i] = s
  end
  local found = {}
  for _, r in ipairs(scope.repeat_order) do
    if r.count > scope.threshold then
      found[#found + 1] = r
    end
  end
  -- One entry per relation and site: loads repeated from one line (pages
  -- of a loop) are unused only when none of them was read.
  local unused, seen = {}, {}
  for _, use in ipairs(scope.uses) do
    local k = use.model .. "." .. use.relation .. "\n" .. use.site
    local entry = seen[k]
    if entry == nil then
      entry = { model = use.model, relation = use.relation, site = use.site, read = false }
      seen[k] = entry
      unused[#unused + 1] = entry
    end
    entry.read = entry.read or use.read
  end
  local kept = {}
  for _, u in ipairs(unused) do
    if not u.read then
      kept[#kept + 1] = { model = u.model, relation = u.relation, site = u.site }
    end
  end
  return setmetatable({
    queries = scope.queries, rows = scope.rows, errors = scope.errors, ms = scope.ms,
    threshold = scope.threshold,
    statements = by_count(statements), by_fingerprint = scope.by_fp,
    n_plus_one = by_count(found), unused = kept,
  }, Report)
end

-- }======================================================================


-- {======================================================================
-- Arguments
-- =======================================================================

local function is_conn(v)
  local mt = getmetatable(v)
  return type(v) == "table" and type(mt) == "table" and rawget(mt, "__name") == "loam.Database"
end

-- The connections named by 'v' (one, or an array), without repeats.
local function connections(v, what)
  if is_conn(v) then
    return { v }
  end
  if type(v) ~= "table" or getmetatable(v) ~= nil or v[1] == nil then
    raise("misuse", string.format("%s expects a connection or an array of connections, got %s",
      what, errors.show(v)))
  end
  local list, seen = {}, {}
  for i, db in ipairs(v) do
    if not is_conn(db) then
      raise("misuse", string.format("%s: connection #%d is %s", what, i, errors.show(db)))
    end
    if not seen[db] then
      seen[db] = true
      list[#list + 1] = db
    end
  end
  return list
end

local function check_function(fn, what)
  if type(fn) ~= "function" then
    raise("misuse", string.format("%s expects a function to run, got %s", what,
      errors.show(fn)))
  end
end

-- Checks option table 'opts' of 'what' against 'allowed' (name -> check,
-- a function returning a problem or nil) and returns it (or {}).
local function options(opts, allowed, what)
  if opts == nil then
    return {}
  end
  if type(opts) ~= "table" or getmetatable(opts) ~= nil then
    raise("misuse", string.format("%s: options must be a table, got %s", what, errors.show(opts)))
  end
  for k, v in pairs(opts) do
    local check = allowed[k]
    if check == nil then
      local names = {}
      for name in pairs(allowed) do names[#names + 1] = name end
      table.sort(names)
      raise("misuse", string.format("%s: unknown option %s (known: %s)", what,
        type(k) == "string" and "'" .. k .. "'" or errors.show(k), table.concat(names, ", ")))
    end
    local problem = check(v)
    if problem then
      raise("misuse", string.format("%s: option '%s' %s, got %s", what, k, problem,
        errors.show(v)))
    end
  end
  return opts
end

local function one_of(set)
  local names = {}
  for name in pairs(set) do names[#names + 1] = string.format("%q", name) end
  table.sort(names)
  local problem = "must be one of " .. table.concat(names, ", ")
  return function(v) return not set[v] and problem or nil end
end

local function count_check(least)
  local problem = string.format("must be an integer of at least %d", least)
  return function(v)
    local n = type(v) == "number" and math.tointeger(v)
    return not (n and n >= least) and problem or nil
  end
end

local function is_function(v)
  return type(v) ~= "function" and "must be a function" or nil
end

local SCOPE_OPTS = { threshold = count_check(1), mode = one_of(MODES), log = is_function }
local SWITCH_OPTS = { threshold = count_check(1), mode = one_of(SWITCH_MODES), log = is_function }
local BUDGET_OPTS = { queries = count_check(0), rows = count_check(0),
                      action = one_of(BUDGET_ACTIONS), log = is_function }

-- }======================================================================


-- {======================================================================
-- The API
-- =======================================================================

-- loam.track(db, fn [, opts]) -> report, fn's results
function track.run(dbs, fn, opts)
  dbs = connections(dbs, "loam.track")
  check_function(fn, "loam.track")
  opts = options(opts, SCOPE_OPTS, "loam.track")
  local threshold = opts.threshold or DEFAULT_THRESHOLD
  local mode, log = opts.mode or "report", opts.log or stderr_log
  local scope = new_scope(true, threshold)
  local results = run(dbs, scope, fn)
  local report = report_of(scope)
  if mode ~= "report" then
    for _, u in ipairs(report.unused) do
      log(unused_line(u))
    end
    if mode == "warn" then
      for _, f in ipairs(report.n_plus_one) do
        log(finding_line(f, threshold))
      end
    elseif #report.n_plus_one > 0 then
      raise_n_plus_one(report.n_plus_one, threshold, report)
    end
  end
  return report, table.unpack(results, 1, results.n)
end

-- loam.budget(db, limits, fn) -> fn's results
function track.budget(dbs, limits, fn)
  dbs = connections(dbs, "loam.budget")
  if limits == nil then
    raise("misuse", "loam.budget expects limits ({ queries = n, rows = n }), got nil")
  end
  limits = options(limits, BUDGET_OPTS, "loam.budget")
  if limits.queries == nil and limits.rows == nil then
    raise("misuse", "loam.budget: limits need 'queries' or 'rows'")
  end
  check_function(fn, "loam.budget")
  local scope = new_scope(false, math.huge)
  local results = run(dbs, scope, fn)
  local over, exceeded = {}, {}
  for _, what in ipairs { "queries", "rows" } do
    local limit, actual = limits[what], scope[what]
    if limit ~= nil and actual > limit then
      exceeded[what] = { limit = limit, actual = actual }
      over[#over + 1] = string.format("%d %s, %d over the limit of %d", actual, what,
        actual - limit, limit)
    end
  end
  if #over > 0 then
    local report = report_of(scope)
    local out = { "query budget exceeded: " .. table.concat(over, "; ") }
    statement_lines(out, report.statements)
    local message = table.concat(out, "\n")
    if (limits.action or "raise") == "raise" then
      raise("budget_exceeded", message, { exceeded = exceeded, report = report })
    end
    (limits.log or stderr_log)(message)
  end
  return table.unpack(results, 1, results.n)
end

-- db:track{...} / db:track(false): the Database-wide detector of 'db',
-- settings 'opts', or false (off).
function track.switch(db, opts)
  local st = db._track
  if opts == false then
    if st ~= nil and st.switch ~= nil then
      st.switch = nil
      release(db, st)
    end
    return
  end
  opts = options(opts, SWITCH_OPTS, "db:track")
  st = st or new_state(db)
  st.switch = {
    mode = opts.mode or "warn", threshold = opts.threshold or DEFAULT_THRESHOLD,
    log = opts.log or stderr_log, units = setmetatable({}, weak_keys),
  }
end

-- db:track_reset(): the Database-wide detector starts new units.
function track.reset(db)
  local st = db._track
  if st ~= nil and st.switch ~= nil then
    st.switch.units = setmetatable({}, weak_keys)
  end
end

-- }======================================================================


-- {======================================================================
-- Eager loads (called by loam.loader)
-- =======================================================================

-- Relation 'relname' was just eager-loaded on 'instances'.
function track.eager_loaded(instances, relname)
  if active == 0 or instances[1] == nil then
    return
  end
  local M = model_of(instances[1])
  local st = M and M.db._track
  if st == nil or #st.scopes == 0 then
    return
  end
  local use = { model = M.table, relation = relname, site = (callers(false)), read = false }
  for _, scope in ipairs(st.scopes) do
    scope.uses[#scope.uses + 1] = use
  end
  for _, inst in ipairs(instances) do
    local s = state_of(inst)
    local rels = s[uses]
    if rels == nil then
      rels = {}
      s[uses] = rels
    end
    rels[relname] = use
  end
end

-- Relation 'relname' of 'instance' was read.
function track.relation_read(instance, relname)
  if active == 0 then
    return
  end
  local s = instance[STATE]
  local rels = s and s[uses]
  local use = rels and rels[relname]
  if use then
    use.read = true
  end
end

-- }======================================================================

track.DEFAULT_THRESHOLD = DEFAULT_THRESHOLD

return track
