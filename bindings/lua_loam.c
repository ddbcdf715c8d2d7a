/*
** lua_loam.c: the Lua 5.4 module 'loam.core', a plain client of loam.h.
**
** It gives Lua connections ('loam.Conn'), streaming statements
** ('loam.Stmt'), error objects ('loam.Error'), the SQL NULL sentinel
** ('loam.null') and BLOB parameters ('loam.blob').  Result rows are built
** here with column names pushed once per statement, so Lua code receives
** finished tables.  Every failure, from the database or from misuse, raises
** an error object: a table with a stable 'code' that callers branch on,
** and a 'where' that names the program's line, past the frames of loam's
** own Lua files ('where', 'set_layer_source').
*/
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#include "loam.h"
#include "loam_lua.h"
#include "lua_loam_int.h"


#define CONN_T   "loam.Conn"
#define STMT_T   "loam.Stmt"
#define ERROR_T  "loam.Error"

/* Parameter lists up to this length are converted on the C stack. */
#define NPARAMS_LOCAL  16

/* Added to the core's parameter-count message: nil holes are the usual cause. */
#define NULL_HINT  " (write loam.null for NULL parameters)"

/* The registry key of the NULL sentinel: the address of this variable. */
static const char nullkey = 0;


/* A connection handle; 'conn' is NULL once closed (or before it opened). */
typedef struct LConn {
  loam_conn *conn;
} LConn;

/*
** Statement handles ('LStmt', declared in lua_loam_int.h for 'conn:run')
** carry two user values: 1 is the 'loam.Conn' the statement runs on, which
** keeps the connection alive while the statement is reachable; 2 is the
** array of column names of a streaming statement, made when the first row
** arrives.
*/


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
** Pushes the position ("file:line: ") of the first frame at or above stack
** level 'level' that runs a line of the program's own Lua code, and
** returns its level; pushes "" and returns -1 when there is none.  C
** functions have no line and are passed over: a method called straight
** through 'pcall' (pcall(db.exec, db, sql)) has 'pcall' as its caller,
** and the Lua code that called 'pcall' is the useful position then.  So
** are the frames of the Lua layer, whatever module: an error raised below
** 'Model:create' names the line that called 'create', not loam's line
** that ran the statement.  The position is chosen here, where the error
** is made, as 'luaL_where' does, so nothing above needs to catch and
** re-raise to correct it.
*/
static int pushwhere (lua_State *L, int level) {
  lua_Debug ar;
  size_t n = 0;
  const char *layer;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &layerkey);
  layer = lua_tolstring(L, -1, &n);  /* NULL until the Lua layer loaded */
  for (; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline > 0 &&
        (layer == NULL || ar.srclen < n || memcmp(ar.source, layer, n) != 0)) {
      lua_pop(L, 1);
      lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
      return level;
    }
  }
  lua_pop(L, 1);
  lua_pushliteral(L, "");
  return -1;
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
  pushwhere(L, level);
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
static int argerror (lua_State *L, int arg, const char *extramsg) {
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


/* The name of the value at 'idx' for messages: its '__name', or its type. */
static const char *valuename (lua_State *L, int idx) {
  if (luaL_getmetafield(L, idx, "__name") == LUA_TSTRING)
    return lua_tostring(L, -1);  /* stays on the stack until the raise */
  if (lua_type(L, idx) == LUA_TLIGHTUSERDATA)
    return "light userdata";
  return luaL_typename(L, idx);
}


static int typeerror (lua_State *L, int arg, const char *tname) {
  const char *got = valuename(L, arg);
  return argerror(L, arg, lua_pushfstring(L, "%s expected, got %s", tname, got));
}


/* Only real strings are accepted: a number is never meant as SQL or a URL. */
static const char *checkstring (lua_State *L, int arg, size_t *len) {
  if (lua_type(L, arg) != LUA_TSTRING)
    typeerror(L, arg, "string");
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
    if (arg > 0) argerror(L, arg, msg);
    loamL_misuse(L, "%s: %s", what, msg);
  }
  return s;
}


