/*
** lua_trace.c: the Lua face of the core's instrumentation: 'db:stats()',
** 'db:on_query(fn)', 'db:transaction_status()', and 'fingerprint(sql)',
** 'redact(sql)', 'redact_params(sql, params, allow)' and 'clock_ms()' of
** loam.core.
**
** The core reports a finished statement from deep inside a call
** ('loam_step', 'loam_stmt_close'...), where running Lua would be unsafe:
** a Lua error would unwind through the core half-way, and the hook could
** even use the connection in the middle of that call.  So the C hook only
** appends the event to a queue, and the binding delivers the queue with
** 'loamL_trace_flush' right after the core call returned, in the Lua
** thread that made the call (so 'debug.getinfo' in the hook sees the
** caller's stack).  A hook that raises makes the binding call raise that
** error; nothing is left open by then, since the statement had ended.
**
** Memory.  There is one queue per Lua state (a 'Tracer' userdata in the
** registry, made when the module opens, so it is finalized after every
** connection of the state and outlives every hook that writes into it).
** The events are snapshotted into a Lua string before any Lua code runs,
** so an error while delivering them loses nothing but garbage.  Each
** 'db:on_query(fn)' makes a 'Hook' userdata holding 'fn' and a serial
** number; the connection's entry in a weak-keyed table keeps the Hook
** alive exactly as long as the connection object, and queued events name
** their Hook by serial through a weak-valued table, so an event whose
** hook was replaced or collected is dropped rather than misdelivered.
*/
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lua.h"
#include "lauxlib.h"

#include "loam.h"
#include "lua_loam_int.h"


#define TRACER_T  "loam.Tracer"

/* User values of the Tracer. */
#define UV_HOOKS  1   /* serial -> Hook, weak values */
#define UV_CONNS  2   /* loam.Conn -> Hook, weak keys */

/* The registry key of this state's Tracer: the address of this variable. */
static const char tracerkey = 0;

/*
** Events queued in all Lua states of the process.  It only lets
** 'loamL_trace_flush' return at once when no state has anything queued,
** which is nearly always; each state's own count is exact.
*/
static atomic_long pending;


typedef struct Tracer {
  char *q;              /* packed events: an 'Event', 'len' bytes of SQL, then the
                           parameters: each a 'loam_value' and, for text and blob, its bytes */
  size_t len, cap;
  long n;               /* events in 'q' */
  lua_Integer serial;   /* the last serial given to a Hook */
  int delivering;       /* a hook is running: events of its own statements are dropped */
} Tracer;

/* The 'ud' of the core's hook: one per 'on_query' call; user value 1 is the Lua function. */
typedef struct Hook {
  Tracer *t;
  lua_Integer serial;
  int active;           /* cleared when replaced, so events queued before are dropped */
} Hook;

/* The head of a queued event; read back with 'memcpy', as 'q' has no alignment. */
typedef struct Event {
  lua_Integer serial;
  uint64_t fingerprint;
  int64_t rows;
  int64_t elapsed_ns;
  int64_t wait_ns;
  int errcode;
  int nparams;
  int has_params;       /* the parameters follow the SQL */
  size_t len;           /* of the SQL that follows */
  size_t size;          /* of the whole event */
} Event;


/* {======================================================================
** Queueing (called by the core, no Lua here)
** ======================================================================= */

