/*
** test_pg.c: the PostgreSQL driver against a real server.
**
** Every test connects to the cluster named by LOAM_TEST_PG and fails when
** there is none.  Each test owns its tables (named after the test) and
** drops them first, so the suite can run again on the same database.
** Error tests provoke the real failure and check the code, the SQLSTATE,
** the names the server reports, and that nothing was half-applied.
*/
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "loam.h"
#include "conn/conn_int.h"
#include "sql/sql_int.h"
#include "t.h"


/* Declares 'url' or fails the test: PostgreSQL tests never skip. */
#define PG_URL(url) \
  const char *url = t_pg_url(); \
  if (url == NULL) { \
    t_fail(__FILE__, __LINE__, "LOAM_TEST_PG is not set; the PostgreSQL tests need a server"); \
    return; \
  }

/* Declares and opens connection 'c' with a statement cache of 'cache' (-1: default). */
#define PG_OPEN(c, cache, e) \
  loam_conn *c = NULL; \
  do { \
    loam_conn_opts o_ = LOAM_CONN_OPTS_INIT; \
    PG_URL(url_) \
    o_.statement_cache = (cache); \
    CHECK_OK(loam_connect(url_, &o_, &c, (e)), (e)); \
  } while (0)

#define EXEC(c, sql, e) CHECK_OK(loam_exec((c), (sql), NULL, 0, NULL, NULL, NULL, (e)), (e))

/* Runs 'sql' and steps to its first row into statement 's'. */
#define FIRST_ROW(c, s, sql, p, n, e) \
  loam_stmt *s = NULL; \
  CHECK_OK(loam_query((c), (sql), (p), (n), 0, &s, (e)), (e)); \
  CHECK_INT(loam_step(s, (e)), LOAM_ROW)


/* The single integer 'sql' returns, or 'fallback' on any failure. */
static int64_t scalar (loam_conn *c, const char *sql, int64_t fallback) {
  loam_stmt *s;
  loam_value v;
  int64_t r = fallback;
  if (loam_query(c, sql, NULL, 0, 0, &s, NULL) != LOAM_OK) return fallback;
  if (loam_step(s, NULL) == LOAM_ROW && loam_column(s, 0, &v) == LOAM_OK && v.type == LOAM_INT)
    r = v.u.i;
  loam_stmt_close(s);
  return r;
}

/* Server-side prepared statements of this session. */
static int64_t server_prepared (loam_conn *c) {
  return scalar(c, "SELECT count(*) FROM pg_prepared_statements", -1);
}


TEST(pg_connect_close) {
  loam_error e = LOAM_ERROR_INIT;
  PG_OPEN(c, -1, &e);
  CHECK_INT(loam_conn_backend(c), LOAM_POSTGRES);
  CHECK_INT(scalar(c, "SELECT 1", 0), 1);
  loam_conn_close(c);
  loam_error_clear(&e);
}


/*
** Destructors take NULL, and a statement outlives the connection it was
** made on: stepping it then is misuse, and freeing it is still fine.  The
** server must see the session end, and a statement from a second
** connection must not be touched by closing the first.
*/
TEST(pg_close_null) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s = NULL, *other = NULL;
  int64_t pid;
  PG_OPEN(c, -1, &e);
  PG_OPEN(c2, -1, &e);
  loam_conn_close(NULL);
  loam_stmt_close(NULL);
  CHECK_INT(loam_conn_backend(NULL), 0);
  CHECK_INT(loam_conn_cached_statements(NULL), 0);
  CHECK_INT(loam_step(NULL, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_STR(e.message, "attempt to use a closed statement");
  pid = scalar(c, "SELECT pg_backend_pid()", -1);
  CHECK(pid > 0);
  CHECK_OK(loam_query(c, "SELECT 1", NULL, 0, 0, &s, &e), &e);
  CHECK_OK(loam_query(c2, "SELECT 2", NULL, 0, 0, &other, &e), &e);
  loam_conn_close(c);
  CHECK_INT(loam_step(s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_STR(e.message, "the statement's connection was closed");
  loam_stmt_close(s);
  CHECK_INT(loam_step(other, &e), LOAM_ROW);
  loam_stmt_close(other);
  /* The backend of the closed connection is gone (PQfinish sent Terminate). */
  {
    loam_value p = loam_int(pid);
    int64_t gone = -1;
    int i;
    for (i = 0; i < 1000 && gone != 0; i++) {   /* up to ten seconds */
      loam_stmt *q = NULL;
      CHECK_OK(loam_query(c2, "SELECT count(*) FROM pg_stat_activity WHERE pid = ?", &p, 1, 0,
                          &q, &e), &e);
      if (loam_step(q, &e) == LOAM_ROW) {
        loam_value v;
        loam_column(q, 0, &v);
        gone = v.u.i;
      }
      loam_stmt_close(q);
      if (gone != 0) {
        struct timespec ts = { 0, 10000000 };
        nanosleep(&ts, NULL);
      }
    }
    CHECK_INT(gone, 0);
  }
  loam_conn_close(c2);
  loam_error_clear(&e);
}


TEST(pg_client_encoding_is_utf8) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value v;
  PG_OPEN(c, -1, &e);
  FIRST_ROW(c, s, "SHOW client_encoding", NULL, 0, &e);
  CHECK_OK(loam_column(s, 0, &v), &e);
  CHECK_STR(v.u.s.ptr, "UTF8");
  loam_stmt_close(s);
  loam_conn_close(c);
}


TEST(pg_params_round_trip) {
  static const char utf8[] = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x8c\xb1";
  static const unsigned char blob[] = { 0x00, 0xff, 0x10, 0x00, 0x7f, 0x80 };
  loam_error e = LOAM_ERROR_INIT;
  loam_value p[11], v;
  loam_stmt *s;
  int i;
  PG_OPEN(c, -1, &e);
  p[0] = loam_null();
  p[1] = loam_bool(1);
  p[2] = loam_bool(0);
  p[3] = loam_int(INT64_MAX);
  p[4] = loam_int(INT64_MIN);
  p[5] = loam_double(0.1);
  p[6] = loam_double(INFINITY);
  p[7] = loam_double(-INFINITY);
  p[8] = loam_double(NAN);
  p[9] = loam_text(utf8, strlen(utf8));
  p[10] = loam_blob(blob, sizeof blob);
  CHECK_OK(loam_query(c, "SELECT ? AS a, ? AS b, ? AS c, ? AS d, ? AS e, ? AS f, ? AS g, "
                         "? AS h, ? AS i, ? AS j, ? AS k", p, 11, 0, &s, &e), &e);
  CHECK_INT(loam_column_count(s), 11);
  CHECK_STR(loam_column_name(s, 0), "a");
  CHECK_STR(loam_column_name(s, 10), "k");
  CHECK(loam_column_name(s, 11) == NULL);
  CHECK_INT(loam_step(s, &e), LOAM_ROW);
  for (i = 0; i < 11; i++) CHECK_OK(loam_column(s, i, &v), &e);
  CHECK_OK(loam_column(s, 0, &v), &e);
  CHECK_INT(v.type, LOAM_NULL);
  CHECK_OK(loam_column(s, 1, &v), &e);
  CHECK_INT(v.type, LOAM_BOOL);
  CHECK_INT(v.u.b, 1);
  CHECK_OK(loam_column(s, 2, &v), &e);
  CHECK_INT(v.type, LOAM_BOOL);
  CHECK_INT(v.u.b, 0);
  CHECK_OK(loam_column(s, 3, &v), &e);
  CHECK_INT(v.type, LOAM_INT);
  CHECK(v.u.i == INT64_MAX);
  CHECK_OK(loam_column(s, 4, &v), &e);
  CHECK_INT(v.type, LOAM_INT);
  CHECK(v.u.i == INT64_MIN);
  CHECK_OK(loam_column(s, 5, &v), &e);
  CHECK_INT(v.type, LOAM_DOUBLE);
  CHECK(v.u.d == 0.1);
  CHECK_OK(loam_column(s, 6, &v), &e);
  CHECK(v.type == LOAM_DOUBLE && isinf(v.u.d) && v.u.d > 0);
  CHECK_OK(loam_column(s, 7, &v), &e);
  CHECK(v.type == LOAM_DOUBLE && isinf(v.u.d) && v.u.d < 0);
  CHECK_OK(loam_column(s, 8, &v), &e);
  CHECK(v.type == LOAM_DOUBLE && isnan(v.u.d));
  CHECK_OK(loam_column(s, 9, &v), &e);
  CHECK_INT(v.type, LOAM_TEXT);
  CHECK_INT(v.u.s.len, strlen(utf8));
  CHECK_STR(v.u.s.ptr, utf8);
  CHECK_OK(loam_column(s, 10, &v), &e);
  CHECK_INT(v.type, LOAM_BLOB);
  CHECK_INT(v.u.s.len, sizeof blob);
  CHECK(memcmp(v.u.s.ptr, blob, sizeof blob) == 0);
  CHECK_INT(loam_step(s, &e), LOAM_DONE);
  CHECK_INT(loam_stmt_changes(s), 0);
  loam_stmt_close(s);
  loam_conn_close(c);
}


TEST(pg_empty_text_and_blob_are_not_null) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value p[4], v;
  PG_OPEN(c, -1, &e);
  p[0] = loam_text(NULL, 0);
  p[1] = loam_blob(NULL, 0);
  p[2] = p[0];
  p[3] = p[1];
  FIRST_ROW(c, s, "SELECT ? AS t, ? AS b, ?::text IS NULL, ?::bytea IS NULL", p, 4, &e);
  CHECK_OK(loam_column(s, 0, &v), &e);
  CHECK_INT(v.type, LOAM_TEXT);
  CHECK_INT(v.u.s.len, 0);
  CHECK_OK(loam_column(s, 1, &v), &e);
  CHECK_INT(v.type, LOAM_BLOB);
  CHECK_INT(v.u.s.len, 0);
  CHECK_OK(loam_column(s, 2, &v), &e);
  CHECK(v.type == LOAM_BOOL && v.u.b == 0);
  CHECK_OK(loam_column(s, 3, &v), &e);
  CHECK(v.type == LOAM_BOOL && v.u.b == 0);
  loam_stmt_close(s);
  loam_conn_close(c);
}


TEST(pg_result_column_types) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value v;
  PG_OPEN(c, -1, &e);
  FIRST_ROW(c, s,
            "SELECT 7::int2 AS i2, 2147483647::int4 AS i4, '-9223372036854775808'::int8 AS i8, "
            "true AS b, 2.5::float8 AS f8, 0.25::float4 AS f4, 'NaN'::float8 AS nan, "
            "'-Infinity'::float8 AS ninf, 12345678901234567890.0123::numeric AS n, "
            "'\\x00ff01'::bytea AS by, '2024-02-29'::date AS d, '{\"a\": [1]}'::jsonb AS j, "
            "NULL::int4 AS nul, 'a b'::varchar AS vc, 1259::oid AS o, '\\x'::bytea AS eb",
            NULL, 0, &e);
  CHECK_INT(loam_column_count(s), 16);
  CHECK_STR(loam_column_name(s, 8), "n");
  CHECK_OK(loam_column(s, 0, &v), &e);
  CHECK(v.type == LOAM_INT && v.u.i == 7);
  CHECK_OK(loam_column(s, 1, &v), &e);
  CHECK(v.type == LOAM_INT && v.u.i == 2147483647);
  CHECK_OK(loam_column(s, 2, &v), &e);
  CHECK(v.type == LOAM_INT && v.u.i == INT64_MIN);
  CHECK_OK(loam_column(s, 3, &v), &e);
  CHECK(v.type == LOAM_BOOL && v.u.b == 1);
  CHECK_OK(loam_column(s, 4, &v), &e);
  CHECK(v.type == LOAM_DOUBLE && v.u.d == 2.5);
  CHECK_OK(loam_column(s, 5, &v), &e);
  CHECK(v.type == LOAM_DOUBLE && v.u.d == 0.25);
  CHECK_OK(loam_column(s, 6, &v), &e);
  CHECK(v.type == LOAM_DOUBLE && isnan(v.u.d));
  CHECK_OK(loam_column(s, 7, &v), &e);
  CHECK(v.type == LOAM_DOUBLE && isinf(v.u.d) && v.u.d < 0);
  CHECK_OK(loam_column(s, 8, &v), &e);
  CHECK_INT(v.type, LOAM_TEXT);
  CHECK_STR(v.u.s.ptr, "12345678901234567890.0123");
  CHECK_OK(loam_column(s, 9, &v), &e);
  CHECK_INT(v.type, LOAM_BLOB);
  CHECK(v.u.s.len == 3 && memcmp(v.u.s.ptr, "\x00\xff\x01", 3) == 0);
  CHECK_OK(loam_column(s, 10, &v), &e);
  CHECK_INT(v.type, LOAM_TEXT);
  CHECK_STR(v.u.s.ptr, "2024-02-29");
  CHECK_OK(loam_column(s, 11, &v), &e);
  CHECK_INT(v.type, LOAM_TEXT);
  CHECK_STR(v.u.s.ptr, "{\"a\": [1]}");
  CHECK_OK(loam_column(s, 12, &v), &e);
  CHECK_INT(v.type, LOAM_NULL);
  CHECK_OK(loam_column(s, 13, &v), &e);
  CHECK(v.type == LOAM_TEXT && v.u.s.len == 3);
  CHECK_OK(loam_column(s, 14, &v), &e);
  CHECK(v.type == LOAM_INT && v.u.i == 1259);
  CHECK_OK(loam_column(s, 15, &v), &e);
  CHECK(v.type == LOAM_BLOB && v.u.s.len == 0);
  CHECK_INT(loam_step(s, &e), LOAM_DONE);
  loam_stmt_close(s);
  loam_conn_close(c);
}


