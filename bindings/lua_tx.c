/*
** lua_tx.c: 'conn:transaction([opts,] fn, ...)' with its options, the
** hooks 'conn:after_commit' and 'conn:after_rollback', and the
** transaction guard that 'conn:run' uses.
**
** 'conn:transaction' hands the whole job to the core's 'loam_tx_run'
** (begin, the function, commit, rollback, retries), which calls back into
** Lua to run 'fn' under 'lua_pcall'; nothing raises through the core's
** frames.  A hook is a Lua function in the registry, registered with
** 'loam_tx_on_end' and run when the core says how its transaction ended.
**
** A guard is a to-be-closed userdata holding one level of the core's
** transactions ('loam_tx_begin').  Whatever raises while the level is open
** (a failed statement, a query hook, a memory error) unwinds through the
** guard's '__close', which rolls the level back, so no path leaves it
** open.  The guard keeps its 'loam.Conn' as a user value, not the core
** handle, since the connection may be closed under it; the level then
** ended with the connection.
*/
#include <stdlib.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#include "loam.h"
#include "lua_loam_int.h"


#define TX_T  "loam.Tx"
#define LOGREF_T  "loam.TxLogRef"   /* the 'log' option's registry reference, closed with the call */

typedef struct Tx {
  int open;   /* the level is open: '__close' rolls it back */
} Tx;


/*
** Rolls the level of the guard at 'idx' back, if still open.  Only on
** paths that raise an error already, so an error of its own is dropped:
** the caller sees the error that made it roll back.
*/
static void rollback (lua_State *L, int idx) {
  Tx *tx = (Tx *)luaL_checkudata(L, idx, TX_T);
  loam_conn *conn;
  loam_error err = LOAM_ERROR_INIT;
  if (!tx->open) return;
  tx->open = 0;
  lua_getiuservalue(L, idx, 1);
  conn = loamL_toconn(L, -1);
  lua_pop(L, 1);
  if (conn == NULL) return;
  loam_tx_rollback(conn, &err);
  loam_error_clear(&err);
  loamL_trace_flush_failing(L);
}


static int tx_close (lua_State *L) {
  rollback(L, 1);
  return 0;
}


int loamL_txbegin (lua_State *L) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *conn = loamL_checkconn(L);
  /* The guard exists before the level, so no raise can come between them. */
  Tx *tx = (Tx *)lua_newuserdatauv(L, sizeof(Tx), 1);
  int idx = lua_gettop(L);
  tx->open = 0;
  luaL_setmetatable(L, TX_T);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, idx, 1);
  lua_toclose(L, idx);
  if (loam_tx_begin(conn, &err) != LOAM_OK)
    return loamL_raise(L, &err, NULL);
  tx->open = 1;
  loamL_trace_flush(L);
  return idx;
}


void loamL_txcommit (lua_State *L, int idx) {
  Tx *tx = (Tx *)luaL_checkudata(L, idx, TX_T);
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *conn;
  lua_getiuservalue(L, idx, 1);
  conn = loamL_toconn(L, -1);
  lua_pop(L, 1);
  if (conn == NULL) {
    tx->open = 0;
    loamL_misuse(L, "the connection was closed inside the transaction; nothing was committed");
  }
  if (loam_tx_commit(conn, &err) != LOAM_OK) {
    loam_error rberr = LOAM_ERROR_INIT;
    /* The level stays open after a failed commit: end it before raising. */
    tx->open = 0;
    loam_tx_rollback(conn, &rberr);
    loam_error_clear(&rberr);
    loamL_raise(L, &err, NULL);
  }
  tx->open = 0;
  loamL_trace_flush(L);
}


/* {======================================================================
** conn:transaction([opts,] fn, ...)
** ======================================================================= */

/*
** One call of 'conn:transaction', on the C stack of 'conn_transaction'
** for its whole length.  The core calls back into it ('body', 'log_fn')
** and the hooks find the innermost one of their thread through
** 'running', since the core hands a hook only what it was registered
** with.  Everything they run in Lua runs protected: an error must never
** unwind through the core's frames.
*/
typedef struct Run {
  lua_State *L;
  int fn, nargs;             /* stack index of 'fn'; its arguments follow */
  int errslot;               /* stack index of the error value 'fn' raised */
  int calls, raised_at;      /* calls of 'fn', and the one that raised last */
  int logref;                /* the 'log' option in the registry, or LUA_NOREF */
  char *deferred;            /* a report for 'log', delivered when the call ends */
  struct Run *prev;          /* the call around it on this thread */
} Run;

static _Thread_local Run *running;


