-- loam.migrate.pull: Lua model files from a live database, for `loam
-- models pull`, so a team adopting loam over a schema it did not design
-- starts from real models.
--
--   pull.models(schema [, only]) -> { { table =, name =, file =, text =, notes = {...} }, ... }
--     'schema' is what db:introspect() returns; one entry per table (loam's
--     own migration tables left out; with 'only', a set of names, those
--     tables alone), in table order.  'text' is the file:
--     the model declaration and, in the function it returns, the relations
--     (belongs_to from each foreign key, has_many or has_one back).
--   pull.model_name(table) -> "Person" for "people"
--
-- What a model declares is read back from what its DDL makes, so pull →
-- create the tables → pull again gives the same files: the checks loam
-- writes itself (enum values, text length and json validity on SQLite)
-- become the column's type and options again, generated constraint and
-- index names are left out, a check SQLite keeps without a name gets one,
-- and defaults become Lua values.  What a model
-- cannot declare (an index on an expression, a type loam does not
-- know) is said in a comment of the file and in 'notes'.  A foreign key
-- over several columns, or to columns other than the primary key, is an
-- entry of the model's 'foreign_keys', and its relation is declared with
-- explicit keys.

local core = require "loam.core"

local pull = {}

local IDENT = "^[%a_][%w_]*$"