/* A string argument read as SQL text. */
static const char *checksql (lua_State *L, int arg) {
  checkstring(L, arg, NULL);
  return loamL_sqltext(L, arg, arg, NULL);
}


/*
** Raw access: an AST is plain data, and a metamethod answering for a
** missing field would let a typo pass unseen.
*/
int loamL_field (lua_State *L, int t, const char *k) {
  lua_pushstring(L, k);
  return lua_rawget(L, t);
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

/* }====================================================================== */


/* {======================================================================
** NULL sentinel and BLOB wrapper
** ======================================================================= */

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
  checkstring(L, 1, NULL);
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
      typeerror(L, 1, "integer");
    level = lua_tointeger(L, 1);
    if (level < 0 || level > INT_MAX)
      argerror(L, 1, "level out of range");
  }
  found = pushwhere(L, (int)level);
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
    typeerror(L, 1, "string");
  lua_settop(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &layerkey);
  return 0;
}


static int l_isnull (lua_State *L) {
  if (lua_isnone(L, 1))
    argerror(L, 1, "value expected");
  loamL_pushnull(L);
  lua_pushboolean(L, lua_rawequal(L, 1, -1));
  return 1;
}

/* }====================================================================== */


/* {======================================================================
** Parameters and values
** ======================================================================= */

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
    const char *tname = valuename(L, idx);
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
static const loam_value *checkparams (lua_State *L, int arg, loam_value *local,
                                      int *nparams /* OUT */) {
  loam_value *v = local;
  lua_Unsigned n, i;
  *nparams = 0;
  if (lua_isnoneornil(L, arg))
    return NULL;
  if (lua_type(L, arg) != LUA_TTABLE)
    typeerror(L, arg, "table");
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
static const char *queryhint (loam_conn *conn, const char *sql, int np,
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


/* Pushes column 'i' of the current row; 'nullidx' holds the NULL sentinel. */
static void pushcolumn (lua_State *L, loam_stmt *stmt, int i, int nullidx) {
  loam_value v;
  if (loam_column(stmt, i, &v) != LOAM_OK)
    v = loam_null();
  loamL_pushvalue(L, &v, nullidx);
}

/* }====================================================================== */


/* {======================================================================
** Statements
** ======================================================================= */

static LStmt *tostmt (lua_State *L, int i) {
  LStmt *s = (LStmt *)luaL_testudata(L, i, STMT_T);
  if (s == NULL)
    typeerror(L, i, STMT_T);
  return s;
}


void loamL_closestmt (LStmt *s) {
  if (s->stmt != NULL) {
    loam_stmt *stmt = s->stmt;
    s->stmt = NULL;
    loam_stmt_close(stmt);
  }
}


/*
** Pushes a closed statement that belongs to the connection at 'connidx';
** the caller then opens it with 'loam_query' into its 'stmt' field, so the
** handle exists before the resource and a raise in between cannot leak it.
*/
static LStmt *newstmt (lua_State *L, int connidx) {
  LStmt *s = (LStmt *)lua_newuserdatauv(L, sizeof(LStmt), 2);
  s->stmt = NULL;
  luaL_setmetatable(L, STMT_T);
  lua_pushvalue(L, connidx);
  lua_setiuservalue(L, -2, 1);
  return s;
}


/*
** '__gc' and '__close': finalizing twice, or after the connection, is
** fine.  Only '__close' (which gets two arguments: the value and the error
** being raised, or nil) runs the query hooks: a finalizer runs at an
** arbitrary point, where a hook must not.
*/
static int stmt_gc (lua_State *L) {
  loamL_closestmt(tostmt(L, 1));
  if (lua_gettop(L) >= 2 && lua_isnil(L, 2))
    loamL_trace_flush(L);
  else if (lua_gettop(L) >= 2)
    loamL_trace_flush_failing(L);
  return 0;
}


static int stmt_close (lua_State *L) {
  loamL_closestmt(tostmt(L, 1));
  loamL_trace_flush(L);
  lua_pushboolean(L, 1);
  return 1;
}


static int stmt_tostring (lua_State *L) {
  LStmt *s = tostmt(L, 1);
  lua_pushstring(L, s->stmt != NULL ? "loam.Stmt (open)" : "loam.Stmt (closed)");
  return 1;
}


/*
** The iterator of 'conn:each'.  A row is built from the names array in
** user value 2, which is filled once, when the first row arrives.  The end
** of the rows finalizes the statement at once, so the connection is free
** before the loop ends.
*/
static int stmt_next (lua_State *L) {
  LStmt *s = tostmt(L, 1);
  loam_error err = LOAM_ERROR_INIT;
  LConn *c;
  int rc, ncols, namesidx, i;
  if (s->stmt == NULL)
    return loamL_misuse(L, "attempt to use a closed statement");
  lua_getiuservalue(L, 1, 1);
  c = (LConn *)lua_touserdata(L, -1);
  if (c == NULL || c->conn == NULL) {
    loamL_closestmt(s);
    return loamL_misuse(L, "attempt to use a closed connection");
  }
  rc = loam_step(s->stmt, &err);
  if (rc == LOAM_DONE) {
    loamL_closestmt(s);
    loamL_trace_flush(L);
    lua_pushnil(L);
    return 1;
  }
  if (rc != LOAM_ROW) {
    loamL_closestmt(s);
    return loamL_raise(L, &err, NULL);
  }
  ncols = loam_column_count(s->stmt);
  if (lua_getiuservalue(L, 1, 2) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, ncols, 0);
    for (i = 0; i < ncols; i++) {
      const char *name = loam_column_name(s->stmt, i);
      lua_pushstring(L, name != NULL ? name : "?");
      lua_rawseti(L, -2, i + 1);
    }
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 2);
  }
  namesidx = lua_gettop(L);
  loamL_pushnull(L);
  lua_createtable(L, 0, ncols);
  for (i = 0; i < ncols; i++) {
    lua_rawgeti(L, namesidx, i + 1);
    pushcolumn(L, s->stmt, i, namesidx + 1);
    lua_rawset(L, -3);
  }
  return 1;
}

