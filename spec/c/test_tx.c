/*
** test_tx.c: transactions (tx.c) on SQLite and the real PostgreSQL: commit
** and rollback, nesting through savepoints, a level inside a transaction
** opened with raw SQL, misuse, and a rollback after a statement failed in
** a PostgreSQL transaction.  Each test that holds for both backends runs
** its body once per backend; the statements sent are checked through the
** trace hook, exactly.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loam.h"
#include "t.h"


/* {======================================================================
** Helpers
** ======================================================================= */

#define NSQL 16

/* The SQL of the statements reported to the hook, in order. */
typedef struct seen {
  int n;
  char sql[NSQL][64];
} seen;

static void record (void *ud, const loam_trace_event *ev) {
  seen *s = ud;
  if (s->n < NSQL) snprintf(s->sql[s->n], sizeof s->sql[0], "%s", ev->sql);
  s->n++;
}


/* Opens SQLite (memory) or PostgreSQL with a fresh table "tx_c_items" (n INTEGER UNIQUE). */
static loam_conn *open_db (int pg, loam_error *e) {
  loam_conn *c = NULL;
  const char *url = pg ? t_pg_url() : "sqlite::memory:";
  if (url == NULL) {
    t_fail(__FILE__, __LINE__, "LOAM_TEST_PG is not set; the PostgreSQL tests need a server");
    return NULL;
  }
  if (loam_connect(url, NULL, &c, e) != LOAM_OK ||
      loam_exec(c, "DROP TABLE IF EXISTS tx_c_refs", NULL, 0, NULL, NULL, NULL, e) != LOAM_OK ||
      loam_exec(c, "DROP TABLE IF EXISTS tx_c_items", NULL, 0, NULL, NULL, NULL, e) != LOAM_OK ||
      loam_exec(c, "CREATE TABLE tx_c_items (n INTEGER UNIQUE)", NULL, 0, NULL, NULL, NULL,
                e) != LOAM_OK) {
    t_fail(__FILE__, __LINE__, "setup failed: %s", e->message ? e->message : "");
    loam_conn_close(c);
    return NULL;
  }
  return c;
}

static int insert (loam_conn *c, int n, loam_error *e) {
  loam_value v = loam_int(n);
  return loam_exec(c, "INSERT INTO tx_c_items (n) VALUES (?)", &v, 1, NULL, NULL, NULL, e);
}

/* The rows of tx_c_items as digits in order ("13"), or "?" on error. */
static const char *items (loam_conn *c) {
  static char out[32];
  loam_stmt *s = NULL;
  size_t k = 0;
  out[0] = '?';
  out[1] = '\0';
  if (loam_query(c, "SELECT n FROM tx_c_items ORDER BY n", NULL, 0, 0, &s, NULL) != LOAM_OK)
    return out;
  while (loam_step(s, NULL) == LOAM_ROW && k + 1 < sizeof out) {
    loam_value v;
    loam_column(s, 0, &v);
    out[k++] = (char)('0' + v.u.i % 10);
  }
  out[k] = '\0';
  loam_stmt_close(s);
  return out;
}

#define BEGIN_SQL(pg) ((pg) ? "BEGIN" : "BEGIN IMMEDIATE")

/* Runs 'body' on SQLite, then on PostgreSQL, each on a fresh connection traced into 'seen'. */
#define ON_BOTH(body) do { \
    int pg_; \
    for (pg_ = 0; pg_ <= 1 && !t_failed(); pg_++) { \
      loam_error e_ = LOAM_ERROR_INIT; \
      seen s_; \
      loam_conn *c_ = open_db(pg_, &e_); \
      if (c_ == NULL) { loam_error_clear(&e_); return; } \
      memset(&s_, 0, sizeof s_); \
      loam_conn_set_trace(c_, record, &s_); \
      body(c_, pg_, &s_, &e_); \
      loam_conn_close(c_); \
      loam_error_clear(&e_); \
    } \
  } while (0)

/* }====================================================================== */


/* {======================================================================
** Both backends
** ======================================================================= */

static void commit_body (loam_conn *c, int pg, seen *s, loam_error *e) {
  CHECK_OK(loam_tx_begin(c, e), e);
  CHECK_OK(insert(c, 1, e), e);
  CHECK_OK(loam_tx_commit(c, e), e);
  CHECK_INT(s->n, 3);
  CHECK_STR(s->sql[0], BEGIN_SQL(pg));
  CHECK_STR(s->sql[2], "COMMIT");
  CHECK_STR(items(c), "1");
}

TEST(tx_begin_commit) {
  ON_BOTH(commit_body);
}


