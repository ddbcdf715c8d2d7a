/*
** test_redact.c: SQL text and parameters for log lines (redact.c),
** exactly: every literal form replaced, names and placeholders kept, the
** columns parameters go with, the allow-list, short buffers; and on real
** SQLite and PostgreSQL the values a trace hook receives with a statement
** read row by row (copied, so the caller's may be gone by then), the pool
** wait of a connection that is not from a pool, and the transaction status.
*/
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "loam.h"


#define ELL "\xe2\x80\xa6"

#define CHECK_REDACT(sql, want) do { \
    char out_[512]; \
    CHECK_INT(loam_sql_redact((sql), out_, sizeof out_), strlen(want)); \
    CHECK_STR(out_, (want)); \
  } while (0)


TEST(redact_literals) {
  CHECK_REDACT("SELECT 'it''s', E'a\\'b', $t$ x 'y' $t$, $$z$$ FROM t",
               "SELECT '" ELL "', '" ELL "', '" ELL "', '" ELL "' FROM t");
  CHECK_REDACT("x = -1 AND y IN (1, 2.5e-3, .5, 0x1F)",
               "x = -" ELL " AND y IN (" ELL ", " ELL ", " ELL ", " ELL ")");
  CHECK_REDACT("SELECT X'00', B'1', N'n', TRUE, NULL, \"a 'b'\" -- 'c'\n/* 1 */ , ?, $2, ?3",
               "SELECT '" ELL "', '" ELL "', '" ELL "', TRUE, NULL, \"a 'b'\" , ?, $2, ?3");
  CHECK_REDACT("  SELECT\n\t1 ; ", "SELECT " ELL " ;");
  CHECK_REDACT("SELECT 'open", "SELECT '" ELL "'");
  /* Found by fuzzing: a string then a bit string glued to it, marked apart. */
  CHECK_REDACT("SEL'a \\'b'c'", "SEL'" ELL "' '" ELL "'");
  CHECK_REDACT("", "");
  CHECK_REDACT(NULL, "");
}


TEST(redact_buffer) {
  char b[8];
  memset(b, 'z', sizeof b);
  CHECK_INT(loam_sql_redact("SELECT 'x'", b, 5), 12);
  CHECK_STR(b, "SELE");
  CHECK(b[5] == 'z');
  CHECK_INT(loam_sql_redact("SELECT 1", NULL, 0), 10);
  CHECK_INT(loam_sql_params_redact("SELECT ?", NULL, 1, NULL, b, sizeof b), 0);
  CHECK_STR(b, "");
}


#define CHECK_PARAMS(sql, params, n, allow, want) do { \
    char out_[512]; \
    CHECK_INT(loam_sql_params_redact((sql), (params), (n), (allow), out_, sizeof out_), strlen(want)); \
    CHECK_STR(out_, (want)); \
  } while (0)


TEST(redact_params) {
  static const char *const none[] = { NULL };
  static const char *const users[] = { "users.email", "NAME", "limit", NULL };
  static const char *const anyid[] = { "id", NULL };
  loam_value p[5];
  p[0] = loam_text("ada@example.com", 15);
  p[1] = loam_int(42);
  p[2] = loam_null();
  p[3] = loam_blob("\x00\xff", 2);
  p[4] = loam_double(0.5);
  CHECK_PARAMS("SELECT 1", p, 5, NULL,
               "$1=<text 15>, $2=<integer>, $3=NULL, $4=<blob 2>, $5=<double>");
  CHECK_PARAMS("SELECT * FROM users WHERE email = ? AND id > ? AND x = ? AND name LIKE ? "
               "LIMIT ?", p, 5, none,
               "$1=<text 15>, $2=<integer>, $3=NULL, $4=<blob 2>, $5=<double>");
  CHECK_PARAMS("SELECT * FROM \"users\" WHERE \"users\".\"email\" = $1 AND o.id >= $2 "
               "AND name LIKE $4 LIMIT $5 OFFSET $3", p, 5, users,
               "$1='ada@example.com', $2=<integer>, $3=NULL, $4=x'00ff', $5=0.5");
  CHECK_PARAMS("INSERT INTO public.\"users\" (\"email\", \"id\") VALUES (?, ?), (?, ?) "
               "ON CONFLICT (\"id\") DO UPDATE SET \"email\" = ?", p, 5, users,
               "$1='ada@example.com', $2=<integer>, $3=NULL, $4=<blob 2>, $5=0.5");
  CHECK_PARAMS("SELECT * FROM t WHERE id NOT IN (?, ?) AND id = ANY (?) AND id IN "
               "(SELECT value FROM json_each(?)) AND lower(?) = id", p, 5, anyid,
               "$1='ada@example.com', $2=42, $3=NULL, $4=x'00ff', $5=<double>");
  p[0] = loam_text("a'b\n", 4);
  CHECK_PARAMS("UPDATE users SET name = ?", p, 1, users, "$1='a''b\\x0a'");
  p[0] = loam_bool(1);
  CHECK_PARAMS("UPDATE users SET name = ?", p, 1, users, "$1=TRUE");
  CHECK_PARAMS("UPDATE users SET name = ?", p, 1, none, "$1=<boolean>");
}