TEST(pg_text_param_is_inferred) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value p[2], v;
  PG_OPEN(c, -1, &e);
  p[0] = loam_text("2024-03-01", 10);
  p[1] = loam_text("{\"k\": 2}", 8);
  FIRST_ROW(c, s, "SELECT ?::date - '2024-02-01'::date AS days, "
                  "(CAST(? AS jsonb) ->> 'k')::int AS k", p, 2, &e);
  CHECK_OK(loam_column(s, 0, &v), &e);
  CHECK(v.type == LOAM_INT && v.u.i == 29);
  CHECK_OK(loam_column(s, 1, &v), &e);
  CHECK(v.type == LOAM_INT && v.u.i == 2);
  loam_stmt_close(s);
  loam_conn_close(c);
}


TEST(pg_bytea_rows_one_after_another) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s;
  loam_value v, w;
  int n = 0;
  PG_OPEN(c, -1, &e);
  CHECK_OK(loam_query(c, "SELECT decode(repeat('ab', i), 'hex') AS x, "
                         "decode(repeat('00', i), 'hex') AS y FROM generate_series(1, 50) i",
                      NULL, 0, 0, &s, &e), &e);
  while (loam_step(s, &e) == LOAM_ROW) {
    n++;
    CHECK_OK(loam_column(s, 0, &v), &e);
    CHECK_OK(loam_column(s, 1, &w), &e);
    CHECK(v.type == LOAM_BLOB && v.u.s.len == (size_t)n && (unsigned char)v.u.s.ptr[0] == 0xab);
    CHECK(w.type == LOAM_BLOB && w.u.s.len == (size_t)n && w.u.s.ptr[n - 1] == 0);
  }
  CHECK_INT(n, 50);
  loam_stmt_close(s);
  loam_conn_close(c);
}


TEST(pg_placeholders_skip_literals_identifiers_comments) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value p[1], v;
  PG_OPEN(c, -1, &e);
  p[0] = loam_int(42);
  FIRST_ROW(c, s, "SELECT '?' AS q, /* ? */ ? AS v, E'\\'?' AS esc, $$?$$ AS dq, "
                  "1 AS \"?\" -- ?\n", p, 1, &e);
  CHECK_OK(loam_column(s, 0, &v), &e);
  CHECK_STR(v.u.s.ptr, "?");
  CHECK_OK(loam_column(s, 1, &v), &e);
  CHECK(v.type == LOAM_INT && v.u.i == 42);
  CHECK_OK(loam_column(s, 2, &v), &e);
  CHECK_STR(v.u.s.ptr, "'?");
  CHECK_OK(loam_column(s, 3, &v), &e);
  CHECK_STR(v.u.s.ptr, "?");
  CHECK_STR(loam_column_name(s, 4), "?");
  loam_stmt_close(s);
  loam_conn_close(c);
}


TEST(pg_dollar_placeholders) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value p[2], v;
  PG_OPEN(c, -1, &e);
  p[0] = loam_int(3);
  p[1] = loam_int(4);
  FIRST_ROW(c, s, "SELECT $2 * 10 + $1 AS v", p, 2, &e);
  CHECK_OK(loam_column(s, 0, &v), &e);
  CHECK(v.type == LOAM_INT && v.u.i == 43);
  loam_stmt_close(s);
  loam_conn_close(c);
}