static void rollback_body (loam_conn *c, int pg, seen *s, loam_error *e) {
  CHECK_OK(loam_tx_begin(c, e), e);
  CHECK_OK(insert(c, 1, e), e);
  CHECK_OK(loam_tx_rollback(c, e), e);
  CHECK_INT(s->n, 3);
  CHECK_STR(s->sql[0], BEGIN_SQL(pg));
  CHECK_STR(s->sql[2], "ROLLBACK");
  CHECK_STR(items(c), "");
  /* The level is gone: the connection is back in autocommit. */
  CHECK_OK(insert(c, 2, e), e);
  CHECK_INT(loam_tx_rollback(c, e), LOAM_ERROR);
  CHECK_STR(items(c), "2");
}

TEST(tx_begin_rollback) {
  ON_BOTH(rollback_body);
}


static void nested_body (loam_conn *c, int pg, seen *s, loam_error *e) {
  (void)pg;
  CHECK_OK(loam_tx_begin(c, e), e);
  CHECK_OK(insert(c, 1, e), e);
  CHECK_OK(loam_tx_begin(c, e), e);
  CHECK_OK(insert(c, 2, e), e);
  CHECK_OK(loam_tx_rollback(c, e), e);      /* undoes 2 only */
  CHECK_OK(loam_tx_begin(c, e), e);
  CHECK_OK(insert(c, 3, e), e);
  CHECK_OK(loam_tx_begin(c, e), e);         /* a third level inside the second */
  CHECK_OK(insert(c, 4, e), e);
  CHECK_OK(loam_tx_commit(c, e), e);
  CHECK_OK(loam_tx_commit(c, e), e);        /* keeps 3 and 4 */
  CHECK_OK(loam_tx_commit(c, e), e);
  CHECK_INT(s->n, 13);
  CHECK_STR(s->sql[2], "SAVEPOINT loam_sp_2");
  CHECK_STR(s->sql[4], "ROLLBACK TO SAVEPOINT loam_sp_2");
  CHECK_STR(s->sql[5], "RELEASE SAVEPOINT loam_sp_2");
  CHECK_STR(s->sql[6], "SAVEPOINT loam_sp_2");
  CHECK_STR(s->sql[8], "SAVEPOINT loam_sp_3");
  CHECK_STR(s->sql[10], "RELEASE SAVEPOINT loam_sp_3");
  CHECK_STR(s->sql[11], "RELEASE SAVEPOINT loam_sp_2");
  CHECK_STR(s->sql[12], "COMMIT");
  CHECK_STR(items(c), "134");

  /* An outer rollback undoes what inner levels committed. */
  CHECK_OK(loam_tx_begin(c, e), e);
  CHECK_OK(loam_tx_begin(c, e), e);
  CHECK_OK(insert(c, 5, e), e);
  CHECK_OK(loam_tx_commit(c, e), e);
  CHECK_OK(loam_tx_rollback(c, e), e);
  CHECK_STR(items(c), "134");
}

TEST(tx_nested_savepoints) {
  ON_BOTH(nested_body);
}


static void raw_body (loam_conn *c, int pg, seen *s, loam_error *e) {
  (void)pg;
  CHECK_OK(loam_exec(c, "BEGIN", NULL, 0, NULL, NULL, NULL, e), e);
  CHECK_OK(insert(c, 1, e), e);
  CHECK_OK(loam_tx_begin(c, e), e);
  CHECK_STR(s->sql[2], "SAVEPOINT loam_sp_1");
  CHECK_OK(insert(c, 2, e), e);
  CHECK_OK(loam_tx_rollback(c, e), e);
  CHECK_STR(s->sql[4], "ROLLBACK TO SAVEPOINT loam_sp_1");
  CHECK_STR(s->sql[5], "RELEASE SAVEPOINT loam_sp_1");
  /* The caller's transaction is still open and still the caller's to end. */
  CHECK_OK(loam_tx_begin(c, e), e);
  CHECK_OK(insert(c, 3, e), e);
  CHECK_OK(loam_tx_commit(c, e), e);
  CHECK_STR(s->sql[8], "RELEASE SAVEPOINT loam_sp_1");
  CHECK_OK(loam_exec(c, "ROLLBACK", NULL, 0, NULL, NULL, NULL, e), e);
  CHECK_STR(items(c), "");
  CHECK_OK(loam_exec(c, "BEGIN", NULL, 0, NULL, NULL, NULL, e), e);
  CHECK_OK(loam_tx_begin(c, e), e);
  CHECK_OK(insert(c, 4, e), e);
  CHECK_OK(loam_tx_commit(c, e), e);
  CHECK_OK(loam_exec(c, "COMMIT", NULL, 0, NULL, NULL, NULL, e), e);
  CHECK_STR(items(c), "4");
}