/* The core's code for the error value at 'idx': a loam error object's, else misuse. */
static loam_errcode codeof (lua_State *L, int idx) {
  loam_errcode code = LOAM_E_MISUSE;
  int i;
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return code;
  luaL_getmetatable(L, ERROR_T);
  if (lua_rawequal(L, -1, -2)) {
    lua_pushliteral(L, "code");
    lua_rawget(L, idx);
    if (lua_type(L, -1) == LUA_TSTRING)
      for (i = 1; i < LOAM_E__COUNT; i++)
        if (strcmp(lua_tostring(L, -1), loam_errcode_name(i)) == 0) code = (loam_errcode)i;
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  return code;
}


/* The body of 'loam_tx_run': calls 'fn(...)', leaving its results above 'errslot'. */
static int body (void *ud, loam_conn *conn, loam_error *err) {
  Run *r = (Run *)ud;
  lua_State *L = r->L;
  int i;
  (void)conn;
  lua_settop(L, r->errslot);
  r->calls++;
  if (!lua_checkstack(L, r->nargs + LUA_MINSTACK)) {
    err->code = LOAM_E_NOMEM;
    lua_pushliteral(L, "not enough memory");
    lua_replace(L, r->errslot);
    r->raised_at = r->calls;
    return LOAM_ERROR;
  }
  for (i = 0; i <= r->nargs; i++) lua_pushvalue(L, r->fn + i);
  if (lua_pcall(L, r->nargs, LUA_MULTRET, 0) == LUA_OK) return LOAM_OK;
  lua_replace(L, r->errslot);
  r->raised_at = r->calls;
  err->code = codeof(L, r->errslot);
  return LOAM_ERROR;
}


/* Protected: log(message) with the function at 1, or a line on stderr when it is nil. */
static int deliver (lua_State *L) {
  if (lua_isnil(L, 1)) {
    lua_writestringerror("loam: %s\n", lua_tostring(L, 2));
    return 0;
  }
  lua_call(L, 1, 0);
  return 0;
}


/* Hands 'msg' to the log of 'r', protected; an error of the log itself goes to stderr. */
static void report (Run *r, const char *msg) {
  lua_State *L = r->L;
  if (!lua_checkstack(L, 4)) return;
  lua_pushcfunction(L, deliver);
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->logref);   /* nil for LUA_NOREF */
  lua_pushstring(L, msg);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    lua_writestringerror("loam: the transaction log failed: %s\n",
                         lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(not a string)");
    lua_pop(L, 1);
  }
}


/*
** The core's report of a long transaction.  It may come from a statement
** run in a coroutine, where the call's own thread cannot run Lua: it is
** kept and handed to 'log' when the call ends.
*/
static void log_fn (void *ud, const char *msg) {
  Run *r = (Run *)ud;
  size_t n = strlen(msg) + 1;
  if (r->deferred != NULL || (r->deferred = (char *)malloc(n)) == NULL) return;
  memcpy(r->deferred, msg, n);
}


/* A hook of 'after_commit' or 'after_rollback': the function, in the registry. */
typedef struct Hook {
  int ref;
  int on_commit;
} Hook;


/* Protected: the error value at 1 as a message for the log. */
static int hookmsg (lua_State *L) {
  const char *kind = lua_tostring(L, 2);
  luaL_tolstring(L, 1, NULL);
  lua_pushfstring(L, "%s hook failed (the transaction stands): %s", kind, lua_tostring(L, -1));
  return 1;
}


static void hook_fn (void *ud, loam_conn *conn, loam_tx_outcome outcome) {
  Hook *h = (Hook *)ud;
  Run *r = running;
  (void)conn;
  if (r != NULL && lua_checkstack(r->L, 4)) {
    lua_State *L = r->L;
    if ((outcome == LOAM_TX_COMMITTED) == h->on_commit) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, h->ref);
      if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        lua_pushcfunction(L, hookmsg);
        lua_insert(L, -2);
        lua_pushstring(L, h->on_commit ? "after_commit" : "after_rollback");
        if (lua_pcall(L, 2, 1, 0) == LUA_OK) report(r, lua_tostring(L, -1));
        lua_pop(L, 1);
      }
    }
    luaL_unref(L, LUA_REGISTRYINDEX, h->ref);
  }
  free(h);
}


static int conn_after (lua_State *L, int on_commit) {
  const char *name = on_commit ? "after_commit" : "after_rollback";
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *conn = loamL_checkconn(L);
  Hook *h;
  int ref;
  if (lua_type(L, 2) != LUA_TFUNCTION)
    loamL_misuse(L, "%s: expects a function, got a %s", name, luaL_typename(L, 2));
  lua_settop(L, 2);
  ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if ((h = (Hook *)malloc(sizeof *h)) == NULL) {
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    return luaL_error(L, "not enough memory");
  }
  h->ref = ref;
  h->on_commit = on_commit;
  if (loam_tx_on_end(conn, hook_fn, h, &err) != LOAM_OK) {
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    free(h);
    return loamL_raise(L, &err, NULL);
  }
  return 0;
}

