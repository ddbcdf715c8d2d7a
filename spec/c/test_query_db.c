/*
** test_query_db.c: rendered statements run on real databases.
**
** Exact texts (test_query.c) prove the builder writes what it means to;
** these tests prove the databases read it that way: an IN list bound as
** one JSON or array parameter matches exactly the rows it names, whatever
** its strings hold; an upsert upserts; every chunk of a large INSERT
** lands; FOR UPDATE SKIP LOCKED skips.  SQLite runs in memory; PostgreSQL
** tests use the cluster of LOAM_TEST_PG and fail when there is none.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loam.h"
#include "t.h"
#include "test_query.h"


#define EXEC(c, sql, e) CHECK_OK(loam_exec((c), (sql), NULL, 0, NULL, NULL, NULL, (e)), (e))

/* Declares 'c' connected to a fresh in-memory SQLite database. */
#define SQLITE_OPEN(c, e) \
  loam_conn *c = NULL; \
  CHECK_OK(loam_connect("sqlite::memory:", NULL, &c, (e)), (e))

/* Declares 'c' connected to the test cluster, or fails: PostgreSQL tests never skip. */
#define PG_OPEN(c, e) \
  loam_conn *c = NULL; \
  do { \
    if (t_pg_url() == NULL) { \
      t_fail(__FILE__, __LINE__, "LOAM_TEST_PG is not set; the PostgreSQL tests need a server"); \
      return; \
    } \
    CHECK_OK(loam_connect(t_pg_url(), NULL, &c, (e)), (e)); \
  } while (0)


/*
** Renders 'st' for the backend of 'c' with budget 'maxp' and runs every
** statement; '*changes' receives the rows changed in all of them.
*/
static int run (loam_conn *c, loam_qb *qb, const loam_qstmt *st, int maxp, int64_t *changes,
                loam_error *e) {
  loam_rendered *rs = NULL;
  int i, rc;
  *changes = 0;
  rc = loam_qb_render(qb, st, loam_conn_backend(c), maxp, &rs, e);
  for (i = 0; rc == LOAM_OK && i < loam_rendered_count(rs); i++) {
    int64_t n = 0;
    rc = loam_exec_rendered(c, rs, i, &n, NULL, NULL, e);
    *changes += n;
  }
  loam_rendered_free(rs);
  return rc;
}


/*
** Renders the SELECT 'st' for 'c' and returns the sum of the first
** column over its rows (or the row count with 'count' set); -1 on error.
*/
static int64_t total (loam_conn *c, loam_qb *qb, const loam_qstmt *st, int count, loam_error *e) {
  loam_rendered *rs = NULL;
  loam_stmt *s = NULL;
  int64_t sum = 0;
  int rc;
  if (loam_qb_render(qb, st, loam_conn_backend(c), 0, &rs, e) != LOAM_OK) return -1;
  if (loam_query_rendered(c, rs, 0, 0, &s, e) != LOAM_OK) {
    loam_rendered_free(rs);
    return -1;
  }
  while ((rc = loam_step(s, e)) == LOAM_ROW) {
    loam_value v;
    loam_column(s, 0, &v);
    sum += count ? 1 : (v.type == LOAM_INT ? v.u.i : 0);
  }
  loam_stmt_close(s);
  loam_rendered_free(rs);
  return rc == LOAM_DONE ? sum : -1;
}


/* The texts the IN-list tests store and look up: every character that needs escaping somewhere. */
static const char *const tricky[] = {
  "a\"b", "c\\d", "", "NULL", "{x, y}", "it's", "tab\there", "h\xc3\xa9", "\\\"\\", "[1,2]",
};
#define NTRICKY ((int)(sizeof tricky / sizeof tricky[0]))


