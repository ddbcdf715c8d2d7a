-- loam.json: JSON text for json columns, both ways: the encoder that
-- writes a Lua value (tables, strings, numbers, booleans, loam.null) as
-- JSON text with sorted keys, and the validator that checks JSON text
-- given as a string before it is stored, so both backends store the same.
--
--   json.encode(v)           -> JSON text | nil, message
--   json.problem(s)          -> why 's' is not JSON text both backends store, or nil

local core = require "loam.core"
local errors = require "loam.errors"

local null = core.null
local show = errors.show

local json = {}

-- Whatever the encoder cannot write raises this (caught in 'json.encode').
local JsonError = {}

local function jsonfail(msg)
  error(setmetatable({ msg = msg }, JsonError), 0)
end

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function jsonstring(s, out)
  if utf8.len(s) == nil then
    jsonfail("string is not valid UTF-8")
  end
  out[#out + 1] = '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

-- Floats are written with the fewest digits that read back to the same
-- value; a locale with a decimal comma must not leak into the text.
local function jsonnumber(v, out)
  if math.type(v) == "integer" then
    out[#out + 1] = string.format("%d", v)
    return
  end
  if v ~= v or v == math.huge or v == -math.huge then
    jsonfail("NaN and infinity have no JSON form")
  end
  local s = string.format("%.14g", v)
  if tonumber(s) ~= v then
    s = string.format("%.17g", v)
  end
  out[#out + 1] = (s:gsub(",", "."))
end

local encode

-- The deepest nesting of arrays and objects loam writes or accepts as
-- JSON text.  SQLite's JSON functions refuse 1,000 levels and more; a
-- deeper Lua table would overflow the encoder's stack.
local JSON_MAX_DEPTH = 500
json.MAX_DEPTH = JSON_MAX_DEPTH

-- A table is an array when its keys are exactly 1..n, an object when they
-- are all strings; anything else has no faithful JSON form.  The empty
-- table is the empty array.  'seen' holds the tables being written (a
-- cycle) and, at 'seen.depth', how deep the writer is.
local function jsontable(t, out, seen)
  if seen[t] then
    jsonfail("table contains a cycle")
  end
  local depth = seen.depth + 1
  if depth > JSON_MAX_DEPTH then
    jsonfail(string.format("tables nest deeper than %d levels", JSON_MAX_DEPTH))
  end
  seen.depth = depth
  seen[t] = true
  local n, strings, ints, max = 0, 0, 0, 0
  for k in next, t do
    n = n + 1
    if type(k) == "string" then
      strings = strings + 1
    elseif math.type(k) == "integer" and k > 0 then
      ints = ints + 1
      if k > max then max = k end
    else
      jsonfail("key " .. show(k) .. " is neither a string nor an array index")
    end
  end
  if strings > 0 and ints > 0 then
    jsonfail("table mixes array indexes and string keys")
  end
  if strings == 0 then
    if max ~= n then
      jsonfail("array has holes (use loam.null for null elements)")
    end
    out[#out + 1] = "["
    for i = 1, n do
      if i > 1 then out[#out + 1] = "," end
      encode(t[i], out, seen)
    end
    out[#out + 1] = "]"
  else
    -- Sorted keys make equal tables encode to equal text.
    local keys = {}
    for k in next, t do keys[#keys + 1] = k end
    table.sort(keys)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      if i > 1 then out[#out + 1] = "," end
      jsonstring(k, out)
      out[#out + 1] = ":"
      encode(t[k], out, seen)
    end
    out[#out + 1] = "}"
  end
  seen[t] = nil
  seen.depth = depth - 1
end

encode = function(v, out, seen)
  local t = type(v)
  if v == null then
    out[#out + 1] = "null"
  elseif t == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif t == "number" then
    jsonnumber(v, out)
  elseif t == "string" then
    jsonstring(v, out)
  elseif t == "table" and getmetatable(v) == nil then
    jsontable(v, out, seen)
  else
    jsonfail(show(v) .. " has no JSON form")
  end
end

-- The JSON text of 'v', or nil and the reason it has none.
function json.encode(v)
  local out = {}
  local ok, err = pcall(encode, v, out, { depth = 0 })
  if not ok then
    if getmetatable(err) == JsonError then
      return nil, err.msg
    end
    error(err, 0)
  end
  return table.concat(out)
end

-- Why 's' is not JSON text that both backends store (RFC 8259; no
-- \u0000, which PostgreSQL's jsonb refuses; surrogates in pairs), or nil.
-- Iterative, with a stack of open containers, so no text can overflow
-- the Lua stack; nesting beyond JSON_MAX_DEPTH is refused.
local function json_problem(s)
  local n = utf8.len(s)
  if n == nil then
    return "not valid UTF-8"
  end
  n = #s
  local pos, stack = 1, {}
  local function at(what)
    return string.format("%s at byte %d", what, pos)
  end
  local function ws()
    pos = s:find("[^ \t\n\r]", pos) or n + 1
  end
  local function str()
    pos = pos + 1
    while true do
      local q = s:find('[%z\1-\31"\\]', pos)
      if q == nil then
        pos = n + 1
        return at("unterminated string")
      end
      pos = q
      local c = s:sub(q, q)
      if c == '"' then
        pos = q + 1
        return nil
      elseif c ~= "\\" then
        return at("control character in a string")
      end
      local e = s:sub(q + 1, q + 1)
      if e == "u" then
        local hex = s:match("^%x%x%x%x", q + 2)
        if hex == nil then
          return at("bad \\u escape")
        end
        local u = tonumber(hex, 16)
        if u == 0 then
          return at("\\u0000 (PostgreSQL cannot store it)")
        elseif u >= 0xDC00 and u <= 0xDFFF then
          return at("unpaired surrogate")
        elseif u >= 0xD800 and u <= 0xDBFF then
          local lo = s:match("^\\u(%x%x%x%x)", q + 6)
          lo = lo and tonumber(lo, 16)
          if lo == nil or lo < 0xDC00 or lo > 0xDFFF then
            return at("unpaired surrogate")
          end
          pos = q + 12
        else
          pos = q + 6
        end
      elseif e ~= "" and ('"\\/bfnrt'):find(e, 1, true) then
        pos = q + 2
      else
        return at("bad escape")
      end
    end
  end
  local function number()
    local p = pos
    if s:sub(p, p) == "-" then p = p + 1 end
    if s:sub(p, p) == "0" then
      p = p + 1
    elseif s:find("^[1-9]", p) then
      p = s:find("[^%d]", p) or n + 1
    else
      return at("unexpected character")
    end
    if s:sub(p, p) == "." then
      p = s:match("^%d+()", p + 1)
      if p == nil then return at("bad number") end
    end
    if s:find("^[eE]", p) then
      p = s:match("^[+-]?%d+()", p + 1)
      if p == nil then return at("bad number") end
    end
    pos = p
    return nil
  end
  while true do
    -- A value.
    ws()
    local c, err = s:sub(pos, pos), nil
    if c == "{" or c == "[" then
      if #stack >= JSON_MAX_DEPTH then
        return string.format("nests deeper than %d levels", JSON_MAX_DEPTH)
      end
      stack[#stack + 1] = c
      pos = pos + 1
      ws()
      local close = c == "{" and "}" or "]"
      if s:sub(pos, pos) == close then
        stack[#stack] = nil
        pos = pos + 1
      elseif c == "{" then
        if s:sub(pos, pos) ~= '"' then return at("expected a string key") end
        err = str()
        if err then return err end
        ws()
        if s:sub(pos, pos) ~= ":" then return at("expected ':'") end
        pos = pos + 1
        goto value
      else
        goto value
      end
    elseif c == '"' then
      err = str()
    elseif s:find("^true", pos) or s:find("^null", pos) then
      pos = pos + 4
    elseif s:find("^false", pos) then
      pos = pos + 5
    elseif c == "" then
      return at("unexpected end")
    else
      err = number()
    end
    if err then return err end
    -- After a value: close containers, or go on with the next element.
    while true do
      ws()
      local top = stack[#stack]
      if top == nil then
        if pos <= n then return at("text after the value") end
        return nil
      end
      local d = s:sub(pos, pos)
      if d == "," then
        pos = pos + 1
        if top == "{" then
          ws()
          if s:sub(pos, pos) ~= '"' then return at("expected a string key") end
          err = str()
          if err then return err end
          ws()
          if s:sub(pos, pos) ~= ":" then return at("expected ':'") end
          pos = pos + 1
        end
        break
      elseif d == (top == "{" and "}" or "]") then
        stack[#stack] = nil
        pos = pos + 1
      else
        return at(d == "" and "unexpected end" or "expected ',' or a closing bracket")
      end
    end
    ::value::
  end
end

json.problem = json_problem

return json