TEST(pg_double_question_mark_is_jsonb_operator) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value p[2], v;
  PG_OPEN(c, -1, &e);
  p[0] = loam_text("{\"a\": 1}", 8);
  p[1] = loam_text("a", 1);
  FIRST_ROW(c, s, "SELECT CAST(? AS jsonb) ?? ? AS has", p, 2, &e);
  CHECK_OK(loam_column(s, 0, &v), &e);
  CHECK(v.type == LOAM_BOOL && v.u.b == 1);
  loam_stmt_close(s);
  loam_conn_close(c);
}


TEST(pg_param_count_mismatch) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value p[1];
  loam_stmt *s = (loam_stmt *)&e;
  PG_OPEN(c, -1, &e);
  p[0] = loam_int(1);
  CHECK_INT(loam_query(c, "SELECT ? AS a, ? AS b", p, 1, 0, &s, &e), LOAM_ERROR);
  CHECK(s == NULL);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_STR(e.message, "statement takes 2 parameters, got 1");
  CHECK_INT(loam_query(c, "SELECT 1", p, 1, 0, &s, &e), LOAM_ERROR);
  CHECK_STR(e.message, "statement takes 0 parameters, got 1");
  CHECK_INT(loam_query(c, "SELECT $1", NULL, 0, 0, &s, &e), LOAM_ERROR);
  CHECK_STR(e.message, "statement takes 1 parameter, got 0");
  /* The same text runs once the count is right, cached or not. */
  CHECK_INT(scalar(c, "SELECT 5", 0), 5);
  loam_conn_close(c);
  loam_error_clear(&e);
}


