/*
** test_bulk.c: bulk inserts ('loam_insert_rows', bulk.c and drv_pg_copy.c)
** on SQLite and the real PostgreSQL.  Every test runs its body once per
** backend.  Rows that go in by COPY are compared with the same rows put
** in by plain INSERTs, value for value, in the database itself; chunks,
** constraint violations, values refused before any SQL, transactions and
** the statements sent (seen through the trace hook) are checked on both.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loam.h"
#include "t.h"


/* {======================================================================
** Helpers
** ======================================================================= */

/* What the trace hook saw: statements, the first word of the last one, and how many COPYs. */
typedef struct seen {
  int n, copies, inserts;
  char last[16];
} seen;

static void record (void *ud, const loam_trace_event *ev) {
  seen *s = ud;
  s->n++;
  if (strncmp(ev->sql, "COPY ", 5) == 0) s->copies++;
  if (strncmp(ev->sql, "INSERT ", 7) == 0) s->inserts++;
  snprintf(s->last, sizeof s->last, "%s", ev->sql);
}


/* Opens SQLite (a file, so WAL and transactions are real) or PostgreSQL and runs 'ddl'. */
static loam_conn *open_db (int pg, const char *const *ddl, loam_error *e) {
  loam_conn *c = NULL;
  char url[512];
  if (pg) {
    if (t_pg_url() == NULL) {
      t_fail(__FILE__, __LINE__, "LOAM_TEST_PG is not set; the PostgreSQL tests need a server");
      return NULL;
    }
    snprintf(url, sizeof url, "%s", t_pg_url());
  }
  else snprintf(url, sizeof url, "sqlite:%s/bulk.db", t_tmpdir());
  if (loam_connect(url, NULL, &c, e) != LOAM_OK) {
    t_fail(__FILE__, __LINE__, "connect failed: %s", e->message ? e->message : "");
    return NULL;
  }
  for (; *ddl != NULL; ddl++)
    if (loam_exec(c, *ddl, NULL, 0, NULL, NULL, NULL, e) != LOAM_OK) {
      t_fail(__FILE__, __LINE__, "setup '%s' failed: %s", *ddl, e->message ? e->message : "");
      loam_conn_close(c);
      return NULL;
    }
  return c;
}

/* Runs a body once per backend, SQLite first. */
#define EACH_BACKEND(pg) for (int pg = 0; pg < 2; pg++)

/* }====================================================================== */


/* {======================================================================
** Values go in as INSERT puts them
** ======================================================================= */

#define RT_COLS 8
#define RT_ROWS 150

static const char *const rt_cols[RT_COLS] = { "k", "t", "b", "d", "x", "n", "ts", "j" };

static const char *const rt_lite[] = {
  "DROP TABLE IF EXISTS bulk_rt_a", "DROP TABLE IF EXISTS bulk_rt_b",
  "CREATE TABLE bulk_rt_a (k INTEGER PRIMARY KEY, t TEXT, b BOOLEAN, d REAL, x BLOB, "
  "n NUMERIC(10,2), ts TIMESTAMP, j TEXT)",
  "CREATE TABLE bulk_rt_b (k INTEGER PRIMARY KEY, t TEXT, b BOOLEAN, d REAL, x BLOB, "
  "n NUMERIC(10,2), ts TIMESTAMP, j TEXT)",
  NULL
};

static const char *const rt_pg[] = {
  "DROP TABLE IF EXISTS bulk_rt_a", "DROP TABLE IF EXISTS bulk_rt_b",
  "CREATE TABLE bulk_rt_a (k bigint PRIMARY KEY, t text, b boolean, d double precision, "
  "x bytea, n numeric(10,2), ts timestamptz, j jsonb)",
  "CREATE TABLE bulk_rt_b (k bigint PRIMARY KEY, t text, b boolean, d double precision, "
  "x bytea, n numeric(10,2), ts timestamptz, j jsonb)",
  NULL
};

