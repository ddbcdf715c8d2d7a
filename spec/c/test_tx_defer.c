/*
** test_tx_defer.c: the outermost BEGIN sent with the transaction's first
** statement (PostgreSQL), against the real server.
**
** 'loam_tx_begin' only records the BEGIN there; a first statement found
** prepared goes out with it in one round trip, anything else sends it
** alone first.  These tests check that nothing a caller can see changed:
** the order of what reaches the server (through the trace hook), a
** transaction that ran nothing sending nothing, a failing first statement
** aborting the transaction, a raw COMMIT inside still caught, savepoints,
** isolation and read-only, a session killed before the first statement,
** a connection handed back to its pool with the BEGIN still waiting, and
** the pool's reports of a holder whose BEGIN waits.
** SQLite sends its BEGIN at once (BEGIN IMMEDIATE takes the write lock);
** the same calls are run there where they mean the same.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loam.h"
#include "t.h"


#define NSQL 16

/* The SQL of the statements reported to the trace hook, in order, and their codes. */
typedef struct seen {
  int n;
  char sql[NSQL][96];
  loam_errcode code[NSQL];
  int64_t ns[NSQL];
} seen;

static void record (void *ud, const loam_trace_event *ev) {
  seen *s = ud;
  if (s->n < NSQL) {
    snprintf(s->sql[s->n], sizeof s->sql[0], "%s", ev->sql);
    s->code[s->n] = ev->errcode;
    s->ns[s->n] = ev->elapsed_ns;
  }
  s->n++;
}

static int exec (loam_conn *c, const char *sql, loam_error *e) {
  return loam_exec(c, sql, NULL, 0, NULL, NULL, NULL, e);
}

static int exec1 (loam_conn *c, const char *sql, int64_t v, loam_error *e) {
  loam_value p = loam_int(v);
  return loam_exec(c, sql, &p, 1, NULL, NULL, NULL, e);
}

/* The UPDATE every test runs first in its transactions, prepared once outside them. */
static const char bump[] = "UPDATE txd SET n = n + 10 / ? WHERE id = 1";

/* A connection of its own, with table "txd" (one row, n = 0) and 'bump' in its statement cache. */
static loam_conn *open_db (int pg, const char *name, loam_error *e) {
  loam_conn *c = NULL;
  const char *url = t_url(pg, name);
  if (url == NULL) return NULL;
  if (loam_connect(url, NULL, &c, e) != LOAM_OK || exec(c, "DROP TABLE IF EXISTS txd", e) ||
      exec(c, "CREATE TABLE txd (id INTEGER PRIMARY KEY, n INTEGER)", e) ||
      exec(c, "INSERT INTO txd (id, n) VALUES (1, 0)", e) || exec1(c, bump, 10, e) ||
      exec(c, "UPDATE txd SET n = 0", e)) {
    t_fail(__FILE__, __LINE__, "setup failed: %s", e->message ? e->message : "");
    loam_conn_close(c);
    return NULL;
  }
  return c;
}

static int64_t value (loam_conn *c) {
  return t_scalar(c, "SELECT n FROM txd WHERE id = 1");
}


