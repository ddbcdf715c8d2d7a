-- spec/log_spec.lua: the query log and the slow-query log (loam.log), the
-- explain helper (loam.explain), and the redaction under both
-- (loam.core.redact, redact_params), on SQLite and PostgreSQL: no bound
-- value and no literal reaches a log line unless allowed, the format of a
-- line and its call site, slow entries with their plans at most once per
-- shape per window, plans in transactions, full scans flagged, the hook
-- event's parameters and pool wait, settings that are refused, and the
-- switches of the `loam` command (--echo, LOAM_LOG, the config's 'log').

local loam = require "loam"
local core = require "loam.core"
local log = require "loam.log"
local helper = require "spec.helper"

local catch = helper.catch

-- Secrets planted in literals and values: none may appear in a line.
local SECRETS = { "s3cr3t", "hunter2", "o''brien", "o'brien", "987654321", "123456789",
                  "31415", "2718", "dollar-body", "esc-aped", "in-list-7", "comment-x" }

local function assert_clean(text)
  for _, s in ipairs(SECRETS) do
    assert.is_nil(text:find(s, 1, true), ("%q leaked into: %s"):format(s, text))
  end
end

-- The lines a log writes while 'fn' runs, with its 'settings' plus out.
local function capture(db, settings, fn)
  local lines, entries = {}, {}
  settings.out = function(line, entry)
    lines[#lines + 1] = line
    entries[#entries + 1] = entry
  end
  db:log(settings)
  local ok, err = pcall(fn)
  db:log(false)
  assert(ok, err)
  return lines, entries
end

-- A line with its duration made stable.
local function stable(line)
  return (line:gsub("%] [%d.]+ ms,", "] N ms,"))
end

describe("redaction in C", function()
  it("replaces every literal form and keeps names, placeholders and keywords", function()
    local cases = {
      { [[SELECT 'o''brien s3cr3t', x FROM t]], [[SELECT '…', x FROM t]] },
      { [[SELECT E'esc\'aped hunter2' AS "e 1"]], [[SELECT '…' AS "e 1"]] },
      { [[SELECT $tag$ dollar-body 'x' $tag$, $$s3cr3t$$]], [[SELECT '…', '…']] },
      { "SELECT -987654321, +3.1415e2, .2718, 0x1F", "SELECT -…, +…, …, …" },
      { "SELECT * FROM t WHERE a IN (1, -2, 'in-list-7') AND b = ?", "SELECT * FROM t WHERE a IN (…, -…, '…') AND b = ?" },
      { "SELECT 1 /* comment-x 'not a string */ -- hunter2\n, $1", "SELECT … , $1" },
      { [[SELECT X'DEADBEEF', B'101', N'nat s3cr3t', TRUE, NULL]], [[SELECT '…', '…', '…', TRUE, NULL]] },
      { "SELECT 'unterminated s3cr3t", "SELECT '…'" },
      { [[SELECT "it's" FROM "a""b" WHERE c = 'd']], [[SELECT "it's" FROM "a""b" WHERE c = '…']] },
      { "  SELECT\n\t1  ;  ", "SELECT … ;" },
    }
    for _, c in ipairs(cases) do
      assert.are.equal(c[2], core.redact(c[1]))
      assert_clean(core.redact(c[1]))
    end
  end)

  it("shows parameters as type and size, values only for allowed columns", function()
    local sql = [[SELECT * FROM "users" WHERE "email" = ? AND "users"."id" IN (?, ?) LIMIT ?]]
    local params = { "ada@example.com", 1, 2, 10 }
    assert.are.equal("$1=<text 15>, $2=<integer>, $3=<integer>, $4=<integer>",
      core.redact_params(sql, params))
    assert.are.equal("$1=<text 15>, $2=1, $3=2, $4=10",
      core.redact_params(sql, params, { "users.id", "limit" }))
    assert.are.equal("$1='ada@example.com', $2=<integer>, $3=<integer>, $4=<integer>",
      core.redact_params(sql, params, { "EMAIL" }))
    assert.are.equal("$1=<text 15>, $2=<integer>, $3=<integer>, $4=<integer>",
      core.redact_params(sql, params, { "orders.email" }))
    -- Rows of an INSERT, SET, ANY, a key list inside IN, the other comparisons.
    assert.are.equal("$1=<text 1>, $2='b''s', $3=<text 1>, $4=NULL",
      core.redact_params([[INSERT INTO "users" ("email", "name") VALUES (?, ?), (?, ?) RETURNING "id"]],
        { "a", "b's", "c", loam.null }, { "name" }))
    assert.are.equal("$1='{1,2}', $2='bob\\x0a'",
      core.redact_params("UPDATE users SET name = $2 WHERE id = ANY($1)", { "{1,2}", "bob\n" },
        { "users.name", "id" }))
    assert.are.equal("$1='[1]', $2=3.5, $3=TRUE, $4=<blob 2>",
      core.redact_params("SELECT 1 FROM t WHERE id IN (SELECT value FROM json_each(?)) "
        .. "AND x <> ? AND y >= ? AND z = ?", { "[1]", 3.5, true, loam.blob("\0\1") },
        { "id", "x", "y" }))
    assert.are.equal("$1=x'0001'",
      core.redact_params("SELECT 1 FROM t WHERE z = ?", { loam.blob("\0\1") }, { "z" }))
    -- A parameter in no known place is never shown, whatever is allowed.
    assert.are.equal("$1=<text 6>",
      core.redact_params("SELECT lower(?)", { "s3cr3t" }, { "lower", "t.lower" }))
  end)

  it("refuses arguments of the wrong type", function()
    assert.are.equal("misuse", catch(core.redact, 1).code)
    assert.are.equal("misuse", catch(core.redact_params, nil, {}).code)
    local e = catch(core.redact_params, "SELECT ?", { 1 }, { 1 })
    assert.are.equal("misuse", e.code)
    assert.matches("column name expected in place #1", e.message, 1, true)
    assert.are.equal("misuse", catch(core.redact_params, "SELECT ?", { 1 }, "x").code)
  end)
end)

for backend, pg in helper.each_backend() do
  describe(backend.label .. ":", function()
    local db, Item

    before_each(function()
      db = helper.connect(backend)
      helper.drop_tables(db, { "log_items" })
      Item = db:model("log_items", { loam.id(), loam.text("email"), loam.text("name"),
                                     loam.integer("n") })
      db:create_tables { Item }
    end)

    after_each(function()
      helper.finish(db, { "log_items" })
    end)

    describe("the query log", function()
      it("writes one line per statement: time, rows, call site, SQL, parameters", function()
        Item:create { email = "ada@example.com", name = "Ada", n = 1 }
        local line = helper.next_line()
        local lines, entries = capture(db, {}, function()
          Item:where { email = "ada@example.com" }:all()
        end)
        assert.are.equal(1, #lines)
        local p = pg and "$1" or "?"
        assert.are.equal(("[query] N ms, 1 row, spec/log_spec.lua:%d: SELECT \"id\", \"email\", "
          .. "\"name\", \"n\" FROM \"log_items\" WHERE (\"email\" = %s) -- $1=<text 15>")
          :format(line + 1, p), stable(lines[1]))
        local e = entries[1]
        assert.are.equal("query", e.kind)
        assert.are.equal(("spec/log_spec.lua:%d"):format(line + 1), e.site)
        assert.are.equal(1, e.rows)
        assert.are.equal("number", type(e.ms))
        assert.are.equal(16, #e.fingerprint)
      end)

      it("lets no bound value and no literal through unless allowed", function()
        local lines = capture(db, {}, function()
          Item:create { email = "s3cr3t@example.com", name = "o'brien", n = 987654321 }
          Item:where { email = "s3cr3t@example.com" }:all()
          Item:where { n = loam.op.in_ { 123456789, 987654321 } }:all()
          db:query("SELECT id FROM log_items WHERE name = 'o''brien' AND n IN (123456789, -987654321)"
            .. " /* comment-x */ AND email <> 'hunter2' -- in-list-7\n AND n > -31415")
          if pg then
            db:query([[SELECT $body$ dollar-body $body$ AS a, E'esc-aped\'s3cr3t' AS b, 2718 AS c]])
          else
            db:query([[SELECT 'dollar-body' AS a, X'2718' AS b, 31415.2718e1 AS c]])
          end
          Item:where { name = "hunter2" }:update_all { name = "s3cr3t" }
          pcall(db.query, db, "SELECT 's3cr3t' FROM nowhere_at_all")
        end)
        assert.is_true(#lines >= 7)
        for _, l in ipairs(lines) do assert_clean(l) end
        assert.matches("failed: ", lines[#lines], 1, true)
      end)

      it("shows the values of allowed columns only", function()
        local lines = capture(db, { allow = { "log_items.name", "n" } }, function()
          Item:create { email = "s3cr3t@example.com", name = "Ada", n = 7 }
        end)
        assert.matches("$1=<text 18>, $2='Ada', $3=7", lines[1], 1, true)
        assert_clean(lines[1])
      end)

      it("keeps the hook that was there and gives it back when switched off", function()
        local seen = {}
        db:on_query(function(ev) seen[#seen + 1] = ev end)
        local lines = capture(db, {}, function() Item:count() end)
        assert.are.equal(1, #lines)
        assert.are.equal(1, #seen)
        Item:count()
        assert.are.equal(2, #seen)
        -- The event of a host hook: the values bound and the pool wait (0 without a pool).
        Item:where { n = 5 }:all()
        assert.are.same({ 5 }, seen[3].params)
        assert.are.equal(0, seen[3].wait_ms)
        assert.is_nil(seen[2].params)
        db:on_query(nil)
      end)

      it("stops when switched off under a tracking scope, which goes on counting", function()
        local lines = {}
        db:log { out = function(l) lines[#lines + 1] = l end }
        local report = db:track(function()
          Item:count()
          db:log(false)
          Item:count()
        end)
        assert.are.equal(1, #lines)
        assert.are.equal(2, report.queries)
        Item:count()
        assert.are.equal(1, #lines)
      end)

      it("returns the settings it replaced", function()
        local s = { queries = true, out = function() end }
        assert.is_nil(db:log(s))
        assert.are.equal(s, db:log { slow_ms = 5, out = function() end })
        assert.are.equal(5, db:log(false).slow_ms)
        assert.is_nil(db:log(false))
      end)
    end)

    describe("the slow-query log", function()
      it("writes a slow statement with its plan once per shape per window", function()
        Item:create { email = "a@example.com", name = "A", n = 1 }
        local lines, entries = capture(db, { slow_ms = 0, window_s = 3600 }, function()
          for i = 1, 3 do Item:where { n = i }:all() end
          Item:where { name = "x" }:all()
        end)
        assert.are.equal(2, #lines)
        assert.are.equal("slow", entries[1].kind)
        assert.matches("^%[slow%] [%d.]+ ms, %d+ rows?, spec/log_spec.lua:%d+: SELECT", lines[1])
        assert.matches(pg and "\n  Seq Scan on log_items" or "\n  SCAN log_items", lines[1])
        assert.is_true(#entries[1].plan >= 1)
        assert.are.equal(0, entries[1].skipped)
      end)

      it("says how many entries of a shape the window left out", function()
        local lines = capture(db, { slow_ms = 0, window_s = 3600 }, function()
          for i = 1, 3 do Item:where { n = i }:all() end
          -- The window of that shape ends: its next entry counts the two left out.
          for fp in pairs(db._log.last) do db._log.last[fp] = os.time() - 7200 end
          Item:where { n = 9 }:all()
        end)
        assert.are.equal(2, #lines)
        assert.matches("(2 more like it since the last entry)", lines[2], 1, true)
      end)

      it("writes every slow statement with window_s = 0, and nothing below the threshold", function()
        local lines = capture(db, { slow_ms = 0, window_s = 0, plan = false }, function()
          for i = 1, 3 do Item:where { n = i }:all() end
        end)
        assert.are.equal(3, #lines)
        assert.is_nil(lines[1]:find("\n", 1, true))
        lines = capture(db, { slow_ms = 1e9 }, function() Item:all() end)
        assert.are.equal(0, #lines)
      end)

      it("captures no plan for a failed statement or one that is no query", function()
        local lines = capture(db, { slow_ms = 0, window_s = 0 }, function()
          pcall(db.query, db, "SELECT * FROM nowhere")
          db:exec("CREATE TABLE log_scratch (a integer)")
          db:exec("DROP TABLE log_scratch")
        end)
        assert.matches(" failed: undefined_table\n  (no plan: the statement failed)", lines[1], 1, true)
        assert.matches("(no plan: not a query)", lines[2], 1, true)
      end)

      it("captures the plan inside a transaction, which goes on", function()
        local lines = capture(db, { slow_ms = 0, window_s = 0 }, function()
          db:transaction(function()
            Item:create { email = "t@example.com", name = "T", n = 1 }
            Item:where { n = 1 }:all()
            Item:create { email = "u@example.com", name = "U", n = 2 }
          end)
        end)
        -- BEGIN, three statements, COMMIT: the EXPLAINs and their savepoints are not logged.
        assert.are.equal(5, #lines)
        assert.matches(pg and "Seq Scan on log_items" or "SCAN log_items", lines[3])
        assert.are.equal(2, Item:count())
      end)
    end)

    describe("explain", function()
      before_each(function()
        local rows = {}
        for i = 1, 50 do rows[i] = { email = ("e%d@example.com"):format(i), name = "n", n = i } end
        Item:insert_many(rows)
      end)

      it("prints the plan and flags a full scan of a big table", function()
        local plan = db:explain(Item:where { n = 7 }, { big = 10 })
        assert.are.equal(1, #plan.flags)
        local f = plan.flags[1]
        assert.are.equal("log_items", f.table)
        assert.are.equal(50, f.rows)
        assert.is_false(f.estimate)
        local text = tostring(plan)
        assert.matches(pg and "Seq Scan on log_items" or "^SCAN log_items", text)
        local flag = "\n! full scan of log_items (50 rows; big is 10): no index serves this condition"
        assert.are.equal(flag, text:sub(-#flag))
        -- Below the threshold (default 1000) nothing is flagged.
        assert.are.equal(0, #Item:where { n = 7 }:explain().flags)
        assert.are.equal(0, #db:explain("SELECT * FROM log_items WHERE n = ?", { 7 }).flags)
        assert.are.equal(1, #db:explain("SELECT * FROM log_items WHERE n = ?", { 7 }, { big = 50 }).flags)
      end)

      if pg then
        it("takes the size from the statistics once the table was analyzed", function()
          db:exec("ANALYZE log_items")
          local plan = db:explain(Item:where { n = 7 }, { big = 10 })
          assert.is_true(plan.flags[1].estimate)
          assert.matches("(about 50 rows; big is 10)", tostring(plan), 1, true)
        end)
      else
        it("flags nothing when an index serves the condition", function()
          db:exec("CREATE INDEX log_items_n ON log_items (n)")
          local plan = db:explain(Item:where { n = 7 }, { big = 10 })
          assert.matches("^SEARCH log_items USING INDEX log_items_n", plan[1])
          assert.are.equal(0, #plan.flags)
        end)
      end

      it("refuses what it cannot explain", function()
        local e = catch(db.explain, db, 42)
        assert.are.equal("misuse", e.code)
        assert.matches("SQL text or a query expected, got", e.message, 1, true)
        e = catch(db.explain, db, Item:where { n = 1 }, { big = 0 })
        assert.are.equal("misuse", e.code)
        assert.matches("big must be a positive integer", e.message, 1, true)
        e = catch(db.explain, db, "SELECT 1", nil, { huge = 1 })
        assert.matches("unknown option 'huge'", e.message, 1, true)
        assert.are.equal("misuse", catch(db.explain, db, Item:where { n = 1 }, nil, {}).code)
        e = catch(db.explain, db, "SELEC 1")
        assert.are.equal("syntax_error", e.code)
      end)
    end)

    describe("settings", function()
      it("are refused with the setting named", function()
        local cases = {
          { "x", "settings must be a table or false" },
          { { bogus = 1 }, "unknown setting 'bogus'" },
          { { slow_ms = -1 }, "slow_ms must be a number of milliseconds" },
          { { queries = 1 }, "queries must be true or false" },
          { { window_s = "1" }, "window_s must be a number of seconds" },
          { { plan = "yes" }, "plan must be true or false" },
          { { big = 1.5 }, "big must be a positive integer" },
          { { allow = "email" }, "allow must be an array" },
          { { allow = { "a.b.c" } }, "allow[1] must be \"table.column\" or \"column\"" },
          { { out = 1 }, "out must be a function(line, entry) or a file" },
        }
        for _, c in ipairs(cases) do
          local e = catch(db.log, db, c[1])
          assert.are.equal("misuse", e.code)
          assert.matches(c[2], e.message, 1, true)
        end
        assert.is_nil(db._log)
        db:close()
        assert.are.equal("misuse", catch(db.log, db, {}).code)
      end)
    end)
  end)
end

describe("LOAM_LOG", function()
  it("reads queries, slow and slow=MS, and the allowed columns", function()
    assert.is_nil(log.from_env(nil))
    assert.is_nil(log.from_env(""))
    assert.are.same({ queries = true }, log.from_env("queries"))
    assert.are.same({ slow_ms = 100 }, log.from_env("slow"))
    assert.are.same({ queries = true, slow_ms = 250, allow = { "users.email", "n" } },
      log.from_env(" queries, slow=250 ", "users.email, n"))
    local e = catch(log.from_env, "everything")
    assert.are.equal("misuse", e.code)
    assert.matches("LOAM_LOG: unknown part 'everything'", e.message, 1, true)
  end)
end)

describe("the loam command", function()
  local host, q = helper.host(), helper.shell_quote

  -- Runs `loam ARGS` in a fresh project with 'env' set; returns stdout, stderr, status.
  local function run(args, env, config)
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. q(dir)))
    local f = assert(io.open(dir .. "/script.lua", "w"))
    f:write('-- a script\n',
            'db = db or require("loam").connect("sqlite::memory:")\n',
            'db:query("SELECT ? AS a, \'s3cr3t\' AS b", { "hunter2" })\n',
            'print("done")\n')
    f:close()
    f = assert(io.open(dir .. "/loam.config.lua", "w"))
    f:write(config or "")
    f:close()
    local err = helper.tmpname(".err")
    local p = assert(io.popen(("cd %s && env -u LOAM_LOG -u LOAM_DATABASE_URL %s %s %s 2>%s")
      :format(q(dir), env or "", q(host), args, q(err))))
    local out = p:read("a")
    local _, _, code = p:close()
    os.execute("rm -rf " .. q(dir))
    return out, helper.slurp(err), code
  end

  it("logs a script's statements with LOAM_LOG=queries", function()
    local out, err, code = run("script.lua", "LOAM_LOG=queries")
    assert.are.equal(0, code)
    assert.are.equal("done\n", out)
    assert.matches("^%[query%] [%d.]+ ms, 1 row, script.lua:3: SELECT %? AS a, '…' AS b "
      .. "%-%- %$1=<text 7>\n$", err)
  end)

  it("refuses a LOAM_LOG it cannot read, on one line", function()
    local _, err, code = run("script.lua", "LOAM_LOG=loud")
    assert.are.equal(1, code)
    assert.matches("LOAM_LOG: unknown part 'loud'", err, 1, true)
  end)

  it("logs with --echo and with the config's log, values allowed there", function()
    local out, err, code = run("--echo run script.lua")
    assert.are.equal(0, code, err)
    assert.are.equal("done\n", out)
    assert.matches("^%[query%] [%d.]+ ms, 1 row, [^\n]*script.lua:3: SELECT %? AS a, '…' AS b "
      .. "%-%- %$1=<text 7>\n$", err)
    local _, err2, code2 = run("run script.lua", "", 'log = { queries = true }\n')
    assert.are.equal(0, code2, err2)
    assert.matches("^%[query%] [%d.]+ ms, 1 row, [^\n]*script.lua:3: SELECT", err2)
    local _, err3, code3 = run("run script.lua", "", 'log = { slow_ms = -5 }\n')
    assert.are.equal(1, code3)
    assert.matches("loam.config.lua: log: slow_ms must be a number of milliseconds", err3, 1, true)
  end)
end)
