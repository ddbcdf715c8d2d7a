-- bench/report.lua: the benchmark's table, from the RESULT lines the peers
-- wrote (bench/run collects them).
--
--   lua5.4 bench/report.lua RESULTS FACTS
--
-- First the checks: every peer on every backend must have read the same
-- data in each workload (W3seq counts as W3, W4loop as W4), or the run
-- fails here, naming who disagrees.  Then, per backend, each peer's best
-- round as a ratio to the fastest hand-written C program of that workload,
-- with the milliseconds of its best and worst rounds, so that the noise
-- shows; M1 also gives each peer's largest growth of its peak RSS.  A
-- Markdown table of the ratios of both backends follows, for RESULTS.md,
-- then the widest spread of any cell, and the last line sums up the model
-- layer.  Nothing is asserted about time.

local file, facts = arg[1], arg[2] or ""
assert(file, "usage: report.lua RESULTS FACTS")

local PEERS = { "c", "loam model", "loam raw", "luadbi", "luasql" }
local BACKENDS = { "sqlite", "postgres" }
local GROUP = { W3seq = "W3", W4loop = "W4" }

local function env (name) return os.getenv(name) or "?" end
local ROWS = {
  { "W1", ("W1 read %s orders, sum a column"):format(env "BENCH_ORDERS") },
  { "W2", ("W2 %s lookups by primary key"):format(env "BENCH_LOOKUPS") },
  { "W3", ("W3 %s pages x 100 orders + customer, items"):format(env "BENCH_PAGES") },
  { "W3seq", "W3 sequential (C on PG: no pipeline)" },
  { "W4", ("W4 insert %s rows, one transaction"):format(env "BENCH_INSERTS") },
  { "W4loop", "W4 row by row, prepared" },
  { "M1", ("M1 stream %s rows with each"):format(env "BENCH_STREAM") },
  -- PostgreSQL only: C is bench/peer_c_w5.c, loam model examples/host_threads.c.
  { "W5", ("W5 16 threads x %s tx, pool of 4"):format(env "BENCH_W5_TX") },
}

