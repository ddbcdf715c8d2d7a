/*
** test_sqlite.c: the SQLite driver through the public API, against real
** SQLite databases (memory and files): types, placeholders, statements,
** the statement cache, streaming, errors and their fields.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "t.h"
#include "loam.h"
#include "conn/conn_int.h"
#include "sql/sql_int.h"


static loam_conn *open_mem (loam_error *err) {
  loam_conn *c = NULL;
  if (loam_connect("sqlite::memory:", NULL, &c, err) != LOAM_OK) return NULL;
  return c;
}


static int exec (loam_conn *c, const char *sql, loam_error *err) {
  return loam_exec(c, sql, NULL, 0, NULL, NULL, NULL, err);
}


TEST(sqlite_roundtrip_types) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = open_mem(&err);
  loam_stmt *s;
  loam_value v, p[6];
  static const char blob[] = { 'a', 0, (char)0xff, 'b' };
  CHECK(c != NULL);
  CHECK_INT(loam_conn_backend(c), LOAM_SQLITE);
  p[0] = loam_null();
  p[1] = loam_bool(1);
  p[2] = loam_int(INT64_MIN);
  p[3] = loam_double(-INFINITY);
  p[4] = loam_text("h\xc3\xa9llo", 6);
  p[5] = loam_blob(blob, sizeof blob);
  CHECK_OK(loam_query(c, "SELECT ? AS n, ? AS b, ? AS i, ? AS d, ? AS t, ? AS x", p, 6, 0, &s,
                      &err), &err);
  CHECK_INT(loam_column_count(s), 6);
  CHECK_STR(loam_column_name(s, 4), "t");
  CHECK(loam_column_name(s, 6) == NULL);
  CHECK_INT(loam_column(s, 0, &v), LOAM_ERROR);    /* no current row yet */
  CHECK_INT(loam_step(s, &err), LOAM_ROW);
  loam_column(s, 0, &v); CHECK_INT(v.type, LOAM_NULL);
  loam_column(s, 1, &v); CHECK_INT(v.type, LOAM_INT); CHECK_INT(v.u.i, 1);
  loam_column(s, 2, &v); CHECK_INT(v.type, LOAM_INT); CHECK(v.u.i == INT64_MIN);
  loam_column(s, 3, &v); CHECK_INT(v.type, LOAM_DOUBLE); CHECK(isinf(v.u.d) && v.u.d < 0);
  loam_column(s, 4, &v); CHECK_INT(v.type, LOAM_TEXT); CHECK_INT(v.u.s.len, 6);
  CHECK_STR(v.u.s.ptr, "h\xc3\xa9llo");
  loam_column(s, 5, &v); CHECK_INT(v.type, LOAM_BLOB); CHECK_INT(v.u.s.len, 4);
  CHECK(memcmp(v.u.s.ptr, blob, 4) == 0);
  CHECK_INT(loam_column(s, 6, &v), LOAM_ERROR);
  CHECK_INT(loam_column(s, -1, &v), LOAM_ERROR);
  CHECK_INT(loam_step(s, &err), LOAM_DONE);
  CHECK_INT(loam_step(s, &err), LOAM_DONE);         /* stays done */
  CHECK_INT(loam_column(s, 0, &v), LOAM_ERROR);
  loam_stmt_close(s);
  loam_conn_close(c);
  loam_error_clear(&err);
}


TEST(sqlite_boolean_columns) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = open_mem(&err);
  loam_stmt *s;
  loam_value v, p[2];
  CHECK(c != NULL);
  CHECK_OK(exec(c, "CREATE TABLE t (flag BOOLEAN, n INTEGER)", &err), &err);
  p[0] = loam_bool(0);
  p[1] = loam_bool(1);
  CHECK_OK(loam_exec(c, "INSERT INTO t VALUES (?, ?)", p, 2, NULL, NULL, NULL, &err), &err);
  CHECK_OK(loam_query(c, "SELECT flag, n FROM t", NULL, 0, 0, &s, &err), &err);
  CHECK_INT(loam_step(s, &err), LOAM_ROW);
  loam_column(s, 0, &v); CHECK_INT(v.type, LOAM_BOOL); CHECK_INT(v.u.b, 0);
  loam_column(s, 1, &v); CHECK_INT(v.type, LOAM_INT); CHECK_INT(v.u.i, 1);
  loam_stmt_close(s);
  loam_conn_close(c);
  loam_error_clear(&err);
}