-- {======================================================================
-- Names
-- =======================================================================

local function singular(word)
  if word:match("ies$") then return word:sub(1, -4) .. "y" end
  if word:match("sses$") or word:match("[xz]es$") or word:match("[cs]hes$") then
    return word:sub(1, -3)
  end
  if word:match("ss$") or word:match("us$") or word:match("is$") then return word end
  if word == "people" then return "person" end
  if word:match("s$") then return word:sub(1, -2) end
  return word
end

-- The model's name: the table's words, the last made singular, each
-- capitalised ("order_items" -> "OrderItem").
function pull.model_name(tname)
  local words = {}
  for w in tname:gmatch("[^_%W]+") do words[#words + 1] = w:lower() end
  if #words == 0 then return "Model" end
  words[#words] = singular(words[#words])
  for i, w in ipairs(words) do words[i] = w:sub(1, 1):upper() .. w:sub(2) end
  local name = table.concat(words)
  if not name:match("^%a") then name = "M" .. name end
  return name
end

-- }======================================================================


-- {======================================================================
-- Writing Lua values
-- =======================================================================

-- A Lua string literal of 's', on one line.
local function lstr(s)
  return (string.format("%q", s):gsub("\\\n", "\\n"))
end
pull.lstr = lstr

local function lname(s)
  return lstr(s)
end

local function lkey(k)
  return k:match(IDENT) and k or ("[" .. lstr(k) .. "]")
end

-- A Lua array of the strings 'names'.
local function list(names)
  local out = {}
  for i, n in ipairs(names) do out[i] = lstr(n) end
  return "{ " .. table.concat(out, ", ") .. " }"
end
pull.list = list

-- Decimal text 'num' with at least 'scale' digits after the point, as
-- loam writes a NUMERIC default ("0" -> "0.00").
function pull.decimal(num, scale)
  local int, frac = num:match("^(%-?%d+)%.?(%d*)$")
  scale = scale or 0
  if int ~= nil and #frac < scale then num = int .. "." .. frac .. ("0"):rep(scale - #frac) end
  return num
end

-- Strips parentheses around the whole of 's': SQLite keeps an index
-- predicate as loam wrote it, inside "( )", and it must not gain a pair
-- on every round.
local function unwrap(s)
  while s:sub(1, 1) == "(" and s:sub(-1) == ")" do
    local depth, closes_early = 0, false
    for i = 1, #s do
      local c = s:sub(i, i)
      if c == "(" then depth = depth + 1
      elseif c == ")" then
        depth = depth - 1
        if depth == 0 and i < #s then closes_early = true break end
      end
    end
    if closes_early then break end
    s = s:sub(2, -2)
  end
  return s
end
pull.unwrap = unwrap

-- The SQL text of a string literal 'x' (PostgreSQL may add '::type').
local function literal(sql)
  local body = sql:match("^'(.*)'::[%w %p]+$") or sql:match("^'(.*)'$")
  if body == nil or body:gsub("''", ""):find("'", 1, true) then return nil end
  return (body:gsub("''", "'"))
end

-- The Lua text of the default 'sql' of column 'c' (introspected), as the
-- model declares it, or nil with the raw SQL when no value reads back.
local function default_value(c, ltype, backend)
  local sql = c.default
  if sql == nil then return nil end
  sql = unwrap(sql)
  if ltype == "timestamp" or ltype == "date" then
    if sql == "CURRENT_TIMESTAMP" or sql == "CURRENT_DATE" or sql == "now()"
       or sql:find("strftime('%Y-%m-%d", 1, true) or sql:find("date('now')", 1, true) then
      return "loam.now"
    end
  end
  if ltype == "boolean" then
    if sql == "true" or (backend == "sqlite" and sql == "1") then return "true" end
    if sql == "false" or (backend == "sqlite" and sql == "0") then return "false" end
  end
  if sql:upper() == "NULL" or sql:match("^NULL::") then return nil end
  local num = sql:match("^'?(%-?%d+%.?%d*)'?::[%w %p]+$") or sql:match("^%-?%d+%.?%d*$")
  if num ~= nil and ltype ~= "text" and ltype ~= "enum" then
    if ltype == "numeric" then
      return lstr(pull.decimal(num, c.scale))
    end
    local n = math.tointeger(tonumber(num)) or tonumber(num)
    if n ~= nil then return tostring(n) end
  end
  local s = literal(sql)
  if s ~= nil then return lstr(s) end
  return "loam.sql(" .. lstr(sql) .. ")"
end

-- }======================================================================


-- {======================================================================
-- Reading loam's own checks back
-- =======================================================================

local function quoted_or_bare(col)
  return "\"?" .. col:gsub("%p", "%%%0") .. "\"?"
end

-- The values of an enum check on column 'col', or nil.
local function enum_values(sql, col)
  local q = quoted_or_bare(col)
  local inner = unwrap(sql)
  local body = inner:match("^" .. q .. " [Ii][Nn] %((.*)%)$")
  if body == nil then
    body = inner:match("^" .. q .. " = ANY %(ARRAY%[(.*)%]%)$")
  end
  if body == nil then return nil end
  local values = {}
  for item in (body .. ","):gmatch("%s*(.-)%s*,") do
    local v = literal(item)
    if v == nil then return nil end
    values[#values + 1] = v
  end
  return #values > 0 and values or nil
end

local function sqlite_length(sql, col)
  return tonumber(unwrap(sql):match("^length%(" .. quoted_or_bare(col) .. "%) <= (%d+)$"))
end

local function sqlite_json(sql, col)
  local q = quoted_or_bare(col)
  return unwrap(sql):match("^" .. q .. " IS NULL OR json_valid%(" .. q .. "%)$") ~= nil
end

-- }======================================================================


-- {======================================================================
-- One table
-- =======================================================================

local function generated(tname, cols, suffix)
  local short = core.constraint_name(tname, cols, suffix)
  return short
end

-- Whether the arrays 'a' and 'b' hold the same items in the same order.
local function same(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end
pull.same = same

-- The constructor of each loam type.
local CONSTRUCTOR = { blob = "bytes" }

-- The constructor call that declares column 'd' (a description: name,
-- type, values, length, precision, scale, null, primary_key, unique,
-- default (Lua text), references { table, on_delete, on_update }, check),
-- each constructor's name after 'prefix' ("loam." in a model file).
function pull.column_text(d, prefix)
  if d.type == "id" then
    return prefix .. (d.name == "id" and "id()" or ("id(" .. lname(d.name) .. ")"))
  end
  local parts = {}
  local function opt(k, v) parts[#parts + 1] = k .. " = " .. v end
  if d.length then opt("length", tostring(d.length)) end
  if d.precision then
    opt("precision", tostring(d.precision))
    opt("scale", tostring(d.scale or 0))
  end
  if d.null == false then opt("null", "false") end
  if d.primary_key then opt("primary_key", "true") end
  if d.unique then opt("unique", "true") end
  if d.default ~= nil then opt("default", d.default) end
  local ref = d.references
  if ref ~= nil then
    opt("references", lstr(ref.table))
    if ref.on_delete and ref.on_delete ~= "no action" then opt("on_delete", lstr(ref.on_delete)) end
    if ref.on_update and ref.on_update ~= "no action" then opt("on_update", lstr(ref.on_update)) end
  end
  if d.check then opt("check", lstr(d.check)) end
  local args = { lname(d.name) }
  if d.type == "enum" then args[#args + 1] = list(d.values) end
  if #parts > 0 then args[#args + 1] = "{ " .. table.concat(parts, ", ") .. " }" end
  return ("%s%s(%s)"):format(prefix, CONSTRUCTOR[d.type] or d.type, table.concat(args, ", "))
end

-- The entry of a model's 'foreign_keys' that declares 'fk' (introspected,
-- or of a DDL AST) of table 'tname': its columns, the referenced table,
-- the referenced columns unless they are 'ref_pk' (that table's primary
-- key, when known), the actions other than NO ACTION, and the name unless
-- it is the generated one.
function pull.foreign_key_text(tname, fk, ref_pk)
  local parts = {}
  for i, cn in ipairs(fk.columns) do parts[i] = lstr(cn) end
  parts[#parts + 1] = "references = " .. lstr(fk.ref_table)
  if fk.ref_columns and not (ref_pk and same(ref_pk, fk.ref_columns)) then
    parts[#parts + 1] = "ref_columns = " .. list(fk.ref_columns)
  end
  for _, k in ipairs { "on_delete", "on_update" } do
    if fk[k] and fk[k] ~= "no action" then parts[#parts + 1] = k .. " = " .. lstr(fk[k]) end
  end
  if fk.name ~= nil and fk.name ~= generated(tname, fk.columns, "fkey") then
    parts[#parts + 1] = "name = " .. lstr(fk.name)
  end
  return "{ " .. table.concat(parts, ", ") .. " }"
end

-- Reads table 't' into the model's declaration: columns (Lua text each),
-- table options and notes.  'schema' finds the referenced tables.
local function declare(t, schema)
  local backend = schema.backend
  local notes = {}
  local tname = t.name
  local pk = t.primary_key and t.primary_key.columns or {}

  -- The checks loam made itself, by column; the rest stay checks.
  local by_check, own_checks, user_checks, user_indexes = {}, {}, {}, {}
  for _, ck in ipairs(t.checks) do
    if ck.name ~= nil then by_check[ck.name] = ck end
  end

  local single_unique = {}
  local uniques = {}
  for _, u in ipairs(t.uniques) do
    if #u.columns == 1 and (u.name == nil or u.name == generated(tname, u.columns, "key"))
       and not single_unique[u.columns[1]] then
      single_unique[u.columns[1]] = true
    else
      uniques[#uniques + 1] = u
    end
  end

  -- Single-column foreign keys to the referenced table's one-column
  -- primary key are the column's 'references'.
  local col_fk, other_fks = {}, {}
  for _, fk in ipairs(t.fks) do
    local ref = schema.by_name[fk.ref_table]
    local rpk = ref and ref.primary_key and ref.primary_key.columns or {}
    if #fk.columns == 1 and #rpk == 1 and fk.ref_columns[1] == rpk[1]
       and not col_fk[fk.columns[1]] then
      col_fk[fk.columns[1]] = fk
      if fk.name ~= nil and fk.name ~= generated(tname, fk.columns, "fkey") then
        notes[#notes + 1] = ("foreign key %s is declared by column %s and will be named %s"):format(
          fk.name, fk.columns[1], generated(tname, fk.columns, "fkey"))
      end
    else
      other_fks[#other_fks + 1] = fk
    end
  end
  -- By their columns, not their names: SQLite may have none, and the
  -- tables the models make have generated ones.
  table.sort(other_fks, function(a, b)
    return table.concat(a.columns, "\0") < table.concat(b.columns, "\0")
  end)

  local lines, descs = {}, {}
  local inline_pk = #pk == 1 and not (t.by_name[pk[1]] and t.by_name[pk[1]].generated)
  for _, c in ipairs(t.columns) do
    local ltype = c.loam_type
    local opts = {}
    local check1 = by_check[generated(tname, { c.name }, "check")]
    if ltype == nil then
      notes[#notes + 1] = ("column %s: type %s has no loam type; declared as text"):format(
        c.name, c.type)
      ltype = "text"
    end
    if ltype == "id" and not (#pk == 1 and pk[1] == c.name) then ltype = "bigint" end
    if ltype == "text" and check1 == nil then
      for _, ck in ipairs(t.checks) do
        local values = ck.name == nil and not own_checks[ck] and enum_values(ck.sql, c.name)
        if values then
          ltype, own_checks[ck] = "enum", true
          opts.values = values
          break
        end
      end
    end
    if ltype == "text" and check1 ~= nil then
      local values = enum_values(check1.sql, c.name)
      if values then
        ltype, own_checks[check1.name] = "enum", true
        opts.values = values
      elseif backend == "sqlite" and sqlite_length(check1.sql, c.name) then
        opts.length = sqlite_length(check1.sql, c.name)
        own_checks[check1.name] = true
      elseif backend == "sqlite" and sqlite_json(check1.sql, c.name) then
        ltype, own_checks[check1.name] = "json", true
      end
    end
    if ltype == "text" and c.length then opts.length = c.length end
    -- The column's own check: <t>_<c>_check, or _check1 after loam's.
    local own = by_check[generated(tname, { c.name }, "check1")]
    if own == nil and check1 ~= nil and not own_checks[check1.name] then own = check1 end
    if own ~= nil and ltype ~= "id" then
      opts.check, own_checks[own.name] = unwrap(own.sql), true
      user_checks[own.name] = opts.check
    end
    local fk = col_fk[c.name]
    local desc = {
      name = c.name, type = ltype, values = opts.values, length = opts.length,
      null = not c.not_null, unique = single_unique[c.name] or nil,
      primary_key = (inline_pk and pk[1] == c.name) or nil,
      default = ltype ~= "id" and default_value(c, ltype, backend) or nil,
      references = fk and { table = fk.ref_table, column = fk.ref_columns[1],
                            on_delete = fk.on_delete,
                            on_update = fk.on_update } or nil,
      check = opts.check,
    }
    if ltype == "numeric" and c.precision then
      desc.precision, desc.scale = c.precision, c.scale or 0
    end
    descs[#descs + 1] = desc
    lines[#lines + 1] = pull.column_text(desc, "loam.")
  end

  -- Table options.
  local topts = {}
  if #pk > 1 then topts[#topts + 1] = "primary_key = " .. list(pk) end
  if #uniques > 0 then
    local items = {}
    for _, u in ipairs(uniques) do
      local cols = {}
      for i, cn in ipairs(u.columns) do cols[i] = lstr(cn) end
      if u.name ~= nil and u.name ~= generated(tname, u.columns, "key") then
        cols[#cols + 1] = "name = " .. lstr(u.name)
      end
      items[#items + 1] = "{ " .. table.concat(cols, ", ") .. " }"
    end
    topts[#topts + 1] = "uniques = { " .. table.concat(items, ", ") .. " }"
  end
  local indexes = {}
  for _, ix in ipairs(t.indexes) do
    local expr = false
    for i = 1, #ix.exprs do if ix.exprs[i] then expr = true end end
    if expr then
      notes[#notes + 1] = ("index %s is on an expression and cannot be declared by a model"):format(
        ix.name)
    else
      user_indexes[ix.name] = ix
      local cols = {}
      for i, cn in ipairs(ix.columns) do cols[i] = lstr(cn) end
      if ix.unique then cols[#cols + 1] = "unique = true" end
      if ix.where then cols[#cols + 1] = "where = " .. lstr(unwrap(ix.where)) end
      if ix.name ~= generated(tname, ix.columns, "idx") then
        cols[#cols + 1] = "name = " .. lstr(ix.name)
      end
      indexes[#indexes + 1] = "{ " .. table.concat(cols, ", ") .. " }"
    end
  end
  if #indexes > 0 then topts[#topts + 1] = "indexes = { " .. table.concat(indexes, ", ") .. " }" end
  if #other_fks > 0 then
    local items = {}
    for i, fk in ipairs(other_fks) do
      local ref = schema.by_name[fk.ref_table]
      items[i] = pull.foreign_key_text(tname, fk, ref and ref.primary_key and ref.primary_key.columns)
    end
    topts[#topts + 1] = "foreign_keys = { " .. table.concat(items, ", ") .. " }"
  end
  local checks = {}
  for _, ck in ipairs(t.checks) do
    if not (own_checks[ck] or (ck.name and own_checks[ck.name])) then
      local name = ck.name
      if name == nil then
        -- SQLite keeps a check without a name; the model names it as
        -- PostgreSQL would: <table>_check, then _check1, ...
        local base, n = generated(tname, {}, "check"), 0
        name = base
        while by_check[name] do n = n + 1; name = base .. n end
        by_check[name] = ck
      end
      user_checks[name] = unwrap(ck.sql)
      checks[#checks + 1] = { name, lkey(name) .. " = " .. lstr(unwrap(ck.sql)) }
    end
  end
  table.sort(checks, function(a, b) return a[1] < b[1] end)
  for i, ck in ipairs(checks) do checks[i] = ck[2] end
  if #checks > 0 then topts[#topts + 1] = "checks = { " .. table.concat(checks, ", ") .. " }" end
  return lines, topts, notes, descs, { checks = user_checks, indexes = user_indexes }
end

-- Table 't' of 'schema' (db:introspect()) as a model would declare it:
-- { columns = { <description>... } (see 'pull.column_text'), by_name,
--   checks = { name = sql } (loam's own checks of enum, length and json
--   left out), indexes = { name = <index> } (those on columns), notes }.
function pull.describe_table(t, schema)
  local _, _, notes, descs, parts = declare(t, schema)
  local by_name = {}
  for _, d in ipairs(descs) do by_name[d.name] = d end
  return { columns = descs, by_name = by_name, checks = parts.checks, indexes = parts.indexes,
           notes = notes }
end

-- }======================================================================


-- {======================================================================
-- Relations
-- =======================================================================

-- The relations of every table: belongs_to from each foreign key, and
-- has_many (has_one when the key is unique) on the referenced model.
-- Names avoid the columns and each other: "customer" for customer_id,
-- "orders" back; a second key or a key to its own table names the back
-- relation after the key ("manager_employees").
local function relations(entries, schema)
  local used = {}
  for _, e in ipairs(entries) do
    used[e.table] = {}
    for _, c in ipairs(e.t.columns) do used[e.table][c.name] = true end
  end
  local function claim(tname, want, alt)
    local u = used[tname]
    local name = want
    if u[name] then name = alt end
    local n = 2
    local base = name
    while u[name] do name = base .. n; n = n + 1 end
    u[name] = true
    return name
  end
  local by_table = {}
  for _, e in ipairs(entries) do by_table[e.table] = e; e.relations = {} end
  local count = {}
  for _, e in ipairs(entries) do
    for _, fk in ipairs(e.t.fks) do
      local key = e.table .. "\0" .. fk.ref_table
      count[key] = (count[key] or 0) + 1
    end
  end
  -- By their columns, not their names: SQLite may have none, and the
  -- tables the models make have generated ones.
  local function fks_of(t)
    local fks = { table.unpack(t.fks) }
    table.sort(fks, function(a, b)
      return table.concat(a.columns, "\0") < table.concat(b.columns, "\0")
    end)
    return fks
  end
  for _, e in ipairs(entries) do
    for _, fk in ipairs(fks_of(e.t)) do
      local target = by_table[fk.ref_table]
      if target ~= nil then
        -- "customer" for customer_id; a key not named <x>_id names the
        -- relation after itself and the target ("reply_to_post").
        local col = #fk.columns == 1 and fk.columns[1] or nil
        local base = col and (col:match("^(.+)_id$") or col) or singular(fk.ref_table)
        local bname = claim(e.table, base, base .. "_" .. singular(fk.ref_table))
        local unique = false
        for _, u in ipairs(e.t.uniques) do
          if same(u.columns, fk.columns) then unique = true end
        end
        if e.t.primary_key and same(e.t.primary_key.columns, fk.columns) then unique = true end
        local plain = unique and singular(e.table) or e.table
        local back
        if e.table == fk.ref_table or count[e.table .. "\0" .. fk.ref_table] > 1 then
          back = claim(fk.ref_table, base .. "_" .. plain, bname .. "_" .. plain)
        else
          back = claim(fk.ref_table, plain, base .. "_" .. plain)
        end
        local function keyspec(cols)
          return #cols == 1 and lstr(cols[1]) or list(cols)
        end
        local rpk = target.t.primary_key and target.t.primary_key.columns or {}
        local refs = ""
        if not same(fk.ref_columns, rpk) then refs = ", references = " .. keyspec(fk.ref_columns) end
        e.relations[#e.relations + 1] = ("models.%s:belongs_to(%s, models.%s, { key = %s%s, inverse = %s })")
          :format(e.name, lstr(bname), target.name, keyspec(fk.columns), refs, lstr(back))
        target.relations[#target.relations + 1] = ("models.%s:%s(%s, models.%s, { key = %s%s, inverse = %s })")
          :format(target.name, unique and "has_one" or "has_many", lstr(back), e.name,
                  keyspec(fk.columns), refs, lstr(bname))
      end
    end
  end
end

-- }======================================================================


local function is_loam_table(name)
  return name == core.MIGRATIONS_TABLE or name:match("^loam_migration_") ~= nil
end

local function render(e)
  local out = {}
  local function w(s) out[#out + 1] = s end
  w(("-- The model of table %s, pulled from the database by `loam models pull`."):format(e.table))
  for _, n in ipairs(e.notes) do w("-- Not declared: " .. n .. ".") end
  w('local loam = require "loam"')
  w("")
  w("return function(db, models)")
  w(("  models.%s = db:model(%s, {"):format(e.name, lstr(e.table)))
  for _, l in ipairs(e.lines) do w("    " .. l .. ",") end
  if #e.topts > 0 then
    w("  }, {")
    for _, l in ipairs(e.topts) do w("    " .. l .. ",") end
  end
  w("  })")
  if #e.relations > 0 then
    w("  return function()")
    for _, l in ipairs(e.relations) do w("    " .. l) end
    w("  end")
  end
  w("end")
  return table.concat(out, "\n") .. "\n"
end

function pull.models(schema, only)
  local entries, names = {}, {}
  for _, t in ipairs(schema.tables) do
    if not is_loam_table(t.name) then
      local name = pull.model_name(t.name)
      local base, n = name, 2
      while names[name] do name = base .. n; n = n + 1 end
      names[name] = true
      local lines, topts, notes = declare(t, schema)
      entries[#entries + 1] = { table = t.name, name = name, t = t, lines = lines,
                                topts = topts, notes = notes,
                                file = (t.name:gsub("[^%w_%-]", "_")) .. ".lua" }
    end
  end
  relations(entries, schema)
  local out = {}
  for _, e in ipairs(entries) do
    if only == nil or only[e.table] then out[#out + 1] = { table = e.table, name = e.name, file = e.file, notes = e.notes, text = render(e) } end
  end
  return out
end

return pull
