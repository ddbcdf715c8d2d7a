/*
** lua_catalog.c: 'conn:table_exists(name)' and 'MIGRATIONS_TABLE', the
** schema introspection of the core (schema.c) for Lua, and
** 'conn:exact_numeric()', a fact of the backend's dialect.
**
** The Lua layer asks the core what the database holds, and what its
** backend does, instead of writing catalog SQL or branching on the
** backend's name: the catalog queries and the facts of each backend are
** data in the core's dialects, and the name of the migrations table is
** the one loam.h defines.
*/
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#include "loam.h"
#include "lua_loam_int.h"


/*
** conn:table_exists(name): true when a table 'name' exists where an
** unqualified name would be created.  The name goes to the core as a C
** string, so one holding a NUL byte, which would be cut short there, is
** refused.
*/
static int conn_table_exists (lua_State *L) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *conn = loamL_checkconn(L);
  size_t len;
  const char *name, *nul;
  int exists = 0;
  if (lua_type(L, 2) != LUA_TSTRING)
    return loamL_misuse(L, "table_exists: table name must be a string, got %s",
                        luaL_typename(L, 2));
  name = lua_tolstring(L, 2, &len);
  if ((nul = memchr(name, '\0', len)) != NULL)
    return loamL_misuse(L, "table_exists: table name contains a NUL byte at position %I",
                        (lua_Integer)(nul - name) + 1);
  if (loam_table_exists(conn, name, &exists, &err) != LOAM_OK)
    return loamL_raise(L, &err, NULL);
  lua_pushboolean(L, exists);
  return 1;
}


/* conn:exact_numeric(): whether its numeric columns keep every digit. */
static int conn_exact_numeric (lua_State *L) {
  loam_conn *conn = loamL_checkconn(L);
  lua_pushboolean(L, loam_exact_numeric(loam_conn_backend(conn)));
  return 1;
}


void loamL_open_catalog (lua_State *L) {
  luaL_getmetatable(L, "loam.Conn");
  lua_getfield(L, -1, "__index");
  lua_pushcfunction(L, conn_table_exists);
  lua_setfield(L, -2, "table_exists");
  lua_pushcfunction(L, conn_exact_numeric);
  lua_setfield(L, -2, "exact_numeric");
  lua_pop(L, 2);
  lua_pushliteral(L, LOAM_MIGRATIONS_TABLE);
  lua_setfield(L, -2, "MIGRATIONS_TABLE");
}
