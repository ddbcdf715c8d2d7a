-- examples/demo.lua: a first look at loam.
--
--   make demo                              (the SQLite file build/demo.db)
--   loam examples/demo.lua sqlite:other.db  (with loam installed)
--
-- Connects, creates a table, inserts rows with bound parameters, reads them
-- back two ways and shows what a failed statement raises.  It starts from
-- the same rows every time, so a second run prints the same thing.

local loam = require "loam"

local url = arg[1] or "sqlite:build/demo.db"
local db = loam.connect(url)
print("connected to " .. url)

db:exec([[
  CREATE TABLE IF NOT EXISTS fruits (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    color       TEXT,
    price_cents INTEGER NOT NULL
  )]])
db:exec("DELETE FROM fruits")

-- Values are always bound parameters, never pasted into the SQL text.
-- loam.null stands for SQL NULL (a nil would end the list).
print()
for _, fruit in ipairs {
  { "apple", "red", 120 },
  { "banana", "yellow", 45 },
  { "cherry", "dark red", 900 },
  { "durian", loam.null, 2500 },
} do
  local changes, id = db:exec(
    "INSERT INTO fruits (name, color, price_cents) VALUES (?, ?, ?)", fruit)
  print(string.format("inserted %-8s changes = %d, id = %d", fruit[1], changes, id))
end

-- Prints 'rows' as an aligned table of 'columns', numbers to the right.
local function show (rows, columns)
  local function text (v)
    if v == loam.null then return "NULL" end
    return tostring(v)
  end
  local width = {}
  for i, col in ipairs(columns) do
    width[i] = #col
    for _, row in ipairs(rows) do width[i] = math.max(width[i], #text(row[col])) end
  end
  local function line (cells, right)
    local out = {}
    for i, cell in ipairs(cells) do
      local pad = string.rep(" ", width[i] - #cell)
      out[i] = right[i] and pad .. cell or cell .. pad
    end
    local text_line = ("  " .. table.concat(out, "  ")):gsub("%s+$", "")
    print(text_line)
  end
  local right, rule = {}, {}
  for i, col in ipairs(columns) do
    right[i] = rows[1] ~= nil and math.type(rows[1][col]) ~= nil
    rule[i] = string.rep("-", width[i])
  end
  line(columns, right)
  line(rule, right)
  for _, row in ipairs(rows) do
    local cells = {}
    for i, col in ipairs(columns) do cells[i] = text(row[col]) end
    line(cells, right)
  end
end

-- db:query returns every row at once, each keyed by column name.
print("\ndb:query:")
show(db:query("SELECT id, name, color, price_cents FROM fruits ORDER BY id"),
     { "id", "name", "color", "price_cents" })

-- db:each streams one row at a time; leaving the loop early (break, error)
-- finalizes the statement.
print("\ndb:each, under one euro:")
for row in db:each("SELECT name, price_cents FROM fruits WHERE price_cents < ? ORDER BY price_cents",
                   { 100 }) do
  print(string.format("  %s costs %d cents", row.name, row.price_cents))
end

-- A failed statement raises an error object: branch on err.code.
print("\ninserting a second apple:")
local ok, err = pcall(db.exec, db,
  "INSERT INTO fruits (name, color, price_cents) VALUES (?, ?, ?)", { "apple", "green", 99 })
assert(not ok, "the duplicate was accepted")
print("  err.code    = " .. tostring(err.code))
print("  tostring()  = " .. tostring(err))
print(string.format("  still %d fruits", db:query("SELECT count(*) AS n FROM fruits")[1].n))

db:close()
