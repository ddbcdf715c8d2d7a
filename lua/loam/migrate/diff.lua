-- loam.migrate.diff: what the models declare against what the live
-- database holds, as migration operations (the op tables of
-- loam.migrate.ops: { op = "add_column", table =, column =, ... }), for
-- `loam migrate generate` and `loam migrate check`.
--
--   diff.diff(models, schema [, opts]) -> { ops = {...}, notes = {...}, errors = {...} }
--     'models': name -> model (the project's); 'schema': db:introspect();
--     opts.allow_drops: drop tables and columns the models no longer have
--     (else each is an error naming it).
--   diff.describe_column(col, backend) -> the description of a column of
--     a model's DDL AST, as loam.migrate.pull describes a live one
--   diff.summary(op) -> one line saying what 'op' does
--
-- Columns are compared through one description (loam.migrate.pull's), so a
-- model and the table its DDL made compare equal on both backends: type
-- (with length, precision, scale, enum values), null and default.
-- Checks and indexes are compared by name, and an index also by its
-- columns and uniqueness; a check's predicate and an index's WHERE are
-- the database's own text, which PostgreSQL rewrites, so they are not
-- compared.  Renames are never guessed: a model declares them
-- (renamed_from on the model for its table, on a column for the column),
-- and a column that disappears while another of the same type appears,
-- undeclared, is an error.  What no operation can change (a primary key,
-- a UNIQUE constraint) is a note: `check` reports it, `generate` says it
-- wrote nothing for it.

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

-- The operations that make table 'have' (introspected; described) what
-- model M declares.
local function table_ops(M, have, desc, backend, opts, out)
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
      if (wd.unique or false) ~= (hd.unique or false) then
        out.notes[#out.notes + 1] = ("%s.%s: UNIQUE %s in the model, not in the database; no "
          .. "operation changes it"):format(tname, col.name, wd.unique and "is" or "is not")
      end
      -- Foreign keys declared by the column.
      local wr, hr = wd.references, hd.references
      local fkname = core.constraint_name(tname, { col.name }, "fkey")
      if hr and (not wr or wr.table ~= hr.table or wr.on_delete ~= hr.on_delete
                 or wr.on_update ~= hr.on_update) then
        out.ops[#out.ops + 1] = { op = "drop_foreign_key", table = tname, name = fkname,
                                  columns = { col.name }, ref_table = hr.table,
                                  ref_columns = { hr.column }, on_delete = hr.on_delete,
                                  on_update = hr.on_update }
      end
      if wr and (not hr or wr.table ~= hr.table or wr.on_delete ~= hr.on_delete
                 or wr.on_update ~= hr.on_update) then
        out.ops[#out.ops + 1] = { op = "add_foreign_key", table = tname, name = fkname,
                                  columns = { col.name }, ref_table = wr.table,
                                  ref_columns = { wr.column }, on_delete = wr.on_delete,
                                  on_update = wr.on_update, not_valid = backend == "postgres" }
        if backend == "postgres" then
          out.ops[#out.ops + 1] = { op = "validate_foreign_key", table = tname, name = fkname }
        end
      end
    end
  end

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

  -- Checks by name.
  local wchecks = {}
  for _, ck in ipairs(M.checks) do wchecks[ck.name] = ck.sql end
  for _, name in ipairs(sorted_keys(desc.checks)) do
    if wchecks[name] == nil then
      out.ops[#out.ops + 1] = { op = "drop_check", table = tname, name = name,
                                sql = desc.checks[name] }
    end
  end
  for _, ck in ipairs(M.checks) do
    if desc.checks[ck.name] == nil then
      out.ops[#out.ops + 1] = { op = "add_check", table = tname, name = ck.name, sql = ck.sql,
                                not_valid = false }
    end
  end

  -- Indexes by name, then by columns and uniqueness.
  local windex = {}
  for _, ix in ipairs(indexes) do windex[index_name(tname, ix)] = ix end
  for _, name in ipairs(sorted_keys(desc.indexes)) do
    local hx, wx = desc.indexes[name], windex[name]
    if wx == nil or not same_list(wx.columns, hx.columns) or (wx.unique or false) ~= hx.unique
       or (wx.where ~= nil) ~= (hx.where ~= nil) then
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

function diff.diff(models, schema, opts)
  opts = opts or {}
  local backend = schema.backend
  local out = { ops = {}, notes = {}, errors = {} }
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
  for _, M in ipairs(list) do
    local have = schema.by_name[M.table]
    if have == nil and M.renamed_from then have = schema.by_name[M.renamed_from] end
    if have ~= nil then
      table_ops(M, have, pull.describe_table(have, schema), backend, opts, out)
    end
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
}

function diff.summary(op)
  return SUMMARY[op.op](op)
end

-- }======================================================================

return diff
