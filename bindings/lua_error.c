/*
** lua_error.c: error objects ('loam.Error') and their positions.
**
** Every failure, from the database or from misuse, raises an error
** object: a table with a stable 'code' that callers branch on, and a
** 'where' that names the program's line, past the frames of loam's own Lua
** files ('where', 'set_layer_source').  The module's checks of arguments
** live here too, since what they raise is such an object.
*/
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#include "loam.h"
#include "lua_loam_int.h"


/* {======================================================================
** Error objects
** ======================================================================= */


/* Sets field 'k' of the table on top to the string 's', unless 's' is NULL. */
static void setstrfield (lua_State *L, const char *k, const char *s) {
  if (s != NULL) {
    lua_pushstring(L, s);
    lua_setfield(L, -2, k);
  }
}


/*
** The registry key of the source prefix of the Lua layer's files ("@" and
** the directory of loam's modules), which the layer declares when it loads
** ('set_layer_source'): the address of this variable.
*/
static const char layerkey = 0;


/*
** The level of the first frame at or above stack level 'level' that runs
** a line of the program's own Lua code, its information in 'ar'; -1 when
** there is none.  loamL_pushwhere pushes it as "file:line: " ("" for
** none), loamL_wherebuf writes "file:line" into a buffer.  C
** functions have no line and are passed over: a method called straight
** through 'pcall' (pcall(db.exec, db, sql)) has 'pcall' as its caller,
** and the Lua code that called 'pcall' is the useful position then.  So
** are the frames of the Lua layer, whatever module: an error raised below
** 'Model:create' names the line that called 'create', not loam's line
** that ran the statement.  The position is chosen here, where the error
** is made, as 'luaL_where' does, so nothing above needs to catch and
** re-raise to correct it.
*/
static int findframe (lua_State *L, int level, lua_Debug *ar) {
  size_t n = 0;
  const char *layer;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &layerkey);
  layer = lua_tolstring(L, -1, &n);  /* NULL until the Lua layer loaded */
  for (; lua_getstack(L, level, ar); level++) {
    lua_getinfo(L, "Sl", ar);
    if (ar->currentline > 0 &&
        (layer == NULL || ar->srclen < n || memcmp(ar->source, layer, n) != 0)) {
      lua_pop(L, 1);
      return level;
    }
  }
  lua_pop(L, 1);
  return -1;
}


int loamL_pushwhere (lua_State *L, int level) {
  lua_Debug ar;
  level = findframe(L, level, &ar);
  if (level < 0) lua_pushliteral(L, "");
  else lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
  return level;
}


void loamL_wherebuf (lua_State *L, int level, char *buf, size_t size) {
  lua_Debug ar;
  buf[0] = '\0';
  if (findframe(L, level, &ar) >= 0) {
    /* By hand: snprintf would cost as much as the rest of a pooled call's checkout. */
    char num[16];
    size_t len = strlen(ar.short_src), k = 0;
    int line = ar.currentline;
    do num[k++] = (char)('0' + line % 10); while ((line /= 10) > 0 && k < sizeof num);
    if (len + 1 + k + 1 > size) len = size > k + 2 ? size - k - 2 : 0;
    memcpy(buf, ar.short_src, len);
    buf[len++] = ':';
    while (k > 0) buf[len++] = num[--k];
    buf[len] = '\0';
  }
}


/*
** Pushes a new error object.  'level' picks the function whose position
** goes into 'where': the Lua code that called into this module.
*/
static void newerror (lua_State *L, const char *code, const char *sqlstate,
                      const char *message, int level) {
  lua_createtable(L, 0, 8);
  setstrfield(L, "code", code);
  if (sqlstate != NULL && sqlstate[0] != '\0')
    setstrfield(L, "sqlstate", sqlstate);
  setstrfield(L, "message", message);
  loamL_pushwhere(L, level);
  lua_setfield(L, -2, "where");
  luaL_setmetatable(L, ERROR_T);
}


/* What 'builderror' copies into Lua: a core error and an optional hint. */
typedef struct ErrArgs {
  const loam_error *err;
  const char *hint;
} ErrArgs;


/*
** Converts a core error into an error object.  It runs under 'lua_pcall',
** because the strings of the C structure must be freed even when Lua runs
** out of memory while copying them.  Level 2 in 'where' is the caller of
** the module function that called 'lua_pcall'.
*/
static int builderror (lua_State *L) {
  const ErrArgs *a = (const ErrArgs *)lua_touserdata(L, 1);
  const loam_error *e = a->err;
  const char *msg = e->message;
  if (msg == NULL)  /* the core could not even allocate its message */
    msg = loam_errcode_name(e->code);
  if (a->hint != NULL)
    msg = lua_pushfstring(L, "%s%s", msg, a->hint);
  newerror(L, loam_errcode_name(e->code), e->sqlstate, msg, 2);
  setstrfield(L, "detail", e->detail);
  setstrfield(L, "constraint", e->constraint);
  setstrfield(L, "table", e->table);
  setstrfield(L, "column", e->column);
  return 1;
}


