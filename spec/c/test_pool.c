/*
** test_pool.c: the connection pool on SQLite and the real PostgreSQL.
**
** Each behaviour runs once per backend, with real threads where it is
** about threads: more threads than connections, every checkout marked
** so that a connection handed to two threads at once is caught.  The
** PostgreSQL faults are real too: sessions ended with
** pg_terminate_backend, a cluster of the test's own restarted
** (spec/support/pg-cluster), statements canceled from another thread.
** Every test opens its pool on a URL of its own (a file, or an
** application_name), so that one pool per URL holds no test to another's
** options, and closes it.
*/
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "loam.h"
#include "t.h"


/* {======================================================================
** Helpers
** ======================================================================= */

#define BACKEND(pg) ((pg) ? "postgres" : "sqlite")

static int exec (loam_conn *c, const char *sql, loam_error *e) {
  return loam_exec(c, sql, NULL, 0, NULL, NULL, NULL, e);
}

/* What a hook heard: the last message of each kind and how many. */
typedef struct heard {
  pthread_mutex_t mu;
  int leaks, warnings;
  char last[1024];
} heard;

static void hear (void *ud, loam_pool_event ev, const char *msg) {
  heard *h = ud;
  pthread_mutex_lock(&h->mu);
  if (ev == LOAM_POOL_LEAK) h->leaks++;
  else if (ev == LOAM_POOL_WARNING) h->warnings++;
  snprintf(h->last, sizeof h->last, "%s", msg);
  pthread_mutex_unlock(&h->mu);
}

/* }====================================================================== */


/* {======================================================================
** Options, one pool per URL
** ======================================================================= */