TEST(pg_two_statements_refused) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s;
  PG_OPEN(c, -1, &e);
  CHECK_INT(loam_query(c, "SELECT 1; SELECT 2", NULL, 0, 0, &s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_HAS(e.message, "more than one statement");
  loam_conn_close(c);
  loam_error_clear(&e);
}


TEST(pg_text_with_nul_is_data_error) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value p[2];
  loam_stmt *s;
  PG_OPEN(c, 2, &e);
  p[0] = loam_int(1);
  p[1] = loam_text("a\0b", 3);
  CHECK_INT(loam_query(c, "SELECT ?, ?", p, 2, 0, &s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_DATA_ERROR);
  CHECK_STR(e.message, "parameter 2: text contains a NUL byte; bind it as a blob");
  CHECK_INT(loam_conn_cached_statements(c), 0);
  /* Refused on a cached statement too, which stays evictable afterwards. */
  p[1] = loam_text("ab", 2);
  CHECK_OK(loam_exec(c, "SELECT ?, ?", p, 2, NULL, NULL, NULL, &e), &e);
  p[1] = loam_text("a\0b", 3);
  CHECK_INT(loam_query(c, "SELECT ?, ?", p, 2, 0, &s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_DATA_ERROR);
  /* The refused run left the entry usable: the next run executes it a second time. */
  p[1] = loam_text("cd", 2);
  CHECK_OK(loam_exec(c, "SELECT ?, ?", p, 2, NULL, NULL, NULL, &e), &e);
  CHECK_INT(scalar(c, "SELECT generic_plans + custom_plans FROM pg_prepared_statements "
                      "WHERE statement = 'SELECT $1, $2'", -1), 2);
  p[1] = loam_blob("a\0b", 3);
  CHECK_OK(loam_query(c, "SELECT ?, ?", p, 2, 0, &s, &e), &e);
  loam_stmt_close(s);
  loam_conn_close(c);
  loam_error_clear(&e);
}


TEST(pg_empty_statement) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s;
  PG_OPEN(c, -1, &e);
  CHECK_OK(loam_query(c, "-- nothing to run", NULL, 0, 0, &s, &e), &e);
  CHECK_INT(loam_column_count(s), 0);
  CHECK_INT(loam_step(s, &e), LOAM_DONE);
  CHECK_INT(loam_stmt_changes(s), 0);
  loam_stmt_close(s);
  loam_conn_close(c);
}


/* Sets up parent/child tables 'pg_cv_parent' and 'pg_cv_child' with one constraint of each kind. */
static int constraint_tables (loam_conn *c, loam_error *e) {
  static const char *const ddl[] = {
    "DROP TABLE IF EXISTS pg_cv_child",
    "DROP TABLE IF EXISTS pg_cv_parent",
    ("CREATE TABLE pg_cv_parent (id int PRIMARY KEY, email text NOT NULL "
     "CONSTRAINT pg_cv_email_key UNIQUE, age int CONSTRAINT pg_cv_age_check CHECK (age >= 0), "
     "slot int, CONSTRAINT pg_cv_slot_excl EXCLUDE USING btree (slot WITH =))"),
    ("CREATE TABLE pg_cv_child (id int PRIMARY KEY, parent_id int "
     "CONSTRAINT pg_cv_child_parent_fk REFERENCES pg_cv_parent(id))"),
    "INSERT INTO pg_cv_parent VALUES (1, 'a@x', 30, 1)",
  };
  size_t i;
  for (i = 0; i < sizeof ddl / sizeof ddl[0]; i++)
    if (loam_exec(c, ddl[i], NULL, 0, NULL, NULL, NULL, e) != LOAM_OK) return 0;
  return 1;
}


TEST(pg_unique_violation) {
  loam_error e = LOAM_ERROR_INIT;
  PG_OPEN(c, -1, &e);
  CHECK(constraint_tables(c, &e));
  CHECK_INT(loam_exec(c, "INSERT INTO pg_cv_parent VALUES (2, 'a@x', 1, 2)",
                      NULL, 0, NULL, NULL, NULL, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_UNIQUE_VIOLATION);
  CHECK_STR(e.sqlstate, "23505");
  CHECK_STR(e.constraint, "pg_cv_email_key");
  CHECK_STR(e.table, "pg_cv_parent");
  CHECK_HAS(e.message, "duplicate key value violates unique constraint");
  CHECK_HAS(e.detail, "(email)=(a@x) already exists");
  CHECK(strchr(e.message, '\n') == NULL);
  CHECK_INT(scalar(c, "SELECT count(*) FROM pg_cv_parent", -1), 1);
  loam_conn_close(c);
  loam_error_clear(&e);
}


TEST(pg_foreign_key_violation) {
  loam_error e = LOAM_ERROR_INIT;
  PG_OPEN(c, -1, &e);
  CHECK(constraint_tables(c, &e));
  CHECK_INT(loam_exec(c, "INSERT INTO pg_cv_child VALUES (1, 99)",
                      NULL, 0, NULL, NULL, NULL, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_FOREIGN_KEY_VIOLATION);
  CHECK_STR(e.sqlstate, "23503");
  CHECK_STR(e.constraint, "pg_cv_child_parent_fk");
  CHECK_STR(e.table, "pg_cv_child");
  CHECK_HAS(e.message, "violates foreign key constraint");
  CHECK_INT(scalar(c, "SELECT count(*) FROM pg_cv_child", -1), 0);
  loam_conn_close(c);
  loam_error_clear(&e);
}


TEST(pg_not_null_violation) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value p[2];
  PG_OPEN(c, -1, &e);
  CHECK(constraint_tables(c, &e));
  p[0] = loam_int(2);
  p[1] = loam_null();
  CHECK_INT(loam_exec(c, "INSERT INTO pg_cv_parent (id, email) VALUES (?, ?)",
                      p, 2, NULL, NULL, NULL, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_NOT_NULL_VIOLATION);
  CHECK_STR(e.sqlstate, "23502");
  CHECK_STR(e.table, "pg_cv_parent");
  CHECK_STR(e.column, "email");
  CHECK_INT(scalar(c, "SELECT count(*) FROM pg_cv_parent", -1), 1);
  loam_conn_close(c);
  loam_error_clear(&e);
}


TEST(pg_check_violation) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value p[1];
  PG_OPEN(c, -1, &e);
  CHECK(constraint_tables(c, &e));
  p[0] = loam_int(-1);
  CHECK_INT(loam_exec(c, "UPDATE pg_cv_parent SET age = ? WHERE id = 1",
                      p, 1, NULL, NULL, NULL, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_CHECK_VIOLATION);
  CHECK_STR(e.sqlstate, "23514");
  CHECK_STR(e.constraint, "pg_cv_age_check");
  CHECK_STR(e.table, "pg_cv_parent");
  CHECK_INT(scalar(c, "SELECT age FROM pg_cv_parent WHERE id = 1", -1), 30);
  loam_conn_close(c);
  loam_error_clear(&e);
}


TEST(pg_exclusion_is_constraint_violation) {
  loam_error e = LOAM_ERROR_INIT;
  PG_OPEN(c, -1, &e);
  CHECK(constraint_tables(c, &e));
  CHECK_INT(loam_exec(c, "INSERT INTO pg_cv_parent VALUES (2, 'b@x', 1, 1)",
                      NULL, 0, NULL, NULL, NULL, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_CONSTRAINT_VIOLATION);
  CHECK_STR(e.sqlstate, "23P01");
  CHECK_STR(e.constraint, "pg_cv_slot_excl");
  CHECK_INT(scalar(c, "SELECT count(*) FROM pg_cv_parent", -1), 1);
  loam_conn_close(c);
  loam_error_clear(&e);
}


TEST(pg_syntax_error) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s;
  PG_OPEN(c, -1, &e);
  CHECK_INT(loam_query(c, "SELEC 1", NULL, 0, 0, &s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_SYNTAX_ERROR);
  CHECK_STR(e.sqlstate, "42601");
  CHECK_STR(e.message, "syntax error at or near \"SELEC\"");
  CHECK_INT(loam_conn_cached_statements(c), 0);
  /* The connection is fine afterwards, in both modes. */
  CHECK_INT(loam_query(c, "SELEC 1", NULL, 0, LOAM_STREAM, &s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_SYNTAX_ERROR);
  CHECK_INT(scalar(c, "SELECT 2", 0), 2);
  loam_conn_close(c);
  loam_error_clear(&e);
}


TEST(pg_undefined_table_and_column) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s;
  PG_OPEN(c, -1, &e);
  EXEC(c, "DROP TABLE IF EXISTS pg_undef", &e);
  CHECK_INT(loam_query(c, "SELECT * FROM pg_undef", NULL, 0, 0, &s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_UNDEFINED_TABLE);
  CHECK_STR(e.sqlstate, "42P01");
  CHECK_STR(e.message, "relation \"pg_undef\" does not exist");
  EXEC(c, "CREATE TABLE pg_undef (a int)", &e);
  CHECK_INT(loam_query(c, "SELECT nope FROM pg_undef", NULL, 0, 0, &s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_UNDEFINED_COLUMN);
  CHECK_STR(e.sqlstate, "42703");
  CHECK_HAS(e.message, "nope");
  loam_conn_close(c);
  loam_error_clear(&e);
}


TEST(pg_data_errors) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value p[1];
  loam_stmt *s;
  PG_OPEN(c, -1, &e);
  CHECK_INT(loam_query(c, "SELECT 1 / 0", NULL, 0, 0, &s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_DATA_ERROR);
  CHECK_STR(e.sqlstate, "22012");
  p[0] = loam_text("abc", 3);
  CHECK_INT(loam_query(c, "SELECT CAST(? AS int)", p, 1, 0, &s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_DATA_ERROR);
  CHECK_STR(e.sqlstate, "22P02");
  p[0] = loam_int(INT64_MAX);
  CHECK_INT(loam_query(c, "SELECT CAST(? AS int4)", p, 1, 0, &s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_DATA_ERROR);
  CHECK_STR(e.sqlstate, "22003");
  loam_conn_close(c);
  loam_error_clear(&e);
}


TEST(pg_transaction_aborted_then_rollback) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s;
  PG_OPEN(c, -1, &e);
  EXEC(c, "DROP TABLE IF EXISTS pg_abort", &e);
  EXEC(c, "CREATE TABLE pg_abort (a int)", &e);
  EXEC(c, "BEGIN", &e);
  EXEC(c, "INSERT INTO pg_abort VALUES (1)", &e);
  CHECK_INT(loam_query(c, "SELECT 1 / 0", NULL, 0, 0, &s, &e), LOAM_ERROR);
  CHECK_INT(loam_query(c, "SELECT count(*) FROM pg_abort", NULL, 0, 0, &s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_TRANSACTION_ABORTED);
  CHECK_STR(e.sqlstate, "25P02");
  CHECK_HAS(e.message, "current transaction is aborted");
  EXEC(c, "ROLLBACK", &e);
  CHECK_INT(scalar(c, "SELECT count(*) FROM pg_abort", -1), 0);
  loam_conn_close(c);
  loam_error_clear(&e);
}


TEST(pg_read_only_transaction) {
  loam_error e = LOAM_ERROR_INIT;
  PG_OPEN(c, -1, &e);
  EXEC(c, "DROP TABLE IF EXISTS pg_ro", &e);
  EXEC(c, "CREATE TABLE pg_ro (a int)", &e);
  EXEC(c, "BEGIN READ ONLY", &e);
  CHECK_INT(loam_exec(c, "INSERT INTO pg_ro VALUES (1)", NULL, 0, NULL, NULL, NULL, &e),
            LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_READ_ONLY);
  CHECK_STR(e.sqlstate, "25006");
  EXEC(c, "ROLLBACK", &e);
  CHECK_INT(scalar(c, "SELECT count(*) FROM pg_ro", -1), 0);
  loam_conn_close(c);
  loam_error_clear(&e);
}


TEST(pg_permission_denied) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s;
  PG_OPEN(c, -1, &e);
  EXEC(c, "DROP TABLE IF EXISTS pg_perm", &e);
  EXEC(c, "CREATE TABLE pg_perm (a int)", &e);
  EXEC(c, "DO $$ BEGIN CREATE ROLE loam_nopriv NOLOGIN; "
          "EXCEPTION WHEN duplicate_object THEN NULL; END $$", &e);
  EXEC(c, "SET ROLE loam_nopriv", &e);
  CHECK_INT(loam_query(c, "SELECT * FROM pg_perm", NULL, 0, 0, &s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_PERMISSION_DENIED);
  CHECK_STR(e.sqlstate, "42501");
  CHECK_HAS(e.message, "permission denied");
  EXEC(c, "RESET ROLE", &e);
  loam_conn_close(c);
  loam_error_clear(&e);
}


TEST(pg_lock_not_available_is_timeout) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s;
  PG_OPEN(a, -1, &e);
  PG_OPEN(b, -1, &e);
  EXEC(a, "DROP TABLE IF EXISTS pg_lock", &e);
  EXEC(a, "CREATE TABLE pg_lock (id int PRIMARY KEY)", &e);
  EXEC(a, "INSERT INTO pg_lock VALUES (1)", &e);
  EXEC(a, "BEGIN", &e);
  EXEC(a, "SELECT * FROM pg_lock WHERE id = 1 FOR UPDATE", &e);
  CHECK_INT(loam_query(b, "SELECT * FROM pg_lock WHERE id = 1 FOR UPDATE NOWAIT",
                       NULL, 0, 0, &s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_TIMEOUT);
  CHECK_STR(e.sqlstate, "55P03");
  EXEC(a, "ROLLBACK", &e);
  loam_conn_close(a);
  loam_conn_close(b);
  loam_error_clear(&e);
}


TEST(pg_statement_timeout) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s;
  PG_OPEN(c, -1, &e);
  EXEC(c, "SET statement_timeout = 1", &e);
  CHECK_INT(loam_query(c, "SELECT pg_sleep(30)", NULL, 0, 0, &s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_TIMEOUT);
  CHECK_STR(e.sqlstate, "57014");
  EXEC(c, "RESET statement_timeout", &e);
  CHECK_INT(scalar(c, "SELECT 3", 0), 3);
  loam_conn_close(c);
  loam_error_clear(&e);
}


TEST(pg_returning_id_and_changes) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value p[1];
  int64_t changes = -1, id = -1;
  int has_id = -1;
  PG_OPEN(c, -1, &e);
  EXEC(c, "DROP TABLE IF EXISTS pg_ret", &e);
  EXEC(c, "CREATE TABLE pg_ret (id bigserial PRIMARY KEY, name text)", &e);
  p[0] = loam_text("x", 1);
  CHECK_OK(loam_exec(c, "INSERT INTO pg_ret (name) VALUES (?) RETURNING id", p, 1,
                     &changes, &id, &has_id, &e), &e);
  CHECK_INT(changes, 1);
  CHECK_INT(has_id, 1);
  CHECK_INT(id, 1);
  CHECK_OK(loam_exec(c, "INSERT INTO pg_ret (name) VALUES (?) RETURNING id", p, 1,
                     &changes, &id, &has_id, &e), &e);
  CHECK_INT(id, 2);
  CHECK_OK(loam_exec(c, "INSERT INTO pg_ret (name) VALUES (?)", p, 1,
                     &changes, &id, &has_id, &e), &e);
  CHECK_INT(changes, 1);
  CHECK_INT(has_id, 0);
  loam_conn_close(c);
}


TEST(pg_update_and_delete_changes) {
  loam_error e = LOAM_ERROR_INIT;
  int64_t changes = -1;
  loam_stmt *s;
  PG_OPEN(c, -1, &e);
  EXEC(c, "DROP TABLE IF EXISTS pg_upd", &e);
  EXEC(c, "CREATE TABLE pg_upd (id int, v int)", &e);
  CHECK_OK(loam_exec(c, "INSERT INTO pg_upd SELECT i, 0 FROM generate_series(1, 10) i",
                     NULL, 0, &changes, NULL, NULL, &e), &e);
  CHECK_INT(changes, 10);
  CHECK_OK(loam_exec(c, "UPDATE pg_upd SET v = 1 WHERE id <= 7", NULL, 0, &changes, NULL,
                     NULL, &e), &e);
  CHECK_INT(changes, 7);
  CHECK_OK(loam_exec(c, "DELETE FROM pg_upd WHERE id > 8", NULL, 0, &changes, NULL, NULL, &e),
           &e);
  CHECK_INT(changes, 2);
  CHECK_OK(loam_exec(c, "UPDATE pg_upd SET v = 2 WHERE id < 0", NULL, 0, &changes, NULL, NULL,
                     &e), &e);
  CHECK_INT(changes, 0);
  /* A SELECT changes nothing, however many rows it returns; likewise when streamed. */
  CHECK_OK(loam_exec(c, "SELECT * FROM pg_upd", NULL, 0, &changes, NULL, NULL, &e), &e);
  CHECK_INT(changes, 0);
  CHECK_OK(loam_query(c, "UPDATE pg_upd SET v = 3", NULL, 0, LOAM_STREAM, &s, &e), &e);
  CHECK_INT(loam_step(s, &e), LOAM_DONE);
  CHECK_INT(loam_stmt_changes(s), 8);
  loam_stmt_close(s);
  loam_conn_close(c);
}


TEST(pg_stream_many_rows) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s;
  loam_value v;
  int64_t n = 0, sum = 0;
  int rc;
  PG_OPEN(c, -1, &e);
  CHECK_OK(loam_query(c, "SELECT i, 'row ' || i AS label, decode('ff00', 'hex') AS b "
                         "FROM generate_series(1, 10000) i", NULL, 0, LOAM_STREAM, &s, &e), &e);
  CHECK_INT(loam_column_count(s), 3);
  CHECK_STR(loam_column_name(s, 1), "label");
  while ((rc = loam_step(s, &e)) == LOAM_ROW) {
    n++;
    CHECK_OK(loam_column(s, 0, &v), &e);
    CHECK(v.type == LOAM_INT && v.u.i == n);
    sum += v.u.i;
    CHECK_OK(loam_column(s, 2, &v), &e);
    CHECK(v.type == LOAM_BLOB && v.u.s.len == 2);
  }
  CHECK_INT(rc, LOAM_DONE);
  CHECK_INT(n, 10000);
  CHECK_INT(sum, 50005000);
  CHECK_STR(loam_column_name(s, 1), "label");
  CHECK_INT(scalar(c, "SELECT 1", 0), 1);
  loam_stmt_close(s);
  loam_conn_close(c);
}


TEST(pg_stream_empty_and_command) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s;
  PG_OPEN(c, -1, &e);
  CHECK_OK(loam_query(c, "SELECT i FROM generate_series(1, 0) i", NULL, 0, LOAM_STREAM, &s, &e),
           &e);
  CHECK_INT(loam_column_count(s), 1);
  CHECK_INT(loam_step(s, &e), LOAM_DONE);
  /* The connection is free at once: nothing more to read. */
  CHECK_INT(scalar(c, "SELECT 4", 0), 4);
  loam_stmt_close(s);
  CHECK_OK(loam_query(c, "SET application_name = 'x'", NULL, 0, LOAM_STREAM, &s, &e), &e);
  CHECK_INT(loam_column_count(s), 0);
  CHECK_INT(loam_step(s, &e), LOAM_DONE);
  loam_stmt_close(s);
  loam_conn_close(c);
}


TEST(pg_stream_break_early) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s;
  int i;
  PG_OPEN(c, -1, &e);
  CHECK_OK(loam_query(c, "SELECT i FROM generate_series(1, 10000) i", NULL, 0, LOAM_STREAM,
                      &s, &e), &e);
  for (i = 0; i < 3; i++) CHECK_INT(loam_step(s, &e), LOAM_ROW);
  loam_stmt_close(s);
  CHECK_INT(scalar(c, "SELECT 7", 0), 7);
  /* Closing a stream before its first step works as well. */
  CHECK_OK(loam_query(c, "SELECT i FROM generate_series(1, 100) i", NULL, 0, LOAM_STREAM,
                      &s, &e), &e);
  loam_stmt_close(s);
  CHECK_INT(scalar(c, "SELECT 8", 0), 8);
  loam_conn_close(c);
}


TEST(pg_stream_break_keeps_transaction) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s;
  PG_OPEN(c, -1, &e);
  EXEC(c, "DROP TABLE IF EXISTS pg_stream_tx", &e);
  EXEC(c, "CREATE TABLE pg_stream_tx (a int)", &e);
  EXEC(c, "BEGIN", &e);
  EXEC(c, "INSERT INTO pg_stream_tx VALUES (1)", &e);
  CHECK_OK(loam_query(c, "SELECT i FROM generate_series(1, 5000) i", NULL, 0, LOAM_STREAM,
                      &s, &e), &e);
  CHECK_INT(loam_step(s, &e), LOAM_ROW);
  loam_stmt_close(s);
  EXEC(c, "INSERT INTO pg_stream_tx VALUES (2)", &e);
  EXEC(c, "COMMIT", &e);
  CHECK_INT(scalar(c, "SELECT count(*) FROM pg_stream_tx", -1), 2);
  loam_conn_close(c);
}


TEST(pg_stream_error_midway) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s;
  int n = 0, rc;
  PG_OPEN(c, -1, &e);
  CHECK_OK(loam_query(c, "SELECT 10 / (100 - i) FROM generate_series(1, 200) i", NULL, 0,
                      LOAM_STREAM, &s, &e), &e);
  while ((rc = loam_step(s, &e)) == LOAM_ROW) n++;
  CHECK_INT(rc, LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_DATA_ERROR);
  CHECK_STR(e.sqlstate, "22012");
  CHECK(n >= 1 && n < 100);
  loam_stmt_close(s);
  CHECK_INT(scalar(c, "SELECT 9", 0), 9);
  loam_conn_close(c);
  loam_error_clear(&e);
}


TEST(pg_query_while_streaming_is_misuse) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s, *t = NULL;
  PG_OPEN(c, -1, &e);
  CHECK_OK(loam_query(c, "SELECT i FROM generate_series(1, 1000) i", NULL, 0, LOAM_STREAM,
                      &s, &e), &e);
  CHECK_INT(loam_step(s, &e), LOAM_ROW);
  CHECK_INT(loam_query(c, "SELECT 1", NULL, 0, 0, &t, &e), LOAM_ERROR);
  CHECK(t == NULL);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_STR(e.message, "connection is busy streaming another result; "
                       "finish or close that iteration first");
  CHECK_INT(loam_step(s, &e), LOAM_ROW);
  loam_stmt_close(s);
  CHECK_INT(scalar(c, "SELECT 1", 0), 1);
  loam_conn_close(c);
  loam_error_clear(&e);
}


TEST(pg_close_connection_with_open_stream) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s, *t;
  PG_OPEN(c, -1, &e);
  CHECK_OK(loam_query(c, "SELECT 1", NULL, 0, 0, &t, &e), &e);
  CHECK_OK(loam_query(c, "SELECT i FROM generate_series(1, 1000) i", NULL, 0, LOAM_STREAM,
                      &s, &e), &e);
  CHECK_INT(loam_step(s, &e), LOAM_ROW);
  loam_conn_close(c);
  CHECK_INT(loam_step(s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  loam_stmt_close(s);
  loam_stmt_close(t);
  loam_error_clear(&e);
}


TEST(pg_cache_reuses_statement) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value p[1];
  int i;
  PG_OPEN(c, -1, &e);
  EXEC(c, "DEALLOCATE ALL", &e);
  for (i = 0; i < 3; i++) {
    p[0] = loam_int(i);
    CHECK_OK(loam_exec(c, "SELECT ? + 1", p, 1, NULL, NULL, NULL, &e), &e);
    CHECK_INT(loam_conn_cached_statements(c), 1);
  }
  CHECK_INT(scalar(c, "SELECT generic_plans + custom_plans FROM pg_prepared_statements "
                      "WHERE statement = 'SELECT $1 + 1'", -1), 3);
  /* The two queries above are the other cached statements. */
  CHECK_INT(server_prepared(c), 3);
  CHECK_INT(loam_conn_cached_statements(c), 3);
  /* The same text bound with other types is a statement of its own. */
  p[0] = loam_double(1.5);
  CHECK_OK(loam_exec(c, "SELECT ? + 1", p, 1, NULL, NULL, NULL, &e), &e);
  CHECK_INT(loam_conn_cached_statements(c), 4);
  loam_conn_close(c);
}


TEST(pg_cache_evicts_and_deallocates) {
  static const char *const sqls[] = {
    "SELECT 1 AS a", "SELECT 2 AS b", "SELECT 3 AS c", "SELECT 4 AS d", "SELECT 5 AS e",
  };
  loam_error e = LOAM_ERROR_INIT;
  int round, i;
  PG_OPEN(c, 2, &e);
  for (round = 0; round < 3; round++) {
    for (i = 0; i < 5; i++) {
      CHECK_INT(scalar(c, sqls[i], 0), i + 1);
      CHECK(loam_conn_cached_statements(c) <= 2);
    }
  }
  /* Evicted statements are gone from the server too: the two cached, plus the count itself. */
  CHECK(server_prepared(c) <= 3);
  loam_conn_close(c);
}


TEST(pg_cache_eviction_in_failed_transaction) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s;
  PG_OPEN(c, 1, &e);
  EXEC(c, "BEGIN", &e);
  EXEC(c, "SELECT 1 AS one", &e);
  CHECK_INT(loam_query(c, "SELECT 1 / 0", NULL, 0, 0, &s, &e), LOAM_ERROR);
  /* Preparing fails here, so nothing new is cached and nothing else errs. */
  CHECK_INT(loam_query(c, "SELECT 2 AS two", NULL, 0, 0, &s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_TRANSACTION_ABORTED);
  EXEC(c, "ROLLBACK", &e);
  CHECK_INT(scalar(c, "SELECT 3 AS three", 0), 3);
  CHECK_INT(scalar(c, "SELECT 1 AS one", 0), 1);
  CHECK(server_prepared(c) <= 2);
  loam_conn_close(c);
  loam_error_clear(&e);
}


/*
** Integer parameters in a pipeline (the batched loader's path) take the
** types the server wants, learned before the pipeline starts: 'repeat'
** takes an int4, and an untyped 'SELECT ?' is still an integer.  With the
** statement cache and without it.
*/
TEST(pg_pipeline_integer_parameter_types) {
  loam_error e = LOAM_ERROR_INIT;
  int cache;
  for (cache = 0; cache <= 4; cache += 4) {
    loam_value p1[1], p2[1];
    loam__pipe q[2];
    loam_value v;
    int round, i;
    PG_OPEN(c, cache, &e);
    for (round = 0; round < 2; round++) {   /* the second round runs on what was learned */
      memset(q, 0, sizeof q);
      p1[0] = loam_int(3);
      p2[0] = loam_int(9000000000 + round);
      q[0].sql = "SELECT repeat('ab', ?) AS r";
      q[0].params = p1;
      q[0].nparams = 1;
      q[1].sql = "SELECT ? AS x";
      q[1].params = p2;
      q[1].nparams = 1;
      CHECK_OK(c->drv->pipeline(c, q, 2, &e), &e);
      CHECK_INT(loam_step(q[0].stmt, &e), LOAM_ROW);
      CHECK_OK(loam_column(q[0].stmt, 0, &v), &e);
      CHECK_INT(v.type, LOAM_TEXT);
      CHECK_STR(v.u.s.ptr, "ababab");
      CHECK_INT(loam_step(q[1].stmt, &e), LOAM_ROW);
      CHECK_OK(loam_column(q[1].stmt, 0, &v), &e);
      CHECK_INT(v.type, LOAM_INT);
      CHECK_INT(v.u.i, 9000000000 + round);
      for (i = 0; i < 2; i++) {
        c->drv->finish(q[i].stmt);
        free(q[i].stmt);
      }
    }
    CHECK_INT(loam_conn_cached_statements(c), cache == 0 ? 0 : 2);
    loam_conn_close(c);
  }
  loam_error_clear(&e);
}


/* Whether the server holds a prepared statement of text 'sql' in this session. */
static int64_t server_has (loam_conn *c, const char *sql) {
  loam_value p = loam_text(sql, strlen(sql));
  loam_stmt *s;
  loam_value v;
  int64_t r = -1;
  if (loam_query(c, "SELECT count(*) FROM pg_prepared_statements WHERE statement = ?", &p, 1, 0,
                 &s, NULL) != LOAM_OK)
    return -1;
  if (loam_step(s, NULL) == LOAM_ROW && loam_column(s, 0, &v) == LOAM_OK) r = v.u.i;
  loam_stmt_close(s);
  return r;
}


/*
** The least recently used statement goes, not the oldest one: 'A' is
** used again after 'B', so 'C' evicts 'B'.  Seen from the server: B's
** DEALLOCATE goes out before the next prepare (the query that looks).
*/
TEST(pg_cache_evicts_least_recently_used) {
  loam_error e = LOAM_ERROR_INIT;
  PG_OPEN(c, 3, &e);
  CHECK_INT(scalar(c, "SELECT 1 AS a", 0), 1);
  CHECK_INT(scalar(c, "SELECT 2 AS b", 0), 2);
  CHECK_INT(scalar(c, "SELECT 1 AS a", 0), 1);
  CHECK_INT(scalar(c, "SELECT 3 AS c", 0), 3);
  CHECK_INT(loam_conn_cached_statements(c), 3);
  CHECK_INT(scalar(c, "SELECT 4 AS d", 0), 4);   /* evicts 'b' (A and C were used after it) */
  CHECK_INT(server_has(c, "SELECT 2 AS b"), 0);
  CHECK_INT(server_has(c, "SELECT 1 AS a"), 1);
  CHECK_INT(server_has(c, "SELECT 3 AS c"), 1);
  CHECK_INT(server_has(c, "SELECT 4 AS d"), 1);
  CHECK_INT(loam_conn_cached_statements(c), 3);
  loam_conn_close(c);
  loam_error_clear(&e);
}


TEST(pg_cache_eviction_while_streaming) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s;
  int64_t n = 0;
  PG_OPEN(c, 1, &e);
  CHECK_INT(scalar(c, "SELECT 1 AS one", 0), 1);
  /* Caching the stream's statement evicts the first one while the wire is busy. */
  CHECK_OK(loam_query(c, "SELECT i FROM generate_series(1, 100) i", NULL, 0, LOAM_STREAM,
                      &s, &e), &e);
  while (loam_step(s, &e) == LOAM_ROW) n++;
  CHECK_INT(n, 100);
  loam_stmt_close(s);
  CHECK_INT(loam_conn_cached_statements(c), 1);
  CHECK(server_prepared(c) <= 2);
  loam_conn_close(c);
}


