/*
** test_trace.c: instrumentation (trace.c) on real SQLite and PostgreSQL
** databases: the counters, one hook event per statement whatever ends it
** (last row, failure inside 'loam_query' or 'loam_step', early close,
** connection close), and fingerprints and normalised text, exactly.
*/
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "loam.h"


/* {======================================================================
** Recording events
** ======================================================================= */

#define MAXEV 32

typedef struct rec {
  int n;
  struct {
    loam_conn *conn;
    char *sql;
    int nparams;
    uint64_t fingerprint;
    int64_t rows;
    int64_t elapsed_ns;
    int errcode;
  } ev[MAXEV];
} rec;


static void record (void *ud, const loam_trace_event *ev) {
  rec *r = ud;
  if (r->n < MAXEV) {
    r->ev[r->n].conn = ev->conn;
    r->ev[r->n].sql = strdup(ev->sql);
    r->ev[r->n].nparams = ev->nparams;
    r->ev[r->n].fingerprint = ev->fingerprint;
    r->ev[r->n].rows = ev->rows;
    r->ev[r->n].elapsed_ns = ev->elapsed_ns;
    r->ev[r->n].errcode = (int)ev->errcode;
  }
  r->n++;
}


static void rec_reset (rec *r) {
  int i;
  for (i = 0; i < r->n && i < MAXEV; i++) free(r->ev[i].sql);
  r->n = 0;
}


/* Checks that 'r' holds exactly one event, for 'sql', with 'rows' and 'code'. */
#define CHECK_ONE(r, sql_, rows_, code_) do { \
    CHECK_INT((r)->n, 1); \
    CHECK_STR((r)->ev[0].sql, (sql_)); \
    CHECK_INT((r)->ev[0].rows, (rows_)); \
    CHECK_INT((r)->ev[0].errcode, (code_)); \
    CHECK((r)->ev[0].elapsed_ns >= 0); \
    CHECK((r)->ev[0].fingerprint == loam_fingerprint(sql_)); \
    rec_reset(r); \
  } while (0)


static int exec (loam_conn *c, const char *sql, loam_error *err) {
  return loam_exec(c, sql, NULL, 0, NULL, NULL, NULL, err);
}


/* Steps 's' to its end; returns the rows read, or -1 after an error. */
static int64_t drain (loam_stmt *s, loam_error *err) {
  int64_t n = 0;
  int rc;
  while ((rc = loam_step(s, err)) == LOAM_ROW) n++;
  return rc == LOAM_DONE ? n : -1;
}

/* }====================================================================== */


/* {======================================================================
** Events and counters on both backends
** ======================================================================= */

