-- loam.cli.show: values as the console prints them.
--
--   show.value(v) -> text (no final newline)
--
--   * an array of rows (tables: db:query's rows, or instances) is an
--     aligned table with a header and a "(N rows)" line; an instance's
--     columns come in the model's order, a plain row's in name order with
--     'id' first (Lua tables keep no column order);
--   * an instance is its model and key, then one "field = value" line per
--     column;
--   * any other table is its fields, one "key = value" line each;
--   * loam.null is NULL, strings are printed as they are, other values
--     with tostring.
-- A cell or value longer than WIDTH characters is cut with "...".

local core = require "loam.core"
local instance = require "loam.instance"

local null = core.null

local show = {}

local WIDTH = 60

local function len(s)
  return utf8.len(s) or #s
end

local function cut(s)
  if len(s) <= WIDTH then return s end
  if utf8.len(s) then
    return s:sub(1, utf8.offset(s, WIDTH - 2) - 1) .. "..."
  end
  return s:sub(1, WIDTH - 3) .. "..."
end

-- A value in one short line: nested tables as { k = v, ... }.
local function inline(v, depth)
  if v == null then return "NULL" end
  local t = type(v)
  if t == "string" then return v end
  if t ~= "table" then return tostring(v) end
  local mt = getmetatable(v)
  if mt and mt.__tostring then return tostring(v) end
  if depth > 1 then return "{...}" end
  local parts = {}
  for i = 1, #v do parts[#parts + 1] = inline(v[i], depth + 1) end
  local keys = {}
  for k in pairs(v) do
    if not (math.type(k) == "integer" and k >= 1 and k <= #v) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. " = " .. inline(v[k], depth + 1) end
  return "{ " .. table.concat(parts, ", ") .. " }"
end

local function cell(v)
  return cut((inline(v, 1):gsub("[\r\n\t]", " ")))
end

local function sorted_keys(list)
  local seen, keys = {}, {}
  for _, row in ipairs(list) do
    for k in pairs(row) do
      if type(k) == "string" and not seen[k] then
        seen[k] = true
        keys[#keys + 1] = k
      end
    end
  end
  table.sort(keys, function(a, b)
    if a == "id" or b == "id" then return a == "id" and b ~= "id" end
    return a < b
  end)
  return keys
end

local function model_fields(M)
  local names = {}
  for i, c in ipairs(M.columns) do names[i] = c.name end
  return names
end

local function is_rows(v)
  if type(v) ~= "table" or getmetatable(v) ~= nil or #v == 0 or next(v, #v) ~= nil then
    return false
  end
  for _, row in ipairs(v) do
    if type(row) ~= "table" then return false end
    local mt = getmetatable(row)
    if mt ~= nil and instance.model_of(row) == nil then return false end
  end
  return true
end

local function rows_table(list)
  local M = instance.model_of(list[1])
  local keys = M and model_fields(M) or sorted_keys(list)
  local widths, numeric, cells = {}, {}, {}
  for j, k in ipairs(keys) do
    widths[j], numeric[j] = len(k), true
  end
  for i, row in ipairs(list) do
    cells[i] = {}
    for j, k in ipairs(keys) do
      local v = rawget(row, k)
      local s = v == nil and "" or cell(v)
      cells[i][j] = s
      if v ~= nil and v ~= null and type(v) ~= "number" then numeric[j] = false end
      widths[j] = math.max(widths[j], len(s))
    end
  end
  local function line(values, align)
    local parts = {}
    for j, s in ipairs(values) do
      local pad = (" "):rep(widths[j] - len(s))
      parts[j] = (align and numeric[j]) and (pad .. s) or (s .. pad)
    end
    return ((" " .. table.concat(parts, " | ")):gsub("%s+$", ""))
  end
  local out = { line(keys, false) }
  local rule = {}
  for j = 1, #keys do rule[j] = ("-"):rep(widths[j] + 2) end
  out[#out + 1] = table.concat(rule, "+")
  for i = 1, #list do out[#out + 1] = line(cells[i], true) end
  out[#out + 1] = ("(%d row%s)"):format(#list, #list == 1 and "" or "s")
  return table.concat(out, "\n")
end

local function fields(head, keys, get)
  local width = 0
  for _, k in ipairs(keys) do width = math.max(width, len(tostring(k))) end
  local out = { head }
  for _, k in ipairs(keys) do
    local v = get(k)
    if v ~= nil then
      out[#out + 1] = ("  %-" .. width .. "s = %s"):format(tostring(k), cell(v))
    end
  end
  return table.concat(out, "\n")
end

function show.value(v)
  if is_rows(v) then
    return rows_table(v)
  end
  local M = instance.model_of(v)
  if M ~= nil then
    return fields(tostring(v), model_fields(M), function(k) return rawget(v, k) end)
  end
  if type(v) == "table" then
    local mt = getmetatable(v)
    if mt and mt.__tostring then return tostring(v) end
    if next(v) == nil then return "{}" end
    if #v > 0 and next(v, #v) == nil then return inline(v, 1) end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    return fields("table", keys, function(k) return v[k] end)
  end
  if v == null then return "NULL" end
  return tostring(v)
end

return show
