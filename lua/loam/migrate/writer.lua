-- loam.migrate.writer: operations (the op tables of loam.migrate.ops, as
-- loam.migrate.diff makes them) written as a migration file, in the
-- syntax a person writes one (see loam.migrate.ops): columns through the
-- same constructors as in a model, each operation on its own line.
--
--   writer.text(ops, { parent =, title = }) -> the file's text
--     With every operation reversible the file has 'change' (down is
--     derived); else 'up' and a 'down' written here, each operation's
--     inverse in reverse order.
--   writer.reversible(op) -> whether 'change' can derive op's inverse

local core = require "loam.core"
local diff = require "loam.migrate.diff"
local pull = require "loam.migrate.pull"

local writer = {}

local lstr, list = pull.lstr, pull.list

-- A column of the DDL AST as its constructor call: what a migration may
-- declare on a column (its checks are constraints of their own there).
local function column(col, keep_keys)
  local d = diff.describe_column(col)
  d.check = nil
  if not keep_keys then d.unique, d.primary_key, d.references = nil, nil, nil end
  return pull.column_text(d, "")
end

local function index_args(ix)
  local o = {}
  if ix.name ~= nil and ix.name ~= core.constraint_name(ix.table, ix.columns, "idx") then
    o[#o + 1] = "name = " .. lstr(ix.name)
  end
  if ix.unique then o[#o + 1] = "unique = true" end
  if ix.where then o[#o + 1] = "where = " .. lstr(ix.where) end
  return o
end

-- The constructor call of each operation; 'ind' indents the lines after
-- the first.
local RENDER = {}

function RENDER.create_table(op, ind)
  local def = op.def
  local lines = { ("create_table(%s, {"):format(lstr(op.table)) }
  for _, col in ipairs(def.columns) do
    lines[#lines + 1] = ind .. "  " .. column(col, true) .. ","
  end
  if def.primary_key then
    lines[#lines + 1] = ind .. "  primary_key = " .. list(def.primary_key) .. ","
  end
  if def.uniques and #def.uniques > 0 then
    local items = {}
    for _, u in ipairs(def.uniques) do
      local cols = {}
      for i, c in ipairs(u.columns) do cols[i] = lstr(c) end
      if u.name and u.name ~= core.constraint_name(op.table, u.columns, "key") then
        cols[#cols + 1] = "name = " .. lstr(u.name)
      end
      items[#items + 1] = "{ " .. table.concat(cols, ", ") .. " }"
    end
    lines[#lines + 1] = ind .. "  uniques = { " .. table.concat(items, ", ") .. " },"
  end
  if def.checks and #def.checks > 0 then
    local items = {}
    for _, ck in ipairs(def.checks) do
      local key = ck.name:match("^[%a_][%w_]*$") and ck.name or ("[" .. lstr(ck.name) .. "]")
      items[#items + 1] = key .. " = " .. lstr(ck.sql)
    end
    lines[#lines + 1] = ind .. "  checks = { " .. table.concat(items, ", ") .. " },"
  end
  if def.foreign_keys and #def.foreign_keys > 0 then
    local items = {}
    for i, fk in ipairs(def.foreign_keys) do items[i] = pull.foreign_key_text(op.table, fk) end
    lines[#lines + 1] = ind .. "  foreign_keys = { " .. table.concat(items, ", ") .. " },"
  end
  lines[#lines + 1] = ind .. "})"
  return table.concat(lines, "\n")
end

function RENDER.drop_table(op) return ("drop_table(%s)"):format(lstr(op.table)) end

function RENDER.rename_table(op)
  return ("rename_table(%s, %s)"):format(lstr(op.table), lstr(op.new_name))
end

function RENDER.add_column(op)
  return ("add_column(%s, %s)"):format(lstr(op.table), column(op.column, true))
end

function RENDER.drop_column(op)
  return ("drop_column(%s, %s)"):format(lstr(op.table), lstr(op.name))
end

function RENDER.rename_column(op)
  return ("rename_column(%s, %s, %s)"):format(lstr(op.table), lstr(op.name), lstr(op.new_name))
end

function RENDER.alter_column(op)
  local o = {}
  local new = diff.describe_column(op.column)
  if op.alter.type then o[#o + 1] = "type = " .. column(op.column) end
  if op.alter.null then o[#o + 1] = "null = " .. tostring(new.null) end
  if op.alter.default then o[#o + 1] = "default = " .. (new.default or "loam.null") end
  if op.before then o[#o + 1] = "before = " .. column(op.before) end
  return ("alter_column(%s, %s, { %s })"):format(lstr(op.table), lstr(op.name),
                                                 table.concat(o, ", "))
end

function RENDER.add_index(op)
  local o = index_args(op.index)
  if op.concurrently then o[#o + 1] = "concurrently = true" end
  return ("add_index(%s, %s%s)"):format(lstr(op.table), list(op.index.columns),
    #o > 0 and (", { " .. table.concat(o, ", ") .. " }") or "")
end

function RENDER.drop_index(op)
  return ("drop_index(%s, %s%s)"):format(lstr(op.table), lstr(op.name),
    op.concurrently and ", { concurrently = true }" or "")
end

function RENDER.add_foreign_key(op)
  local o = { "name = " .. lstr(op.name) }
  if op.on_delete and op.on_delete ~= "no action" then o[#o + 1] = "on_delete = " .. lstr(op.on_delete) end
  if op.on_update and op.on_update ~= "no action" then o[#o + 1] = "on_update = " .. lstr(op.on_update) end
  if op.not_valid then o[#o + 1] = "not_valid = true" end
  return ("add_foreign_key(%s, %s, %s, %s, { %s })"):format(lstr(op.table), list(op.columns),
    lstr(op.ref_table), list(op.ref_columns), table.concat(o, ", "))
end

function RENDER.validate_foreign_key(op)
  return ("validate_foreign_key(%s, %s)"):format(lstr(op.table), lstr(op.name))
end

function RENDER.drop_foreign_key(op)
  return ("drop_foreign_key(%s, %s)"):format(lstr(op.table), lstr(op.name))
end

function RENDER.add_check(op)
  return ("add_check(%s, %s, %s%s)"):format(lstr(op.table), lstr(op.name), lstr(op.sql),
    op.not_valid and ", { not_valid = true }" or "")
end

function RENDER.drop_check(op)
  return ("drop_check(%s, %s)"):format(lstr(op.table), lstr(op.name))
end

function RENDER.add_unique(op)
  local name = ""
  if op.name ~= core.constraint_name(op.table, op.columns, "key") then
    name = ", { name = " .. lstr(op.name) .. " }"
  end
  return ("add_unique(%s, %s%s)"):format(lstr(op.table), list(op.columns), name)
end

function RENDER.drop_unique(op)
  return ("drop_unique(%s, %s)"):format(lstr(op.table), lstr(op.name))
end

-- The inverse of each operation, as an operation (nil: nothing to undo;
-- false: none can be written).
local INVERSE = {
  create_table = function(op) return { op = "drop_table", table = op.table } end,
  rename_table = function(op)
    return { op = "rename_table", table = op.new_name, new_name = op.table }
  end,
  add_column = function(op)
    return { op = "drop_column", table = op.table, name = op.column.name }
  end,
  rename_column = function(op)
    return { op = "rename_column", table = op.table, name = op.new_name, new_name = op.name }
  end,
  alter_column = function(op)
    if op.before == nil then return false end
    local alter = op.alter
    return { op = "alter_column", table = op.table, name = op.name, alter = alter,
             column = op.before, before = op.column }
  end,
  add_index = function(op)
    return { op = "drop_index", table = op.table, concurrently = op.concurrently,
             name = op.index.name or core.constraint_name(op.table, op.index.columns, "idx") }
  end,
  add_foreign_key = function(op)
    return { op = "drop_foreign_key", table = op.table, name = op.name }
  end,
  validate_foreign_key = function() return nil end,
  add_check = function(op) return { op = "drop_check", table = op.table, name = op.name } end,
  add_unique = function(op) return { op = "drop_unique", table = op.table, name = op.name } end,
  drop_unique = function(op)
    if op.columns == nil then return false end
    return { op = "add_unique", table = op.table, name = op.name, columns = op.columns }
  end,
  drop_column = function(op)
    if op.column == nil then return false end
    return { op = "add_column", table = op.table, column = op.column }
  end,
  drop_check = function(op)
    if op.sql == nil then return false end
    return { op = "add_check", table = op.table, name = op.name, sql = op.sql }
  end,
  drop_index = function(op)
    if op.index == nil then return false end
    return { op = "add_index", table = op.table, index = op.index,
             concurrently = op.concurrently }
  end,
  drop_foreign_key = function(op)
    if op.ref_table == nil then return false end
    return { op = "add_foreign_key", table = op.table, name = op.name, columns = op.columns,
             ref_table = op.ref_table, ref_columns = op.ref_columns, on_delete = op.on_delete,
             on_update = op.on_update }
  end,
  drop_table = function() return false end,
}

-- Operations whose inverse the runner derives for 'change'.
local DERIVED = {
  create_table = true, rename_table = true, add_column = true, rename_column = true,
  add_index = true, add_foreign_key = true, add_check = true, add_unique = true,
}

function writer.reversible(op)
  return DERIVED[op.op] == true or (op.op == "alter_column" and op.before ~= nil)
end

local function render(op, ind)
  return RENDER[op.op](op, ind)
end

function writer.text(ops, opts)
  opts = opts or {}
  local out = {}
  local function w(s) out[#out + 1] = s end
  local all = true
  for _, op in ipairs(ops) do
    if not writer.reversible(op) then all = false end
  end
  local body = table.concat((function()
    local t = {}
    for _, op in ipairs(ops) do t[#t + 1] = render(op, "    ") end
    return t
  end)())
  if opts.title then w("-- " .. opts.title) end
  if body:find("loam%.") then w('local loam = require "loam"') w("") end
  w("return migration {")
  if opts.parent then w("  parent = " .. lstr(opts.parent) .. ",") end
  local function section(name, list)
    w("  " .. name .. " = {")
    for _, op in ipairs(list) do w("    " .. render(op, "    ") .. ",") end
    w("  },")
  end
  if all then
    section("change", ops)
  else
    section("up", ops)
    local down = {}
    for i = #ops, 1, -1 do
      local inv = INVERSE[ops[i].op](ops[i])
      if inv == false then
        down = nil
        break
      end
      if inv ~= nil then down[#down + 1] = inv end
    end
    if down ~= nil then section("down", down) end
  end
  w("}")
  return table.concat(out, "\n") .. "\n"
end

return writer