/*
** Fills table 'tags' (id, name, flag, score) through a rendered INSERT:
** row i has name tricky[i], flag i odd, score i + 0.5.
*/
static int fill_tags (loam_conn *c, loam_error *e) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_insert(qb, "tags");
  int64_t n;
  int i, rc;
  loam_qb_insert_column(st, "id");
  loam_qb_insert_column(st, "name");
  loam_qb_insert_column(st, "flag");
  loam_qb_insert_column(st, "score");
  for (i = 0; i < NTRICKY; i++) {
    loam_value row[4];
    row[0] = loam_int(i + 1);
    row[1] = loam_text(tricky[i], strlen(tricky[i]));
    row[2] = loam_bool(i % 2);
    row[3] = loam_double(i + 0.5);
    loam_qb_insert_row(st, row, 4);
  }
  rc = run(c, qb, st, 0, &n, e);
  loam_qb_free(qb);
  return rc;
}


/* Rows of 'tags' whose 'column' is (or, negated, is not) in the 'n' values. */
static int64_t count_in (loam_conn *c, const char *column, const loam_value *v, int n, int negate,
                         loam_error *e) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "tags", NULL);
  int64_t r;
  loam_qb_column(st, loam_qb_col(qb, NULL, "id"));
  loam_qb_where(st, loam_qb_in_list(qb, loam_qb_col(qb, NULL, column), v, n, negate));
  r = total(c, qb, st, 1, e);
  loam_qb_free(qb);
  return r;
}


/* The IN-list checks shared by both backends. */
static void in_lists (loam_conn *c) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value v[NTRICKY + 1], *big;
  int i;
  CHECK_OK(fill_tags(c, &e), &e);
  for (i = 0; i < NTRICKY; i++) {
    v[0] = loam_text(tricky[i], strlen(tricky[i]));
    CHECK_INT(count_in(c, "name", v, 1, 0, &e), 1);
    CHECK_INT(count_in(c, "name", v, 1, 1, &e), NTRICKY - 1);
  }
  for (i = 0; i < NTRICKY; i++) v[i] = loam_text(tricky[i], strlen(tricky[i]));
  v[NTRICKY] = loam_text("absent", 6);
  CHECK_INT(count_in(c, "name", v, NTRICKY + 1, 0, &e), NTRICKY);
  v[0] = loam_int(1); v[1] = loam_int(3); v[2] = loam_int(99);
  CHECK_INT(count_in(c, "id", v, 3, 0, &e), 2);
  CHECK_INT(count_in(c, "id", v, 3, 1, &e), NTRICKY - 2);
  CHECK_INT(count_in(c, "id", v, 0, 0, &e), 0);
  CHECK_INT(count_in(c, "id", v, 0, 1, &e), NTRICKY);
  v[0] = loam_bool(1);
  CHECK_INT(count_in(c, "flag", v, 1, 0, &e), NTRICKY / 2);
  v[0] = loam_double(0.5); v[1] = loam_int(2); v[2] = loam_double(2.5);
  CHECK_INT(count_in(c, "score", v, 3, 0, &e), 2);
  big = malloc(100000 * sizeof *big);
  CHECK(big != NULL);
  for (i = 0; i < 100000; i++) big[i] = loam_int(i - 50000);
  CHECK_INT(count_in(c, "id", big, 100000, 0, &e), NTRICKY);
  free(big);
}