/*
** The core's hook.  Out of memory the event is dropped: the connection's
** counters still count the statement, and nothing can be raised here.
*/
static void onevent (void *ud, const loam_trace_event *ev) {
  Hook *h = (Hook *)ud;
  Tracer *t = h->t;
  size_t len = strlen(ev->sql), need = sizeof(Event) + len, off;
  Event e;
  int i, np = (ev->params != NULL && ev->nparams > 0) ? ev->nparams : 0;
  for (i = 0; i < np; i++) {
    need += sizeof(loam_value);
    if (ev->params[i].type == LOAM_TEXT || ev->params[i].type == LOAM_BLOB)
      need += ev->params[i].u.s.len;
  }
  if (t->cap - t->len < need) {
    size_t cap = t->cap ? t->cap : 256;
    char *q;
    while (cap - t->len < need) cap *= 2;
    if ((q = (char *)realloc(t->q, cap)) == NULL) return;
    t->q = q;
    t->cap = cap;
  }
  e.serial = h->serial;
  e.fingerprint = ev->fingerprint;
  e.rows = ev->rows;
  e.elapsed_ns = ev->elapsed_ns;
  e.wait_ns = ev->wait_ns;
  e.errcode = (int)ev->errcode;
  e.nparams = ev->nparams;
  e.has_params = np > 0;
  e.len = len;
  e.size = need;
  memcpy(t->q + t->len, &e, sizeof e);
  memcpy(t->q + t->len + sizeof e, ev->sql, len);
  off = t->len + sizeof e + len;
  for (i = 0; i < np; i++) {
    const loam_value *v = &ev->params[i];
    memcpy(t->q + off, v, sizeof *v);
    off += sizeof *v;
    if (v->type == LOAM_TEXT || v->type == LOAM_BLOB) {
      if (v->u.s.len > 0) memcpy(t->q + off, v->u.s.ptr, v->u.s.len);
      off += v->u.s.len;
    }
  }
  t->len += need;
  t->n++;
  atomic_fetch_add_explicit(&pending, 1, memory_order_relaxed);
}


/* Empties the queue (keeping its memory). */
static void forget (Tracer *t) {
  atomic_fetch_sub_explicit(&pending, t->n, memory_order_relaxed);
  t->len = 0;
  t->n = 0;
}


static int tracer_gc (lua_State *L) {
  Tracer *t = (Tracer *)luaL_checkudata(L, 1, TRACER_T);
  forget(t);
  free(t->q);
  t->q = NULL;
  t->cap = 0;
  return 0;
}

/* }====================================================================== */


/* {======================================================================
** Delivering
** ======================================================================= */

/* Pushes this state's Tracer and returns it. */
static Tracer *pushtracer (lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &tracerkey);
  return (Tracer *)lua_touserdata(L, -1);
}


/* Sets field 'k' of the table on top to the integer 'v'. */
static void setint (lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}


/* Pushes the 16 lower-case hex digits of 'fp'. */
static void pushfingerprint (lua_State *L, uint64_t fp) {
  static const char hex[] = "0123456789abcdef";
  char s[16];
  int i;
  for (i = 15; i >= 0; i--, fp >>= 4)
    s[i] = hex[fp & 15];
  lua_pushlstring(L, s, 16);
}


/* Pushes the normalised text of the string at 'idx' (never longer than it). */
static void pushnormalized (lua_State *L, int idx) {
  size_t len;
  const char *sql = lua_tolstring(L, idx, &len);
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, len + 1);
  luaL_pushresultsize(&b, loam_sql_normalize(sql, p, len + 1));
}


/*
** Pushes the values packed at 'p' (see 'Tracer') as an array; the
** pointers in the packed values are stale, their bytes follow them.
*/
static void pushparams (lua_State *L, const Event *e, const char *p) {
  int i;
  lua_createtable(L, e->nparams, 0);
  for (i = 1; i <= e->nparams; i++) {
    loam_value v;
    memcpy(&v, p, sizeof v);
    p += sizeof v;
    if (v.type == LOAM_TEXT || v.type == LOAM_BLOB) {
      v.u.s.ptr = p;
      p += v.u.s.len;
    }
    loamL_pushvalue(L, &v, 0);
    lua_rawseti(L, -2, i);
  }
}


