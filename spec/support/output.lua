-- spec/support/output.lua: the busted output handler of the loam suite.
--
--   busted -o spec/support/output.lua spec
--
-- One line per test as it finishes ("ok   name", "FAIL name", "skip name"),
-- a failure followed by its message and location, and a summary whose last
-- line is exactly "N passed, N failed" (", N skipped" added when some were
-- pending).  Errors count as failures; so do errors outside any test (a
-- spec file that does not load, a failing 'setup'), which would otherwise
-- pass unnoticed.  Scripts read only that last line.

local pretty = require "pl.pretty"

return function(options)
  local busted = require "busted"
  local handler = require("busted.outputHandlers.base")()

  local passed, failed, skipped = 0, 0, 0

  local function out(s)
    io.stdout:write(s, "\n")
    io.stdout:flush()
  end

  -- Error objects (loam's among them) print through their __tostring.
  local function messageof(message)
    if message == nil then
      return "(no error message)"
    elseif type(message) == "string" then
      return message
    end
    local mt = getmetatable(message)
    if type(mt) == "table" and mt.__tostring then
      return tostring(message)
    end
    return pretty.write(message)
  end

  local function location(trace)
    if type(trace) == "table" and trace.short_src then
      return trace.short_src .. ":" .. tostring(trace.currentline)
    end
    return nil
  end

  local function showfailure(name, f)
    out("FAIL " .. name)
    local text = messageof(f and f.message)
    out("     " .. text:gsub("\n", "\n     "))
    local at = f and (location(f.trace) or location(f.element and f.element.trace))
    if at then
      out("     at " .. at)
    end
    if options.verbose and f and type(f.trace) == "table" and f.trace.traceback then
      out("     " .. f.trace.traceback:gsub("^\n", ""):gsub("\n", "\n     "))
    end
  end

  handler.testEnd = function(element, parent, status)
    local name = handler.getFullName(element)
    if status == "success" then
      passed = passed + 1
      out("ok   " .. name)
    elseif status == "pending" then
      skipped = skipped + 1
      out("skip " .. name)
    else
      failed = failed + 1
      local list = (status == "failure") and handler.failures or handler.errors
      showfailure(name, list[#list])
    end
    return nil, true
  end

  -- Failures outside an 'it' (loading a file, 'setup', 'describe' bodies).
  handler.blockError = function(element, parent, message, debug)
    if element.descriptor ~= "it" then
      failed = failed + 1
      local name = handler.getFullName(element)
      if element.descriptor == "file" then
        name = element.name
      end
      showfailure(name ~= "" and name or tostring(element.descriptor),
                  { message = message, trace = debug, element = element })
    end
    return nil, true
  end

  handler.suiteEnd = function()
    local summary = ("%d passed, %d failed"):format(passed, failed)
    if skipped > 0 then
      summary = summary .. (", %d skipped"):format(skipped)
    end
    out("")
    out(summary)
    return nil, true
  end

  handler.suiteReset = function()
    passed, failed, skipped = 0, 0, 0
    return nil, true
  end

  busted.subscribe({ "test", "end" }, handler.testEnd, { predicate = handler.cancelOnPending })
  busted.subscribe({ "error" }, handler.blockError)
  busted.subscribe({ "failure" }, handler.blockError)
  busted.subscribe({ "suite", "reset" }, handler.suiteReset)
  busted.subscribe({ "suite", "end" }, handler.suiteEnd)

  return handler
end
