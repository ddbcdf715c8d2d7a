/*
** host_threads.c: a C program whose threads each run their own Lua state
** with loam, all over ONE pool of connections.
**
** Every thread runs the same model script: a Database opened with
** 'pool' (loam.connect(url, { pool = {...} })) and transactions that read
** a row by key (locking it, on PostgreSQL) and update it.  The pool is the process's one pool for the
** URL: each state's Database finds the same one, and so does this
** program's C code, which opens it first with the same options (so its
** metrics outlive the threads' Databases), then checks the result and
** prints the pool's metrics.
**
** Build against an installed loam:
**   cc host_threads.c $(pkg-config --cflags --libs loam-lua) -o host_threads
** Run (loam's Lua files on LUA_PATH, as 'make env' sets it):
**   ./host_threads URL [TRANSACTIONS_PER_THREAD [THREADS]]
** The defaults are 2000 transactions in each of 16 threads over 4 connections.
** The transactions a second count from when every thread's state has
** loaded loam and declared its model (a start line the threads wait at)
** to the last transaction's end, as bench/peer_c_w5.c counts from when its
** connections are open and its statements prepared.
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "loam.h"
#include "loam_lua.h"

#define POOL_SIZE 4
#define ROWS 64
#define ACQUIRE_TIMEOUT_MS 60000
/* SQLite's writers take turns: one may wait for the three others' transactions. */
#define BUSY_TIMEOUT_MS 60000

/*
** The pool options, as the script writes them too (the connection's
** outside 'pool'): one pool per URL needs the same options.
*/
#define POOL_OPTIONS "{ size = 4, max_overflow = 0, acquire_timeout_ms = 60000 }"

/*
** The model script every thread runs: (url, thread number, transactions).
** It sets up, then returns the function that runs the transactions.
*/
static const char script[] =
  "local loam = require 'loam'\n"
  "local url, thread, n = ...\n"
  "local db = loam.connect(url, { busy_timeout_ms = 60000, pool = " POOL_OPTIONS " })\n"
  "local Counter = db:model('host_counters', { loam.id(), loam.integer('hits') })\n"
  "-- PostgreSQL locks the row it reads (SQLite's writers take turns anyway)\n"
  "local locked = db:backend() == 'postgres' and Counter:for_update()\n"
  "return function()\n"
  "  local _ <close> = db\n"
  "  for i = 1, n do\n"
  "    db:transaction(function()\n"
  "      local id = (i * 7 + thread) % 64 + 1\n"
  "      local c = locked and locked:where { id = id }:first() or Counter:find(id)\n"
  "      c.hits = c.hits + 1\n"
  "      c:save()\n"
  "    end)\n"
  "  end\n"
  "end\n";

/* The table, made from C before the threads start. */
static const char *const setup[] = {
  "DROP TABLE IF EXISTS host_counters",
  "CREATE TABLE host_counters (id INTEGER PRIMARY KEY, hits INTEGER NOT NULL)",
};

typedef struct worker {
  pthread_t tid;
  const char *url;
  int number, transactions;
  int ok;
  char error[512];
} worker;

/* The start line: threads set up count themselves in, then wait for 'go'. */
static pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t start_cv = PTHREAD_COND_INITIALIZER;
static int nready, go;


/* A thread at the start line (set up, or failed to): waits for the others. */
static void at_start (void) {
  pthread_mutex_lock(&start_mu);
  nready++;
  pthread_cond_broadcast(&start_cv);
  while (!go) pthread_cond_wait(&start_cv, &start_mu);
  pthread_mutex_unlock(&start_mu);
}


/* Waits until the 'n' threads started are set up, then lets them go. */
static void start_all (int n) {
  pthread_mutex_lock(&start_mu);
  while (nready < n) pthread_cond_wait(&start_cv, &start_mu);
  go = 1;
  pthread_cond_broadcast(&start_cv);
  pthread_mutex_unlock(&start_mu);
}


/* One thread: its own Lua state, from creation to close. */
static void *run_worker (void *arg) {
  worker *w = (worker *)arg;
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    snprintf(w->error, sizeof w->error, "no memory for a Lua state");
    at_start();
    return NULL;
  }
  luaL_openlibs(L);
  loam_lua_open(L);
  w->ok = luaL_loadstring(L, script) == LUA_OK;
  if (w->ok) {
    lua_pushstring(L, w->url);
    lua_pushinteger(L, w->number);
    lua_pushinteger(L, w->transactions);
    w->ok = lua_pcall(L, 3, 1, 0) == LUA_OK;
  }
  at_start();
  if (w->ok) w->ok = lua_pcall(L, 0, 0, 0) == LUA_OK;
  if (!w->ok) snprintf(w->error, sizeof w->error, "%s", luaL_tolstring(L, -1, NULL));
  lua_close(L);
  return NULL;
}


static int fail (const char *what, loam_error *err) {
  fprintf(stderr, "host_threads: %s: %s: %s\n", what, loam_errcode_name(err->code),
          err->message);
  loam_error_clear(err);
  return EXIT_FAILURE;
}


