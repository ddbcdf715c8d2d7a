-- loam.assertions: busted (luassert) assertions about the statements a
-- function runs, so a spec can pin a code path's query count and keep N+1
-- patterns out of it.
--
--   require "loam.assertions"           registers them with luassert
--   assert.queries(db, n, fn)           'fn' runs exactly n statements
--   assert.max_queries(db, n, fn)       at most n
--   assert.no_n_plus_one(db, fn [, opts])
--                                       no statement runs more than
--                                       opts.threshold times (default 2, as
--                                       loam.track) from one call stack
--
-- 'db' is named explicitly (a connection, or an array of connections, as
-- for loam.track): a spec may hold several connections, and counting one
-- that the code under test does not use would pass for the wrong reason.
-- Each assertion runs 'fn' once inside a tracking scope and returns the
-- scope's report; an error raised by 'fn' goes through unchanged.  On
-- failure the message lists every statement with its count and call
-- sites, and the N+1 findings.  The negations (assert.is_not.queries ...)
-- work as luassert's own do.
--
-- luassert is a test dependency only: loam itself never loads this file.

local luassert = require "luassert"
local say = require "say"
local track = require "loam.track"

-- Runs the function at 'fn_index' of the assertion's arguments in a scope
-- on the connection(s) of argument #1 and returns the report.  Misuse
-- errors name the spec's line: level 4 is the caller of the assertion
-- (this function, the assertion, luassert's dispatcher, the spec).
local function measure(arguments, name, fn_index, opts)
  local fn = arguments[fn_index]
  if type(fn) ~= "function" then
    error(string.format("assert.%s: argument #%d must be the function to run, got %s",
      name, fn_index, type(fn)), 4)
  end
  return track.run(arguments[1], fn, opts)
end

-- Replaces the arguments luassert formats the message from: the messages
-- below take them in this order, as they are (not re-quoted).
local function message_args(arguments, ...)
  local n = select("#", ...)
  for i = 1, math.max(n, arguments.n) do
    arguments[i] = nil
  end
  arguments.n = n
  arguments.nofmt = {}
  for i = 1, n do
    arguments[i] = tostring((select(i, ...)))
    arguments.nofmt[i] = true
  end
end

local function count_arg(name, n)
  if math.type(n) ~= "integer" or n < 0 then
    error(string.format("assert.%s: argument #2 must be a non-negative integer count, got %s",
      name, tostring(n)), 4)
  end
  return n
end

local function queries(state, arguments)
  local n = count_arg("queries", arguments[2])
  local report = measure(arguments, "queries", 3)
  message_args(arguments, n, report.queries, report)
  return report.queries == n, { report }
end

local function max_queries(state, arguments)
  local n = count_arg("max_queries", arguments[2])
  local report = measure(arguments, "max_queries", 3)
  message_args(arguments, n, report.queries, report)
  return report.queries <= n, { report }
end

local function no_n_plus_one(state, arguments)
  local report = measure(arguments, "no_n_plus_one", 2, arguments[3])
  message_args(arguments, report)
  return #report.n_plus_one == 0, { report }
end

say:set("assertion.loam_queries.positive", "Expected exactly %s queries, but %s ran:\n%s")
say:set("assertion.loam_queries.negative", "Expected other than %s queries, but %s ran:\n%s")
say:set("assertion.loam_max_queries.positive", "Expected at most %s queries, but %s ran:\n%s")
say:set("assertion.loam_max_queries.negative", "Expected more than %s queries, but %s ran:\n%s")
say:set("assertion.loam_no_n_plus_one.positive", "Expected no N+1 queries, but found:\n%s")
say:set("assertion.loam_no_n_plus_one.negative", "Expected N+1 queries, but found none:\n%s")

luassert:register("assertion", "queries", queries,
  "assertion.loam_queries.positive", "assertion.loam_queries.negative")
luassert:register("assertion", "max_queries", max_queries,
  "assertion.loam_max_queries.positive", "assertion.loam_max_queries.negative")
luassert:register("assertion", "no_n_plus_one", no_n_plus_one,
  "assertion.loam_no_n_plus_one.positive", "assertion.loam_no_n_plus_one.negative")

return luassert
