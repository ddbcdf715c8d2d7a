/*
** lua_value.c: values crossing between Lua and the core: the SQL NULL
** sentinel 'loam.null', the BLOB wrapper 'loam.blob', reading Lua values
** (and parameter lists) as core values and pushing core values to Lua.
*/
#include <limits.h>
#include <stddef.h>

#include "lua.h"
#include "lauxlib.h"

#include "loam.h"
#include "lua_loam_int.h"


/* {======================================================================
** NULL sentinel, BLOB wrapper and values
** ======================================================================= */

/* Added to the core's parameter-count message: nil holes are the usual cause. */
#define NULL_HINT  " (write loam.null for NULL parameters)"

/* The registry key of the NULL sentinel: the address of this variable. */
static const char nullkey = 0;


void loamL_pushnull (lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &nullkey);
}


static int null_tostring (lua_State *L) {
  lua_pushliteral(L, "loam.null");
  return 1;
}


/*
** A blob is an empty userdata whose user value is the byte string, so it
** is immutable and its bytes stay alive as long as the wrapper.
*/
void loamL_pushblob (lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_newuserdatauv(L, 0, 1);
  luaL_setmetatable(L, BLOB_T);
  lua_pushvalue(L, idx);
  lua_setiuservalue(L, -2, 1);
}


static int l_blob (lua_State *L) {
  loamL_checkstring(L, 1, NULL);
  loamL_pushblob(L, 1);
  return 1;
}


static int blob_len (lua_State *L) {
  luaL_checkudata(L, 1, BLOB_T);
  lua_getiuservalue(L, 1, 1);
  lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
  return 1;
}


static int blob_tostring (lua_State *L) {
  luaL_checkudata(L, 1, BLOB_T);
  lua_getiuservalue(L, 1, 1);
  lua_pushfstring(L, "loam.blob (%I bytes)", (lua_Integer)lua_rawlen(L, -1));
  return 1;
}

static int l_isnull (lua_State *L) {
  if (lua_isnone(L, 1))
    loamL_argerror(L, 1, "value expected");
  loamL_pushnull(L);
  lua_pushboolean(L, lua_rawequal(L, 1, -1));
  return 1;
}


/*
** Converts the Lua value at 'idx' into a core value in '*v'; text and blob
** values point into Lua strings kept alive by the value itself.  'pos'
** numbers the parameter in the misuse message for anything unbindable.
*/
void loamL_tovalue (lua_State *L, int idx, int pos, loam_value *v) {
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx))
        *v = loam_int((int64_t)lua_tointeger(L, idx));
      else
        *v = loam_double((double)lua_tonumber(L, idx));
      return;
    case LUA_TBOOLEAN:
      *v = loam_bool(lua_toboolean(L, idx));
      return;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      *v = loam_text(s, len);
      return;
    }
    case LUA_TUSERDATA:
      if (luaL_testudata(L, idx, NULL_T) != NULL) {
        *v = loam_null();
        return;
      }
      if (luaL_testudata(L, idx, BLOB_T) != NULL) {
        size_t len;
        const char *s;
        lua_getiuservalue(L, idx, 1);
        s = lua_tolstring(L, -1, &len);
        *v = loam_blob(s, len);
        lua_pop(L, 1);  /* the wrapper at 'idx' keeps the string alive */
        return;
      }
      break;
    default:
      break;
  }
  {
    int isnil = lua_isnil(L, idx);
    const char *tname = loamL_valuename(L, idx);
    loamL_misuse(L, "parameter #%d: cannot bind a %s%s", pos, tname, isnil ? NULL_HINT : "");
  }
}


/*
** Converts the array at 'arg' (absent or nil: no parameters) into core
** values.  The count is 'lua_rawlen', which is exact only for arrays
** without holes; that is why NULL must be written 'loam.null'.  Text and
** blob values point into Lua strings that the table keeps alive for the
** whole call.  Lists longer than 'local' get a userdata left on the stack.
*/
const loam_value *loamL_checkparams (lua_State *L, int arg, loam_value *local,
                                     int *nparams /* OUT */) {
  loam_value *v = local;
  lua_Unsigned n, i;
  *nparams = 0;
  if (lua_isnoneornil(L, arg))
    return NULL;
  if (lua_type(L, arg) != LUA_TTABLE)
    loamL_typeerror(L, arg, "table");
  n = lua_rawlen(L, arg);
  if (n > INT_MAX)
    loamL_misuse(L, "too many parameters");
  if (n > NPARAMS_LOCAL)
    v = (loam_value *)lua_newuserdatauv(L, (size_t)n * sizeof *v, 0);
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, arg, (lua_Integer)i + 1);
    loamL_tovalue(L, -1, (int)i + 1, &v[i]);
    lua_pop(L, 1);
  }
  *nparams = (int)n;
  return v;
}


/*
** The hint goes with a wrong parameter count only: other misuse (two
** statements, mixed placeholder styles) has other causes.  The count is
** read again only once 'sql' failed on 'conn' with 'np' values, so a
** statement that runs pays nothing for it.
*/
const char *loamL_queryhint (loam_conn *conn, const char *sql, int np,
                             const loam_error *err) {
  int n;
  if (err->code != LOAM_E_MISUSE ||
      loam_sql_param_count(loam_conn_backend(conn), sql, &n, NULL) != LOAM_OK || n == np)
    return NULL;
  return NULL_HINT;
}


/*
** Pushes a core value: BLOB as a plain string (reading gives bytes; only
** binding needs the 'loam.blob' wrapper), NULL as the sentinel at 'nullidx'
** (0: fetch it from the registry).
*/
void loamL_pushvalue (lua_State *L, const loam_value *v, int nullidx) {
  switch (v->type) {
    case LOAM_BOOL: lua_pushboolean(L, v->u.b); break;
    case LOAM_INT: lua_pushinteger(L, (lua_Integer)v->u.i); break;
    case LOAM_DOUBLE: lua_pushnumber(L, (lua_Number)v->u.d); break;
    case LOAM_TEXT:
    case LOAM_BLOB: lua_pushlstring(L, v->u.s.ptr, v->u.s.len); break;
    default:
      if (nullidx != 0) lua_pushvalue(L, nullidx);
      else loamL_pushnull(L);
      break;
  }
}

/* Makes the one NULL sentinel of this state, unless it already exists. */
static void createnull (lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &nullkey) == LUA_TNIL) {
    lua_newuserdatauv(L, 0, 0);
    luaL_setmetatable(L, NULL_T);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &nullkey);
  }
  lua_pop(L, 1);
}

static const luaL_Reg null_metameth[] = {
  {"__tostring", null_tostring},
  {NULL, NULL}
};

static const luaL_Reg blob_metameth[] = {
  {"__len", blob_len},
  {"__tostring", blob_tostring},
  {NULL, NULL}
};


static const luaL_Reg value_funcs[] = {
  {"blob", l_blob},
  {"isnull", l_isnull},
  {NULL, NULL}
};


void loamL_open_value (lua_State *L) {
  loamL_createmeta(L, NULL_T, NULL, null_metameth);
  loamL_createmeta(L, BLOB_T, NULL, blob_metameth);
  luaL_setfuncs(L, value_funcs, 0);
  createnull(L);
  loamL_pushnull(L);
  lua_setfield(L, -2, "null");
}

/* }====================================================================== */