TEST(pg_cache_survives_discard_all) {
  loam_error e = LOAM_ERROR_INIT;
  PG_OPEN(c, -1, &e);
  CHECK_INT(scalar(c, "SELECT 11", 0), 11);
  EXEC(c, "DISCARD ALL", &e);
  CHECK_INT(loam_conn_cached_statements(c), 0);
  CHECK_INT(scalar(c, "SELECT 11", 0), 11);
  CHECK_OK(loam_exec(c, "SELECT 11", NULL, 0, NULL, NULL, NULL, &e), &e);
  EXEC(c, "DEALLOCATE ALL", &e);
  CHECK_INT(scalar(c, "SELECT 11", 0), 11);
  loam_conn_close(c);
}


TEST(pg_cache_disabled) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value p[1];
  loam_stmt *s;
  int64_t n = 0;
  PG_OPEN(c, 0, &e);
  p[0] = loam_int(5);
  CHECK_OK(loam_exec(c, "SELECT ? + 1", p, 1, NULL, NULL, NULL, &e), &e);
  CHECK_OK(loam_exec(c, "SELECT ? + 1", p, 1, NULL, NULL, NULL, &e), &e);
  CHECK_INT(loam_conn_cached_statements(c), 0);
  CHECK_INT(server_prepared(c), 0);
  CHECK_OK(loam_query(c, "SELECT i FROM generate_series(1, ?) i", p, 1, LOAM_STREAM, &s, &e),
           &e);
  while (loam_step(s, &e) == LOAM_ROW) n++;
  CHECK_INT(n, 5);
  loam_stmt_close(s);
  CHECK_INT(loam_query(c, "SELECT ?", p, 0, 0, &s, &e), LOAM_ERROR);
  CHECK_STR(e.message, "statement takes 1 parameter, got 0");
  loam_conn_close(c);
  loam_error_clear(&e);
}