/*
** Pushes the event table: sql, fingerprint, normalized, rows, ms, nparams,
** params (the values bound, when known), wait_ms and error (the code
** name, or absent on success).
*/
static void pushevent (lua_State *L, const Event *e, const char *sql) {
  lua_createtable(L, 0, 9);
  lua_pushlstring(L, sql, e->len);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "sql");
  pushnormalized(L, -1);
  lua_setfield(L, -3, "normalized");
  lua_pop(L, 1);
  pushfingerprint(L, e->fingerprint);
  lua_setfield(L, -2, "fingerprint");
  setint(L, "rows", (lua_Integer)e->rows);
  setint(L, "nparams", e->nparams);
  lua_pushnumber(L, (lua_Number)e->elapsed_ns / 1e6);
  lua_setfield(L, -2, "ms");
  lua_pushnumber(L, (lua_Number)e->wait_ns / 1e6);
  lua_setfield(L, -2, "wait_ms");
  if (e->has_params) {
    pushparams(L, e, sql + e->len);
    lua_setfield(L, -2, "params");
  }
  if (e->errcode != LOAM_E_NONE) {
    lua_pushstring(L, loam_errcode_name(e->errcode));
    lua_setfield(L, -2, "error");
  }
}


/*
** Runs under 'lua_pcall': 1 is the snapshot of the queue, 2 the Hook
** table of the Tracer.  Events whose Hook is gone or inactive are
** skipped; a raising hook ends the delivery.
*/
static int deliver (lua_State *L) {
  size_t size, off = 0;
  const char *q = lua_tolstring(L, 1, &size);
  while (off < size) {
    Event e;
    Hook *h;
    memcpy(&e, q + off, sizeof e);
    lua_rawgeti(L, 2, e.serial);
    h = (Hook *)lua_touserdata(L, -1);
    if (h != NULL && h->active) {
      lua_getiuservalue(L, -1, 1);
      pushevent(L, &e, q + off + sizeof e);
      lua_call(L, 1, 0);
    }
    lua_pop(L, 1);
    off += e.size;
  }
  return 0;
}


/*
** Statements run by a hook itself are not shown to hooks: a hook that
** queries would otherwise feed itself forever.  The delivery runs under
** 'lua_pcall' so that 'delivering' is reset whatever happens.  A hook's
** error is then raised again, unchanged, unless the call is failing
** already ('failing'): that first error is the cause worth reporting, so
** the hook's becomes a warning ('warn("@on")' shows it).
*/
static void flush (lua_State *L, int failing) {
  Tracer *t;
  int rc;
  t = pushtracer(L);
  if (t == NULL || t->n == 0 || t->delivering) {
    if (t != NULL) forget(t);
    lua_pop(L, 1);
    return;
  }
  luaL_checkstack(L, 8, "no room to deliver query events");
  lua_pushcfunction(L, deliver);
  lua_pushlstring(L, t->q, t->len);
  forget(t);
  lua_getiuservalue(L, -3, UV_HOOKS);
  t->delivering = 1;
  rc = lua_pcall(L, 2, 0, 0);
  t->delivering = 0;
  if (rc != LUA_OK && !failing)
    lua_error(L);
  if (rc != LUA_OK) {
    lua_warning(L, "loam: an on_query hook raised while another error was raised: ", 1);
    lua_warning(L, lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                  : luaL_typename(L, -1), 0);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}


void loamL_trace_flush (lua_State *L) {
  if (atomic_load_explicit(&pending, memory_order_relaxed) != 0)
    flush(L, 0);
}


void loamL_trace_flush_failing (lua_State *L) {
  if (atomic_load_explicit(&pending, memory_order_relaxed) != 0)
    flush(L, 1);
}

/* }====================================================================== */


/* {======================================================================
** Functions and methods
** ======================================================================= */

/*
** db:on_query(fn | nil): sets or clears the hook of the connection and
** returns the previous function (or nil), so a scope can put it back.
** The new Hook is complete before the core sees it, and the old one is
** deactivated only then, so a memory error midway changes nothing.
*/
static int conn_on_query (lua_State *L) {
  LConn *c = loamL_checkhandle(L);
  loam_conn *conn = c->conn;
  Tracer *t;
  Hook *old = NULL, *h;
  if (!lua_isnoneornil(L, 2) && lua_type(L, 2) != LUA_TFUNCTION)
    return loamL_misuse(L, "bad argument #1 to 'on_query' (function or nil expected, got %s)",
                        luaL_typename(L, 2));
  lua_settop(L, 2);
  lua_pushnil(L);                                /* 3: the result */
  t = pushtracer(L);                             /* 4 */
  lua_getiuservalue(L, 4, UV_CONNS);             /* 5 */
  lua_pushvalue(L, 1);
  if (lua_rawget(L, 5) == LUA_TUSERDATA) {       /* 6: the Hook set now, if any */
    old = (Hook *)lua_touserdata(L, 6);
    lua_getiuservalue(L, 6, 1);
    lua_replace(L, 3);
  }
  if (lua_isnil(L, 2)) {
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    lua_rawset(L, 5);
    if (c->pooled) c->trace = NULL;
    if (conn != NULL) loam_conn_set_trace(conn, NULL, NULL);
  }
  else {
    h = (Hook *)lua_newuserdatauv(L, sizeof(Hook), 1);   /* 7 */
    h->t = t;
    h->serial = t->serial + 1;
    h->active = 1;
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 7, 1);
    lua_getiuservalue(L, 4, UV_HOOKS);           /* 8 */
    lua_pushvalue(L, 7);
    lua_rawseti(L, 8, h->serial);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 7);
    lua_rawset(L, 5);
    t->serial = h->serial;
    if (c->pooled) {  /* set on each connection the handle checks out */
      c->trace = onevent;
      c->trace_ud = h;
    }
    if (conn != NULL) loam_conn_set_trace(conn, onevent, h);
  }
  if (old != NULL) old->active = 0;
  lua_settop(L, 3);
  return 1;
}