-- results[backend][workload][peer] = { ms = the best round's, worst =,
-- times = { every round's }, checks = { every round's }, rss_kb = the largest }
local results = {}
for line in io.lines(file) do
  local peer, backend, workload, ms, check, rss =
    line:match("^RESULT\t([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)$")
  if not peer then error("report.lua: not a RESULT line: " .. line) end
  results[backend] = results[backend] or {}
  results[backend][workload] = results[backend][workload] or {}
  local r = results[backend][workload][peer] or { times = {}, checks = {}, rss_kb = -1 }
  results[backend][workload][peer] = r
  r.times[#r.times + 1] = tonumber(ms)
  r.checks[#r.checks + 1] = check
  r.rss_kb = math.max(r.rss_kb, tonumber(rss))
end
for _, workloads in pairs(results) do
  for _, peers in pairs(workloads) do
    for _, r in pairs(peers) do
      table.sort(r.times)
      r.ms, r.worst = r.times[1], r.times[#r.times]
    end
  end
end

-- {==================================================================
-- Checks
-- ===================================================================

local agreed, failed = {}, {}
for _, backend in ipairs(BACKENDS) do
  for workload, peers in pairs(results[backend] or {}) do
    local group = GROUP[workload] or workload
    for peer, r in pairs(peers) do
      for run, check in ipairs(r.checks) do
        local who = ("%s on %s (%s, round %d)"):format(peer, backend, workload, run)
        local first = agreed[group]
        if not first then agreed[group] = { check = check, who = who }
        elseif first.check ~= check then
          failed[#failed + 1] = ("%s: %s read %s, but %s read %s"):format(group, who, check,
                                                                       first.who, first.check)
        end
      end
    end
  end
end
for _, backend in ipairs(BACKENDS) do
  if not results[backend] then failed[#failed + 1] = "no results from " .. backend end
end
if #failed > 0 then
  io.stderr:write("\nbench: THE PEERS DISAGREE; the run is void:\n  ",
                  table.concat(failed, "\n  "), "\n")
  os.exit(1)
end

-- }==================================================================

-- The fastest hand-written C of a workload's group on a backend.
local function c_best (backend, workload)
  local group, best = GROUP[workload] or workload, nil
  for w, peers in pairs(results[backend]) do
    if (GROUP[w] or w) == group and peers.c and (not best or peers.c.ms < best) then
      best = peers.c.ms
    end
  end
  return best
end

local function ratio (backend, workload, peer)
  local r = results[backend][workload] and results[backend][workload][peer]
  local base = c_best(backend, workload)
  if not r or not base then return nil end
  return r.ms / base, r
end

local function cell (s, width) return s .. string.rep(" ", width - #s) end

local W1, WP = 44, 24
print(("\nloam benchmark: %s"):format(facts))
print("Each cell: the peer's best round / the best round of the fastest hand-written C of the"
      .. " workload on that backend (ms of the best and the worst round)")
for _, backend in ipairs(BACKENDS) do
  local head = { cell(backend, W1) }
  for _, p in ipairs(PEERS) do head[#head + 1] = cell(p, WP) end
  print("\n" .. table.concat(head))
  for _, row in ipairs(ROWS) do
    local line = { cell(row[2], W1) }
    for _, peer in ipairs(PEERS) do
      local x, r = ratio(backend, row[1], peer)
      line[#line + 1] = cell(x and ("%.2f (%.1f-%.1f)"):format(x, r.ms, r.worst) or "-", WP)
    end
    print(table.concat(line))
  end
  local line = { cell("M1 peak RSS growth, MB", W1) }
  for _, peer in ipairs(PEERS) do
    local r = results[backend].M1 and results[backend].M1[peer]
    line[#line + 1] = cell(r and ("%.1f"):format(r.rss_kb / 1024) or "-", WP)
  end
  print(table.concat(line))
end

-- {==================================================================
-- The table of both backends, as Markdown, and the summary
-- ===================================================================

local function pair (workload, peer)
  local parts = {}
  for i, backend in ipairs(BACKENDS) do
    local x = ratio(backend, workload, peer)
    parts[i] = x and ("%.2f"):format(x) or "-"
  end
  return table.concat(parts, " / ")
end

print("\n| workload (ratio to the fastest hand-written C; SQLite / PostgreSQL) |" ..
      " C | loam model | loam raw SQL | LuaDBI 0.7 | LuaSQL 2.6 |")
print("|---|---|---|---|---|---|")
for _, row in ipairs(ROWS) do
  local cells = { row[2] }
  for _, peer in ipairs(PEERS) do cells[#cells + 1] = pair(row[1], peer) end
  print("| " .. table.concat(cells, " | ") .. " |")
end
local rss = { "M1 peak RSS growth, MB" }
for _, peer in ipairs(PEERS) do
  local parts = {}
  for i, backend in ipairs(BACKENDS) do
    local r = results[backend].M1 and results[backend].M1[peer]
    parts[i] = r and ("%.1f"):format(r.rss_kb / 1024) or "-"
  end
  rss[#rss + 1] = table.concat(parts, " / ")
end
print("| " .. table.concat(rss, " | ") .. " |")

local widest
for _, backend in ipairs(BACKENDS) do
  for workload, peers in pairs(results[backend]) do
    for peer, r in pairs(peers) do
      local x = r.worst / r.ms
      if not widest or x > widest[1] then widest = { x, peer, backend, workload } end
    end
  end
end
print(("\nThe widest spread: %s on %s %s, worst round %.2fx its best"):format(
  widest[2], widest[3], widest[4], widest[1]))

local summary = {}
for _, w in ipairs { "W1", "W2", "W3", "W4", "W5" } do
  summary[#summary + 1] = w .. " " .. pair(w, "loam model")
end
local m1 = {}
for i, backend in ipairs(BACKENDS) do
  m1[i] = ("%.1f"):format(results[backend].M1["loam model"].rss_kb / 1024)
end
print(("\nbench: all peers agree; loam model / fastest C (SQLite / PostgreSQL): %s;" ..
       " M1 RSS +%s MB"):format(table.concat(summary, ", "), table.concat(m1, " / ")))

-- }==================================================================