TEST(tx_inside_raw_transaction_uses_a_savepoint) {
  ON_BOTH(raw_body);
}


static void misuse_body (loam_conn *c, int pg, seen *s, loam_error *e) {
  int i;
  (void)pg;
  CHECK_INT(loam_tx_commit(c, e), LOAM_ERROR);
  CHECK_INT(e->code, LOAM_E_MISUSE);
  CHECK_STR(e->message, "loam_tx_commit: no transaction open (call loam_tx_begin first)");
  CHECK_INT(loam_tx_rollback(c, e), LOAM_ERROR);
  CHECK_INT(e->code, LOAM_E_MISUSE);
  CHECK_STR(e->message, "loam_tx_rollback: no transaction open (call loam_tx_begin first)");
  CHECK_INT(s->n, 0);   /* nothing reached the backend */
  CHECK_INT(loam_tx_begin(NULL, e), LOAM_ERROR);
  CHECK_INT(e->code, LOAM_E_MISUSE);
  CHECK_INT(loam_tx_commit(NULL, e), LOAM_ERROR);
  CHECK_INT(loam_tx_rollback(NULL, NULL), LOAM_ERROR);

  /* The deepest nesting, one level more refused, then every level undone. */
  for (i = 0; i < LOAM_TX_MAX_DEPTH; i++) CHECK_OK(loam_tx_begin(c, e), e);
  CHECK_OK(insert(c, 1, e), e);
  CHECK_INT(loam_tx_begin(c, e), LOAM_ERROR);
  CHECK_INT(e->code, LOAM_E_MISUSE);
  CHECK_STR(e->message, "loam_tx_begin: transactions nested deeper than 32 levels");
  for (i = 0; i < LOAM_TX_MAX_DEPTH; i++) CHECK_OK(loam_tx_rollback(c, e), e);
  CHECK_INT(loam_tx_rollback(c, e), LOAM_ERROR);
  CHECK_STR(items(c), "");

  /* A raw COMMIT under a level: it runs (what it ended stays ended) and fails, the next
  ** statement is refused before it is sent, the commit refuses, the rollback ends the level. */
  CHECK_OK(loam_tx_begin(c, e), e);
  CHECK_OK(insert(c, 2, e), e);
  CHECK_INT(loam_exec(c, "COMMIT", NULL, 0, NULL, NULL, NULL, e), LOAM_ERROR);
  CHECK_INT(e->code, LOAM_E_MISUSE);
  CHECK_HAS(e->message, "this statement ended the transaction that db:transaction "
                        "(loam_tx_begin) opened: what ran in it before was committed");
  s->n = 0;
  CHECK_INT(insert(c, 9, e), LOAM_ERROR);
  CHECK_INT(e->code, LOAM_E_MISUSE);
  CHECK_HAS(e->message, "has ended under it (a raw COMMIT or ROLLBACK, or the backend rolled it "
                        "back): this statement would run in autocommit; roll the level back first");
  CHECK_INT(s->n, 1);   /* refused before it was sent: the trace counts the failure only */
  CHECK_INT(loam_tx_begin(c, e), LOAM_ERROR);
  CHECK_HAS(e->message, "would run in autocommit");
  CHECK_INT(loam_tx_commit(c, e), LOAM_ERROR);
  CHECK_INT(e->code, LOAM_E_MISUSE);
  CHECK_HAS(e->message, "the transaction already ended");
  s->n = 0;
  CHECK_OK(loam_tx_rollback(c, e), e);
  CHECK_INT(s->n, 0);   /* nothing left to undo: nothing sent */
  CHECK_INT(loam_tx_commit(c, e), LOAM_ERROR);
  CHECK_STR(items(c), "2");

  /* Closing with levels open: the backend rolls back. */
  CHECK_OK(loam_tx_begin(c, e), e);
  CHECK_OK(loam_tx_begin(c, e), e);
  CHECK_OK(insert(c, 3, e), e);
}

TEST(tx_misuse) {
  ON_BOTH(misuse_body);
}