/* Row 'i' of the round trip, every kind of value and the bytes COPY escapes. */
static void rt_row (int i, int pg, loam_value *v) {
  static const char *const texts[] = {
    "plain", "tab\there", "line\nbreak", "back\\slash", "cr\rhere", "\\N", "", "\\.",
    "caf\xc3\xa9 \xe2\x82\xac", "end\\"
  };
  static const unsigned char blob[] = { 0, 1, '\\', '\t', '\n', 0xff, 0x80, 'x', 0 };
  static const double doubles[] = { 0.1, -0.0, 1e300, 2.5e-310, 123456789.125, -1.0 / 3,
                                    HUGE_VAL, -HUGE_VAL, 0.0, NAN };
  static const char *const nums[] = { "12.50", "-0.01", "99999999.99", "0.00" };
  static const char *const stamps[] = { "2021-01-01 00:00:00+00", "2026-12-04 12:34:56.5+00" };
  static const char *const jsons[] = { "{\"a\": [1, \"x\\ty\"]}", "[]", "\"back\\\\slash\"" };
  const char *t = texts[i % 10];
  v[0] = loam_int(i * 1000003LL);
  v[1] = i % 11 == 0 ? loam_null() : loam_text(t, strlen(t));
  v[2] = i % 7 == 0 ? loam_null() : loam_bool(i % 2);
  /* NaN only where the backend stores it. */
  v[3] = i % 13 == 0 ? loam_null() : loam_double(doubles[i % (pg ? 10 : 9)]);
  v[4] = i % 5 == 0 ? loam_null() : loam_blob(blob, (size_t)(i % (int)sizeof blob));
  v[5] = loam_text(nums[i % 4], strlen(nums[i % 4]));
  v[6] = loam_text(stamps[i % 2], strlen(stamps[i % 2]));
  v[7] = i % 3 == 0 ? loam_null() : loam_text(jsons[i % 3], strlen(jsons[i % 3]));
}

TEST(bulk_rows_go_in_as_insert_puts_them) {
  EACH_BACKEND(pg) {
    loam_error e = LOAM_ERROR_INIT;
    loam_conn *c = open_db(pg, pg ? rt_pg : rt_lite, &e);
    loam_value *v = calloc(RT_ROWS * RT_COLS, sizeof *v);
    seen s = { 0, 0, 0, "" };
    int64_t n = -1;
    int i;
    if (c == NULL) { free(v); return; }
    for (i = 0; i < RT_ROWS; i++) rt_row(i, pg, v + i * RT_COLS);
    loam_conn_set_trace(c, record, &s);
    CHECK_OK(loam_insert_rows(c, "bulk_rt_a", rt_cols, RT_COLS, v, RT_ROWS, &n, &e), &e);
    loam_conn_set_trace(c, NULL, NULL);
    CHECK_INT(n, RT_ROWS);
    /* PostgreSQL took them in one COPY; SQLite in one multi-row INSERT. */
    CHECK_INT(s.n, 1);
    CHECK_INT(s.copies, pg ? 1 : 0);
    CHECK_STR(s.last, pg ? "COPY \"bulk_rt_a" : "INSERT INTO \"bu");
    for (i = 0; i < RT_ROWS; i++)
      CHECK_OK(loam_exec(c, pg ? "INSERT INTO bulk_rt_b VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                               : "INSERT INTO bulk_rt_b VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         v + i * RT_COLS, RT_COLS, NULL, NULL, NULL, &e), &e);
    CHECK_INT(t_scalar(c, "SELECT count(*) FROM bulk_rt_a"), RT_ROWS);
    CHECK_INT(t_scalar(c, "SELECT count(*) FROM (SELECT * FROM bulk_rt_a EXCEPT "
                          "SELECT * FROM bulk_rt_b) AS d"), 0);
    CHECK_INT(t_scalar(c, "SELECT count(*) FROM (SELECT * FROM bulk_rt_b EXCEPT "
                          "SELECT * FROM bulk_rt_a) AS d"), 0);
    /* Bytes and text compare exactly, not only by equality of their type. */
    CHECK_INT(t_scalar(c, "SELECT count(*) FROM bulk_rt_a a JOIN bulk_rt_b b ON a.k = b.k "
                          "WHERE a.x IS NOT DISTINCT FROM b.x AND a.t IS NOT DISTINCT FROM b.t"),
              RT_ROWS);
    free(v);
    loam_conn_close(c);
    loam_error_clear(&e);
  }
}

