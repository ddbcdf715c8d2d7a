-- loam.migrate.ops: the operations a migration file declares, as data.
--
-- Each constructor checks its arguments when it is called (an unknown
-- option is refused with the list of valid ones, so a typo never drops a
-- constraint without a word), records where it was called ('at', the
-- "file:line" of the migration file) and returns a plain table whose
-- fields mirror the core's 'loam_op' (loam.h): the binding
-- (bindings/lua_migrate.c) reads it as it is.  Columns are declared with
-- loam's own column constructors (loam.text, loam.integer, ...), so a
-- column in a migration reads as in a model; they become columns of the
-- DDL AST here, named as in SQL.
--
--   ops.create_table(name, { columns..., primary_key =, checks =, uniques =,
--                            foreign_keys = })
--   ops.drop_table(name)
--   ops.rename_table(old, new)
--   ops.add_column(table, column)
--   ops.drop_column(table, name)
--   ops.rename_column(table, old, new)
--   ops.alter_column(table, name, { type =, null =, default =, before = })
--   ops.add_index(table, { cols }, { name =, unique =, where =, concurrently = })
--   ops.drop_index(table, name, { concurrently = })
--   ops.add_foreign_key(table, { cols }, ref_table, { ref_cols },
--                       { name =, on_delete =, on_update =, not_valid = })
--   ops.validate_foreign_key(table, name)
--   ops.drop_foreign_key(table, name)
--   ops.add_check(table, name, predicate_sql, { not_valid = })
--   ops.drop_check(table, name)
--   ops.add_unique(table, { cols }, { name = })
--   ops.drop_unique(table, name)
--   ops.execute(sql [, params [, { down = sql }]])
--   ops.backfill(table, { set = { col = value } | set_sql =, where = { col = value } |
--                where_sql =, batch =, key =, pause_ms = })   (data migrations only)
--
--   ops.NAMES         the constructors' names, in the order above
--   ops.SCHEMA, ops.DATA   which names belong to schema and data migrations

local core = require "loam.core"
local errors = require "loam.errors"
local types = require "loam.types"
local model = require "loam.model"

local show = errors.show

local ops = {}

ops.NAMES = {
  "create_table", "drop_table", "rename_table", "add_column", "drop_column", "rename_column",
  "alter_column", "add_index", "drop_index", "add_foreign_key", "validate_foreign_key",
  "drop_foreign_key", "add_check", "drop_check", "add_unique", "drop_unique", "execute",
  "backfill",
}

-- 'execute' and 'backfill' are the operations a data migration may hold:
-- they change rows, not the schema.  A schema migration may execute SQL
-- too, but not backfill: a backfill runs in batches outside the
-- migration's transaction, which a schema change must not.
ops.DATA = { execute = true, backfill = true }
ops.SCHEMA = {}
for _, name in ipairs(ops.NAMES) do
  if name ~= "backfill" then ops.SCHEMA[name] = true end
end


-- The "file:line" of the migration file's call; errors.where() names the
-- first caller outside loam.
local function here()
  return (errors.where():gsub(":%s*$", ""))
end

-- Raises a misuse error of constructor 'op' at the caller's line.
local function fail(op, fmt, ...)
  errors.raise("misuse", op .. ": " .. string.format(fmt, ...))
end

local function name_of(v)
  return type(v) == "string" and "'" .. v .. "'" or show(v)
end

-- An identifier argument: a non-empty string the core will accept.
local function ident(op, what, v)
  local problem = types.ident_problem(v)
  if problem then
    fail(op, "%s %s", what, problem)
  end
  return v
end

local function sqltext(op, what, v)
  if type(v) ~= "string" or v:match("^%s*$") then
    fail(op, "%s must be a non-empty SQL string, got %s", what, show(v))
  end
  return v
end