/*
** An upsert run three times: the first inserts, the later ones update
** the row its WHERE lets through, with a bound value and excluded.
*/
static void upserts (loam_conn *c) {
  static const char *const target[] = { "email" };
  loam_error e = LOAM_ERROR_INIT;
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_insert(qb, "users"), *keep = loam_qb_insert(qb, "users");
  loam_value rows[4];
  int64_t n;
  rows[0] = loam_text("a@x", 3); rows[1] = loam_text("Ann", 3);
  rows[2] = loam_text("r@x", 3); rows[3] = loam_text("root", 4);
  loam_qb_insert_column(st, "email");
  loam_qb_insert_column(st, "name");
  loam_qb_insert_row(st, rows, 2);
  loam_qb_insert_row(st, rows + 2, 2);
  loam_qb_on_conflict(st, LOAM_DO_UPDATE, target, 1);
  loam_qb_set(st, "name", loam_qb_raw(qb, "upper(?)", &rows[1], 1));
  loam_qb_set(st, "note", loam_qb_excluded(qb, "name"));
  loam_qb_set(st, "visits", loam_qb_raw(qb, "\"users\".\"visits\" + 1", NULL, 0));
  loam_qb_where(st, loam_qb_op(qb, "<>", loam_qb_col(qb, "users", "name"),
                               loam_qb_val(qb, rows[3])));
  CHECK_OK(run(c, qb, st, 4, &n, &e), &e);            /* (4 - 2) / 2: one row a chunk */
  CHECK_INT(n, 2);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM users WHERE note IS NULL AND visits = 0"), 2);
  CHECK_OK(run(c, qb, st, 0, &n, &e), &e);
  CHECK_INT(n, 1);
  CHECK_INT(t_scalar(c, "SELECT visits FROM users WHERE name = 'ANN' AND note = 'Ann'"), 1);
  CHECK_INT(t_scalar(c, "SELECT visits FROM users WHERE email = 'r@x' AND name = 'root'"), 0);
  CHECK_OK(run(c, qb, st, 0, &n, &e), &e);
  CHECK_INT(t_scalar(c, "SELECT CAST(sum(visits) AS BIGINT) FROM users"), 2);
  loam_qb_insert_column(keep, "email");
  loam_qb_insert_row(keep, rows, 1);
  loam_qb_on_conflict(keep, LOAM_DO_NOTHING, NULL, 0);
  CHECK_OK(run(c, qb, keep, 0, &n, &e), &e);
  CHECK_INT(n, 0);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM users"), 2);
  loam_qb_free(qb);
}


/* 'nrows' rows of (i, 2i) through a chunked INSERT; all land, none twice. */
static void chunked_insert (loam_conn *c, int nrows, int maxp, int chunks) {
  loam_error e = LOAM_ERROR_INIT;
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_insert(qb, "nums");
  loam_rendered *rs = NULL;
  int64_t n;
  int i;
  loam_qb_insert_column(st, "a");
  loam_qb_insert_column(st, "b");
  for (i = 0; i < nrows; i++) {
    loam_value row[2];
    row[0] = loam_int(i);
    row[1] = loam_int(2 * (int64_t)i);
    loam_qb_insert_row(st, row, 2);
  }
  CHECK_OK(loam_qb_render(qb, st, loam_conn_backend(c), maxp, &rs, &e), &e);
  CHECK_INT(loam_rendered_count(rs), chunks);
  loam_rendered_free(rs);
  CHECK_OK(run(c, qb, st, maxp, &n, &e), &e);
  CHECK_INT(n, nrows);
  CHECK_INT(t_scalar(c, "SELECT count(DISTINCT a) FROM nums"), nrows);
  CHECK_INT(t_scalar(c, "SELECT CAST(sum(b) - 2 * sum(a) AS BIGINT) FROM nums"), 0);
  loam_qb_free(qb);
}


