-- loam.migrate.lint: the safety linter of migrations.
--
-- Each rule is data: its name, why the change it catches is dangerous,
-- the safe alternative, the backends (and PostgreSQL server versions) it
-- applies to, and a test of one operation of a migration.  A migration
-- silences a rule with a written reason: allow = { rule = "why" }.
--
--   lint.RULES                      the rules, in the order they are told
--   lint.check(migs, ctx) -> findings
--       ctx: backend ("sqlite" | "postgres"), server_version (PostgreSQL's
--       server_version_num, e.g. 150004), models (table name -> set of the
--       column names the project's models use; may be nil)
--       finding: { rule, migration, at, message, why, safe }
--   lint.context(db [, models]) -> ctx for the database 'db'
--   lint.format(finding) -> the lines that tell it
--
-- "An existing table" is one the migration does not create itself: the
-- linter cannot know how large it is, so it assumes it may be large.

local errors = require "loam.errors"

local lint = {}

-- Whether 'op' acts on a table that exists before its migration.
local function existing(op, m)
  return not m.created[op.table]
end

local function sql_kind(sql)
  return (sql:match("^%s*(%a+)") or ""):lower()
end

local DATA = { insert = true, update = true, delete = true, merge = true, copy = true }

lint.RULES = {
  {
    name = "index_not_concurrent",
    backends = { postgres = true },
    why = "CREATE INDEX without CONCURRENTLY blocks every write to the table until the index "
      .. "is built",
    safe = "add_index(..., { concurrently = true }), in a migration of its own (a concurrent "
      .. "build runs outside a transaction)",
    test = function(op, m)
      if op.op == "add_index" and not op.concurrently and existing(op, m) then
        return ("add_index on existing table %s without concurrently"):format(op.table)
      end
    end,
  },
  {
    name = "foreign_key_validated",
    backends = { postgres = true },
    why = "ADD FOREIGN KEY checks every row while it holds locks that block writes to both "
      .. "tables",
    safe = "add_foreign_key(..., { not_valid = true }), then validate_foreign_key(...) in a "
      .. "later migration (VALIDATE takes a lock that lets writes through)",
    test = function(op, m)
      if op.op == "add_foreign_key" and not op.not_valid and existing(op, m) then
        return ("add_foreign_key %s on existing table %s without not_valid"):format(op.name,
          op.table)
      end
    end,
  },
  {
    name = "check_validated",
    backends = { postgres = true },
    why = "ADD CHECK reads every row under a lock that blocks reads and writes of the table",
    safe = "add_check(..., { not_valid = true }), then validate it in a later migration "
      .. "(execute \"ALTER TABLE t VALIDATE CONSTRAINT c\")",
    test = function(op, m)
      if op.op == "add_check" and not op.not_valid and existing(op, m) then
        return ("add_check %s on existing table %s without not_valid"):format(op.name, op.table)
      end
    end,
  },
  {
    name = "unique_not_concurrent",
    backends = { postgres = true },
    why = "ADD CONSTRAINT ... UNIQUE builds its index while it holds a lock that blocks reads "
      .. "and writes of the table",
    safe = "add_index(..., { unique = true, concurrently = true }) in a migration of its own, "
      .. "then execute \"ALTER TABLE t ADD CONSTRAINT c UNIQUE USING INDEX i\"",
    test = function(op, m)
      if op.op == "add_unique" and existing(op, m) then
        return ("add_unique %s on existing table %s"):format(op.name, op.table)
      end
    end,
  },
  {
    name = "set_not_null",
    backends = { postgres = true },
    why = "SET NOT NULL reads every row under a lock that blocks reads and writes of the table",
    safe = "add_check(t, \"c_not_null\", \"c IS NOT NULL\", { not_valid = true }), validate it "
      .. "in a later migration, then alter_column(t, c, { null = false }) (PostgreSQL 12 and "
      .. "later use the valid check instead of reading the table) and drop_check",
    test = function(op, m)
      if op.op == "alter_column" and op.alter.null and op.column.null == false
         and existing(op, m) then
        return ("alter_column %s.%s sets NOT NULL directly"):format(op.table, op.name)
      end
    end,
  },
  {
    name = "volatile_default",
    backends = { postgres = true },
    why = "a column added with a default written in SQL that calls a function (random(), "
      .. "clock_timestamp(), gen_random_uuid()) may be volatile, and then PostgreSQL rewrites "
      .. "the whole table under an exclusive lock to store a value in every row",
    safe = "add the column without a default, set the default with alter_column, and backfill "
      .. "the existing rows in batches",
    test = function(op, m)
      local d = op.op == "add_column" and op.column.default
      if type(d) == "table" and type(d.sql) == "string" and d.sql:find("%(") and
         existing(op, m) then
        return ("add_column %s.%s with the SQL default %s"):format(op.table, op.column.name,
          d.sql)
      end
    end,
  },
  {
    name = "constant_default_rewrite",
    backends = { postgres = true },
    before_server = 110000,
    why = "before PostgreSQL 11, adding a column with any default rewrites the whole table "
      .. "under an exclusive lock",
    safe = "add the column without a default, set the default with alter_column, and backfill "
      .. "the existing rows in batches",
    test = function(op, m)
      if op.op == "add_column" and op.column.default ~= nil and existing(op, m) then
        return ("add_column %s.%s with a default"):format(op.table, op.column.name)
      end
    end,
  },
  {
    name = "type_change_rewrite",
    backends = { postgres = true },
    why = "changing a column's type rewrites the table and its indexes under a lock that "
      .. "blocks reads and writes (only a few changes, such as a longer text length, do not)",
    safe = "add a column of the new type, backfill it in batches, move the code to it, then "
      .. "drop the old column",
    test = function(op, m)
      if op.op == "alter_column" and op.alter.type and existing(op, m) then
        return ("alter_column %s.%s changes its type to %s"):format(op.table, op.name,
          op.column.type)
      end
    end,
  },
  {
    name = "rename_in_use",
    backends = { postgres = true, sqlite = true },
    why = "the running application still uses the old name: its queries fail from the moment "
      .. "the migration commits until the new code is deployed",
    safe = "first deploy models that no longer use the old name (a new column, written to "
      .. "both and backfilled), then rename or drop in a later migration",
    test = function(op, m, ctx)
      local models = ctx.models
      if models == nil then return nil end
      if op.op == "rename_table" and models[op.table] then
        return ("rename_table %s, which a model still uses"):format(op.table)
      end
      if op.op == "rename_column" and models[op.table] and models[op.table][op.name] then
        return ("rename_column %s.%s, which a model still declares"):format(op.table, op.name)
      end
    end,
  },
  {
    name = "drop_column_in_use",
    backends = { postgres = true, sqlite = true },
    why = "a model still declares the column: every query of that model fails once it is gone",
    safe = "first deploy models without the column, then drop it in a later migration",
    test = function(op, m, ctx)
      local cols = ctx.models and ctx.models[op.table]
      if op.op == "drop_column" and cols and cols[op.name] then
        return ("drop_column %s.%s, which a model still declares"):format(op.table, op.name)
      end
    end,
  },
  {
    name = "not_null_without_default",
    backends = { postgres = true, sqlite = true },
    why = "a NOT NULL column without a default cannot be added to a table that has rows: the "
      .. "migration fails wherever the table is not empty",
    safe = "add it nullable, backfill it in batches, then make it NOT NULL (see set_not_null); "
      .. "or give it a default",
    test = function(op, m)
      local c = op.op == "add_column" and op.column
      if c and c.null == false and c.default == nil and c.type ~= "id" and existing(op, m) then
        return ("add_column %s.%s is NOT NULL without a default"):format(op.table, c.name)
      end
    end,
  },
  {
    name = "schema_and_data",
    backends = { postgres = true, sqlite = true },
    why = "a migration that changes rows as well as the schema holds the schema's locks while "
      .. "the rows change, and cannot be retried or reverted as one piece",
    safe = "move the data change (the INSERT, UPDATE or DELETE) to a data_migration { } of "
      .. "its own, with backfill(...) for an UPDATE of many rows (batched, resumable)",
    test = function(op, m)
      if op.op == "execute" and DATA[sql_kind(op.sql)] and m.has_ddl then
        return ("execute %s in a migration that also changes the schema"):format(
          sql_kind(op.sql):upper())
      end
    end,
  },
}

local by_name = {}
for _, r in ipairs(lint.RULES) do by_name[r.name] = r end
lint.by_name = by_name

local function rule_names()
  local names = {}
  for _, r in ipairs(lint.RULES) do names[#names + 1] = r.name end
  return table.concat(names, ", ")
end

-- Whether rule 'r' applies to the database described by 'ctx'.
local function applies(r, ctx)
  if not r.backends[ctx.backend] then return false end
  if r.before_server ~= nil then
    return ctx.backend == "postgres" and (ctx.server_version or 0) < r.before_server
  end
  return true
end

-- The findings of the migrations 'migs' on the database of 'ctx'.  An
-- 'allow' naming no rule is an error, so a typo silences nothing.
function lint.check(migs, ctx)
  local findings = {}
  for _, mig in ipairs(migs) do
    for rule in pairs(mig.allow or {}) do
      if by_name[rule] == nil then
        errors.raise("misuse", ("%s: allow names no rule '%s' (rules: %s)"):format(
          mig.path or mig.version, rule, rule_names()), nil, "")
      end
    end
    local m = { created = {}, has_ddl = false }
    for _, op in ipairs(mig.up) do
      if op.op ~= "execute" and op.op ~= "backfill" then m.has_ddl = true end
    end
    for _, op in ipairs(mig.up) do
      for _, r in ipairs(lint.RULES) do
        if applies(r, ctx) and not (mig.allow and mig.allow[r.name]) then
          local message = r.test(op, m, ctx)
          if message ~= nil then
            findings[#findings + 1] = { rule = r.name, migration = mig, at = op.at,
                                        message = message, why = r.why, safe = r.safe }
          end
        end
      end
      if op.op == "create_table" then m.created[op.table] = true end
      if op.op == "rename_table" and m.created[op.table] then m.created[op.new_name] = true end
    end
  end
  return findings
end

-- The context of the database 'db': its backend and server version, and
-- the columns of 'models' (name -> model, as the project loads them).
function lint.context(db, models)
  local ctx = { backend = db:backend() }
  if ctx.backend == "postgres" then
    ctx.server_version = math.tointeger(tonumber(
      db:query("SELECT current_setting('server_version_num') AS v")[1].v))
  end
  if models ~= nil then
    ctx.models = {}
    for _, M in pairs(models) do
      local cols = {}
      for _, col in ipairs(M.columns) do cols[M._column[col.name]] = true end
      ctx.models[M.table] = cols
    end
  end
  return ctx
end

-- The lines that tell finding 'f'.
function lint.format(f)
  return ("%s: %s: %s\n  why: %s\n  safe: %s\n  silence: allow = { %s = \"the reason\" }"):format(
    f.at or f.migration.path, f.rule, f.message, f.why, f.safe, f.rule)
end

return lint
