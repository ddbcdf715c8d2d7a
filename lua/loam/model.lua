-- loam.model: models, their instances, and tables made straight from models.
--
-- A model is a table declared once from column declarations (loam.types)
-- and bound to a connection.  Every statement it runs is a DML or DDL AST
-- rendered by the core (db:run, which renders and runs at once; db:prepare
-- where the rendered statement is kept; db:render_ddl); no SQL text is written here
-- except the catalog lookup that finds a migration history.
--
--   db:model(table, columns [, options]) -> Model
--     options: primary_key = { "a", "b" }, indexes = { { "a", "b", unique =,
--     where =, name = } }, uniques = { { "a", "b", name = } },
--     checks = { name = "raw SQL" }, foreign_keys = { { "a", "b", references =
--     Model or "table", ref_columns = { "x", "y" }, on_delete =, on_update =,
--     name = } }, renamed_from = "old_table" (and a
--     column's option renamed_from = "old_column"): renames that `loam
--     migrate generate` writes as RENAME instead of a drop and an add
--   Model fields: __model, table, db, columns (DDL AST columns, named by
--     field), column_map, primary_key (array of field names), checks,
--     uniques, indexes (create_index ASTs, in SQL names), methods (instance
--     methods of this model)
--
-- Fields and columns.  A column's declared name is the instance's field;
-- its option 'column' names it in SQL when that differs ("ArtistId" for
-- artist_id).  Everything a caller writes takes fields; every AST made
-- here and in loam.query and loam.include writes the SQL names, and
-- selects a renamed column AS its field, so rows arrive keyed by fields
-- and become instances as they are.  '_column' maps field -> SQL name,
-- '_select' is the projection of the declared columns (never '*': an
-- instance holds what the model declares, and nothing save cannot send).
--
-- Instances hold their column values as plain fields; their metatable's
-- __index serves methods and relations, and __newindex, which Lua calls
-- for absent keys only, refuses assignments to names that are nothing of
-- the model, to relations, and of nil, when they are made.
--   Model:coerce(field, value)       the value to bind, or validation_error
--   Model:_load(row)                 a database row made into an instance
--   Model:create(values)             INSERT ... RETURNING -> instance
--   Model:find(key...)               by primary key -> instance | nil
--   Model:find_by(conditions)        first match -> instance | nil
--   Model:insert_many(rows [, { returning = true }]) -> count | instances
--   Model:upsert(row [, { conflict = cols, update = cols | true }])
--                                    -> instance | nil (DO NOTHING skipped it)
--   Model:ddl()                      the create_table and create_index ASTs
--   Model:where(...), :all(), ...    every query method (loam.query)
--   Model:belongs_to(name, Target [, opts]), Model:has_one(...),
--   Model:has_many(...)              relations (loam.relation), in
--                                    'relations' (name -> relation)
--   Model:lazy_loading(flag)         the model's default for lazy loading
--                                    (Model:lazy() starts a lazy query)
--   inst:save(), inst:update(values), inst:delete(), inst:reload(),
--   inst:to_table{ only =, except =, nulls =, include = }
--   model.of(v)                      the model of instance 'v', or nil
--   model.has_migrations(db)         migrations manage the schema (table
--                                    model.MIGRATIONS_TABLE exists)
--
-- Constraint and index names follow PostgreSQL's defaults, as the core
-- renders them (loam.h): 'uniques' -> <table>_<cols>_key, 'foreign_keys' ->
-- <table>_<cols>_fkey, 'indexes'
-- (unique or not) -> <table>_<cols>_idx, a column's 'check' ->
-- <table>_<column>_check, or _check1 when the core checks that column
-- already (enum; json and text with a length, whose SQLite checks take
-- the first name).  Model 'checks' keep the names they are given, and a
-- 'name' field in an index or unique entry overrides the generated one.
-- Names that clash are refused when the model is declared.

local core = require "loam.core"
local errors = require "loam.errors"
local types = require "loam.types"
local query = require "loam.query"
local relation = require "loam.relation"
local instance = require "loam.instance"

local null = core.null
local plain_rows = core.plain_rows
local insert_records = core.insert_records
local raise = errors.raise

local model = {}

-- The table that migrations record themselves in: its presence means the
-- schema belongs to migrations.
local MIGRATIONS_TABLE = core.MIGRATIONS_TABLE

-- The values of each instance as loaded or last saved, to find what
-- changed, are its state (loam.instance), by field position.
local WEAK_KEYS = { __mode = "k" }
local STATE = instance.KEY

local Model = { __name = "loam.Model" }
Model.__index = Model

-- Methods every instance has; each model's 'methods' table falls back here.
local Instance = {}

-- '__tostring' of instances, defined with them below.
local instance_tostring

-- The metatable of a model's instances, defined with the models.
local instance_meta

-- The makers of a model's loading functions, defined with loading.
local loader_maker

-- The maker of a model's 'find' for one key value, defined with 'find'.
local key_finder

-- Column names that would hide these methods are refused.
local RESERVED = { save = true, update = true, delete = true, reload = true, to_table = true }


-- {======================================================================
-- Helpers
-- =======================================================================

local function misuse(M, message, column)
  raise("misuse", message, { model = M.table, column = column })
end

local function column_list(M)
  return table.concat(M._names, ", ")
end

-- "table.field", naming the SQL column too when it is another name.
local function label(M, name)
  local c = M._column[name]
  if c ~= nil and c ~= name then
    return string.format("%s.%s (column %q)", M.table, name, c)
  end
  return M.table .. "." .. tostring(name)
end

local function unknown_column(M, name)
  misuse(M, string.format("%s: unknown column %s (columns: %s)", M.table,
    type(name) == "string" and "'" .. name .. "'" or errors.show(name), column_list(M)), name)
end

local function check_options(M, opts, allowed, what)
  if opts == nil then
    return {}
  end
  if type(opts) ~= "table" then
    misuse(M, string.format("%s: %s options must be a table, got %s", M.table, what,
      errors.show(opts)))
  end
  for k in pairs(opts) do
    if not allowed[k] then
      misuse(M, string.format("%s: unknown %s option %s", M.table, what,
        type(k) == "string" and "'" .. k .. "'" or errors.show(k)))
    end
  end
  return opts
end

-- The model of instance 'self', for methods called on something else.
local function owner(self, method)
  local mt = getmetatable(self)
  local M = type(mt) == "table" and rawget(mt, "model")
  if not M then
    raise("misuse", string.format("%s must be called on an instance (inst:%s(...)), got %s",
      method, method, errors.show(self)))
  end
  return M
end

model.of = instance.model_of

-- The values of the primary key in 'values' (by field name), in key
-- order, put in 'out' after position 'at' (a new array from 1 without
-- them); 'what' names the operation that needs them, for errors.
local function key_values(M, values, what, out, at)
  local pk = M.primary_key
  if #pk == 0 then
    misuse(M, string.format("%s: %s needs a primary key, and the model has none", M.table, what))
  end
  out, at = out or {}, at or 0
  for i, name in ipairs(pk) do
    local v = values[name]
    if v == nil or v == null then
      misuse(M, string.format("%s: %s needs the primary key, and %s is %s", M.table, what,
        name, v == nil and "not loaded" or "NULL"), name)
    end
    out[at + i] = v
  end
  return out
end

-- The condition "primary key = the values of 'keys' after position 'at'"
-- (in key order, as key_values puts them).
local function key_ast(M, keys, at)
  local cond = { k = "and" }
  for i, name in ipairs(M.primary_key) do
    cond[i] = { k = "op", op = "=", l = { k = "col", name = M._column[name] },
                r = { k = "val", v = keys[at + i] } }
  end
  return cond
end

-- The condition "primary key = values" for the row 'values' describes.
local function key_condition(M, values, what)
  return key_ast(M, key_values(M, values, what), 0)
end

-- The columns 'values' sets, in declaration order, and their coerced
-- values.  Every value is coerced before any statement is built.  For a
-- new row ('insert'), a NOT NULL column without a default must be set.
local function columns_and_values(M, values, what, insert)
  if type(values) ~= "table" or getmetatable(values) ~= nil then
    misuse(M, string.format("%s: %s expects a table of column values, got %s", M.table, what,
      errors.show(values)))
  end
  for k in pairs(values) do
    if M.column_map[k] == nil then
      unknown_column(M, k)
    end
  end
  local cols, vals = {}, {}
  for _, name in ipairs(M._names) do
    local v = values[name]
    if v ~= nil then
      cols[#cols + 1] = name
      vals[#vals + 1] = M:coerce(name, v)
    elseif insert and M._required[name] then
      raise("validation_error", string.format("%s.%s: is required (NOT NULL without a default)",
        M.table, name), { model = M.table, column = name })
    end
  end
  return cols, vals
end

-- The SQL names of the columns whose fields 'names' lists.
local function sql_names(M, names)
  local out, map = {}, M._column
  for i, name in ipairs(names) do out[i] = map[name] end
  return out
end

-- The values 'inst' had when loaded or last saved, by field position
-- (M._pos).  A table given the instance metatable by hand has none: all
-- its values count as changed.
local function snapshot(inst)
  return rawget(inst, STATE) or {}
end

-- The primary-key values 'inst' had when loaded or last saved, by field
-- name, for key_condition.
local function loaded_key(M, inst)
  local snap, pos, out = snapshot(inst), M._pos, {}
  for _, name in ipairs(M.primary_key) do out[name] = snap[pos[name]] end
  return out
end

-- Makes 'row' (all columns, fresh from the database) the values of 'inst'
-- and of its snapshot; the rest of its state stays.
local function refresh(M, inst, row)
  local snap, pos = instance.of(inst), M._pos
  for k, v in next, row do
    rawset(inst, k, v)
    local i = pos[k]
    if i ~= nil then snap[i] = v end
  end
end

-- Whether the name arrays 'a' and 'b' are equal, compared without making
-- strings: insert_many compares every row's columns with the first's.
local function same_names(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do
    if a[i] ~= b[i] then return false end
  end
  return true
end

local function column_names(M, list, what)
  if type(list) == "string" then
    list = { list }
  end
  if type(list) ~= "table" or #list == 0 then
    misuse(M, string.format("%s: %s must be a column name or a non-empty array of them, got %s",
      M.table, what, errors.show(list)))
  end
  for _, name in ipairs(list) do
    if M.column_map[name] == nil then
      unknown_column(M, name)
    end
  end
  return list
end

-- }======================================================================


-- {======================================================================
-- Declaring a model
-- =======================================================================

-- The name the core gives a constraint or index of 'tname' over 'cols'
-- when it has none, whole: before the core shortens it past
-- core.IDENT_MAX bytes.
local function generated_name(tname, cols, suffix)
  local _, whole = core.constraint_name(tname, cols, suffix)
  return whole
end

-- The core checks some columns itself (enum values everywhere, the length
-- of text and the validity of json on SQLite), under <table>_<col>_check.
-- A column's own 'check' then takes the next name, as PostgreSQL numbers
-- a second check of one column; on both backends alike, so names agree.
local function has_core_check(col)
  return col.type == "enum" or col.type == "json" or (col.type == "text" and col.length ~= nil)
end

-- Reads the array part of an index or unique entry: column names that must
-- exist, plus the named options in 'allowed'.
local function entry_columns(fail, map, entry, what, i, allowed)
  if type(entry) ~= "table" or #entry == 0 then
    fail("%s #%d must be an array of column names, got %s", what, i, errors.show(entry))
  end
  for k, v in pairs(entry) do
    if math.type(k) == "integer" then
      if map[v] == nil then
        fail("%s #%d: unknown column %s", what, i, type(v) == "string" and "'" .. v .. "'"
          or errors.show(v))
      end
    elseif not allowed[k] then
      fail("%s #%d: unknown option %s", what, i, type(k) == "string" and "'" .. k .. "'"
        or errors.show(k))
    end
  end
  if entry.name ~= nil then
    local problem = types.ident_problem(entry.name)
    if problem then
      fail("%s #%d: name %s", what, i, problem)
    end
  end
  local cols = {}
  for j, v in ipairs(entry) do cols[j] = v end
  return cols
end

-- Builds the model's table-level parts from its options and the columns'
-- extras; 'fail' raises a misuse error at the model's declaration.
--
-- Every constraint and index name the table will carry is claimed here,
-- so two that clash are refused at declaration.  The core refuses clashes
-- inside one CREATE TABLE too, but an index is a statement of its own,
-- and on PostgreSQL an index shares its namespace with the indexes behind
-- primary keys and unique constraints.
local function table_parts(M, opts, extras, fail)
  local tname, map = M.table, M.column_map
  local names = {}
  local function claim(name)
    if names[name] then
      fail("two constraints or indexes are named %q; give one of them a 'name'", name)
    end
    names[name] = true
  end

  -- Primary key: 'loam.id', one column with primary_key = true, or the
  -- 'primary_key' option for several columns.
  local pk, inline = {}, false
  for i, col in ipairs(M.columns) do
    if extras[i].primary_key then
      if #pk > 0 then
        fail("two columns are primary keys (%s, %s); for a composite key use the model option "
          .. "primary_key = { ... }", pk[1], col.name)
      end
      pk[1] = col.name
      inline = true
    end
  end
  if opts.primary_key ~= nil then
    if #pk > 0 then
      fail("primary_key is given as an option and by column %s", pk[1])
    end
    local list = opts.primary_key
    if type(list) == "string" then list = { list } end
    if type(list) ~= "table" or #list == 0 then
      fail("option primary_key must be a column name or an array of them, got %s",
        errors.show(opts.primary_key))
    end
    for i, name in ipairs(list) do
      local col = map[name]
      if col == nil then
        fail("primary_key: unknown column %s", errors.show(name))
      end
      col.null = false  -- a primary key is NOT NULL
      pk[i] = name
    end
  end
  M.primary_key = pk
  -- A single key column says so itself; only a composite key goes to the table.
  M._table_pk = (not inline and #pk > 0) and sql_names(M, pk) or nil
  if #pk > 0 then
    claim(generated_name(tname, {}, "pkey"))
  end

  -- Generated names are made of the columns' SQL names, as PostgreSQL's.
  local checks = {}
  for _, col in ipairs(M.columns) do
    local cname = M._column[col.name]
    if col.unique then
      claim(generated_name(tname, { cname }, "key"))
    end
    if col.references then
      claim(generated_name(tname, { cname }, "fkey"))
    end
    if has_core_check(col) then
      claim(generated_name(tname, { cname }, "check"))
    end
  end
  for i, col in ipairs(M.columns) do
    if extras[i].check ~= nil then
      local name = generated_name(tname, { M._column[col.name] },
        has_core_check(col) and "check1" or "check")
      local problem = types.ident_problem(name)
      if problem then
        fail("the check of column %s would be named %s; declare it in the model option checks "
          .. "= { name = sql } with a shorter name", col.name, problem)
      end
      claim(name)
      checks[#checks + 1] = { name = name, sql = extras[i].check }
    end
  end
  if opts.checks ~= nil then
    if type(opts.checks) ~= "table" then
      fail("option checks must be a table of name = SQL, got %s", errors.show(opts.checks))
    end
    local given = {}
    for name, sql in pairs(opts.checks) do
      if type(name) ~= "string" or type(sql) ~= "string" or sql == "" then
        fail("checks must map names to SQL expressions, got %s = %s", errors.show(name),
          errors.show(sql))
      end
      local problem = types.ident_problem(name)
      if problem then
        fail("check name %s", problem)
      end
      given[#given + 1] = name
    end
    table.sort(given)  -- a stable order, so the DDL is the same every run
    for _, name in ipairs(given) do
      claim(name)
      checks[#checks + 1] = { name = name, sql = opts.checks[name] }
    end
  end
  M.checks = checks

  -- Generated names too long to keep whole are left to the core, which
  -- shortens them the way PostgreSQL does.
  local function name_of(entry, cols, suffix)
    if entry.name ~= nil then
      claim(entry.name)
      return entry.name
    end
    local short, whole = core.constraint_name(tname, sql_names(M, cols), suffix)
    claim(whole)
    if short ~= whole then
      return nil
    end
    return whole
  end

  local function array_option(k)
    if opts[k] ~= nil and type(opts[k]) ~= "table" then
      fail("option %s must be an array, got %s", k, errors.show(opts[k]))
    end
  end

  array_option("uniques")
  local uniques = {}
  for i, entry in ipairs(opts.uniques or {}) do
    local cols = entry_columns(fail, map, entry, "unique", i, { name = true })
    uniques[i] = { name = name_of(entry, cols, "key"), columns = sql_names(M, cols) }
  end
  M.uniques = uniques

  array_option("indexes")
  local indexes = {}
  for i, entry in ipairs(opts.indexes or {}) do
    local cols = entry_columns(fail, map, entry, "index", i,
      { name = true, unique = true, where = true })
    if entry.unique ~= nil and type(entry.unique) ~= "boolean" then
      fail("index #%d: unique must be a boolean, got %s", i, errors.show(entry.unique))
    end
    if entry.where ~= nil and (type(entry.where) ~= "string" or entry.where == "") then
      fail("index #%d: where must be an SQL expression, got %s", i, errors.show(entry.where))
    end
    indexes[i] = { k = "create_index", name = name_of(entry, cols, "idx"), table = tname,
                   columns = sql_names(M, cols), unique = entry.unique == true,
                   where = entry.where }
  end
  M.indexes = indexes

  -- Foreign keys over several columns (or to columns other than a primary
  -- key); the referenced columns are found when the DDL is made, as a
  -- column's reference is.
  array_option("foreign_keys")
  local fks = {}
  for i, entry in ipairs(opts.foreign_keys or {}) do
    local cols = entry_columns(fail, map, entry, "foreign key", i,
      { name = true, references = true, ref_columns = true, on_delete = true, on_update = true })
    local ref, rtable = entry.references, nil
    if type(ref) == "table" and rawget(ref, "__model") == true then
      rtable = ref.table
    elseif type(ref) == "string" then
      local problem = types.ident_problem(ref)
      if problem then fail("foreign key #%d: references: table name %s", i, problem) end
      rtable = ref
    else
      fail("foreign key #%d: references must be a model or a table name, got %s", i,
        errors.show(ref))
    end
    local rcols = entry.ref_columns
    if rcols ~= nil then
      if type(rcols) ~= "table" or #rcols ~= #cols then
        fail("foreign key #%d: ref_columns must be an array of %d column names, got %s", i,
          #cols, errors.show(rcols))
      end
      for j, c in ipairs(rcols) do
        if type(c) ~= "string" then
          fail("foreign key #%d: ref_columns #%d must be a column name, got %s", i, j,
            errors.show(c))
        end
      end
    end
    for _, k in ipairs { "on_delete", "on_update" } do
      local action = entry[k]
      if action ~= nil and not types.FK_ACTIONS[action] then
        fail("foreign key #%d: %s must be one of cascade, restrict, set null, set default, "
          .. "no action; got %s", i, k, errors.show(action))
      end
      if action == "set null" then
        for _, c in ipairs(cols) do
          if map[c].null == false then
            fail("foreign key #%d: %s = \"set null\" on NOT NULL column %s", i, k, c)
          end
        end
      end
    end
    fks[i] = { name = name_of(entry, cols, "fkey"), columns = sql_names(M, cols),
               references = ref, ref_table = rtable, ref_columns = rcols,
               on_delete = entry.on_delete, on_update = entry.on_update }
    M._deps[#M._deps + 1] = rtable
  end
  M.foreign_keys = fks
end

local MODEL_OPTIONS = { primary_key = true, indexes = true, checks = true, uniques = true,
                        foreign_keys = true, renamed_from = true }

function model.new(db, tname, decls, opts)
  local where = errors.where()
  local label = (type(tname) == "string" and tname ~= "") and tname or "db:model"
  local function fail(fmt, ...)
    raise("misuse", label .. ": " .. string.format(fmt, ...), { model = tname }, where)
  end
  local problem = types.ident_problem(tname)
  if problem then
    fail("table name %s", problem)
  end
  if type(decls) ~= "table" or #decls == 0 then
    fail("a model needs an array of columns (loam.id(), loam.text(...), ...), got %s",
      errors.show(decls))
  end
  if opts == nil then
    opts = {}
  elseif type(opts) ~= "table" then
    fail("options must be a table, got %s", errors.show(opts))
  end
  for k in pairs(opts) do
    if not MODEL_OPTIONS[k] then
      fail("unknown model option %s", type(k) == "string" and "'" .. k .. "'" or errors.show(k))
    end
  end

  local M = setmetatable({ __model = true, table = tname, db = db }, Model)
  local columns, map, extras, names, deps, sqlname, by_sql = {}, {}, {}, {}, {}, {}, {}
  for i, d in ipairs(decls) do
    if not types.is_declaration(d) then
      fail("column #%d is not a column declaration (loam.text(...) and the like), got %s", i,
        errors.show(d))
    end
    local col, extra = types.declare(tname, d, i, db:backend())
    if map[col.name] then
      raise("misuse", string.format("%s.%s: the column is declared twice", tname, col.name),
        { model = tname, column = col.name }, d.where)
    end
    if by_sql[extra.column] then
      raise("misuse", string.format("%s.%s: column %q is also the column of field %s", tname,
        col.name, extra.column, by_sql[extra.column]), { model = tname, column = col.name },
        d.where)
    end
    if RESERVED[col.name] then
      raise("misuse", string.format("%s.%s: a column of this name would hide the instance "
        .. "method '%s'", tname, col.name, col.name), { model = tname, column = col.name }, d.where)
    end
    columns[i], map[col.name], extras[i], names[i] = col, col, extra, col.name
    sqlname[col.name], by_sql[extra.column] = extra.column, col.name
    if col.references ~= nil then
      deps[#deps + 1] = col.references.table
      local ref = d.opts.references
      if type(ref) == "table" then
        col.references.column = ref._column[ref.primary_key[1]]
      else
        -- A table name: its model's key, found when the DDL is made (the
        -- model may be declared later); the model's own table, below.
        col.references.column = nil
      end
    end
  end
  M.columns, M.column_map, M._names, M._deps = columns, map, names, deps
  -- Renames declared for `loam migrate generate`: the table's old name,
  -- and the old SQL name of each renamed column by its SQL name.
  if opts.renamed_from ~= nil then
    problem = types.ident_problem(opts.renamed_from)
    if problem then fail("renamed_from: table name %s", problem) end
  end
  M.renamed_from, M.column_renames = opts.renamed_from, {}
  for i, col in ipairs(columns) do
    if extras[i].renamed_from ~= nil then M.column_renames[sqlname[col.name]] = extras[i].renamed_from end
  end
  M._column, M._field = sqlname, by_sql
  table_parts(M, opts, extras, fail)
  for i, col in ipairs(columns) do
    local ref = col.references
    if ref ~= nil and ref.column == nil and ref.table == tname then
      if #M.primary_key ~= 1 then
        raise("misuse", string.format("%s.%s references its own table, whose primary key is "
          .. "not one column", tname, col.name), { model = tname, column = col.name },
          decls[i].where)
      end
      ref.column = sqlname[M.primary_key[1]]
    end
  end

  -- Everything below is derived once, so each statement costs no lookups.
  M._coerce, M._required, M._quick, M._quick_shape = {}, {}, {}, {}
  for _, col in ipairs(columns) do
    M._coerce[col.name] = types.coercer(col, db:backend())
    M._quick[col.name] = types.quick(col)
    M._quick_shape[col.name] = types.quick_shape(col) or false
    M._required[col.name] = col.null == false and col.default == nil and col.type ~= "id"
  end
  M._select = model.projection(M)
  M._pos = {}
  for i, name in ipairs(M._names) do M._pos[name] = i end
  M._peers = #M._names + 1
  M.relations, M._relation_names = {}, {}
  M.methods = setmetatable({}, { __index = Instance })
  M._meta = instance_meta(M)
  loader_maker(M)
  M._include_options = query.include_options
  M._find = setmetatable({}, WEAK_KEYS)
  M.find = key_finder(M)
  M._save = setmetatable({}, WEAK_KEYS)
  M._row_coercers, M._row_shapes = {}, {}
  -- A reference by table name points at the primary key of the model the
  -- Database holds for that table: the one last declared.
  db._models[tname] = M
  return M
end

-- The projection that loads the declared columns of M, qualified with
-- 'qual' when given: a column whose SQL name differs from its field is
-- selected AS the field, so every row arrives keyed by field names.
function model.projection(M, qual)
  local out = {}
  for i, name in ipairs(M._names) do
    local e = { k = "col", table = qual, name = M._column[name] }
    if e.name ~= name then e = { k = "alias", expr = e, as = name } end
    out[i] = e
  end
  return out
end

-- Refuses an assignment that save could not send, naming the field.
local function bad_assignment(M, key, message)
  raise("misuse", message, { model = M.table, field = key })
end

-- The metatable of M's instances.  Column values are plain fields, so a
-- read costs what a table read costs; the metamethods run only for keys
-- the instance does not hold: methods, relations, columns not selected,
-- and assignments to any of those or to names that are nothing of M.
-- Assigning nil to a field the instance holds is a raw assignment that
-- no metamethod sees; the field is then absent, and reading it again
-- (or saving) raises.
function instance_meta(M)
  local methods, rels, map, pos = M.methods, M.relations, M.column_map, M._pos
  local meta = { __name = "loam.Instance", model = M, __tostring = instance_tostring,
                 __pairs = instance.pairs }
  meta.__index = function(inst, key)
    local m = methods[key]
    if m ~= nil then return m end
    local rel = rels[key]
    if rel ~= nil then return relation.read(inst, rel) end
    if map[key] ~= nil then
      local snap = rawget(inst, STATE)
      if snap ~= nil and snap[pos[key]] ~= nil then
        raise("misuse", string.format("%s was assigned nil; assign loam.null to store NULL",
          label(M, key)), { model = M.table, column = key, field = key })
      end
    end
    return nil
  end
  meta.__newindex = function(inst, key, v)
    if map[key] ~= nil then
      if v == nil then
        bad_assignment(M, key, string.format("%s = nil: nil is no value of a column; assign "
          .. "loam.null to store NULL", label(M, key)))
      end
      rawset(inst, key, v)
      return
    end
    local rel = rels[key]
    if rel ~= nil then
      bad_assignment(M, key, string.format("%s.%s is a relation, not a column: %s", M.table, key,
        rel.kind == "belongs_to" and "set " .. table.concat(rel.owner_keys, ", ") .. " instead"
        or "relations are loaded (include, loam.preload), not assigned"))
    end
    bad_assignment(M, key, string.format("%s.%s: no column or relation of that name (columns: "
      .. "%s); an assignment to it would never be saved", M.table,
      type(key) == "string" and key or errors.show(key), column_list(M)))
  end
  return meta
end

-- The referenced table and column of 'col', a column of M: a reference
-- by table name takes the primary key of the model declared for it.
local function reference_of(M, col)
  local ref = col.references
  local out = {}
  for k, v in pairs(ref) do out[k] = v end
  if out.column == nil then
    local R = M.db._models[ref.table]
    if R == nil then
      misuse(M, string.format("%s references table %s, and no model of that table is declared "
        .. "on this database: declare it first (its primary key is the referenced column)",
        label(M, col.name), ref.table), col.name)
    end
    if #R.primary_key ~= 1 then
      misuse(M, string.format("%s references %s, whose primary key is not one column",
        label(M, col.name), R.table), col.name)
    end
    out.column = R._column[R.primary_key[1]]
  end
  return out
end

-- Foreign key 'fk' of M (M.foreign_keys) as the DDL declares it: the
-- referenced model's fields as its SQL names, its primary key when the
-- model gives no columns.  A table without a model takes 'ref_columns' as
-- they are.
local function foreign_key_of(M, fk, i)
  local R = fk.references
  if type(R) ~= "table" then R = M.db._models[fk.ref_table] end
  local what = string.format("%s: foreign key #%d (%s)", M.table, i, table.concat(fk.columns, ", "))
  local rcols = {}
  if R == nil then
    if fk.ref_columns == nil then
      misuse(M, string.format("%s references table %s, and no model of that table is declared "
        .. "on this database: declare it first, or name its columns in ref_columns", what,
        fk.ref_table))
    end
    rcols = fk.ref_columns
  elseif fk.ref_columns == nil then
    if #R.primary_key ~= #fk.columns then
      misuse(M, string.format("%s references %s, whose primary key has %d columns, not %d", what,
        R.table, #R.primary_key, #fk.columns))
    end
    for j, f in ipairs(R.primary_key) do rcols[j] = R._column[f] end
  else
    for j, f in ipairs(fk.ref_columns) do
      rcols[j] = R._column[f]
      if rcols[j] == nil then
        misuse(M, string.format("%s references %s.%s, which is no column of that model", what,
          R.table, f))
      end
    end
  end
  return { name = fk.name, columns = fk.columns, ref_table = fk.ref_table, ref_columns = rcols,
           on_delete = fk.on_delete, on_update = fk.on_update }
end

function Model.__tostring(M)
  return "loam.Model(" .. M.table .. ")"
end

-- The statements that create the model's table and its indexes.
function Model:ddl()
  local columns = {}
  for i, col in ipairs(self.columns) do
    local c = {}
    for k, v in pairs(col) do c[k] = v end
    c.name = self._column[col.name]
    if col.references ~= nil then c.references = reference_of(self, col) end
    columns[i] = c
  end
  local fks = {}
  for i, fk in ipairs(self.foreign_keys) do fks[i] = foreign_key_of(self, fk, i) end
  local ast = { { k = "create_table", name = self.table, columns = columns,
                  primary_key = self._table_pk, checks = self.checks, uniques = self.uniques,
                  foreign_keys = fks } }
  for _, index in ipairs(self.indexes) do
    ast[#ast + 1] = index
  end
  return ast
end

-- }======================================================================


-- {======================================================================
-- Coercion and loading
-- =======================================================================

function Model:coerce(name, v)
  local f = self._coerce[name]
  if f == nil then
    unknown_column(self, name)
  end
  local out, msg = f(v)
  if out == nil then
    raise("validation_error", label(self, name) .. ": " .. msg,
      { model = self.table, column = name })
  end
  return out
end

-- The functions that make rows into instances, written for the model:
-- one for a row, one for an array of rows that also records the result
-- set they came from when given one.  A row's state (loam.instance) is an
-- array: its fields' values in declaration order (M._pos), then the result
-- set (at M._peers), then each relation's value (at rel.slot), made by one
-- table constructor that reads each field by a constant key.  An array is
-- cheaper to make than a table keyed by name, and it is made at its final
-- size, room for the relations included, so setting them later never
-- grows it.  Written again whenever a relation is declared.  A field the
-- row lacks stays absent.
--
-- M._shape is the shape of the instances for the rows that the binding
-- makes instances as it reads them (a stream, see Query:each): { metatable, length of the state array, the
-- fields in position order, instance.KEY }, one table per model, kept up
-- to date here.
function loader_maker(M)
  local items = {}
  for i, name in ipairs(M._names) do items[i] = string.format("row[%q]", name) end
  if #M._relation_names > 0 then
    items[#items + 1] = "set"
    for _ = 1, #M._relation_names do items[#items + 1] = "nil" end
  end
  local snap = "{ " .. table.concat(items, ", ") .. " }"
  local key = string.format("%q", STATE)
  local shape = M._shape or { M._meta, 0, M._names, STATE }
  shape[2] = #items
  M._shape = shape
  local src = "local setmetatable, meta = ...\n"
    .. "local set\n"
    .. "local function one(row)\n"
    .. "  row[" .. key .. "] = " .. snap .. "\n"
    .. "  return setmetatable(row, meta)\n"
    .. "end\n"
    .. "local function all(rows, given)\n"
    .. "  set = given\n"
    .. "  for i = 1, #rows do\n"
    .. "    local row = rows[i]\n"
    .. "    row[" .. key .. "] = " .. snap .. "\n"
    .. "    setmetatable(row, meta)\n"
    .. "  end\n"
    .. "  set = nil\n"
    .. "  return rows\n"
    .. "end\n"
    .. "return one, all\n"
  M._load_row, M._load_rows = assert(load(src, "=loam.model loader", "t", {}))(setmetatable,
    M._meta)
end

-- The row itself becomes the instance: loading costs its snapshot, which
-- is the instance's state.
function Model:_load(row)
  return self._load_row(row)
end

-- Every row of 'rows' becomes an instance; 'set', when given, is the
-- result set they came from (loam.loader).
function Model:_load_all(rows, set)
  return self._load_rows(rows, set)
end

-- }======================================================================


-- {======================================================================
-- Statements of the model
-- =======================================================================

function Model:create(values)
  local cols, vals = columns_and_values(self, values, "create", true)
  local rows = self.db:run { k = "insert", into = self.table, columns = sql_names(self, cols),
                            rows = { vals }, returning = self._select }
  return self:_load(rows[1])
end

-- find(key) or, for a composite key, find(a, b) or find{ a = .., b = .. },
-- on connection 'c' when given (the reader M.find picked: one pick a call,
-- so the statement is prepared on the connection the call runs on).
local function find_on(self, c, ...)
  local pk, n = self.primary_key, select("#", ...)
  if #pk == 0 then
    misuse(self, self.table .. ": find needs a primary key, and the model has none")
  end
  local given = {}
  local first = ...
  if n == 1 and type(first) == "table" and getmetatable(first) == nil then
    local is_key = {}
    for _, name in ipairs(pk) do is_key[name] = true end
    for k in pairs(first) do
      if not is_key[k] then
        misuse(self, string.format("%s: find takes the primary key (%s), not %s; find_by "
          .. "takes any columns", self.table, table.concat(pk, ", "), errors.show(k)), k)
      end
    end
    for _, name in ipairs(pk) do given[name] = first[name] end
  elseif n == #pk then
    for i, name in ipairs(pk) do given[name] = (select(i, ...)) end
  else
    misuse(self, string.format("%s: find expects %d key value(s) (%s), got %d", self.table,
      #pk, table.concat(pk, ", "), n))
  end
  for _, name in ipairs(pk) do
    if given[name] == nil then
      misuse(self, string.format("%s: find needs a value for %s", self.table, name), name)
    end
    given[name] = self:coerce(name, given[name])
  end
  -- The statement of 'find' has one shape per model: prepare it once per
  -- connection (in '_find', weakly keyed by it) and bind the key values,
  -- in primary-key order, into its slots.  That is cheaper than db:run,
  -- which would build, convert and render the AST each time.
  c = c or self.db:reader()
  local p, rows = self._find[c], nil
  if p then
    if #pk == 1 then
      rows = p:run(given[pk[1]])
    else
      local params = {}
      for i, name in ipairs(pk) do params[i] = given[name] end
      rows = p:run(table.unpack(params, 1, #pk))
    end
  else
    p = c:prepare { k = "select", columns = self._select,
      from = { name = self.table }, where = key_condition(self, given, "find") }
    rows = p:run()
    self._find[c] = p
  end
  return rows[1] and self:_load(rows[1]) or nil
end

function Model:find(...)
  return find_on(self, nil, ...)
end

-- The usual call, one key value of a one-column key once the statement is
-- prepared, binds the coerced value straight away: M.find, a function of
-- the model's own that holds what it needs, so the call makes no lookups
-- but the connection's statement.  Every other call (a table of keys, a
-- missing value, a value its coercer refuses, the first call, another
-- model as 'self') takes Model.find.
function key_finder(M)
  local pk = M.primary_key
  -- A json key (a table as its value) goes the long way.
  if #pk ~= 1 or M.column_map[pk[1]].type == "json" then return nil end
  local coerce, cache, db = M._coerce[pk[1]], M._find, M.db
  local first  -- the prepared statements' 'first', found on the first one
  return function(self, ...)
    if self == M and select("#", ...) == 1 then
      local c = db:reader()
      local p = cache[c]
      local k = p and coerce((...))
      if k ~= nil then
        first = first or p.first
        local row = first(p, k)
        if row == nil then return nil end
        return M._load_row(row)
      end
      return find_on(self, c, ...)
    end
    return find_on(self, nil, ...)
  end
end

function Model:find_by(conditions)
  if type(conditions) ~= "table" then
    misuse(self, string.format("%s: find_by expects a table of conditions, got %s", self.table,
      errors.show(conditions)))
  end
  return query.new(self.db, self):where(conditions):first()
end

-- A function that gives the coerced values of the fields 'cols' of a row,
-- in that order, or nil when one is refused.  It is written for the
-- column set, as the snapshot is, so the array is made at its size, each
-- field is read by a constant key, and a value that passes its column's
-- quick test (types.quick) is taken without a call; it is made once per
-- model and set.
local function row_coercer(M, cols)
  local key = table.concat(cols, "\0")
  local f = M._row_coercers[key]
  if f == nil then
    local reads, lines = {}, {}
    for j, name in ipairs(cols) do
      reads[j] = string.format("row[%q]", name)
      local quick = M._quick[name]
      lines[j] = string.format("  v = t[%d] if not (%s) then v = c[%d](v) if v == nil then return nil "
        .. "end t[%d] = v end", j, quick or "false", j, j)
    end
    local src = "local mtype, utf8_len, find, type, c = ...\nreturn function(row)\n  local t = { "
      .. table.concat(reads, ", ") .. " }\n  local v\n" .. table.concat(lines, "\n")
      .. "\n  return t\nend"
    local coercers = {}
    for j, name in ipairs(cols) do coercers[j] = M._coerce[name] end
    f = assert(load(src, "=loam.model row coercer", "t", {}))(types.quick_env(coercers))
    M._row_coercers[key] = f
  end
  return f
end

-- The row shape of the fields 'cols' for core.insert_records: their SQL
-- names, their coercers and quick tests (types.quick_shape), with which
-- the core checks and converts the rows after the first in one pass; made
-- once per model and set.
local function row_shape(M, cols)
  local key = table.concat(cols, "\0")
  local shape = M._row_shapes[key]
  if shape == nil then
    shape = { columns = sql_names(M, cols), fields = cols, quick = {}, coerce = {} }
    for j, name in ipairs(cols) do
      shape.quick[j] = M._quick_shape[name]
      shape.coerce[j] = M._coerce[name]
    end
    M._row_shapes[key] = shape
  end
  return shape
end

function Model:insert_many(list, opts)
  opts = check_options(self, opts, { returning = true }, "insert_many")
  if type(list) ~= "table" then
    misuse(self, string.format("%s: insert_many expects an array of rows, got %s", self.table,
      errors.show(list)))
  end
  if #list == 0 then
    return opts.returning and {} or 0
  end
  -- Row 1 goes the full way and fixes the columns and their coercers.  A
  -- later row that sets exactly those columns, each to a value its coercer
  -- takes, is coerced in place; any other row takes the full way again,
  -- which raises the same error a row-by-row check would.
  local cols, vals = columns_and_values(self, list[1], "insert_many", true)
  local function full(i)
    local c, row = columns_and_values(self, list[i], "insert_many", true)
    if not same_names(c, cols) then
      misuse(self, string.format("%s: insert_many row %d sets (%s), row 1 sets (%s); every row "
        .. "must set the same columns", self.table, i, table.concat(c, ", "),
        table.concat(cols, ", ")))
    end
    return row
  end
  -- Without RETURNING the core reads the rows (COPY on PostgreSQL): the
  -- values that pass their column's quick test are taken in C, the others
  -- go through their coercer, and a row that is not a plain table of
  -- exactly these fields, or holds a value its coercer refuses, through
  -- 'full', so every error is the one a row-by-row check raises, raised
  -- in row order before anything is sent.
  if not opts.returning then
    self.db._dirty = true  -- reads wait for replicas to replay this (loam.database, "Replicas")
    return insert_records(self.db, self.table, row_shape(self, cols), list, vals, full)
  end
  local data, n = { vals }, #cols
  local coerce_row = row_coercer(self, cols)
  local is_col = {}
  for j = 1, n do is_col[cols[j]] = true end
  -- Up to the first nil, as ipairs goes: core.plain_rows finds the next
  -- row from 'i' on that is not a plain table of exactly those columns.
  local i = 2
  while true do
    local stop = plain_rows(list, is_col, n, i)
    for r = i, stop - 1 do
      data[r] = coerce_row(list[r]) or full(r)
    end
    if list[stop] == nil then break end
    data[stop] = full(stop)
    i = stop + 1
  end
  local result = self.db:run { k = "insert", into = self.table, columns = sql_names(self, cols),
                               rows = data, returning = self._select }
  for i = 1, #result do self:_load(result[i]) end
  return result
end

-- INSERT ... ON CONFLICT (conflict) DO UPDATE SET the 'update' columns to
-- the proposed values, or DO NOTHING without 'update'.  'update = true'
-- updates every column of the row outside the conflict target.
function Model:upsert(values, opts)
  opts = check_options(self, opts, { conflict = true, update = true }, "upsert")
  local cols, vals = columns_and_values(self, values, "upsert", true)
  local target
  if opts.conflict ~= nil then
    target = column_names(self, opts.conflict, "upsert conflict")
  elseif #self.primary_key > 0 then
    target = self.primary_key
  else
    misuse(self, self.table .. ": upsert needs 'conflict' columns, and the model has no "
      .. "primary key")
  end
  local conflict = { target = sql_names(self, target), action = "nothing" }
  if opts.update ~= nil then
    local update
    if opts.update == true then
      local skip = {}
      for _, name in ipairs(target) do skip[name] = true end
      update = {}
      for _, name in ipairs(cols) do
        if not skip[name] then update[#update + 1] = name end
      end
    else
      update = column_names(self, opts.update, "upsert update")
    end
    if #update > 0 then
      conflict.action = "update"
      conflict.set = {}
      for i, name in ipairs(update) do
        if values[name] == nil then
          misuse(self, string.format("%s: upsert updates %s, which the row does not set",
            self.table, name), name)
        end
        local c = self._column[name]
        conflict.set[i] = { col = c, expr = { k = "excluded", name = c } }
      end
    end
  end
  local rows = self.db:run { k = "insert", into = self.table, columns = sql_names(self, cols),
    rows = { vals }, conflict = conflict, returning = self._select }
  return rows[1] and self:_load(rows[1]) or nil
end

-- Relations are declared once both models exist, so two models can point
-- at each other; loam.relation checks and keeps them.  A relation's
-- value sits in its own slot of the owner's state arrays, after the
-- fields and the result set.
local function declared(M, name)
  M.relations[name].slot = M._peers + #M._relation_names
  loader_maker(M)
  return M
end

function Model:belongs_to(name, target, opts)
  relation.declare(self, "belongs_to", name, target, opts)
  return declared(self, name)
end

function Model:has_one(name, target, opts)
  relation.declare(self, "has_one", name, target, opts)
  return declared(self, name)
end

function Model:has_many(name, target, opts)
  relation.declare(self, "has_many", name, target, opts)
  return declared(self, name)
end

-- The model's default for lazy loading; Model:lazy() is the query method
-- (a query whose instances load lazily), as on any query.
function Model:lazy_loading(flag)
  return relation.model_lazy(self, flag)
end

-- Every method that starts a query chain, forwarded to a new query on the
-- model: Model:where{...} is query.new(Model.db, Model):where{...}.
for _, name in ipairs(query.methods) do
  if Model[name] == nil then
    Model[name] = function(self, ...)
      local q = query.new(self.db, self)
      return q[name](q, ...)
    end
  end
end

-- }======================================================================


-- {======================================================================
-- Instances
-- =======================================================================

-- The UPDATE of 'save': the fields 'fields' set to the first #fields of
-- 'values' (coerced), in the row whose key is the rest of them (in
-- primary-key order).
local function update_ast(M, fields, values)
  local set, nset = {}, #fields
  for i = 1, nset do
    set[i] = { col = M._column[fields[i]], field = fields[i], expr = { k = "val", v = values[i] } }
  end
  return { k = "update", table = M.table, set = set, where = key_ast(M, values, nset),
           returning = M._select }
end

-- The row that the UPDATE of 'save' (update_ast) gives back (RETURNING),
-- or nil when no row has the key.  Its statement has one shape per model
-- and set of fields: the first of a shape on a connection runs by db:run,
-- the second prepares it (in '_save', by connection, then by the fields)
-- and later ones bind their values into its slots, with no AST built,
-- converted or rendered.  Only plain values (numbers, strings) are bound
-- so; a statement whose parameters are not exactly the values set and the
-- key, in that order, is never kept.
local function save_row(M, fields, values)
  local nset, n = #fields, #values
  local db = M.db
  local c = db._c  -- db:connection(), but a closed Database raises as db:run does
  for i = 1, n do
    if not query.plain_value(values[i]) then c = nil end
  end
  if not c then return db:run(update_ast(M, fields, values))[1] end
  db._dirty = true  -- reads wait for replicas to replay this (loam.database, "Replicas")
  local shape = nset == 1 and fields[1] or table.concat(fields, "\0")
  local by_shape = M._save[c]
  if by_shape == nil then
    by_shape = {}
    M._save[c] = by_shape
  end
  local p = by_shape[shape]
  if p == nil then
    by_shape[shape] = false
  elseif p == false then
    p = c:prepare(update_ast(M, fields, values))
    local _, rendered = p:sql()
    local same = #rendered == n
    for i = 1, n do
      local v, r = values[i], rendered[i]
      if math.type(v) ~= math.type(r) or type(v) ~= type(r) or v ~= r then same = false end
    end
    if same then
      by_shape[shape] = p
    else
      p:close()
      p = true
      by_shape[shape] = true
    end
  end
  if p and p ~= true then return p:first(table.unpack(values, 1, n)) end
  return db:run(update_ast(M, fields, values))[1]
end

-- Sends the columns whose value differs from the snapshot, and nothing
-- when none does.  The row is found by the key it had when loaded, and
-- the instance takes the row RETURNING gives back (defaults, triggers).
function Instance:save()
  local M = owner(self, "save")
  local snap = snapshot(self)
  local names, fields, values, n = M._names, nil, nil, 0
  for i = 1, #names do
    local name = names[i]
    local v = rawget(self, name)
    if v ~= snap[i] then
      if v == nil then
        misuse(M, string.format("%s is nil; assign loam.null to store NULL", label(M, name)),
          name)
      end
      if n == 0 then fields, values = {}, {} end
      n = n + 1
      fields[n], values[n] = name, M:coerce(name, v)
    end
  end
  if n == 0 then
    return self
  end
  -- The key follows the values set, as the UPDATE's parameters do.
  key_values(M, loaded_key(M, self), "save", values, n)
  local row = save_row(M, fields, values)
  if row == nil then
    raise("not_found", string.format("%s: save found no row with the instance's key (was it "
      .. "deleted?)", M.table), { model = M.table })
  end
  -- Relations loaded over a key that changed describe another row now.
  if next(M.relations) ~= nil then
    local changed = {}
    for i = 1, n do changed[fields[i]] = true end
    relation.forget(self, changed)
  end
  refresh(M, self, row)
  return self
end

-- Assigns 'values' and saves.  All values are checked before any is
-- assigned, so a refused value leaves the instance as it was.
function Instance:update(values)
  local M = owner(self, "update")
  local cols, vals = columns_and_values(M, values, "update")
  for i, name in ipairs(cols) do
    self[name] = vals[i]
  end
  return self:save()
end

-- Deletes the row; true when there was one to delete.
function Instance:delete()
  local M = owner(self, "delete")
  return M.db:run { k = "delete", from = M.table,
                    where = key_condition(M, loaded_key(M, self), "delete") } > 0
end

-- Reads the row again; unsaved changes are dropped.
function Instance:reload()
  local M = owner(self, "reload")
  local rows = M.db:run { k = "select", columns = M._select, from = { name = M.table },
                         where = key_condition(M, loaded_key(M, self), "reload") }
  if rows[1] == nil then
    raise("not_found", M.table .. ": reload found no row with the instance's key (was it "
      .. "deleted?)", { model = M.table })
  end
  relation.forget(self)  -- a fresh row, so relations load afresh too
  refresh(M, self, rows[1])
  return self
end

local TO_TABLE_OPTIONS = { only = true, except = true, nulls = true, include = true }

local function name_set(M, list, what)
  local set = {}
  for _, name in ipairs(column_names(M, list, what)) do set[name] = true end
  return set
end

-- The loaded column values as a plain table.  It reads fields only, so it
-- works on a closed connection.  NULL columns are left out unless
-- 'nulls' is true, then they hold loam.null.  'include' adds loaded
-- relations (loam.relation); one not loaded raises not_loaded, never loads.
function Instance:to_table(opts)
  local M = owner(self, "to_table")
  opts = check_options(M, opts, TO_TABLE_OPTIONS, "to_table")
  local only = opts.only and name_set(M, opts.only, "to_table only")
  local except = opts.except and name_set(M, opts.except, "to_table except")
  local nulls = opts.nulls == true
  local out = {}
  for _, name in ipairs(M._names) do
    if (only == nil or only[name]) and (except == nil or not except[name]) then
      local v = rawget(self, name)
      if v ~= nil and (v ~= null or nulls) then
        out[name] = v
      end
    end
  end
  if opts.include ~= nil then
    relation.serialize(self, out, opts.include, nulls)
  end
  return out
end

function instance_tostring(self)
  local M = model.of(self)
  local key = {}
  for i, name in ipairs(M.primary_key) do
    key[i] = name .. "=" .. tostring(rawget(self, name))
  end
  return "loam.Instance(" .. M.table .. (#key > 0 and " " .. table.concat(key, " ") or "") .. ")"
end

-- }======================================================================


-- {======================================================================
-- Whether migrations manage the schema (for loam.schema)
-- =======================================================================

local function has_migrations(db)
  return db:table_exists(MIGRATIONS_TABLE)
end

-- loam.schema, which makes tables straight from models, asks these.
model.MIGRATIONS_TABLE = MIGRATIONS_TABLE
model.has_migrations = has_migrations

-- }======================================================================


return model
