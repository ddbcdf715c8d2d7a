/*
** lua_pool.c: pools ('loam.Pool'): 'pool_open' and its options, and the
** methods that check connections out and back in.
**
** A checkout is an ordinary 'loam.Conn' whose closing ('close', '__close'
** or the garbage collector) hands it back to its pool; it keeps the pool's
** handle alive as its user value.  A pooled handle ('handle') is a
** 'loam.Conn' that checks a connection out for each call instead.  The tag of a checkout (what a timeout
** or a leak report names) is the caller's, or by default the position of
** the Lua code that called 'acquire'.
*/
#include <stdio.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#include "loam.h"
#include "lua_loam_int.h"


/* The most replicas a routing takes (the core's limit, said in loam.h). */
#define LOAMP_REPLICAS_MAX 16

typedef struct LPool {
  loam_pool *pool;           /* NULL once closed */
} LPool;


static LPool *checkpoolany (lua_State *L) {
  return (LPool *)luaL_checkudata(L, 1, POOL_T);
}


static loam_pool *checkpool (lua_State *L) {
  LPool *p = (LPool *)luaL_testudata(L, 1, POOL_T);
  if (p == NULL)
    loamL_typeerror(L, 1, POOL_T);
  else if (p->pool == NULL)
    loamL_misuse(L, "attempt to use a closed pool");
  return p->pool;
}


/* The options of a pool; the connection options ('loamL_connopt') are taken too. */
static const struct { const char *name; size_t offset; } poolopts[] = {
  {"size", offsetof(loam_pool_opts, size)},
  {"max_overflow", offsetof(loam_pool_opts, max_overflow)},
  {"acquire_timeout_ms", offsetof(loam_pool_opts, acquire_timeout_ms)},
  {"max_lifetime_ms", offsetof(loam_pool_opts, max_lifetime_ms)},
  {"idle_timeout_ms", offsetof(loam_pool_opts, idle_timeout_ms)},
  {"health_check_ms", offsetof(loam_pool_opts, health_check_ms)},
  {"leak_threshold_ms", offsetof(loam_pool_opts, leak_threshold_ms)},
  {"processes", offsetof(loam_pool_opts, processes)},
  {"max_lag_ms", offsetof(loam_pool_opts, max_lag_ms)},
  {"replica_check_ms", offsetof(loam_pool_opts, replica_check_ms)},
};


/* A 'set' for 'loamL_checkopts': a pool option, or one of its connections'. */
static int poolopt (void *ud, const char *name, int v) {
  loam_pool_opts *o = ud;
  size_t i;
  for (i = 0; i < sizeof poolopts / sizeof poolopts[0]; i++) {
    if (strcmp(poolopts[i].name, name) == 0) {
      *(int *)(void *)((char *)o + poolopts[i].offset) = v;
      return 1;
    }
  }
  return loamL_connopt(&o->conn, name, v);
}


/* pool_open(url [, opts]): create closed, then open (see 'l_connect'). */
static int l_pool_open (lua_State *L) {
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_error err = LOAM_ERROR_INIT;
  const char *url = loamL_checkstring(L, 1, NULL);
  LPool *p;
  loamL_checkopts(L, 2, poolopt, &o);
  p = (LPool *)lua_newuserdatauv(L, sizeof(LPool), 0);
  p->pool = NULL;
  luaL_setmetatable(L, POOL_T);
  if (loam_pool_open(url, &o, &p->pool, &err) != LOAM_OK)
    return loamL_raise(L, &err, NULL);
  return 1;
}


/*
** pool:acquire([tag]): a checked-out 'loam.Conn'.  The userdata exists
** (closed) before the checkout, so a memory error cannot lose it.
*/
static int pool_acquire (lua_State *L) {
  loam_pool *pool = checkpool(L);
  loam_error err = LOAM_ERROR_INIT;
  const char *tag;
  LConn *c;
  if (lua_isnoneornil(L, 2)) {
    size_t n;
    luaL_where(L, 1);
    tag = lua_tolstring(L, -1, &n);
    if (n >= 2 && tag[n - 2] == ':') tag = lua_pushlstring(L, tag, n - 2);  /* "f:12: " */
  }
  else tag = loamL_checkstring(L, 2, NULL);
  c = (LConn *)lua_newuserdatauv(L, sizeof(LConn), CONN_NUV);
  memset(c, 0, sizeof *c);
  luaL_setmetatable(L, CONN_T);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, CONN_UV_POOL);
  if (loam_pool_acquire(pool, tag, &c->conn, &err) != LOAM_OK)
    return loamL_raise(L, &err, NULL);
  c->pool = pool;
  return 1;
}


