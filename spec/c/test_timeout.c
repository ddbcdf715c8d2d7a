/*
** test_timeout.c: statement timeouts and canceling a statement from
** another thread, on SQLite and the real PostgreSQL, and a connect
** timeout of 0, which must not mean "forever".  A statement that runs for
** seconds is stopped for real: by the server's statement_timeout or
** SQLite's progress handler, by PQcancel or sqlite3_interrupt.
*/
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "loam.h"
#include "t.h"


/* A statement that runs for seconds on either backend. */
#define LONG_SQL(pg) ((pg) ? "SELECT CAST(pg_sleep(20) AS text) IS NULL" : \
  "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 2000000000) " \
  "SELECT count(*) FROM r")


/* {======================================================================
** Timeouts and cancel
** ======================================================================= */

static void statement_timeout (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn_opts o = LOAM_CONN_OPTS_INIT;
  loam_conn *c = NULL;
  loam_stmt *s = NULL;
  const char *url = t_url(pg, "pool_statement_timeout");
  int rc;
  if (url == NULL) return;
  o.statement_timeout_ms = 100;
  CHECK_OK(loam_connect(url, &o, &c, &e), &e);
  rc = loam_query(c, LONG_SQL(pg), NULL, 0, 0, &s, &e);
  if (rc == LOAM_OK) rc = loam_step(s, &e);
  CHECK_INT(rc, LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_TIMEOUT);
  if (pg) {
    CHECK_STR(e.sqlstate, "57014");
    CHECK_STR(e.message, "canceling statement due to statement timeout");
  }
  else CHECK_STR(e.message, "canceling statement due to statement timeout (100 ms)");
  loam_stmt_close(s);
  CHECK_INT(t_scalar(c, "SELECT 3"), 3);
  loam_conn_close(c);
  /* 0 is no limit, and out of range is misuse. */
  o.statement_timeout_ms = -3;
  CHECK_INT(loam_connect(url, &o, &c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_STR(e.message, "loam_connect: statement_timeout_ms must be milliseconds, 0 (none) or -1 "
                       "(the default), got -3");
  o.statement_timeout_ms = 0;
  CHECK_OK(loam_connect(url, &o, &c, &e), &e);
  if (pg) {
    loam_stmt *q = NULL;
    loam_value v;
    CHECK_OK(loam_query(c, "SHOW statement_timeout", NULL, 0, 0, &q, &e), &e);
    CHECK_INT(loam_step(q, &e), LOAM_ROW);
    CHECK_OK(loam_column(q, 0, &v), &e);
    CHECK_STR(v.u.s.ptr, "0");
    loam_stmt_close(q);
  }
  loam_conn_close(c);
  loam_error_clear(&e);
}

TEST(conn_statement_timeout) { T_ON_BOTH(statement_timeout); }


typedef struct runner {
  loam_conn *conn;
  int pg;
  atomic_int started, done;
  int rc;
  loam_error err;
} runner;

static void *run_long (void *arg) {
  runner *r = arg;
  loam_stmt *s = NULL;
  atomic_store(&r->started, 1);
  r->rc = loam_query(r->conn, LONG_SQL(r->pg), NULL, 0, 0, &s, &r->err);
  if (r->rc == LOAM_OK) r->rc = loam_step(s, &r->err);
  loam_stmt_close(s);
  atomic_store(&r->done, 1);
  return NULL;
}

/* A statement canceled from another thread fails with 'canceled'; the connection stays usable. */
static void cancel (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_pool *p = NULL;
  runner r;
  pthread_t th;
  int i;
  const char *url = t_url(pg, "pool_cancel");
  if (url == NULL) return;
  memset(&r, 0, sizeof r);
  r.pg = pg;
  o.size = 1;
  o.max_overflow = 0;
  CHECK_OK(loam_pool_open(url, &o, &p, &e), &e);
  CHECK_OK(loam_pool_acquire(p, "cancel", &r.conn, &e), &e);
  /* Nothing running: no error, and nothing kept for the next statement. */
  CHECK_OK(loam_conn_cancel(r.conn, &e), &e);
  CHECK_INT(t_scalar(r.conn, "SELECT 6"), 6);
  CHECK_INT(pthread_create(&th, NULL, run_long, &r), 0);
  while (!atomic_load(&r.started)) t_sleep_ms(1);
  /* A cancel that comes before the statement started is lost: ask until it ends. */
  for (i = 0; i < 2000 && !atomic_load(&r.done); i++) {
    t_sleep_ms(20);
    CHECK_OK(loam_conn_cancel(r.conn, &e), &e);
  }
  pthread_join(th, NULL);
  CHECK_INT(r.rc, LOAM_ERROR);
  CHECK_INT(r.err.code, LOAM_E_CANCELED);
  CHECK_STR(loam_errcode_name(r.err.code), "canceled");
  CHECK_STR(r.err.message, "canceling statement due to user request");
  if (pg) CHECK_STR(r.err.sqlstate, "57014");
  CHECK_INT(t_scalar(r.conn, "SELECT 7"), 7);
  CHECK_OK(loam_pool_release(p, r.conn, &e), &e);
  CHECK_INT(loam_conn_cancel(NULL, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  loam_pool_close(p);
  loam_error_clear(&r.err);
  loam_error_clear(&e);
}

TEST(conn_cancel_from_another_thread) { T_ON_BOTH(cancel); }


/* A connect timeout of 0 is refused, not read as "forever"; LOAM_FOREVER asks for that. */
TEST(conn_connect_timeout_zero) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn_opts o = LOAM_CONN_OPTS_INIT;
  loam_conn *c = NULL;
  char url[600];
  if (t_pg_url() == NULL) {
    t_fail(__FILE__, __LINE__, "LOAM_TEST_PG is not set; the PostgreSQL tests need a server");
    return;
  }
  o.connect_timeout_s = 0;
  CHECK_INT(loam_connect(t_pg_url(), &o, &c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_STR(e.message, "loam_connect: a connect timeout of 0 would wait forever; give seconds, "
                       "or LOAM_FOREVER to mean that");
  snprintf(url, sizeof url, "%s&connect_timeout=0", t_pg_url());
  CHECK_INT(loam_connect(url, NULL, &c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_INVALID_URL);
  CHECK_STR(e.message, "PostgreSQL URL option 'connect_timeout' must be at least 1 (seconds): 0 "
                       "would wait forever (LOAM_FOREVER in the connection options asks for "
                       "that) (got '0')");
  o.connect_timeout_s = LOAM_FOREVER;
  CHECK_OK(loam_connect(t_pg_url(), &o, &c, &e), &e);
  CHECK_INT(t_scalar(c, "SELECT 8"), 8);
  loam_conn_close(c);
  loam_error_clear(&e);
}

/* }====================================================================== */
