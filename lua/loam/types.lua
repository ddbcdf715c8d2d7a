-- loam.types: the column types of the model DSL.
--
-- It holds what a model needs to know about one column: the constructors
-- that record a declaration (loam.text("email", { length = 255 }) ...),
-- the check that turns a declaration into a column of the DDL AST, and
-- the coercion that every value written or compared goes through before
-- it is bound.  Its errors are made by loam.errors; JSON text is written
-- and checked by loam.json.
--
--   types.constructors       name -> constructor (id, integer, ..., bytes, enum)
--   types.sql(s)             a raw SQL default (loam.sql "gen_random_uuid()")
--   types.now                the "now" default of date and timestamp columns
--   types.is_declaration(v)  v was made by a constructor
--   types.declare(table, d)  -> column (DDL AST format), extras, or raises
--   types.coercer(table, c)  -> function(v) -> value | nil, message

local core = require "loam.core"
local errors = require "loam.errors"
local json = require "loam.json"

local null = core.null
local show = errors.show

local types = {}


-- {======================================================================
-- Coercion, type by type
-- =======================================================================

local BLOB_NAME = "loam.Blob"
local INT32_MIN, INT32_MAX = -2147483648, 2147483647
local mtype, utf8_len, find = math.type, utf8.len, string.find

local function isblob(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__name") == BLOB_NAME
end

local function expected(what, v)
  return nil, "expected " .. what .. ", got " .. show(v)
end

local function days_in(month, year)
  if month == 2 then
    local leap = (year % 4 == 0 and year % 100 ~= 0) or year % 400 == 0
    return leap and 29 or 28
  end
  return (month == 4 or month == 6 or month == 9 or month == 11) and 30 or 31
end

local function valid_date(y, m, d)
  return y >= 1 and m >= 1 and m <= 12 and d >= 1 and d <= days_in(m, y)
end

-- Days from 0000-03-01 of the proleptic Gregorian calendar, counting
-- years from March so that the leap day ends a year; and back.
local function day_number(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
  return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy
end

local function civil(n)
  local era = n // 146097
  local doe = n - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end

local DATE_FORMS = '"YYYY-MM-DD" or "YYYYMMDD"'
local TIMESTAMP_FORMS = 'ISO-8601 timestamp "YYYY-MM-DD[( |T)HH:MM[:SS[.ffffff]]][Z|+HH[:MM]]"'

-- The parts of a date "YYYY-MM-DD" or "YYYYMMDD" (numbers), or nil.
local function date_parts(s)
  local y, m, d = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if y == nil then
    y, m, d = s:match("^(%d%d%d%d)(%d%d)(%d%d)$")
  end
  if y == nil then
    return nil
  end
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if not valid_date(y, m, d) then
    return nil
  end
  return y, m, d
end

-- The canonical text of a timestamp: UTC, "YYYY-MM-DD HH:MM:SS[.f]+00",
-- the fraction without trailing zeros, which is how PostgreSQL prints a
-- timestamptz under DateStyle ISO and TimeZone UTC.  It also sorts as text
-- in time order ('+' sorts before '.', and every field has a fixed width),
-- which is what SQLite compares.  Returns nil and a message for anything
-- else.  Without a zone the time is UTC.  Fractions beyond microseconds
-- (PostgreSQL's resolution) are refused rather than rounded.
local function timestamp_text(s)
  local date, rest = s:match("^(%d%d%d%d%-%d%d%-%d%d)(.*)$")
  if date == nil then
    date, rest = s:match("^(%d%d%d%d%d%d%d%d)(.*)$")
  end
  if date == nil then
    return nil
  end
  local y, m, d = date_parts(date)
  if y == nil then
    return nil
  end
  local h, mi, sec, frac, zone = 0, 0, 0, "", ""
  if rest ~= "" then
    local hh, mm, after = rest:match("^[Tt ](%d%d):(%d%d)(.*)$")
    if hh == nil then
      return nil
    end
    h, mi, rest = tonumber(hh), tonumber(mm), after
    local ss
    ss, after = rest:match("^:(%d%d)(.*)$")
    if ss ~= nil then
      sec, rest = tonumber(ss), after
      local f
      f, after = rest:match("^[.,](%d+)(.*)$")
      if f ~= nil then
        if #f > 6 then
          return nil, "more than 6 fractional digits (microseconds are the resolution)"
        end
        frac, rest = f:gsub("0+$", ""), after
      end
    end
    zone = rest:gsub("^ ", "")
    -- 24:00:00 is the end of the day, and second 60 a leap second: both
    -- are the next instant, as PostgreSQL reads them.
    if h > 24 or mi > 59 or sec > 60 or (h == 24 and (mi > 0 or sec > 0 or frac ~= "")) then
      return nil
    end
  end
  local offset = 0
  if zone ~= "" and zone ~= "Z" and zone ~= "z" then
    local sign, zh, zm = zone:match("^([+-])(%d%d):?(%d?%d?)$")
    if sign == nil or (zm ~= "" and #zm ~= 2) or tonumber(zh) > 23 or
        (zm ~= "" and tonumber(zm) > 59) then
      return nil
    end
    offset = tonumber(zh) * 3600 + (tonumber(zm) or 0) * 60
    if sign == "-" then offset = -offset end
  end
  local t = day_number(y, m, d) * 86400 + h * 3600 + mi * 60 + sec - offset
  y, m, d = civil(t // 86400)
  if y < 1 or y > 9999 then
    return nil, "out of range (years 0001 to 9999 in UTC)"
  end
  t = t % 86400
  local out = string.format("%04d-%02d-%02d %02d:%02d:%02d", y, m, d, t // 3600, t // 60 % 60,
    t % 60)
  if frac ~= "" then
    out = out .. "." .. frac
  end
  return out .. "+00"
end

-- The makers below receive a column of the DDL AST and return its
-- coercion function, which gives the value to bind, or nil and a message.
-- NULL is handled by 'types.coercer' before they run.
local makers = {}

local function integer_maker(bits32)
  return function()
    return function(v)
      local i = math.tointeger(v)
      if i == nil or type(v) ~= "number" then
        return expected("integer", v)
      end
      if bits32 and (i < INT32_MIN or i > INT32_MAX) then
        return nil, string.format("%d is out of range for integer", i)
      end
      return i
    end
  end
end

makers.id = integer_maker(false)
makers.bigint = integer_maker(false)
makers.integer = integer_maker(true)

function makers.float()
  return function(v)
    if type(v) ~= "number" then
      return expected("number", v)
    end
    if v ~= v then
      return nil, "NaN is not a storable number"
    end
    return v + 0.0
  end
end

function makers.text(col)
  local max = col.length
  return function(v)
    if type(v) ~= "string" then
      return expected("string", v)
    end
    local n, bad = utf8.len(v)
    if n == nil then
      return nil, "invalid UTF-8 at byte " .. bad
    end
    if v:find("\0", 1, true) then
      return nil, "text cannot hold NUL bytes (use a blob column)"
    end
    if max ~= nil and n > max then
      return nil, string.format("text is %d characters long, more than %d", n, max)
    end
    return v
  end
end

function makers.boolean()
  return function(v)
    if type(v) ~= "boolean" then
      return expected("boolean", v)
    end
    return v
  end
end

-- The plain decimal text ("-0.0001", "1200") of the digits of a number
-- in exponent form ("-1.2e+03").
local function plain(e)
  local sign, int, frac, exp = e:match("^(-?)(%d)%.?(%d*)e([+-]%d+)$")
  local digits, point = int .. frac, 1 + tonumber(exp)
  if point <= 0 then
    return sign .. "0." .. ("0"):rep(-point) .. digits
  elseif point >= #digits then
    return sign .. digits .. ("0"):rep(point - #digits)
  end
  return sign .. digits:sub(1, point) .. "." .. digits:sub(point + 1)
end

-- Rounds the decimal 'int'.'frac' (digit strings) to 'scale' fraction
-- digits, half away from zero, as PostgreSQL rounds a numeric.
local function round_decimal(int, frac, scale)
  if #frac <= scale then
    return int, frac
  end
  local up = frac:byte(scale + 1) >= 53   -- '5'
  local digits = int .. frac:sub(1, scale)
  if up then
    local t, i = { digits:byte(1, -1) }, #digits
    while i >= 1 and t[i] == 57 do t[i] = 48; i = i - 1 end   -- '9' carries
    if i >= 1 then t[i] = t[i] + 1 else table.insert(t, 1, 49) end
    digits = string.char(table.unpack(t))
  end
  return digits:sub(1, #digits - scale), digits:sub(#digits - scale + 1)
end

local INT64_MAX_TEXT = "9223372036854775807"

-- Numeric values are bound as canonical decimal text, the text both
-- backends then read back: no sign for zero or positives, no leading
-- zeros, exactly 'scale' fraction digits when the column has a precision,
-- and no trailing fraction zeros without one (PostgreSQL keeps the scale of
-- what it is given for a numeric without one, and SQLite, which stores
-- numbers, cannot).  Decimal strings are exact, so their
-- digits must fit the declared precision and scale; a Lua float is first
-- written with the fewest digits that read back as it, and its fraction
-- rounded to the scale, as PostgreSQL would.  On SQLite, whose NUMERIC
-- affinity keeps a number as a 64-bit integer or a double, a value it
-- cannot hold exactly (more than 15 significant digits, unless an integer
-- within 64 bits) is refused rather than rounded.
function makers.numeric(col, backend)
  local p, s = col.precision, col.scale or 0
  local intdigits = p and p - s
  local what = "number or decimal string"
  return function(v)
    local text = v
    if type(v) == "number" then
      if v ~= v or v == math.huge or v == -math.huge then
        return expected("finite " .. what, v)
      end
      if math.type(v) == "integer" then
        text = string.format("%d", v)
      else
        local e = string.format("%.14e", v)
        if tonumber(e) ~= v then e = string.format("%.15e", v) end
        if tonumber(e) ~= v then e = string.format("%.16e", v) end
        text = plain(e)
      end
    elseif type(v) ~= "string" then
      return expected(what, v)
    end
    local sign, int, frac = text:match("^([+-]?)(%d*)%.?(%d*)$")
    if int == nil or (int == "" and frac == "") or (frac == "" and text:sub(-1) == ".") then
      return expected(what, v)
    end
    if type(v) == "number" and p ~= nil then
      int, frac = round_decimal(int, frac, s)
    end
    int = int:gsub("^0+", "")
    frac = frac:gsub("0+$", "")
    if p ~= nil and (#int > intdigits or #frac > s) then
      return nil, string.format("%s does not fit numeric(%d,%d)",
        type(v) == "string" and string.format("%q", v) or tostring(v), p, s)
    end
    local digits = (int .. frac):gsub("^0+", "")
    if digits == "" then
      sign = ""
    end
    if backend == "sqlite" then
      local exact_int = frac == "" and (#int < 19 or (#int == 19 and int <= INT64_MAX_TEXT))
      local significant = #digits:gsub("0+$", "")
      if not exact_int and significant > 15 then
        return nil, string.format("%s has %d significant digits; SQLite stores at most 15 "
          .. "exactly (or an integer within 64 bits)", type(v) == "string"
          and string.format("%q", v) or tostring(v), significant)
      end
    end
    if p ~= nil then
      frac = frac .. ("0"):rep(s - #frac)
    end
    return (sign == "-" and "-" or "") .. (int == "" and "0" or int)
      .. (frac ~= "" and "." .. frac or "")
  end
end

-- The Lua number of the canonical numeric text 't' when it holds it
-- exactly (an integer within 64 bits, or at most 15 significant digits),
-- else 't'.  Relation keys over numeric columns travel as numbers, which
-- compare by value with the keys of any numeric column on both backends.
function types.numeric_key(t)
  if type(t) ~= "string" then
    return t
  end
  local i = math.tointeger(tonumber(t))
  if i ~= nil and not t:find("[.]%d*[1-9]") and string.format("%d", i) == t:gsub("%.0*$", "") then
    return i
  end
  local digits = t:gsub("[-.]", ""):gsub("^0+", ""):gsub("0+$", "")
  if #digits <= 15 then
    return tonumber(t) + 0.0
  end
  return t
end

-- Dates are bound as "YYYY-MM-DD", PostgreSQL's ISO output, so SQLite,
-- which compares them as text, orders and matches them as PostgreSQL does.
function makers.date()
  return function(v)
    local y, m, d
    if type(v) == "string" then
      y, m, d = date_parts(v)
    end
    if y == nil then
      return expected("date " .. DATE_FORMS, v)
    end
    return string.format("%04d-%02d-%02d", y, m, d)
  end
end

-- Timestamps are bound in one canonical UTC text (see 'timestamp_text').
function makers.timestamp()
  return function(v)
    if type(v) ~= "string" then
      return expected(TIMESTAMP_FORMS, v)
    end
    local text, why = timestamp_text(v)
    if text == nil then
      if why ~= nil then
        return nil, "timestamp " .. show(v) .. ": " .. why
      end
      return expected(TIMESTAMP_FORMS, v)
    end
    return text
  end
end

-- Strings are taken as JSON text and checked here, before any SQL, as
-- both backends would (the CHECK on SQLite and jsonb on PostgreSQL stay
-- as a second guard); tables are encoded here.
function makers.json()
  return function(v)
    if type(v) == "string" then
      local why = json.problem(v)
      if why ~= nil then
        return nil, "not JSON text: " .. why
      end
      return v
    end
    if type(v) ~= "table" or getmetatable(v) ~= nil then
      return expected("table or JSON text", v)
    end
    local text, err = json.encode(v)
    if text == nil then
      return nil, "cannot encode as JSON: " .. err
    end
    return text
  end
end

-- A plain string is wrapped, so PostgreSQL receives it as bytea.
function makers.blob()
  return function(v)
    if type(v) == "string" then
      return core.blob(v)
    end
    if isblob(v) then
      return v
    end
    return expected("string or loam.blob", v)
  end
end

function makers.enum(col)
  local set, names = {}, {}
  for i, name in ipairs(col.values) do
    set[name] = true
    names[i] = string.format("%q", name)
  end
  local what = "one of " .. table.concat(names, ", ")
  return function(v)
    if type(v) ~= "string" or not set[v] then
      return expected(what, v)
    end
    return v
  end
end

-- The coercion function of column 'col' (a DDL AST column) for the
-- backend 'backend' ("sqlite", "postgres"; nil checks only what both take).
function types.coercer(col, backend)
  local f = makers[col.type](col, backend)
  local checked
  if col.null == false then
    checked = function(v)
      if v == null then
        return nil, "cannot be NULL"
      end
      return f(v)
    end
  else
    checked = function(v)
      if v == null then
        return null
      end
      return f(v)
    end
  end
  -- The columns most rows write take a value their maker would return
  -- unchanged (an integer in range, plain text) in one call, not three.
  local quick = types.quick(col)
  if quick == nil then
    return checked
  end
  return assert(load("local mtype, utf8_len, find, type, checked = ...\n"
    .. "return function(v) if " .. quick .. " then return v end return checked(v) end",
    "=loam.types coercer", "t", {}))(types.quick_env(checked))
end

-- What a value of column 'col' passes to be taken unchanged, without its
-- coercer: { kind = "integer", min =, max = } (an integer in that range;
-- no bounds for any 64-bit integer) or { kind = "text", length = }
-- (valid UTF-8 without NUL, of at most 'length' characters when given),
-- or nil for a type without a quick test.  A value that fails it goes
-- through the column's full checks.  'types.quick' writes it as Lua for
-- the coercers below; Model:insert_many hands it to the core, which tests
-- it in C.
function types.quick_shape(col)
  local t = col.type
  if t == "id" or t == "bigint" then
    return { kind = "integer" }
  elseif t == "integer" then
    return { kind = "integer", min = INT32_MIN, max = INT32_MAX }
  elseif t == "text" then
    return { kind = "text", length = col.length }
  end
  return nil
end

-- The values of the upvalues a quick test reads, then the extra values given.
function types.quick_env(...)
  return mtype, utf8_len, find, type, ...
end

-- types.quick_shape(col) as a Lua expression over a local 'v' and the
-- upvalues 'mtype' (math.type), 'utf8_len' (utf8.len), 'find'
-- (string.find) and 'type' (types.quick_env gives them, in that order),
-- or nil.
function types.quick(col)
  local q = types.quick_shape(col)
  if q == nil then
    return nil
  elseif q.kind == "integer" then
    if q.min == nil then
      return 'mtype(v) == "integer"'
    end
    return string.format('mtype(v) == "integer" and v >= %d and v <= %d', q.min, q.max)
  elseif q.length ~= nil then
    return string.format('type(v) == "string" and (utf8_len(v) or %d) <= %d '
      .. 'and not find(v, "\\0", 1, true)', q.length + 1, q.length)
  end
  return 'type(v) == "string" and utf8_len(v) ~= nil and not find(v, "\\0", 1, true)'
end

-- }======================================================================


-- {======================================================================
-- Declarations
-- =======================================================================

-- What a constructor returns: the arguments as given and the position of
-- the call.  'types.declare' checks them once the model names its table,
-- so every message can name model and column.
local Declaration = { __name = "loam.Column" }

function types.is_declaration(v)
  return getmetatable(v) == Declaration
end

local Sql = { __name = "loam.sql" }
Sql.__index = Sql
Sql.__tostring = function(s) return "loam.sql " .. string.format("%q", s.sql) end

-- A raw SQL expression used as a column default.  The DDL AST takes it as
-- a table with field 'sql'.
function types.sql(s)
  if type(s) ~= "string" or s == "" then
    errors.raise("misuse", "loam.sql expects a non-empty string, got " .. show(s))
  end
  return setmetatable({ sql = s }, Sql)
end

-- The current date or time as a default (loam.now): the canonical text
-- on SQLite, CURRENT_DATE / CURRENT_TIMESTAMP on PostgreSQL.  The DDL AST
-- takes it as { now = true }.
local Now = { __name = "loam.now", __tostring = function() return "loam.now" end }
types.now = setmetatable({ now = true }, Now)

local function declaration(kind, name, opts, values, nextra)
  return setmetatable({
    type = kind, name = name, opts = opts, values = values, extra = nextra > 0,
    where = errors.where(),
  }, Declaration)
end

-- The constructors by the name loam exports them under.  A blob column
-- is declared with 'bytes', since loam.blob already wraps blob values.
types.constructors = {}

-- loam.id([name [, { column = "Id" }]]): the bigint identity primary key.
function types.constructors.id(name, opts, ...)
  return declaration("id", name == nil and "id" or name, opts, nil, select("#", ...))
end

local exported = { blob = "bytes" }

for _, kind in ipairs { "integer", "bigint", "text", "numeric", "boolean", "float",
                        "date", "timestamp", "json", "blob" } do
  types.constructors[exported[kind] or kind] = function(name, opts, ...)
    return declaration(kind, name, opts, nil, select("#", ...))
  end
end

-- loam.enum(name, values [, opts])
function types.constructors.enum(name, values, opts, ...)
  return declaration("enum", name, opts, values, select("#", ...))
end

-- The options every type takes, and those only some take.
local common = {
  null = "boolean", default = "any", unique = "boolean", primary_key = "boolean",
  check = "string", references = "any", on_delete = "string", on_update = "string",
  column = "string", renamed_from = "string",
}
local special = {
  text = { length = true },
  numeric = { precision = true, scale = true },
}

local actions = {
  ["cascade"] = true, ["restrict"] = true, ["set null"] = true,
  ["set default"] = true, ["no action"] = true,
}
types.FK_ACTIONS = actions  -- a model's composite foreign keys take the same

-- The checks of identifiers the core applies too, made early so the error
-- names the declaration.
function types.ident_problem(s)
  if type(s) ~= "string" or s == "" then
    return "must be a non-empty string, got " .. show(s)
  end
  if #s > core.IDENT_MAX then
    return string.format("%q is longer than %d bytes", s, core.IDENT_MAX)
  end
  if s:find("\0", 1, true) then
    return "contains a NUL byte"
  end
  return nil
end

local function positive_int(v)
  return math.type(v) == "integer" and v > 0
end

-- Turns declaration 'd' of table 'tname' into a column of the DDL AST.
-- Also returns what belongs to the table rather than the column:
-- 'check' (raw SQL), 'primary_key' (true) and 'column', the name of the
-- column in SQL (option 'column'; the declared name, which is the Lua
-- field, by default).  The returned column keeps the Lua name: the model
-- renames it for DDL.  'backend' ("sqlite" or "postgres") refuses the
-- defaults that backend cannot honour.
function types.declare(tname, d, index, backend)
  local cname = type(d.name) == "string" and d.name or ("#" .. index)
  local fields = { model = tname, column = cname }
  local function fail(fmt, ...)
    errors.raise("misuse", tname .. "." .. cname .. ": " .. string.format(fmt, ...),
      fields, d.where)
  end
  local problem = types.ident_problem(d.name)
  if problem then
    fail("column name %s", problem)
  end
  if d.extra then
    fail("too many arguments to loam.%s", exported[d.type] or d.type)
  end
  local opts = d.opts
  if opts == nil then
    opts = {}
  elseif type(opts) ~= "table" or getmetatable(opts) ~= nil then
    fail("options must be a table, got %s", show(opts))
  end
  local allowed = special[d.type] or {}
  for k, v in pairs(opts) do
    if d.type == "id" and k ~= "column" and k ~= "renamed_from" then
      fail("loam.id takes the options 'column' and 'renamed_from', got %s",
        type(k) == "string" and "'" .. k .. "'" or show(k))
    end
    local want = common[k]
    if type(k) ~= "string" or (want == nil and not allowed[k]) then
      fail("unknown option %s", type(k) == "string" and "'" .. k .. "'" or show(k))
    end
    if want ~= nil and want ~= "any" and type(v) ~= want then
      fail("option '%s' must be a %s, got %s", k, want, show(v))
    end
  end

  local col = { name = d.name, type = d.type }
  col.null = opts.null ~= false
  if d.type == "id" then
    col.null = false
  elseif opts.primary_key then
    if opts.null == true then
      fail("a primary key column cannot be nullable")
    end
    col.null = false
    col.primary_key = true
  end
  if opts.unique then
    col.unique = true
  end

  if d.type == "text" and opts.length ~= nil then
    if not positive_int(opts.length) then
      fail("length must be a positive integer, got %s", show(opts.length))
    end
    col.length = opts.length
  elseif d.type == "numeric" then
    local p, s = opts.precision, opts.scale
    if s ~= nil and p == nil then
      fail("scale needs a precision")
    end
    if p ~= nil and (not positive_int(p) or p > 1000) then
      fail("precision must be an integer from 1 to 1000, got %s", show(p))
    end
    if s ~= nil and (math.type(s) ~= "integer" or s < 0 or s > p) then
      fail("scale must be an integer from 0 to the precision (%d), got %s", p, show(s))
    end
    col.precision, col.scale = p, s
  elseif d.type == "enum" then
    local values = d.values
    if type(values) ~= "table" or #values == 0 then
      fail("enum values must be a non-empty array of strings, got %s", show(values))
    end
    local copy, seen = {}, {}
    for i, v in ipairs(values) do
      if type(v) ~= "string" or v == "" then
        fail("enum value #%d must be a non-empty string, got %s", i, show(v))
      end
      if seen[v] then
        fail("enum value %q appears twice", v)
      end
      seen[v] = true
      copy[i] = v
    end
    col.values = copy
  end

  if opts.references ~= nil then
    local ref = opts.references
    if type(ref) == "string" then
      problem = types.ident_problem(ref)
      if problem then
        fail("references: table name %s", problem)
      end
      col.references = { table = ref, column = "id" }
    elseif type(ref) == "table" and rawget(ref, "__model") == true then
      if #ref.primary_key ~= 1 then
        fail("references %s, whose primary key is not one column", ref.table)
      end
      col.references = { table = ref.table, column = ref.primary_key[1] }
    else
      fail("references must be a model or a table name, got %s", show(ref))
    end
  end
  for _, k in ipairs { "on_delete", "on_update" } do
    local action = opts[k]
    if action ~= nil then
      if col.references == nil then
        fail("option '%s' needs 'references'", k)
      end
      if not actions[action] then
        fail("%s must be one of cascade, restrict, set null, set default, no action; got %q",
          k, action)
      end
      if action == "set null" and col.null == false then
        fail("%s = \"set null\" on a NOT NULL column", k)
      end
      col.references[k] = action
    end
  end
  if opts.column ~= nil then
    problem = types.ident_problem(opts.column)
    if problem then
      fail("column: name %s", problem)
    end
  end
  if opts.check ~= nil and opts.check == "" then
    fail("check must be a non-empty SQL expression")
  end

  -- The default is coerced like any value written to the column, so a
  -- default the model itself would refuse is caught at declaration.
  local default = opts.default
  if default ~= nil then
    if default == types.now then
      if d.type ~= "date" and d.type ~= "timestamp" then
        fail("default loam.now needs a date or timestamp column, not %s",
          exported[d.type] or d.type)
      end
      col.default = default
    elseif getmetatable(default) == Sql then
      -- SQLite has no date type: nothing says the expression writes the
      -- canonical text that values are compared in (CURRENT_TIMESTAMP
      -- writes '2021-01-01 00:00:00', which never equals a loam timestamp).
      if backend == "sqlite" and (d.type == "date" or d.type == "timestamp") then
        fail("a raw SQL default (%s) on a %s column cannot be known to write the canonical "
          .. "%s text on SQLite; write default = loam.now for the current %s",
          tostring(default), d.type, d.type, d.type == "date" and "date" or "time")
      end
      col.default = default
    else
      local v, msg = types.coercer(col)(default)
      if v == nil then
        fail("bad default: %s", msg)
      end
      col.default = v
    end
  end
  return col, { check = opts.check, primary_key = opts.primary_key or d.type == "id",
                column = opts.column or d.name, renamed_from = opts.renamed_from }
end

-- }======================================================================

return types