/* db:stats(): the counters of the connection; 'ms' is the total time. */
static int conn_stats (lua_State *L) {
  loam_stats st;
  loam_conn_stats(loamL_checkconn(L), &st);
  lua_createtable(L, 0, 4);
  setint(L, "queries", (lua_Integer)st.queries);
  setint(L, "rows", (lua_Integer)st.rows);
  setint(L, "errors", (lua_Integer)st.errors);
  lua_pushnumber(L, (lua_Number)st.elapsed_ns / 1e6);
  lua_setfield(L, -2, "ms");
  return 1;
}


/*
** clock_ms(): milliseconds on the monotonic clock, as a float, from an
** arbitrary origin.  The Lua layer spaces out its checks of replicas with
** it; 'os.clock' is processor time and 'os.time' has whole seconds only.
*/
static int l_clock_ms (lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec * 1e3 + (lua_Number)ts.tv_nsec / 1e6);
  return 1;
}


/* fingerprint(sql): the fingerprint as 16 hex digits, and the normalised text. */
static int l_fingerprint (lua_State *L) {
  if (lua_type(L, 1) != LUA_TSTRING)
    return loamL_misuse(L, "bad argument #1 to 'fingerprint' (string expected, got %s)",
                        luaL_typename(L, 1));
  pushfingerprint(L, loam_fingerprint(lua_tostring(L, 1)));
  pushnormalized(L, 1);
  return 2;
}


/* redact(sql): the text for a log line, literals replaced ('loam_sql_redact'). */
static int l_redact (lua_State *L) {
  size_t n;
  const char *sql;
  luaL_Buffer b;
  if (lua_type(L, 1) != LUA_TSTRING)
    return loamL_misuse(L, "bad argument #1 to 'redact' (string expected, got %s)",
                        luaL_typename(L, 1));
  sql = lua_tostring(L, 1);
  n = loam_sql_redact(sql, NULL, 0);
  loam_sql_redact(sql, luaL_buffinitsize(L, &b, n + 1), n + 1);
  luaL_pushresultsize(&b, n);
  return 1;
}


