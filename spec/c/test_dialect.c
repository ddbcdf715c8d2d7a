/*
** test_dialect.c: the dialect descriptions (dialect.c) held against the
** real databases.
**
** The rendered text of each fact is checked in test_query.c, test_ddl.c
** and test_tx.c; what is checked here are the facts no rendering uses yet:
** which ALTER TABLE operations each backend runs in place.  Each operation
** is tried in its ALTER TABLE form on a fresh table: it must succeed where
** the description says "in place", and fail where it says "rebuild"; an
** operation in place with limits must also fail in one limited case.
*/
#include <stdio.h>
#include <string.h>

#include "t.h"
#include "loam.h"
#include "sql/dialect_int.h"


/* One operation: its statement, and for a limited one a statement it refuses. */
typedef struct alter_case {
  int op;
  const char *sql;
  const char *limited;
} alter_case;

static const alter_case cases[] = {
  { LOAM__ALTER_RENAME_TABLE, "ALTER TABLE loam_alter_t RENAME TO loam_alter_t2", NULL },
  { LOAM__ALTER_ADD_COLUMN, "ALTER TABLE loam_alter_t ADD COLUMN c integer",
    "ALTER TABLE loam_alter_t ADD COLUMN c integer UNIQUE" },
  { LOAM__ALTER_DROP_COLUMN, "ALTER TABLE loam_alter_t DROP COLUMN a",
    "ALTER TABLE loam_alter_t DROP COLUMN b" },
  { LOAM__ALTER_RENAME_COLUMN, "ALTER TABLE loam_alter_t RENAME COLUMN a TO a2", NULL },
  { LOAM__ALTER_COLUMN_TYPE, "ALTER TABLE loam_alter_t ALTER COLUMN a TYPE bigint", NULL },
  { LOAM__ALTER_SET_NOT_NULL, "ALTER TABLE loam_alter_t ALTER COLUMN a SET NOT NULL", NULL },
  { LOAM__ALTER_DROP_NOT_NULL, "ALTER TABLE loam_alter_t ALTER COLUMN n DROP NOT NULL", NULL },
  { LOAM__ALTER_SET_DEFAULT, "ALTER TABLE loam_alter_t ALTER COLUMN a SET DEFAULT 1", NULL },
  { LOAM__ALTER_DROP_DEFAULT, "ALTER TABLE loam_alter_t ALTER COLUMN d DROP DEFAULT", NULL },
  { LOAM__ALTER_ADD_CONSTRAINT,
    "ALTER TABLE loam_alter_t ADD CONSTRAINT loam_alter_t_a_key UNIQUE (a)", NULL },
  { LOAM__ALTER_DROP_CONSTRAINT, "ALTER TABLE loam_alter_t DROP CONSTRAINT loam_alter_t_b_key",
    NULL }
};

_Static_assert(sizeof cases / sizeof cases[0] == LOAM__ALTER_N, "one case per operation");


static int exec (loam_conn *c, const char *sql, loam_error *err) {
  return loam_exec(c, sql, NULL, 0, NULL, NULL, NULL, err);
}


/* A fresh table with a plain, a UNIQUE, a NOT NULL and a defaulted column. */
static int fresh (loam_conn *c, loam_error *err) {
  if (exec(c, "DROP TABLE IF EXISTS loam_alter_t", err) != LOAM_OK ||
      exec(c, "DROP TABLE IF EXISTS loam_alter_t2", err) != LOAM_OK)
    return LOAM_ERROR;
  return exec(c, "CREATE TABLE loam_alter_t (id integer PRIMARY KEY, a integer, "
                 "b integer CONSTRAINT loam_alter_t_b_key UNIQUE, n integer NOT NULL, "
                 "d integer DEFAULT 0)", err);
}


