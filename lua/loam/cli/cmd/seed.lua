-- loam seed [FILES] [--dry-run]: the project's seed files, upserted by
-- their natural keys (loam.seed), and what changed per table.

local config = require "loam.config"
local host = require "loam.cli.host"
local seed = require "loam.seed"

-- Changes listed per table by --dry-run before the rest is counted.
local LISTED = 10

-- The seed files of the folder 'dir', in name order, shown from 'cwd'.
local function folder_files(ctx, dir, cwd)
  local names = host.dir(dir)
  if names == nil then
    ctx:fail("not_found", "no seeds folder %s (the config's 'seeds' names it)", dir)
  end
  local files = {}
  for _, n in ipairs(names) do
    if n:match("%.lua$") and n:sub(1, 1) ~= "." then files[#files + 1] = n end
  end
  table.sort(files)
  local prefix = cwd == "/" and "/" or (cwd .. "/")
  for i, n in ipairs(files) do
    local path = config.join(dir, n)
    if path:sub(1, #prefix) == prefix then path = path:sub(#prefix + 1) end
    files[i] = path
  end
  return files
end

-- A progress bar on the terminal, redrawn in place; nothing elsewhere.
local function progress_bar()
  if not host.isatty(1) then return nil, function() end end
  local shown = false
  return function(done, total, tname)
    local width = 30
    local filled = total > 0 and (done * width) // total or width
    io.stdout:write(("\r[%s%s] %d/%d %s\27[K"):format(("#"):rep(filled),
      ("."):rep(width - filled), done, total, tname))
    io.stdout:flush()
    shown = true
  end, function()
    if shown then io.stdout:write("\r\27[K") end
  end
end

return {
  summary = "upsert the seed files' rows by their natural keys",
  usage = "loam seed [options] [FILES...]",
  help = [[
Runs the seed files (FILES, else every *.lua file of the seeds folder in
name order) against the project's database, in one transaction: each row
is found by the natural key its seed set declares, inserted when missing,
updated when its values differ, and left alone otherwise, so a second run
changes nothing.  Tables run in foreign-key order; ref { col = value }
names a row of the referenced table by a unique key.  Prints, per table,
the rows inserted, updated and unchanged (and a progress bar on a
terminal).

A seed file declares its sets:
  seed "customers" {
    key = "email",
    { email = "ada@example.com", tier = "pro" },
  }
With LOAM_ENV (or --env) production, only files that say
'reference_data = true' may run; any other refuses the whole run.]],
  options = { { "--dry-run", "report what would change, apply nothing" } },
  args = { min = 0 },
  run = function(ctx)
    local p = ctx:project()
    local files = ctx.args
    if #files == 0 then
      local dir = p.config and p.config.seeds or config.join(p.root, "seeds")
      files = folder_files(ctx, dir, p.cwd)
      if #files == 0 then
        ctx:say("no seed files in %s", dir)
        return
      end
    end
    local db <close> = p:open()
    local draw, clear = progress_bar()
    local ok, report = pcall(seed.run, db, files,
                             { dry_run = ctx.opts.dry_run, env = p.env, progress = draw })
    clear()
    if not ok then error(report, 0) end
    for _, e in ipairs(report) do
      if ctx.opts.dry_run then
        ctx:say("%s: %d to insert, %d to update, %d unchanged", e.table, e.inserted, e.updated,
          e.unchanged)
        for i, c in ipairs(e.changes) do
          if i > LISTED then
            ctx:say("  ... and %d more", #e.changes - LISTED)
            break
          end
          ctx:say("  %s %s%s", c.action, c.key,
            c.columns and (" (" .. table.concat(c.columns, ", ") .. ")") or "")
        end
      else
        ctx:say("%s: %d inserted, %d updated, %d unchanged", e.table, e.inserted, e.updated,
          e.unchanged)
      end
    end
    if ctx.opts.dry_run then ctx:say("dry run: nothing was applied") end
  end,
}
