/*
** test_tx_opts.c: what a transaction is opened with and what happens when
** it ends, on SQLite and the real PostgreSQL: isolation levels and
** read-only ('loam_tx_begin_with'), the hooks of 'loam_tx_on_end', the
** report of a long transaction, 'loam_tx_run' with its retries (a forced
** serialization failure and a real deadlock between two threads on
** PostgreSQL, SQLite's busy), a connection closed inside, and the pool's
** report of a thread that asks for a second connection while it holds
** one in a transaction.
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loam.h"
#include "t.h"


/* {======================================================================
** Helpers
** ======================================================================= */

#define NSQL 16

/* The SQL of the statements reported to the trace hook, in order. */
typedef struct seen {
  int n;
  char sql[NSQL][80];
} seen;

static void record (void *ud, const loam_trace_event *ev) {
  seen *s = ud;
  if (s->n < NSQL) snprintf(s->sql[s->n], sizeof s->sql[0], "%s", ev->sql);
  s->n++;
}

static int exec (loam_conn *c, const char *sql, loam_error *e) {
  return loam_exec(c, sql, NULL, 0, NULL, NULL, NULL, e);
}

/* A connection to a file of its own (SQLite) or the test cluster, with table "txo" (n INTEGER). */
static loam_conn *open_db (int pg, const char *name, loam_error *e) {
  loam_conn *c = NULL;
  const char *url = t_url(pg, name);
  if (url == NULL) return NULL;
  if (loam_connect(url, NULL, &c, e) != LOAM_OK || exec(c, "DROP TABLE IF EXISTS txo", e) ||
      exec(c, "CREATE TABLE txo (id INTEGER PRIMARY KEY, n INTEGER)", e) ||
      exec(c, "INSERT INTO txo (id, n) VALUES (1, 0), (2, 0)", e)) {
    t_fail(__FILE__, __LINE__, "setup failed: %s", e->message ? e->message : "");
    loam_conn_close(c);
    return NULL;
  }
  return c;
}

static int64_t total (loam_conn *c) {
  return t_scalar(c, "SELECT CAST(sum(n) AS INTEGER) FROM txo");
}

/* A hook's record: the outcomes, in order, as letters ('C' committed, 'R' rolled back). */
typedef struct heard {
  char what[32];
  int n;
} heard;

typedef struct hook_ud {
  heard *h;
  char name;
} hook_ud;

static void note (void *ud, loam_conn *conn, loam_tx_outcome outcome) {
  hook_ud *u = ud;
  (void)conn;
  if (u->h->n + 3 < (int)sizeof u->h->what) {
    u->h->what[u->h->n++] = u->name;
    u->h->what[u->h->n++] = outcome == LOAM_TX_COMMITTED ? 'C' : 'R';
    u->h->what[u->h->n] = '\0';
  }
}

/* The messages given to a transaction's log. */
typedef struct logged {
  int n;
  char last[256];
} logged;

static void take_log (void *ud, const char *msg) {
  logged *l = ud;
  l->n++;
  snprintf(l->last, sizeof l->last, "%s", msg);
}

/* }====================================================================== */


/* {======================================================================
** Isolation and read-only
** ======================================================================= */