TEST(sqlite_exec_changes_and_ids) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = open_mem(&err);
  int64_t changes = -1, id = -1;
  int has_id = -1;
  loam_value p[1];
  CHECK(c != NULL);
  CHECK_OK(exec(c, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)", &err), &err);
  p[0] = loam_text("a", 1);
  CHECK_OK(loam_exec(c, "INSERT INTO t (name) VALUES (?)", p, 1, &changes, &id, &has_id, &err),
           &err);
  CHECK_INT(changes, 1); CHECK_INT(has_id, 1); CHECK_INT(id, 1);
  CHECK_OK(loam_exec(c, "INSERT INTO t (name) VALUES ('b'), ('c') RETURNING id", NULL, 0,
                     &changes, &id, &has_id, &err), &err);
  CHECK_INT(changes, 2); CHECK_INT(has_id, 1); CHECK_INT(id, 2);
  CHECK_OK(loam_exec(c, "UPDATE t SET name = 'z' WHERE id > 1", NULL, 0, &changes, &id, &has_id,
                     &err), &err);
  CHECK_INT(changes, 2); CHECK_INT(has_id, 0);
  /* A SELECT after a write reports no changes of its own. */
  CHECK_OK(loam_exec(c, "SELECT name FROM t", NULL, 0, &changes, &id, &has_id, &err), &err);
  CHECK_INT(changes, 0); CHECK_INT(has_id, 0);
  CHECK_OK(loam_exec(c, "DELETE FROM t WHERE id = 99", NULL, 0, &changes, NULL, NULL, &err), &err);
  CHECK_INT(changes, 0);
  /* Raw SQL is read by its first keyword only: REPLACE inserts, a WITH is of no known kind. */
  CHECK_OK(loam_exec(c, " /* c */ replace INTO t (id, name) VALUES (7, 'r')", NULL, 0, &changes,
                     &id, &has_id, &err), &err);
  CHECK_INT(changes, 1); CHECK_INT(has_id, 1); CHECK_INT(id, 7);
  CHECK_OK(loam_exec(c, "WITH v(n) AS (VALUES ('w')) INSERT INTO t (name) SELECT n FROM v",
                     NULL, 0, &changes, &id, &has_id, &err), &err);
  CHECK_INT(changes, 1); CHECK_INT(has_id, 0);
  loam_conn_close(c);
  loam_error_clear(&err);
}