/*
** Raises the error object for 'err' and frees the strings of 'err' first,
** since 'lua_error' never returns.  If building the object itself failed,
** that failure (a memory error) is raised instead.
*/
int loamL_raise (lua_State *L, loam_error *err, const char *hint) {
  ErrArgs a;
  a.err = err;
  a.hint = hint;
  if (!lua_checkstack(L, 4)) {
    loam_error_clear(err);
    return luaL_error(L, "stack overflow");
  }
  lua_pushcfunction(L, builderror);
  lua_pushlightuserdata(L, &a);
  lua_pcall(L, 1, 1, 0);
  loam_error_clear(err);
  loamL_trace_flush_failing(L);  /* the failed statement's hook runs first */
  return lua_error(L);
}


/* Raises a misuse error object with a formatted message. */
int loamL_misuse (lua_State *L, const char *fmt, ...) {
  const char *msg;
  va_list ap;
  va_start(ap, fmt);
  msg = lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  newerror(L, loam_errcode_name(LOAM_E_MISUSE), NULL, msg, 1);
  return lua_error(L);
}


/*
** Pushes the key under which the table at the top of the stack holds the
** function at 'f', and returns it; NULL (nothing pushed) when it has none.
*/
static const char *keyof (lua_State *L, int f) {
  int t = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_rawequal(L, -1, f)) {
      lua_pop(L, 1);
      return lua_tostring(L, -1);
    }
    lua_pop(L, 1);
  }
  return NULL;
}


/*
** The name of the running function when the call itself does not tell:
** called through 'pcall(db.query, db, ...)' or a tail call, Lua knows no
** name, and its own 'luaL_argerror' finds only functions of loaded
** modules, never methods.  The methods of 'loam.Conn' and 'loam.Stmt' and
** the functions of the module are searched, in that order; the name is
** left on the stack (with the function) until the error is raised.
*/
static const char *funcname (lua_State *L, lua_Debug *ar) {
  static const char *const metas[] = {CONN_T, STMT_T};
  const char *name;
  size_t i;
  int f;
  if (!lua_getinfo(L, "f", ar))
    return NULL;
  f = lua_gettop(L);
  for (i = 0; i < sizeof metas / sizeof metas[0]; i++) {
    if (luaL_getmetatable(L, metas[i]) == LUA_TTABLE &&
        lua_getfield(L, -1, "__index") == LUA_TTABLE &&
        (name = keyof(L, f)) != NULL)
      return name;
    lua_pop(L, 2);
  }
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, "loam.core") == LUA_TTABLE && (name = keyof(L, f)) != NULL)
    return name;
  lua_pop(L, 2);
  return NULL;
}


/*
** The module's 'luaL_argerror': the same message, raised as a misuse error
** object.  Methods count 'self' as argument 0, as Lua's own checks do.
*/
int loamL_argerror (lua_State *L, int arg, const char *extramsg) {
  lua_Debug ar;
  const char *name = NULL;
  if (lua_getstack(L, 0, &ar)) {
    lua_getinfo(L, "n", &ar);
    if (ar.namewhat != NULL && strcmp(ar.namewhat, "method") == 0) {
      arg--;
      if (arg == 0)
        return loamL_misuse(L, "calling '%s' on bad self (%s)",
                       ar.name ? ar.name : "?", extramsg);
    }
    name = (ar.name != NULL) ? ar.name : funcname(L, &ar);
  }
  return loamL_misuse(L, "bad argument #%d to '%s' (%s)", arg, name ? name : "?", extramsg);
}


int loamL_selferror (lua_State *L, const char *tname) {
  lua_Debug ar;
  const char *name = NULL;
  const char *got = loamL_valuename(L, 1);
  if (lua_getstack(L, 0, &ar)) {
    lua_getinfo(L, "n", &ar);
    name = (ar.name != NULL) ? ar.name : funcname(L, &ar);
  }
  return loamL_misuse(L, "bad argument #1 to '%s' (%s expected, got %s)",
                      name ? name : "?", tname, got);
}


/* The name of the value at 'idx' for messages: its '__name', or its type. */
const char *loamL_valuename (lua_State *L, int idx) {
  if (luaL_getmetafield(L, idx, "__name") == LUA_TSTRING)
    return lua_tostring(L, -1);  /* stays on the stack until the raise */
  if (lua_type(L, idx) == LUA_TLIGHTUSERDATA)
    return "light userdata";
  return luaL_typename(L, idx);
}


int loamL_typeerror (lua_State *L, int arg, const char *tname) {
  const char *got = loamL_valuename(L, arg);
  return loamL_argerror(L, arg, lua_pushfstring(L, "%s expected, got %s", tname, got));
}


/* Only real strings are accepted: a number is never meant as SQL or a URL. */
const char *loamL_checkstring (lua_State *L, int arg, size_t *len) {
  if (lua_type(L, arg) != LUA_TSTRING)
    loamL_typeerror(L, arg, "string");
  return lua_tolstring(L, arg, len);
}


