/*
** lua_conn.c: connections ('loam.Conn'): 'connect' and its options, and
** the methods that run SQL text ('query', 'exec', 'each').  The other
** files of the binding add their methods to the same table through
** 'loamL_addfunc'.  Those methods are also the Database's (a Lua table,
** lua/loam/database.lua): the connection check takes the connection from
** a Database given as 'self'.
**
** A pooled handle (lua_pool.c) holds no connection between calls: the
** same check gives it one for the call ('loamL_lease'), and a
** to-be-closed slot hands it back when the call returns or raises, so
** every method works on it unchanged and none can forget the release.
** An ordinary connection pays one test of a field for this.
*/
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#include "loam.h"
#include "lua_loam_int.h"


/* {======================================================================
** Connections
** ======================================================================= */

#define toconnud(L)  ((LConn *)loamL_testud(L, 1, &loamL_conn_key))

/* The registry key of the 'loam.Database' metatable ('set_database'). */
static const char databasekey = 'D';


/*
** A 'loam.Database' (lua/loam/database.lua) at index 1 is replaced there by
** its connection in use, field DATABASE_CONN, so the methods of 'loam.Conn'
** are the Database's too and whatever a method keeps as its parent (a
** statement's user value, a prepared statement's) is the connection, never
** the Database.  Being the C functions themselves, they cost a Database call
** no Lua frame, and a 'return db:query(...)' keeps its caller's line in the
** error's 'where'.  Raises misuse for a closed Database, in the words of the
** Lua layer's 'unusable'; 'isdb' tells whether index 1 was a Database.
*/
static LConn *checkdatabase (lua_State *L, int *isdb) {
  *isdb = 0;
  if (lua_type(L, 1) == LUA_TTABLE && lua_getmetatable(L, 1)) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &databasekey);
    *isdb = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (*isdb) {
      lua_pushliteral(L, DATABASE_CONN);
      if (lua_rawget(L, 1) == LUA_TNIL)
        loamL_misuse(L, "attempt to use a closed database (db:reconnect() opens it again)");
      lua_replace(L, 1);
    }
  }
  return toconnud(L);
}


/*
** Like 'tofile' in liolib.c: the argument must be an open connection, or a
** Database holding one.  A wrong value is named as a Database expected:
** applications reach these methods through one.
*/
LConn *loamL_checkhandle (lua_State *L) {
  int isdb;
  LConn *c = checkdatabase(L, &isdb);
  if (c == NULL)
    loamL_selferror(L, isdb ? CONN_T : DATABASE_T);
  else if ((c->conn == NULL && (!c->pooled || c->poolref == NULL)) || c->closing)
    loamL_misuse(L, "attempt to use a closed connection");
  return c;
}


/*
** The handle at index 1 with a connection: a pooled handle without one
** checks one out for this call (see 'loamL_checkconn').  The test of
** 'conn' first keeps the path of an ordinary connection as it was.
*/
static LConn *checkconn (lua_State *L) {
  LConn *c = loamL_checkhandle(L);
  if (c->conn == NULL) loamL_lease(L, c, 1, 1, 1);
  return c;
}


loam_conn *loamL_checkconn (lua_State *L) {
  return checkconn(L)->conn;
}


int loamL_lease (lua_State *L, LConn *c, int idx, int level, int toclose) {
  char tag[LOAML_TAGSIZE];
  if (c->conn == NULL) loamL_wherebuf(L, level, tag, sizeof tag);
  return loamL_lease_as(L, c, idx, tag, toclose);
}


int loamL_lease_as (lua_State *L, LConn *c, int idx, const char *tag, int toclose) {
  if (c->conn == NULL) {
    loam_error err = LOAM_ERROR_INIT;
    loam_pool *pool = c->poolref != NULL ? *c->poolref : NULL;
    if (c->poolref == NULL) loamL_misuse(L, "attempt to use a closed connection");
    if (pool == NULL) loamL_misuse(L, "attempt to use a closed pool");
    if (loam_pool_acquire(pool, tag, &c->conn, &err) != LOAM_OK)
      return loamL_raise(L, &err, NULL);
    c->pool = pool;
    c->writes_base = loam_conn_writes(c->conn);
    if (c->trace != NULL) loam_conn_set_trace(c->conn, c->trace, c->trace_ud);
    c->leases = 1;
    if (toclose) lua_toclose(L, idx);
    return 1;
  }
  if (toclose) return 0;
  c->leases++;
  return 1;
}


/*
** The last lease hands the connection back, without the hook: the next
** holder may be another handle, or another thread's Lua state.
*/
void loamL_unlease (LConn *c) {
  if (c->leases > 0 && --c->leases == 0 && c->conn != NULL) {
    loam_conn *conn = c->conn;
    c->conn = NULL;
    c->writes += loam_conn_writes(conn) - c->writes_base;
    if (c->trace != NULL) loam_conn_set_trace(conn, NULL, NULL);
    loam_pool_release(c->pool, conn, NULL);
    c->pool = NULL;
    if (c->closing) c->poolref = NULL;
  }
}