static int conn_after_commit (lua_State *L) { return conn_after(L, 1); }
static int conn_after_rollback (lua_State *L) { return conn_after(L, 0); }


/* Reads an integer option at the top (popped) into '*v', within 'lo'..'hi'. */
static void intopt (lua_State *L, const char *name, int lo, int hi, int *v) {
  lua_Integer i;
  if (!lua_isinteger(L, -1))
    loamL_misuse(L, "transaction: option '%s' must be an integer, got a %s", name,
                 luaL_typename(L, -1));
  i = lua_tointeger(L, -1);
  if (i < lo || i > hi)
    loamL_misuse(L, "transaction: option '%s' must be %d..%d, got %I", name, lo, hi, i);
  *v = (int)i;
  lua_pop(L, 1);
}


static void retryopts (lua_State *L, loam_tx_opts *o) {
  if (lua_type(L, -1) != LUA_TTABLE)
    loamL_misuse(L, "transaction: option 'retry' must be a table { attempts = n, base_ms = "
                 "ms, max_ms = ms }, got a %s", luaL_typename(L, -1));
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    if (strcmp(k, "attempts") == 0) intopt(L, "retry.attempts", 1, 1000, &o->retry_attempts);
    else if (strcmp(k, "base_ms") == 0) intopt(L, "retry.base_ms", 0, 60000, &o->retry_base_ms);
    else if (strcmp(k, "max_ms") == 0) intopt(L, "retry.max_ms", 0, 600000, &o->retry_max_ms);
    else loamL_misuse(L, "transaction: unknown retry option '%s' (attempts, base_ms, max_ms)",
                      luaL_tolstring(L, -2, NULL));
  }
  if (o->retry_attempts <= 0)
    loamL_misuse(L, "transaction: option 'retry' needs attempts (1..1000)");
  lua_pop(L, 1);
}


/*
** Reads the options table at 2 into 'o'; the 'log' function goes into
** the registry ('*logref'), the tag stays on the stack.
*/
static void checkopts (lua_State *L, loam_tx_opts *o, int *logref) {
  static const char *const levels[] = { "read committed", "repeatable read", "serializable" };
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    if (strcmp(k, "isolation") == 0) {
      const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
      int i;
      for (i = 0; i < 3 && strcmp(v, levels[i]) != 0; i++) {}
      if (i == 3)
        loamL_misuse(L, "transaction: isolation must be 'read committed', 'repeatable read' or "
                     "'serializable', got %s%s%s", *v ? "'" : "a ",
                     *v ? v : luaL_typename(L, -1), *v ? "'" : "");
      o->isolation = LOAM_READ_COMMITTED + i;
      lua_pop(L, 1);
    }
    else if (strcmp(k, "read_only") == 0) {
      if (!lua_isboolean(L, -1))
        loamL_misuse(L, "transaction: option 'read_only' must be a boolean, got a %s",
                     luaL_typename(L, -1));
      o->read_only = lua_toboolean(L, -1);
      lua_pop(L, 1);
    }
    else if (strcmp(k, "warn_after_ms") == 0)
      intopt(L, "warn_after_ms", 1, 86400000, &o->warn_after_ms);
    else if (strcmp(k, "retry") == 0) retryopts(L, o);
    else if (strcmp(k, "log") == 0) {
      if (lua_type(L, -1) != LUA_TFUNCTION)
        loamL_misuse(L, "transaction: option 'log' must be a function, got a %s",
                     luaL_typename(L, -1));
      *logref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    else if (strcmp(k, "tag") == 0) {
      if (lua_type(L, -1) != LUA_TSTRING)
        loamL_misuse(L, "transaction: option 'tag' must be a string, got a %s",
                     luaL_typename(L, -1));
      o->tag = lua_tostring(L, -1);   /* the options table keeps it */
      lua_pop(L, 1);
    }
    else
      loamL_misuse(L, "transaction: unknown option '%s' (isolation, read_only, retry, "
                   "warn_after_ms, log, tag)", luaL_tolstring(L, -2, NULL));
  }
}


/* Protected: raises the core error at 1, so that its error object can be kept. */
static int raiser (lua_State *L) {
  return loamL_raise(L, (loam_error *)lua_touserdata(L, 1), NULL);
}


/* The log's registry reference goes with the call, however it ends. */
static int unref_close (lua_State *L) {
  int *ref = (int *)lua_touserdata(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, *ref);
  *ref = LUA_NOREF;
  return 0;
}