/*
** The statements every backend goes through, with the hook set on 'c'.
** 'midfail' fails at its third row, on either backend.  Events and
** counters must agree at the end.
*/
static void one_event_each (loam_conn *c, const char *midfail, int pg) {
  loam_error err = LOAM_ERROR_INIT;
  rec r = { 0 };
  loam_stats before, after;
  int64_t rows = 0, errors = 0, ns = 0;
  int events = 0;
  loam_stmt *s = NULL;
  loam_value p[2];
  CHECK_OK(exec(c, pg ? "DROP TABLE IF EXISTS trace_t CASCADE" : "DROP TABLE IF EXISTS trace_t",
                &err), &err);
  CHECK_OK(exec(c, "CREATE TABLE trace_t (id integer PRIMARY KEY, name text)", &err), &err);
  CHECK_OK(exec(c, "INSERT INTO trace_t VALUES (1, 'a'), (2, 'b'), (3, 'c')", &err), &err);
  loam_conn_stats(c, &before);
  loam_conn_set_trace(c, record, &r);

  /* A query read to its end: reported at LOAM_DONE, not again at close. */
  CHECK_OK(loam_query(c, "SELECT id FROM trace_t ORDER BY id", NULL, 0, 0, &s, &err), &err);
  CHECK_INT(r.n, 0);
  CHECK_INT(drain(s, &err), 3);
  CHECK_INT(r.n, 1);
  loam_stmt_close(s);
  CHECK_INT(r.ev[0].nparams, 0);
  CHECK(r.ev[0].conn == c);
  events++; rows += 3; ns += r.ev[0].elapsed_ns;
  CHECK_ONE(&r, "SELECT id FROM trace_t ORDER BY id", 3, LOAM_E_NONE);

  /* An exec with parameters. */
  p[0] = loam_int(4);
  p[1] = loam_text("d", 1);
  CHECK_OK(loam_exec(c, "INSERT INTO trace_t VALUES (?, ?)", p, 2, NULL, NULL, NULL, &err), &err);
  CHECK_INT(r.ev[0].nparams, 2);
  events++; ns += r.ev[0].elapsed_ns;
  CHECK_ONE(&r, "INSERT INTO trace_t VALUES (?, ?)", 0, LOAM_E_NONE);

  /* A stream closed after two rows: reported at the close. */
  CHECK_OK(loam_query(c, "SELECT id FROM trace_t", NULL, 0, LOAM_STREAM, &s, &err), &err);
  CHECK_INT(loam_step(s, &err), LOAM_ROW);
  CHECK_INT(loam_step(s, &err), LOAM_ROW);
  CHECK_INT(r.n, 0);
  loam_stmt_close(s);
  events++; rows += 2; ns += r.ev[0].elapsed_ns;
  CHECK_ONE(&r, "SELECT id FROM trace_t", 2, LOAM_E_NONE);

  /* A statement closed before its first step. */
  CHECK_OK(loam_query(c, "SELECT name FROM trace_t", NULL, 0, 0, &s, &err), &err);
  loam_stmt_close(s);
  events++; ns += r.ev[0].elapsed_ns;
  CHECK_ONE(&r, "SELECT name FROM trace_t", 0, LOAM_E_NONE);

  /* Failures inside 'loam_query', with no error structure passed. */
  CHECK_INT(loam_query(c, "SELEC 1", NULL, 0, 0, &s, NULL), LOAM_ERROR);
  CHECK(s == NULL);
  events++; errors++; ns += r.ev[0].elapsed_ns;
  CHECK_ONE(&r, "SELEC 1", 0, LOAM_E_SYNTAX_ERROR);
  CHECK_INT(loam_query(c, "SELECT id FROM trace_t WHERE id = ?", NULL, 0, 0, &s, &err),
            LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  events++; errors++; ns += r.ev[0].elapsed_ns;
  CHECK_ONE(&r, "SELECT id FROM trace_t WHERE id = ?", 0, LOAM_E_MISUSE);
  CHECK_INT(loam_query(c, "SELECT * FROM trace_missing", NULL, 0, 0, &s, &err), LOAM_ERROR);
  events++; errors++; ns += r.ev[0].elapsed_ns;
  CHECK_ONE(&r, "SELECT * FROM trace_missing", 0, LOAM_E_UNDEFINED_TABLE);

  /* A constraint failure (at the step on SQLite, in 'loam_query' on PostgreSQL). */
  CHECK_INT(exec(c, "INSERT INTO trace_t VALUES (1, 'again')", &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_UNIQUE_VIOLATION);
  events++; errors++; ns += r.ev[0].elapsed_ns;
  CHECK_ONE(&r, "INSERT INTO trace_t VALUES (1, 'again')", 0, LOAM_E_UNIQUE_VIOLATION);

  /* A failure at the third row of a stream: two rows were read. */
  CHECK_OK(loam_query(c, midfail, NULL, 0, LOAM_STREAM, &s, &err), &err);
  CHECK_INT(drain(s, NULL), -1);
  CHECK_INT(r.n, 1);
  CHECK(r.ev[0].errcode != LOAM_E_NONE);
  CHECK_INT(loam_step(s, &err), LOAM_ERROR);   /* stepping a failed statement: not reported */
  loam_stmt_close(s);
  events++; errors++; rows += 2; ns += r.ev[0].elapsed_ns;
  CHECK_ONE(&r, midfail, 2, r.ev[0].errcode);

  /* The counters agree with the events. */
  loam_conn_stats(c, &after);
  CHECK_INT(after.queries - before.queries, events);
  CHECK_INT(after.rows - before.rows, rows);
  CHECK_INT(after.errors - before.errors, errors);
  CHECK_INT(after.elapsed_ns - before.elapsed_ns, ns);

  /* Without the hook the counters still run. */
  loam_conn_set_trace(c, NULL, &r);
  CHECK_OK(exec(c, "SELECT 1", &err), &err);
  CHECK_INT(r.n, 0);
  loam_conn_stats(c, &before);
  CHECK_INT(before.queries, after.queries + 1);

  /* A statement started without a hook is not reported to one set later. */
  CHECK_OK(loam_query(c, "SELECT id FROM trace_t", NULL, 0, 0, &s, &err), &err);
  loam_conn_set_trace(c, record, &r);
  CHECK_INT(drain(s, &err), 4);
  loam_stmt_close(s);
  CHECK_INT(r.n, 0);

  /* Closing the connection ends its open statements, and reports them. */
  CHECK_OK(loam_query(c, "SELECT id FROM trace_t", NULL, 0, LOAM_STREAM, &s, &err), &err);
  CHECK_INT(loam_step(s, &err), LOAM_ROW);
  CHECK_INT(r.n, 0);
  loam_conn_close(c);
  CHECK_ONE(&r, "SELECT id FROM trace_t", 1, LOAM_E_NONE);
  loam_stmt_close(s);
  CHECK_INT(r.n, 0);
  loam_error_clear(&err);
}


/* SQLite fails at the third row: abs() of the smallest integer overflows. */
#define SQLITE_MIDFAIL \
  "WITH RECURSIVE s(x) AS (VALUES (1) UNION ALL SELECT x + 1 FROM s WHERE x < 5) " \
  "SELECT CASE WHEN x = 3 THEN abs(-9223372036854775807 - 1) ELSE x END FROM s"

#define PG_MIDFAIL "SELECT 10 / (3 - x) FROM generate_series(1, 5) AS x"


TEST(trace_events_sqlite) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  CHECK_OK(loam_connect("sqlite::memory:", NULL, &c, &err), &err);
  one_event_each(c, SQLITE_MIDFAIL, 0);
}


TEST(trace_events_sqlite_uncached) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn_opts o = LOAM_CONN_OPTS_INIT;
  loam_conn *c = NULL;
  o.statement_cache = 0;
  CHECK_OK(loam_connect("sqlite::memory:", &o, &c, &err), &err);
  one_event_each(c, SQLITE_MIDFAIL, 0);
}