-- The options table 'opts' of constructor 'op', checked against 'valid'
-- (an array of { name, type }): an unknown name is refused with the list
-- of the valid ones, a value of the wrong type names the option.
local function options(op, opts, valid)
  if opts == nil then
    return {}
  end
  if type(opts) ~= "table" or getmetatable(opts) ~= nil then
    fail(op, "options must be a table, got %s", show(opts))
  end
  local want, list = {}, {}
  for i, v in ipairs(valid) do
    want[v[1]] = v[2]
    list[i] = v[1]
  end
  for k, v in pairs(opts) do
    local t = want[k]
    if t == nil then
      fail(op, "unknown option %s (valid options: %s)", name_of(k), table.concat(list, ", "))
    end
    if t ~= "any" and type(v) ~= t then
      fail(op, "option '%s' must be a %s, got %s", k, t, show(v))
    end
  end
  return opts
end

-- An array of column names (a single name is taken as a one-item array).
local function names(op, what, v)
  if type(v) == "string" then
    v = { v }
  end
  if type(v) ~= "table" or #v == 0 then
    fail(op, "%s must be a column name or a non-empty array of them, got %s", what, show(v))
  end
  local out = {}
  for k, name in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > #v then
      fail(op, "%s must be an array of column names, it has the key %s", what, name_of(k))
    end
    out[k] = ident(op, what .. " #" .. k, name)
  end
  return out
end

-- 'n' arguments beyond the 'max' a constructor takes are refused.
local function no_extra(op, n, max)
  if n > 0 then
    fail(op, "takes at most %d arguments, got %d", max, max + n)
  end
end

-- The DDL AST column of declaration 'd' (loam.text("status", ...)) of
-- table 'tname'.  The column takes its SQL name; a reference by table name
-- points at that table's primary key, which the core writes as
-- REFERENCES "t" alone, since no model is at hand to name it.
local function column(op, tname, d, what)
  if not types.is_declaration(d) then
    fail(op, "%s must be a column declaration (text(...), integer(...) and the like), got %s",
      what, show(d))
  end
  local col, extra = types.declare(tname, d, 1, nil)
  if extra.check ~= nil then
    fail(op, "column %s: a check is a constraint of its own here; write add_check(%q, name, %q)",
      col.name, tname, extra.check)
  end
  col.name = extra.column
  if col.references ~= nil and type(d.opts.references) == "string" then
    col.references.column = nil
  end
  return col
end

local function op_table(t)
  t.at = here()
  return t
end


-- The constructor of operation 'op', which names a table and one thing
-- of it ('what': "column name", "constraint name").
local function table_and_name(op, what)
  return function(tname, name, ...)
    no_extra(op, select("#", ...), 2)
    return op_table { op = op, table = ident(op, "table name", tname),
                      name = ident(op, what, name) }
  end
end

ops.drop_column = table_and_name("drop_column", "column name")
ops.validate_foreign_key = table_and_name("validate_foreign_key", "constraint name")
ops.drop_foreign_key = table_and_name("drop_foreign_key", "constraint name")
ops.drop_check = table_and_name("drop_check", "constraint name")
ops.drop_unique = table_and_name("drop_unique", "constraint name")

function ops.create_table(name, spec, ...)
  local op = "create_table"
  no_extra(op, select("#", ...), 2)
  ident(op, "table name", name)
  if type(spec) ~= "table" or getmetatable(spec) ~= nil or #spec == 0 then
    fail(op, "%s needs a table of columns (id(), text(...), ...) and options, got %s", name,
      show(spec))
  end
  local decls, opts = {}, {}
  for k, v in pairs(spec) do
    if math.type(k) ~= "integer" then
      opts[k] = v
    end
  end
  options(op, opts, { { "primary_key", "any" }, { "checks", "table" }, { "uniques", "table" },
                     { "foreign_keys", "table" } })
  for i = 1, #spec do decls[i] = spec[i] end
  -- A model of the table, declared on no database, makes the table's
  -- parts (keys, checks, uniques and their names) exactly as a model with
  -- these columns would; indexes are operations of their own.
  local M = model.new({ backend = function() return nil end, _models = {} }, name, decls, opts)
  local columns = {}
  for i, col in ipairs(M.columns) do
    local c = {}
    for k, v in pairs(col) do c[k] = v end
    c.name = M._column[col.name]
    columns[i] = c
  end
  -- No model is at hand for a referenced table: its columns are as given,
  -- or its primary key.
  local fks = {}
  for i, fk in ipairs(M.foreign_keys) do
    fks[i] = { name = fk.name, columns = fk.columns, ref_table = fk.ref_table,
               ref_columns = fk.ref_columns, on_delete = fk.on_delete, on_update = fk.on_update }
  end
  return op_table { op = op, table = name, def = {
    k = "create_table", name = name, columns = columns, primary_key = M._table_pk,
    checks = M.checks[1] and M.checks or nil, uniques = M.uniques[1] and M.uniques or nil,
    foreign_keys = fks[1] and fks or nil,
  } }