/*
** conn:transaction([opts,] fn, ...): calls 'fn(...)' inside a transaction
** (a savepoint when one is open already) and returns what it returns,
** once committed; through 'loam_tx_run', which rolls back when 'fn'
** raises and runs it again for a retryable failure when 'opts.retry'
** allows.  The error raised at the end is the value 'fn' raised,
** unchanged, or the core's error of BEGIN or COMMIT; with 'retry', a
** loam error object gets 'attempts' and, after more than one, its message
** says so.  'fn' runs under a C 'pcall', so it cannot yield.
*/
static int conn_transaction (lua_State *L) {
  loam_tx_opts o = LOAM_TX_OPTS_INIT;
  loam_error err = LOAM_ERROR_INIT;
  LConn *h = loamL_checkhandle(L);
  loam_conn *conn;
  int fi, n = 0, rc;
  int noref = LUA_NOREF, *logref = &noref;
  char where[LOAML_TAGSIZE];
  Run r;
  /* Where the call is: the tag of the transaction and of a pooled handle's checkout. */
  loamL_wherebuf(L, 1, where, sizeof where);
  if (h->conn == NULL) loamL_lease_as(L, h, 1, where, 1);
  conn = h->conn;
  fi = lua_type(L, 2) == LUA_TTABLE ? 3 : 2;
  if (lua_type(L, fi) != LUA_TFUNCTION)
    loamL_misuse(L, "transaction: expects %sa function, got a %s",
                 fi == 2 ? "an options table or " : "", luaL_typename(L, fi));
  r.nargs = lua_gettop(L) - fi;
  if (fi == 3) {
    /* The log's reference, released by a closing value whatever happens next. */
    logref = (int *)lua_newuserdatauv(L, sizeof(int), 0);
    *logref = LUA_NOREF;
    luaL_setmetatable(L, LOGREF_T);
    lua_toclose(L, -1);
    checkopts(L, &o, logref);
  }
  if (o.tag == NULL) o.tag = where;
  if (*logref != LUA_NOREF) {
    o.log = log_fn;
    o.log_ud = &r;
  }
  lua_pushnil(L);
  r.L = L;
  r.fn = fi;
  r.errslot = lua_gettop(L);
  r.calls = r.raised_at = 0;
  /* A nested call has no log of its own: its hooks report to the call around it. */
  r.logref = *logref != LUA_NOREF || running == NULL ? *logref : running->logref;
  r.deferred = NULL;
  r.prev = running;
  running = &r;
  rc = loam_tx_run(conn, &o, body, &r, &n, &err);
  running = r.prev;
  if (r.deferred != NULL) {
    report(&r, r.deferred);
    free(r.deferred);
  }
  if (rc == LOAM_OK) {
    loam_error_clear(&err);
    loamL_trace_flush(L);
    return lua_gettop(L) - r.errslot;
  }
  lua_settop(L, r.errslot);
  if (r.raised_at == 0 || r.raised_at != n) {
    /* BEGIN or COMMIT failed: the core's error, as an object. */
    lua_pushcfunction(L, raiser);
    lua_pushlightuserdata(L, &err);
    lua_pcall(L, 1, 1, 0);
  }
  else {
    loam_errcode code = codeof(L, r.errslot);
    loam_error_clear(&err);
    lua_pushvalue(L, r.errslot);
    if (n > 1 && code != LOAM_E_MISUSE) {
      lua_getfield(L, -1, "message");
      lua_pushfstring(L, "%s (%s %d attempts)", lua_tostring(L, -1),
                      code == LOAM_E_SERIALIZATION_FAILURE || code == LOAM_E_DEADLOCK ||
                      code == LOAM_E_BUSY ? "gave up after" : "failed at the last of", n);
      lua_setfield(L, -3, "message");
      lua_pop(L, 1);
    }
  }
  if (o.retry_attempts > 1 && lua_type(L, -1) == LUA_TTABLE && codeof(L, -1) != LOAM_E_MISUSE) {
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "attempts");
  }
  loamL_trace_flush_failing(L);
  return lua_error(L);
}

/* }====================================================================== */


void loamL_open_tx (lua_State *L) {
  static const luaL_Reg metameth[] = {
    {"__close", tx_close},
    {NULL, NULL}
  };
  if (luaL_newmetatable(L, TX_T)) luaL_setfuncs(L, metameth, 0);
  lua_pop(L, 1);
  if (luaL_newmetatable(L, LOGREF_T)) {
    lua_pushcfunction(L, unref_close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  lua_getfield(L, -1, "Conn");  /* a transaction needs a connection: methods only */
  lua_pushcfunction(L, conn_transaction);
  lua_setfield(L, -2, "transaction");
  lua_pushcfunction(L, conn_after_commit);
  lua_setfield(L, -2, "after_commit");
  lua_pushcfunction(L, conn_after_rollback);
  lua_setfield(L, -2, "after_rollback");
  lua_pop(L, 1);
}
