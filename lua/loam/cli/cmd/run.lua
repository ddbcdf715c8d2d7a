-- loam run SCRIPT [ARGS]: a script with the project's Database and models.

local project = require "loam.project"

return {
  summary = "run a Lua script with the project's database and models",
  usage = "loam run [options] SCRIPT [ARGS...]",
  help = [[
Runs SCRIPT as 'loam SCRIPT' would, with these globals set first:
  loam     require "loam"
  db       the Database of the project's URL (see 'loam help' for the
           order: --db, LOAM_DATABASE_URL, DATABASE_URL, the config)
  models   the models of the models folder, by name; each is also a
           global of its own (Customer), unless a global has that name
The script gets its arguments in '...' and in 'arg' (arg[0] is SCRIPT).
Options end at SCRIPT: what follows is the script's.  The Database is
closed when the script returns or fails; a failure is one line on stderr
and exit status 1.]],
  args = { min = 1, what = "a script to run" },
  rest = true,
  run = function(ctx)
    local script = ctx.args[1]
    local f, err = io.open(script, "r")
    if f == nil then
      ctx:fail("not_found", "cannot open script %s", err)
    end
    f:close()
    local chunk, serr = loadfile(script, "t")
    if chunk == nil then
      ctx:fail("syntax_error", "%s", serr)
    end
    local p = ctx:project()
    local db <close>, models = p:open()
    project.install(_G, db, models)
    local argt = { [-2] = "loam", [-1] = "run", [0] = script }
    for i = 2, #ctx.args do argt[i - 1] = ctx.args[i] end
    _G.arg = argt
    chunk(table.unpack(ctx.args, 2))
  end,
}