TEST(trace_events_pg) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  const char *url = t_pg_url();
  CHECK(url != NULL);   /* PostgreSQL tests never skip */
  CHECK_OK(loam_connect(url, NULL, &c, &err), &err);
  one_event_each(c, PG_MIDFAIL, 1);
}


TEST(trace_events_pg_uncached) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn_opts o = LOAM_CONN_OPTS_INIT;
  loam_conn *c = NULL;
  const char *url = t_pg_url();
  CHECK(url != NULL);
  o.statement_cache = 0;
  CHECK_OK(loam_connect(url, &o, &c, &err), &err);
  one_event_each(c, PG_MIDFAIL, 1);
}


/* A streaming statement holds a PostgreSQL connection: the refused query counts as failed. */
TEST(trace_pg_busy) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  loam_stmt *s = NULL, *s2 = NULL;
  loam_stats st;
  rec r = { 0 };
  const char *url = t_pg_url();
  CHECK(url != NULL);
  CHECK_OK(loam_connect(url, NULL, &c, &err), &err);
  loam_conn_set_trace(c, record, &r);
  CHECK_OK(loam_query(c, "SELECT 1 UNION ALL SELECT 2", NULL, 0, LOAM_STREAM, &s, &err), &err);
  CHECK_INT(loam_query(c, "SELECT 3", NULL, 0, 0, &s2, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_ONE(&r, "SELECT 3", 0, LOAM_E_MISUSE);
  CHECK_INT(drain(s, &err), 2);
  loam_stmt_close(s);
  CHECK_ONE(&r, "SELECT 1 UNION ALL SELECT 2", 2, LOAM_E_NONE);
  loam_conn_stats(c, &st);
  CHECK_INT(st.queries, 2);
  CHECK_INT(st.errors, 1);
  CHECK_INT(st.rows, 2);
  loam_conn_close(c);
  loam_error_clear(&err);
}


/* Calls that never reached a connection are not statements. */
TEST(trace_stats_misuse) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  loam_stmt *s;
  loam_stats st = { 1, 1, 1, 1 };
  loam_conn_stats(NULL, &st);
  CHECK_INT(st.queries, 0);
  CHECK_INT(st.elapsed_ns, 0);
  loam_conn_stats(NULL, NULL);
  loam_conn_set_trace(NULL, record, NULL);
  CHECK_OK(loam_connect("sqlite::memory:", NULL, &c, &err), &err);
  CHECK_INT(loam_query(c, NULL, NULL, 0, 0, &s, &err), LOAM_ERROR);
  CHECK_INT(loam_query(c, "SELECT 1", NULL, 0, 0, NULL, &err), LOAM_ERROR);
  loam_conn_stats(c, &st);
  CHECK_INT(st.queries, 0);
  CHECK_INT(st.errors, 0);
  loam_conn_close(c);
  loam_error_clear(&err);
}

