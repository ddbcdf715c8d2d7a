-- loam.seed: seed files, read as declarations.  A seed file declares the
-- rows a table must hold, by a natural key, and loam makes the table hold
-- them: rows that are missing are inserted, rows whose values differ are
-- updated, the rest are left alone, so a seed runs any number of times.
--
--   -- seeds/customers.lua
--   seed "customers" {
--     key = "email",                        -- unique in the model
--     { email = "ada@example.com", tier = "pro" },
--     { email = "bob@example.com" },
--   }
--   -- seeds/orders.lua
--   seed "orders" {
--     key = "number",
--     { number = "A-1", customer_id = ref { email = "ada@example.com" }, total_cents = 1250 },
--   }
--
-- A file runs as Lua with 'seed' and 'ref' (and the standard library, so
-- rows can be made in loops); 'reference_data = true' is the one global it
-- may set, and lets it run with LOAM_ENV=production.  ref{ col = value }
-- names a row of the table the foreign key points at by a unique key of
-- that table.  Every file is read and checked before anything is sent.
--
--   seed.load(files) -> plan        the seed sets of the files (paths),
--                                   read and shape-checked
--   seed.run(db, files, opts) -> report
--       opts: dry_run (report, apply nothing), env (the environment name:
--       "production" refuses files that are not reference data), progress
--       (function(done, total, table) called as rows are written)
--       report: one entry per table in the order run: { table, inserted,
--       updated, unchanged, changes = { { action, key, columns }, ... } }
--
-- Tables run in foreign-key order, taken from the models declared on the
-- Database.  A cycle through a nullable foreign key is broken there: its
-- values are written in a second pass, once every table of the run holds
-- its rows.  A cycle through NOT NULL keys alone is refused, naming its
-- tables.  The whole run is one transaction; constraints stay on.
--
-- Writes are bulk: per table, one SELECT of the existing rows by their
-- keys (one parameter per key column, whatever the number of rows), one
-- SELECT per referenced table for the references, and multi-row
-- INSERT ... ON CONFLICT (key) DO UPDATE statements of CHUNK rows for the
-- rows that are new or changed.  Unchanged rows are not written.

local core = require "loam.core"
local errors = require "loam.errors"
local model = require "loam.model"
local seed_plan = require "loam.seed_plan"

local null = core.null
local mtype = math.type

local seed = {}

-- Rows per INSERT statement handed to the core, which splits further
-- under the backend's parameter limit; the progress moves per chunk.
local CHUNK = 500

-- A reference that the dry run cannot resolve: its row is only seeded in
-- this run, so it has no key yet.  It differs from every stored value.
local PENDING = setmetatable({}, { __name = "loam.seed.pending" })

seed.load = seed_plan.load

local function fail(code, where, fmt, ...)
  errors.raise(code, fmt:format(...), nil, where)
end