/* }====================================================================== */


/* {======================================================================
** Chunks and large batches
** ======================================================================= */

static const char *const big_ddl[] = {
  "DROP TABLE IF EXISTS bulk_big",
  "CREATE TABLE bulk_big (a INTEGER NOT NULL, s TEXT NOT NULL, n NUMERIC)",
  NULL
};

static const char *const big_cols[] = { "a", "s", "n" };

/*
** 50,000 rows of three columns: 5 chunks of 10922 rows on SQLite (32766
** parameters), and on PostgreSQL either one COPY of about 1 MB (sent in
** several pieces) or, with a double for the numeric column, which COPY
** would read otherwise than INSERT binds it, 3 chunks of 21845 rows.
*/
static void big_batch (int pg, int doubles) {
  enum { N = 50000 };
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c = open_db(pg, big_ddl, &e);
  loam_value *v = calloc((size_t)N * 3, sizeof *v);
  char (*text)[16] = calloc(N, sizeof *text);
  seen s = { 0, 0, 0, "" };
  int64_t n = -1;
  int i;
  if (c == NULL || v == NULL || text == NULL) goto done;
  for (i = 0; i < N; i++) {
    snprintf(text[i], sizeof text[i], "row %d", i);
    v[i * 3] = loam_int(i);
    v[i * 3 + 1] = loam_text(text[i], strlen(text[i]));
    v[i * 3 + 2] = doubles ? loam_double(i + 0.1) : loam_int(i);
  }
  loam_conn_set_trace(c, record, &s);
  if (loam_insert_rows(c, "bulk_big", big_cols, 3, v, N, &n, &e) != LOAM_OK) {
    t_fail(__FILE__, __LINE__, "insert failed: %s", e.message);
    goto done;
  }
  loam_conn_set_trace(c, NULL, NULL);
  if (n != N) t_fail(__FILE__, __LINE__, "inserted %lld", (long long)n);
  if (pg && !doubles && (s.n != 1 || s.copies != 1))
    t_fail(__FILE__, __LINE__, "COPY expected: %d statements, %d COPY", s.n, s.copies);
  /* BEGIN, the chunks, COMMIT. */
  if ((!pg || doubles) && (s.copies != 0 || s.inserts != (pg ? 3 : 5) || s.n != s.inserts + 2))
    t_fail(__FILE__, __LINE__, "%d INSERTs of %d statements", s.inserts, s.n);
  if (t_scalar(c, "SELECT count(*) FROM bulk_big") != N ||
      t_scalar(c, "SELECT sum(a) FROM bulk_big") != (int64_t)N * (N - 1) / 2 ||
      t_scalar(c, "SELECT count(*) FROM bulk_big WHERE s = 'row ' || a") != N)
    t_fail(__FILE__, __LINE__, "the rows differ from those given");
  if (doubles && t_scalar(c, "SELECT count(*) FROM bulk_big WHERE n = a + 0.1") != N)
    t_fail(__FILE__, __LINE__, "the doubles differ from those given");
done:
  free(v);
  free(text);
  loam_conn_close(c);
  loam_error_clear(&e);
}

TEST(bulk_large_batches_cross_chunks) {
  big_batch(0, 0);
  big_batch(1, 0);
  big_batch(1, 1);
}

TEST(bulk_no_rows_send_nothing) {
  EACH_BACKEND(pg) {
    loam_error e = LOAM_ERROR_INIT;
    loam_conn *c = open_db(pg, big_ddl, &e);
    seen s = { 0, 0, 0, "" };
    int64_t n = -1;
    if (c == NULL) return;
    loam_conn_set_trace(c, record, &s);
    CHECK_OK(loam_insert_rows(c, "bulk_big", big_cols, 3, NULL, 0, &n, &e), &e);
    CHECK_INT(n, 0);
    CHECK_INT(s.n, 0);
    loam_conn_close(c);
  }
}

/* }====================================================================== */


/* {======================================================================
** Errors
** ======================================================================= */