/* {======================================================================
** What a hook receives, on both backends
** ======================================================================= */

typedef struct seen {
  int n;
  int nparams;
  int64_t wait_ns;
  char params[256];
} seen;


static void keep (void *ud, const loam_trace_event *ev) {
  static const char *const allow[] = { "b", NULL };
  seen *s = ud;
  s->n++;
  s->nparams = ev->nparams;
  s->wait_ns = ev->wait_ns;
  loam_sql_params_redact(ev->sql, ev->params, ev->nparams, allow, s->params, sizeof s->params);
}


static void hook_params (const char *url, const char *sql) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  loam_stmt *st = NULL;
  loam_value p[2];
  char *a = strdup("secret"), *b = strdup("shown");
  seen s = { 0, 0, -1, "" };
  CHECK_OK(loam_connect(url, NULL, &c, &err), &err);
  CHECK_INT(loam_conn_tx_status(c), LOAM_TX_IDLE);
  loam_conn_set_trace(c, keep, &s);
  p[0] = loam_text(a, strlen(a));
  p[1] = loam_text(b, strlen(b));
  CHECK_OK(loam_query(c, sql, p, 2, LOAM_STREAM, &st, &err), &err);
  /* The caller's values are gone before the statement ends. */
  memset(a, 'x', strlen(a));
  memset(b, 'x', strlen(b));
  free(a);
  free(b);
  while (loam_step(st, &err) == LOAM_ROW)
    ;
  loam_stmt_close(st);
  CHECK_INT(s.n, 1);
  CHECK_INT(s.nparams, 2);
  CHECK_INT(s.wait_ns, 0);
  CHECK_STR(s.params, "$1=<text 6>, $2='shown'");
  CHECK_OK(loam_tx_begin(c, &err), &err);
  CHECK_INT(loam_conn_tx_status(c), LOAM_TX_OPEN);
  CHECK_INT(loam_exec(c, "SELECT * FROM nowhere", NULL, 0, NULL, NULL, NULL, &err), LOAM_ERROR);
  CHECK_INT(loam_conn_tx_status(c),
            loam_conn_backend(c) == LOAM_POSTGRES ? LOAM_TX_FAILED : LOAM_TX_OPEN);
  CHECK_OK(loam_tx_rollback(c, &err), &err);
  CHECK_INT(loam_conn_tx_status(c), LOAM_TX_IDLE);
  loam_conn_close(c);
  CHECK_INT(loam_conn_tx_status(NULL), LOAM_TX_IDLE);
  loam_error_clear(&err);
}


TEST(redact_hook_params_sqlite) {
  hook_params("sqlite::memory:",
              "SELECT x FROM (SELECT 1 AS x, 2 AS a, 3 AS b) AS t WHERE a <> ? AND b <> ?");
}


TEST(redact_hook_params_pg) {
  const char *url = t_pg_url();
  CHECK(url != NULL);   /* PostgreSQL tests never skip */
  hook_params(url, "SELECT x FROM (SELECT 1 AS x, 'p' AS a, 'q' AS b) AS t WHERE a <> ? AND b <> ?");
}

/* }====================================================================== */
