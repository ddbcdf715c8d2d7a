-- loam-scm-1.rockspec: the Lua modules of loam and its C module loam.core
-- (libloam built in).  Offline build of this checkout:
--
--   luarocks --lua-version 5.4 make loam-scm-1.rockspec
--
-- On Debian libpq-fe.h lives in /usr/include/postgresql, which luarocks
-- does not search: add PGSQL_INCDIR=/usr/include/postgresql (the output of
-- 'pg_config --includedir').  Every C source is listed by name ('make
-- check-rockspec' tells when one is missing); the Lua modules are the
-- lua/ directory, which luarocks installs whole.

rockspec_format = "3.0"
package = "loam"
version = "scm-1"

source = {
  -- 'luarocks make' builds the checkout it is run in.
  url = ".",
}

description = {
  summary = "An ORM for Lua with a C core, for SQLite and PostgreSQL",
  detailed = [[
loam makes the ORM failures that cause production incidents impossible or
loud: N+1 queries, cartesian explosions, implicit lazy loads, unsafe
migrations, leaked connections and long transactions.  Its core is a C
library with drivers for SQLite and PostgreSQL (libpq).
]],
  labels = { "database", "orm", "sqlite", "postgresql" },
  license = "MIT",
}

dependencies = {
  "lua >= 5.4, < 5.5",
}

external_dependencies = {
  SQLITE = { header = "sqlite3.h" },
  PGSQL = { header = "libpq-fe.h" },
}

test_dependencies = {
  "busted",
}

test = {
  type = "busted",
}

build = {
  type = "builtin",
  modules = {
    ["loam.core"] = {
      sources = {
        "bindings/lua_ast.c",
        "bindings/lua_batch.c",
        "bindings/lua_bulk.c",
        "bindings/lua_catalog.c",
        "bindings/lua_conn.c",
        "bindings/lua_error.c",
        "bindings/lua_introspect.c",
        "bindings/lua_loam.c",
        "bindings/lua_migrate.c",
        "bindings/lua_pool.c",
        "bindings/lua_query.c",
        "bindings/lua_schema.c",
        "bindings/lua_stmt.c",
        "bindings/lua_trace.c",
        "bindings/lua_tx.c",
        "bindings/lua_value.c",
        "core/src/base/buf.c",
        "core/src/base/error.c",
        "core/src/base/hash.c",
        "core/src/base/value.c",
        "core/src/sql/builder.c",
        "core/src/sql/ddl.c",
        "core/src/sql/dialect.c",
        "core/src/sql/redact.c",
        "core/src/sql/render.c",
        "core/src/sql/sqltext.c",
        "core/src/conn/bulk.c",
        "core/src/conn/conn.c",
        "core/src/conn/drv_pg.c",
        "core/src/conn/drv_pg_connect.c",
        "core/src/conn/drv_pg_copy.c",
        "core/src/conn/drv_pg_pipe.c",
        "core/src/conn/drv_pg_types.c",
        "core/src/conn/drv_sqlite.c",
        "core/src/conn/schema.c",
        "core/src/conn/sqlite_keys.c",
        "core/src/conn/stmt_cache.c",
        "core/src/conn/trace.c",
        "core/src/conn/tx.c",
        "core/src/conn/txrun.c",
        "core/src/conn/url.c",
        "core/src/pool/pool.c",
        "core/src/pool/pool_open.c",
        "core/src/pool/pool_report.c",
        "core/src/pool/replica.c",
        "core/src/load/batch.c",
        "core/src/migrate/arena.c",
        "core/src/migrate/backfill.c",
        "core/src/migrate/createsql.c",
        "core/src/migrate/introspect.c",
        "core/src/migrate/lock.c",
        "core/src/migrate/migrate.c",
        "core/src/migrate/ops.c",
        "core/src/migrate/rebuild.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      incdirs = { "core/include", "core/src", "$(SQLITE_INCDIR)", "$(PGSQL_INCDIR)" },
      libdirs = { "$(SQLITE_LIBDIR)", "$(PGSQL_LIBDIR)" },
      libraries = { "sqlite3", "pq", "pthread" },
    },
  },
}