loam_backend loamL_backend (lua_State *L, LConn *c) {
  if (c->conn != NULL) return loam_conn_backend(c->conn);
  if (c->poolref == NULL || *c->poolref == NULL) loamL_misuse(L, "attempt to use a closed pool");
  return loam_pool_backend(*c->poolref);
}


loam_conn *loamL_toconn (lua_State *L, int idx) {
  LConn *c = (LConn *)loamL_testud(L, idx, &loamL_conn_key);
  return c != NULL ? c->conn : NULL;
}


static LConn *checkconnany (lua_State *L) {
  LConn *c = toconnud(L);
  if (c == NULL)
    loamL_typeerror(L, 1, CONN_T);
  return c;
}


/*
** A connection checked out of a pool goes back to it, reported as lost
** when the garbage collector found it ('lost'); any other is closed.  A
** pooled handle closed while a lease is running (a hold never closed, a
** statement never finished) gives its connection back the same way, and
** is closed for good: no further call checks one out.
*/
static void closeconn (LConn *c, int lost) {
  if (c->pooled && c->leases > 0 && c->conn != NULL && !lost) {
    c->closing = 1;  /* a C function below may still run on the connection */
    return;
  }
  if (c->pooled) {
    c->leases = 0;
    if (c->conn != NULL && c->trace != NULL) loam_conn_set_trace(c->conn, NULL, NULL);
    c->trace = NULL;
  }
  if (c->conn != NULL) {
    loam_conn *conn = c->conn;
    c->conn = NULL;
    if (c->pool == NULL) loam_conn_close(conn);
    else if (lost) loam_pool_abandon(c->pool, conn, NULL);
    else loam_pool_release(c->pool, conn, NULL);
  }
  if (c->pooled) {
    c->pool = NULL;
    c->poolref = NULL;
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
  {"statement_timeout_ms", offsetof(loam_conn_opts, statement_timeout_ms)},
  {"idle_in_tx_timeout_ms", offsetof(loam_conn_opts, idle_in_tx_timeout_ms)},
  {NULL, 0}
};


/* The option value on top of the stack: a non-negative integer, or "forever". */
static int optint (lua_State *L, int arg, const char *name) {
  lua_Integer v = 0;
  int isint = 0;
  if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "forever") == 0)
    return LOAM_FOREVER;
  if (lua_type(L, -1) == LUA_TNUMBER)
    v = lua_tointegerx(L, -1, &isint);
  if (!isint || v < 0 || v > INT_MAX)
    loamL_argerror(L, arg, lua_pushfstring(L, "option '%s' must be a non-negative integer "
                                              "or \"forever\"", name));
  return (int)v;
}


int loamL_connopt (void *ud, const char *name, int v) {
  const ConnOpt *opt;
  for (opt = connopts; opt->name != NULL && strcmp(opt->name, name) != 0; opt++)
    ;
  if (opt->name == NULL) return 0;
  *(int *)(void *)((char *)ud + opt->offset) = v;
  return 1;
}


/*
** An unknown key is refused by name: a misspelt option silently ignored
** would leave a default in place that the caller believes changed.  Each
** key is first set to 0 to learn whether 'set' knows it.
*/
void loamL_checkopts (lua_State *L, int arg, int (*set) (void *ud, const char *name, int v),
                      void *ud) {
  if (lua_isnoneornil(L, arg))
    return;
  if (lua_type(L, arg) != LUA_TTABLE)
    loamL_typeerror(L, arg, "table");
  lua_pushnil(L);
  while (lua_next(L, arg) != 0) {
    const char *k;
    if (lua_type(L, -2) != LUA_TSTRING)
      loamL_argerror(L, arg, lua_pushfstring(L, "unknown option (a %s key)",
                                       luaL_typename(L, -2)));
    k = lua_tostring(L, -2);
    if (!set(ud, k, 0))
      loamL_argerror(L, arg, lua_pushfstring(L, "unknown option '%s'", k));
    set(ud, k, optint(L, arg, k));
    lua_pop(L, 1);
  }
}


/* connect(url [, opts]): create closed, then acquire (see 'loamL_newstmt'). */
static int l_connect (lua_State *L) {
  loam_conn_opts o = LOAM_CONN_OPTS_INIT;
  loam_error err = LOAM_ERROR_INIT;
  const char *url = loamL_checkstring(L, 1, NULL);
  LConn *c;
  loamL_checkopts(L, 2, loamL_connopt, &o);
  c = (LConn *)lua_newuserdatauv(L, sizeof(LConn), CONN_NUV);
  memset(c, 0, sizeof *c);
  luaL_setmetatable(L, CONN_T);
  if (loam_connect(url, &o, &c->conn, &err) != LOAM_OK)
    return loamL_raise(L, &err, NULL);
  return 1;
}


static int conn_gc (lua_State *L) {
  closeconn(checkconnany(L), 1);
  return 0;
}


/*
** '__close': a checkout going out of scope is handed back, which is no
** loss.  For a pooled handle it ends a lease (the slot 'loamL_lease'
** marked, or a 'hold'): the handle itself stays open.
*/
static int conn_toclose (lua_State *L) {
  LConn *c = checkconnany(L);
  if (c->pooled) loamL_unlease(c);
  else closeconn(c, 0);
  return 0;
}