TEST(pg_copy_is_refused) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s;
  PG_OPEN(c, -1, &e);
  EXEC(c, "DROP TABLE IF EXISTS pg_copy", &e);
  EXEC(c, "CREATE TABLE pg_copy (a int)", &e);
  CHECK_INT(loam_query(c, "COPY pg_copy FROM STDIN", NULL, 0, 0, &s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_HAS(e.message, "COPY");
  CHECK_INT(loam_query(c, "COPY (SELECT 1) TO STDOUT", NULL, 0, LOAM_STREAM, &s, &e),
            LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_INT(scalar(c, "SELECT count(*) FROM pg_copy", -1), 0);
  loam_conn_close(c);
  loam_error_clear(&e);
}


/*
** Builds into 'buf' the URL of 'userinfo' ("role" or "role:password") on
** database 'db' of the test server, reached through its socket directory:
** the roles, passwords and databases of the tests below differ from
** those in LOAM_TEST_PG.  Returns 0 when the harness gave no socket.
*/
static int socket_url (char *buf, size_t n, const char *userinfo, const char *db) {
  const char *host = getenv("LOAM_TEST_PG_HOST"), *port = getenv("LOAM_TEST_PG_PORT");
  if (host == NULL || port == NULL) return 0;
  snprintf(buf, n, "postgresql://%s@/%s?host=%s&port=%s", userinfo, db, host, port);
  return 1;
}

/* Declares 'url' for 'userinfo' on database 'db' (see 'socket_url'), or fails the test. */
#define PG_SOCKET_URL(url, userinfo, db) \
  char url[1024]; \
  PG_URL(base_) \
  (void)base_; \
  if (!socket_url(url, sizeof url, (userinfo), (db))) { \
    t_fail(__FILE__, __LINE__, "LOAM_TEST_PG_HOST and LOAM_TEST_PG_PORT must be set"); \
    return; \
  }


TEST(pg_wrong_password_is_auth_failed) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c = (loam_conn *)&e;
  PG_SOCKET_URL(url, "loam_pw:wrongpass", "loam_test");
  CHECK_INT(loam_connect(url, NULL, &c, &e), LOAM_ERROR);
  CHECK(c == NULL);
  CHECK_INT(e.code, LOAM_E_AUTH_FAILED);
  CHECK_HAS(e.message, "password authentication failed");
  CHECK_STR(e.sqlstate, "28P01");
  CHECK(strstr(e.message, "wrongpass") == NULL);
  CHECK(strchr(e.message, '\n') == NULL);
  CHECK(strstr(e.message, "28P01") == NULL);
  loam_error_clear(&e);
}


/*
** libpq names the user, host and database in its messages: a password that
** appears there (here it equals the user name) is masked, and so is every
** value that follows a password option, which an unencoded '&' in that
** password may have cut off.
*/
TEST(pg_connect_messages_never_show_a_password) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  char url[1024];
  PG_SOCKET_URL(same, "loam_pw:loam_pw", "loam_test");
  CHECK_INT(loam_connect(same, NULL, &c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_AUTH_FAILED);
  CHECK_HAS(e.message, "password authentication failed for user \"***\"");
  CHECK(strstr(e.message, "loam_pw") == NULL);
  snprintf(url, sizeof url, "postgresql://loam_pw@/loam_test?host=%s&port=%s&password=SECRETa1",
           getenv("LOAM_TEST_PG_HOST"), getenv("LOAM_TEST_PG_PORT"));
  CHECK_INT(loam_connect(url, NULL, &c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_AUTH_FAILED);
  CHECK(strstr(e.message, "SECRET") == NULL);
  /* The right password, then a piece of it taken for the database name. */
  snprintf(url, sizeof url, "postgresql://loam_pw@/loam_test?host=%s&password=secret&port=%s"
           "&dbname=SECRETb2", getenv("LOAM_TEST_PG_HOST"), getenv("LOAM_TEST_PG_PORT"));
  CHECK_INT(loam_connect(url, NULL, &c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_CONNECTION_FAILED);
  CHECK_STR(e.sqlstate, "3D000");
  CHECK_HAS(e.message, "database \"***\" does not exist");
  /* A checked number after the password is no piece of it: the socket keeps its port. */
  snprintf(url, sizeof url, ".s.PGSQL.%s\"", getenv("LOAM_TEST_PG_PORT"));
  CHECK_HAS(e.message, url);
  CHECK(strstr(e.message, "SECRET") == NULL);
  CHECK(strstr(e.message, "LOCATION") == NULL);
  CHECK_INT(loam_connect("postgresql://h/db?password=SECRETc1&SECRETc2=x", NULL, &c, &e),
            LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_INVALID_URL);
  CHECK_STR(e.message, "unknown PostgreSQL URL option #2 (it follows a password option: "
                       "write '&' inside a password as %26)");
  CHECK(c == NULL);
  loam_error_clear(&e);
}


/* A missing database is a connection failure, told by its SQLSTATE. */
TEST(pg_missing_database_is_connection_failed) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  PG_SOCKET_URL(url, "loam_pw:secret", "loam_no_such_db");
  CHECK_INT(loam_connect(url, NULL, &c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_CONNECTION_FAILED);
  CHECK_STR(e.sqlstate, "3D000");
  CHECK_HAS(e.message, "database \"loam_no_such_db\" does not exist");
  CHECK(strchr(e.message, '\n') == NULL);
  loam_error_clear(&e);
}


TEST(pg_right_password_connects) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  PG_SOCKET_URL(url, "loam_pw:secret", "loam_test");
  CHECK_OK(loam_connect(url, NULL, &c, &e), &e);
  CHECK_INT(scalar(c, "SELECT 1", 0), 1);
  loam_conn_close(c);
}


TEST(pg_missing_password_is_auth_failed) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  PG_SOCKET_URL(url, "loam_pw:", "loam_test");
  /* 'loam_pw:@' gives an empty password, which libpq treats as none. */
  CHECK_INT(loam_connect(url, NULL, &c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_AUTH_FAILED);
  loam_error_clear(&e);
}


TEST(pg_unknown_role_is_auth_failed) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  PG_SOCKET_URL(url, "loam_no_such_role", "loam_test");
  CHECK_INT(loam_connect(url, NULL, &c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_AUTH_FAILED);
  CHECK_STR(e.sqlstate, "28000");
  CHECK_HAS(e.message, "loam_no_such_role");
  loam_error_clear(&e);
}


TEST(pg_unreachable_server) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  loam_conn_opts o = LOAM_CONN_OPTS_INIT;
  PG_URL(base);
  (void)base;
  o.connect_timeout_s = 5;
  CHECK_INT(loam_connect("postgresql://nobody:pw123456@127.0.0.1:1/x", &o, &c, &e), LOAM_ERROR);
  CHECK(c == NULL);
  CHECK_INT(e.code, LOAM_E_CONNECTION_FAILED);
  CHECK_HAS(e.message, "127.0.0.1");
  CHECK(strstr(e.message, "pw123456") == NULL);
  loam_error_clear(&e);
}


/*
** A server that accepts the connection and never answers: a unix socket
** that listens but never accepts, so the connect timeout is what ends it.
*/
TEST(pg_connect_timeout) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  loam_conn_opts o = LOAM_CONN_OPTS_INIT;
  struct sockaddr_un sa;
  char url[1024];
  int fd, rc;
  PG_URL(base);
  (void)base;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s/.s.PGSQL.5999", t_tmpdir());
  fd = socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK(fd >= 0);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 4) != 0) {
    close(fd);
    CHECK(!"could not listen on a unix socket");
  }
  snprintf(url, sizeof url, "postgresql://u@/x?host=%s&port=5999", t_tmpdir());
  o.connect_timeout_s = 2;
  rc = loam_connect(url, &o, &c, &e);
  close(fd);
  unlink(sa.sun_path);
  CHECK_INT(rc, LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_TIMEOUT);
  CHECK_HAS(e.message, "timeout expired");
  loam_error_clear(&e);
}


