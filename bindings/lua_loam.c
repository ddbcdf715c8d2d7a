/*
** lua_loam.c: the Lua 5.4 module 'loam.core', a plain client of loam.h:
** its entry point and module table.
**
** The module gives Lua connections ('loam.Conn', lua_conn.c), streaming
** statements ('loam.Stmt', lua_stmt.c), error objects ('loam.Error',
** lua_error.c), the SQL NULL sentinel ('loam.null') and BLOB parameters
** ('loam.blob', lua_value.c), and the functions of the other files of
** bindings/.  Opening it creates each file's metatables and fills one
** module table; 'loam_lua_open' lets a host preload it.
*/
#include "lua.h"
#include "lauxlib.h"

#include "loam.h"
#include "loam_lua.h"
#include "lua_loam_int.h"


/* {======================================================================
** Registration
** ======================================================================= */

/*
** Creates the metatable 'tname' with its metamethods and, when 'meth' is
** given, a method table as '__index'.  An existing metatable is kept as it
** is: opening the module again must not drop methods that Lua code added.
*/
void loamL_createmeta (lua_State *L, const char *tname, const luaL_Reg *meth,
                       const luaL_Reg *metameth) {
  if (luaL_newmetatable(L, tname)) {
    luaL_setfuncs(L, metameth, 0);
    if (meth != NULL) {
      lua_newtable(L);
      luaL_setfuncs(L, meth, 0);
      lua_setfield(L, -2, "__index");
    }
  }
  lua_pop(L, 1);
}


const char loamL_conn_key = 'C', loamL_stmt_key = 'S', loamL_prepared_key = 'P';


void loamL_keymeta (lua_State *L, const char *tname, const char *key) {
  luaL_getmetatable(L, tname);
  lua_pushboolean(L, 1);
  lua_rawsetp(L, -2, key);
  lua_pop(L, 1);
}


void *loamL_testud (lua_State *L, int idx, const char *key) {
  void *p = lua_touserdata(L, idx);
  int is;
  if (p == NULL || !lua_getmetatable(L, idx))
    return NULL;
  is = lua_rawgetp(L, -1, key) == LUA_TBOOLEAN;
  lua_pop(L, 2);
  return is ? p : NULL;
}


LOAM_LUA_API int luaopen_loam_core (lua_State *L) {
  lua_newtable(L);
  loamL_open_conn(L);
  loamL_open_stmt(L);
  loamL_open_error(L);
  loamL_open_value(L);
  lua_pushliteral(L, LOAM_VERSION);
  lua_setfield(L, -2, "version");
  loamL_open_schema(L);
  loamL_open_catalog(L);
  loamL_open_introspect(L);
  loamL_open_ast(L);
  loamL_open_query(L);
  loamL_open_batch(L);
  loamL_open_trace(L);
  loamL_open_tx(L);
  loamL_open_bulk(L);
  loamL_open_pool(L);
  loamL_open_migrate(L);
  return 1;
}


LOAM_LUA_API void loam_lua_open (lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_loam_core);
  lua_setfield(L, -2, "loam.core");
  lua_pop(L, 1);
}

/* }====================================================================== */