/* }====================================================================== */


/* {======================================================================
** Connections
** ======================================================================= */

#define toconnud(L)  ((LConn *)luaL_testudata(L, 1, CONN_T))


/* Like 'tofile' in liolib.c: the argument must be an open connection. */
static LConn *checkconn (lua_State *L) {
  LConn *c = toconnud(L);
  if (c == NULL)
    typeerror(L, 1, CONN_T);
  else if (c->conn == NULL)
    loamL_misuse(L, "attempt to use a closed connection");
  return c;
}


loam_conn *loamL_checkconn (lua_State *L) {
  return checkconn(L)->conn;
}


loam_conn *loamL_toconn (lua_State *L, int idx) {
  LConn *c = (LConn *)luaL_testudata(L, idx, CONN_T);
  return c != NULL ? c->conn : NULL;
}


static LConn *checkconnany (lua_State *L) {
  LConn *c = toconnud(L);
  if (c == NULL)
    typeerror(L, 1, CONN_T);
  return c;
}


static void closeconn (LConn *c) {
  if (c->conn != NULL) {
    loam_conn *conn = c->conn;
    c->conn = NULL;
    loam_conn_close(conn);
  }
}


/* One option of 'connect': its name and where it goes. */
typedef struct ConnOpt {
  const char *name;
  size_t offset;
} ConnOpt;

static const ConnOpt connopts[] = {
  {"statement_cache", offsetof(loam_conn_opts, statement_cache)},
  {"busy_timeout_ms", offsetof(loam_conn_opts, busy_timeout_ms)},
  {"connect_timeout_s", offsetof(loam_conn_opts, connect_timeout_s)},
  {NULL, 0}
};