/* NULLS FIRST / LAST and an OFFSET without LIMIT, as the database sorts them. */
static void ordering (loam_conn *c) {
  loam_error e = LOAM_ERROR_INIT;
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "nums", NULL);
  loam_rendered *rs = NULL;
  loam_stmt *s = NULL;
  loam_value v;
  EXEC(c, "INSERT INTO nums (a, b) VALUES (1, 10), (2, NULL), (3, 30)", &e);
  loam_qb_column(st, loam_qb_col(qb, NULL, "a"));
  loam_qb_order(st, loam_qb_col(qb, NULL, "b"), LOAM_DESC | LOAM_NULLS_FIRST);
  loam_qb_offset(st, 1);
  CHECK_OK(loam_qb_render(qb, st, loam_conn_backend(c), 0, &rs, &e), &e);
  CHECK_OK(loam_query_rendered(c, rs, 0, 0, &s, &e), &e);
  CHECK_INT(loam_step(s, &e), LOAM_ROW);
  loam_column(s, 0, &v);
  CHECK_INT(v.u.i, 3);     /* NULL (a = 2) first, then 30, 10: the offset skips the NULL */
  loam_stmt_close(s);
  loam_rendered_free(rs);
  st = loam_qb_select(qb, "nums", NULL);
  loam_qb_column(st, loam_qb_col(qb, NULL, "a"));
  loam_qb_where(st, loam_qb_op(qb, "ILIKE", loam_qb_raw(qb, "'ABC'", NULL, 0),
                               loam_qb_val(qb, loam_text("a%", 2))));
  CHECK_INT(total(c, qb, st, 1, &e), 3);
  loam_qb_free(qb);
}


