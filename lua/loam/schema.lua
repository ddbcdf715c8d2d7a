-- loam.schema: tables straight from models, for tests and throwaway
-- databases.  Migrations are the only road to a production schema, so
-- both functions refuse to run with LOAM_ENV=production and on a database
-- that has a migration history; they run in one transaction each, the
-- models in foreign-key order, so a failure leaves nothing half-applied.
--
--   schema.create_tables(db, models) -> the models in the order used
--   schema.drop_tables(db, models)   -> the models in the order used
--   schema.fk_order(models, what)    -> the models, each after those it
--                                       references ('what' names the caller)

local errors = require "loam.errors"
local model = require "loam.model"

local raise = errors.raise

local schema = {}

-- Schema made from models is for tests and throwaway databases: refused
-- in production and wherever migrations already manage the schema.
local function guard(db, what)
  if os.getenv("LOAM_ENV") == "production" then
    raise("misuse", what .. " refuses to run with LOAM_ENV=production: a production schema "
      .. "changes only through migrations")
  end
  if model.has_migrations(db) then
    raise("misuse", what .. " refuses to run on a database with a migration history (table "
      .. model.MIGRATIONS_TABLE .. " exists): its schema is managed by migrations; write a "
      .. "migration instead")
  end
end

-- 'models' in foreign-key order: each after the models it references.
-- The given order is kept where references do not decide.
function schema.fk_order(models, what)
  if type(models) ~= "table" or #models == 0 then
    raise("misuse", what .. " expects a non-empty array of models, got " .. errors.show(models))
  end
  local by_table = {}
  for i, M in ipairs(models) do
    if type(M) ~= "table" or rawget(M, "__model") ~= true then
      raise("misuse", string.format("%s: item #%d is not a model, got %s", what, i,
        errors.show(M)))
    end
    if by_table[M.table] then
      raise("misuse", string.format("%s: table %s is given twice", what, M.table))
    end
    by_table[M.table] = M
  end
  local function deps(M)
    local out = {}
    for _, t in ipairs(M._deps) do
      if by_table[t] and t ~= M.table then out[#out + 1] = by_table[t] end
    end
    return out
  end
  local order, done = {}, {}
  while #order < #models do
    local progress = false
    for _, M in ipairs(models) do
      if not done[M] then
        local ready = true
        for _, d in ipairs(deps(M)) do
          if not done[d] then ready = false break end
        end
        if ready then
          done[M], progress = true, true
          order[#order + 1] = M
        end
      end
    end
    if not progress then
      -- Walk references among the models left until one repeats.
      local M, seen, path = nil, {}, {}
      for _, m in ipairs(models) do
        if not done[m] then M = m break end
      end
      while not seen[M] do
        seen[M] = #path + 1
        path[#path + 1] = M.table
        for _, d in ipairs(deps(M)) do
          if not done[d] then M = d break end
        end
      end
      local cycle = { table.unpack(path, seen[M]) }
      cycle[#cycle + 1] = M.table
      raise("misuse", string.format("%s: the foreign keys of %s form a cycle (%s); create "
        .. "these tables with a migration", what, table.concat(cycle, ", ", 1, #cycle - 1),
        table.concat(cycle, " -> ")))
    end
  end
  return order
end

-- Creates the tables, constraints and indexes of 'models', each after
-- the tables it references, in one transaction (DDL is transactional on
-- both backends), so a failure leaves none of them behind.  Returns the
-- models in the order used.
function schema.create_tables(db, models)
  local order = schema.fk_order(models, "create_tables")
  guard(db, "create_tables")
  db:transaction(function()
    for _, M in ipairs(order) do
      for _, ast in ipairs(M:ddl()) do
        db:exec(db:render_ddl(ast))
      end
    end
  end)
  return order
end

-- Drops the tables of 'models' that exist, referencing tables first, in
-- one transaction: all of them or, after a failure, none.  Returns the
-- models in the order used.
function schema.drop_tables(db, models)
  local order = schema.fk_order(models, "drop_tables")
  guard(db, "drop_tables")
  local reversed = {}
  db:transaction(function()
    for i = #order, 1, -1 do
      local M = order[i]
      reversed[#reversed + 1] = M
      db:exec(db:render_ddl { k = "drop_table", name = M.table, if_exists = true })
    end
  end)
  return reversed
end

return schema