/*
** pool:handle(): a pooled handle ('loam.Conn'): every call on it that
** needs a connection checks one out for its duration and hands it back
** after, and 'hold' keeps one across calls (see LConn).  What a Database
** over a pool runs on.  Closing it ends its use; the pool stays open.
*/
static int pool_handle (lua_State *L) {
  LConn *c;
  checkpool(L);
  c = (LConn *)lua_newuserdatauv(L, sizeof(LConn), CONN_NUV);
  memset(c, 0, sizeof *c);
  c->poolref = &checkpoolany(L)->pool;  /* the pool is read at each checkout: it may close */
  c->pooled = 1;
  luaL_setmetatable(L, CONN_T);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, CONN_UV_POOL);
  return 1;
}


/* pool:release(conn): hands a checkout back; the 'loam.Conn' is closed from then on. */
static int pool_release (lua_State *L) {
  loam_pool *pool = checkpool(L);
  LConn *c = (LConn *)luaL_testudata(L, 2, CONN_T);
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *conn;
  if (c == NULL) return loamL_typeerror(L, 2, CONN_T);
  if (c->pooled)
    return loamL_misuse(L, "pool:release: a pooled handle hands its connections back itself");
  if (c->conn == NULL) return loamL_misuse(L, "attempt to use a closed connection");
  if (c->pool != pool)
    return loamL_misuse(L, "pool:release: the connection is not one of this pool's");
  conn = c->conn;
  if (loam_pool_release(pool, conn, &err) != LOAM_OK) return loamL_raise(L, &err, NULL);
  c->conn = NULL;
  lua_pushboolean(L, 1);
  return 1;
}


static void setint (lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}


/* Pushes the metrics 'm' of a pool as a table (wait times in nanoseconds). */
static void pushmetrics (lua_State *L, const loam_pool_metrics *m) {
  lua_createtable(L, 0, 16);
  setint(L, "size", m->size);
  setint(L, "max_overflow", m->max_overflow);
  setint(L, "open", m->open);
  setint(L, "in_use", m->in_use);
  setint(L, "idle", m->idle);
  setint(L, "waiting", m->waiting);
  setint(L, "acquires", m->acquires);
  setint(L, "timeouts", m->timeouts);
  setint(L, "leaks", m->leaks);
  setint(L, "opened", m->opened);
  setint(L, "discarded", m->discarded);
  setint(L, "wait_max_ns", m->wait_max_ns);
  setint(L, "wait_p50_ns", m->wait_p50_ns);
  setint(L, "wait_p90_ns", m->wait_p90_ns);
  setint(L, "wait_p99_ns", m->wait_p99_ns);
}


/* pool:stats(): the metrics of 'loam_pool_stats' as a table. */
static int pool_stats (lua_State *L) {
  loam_pool_metrics m;
  loam_pool_stats(checkpool(L), &m);
  pushmetrics(L, &m);
  return 1;
}


static void closepool (LPool *p) {
  if (p->pool != NULL) {
    loam_pool *pool = p->pool;
    p->pool = NULL;
    loam_pool_close(pool);
  }
}


/* '__gc' and '__close'. */
static int pool_gc (lua_State *L) {
  closepool(checkpoolany(L));
  return 0;
}


/* Closing is idempotent, as for connections; checkouts still out stay usable until closed. */
static int pool_close (lua_State *L) {
  closepool(checkpoolany(L));
  lua_pushboolean(L, 1);
  return 1;
}


static int pool_tostring (lua_State *L) {
  LPool *p = checkpoolany(L);
  lua_pushstring(L, p->pool != NULL ? "loam.Pool" : "loam.Pool (closed)");
  return 1;
}


static const luaL_Reg pool_meth[] = {
  {"acquire", pool_acquire},
  {"release", pool_release},
  {"handle", pool_handle},
  {"stats", pool_stats},
  {"close", pool_close},
  {NULL, NULL}
};

static const luaL_Reg pool_metameth[] = {
  {"__index", NULL},  /* the method table, set by 'loamL_createmeta' */
  {"__gc", pool_gc},
  {"__close", pool_gc},
  {"__tostring", pool_tostring},
  {NULL, NULL}
};


/* {======================================================================
** Read replicas ('loam.Replicas'): the core's routing for a Database that
** keeps its own connection to the primary (lua/loam/replicas.lua).  The
** routing's reports are queued by its hook, which runs inside the call,
** and handed to the Lua log function (the user value) once the call has
** returned, so no Lua runs inside the core.
** ======================================================================= */