/*
** Closing is idempotent: a connection already closed is in the state the
** caller asks for, so 'close' returns true again rather than a failure
** that 'assert(db:close())' would turn into an error.
*/
static int conn_close (lua_State *L) {
  closeconn(checkconnany(L), 0);
  loamL_trace_flush(L);  /* statements the close finalized */
  lua_pushboolean(L, 1);
  return 1;
}


static int conn_tostring (lua_State *L) {
  LConn *c = checkconnany(L);
  if (c->conn == NULL && (!c->pooled || c->poolref == NULL || *c->poolref == NULL))
    lua_pushliteral(L, "loam.Conn (closed)");
  else
    lua_pushfstring(L, "loam.Conn (%s%s)", loamL_backend(L, c) == LOAM_POSTGRES ? "postgres"
                    : "sqlite", c->pooled ? ", pooled" : "");
  return 1;
}


/* The backend needs no connection: a pooled handle does not check one out for it. */
static int conn_backend (lua_State *L) {
  LConn *c = loamL_checkhandle(L);
  lua_pushstring(L, loamL_backend(L, c) == LOAM_POSTGRES ? "postgres" : "sqlite");
  return 1;
}


/*
** conn:hold(): for a pooled handle, keeps the connection it checks out
** (now, or the one it has) until the value returned is closed:
**   local pin <close> = c:hold()
** so several calls run on one connection, as a transaction's must.  For
** any other connection it returns nil, which a '<close>' variable takes.
*/
static int conn_hold (lua_State *L) {
  LConn *c = loamL_checkhandle(L);
  if (!c->pooled) return 0;
  loamL_lease(L, c, 1, 1, 0);
  lua_settop(L, 1);
  return 1;
}


static int conn_cached_statements (lua_State *L) {
  LConn *c = checkconn(L);
  lua_pushinteger(L, loam_conn_cached_statements(c->conn));
  return 1;
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
  const char *sql = loamL_checksql(L, 2);
  int np;
  const loam_value *params = loamL_checkparams(L, 3, local, &np);
  LStmt *s = loamL_pushstmt(L);
  if (loam_query(c->conn, sql, params, np, flags, &s->stmt, &err) != LOAM_OK)
    loamL_raise(L, &err, loamL_queryhint(c->conn, sql, np, &err));
  return s;
}

/* query(sql [, params]): all rows as an array of tables. */
static int conn_query (lua_State *L) {
  loam_error err = LOAM_ERROR_INIT;
  LStmt *s = startquery(L, 0);
  lua_Integer n = 0;
  int rc;
  lua_newtable(L);
  rc = loamL_readrows(L, s->stmt, lua_gettop(L), 0, &n, &err);
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
  const char *sql = loamL_checksql(L, 2);
  int np, sidx;
  const loam_value *params = loamL_checkparams(L, 3, local, &np);
  LStmt *s = loamL_newstmt(L, 1);
  sidx = lua_gettop(L);
  if (c->pooled) {  /* the statement keeps the connection until it is finalized */
    loamL_lease(L, c, 1, 1, 0);
    s->lease = c;
  }
  if (loam_query(c->conn, sql, params, np, LOAM_STREAM, &s->stmt, &err) != LOAM_OK)
    return loamL_raise(L, &err, loamL_queryhint(c->conn, sql, np, &err));
  lua_pushcfunction(L, loamL_stmtnext);
  lua_pushvalue(L, sidx);
  lua_pushnil(L);
  lua_pushvalue(L, sidx);
  return 4;
}

static const luaL_Reg conn_meth[] = {
  {"query", conn_query},
  {"exec", conn_exec},
  {"each", conn_each},
  {"close", conn_close},
  {"backend", conn_backend},
  {"cached_statements", conn_cached_statements},
  {"hold", conn_hold},
  {NULL, NULL}
};

static const luaL_Reg conn_metameth[] = {
  {"__index", NULL},  /* the method table, set by 'loamL_createmeta' */
  {"__gc", conn_gc},
  {"__close", conn_toclose},
  {"__tostring", conn_tostring},
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
** set_database(mt): 'mt' is the metatable of 'loam.Database', whose
** connection the methods of 'loam.Conn' then take from a Database given as
** 'self' (see 'checkdatabase').
*/
static int l_set_database (lua_State *L) {
  if (lua_type(L, 1) != LUA_TTABLE)
    loamL_typeerror(L, 1, "table");
  lua_settop(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &databasekey);
  return 0;
}


static const luaL_Reg conn_funcs[] = {
  {"connect", l_connect},
  {"set_database", l_set_database},
  {NULL, NULL}
};


void loamL_open_conn (lua_State *L) {
  loamL_createmeta(L, CONN_T, conn_meth, conn_metameth);
  loamL_keymeta(L, CONN_T, &loamL_conn_key);
  luaL_setfuncs(L, conn_funcs, 0);
  luaL_getmetatable(L, CONN_T);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "Conn");
  lua_pop(L, 1);
}

/* }====================================================================== */