/* A transaction that ran nothing commits and rolls back without a word to the server. */
static void empty (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stats before, after;
  seen s;
  loam_conn *c = open_db(pg, "tx_defer_empty", &e);
  if (c == NULL) { loam_error_clear(&e); return; }
  memset(&s, 0, sizeof s);
  loam_conn_set_trace(c, record, &s);
  loam_conn_stats(c, &before);
  CHECK_OK(loam_tx_begin(c, &e), &e);
  /* Open for every check of the core, though the server has not heard of it yet. */
  CHECK_INT(loam_conn_tx_status(c), LOAM_TX_OPEN);
  CHECK_OK(loam_tx_commit(c, &e), &e);
  CHECK_INT(loam_conn_tx_status(c), LOAM_TX_IDLE);
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(loam_tx_rollback(c, &e), &e);
  loam_conn_stats(c, &after);
  if (pg) {
    CHECK_INT(s.n, 0);
    CHECK_INT(after.queries, before.queries);
  }
  else {
    CHECK_INT(s.n, 4);
    CHECK_STR(s.sql[0], "BEGIN IMMEDIATE");
    CHECK_STR(s.sql[1], "COMMIT");
  }
  /* A commit or rollback too many is still refused. */
  CHECK_INT(loam_tx_commit(c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  loam_conn_close(c);
  loam_error_clear(&e);
}

TEST(tx_defer_empty_transaction_sends_nothing) { T_ON_BOTH(empty); }


/* BEGIN goes out before the first statement and is reported before it, whichever way it went. */
static void first_statement (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  seen s;
  loam_conn *c = open_db(pg, "tx_defer_first", &e);
  if (c == NULL) { loam_error_clear(&e); return; }
  memset(&s, 0, sizeof s);
  loam_conn_set_trace(c, record, &s);
  /* Prepared before: BEGIN and the UPDATE in one round trip; rolled back, nothing stays. */
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(exec1(c, bump, 10, &e), &e);
  CHECK_INT(loam_conn_tx_status(c), LOAM_TX_OPEN);
  CHECK_INT(value(c), 1);
  CHECK_OK(loam_tx_rollback(c, &e), &e);
  CHECK_INT(value(c), 0);
  CHECK_INT(s.n, 4 + 1);
  CHECK_STR(s.sql[0], pg ? "BEGIN" : "BEGIN IMMEDIATE");
  CHECK_INT(s.code[0], LOAM_E_NONE);
  /* The two share one round trip, which is the statement's time. */
  if (pg) CHECK_INT(s.ns[0], 0);
  CHECK(s.ns[1] > 0);
  CHECK_STR(s.sql[1], bump);
  CHECK_STR(s.sql[3], "ROLLBACK");
  /* A statement new to the cache: BEGIN goes alone first, then its Parse. */
  s.n = 0;
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(exec(c, "UPDATE txd SET n = n + 2", &e), &e);
  CHECK_OK(loam_tx_commit(c, &e), &e);
  CHECK_INT(value(c), 2);
  CHECK_INT(s.n, 3 + 1);
  CHECK_STR(s.sql[0], pg ? "BEGIN" : "BEGIN IMMEDIATE");
  CHECK_STR(s.sql[1], "UPDATE txd SET n = n + 2");
  CHECK_STR(s.sql[2], "COMMIT");
  /* Raw SQL of no known kind (a COPY, maybe) sends it alone first. */
  s.n = 0;
  CHECK_INT(t_scalar(c, "WITH x AS (SELECT 7 AS n) SELECT n FROM x"), 7);
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_INT(t_scalar(c, "WITH x AS (SELECT 7 AS n) SELECT n FROM x"), 7);
  CHECK_INT(loam_conn_tx_status(c), LOAM_TX_OPEN);
  CHECK_OK(loam_tx_commit(c, &e), &e);
  CHECK_STR(s.sql[1], pg ? "BEGIN" : "BEGIN IMMEDIATE");
  CHECK_STR(s.sql[3], "COMMIT");
  /* A stream sends it alone first too. */
  s.n = 0;
  CHECK_OK(loam_tx_begin(c, &e), &e);
  {
    loam_stmt *st = NULL;
    CHECK_OK(loam_query(c, "SELECT n FROM txd", NULL, 0, LOAM_STREAM, &st, &e), &e);
    CHECK_INT(loam_step(st, &e), LOAM_ROW);
    CHECK_INT(loam_step(st, &e), LOAM_DONE);
    loam_stmt_close(st);
  }
  CHECK_OK(loam_tx_commit(c, &e), &e);
  CHECK_STR(s.sql[0], pg ? "BEGIN" : "BEGIN IMMEDIATE");
  CHECK_STR(s.sql[1], "SELECT n FROM txd");
  CHECK_STR(s.sql[2], "COMMIT");
  loam_conn_close(c);
  loam_error_clear(&e);
}

TEST(tx_defer_begin_goes_with_the_first_statement) { T_ON_BOTH(first_statement); }


/* The body of 'loam_tx_run' below: its first statement, prepared, fails. */
static int divide_by_zero (void *ud, loam_conn *c, loam_error *err) {
  (void)ud;
  return exec1(c, bump, 0, err);
}

/*
** PostgreSQL: a first statement that fails aborts the transaction BEGIN
** opened, as when the two were sent one after the other.  (SQLite's
** division by zero is no error: this one is PostgreSQL's.)
*/
TEST(tx_defer_pg_failing_first_statement_aborts) {
  loam_error e = LOAM_ERROR_INIT;
  seen s;
  int n = 0;
  loam_conn *c = open_db(1, "tx_defer_fails", &e);
  if (c == NULL) { loam_error_clear(&e); return; }
  memset(&s, 0, sizeof s);
  loam_conn_set_trace(c, record, &s);
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_INT(exec1(c, bump, 0, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_DATA_ERROR);
  CHECK_STR(e.sqlstate, "22012");
  CHECK_INT(s.n, 2);
  CHECK_STR(s.sql[0], "BEGIN");
  CHECK_INT(s.code[0], LOAM_E_NONE);
  CHECK_STR(s.sql[1], bump);
  CHECK_INT(s.code[1], LOAM_E_DATA_ERROR);
  CHECK_INT(loam_conn_tx_status(c), LOAM_TX_FAILED);
  /* The transaction is aborted: the next statement is refused, and so is COMMIT. */
  CHECK_INT(exec1(c, bump, 10, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_TRANSACTION_ABORTED);
  CHECK_INT(loam_tx_commit(c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_TRANSACTION_ABORTED);
  CHECK_OK(loam_tx_rollback(c, &e), &e);
  CHECK_INT(loam_conn_tx_status(c), LOAM_TX_IDLE);
  CHECK_INT(value(c), 0);
  /* Through 'loam_tx_run': the body's error, then ROLLBACK. */
  s.n = 0;
  CHECK_INT(loam_tx_run(c, NULL, divide_by_zero, NULL, &n, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_DATA_ERROR);
  CHECK_INT(s.n, 3);
  CHECK_STR(s.sql[0], "BEGIN");
  CHECK_STR(s.sql[2], "ROLLBACK");
  CHECK_INT(loam_conn_tx_status(c), LOAM_TX_IDLE);
  CHECK_INT(value(c), 0);
  loam_conn_close(c);
  loam_error_clear(&e);
}



/* A raw COMMIT as the first statement ends the transaction, and is caught, prepared or not. */
static void raw_commit (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  int round;
  loam_conn *c = open_db(pg, "tx_defer_raw", &e);
  if (c == NULL) { loam_error_clear(&e); return; }
  /* The first round prepares the COMMIT (BEGIN goes alone), the second finds it prepared. */
  for (round = 0; round < 2; round++) {
    CHECK_OK(loam_tx_begin(c, &e), &e);
    CHECK_INT(exec(c, "COMMIT", &e), LOAM_ERROR);
    CHECK_INT(e.code, LOAM_E_MISUSE);
    CHECK_HAS(e.message, "this statement ended the transaction that db:transaction");
    CHECK_INT(exec1(c, bump, 10, &e), LOAM_ERROR);
    CHECK_HAS(e.message, "has ended under it");
    CHECK_OK(loam_tx_rollback(c, &e), &e);
  }
  CHECK_INT(value(c), 0);
  /* After a statement, as before. */
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(exec1(c, bump, 10, &e), &e);
  CHECK_INT(exec(c, "COMMIT", &e), LOAM_ERROR);
  CHECK_HAS(e.message, "this statement ended the transaction");
  CHECK_OK(loam_tx_rollback(c, &e), &e);
  CHECK_INT(value(c), 1);   /* the raw COMMIT kept it */
  loam_conn_close(c);
  loam_error_clear(&e);
}

TEST(tx_defer_raw_commit_inside_is_caught) { T_ON_BOTH(raw_commit); }


/* A nested level right after BEGIN: its SAVEPOINT sends the BEGIN first. */
static void savepoints (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  seen s;
  loam_conn *c = open_db(pg, "tx_defer_savepoint", &e);
  if (c == NULL) { loam_error_clear(&e); return; }
  memset(&s, 0, sizeof s);
  loam_conn_set_trace(c, record, &s);
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(exec1(c, bump, 10, &e), &e);
  CHECK_OK(loam_tx_rollback(c, &e), &e);     /* the savepoint's work goes */
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(exec1(c, bump, 5, &e), &e);
  CHECK_OK(loam_tx_commit(c, &e), &e);
  CHECK_OK(loam_tx_commit(c, &e), &e);
  CHECK_INT(value(c), 2);
  CHECK_STR(s.sql[0], pg ? "BEGIN" : "BEGIN IMMEDIATE");
  CHECK_STR(s.sql[1], "SAVEPOINT loam_sp_2");
  CHECK_STR(s.sql[2], bump);
  CHECK_STR(s.sql[3], "ROLLBACK TO SAVEPOINT loam_sp_2");
  /* An empty savepoint inside an empty transaction: BEGIN goes, since SAVEPOINT needs it. */
  s.n = 0;
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(loam_tx_commit(c, &e), &e);
  CHECK_OK(loam_tx_commit(c, &e), &e);
  CHECK_INT(s.n, 4);
  CHECK_STR(s.sql[3], "COMMIT");
  loam_conn_close(c);
  loam_error_clear(&e);
}

TEST(tx_defer_savepoint_after_begin) { T_ON_BOTH(savepoints); }


/* PostgreSQL: the isolation level and read-only hold on the deferred path. */
TEST(tx_defer_pg_isolation_and_read_only) {
  loam_error e = LOAM_ERROR_INIT;
  loam_tx_opts o = LOAM_TX_OPTS_INIT;
  loam_conn *c = open_db(1, "tx_defer_isolation", &e), *other = NULL;
  seen s;
  const char *level = "SELECT current_setting('transaction_isolation') = 'serializable'";
  if (c == NULL) { loam_error_clear(&e); return; }
  memset(&s, 0, sizeof s);
  CHECK_INT(t_scalar(c, level), 0);   /* prepared, outside a transaction */
  loam_conn_set_trace(c, record, &s);
  o.isolation = LOAM_SERIALIZABLE;
  o.read_only = 1;
  CHECK_OK(loam_tx_begin_with(c, &o, &e), &e);
  CHECK_INT(t_scalar(c, level), 1);
  CHECK_STR(s.sql[0], "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY");
  CHECK_INT(exec1(c, bump, 10, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_READ_ONLY);
  CHECK_OK(loam_tx_rollback(c, &e), &e);
  /* The write itself as the first statement, prepared: refused the same. */
  CHECK_OK(loam_tx_begin_with(c, &o, &e), &e);
  CHECK_INT(exec1(c, bump, 10, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_READ_ONLY);
  CHECK_STR(e.sqlstate, "25006");
  CHECK_OK(loam_tx_rollback(c, &e), &e);
  CHECK_INT(value(c), 0);
  /* Repeatable read: the snapshot is the first statement's, as with BEGIN sent alone. */
  CHECK_OK(loam_connect(t_pg_url(), NULL, &other, &e), &e);
  o.isolation = LOAM_REPEATABLE_READ;
  o.read_only = 0;
  CHECK_OK(loam_tx_begin_with(c, &o, &e), &e);
  CHECK_OK(exec(other, "UPDATE txd SET n = 7", &e), &e);   /* before the first statement */
  CHECK_INT(value(c), 7);
  CHECK_OK(exec(other, "UPDATE txd SET n = 8", &e), &e);   /* after it: not seen */
  CHECK_INT(value(c), 7);
  CHECK_OK(loam_tx_commit(c, &e), &e);
  CHECK_INT(value(c), 8);
  loam_conn_close(other);
  loam_conn_close(c);
  loam_error_clear(&e);
}


/*
** PostgreSQL, a serialization failure retried, every attempt's first
** statement a prepared one (so it goes out with BEGIN): the body reads
** the row, another connection changes it on the first attempt, and the
** body's write fails; the second attempt goes through.
*/
typedef struct work {
  int calls;
  loam_conn *other;
} work;

static int read_then_write (void *ud, loam_conn *c, loam_error *err) {
  work *w = ud;
  w->calls++;
  value(c);
  if (w->calls == 1 && exec(w->other, "UPDATE txd SET n = n + 100", err) != LOAM_OK)
    return LOAM_ERROR;
  return exec1(c, bump, 10, err);
}

TEST(tx_defer_pg_serialization_failure_is_retried) {
  loam_error e = LOAM_ERROR_INIT;
  loam_tx_opts o = LOAM_TX_OPTS_INIT;
  work w = { 0, NULL };
  seen s;
  int n = 0;
  loam_conn *c = open_db(1, "tx_defer_serial", &e);
  if (c == NULL) { loam_error_clear(&e); return; }
  CHECK_INT(value(c), 0);   /* prepared */
  CHECK_OK(loam_connect(t_pg_url(), NULL, &w.other, &e), &e);
  memset(&s, 0, sizeof s);
  loam_conn_set_trace(c, record, &s);
  o.isolation = LOAM_SERIALIZABLE;
  o.retry_attempts = 3;
  o.retry_base_ms = 1;
  CHECK_OK(loam_tx_run(c, &o, read_then_write, &w, &n, &e), &e);
  CHECK_INT(n, 2);
  CHECK_INT(w.calls, 2);
  CHECK_INT(value(c), 101);   /* the other's 100, the body's 1 once */
  CHECK_STR(s.sql[0], "BEGIN ISOLATION LEVEL SERIALIZABLE");
  CHECK_STR(s.sql[1], "SELECT n FROM txd WHERE id = 1");
  CHECK_STR(s.sql[2], bump);
  CHECK_INT(s.code[2], LOAM_E_SERIALIZATION_FAILURE);
  CHECK_STR(s.sql[3], "ROLLBACK");
  CHECK_STR(s.sql[4], "BEGIN ISOLATION LEVEL SERIALIZABLE");
  loam_conn_close(w.other);
  loam_conn_close(c);
  loam_error_clear(&e);
}


/* PostgreSQL: the session ends between BEGIN and the first statement. */
TEST(tx_defer_pg_killed_before_first_statement) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_pool *p = NULL;
  loam_conn *c = NULL, *admin = NULL;
  loam_pool_metrics m;
  int64_t pid, pid2;
  int round;
  const char *url = t_url(1, "tx_defer_killed");
  if (url == NULL) return;
  o.size = 1;
  o.max_overflow = 0;
  CHECK_OK(loam_connect(t_pg_url(), NULL, &admin, &e), &e);
  CHECK_OK(exec(admin, "DROP TABLE IF EXISTS txd_killed", &e), &e);
  CHECK_OK(exec(admin, "CREATE TABLE txd_killed (n INTEGER)", &e), &e);
  CHECK_OK(loam_pool_open(url, &o, &p, &e), &e);
  /* Round 0: the INSERT is new (BEGIN alone first); round 1: prepared (BEGIN with it). */
  for (round = 0; round < 2; round++) {
    CHECK_OK(loam_pool_acquire(p, NULL, &c, &e), &e);
    if (round == 1) CHECK_OK(exec1(c, "INSERT INTO txd_killed VALUES (?)", 0, &e), &e);
    pid = t_scalar(c, "SELECT pg_backend_pid()");
    CHECK_OK(loam_tx_begin(c, &e), &e);
    CHECK(t_pg_terminate(admin, pid));
    CHECK_INT(exec1(c, "INSERT INTO txd_killed VALUES (?)", 1, &e), LOAM_ERROR);
    CHECK_INT(e.code, LOAM_E_CONNECTION_FAILED);
    loam_tx_rollback(c, &e);
    CHECK_INT(loam_tx_commit(c, &e), LOAM_ERROR);   /* no level left */
    CHECK_OK(loam_pool_release(p, c, &e), &e);
    CHECK_INT(t_scalar(admin, "SELECT count(*) FROM txd_killed WHERE n = 1"), 0);
    CHECK_OK(loam_pool_acquire(p, NULL, &c, &e), &e);
    pid2 = t_scalar(c, "SELECT pg_backend_pid()");
    CHECK(pid2 > 0 && pid2 != pid);
    CHECK_OK(loam_pool_release(p, c, &e), &e);
  }
  loam_pool_stats(p, &m);
  CHECK_INT(m.discarded, 2);
  loam_pool_close(p);
  loam_conn_close(admin);
  loam_error_clear(&e);
}


/* A connection handed back to its pool with the BEGIN still waiting comes back clean. */
static void pool_reset (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_pool *p = NULL;
  loam_conn *c = NULL;
  loam_pool_metrics m;
  seen s;
  const char *url = t_url(pg, "tx_defer_pool");
  if (url == NULL) return;
  o.size = 1;
  o.max_overflow = 0;
  CHECK_OK(loam_pool_open(url, &o, &p, &e), &e);
  CHECK_OK(loam_pool_acquire(p, NULL, &c, &e), &e);
  CHECK_OK(exec(c, "DROP TABLE IF EXISTS txd_pool", &e), &e);
  CHECK_OK(exec(c, "CREATE TABLE txd_pool (n INTEGER)", &e), &e);
  memset(&s, 0, sizeof s);
  loam_conn_set_trace(c, record, &s);
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(loam_pool_release(p, c, &e), &e);
  CHECK_INT(s.n, pg ? 0 : 2);   /* PostgreSQL: no BEGIN, so no ROLLBACK either */
  CHECK_OK(loam_pool_acquire(p, NULL, &c, &e), &e);
  loam_conn_set_trace(c, NULL, NULL);
  CHECK_INT(loam_conn_tx_status(c), LOAM_TX_IDLE);
  CHECK_INT(loam_tx_commit(c, &e), LOAM_ERROR);   /* the level is gone */
  CHECK_INT(e.code, LOAM_E_MISUSE);
  /* In autocommit: what it writes is there for everyone at once. */
  CHECK_OK(exec1(c, "INSERT INTO txd_pool VALUES (?)", 1, &e), &e);
  CHECK_INT(loam_conn_tx_status(c), LOAM_TX_IDLE);
  CHECK_OK(loam_pool_release(p, c, &e), &e);
  CHECK_OK(loam_pool_acquire(p, NULL, &c, &e), &e);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM txd_pool"), 1);
  CHECK_OK(loam_pool_release(p, c, &e), &e);
  loam_pool_stats(p, &m);
  CHECK_INT(m.opened, 1);
  CHECK_INT(m.discarded, 0);
  loam_pool_close(p);
  loam_error_clear(&e);
}

TEST(tx_defer_pool_reset_with_begin_waiting) { T_ON_BOTH(pool_reset); }


/* Counts the pool's reports of a thread asking for a second connection inside a transaction. */
static void hear (void *ud, loam_pool_event ev, const char *msg) {
  (void)msg;
  if (ev == LOAM_POOL_NESTED) (*(int *)ud)++;
}

/*
** The pool's timeout report says a holder is in a transaction whose BEGIN
** was not sent, and its self-deadlock report counts that transaction.
*/
static void report (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_pool *p = NULL;
  loam_conn *c = NULL, *x = NULL;
  int nested = 0;
  const char *url = t_url(pg, "tx_defer_report");
  if (url == NULL) return;
  o.size = 1;
  o.max_overflow = 0;
  o.acquire_timeout_ms = 100;
  o.hook = hear;
  o.hook_ud = &nested;
  CHECK_OK(loam_pool_open(url, &o, &p, &e), &e);
  CHECK_OK(loam_pool_acquire(p, "orders.lua:42", &c, &e), &e);
  CHECK_INT(t_scalar(c, "SELECT 1"), 1);
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_INT(loam_pool_acquire(p, "report.lua:7", &x, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_POOL_TIMEOUT);
  CHECK_INT(nested, 1);
  CHECK_HAS(e.message, "  acquired at orders.lua:42, held 0.");
  if (pg) {
    CHECK_HAS(e.message, "; server: idle for 0.");
    CHECK_HAS(e.message, " s: SELECT 1; in a transaction (its BEGIN goes with its first "
                         "statement, not run yet)");
  }
  else CHECK(strstr(e.message, "BEGIN") == NULL);   /* SQLite's BEGIN went at once */
  /* Once a statement ran, the server says so itself. */
  CHECK_INT(t_scalar(c, "SELECT 2"), 2);
  CHECK_INT(loam_pool_acquire(p, "report.lua:7", &x, &e), LOAM_ERROR);
  if (pg) CHECK_HAS(e.message, "; server: idle in transaction for 0.");
  CHECK(strstr(e.message, "its BEGIN") == NULL);
  CHECK_INT(nested, 2);
  CHECK_OK(loam_tx_rollback(c, &e), &e);
  CHECK_OK(loam_pool_release(p, c, &e), &e);
  loam_pool_close(p);
  loam_error_clear(&e);
}

TEST(tx_defer_pool_report_names_the_waiting_begin) { T_ON_BOTH(report); }


/*
** A BEGIN the server refuses (SERIALIZABLE on a hot standby, the
** harness's replica) fails with the first statement, prepared or not, with
** BEGIN's own error; the level then reads as ended and rolls back, and the
** connection goes on.
*/
TEST(tx_defer_pg_begin_refused_by_a_standby) {
  loam_error e = LOAM_ERROR_INIT;
  loam_tx_opts o = LOAM_TX_OPTS_INIT;
  loam_conn *c = NULL;
  const char *u = getenv("LOAM_TEST_PG_REPLICA");
  const char *sqls[2] = { "SELECT 1 AS x", "SELECT 2 AS x" };
  int i;
  seen s;
  if (u == NULL || *u == '\0') {
    t_fail(__FILE__, __LINE__, "LOAM_TEST_PG_REPLICA is not set; this test needs the replica");
    return;
  }
  CHECK_OK(loam_connect(u, NULL, &c, &e), &e);
  CHECK_INT(t_scalar(c, sqls[0]), 1);   /* in the cache: BEGIN goes with it */
  memset(&s, 0, sizeof s);
  loam_conn_set_trace(c, record, &s);
  o.isolation = LOAM_SERIALIZABLE;
  for (i = 0; i < 2; i++) {
    loam_stmt *st = NULL;
    s.n = 0;
    CHECK_OK(loam_tx_begin_with(c, &o, &e), &e);
    CHECK_INT(loam_query(c, sqls[i], NULL, 0, 0, &st, &e), LOAM_ERROR);
    CHECK(st == NULL);
    CHECK_STR(e.sqlstate, "0A000");
    CHECK_HAS(e.message, "serializable");
    CHECK_STR(s.sql[0], "BEGIN ISOLATION LEVEL SERIALIZABLE");
    CHECK(s.code[0] != LOAM_E_NONE);
    loam_error_clear(&e);
    CHECK_OK(loam_tx_rollback(c, &e), &e);
    CHECK_INT(loam_conn_tx_status(c), LOAM_TX_IDLE);
  }
  CHECK_INT(t_scalar(c, sqls[1]), 2);
  loam_conn_close(c);
  loam_error_clear(&e);
}
