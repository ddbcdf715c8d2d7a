-- loam models diagram: the project's models as a Graphviz diagram.

local diagram = require "loam.migrate.diagram"

local function write_file(ctx, path, text)
  local f, err = io.open(path, "w")
  if f == nil then ctx:fail("io_error", "cannot write %s", err) end
  f:write(text)
  f:close()
end

return {
  summary = "draw the models as an entity-relationship diagram (DOT, SVG)",
  usage = "loam models diagram [options]",
  help = [[
Loads the models of the models folder and prints them as a Graphviz DOT
graph: a box per model with its columns (type, PK, FK, UQ, NOT NULL), an
edge per belongs_to relation, named by it, and a dashed one per foreign
key that no relation names.  With --output FILE the diagram goes to FILE:
DOT text, or an SVG drawn by Graphviz's 'dot' when FILE ends in .svg
(Debian's package graphviz).  The database is connected to declare the
models, never changed.]],
  options = {
    { "--output", "FILE", "write to FILE (FILE.svg: an SVG through dot) instead of stdout" },
  },
  run = function(ctx)
    local p = ctx:project()
    local db <close>, models = p:open()
    local dot = diagram.dot(models)
    local out = ctx.opts.output
    if out == nil then
      io.stdout:write(dot)
      return
    end
    if not out:match("%.svg$") then
      write_file(ctx, out, dot)
      ctx:say("wrote %s", out)
      return
    end
    local tmp = os.tmpname()
    write_file(ctx, tmp, dot)
    local q = function(s) return "'" .. s:gsub("'", [['\'']]) .. "'" end
    local ok = os.execute("dot -Tsvg -o " .. q(out) .. " " .. q(tmp) .. " 2>/dev/null")
    os.remove(tmp)
    if not ok then
      ctx:fail("not_found", "cannot draw %s: Graphviz's dot failed or is not installed "
        .. "(Debian: apt-get install graphviz); without .svg, --output writes the DOT text", out)
    end
    ctx:say("wrote %s", out)
  end,
}