/* }====================================================================== */


/* {======================================================================
** Fingerprints and normalised text
** ======================================================================= */

/* Checks the normalised text of 'sql', its length bound and its hash. */
#define CHECK_NORM(sql, want) do { \
    char nb_[512]; \
    const char *s_ = (sql); \
    size_t n_ = loam_sql_normalize(s_, nb_, sizeof nb_); \
    CHECK_STR(nb_, (want)); \
    CHECK_INT(n_, strlen(want)); \
    CHECK(n_ <= strlen(s_)); \
    CHECK(loam_fingerprint(s_) == fnv(want)); \
  } while (0)

#define SAME(a, b) CHECK(loam_fingerprint(a) == loam_fingerprint(b))
#define DIFFERENT(a, b) CHECK(loam_fingerprint(a) != loam_fingerprint(b))


/* The documented hash, computed here independently: 64-bit FNV-1a. */
static uint64_t fnv (const char *s) {
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  for (; *s; s++) h = (h ^ (unsigned char)*s) * UINT64_C(0x100000001b3);
  return h;
}


TEST(trace_normalize_exact) {
  CHECK_NORM("  SELECT  *\n\tFROM \"t\"  WHERE a = 'it''s' AND b = $2 ;  ",
             "SELECT * FROM \"t\" WHERE a = ? AND b = ?");
  CHECK_NORM("select x from t where y in (1,2, 3) and z = true or w = FALSE",
             "select x from t where y in (?) and z = ? or w = ?");
  CHECK_NORM("SELECT '?', \"?\", ?? , E'\\'?', x'0A', B'101', 0x1F, 1.5e-3, .5",
             "SELECT ?, \"?\", ?? , ?, ?, ?, ?, ?, ?");
  CHECK_NORM("SELECT $tag$ it's $1 $tag$, $$x$$, $1", "SELECT ?, ?, ?");
  CHECK_NORM("SELECT a$1, t1.c2 FROM t1", "SELECT a$1, t1.c2 FROM t1");
  CHECK_NORM("SELECT 1 -- 2 'x'\nFROM /* 3 /* nested 4 */ ? */ t",
             "SELECT ? FROM t");
  CHECK_NORM("SELECT a/**/FROM t", "SELECT a FROM t");
  CHECK_NORM("x NOT IN ( -1 , 'a' , $3 ) AND y IN(?)", "x NOT IN (?) AND y IN(?)");
  CHECK_NORM("x IN (a, 1) AND y IN (SELECT 1)", "x IN (a, ?) AND y IN (SELECT ?)");
  CHECK_NORM("x = -1", "x = -?");
  CHECK_NORM("INSERT INTO t VALUES (?1, ?2)", "INSERT INTO t VALUES (?, ?)");
  CHECK_NORM("", "");
  CHECK_NORM(" -- only a comment", "");
  CHECK_NORM("SELECT 'unterminated", "SELECT ?");
}


/*
** Found by fuzzing: of several ';' at the end only the last vanished, so
** "SELECT 1;;" normalised to "SELECT ?;", whose own normal form (and so
** fingerprint) is "SELECT ?": normalising was not idempotent.
*/
TEST(trace_normalize_trailing_semicolons) {
  CHECK_NORM("SELECT 1;; ", "SELECT ?");
  CHECK_NORM("SELECT 1 ; ; -- end\n;", "SELECT ?");
  CHECK_NORM("SELECT 1;;SELECT 2", "SELECT ?;;SELECT ?");
  SAME("SELECT 1;;", "SELECT 1");
}


TEST(trace_normalize_buffer) {
  char b[8];
  memset(b, 'z', sizeof b);
  CHECK_INT(loam_sql_normalize("SELECT  1  FROM t", b, 5), 15);
  CHECK_STR(b, "SELE");
  CHECK(b[5] == 'z');   /* nothing past 'size' */
  CHECK_INT(loam_sql_normalize("SELECT 1", NULL, 0), 8);
  CHECK_INT(loam_sql_normalize("SELECT 1", b, 1), 8);
  CHECK_STR(b, "");
  CHECK_INT(loam_sql_normalize(NULL, b, sizeof b), 0);
  CHECK_STR(b, "");
  CHECK(loam_fingerprint(NULL) == loam_fingerprint(""));
  CHECK(loam_fingerprint("") == fnv(""));
}