/*
** A list of hosts goes on past a host that refuses (libpq moves on by
** itself) and past one that never answers (the deadline ends that attempt
** and a new one starts with the hosts after it), as libpq's own blocking
** connect does.
*/
TEST(pg_host_list_fails_over) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  loam_conn_opts o = LOAM_CONN_OPTS_INIT;
  struct sockaddr_un sa;
  const char *host = getenv("LOAM_TEST_PG_HOST"), *port = getenv("LOAM_TEST_PG_PORT");
  char url[1024];
  int fd, rc;
  PG_URL(base);
  (void)base;
  CHECK(host != NULL && port != NULL);
  snprintf(url, sizeof url, "postgresql://postgres@/loam_test?host=%s/none,%s&port=5998,%s",
           t_tmpdir(), host, port);
  CHECK_OK(loam_connect(url, NULL, &c, &e), &e);
  CHECK_INT(scalar(c, "SELECT 1", 0), 1);
  loam_conn_close(c);
  c = NULL;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s/.s.PGSQL.5997", t_tmpdir());
  fd = socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK(fd >= 0);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 4) != 0) {
    close(fd);
    CHECK(!"could not listen on a unix socket");
  }
  snprintf(url, sizeof url, "postgresql://postgres@/loam_test?host=%s,%s&port=5997,%s",
           t_tmpdir(), host, port);
  o.connect_timeout_s = 2;
  rc = loam_connect(url, &o, &c, &e);
  close(fd);
  unlink(sa.sun_path);
  CHECK_OK(rc, &e);
  CHECK_INT(scalar(c, "SELECT 1", 0), 1);
  loam_conn_close(c);
  /* Every host timing out or refusing: the message tells of each. */
  snprintf(url, sizeof url, "postgresql://u@/x?host=%s/none,%s/none2&port=5996", t_tmpdir(),
           t_tmpdir());
  CHECK_INT(loam_connect(url, NULL, &c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_CONNECTION_FAILED);
  CHECK_HAS(e.message, "/none/.s.PGSQL.5996");
  CHECK_HAS(e.message, "/none2/.s.PGSQL.5996");
  loam_error_clear(&e);
}