static const char *const con_lite[] = {
  "DROP TABLE IF EXISTS bulk_child", "DROP TABLE IF EXISTS bulk_parent",
  "CREATE TABLE bulk_parent (id INTEGER PRIMARY KEY)",
  "CREATE TABLE bulk_child (k INTEGER CONSTRAINT bulk_child_k_key UNIQUE, "
  "p INTEGER CONSTRAINT bulk_child_p_fkey REFERENCES bulk_parent (id), "
  "v INTEGER NOT NULL, w INTEGER CONSTRAINT bulk_child_w_check CHECK (w >= 0))",
  "INSERT INTO bulk_parent VALUES (1)",
  "INSERT INTO bulk_child VALUES (0, 1, 0, 0)",
  NULL
};

static const char *const con_pg[] = {
  "DROP TABLE IF EXISTS bulk_child", "DROP TABLE IF EXISTS bulk_parent",
  "CREATE TABLE bulk_parent (id integer PRIMARY KEY)",
  "CREATE TABLE bulk_child (k integer CONSTRAINT bulk_child_k_key UNIQUE, "
  "p integer CONSTRAINT bulk_child_p_fkey REFERENCES bulk_parent (id), "
  "v integer NOT NULL, w integer CONSTRAINT bulk_child_w_check CHECK (w >= 0))",
  "INSERT INTO bulk_parent VALUES (1)",
  "INSERT INTO bulk_child VALUES (0, 1, 0, 0)",
  NULL
};

static const char *const con_cols[] = { "k", "p", "v", "w" };

/* 'n' good rows of bulk_child: keys from 1, the one parent, v and w counting from 0. */
static void child_rows (loam_value *v, int n) {
  int i;
  for (i = 0; i < n; i++) {
    v[i * 4] = loam_int(i + 1);
    v[i * 4 + 1] = loam_int(1);
    v[i * 4 + 2] = loam_int(i);
    v[i * 4 + 3] = loam_int(i);
  }
}

/*
** 'nrows' good rows (keys from 1), then row 'bad' (from 1) spoilt in
** column 'col' with 'value', inserted in one call: the code and
** constraint must be those of the INSERT, and no row may stay.
*/
static void violation (int pg, int nrows, int bad, int col, loam_value value,
                       loam_errcode code, const char *constraint) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c = open_db(pg, pg ? con_pg : con_lite, &e);
  loam_value *v = calloc((size_t)nrows * 4, sizeof *v);
  if (c == NULL || v == NULL) goto done;
  child_rows(v, nrows);
  v[(bad - 1) * 4 + col] = value;
  if (loam_insert_rows(c, "bulk_child", con_cols, 4, v, nrows, NULL, &e) != LOAM_ERROR)
    t_fail(__FILE__, __LINE__, "%s: row %d of %d went in", constraint, bad, nrows);
  else if (e.code != code)
    t_fail(__FILE__, __LINE__, "%s: code %s (%s)", constraint, loam_errcode_name(e.code),
           e.message);
  else if (pg && code != LOAM_E_NOT_NULL_VIOLATION &&
           (e.constraint == NULL || strcmp(e.constraint, constraint) != 0))
    t_fail(__FILE__, __LINE__, "%s: constraint %s", constraint, e.constraint);
  else if (code == LOAM_E_NOT_NULL_VIOLATION && (e.column == NULL || strcmp(e.column, "v") != 0))
    t_fail(__FILE__, __LINE__, "%s: column %s", constraint, e.column);
  else if (pg && strcmp(e.table, "bulk_child") != 0)
    t_fail(__FILE__, __LINE__, "%s: table %s", constraint, e.table);
  else if (!pg && code == LOAM_E_CHECK_VIOLATION && strcmp(e.constraint, constraint) != 0)
    t_fail(__FILE__, __LINE__, "%s: constraint %s", constraint, e.constraint);
  else if (!pg && code == LOAM_E_UNIQUE_VIOLATION &&
           (strcmp(e.table, "bulk_child") != 0 || strcmp(e.column, "k") != 0))
    t_fail(__FILE__, __LINE__, "%s: table %s column %s", constraint, e.table, e.column);
  else if (t_scalar(c, "SELECT count(*) FROM bulk_child") != 1)
    t_fail(__FILE__, __LINE__, "%s: rows stayed behind", constraint);
  /* The connection goes on. */
  else if (loam_exec(c, "INSERT INTO bulk_child VALUES (-1, 1, 0, 0)", NULL, 0, NULL, NULL,
                     NULL, &e) != LOAM_OK)
    t_fail(__FILE__, __LINE__, "%s: connection unusable: %s", constraint, e.message);