/*
** Reads the options table at 'arg'.  An unknown key is refused by name:
** a misspelt option silently ignored would leave a default in place that
** the caller believes changed.
*/
static void checkopts (lua_State *L, int arg, loam_conn_opts *o /* OUT */) {
  if (lua_isnoneornil(L, arg))
    return;
  if (lua_type(L, arg) != LUA_TTABLE)
    typeerror(L, arg, "table");
  lua_pushnil(L);
  while (lua_next(L, arg) != 0) {
    const ConnOpt *opt = NULL;
    lua_Integer v = 0;
    int isint = 0;
    if (lua_type(L, -2) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -2);
      for (opt = connopts; opt->name != NULL && strcmp(opt->name, k) != 0; opt++)
        ;
      if (opt->name == NULL)
        argerror(L, arg, lua_pushfstring(L, "unknown option '%s'", k));
    }
    else
      argerror(L, arg, lua_pushfstring(L, "unknown option (a %s key)",
                                       luaL_typename(L, -2)));
    if (lua_type(L, -1) == LUA_TNUMBER)
      v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < 0 || v > INT_MAX)
      argerror(L, arg, lua_pushfstring(L, "option '%s' must be a non-negative integer",
                                       opt->name));
    *(int *)(void *)((char *)o + opt->offset) = (int)v;
    lua_pop(L, 1);
  }
}


/* connect(url [, opts]): create closed, then acquire (see 'newstmt'). */
static int l_connect (lua_State *L) {
  loam_conn_opts o = LOAM_CONN_OPTS_INIT;
  loam_error err = LOAM_ERROR_INIT;
  const char *url = checkstring(L, 1, NULL);
  LConn *c;
  checkopts(L, 2, &o);
  c = (LConn *)lua_newuserdatauv(L, sizeof(LConn), 0);
  c->conn = NULL;
  luaL_setmetatable(L, CONN_T);
  if (loam_connect(url, &o, &c->conn, &err) != LOAM_OK)
    return loamL_raise(L, &err, NULL);
  return 1;
}


/* '__gc' and '__close'. */
static int conn_gc (lua_State *L) {
  closeconn(checkconnany(L));
  return 0;
}


/*
** Closing is idempotent: a connection already closed is in the state the
** caller asks for, so 'close' returns true again rather than a failure
** that 'assert(db:close())' would turn into an error.
*/
static int conn_close (lua_State *L) {
  closeconn(checkconnany(L));
  loamL_trace_flush(L);  /* statements the close finalized */
  lua_pushboolean(L, 1);
  return 1;
}


static int conn_tostring (lua_State *L) {
  LConn *c = checkconnany(L);
  if (c->conn == NULL)
    lua_pushliteral(L, "loam.Conn (closed)");
  else
    lua_pushfstring(L, "loam.Conn (%s)",
                    loam_conn_backend(c->conn) == LOAM_POSTGRES ? "postgres" : "sqlite");
  return 1;
}


static int conn_backend (lua_State *L) {
  LConn *c = checkconn(L);
  lua_pushstring(L, loam_conn_backend(c->conn) == LOAM_POSTGRES ? "postgres" : "sqlite");
  return 1;
}


static int conn_cached_statements (lua_State *L) {
  LConn *c = checkconn(L);
  lua_pushinteger(L, loam_conn_cached_statements(c->conn));
  return 1;
}


LStmt *loamL_pushstmt (lua_State *L) {
  LStmt *s = newstmt(L, 1);
  lua_toclose(L, -1);
  return s;
}


/*
** Starts 'sql' for 'query' and 'exec': checks the arguments, then opens a
** statement in a to-be-closed slot, so it is finalized when the caller
** returns or raises, whatever happens in between.
*/
static LStmt *startquery (lua_State *L, int flags) {
  loam_value local[NPARAMS_LOCAL];
  loam_error err = LOAM_ERROR_INIT;
  LConn *c = checkconn(L);
  const char *sql = checksql(L, 2);
  int np;
  const loam_value *params = checkparams(L, 3, local, &np);
  LStmt *s = loamL_pushstmt(L);
  if (loam_query(c->conn, sql, params, np, flags, &s->stmt, &err) != LOAM_OK)
    loamL_raise(L, &err, queryhint(c->conn, sql, np, &err));
  return s;
}


