/*
** test_schema.c: schema introspection (schema.c) against the real
** databases, and the parameter count of raw SQL (sqltext.c).
**
** 'loam_table_exists' must answer alike on both backends for what an
** unqualified name means there: the main database on SQLite (not temp
** tables, not views), the current schema of the search_path on
** PostgreSQL.
*/
#include <string.h>

#include "t.h"
#include "loam.h"


static int exec (loam_conn *c, const char *sql, loam_error *err) {
  return loam_exec(c, sql, NULL, 0, NULL, NULL, NULL, err);
}


/* The answers every backend shares, on 'c' (tables loam_cat_*). */
static void check_common (loam_conn *c) {
  loam_error err = LOAM_ERROR_INIT;
  int exists = -1;
  CHECK_OK(exec(c, "DROP TABLE IF EXISTS loam_cat_t", &err), &err);
  CHECK_OK(loam_table_exists(c, "loam_cat_t", &exists, &err), &err);
  CHECK_INT(exists, 0);
  CHECK_OK(exec(c, "CREATE TABLE loam_cat_t (id integer)", &err), &err);
  CHECK_OK(loam_table_exists(c, "loam_cat_t", &exists, &err), &err);
  CHECK_INT(exists, 1);
  /* the name as stored: no case folding, no quoting, no LIKE pattern */
  CHECK_OK(loam_table_exists(c, "LOAM_CAT_T", &exists, &err), &err);
  CHECK_INT(exists, 0);
  CHECK_OK(loam_table_exists(c, "loam_cat_%", &exists, &err), &err);
  CHECK_INT(exists, 0);
  CHECK_OK(loam_table_exists(c, "\"loam_cat_t\"", &exists, &err), &err);
  CHECK_INT(exists, 0);
  CHECK_OK(loam_table_exists(c, LOAM_MIGRATIONS_TABLE, &exists, &err), &err);
  CHECK_INT(exists, 0);
  /* the misuse leaves '*exists' alone */
  exists = 7;
  CHECK_INT(loam_table_exists(c, NULL, &exists, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_STR(err.message, "loam_table_exists: table name is NULL");
  CHECK_INT(exists, 7);
  CHECK_INT(loam_table_exists(c, "loam_cat_t", NULL, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_STR(err.message, "loam_table_exists: 'exists' is NULL");
  CHECK_INT(loam_table_exists(NULL, "loam_cat_t", &exists, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_STR(err.message, "attempt to use a closed connection");
  CHECK_INT(exists, 7);
  /* NULL 'err' is fine */
  CHECK_INT(loam_table_exists(c, NULL, &exists, NULL), LOAM_ERROR);
  CHECK_OK(exec(c, "DROP TABLE loam_cat_t", &err), &err);
  loam_error_clear(&err);
}


TEST(schema_table_exists_sqlite) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  int exists = -1;
  CHECK_OK(loam_connect("sqlite::memory:", NULL, &c, &err), &err);
  check_common(c);
  if (t_failed()) { loam_conn_close(c); return; }
  /* a temp table and a view are not tables of the main database */
  CHECK_OK(exec(c, "CREATE TEMP TABLE loam_cat_tmp (id integer)", &err), &err);
  CHECK_OK(loam_table_exists(c, "loam_cat_tmp", &exists, &err), &err);
  CHECK_INT(exists, 0);
  CHECK_OK(exec(c, "CREATE VIEW loam_cat_v AS SELECT 1 AS one", &err), &err);
  CHECK_OK(loam_table_exists(c, "loam_cat_v", &exists, &err), &err);
  CHECK_INT(exists, 0);
  loam_conn_close(c);
  loam_error_clear(&err);
}


TEST(schema_table_exists_postgres) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  int exists = -1;
  const char *url = t_pg_url();
  if (url == NULL) {
    t_fail(__FILE__, __LINE__, "LOAM_TEST_PG is not set; the PostgreSQL tests need a server");
    return;
  }
  CHECK_OK(loam_connect(url, NULL, &c, &err), &err);
  check_common(c);
  if (t_failed()) { loam_conn_close(c); return; }
  /* only the current schema counts: the table of another schema appears
  ** once the search_path puts that schema first */
  CHECK_OK(exec(c, "DROP SCHEMA IF EXISTS loam_cat_s CASCADE", &err), &err);
  CHECK_OK(exec(c, "CREATE SCHEMA loam_cat_s", &err), &err);
  CHECK_OK(exec(c, "CREATE TABLE loam_cat_s.loam_cat_other (id integer)", &err), &err);
  CHECK_OK(loam_table_exists(c, "loam_cat_other", &exists, &err), &err);
  CHECK_INT(exists, 0);
  CHECK_OK(exec(c, "SET search_path TO loam_cat_s, public", &err), &err);
  CHECK_OK(loam_table_exists(c, "loam_cat_other", &exists, &err), &err);
  CHECK_INT(exists, 1);
  CHECK_OK(exec(c, "RESET search_path", &err), &err);
  CHECK_OK(exec(c, "DROP SCHEMA loam_cat_s CASCADE", &err), &err);
  /* a database failure comes back as the backend reports it */
  CHECK_OK(exec(c, "BEGIN", &err), &err);
  CHECK_INT(exec(c, "SELECT 1/0", &err), LOAM_ERROR);
  exists = 7;
  CHECK_INT(loam_table_exists(c, "loam_cat_t", &exists, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_TRANSACTION_ABORTED);
  CHECK_INT(exists, 7);
  CHECK_OK(exec(c, "ROLLBACK", &err), &err);
  CHECK_OK(loam_table_exists(c, "loam_cat_t", &exists, &err), &err);
  CHECK_INT(exists, 0);
  loam_conn_close(c);
  loam_error_clear(&err);
}


/* The count of 'sql' on 'be', or -1 with the error in '*err'. */
static int count (loam_backend be, const char *sql, loam_error *err) {
  int n = -1;
  if (loam_sql_param_count(be, sql, &n, err) != LOAM_OK) return -1;
  return n;
}


TEST(sql_param_count) {
  static const loam_backend bes[] = { LOAM_SQLITE, LOAM_POSTGRES };
  loam_error err = LOAM_ERROR_INIT;
  size_t i;
  int n = 5;
  for (i = 0; i < 2; i++) {
    loam_backend be = bes[i];
    CHECK_INT(count(be, "SELECT 1", &err), 0);
    CHECK_INT(count(be, "SELECT ?, ? -- ?\n, '?'", &err), 2);
    CHECK_INT(count(be, "SELECT $2, $1, $2", &err), 2);
    CHECK_INT(count(be, "SELECT ?1", &err), 1);
    CHECK_INT(count(be, "SELECT ?, $1", &err), -1);
    CHECK_INT(err.code, LOAM_E_MISUSE);
    CHECK_HAS(err.message, "mixes '?' and numbered placeholders");
    CHECK_INT(count(be, "SELECT $3, $1", &err), -1);
    CHECK_STR(err.message, "SQL uses placeholder 3 but not 2: every parameter must appear in "
                           "the text");
    CHECK_INT(count(be, "SELECT 1; SELECT ?", &err), -1);
    CHECK_INT(err.code, LOAM_E_MISUSE);
    CHECK_INT(count(be, NULL, &err), -1);
    CHECK_STR(err.message, "loam_sql_param_count: SQL text is NULL");
    CHECK_INT(loam_sql_param_count(be, "SELECT ?", NULL, &err), LOAM_ERROR);
    CHECK_STR(err.message, "loam_sql_param_count: 'n' is NULL");
  }
  /* named parameters: SQLite's, refused as loam_query refuses them there */
  CHECK_INT(count(LOAM_SQLITE, "SELECT :name, @a, $b", &err), -1);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_HAS(err.message, "SQL holds placeholders loam does not read");
  CHECK_INT(count(LOAM_SQLITE, "SELECT ':name' AS \"@a\" -- $b", &err), 0);
  CHECK_INT(count(LOAM_POSTGRES, "SELECT 1::int, ?", &err), 1);
  CHECK_INT(count(LOAM_POSTGRES, "SELECT ? ?? 'k'", &err), 1);
  CHECK_INT(count(LOAM_SQLITE, "SELECT ? ?? 'k'", &err), -1);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_INT(loam_sql_param_count((loam_backend)99, "SELECT ?", &n, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_INT(n, 5);
  loam_error_clear(&err);
}