TEST(pool_options_out_of_range) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_pool *p = (loam_pool *)&e;
  const char *url = t_url(0, "pool_options");
  o.size = 0;
  CHECK_INT(loam_pool_open(url, &o, &p, &e), LOAM_ERROR);
  CHECK(p == NULL);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_STR(e.message, "loam_pool_open: 'size' must be 1 to 1000, got 0");
  o.size = 2;
  o.acquire_timeout_ms = -5;
  CHECK_INT(loam_pool_open(url, &o, &p, &e), LOAM_ERROR);
  CHECK_STR(e.message, "loam_pool_open: 'acquire_timeout_ms' must be at least 0 or LOAM_FOREVER, "
                       "got -5");
  o.acquire_timeout_ms = -1;
  o.health_check_ms = LOAM_FOREVER;
  CHECK_INT(loam_pool_open(url, &o, &p, &e), LOAM_ERROR);
  CHECK_STR(e.message, "loam_pool_open: 'health_check_ms' must be at least 0, got -2");
  o.health_check_ms = -1;
  o.size = 600;
  o.max_overflow = 500;
  CHECK_INT(loam_pool_open(url, &o, &p, &e), LOAM_ERROR);
  CHECK_STR(e.message, "loam_pool_open: 'size' + 'max_overflow' must be at most 1000, got 1100");
  o.size = 2;
  o.max_overflow = 0;
  CHECK_INT(loam_pool_open("sqlite::memory:", &o, &p, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_STR(e.message, "loam_pool_open: an in-memory SQLite database belongs to one connection; "
                       "a pool over it needs size 1 and max_overflow 0");
  CHECK_INT(loam_pool_open(url, &o, NULL, &e), LOAM_ERROR);
  CHECK_STR(e.message, "loam_pool_open: 'out' is NULL");
  CHECK_INT(loam_pool_open("nosuch:x", &o, &p, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_INVALID_URL);
  CHECK(p == NULL);
  /* Nothing of a failed open stays: the same URL opens with other options now. */
  o.size = 3;
  CHECK_OK(loam_pool_open(url, &o, &p, &e), &e);
  loam_pool_close(p);
  loam_pool_close(NULL);
  loam_error_clear(&e);
}


static void same_url (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT, o2;
  loam_pool *a = NULL, *b = NULL, *c = NULL;
  loam_pool_metrics m;
  const char *url = t_url(pg, "pool_same_url");
  if (url == NULL) return;
  o.size = 2;
  CHECK_OK(loam_pool_open(url, &o, &a, &e), &e);
  /* Defaults written out are the same options. */
  o2 = o;
  o2.max_overflow = 5;
  o2.conn.statement_cache = 64;
  CHECK_OK(loam_pool_open(url, &o2, &b, &e), &e);
  CHECK(a == b);
  o2.size = 3;
  CHECK_INT(loam_pool_open(url, &o2, &c, &e), LOAM_ERROR);
  CHECK(c == NULL);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_STR(e.message, "loam_pool_open: this process already has a pool for that URL with other "
                       "options: size 2 (this open asks for 3) (one pool per URL: open it with "
                       "the same options)");
  /* Every difference is named, the connection options' too. */
  o2.acquire_timeout_ms = 10;
  o2.conn.statement_timeout_ms = 1000;
  CHECK_INT(loam_pool_open(url, &o2, &c, &e), LOAM_ERROR);
  CHECK_STR(e.message, "loam_pool_open: this process already has a pool for that URL with other "
                       "options: size 2 (this open asks for 3), acquire_timeout_ms 30000 (this "
                       "open asks for 10), conn.statement_timeout_ms default (this open asks for 1000) "
                       "(one pool per URL: open it with the same options)");
  o2.size = 2;
  o2.acquire_timeout_ms = -1;
  /* One close of two: the pool stays, shared. */
  loam_pool_close(a);
  loam_pool_stats(b, &m);
  CHECK_INT(m.size, 2);
  CHECK_INT(m.open, 1);   /* the first connection, opened at once */
  loam_pool_close(b);
  /* Both closed: the URL is free for other options. */
  o2.size = 4;
  CHECK_OK(loam_pool_open(url, &o2, &c, &e), &e);
  loam_pool_stats(c, &m);
  CHECK_INT(m.size, 4);
  loam_pool_close(c);
  loam_error_clear(&e);
}

TEST(pool_one_per_url) { T_ON_BOTH(same_url); }


/* PostgreSQL: a pool larger than the server takes is a warning through the hook. */
TEST(pool_pg_max_connections_warning) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_pool *p = NULL;
  loam_conn *c = NULL;
  heard h = { PTHREAD_MUTEX_INITIALIZER, 0, 0, "" };
  char want[512];
  int64_t max, reserved;
  const char *url = t_url(1, "pool_max_connections");
  if (url == NULL) return;
  CHECK_OK(loam_connect(t_pg_url(), NULL, &c, &e), &e);
  max = t_scalar(c, "SELECT CAST(current_setting('max_connections') AS integer)");
  reserved = t_scalar(c, "SELECT CAST(current_setting('superuser_reserved_connections') "
                         "AS integer)");
  loam_conn_close(c);
  o.hook = hear;
  o.hook_ud = &h;
  o.size = (int)(max - reserved);   /* exactly fits: no warning */
  o.max_overflow = 0;
  CHECK_OK(loam_pool_open(url, &o, &p, &e), &e);
  CHECK_INT(h.warnings, 0);
  loam_pool_close(p);
  o.max_overflow = 1;
  CHECK_OK(loam_pool_open(url, &o, &p, &e), &e);
  CHECK_INT(h.warnings, 1);
  snprintf(want, sizeof want, "size %d + max_overflow 1 = %d connections would pass the %d the "
           "server accepts (max_connections %d - superuser_reserved_connections %d); every "
           "process with such a pool may take as many", o.size, o.size + 1, o.size, (int)max,
           (int)reserved);
  CHECK_STR(h.last, want);
  loam_pool_close(p);
  /* Each of the processes that open such a pool may take as many. */
  o.size = (int)(max - reserved) / 2;
  o.max_overflow = 0;
  o.processes = 3;
  CHECK_OK(loam_pool_open(url, &o, &p, &e), &e);
  CHECK_INT(h.warnings, 2);
  snprintf(want, sizeof want, "processes 3 x (size %d + max_overflow 0) = %d connections would "
           "pass the %d the server accepts (max_connections %d - superuser_reserved_connections "
           "%d)", o.size, 3 * o.size, (int)(max - reserved), (int)max, (int)reserved);
  CHECK_STR(h.last, want);
  loam_pool_close(p);
  o.processes = 0;
  CHECK_INT(loam_pool_open(url, &o, &p, &e), LOAM_ERROR);
  CHECK_STR(e.message, "loam_pool_open: 'processes' must be 1 to 10000, got 0");
  o.processes = -1;
  o.size = (int)(max - reserved);
  o.max_overflow = 1;
  /* SQLite has no such limit. */
  CHECK_OK(loam_pool_open(t_url(0, "pool_max_connections"), &o, &p, &e), &e);
  CHECK_INT(h.warnings, 2);
  loam_pool_close(p);
  loam_error_clear(&e);
}

/* }====================================================================== */


/* {======================================================================
** Checkout and release
** ======================================================================= */

static void acquire_release (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_pool *p = NULL, *other = NULL;
  loam_conn *c = NULL, *c2 = NULL, *alien = NULL;
  loam_pool_metrics m;
  const char *url = t_url(pg, "pool_acquire_release");
  if (url == NULL) return;
  o.size = 1;
  o.max_overflow = 0;
  CHECK_OK(loam_pool_open(url, &o, &p, &e), &e);
  CHECK_OK(loam_pool_acquire(p, "test_pool.c:1", &c, &e), &e);
  CHECK_INT(loam_conn_backend(c), pg ? LOAM_POSTGRES : LOAM_SQLITE);
  CHECK_INT(t_scalar(c, "SELECT 42"), 42);
  loam_pool_stats(p, &m);
  CHECK_INT(m.in_use, 1);
  CHECK_INT(m.idle, 0);
  CHECK_INT(m.acquires, 1);
  CHECK_OK(loam_pool_release(p, c, &e), &e);
  /* The same connection comes back: the most recently used one. */
  CHECK_OK(loam_pool_acquire(p, NULL, &c2, &e), &e);
  CHECK(c2 == c);
  CHECK_OK(loam_pool_release(p, c2, &e), &e);
  CHECK_INT(loam_pool_release(p, c2, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_STR(e.message, "loam_pool_release: the connection is not checked out (released twice?)");
  /* Another pool's connection, and a connection of no pool. */
  CHECK_OK(loam_pool_open(t_url(pg, "pool_acquire_release_2"), &o, &other, &e), &e);
  CHECK_OK(loam_pool_acquire(other, NULL, &c2, &e), &e);
  CHECK_INT(loam_pool_release(p, c2, &e), LOAM_ERROR);
  CHECK_STR(e.message, "loam_pool_release: the connection is not one of this pool's (released "
                       "twice, to another pool, or never acquired)");
  CHECK_OK(loam_pool_release(other, c2, &e), &e);
  loam_pool_close(other);
  CHECK_OK(loam_connect(url, NULL, &alien, &e), &e);
  CHECK_INT(loam_pool_release(p, alien, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  loam_conn_close(alien);
  CHECK_INT(loam_pool_acquire(p, NULL, NULL, &e), LOAM_ERROR);
  CHECK_STR(e.message, "loam_pool_acquire: 'out' is NULL");
  CHECK_INT(loam_pool_acquire(NULL, NULL, &c2, &e), LOAM_ERROR);
  CHECK_STR(e.message, "attempt to use a closed pool");
  loam_pool_stats(p, &m);
  CHECK_INT(m.acquires, 2);
  CHECK_INT(m.in_use, 0);
  CHECK_INT(m.idle, 1);
  CHECK_INT(m.opened, 1);
  CHECK_INT(m.discarded, 0);
  /* Closed with a connection out: acquiring fails, the release still works and frees it. */
  CHECK_OK(loam_pool_acquire(p, NULL, &c, &e), &e);
  loam_pool_close(p);
  CHECK_INT(loam_pool_acquire(p, NULL, &c2, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_STR(e.message, "attempt to use a closed pool");
  CHECK_OK(loam_pool_release(p, c, &e), &e);
  loam_error_clear(&e);
}

TEST(pool_acquire_release) { T_ON_BOTH(acquire_release); }


/* A transaction left open is rolled back at release; an open statement is finalized. */
static void reset_on_release (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_pool *p = NULL;
  loam_conn *c = NULL;
  loam_stmt *s = NULL;
  loam_value v = loam_int(7);
  loam_pool_metrics m;
  const char *url = t_url(pg, "pool_reset");
  if (url == NULL) return;
  o.size = 1;
  o.max_overflow = 0;
  CHECK_OK(loam_pool_open(url, &o, &p, &e), &e);
  CHECK_OK(loam_pool_acquire(p, NULL, &c, &e), &e);
  CHECK_OK(exec(c, "DROP TABLE IF EXISTS pool_reset", &e), &e);
  CHECK_OK(exec(c, "CREATE TABLE pool_reset (n INTEGER)", &e), &e);
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(loam_exec(c, "INSERT INTO pool_reset VALUES (?)", &v, 1, NULL, NULL, NULL, &e), &e);
  CHECK_OK(loam_query(c, "SELECT n FROM pool_reset", NULL, 0, 0, &s, &e), &e);
  CHECK_OK(loam_pool_release(p, c, &e), &e);
  CHECK_INT(loam_step(s, &e), LOAM_ERROR);
  CHECK_STR(e.message, "the statement's connection was closed");
  loam_stmt_close(s);
  CHECK_OK(loam_pool_acquire(p, NULL, &c, &e), &e);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM pool_reset"), 0);
  /* The levels are gone too: a new transaction begins at the top. */
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(loam_exec(c, "INSERT INTO pool_reset VALUES (?)", &v, 1, NULL, NULL, NULL, &e), &e);
  CHECK_OK(loam_tx_commit(c, &e), &e);
  CHECK_INT(loam_tx_commit(c, &e), LOAM_ERROR);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM pool_reset"), 1);
  /* A transaction opened with raw SQL is rolled back the same way. */
  CHECK_OK(exec(c, pg ? "BEGIN" : "BEGIN IMMEDIATE", &e), &e);
  CHECK_OK(exec(c, "DELETE FROM pool_reset", &e), &e);
  CHECK_OK(loam_pool_release(p, c, &e), &e);
  CHECK_OK(loam_pool_acquire(p, NULL, &c, &e), &e);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM pool_reset"), 1);
  CHECK_OK(loam_pool_release(p, c, &e), &e);
  loam_pool_stats(p, &m);
  CHECK_INT(m.opened, 1);
  CHECK_INT(m.discarded, 0);
  loam_pool_close(p);
  loam_error_clear(&e);
}

TEST(pool_reset_on_release) { T_ON_BOTH(reset_on_release); }


/* Overflow connections open under load and close when handed back with nobody waiting. */
static void overflow (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_pool *p = NULL;
  loam_conn *c[3] = { NULL, NULL, NULL }, *x = NULL;
  loam_pool_metrics m;
  const char *url = t_url(pg, "pool_overflow");
  if (url == NULL) return;
  o.size = 1;
  o.max_overflow = 2;
  o.acquire_timeout_ms = 0;
  CHECK_OK(loam_pool_open(url, &o, &p, &e), &e);
  CHECK_OK(loam_pool_acquire(p, "a", &c[0], &e), &e);
  CHECK_OK(loam_pool_acquire(p, "b", &c[1], &e), &e);
  CHECK_OK(loam_pool_acquire(p, "c", &c[2], &e), &e);
  CHECK(c[0] != c[1] && c[1] != c[2] && c[0] != c[2]);
  /* An acquire timeout of 0 does not wait. */
  CHECK_INT(loam_pool_acquire(p, NULL, &x, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_POOL_TIMEOUT);
  loam_pool_stats(p, &m);
  CHECK_INT(m.open, 3);
  CHECK_INT(m.in_use, 3);
  CHECK_OK(loam_pool_release(p, c[2], &e), &e);
  CHECK_OK(loam_pool_release(p, c[1], &e), &e);
  loam_pool_stats(p, &m);
  CHECK_INT(m.open, 1);
  CHECK_INT(m.idle, 0);
  CHECK_OK(loam_pool_release(p, c[0], &e), &e);
  loam_pool_stats(p, &m);
  CHECK_INT(m.open, 1);
  CHECK_INT(m.idle, 1);
  CHECK_INT(m.opened, 3);
  CHECK_INT(m.timeouts, 1);
  loam_pool_close(p);
  loam_error_clear(&e);
}

TEST(pool_overflow) { T_ON_BOTH(overflow); }


/* A connection past its lifetime is replaced at checkout; one idle too long is closed. */
static void lifetime (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_pool *p = NULL;
  loam_conn *c = NULL;
  loam_pool_metrics m;
  int64_t pid1, pid2;
  const char *url = t_url(pg, "pool_lifetime");
  if (url == NULL) return;
  o.size = 1;
  o.max_overflow = 0;
  o.max_lifetime_ms = 50;
  CHECK_OK(loam_pool_open(url, &o, &p, &e), &e);
  CHECK_OK(loam_pool_acquire(p, NULL, &c, &e), &e);
  pid1 = pg ? t_scalar(c, "SELECT pg_backend_pid()") : 0;
  CHECK_OK(loam_pool_release(p, c, &e), &e);
  t_sleep_ms(80);
  CHECK_OK(loam_pool_acquire(p, NULL, &c, &e), &e);
  pid2 = pg ? t_scalar(c, "SELECT pg_backend_pid()") : 1;
  CHECK(pid1 != pid2);
  CHECK_OK(loam_pool_release(p, c, &e), &e);
  loam_pool_stats(p, &m);
  CHECK_INT(m.opened, 2);
  CHECK_INT(m.discarded, 0);
  loam_pool_close(p);

  o.max_lifetime_ms = -1;
  o.idle_timeout_ms = 30;
  CHECK_OK(loam_pool_open(url, &o, &p, &e), &e);
  t_sleep_ms(60);
  /* The sweep at this call closes the idle connection, so the checkout opens another. */
  CHECK_OK(loam_pool_acquire(p, NULL, &c, &e), &e);
  CHECK_OK(loam_pool_release(p, c, &e), &e);
  loam_pool_stats(p, &m);
  CHECK_INT(m.opened, 2);
  CHECK_INT(m.open, 1);
  loam_pool_close(p);
  loam_error_clear(&e);
}

TEST(pool_lifetime_and_idle_timeout) { T_ON_BOTH(lifetime); }

/* }====================================================================== */


/* {======================================================================
** Threads
** ======================================================================= */

#define NTHREADS 8
#define ROUNDS 150

typedef struct shared {
  loam_pool *pool;
  int pg;
  atomic_int twice;          /* a connection seen by two threads at once */
  atomic_int failures;
  char failure[512];
  pthread_mutex_t mu;
  loam_conn *holders[NTHREADS];
} shared;

static void failed (shared *sh, const char *what, const loam_error *e) {
  pthread_mutex_lock(&sh->mu);
  if (atomic_fetch_add(&sh->failures, 1) == 0)
    snprintf(sh->failure, sizeof sh->failure, "%s: %s: %s", what, loam_errcode_name(e->code),
             e->message ? e->message : "");
  pthread_mutex_unlock(&sh->mu);
}

typedef struct worker { shared *sh; int id; } worker;

static void *work (void *arg) {
  worker *w = arg;
  shared *sh = w->sh;
  loam_error e = LOAM_ERROR_INIT;
  char tag[32];
  int r, i;
  snprintf(tag, sizeof tag, "worker %d", w->id);
  for (r = 0; r < ROUNDS; r++) {
    loam_conn *c = NULL;
    if (loam_pool_acquire(sh->pool, tag, &c, &e) != LOAM_OK) {
      failed(sh, "acquire", &e);
      break;
    }
    pthread_mutex_lock(&sh->mu);
    for (i = 0; i < NTHREADS; i++)
      if (sh->holders[i] == c) atomic_fetch_add(&sh->twice, 1);
    sh->holders[w->id] = c;
    pthread_mutex_unlock(&sh->mu);
    if (loam_exec(c, "UPDATE pool_threads SET n = n + 1", NULL, 0, NULL, NULL, NULL, &e)
        != LOAM_OK)
      failed(sh, "update", &e);
    pthread_mutex_lock(&sh->mu);
    sh->holders[w->id] = NULL;
    pthread_mutex_unlock(&sh->mu);
    if (loam_pool_release(sh->pool, c, &e) != LOAM_OK) failed(sh, "release", &e);
  }
  loam_error_clear(&e);
  return NULL;
}

static void contention (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  shared sh;
  worker w[NTHREADS];
  pthread_t th[NTHREADS];
  loam_conn *c = NULL;
  loam_pool_metrics m;
  int i;
  const char *url = t_url(pg, "pool_threads");
  if (url == NULL) return;
  memset(&sh, 0, sizeof sh);
  pthread_mutex_init(&sh.mu, NULL);
  sh.pg = pg;
  o.size = 2;
  o.max_overflow = 1;
  o.health_check_ms = 0;     /* every checkout tries its connection: the slow path too */
  o.conn.busy_timeout_ms = 30000;
  CHECK_OK(loam_pool_open(url, &o, &sh.pool, &e), &e);
  CHECK_OK(loam_pool_acquire(sh.pool, NULL, &c, &e), &e);
  CHECK_OK(exec(c, "DROP TABLE IF EXISTS pool_threads", &e), &e);
  CHECK_OK(exec(c, "CREATE TABLE pool_threads (n INTEGER)", &e), &e);
  CHECK_OK(exec(c, "INSERT INTO pool_threads VALUES (0)", &e), &e);
  CHECK_OK(loam_pool_release(sh.pool, c, &e), &e);
  for (i = 0; i < NTHREADS; i++) {
    w[i].sh = &sh;
    w[i].id = i;
    CHECK_INT(pthread_create(&th[i], NULL, work, &w[i]), 0);
  }
  for (i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
  if (atomic_load(&sh.failures) > 0) t_fail(__FILE__, __LINE__, "%s: %s", BACKEND(pg), sh.failure);
  CHECK_INT(atomic_load(&sh.failures), 0);
  CHECK_INT(atomic_load(&sh.twice), 0);
  CHECK_OK(loam_pool_acquire(sh.pool, NULL, &c, &e), &e);
  CHECK_INT(t_scalar(c, "SELECT n FROM pool_threads"), NTHREADS * ROUNDS);
  CHECK_OK(loam_pool_release(sh.pool, c, &e), &e);
  loam_pool_stats(sh.pool, &m);
  CHECK_INT(m.acquires, NTHREADS * ROUNDS + 2);
  CHECK_INT(m.timeouts, 0);
  CHECK_INT(m.in_use, 0);
  CHECK_INT(m.waiting, 0);
  CHECK(m.open >= 1 && m.open <= 3);
  CHECK_INT(m.discarded, 0);   /* no connection lost */
  CHECK(m.wait_p50_ns <= m.wait_p90_ns && m.wait_p90_ns <= m.wait_p99_ns &&
        m.wait_p99_ns <= m.wait_max_ns);
  CHECK(m.wait_max_ns > 0);
  loam_pool_close(sh.pool);
  pthread_mutex_destroy(&sh.mu);
  loam_error_clear(&e);
}

TEST(pool_threads_contention) { T_ON_BOTH(contention); }


/* The acquire timeout names the holders; on PostgreSQL with what their sessions do. */
static void exhausted (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_pool *p = NULL;
  loam_conn *c = NULL, *x = NULL;
  loam_pool_metrics m;
  const char *url = t_url(pg, "pool_exhausted");
  if (url == NULL) return;
  o.size = 1;
  o.max_overflow = 0;
  o.acquire_timeout_ms = 100;
  CHECK_OK(loam_pool_open(url, &o, &p, &e), &e);
  CHECK_OK(loam_pool_acquire(p, "orders.lua:42", &c, &e), &e);
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_INT(t_scalar(c, "SELECT 1"), 1);
  CHECK_INT(loam_pool_acquire(p, "report.lua:7", &x, &e), LOAM_ERROR);
  CHECK(x == NULL);
  CHECK_INT(e.code, LOAM_E_POOL_TIMEOUT);
  CHECK_STR(loam_errcode_name(e.code), "pool_timeout");
  CHECK_HAS(e.message, "pool exhausted: no connection free after 0.");
  CHECK_HAS(e.message, " s (size 1, max_overflow 0: 1 in use, 0 more waiting); checked out:\n"
                       "  acquired at orders.lua:42, held 0.");
  if (pg) CHECK_HAS(e.message, "; server: idle in transaction for 0.");
  if (pg) CHECK_HAS(e.message, " s: SELECT 1");
  else CHECK(strstr(e.message, "server") == NULL);
  CHECK(strchr(e.message, '\n') == strrchr(e.message, '\n'));   /* one holder, one line */
  loam_pool_stats(p, &m);
  CHECK_INT(m.timeouts, 1);
  CHECK(m.wait_max_ns >= 100000000);
  CHECK_OK(loam_pool_release(p, c, &e), &e);
  loam_pool_close(p);
  loam_error_clear(&e);
}

TEST(pool_exhausted_names_holders) { T_ON_BOTH(exhausted); }


/*
** More threads than connections, each holding its connection longer than
** the others may wait: some acquires time out, each naming a holder, and
** no thread hangs.
*/
typedef struct impatient {
  loam_pool *pool;
  int id, ok, timeouts, other;
  char message[600];
} impatient;

static void *hold_a_while (void *arg) {
  impatient *w = arg;
  loam_error e = LOAM_ERROR_INIT;
  char tag[32];
  int r;
  snprintf(tag, sizeof tag, "holder-%d.c:1", w->id);
  for (r = 0; r < 5; r++) {
    loam_conn *c = NULL;
    if (loam_pool_acquire(w->pool, tag, &c, &e) == LOAM_OK) {
      w->ok++;
      t_sleep_ms(30);
      if (loam_pool_release(w->pool, c, &e) != LOAM_OK) w->other++;
    }
    else if (e.code == LOAM_E_POOL_TIMEOUT) {
      w->timeouts++;
      snprintf(w->message, sizeof w->message, "%s", e.message);
    }
    else w->other++;
  }
  loam_error_clear(&e);
  return NULL;
}

static void impatient_threads (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_pool_metrics m;
  impatient w[6];
  pthread_t th[6];
  int i, ok = 0, timeouts = 0;
  const char *url = t_url(pg, "pool_impatient");
  if (url == NULL) return;
  o.size = 1;
  o.max_overflow = 1;
  o.acquire_timeout_ms = 10;
  memset(w, 0, sizeof w);
  CHECK_OK(loam_pool_open(url, &o, &w[0].pool, &e), &e);
  for (i = 0; i < 6; i++) {
    w[i].pool = w[0].pool;
    w[i].id = i;
    CHECK_INT(pthread_create(&th[i], NULL, hold_a_while, &w[i]), 0);
  }
  for (i = 0; i < 6; i++) pthread_join(th[i], NULL);
  for (i = 0; i < 6; i++) {
    CHECK_INT(w[i].other, 0);
    CHECK_INT(w[i].ok + w[i].timeouts, 5);
    ok += w[i].ok;
    timeouts += w[i].timeouts;
    if (w[i].timeouts > 0) {
      CHECK_HAS(w[i].message, "pool exhausted: no connection free after 0.");
      CHECK_HAS(w[i].message, " s (size 1, max_overflow 1: 2 in use, ");
      CHECK_HAS(w[i].message, "; checked out:\n  ");
      CHECK(strstr(w[i].message, "acquired at holder-") != NULL ||
            strstr(w[i].message, "being opened, tried or handed back") != NULL);
    }
  }
  CHECK(timeouts > 0);
  loam_pool_stats(w[0].pool, &m);
  CHECK_INT(m.timeouts, timeouts);
  CHECK_INT(m.acquires, ok);
  CHECK_INT(m.in_use, 0);
  CHECK_INT(m.waiting, 0);
  CHECK_INT(m.discarded, 0);
  loam_pool_close(w[0].pool);
  loam_error_clear(&e);
}

TEST(pool_more_threads_than_connections_time_out) { T_ON_BOTH(impatient_threads); }


/* A waiter gets the connection released meanwhile, without a timeout. */
typedef struct waiter { loam_pool *pool; int rc; loam_conn *got; } waiter;

/* The pool waits the trace hook saw, in order. */
typedef struct waits { int n; int64_t ns[4]; } waits;

static void record_wait (void *ud, const loam_trace_event *ev) {
  waits *w = ud;
  if (w->n < 4) w->ns[w->n++] = ev->wait_ns;
}

static void *wait_one (void *arg) {
  waiter *w = arg;
  w->rc = loam_pool_acquire(w->pool, "waiter", &w->got, NULL);
  return NULL;
}

static void handoff (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_pool *p = NULL;
  loam_conn *c = NULL;
  loam_pool_metrics m;
  waiter w;
  waits seen = { 0, { 0, 0, 0, 0 } };
  pthread_t th;
  int i;
  const char *url = t_url(pg, "pool_handoff");
  if (url == NULL) return;
  o.size = 1;
  o.max_overflow = 0;
  CHECK_OK(loam_pool_open(url, &o, &p, &e), &e);
  CHECK_OK(loam_pool_acquire(p, NULL, &c, &e), &e);
  w.pool = p;
  w.rc = -1;
  w.got = NULL;
  CHECK_INT(pthread_create(&th, NULL, wait_one, &w), 0);
  for (i = 0; i < 1000; i++) {
    loam_pool_stats(p, &m);
    if (m.waiting == 1) break;
    t_sleep_ms(5);
  }
  CHECK_INT(m.waiting, 1);
  CHECK_OK(loam_pool_release(p, c, &e), &e);
  pthread_join(th, NULL);
  CHECK_INT(w.rc, LOAM_OK);
  CHECK(w.got == c);
  /* The wait goes with the first statement of the checkout, as the split of its time. */
  loam_conn_set_trace(w.got, record_wait, &seen);
  CHECK_OK(exec(w.got, "SELECT 1", &e), &e);
  CHECK_OK(exec(w.got, "SELECT 2", &e), &e);
  loam_conn_set_trace(w.got, NULL, NULL);
  CHECK_INT(seen.n, 2);
  CHECK(seen.ns[0] > 0);
  CHECK(seen.ns[1] == 0);
  CHECK_OK(loam_pool_release(p, w.got, &e), &e);
  loam_pool_stats(p, &m);
  CHECK_INT(m.timeouts, 0);
  CHECK(m.wait_max_ns > 0);
  CHECK(m.wait_max_ns >= seen.ns[0]);
  CHECK_INT(loam_pool_backend(p), pg ? LOAM_POSTGRES : LOAM_SQLITE);
  CHECK_INT(loam_pool_backend(NULL), 0);
  loam_pool_close(p);
  loam_error_clear(&e);
}

TEST(pool_waiter_gets_released_connection) { T_ON_BOTH(handoff); }


/* A connection held past the threshold is reported once, with its tag. */
static void leak (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_pool *p = NULL;
  loam_conn *c = NULL, *c2 = NULL;
  loam_pool_metrics m;
  heard h = { PTHREAD_MUTEX_INITIALIZER, 0, 0, "" };
  const char *url = t_url(pg, "pool_leak");
  if (url == NULL) return;
  o.size = 2;
  o.leak_threshold_ms = 50;
  o.hook = hear;
  o.hook_ud = &h;
  CHECK_OK(loam_pool_open(url, &o, &p, &e), &e);
  CHECK_OK(loam_pool_acquire(p, "leaky.lua:3", &c, &e), &e);
  t_sleep_ms(80);
  CHECK_OK(loam_pool_acquire(p, NULL, &c2, &e), &e);
  CHECK_INT(h.leaks, 1);
  CHECK_HAS(h.last, "a connection was held past the leak threshold (50 ms): acquired at "
                    "leaky.lua:3, held 0.");
  CHECK_OK(loam_pool_release(p, c2, &e), &e);
  t_sleep_ms(20);
  CHECK_OK(loam_pool_acquire(p, NULL, &c2, &e), &e);
  CHECK_OK(loam_pool_release(p, c2, &e), &e);
  CHECK_INT(h.leaks, 1);   /* once per checkout */
  loam_pool_stats(p, &m);
  CHECK_INT(m.leaks, 1);
  /* Abandoned: back in the pool, and reported unless it was already. */
  CHECK_OK(loam_pool_acquire(p, "lost.lua:5", &c2, &e), &e);
  CHECK_OK(loam_pool_abandon(p, c2, &e), &e);
  CHECK_INT(h.leaks, 2);
  CHECK_HAS(h.last, "a connection was lost without being released (it is back in the pool): "
                    "acquired at lost.lua:5, held 0.");
  CHECK_OK(loam_pool_abandon(p, c, &e), &e);
  CHECK_INT(h.leaks, 2);
  CHECK_INT(loam_pool_abandon(p, c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  loam_pool_stats(p, &m);
  CHECK_INT(m.leaks, 2);
  CHECK_INT(m.in_use, 0);
  CHECK_OK(loam_pool_acquire(p, NULL, &c, &e), &e);
  CHECK_OK(loam_pool_release(p, c, &e), &e);
  /* The hook can be replaced. */
  loam_pool_set_hook(p, NULL, NULL);
  loam_pool_close(p);
  loam_error_clear(&e);
}

TEST(pool_leak_reported) { T_ON_BOTH(leak); }

/* }====================================================================== */


/* {======================================================================
** Dead connections (PostgreSQL)
** ======================================================================= */

/* A session ended under a checked-out connection: the statement fails, the next acquire is healthy. */
TEST(pool_pg_terminated_backend) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_pool *p = NULL;
  loam_conn *c = NULL, *admin = NULL;
  loam_pool_metrics m;
  int64_t pid, pid2;
  const char *url = t_url(1, "pool_terminated");
  if (url == NULL) return;
  o.size = 1;
  o.max_overflow = 0;
  o.health_check_ms = 200;
  CHECK_OK(loam_connect(t_pg_url(), NULL, &admin, &e), &e);
  CHECK_OK(exec(admin, "DROP TABLE IF EXISTS pool_terminated", &e), &e);
  CHECK_OK(exec(admin, "CREATE TABLE pool_terminated (n INTEGER)", &e), &e);
  CHECK_OK(loam_pool_open(url, &o, &p, &e), &e);
  /* Mid-transaction: COMMIT meets the dead session, nothing is kept. */
  CHECK_OK(loam_pool_acquire(p, NULL, &c, &e), &e);
  pid = t_scalar(c, "SELECT pg_backend_pid()");
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(exec(c, "INSERT INTO pool_terminated VALUES (1)", &e), &e);
  CHECK(t_pg_terminate(admin, pid));
  CHECK_INT(loam_tx_commit(c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_CONNECTION_FAILED);
  CHECK_OK(loam_pool_release(p, c, &e), &e);
  CHECK_INT(t_scalar(admin, "SELECT count(*) FROM pool_terminated"), 0);
  CHECK_OK(loam_pool_acquire(p, NULL, &c, &e), &e);
  pid2 = t_scalar(c, "SELECT pg_backend_pid()");
  CHECK(pid2 > 0 && pid2 != pid);
  CHECK_OK(loam_pool_release(p, c, &e), &e);
  loam_pool_stats(p, &m);
  CHECK_INT(m.discarded, 1);
  CHECK_INT(m.opened, 2);
  /* Ended while idle: the checkout tries it (idle past the health check) and opens another. */
  CHECK(t_pg_terminate(admin, pid2));
  t_sleep_ms(250);
  CHECK_OK(loam_pool_acquire(p, NULL, &c, &e), &e);
  CHECK_INT(t_scalar(c, "SELECT 5"), 5);
  CHECK(t_scalar(c, "SELECT pg_backend_pid()") != pid2);
  CHECK_OK(loam_pool_release(p, c, &e), &e);
  loam_pool_stats(p, &m);
  CHECK_INT(m.discarded, 2);
  loam_pool_close(p);
  loam_conn_close(admin);
  loam_error_clear(&e);
}


/*
** The server restarted under a pool: connections fail at most once each,
** then all is well.  The cluster is one of the test's own
** (spec/support/pg-cluster), so the shared one is untouched.
*/
static int cluster (const char *verb, const char *dir) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "bash spec/support/pg-cluster %s '%s' >/dev/null", verb, dir);
  return system(cmd);
}

static void restart_under_pool (const char *url, const char *dir) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_pool *p = NULL;
  loam_conn *c[2] = { NULL, NULL };
  loam_pool_metrics m;
  int i, failures = 0;
  o.size = 2;
  o.max_overflow = 0;
  CHECK_OK(loam_pool_open(url, &o, &p, &e), &e);
  CHECK_OK(loam_pool_acquire(p, NULL, &c[0], &e), &e);
  CHECK_OK(loam_pool_acquire(p, NULL, &c[1], &e), &e);
  CHECK_OK(loam_pool_release(p, c[0], &e), &e);
  CHECK_OK(loam_pool_release(p, c[1], &e), &e);
  CHECK_INT(cluster("restart", dir), 0);
  /* Whatever the idle times, no more than one failure, none after. */
  for (i = 0; i < 4; i++) {
    loam_conn *x = NULL;
    CHECK_OK(loam_pool_acquire(p, "restart", &x, &e), &e);
    if (t_scalar(x, "SELECT 1") != 1) failures++;
    CHECK_OK(loam_pool_release(p, x, &e), &e);
  }
  CHECK(failures <= 1);
  for (i = 0; i < 2; i++) CHECK_OK(loam_pool_acquire(p, NULL, &c[i], &e), &e);
  for (i = 0; i < 2; i++) CHECK_INT(t_scalar(c[i], "SELECT 2"), 2);
  for (i = 0; i < 2; i++) CHECK_OK(loam_pool_release(p, c[i], &e), &e);
  loam_pool_stats(p, &m);
  CHECK_INT(m.discarded, 2);
  CHECK_INT(m.in_use, 0);
  loam_pool_close(p);
  loam_error_clear(&e);
}

/* The same under a busy pool: threads keep querying while the server restarts. */
typedef struct busy {
  loam_pool *pool;
  atomic_int *stop;
  int ok, lost, other;
  char other_msg[300];
} busy;

static void *keep_querying (void *arg) {
  busy *b = arg;
  loam_error e = LOAM_ERROR_INIT;
  while (!atomic_load(b->stop)) {
    loam_conn *c = NULL;
    int rc = loam_pool_acquire(b->pool, "busy", &c, &e);
    if (rc == LOAM_OK) {
      rc = loam_exec(c, "SELECT 1", NULL, 0, NULL, NULL, NULL, &e);
      if (loam_pool_release(b->pool, c, NULL) != LOAM_OK) b->other++;
    }
    if (rc == LOAM_OK) b->ok++;
    else if (e.code == LOAM_E_CONNECTION_FAILED) b->lost++;
    else {
      b->other++;
      snprintf(b->other_msg, sizeof b->other_msg, "%s: %s", loam_errcode_name(e.code),
               e.message ? e.message : "");
    }
  }
  loam_error_clear(&e);
  return NULL;
}

static void restart_under_busy_pool (const char *url, const char *dir) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_pool *p = NULL;
  loam_pool_metrics m;
  atomic_int stop;
  busy b[4];
  pthread_t th[4];
  int i, rc;
  o.size = 2;
  o.max_overflow = 1;
  atomic_init(&stop, 0);
  CHECK_OK(loam_pool_open(url, &o, &p, &e), &e);
  memset(b, 0, sizeof b);
  for (i = 0; i < 4; i++) {
    b[i].pool = p;
    b[i].stop = &stop;
    CHECK_INT(pthread_create(&th[i], NULL, keep_querying, &b[i]), 0);
  }
  t_sleep_ms(200);
  rc = cluster("restart", dir);
  t_sleep_ms(300);
  atomic_store(&stop, 1);
  for (i = 0; i < 4; i++) pthread_join(th[i], NULL);
  CHECK_INT(rc, 0);
  for (i = 0; i < 4; i++) {
    if (b[i].other > 0) t_fail(__FILE__, __LINE__, "thread %d: %s", i, b[i].other_msg);
    CHECK_INT(b[i].other, 0);
    CHECK(b[i].ok > 0);
  }
  /* Every connection is healthy again. */
  {
    loam_conn *c[3] = { NULL, NULL, NULL };
    for (i = 0; i < 3; i++) CHECK_OK(loam_pool_acquire(p, NULL, &c[i], &e), &e);
    for (i = 0; i < 3; i++) CHECK_INT(t_scalar(c[i], "SELECT 3"), 3);
    for (i = 0; i < 3; i++) CHECK_OK(loam_pool_release(p, c[i], &e), &e);
  }
  loam_pool_stats(p, &m);
  CHECK_INT(m.in_use, 0);
  CHECK(m.open <= 3);
  loam_pool_close(p);
  loam_error_clear(&e);
}

TEST(pool_pg_server_restart) {
  char dir[300], url[400];
  if (t_url(1, "pool_restart") == NULL) return;
  snprintf(dir, sizeof dir, "%s/pgr", t_tmpdir());
  snprintf(url, sizeof url, "postgresql:///loam_test?host=%s&user=postgres", dir);
  CHECK_INT(chmod(t_tmpdir(), 0711), 0);
  CHECK_INT(cluster("start", dir), 0);
  restart_under_pool(url, dir);
  if (!t_failed()) restart_under_busy_pool(url, dir);
  CHECK_INT(cluster("stop", dir), 0);
}

/* PostgreSQL ends a session idle in a transaction; the pool discards it at release. */
TEST(pool_pg_idle_in_transaction_timeout) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_pool *p = NULL;
  loam_conn *c = NULL;
  loam_pool_metrics m;
  const char *url = t_url(1, "pool_idle_in_tx");
  if (url == NULL) return;
  o.size = 1;
  o.max_overflow = 0;
  o.conn.idle_in_tx_timeout_ms = 100;
  CHECK_OK(loam_pool_open(url, &o, &p, &e), &e);
  CHECK_OK(loam_pool_acquire(p, NULL, &c, &e), &e);
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_INT(t_scalar(c, "SELECT 1"), 1);
  t_sleep_ms(400);
  CHECK_INT(exec(c, "SELECT 1", &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_CONNECTION_FAILED);
  CHECK_OK(loam_pool_release(p, c, &e), &e);
  CHECK_OK(loam_pool_acquire(p, NULL, &c, &e), &e);
  CHECK_INT(t_scalar(c, "SELECT 4"), 4);
  CHECK_OK(loam_pool_release(p, c, &e), &e);
  loam_pool_stats(p, &m);
  CHECK_INT(m.discarded, 1);
  loam_pool_close(p);
  loam_error_clear(&e);
}


/* }====================================================================== */
