-- spec/runner_spec.lua: the summary reader that spec/support/run-tests and
-- .ci/run add their counts with.  Test output may hold any byte; a NUL
-- byte must not make the log unreadable (plain grep calls such a file
-- binary and prints no line, which the runners took as "no summary").

local helper = require "spec.helper"

-- Runs spec/support/summary on a log holding 'text'; returns its output and exit status.
local function summary(text)
  local path = helper.tmpname(".log")
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  local p = assert(io.popen("bash spec/support/summary " .. path .. " 2>&1"))
  local out = p:read("a")
  local _, _, status = p:close()
  os.remove(path)
  return out, status
end

describe("spec/support/summary", function()
  it("prints the last summary line", function()
    assert.are.same({ "7 passed, 0 failed\n", 0 },
                    { summary("ok   a\n1 passed, 2 failed\nok   b\n7 passed, 0 failed\n") })
    assert.are.same({ "4 passed, 1 failed, 2 skipped\n", 0 },
                    { summary("4 passed, 1 failed, 2 skipped\n") })
  end)

  it("reads a log that holds NUL bytes as text", function()
    assert.are.same({ "12 passed, 3 failed\n", 0 },
                    { summary("ok   a \0 b\nFAIL c\0\n     x\0y\n12 passed, 3 failed\n") })
  end)

  it("fails, printing nothing, when there is no summary line", function()
    assert.are.same({ "", 1 }, { summary("ok   a\0\n12 passed\n") })
    assert.are.same({ "", 1 }, { summary("x 1 passed, 0 failed\n") })
  end)

  -- Its name holds a NUL byte, so the suite's own log does too: the
  -- runner must still count this run.
  it("names a test with a NUL byte (a\0b), whose line the runner still counts", function()
    assert.are.equal(3, #"a\0b")
  end)
end)