/* Tries every operation on 'c' and checks it against the description. */
static void check_alters (loam_conn *c) {
  const loam__dialect_desc *d = loam__dialect(loam_conn_backend(c));
  loam_error err = LOAM_ERROR_INIT;
  size_t i;
  CHECK(d != NULL);
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const alter_case *k = &cases[i];
    int fact = d->alter[k->op], rc;
    CHECK_OK(fresh(c, &err), &err);
    rc = exec(c, k->sql, &err);
    if ((rc == LOAM_OK) != (fact != LOAM__ALTER_REBUILD)) {
      t_fail(__FILE__, __LINE__, "%s: '%s' %s, but the description says %s", d->name, k->sql,
             rc == LOAM_OK ? "ran" : "failed", fact == LOAM__ALTER_REBUILD ? "rebuild"
                                                                          : "in place");
      break;
    }
    if (fact != LOAM__ALTER_LIMITED) continue;
    CHECK(k->limited != NULL);
    CHECK_OK(fresh(c, &err), &err);
    if (exec(c, k->limited, &err) == LOAM_OK) {
      t_fail(__FILE__, __LINE__, "%s: '%s' ran, but the operation is limited there", d->name,
             k->limited);
      break;
    }
  }
  loam_error_clear(&err);
  exec(c, "DROP TABLE IF EXISTS loam_alter_t", NULL);
  exec(c, "DROP TABLE IF EXISTS loam_alter_t2", NULL);
}


TEST(dialect_alter_facts_sqlite) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  CHECK_OK(loam_connect("sqlite::memory:", NULL, &c, &err), &err);
  check_alters(c);
  loam_conn_close(c);
}


TEST(dialect_alter_facts_postgres) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  const char *url = t_pg_url();
  if (url == NULL) {
    t_fail(__FILE__, __LINE__, "LOAM_TEST_PG is not set; the PostgreSQL tests need a server");
    return;
  }
  CHECK_OK(loam_connect(url, NULL, &c, &err), &err);
  check_alters(c);
  loam_conn_close(c);
}


TEST(dialect_unknown_backend) {
  CHECK(loam__dialect(LOAM_SQLITE) != NULL);
  CHECK(loam__dialect(LOAM_POSTGRES) != NULL);
  CHECK(loam__dialect((loam_backend)99) == NULL);
}


/*
** The 'exact_numeric' fact against the database: a decimal of 21
** significant digits reads back whole exactly where the description says
** numeric columns keep every digit.
*/
static void check_exact_numeric (loam_conn *c) {
  static const char dec[] = "12345678901234567890.5";
  loam_error err = LOAM_ERROR_INIT;
  loam_value p = loam_text(dec, sizeof dec - 1), v;
  loam_stmt *st = NULL;
  int whole;
  CHECK_OK(exec(c, "DROP TABLE IF EXISTS loam_num_t", &err), &err);
  CHECK_OK(exec(c, "CREATE TABLE loam_num_t (x numeric)", &err), &err);
  CHECK_OK(loam_exec(c, "INSERT INTO loam_num_t (x) VALUES (CAST(? AS numeric))", &p, 1, NULL,
                     NULL, NULL, &err), &err);
  CHECK_OK(loam_query(c, "SELECT x FROM loam_num_t", NULL, 0, 0, &st, &err), &err);
  CHECK_INT(loam_step(st, &err), LOAM_ROW);
  CHECK_OK(loam_column(st, 0, &v), &err);
  whole = v.type == LOAM_TEXT && v.u.s.len == sizeof dec - 1 &&
          memcmp(v.u.s.ptr, dec, v.u.s.len) == 0;
  loam_stmt_close(st);
  exec(c, "DROP TABLE loam_num_t", NULL);
  CHECK_INT(loam_exact_numeric(loam_conn_backend(c)), whole);
  loam_error_clear(&err);
}


TEST(dialect_exact_numeric_sqlite) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  CHECK_OK(loam_connect("sqlite::memory:", NULL, &c, &err), &err);
  check_exact_numeric(c);
  loam_conn_close(c);
  CHECK_INT(loam_exact_numeric((loam_backend)99), 0);
}


TEST(dialect_exact_numeric_postgres) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  const char *url = t_pg_url();
  if (url == NULL) {
    t_fail(__FILE__, __LINE__, "LOAM_TEST_PG is not set; the PostgreSQL tests need a server");
    return;
  }
  CHECK_OK(loam_connect(url, NULL, &c, &err), &err);
  check_exact_numeric(c);
  loam_conn_close(c);
}