done:
  free(v);
  loam_conn_close(c);
  loam_error_clear(&e);
}

/*
** Each violation in a small batch (one INSERT), in a batch that takes
** COPY on PostgreSQL, and on SQLite in the last of three chunks.
*/
TEST(bulk_constraint_violations_raise_as_insert) {
  EACH_BACKEND(pg) {
    static const int sizes[] = { 10, 200, 20000 };
    int k;
    for (k = 0; k < 3; k++) {
      int n = sizes[k];
      violation(pg, n, n, 0, loam_int(0), LOAM_E_UNIQUE_VIOLATION, "bulk_child_k_key");
      violation(pg, n, n / 2 + 1, 0, loam_int(1), LOAM_E_UNIQUE_VIOLATION, "bulk_child_k_key");
      violation(pg, n, n, 1, loam_int(2), LOAM_E_FOREIGN_KEY_VIOLATION, "bulk_child_p_fkey");
      violation(pg, n, n, 2, loam_null(), LOAM_E_NOT_NULL_VIOLATION, "the not-null of v");
      violation(pg, n, n, 3, loam_int(-1), LOAM_E_CHECK_VIOLATION, "bulk_child_w_check");
    }
  }
}

TEST(bulk_pg_not_null_names_the_column) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c = open_db(1, con_pg, &e);
  loam_value v[200 * 4];
  if (c == NULL) return;
  child_rows(v, 200);
  v[150 * 4 + 2] = loam_null();
  CHECK_INT(loam_insert_rows(c, "bulk_child", con_cols, 4, v, 200, NULL, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_NOT_NULL_VIOLATION);
  CHECK_STR(e.sqlstate, "23502");
  CHECK_STR(e.column, "v");
  CHECK_HAS(e.message, "null value in column \"v\"");
  loam_conn_close(c);
  loam_error_clear(&e);
}

/* A data error of the server (an integer that does not fit) in a COPY and in an INSERT. */
TEST(bulk_pg_out_of_range_is_data_error) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c = open_db(1, con_pg, &e);
  loam_value v[100 * 4];
  int n;
  if (c == NULL) return;
  for (n = 10; n <= 100; n += 90) {
    child_rows(v, n);
    v[(n - 1) * 4 + 2] = loam_int(5000000000LL);
    CHECK_INT(loam_insert_rows(c, "bulk_child", con_cols, 4, v, n, NULL, &e), LOAM_ERROR);
    CHECK_INT(e.code, LOAM_E_DATA_ERROR);
    CHECK_STR(e.sqlstate, "22003");
    CHECK_INT(t_scalar(c, "SELECT count(*) FROM bulk_child"), 1);
  }
  loam_conn_close(c);
  loam_error_clear(&e);
}

/* Types the columns would take otherwise: COPY is declined and INSERT decides, as always. */
TEST(bulk_pg_mismatched_types_fail_as_insert) {
  loam_error e = LOAM_ERROR_INIT, want = LOAM_ERROR_INIT;
  loam_conn *c = open_db(1, con_pg, &e);
  loam_value v[100 * 4];
  seen s = { 0, 0, 0, "" };
  int i;
  if (c == NULL) return;
  child_rows(v, 100);
  for (i = 0; i < 100; i++) v[i * 4 + 2] = loam_bool(1);   /* into an integer column */
  CHECK_INT(loam_exec(c, "INSERT INTO bulk_child (k, p, v, w) VALUES ($1, $2, $3, $4)", v, 4,
                      NULL, NULL, NULL, &want), LOAM_ERROR);
  loam_conn_set_trace(c, record, &s);
  CHECK_INT(loam_insert_rows(c, "bulk_child", con_cols, 4, v, 100, NULL, &e), LOAM_ERROR);
  CHECK_INT(s.copies, 0);
  CHECK_INT(e.code, want.code);
  CHECK_STR(e.sqlstate, want.sqlstate);
  CHECK_STR(e.message, want.message);
  loam_conn_close(c);
  loam_error_clear(&e);
  loam_error_clear(&want);
}