TEST(pg_unknown_option_is_invalid_url) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  PG_URL(base);
  (void)base;
  CHECK_INT(loam_connect("postgresql:///x?bogus_option=1", NULL, &c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_INVALID_URL);
  CHECK_STR(e.message, "unknown PostgreSQL URL option 'bogus_option'");
  CHECK_INT(loam_connect("postgresql:///x?sslmode=sometimes", NULL, &c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_INVALID_URL);
  loam_error_clear(&e);
}


TEST(pg_no_such_database) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  PG_SOCKET_URL(url, "postgres", "loam_no_such_db");
  CHECK_INT(loam_connect(url, NULL, &c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_CONNECTION_FAILED);
  CHECK_HAS(e.message, "loam_no_such_db");
  loam_error_clear(&e);
}


TEST(pg_url_options_reach_libpq) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  loam_value v;
  char url[1024];
  PG_URL(base);
  snprintf(url, sizeof url, "%s%sapplication_name=loam_spec", base,
           strchr(base, '?') ? "&" : "?");
  CHECK_OK(loam_connect(url, NULL, &c, &e), &e);
  FIRST_ROW(c, s, "SHOW application_name", NULL, 0, &e);
  CHECK_OK(loam_column(s, 0, &v), &e);
  CHECK_STR(v.u.s.ptr, "loam_spec");
  loam_stmt_close(s);
  loam_conn_close(c);
}


TEST(pg_serialization_failure) {
  loam_error e = LOAM_ERROR_INIT;
  PG_OPEN(a, -1, &e);
  PG_OPEN(b, -1, &e);
  EXEC(a, "DROP TABLE IF EXISTS pg_ser", &e);
  EXEC(a, "CREATE TABLE pg_ser (id int PRIMARY KEY, v int)", &e);
  EXEC(a, "INSERT INTO pg_ser VALUES (1, 0)", &e);
  EXEC(a, "BEGIN ISOLATION LEVEL REPEATABLE READ", &e);
  CHECK_INT(scalar(a, "SELECT v FROM pg_ser WHERE id = 1", -1), 0);
  EXEC(b, "UPDATE pg_ser SET v = 10 WHERE id = 1", &e);
  CHECK_INT(loam_exec(a, "UPDATE pg_ser SET v = v + 1 WHERE id = 1", NULL, 0, NULL, NULL, NULL,
                      &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_SERIALIZATION_FAILURE);
  CHECK_STR(e.sqlstate, "40001");
  EXEC(a, "ROLLBACK", &e);
  CHECK_INT(scalar(a, "SELECT v FROM pg_ser WHERE id = 1", -1), 10);
  loam_conn_close(a);
  loam_conn_close(b);
  loam_error_clear(&e);
}


/*
** A real deadlock needs the other side blocked while this connection runs,
** which a synchronous API cannot do with two connections of its own; so
** the other side is a dblink session driven asynchronously from the server.
** This connection detects the deadlock first (its deadlock_timeout is far
** shorter), so it is the one chosen as the victim.
*/
TEST(pg_deadlock) {
  loam_error e = LOAM_ERROR_INIT;
  PG_OPEN(a, -1, &e);
  EXEC(a, "CREATE EXTENSION IF NOT EXISTS dblink", &e);
  EXEC(a, "DROP TABLE IF EXISTS pg_dl", &e);
  EXEC(a, "CREATE TABLE pg_dl (id int PRIMARY KEY, v int)", &e);
  EXEC(a, "INSERT INTO pg_dl VALUES (1, 0), (2, 0)", &e);
  EXEC(a, "SELECT dblink_connect('loam_dl', format('host=%s port=%s dbname=%s user=%s "
          "options=''-c deadlock_timeout=60s''', "
          "split_part(current_setting('unix_socket_directories'), ',', 1), "
          "current_setting('port'), current_database(), current_user))", &e);
  EXEC(a, "SET deadlock_timeout = 10", &e);
  EXEC(a, "BEGIN", &e);
  EXEC(a, "UPDATE pg_dl SET v = 1 WHERE id = 1", &e);
  EXEC(a, "SELECT dblink_exec('loam_dl', 'BEGIN')", &e);
  EXEC(a, "SELECT dblink_exec('loam_dl', 'UPDATE pg_dl SET v = 2 WHERE id = 2')", &e);
  EXEC(a, "SELECT dblink_send_query('loam_dl', 'UPDATE pg_dl SET v = 2 WHERE id = 1')", &e);
  CHECK_INT(loam_exec(a, "UPDATE pg_dl SET v = 1 WHERE id = 2", NULL, 0, NULL, NULL, NULL, &e),
            LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_DEADLOCK);
  CHECK_STR(e.sqlstate, "40P01");
  CHECK_HAS(e.message, "deadlock detected");
  EXEC(a, "ROLLBACK", &e);
  /* dblink wants the result read, then once more for the end, before the next command. */
  EXEC(a, "SELECT * FROM dblink_get_result('loam_dl') AS r(status text)", &e);
  EXEC(a, "SELECT * FROM dblink_get_result('loam_dl') AS r(status text)", &e);
  EXEC(a, "SELECT dblink_exec('loam_dl', 'ROLLBACK')", &e);
  EXEC(a, "SELECT dblink_disconnect('loam_dl')", &e);
  CHECK_INT(scalar(a, "SELECT sum(v) FROM pg_dl", -1), 0);
  loam_conn_close(a);
  loam_error_clear(&e);
}


TEST(pg_connection_lost) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s;
  loam_value p[1];
  int64_t pid;
  PG_OPEN(a, -1, &e);
  PG_OPEN(b, -1, &e);
  pid = scalar(a, "SELECT pg_backend_pid()", -1);
  CHECK(pid > 0);
  p[0] = loam_int(pid);
  CHECK_OK(loam_exec(b, "SELECT pg_terminate_backend(CAST(? AS int), 60000)", p, 1, NULL, NULL,
                     NULL, &e), &e);
  CHECK_INT(loam_query(a, "SELECT 1", NULL, 0, 0, &s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_CONNECTION_FAILED);
  CHECK_INT(loam_query(a, "SELECT 2", NULL, 0, LOAM_STREAM, &s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_CONNECTION_FAILED);
  loam_conn_close(a);
  CHECK_INT(scalar(b, "SELECT 1", 0), 1);
  loam_conn_close(b);
  loam_error_clear(&e);
}