/*
** A rendered statement runs again with other values in its placeholders;
** a count that is not the statement's is refused before anything runs.
** Expects the rows of 'ordering' in 'nums'.
*/
static void rebound (loam_conn *c) {
  loam_error e = LOAM_ERROR_INIT;
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "nums", NULL);
  loam_rendered *rs = NULL;
  loam_stmt *s = (loam_stmt *)&e;   /* any non-NULL pointer, never read */
  loam_value v, other[2];
  loam_qb_column(st, loam_qb_col(qb, NULL, "b"));
  loam_qb_where(st, loam_qb_op(qb, "=", loam_qb_col(qb, NULL, "a"), loam_qb_val(qb, loam_int(1))));
  CHECK_OK(loam_qb_render(qb, st, loam_conn_backend(c), 0, &rs, &e), &e);
  other[0] = loam_int(3);
  other[1] = loam_int(1);
  CHECK_INT(loam_query_rendered_with(c, rs, 0, other, 2, 0, &s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_STR(e.message, "the statement takes 1 parameter(s), got 2");
  CHECK(s == NULL);
  CHECK_INT(loam_query_rendered_with(c, rs, 1, other, 1, 0, &s, &e), LOAM_ERROR);
  CHECK_STR(e.message, "loam_query_rendered_with: no statement 1");
  CHECK_OK(loam_query_rendered_with(c, rs, 0, other, 1, 0, &s, &e), &e);
  CHECK_INT(loam_step(s, &e), LOAM_ROW);
  loam_column(s, 0, &v);
  CHECK_INT(v.u.i, 30);
  loam_stmt_close(s);
  CHECK_OK(loam_query_rendered(c, rs, 0, 0, &s, &e), &e);  /* its own value, unchanged */
  CHECK_INT(loam_step(s, &e), LOAM_ROW);
  loam_column(s, 0, &v);
  CHECK_INT(v.u.i, 10);
  loam_stmt_close(s);
  loam_rendered_free(rs);
  loam_error_clear(&e);
  loam_qb_free(qb);
}


/* {======================================================================
** SQLite
** ======================================================================= */

/*
** A rendered statement runs with its kind: an INSERT reports its id (a
** rowid on SQLite, the RETURNING column on PostgreSQL), an UPDATE none.
** A statement number out of range is refused before anything runs.
*/
static void rendered_kinds (loam_conn *c) {
  loam_error e = LOAM_ERROR_INIT;
  loam_qb *qb = loam_qb_new();
  loam_qstmt *ins = loam_qb_insert(qb, "qb_kinds");
  loam_qstmt *upd = loam_qb_update(qb, "qb_kinds");
  loam_rendered *rs = NULL;
  loam_stmt *s = (loam_stmt *)&e;   /* any non-NULL pointer, never read */
  loam_value row[1];
  int64_t changes = -1, id = -1;
  int has_id = -1;
  loam_qb_insert_column(ins, "a");
  row[0] = loam_text("x", 1);
  loam_qb_insert_row(ins, row, 1);
  if (loam_conn_backend(c) == LOAM_POSTGRES) loam_qb_returning(ins, loam_qb_col(qb, NULL, "id"));
  loam_qb_set(upd, "a", loam_qb_val(qb, loam_text("y", 1)));
  CHECK_OK(loam_qb_render(qb, ins, loam_conn_backend(c), 0, &rs, &e), &e);
  CHECK_INT(loam_rendered_kind(rs, 0), LOAM_SQL_INSERT);
  CHECK_INT(loam_exec_rendered(c, rs, 1, &changes, &id, &has_id, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_STR(e.message, "loam_exec_rendered: no statement 1");
  CHECK_INT(loam_query_rendered(c, rs, -1, 0, &s, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_STR(e.message, "loam_query_rendered: no statement -1");
  CHECK(s == NULL);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM qb_kinds"), 0);
  CHECK_OK(loam_exec_rendered(c, rs, 0, &changes, &id, &has_id, &e), &e);
  CHECK_INT(changes, 1); CHECK_INT(has_id, 1); CHECK_INT(id, 1);
  loam_rendered_free(rs);
  CHECK_OK(loam_qb_render(qb, upd, loam_conn_backend(c), 0, &rs, &e), &e);
  CHECK_INT(loam_rendered_kind(rs, 0), LOAM_SQL_UPDATE);
  CHECK_OK(loam_exec_rendered(c, rs, 0, &changes, &id, &has_id, &e), &e);
  CHECK_INT(changes, 1); CHECK_INT(has_id, 0);
  loam_rendered_free(rs);
  loam_error_clear(&e);
  loam_qb_free(qb);
}


TEST(qb_sqlite_rendered_kinds) {
  loam_error e = LOAM_ERROR_INIT;
  SQLITE_OPEN(c, &e);
  EXEC(c, "CREATE TABLE qb_kinds (id INTEGER PRIMARY KEY, a TEXT)", &e);
  rendered_kinds(c);
  loam_conn_close(c);
}


TEST(qb_sqlite_in_lists) {
  loam_error e = LOAM_ERROR_INIT;
  SQLITE_OPEN(c, &e);
  EXEC(c, "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT, flag BOOLEAN, score REAL)", &e);
  in_lists(c);
  loam_conn_close(c);
}


TEST(qb_sqlite_upsert) {
  loam_error e = LOAM_ERROR_INIT;
  SQLITE_OPEN(c, &e);
  EXEC(c, "CREATE TABLE users (email TEXT UNIQUE, name TEXT, note TEXT, "
          "visits INTEGER DEFAULT 0)", &e);
  upserts(c);
  loam_conn_close(c);
}


TEST(qb_sqlite_chunked_insert) {
  loam_error e = LOAM_ERROR_INIT;
  SQLITE_OPEN(c, &e);
  EXEC(c, "CREATE TABLE nums (a INTEGER, b INTEGER)", &e);
  chunked_insert(c, 50000, 0, 4);       /* 16383 rows a chunk */
  EXEC(c, "DELETE FROM nums", &e);
  chunked_insert(c, 100, 7, 34);        /* 3 rows a chunk */
  EXEC(c, "DELETE FROM nums", &e);
  ordering(c);
  rebound(c);
  loam_conn_close(c);
}

/* }====================================================================== */


/* {======================================================================
** PostgreSQL
** ======================================================================= */

TEST(qb_pg_rendered_kinds) {
  loam_error e = LOAM_ERROR_INIT;
  PG_OPEN(c, &e);
  EXEC(c, "DROP TABLE IF EXISTS qb_kinds", &e);
  EXEC(c, "CREATE TABLE qb_kinds (id BIGSERIAL PRIMARY KEY, a TEXT)", &e);
  rendered_kinds(c);
  EXEC(c, "DROP TABLE qb_kinds", &e);
  loam_conn_close(c);
}


TEST(qb_pg_any_arrays) {
  loam_error e = LOAM_ERROR_INIT;
  PG_OPEN(c, &e);
  EXEC(c, "DROP TABLE IF EXISTS tags", &e);
  EXEC(c, "CREATE TABLE tags (id int8 PRIMARY KEY, name text, flag boolean, score float8)", &e);
  in_lists(c);
  loam_conn_close(c);
}


TEST(qb_pg_upsert) {
  loam_error e = LOAM_ERROR_INIT;
  PG_OPEN(c, &e);
  EXEC(c, "DROP TABLE IF EXISTS users", &e);
  EXEC(c, "CREATE TABLE users (email text UNIQUE, name text, note text, "
          "visits int8 DEFAULT 0)", &e);
  upserts(c);
  loam_conn_close(c);
}


TEST(qb_pg_chunked_insert_and_order) {
  loam_error e = LOAM_ERROR_INIT;
  PG_OPEN(c, &e);
  EXEC(c, "DROP TABLE IF EXISTS nums", &e);
  EXEC(c, "CREATE TABLE nums (a int8, b int8)", &e);
  chunked_insert(c, 70000, 0, 3);       /* 32767 rows a chunk */
  EXEC(c, "DELETE FROM nums", &e);
  chunked_insert(c, 100, 7, 34);
  EXEC(c, "DELETE FROM nums", &e);
  ordering(c);
  rebound(c);
  loam_conn_close(c);
}


/* A second session skips the row the first one holds. */
TEST(qb_pg_for_update_skip_locked) {
  loam_error e = LOAM_ERROR_INIT;
  loam_qb *qb = loam_qb_new();
  loam_qstmt *one = loam_qb_select(qb, "jobs", NULL), *next = loam_qb_select(qb, "jobs", NULL);
  PG_OPEN(a, &e);
  PG_OPEN(b, &e);
  EXEC(a, "DROP TABLE IF EXISTS jobs", &e);
  EXEC(a, "CREATE TABLE jobs (id int8 PRIMARY KEY)", &e);
  EXEC(a, "INSERT INTO jobs VALUES (1), (2), (3)", &e);
  loam_qb_column(one, loam_qb_col(qb, NULL, "id"));
  loam_qb_where(one, loam_qb_op(qb, "=", loam_qb_col(qb, NULL, "id"),
                                loam_qb_val(qb, loam_int(1))));
  loam_qb_lock(one, LOAM_FOR_UPDATE);
  loam_qb_column(next, loam_qb_col(qb, NULL, "id"));
  loam_qb_order(next, loam_qb_col(qb, NULL, "id"), 0);
  loam_qb_limit(next, 1);
  loam_qb_lock(next, LOAM_FOR_UPDATE | LOAM_SKIP_LOCKED);
  EXEC(a, "BEGIN", &e);
  CHECK_INT(total(a, qb, one, 0, &e), 1);
  EXEC(b, "BEGIN", &e);
  CHECK_INT(total(b, qb, next, 0, &e), 2);
  EXEC(b, "ROLLBACK", &e);
  EXEC(a, "ROLLBACK", &e);
  CHECK_INT(total(b, qb, next, 0, &e), 1);
  loam_qb_free(qb);
  loam_conn_close(a);
  loam_conn_close(b);
}


/* '??' reaches PostgreSQL as the jsonb '?' operator, beside a '$n' parameter. */
TEST(qb_pg_literal_question_mark) {
  loam_error e = LOAM_ERROR_INIT;
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, NULL, NULL);
  loam_value k = loam_text("a", 1);
  PG_OPEN(c, &e);
  loam_qb_column(st, loam_qb_raw(qb, "CASE WHEN '{\"a\": 1}'::jsonb ?" "? ? THEN 1 ELSE 0 END",
                                 &k, 1));
  CHECK_INT(total(c, qb, st, 0, &e), 1);
  loam_qb_free(qb);
  loam_conn_close(c);
}

/* }====================================================================== */