TEST(trace_fingerprint_values) {
  const char *same[] = {
    "SELECT * FROM t WHERE a = 1",
    "SELECT * FROM t WHERE a = 'x'",
    "SELECT * FROM t WHERE a = ?",
    "SELECT * FROM t WHERE a = $1",
    "SELECT * FROM t WHERE a = 1.5e3",
    "SELECT * FROM t WHERE a = E'it\\'s'",
    "SELECT * FROM t WHERE a = $q$x$q$",
    "SELECT  *  FROM t\n WHERE a = TRUE -- flag",
    "SELECT * FROM t WHERE a = 2;",
  };
  size_t i;
  for (i = 1; i < sizeof same / sizeof same[0]; i++) SAME(same[0], same[i]);
  SAME("SELECT * FROM t WHERE id IN (1, 2, 3)", "SELECT * FROM t WHERE id IN (?)");
  SAME("SELECT * FROM t WHERE id IN ($1, $2, $3, $4)", "SELECT * FROM t WHERE id IN (7)");
  SAME("SELECT * FROM t WHERE id IN ('a','b')", "SELECT * FROM t WHERE id IN (?)");
}


TEST(trace_fingerprint_shapes) {
  DIFFERENT("SELECT a FROM t", "SELECT b FROM t");
  DIFFERENT("SELECT * FROM t WHERE a = ?", "SELECT * FROM t WHERE a > ?");
  DIFFERENT("SELECT * FROM t WHERE a = ?", "SELECT * FROM u WHERE a = ?");
  DIFFERENT("SELECT \"col 1\" FROM t", "SELECT \"col 2\" FROM t");
  DIFFERENT("SELECT * FROM t WHERE id IN (a, b)", "SELECT * FROM t WHERE id IN (?)");
  DIFFERENT("SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = ?");
  DIFFERENT("SELECT * FROM t WHERE a IS NULL", "SELECT * FROM t WHERE a = ?");
  DIFFERENT("select * from t", "SELECT * FROM t");   /* case is kept */
  /* Literals in comments and names are not values. */
  SAME("SELECT a /* 1 */ FROM t", "SELECT a /* 2 */ FROM t");
  SAME("SELECT a -- 'x'\n FROM t", "SELECT a FROM t");
  DIFFERENT("SELECT \"1\" FROM t", "SELECT \"2\" FROM t");
}


/* Rendered SQL is already a template: its normalised form is its text with '?' placeholders. */
TEST(trace_fingerprint_rendered) {
  loam_error err = LOAM_ERROR_INIT;
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "orders", NULL);
  loam_rendered *sq = NULL, *pg = NULL;
  loam_value ids[3];
  char b[512];
  ids[0] = loam_int(1); ids[1] = loam_int(2); ids[2] = loam_int(3);
  loam_qb_where(st, loam_qb_op(qb, "=", loam_qb_col(qb, NULL, "status"),
                               loam_qb_val(qb, loam_text("paid", 4))));
  loam_qb_where(st, loam_qb_in_list(qb, loam_qb_col(qb, NULL, "customer_id"), ids, 3, 0));
  loam_qb_limit(st, 10);
  CHECK_OK(loam_qb_render(qb, st, LOAM_SQLITE, 0, &sq, &err), &err);
  CHECK_OK(loam_qb_render(qb, st, LOAM_POSTGRES, 0, &pg, &err), &err);
  loam_sql_normalize(loam_rendered_sql(sq, 0, NULL), b, sizeof b);
  CHECK_STR(b, loam_rendered_sql(sq, 0, NULL));
  CHECK(loam_fingerprint(loam_rendered_sql(sq, 0, NULL)) == fnv(b));
  loam_sql_normalize(loam_rendered_sql(pg, 0, NULL), b, sizeof b);
  CHECK(strchr(b, '$') == NULL);
  CHECK(loam_fingerprint(loam_rendered_sql(pg, 0, NULL)) == fnv(b));
  loam_rendered_free(sq);
  loam_rendered_free(pg);
  loam_qb_free(qb);
  loam_error_clear(&err);
}

/* }====================================================================== */
