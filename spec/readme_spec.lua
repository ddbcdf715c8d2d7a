-- spec/readme_spec.lua: the README's examples run, and print what the README
-- says they print.
--
-- The conventions, also stated in the README's "Tests" section:
--   * A ```lua block followed directly (blank lines aside) by a bare ```
--     block is an example and its exact output: what 'print' writes while
--     the block runs.
--   * The ```lua blocks of one '##' section form one program, starting
--     from the last block before the example that calls 'loam.connect',
--     so a block can go on with the 'db' of the one before it.  A program
--     runs as if its blocks were one file 'app.lua' (error positions read
--     'app.lua:LINE:').
--   * Programs run on SQLite as written and, when they connect to
--     "sqlite::memory:", again on PostgreSQL (a database of their own, the
--     URL swapped), unless a block of the program is preceded by the line
--     '<!-- sqlite-only -->': its output is SQLite's own.
--   * A program with a block preceded by '<!-- postgres-replica -->' runs
--     on PostgreSQL only, with a streaming replica: the URL
--     "postgresql://db-primary/shop" becomes a database of its own on the
--     test cluster, "postgresql://db-replica/shop" the same database on
--     the harness's replica (LOAM_TEST_PG_REPLICA).
--   * A bare ``` block whose first line starts with '$ ' is a shell
--     transcript: each command runs in the checkout (with 'loam' the host
--     under test) and must print the lines under it; the checkout's own
--     path is written '/path/to/loam'.
--   * '<!-- output of examples/NAME.lua -->' before a bare ``` block: the
--     block is what that example prints, run with no arguments.

local loam = require "loam"
local helper = require "spec.helper"

local README = "README.md"

local slurp = helper.slurp

-- Reads the README into a list of fenced blocks: { info, text, line (of
-- the opening fence), section, marks (the HTML comments just above) }.
local function parse(text)
  local blocks, section, marks, open = {}, "", {}, nil
  local n = 0
  for line in (text .. "\n"):gmatch("(.-)\n") do
    n = n + 1
    if open then
      if line == "```" then
        blocks[#blocks + 1] = open
        open = nil
      else
        open.lines[#open.lines + 1] = line
      end
    elseif line:match("^```") then
      open = { info = line:sub(4), lines = {}, line = n, section = section, marks = marks,
               index = #blocks + 1 }
      marks = {}
    elseif line:match("^## ") then
      section, marks = line, {}
    elseif line:match("^<!%-%-.*%-%->$") then
      marks[#marks + 1] = line:match("^<!%-%-%s*(.-)%s*%-%->$")
    elseif line:match("%S") then
      marks = {}
    end
  end
  assert(open == nil, "README.md: a code block opened at line " .. (open and open.line or 0)
                      .. " is never closed")
  -- 'next_adjacent': the block follows the previous one with only blank
  -- lines between them.
  local lines = {}
  for line in (text .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
  for i, b in ipairs(blocks) do
    b.text = table.concat(b.lines, "\n")
    local prev = blocks[i - 1]
    if prev ~= nil then
      local adjacent = true
      for l = prev.line + #prev.lines + 2, b.line - 1 do
        if lines[l]:match("%S") then adjacent = false end
      end
      b.after_previous = adjacent
    end
  end
  return blocks
end

local blocks = parse(slurp(README))

local function has_mark(block, mark)
  for _, m in ipairs(block.marks) do
    if m == mark then return true end
  end
  return false
end

-- The examples of 'blocks': a lua block, its output, and the program it
-- belongs to.
local function find_examples(blocks)
  local examples = {}
  for i, b in ipairs(blocks) do
    local out = blocks[i + 1]
    if b.info == "lua" and out ~= nil and out.info == "" and out.after_previous
       and not out.lines[1]:match("^%$ ") then
      local first = i
      for j = i, 1, -1 do
        local c = blocks[j]
        if c.section ~= b.section then break end
        if c.info == "lua" then
          first = j
          if c.text:find("loam.connect(", 1, true) then break end
        end
      end
      local program = {}
      for j = first, i do
        if blocks[j].info == "lua" then program[#program + 1] = blocks[j] end
      end
      examples[#examples + 1] = { block = b, output = out.text .. "\n", program = program }
    end
  end
  return examples
end

local examples = find_examples(blocks)

-- Runs 'program' (its blocks as one chunk 'app.lua', "sqlite::memory:"
-- replaced by 'url' when given, and each quoted URL that is a key of
-- 'swaps' by its value) and returns what each block printed.
local function run_program(program, url, swaps)
  local printed, current = {}, 1
  local src = {}
  for k, b in ipairs(program) do
    local text = b.text
    if url ~= nil then
      text = text:gsub('"sqlite::memory:"', function() return ("%q"):format(url) end)
    end
    for from, to in pairs(swaps or {}) do
      text = text:gsub(('%q'):format(from):gsub("%p", "%%%0"),
                       function() return ("%q"):format(to) end)
    end
    -- The marker shares the block's first line, so line numbers stay those
    -- of the blocks put end to end.
    src[#src + 1] = ("__readme_block(%d); %s"):format(k, text)
    printed[k] = {}
  end
  local env = setmetatable({}, { __index = _G })
  env.__readme_block = function(k) current = k end
  env.print = function(...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    local out = printed[current]
    out[#out + 1] = table.concat(parts, "\t", 1, parts.n) .. "\n"
  end
  local chunk = assert(load(table.concat(src, "\n"), "@app.lua", "t", env))
  local ok, err = pcall(chunk)
  collectgarbage()
  collectgarbage()
  if not ok then
    error(("README.md:%d: the program raised: %s"):format(program[#program].line,
                                                          tostring(err)), 0)
  end
  for k = 1, #program do printed[k] = table.concat(printed[k]) end
  return printed
end

-- A fresh PostgreSQL database for one program; 'drop()' removes it.
local pg = helper.postgres()
local scratch = 0
local function pg_database()
  scratch = scratch + 1
  local name = ("loam_readme_%d"):format(scratch)
  local admin = helper.connect(pg)
  admin:exec(("DROP DATABASE IF EXISTS %s WITH (FORCE)"):format(name))
  admin:exec(("CREATE DATABASE %s"):format(name))
  local url = pg.url:gsub("^(postgres[%w]*://[^/]*/)[^?]*", "%1" .. name)
  return url, function()
    admin:exec(("DROP DATABASE %s WITH (FORCE)"):format(name))
    admin:close()
  end
end

-- The same database on the test cluster's replica, once the replica has
-- replayed its creation.
local function replica_database(url)
  local replica = helper.harness_env("LOAM_TEST_PG_REPLICA", "a replica")
  local name = url:match("^postgres[%w]*://[^/]*/([^?]*)")
  local rurl = replica:gsub("^(postgres[%w]*://[^/]*/)[^?]*", "%1" .. name)
  for _ = 1, 1200 do
    local ok, db = pcall(loam.connect, rurl)
    if ok then
      db:close()
      return rurl
    end
    os.execute("sleep 0.05")
  end
  error("the replica never had the database " .. name)
end

describe("the README conventions", function()
  it("make one program of a section's blocks, from the last that connects", function()
    local text = table.concat({
      "## One", "", "```lua", 'local db = "not this one"', "```", "",
      "```lua", "local loam = require 'loam'", 'local db <close> = loam.connect("sqlite::memory:")',
      "```", "", "Some words.", "", "```lua", "print(db:backend())", "error('here')", "```", "",
      "```", "sqlite", "```", "", "## Two", "", "<!-- sqlite-only -->", "```lua",
      "print(1)", "```", "```", "1", "```",
    }, "\n")
    local ex = find_examples(parse(text))
    assert.are.equal(2, #ex)
    assert.are.equal(2, #ex[1].program)
    assert.are.equal("sqlite\n", ex[1].output)
    assert.are.equal("## Two", ex[2].block.section)
    assert.are.same({ "sqlite-only" }, ex[2].block.marks)
    -- Error positions count the lines of the program's blocks end to end.
    local ok, err = pcall(run_program, ex[1].program)
    assert.is_false(ok)
    assert.matches("app.lua:4: here", err, 1, true)
    ex[1].program[2].lines[2] = nil
    ex[1].program[2].text = "print(db:backend())"
    assert.are.same({ "", "sqlite\n" }, run_program(ex[1].program))
  end)
end)

describe("README.md", function()
  it("has examples to check", function()
    assert.is_true(#examples >= 4, "found only " .. #examples .. " examples")
  end)

  for _, ex in ipairs(examples) do
    local b = ex.block
    local label = ("%s, the block at line %d"):format(b.section:sub(4), b.line)

    local sqlite_only, in_memory, replica = false, false, false
    for _, p in ipairs(ex.program) do
      if has_mark(p, "sqlite-only") then sqlite_only = true end
      if has_mark(p, "postgres-replica") then replica = true end
      if p.text:find('"sqlite::memory:"', 1, true) then in_memory = true end
    end

    if replica then
      it(label .. " prints what follows it, on PostgreSQL with a replica", function()
        assert(pg ~= nil, "the example needs PostgreSQL and its replica")
        local url, drop = pg_database()
        local ok, printed = pcall(function()
          return run_program(ex.program, nil, { ["postgresql://db-primary/shop"] = url,
            ["postgresql://db-replica/shop"] = replica_database(url) })
        end)
        drop()
        assert(ok, printed)
        assert.are.equal(ex.output, printed[#ex.program])
      end)
    else
      it(label .. " prints what follows it, on SQLite", function()
        local printed = run_program(ex.program)
        assert.are.equal(ex.output, printed[#ex.program])
      end)
    end

    if in_memory and not sqlite_only and not replica and pg ~= nil then
      it(label .. " prints the same on PostgreSQL", function()
        local url, drop = pg_database()
        local ok, printed = pcall(run_program, ex.program, url)
        drop()
        assert(ok, printed)
        assert.are.equal(ex.output, printed[#ex.program])
      end)
    end
  end

  local root = assert(io.popen("pwd -P")):read("l")
  local host = os.getenv("LOAM_TEST_HOST")
  if host == nil or host == "" then host = root .. "/build/bin/loam" end

  -- Shell transcripts.
  for _, b in ipairs(blocks) do
    if b.info == "" and b.lines[1] ~= nil and b.lines[1]:match("^%$ ") then
      it(("%s, the transcript at line %d"):format(b.section:sub(4), b.line), function()
        local bin = os.tmpname()
        os.remove(bin)
        assert(os.execute(("mkdir %s && ln -s %s %s/loam"):format(bin, host, bin)))
        local i = 1
        while i <= #b.lines do
          local cmd = assert(b.lines[i]:match("^%$ (.*)$"), "a transcript line without '$ '")
          local want = {}
          i = i + 1
          while i <= #b.lines and not b.lines[i]:match("^%$ ") do
            want[#want + 1] = b.lines[i] .. "\n"
            i = i + 1
          end
          local p = assert(io.popen(("cd '%s' && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "
                                     .. "PATH='%s':\"$PATH\" bash -c '%s' 2>&1")
                                    :format(root, bin, cmd:gsub("'", [['\'']]))))
          local got = p:read("a"):gsub(root:gsub("%p", "%%%0"), "/path/to/loam")
          p:close()
          assert.are.equal(table.concat(want), got)
        end
        os.remove(bin .. "/loam")
        os.remove(bin)
      end)
    end
  end

  -- The output of the example scripts.
  for _, b in ipairs(blocks) do
    for _, m in ipairs(b.marks) do
      local script = m:match("^output of (examples/[%w_]+%.lua)$")
      if m == "output of examples/shop/demo.sh" then
        it(("%s, the output of make demo at line %d"):format(b.section:sub(4), b.line), function()
          assert.are.equal("", b.info, "the block after the mark must be a bare ``` block")
          -- On a new database, as on a fresh clone; what varies from run
          -- to run (times, the moment a migration was applied) is masked
          -- on both sides.
          local path = helper.tmpname(".db")
          local p = assert(io.popen(("bash examples/shop/demo.sh '%s' 'sqlite:%s' "
            .. "'the SQLite file build/shop.db' 2>&1"):format(host, path)))
          local got = p:read("a")
          local ok = p:close()
          assert.is_true(ok, got)
          local function mask(text)
            return (text:gsub(" +%d+%.%d+ ms", " N ms"):gsub("%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d", "TIME"))
          end
          assert.are.equal(mask(b.text .. "\n"), mask(got))
        end)
      end
      if script then
        it(("%s, the output of %s at line %d"):format(b.section:sub(4), script, b.line), function()
          assert.are.equal("", b.info, "the block after the mark must be a bare ``` block")
          -- examples/demo.lua writes build/demo.db, which an instrumented
          -- build's test run may not have made.
          assert(os.execute("mkdir -p build"))
          local p = assert(io.popen(("'%s' %s 2>&1"):format(host, script)))
          local got = p:read("a")
          local ok = p:close()
          assert.is_true(ok, got)
          assert.are.equal(b.text .. "\n", got)
        end)
      end
    end
  end
end)
