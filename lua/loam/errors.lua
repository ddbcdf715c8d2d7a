-- loam.errors: the error objects of the Lua layer and the pieces of their
-- messages.  Every failure of loam raises (see the error policy in
-- loam/init.lua); an error made here is a loam.Error object (the core's
-- metatable) whose 'where' names the first caller outside loam, so a
-- failed validation points at the user's line and not at ours.
--
--   errors.where()           "file:line: " of the first caller outside loam
--   errors.raise(code, message [, fields [, where]])
--                            raises a loam.Error object
--   errors.misuse(fmt, ...)  raises a "misuse" error object
--   errors.show(v)           a short printable form of any value, for messages

local core = require "loam.core"

local null = core.null

local errors = {}


-- The directory of loam's Lua modules.  Frames running code from it are
-- loam's own, whatever module (model, query, init) they belong to; the
-- core passes over them (and over C functions) when it chooses the
-- position of an error, its own or one made here, so an error raised
-- anywhere below a method names the line that called the method.
local loamdir = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or ""
core.set_layer_source("@" .. loamdir)

local core_where = core.where

-- The position of the first Lua function on the stack that is not part of
-- loam, in the "file:line: " form of the error objects made in C.
function errors.where()
  return (core_where(2))
end

-- Raises an error object with 'code' and 'message', any extra 'fields'
-- (model, column), and 'where' (the caller's position when not given).
function errors.raise(code, message, fields, where)
  local e = { code = code, message = message, where = where or errors.where() }
  if fields ~= nil then
    for k, v in pairs(fields) do e[k] = v end
  end
  error(setmetatable(e, core.Error), 0)
end

-- A short printable form of any value, for messages: its type and, for
-- scalars, the value itself ('string ("12x")', 'float (nan)').
function errors.show(v)
  if v == null then
    return "NULL"
  end
  local t = type(v)
  if t == "string" then
    local s, valid = v, utf8.len(v) ~= nil
    if #s > 40 then
      -- Cut before a character, not inside one.
      local cut = 38
      while valid and cut > 1 and s:byte(cut) & 0xC0 == 0x80 do cut = cut - 1 end
      s = s:sub(1, cut - 1) .. "..."
    end
    s = string.format("%q", s):gsub("\\\n", "\\n")
    if not valid then
      s = s:gsub("[\128-\255]", function(c) return "\\" .. c:byte() end)
    end
    return "string (" .. s .. ")"
  elseif t == "number" then
    local s
    if v ~= v then
      s = "nan"
    elseif v == math.huge or v == -math.huge then
      s = v > 0 and "inf" or "-inf"
    else
      s = tostring(v)
    end
    return math.type(v) .. " (" .. s .. ")"
  elseif t == "boolean" then
    return "boolean (" .. tostring(v) .. ")"
  end
  local mt = getmetatable(v)
  if type(mt) == "table" and type(rawget(mt, "__name")) == "string" then
    return rawget(mt, "__name")
  end
  return t
end

-- Raises a misuse error object whose 'where' is the caller's line.
function errors.misuse(fmt, ...)
  errors.raise("misuse", fmt:format(...))
end

return errors