/*
** The rows of 'query' (and of 'conn:run').  The column names are pushed
** once per statement, when its first row arrives, and every row is a
** table pre-sized for them; NULL columns hold the sentinel so no key is
** missing.
*/
int loamL_readrows (lua_State *L, loam_stmt *stmt, int rows, lua_Integer *n,
                    loam_error *err) {
  int top = lua_gettop(L), nullidx, namesidx = 0, ncols = 0, rc, i;
  loamL_pushnull(L);
  nullidx = top + 1;
  while ((rc = loam_step(stmt, err)) == LOAM_ROW) {
    if (namesidx == 0) {
      ncols = loam_column_count(stmt);
      luaL_checkstack(L, ncols + LUA_MINSTACK, "too many result columns");
      namesidx = lua_gettop(L) + 1;
      for (i = 0; i < ncols; i++) {
        const char *name = loam_column_name(stmt, i);
        lua_pushstring(L, name != NULL ? name : "?");
      }
    }
    lua_createtable(L, 0, ncols);
    for (i = 0; i < ncols; i++) {
      lua_pushvalue(L, namesidx + i);
      pushcolumn(L, stmt, i, nullidx);
      lua_rawset(L, -3);
    }
    lua_rawseti(L, rows, ++*n);
  }
  lua_settop(L, top);
  return rc;
}


/*
** The outcome of 'exec' (and of 'conn:run'): any value type may serve as
** id (a uuid, say), so the first column is pushed as it comes.
*/
int loamL_readexec (lua_State *L, loam_stmt *stmt, int64_t *changes, loam_error *err) {
  int rc, hasid = 0;
  int64_t id;
  lua_pushnil(L);
  while ((rc = loam_step(stmt, err)) == LOAM_ROW) {
    if (!hasid && loam_column_count(stmt) > 0) {
      pushcolumn(L, stmt, 0, 0);
      lua_replace(L, -2);
      hasid = 1;
    }
  }
  if (rc != LOAM_DONE) {
    lua_pop(L, 1);
    return rc;
  }
  *changes = loam_stmt_changes(stmt);
  if (!hasid && loam_stmt_insert_id(stmt, &id)) {
    lua_pushinteger(L, (lua_Integer)id);
    lua_replace(L, -2);
  }
  return rc;
}


/* query(sql [, params]): all rows as an array of tables. */
static int conn_query (lua_State *L) {
  loam_error err = LOAM_ERROR_INIT;
  LStmt *s = startquery(L, 0);
  lua_Integer n = 0;
  int rc;
  lua_newtable(L);
  rc = loamL_readrows(L, s->stmt, lua_gettop(L), &n, &err);
  loamL_closestmt(s);
  if (rc != LOAM_DONE)
    return loamL_raise(L, &err, NULL);
  loamL_trace_flush(L);
  return 1;
}


/*
** exec(sql [, params]): runs to completion and returns the rows changed
** and an id: the first column of the first row when the statement
** returned rows (INSERT ... RETURNING), else the SQLite rowid of an
** INSERT, else nil.
*/
static int conn_exec (lua_State *L) {
  loam_error err = LOAM_ERROR_INIT;
  LStmt *s = startquery(L, 0);
  int64_t changes = 0;
  int rc = loamL_readexec(L, s->stmt, &changes, &err);
  loamL_closestmt(s);
  if (rc != LOAM_DONE)
    return loamL_raise(L, &err, NULL);
  lua_pushinteger(L, (lua_Integer)changes);
  lua_insert(L, -2);
  loamL_trace_flush(L);
  return 2;
}


/*
** each(sql [, params]): for the generic 'for'.  The statement streams
** (constant memory) and is also the closing value, so 'break' or an error
** in the loop body finalizes it, as 'io.lines' does with its file.
*/
static int conn_each (lua_State *L) {
  loam_value local[NPARAMS_LOCAL];
  loam_error err = LOAM_ERROR_INIT;
  LConn *c = checkconn(L);
  const char *sql = checksql(L, 2);
  int np, sidx;
  const loam_value *params = checkparams(L, 3, local, &np);
  LStmt *s = newstmt(L, 1);
  sidx = lua_gettop(L);
  if (loam_query(c->conn, sql, params, np, LOAM_STREAM, &s->stmt, &err) != LOAM_OK)
    return loamL_raise(L, &err, queryhint(c->conn, sql, np, &err));
  lua_pushcfunction(L, stmt_next);
  lua_pushvalue(L, sidx);
  lua_pushnil(L);
  lua_pushvalue(L, sidx);
  return 4;
}

