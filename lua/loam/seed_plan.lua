-- loam.seed_plan: what a set of seed files declares, read and checked
-- before loam.seed sends anything.  Three steps:
--
--   seed_plan.load(files) -> plan     runs each file (a path) with 'seed'
--                                     and 'ref'; shape errors name file:line
--   seed_plan.check(db, plan)         each set against its model: the
--                                     table, the key (unique), the columns,
--                                     the values (coerced), the references
--   seed_plan.order(db, plan) -> sets the sets in foreign-key order, the
--                                     nullable keys that close a cycle
--                                     marked 'deferred'
--
-- A plan holds 'files' ({ name, reference_data }) and 'sets', each
-- { table, key (fields), decl (the rows as written), file, line, where }
-- and, once checked, 'model', 'rows' ({ index, fields, values (coerced),
-- raw, refs (field -> ref) }), 'ref_columns' and 'deferred' (sets of
-- fields).  Errors are loam error objects: syntax_error (a file that does
-- not compile), seed_error (a declaration loam cannot follow),
-- validation_error (a value the model refuses), not_found (no such file).

local loam = require "loam"
local core = require "loam.core"
local errors = require "loam.errors"

local null = core.null

local seed_plan = {}

local Ref = { __name = "loam.seed.ref" }

local function fail(where, fmt, ...)
  errors.raise("seed_error", fmt:format(...), nil, where)
end

local function show(v)
  return type(v) == "string" and ("'" .. v .. "'") or errors.show(v)
end

