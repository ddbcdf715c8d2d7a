/*
** lua_loam_int.h: what the files of the Lua binding share.
**
** The binding is one Lua module ('loam.core') written in several files,
** one per concept.  These functions are hidden from the module's symbol
** table; only 'luaopen_loam_core' and 'loam_lua_open' are exported.
*/
#ifndef LUA_LOAM_INT_H
#define LUA_LOAM_INT_H

#include "lua.h"

#include "loam.h"

#if defined(__GNUC__)
#define LOAML_FUNC __attribute__((visibility("hidden"))) extern
#else
#define LOAML_FUNC extern
#endif

/*
** Raises the error object for 'err' (freeing the strings of 'err' first);
** 'hint', if not NULL, is appended to the message.  Never returns.
*/
LOAML_FUNC int loamL_raise (lua_State *L, loam_error *err, const char *hint);

/* Raises a 'misuse' error object with a 'lua_pushfstring' message.  Never returns. */
LOAML_FUNC int loamL_misuse (lua_State *L, const char *fmt, ...);

/*
** Converts the Lua value at 'idx' into '*v' (text and blob point into Lua
** strings the value keeps alive); raises misuse naming parameter 'pos'
** for a value that cannot be bound.
*/
LOAML_FUNC void loamL_tovalue (lua_State *L, int idx, int pos, loam_value *v);

/* Pushes 'v' as a Lua value; NULL as the sentinel at 'nullidx' (0: from the registry). */
LOAML_FUNC void loamL_pushvalue (lua_State *L, const loam_value *v, int nullidx);

/* Pushes the SQL NULL sentinel 'loam.null'. */
LOAML_FUNC void loamL_pushnull (lua_State *L);

/* Pushes a 'loam.blob' wrapping the string at 'idx' (which it keeps alive). */
LOAML_FUNC void loamL_pushblob (lua_State *L, int idx);

/* The open connection of the 'loam.Conn' at index 1; raises on a closed one. */
LOAML_FUNC loam_conn *loamL_checkconn (lua_State *L);

/* Pushes t[k] for the table at absolute index 't', without metamethods, and returns its type. */
LOAML_FUNC int loamL_field (lua_State *L, int t, const char *k);

/*
** The backend named by the string at 'arg' ("sqlite" or "postgres");
** raises misuse, naming the function 'fname', for anything else.
*/
LOAML_FUNC loam_backend loamL_checkdialect (lua_State *L, int arg, const char *fname);

/*
** Sets 'f' as field 'name' of the module table on top of the stack and
** 'method' as the 'loam.Conn' method of the same name.
*/
LOAML_FUNC void loamL_addfunc (lua_State *L, const char *name, lua_CFunction f,
                               lua_CFunction method);

/* Adds 'render_ddl' to the module table on top and to the 'loam.Conn' methods (lua_schema.c). */
LOAML_FUNC void loamL_open_schema (lua_State *L);

/* Adds 'render' to the module table on top and to the 'loam.Conn' methods (lua_query.c). */
LOAML_FUNC void loamL_open_query (lua_State *L);

#endif
