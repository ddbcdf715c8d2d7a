-- loam.migrate.diff: what the models declare against what the live
-- database holds, as migration operations (the op tables of
-- loam.migrate.ops: { op = "add_column", table =, column =, ... }), for
-- `loam migrate generate` and `loam migrate check`.
--
--   diff.diff(models, db [, opts]) -> { ops = {...}, errors = {...} }
--     'models': name -> model (the project's); 'db': the Database, whose
--     schema is read (db:introspect()) and which prints the models' checks
--     and index predicates in a transaction it rolls back;
--     opts.allow_drops: drop tables and columns the models no longer have
--     (else each is an error naming it).
--   diff.describe_column(col, backend) -> the description of a column of
--     a model's DDL AST, as loam.migrate.pull describes a live one
--   diff.summary(op) -> one line saying what 'op' does
--
-- Columns are compared through one description (loam.migrate.pull's), so a
-- model and the table its DDL made compare equal on both backends: type
-- (with length, precision, scale, enum values), null and default.
-- Checks and indexes are compared by name, then a check by its predicate
-- and an index by its columns, uniqueness and predicate, each as the
-- database prints it (see 'printed_parts'), so a model and the table its
-- DDL made compare equal on both backends.  Foreign keys compare by
-- their columns, however they are declared.  Renames are never guessed: a model declares them
-- (renamed_from on the model for its table, on a column for the column),
-- and a column that disappears while another of the same type appears,
-- undeclared, is an error.  UNIQUE constraints compare by their columns
-- (added and dropped); a changed primary key is an error naming the
-- table, since loam does not generate one (see 'primary_key_check').

local core = require "loam.core"
local pull = require "loam.migrate.pull"
local schema_mod = require "loam.schema"
local types = require "loam.types"

local diff = {}

local lstr = pull.lstr

-- The Lua text of a model's default, as pull reads one back.
local function default_text(v, col)
  if v == nil then return nil end
  if v == types.now then return "loam.now" end
  local mt = getmetatable(v)
  if mt and mt.__name == "loam.sql" then return "loam.sql(" .. lstr(v.sql) .. ")" end
  if v == core.null then return nil end
  if type(v) == "boolean" then return tostring(v) end
  if col.type == "numeric" then
    return lstr(pull.decimal(tostring(v), col.scale))
  end
  if type(v) == "number" then
    return tostring(math.tointeger(v) or v)
  end
  return lstr(tostring(v))
end

function diff.describe_column(col, backend)
  local d = {
    name = col.name, type = col.type, values = col.values, length = col.length,
    precision = col.precision, scale = col.precision and (col.scale or 0) or nil,
    null = col.null ~= false, unique = col.unique or nil, primary_key = col.primary_key or nil,
    default = default_text(col.default, col),
  }
  if col.type == "id" then d.null = false end
  if backend == "sqlite" and d.type == "bigint" then d.type = "integer" end
  if col.references then
    d.references = { table = col.references.table, column = col.references.column,
                     on_delete = col.references.on_delete or "no action",
                     on_update = col.references.on_update or "no action" }
  end
  return d
end

-- The aspects of two descriptions that differ: type, null, default.
local function changes(want, have)
  local out = {}
  local function shape(d)
    return table.concat({ d.type, tostring(d.length), tostring(d.precision), tostring(d.scale),
                          d.values and table.concat(d.values, "\0") or "" }, "|")
  end
  if shape(want) ~= shape(have) then out.type = true end
  if want.null ~= have.null then out.null = true end
  -- A raw SQL default is the database's own text once stored: only its
  -- presence compares.
  local wd, hd = want.default, have.default
  if wd ~= hd and not (wd and hd and wd:match("^loam%.sql") and hd:match("^loam%.sql")) then
    out.default = true
  end
  return next(out) and out or nil
end

-- A column of the DDL AST from a live column's description, for the
-- 'before' of an alter_column (so its down is known).
local function ast_of(d)
  local col = { name = d.name, type = d.type == "id" and "bigint" or d.type, length = d.length,
                precision = d.precision, scale = d.scale, null = d.null, values = d.values }
  if d.default ~= nil then
    col.default = assert(load("return " .. d.default, "=default", "t",
                              { loam = require "loam" }))()
  end
  return col
end

local function ddl_of(M)
  local ddl = M:ddl()
  local create = ddl[1]
  local indexes = {}
  for i = 2, #ddl do
    local ix = ddl[i]
    indexes[#indexes + 1] = ix
  end
  return create, indexes
end

local function index_name(tname, ix)
  return ix.name or (core.constraint_name(tname, ix.columns, "idx"))
end

local same_list = pull.same

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local function is_loam_table(name)
  return name == core.MIGRATIONS_TABLE or name:match("^loam_migration_") ~= nil
end

-- {======================================================================
-- Definitions as the database prints them
-- =======================================================================

-- A check's predicate or an index's WHERE, for comparing two that the
-- same database printed: without the parentheses around the whole and
-- with runs of white space as one.
local function canonical(sql)
  return (pull.unwrap(sql):gsub("%s+", " "))
end

-- The database can print a predicate only once it has read it: PostgreSQL
-- keeps a parsed tree and prints it back with casts and parentheses of its
-- own ("(score >= 0)", "((status)::text = ANY (...))"), SQLite keeps the
-- text.  So the checks and index predicates of the models in 'list' (whose
-- tables exist) are made on tables of their own (the model's columns
-- without keys, named 'loam_migration_scratch_<n>': loam's own prefix, so
-- no table of the project's is in the way) in a transaction that is rolled back, and
-- read back as the live ones are: what the model declares and what the
-- database holds then compare as the same printer wrote them, on either
-- backend.  Returns, by table, { checks = { name = sql }, indexes = { name
-- = where or false } }.
local ROLLBACK = setmetatable({}, { __tostring = function() return "rollback" end })

local function printed_parts(db, list)
  local out, shadows, info, made = {}, {}, {}, {}
  for _, M in ipairs(list) do
    out[M.table] = { checks = {}, indexes = {} }
    if #M.checks > 0 or #M.indexes > 0 then made[#made + 1] = M end
  end
  if #made == 0 then return out end
  local ok, err = pcall(db.transaction, db, function()
    for i, M in ipairs(made) do
      local create, indexes = ddl_of(M)
      local sname = "loam_migration_scratch_" .. i
      local columns = {}
      for j, col in ipairs(create.columns) do
        local c = {}
        for k, v in pairs(col) do c[k] = v end
        c.references, c.unique = nil, nil
        columns[j] = c
      end
      db:exec(db:render_ddl { k = "create_table", name = sname, columns = columns,
                              primary_key = create.primary_key, checks = create.checks })
      local names = {}
      for j, ix in ipairs(indexes) do
        local x = {}
        for k, v in pairs(ix) do x[k] = v end
        x.table, x.name = sname, sname .. "_" .. j
        names[x.name] = index_name(M.table, ix)
        db:exec(db:render_ddl(x))
      end
      shadows[#shadows + 1] = sname
      info[sname] = { M = M, names = names }
    end
    for _, t in ipairs(db:introspect(shadows).tables) do
      local into, names = out[info[t.name].M.table], info[t.name].names
      for _, ck in ipairs(t.checks) do
        if ck.name then into.checks[ck.name] = canonical(ck.sql) end
      end
      for _, ix in ipairs(t.indexes) do
        into.indexes[names[ix.name]] = ix.where and canonical(ix.where) or false
      end
    end
    error(ROLLBACK)
  end)
  if not ok and err ~= ROLLBACK then error(err, 0) end
  return out
end

-- }======================================================================

-- The foreign keys of a model's CREATE TABLE (its columns' references and
-- its table-level 'foreign_keys') and those of introspected table 'have',
-- compared by their columns, whichever way each is declared: one that
-- differs in its referenced table, columns or actions is dropped and added
-- again.  Names are not compared (SQLite may have none).  'old_to_new'
-- renames the live columns; 'new_cols' holds the new columns, whose
-- add_column makes their references.
local function key(cols) return table.concat(cols, "\0") end

-- The live columns 'cols' under the names the model gives them.
local function renamed(cols, old_to_new)
  local out = {}
  for i, c in ipairs(cols) do out[i] = old_to_new[c] or c end
  return out
end

-- The UNIQUE constraints, compared by their columns as the foreign keys
-- are: one the model has and the database lacks is added (a new column's
-- own UNIQUE comes with the column), one the database has and the model
-- lacks is dropped.
local function unique_ops(tname, create, have, old_to_new, new_cols, out)
  local want, order = {}, {}
  local function add(cols, name, by_column)
    local k = key(cols)
    if want[k] == nil then order[#order + 1] = k end
    want[k] = { columns = cols, name = name or core.constraint_name(tname, cols, "key"),
                by_column = by_column }
  end
  for _, col in ipairs(create.columns) do
    if col.unique then add({ col.name }, nil, new_cols[col.name]) end
  end
  for _, u in ipairs(create.uniques or {}) do add(u.columns, u.name, false) end
  local seen = {}
  for _, u in ipairs(have.uniques) do
    local cols = renamed(u.columns, old_to_new)
    local k = key(cols)
    if want[k] ~= nil then
      seen[k] = true
    elseif u.name == nil then
      out.errors[#out.errors + 1] = ("%s: the UNIQUE constraint on (%s) is not in the model and "
        .. "has no name (SQLite keeps one declared without CONSTRAINT \"name\" so), so no "
        .. "operation can drop it: declare it in the model, or rebuild the table in a migration "
        .. "of your own"):format(tname, table.concat(cols, ", "))
    else
      out.ops[#out.ops + 1] = { op = "drop_unique", table = tname, name = u.name, columns = cols }
    end
  end
  for _, k in ipairs(order) do
    local w = want[k]
    if not seen[k] and not w.by_column then
      out.ops[#out.ops + 1] = { op = "add_unique", table = tname, name = w.name,
                                columns = w.columns }
    end
  end
end

-- A primary key that changes is refused, not generated: the key's index
-- is built again under a lock that blocks the table (on SQLite the whole
-- table is), and the foreign keys that reference it stand on it.
local function primary_key_check(M, have, old_to_new, out)
  local want = {}
  for i, f in ipairs(M.primary_key) do want[i] = M._column[f] end
  local live = renamed(have.primary_key and have.primary_key.columns or {}, old_to_new)
  if not same_list(want, live) then
    local function show(cols) return #cols == 0 and "none" or "(" .. table.concat(cols, ", ") .. ")" end
    out.errors[#out.errors + 1] = ("%s: the primary key is %s in the database and %s in the "
      .. "model; loam does not generate a primary key change, which rebuilds the key's index "
      .. "(on SQLite the table) under a lock that blocks it while the foreign keys that "
      .. "reference it stand on it: write that migration yourself (create_table of the new "
      .. "shape, execute the copy, drop_table, rename_table), or declare the key the database "
      .. "has"):format(M.table, show(live), show(want))
  end
end

local function foreign_key_ops(tname, create, have, old_to_new, new_cols, backend, out)
  local want, order = {}, {}
  local function add(fk, by_column)
    local k = key(fk.columns)
    if want[k] == nil then order[#order + 1] = k end
    want[k] = { name = fk.name or core.constraint_name(tname, fk.columns, "fkey"),
                columns = fk.columns, ref_table = fk.ref_table, ref_columns = fk.ref_columns,
                on_delete = fk.on_delete or "no action", on_update = fk.on_update or "no action",
                by_column = by_column }
  end
  for _, col in ipairs(create.columns) do
    local r = col.references
    if r ~= nil then
      add({ columns = { col.name }, ref_table = r.table, ref_columns = { r.column },
            on_delete = r.on_delete, on_update = r.on_update }, new_cols[col.name])
    end
  end
  for _, fk in ipairs(create.foreign_keys or {}) do add(fk, false) end
  local seen = {}
  for _, fk in ipairs(have.fks) do
    local cols = renamed(fk.columns, old_to_new)
    local k = key(cols)
    local w = want[k]
    seen[k] = true
    if w == nil or w.ref_table ~= fk.ref_table or not same_list(w.ref_columns, fk.ref_columns)
       or w.on_delete ~= fk.on_delete or w.on_update ~= fk.on_update then
      out.ops[#out.ops + 1] = { op = "drop_foreign_key", table = tname,
                                name = fk.name or core.constraint_name(tname, cols, "fkey"),
                                columns = cols, ref_table = fk.ref_table,
                                ref_columns = fk.ref_columns, on_delete = fk.on_delete,
                                on_update = fk.on_update }
      seen[k] = nil
    end
  end
  for _, k in ipairs(order) do
    local w = want[k]
    if not seen[k] and not w.by_column then
      out.ops[#out.ops + 1] = { op = "add_foreign_key", table = tname, name = w.name,
                                columns = w.columns, ref_table = w.ref_table,
                                ref_columns = w.ref_columns, on_delete = w.on_delete,
                                on_update = w.on_update, not_valid = backend == "postgres" }
      if backend == "postgres" then
        out.ops[#out.ops + 1] = { op = "validate_foreign_key", table = tname, name = w.name }
      end
    end
  end
end

-- The keys of model M against table 'have': primary key, uniques, foreign
-- keys.  'renames' maps new column names to old ones; 'added' lists the
-- new columns, whose add_column makes their own UNIQUE and references.
local function key_ops(M, create, have, renames, added, backend, out)
  local new_cols, old_to_new = {}, {}
  for _, col in ipairs(added) do new_cols[col.name] = true end
  for new, old in pairs(renames) do old_to_new[old] = new end
  primary_key_check(M, have, old_to_new, out)
  unique_ops(M.table, create, have, old_to_new, new_cols, out)
  foreign_key_ops(M.table, create, have, old_to_new, new_cols, backend, out)
end

-- The operations that make table 'have' (introspected; described) what
-- model M declares.
local function table_ops(M, have, desc, printed, backend, opts, out)
  local tname = M.table
  local create, indexes = ddl_of(M)
  local renames = M.column_renames or {}
  local want = {}
  for _, col in ipairs(create.columns) do want[col.name] = col end

  -- Columns: renamed, added, altered.
  local added, kept = {}, {}
  for _, col in ipairs(create.columns) do
    local wd = diff.describe_column(col, backend)
    local old = renames[col.name]
    if desc.by_name[col.name] == nil and old ~= nil and desc.by_name[old] ~= nil
       and want[old] == nil then
      out.ops[#out.ops + 1] = { op = "rename_column", table = tname, name = old,
                                new_name = col.name }
      kept[old] = true
      local hd = desc.by_name[old]
      local c = changes(wd, hd)
      if c then
        out.ops[#out.ops + 1] = { op = "alter_column", table = tname, name = col.name, alter = c,
                                  column = col, before = ast_of(hd) }
      end
    elseif desc.by_name[col.name] == nil then
      added[#added + 1] = col
      out.ops[#out.ops + 1] = { op = "add_column", table = tname, column = col }
    else
      kept[col.name] = true
      local hd = desc.by_name[col.name]
      local c = changes(wd, hd)
      if c then
        out.ops[#out.ops + 1] = { op = "alter_column", table = tname, name = col.name, alter = c,
                                  column = col, before = ast_of(hd) }
      end
    end
  end

  key_ops(M, create, have, renames, added, backend, out)

  -- Columns the model no longer has.
  for _, hd in ipairs(desc.columns) do
    if not kept[hd.name] and want[hd.name] == nil then
      local twin = nil
      for _, col in ipairs(added) do
        local wd = diff.describe_column(col, backend)
        if wd.type == hd.type then twin = col.name break end
      end
      if twin then
        out.errors[#out.errors + 1] = ("%s: column %s is gone from the model and %s is new, of the "
          .. "same type; a rename is never guessed: declare it on the column "
          .. "(renamed_from = %q) to rename, or generate the drop and the add separately"):format(
          tname, hd.name, twin, hd.name)
      elseif opts.allow_drops then
        out.ops[#out.ops + 1] = { op = "drop_column", table = tname, name = hd.name,
                                  column = ast_of(hd) }
      else
        out.errors[#out.errors + 1] = ("%s: column %s is in the database but not in the model; "
          .. "dropping it loses its data: pass --allow-drops to generate the drop"):format(
          tname, hd.name)
      end
    end
  end

  -- Checks by name, then by their predicates as the database prints them.
  local wchecks = {}
  for _, ck in ipairs(M.checks) do wchecks[ck.name] = ck.sql end
  for _, name in ipairs(sorted_keys(desc.checks)) do
    if wchecks[name] == nil or printed.checks[name] ~= canonical(desc.checks[name]) then
      out.ops[#out.ops + 1] = { op = "drop_check", table = tname, name = name,
                                sql = desc.checks[name] }
      desc.checks[name] = nil
    end
  end
  for _, ck in ipairs(M.checks) do
    if desc.checks[ck.name] == nil then
      out.ops[#out.ops + 1] = { op = "add_check", table = tname, name = ck.name, sql = ck.sql,
                                not_valid = false }
    end
  end

  -- Indexes by name, then by columns, uniqueness and predicate.
  local windex = {}
  for _, ix in ipairs(indexes) do windex[index_name(tname, ix)] = ix end
  for _, name in ipairs(sorted_keys(desc.indexes)) do
    local hx, wx = desc.indexes[name], windex[name]
    local expr = false
    for i = 1, #hx.exprs do if hx.exprs[i] then expr = true end end
    if wx == nil or expr or not same_list(wx.columns, hx.columns)
       or (wx.unique or false) ~= hx.unique
       or printed.indexes[name] ~= (hx.where and canonical(hx.where) or false) then
      out.ops[#out.ops + 1] = { op = "drop_index", table = tname, name = name,
                                concurrently = false,
                                -- what the writer's down builds again
                                index = { k = "create_index", name = name, table = tname,
                                          columns = hx.columns, unique = hx.unique,
                                          where = hx.where } }
      desc.indexes[name] = nil
    end
  end
  for _, ix in ipairs(indexes) do
    if desc.indexes[index_name(tname, ix)] == nil then
      out.ops[#out.ops + 1] = { op = "add_index", table = tname, index = ix, concurrently = false }
    end
  end
end

-- The names of models ('models': name -> model) by table, sorted.
local function model_list(models)
  local list = {}
  for _, M in pairs(models) do
    if type(M) == "table" and rawget(M, "__model") then list[#list + 1] = M end
  end
  table.sort(list, function(a, b) return a.table < b.table end)
  return list
end

function diff.diff(models, db, opts)
  opts = opts or {}
  local schema = db:introspect()
  local backend = schema.backend
  local out = { ops = {}, errors = {} }
  local list = model_list(models)
  local claimed = {}
  local new = {}
  local renamed_tables = {}
  for _, M in ipairs(list) do
    local have = schema.by_name[M.table]
    if have == nil and M.renamed_from and schema.by_name[M.renamed_from] then
      out.ops[#out.ops + 1] = { op = "rename_table", table = M.renamed_from, new_name = M.table }
      have = schema.by_name[M.renamed_from]
      claimed[M.renamed_from] = true
      renamed_tables[#renamed_tables + 1] = M
    end
    if have == nil then
      new[#new + 1] = M
    else
      claimed[have.name] = true
    end
  end
  -- New tables, each after those it references.
  if #new > 0 then
    for _, M in ipairs(schema_mod.fk_order(new, "generate")) do
      local create, indexes = ddl_of(M)
      out.ops[#out.ops + 1] = { op = "create_table", table = M.table, def = create }
      for _, ix in ipairs(indexes) do
        out.ops[#out.ops + 1] = { op = "add_index", table = M.table, index = ix,
                                  concurrently = false }
      end
    end
  end
  local existing = {}
  for _, M in ipairs(list) do
    if schema.by_name[M.table] or (M.renamed_from and schema.by_name[M.renamed_from]) then
      existing[#existing + 1] = M
    end
  end
  local printed = printed_parts(db, existing)
  for _, M in ipairs(existing) do
    local have = schema.by_name[M.table]
    if have == nil and M.renamed_from then have = schema.by_name[M.renamed_from] end
    table_ops(M, have, pull.describe_table(have, schema), printed[M.table], backend, opts, out)
  end
  -- Tables no model declares.
  for _, t in ipairs(schema.tables) do
    if not claimed[t.name] and not is_loam_table(t.name) then
      if opts.allow_drops then
        out.ops[#out.ops + 1] = { op = "drop_table", table = t.name }
      else
        out.errors[#out.errors + 1] = ("table %s is in the database but no model declares it; "
          .. "dropping it loses its data: pass --allow-drops to generate the drop"):format(t.name)
      end
    end
  end
  return out
end

-- {======================================================================
-- Saying what an operation does
-- =======================================================================

local SUMMARY = {
  create_table = function(op) return "create table " .. op.table end,
  drop_table = function(op) return "drop table " .. op.table end,
  rename_table = function(op) return ("rename table %s to %s"):format(op.table, op.new_name) end,
  add_column = function(op) return ("add column %s.%s"):format(op.table, op.column.name) end,
  drop_column = function(op) return ("drop column %s.%s"):format(op.table, op.name) end,
  rename_column = function(op)
    return ("rename column %s.%s to %s"):format(op.table, op.name, op.new_name)
  end,
  alter_column = function(op)
    local what = {}
    for _, k in ipairs { "type", "null", "default" } do
      if op.alter[k] then what[#what + 1] = k end
    end
    return ("alter column %s.%s (%s)"):format(op.table, op.name, table.concat(what, ", "))
  end,
  add_index = function(op)
    return ("add index %s on %s (%s)"):format(index_name(op.table, op.index), op.table,
      table.concat(op.index.columns, ", "))
  end,
  drop_index = function(op) return ("drop index %s on %s"):format(op.name, op.table) end,
  add_foreign_key = function(op)
    return ("add foreign key %s: %s (%s) -> %s"):format(op.name, op.table,
      table.concat(op.columns, ", "), op.ref_table)
  end,
  validate_foreign_key = function(op)
    return ("validate foreign key %s on %s"):format(op.name, op.table)
  end,
  drop_foreign_key = function(op) return ("drop foreign key %s on %s"):format(op.name, op.table) end,
  add_check = function(op) return ("add check %s on %s"):format(op.name, op.table) end,
  drop_check = function(op) return ("drop check %s on %s"):format(op.name, op.table) end,
  add_unique = function(op)
    return ("add unique %s on %s (%s)"):format(op.name, op.table, table.concat(op.columns, ", "))
  end,
  drop_unique = function(op) return ("drop unique %s on %s"):format(op.name, op.table) end,
}

function diff.summary(op)
  return SUMMARY[op.op](op)
end

-- }======================================================================

return diff