#define QUEUED 8

typedef struct LReplicas {
  loam_replicas *rs;         /* NULL once closed */
  int n;                     /* replicas */
  int nq;
  char queue[QUEUED][400];
} LReplicas;


static LReplicas *checkreplicasany (lua_State *L) {
  return (LReplicas *)luaL_checkudata(L, 1, REPLICAS_T);
}


static LReplicas *checkreplicas (lua_State *L) {
  LReplicas *r = checkreplicasany(L);
  if (r->rs == NULL) loamL_misuse(L, "attempt to use closed replicas");
  return r;
}


static void queue_report (void *ud, loam_pool_event ev, const char *msg) {
  LReplicas *r = ud;
  (void)ev;
  if (r->nq < QUEUED) snprintf(r->queue[r->nq++], sizeof r->queue[0], "%s", msg);
}


/* Hands the queued reports of 'r' (the userdata at index 1) to its log function. */
static void flush_reports (lua_State *L, LReplicas *r) {
  int i, n = r->nq;
  r->nq = 0;
  for (i = 0; i < n; i++) {
    lua_getiuservalue(L, 1, 1);
    lua_pushstring(L, r->queue[i]);
    lua_call(L, 1, 0);
  }
}


/*
** replicas_open(urls, opts, log [, own]): the routing over the replicas at
** 'urls' (a list), each replica's pool opened with 'opts' (those of
** 'pool_open' with 'max_lag_ms' and 'replica_check_ms'): the process's
** pool for its URL, or with 'own' one of the routing's own; 'log(message)'
** hears its reports.  Created closed, then opened.
*/
static int l_replicas_open (lua_State *L) {
  loam_pool_opts po = LOAM_POOL_OPTS_INIT;
  loam_replicas_opts o = LOAM_REPLICAS_OPTS_INIT;
  loam_error err = LOAM_ERROR_INIT;
  const char *urls[LOAMP_REPLICAS_MAX];
  LReplicas *r;
  int i, n, rc;
  luaL_checktype(L, 1, LUA_TTABLE);
  loamL_checkopts(L, 2, poolopt, &po);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  n = (int)luaL_len(L, 1);
  if (n < 1 || n > LOAMP_REPLICAS_MAX)
    return loamL_misuse(L, "replicas_open: 1 to %d replica URLs, got %d", LOAMP_REPLICAS_MAX, n);
  for (i = 0; i < n; i++) {
    lua_geti(L, 1, i + 1);
    urls[i] = loamL_checkstring(L, -1, NULL);   /* the list keeps it alive */
    lua_pop(L, 1);
  }
  lua_settop(L, 4);
  r = (LReplicas *)lua_newuserdatauv(L, sizeof(LReplicas), 1);
  r->rs = NULL;
  r->n = n;
  r->nq = 0;
  luaL_setmetatable(L, REPLICAS_T);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, -2, 1);
  lua_replace(L, 1);   /* the userdata at 1, as its methods have it */
  o.urls = urls;
  o.n = n;
  o.max_lag_ms = po.max_lag_ms;
  o.check_ms = po.replica_check_ms;
  o.pool = &po;
  o.hook = queue_report;
  o.hook_ud = r;
  o.own_pools = lua_toboolean(L, 4);
  rc = loam_replicas_open(&o, &r->rs, &err);
  flush_reports(L, r);
  if (rc != LOAM_OK) return loamL_raise(L, &err, NULL);
  lua_settop(L, 1);
  return 1;
}


/*
** replicas:route(primary, lsn, wrote) -> target, lsn: the server a read
** takes now, 0 for the primary or the replica's number, for a caller
** whose reads must see the primary's position 'lsn' (0: none); after a
** write ('wrote') the position is read on 'primary' first (a connection,
** or a pooled handle that checks one out for it) and returned.
*/
static int replicas_route (lua_State *L) {
  LReplicas *r = checkreplicas(L);
  loam_read_token tok = LOAM_READ_TOKEN_INIT;
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *primary = NULL;
  int i, rc;
  tok.lsn = (uint64_t)luaL_checkinteger(L, 3);
  tok.wrote = lua_toboolean(L, 4);
  if (tok.wrote) {
    LConn *c = (LConn *)loamL_testud(L, 2, &loamL_conn_key);
    if (c == NULL) return loamL_typeerror(L, 2, CONN_T);
    if (c->conn == NULL) loamL_lease(L, c, 2, 1, 1);
    primary = c->conn;
  }
  rc = loam_replicas_route(r->rs, primary, &tok, &i, &err);
  flush_reports(L, r);
  if (rc != LOAM_OK) return loamL_raise(L, &err, NULL);
  lua_pushinteger(L, i + 1);
  lua_pushinteger(L, (lua_Integer)tok.lsn);
  return 2;
}