/* Unknown tables and columns: the INSERT's errors, whichever road was open. */
TEST(bulk_undefined_table_and_column) {
  EACH_BACKEND(pg) {
    loam_error e = LOAM_ERROR_INIT;
    loam_conn *c = open_db(pg, pg ? con_pg : con_lite, &e);
    loam_value v[100 * 4];
    static const char *const bad[] = { "k", "p", "nope", "w" };
    int i, n;
    if (c == NULL) return;
    for (i = 0; i < 100 * 4; i++) v[i] = loam_int(i);
    for (n = 1; n <= 100; n += 99) {
      CHECK_INT(loam_insert_rows(c, "bulk_missing", con_cols, 4, v, n, NULL, &e), LOAM_ERROR);
      CHECK_INT(e.code, LOAM_E_UNDEFINED_TABLE);
      CHECK_HAS(e.message, "bulk_missing");
      CHECK_INT(loam_insert_rows(c, "bulk_child", bad, 4, v, n, NULL, &e), LOAM_ERROR);
      CHECK_INT(e.code, pg ? LOAM_E_UNDEFINED_COLUMN : LOAM_E_DATABASE_ERROR);
      CHECK_HAS(e.message, "nope");
    }
    loam_conn_close(c);
    loam_error_clear(&e);
  }
}

/* Refused before any SQL: nothing reaches the trace hook. */
TEST(bulk_values_refused_before_sql) {
  EACH_BACKEND(pg) {
    loam_error e = LOAM_ERROR_INIT;
    loam_conn *c = open_db(pg, pg ? con_pg : con_lite, &e);
    loam_value v[100 * 4];
    seen s = { 0, 0, 0, "" };
    static const char *const quoted[] = { "k", "p", "", "w" };
    static const char *const nulcol[] = { "k", NULL, "v", "w" };
    int i;
    if (c == NULL) return;
    for (i = 0; i < 100 * 4; i++) v[i] = loam_int(i);
    loam_conn_set_trace(c, record, &s);
    v[7] = loam_text("a\0b", 3);
    if (pg) {
      CHECK_INT(loam_insert_rows(c, "bulk_child", con_cols, 4, v, 100, NULL, &e), LOAM_ERROR);
      CHECK_INT(e.code, LOAM_E_DATA_ERROR);
      CHECK_STR(e.message, "INSERT row 2, column w: text contains a NUL byte; bind it as a blob");
    }
    v[7] = loam_double(NAN);
    if (!pg) {
      CHECK_INT(loam_insert_rows(c, "bulk_child", con_cols, 4, v, 100, NULL, &e), LOAM_ERROR);
      CHECK_INT(e.code, LOAM_E_DATA_ERROR);
      CHECK_STR(e.message, "INSERT row 2, column w: SQLite cannot store NaN");
    }
    v[7].type = (loam_type)42;
    CHECK_INT(loam_insert_rows(c, "bulk_child", con_cols, 4, v, 100, NULL, &e), LOAM_ERROR);
    CHECK_INT(e.code, LOAM_E_MISUSE);
    CHECK_STR(e.message, "INSERT row 2, column w: unknown value type (42)");
    v[7] = loam_text(NULL, 3);
    CHECK_INT(loam_insert_rows(c, "bulk_child", con_cols, 4, v, 100, NULL, &e), LOAM_ERROR);
    CHECK_INT(e.code, LOAM_E_MISUSE);
    v[7] = loam_int(7);
    CHECK_INT(loam_insert_rows(c, "bulk_child", quoted, 4, v, 100, NULL, &e), LOAM_ERROR);
    CHECK_INT(e.code, LOAM_E_MISUSE);
    CHECK_INT(loam_insert_rows(c, "bulk_child", nulcol, 4, v, 100, NULL, &e), LOAM_ERROR);
    CHECK_INT(e.code, LOAM_E_MISUSE);
    CHECK_INT(loam_insert_rows(c, NULL, con_cols, 4, v, 100, NULL, &e), LOAM_ERROR);
    CHECK_INT(e.code, LOAM_E_MISUSE);
    CHECK_INT(loam_insert_rows(c, "bulk_child", con_cols, 0, v, 100, NULL, &e), LOAM_ERROR);
    CHECK_INT(e.code, LOAM_E_MISUSE);
    CHECK_INT(loam_insert_rows(c, "bulk_child", con_cols, 4, NULL, 100, NULL, &e), LOAM_ERROR);
    CHECK_INT(e.code, LOAM_E_MISUSE);
    CHECK_INT(loam_insert_rows(NULL, "bulk_child", con_cols, 4, v, 100, NULL, &e), LOAM_ERROR);
    CHECK_INT(e.code, LOAM_E_MISUSE);
    CHECK_INT(s.n, 0);
    CHECK_INT(t_scalar(c, "SELECT count(*) FROM bulk_child"), 1);
    loam_conn_close(c);
    loam_error_clear(&e);
  }
}

