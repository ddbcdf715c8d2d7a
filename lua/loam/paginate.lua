-- loam.paginate: keyset pagination for loam.query's paginate method.  A
-- page is the query ordered by the given columns plus a tiebreak that
-- makes the order total, starting after the row a cursor names; the
-- cursor is opaque text that holds the last row's ordering values.
--
--   paginate.method(helpers)  -> the function that is Query:paginate
--
-- 'helpers' are the query layer's own functions that a page is built
-- with (loam.query requires this module, so it hands them in when it
-- loads rather than being required here).

local core = require "loam.core"
local errors = require "loam.errors"

local null = core.null
local misuse = errors.misuse

local paginate = {}

-- The query layer's helpers, set by 'paginate.method'.
local and_of, ordering, orderings, check_options, check_count
local copy, append, load_ast, load_rows


-- A cursor is base64url (no padding) of: version byte, value count, the
-- values (a type tag, then the value: 'i' int64, 'f' double, 's' string with
-- a 32-bit length, 'T'/'F' booleans, 'N' NULL), then a 32-bit FNV-1a hash
-- of the query's ordering and the values.  The hash catches garbled cursors
-- and cursors of another ordering.  It is not a signature and needs none:
-- the values are bound parameters, so a forged cursor can only choose where
-- a page starts among rows the query returns anyway.

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local B64_INDEX = {}
for i = 1, #B64 do B64_INDEX[B64:byte(i)] = i - 1 end

