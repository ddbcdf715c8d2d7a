-- loam migrate status: what is applied, pending, changed, missing.

local core = require "loam.core"
local migrate = require "loam.cli.cmd.migrate"

local NOTES = {
  changed = "applied, but the file changed since",
  missing = "applied, but no file has this version",
  out_of_order = "older than the newest applied (up --out-of-order applies it)",
  partial = "some steps done: up resumes it",
}

return {
  summary = "list the migrations and their state on the database",
  usage = "loam migrate status",
  help = [[
One line per migration, by version: its state on the database and when
it was applied.  States: applied; pending; changed (applied, but its file
changed since: a checksum differs); missing (applied, but no file has
its version); out_of_order (pending, but older than the newest applied);
partial (a migration run step by step outside a transaction stopped
after some steps; 'up' resumes it).  Reads only.]],
  run = function(ctx)
    local migs = migrate.files(ctx)
    local db <close> = migrate.connect(ctx)
    local rows = core.migrate_status(db, migs)
    if #rows == 0 then
      ctx:say("no migrations")
      return
    end
    local width = 4
    for _, r in ipairs(rows) do width = math.max(width, #(r.name or "")) end
    ctx:say("%-14s  %-" .. width .. "s  %-12s  %s", "version", "name", "state", "applied at")
    for _, r in ipairs(rows) do
      local at = r.applied_at and r.applied_at:sub(1, 19) or ""
      if r.state == "partial" then
        at = ("%d steps done"):format(r.steps_done)
      end
      local line = ("%-14s  %-" .. width .. "s  %-12s  %s"):format(r.version, r.name or "",
        r.state, at)
      if NOTES[r.state] and r.state ~= "partial" then
        line = line .. (at ~= "" and "  " or "") .. "(" .. NOTES[r.state] .. ")"
      end
      ctx:say("%s", (line:gsub("%s+$", "")))
    end
  end,
}