TEST(sqlite_errors_have_codes_and_fields) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = open_mem(&err);
  loam_stmt *s = NULL;
  loam_value p[2];
  int64_t n = 0;
  CHECK(c != NULL);
  CHECK_OK(exec(c, "CREATE TABLE parent (id INTEGER PRIMARY KEY, email TEXT UNIQUE NOT NULL,"
                   " age INTEGER CONSTRAINT age_positive CHECK (age > 0))", &err), &err);
  CHECK_OK(exec(c, "CREATE TABLE child (id INTEGER PRIMARY KEY,"
                   " parent_id INTEGER REFERENCES parent(id))", &err), &err);
  CHECK_OK(exec(c, "INSERT INTO parent (id, email, age) VALUES (1, 'a@x', 3)", &err), &err);
  CHECK_INT(exec(c, "INSERT INTO parent (email, age) VALUES ('a@x', 4)", &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_UNIQUE_VIOLATION);
  CHECK_STR(err.message, "UNIQUE constraint failed: parent.email");
  CHECK_STR(err.table, "parent");
  CHECK_STR(err.column, "email");
  CHECK_STR(err.sqlstate, "");
  CHECK_INT(exec(c, "INSERT INTO parent (email) VALUES (NULL)", &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_NOT_NULL_VIOLATION);
  CHECK_STR(err.column, "email");
  CHECK_INT(exec(c, "INSERT INTO parent (email, age) VALUES ('b@x', -1)", &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_CHECK_VIOLATION);
  CHECK_STR(err.constraint, "age_positive");
  CHECK_INT(exec(c, "INSERT INTO child (parent_id) VALUES (42)", &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_FOREIGN_KEY_VIOLATION);   /* foreign_keys is on */
  CHECK_INT(exec(c, "SELEC 1", &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_SYNTAX_ERROR);
  CHECK_HAS(err.message, "syntax error");
  CHECK_INT(exec(c, "SELECT * FROM nope", &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_UNDEFINED_TABLE);
  CHECK_STR(err.message, "no such table: nope");
  CHECK_INT(exec(c, "SELECT nope FROM parent", &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_UNDEFINED_COLUMN);
  /* A quoted name is always an identifier, never a string literal. */
  CHECK_INT(exec(c, "SELECT \"nope\" FROM parent", &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_UNDEFINED_COLUMN);
  CHECK_STR(err.message, "no such column: nope");
  /* Nothing was half-applied. */
  CHECK_OK(loam_exec(c, "SELECT count(*) FROM parent", NULL, 0, NULL, &n, NULL, &err), &err);
  CHECK_INT(n, 1);
  /* Parameter count and values SQLite cannot store. */
  p[0] = loam_int(1);
  CHECK_INT(loam_query(c, "SELECT ?, ?", p, 1, 0, &s, &err), LOAM_ERROR);
  CHECK(s == NULL);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_STR(err.message, "statement takes 2 parameters, got 1");
  p[1] = loam_int(2);
  CHECK_INT(loam_query(c, "SELECT ?", p, 2, 0, &s, &err), LOAM_ERROR);
  CHECK_STR(err.message, "statement takes 1 parameter, got 2");
  p[0] = loam_double(NAN);
  CHECK_INT(loam_query(c, "SELECT ?", p, 1, 0, &s, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_DATA_ERROR);
  CHECK_STR(err.message, "parameter 1: SQLite cannot store NaN");
  p[0].type = (loam_type)42;
  CHECK_INT(loam_query(c, "SELECT ?", p, 1, 0, &s, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_INT(exec(c, "SELECT 1; SELECT 2", &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_HAS(err.message, "more than one statement");
  CHECK_OK(exec(c, "SELECT 1; -- trailing comment", &err), &err);
  CHECK_INT(exec(c, "  -- only a comment", &err), LOAM_ERROR);
  CHECK_STR(err.message, "SQL holds no statement");
  loam_conn_close(c);
  loam_error_clear(&err);
}


TEST(sqlite_file_settings_and_open_errors) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = NULL, *ro = NULL;
  loam_stmt *s;
  loam_value v;
  char url[512], path[400];
  FILE *f;
  snprintf(path, sizeof path, "%s/settings.db", t_tmpdir());
  snprintf(url, sizeof url, "sqlite:%s", path);
  CHECK_OK(loam_connect(url, NULL, &c, &err), &err);
  CHECK_OK(loam_query(c, "PRAGMA journal_mode", NULL, 0, 0, &s, &err), &err);
  CHECK_INT(loam_step(s, &err), LOAM_ROW);
  loam_column(s, 0, &v);
  CHECK_STR(v.u.s.ptr, "wal");
  loam_stmt_close(s);
  CHECK_OK(loam_query(c, "PRAGMA foreign_keys", NULL, 0, 0, &s, &err), &err);
  CHECK_INT(loam_step(s, &err), LOAM_ROW);
  loam_column(s, 0, &v);
  CHECK_INT(v.u.i, 1);
  loam_stmt_close(s);
  CHECK_OK(loam_query(c, "PRAGMA busy_timeout", NULL, 0, 0, &s, &err), &err);
  CHECK_INT(loam_step(s, &err), LOAM_ROW);
  loam_column(s, 0, &v);
  CHECK_INT(v.u.i, 5000);
  loam_stmt_close(s);
  CHECK_OK(exec(c, "CREATE TABLE t (x)", &err), &err);
  /* A read-only second connection sees the data and refuses writes. */
  snprintf(url, sizeof url, "sqlite:%s?mode=ro&busy_timeout=50", path);
  CHECK_OK(loam_connect(url, NULL, &ro, &err), &err);
  CHECK_INT(exec(ro, "INSERT INTO t VALUES (1)", &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_READ_ONLY);
  loam_conn_close(ro);
  loam_conn_close(c);
  /* Open failures. */
  CHECK_INT(loam_connect("sqlite:/nonexistent/dir/x.db", NULL, &c, &err), LOAM_ERROR);
  CHECK(c == NULL);
  CHECK_INT(err.code, LOAM_E_CONNECTION_FAILED);
  CHECK_STR(err.message, "cannot open SQLite database '/nonexistent/dir/x.db': "
                         "unable to open database file");
  snprintf(path, sizeof path, "%s/not-a-db.txt", t_tmpdir());
  f = fopen(path, "w");
  CHECK(f != NULL);
  fputs("this is plainly not an SQLite database file, but long enough to look like one", f);
  fclose(f);
  snprintf(url, sizeof url, "sqlite:%s", path);
  CHECK_INT(loam_connect(url, NULL, &c, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_CONNECTION_FAILED);
  CHECK_HAS(err.message, "file is not a database");
  CHECK_INT(loam_connect("sqlite:x.db?bogus=1", NULL, &c, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_INVALID_URL);
  loam_error_clear(&err);
}


TEST(sqlite_busy) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *a = NULL, *b = NULL;
  char url[512];
  loam_conn_opts o = LOAM_CONN_OPTS_INIT;
  snprintf(url, sizeof url, "sqlite:%s/busy.db", t_tmpdir());
  CHECK_OK(loam_connect(url, NULL, &a, &err), &err);
  o.busy_timeout_ms = 20;
  CHECK_OK(loam_connect(url, &o, &b, &err), &err);
  CHECK_OK(exec(a, "CREATE TABLE t (x)", &err), &err);
  CHECK_OK(exec(a, "BEGIN IMMEDIATE", &err), &err);
  CHECK_OK(exec(a, "INSERT INTO t VALUES (1)", &err), &err);
  CHECK_INT(exec(b, "INSERT INTO t VALUES (2)", &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_BUSY);
  CHECK_HAS(err.message, "locked");
  CHECK_OK(exec(a, "COMMIT", &err), &err);
  CHECK_OK(exec(b, "INSERT INTO t VALUES (2)", &err), &err);
  loam_conn_close(a);
  loam_conn_close(b);
  loam_error_clear(&err);
}


TEST(sqlite_statement_cache) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  loam_stmt *s1, *s2;
  loam_conn_opts o = LOAM_CONN_OPTS_INIT;
  loam_value v, p[1];
  int i;
  char sql[64];
  o.statement_cache = 2;
  CHECK_OK(loam_connect("sqlite::memory:", &o, &c, &err), &err);
  for (i = 0; i < 3; i++) CHECK_OK(exec(c, "SELECT 1", &err), &err);
  CHECK_INT(loam_conn_cached_statements(c), 1);
  for (i = 0; i < 5; i++) {
    snprintf(sql, sizeof sql, "SELECT %d", i);
    CHECK_OK(exec(c, sql, &err), &err);
  }
  CHECK_INT(loam_conn_cached_statements(c), 2);
  /* The same SQL open twice at once: the second gets its own statement. */
  p[0] = loam_int(7);
  CHECK_OK(loam_query(c, "SELECT ? AS v", p, 1, 0, &s1, &err), &err);
  CHECK_INT(loam_step(s1, &err), LOAM_ROW);
  p[0] = loam_int(8);
  CHECK_OK(loam_query(c, "SELECT ? AS v", p, 1, 0, &s2, &err), &err);
  CHECK_INT(loam_step(s2, &err), LOAM_ROW);
  loam_column(s1, 0, &v); CHECK_INT(v.u.i, 7);
  loam_column(s2, 0, &v); CHECK_INT(v.u.i, 8);
  loam_stmt_close(s2);
  loam_stmt_close(s1);
  /* A cached statement starts clean: no bindings left from the last run. */
  p[0] = loam_int(9);
  CHECK_OK(loam_query(c, "SELECT ? AS v", p, 1, 0, &s1, &err), &err);
  CHECK_INT(loam_step(s1, &err), LOAM_ROW);
  loam_column(s1, 0, &v); CHECK_INT(v.u.i, 9);
  loam_stmt_close(s1);
  loam_conn_close(c);
  /* Caching off. */
  o.statement_cache = 0;
  CHECK_OK(loam_connect("sqlite::memory:", &o, &c, &err), &err);
  CHECK_OK(exec(c, "SELECT 1", &err), &err);
  CHECK_INT(loam_conn_cached_statements(c), 0);
  loam_conn_close(c);
  loam_error_clear(&err);
}


/* Whether the cache holds a statement of text 'sql' (the lookup makes it the most recent). */
static int cached (loam_conn *c, const char *sql) {
  loam__centry *e = loam__cache_get(&c->cache, sql, strlen(sql));
  if (e == NULL) return 0;
  loam__cache_release(&c->cache, e);
  return 1;
}


/* The least recently used statement goes, not the oldest one. */
TEST(sqlite_cache_evicts_least_recently_used) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  loam_conn_opts o = LOAM_CONN_OPTS_INIT;
  o.statement_cache = 2;
  CHECK_OK(loam_connect("sqlite::memory:", &o, &c, &err), &err);
  CHECK_OK(exec(c, "SELECT 1 AS a", &err), &err);
  CHECK_OK(exec(c, "SELECT 2 AS b", &err), &err);
  CHECK_OK(exec(c, "SELECT 1 AS a", &err), &err);
  CHECK_OK(exec(c, "SELECT 3 AS c", &err), &err);   /* evicts 'b', used before 'a' */
  CHECK_INT(loam_conn_cached_statements(c), 2);
  CHECK(!cached(c, "SELECT 2 AS b"));
  CHECK(cached(c, "SELECT 1 AS a"));
  CHECK(cached(c, "SELECT 3 AS c"));
  loam_conn_close(c);
  loam_error_clear(&err);
}


/*
** A statement being stepped is pinned: with room for one statement, the
** statements run meanwhile are evicted instead of it, and it keeps its
** rows; once closed it is evictable like any other.
*/
TEST(sqlite_cache_pinned_statement_survives_eviction) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  loam_conn_opts o = LOAM_CONN_OPTS_INIT;
  loam_stmt *s = NULL;
  loam_value v;
  const char *pinned = "SELECT 1 UNION ALL SELECT 2";
  o.statement_cache = 1;
  CHECK_OK(loam_connect("sqlite::memory:", &o, &c, &err), &err);
  CHECK_OK(loam_query(c, pinned, NULL, 0, 0, &s, &err), &err);
  CHECK_INT(loam_step(s, &err), LOAM_ROW);
  CHECK_OK(exec(c, "SELECT 3", &err), &err);
  CHECK_OK(exec(c, "SELECT 4", &err), &err);
  CHECK_INT(loam_conn_cached_statements(c), 1);
  CHECK(!cached(c, "SELECT 3"));
  CHECK(!cached(c, "SELECT 4"));
  CHECK_INT(loam_step(s, &err), LOAM_ROW);
  CHECK_OK(loam_column(s, 0, &v), &err);
  CHECK_INT(v.u.i, 2);
  CHECK_INT(loam_step(s, &err), LOAM_DONE);
  loam_stmt_close(s);
  CHECK_INT(loam_conn_cached_statements(c), 1);
  CHECK(cached(c, pinned));
  CHECK_OK(exec(c, "SELECT 5", &err), &err);
  CHECK(!cached(c, pinned));
  CHECK(cached(c, "SELECT 5"));
  loam_conn_close(c);
  loam_error_clear(&err);
}


TEST(sqlite_stream_and_close_with_open_statements) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = open_mem(&err);
  loam_stmt *s, *other;
  loam_value v;
  int64_t sum = 0;
  int rows = 0, rc;
  CHECK(c != NULL);
  CHECK_OK(loam_query(c, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                         "WHERE i < 10000) SELECT i FROM n", NULL, 0, LOAM_STREAM, &s, &err),
           &err);
  while ((rc = loam_step(s, &err)) == LOAM_ROW) {
    loam_column(s, 0, &v);
    sum += v.u.i;
    rows++;
  }
  CHECK_INT(rc, LOAM_DONE);
  CHECK_INT(rows, 10000);
  CHECK_INT(sum, 50005000);
  loam_stmt_close(s);
  /* Closing the connection finalizes what is still open; the handles stay safe. */
  CHECK_OK(loam_query(c, "SELECT 1", NULL, 0, 0, &s, &err), &err);
  CHECK_OK(loam_query(c, "SELECT 2", NULL, 0, 0, &other, &err), &err);
  CHECK_INT(loam_step(s, &err), LOAM_ROW);
  loam_conn_close(c);
  CHECK_INT(loam_step(s, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_STR(err.message, "the statement's connection was closed");
  CHECK_INT(loam_column(s, 0, &v), LOAM_ERROR);
  CHECK(loam_column_name(s, 0) == NULL);
  loam_stmt_close(s);
  loam_stmt_close(other);
  loam_error_clear(&err);
}


/*
** A NUMERIC(p,s) column reads back as the decimal text PostgreSQL prints:
** every k / 100 of a wide sweep (the doubles nearest to two-decimal
** values, the common case), and doubles that are no such value, which
** are rounded half away from zero from their shortest decimal form.
*/
TEST(sqlite_numeric_text_of_doubles) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c = open_mem(&e);
  static const struct { double d; const char *text; } odd[] = {
    { 0.1 + 0.2, "0.30" }, { 1.005, "1.01" }, { -1.005, "-1.01" }, { 2.675, "2.68" },
    { 1e-20, "0.00" }, { -1e-20, "0.00" }, { 12345678901234.5, "12345678901234.50" },
    { 0.125, "0.13" }, { -0.0, "0.00" }, { 1e15, "1000000000000000.00" },
  };
  loam_stmt *s;
  loam_value v;
  char want[32];
  int k, i;
  CHECK(c != NULL);
  CHECK_INT(exec(c, "CREATE TABLE n (a NUMERIC(20,2), b NUMERIC(6,0), f NUMERIC(20,4))", &e),
            LOAM_OK);
  for (k = -200000; k <= 200000; k += 7) {
    loam_value p[3];
    p[0] = loam_double(k / 100.0);
    p[1] = loam_double((double)k);
    p[2] = loam_double(k / 10000.0);
    CHECK_OK(loam_exec(c, "INSERT INTO n VALUES (?, ?, ?)", p, 3, NULL, NULL, NULL, &e), &e);
  }
  CHECK_OK(loam_query(c, "SELECT a, b, f FROM n ORDER BY b", NULL, 0, 0, &s, &e), &e);
  for (k = -200000; k <= 200000; k += 7) {
    CHECK_INT(loam_step(s, &e), LOAM_ROW);
    loam_column(s, 0, &v);
    snprintf(want, sizeof want, "%s%d.%02d", k < 0 ? "-" : "", abs(k) / 100, abs(k) % 100);
    CHECK_STR(v.u.s.ptr, want);
    loam_column(s, 1, &v);
    snprintf(want, sizeof want, "%d", k);
    CHECK_STR(v.u.s.ptr, want);
    loam_column(s, 2, &v);
    snprintf(want, sizeof want, "%s%d.%04d", k < 0 ? "-" : "", abs(k) / 10000, abs(k) % 10000);
    CHECK_STR(v.u.s.ptr, want);
  }
  CHECK_INT(loam_step(s, &e), LOAM_DONE);
  loam_stmt_close(s);
  CHECK_INT(exec(c, "DELETE FROM n", &e), LOAM_OK);
  for (i = 0; i < (int)(sizeof odd / sizeof odd[0]); i++) {
    loam_value p = loam_double(odd[i].d);
    CHECK_OK(loam_exec(c, "INSERT INTO n (a) VALUES (?)", &p, 1, NULL, NULL, NULL, &e), &e);
    CHECK_OK(loam_query(c, "SELECT a FROM n", NULL, 0, 0, &s, &e), &e);
    CHECK_INT(loam_step(s, &e), LOAM_ROW);
    loam_column(s, 0, &v);
    CHECK_STR(v.u.s.ptr, odd[i].text);
    loam_stmt_close(s);
    CHECK_INT(exec(c, "DELETE FROM n", &e), LOAM_OK);
  }
  loam_conn_close(c);
}
