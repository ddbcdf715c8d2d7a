-- loam console: a Lua REPL with the project's Database and models.

local cli = require "loam.cli"
local core = require "loam.core"
local host = require "loam.cli.host"
local project = require "loam.project"
local show = require "loam.cli.show"

local PROMPT, MORE = "loam> ", "...> "

-- The reader of lines: GNU readline on a terminal when the host has it,
-- else plain lines (with the prompt on a terminal, none on a pipe).
local function reader(tty)
  if tty and host.readline then
    return host.readline, host.add_history
  end
  return function(prompt)
    if tty then
      io.stdout:write(prompt)
      io.stdout:flush()
    end
    return io.stdin:read("l")
  end, function() end
end

-- Compiles the chunk 'text' as lua.c does: an expression first (so '1 +
-- 1' prints 2; '=expr' is the old spelling), else a statement.  Returns
-- the function, or nil and the message, and whether more lines may
-- complete it.
local function compile(text, env)
  local src = text:gsub("^%s*=", "return ", 1)
  local f = load("return " .. src, "=stdin", "t", env)
  if f then return f end
  local err
  f, err = load(src, "=stdin", "t", env)
  if f then return f end
  return nil, err, err:sub(-5) == "<eof>"
end

local function print_results(ok, ...)
  if not ok then return false end
  for i = 1, select("#", ...) do
    io.stdout:write(show.value((select(i, ...))), "\n")
  end
  return ok
end

return {
  summary = "a Lua prompt with the project's database and models",
  usage = "loam console [options]",
  help = [[
Reads Lua from the terminal, line by line, with the same globals as
'loam run' (loam, db, models, each model by its name).  An expression
prints its values ('=expr' too); a statement runs; a chunk that is not
complete yet reads more lines ("...> ").  Results print as tables: an
array of rows (db:query, Model:all()) as an aligned table, an instance as
its fields.  An error prints as one line and the prompt comes back.

On a terminal lines are edited with GNU readline (history included) when
loam was built with it.  When stdin is not a terminal (a pipe, a file) no
prompt or banner is printed, only results and errors, and the exit status
is 1 if any chunk failed.  End with Ctrl-D (end of input).]],
  args = { min = 0, max = 0 },
  run = function(ctx)
    local p = ctx:project()
    local db <close>, models = p:open()
    local env = setmetatable({}, { __index = _G })
    project.install(env, db, models)
    local tty = host.isatty(0)
    local read, remember = reader(tty)
    if tty then
      local names = {}
      for n in pairs(models) do names[#names + 1] = tostring(n) end
      table.sort(names)
      io.stdout:write(("loam %s console, environment %s, %s database; models: %s\n"):format(
        core.version, p.env, db:backend(), #names > 0 and table.concat(names, ", ") or "none"))
    end
    local failed = false
    while true do
      local line = read(PROMPT)
      if line == nil then break end
      local text = line
      local f, err, more = compile(text, env)
      while f == nil and more do
        local next_line = read(MORE)
        if next_line == nil then break end
        text = text .. "\n" .. next_line
        f, err, more = compile(text, env)
      end
      if text:match("%S") then remember(text) end
      local ok, traceback = true, nil
      if f == nil then
        if text:match("%S") then ok, err = false, err end
      else
        ok = print_results(xpcall(f, function(e)
          err, traceback = e, debug.traceback(nil, 2)
          return e
        end))
      end
      io.stdout:flush()
      if not ok then
        failed = true
        io.stderr:write(cli.one_line(err), "\n")
        if traceback and ctx.global.trace then io.stderr:write(traceback, "\n") end
        io.stderr:flush()
      end
    end
    if tty then io.stdout:write("\n") end
    return (failed and not tty) and 1 or 0
  end,
}