/*
** The one reader of SQL text from Lua.  libloam takes SQL as C strings,
** which end at the first NUL byte: "DELETE FROM t\0 WHERE id = 1" would
** run as "DELETE FROM t".  So text holding a NUL is refused, naming the
** byte's position (1-based, as Lua counts).  With 'arg' > 0 the message is
** an argument error of the running function; otherwise it starts with
** 'what'.
*/
const char *loamL_sqltext (lua_State *L, int idx, int arg, const char *what) {
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  const char *nul = memchr(s, '\0', len);
  if (nul != NULL) {
    const char *msg = lua_pushfstring(L, "SQL text contains a NUL byte at position %I",
                                      (lua_Integer)(nul - s) + 1);
    if (arg > 0) loamL_argerror(L, arg, msg);
    loamL_misuse(L, "%s: %s", what, msg);
  }
  return s;
}


/* A string argument read as SQL text. */
const char *loamL_checksql (lua_State *L, int arg) {
  loamL_checkstring(L, arg, NULL);
  return loamL_sqltext(L, arg, arg, NULL);
}


/*
** Reads the dialect name at 'arg'.  Only exact names count: a dialect
** that is guessed renders SQL the other backend would read differently.
*/
loam_backend loamL_checkdialect (lua_State *L, int arg, const char *fname) {
  const char *d;
  if (lua_type(L, arg) != LUA_TSTRING)
    loamL_misuse(L, "%s: dialect must be 'sqlite' or 'postgres', not a %s", fname,
                 luaL_typename(L, arg));
  d = lua_tostring(L, arg);
  if (strcmp(d, "sqlite") == 0) return LOAM_SQLITE;
  if (strcmp(d, "postgres") == 0) return LOAM_POSTGRES;
  loamL_misuse(L, "%s: unknown dialect '%s' (expected 'sqlite' or 'postgres')", fname, d);
  return LOAM_SQLITE;  /* not reached: 'loamL_misuse' raises */
}


/*
** Reads the string field 'k' of the error object at 1, or gives 'def':
** objects made in Lua through 'loam.Error' may lack any field.
*/
static const char *strfield (lua_State *L, const char *k, const char *def) {
  if (lua_getfield(L, 1, k) == LUA_TSTRING)
    return lua_tostring(L, -1);
  return def;
}


static int error_tostring (lua_State *L) {
  const char *where, *code, *message, *sqlstate;
  luaL_checktype(L, 1, LUA_TTABLE);
  where = strfield(L, "where", "");
  code = strfield(L, "code", "error");
  message = strfield(L, "message", "(no message)");
  sqlstate = strfield(L, "sqlstate", NULL);
  if (sqlstate != NULL)
    lua_pushfstring(L, "%sloam.%s: %s (SQLSTATE %s)", where, code, message, sqlstate);
  else
    lua_pushfstring(L, "%sloam.%s: %s", where, code, message);
  return 1;
}


/*
** where([level]): the position of the first frame outside loam at or
** above 'level' (1, the default, is the function calling 'where'; levels
** count as in 'debug.getinfo'), in the "file:line: " form of 'where' in
** error objects, and that frame's level; "" and nil when there is none.
** The Lua layer makes its own error objects and finds call sites with it,
** so one rule decides which frames are loam's.
*/
static int l_where (lua_State *L) {
  lua_Integer level = 1;
  int found;
  if (!lua_isnoneornil(L, 1)) {
    if (!lua_isinteger(L, 1))
      loamL_typeerror(L, 1, "integer");
    level = lua_tointeger(L, 1);
    if (level < 0 || level > INT_MAX)
      loamL_argerror(L, 1, "level out of range");
  }
  found = loamL_pushwhere(L, (int)level);
  if (found < 0)
    lua_pushnil(L);
  else
    lua_pushinteger(L, found);
  return 2;
}


/*
** set_layer_source(prefix): frames whose source begins with 'prefix' (a
** chunk name, "@" and a directory) belong to the Lua layer and are passed
** over by error positions and 'where'.
*/
static int l_set_layer_source (lua_State *L) {
  if (lua_type(L, 1) != LUA_TSTRING)
    loamL_typeerror(L, 1, "string");
  lua_settop(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &layerkey);
  return 0;
}


static const luaL_Reg error_metameth[] = {
  {"__tostring", error_tostring},
  {NULL, NULL}
};


static const luaL_Reg error_funcs[] = {
  {"where", l_where},
  {"set_layer_source", l_set_layer_source},
  {NULL, NULL}
};


void loamL_open_error (lua_State *L) {
  loamL_createmeta(L, ERROR_T, NULL, error_metameth);
  luaL_setfuncs(L, error_funcs, 0);
  luaL_getmetatable(L, ERROR_T);
  lua_setfield(L, -2, "Error");
}

/* }====================================================================== */