/* }====================================================================== */


/* {======================================================================
** Registration
** ======================================================================= */

static const luaL_Reg loamlib[] = {
  {"connect", l_connect},
  {"blob", l_blob},
  {"isnull", l_isnull},
  {"where", l_where},
  {"set_layer_source", l_set_layer_source},
  {NULL, NULL}
};


static const luaL_Reg conn_meth[] = {
  {"query", conn_query},
  {"exec", conn_exec},
  {"each", conn_each},
  {"close", conn_close},
  {"backend", conn_backend},
  {"cached_statements", conn_cached_statements},
  {NULL, NULL}
};

static const luaL_Reg conn_metameth[] = {
  {"__index", NULL},  /* the method table, set by 'createmeta' */
  {"__gc", conn_gc},
  {"__close", conn_gc},
  {"__tostring", conn_tostring},
  {NULL, NULL}
};


static const luaL_Reg stmt_meth[] = {
  {"close", stmt_close},
  {NULL, NULL}
};

static const luaL_Reg stmt_metameth[] = {
  {"__index", NULL},
  {"__gc", stmt_gc},
  {"__close", stmt_gc},
  {"__tostring", stmt_tostring},
  {NULL, NULL}
};


static const luaL_Reg error_metameth[] = {
  {"__tostring", error_tostring},
  {NULL, NULL}
};

static const luaL_Reg null_metameth[] = {
  {"__tostring", null_tostring},
  {NULL, NULL}
};

static const luaL_Reg blob_metameth[] = {
  {"__len", blob_len},
  {"__tostring", blob_tostring},
  {NULL, NULL}
};


/*
** The files that add to the module call this from 'luaopen_loam_core',
** after the 'loam.Conn' metatable exists.
*/
void loamL_addfunc (lua_State *L, const char *name, lua_CFunction f, lua_CFunction method) {
  lua_pushcfunction(L, f);
  lua_setfield(L, -2, name);
  luaL_getmetatable(L, CONN_T);
  lua_getfield(L, -1, "__index");
  lua_pushcfunction(L, method);
  lua_setfield(L, -2, name);
  lua_pop(L, 2);
}


/*
** Creates the metatable 'tname' with its metamethods and, when 'meth' is
** given, a method table as '__index'.  An existing metatable is kept as it
** is: opening the module again must not drop methods that Lua code added.
*/
static void createmeta (lua_State *L, const char *tname, const luaL_Reg *meth,
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


/* Makes the one NULL sentinel of this state, unless it already exists. */
static void createnull (lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &nullkey) == LUA_TNIL) {
    lua_newuserdatauv(L, 0, 0);
    luaL_setmetatable(L, NULL_T);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &nullkey);
  }
  lua_pop(L, 1);
}


LOAM_LUA_API int luaopen_loam_core (lua_State *L) {
  luaL_newlib(L, loamlib);
  createmeta(L, CONN_T, conn_meth, conn_metameth);
  createmeta(L, STMT_T, stmt_meth, stmt_metameth);
  createmeta(L, ERROR_T, NULL, error_metameth);
  createmeta(L, NULL_T, NULL, null_metameth);
  createmeta(L, BLOB_T, NULL, blob_metameth);
  createnull(L);
  loamL_pushnull(L);
  lua_setfield(L, -2, "null");
  luaL_getmetatable(L, CONN_T);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "Conn");
  lua_pop(L, 1);
  luaL_getmetatable(L, ERROR_T);
  lua_setfield(L, -2, "Error");
  lua_pushliteral(L, LOAM_VERSION);
  lua_setfield(L, -2, "version");
  loamL_open_schema(L);
  loamL_open_catalog(L);
  loamL_open_query(L);
  loamL_open_batch(L);
  loamL_open_trace(L);
  loamL_open_tx(L);
  return 1;
}


LOAM_LUA_API void loam_lua_open (lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_loam_core);
  lua_setfield(L, -2, "loam.core");
  lua_pop(L, 1);
}

/* }====================================================================== */