-- {======================================================================
-- Keys and values
-- =======================================================================

-- A Lua table key for a value of a natural key: integral floats as the
-- integer, so 1.0 and 1 meet.
local function key_part(v)
  if mtype(v) == "float" and v == math.floor(v) and v >= -2^63 and v < 2^63 then
    v = math.tointeger(v)
  end
  return type(v):sub(1, 1) .. tostring(v)
end

local function key_of(values, fields)
  if #fields == 1 then return key_part(values[fields[1]]) end
  local parts = {}
  for i, f in ipairs(fields) do parts[i] = key_part(values[f]) end
  return table.concat(parts, "\0")
end

-- "email = 'ada@example.com'" for messages and the dry run's report; a
-- key column given by a reference ('refs', field -> ref) shows the ref,
-- "order_id = ref { number = 'A-1' }", which a new row has no id for yet.
local function show_key(values, fields, refs)
  local parts = {}
  for i, f in ipairs(fields) do
    local v, r = values[f], refs and refs[f]
    if r ~= nil then
      parts[i] = f .. " = ref { " .. show_key(r.values, r.fields) .. " }"
    else
      parts[i] = f .. " = " .. (type(v) == "string" and ("'" .. v .. "'") or tostring(v))
    end
  end
  return table.concat(parts, ", ")
end

-- The Lua value of JSON text that is valid (the model checked the seed's,
-- the database stored the other), to compare two texts by meaning:
-- PostgreSQL's jsonb gives back its own spacing, key order and escapes.
-- Numbers become Lua numbers, objects tables with a marker, null NULL.
local OBJECT = {}
local function json_value(text)
  local pos = 1
  local value
  local function ws() pos = text:find("[^ \t\n\r]", pos) or #text + 1 end
  local function str()
    local out = {}
    pos = pos + 1
    while true do
      local q = text:find('["\\]', pos)
      out[#out + 1] = text:sub(pos, q - 1)
      if text:sub(q, q) == '"' then
        pos = q + 1
        return table.concat(out)
      end
      local e = text:sub(q + 1, q + 1)
      if e == "u" then
        local u = tonumber(text:sub(q + 2, q + 5), 16)
        pos = q + 6
        if u >= 0xD800 and u <= 0xDBFF then
          u = 0x10000 + ((u - 0xD800) << 10) + (tonumber(text:sub(q + 8, q + 11), 16) - 0xDC00)
          pos = q + 12
        end
        out[#out + 1] = utf8.char(u)
      else
        out[#out + 1] = ({ b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" })[e] or e
        pos = q + 2
      end
    end
  end
  function value()
    ws()
    local c = text:sub(pos, pos)
    if c == "{" or c == "[" then
      local t, close = c == "{" and { [OBJECT] = true } or {}, c == "{" and "}" or "]"
      pos = pos + 1
      ws()
      if text:sub(pos, pos) == close then pos = pos + 1; return t end
      while true do
        if close == "}" then
          ws()
          local k = str()
          ws()
          pos = pos + 1  -- ':'
          t[k] = value()
        else
          t[#t + 1] = value()
        end
        ws()
        local sep = text:sub(pos, pos)
        pos = pos + 1
        if sep == close then return t end
      end
    elseif c == '"' then
      return str()
    end
    local word = text:match("^[^,%]}%s]+", pos)
    pos = pos + #word
    if word == "true" then return true elseif word == "false" then return false
    elseif word == "null" then return null end
    return tonumber(word)
  end
  return value()
end

local function deep_equal(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do
    if not deep_equal(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

-- Whether the stored value 'old' is the seed's value: 'v' coerced as the
-- model binds it, 'raw' as the file wrote it (a blob is compared by the
-- string it wraps).
local function same(decl, v, raw, old)
  if v == PENDING then return false end
  if v == old then return true end
  if decl.type == "bytes" then return type(raw) == "string" and raw == old end
  if decl.type == "json" and type(v) == "string" and type(old) == "string" then
    return deep_equal(json_value(v), json_value(old))
  end
  return false
end

-- Reads the rows of model M whose 'fields' equal one of 'tuples' (arrays
-- of coerced values), in one statement; returns them by key.
local function rows_by_key(db, M, fields, tuples)
  local found = {}
  if #tuples == 0 then return found end
  local cond
  if #fields == 1 then
    local list = {}
    for i, t in ipairs(tuples) do list[i] = t[1] end
    local t = M.column_map[fields[1]].type
    cond = { k = "in", expr = { k = "col", name = M._column[fields[1]] }, list = list,
             coltype = (t == "date" or t == "timestamp" or t == "numeric") and t or nil }
  else
    local exprs = {}
    for i, f in ipairs(fields) do exprs[i] = { k = "col", name = M._column[f] } end
    cond = { k = "in", exprs = exprs, tuples = tuples }
  end
  local rows = db:run { k = "select", columns = model.projection(M), from = { name = M.table },
                        where = cond }
  for _, row in ipairs(rows) do found[key_of(row, fields)] = row end
  return found
end

-- }======================================================================


-- {======================================================================
-- References
-- =======================================================================

-- The keys, by 'fields', of the rows this run seeds into the table of
-- model T: what a dry run may refer to before it exists.
local function pending_keys(plan, T, fields)
  local set = plan.by_table[T.table]
  if set == nil then return {} end
  set.pending = set.pending or {}
  local id = table.concat(fields, "\0")
  local keys = set.pending[id]
  if keys == nil then
    keys = {}
    for _, row in ipairs(set.rows) do
      local complete = true
      for _, f in ipairs(fields) do
        if row.values[f] == nil then complete = false end
      end
      if complete then keys[key_of(row.values, fields)] = true end
    end
    set.pending[id] = keys
  end
  return keys
end

-- Resolves the references of the rows of 'set' in the columns 'cols' (a
-- set of fields): each becomes the referenced row's key value in
-- row.values.  One SELECT per referenced table and key.  In a dry run a
-- row that only this run seeds resolves to PENDING.
local function resolve(db, plan, set, cols, dry_run)
  local groups = {}
  for _, row in ipairs(set.rows) do
    for field, r in pairs(row.refs) do
      if cols[field] then
        local id = r.target.table .. "\0" .. table.concat(r.fields, "\0")
        local g = groups[id]
        if g == nil then
          g = { target = r.target, fields = r.fields, refs = {}, tuples = {}, seen = {} }
          groups[id] = g
        end
        g.refs[#g.refs + 1] = { row = row, field = field, ref = r }
        local k = key_of(r.values, r.fields)
        if not g.seen[k] then
          g.seen[k] = true
          local t = {}
          for i, f in ipairs(r.fields) do t[i] = r.values[f] end
          g.tuples[#g.tuples + 1] = t
        end
      end
    end
  end
  for _, g in pairs(groups) do
    local found = rows_by_key(db, g.target, g.fields, g.tuples)
    local pk = g.target.primary_key[1]
    local pending = dry_run and pending_keys(plan, g.target, g.fields)
    for _, item in ipairs(g.refs) do
      local r = item.ref
      local k = key_of(r.values, r.fields)
      local row = found[k]
      if row ~= nil then
        item.row.values[item.field] = row[pk]
      elseif pending and pending[k] then
        item.row.values[item.field] = PENDING
      else
        errors.raise("not_found", ("%s row %d: %s refers to %s with %s, and there is no such "
          .. "row (nor does this run seed it)"):format(set.table, item.row.index, item.field,
          g.target.table, show_key(r.values, r.fields)),
          { table = g.target.table, key = show_key(r.values, r.fields) }, r.where)
      end
    end
  end
end

-- }======================================================================


-- {======================================================================
-- Applying a seed set
-- =======================================================================

-- What the rows of 'set' change, for the columns that 'skip' does not
-- hold: each row's 'action' ("insert", "update" or nil) and its changed
-- columns.
local function compare(db, set, skip)
  local M, fields = set.model, set.key
  local tuples, fresh = {}, {}
  for _, row in ipairs(set.rows) do
    local t = {}
    for j, f in ipairs(fields) do
      t[j] = row.values[f]
      -- A key that refers to a row the dry run would insert is new too.
      if t[j] == PENDING then fresh[row] = true end
    end
    if not fresh[row] then tuples[#tuples + 1] = t end
  end
  local found = rows_by_key(db, M, fields, tuples)
  for _, row in ipairs(set.rows) do
    local old = not fresh[row] and found[key_of(row.values, fields)] or nil
    row.action, row.changed = nil, nil
    if old == nil then
      row.action = "insert"
    else
      local changed = {}
      for _, f in ipairs(row.fields) do
        if not skip[f] and not same(M.column_map[f], row.values[f], row.raw[f], old[f]) then
          changed[#changed + 1] = f
        end
      end
      if #changed > 0 then row.action, row.changed = "update", changed end
    end
  end
end

-- Writes the rows of 'set' that have an action: grouped by the columns
-- they set (a VALUES list has one column list), in chunks, each an INSERT
-- ... ON CONFLICT (key) DO UPDATE of the columns outside the key.  The
-- columns of 'skip' are left out: NULL for a new row where the column is
-- nullable, untouched for an existing one.
local function write(db, set, skip, progress)
  local M = set.model
  local groups, order = {}, {}
  for _, row in ipairs(set.rows) do
    if row.action ~= nil then
      local cols = {}
      for _, f in ipairs(row.fields) do
        if not skip[f] then cols[#cols + 1] = f end
      end
      local id = table.concat(cols, "\0")
      local g = groups[id]
      if g == nil then
        g = { cols = cols, rows = {} }
        groups[id] = g
        order[#order + 1] = g
      end
      g.rows[#g.rows + 1] = row
    end
  end
  local is_key = {}
  for _, f in ipairs(set.key) do is_key[f] = true end
  for _, g in ipairs(order) do
    local names, set_items = {}, {}
    for i, f in ipairs(g.cols) do
      names[i] = M._column[f]
      if not is_key[f] then
        set_items[#set_items + 1] = { col = names[i], expr = { k = "excluded", name = names[i] } }
      end
    end
    local target = {}
    for i, f in ipairs(set.key) do target[i] = M._column[f] end
    local conflict = { target = target, action = #set_items > 0 and "update" or "nothing",
                       set = #set_items > 0 and set_items or nil }
    for first = 1, #g.rows, CHUNK do
      local data = {}
      for i = first, math.min(first + CHUNK - 1, #g.rows) do
        local row, vals = g.rows[i], {}
        for j, f in ipairs(g.cols) do vals[j] = row.values[f] end
        data[#data + 1] = vals
      end
      db:run { k = "insert", into = M.table, columns = names, rows = data, conflict = conflict }
      progress(#data)
    end
  end
end

-- The entry of the report for 'set', its rows' actions counted.
local function count(set, entry)
  for _, row in ipairs(set.rows) do
    local was = entry.actions[row.index]
    if row.action == "insert" or was == "insert" then
      entry.actions[row.index] = "insert"
    elseif row.action == "update" or was == "update" then
      entry.actions[row.index] = "update"
      local cols = entry.columns[row.index] or {}
      for _, f in ipairs(row.changed or {}) do cols[#cols + 1] = f end
      entry.columns[row.index] = cols
    end
  end
end

local function summarize(set, entry)
  entry.inserted, entry.updated, entry.unchanged, entry.changes = 0, 0, 0, {}
  for _, row in ipairs(set.rows) do
    local a = entry.actions[row.index]
    if a == "insert" then
      entry.inserted = entry.inserted + 1
    elseif a == "update" then
      entry.updated = entry.updated + 1
    else
      entry.unchanged = entry.unchanged + 1
    end
    if a ~= nil then
      entry.changes[#entry.changes + 1] = { action = a, key = show_key(row.values, set.key,
                                                                       row.refs),
                                            columns = entry.columns[row.index] }
    end
  end
  entry.actions, entry.columns = nil, nil
end

-- }======================================================================


-- {======================================================================
-- The run
-- =======================================================================

local function production_guard(plan, env)
  if env ~= "production" then return end
  local refused = {}
  for _, file in ipairs(plan.files) do
    if not file.reference_data then refused[#refused + 1] = file.name end
  end
  if #refused > 0 then
    fail("refused", "", "the environment is production, and %s %s not reference data: seeds "
      .. "do not run in production unless the file says 'reference_data = true'",
      table.concat(refused, ", "), #refused == 1 and "is" or "are")
  end
end

local OPTIONS = { dry_run = true, env = true, progress = true }

function seed.run(db, files, opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    errors.misuse("seed.run options must be a table, got %s", errors.show(opts))
  end
  for k in pairs(opts) do
    if not OPTIONS[k] then
      errors.misuse("seed.run: unknown option %s (dry_run, env, progress)",
        type(k) == "string" and ("'" .. k .. "'") or errors.show(k))
    end
  end
  local plan = seed_plan.load(files)
  production_guard(plan, opts.env)
  seed_plan.check(db, plan)
  local order = seed_plan.order(db, plan)
  local dry_run = opts.dry_run == true
  local total, done = 0, 0
  for _, set in ipairs(order) do total = total + #set.rows end
  local function progress(n, set)
    done = done + n
    if opts.progress then opts.progress(done, total, set.table) end
  end
  local report = {}
  local function apply()
    local entries = {}
    -- Pass 1: every table in order, without the deferred columns.
    for _, set in ipairs(order) do
      local entry = { table = set.table, actions = {}, columns = {} }
      entries[set] = entry
      report[#report + 1] = entry
      local refcols = {}
      for f in pairs(set.ref_columns) do
        if not set.deferred[f] then refcols[f] = true end
      end
      resolve(db, plan, set, refcols, dry_run)
      compare(db, set, set.deferred)
      count(set, entry)
      local unchanged = 0
      for _, row in ipairs(set.rows) do
        if row.action == nil then unchanged = unchanged + 1 end
      end
      if not dry_run then
        write(db, set, set.deferred, function(n) progress(n, set) end)
      end
      progress(dry_run and #set.rows or unchanged, set)
    end
    -- Pass 2: the deferred columns, now that every row they point at is in.
    for _, set in ipairs(order) do
      if next(set.deferred) ~= nil then
        resolve(db, plan, set, set.deferred, dry_run)
        local others = {}
        for _, f in ipairs(set.model._names) do
          if not set.deferred[f] then others[f] = true end
        end
        compare(db, set, others)
        if dry_run then
          -- A row the dry run would insert holds nothing yet to compare.
          for _, row in ipairs(set.rows) do
            if entries[set].actions[row.index] == "insert" then row.action = nil end
          end
        else
          -- The whole row goes again: an INSERT states every column it sets.
          write(db, set, {}, function() end)
        end
        count(set, entries[set])
      end
    end
    for _, set in ipairs(order) do summarize(set, entries[set]) end
  end
  if dry_run then
    apply()
  else
    db:transaction(apply)
  end
  return report
end

-- }======================================================================

return seed
