-- loam.migrate.diagram: the models as an entity-relationship diagram in
-- Graphviz DOT, for `loam models diagram`: one box per model (its name,
-- table, and columns with their types, PK, FK, unique and NOT NULL), one
-- edge per belongs_to relation (from the key to the referenced columns,
-- named by the relation) and per foreign key no relation names (named by
-- its column).  The text depends only on the models, so it can be kept in
-- the repository and compared.
--
--   diagram.dot(models [, title]) -> DOT text
--     'models': name -> model (what the project loads)

local diagram = {}

local function esc(s)
  return (tostring(s):gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"):gsub('"', "&quot;"))
end

local function id(s)
  return '"' .. tostring(s):gsub('\\', '\\\\'):gsub('"', '\\"') .. '"'
end

local function column_type(col)
  local t = col.type
  if col.length then t = t .. "(" .. col.length .. ")" end
  if col.precision then t = t .. "(" .. col.precision .. "," .. (col.scale or 0) .. ")" end
  return t
end

function diagram.dot(models, title)
  local list = {}
  for name, M in pairs(models) do
    if type(M) == "table" and rawget(M, "__model") then list[#list + 1] = { name = name, M = M } end
  end
  table.sort(list, function(a, b) return a.M.table < b.M.table end)
  local out = {}
  local function w(s) out[#out + 1] = s end
  w("digraph " .. id(title or "models") .. " {")
  w("  graph [rankdir=LR, fontname=\"Helvetica\"];")
  w("  node [shape=plaintext, fontname=\"Helvetica\"];")
  w("  edge [fontname=\"Helvetica\", fontsize=10, arrowhead=none, arrowtail=crow, dir=both];")
  local edges = {}
  for _, e in ipairs(list) do
    local M = e.M
    local pk, unique = {}, {}
    for _, f in ipairs(M.primary_key) do pk[f] = true end
    local covered = {}
    local names = {}
    for rname in pairs(M.relations) do names[#names + 1] = rname end
    table.sort(names)
    for _, rname in ipairs(names) do
      local rel = M.relations[rname]
      if rel.kind == "belongs_to" then
        covered[rel.owner_keys[1]] = true
        edges[#edges + 1] = ("  %s:%s -> %s:%s [label=%s];"):format(id(M.table),
          id(rel.owner_keys[1]), id(rel.target.table), id(rel.target_keys[1]), id(rname))
      end
    end
    w(("  %s [label=<<table border=\"0\" cellborder=\"1\" cellspacing=\"0\" cellpadding=\"4\">"):format(
      id(M.table)))
    w(("    <tr><td bgcolor=\"#dde5f0\"><b>%s</b> (%s)</td></tr>"):format(esc(e.name), esc(M.table)))
    for _, col in ipairs(M.columns) do
      if col.unique then unique[col.name] = true end
      local marks = {}
      if pk[col.name] then marks[#marks + 1] = "PK" end
      if col.references then marks[#marks + 1] = "FK" end
      if unique[col.name] then marks[#marks + 1] = "UQ" end
      if col.null == false and not pk[col.name] then marks[#marks + 1] = "NOT NULL" end
      local text = esc(col.name) .. ": " .. esc(column_type(col))
      if #marks > 0 then text = text .. " <i>" .. table.concat(marks, " ") .. "</i>" end
      if pk[col.name] then text = "<u>" .. text .. "</u>" end
      w(("    <tr><td port=%s align=\"left\">%s</td></tr>"):format(id(col.name), text))
      if col.references and not covered[col.name] then
        local target = M.db and M.db._models[col.references.table]
        local port = col.references.column or (target and target.primary_key[1]) or "id"
        edges[#edges + 1] = ("  %s:%s -> %s:%s [label=%s, style=dashed];"):format(id(M.table),
          id(col.name), id(col.references.table), id(port), id(col.name))
      end
    end
    w("  </table>>];")
  end
  for _, edge in ipairs(edges) do w(edge) end
  w("}")
  return table.concat(out, "\n") .. "\n"
end

return diagram
