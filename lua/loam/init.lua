-- loam: the Lua face of the loam ORM.
--
--   local loam = require "loam"
--   local db = loam.connect("sqlite:app.db")      -- or "postgresql://user@host/db"
--   for row in db:each("select id, email from users where tier = ?", { "pro" }) do ... end
--
-- This module re-exports the C module 'loam.core' and is where the pure
-- Lua layers (models, queries, migrations) attach.  What it offers today:
--
--   connect(url [, opts]) -> conn   opts: statement_cache, busy_timeout_ms,
--                                   connect_timeout_s (integers)
--   null                            the SQL NULL value, in results and parameters
--   isnull(v) -> boolean            v == loam.null
--   blob(s) -> blob                 binds the byte string 's' as a BLOB / bytea
--   Error                           metatable of every error object raised
--   version                         "0.1.0"
--
-- Error policy: every failure raises.  Database failures and misuse alike
-- raise an error object (a table with metatable 'loam.Error' and fields
-- 'code', 'sqlstate', 'message', 'detail', 'constraint', 'table', 'column',
-- 'where'), so 'pcall' callers branch on 'err.code' and a failed statement
-- always aborts the function around it.

local core = require "loam.core"

local loam = {
  connect = core.connect,
  null = core.null,
  isnull = core.isnull,
  blob = core.blob,
  Error = core.Error,
  version = core.version,
}

return loam