end

function ops.drop_table(name, ...)
  no_extra("drop_table", select("#", ...), 1)
  return op_table { op = "drop_table", table = ident("drop_table", "table name", name) }
end

function ops.rename_table(old, new, ...)
  local op = "rename_table"
  no_extra(op, select("#", ...), 2)
  return op_table { op = op, table = ident(op, "table name", old),
                    new_name = ident(op, "new name", new) }
end

function ops.add_column(tname, decl, ...)
  local op = "add_column"
  no_extra(op, select("#", ...), 2)
  ident(op, "table name", tname)
  return op_table { op = op, table = tname, column = column(op, tname, decl, "the column") }
end

function ops.rename_column(tname, old, new, ...)
  local op = "rename_column"
  no_extra(op, select("#", ...), 3)
  return op_table { op = op, table = ident(op, "table name", tname),
                    name = ident(op, "column name", old), new_name = ident(op, "new name", new) }
end

-- alter_column(table, name, { type = text(name, ...), null = bool,
-- default = value | loam.null (drops it), before = text(name, ...) })
-- The column "as it becomes" is the 'type' declaration (else 'before')
-- with 'null' and 'default' applied; a default is written for a type, so
-- changing one needs 'type' or 'before'.  'before', the column as it
-- was, makes the operation reversible.
function ops.alter_column(tname, name, opts, ...)
  local op = "alter_column"
  no_extra(op, select("#", ...), 3)
  ident(op, "table name", tname)
  ident(op, "column name", name)
  if opts == nil then
    fail(op, "%s.%s: say what changes: { type =, null =, default = }", tname, name)
  end
  opts = options(op, opts, { { "type", "any" }, { "null", "boolean" }, { "default", "any" },
                             { "before", "any" } })
  local alter = { type = opts.type ~= nil, null = opts.null ~= nil,
                  default = opts.default ~= nil }
  if not (alter.type or alter.null or alter.default) then
    fail(op, "%s.%s: say what changes: type, null and/or default", tname, name)
  end
  local function decl(which)
    local col = column(op, tname, opts[which], "option '" .. which .. "'")
    if col.name ~= name then
      fail(op, "%s.%s: option '%s' declares column '%s' (rename with rename_column)", tname,
        name, which, col.name)
    end
    return col
  end
  local before = opts.before ~= nil and decl("before") or nil
  local col
  if opts.type ~= nil then
    col = decl("type")
  elseif before ~= nil then
    col = {}
    for k, v in pairs(before) do col[k] = v end
  elseif alter.default then
    fail(op, "%s.%s: a default is written for the column's type: give type = (the column as "
      .. "it becomes) or before = (the column as it was)", tname, name)
  else
    col = { name = name }
  end
  if alter.null then
    col.null = opts.null
  end
  if alter.default then
    local default = opts.default
    if default == core.null then
      col.default = nil
    else
      local v, msg = default, nil
      if default ~= types.now and getmetatable(default) == nil then
        v, msg = types.coercer(col)(default)
      end
      if v == nil then
        fail(op, "%s.%s: bad default: %s", tname, name, msg)
      end
      col.default = v
    end
  end
  return op_table { op = op, table = tname, name = name, alter = alter, column = col,
                    before = before }