/*
** redact_params(sql, params, allow): the parameters for a log line
** ('loam_sql_params_redact'); 'params' an array of values, 'allow' an
** array of "table.column" or "column" (or nil).
*/
static int l_redact_params (lua_State *L) {
  loam_value local[NPARAMS_LOCAL];
  const loam_value *params;
  const char **allow = NULL;
  const char *sql;
  int np, i, nallow;
  size_t n;
  luaL_Buffer b;
  if (lua_type(L, 1) != LUA_TSTRING)
    return loamL_misuse(L, "bad argument #1 to 'redact_params' (string expected, got %s)",
                        luaL_typename(L, 1));
  sql = lua_tostring(L, 1);
  params = loamL_checkparams(L, 2, local, &np);
  if (!lua_isnoneornil(L, 3)) {
    if (lua_type(L, 3) != LUA_TTABLE)
      return loamL_misuse(L, "bad argument #3 to 'redact_params' (array of column names "
                          "expected, got %s)", luaL_typename(L, 3));
    nallow = (int)luaL_len(L, 3);
    allow = (const char **)lua_newuserdatauv(L, sizeof(char *) * ((size_t)nallow + 1), 0);
    for (i = 0; i < nallow; i++) {
      if (lua_rawgeti(L, 3, i + 1) != LUA_TSTRING)
        return loamL_misuse(L, "bad argument #3 to 'redact_params' (column name expected "
                            "in place #%d, got %s)", i + 1, luaL_typename(L, -1));
      allow[i] = lua_tostring(L, -1);
      lua_pop(L, 1);   /* the array at 3 keeps the string alive */
    }
    allow[nallow] = NULL;
  }
  n = loam_sql_params_redact(sql, params, np, allow, NULL, 0);
  loam_sql_params_redact(sql, params, np, allow, luaL_buffinitsize(L, &b, n + 1), n + 1);
  luaL_pushresultsize(&b, n);
  return 1;
}


/* db:transaction_status(): "idle", "open" or "failed" ('loam_conn_tx_status'). */
static int conn_tx_status (lua_State *L) {
  static const char *const names[] = { "idle", "open", "failed" };
  lua_pushstring(L, names[loam_conn_tx_status(loamL_checkconn(L))]);
  return 1;
}


/* Makes a table with weak 'mode' ("k" or "v") and sets it as user value 'n' of the top. */
static void weaktable (lua_State *L, const char *mode, int n) {
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushstring(L, mode);
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setiuservalue(L, -2, n);
}


/*
** Creates this state's Tracer unless it exists (opening the module again
** keeps the queue and the hooks), and adds the functions and methods.
*/
void loamL_open_trace (lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &tracerkey) == LUA_TNIL) {
    Tracer *t = (Tracer *)lua_newuserdatauv(L, sizeof(Tracer), 2);
    memset(t, 0, sizeof *t);
    weaktable(L, "v", UV_HOOKS);
    weaktable(L, "k", UV_CONNS);
    if (luaL_newmetatable(L, TRACER_T)) {
      lua_pushcfunction(L, tracer_gc);
      lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &tracerkey);
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_fingerprint);
  lua_setfield(L, -2, "fingerprint");
  lua_pushcfunction(L, l_redact);
  lua_setfield(L, -2, "redact");
  lua_pushcfunction(L, l_redact_params);
  lua_setfield(L, -2, "redact_params");
  lua_pushcfunction(L, l_clock_ms);
  lua_setfield(L, -2, "clock_ms");
  lua_getfield(L, -1, "Conn");   /* the methods of 'loam.Conn' */
  lua_pushcfunction(L, conn_on_query);
  lua_setfield(L, -2, "on_query");
  lua_pushcfunction(L, conn_stats);
  lua_setfield(L, -2, "stats");
  lua_pushcfunction(L, conn_tx_status);
  lua_setfield(L, -2, "transaction_status");
  lua_pop(L, 1);
}

/* }====================================================================== */