/*
** replicas:stats([pools]): one table per replica (index, healthy, lag_ms,
** reads, error when skipped, and with 'pools' its pool's metrics as
** 'pool'), and 'primary_reads'.
*/
static int replicas_stats (lua_State *L) {
  LReplicas *r = checkreplicas(L);
  int pools = lua_toboolean(L, 2), i;
  lua_createtable(L, r->n, 1);
  for (i = 0; i < r->n; i++) {
    loam_replica_metrics m;
    loam_replicas_stats(r->rs, i, &m, NULL);
    lua_createtable(L, 0, 6);
    setint(L, "index", i + 1);
    lua_pushboolean(L, m.healthy);
    lua_setfield(L, -2, "healthy");
    setint(L, "lag_ms", m.lag_ms);
    setint(L, "reads", m.reads);
    if (m.error[0] != '\0') {
      lua_pushstring(L, m.error);
      lua_setfield(L, -2, "error");
    }
    if (pools) {
      pushmetrics(L, &m.pool);
      lua_setfield(L, -2, "pool");
    }
    lua_rawseti(L, -2, i + 1);
  }
  setint(L, "primary_reads", loam_replicas_primary_reads(r->rs));
  return 1;
}


/*
** replicas:pool(i): the pool of replica 'i' as a 'loam.Pool' of its own
** (an open of it: closing it leaves the routing's), or nil while no check
** has reached the server.
*/
static int replicas_pool (lua_State *L) {
  LReplicas *r = checkreplicas(L);
  lua_Integer i = luaL_checkinteger(L, 2);
  loam_pool *sub = i >= 1 && i <= r->n ? loam_replicas_pool(r->rs, (int)i - 1) : NULL;
  LPool *p;
  if (sub == NULL) return 0;
  p = (LPool *)lua_newuserdatauv(L, sizeof(LPool), 0);
  p->pool = NULL;
  luaL_setmetatable(L, POOL_T);
  loam_pool_retain(sub);
  p->pool = sub;
  return 1;
}


/* '__gc', '__close' and 'close': idempotent. */
static int replicas_gc (lua_State *L) {
  LReplicas *r = checkreplicasany(L);
  loam_replicas *rs = r->rs;
  r->rs = NULL;
  loam_replicas_close(rs);
  return 0;
}


static int replicas_close (lua_State *L) {
  replicas_gc(L);
  lua_pushboolean(L, 1);
  return 1;
}


static const luaL_Reg replicas_meth[] = {
  {"route", replicas_route},
  {"pool", replicas_pool},
  {"stats", replicas_stats},
  {"close", replicas_close},
  {NULL, NULL}
};

static const luaL_Reg replicas_metameth[] = {
  {"__index", NULL},
  {"__gc", replicas_gc},
  {"__close", replicas_gc},
  {NULL, NULL}
};

/* }====================================================================== */


/*
** conn:writes(): 'loam_conn_writes' of the connection; for a pooled
** handle, of every connection it checked out, summed over its leases, so
** that a Database over a pool sees its own writes whichever connection
** ran them (read-your-writes, lua/loam/replicas.lua).
*/
static int conn_writes (lua_State *L) {
  LConn *c = loamL_checkhandle(L);
  uint64_t n = c->pooled ? c->writes : 0;
  if (c->conn != NULL) n += loam_conn_writes(c->conn) - (c->pooled ? c->writes_base : 0);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}


void loamL_open_pool (lua_State *L) {
  loamL_createmeta(L, REPLICAS_T, replicas_meth, replicas_metameth);
  lua_pushcfunction(L, l_replicas_open);
  lua_setfield(L, -2, "replicas_open");
  lua_getfield(L, -1, "Conn");   /* the methods of 'loam.Conn' */
  lua_pushcfunction(L, conn_writes);
  lua_setfield(L, -2, "writes");
  lua_pop(L, 1);
  loamL_createmeta(L, POOL_T, pool_meth, pool_metameth);
  lua_pushcfunction(L, l_pool_open);
  lua_setfield(L, -2, "pool_open");
}