static void isolation (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_tx_opts o = LOAM_TX_OPTS_INIT;
  seen s;
  loam_conn *c = open_db(pg, "tx_opts_isolation", &e);
  if (c == NULL) { loam_error_clear(&e); return; }
  memset(&s, 0, sizeof s);
  loam_conn_set_trace(c, record, &s);
  o.isolation = LOAM_SERIALIZABLE;
  CHECK_OK(loam_tx_begin_with(c, &o, &e), &e);
  if (pg) CHECK_INT(t_scalar(c, "SELECT current_setting('transaction_isolation') = "
                               "'serializable'"), 1);
  CHECK_OK(loam_tx_commit(c, &e), &e);
  CHECK_STR(s.sql[0], pg ? "BEGIN ISOLATION LEVEL SERIALIZABLE" : "BEGIN IMMEDIATE");
  s.n = 0;
  o.isolation = LOAM_REPEATABLE_READ;
  if (pg) {
    CHECK_OK(loam_tx_begin_with(c, &o, &e), &e);
    CHECK_INT(t_scalar(c, "SELECT current_setting('transaction_isolation') = "
                          "'repeatable read'"), 1);
    CHECK_OK(loam_tx_rollback(c, &e), &e);
    CHECK_STR(s.sql[0], "BEGIN ISOLATION LEVEL REPEATABLE READ");
    o.isolation = LOAM_READ_COMMITTED;
    CHECK_OK(loam_tx_begin_with(c, &o, &e), &e);
    CHECK_INT(t_scalar(c, "SELECT current_setting('transaction_isolation') = "
                          "'read committed'"), 1);
    CHECK_OK(loam_tx_rollback(c, &e), &e);
    CHECK_STR(s.sql[3], "BEGIN ISOLATION LEVEL READ COMMITTED");
  }
  else {
    /* SQLite refuses what it cannot give, sending nothing. */
    CHECK_INT(loam_tx_begin_with(c, &o, &e), LOAM_ERROR);
    CHECK_INT(e.code, LOAM_E_MISUSE);
    CHECK_STR(e.message, "SQLite runs every transaction serializable and cannot give repeatable "
                         "read isolation; ask for serializable or leave it out");
    o.isolation = LOAM_READ_COMMITTED;
    CHECK_INT(loam_tx_begin_with(c, &o, &e), LOAM_ERROR);
    CHECK_HAS(e.message, "cannot give read committed isolation");
    CHECK_INT(s.n, 0);
    CHECK_INT(loam_tx_commit(c, &e), LOAM_ERROR);   /* no level was opened */
  }
  /* Out of range, and options of a savepoint. */
  o.isolation = 7;
  CHECK_INT(loam_tx_begin_with(c, &o, &e), LOAM_ERROR);
  CHECK_STR(e.message, "loam_tx_begin_with: unknown isolation level 7");
  o = (loam_tx_opts)LOAM_TX_OPTS_INIT;
  o.warn_after_ms = -5;
  CHECK_INT(loam_tx_begin_with(c, &o, &e), LOAM_ERROR);
  CHECK_HAS(e.message, "warn_after_ms must be 0 (never) or milliseconds, got -5");
  o = (loam_tx_opts)LOAM_TX_OPTS_INIT;
  o.retry_attempts = 3;
  CHECK_INT(loam_tx_begin_with(c, &o, &e), LOAM_ERROR);
  CHECK_HAS(e.message, "use loam_tx_run");
  o = (loam_tx_opts)LOAM_TX_OPTS_INIT;
  CHECK_OK(loam_tx_begin_with(c, NULL, &e), &e);
  s.n = 0;
  o.isolation = LOAM_SERIALIZABLE;
  CHECK_INT(loam_tx_begin_with(c, &o, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_STR(e.message, "isolation, read_only, warn_after_ms and log belong to the outermost "
                       "transaction, and this one would be a savepoint inside an open "
                       "transaction");
  o = (loam_tx_opts)LOAM_TX_OPTS_INIT;
  o.read_only = 1;
  CHECK_INT(loam_tx_begin_with(c, &o, &e), LOAM_ERROR);
  CHECK_INT(s.n, 0);
  CHECK_OK(loam_tx_rollback(c, &e), &e);
  CHECK_INT(loam_tx_begin_with(NULL, NULL, &e), LOAM_ERROR);
  CHECK_STR(e.message, "attempt to use a closed connection");
  loam_conn_close(c);
  loam_error_clear(&e);
}

TEST(tx_opts_isolation) {
  T_ON_BOTH(isolation);
}


static void read_only (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_tx_opts o = LOAM_TX_OPTS_INIT;
  seen s;
  loam_conn *c = open_db(pg, "tx_opts_read_only", &e);
  if (c == NULL) { loam_error_clear(&e); return; }
  memset(&s, 0, sizeof s);
  loam_conn_set_trace(c, record, &s);
  o.read_only = 1;
  o.isolation = LOAM_SERIALIZABLE;
  CHECK_OK(loam_tx_begin_with(c, &o, &e), &e);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM txo"), 2);
  CHECK_INT(exec(c, "UPDATE txo SET n = 1", &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_READ_ONLY);
  CHECK_OK(loam_tx_rollback(c, &e), &e);
  if (pg) {
    CHECK_STR(s.sql[0], "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY");
    CHECK_STR(s.sql[3], "ROLLBACK");
  }
  else {
    CHECK_STR(s.sql[0], "BEGIN DEFERRED");
    CHECK_STR(s.sql[1], "PRAGMA query_only = 1");
    CHECK_STR(s.sql[4], "ROLLBACK");
    CHECK_STR(s.sql[5], "PRAGMA query_only = 0");
    CHECK_INT(t_scalar(c, "PRAGMA query_only"), 0);
  }
  /* Writable again, and a committed read-only transaction puts it back too. */
  CHECK_OK(exec(c, "UPDATE txo SET n = 1 WHERE id = 1", &e), &e);
  CHECK_OK(loam_tx_begin_with(c, &o, &e), &e);
  CHECK_OK(loam_tx_commit(c, &e), &e);
  CHECK_OK(exec(c, "UPDATE txo SET n = 2 WHERE id = 1", &e), &e);
  CHECK_INT(total(c), 2);
  /* A read-only transaction left open is closed with the connection. */
  CHECK_OK(loam_tx_begin_with(c, &o, &e), &e);
  loam_conn_close(c);
  loam_error_clear(&e);
}

TEST(tx_opts_read_only) {
  T_ON_BOTH(read_only);
}

/* }====================================================================== */


/* {======================================================================
** Hooks and the long-transaction report
** ======================================================================= */

static void hooks (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  heard h;
  hook_ud a = { &h, 'a' }, b = { &h, 'b' }, c1 = { &h, 'c' }, d = { &h, 'd' };
  loam_conn *c = open_db(pg, "tx_opts_hooks", &e);
  if (c == NULL) { loam_error_clear(&e); return; }
  memset(&h, 0, sizeof h);
  CHECK_INT(loam_tx_on_end(c, note, &a, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_STR(e.message, "after_commit / after_rollback (loam_tx_on_end): no transaction open "
                       "(call loam_tx_begin first)");
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_INT(loam_tx_on_end(c, NULL, NULL, &e), LOAM_ERROR);
  CHECK_OK(loam_tx_on_end(c, note, &a, &e), &e);
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(loam_tx_on_end(c, note, &b, &e), &e);
  CHECK_OK(loam_tx_rollback(c, &e), &e);
  CHECK_STR(h.what, "bR");                  /* at once: its savepoint was undone */
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(loam_tx_on_end(c, note, &c1, &e), &e);
  CHECK_OK(loam_tx_commit(c, &e), &e);      /* released: 'c' now waits for the outer level */
  CHECK_STR(h.what, "bR");
  CHECK_OK(loam_tx_on_end(c, note, &d, &e), &e);
  CHECK_OK(loam_tx_commit(c, &e), &e);
  CHECK_STR(h.what, "bRaCcCdC");

  /* An outer rollback undoes what inner levels committed: their hooks hear it. */
  h.n = 0;
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(loam_tx_on_end(c, note, &a, &e), &e);
  CHECK_OK(loam_tx_commit(c, &e), &e);
  CHECK_OK(loam_tx_rollback(c, &e), &e);
  CHECK_STR(h.what, "aR");

  /* A transaction begun with raw SQL: loam cannot tell when it commits. */
  CHECK_OK(exec(c, "BEGIN", &e), &e);
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_INT(loam_tx_on_end(c, note, &a, &e), LOAM_ERROR);
  CHECK_HAS(e.message, "the transaction was begun with raw SQL");
  CHECK_OK(loam_tx_rollback(c, &e), &e);
  CHECK_OK(exec(c, "ROLLBACK", &e), &e);

  /* Closed with a level open: the hooks hear a rollback. */
  h.n = 0;
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(loam_tx_on_end(c, note, &a, &e), &e);
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(loam_tx_on_end(c, note, &b, &e), &e);
  loam_conn_close(c);
  CHECK_STR(h.what, "aRbR");
  loam_error_clear(&e);
}

TEST(tx_opts_hooks) {
  T_ON_BOTH(hooks);
}


/* A hook that writes a row after the commit, in a transaction of its own. */
static void audit (void *ud, loam_conn *conn, loam_tx_outcome outcome) {
  loam_error e = LOAM_ERROR_INIT;
  int *ok = ud;
  *ok = outcome == LOAM_TX_COMMITTED && loam_tx_begin(conn, &e) == LOAM_OK &&
        exec(conn, "UPDATE txo SET n = n + 100 WHERE id = 2", &e) == LOAM_OK &&
        loam_tx_commit(conn, &e) == LOAM_OK;
  loam_error_clear(&e);
}

/* A hook that closes its connection. */
static void closer (void *ud, loam_conn *conn, loam_tx_outcome outcome) {
  (void)ud;
  (void)outcome;
  loam_conn_close(conn);
}

static void hooks_use_the_connection (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  int ok = 0;
  heard h;
  hook_ud a = { &h, 'a' };
  loam_conn *c = open_db(pg, "tx_opts_hooks_use", &e);
  if (c == NULL) { loam_error_clear(&e); return; }
  memset(&h, 0, sizeof h);
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(exec(c, "UPDATE txo SET n = 1 WHERE id = 1", &e), &e);
  CHECK_OK(loam_tx_on_end(c, audit, &ok, &e), &e);
  CHECK_OK(loam_tx_commit(c, &e), &e);
  CHECK_INT(ok, 1);
  CHECK_INT(total(c), 101);
  /* A hook may close the connection; the hooks after it hear the close. */
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(loam_tx_on_end(c, closer, NULL, &e), &e);
  CHECK_OK(loam_tx_on_end(c, note, &a, &e), &e);
  CHECK_OK(loam_tx_commit(c, &e), &e);
  CHECK_STR(h.what, "aR");
  loam_error_clear(&e);
}

TEST(tx_opts_hooks_use_the_connection) {
  T_ON_BOTH(hooks_use_the_connection);
}


static void long_tx (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_tx_opts o = LOAM_TX_OPTS_INIT;
  logged l;
  loam_conn *c = open_db(pg, "tx_opts_long", &e);
  if (c == NULL) { loam_error_clear(&e); return; }
  memset(&l, 0, sizeof l);
  o.warn_after_ms = 5;
  o.tag = "orders.c:42";
  o.log = take_log;
  o.log_ud = &l;
  CHECK_OK(loam_tx_begin_with(c, &o, &e), &e);
  CHECK_OK(exec(c, "UPDATE txo SET n = 1", &e), &e);
  t_sleep_ms(10);
  CHECK_OK(exec(c, "UPDATE txo SET n = 2", &e), &e);   /* past the threshold: reported */
  CHECK_INT(l.n, 1);
  CHECK_HAS(l.last, "a transaction has been open for ");
  CHECK_HAS(l.last, " ms (started at orders.c:42) and is still running statements");
  CHECK_OK(exec(c, "UPDATE txo SET n = 3", &e), &e);   /* once only */
  CHECK_OK(loam_tx_commit(c, &e), &e);
  CHECK_INT(l.n, 1);
  /* Reported at its end when no statement came after the threshold. */
  CHECK_OK(loam_tx_begin_with(c, &o, &e), &e);
  t_sleep_ms(10);
  CHECK_OK(loam_tx_rollback(c, &e), &e);
  CHECK_INT(l.n, 2);
  CHECK_HAS(l.last, "a transaction was open for ");
  CHECK_HAS(l.last, " ms (started at orders.c:42) before it rolled back");
  /* Without a threshold nothing is watched. */
  o.warn_after_ms = 0;
  CHECK_OK(loam_tx_begin_with(c, &o, &e), &e);
  t_sleep_ms(10);
  CHECK_OK(loam_tx_commit(c, &e), &e);
  CHECK_INT(l.n, 2);
  loam_conn_close(c);
  loam_error_clear(&e);
}

TEST(tx_opts_long_transaction_is_reported) {
  T_ON_BOTH(long_tx);
}

/* }====================================================================== */


/* {======================================================================
** loam_tx_run and retries
** ======================================================================= */

/* A body: adds 1 to row 1; fails with 'code' on the first 'fails' calls. */
typedef struct work {
  int calls, fails;
  loam_errcode code;
  loam_conn *other;          /* serialization: writes row 1 behind the body's back */
} work;

static int add_one (void *ud, loam_conn *c, loam_error *err) {
  work *w = ud;
  w->calls++;
  if (exec(c, "UPDATE txo SET n = n + 1 WHERE id = 1", err) != LOAM_OK) return LOAM_ERROR;
  if (w->calls <= w->fails) {
    err->code = w->code;
    return LOAM_ERROR;
  }
  return LOAM_OK;
}

static void run (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_tx_opts o = LOAM_TX_OPTS_INIT;
  work w = { 0, 0, LOAM_E_NONE, NULL };
  int n = -1;
  loam_conn *c = open_db(pg, "tx_opts_run", &e);
  if (c == NULL) { loam_error_clear(&e); return; }
  CHECK_OK(loam_tx_run(c, NULL, add_one, &w, &n, &e), &e);
  CHECK_INT(n, 1);
  CHECK_INT(total(c), 1);
  /* A failure that no retry cures is rolled back and returned at once. */
  w.calls = 0;
  w.fails = 5;
  w.code = LOAM_E_CHECK_VIOLATION;
  o.retry_attempts = 3;
  o.retry_base_ms = 0;
  CHECK_INT(loam_tx_run(c, &o, add_one, &w, &n, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_CHECK_VIOLATION);
  CHECK_INT(n, 1);
  CHECK_INT(total(c), 1);
  /* A retryable one runs the whole body again, up to the attempts, then gives up. */
  w.calls = 0;
  w.fails = 1;
  w.code = LOAM_E_SERIALIZATION_FAILURE;
  CHECK_OK(loam_tx_run(c, &o, add_one, &w, &n, &e), &e);
  CHECK_INT(n, 2);
  CHECK_INT(total(c), 2);
  w.calls = 0;
  w.fails = 5;
  w.code = LOAM_E_DEADLOCK;
  o.retry_base_ms = 1;
  o.retry_max_ms = 2;
  CHECK_INT(loam_tx_run(c, &o, add_one, &w, &n, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_DEADLOCK);
  CHECK_INT(n, 3);
  CHECK_INT(w.calls, 3);
  CHECK_INT(total(c), 2);
  /* Bad options, a body, nesting: refused with nothing sent. */
  o.retry_attempts = 1001;
  CHECK_INT(loam_tx_run(c, &o, add_one, &w, &n, &e), LOAM_ERROR);
  CHECK_STR(e.message, "loam_tx_run: retry attempts must be 1..1000, got 1001");
  o.retry_attempts = 3;
  o.retry_base_ms = 50;
  o.retry_max_ms = 10;
  CHECK_INT(loam_tx_run(c, &o, add_one, &w, &n, &e), LOAM_ERROR);
  CHECK_STR(e.message, "loam_tx_run: retry max_ms (10) is below base_ms (50)");
  o.retry_max_ms = 100000000;
  CHECK_INT(loam_tx_run(c, &o, add_one, &w, &n, &e), LOAM_ERROR);
  CHECK_HAS(e.message, "max_ms must be 0..600000");
  CHECK_INT(loam_tx_run(c, NULL, NULL, NULL, &n, &e), LOAM_ERROR);
  CHECK_STR(e.message, "loam_tx_run: the body is NULL");
  o.retry_max_ms = -1;
  o.retry_base_ms = -1;
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_INT(loam_tx_run(c, &o, add_one, &w, &n, &e), LOAM_ERROR);
  CHECK_STR(e.message, "retry belongs to the outermost transaction, and one is open: a "
                       "savepoint cannot undo what made it fail");
  w.calls = 0;
  w.fails = 0;
  CHECK_OK(loam_tx_run(c, NULL, add_one, &w, &n, &e), &e);   /* a savepoint, without retry */
  CHECK_OK(loam_tx_rollback(c, &e), &e);
  CHECK_INT(total(c), 2);
  loam_conn_close(c);
  loam_error_clear(&e);
}

TEST(tx_opts_run_and_retry) {
  T_ON_BOTH(run);
}


/* A body that closes its connection. */
static int close_it (void *ud, loam_conn *c, loam_error *err) {
  (void)ud;
  (void)err;
  loam_conn_close(c);
  return LOAM_OK;
}

static void closed_inside (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c = open_db(pg, "tx_opts_closed", &e);
  if (c == NULL) { loam_error_clear(&e); return; }
  CHECK_INT(loam_tx_run(c, NULL, close_it, NULL, NULL, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_STR(e.message, "the connection was closed inside the transaction; nothing was committed");
  loam_error_clear(&e);
}

TEST(tx_opts_connection_closed_inside) {
  T_ON_BOTH(closed_inside);
}


/* SQLite: a writer waits past busy_timeout on another's write lock, and gives up. */
TEST(tx_opts_sqlite_busy_is_retried) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn_opts co = LOAM_CONN_OPTS_INIT;
  loam_tx_opts o = LOAM_TX_OPTS_INIT;
  work w = { 0, 0, LOAM_E_NONE, NULL };
  loam_conn *a = open_db(0, "tx_opts_busy", &e), *b = NULL;
  int n = 0;
  if (a == NULL) { loam_error_clear(&e); return; }
  co.busy_timeout_ms = 0;
  CHECK_OK(loam_connect(t_url(0, "tx_opts_busy"), &co, &b, &e), &e);
  CHECK_OK(loam_tx_begin(a, &e), &e);
  o.retry_attempts = 3;
  o.retry_base_ms = 1;
  CHECK_INT(loam_tx_run(b, &o, add_one, &w, &n, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_BUSY);
  CHECK_HAS(e.message, "(gave up after 3 attempts)");
  CHECK_INT(n, 3);
  CHECK_INT(w.calls, 0);     /* BEGIN IMMEDIATE failed each time */
  CHECK_OK(loam_tx_commit(a, &e), &e);
  CHECK_OK(loam_tx_run(b, &o, add_one, &w, &n, &e), &e);
  CHECK_INT(n, 1);
  CHECK_INT(total(a), 1);
  loam_conn_close(a);
  loam_conn_close(b);
  loam_error_clear(&e);
}


/*
** PostgreSQL, a real serialization failure: the body reads row 1 under
** SERIALIZABLE, another connection changes it (first attempt only), and
** the body's own update of it fails; the second attempt goes through.
*/
static int read_then_write (void *ud, loam_conn *c, loam_error *err) {
  work *w = ud;
  w->calls++;
  if (t_scalar(c, "SELECT n FROM txo WHERE id = 1") < 0) return LOAM_ERROR;
  if (w->calls == 1 && exec(w->other, "UPDATE txo SET n = n + 10 WHERE id = 1", err) != LOAM_OK)
    return LOAM_ERROR;
  return exec(c, "UPDATE txo SET n = n + 1 WHERE id = 1", err);
}

TEST(tx_opts_pg_serialization_failure_is_retried) {
  loam_error e = LOAM_ERROR_INIT;
  loam_tx_opts o = LOAM_TX_OPTS_INIT;
  work w = { 0, 0, LOAM_E_NONE, NULL };
  loam_conn *c = open_db(1, "tx_opts_serial", &e);
  int n = 0;
  if (c == NULL) { loam_error_clear(&e); return; }
  CHECK_OK(loam_connect(t_pg_url(), NULL, &w.other, &e), &e);
  o.isolation = LOAM_SERIALIZABLE;
  /* Without retry, the failure is the caller's. */
  CHECK_INT(loam_tx_run(c, &o, read_then_write, &w, &n, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_SERIALIZATION_FAILURE);
  CHECK_STR(e.sqlstate, "40001");
  CHECK_INT(n, 1);
  CHECK_INT(total(c), 10);
  w.calls = 0;
  o.retry_attempts = 3;
  CHECK_OK(loam_tx_run(c, &o, read_then_write, &w, &n, &e), &e);
  CHECK_INT(n, 2);
  CHECK_INT(w.calls, 2);
  CHECK_INT(total(c), 21);   /* the other's 10 twice, the body's 1 once */
  loam_conn_close(w.other);
  loam_conn_close(c);
  loam_error_clear(&e);
}


/*
** PostgreSQL, a real deadlock: two threads update rows 1 and 2 in opposite
** orders, meeting at a barrier in between on their first attempts.  The
** server picks one as the victim (the one whose deadlock check runs first
** and finds the cycle; the other's finds none once the victim is gone),
** which is retried.  The retry waits until the other thread's transaction
** has ended: without that wait, under load, the retry could take row
** 'first' again before the survivor, woken by the victim's rollback, took
** it, and the two would deadlock a second time (4 attempts, not 3).
*/
typedef struct arena {
  pthread_barrier_t meet;
  pthread_mutex_t lock;
  pthread_cond_t ended;
  int done;                   /* transactions that have ended, under 'lock' */
  int retrying;               /* threads on a retry, under 'lock' */
} arena;

typedef struct duel {
  arena *a;
  int first, second;          /* the rows, in this thread's order */
  int calls, attempts, rc;
  loam_errcode code;
} duel;

static int crossing (void *ud, loam_conn *c, loam_error *err) {
  duel *d = ud;
  loam_value v;
  d->calls++;
  if (d->calls > 1) {
    /*
    ** The victim's retry: the survivor holds no lock of ours and ends.
    ** Were both retrying (never the server's choice), neither waits, and
    ** the count of attempts says so rather than a hang.
    */
    pthread_mutex_lock(&d->a->lock);
    if (d->calls == 2) d->a->retrying++;
    pthread_cond_broadcast(&d->a->ended);
    while (d->a->done == 0 && d->a->retrying < 2) pthread_cond_wait(&d->a->ended, &d->a->lock);
    pthread_mutex_unlock(&d->a->lock);
  }
  v = loam_int(d->first);
  if (loam_exec(c, "UPDATE txo SET n = n + 1 WHERE id = ?", &v, 1, NULL, NULL, NULL, err))
    return LOAM_ERROR;
  if (d->calls == 1) pthread_barrier_wait(&d->a->meet);
  v = loam_int(d->second);
  return loam_exec(c, "UPDATE txo SET n = n + 1 WHERE id = ?", &v, 1, NULL, NULL, NULL, err);
}

static void *duelist (void *arg) {
  duel *d = arg;
  loam_error e = LOAM_ERROR_INIT;
  loam_tx_opts o = LOAM_TX_OPTS_INIT;
  loam_conn *c = NULL;
  d->rc = LOAM_ERROR;
  if (loam_connect(t_pg_url(), NULL, &c, &e) == LOAM_OK &&
      exec(c, "SET deadlock_timeout = '100ms'", &e) == LOAM_OK) {
    o.retry_attempts = 3;
    o.retry_base_ms = 1;
    d->rc = loam_tx_run(c, &o, crossing, d, &d->attempts, &e);
  }
  d->code = e.code;
  loam_conn_close(c);
  loam_error_clear(&e);
  pthread_mutex_lock(&d->a->lock);
  d->a->done++;
  pthread_cond_broadcast(&d->a->ended);
  pthread_mutex_unlock(&d->a->lock);
  return NULL;
}

TEST(tx_opts_pg_deadlock_is_retried) {
  loam_error e = LOAM_ERROR_INIT;
  arena ar;
  pthread_t t1, t2;
  duel a = { &ar, 1, 2, 0, 0, 0, LOAM_E_NONE }, b = { &ar, 2, 1, 0, 0, 0, LOAM_E_NONE };
  loam_conn *c = open_db(1, "tx_opts_deadlock", &e);
  if (c == NULL) { loam_error_clear(&e); return; }
  pthread_barrier_init(&ar.meet, NULL, 2);
  pthread_mutex_init(&ar.lock, NULL);
  pthread_cond_init(&ar.ended, NULL);
  ar.done = 0;
  ar.retrying = 0;
  pthread_create(&t1, NULL, duelist, &a);
  pthread_create(&t2, NULL, duelist, &b);
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  pthread_cond_destroy(&ar.ended);
  pthread_mutex_destroy(&ar.lock);
  pthread_barrier_destroy(&ar.meet);
  CHECK_INT(a.rc, LOAM_OK);
  CHECK_INT(b.rc, LOAM_OK);
  CHECK_INT(a.attempts + b.attempts, 3);   /* one of them was the victim, once */
  CHECK_INT(total(c), 4);                  /* each added 1 to both rows, once */
  loam_conn_close(c);
  loam_error_clear(&e);
}

/* }====================================================================== */


/* {======================================================================
** The pool self-deadlock
** ======================================================================= */

typedef struct pool_heard {
  int nested;
  char last[512];
} pool_heard;

static void pool_hear (void *ud, loam_pool_event ev, const char *msg) {
  pool_heard *h = ud;
  if (ev == LOAM_POOL_NESTED) h->nested++;
  snprintf(h->last, sizeof h->last, "%s", msg);
}

static void self_deadlock (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_pool *p = NULL;
  loam_conn *a = NULL, *b = NULL;
  pool_heard h;
  const char *url = t_url(pg, "tx_opts_self_deadlock");
  if (url == NULL) return;
  memset(&h, 0, sizeof h);
  o.size = 2;
  o.max_overflow = 0;
  o.hook = pool_hear;
  o.hook_ud = &h;
  CHECK_OK(loam_pool_open(url, &o, &p, &e), &e);
  /* Two connections outside a transaction: nothing to say. */
  CHECK_OK(loam_pool_acquire(p, "handler.c:10", &a, &e), &e);
  CHECK_OK(loam_pool_acquire(p, "handler.c:11", &b, &e), &e);
  CHECK_INT(h.nested, 0);
  CHECK_OK(loam_pool_release(p, b, &e), &e);
  /* Inside a transaction on 'a', asking for another is reported before any wait. */
  CHECK_OK(loam_tx_begin(a, &e), &e);
  CHECK_OK(loam_pool_acquire(p, "handler.c:20", &b, &e), &e);
  CHECK_INT(h.nested, 1);
  CHECK_HAS(h.last, "this thread holds a connection of the pool inside a transaction "
                    "(acquired ");
  CHECK_HAS(h.last, " ms ago at handler.c:10) and asks for another: when the pool is "
                    "exhausted it waits for itself (a pool self-deadlock)");
  CHECK_OK(loam_pool_release(p, b, &e), &e);
  /* A raw BEGIN counts as well. */
  CHECK_OK(loam_tx_rollback(a, &e), &e);
  CHECK_OK(exec(a, "BEGIN", &e), &e);
  CHECK_OK(loam_pool_acquire(p, NULL, &b, &e), &e);
  CHECK_INT(h.nested, 2);
  CHECK_OK(loam_pool_release(p, b, &e), &e);
  /* Handed back (its transaction rolled back): forgotten. */
  CHECK_OK(loam_pool_release(p, a, &e), &e);
  CHECK_OK(loam_pool_acquire(p, NULL, &a, &e), &e);
  CHECK_OK(loam_pool_acquire(p, NULL, &b, &e), &e);
  CHECK_INT(h.nested, 2);
  CHECK_OK(loam_pool_release(p, a, &e), &e);
  CHECK_OK(loam_pool_release(p, b, &e), &e);
  loam_pool_close(p);
  loam_error_clear(&e);
}

TEST(tx_opts_pool_self_deadlock_is_reported) {
  T_ON_BOTH(self_deadlock);
}

/* }====================================================================== */
