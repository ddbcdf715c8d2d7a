-- spec/host_threads_spec.lua: examples/host_threads.c, a C program whose
-- 16 threads each run their own Lua state with loam's models over ONE
-- pool of 4 connections: real contention (four times more threads than
-- connections), every transaction counted once in the table (none lost,
-- no connection used by two threads at once, which would lose or fail
-- updates), nothing left checked out, and no timeout or leak.
--
-- The program is the one built beside the host under test (so 'make
-- asan' runs the instrumented one); 'make tsan' runs it under
-- ThreadSanitizer (spec/support/run-tests).  On PostgreSQL it runs at its
-- full size, 2,000 transactions a thread; SQLite's writers take turns,
-- sleeping in the busy handler while they wait, so there a thread runs 100.

local helper = require "spec.helper"

local q = helper.shell_quote
local host = helper.host()
local program = host:gsub("/bin/[^/]+$", "/examples/host_threads")

-- Runs the program on 'url' and returns its output, its error output and its exit status.
local function run(url, transactions)
  local errfile = helper.tmpname(".err")
  local p = assert(io.popen(("%s %s %s 2>%s"):format(q(program), q(url),
    transactions and tostring(transactions) or "", q(errfile))))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, helper.slurp(errfile), code
end

for backend, pg in helper.each_backend() do
  if not backend.memory then
    describe("examples/host_threads on " .. backend.label, function()
      it("runs 16 Lua states' transactions over one pool of 4 and prints its metrics", function()
        local f = io.open(program, "rb")
        assert(f, program .. " is missing: 'make' builds it")
        f:close()
        local per_thread = pg and 2000 or 100
        local out, err, code = run(backend.url, not pg and per_thread or nil)
        assert.are.equal("", err)
        assert.are.equal(0, code)
        local total = 16 * per_thread
        assert.is_truthy(out:find(("16 threads x %d transactions over a pool of 4: %d rows "
          .. "updated\n"):format(per_thread, total), 1, true), out)
        assert.is_truthy(out:find("\n%d+ transactions/s\n"), out)
        assert.is_truthy(out:find("pool: size 4, open 4, in use 0, idle 4, waiting 0\n", 1, true),
          out)
        -- One checkout per transaction and two for the program's own C code.
        assert.is_truthy(out:find(("pool: %d acquires, 0 timeouts, 0 leaks, 4 opened, "
          .. "0 discarded\n"):format(total + 2), 1, true), out)
        assert.is_truthy(out:find("pool: wait p50 [%d.]+ ms, p90 [%d.]+ ms, p99 [%d.]+ ms, "
          .. "max [%d.]+ ms\n"), out)
      end)
    end)
  end
end