end

function ops.add_index(tname, cols, opts, ...)
  local op = "add_index"
  no_extra(op, select("#", ...), 3)
  ident(op, "table name", tname)
  local columns = names(op, "columns", cols)
  opts = options(op, opts, { { "name", "string" }, { "unique", "boolean" },
                             { "where", "string" }, { "concurrently", "boolean" } })
  if opts.name ~= nil then ident(op, "index name", opts.name) end
  if opts.where ~= nil then sqltext(op, "where", opts.where) end
  return op_table { op = op, table = tname, concurrently = opts.concurrently == true, index = {
    k = "create_index", name = opts.name, table = tname, columns = columns,
    unique = opts.unique == true, where = opts.where,
  } }
end

function ops.drop_index(tname, name, opts, ...)
  local op = "drop_index"
  no_extra(op, select("#", ...), 3)
  ident(op, "table name", tname)
  ident(op, "index name", name)
  opts = options(op, opts, { { "concurrently", "boolean" } })
  return op_table { op = op, table = tname, name = name, concurrently = opts.concurrently == true }
end

local ACTIONS = { "no action", "restrict", "cascade", "set null", "set default" }

local function action(op, which, v)
  if v == nil then return nil end
  for _, a in ipairs(ACTIONS) do
    if v == a then return v end
  end
  fail(op, "%s must be one of %s; got %s", which, table.concat(ACTIONS, ", "), show(v))
end

-- The constraint's name: 'given', checked, or the name PostgreSQL would
-- give it, so 'down' and later migrations can name it.
local function constraint_name(op, given, tname, columns, suffix)
  if given ~= nil then return ident(op, "constraint name", given) end
  return (core.constraint_name(tname, columns, suffix))
end

function ops.add_foreign_key(tname, cols, ref_table, ref_cols, opts, ...)
  local op = "add_foreign_key"
  no_extra(op, select("#", ...), 5)
  ident(op, "table name", tname)
  local columns = names(op, "columns", cols)
  ident(op, "referenced table", ref_table)
  local ref_columns = names(op, "referenced columns", ref_cols)
  if #ref_columns ~= #columns then
    fail(op, "%s: %d columns reference %d columns of %s", tname, #columns, #ref_columns,
      ref_table)
  end
  opts = options(op, opts, { { "name", "string" }, { "on_delete", "string" },
                             { "on_update", "string" }, { "not_valid", "boolean" } })
  local name = constraint_name(op, opts.name, tname, columns, "fkey")
  return op_table { op = op, table = tname, name = name, columns = columns,
                    ref_table = ref_table, ref_columns = ref_columns,
                    on_delete = action(op, "on_delete", opts.on_delete),
                    on_update = action(op, "on_update", opts.on_update),
                    not_valid = opts.not_valid == true }
end

function ops.add_check(tname, name, sql, opts, ...)
  local op = "add_check"
  no_extra(op, select("#", ...), 4)
  ident(op, "table name", tname)
  ident(op, "constraint name", name)
  sqltext(op, "the predicate", sql)
  opts = options(op, opts, { { "not_valid", "boolean" } })
  return op_table { op = op, table = tname, name = name, sql = sql,
                    not_valid = opts.not_valid == true }
end

function ops.add_unique(tname, cols, opts, ...)
  local op = "add_unique"
  no_extra(op, select("#", ...), 3)
  ident(op, "table name", tname)
  local columns = names(op, "columns", cols)
  opts = options(op, opts, { { "name", "string" } })
  local name = constraint_name(op, opts.name, tname, columns, "key")
  return op_table { op = op, table = tname, name = name, columns = columns }
end