/* A stream owns the PostgreSQL connection: the bulk insert waits its turn. */
TEST(bulk_pg_refused_while_streaming) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c = open_db(1, con_pg, &e);
  loam_value v[100 * 4];
  loam_stmt *s = NULL;
  int i;
  if (c == NULL) return;
  for (i = 0; i < 100 * 4; i++) v[i] = loam_int(i + 10);
  CHECK_OK(loam_query(c, "SELECT generate_series(1, 10)", NULL, 0, LOAM_STREAM, &s, &e), &e);
  CHECK_INT(loam_insert_rows(c, "bulk_child", con_cols, 4, v, 100, NULL, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_HAS(e.message, "streaming");
  loam_stmt_close(s);
  loam_conn_close(c);
  loam_error_clear(&e);
}

/* }====================================================================== */


/* {======================================================================
** Transactions
** ======================================================================= */

/*
** Inside a level the rows join the transaction: a rollback takes them
** back, and a failed bulk insert leaves the transaction's earlier work
** to the caller's rollback, as any failed statement does.
*/
TEST(bulk_inside_a_transaction) {
  EACH_BACKEND(pg) {
    loam_error e = LOAM_ERROR_INIT;
    loam_conn *c = open_db(pg, pg ? con_pg : con_lite, &e);
    loam_value v[100 * 4];
    int64_t n = 0;
    if (c == NULL) return;
    child_rows(v, 100);
    CHECK_OK(loam_tx_begin(c, &e), &e);
    CHECK_OK(loam_insert_rows(c, "bulk_child", con_cols, 4, v, 100, &n, &e), &e);
    CHECK_INT(n, 100);
    CHECK_INT(t_scalar(c, "SELECT count(*) FROM bulk_child"), 101);
    CHECK_OK(loam_tx_rollback(c, &e), &e);
    CHECK_INT(t_scalar(c, "SELECT count(*) FROM bulk_child"), 1);
    CHECK_OK(loam_tx_begin(c, &e), &e);
    CHECK_OK(loam_insert_rows(c, "bulk_child", con_cols, 4, v, 50, &n, &e), &e);
    CHECK_INT(loam_insert_rows(c, "bulk_child", con_cols, 4, v, 100, &n, &e), LOAM_ERROR);
    CHECK_INT(e.code, LOAM_E_UNIQUE_VIOLATION);
    CHECK_OK(loam_tx_rollback(c, &e), &e);
    CHECK_INT(t_scalar(c, "SELECT count(*) FROM bulk_child"), 1);
    CHECK_OK(loam_tx_begin(c, &e), &e);
    CHECK_OK(loam_insert_rows(c, "bulk_child", con_cols, 4, v, 100, &n, &e), &e);
    CHECK_OK(loam_tx_commit(c, &e), &e);
    CHECK_INT(t_scalar(c, "SELECT count(*) FROM bulk_child"), 101);
    loam_conn_close(c);
    loam_error_clear(&e);
  }
}

/* }====================================================================== */