/* Creates the table with ROWS rows at 0 hits, on a connection of the pool. */
static int prepare (loam_pool *pool, loam_error *err) {
  loam_conn *c = NULL;
  size_t i;
  int rc = LOAM_OK;
  if (loam_pool_acquire(pool, "host_threads.c:prepare", &c, err) != LOAM_OK) return LOAM_ERROR;
  for (i = 0; rc == LOAM_OK && i < sizeof setup / sizeof setup[0]; i++)
    rc = loam_exec(c, setup[i], NULL, 0, NULL, NULL, NULL, err);
  if (rc == LOAM_OK) {
    loam_value v = loam_int(ROWS);
    rc = loam_exec(c, "INSERT INTO host_counters (id, hits) "
                      "SELECT n, 0 FROM (WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL "
                      "SELECT n + 1 FROM s WHERE n < ?) SELECT n FROM s) AS s",
                   &v, 1, NULL, NULL, NULL, err);
  }
  loam_pool_release(pool, c, NULL);
  return rc;
}


/* The sum of the hits, which must be one per transaction. */
static int total_hits (loam_pool *pool, int64_t *sum, loam_error *err) {
  loam_conn *c = NULL;
  loam_stmt *st = NULL;
  loam_value v;
  int rc;
  if (loam_pool_acquire(pool, "host_threads.c:total_hits", &c, err) != LOAM_OK) return LOAM_ERROR;
  rc = loam_query(c, "SELECT CAST(sum(hits) AS integer), count(*) FROM host_counters", NULL, 0,
                  0, &st, err);
  if (rc == LOAM_OK && (rc = loam_step(st, err)) == LOAM_ROW) {
    loam_column(st, 0, &v);
    *sum = v.type == LOAM_INT ? v.u.i : -1;
    rc = LOAM_OK;
  }
  else if (rc == LOAM_DONE) rc = LOAM_ERROR;
  loam_stmt_close(st);
  loam_pool_release(pool, c, NULL);
  return rc;
}


static double now_s (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}


int main (int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "sqlite:host_threads.db";
  int transactions = argc > 2 ? atoi(argv[2]) : 2000;
  int nthreads = argc > 3 ? atoi(argv[3]) : 16;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_error err = LOAM_ERROR_INIT;
  loam_pool *pool = NULL;
  loam_pool_metrics m;
  worker *w;
  int i, failed = 0;
  int64_t hits = 0;
  double t0, elapsed;
  if (transactions < 1 || nthreads < 1) {
    fprintf(stderr, "usage: host_threads URL [TRANSACTIONS_PER_THREAD [THREADS]]\n");
    return EXIT_FAILURE;
  }
  o.size = POOL_SIZE;
  o.max_overflow = 0;
  o.acquire_timeout_ms = ACQUIRE_TIMEOUT_MS;
  o.conn.busy_timeout_ms = BUSY_TIMEOUT_MS;
  if (loam_pool_open(url, &o, &pool, &err) != LOAM_OK) return fail("pool", &err);
  if (prepare(pool, &err) != LOAM_OK) {
    loam_pool_close(pool);
    return fail("prepare", &err);
  }
  w = calloc((size_t)nthreads, sizeof *w);
  if (w == NULL) {
    loam_pool_close(pool);
    return EXIT_FAILURE;
  }
  for (i = 0; i < nthreads; i++) {
    w[i].url = url;
    w[i].number = i;
    w[i].transactions = transactions;
    if (pthread_create(&w[i].tid, NULL, run_worker, &w[i]) != 0) {
      fprintf(stderr, "host_threads: cannot start thread %d\n", i);
      nthreads = i;
      failed = 1;
      break;
    }
  }
  start_all(nthreads);
  t0 = now_s();
  for (i = 0; i < nthreads; i++) pthread_join(w[i].tid, NULL);
  elapsed = now_s() - t0;
  for (i = 0; i < nthreads; i++) {
    if (!w[i].ok) {
      fprintf(stderr, "host_threads: thread %d: %s\n", i, w[i].error);
      failed = 1;
    }
  }
  free(w);
  if (total_hits(pool, &hits, &err) != LOAM_OK) {
    loam_pool_close(pool);
    return fail("check", &err);
  }
  loam_pool_stats(pool, &m);
  printf("%d threads x %d transactions over a pool of %d: %lld rows updated\n", nthreads,
         transactions, m.size, (long long)hits);
  printf("%.0f transactions/s\n", (double)nthreads * transactions / elapsed);
  printf("pool: size %d, open %d, in use %d, idle %d, waiting %d\n", m.size, m.open, m.in_use,
         m.idle, m.waiting);
  printf("pool: %lld acquires, %lld timeouts, %lld leaks, %lld opened, %lld discarded\n",
         (long long)m.acquires, (long long)m.timeouts, (long long)m.leaks, (long long)m.opened,
         (long long)m.discarded);
  printf("pool: wait p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms\n",
         (double)m.wait_p50_ns / 1e6, (double)m.wait_p90_ns / 1e6, (double)m.wait_p99_ns / 1e6,
         (double)m.wait_max_ns / 1e6);
  loam_pool_close(pool);
  if (hits != (int64_t)nthreads * transactions) {
    fprintf(stderr, "host_threads: %lld hits for %lld transactions\n", (long long)hits,
            (long long)nthreads * transactions);
    failed = 1;
  }
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