local function b64encode(bytes)
  local out, len = {}, #bytes
  for i = 1, len, 3 do
    local a, b, c = bytes:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    for j = 0, math.min(len - i + 1, 3) do  -- k bytes make k + 1 characters
      local v = (n >> (18 - 6 * j)) & 63
      out[#out + 1] = B64:sub(v + 1, v + 1)
    end
  end
  return table.concat(out)
end

-- The bytes of 'text', or nil when it is not canonical base64url.
local function b64decode(text)
  local out, len = {}, #text
  if len % 4 == 1 then return nil end
  for i = 1, len, 4 do
    local n, k = 0, math.min(len - i + 1, 4)
    for j = 0, 3 do
      local v = 0
      if j < k then
        v = B64_INDEX[text:byte(i + j)]
        if v == nil then return nil end
      end
      n = (n << 6) | v
    end
    out[#out + 1] = string.char((n >> 16) & 255, (n >> 8) & 255, n & 255):sub(1, k - 1)
  end
  local bytes = table.concat(out)
  if b64encode(bytes) ~= text then return nil end  -- stray bits in the last character
  return bytes
end

local function fnv1a(text)
  local h = 0x811c9dc5
  for i = 1, #text do
    h = ((h ~ text:byte(i)) * 0x01000193) & 0xffffffff
  end
  return h
end

local CURSOR_VERSION = 1

local function encode_cursor(fingerprint, values, n)
  local parts = { string.pack("<BB", CURSOR_VERSION, n) }
  for i = 1, n do
    local v = values[i]
    local part
    if v == null then part = "N"
    elseif v == true then part = "T"
    elseif v == false then part = "F"
    elseif math.type(v) == "integer" then part = "i" .. string.pack("<i8", v)
    elseif math.type(v) == "float" then part = "f" .. string.pack("<d", v)
    elseif type(v) == "string" then part = "s" .. string.pack("<s4", v)
    else
      misuse("paginate: a %s cannot go into a cursor", type(v))
    end
    parts[#parts + 1] = part
  end
  local payload = table.concat(parts)
  return b64encode(payload .. string.pack("<I4", fnv1a(fingerprint .. "\0" .. payload)))
end

local READ = {
  i = function(b, pos) return string.unpack("<i8", b, pos) end,
  f = function(b, pos) return string.unpack("<d", b, pos) end,
  s = function(b, pos) return string.unpack("<s4", b, pos) end,
  T = function(_, pos) return true, pos end,
  F = function(_, pos) return false, pos end,
  N = function(_, pos) return null, pos end,
}

local function read_cursor(fingerprint, bytes, n)
  if #bytes < 6 then return nil end
  local payload = bytes:sub(1, -5)
  if string.unpack("<I4", bytes, #bytes - 3) ~= fnv1a(fingerprint .. "\0" .. payload) then
    return nil
  end
  local version, count, pos = string.unpack("<BB", payload)
  if version ~= CURSOR_VERSION or count ~= n then return nil end
  local values = {}
  for i = 1, n do
    local read = READ[payload:sub(pos, pos)]
    if read == nil then return nil end
    values[i], pos = read(payload, pos + 1)
  end
  if pos ~= #payload + 1 then return nil end
  return values
end

local function decode_cursor(fingerprint, cursor, n)
  local bytes = type(cursor) == "string" and b64decode(cursor)
  -- string.unpack raises on truncated data; that is a bad cursor too.
  local ok, values = pcall(read_cursor, fingerprint, bytes or "", n)
  if not ok or values == nil then misuse("invalid pagination cursor") end
  return values
end

-- The condition "the row comes after 'v'" for one ordering item, NULLs
-- placed where the item says; nil when no row can.
local function after(item, v)
  local c = item.expr
  if v == null then
    if item.nulls == "first" then return { k = "null", expr = c, negate = true } end
    return nil
  end
  local cmp = { k = "op", op = item.desc and "<" or ">", l = c, r = { k = "val", v = v } }
  if item.nulls == "last" then
    return { k = "or", cmp, { k = "null", expr = c } }
  end
  return cmp
end

local function equal(item, v)
  if v == null then return { k = "null", expr = item.expr } end
  return { k = "op", op = "=", l = item.expr, r = { k = "val", v = v } }
end

-- (a after) OR (a = ? AND b after) OR ...: right for any mix of directions.
local function after_all(items, values)
  local terms = {}
  for i, item in ipairs(items) do
    local a = after(item, values[i])
    if a ~= nil then
      local conj = {}
      for j = 1, i - 1 do conj[j] = equal(items[j], values[j]) end
      conj[i] = a
      terms[#terms + 1] = and_of(conj)
    end
  end
  if #terms == 1 then return terms[1] end
  return table.move(terms, 1, #terms, 1, { k = "or" })
end

-- The ordering of a page: the given items, then the tiebreak columns they
-- lack, each with its NULL placement made explicit (NULLs sort as the
-- largest value unless said otherwise), so the order is total, and the
-- same on every backend but for text, which each database orders by its
-- own collation (SQLite's BINARY, PostgreSQL's database locale).  Columns a model declares NOT NULL get no placement and
-- no IS NULL terms, which leaves their indexes usable for the ORDER BY.
local function page_order(s, opts)
  local items = s.order
  if opts.order ~= nil then
    local list = opts.order
    if type(list) ~= "table" or getmetatable(list) ~= nil or list.desc ~= nil
       or list.nulls ~= nil then
      list = { list }
    end
    items = orderings(s, list, "paginate")
  end
  local tiebreak = opts.tiebreak or (s.model and s.model.primary_key) or { "id" }
  if type(tiebreak) ~= "table" or getmetatable(tiebreak) ~= nil or tiebreak.desc ~= nil then
    tiebreak = { tiebreak }
  end
  local out, seen = {}, {}
  for i, item in ipairs(items) do
    if item.key == nil then misuse("paginate: orders by columns only, not raw SQL") end
    out[i], seen[item.id] = item, true
  end
  for _, spec in ipairs(tiebreak) do
    if #s.joins > 0 and type(spec) == "string" and not spec:find(".", 1, true) then
      spec = s.table .. "." .. spec  -- the source's key, whatever the joins hold
    end
    local item = ordering(s, spec)
    if not seen[item.id] then
      out[#out + 1], seen[item.id] = item, true
    end
  end
  local parts = { s.table }
  for i, item in ipairs(out) do
    local nulls
    if not item.never_null then nulls = item.nulls or (item.desc and "first" or "last") end
    out[i] = { expr = item.expr, desc = item.desc, key = item.key, id = item.id, nulls = nulls }
    parts[#parts + 1] = ("%s %s %s"):format(item.id, item.desc and "desc" or "asc",
                                            nulls or "never")
  end
  return out, table.concat(parts, ",")
end

local function paginate_method(self, opts)
  local s = self._s
  check_options("paginate", opts, { order = true, limit = true, after = true, tiebreak = true })
  local limit = check_count("paginate: limit", opts.limit, 1)
  if s.limit ~= nil or s.offset ~= nil then
    misuse("paginate: the query has limit/offset; paginate sets its own")
  end
  local items, fingerprint = page_order(s, opts)
  local t = copy(s)
  t.order, t.limit = items, limit + 1  -- one more row tells whether a next page exists
  if opts.after ~= nil then
    t.where = append(s.where, { after_all(items, decode_cursor(fingerprint, opts.after, #items)) })
  end
  local rows = s.db:run(load_ast(t))
  local next_cursor
  if #rows > limit then
    rows[limit + 1] = nil
    local last, values = rows[limit], {}
    for i, item in ipairs(items) do
      values[i] = last[item.key]
      if values[i] == nil then
        misuse("paginate: ordering column '%s' is not among the selected columns", item.key)
      end
    end
    next_cursor = encode_cursor(fingerprint, values, #items)
  end
  return load_rows(s, rows), next_cursor
end

function paginate.method(helpers)
  and_of, ordering, orderings = helpers.and_of, helpers.ordering, helpers.orderings
  check_options, check_count = helpers.check_options, helpers.check_count
  copy, append = helpers.copy, helpers.append
  load_ast, load_rows = helpers.load_ast, helpers.load_rows
  return paginate_method
end

return paginate