function ops.execute(sql, params, opts, ...)
  local op = "execute"
  no_extra(op, select("#", ...), 3)
  sqltext(op, "the SQL", sql)
  if params ~= nil then
    if type(params) ~= "table" or getmetatable(params) ~= nil then
      fail(op, "parameters must be an array, got %s", show(params))
    end
    for k in pairs(params) do
      if math.type(k) ~= "integer" or k < 1 or k > #params then
        fail(op, "parameters must be an array, it has the key %s (options are the third "
          .. "argument: execute(sql, params, { down = ... }))", name_of(k))
      end
    end
  end
  opts = options(op, opts, { { "down", "string" } })
  if opts.down ~= nil then sqltext(op, "down", opts.down) end
  return op_table { op = op, sql = sql, params = params, down_sql = opts.down }
end

-- The column = value pairs of option 'what' of a backfill, checked; a
-- value is anything a statement parameter takes (loam.null for NULL).
local function pairs_of(op, what, t)
  if getmetatable(t) ~= nil or next(t) == nil then
    fail(op, "%s must be a table { column = value, ... } with at least one column, got %s",
      what, show(t))
  end
  for k, v in pairs(t) do
    ident(op, what .. " column", k)
    local ty = type(v)
    if ty ~= "string" and ty ~= "number" and ty ~= "boolean" and v ~= core.null then
      fail(op, "%s.%s must be a string, number, boolean or loam.null, got %s", what, k, show(v))
    end
  end
  return t
end

-- backfill(table, { set | set_sql, where | where_sql, batch, key, pause_ms }):
-- the rows of 'table' that 'where' still selects get 'set', 'batch' rows
-- (default 1000) at a time by ranges of the unique key 'key' (default:
-- the table's one-column primary key), 'pause_ms' between batches.  The
-- core's runner runs it (LOAM_OP_BACKFILL), and checks it against the
-- table.  'where' is what makes it idempotent: a row done no longer
-- matches, so a resumed run skips it.
function ops.backfill(tname, opts, ...)
  local op = "backfill"
  no_extra(op, select("#", ...), 2)
  ident(op, "table name", tname)
  if opts == nil then
    fail(op, "needs options { set = { column = value } or set_sql = \"...\", where = "
      .. "{ column = value } or where_sql = \"...\" }")
  end
  opts = options(op, opts, { { "set", "table" }, { "set_sql", "string" }, { "where", "table" },
                             { "where_sql", "string" }, { "batch", "number" },
                             { "key", "string" }, { "pause_ms", "number" } })
  if (opts.set == nil) == (opts.set_sql == nil) then
    fail(op, "needs one of 'set' (a table { column = value }) and 'set_sql' (the SQL after SET)")
  end
  if (opts.where == nil) == (opts.where_sql == nil) then
    fail(op, "needs one of 'where' (a table { column = value }) and 'where_sql' (a predicate): "
      .. "the rows still to change, so that a resumed run skips those done")
  end
  if opts.set ~= nil then pairs_of(op, "set", opts.set) end
  if opts.set_sql ~= nil then sqltext(op, "set_sql", opts.set_sql) end
  if opts.where ~= nil then pairs_of(op, "where", opts.where) end
  if opts.where_sql ~= nil then sqltext(op, "where_sql", opts.where_sql) end
  local batch = opts.batch or 1000
  if math.type(batch) ~= "integer" or batch < 1 then
    fail(op, "option 'batch' must be a positive integer, got %s", show(opts.batch))
  end
  if opts.key ~= nil then ident(op, "key", opts.key) end
  local pause = opts.pause_ms
  if pause ~= nil and (math.type(pause) ~= "integer" or pause < 0) then
    fail(op, "option 'pause_ms' must be a non-negative integer, got %s", show(pause))
  end
  return op_table { op = op, table = tname, set = opts.set, set_sql = opts.set_sql,
                    where = opts.where, where_sql = opts.where_sql, batch = batch,
                    key = opts.key, pause_ms = pause }
end

-- Refuses a table that is not an operation made here.
function ops.is_op(v)
  return type(v) == "table" and type(v.op) == "string"
    and (ops.SCHEMA[v.op] == true or ops.DATA[v.op] == true)
end

return ops