-- {======================================================================
-- Reading the files
-- =======================================================================

local SET_OPTIONS = { key = true }

-- The environment a seed file runs in: 'seed', 'ref', 'loam' (for
-- loam.null), the standard library, and one global it may set,
-- 'reference_data'.
local function environment(file, plan)
  local name = file.name
  local function here(level)
    local info = debug.getinfo(level + 1, "Sl")
    if info and info.source == "@" .. name then return info.currentline end
    return nil
  end
  local function at(line)
    return line and ("%s:%d: "):format(name, line) or (name .. ": ")
  end
  local env = { loam = loam }
  env.ref = function(values)
    local where = at(here(2))
    if type(values) ~= "table" or getmetatable(values) ~= nil or next(values) == nil then
      fail(where, "ref expects a table of the referenced row's key, as ref { email = "
        .. "'ada@example.com' }, got %s", errors.show(values))
    end
    return setmetatable({ values = values, where = where }, Ref)
  end
  env.seed = function(tname)
    local line = here(2)
    local where = at(line)
    if type(tname) ~= "string" or tname == "" then
      fail(where, "seed expects a table name, as seed \"customers\" { ... }, got %s",
        errors.show(tname))
    end
    return function(decl)
      if type(decl) ~= "table" or getmetatable(decl) ~= nil then
        fail(where, "seed %q expects a table: { key = ..., rows... }, got %s", tname,
          errors.show(decl))
      end
      for k in pairs(decl) do
        if math.type(k) ~= "integer" and not SET_OPTIONS[k] then
          fail(where, "seed %q: unknown option %s (a seed set takes 'key' and its rows)",
            tname, show(k))
        end
      end
      local key = decl.key
      if type(key) == "string" then key = { key } end
      if type(key) ~= "table" or #key == 0 then
        fail(where, "seed %q needs key = a column (or an array of columns) that is unique "
          .. "in the table, as key = \"email\"", tname)
      end
      plan.sets[#plan.sets + 1] = { table = tname, key = key, decl = decl, file = file,
                                    line = line, where = where }
    end
  end
  return setmetatable(env, {
    __index = _G,
    __newindex = function(t, k, v)
      if k == "reference_data" then
        if type(v) ~= "boolean" then
          error(("reference_data must be true or false, got %s"):format(errors.show(v)), 2)
        end
        file.reference_data = v
        return
      end
      if rawget(_G, k) == nil then
        error(("assignment to the global %s: a seed file sets only 'reference_data' (use "
          .. "'local' for its own names)"):format(show(k)), 2)
      end
      rawset(t, k, v)
    end,
  })
end

function seed_plan.load(files)
  if type(files) ~= "table" then
    errors.misuse("seed files must be an array of paths, got %s", errors.show(files))
  end
  local plan = { files = {}, sets = {} }
  for i, name in ipairs(files) do
    if type(name) ~= "string" then
      errors.misuse("seed file #%d must be a path, got %s", i, errors.show(name))
    end
    local f, oerr = io.open(name, "r")
    if f == nil then
      errors.raise("not_found", ("cannot open seed file %s"):format(oerr), nil, "")
    end
    local text = f:read("a")
    f:close()
    local file = { name = name, reference_data = false }
    plan.files[#plan.files + 1] = file
    local chunk, err = load(text, "@" .. name, "t", environment(file, plan))
    if chunk == nil then
      errors.raise("syntax_error", err, nil, "")
    end
    local ok, rerr = pcall(chunk)
    if not ok then
      if getmetatable(rerr) == core.Error then error(rerr, 0) end
      errors.raise("seed_error", tostring(rerr), nil, "")
    end
  end
  return plan
end

-- }======================================================================


-- {======================================================================
-- Checking against the models
-- =======================================================================

local function names_of(map)
  local out = {}
  for k in pairs(map) do out[#out + 1] = k end
  table.sort(out)
  return #out > 0 and table.concat(out, ", ") or "none"
end

-- Whether the fields 'fields' of M are one of its unique keys: the
-- primary key, a unique column, a 'uniques' entry or a unique index
-- without a predicate, as a set of columns.
local function is_unique(M, fields)
  local want = {}
  for _, f in ipairs(fields) do want[M._column[f]] = true end
  local n = #fields
  local function same(cols)
    if #cols ~= n then return false end
    for _, c in ipairs(cols) do
      if not want[c] then return false end
    end
    return true
  end
  local pk = {}
  for i, f in ipairs(M.primary_key) do pk[i] = M._column[f] end
  if #pk > 0 and same(pk) then return true end
  if n == 1 and M.column_map[fields[1]].unique then return true end
  for _, u in ipairs(M.uniques) do
    if same(u.columns) then return true end
  end
  for _, ix in ipairs(M.indexes) do
    if ix.unique and ix.where == nil and same(ix.columns) then return true end
  end
  return false
end

-- The unique keys of M, for the message that refuses another.
local function unique_keys(M)
  local out = {}
  if #M.primary_key > 0 then out[#out + 1] = table.concat(M.primary_key, "+") end
  for _, f in ipairs(M._names) do
    if M.column_map[f].unique then out[#out + 1] = f end
  end
  for _, u in ipairs(M.uniques) do
    local fs = {}
    for i, c in ipairs(u.columns) do fs[i] = M._field[c] end
    out[#out + 1] = table.concat(fs, "+")
  end
  for _, ix in ipairs(M.indexes) do
    if ix.unique and ix.where == nil then
      local fs = {}
      for i, c in ipairs(ix.columns) do fs[i] = M._field[c] end
      out[#out + 1] = table.concat(fs, "+")
    end
  end
  return #out > 0 and table.concat(out, ", ") or "none"
end

local function check_key(M, fields, where, what)
  for _, f in ipairs(fields) do
    if type(f) ~= "string" or M.column_map[f] == nil then
      fail(where, "%s: unknown column %s in the key (columns: %s)", what, show(f),
        table.concat(M._names, ", "))
    end
  end
  if not is_unique(M, fields) then
    fail(where, "%s: the key (%s) is not unique in the model of %s, so rows cannot be found "
      .. "by it; declare it unique (unique = true, or the model option uniques) or use a "
      .. "unique key (%s)", what, table.concat(fields, ", "), M.table, unique_keys(M))
  end
end

-- The value the model binds for 'raw' in column 'f', or a validation
-- error placed at the seed set.
local function coerce(M, f, raw, where, label)
  local ok, v = pcall(M.coerce, M, f, raw)
  if not ok then
    if type(v) == "table" and v.code == "validation_error" then
      errors.raise("validation_error", label .. ": " .. v.message,
        { model = M.table, column = f }, where)
    end
    error(v, 0)
  end
  return v
end

-- Checks a ref{...} in column 'f' of a row of 'set'.
local function check_ref(db, set, f, r, label)
  local M = set.model
  local refs = M.column_map[f].references
  if refs == nil then
    fail(r.where, "%s: %s is not a foreign key, so it takes a value, not a ref", label, f)
  end
  local T = db._models[refs.table]
  if T == nil then
    fail(r.where, "%s: %s references table %s, which no model declares", label, f, refs.table)
  end
  local fields = {}
  for k in pairs(r.values) do
    if type(k) ~= "string" or T.column_map[k] == nil then
      fail(r.where, "%s: ref for %s: unknown column %s of %s (columns: %s)", label, f, show(k),
        T.table, table.concat(T._names, ", "))
    end
  end
  for _, name in ipairs(T._names) do
    if r.values[name] ~= nil then fields[#fields + 1] = name end
  end
  check_key(T, fields, r.where, ("%s: ref for %s"):format(label, f))
  local values = {}
  for _, name in ipairs(fields) do
    values[name] = coerce(T, name, r.values[name], r.where, label .. ": ref for " .. f)
    if values[name] == null then
      fail(r.where, "%s: ref for %s: %s is NULL, which names no row", label, f, name)
    end
  end
  return { target = T, fields = fields, values = values, where = r.where }
end

local function key_text(values, fields)
  local parts = {}
  for i, f in ipairs(fields) do parts[i] = tostring(values[f]) end
  return table.concat(parts, "\0")
end

function seed_plan.check(db, plan)
  local by_table = {}
  for _, set in ipairs(plan.sets) do
    local M = db._models[set.table]
    if M == nil then
      fail(set.where, "unknown table %s: no model declares it (tables: %s)", show(set.table),
        names_of(db._models))
    end
    if by_table[set.table] then
      fail(set.where, "%s is seeded twice (also at %s); one seed set per table", set.table,
        by_table[set.table].where:gsub(": $", ""))
    end
    by_table[set.table] = set
    set.model = M
    check_key(M, set.key, set.where, set.table)
    set.rows, set.ref_columns, set.deferred = {}, {}, {}
    local seen = {}
    for i, decl in ipairs(set.decl) do
      local label = ("%s row %d"):format(set.table, i)
      if type(decl) ~= "table" or getmetatable(decl) ~= nil then
        fail(set.where, "%s: a row is a table of column values, got %s", label,
          errors.show(decl))
      end
      for k in pairs(decl) do
        if type(k) ~= "string" or M.column_map[k] == nil then
          fail(set.where, "%s: unknown column %s of %s (columns: %s)", label, show(k), M.table,
            table.concat(M._names, ", "))
        end
      end
      local row = { index = i, fields = {}, values = {}, raw = {}, refs = {} }
      for _, f in ipairs(M._names) do
        local v = decl[f]
        if v ~= nil then
          row.fields[#row.fields + 1] = f
          row.raw[f] = v
          if getmetatable(v) == Ref then
            row.refs[f] = check_ref(db, set, f, v, label)
            set.ref_columns[f] = true
          else
            row.values[f] = coerce(M, f, v, set.where, label)
          end
        end
      end
      local shown = {}
      for _, f in ipairs(set.key) do
        local r = row.refs[f]
        if r ~= nil then
          shown[f] = "ref{" .. key_text(r.values, r.fields) .. "}"
        elseif row.values[f] == nil or row.values[f] == null then
          fail(set.where, "%s has no value for its key %s: each row states its natural key",
            label, f)
        else
          shown[f] = row.values[f]
        end
      end
      local k = key_text(shown, set.key)
      if seen[k] then
        fail(set.where, "%s has the key of row %d (%s); each row of a seed set has a key of its "
          .. "own", label, seen[k], k:gsub("%z", ", "))
      end
      seen[k] = i
      set.rows[i] = row
    end
  end
  plan.by_table = by_table
end

-- }======================================================================


-- {======================================================================
-- Foreign-key order
-- =======================================================================

-- The strongly connected components of the graph 'edges' (set -> array
-- of { to = set, ... }) over 'nodes' (Tarjan), each an array of sets.
local function components(nodes, edges)
  local index, low, on, stack, out, n = {}, {}, {}, {}, {}, 0
  local function visit(v)
    n = n + 1
    index[v], low[v] = n, n
    stack[#stack + 1], on[v] = v, true
    for _, e in ipairs(edges[v]) do
      local w = e.to
      if index[w] == nil then
        visit(w)
        low[v] = math.min(low[v], low[w])
      elseif on[w] then
        low[v] = math.min(low[v], index[w])
      end
    end
    if low[v] == index[v] then
      local comp = {}
      repeat
        local w = table.remove(stack)
        on[w] = nil
        comp[#comp + 1] = w
      until w == v
      out[#out + 1] = comp
    end
  end
  for _, v in ipairs(nodes) do
    if index[v] == nil then visit(v) end
  end
  return out
end

-- The cyclic components of the graph: more than one set, or a set that
-- points at itself.
local function cycles(nodes, edges)
  local out = {}
  for _, comp in ipairs(components(nodes, edges)) do
    local cyclic = #comp > 1
    if not cyclic then
      for _, e in ipairs(edges[comp[1]]) do
        if e.to == comp[1] then cyclic = true end
      end
    end
    if cyclic then out[#out + 1] = comp end
  end
  return out
end

function seed_plan.order(db, plan)
  local nodes, edges = plan.sets, {}
  for _, set in ipairs(nodes) do
    edges[set] = {}
    for _, col in ipairs(set.model.columns) do
      local to = col.references and plan.by_table[col.references.table]
      if to ~= nil then
        edges[set][#edges[set] + 1] = { to = to, field = col.name, nullable = col.null ~= false }
      end
    end
  end
  -- A nullable key inside a cycle is filled in the second pass: it stops
  -- being an edge of the order.
  for _, comp in ipairs(cycles(nodes, edges)) do
    local inside = {}
    for _, s in ipairs(comp) do inside[s] = true end
    for _, s in ipairs(comp) do
      local kept = {}
      for _, e in ipairs(edges[s]) do
        if inside[e.to] and e.nullable then
          s.deferred[e.field] = true
        else
          kept[#kept + 1] = e
        end
      end
      edges[s] = kept
    end
  end
  for _, s in ipairs(nodes) do
    for _, f in ipairs(s.key) do
      if s.deferred[f] then
        fail(s.where, "%s: the key column %s closes a cycle of foreign keys, so it is filled in "
          .. "a second pass and cannot find rows; seed by another unique key", s.table, f)
      end
    end
  end
  local left = cycles(nodes, edges)
  if #left > 0 then
    local comp, names, links = left[1], {}, {}
    local inside = {}
    for _, s in ipairs(comp) do inside[s] = true end
    table.sort(comp, function(a, b) return a.table < b.table end)
    for _, s in ipairs(comp) do
      names[#names + 1] = s.table
      for _, e in ipairs(edges[s]) do
        if inside[e.to] then
          links[#links + 1] = ("%s.%s -> %s"):format(s.table, e.field, e.to.table)
        end
      end
    end
    fail(comp[1].where, "the tables %s reference each other through NOT NULL foreign keys "
      .. "(%s), so no order inserts them; make one of these keys nullable and loam fills it "
      .. "in a second pass", table.concat(names, ", "), table.concat(links, ", "))
  end
  -- Kahn's order, ties in the order the sets were declared.
  local out, done = {}, {}
  while #out < #nodes do
    for _, s in ipairs(nodes) do
      if not done[s] then
        local ready = true
        for _, e in ipairs(edges[s]) do
          if e.to ~= s and not done[e.to] then ready = false; break end
        end
        if ready then
          done[s] = true
          out[#out + 1] = s
          break
        end
      end
    end
  end
  return out
end

-- }======================================================================

return seed_plan