/* A failed BEGIN opens no level. */
static void failed_begin_body (loam_conn *c, int pg, seen *s, loam_error *e) {
  loam_stmt *st = NULL;
  (void)s;
  if (!pg) return;   /* SQLite: see tx_sqlite_begin_immediate_takes_the_write_lock */
  CHECK_OK(loam_exec(c, "BEGIN", NULL, 0, NULL, NULL, NULL, e), e);
  CHECK_INT(loam_exec(c, "SELECT 1/0", NULL, 0, NULL, NULL, NULL, e), LOAM_ERROR);
  CHECK_INT(loam_tx_begin(c, e), LOAM_ERROR);
  CHECK_INT(e->code, LOAM_E_TRANSACTION_ABORTED);
  CHECK_INT(loam_tx_rollback(c, e), LOAM_ERROR);
  CHECK_INT(e->code, LOAM_E_MISUSE);
  CHECK_OK(loam_exec(c, "ROLLBACK", NULL, 0, NULL, NULL, NULL, e), e);
  CHECK_OK(loam_query(c, "SELECT 1", NULL, 0, 0, &st, e), e);
  loam_stmt_close(st);
}

TEST(tx_failed_begin_opens_no_level) {
  ON_BOTH(failed_begin_body);
}

/* }====================================================================== */


/* {======================================================================
** One backend
** ======================================================================= */

/* A statement fails in the transaction: COMMIT is refused, ROLLBACK (TO) works. */
TEST(tx_pg_rollback_in_failed_transaction) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c = open_db(1, &e);
  if (c == NULL) { loam_error_clear(&e); return; }
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(insert(c, 1, &e), &e);
  CHECK_INT(insert(c, 1, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_UNIQUE_VIOLATION);
  CHECK_INT(loam_tx_commit(c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_TRANSACTION_ABORTED);
  CHECK_STR(e.message, "loam_tx_commit: a statement failed in this transaction; roll it back");
  CHECK_OK(loam_tx_rollback(c, &e), &e);
  CHECK_STR(items(c), "");

  /* Inside a savepoint, the rollback keeps the outer work and revives the transaction. */
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(insert(c, 1, &e), &e);
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(insert(c, 2, &e), &e);
  CHECK_INT(insert(c, 1, &e), LOAM_ERROR);
  CHECK_INT(loam_tx_commit(c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_TRANSACTION_ABORTED);
  CHECK_OK(loam_tx_rollback(c, &e), &e);
  CHECK_OK(insert(c, 3, &e), &e);
  CHECK_OK(loam_tx_commit(c, &e), &e);
  CHECK_STR(items(c), "13");

  /* A COMMIT that fails ends the transaction; the rollback then sends nothing. */
  CHECK_OK(loam_exec(c, "CREATE TABLE tx_c_refs (n INTEGER REFERENCES "
                        "tx_c_items (n) DEFERRABLE INITIALLY DEFERRED)",
                     NULL, 0, NULL, NULL, NULL, &e), &e);
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(loam_exec(c, "INSERT INTO tx_c_refs (n) VALUES (7)", NULL, 0, NULL, NULL, NULL, &e),
           &e);
  CHECK_INT(loam_tx_commit(c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_FOREIGN_KEY_VIOLATION);
  CHECK_OK(loam_tx_rollback(c, &e), &e);
  CHECK_INT(loam_tx_rollback(c, &e), LOAM_ERROR);   /* that was the last level */
  CHECK_OK(loam_exec(c, "DROP TABLE tx_c_refs", NULL, 0, NULL, NULL, NULL, &e), &e);
  loam_conn_close(c);
  loam_error_clear(&e);
}


/* BEGIN IMMEDIATE takes the write lock at once: a second writer waits at its BEGIN. */
TEST(tx_sqlite_begin_immediate_takes_the_write_lock) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn_opts o = LOAM_CONN_OPTS_INIT;
  loam_conn *a = NULL, *b = NULL;
  char url[300];
  snprintf(url, sizeof url, "sqlite:%s/tx.db", t_tmpdir());
  o.busy_timeout_ms = 0;
  CHECK_OK(loam_connect(url, &o, &a, &e), &e);
  CHECK_OK(loam_connect(url, &o, &b, &e), &e);
  CHECK_OK(loam_exec(a, "CREATE TABLE t (n INTEGER)", NULL, 0, NULL, NULL, NULL, &e), &e);
  CHECK_OK(loam_tx_begin(a, &e), &e);
  CHECK_INT(loam_tx_begin(b, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_BUSY);
  CHECK_INT(loam_tx_commit(b, &e), LOAM_ERROR);     /* no level was opened */
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_OK(loam_tx_commit(a, &e), &e);
  CHECK_OK(loam_tx_begin(b, &e), &e);
  CHECK_OK(loam_tx_rollback(b, &e), &e);
  loam_conn_close(a);
  loam_conn_close(b);
  loam_error_clear(&e);
}

/* }====================================================================== */
