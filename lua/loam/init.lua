-- loam: the Lua face of the loam ORM.
--
--   local loam = require "loam"
--   local db = loam.connect("sqlite:app.db")      -- or "postgresql://user@host/db"
--   local Customer = db:model("customers", {
--     loam.id(),
--     loam.text("email", { length = 255, null = false, unique = true }),
--     loam.enum("tier", { "free", "pro" }, { default = "free" }),
--   })
--   local c = Customer:create{ email = "a@example.com" }
--   for row in db:each("select id, email from customers where tier = ?", { "pro" }) do ... end
--
-- This module re-exports the C module 'loam.core' beside the pure Lua
-- layers.  What it offers:
--
--   connect(url [, opts]) -> db     a Database (loam.database) over one
--                                   connection; opts: statement_cache,
--                                   busy_timeout_ms, connect_timeout_s
--                                   (integers)
--   null                            the SQL NULL value, in results and parameters
--   isnull(v) -> boolean            v == loam.null
--   blob(s) -> blob                 binds the byte string 's' as a BLOB / bytea
--   Error                           metatable of every error object raised
--   version                         "0.1.0"
--
--   id([name]), integer, bigint, text, numeric, boolean, float, date,
--   timestamp, json, bytes (name [, opts]), enum(name, values [, opts])
--                                   column declarations for db:model
--                                   (loam.model); 'bytes' declares a blob
--                                   column, since loam.blob is the value
--   sql(s)                          a raw SQL column default
--   now                             the default "current date / time" of a
--                                   date or timestamp column
--   create_tables(db, models)       tables from models, for tests and
--   drop_tables(db, models)         throwaway databases only
--   op, raw                         where-clause helpers (loam.query)
--   preload(list, ...)              loads relations for instances in hand,
--                                   as q:include(...) would (loam.loader)
--   track(db, fn [, opts])          runs fn, returns a report of its queries
--                                   (counts, N+1s, unused eager loads)
--   budget(db, limits, fn)          runs fn under query/row limits (loam.track)
--
-- The methods of a Database (db:model, db:table, db:transaction,
-- db:reconnect, db:connection and the connection's own) are listed in
-- loam.database.
--
-- Error policy: every failure raises.  Database failures and misuse alike
-- raise an error object (a table with metatable 'loam.Error' and fields
-- 'code', 'sqlstate', 'message', 'detail', 'constraint', 'table', 'column',
-- 'where'), so 'pcall' callers branch on 'err.code' and a failed statement
-- always aborts the function around it.  Values a model refuses raise
-- 'validation_error' (with 'model' and 'column') before any SQL is sent.

local core = require "loam.core"
local types = require "loam.types"
local query = require "loam.query"
local schema = require "loam.schema"
local loader = require "loam.loader"
local track = require "loam.track"
local database = require "loam.database"

local loam = {
  connect = database.connect,
  null = core.null,
  isnull = core.isnull,
  blob = core.blob,
  Error = core.Error,
  version = core.version,
  sql = types.sql,
  now = types.now,
  create_tables = schema.create_tables,
  drop_tables = schema.drop_tables,
  op = query.op,
  raw = query.raw,
  track = track.run,
  budget = track.budget,
  preload = loader.preload,
}

for name, constructor in pairs(types.constructors) do
  loam[name] = constructor
end

return loam
