/*
** test_ddl.c: schema DDL rendering (ddl.c): the exact SQL for every type
** and option on both dialects, every refused declaration with its message,
** identifiers and defaults that try to break out of their quotes, and the
** rendered DDL run on a real SQLite and a real PostgreSQL, where rows that
** violate the constraints prove the constraints exist.  PostgreSQL tests
** fail, never skip, without a server; they own their tables (ddl_pg_*)
** and drop them first, so the suite can run again on the same database.
*/
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loam.h"
#include "t.h"


/* The message of the last failed rendering, for test output. */
static char lasterr[512];

/*
** The text of the one DDL statement of 'rs' as a copy the caller frees,
** or NULL (with 'lasterr' saying why); frees 'rs'.
*/
static char *ddl_text (loam_rendered *rs) {
  char *sql = NULL;
  if (rs == NULL) return NULL;
  if (loam_rendered_count(rs) != 1 || loam_rendered_kind(rs, 0) != LOAM_SQL_DDL)
    snprintf(lasterr, sizeof lasterr, "(%d statements, the first of kind %d)",
             loam_rendered_count(rs), (int)loam_rendered_kind(rs, 0));
  else if ((sql = strdup(loam_rendered_sql(rs, 0, NULL))) == NULL)
    snprintf(lasterr, sizeof lasterr, "(out of memory)");
  loam_rendered_free(rs);
  return sql;
}

static char *render_table (const loam_table_def *t, loam_backend be) {
  loam_error e = LOAM_ERROR_INIT;
  loam_rendered *rs = NULL;
  if (loam_render_create_table(t, be, &rs, &e) != LOAM_OK)
    snprintf(lasterr, sizeof lasterr, "(failed: %s: %s)", loam_errcode_name(e.code),
             e.message ? e.message : "");
  loam_error_clear(&e);
  return ddl_text(rs);
}

static char *render_index (const loam_index_def *x, loam_backend be) {
  loam_error e = LOAM_ERROR_INIT;
  loam_rendered *rs = NULL;
  if (loam_render_create_index(x, be, &rs, &e) != LOAM_OK)
    snprintf(lasterr, sizeof lasterr, "(failed: %s: %s)", loam_errcode_name(e.code),
             e.message ? e.message : "");
  loam_error_clear(&e);
  return ddl_text(rs);
}

/* Checks that 'expr' (a rendered statement, freed here) is exactly 'want'. */
#define CHECK_SQL(expr, want) do { char *s_ = (expr); const char *w_ = (want); \
  if (s_ == NULL || strcmp(s_, w_) != 0) { \
    t_fail(__FILE__, __LINE__, "rendered\n      %s\n    expected\n      %s", \
           s_ ? s_ : lasterr, w_); \
    free(s_); return; } \
  free(s_); } while (0)


/*
** Renders 't' on both backends expecting LOAM_E_MISUSE with the same
** message, and returns that message (static), or a description of what
** happened instead.
*/
static const char *rejected (const loam_table_def *t) {
  static char msg[512];
  loam_error e1 = LOAM_ERROR_INIT, e2 = LOAM_ERROR_INIT;
  loam_rendered *dummy = (loam_rendered *)msg;   /* any non-NULL pointer, never read */
  loam_rendered *s1 = dummy, *s2 = dummy;
  int r1 = loam_render_create_table(t, LOAM_SQLITE, &s1, &e1);
  int r2 = loam_render_create_table(t, LOAM_POSTGRES, &s2, &e2);
  if (r1 == LOAM_OK || r2 == LOAM_OK)
    snprintf(msg, sizeof msg, "(rendered: %s)", loam_rendered_sql(r1 == LOAM_OK ? s1 : s2, 0, NULL));
  else if (s1 != NULL || s2 != NULL)
    snprintf(msg, sizeof msg, "(failed without clearing the output pointer)");
  else if (e1.code != LOAM_E_MISUSE || e2.code != LOAM_E_MISUSE)
    snprintf(msg, sizeof msg, "(codes %s and %s)", loam_errcode_name(e1.code),
             loam_errcode_name(e2.code));
  else if (strcmp(e1.message, e2.message) != 0)
    snprintf(msg, sizeof msg, "(messages differ: %s | %s)", e1.message, e2.message);
  else
    snprintf(msg, sizeof msg, "%s", e1.message);
  if (r1 == LOAM_OK) loam_rendered_free(s1);
  if (r2 == LOAM_OK) loam_rendered_free(s2);
  loam_error_clear(&e1);
  loam_error_clear(&e2);
  return msg;
}


static int run (loam_conn *c, const char *sql, loam_error *e) {
  return loam_exec(c, sql, NULL, 0, NULL, NULL, NULL, e);
}

/* Runs the statements of 'rs' in order, then frees it. */
static int run_rendered (loam_conn *c, loam_rendered *rs, loam_error *e) {
  int i, rc = LOAM_OK;
  for (i = 0; rc == LOAM_OK && i < loam_rendered_count(rs); i++)
    rc = loam_exec_rendered(c, rs, i, NULL, NULL, NULL, e);
  loam_rendered_free(rs);
  return rc;
}

/* Renders 't' for the connection's backend and runs it. */
static int create (loam_conn *c, const loam_table_def *t, loam_error *e) {
  loam_rendered *rs = NULL;
  int rc = loam_render_create_table(t, loam_conn_backend(c), &rs, e);
  return rc == LOAM_OK ? run_rendered(c, rs, e) : rc;
}

static int create_index (loam_conn *c, const loam_index_def *x, loam_error *e) {
  loam_rendered *rs = NULL;
  int rc = loam_render_create_index(x, loam_conn_backend(c), &rs, e);
  return rc == LOAM_OK ? run_rendered(c, rs, e) : rc;
}

static int drop (loam_conn *c, const char *table, loam_error *e) {
  loam_rendered *rs = NULL;
  int rc = loam_render_drop_table(table, 1, loam_conn_backend(c), &rs, e);
  return rc == LOAM_OK ? run_rendered(c, rs, e) : rc;
}

#define EXEC(c, sql, e) CHECK_OK(run((c), (sql), (e)), (e))

/* Runs 'sql', which must fail with 'code'. */
#define CHECK_FAILS(c, sql, e, want) do { \
  if (run((c), (sql), (e)) == LOAM_OK) { \
    t_fail(__FILE__, __LINE__, "%s succeeded, expected %s", (sql), loam_errcode_name(want)); \
    return; } \
  if ((e)->code != (want)) { \
    t_fail(__FILE__, __LINE__, "%s failed with %s (%s), expected %s", (sql), \
           loam_errcode_name((e)->code), (e)->message, loam_errcode_name(want)); \
    return; } } while (0)

static loam_conn *open_sqlite (loam_error *e) {
  loam_conn *c = NULL;
  if (loam_connect("sqlite::memory:", NULL, &c, e) != LOAM_OK) return NULL;
  return c;
}

/* Opens the test PostgreSQL server or fails the test: PostgreSQL tests never skip. */
#define PG_OPEN(c, e) \
  loam_conn *c = NULL; \
  do { \
    const char *url_ = t_pg_url(); \
    if (url_ == NULL) { \
      t_fail(__FILE__, __LINE__, "LOAM_TEST_PG is not set; the PostgreSQL tests need a server"); \
      return; } \
    CHECK_OK(loam_connect(url_, NULL, &c, (e)), (e)); \
  } while (0)

/* Defines tests 'name_sqlite' and 'name_postgres' running 'fn' on each backend. */
#define ON_BOTH(name, fn) \
  TEST(name##_sqlite) { \
    loam_error e_ = LOAM_ERROR_INIT; \
    loam_conn *c_ = open_sqlite(&e_); \
    CHECK(c_ != NULL); \
    fn(c_); \
    loam_conn_close(c_); \
  } \
  TEST(name##_postgres) { \
    loam_error e_ = LOAM_ERROR_INIT; \
    PG_OPEN(c_, &e_); \
    fn(c_); \
    loam_conn_close(c_); \
  }


/* {======================================================================
** Rendering: exact SQL
** ======================================================================= */

static const char *const ab[] = { "a", "b" };

/* One column of every type, without options beyond the type's own. */
static const loam_column_def types_cols[] = {
  { .name = "id", .type = LOAM_COL_ID },
  { .name = "i", .type = LOAM_COL_INTEGER },
  { .name = "b", .type = LOAM_COL_BIGINT },
  { .name = "t", .type = LOAM_COL_TEXT },
  { .name = "tl", .type = LOAM_COL_TEXT, .length = 10 },
  { .name = "n", .type = LOAM_COL_NUMERIC },
  { .name = "np", .type = LOAM_COL_NUMERIC, .precision = 10, .scale = 2 },
  { .name = "bo", .type = LOAM_COL_BOOLEAN },
  { .name = "f", .type = LOAM_COL_FLOAT },
  { .name = "d", .type = LOAM_COL_DATE },
  { .name = "ts", .type = LOAM_COL_TIMESTAMP },
  { .name = "j", .type = LOAM_COL_JSON },
  { .name = "bl", .type = LOAM_COL_BLOB },
  { .name = "e", .type = LOAM_COL_ENUM, .enum_values = ab, .nenum_values = 2 },
};

static const loam_table_def types_table = {
  .name = "ddl_types", .columns = types_cols,
  .ncolumns = (int)(sizeof types_cols / sizeof types_cols[0])
};


TEST(ddl_types_sqlite) {
  CHECK_SQL(render_table(&types_table, LOAM_SQLITE),
    "CREATE TABLE \"ddl_types\" (\"id\" INTEGER CONSTRAINT \"ddl_types_pkey\" PRIMARY KEY, "
    "\"i\" INTEGER, \"b\" INTEGER, \"t\" TEXT, "
    "\"tl\" TEXT CONSTRAINT \"ddl_types_tl_check\" CHECK (length(\"tl\") <= 10), "
    "\"n\" NUMERIC, \"np\" NUMERIC(10,2), \"bo\" BOOLEAN, \"f\" REAL, \"d\" DATE, "
    "\"ts\" TIMESTAMP, \"j\" TEXT CONSTRAINT \"ddl_types_j_check\" "
    "CHECK (\"j\" IS NULL OR json_valid(\"j\")), "
    "\"bl\" BLOB, \"e\" TEXT CONSTRAINT \"ddl_types_e_check\" CHECK (\"e\" IN ('a', 'b')))");
}


TEST(ddl_types_postgres) {
  CHECK_SQL(render_table(&types_table, LOAM_POSTGRES),
    "CREATE TABLE \"ddl_types\" (\"id\" bigint GENERATED BY DEFAULT AS IDENTITY "
    "CONSTRAINT \"ddl_types_pkey\" PRIMARY KEY, \"i\" integer, \"b\" bigint, \"t\" text, "
    "\"tl\" varchar(10), \"n\" numeric, \"np\" numeric(10,2), \"bo\" boolean, "
    "\"f\" double precision, \"d\" date, \"ts\" timestamptz, \"j\" jsonb, \"bl\" bytea, "
    "\"e\" text CONSTRAINT \"ddl_types_e_check\" CHECK (\"e\" IN ('a', 'b')))");
}


/* Every type runs on both backends, and a row goes in. */
static void types_run (loam_conn *c) {
  loam_error e = LOAM_ERROR_INIT;
  CHECK_OK(drop(c, "ddl_types", &e), &e);
  CHECK_OK(create(c, &types_table, &e), &e);
  EXEC(c, "INSERT INTO ddl_types (i, b, t, tl, n, np, bo, f, d, ts, j, e) VALUES "
          "(1, 2, 'x', 'short', 1.5, 12.25, true, 0.5, '2024-01-31', "
          "'2024-01-31 12:00:00', '{\"a\": 1}', 'b')", &e);
  CHECK_INT(t_scalar(c, "SELECT id FROM ddl_types"), 1);
  CHECK_OK(drop(c, "ddl_types", &e), &e);
  loam_error_clear(&e);
}

ON_BOTH(ddl_types_run, types_run)


TEST(ddl_options) {
  static const char *const pk[] = { "org", "code" };
  static const char *const uq_name_code[] = { "name", "code" };
  static const char *const uq_name[] = { "name" };
  static const loam_column_def cols[] = {
    { .name = "org", .type = LOAM_COL_BIGINT },
    { .name = "code", .type = LOAM_COL_TEXT },
    { .name = "name", .type = LOAM_COL_TEXT, .length = 80, .not_null = 1, .unique = 1 },
    { .name = "qty", .type = LOAM_COL_INTEGER, .not_null = 1 },
  };
  static const loam_check_def checks[] = {
    { .name = "qty_positive", .sql = "qty > 0" },
    { .name = "code_upper", .sql = "code = upper(code)" },
  };
  static const loam_unique_def uniques[] = {
    { .name = NULL, .columns = uq_name_code, .ncolumns = 2 },
    { .name = "ddl_opt_one_name", .columns = uq_name, .ncolumns = 1 },
  };
  loam_table_def t = { .name = "ddl_opt", .columns = cols, .ncolumns = 4,
                       .primary_key = pk, .nprimary_key = 2, .checks = checks, .nchecks = 2,
                       .uniques = uniques, .nuniques = 2, .if_not_exists = 1 };
  CHECK_SQL(render_table(&t, LOAM_SQLITE),
    "CREATE TABLE IF NOT EXISTS \"ddl_opt\" (\"org\" INTEGER NOT NULL, \"code\" TEXT NOT NULL, "
    "\"name\" TEXT NOT NULL CONSTRAINT \"ddl_opt_name_key\" UNIQUE "
    "CONSTRAINT \"ddl_opt_name_check\" CHECK (length(\"name\") <= 80), "
    "\"qty\" INTEGER NOT NULL, CONSTRAINT \"ddl_opt_pkey\" PRIMARY KEY (\"org\", \"code\"), "
    "CONSTRAINT \"ddl_opt_name_code_key\" UNIQUE (\"name\", \"code\"), "
    "CONSTRAINT \"ddl_opt_one_name\" UNIQUE (\"name\"), "
    "CONSTRAINT \"qty_positive\" CHECK (qty > 0), "
    "CONSTRAINT \"code_upper\" CHECK (code = upper(code)))");
  CHECK_SQL(render_table(&t, LOAM_POSTGRES),
    "CREATE TABLE IF NOT EXISTS \"ddl_opt\" (\"org\" bigint NOT NULL, \"code\" text NOT NULL, "
    "\"name\" varchar(80) NOT NULL CONSTRAINT \"ddl_opt_name_key\" UNIQUE, "
    "\"qty\" integer NOT NULL, CONSTRAINT \"ddl_opt_pkey\" PRIMARY KEY (\"org\", \"code\"), "
    "CONSTRAINT \"ddl_opt_name_code_key\" UNIQUE (\"name\", \"code\"), "
    "CONSTRAINT \"ddl_opt_one_name\" UNIQUE (\"name\"), "
    "CONSTRAINT \"qty_positive\" CHECK (qty > 0), "
    "CONSTRAINT \"code_upper\" CHECK (code = upper(code)))");
}


TEST(ddl_column_primary_key) {
  static const loam_column_def cols[] = {
    { .name = "code", .type = LOAM_COL_TEXT, .primary_key = 1 },
    { .name = "n", .type = LOAM_COL_INTEGER },
  };
  loam_table_def t = { .name = "ddl_cpk", .columns = cols, .ncolumns = 2 };
  CHECK_SQL(render_table(&t, LOAM_SQLITE),
    "CREATE TABLE \"ddl_cpk\" (\"code\" TEXT NOT NULL CONSTRAINT \"ddl_cpk_pkey\" PRIMARY KEY, "
    "\"n\" INTEGER)");
  CHECK_SQL(render_table(&t, LOAM_POSTGRES),
    "CREATE TABLE \"ddl_cpk\" (\"code\" text NOT NULL CONSTRAINT \"ddl_cpk_pkey\" PRIMARY KEY, "
    "\"n\" integer)");
}


TEST(ddl_defaults) {
  static const char blob[] = { 0, 1, '\'', (char)0xff };
  loam_column_def cols[] = {
    { .name = "i", .type = LOAM_COL_INTEGER, .defval = { LOAM_DEFAULT_VALUE, loam_int(-7), NULL } },
    { .name = "b", .type = LOAM_COL_BIGINT,
      .defval = { LOAM_DEFAULT_VALUE, loam_int(INT64_MIN), NULL } },
    { .name = "f", .type = LOAM_COL_FLOAT, .defval = { LOAM_DEFAULT_VALUE, loam_double(0.1), NULL } },
    { .name = "g", .type = LOAM_COL_FLOAT, .defval = { LOAM_DEFAULT_VALUE, loam_double(-1e300), NULL } },
    { .name = "h", .type = LOAM_COL_FLOAT,
      .defval = { LOAM_DEFAULT_VALUE, loam_double(DBL_MIN), NULL } },
    { .name = "y", .type = LOAM_COL_BOOLEAN, .defval = { LOAM_DEFAULT_VALUE, loam_bool(1), NULL } },
    { .name = "no", .type = LOAM_COL_BOOLEAN, .defval = { LOAM_DEFAULT_VALUE, loam_bool(0), NULL } },
    { .name = "t", .type = LOAM_COL_TEXT,
      .defval = { LOAM_DEFAULT_VALUE, loam_text("it's", 4), NULL } },
    { .name = "z", .type = LOAM_COL_TEXT, .defval = { LOAM_DEFAULT_VALUE, loam_null(), NULL } },
    { .name = "bl", .type = LOAM_COL_BLOB,
      .defval = { LOAM_DEFAULT_VALUE, loam_blob(blob, sizeof blob), NULL } },
    { .name = "n", .type = LOAM_COL_NUMERIC, .precision = 6, .scale = 2,
      .defval = { LOAM_DEFAULT_VALUE, loam_text("-1234.50", 8), NULL } },
    { .name = "ts", .type = LOAM_COL_TIMESTAMP, .defval = { LOAM_DEFAULT_NOW, loam_null(), NULL } },
    { .name = "d", .type = LOAM_COL_DATE, .defval = { LOAM_DEFAULT_NOW, loam_null(), NULL } },
    { .name = "e", .type = LOAM_COL_ENUM, .enum_values = ab, .nenum_values = 2, .not_null = 1,
      .defval = { LOAM_DEFAULT_VALUE, loam_text("b", 1), NULL } },
  };
  loam_table_def t = { .name = "ddl_def", .columns = cols,
                       .ncolumns = (int)(sizeof cols / sizeof cols[0]) };
  CHECK_SQL(render_table(&t, LOAM_SQLITE),
    "CREATE TABLE \"ddl_def\" (\"i\" INTEGER DEFAULT -7, "
    "\"b\" INTEGER DEFAULT -9223372036854775808, \"f\" REAL DEFAULT 0.1, "
    "\"g\" REAL DEFAULT -1e+300, \"h\" REAL DEFAULT 2.2250738585072014e-308, "
    "\"y\" BOOLEAN DEFAULT 1, \"no\" BOOLEAN DEFAULT 0, \"t\" TEXT DEFAULT 'it''s', "
    "\"z\" TEXT DEFAULT NULL, \"bl\" BLOB DEFAULT X'000127ff', "
    "\"n\" NUMERIC(6,2) DEFAULT -1234.50, \"ts\" TIMESTAMP DEFAULT (rtrim(rtrim("
    "strftime('%Y-%m-%d %H:%M:%f', 'now'), '0'), '.') || '+00'), "
    "\"d\" DATE DEFAULT (date('now')), "
    "\"e\" TEXT NOT NULL DEFAULT 'b' CONSTRAINT \"ddl_def_e_check\" CHECK (\"e\" IN ('a', 'b')))");
  CHECK_SQL(render_table(&t, LOAM_POSTGRES),
    "CREATE TABLE \"ddl_def\" (\"i\" integer DEFAULT -7, "
    "\"b\" bigint DEFAULT -9223372036854775808, \"f\" double precision DEFAULT 0.1, "
    "\"g\" double precision DEFAULT -1e+300, "
    "\"h\" double precision DEFAULT 2.2250738585072014e-308, "
    "\"y\" boolean DEFAULT true, \"no\" boolean DEFAULT false, \"t\" text DEFAULT 'it''s', "
    "\"z\" text DEFAULT NULL, \"bl\" bytea DEFAULT decode('000127ff', 'hex'), "
    "\"n\" numeric(6,2) DEFAULT -1234.50, \"ts\" timestamptz DEFAULT CURRENT_TIMESTAMP, "
    "\"d\" date DEFAULT CURRENT_DATE, "
    "\"e\" text NOT NULL DEFAULT 'b' CONSTRAINT \"ddl_def_e_check\" CHECK (\"e\" IN ('a', 'b')))");
}


/* The defaults come back from a real database as the values declared. */
static void defaults_run (loam_conn *c) {
  static const char blob[] = { 0, 1, '\'', (char)0xff };
  static const char evil[] = "'); DROP TABLE ddl_defrun; --";
  loam_column_def cols[] = {
    { .name = "id", .type = LOAM_COL_ID },
    { .name = "b", .type = LOAM_COL_BIGINT,
      .defval = { LOAM_DEFAULT_VALUE, loam_int(INT64_MIN), NULL } },
    { .name = "f", .type = LOAM_COL_FLOAT, .defval = { LOAM_DEFAULT_VALUE, loam_double(0.1), NULL } },
    { .name = "y", .type = LOAM_COL_BOOLEAN, .defval = { LOAM_DEFAULT_VALUE, loam_bool(1), NULL } },
    { .name = "t", .type = LOAM_COL_TEXT,
      .defval = { LOAM_DEFAULT_VALUE, loam_text(evil, sizeof evil - 1), NULL } },
    { .name = "bl", .type = LOAM_COL_BLOB,
      .defval = { LOAM_DEFAULT_VALUE, loam_blob(blob, sizeof blob), NULL } },
    { .name = "ts", .type = LOAM_COL_TIMESTAMP, .defval = { LOAM_DEFAULT_NOW, loam_null(), NULL } },
  };
  loam_table_def t = { .name = "ddl_defrun", .columns = cols,
                       .ncolumns = (int)(sizeof cols / sizeof cols[0]) };
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s = NULL;
  loam_value v;
  CHECK_OK(drop(c, "ddl_defrun", &e), &e);
  CHECK_OK(create(c, &t, &e), &e);
  EXEC(c, "INSERT INTO ddl_defrun (id) VALUES (1)", &e);
  CHECK_OK(loam_query(c, "SELECT b, f, y, t, bl, ts IS NOT NULL FROM ddl_defrun", NULL, 0, 0,
                      &s, &e), &e);
  CHECK_INT(loam_step(s, &e), LOAM_ROW);
  loam_column(s, 0, &v); CHECK_INT(v.type, LOAM_INT); CHECK(v.u.i == INT64_MIN);
  loam_column(s, 1, &v); CHECK_INT(v.type, LOAM_DOUBLE); CHECK(v.u.d == 0.1);
  loam_column(s, 2, &v); CHECK_INT(v.type, LOAM_BOOL); CHECK_INT(v.u.b, 1);
  loam_column(s, 3, &v); CHECK_INT(v.type, LOAM_TEXT); CHECK_STR(v.u.s.ptr, evil);
  loam_column(s, 4, &v); CHECK_INT(v.type, LOAM_BLOB); CHECK_INT(v.u.s.len, sizeof blob);
  CHECK(memcmp(v.u.s.ptr, blob, sizeof blob) == 0);
  loam_column(s, 5, &v);
  CHECK((v.type == LOAM_BOOL && v.u.b) || (v.type == LOAM_INT && v.u.i == 1));
  loam_stmt_close(s);
  CHECK_OK(drop(c, "ddl_defrun", &e), &e);
  loam_error_clear(&e);
}

ON_BOTH(ddl_defaults_run, defaults_run)


TEST(ddl_foreign_keys) {
  loam_column_def cols[] = {
    { .name = "a", .type = LOAM_COL_BIGINT,
      .references = { "p", "id", LOAM_FK_CASCADE, LOAM_FK_RESTRICT } },
    { .name = "b", .type = LOAM_COL_BIGINT,
      .references = { "p", NULL, LOAM_FK_SET_NULL, LOAM_FK_SET_DEFAULT } },
    { .name = "c", .type = LOAM_COL_BIGINT, .not_null = 1,
      .references = { "p", "id", LOAM_FK_NO_ACTION, LOAM_FK_CASCADE } },
  };
  loam_table_def t = { .name = "ddl_fk", .columns = cols, .ncolumns = 3 };
  CHECK_SQL(render_table(&t, LOAM_SQLITE),
    "CREATE TABLE \"ddl_fk\" ("
    "\"a\" INTEGER CONSTRAINT \"ddl_fk_a_fkey\" REFERENCES \"p\" (\"id\") "
    "ON DELETE CASCADE ON UPDATE RESTRICT, "
    "\"b\" INTEGER CONSTRAINT \"ddl_fk_b_fkey\" REFERENCES \"p\" "
    "ON DELETE SET NULL ON UPDATE SET DEFAULT, "
    "\"c\" INTEGER NOT NULL CONSTRAINT \"ddl_fk_c_fkey\" REFERENCES \"p\" (\"id\") "
    "ON UPDATE CASCADE)");
  CHECK_SQL(render_table(&t, LOAM_POSTGRES),
    "CREATE TABLE \"ddl_fk\" ("
    "\"a\" bigint CONSTRAINT \"ddl_fk_a_fkey\" REFERENCES \"p\" (\"id\") "
    "ON DELETE CASCADE ON UPDATE RESTRICT, "
    "\"b\" bigint CONSTRAINT \"ddl_fk_b_fkey\" REFERENCES \"p\" "
    "ON DELETE SET NULL ON UPDATE SET DEFAULT, "
    "\"c\" bigint NOT NULL CONSTRAINT \"ddl_fk_c_fkey\" REFERENCES \"p\" (\"id\") "
    "ON UPDATE CASCADE)");
}


TEST(ddl_table_foreign_keys) {
  static const char *const oc[] = { "order_id", "line_no" };
  static const char *const rc[] = { "id", "no" };
  static const char *const xx[] = { "order_id", "order_id" };
  static const char *const nx[] = { "order_id", "nope" };
  loam_column_def cols[] = {
    { .name = "order_id", .type = LOAM_COL_BIGINT, .not_null = 1 },
    { .name = "line_no", .type = LOAM_COL_INTEGER },
  };
  loam_foreign_key_def fks[] = {
    { NULL, oc, 2, "lines", rc, LOAM_FK_CASCADE, LOAM_FK_NO_ACTION },
    { "ddl_tfk_own", oc, 2, "lines", NULL, LOAM_FK_NO_ACTION, LOAM_FK_RESTRICT },
  };
  loam_table_def t = { .name = "ddl_tfk", .columns = cols, .ncolumns = 2,
                       .foreign_keys = fks, .nforeign_keys = 2 };
  CHECK_SQL(render_table(&t, LOAM_SQLITE),
    "CREATE TABLE \"ddl_tfk\" (\"order_id\" INTEGER NOT NULL, \"line_no\" INTEGER, "
    "CONSTRAINT \"ddl_tfk_order_id_line_no_fkey\" FOREIGN KEY (\"order_id\", \"line_no\") "
    "REFERENCES \"lines\" (\"id\", \"no\") ON DELETE CASCADE, "
    "CONSTRAINT \"ddl_tfk_own\" FOREIGN KEY (\"order_id\", \"line_no\") "
    "REFERENCES \"lines\" ON UPDATE RESTRICT)");
  CHECK_SQL(render_table(&t, LOAM_POSTGRES),
    "CREATE TABLE \"ddl_tfk\" (\"order_id\" bigint NOT NULL, \"line_no\" integer, "
    "CONSTRAINT \"ddl_tfk_order_id_line_no_fkey\" FOREIGN KEY (\"order_id\", \"line_no\") "
    "REFERENCES \"lines\" (\"id\", \"no\") ON DELETE CASCADE, "
    "CONSTRAINT \"ddl_tfk_own\" FOREIGN KEY (\"order_id\", \"line_no\") "
    "REFERENCES \"lines\" ON UPDATE RESTRICT)");
  /* refused: a name twice, bad columns, a bad table, SET NULL on NOT NULL, a bad action */
  fks[1].name = "ddl_tfk_order_id_line_no_fkey";
  CHECK_STR(rejected(&t), "table 'ddl_tfk': constraint name 'ddl_tfk_order_id_line_no_fkey' is "
                          "used twice (rename one, or shorten the table or column names that "
                          "make it)");
  t.nforeign_keys = 1;
  fks[0].columns = xx;
  CHECK_STR(rejected(&t), "table 'ddl_tfk': foreign key #1 names column 'order_id' twice");
  fks[0].columns = nx;
  CHECK_STR(rejected(&t), "table 'ddl_tfk': foreign key #1 names column 'nope', which the "
                          "table does not declare");
  fks[0].columns = oc;
  fks[0].ncolumns = 0;
  CHECK_STR(rejected(&t), "table 'ddl_tfk': foreign key #1 has no columns");
  fks[0].ncolumns = 2;
  fks[0].ref_table = "";
  CHECK_STR(rejected(&t), "table 'ddl_tfk': foreign key #1: referenced table: invalid "
                          "identifier: empty name");
  fks[0].ref_table = "lines";
  fks[0].on_delete = LOAM_FK_SET_NULL;
  CHECK_STR(rejected(&t), "table 'ddl_tfk': foreign key #1: foreign key action SET NULL on NOT "
                          "NULL column 'order_id'");
  fks[0].on_delete = (loam_fk_action)9;
  CHECK_STR(rejected(&t), "table 'ddl_tfk': foreign key #1: unknown foreign key action (9)");
  fks[0].on_delete = LOAM_FK_NO_ACTION;
  t.foreign_keys = NULL;
  CHECK_STR(rejected(&t), "table 'ddl_tfk': bad foreign key list");
}


TEST(ddl_indexes) {
  loam_index_def x = { .name = "ddl_ix", .table = "orders", .columns = ab, .ncolumns = 2 };
  CHECK_SQL(render_index(&x, LOAM_SQLITE), "CREATE INDEX \"ddl_ix\" ON \"orders\" (\"a\", \"b\")");
  CHECK_SQL(render_index(&x, LOAM_POSTGRES), "CREATE INDEX \"ddl_ix\" ON \"orders\" (\"a\", \"b\")");
  x.unique = 1;
  x.if_not_exists = 1;
  x.where = "deleted_at IS NULL";
  CHECK_SQL(render_index(&x, LOAM_SQLITE),
    "CREATE UNIQUE INDEX IF NOT EXISTS \"ddl_ix\" ON \"orders\" (\"a\", \"b\") "
    "WHERE (deleted_at IS NULL)");
  CHECK_SQL(render_index(&x, LOAM_POSTGRES),
    "CREATE UNIQUE INDEX IF NOT EXISTS \"ddl_ix\" ON \"orders\" (\"a\", \"b\") "
    "WHERE (deleted_at IS NULL)");
  x.name = NULL;    /* PostgreSQL's default name */
  x.unique = 0;
  x.where = NULL;
  x.if_not_exists = 0;
  CHECK_SQL(render_index(&x, LOAM_POSTGRES),
    "CREATE INDEX \"orders_a_b_idx\" ON \"orders\" (\"a\", \"b\")");
}


TEST(ddl_drop_table) {
  loam_error e = LOAM_ERROR_INIT;
  loam_rendered *rs = NULL;
  CHECK_OK(loam_render_drop_table("orders", 1, LOAM_SQLITE, &rs, &e), &e);
  CHECK_SQL(ddl_text(rs), "DROP TABLE IF EXISTS \"orders\"");
  CHECK_OK(loam_render_drop_table("a\"b", 0, LOAM_POSTGRES, &rs, &e), &e);
  CHECK_SQL(ddl_text(rs), "DROP TABLE \"a\"\"b\"");
  rs = (loam_rendered *)&e;   /* any non-NULL pointer, never read */
  CHECK_INT(loam_render_drop_table("", 1, LOAM_POSTGRES, &rs, &e), LOAM_ERROR);
  CHECK(rs == NULL);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_STR(e.message, "table name: invalid identifier: empty name");
  CHECK_INT(loam_render_drop_table("t", 1, (loam_backend)7, &rs, &e), LOAM_ERROR);
  CHECK_STR(e.message, "DDL: unknown backend (7)");
  CHECK(rs == NULL);
  loam_error_clear(&e);
}

/* }====================================================================== */


/* {======================================================================
** Constraint names
** ======================================================================= */

/* Two-byte characters, so that some of PostgreSQL's cuts fall inside one. */
#define E4 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
#define LONG_TABLE "ddl_pg_names_" E4 E4 E4 E4 E4
#define LONG_COL   "col_" E4 E4 E4 E4 E4

/*
** The names loam gives constraints are the names PostgreSQL chooses for
** unnamed ones, long and multibyte names included: a table is made by hand
** without constraint names, and each name the server picked must appear in
** loam's rendering of the same declaration.
*/
TEST(ddl_names_match_postgres) {
  static const char *const pkcols[] = { "k1", LONG_COL };
  static const char *const ucols[] = { "k2", "k1" };
  static const char *const ixcols[] = { "k1", LONG_COL };
  static const loam_column_def cols[] = {
    { .name = "k1", .type = LOAM_COL_BIGINT },
    { .name = "k2", .type = LOAM_COL_BIGINT },
    { .name = LONG_COL, .type = LOAM_COL_ENUM, .enum_values = ab, .nenum_values = 2,
      .unique = 1, .references = { "ddl_pg_names_ref", "v", 0, 0 } },
  };
  static const loam_unique_def uniques[] = { { NULL, ucols, 2 } };
  loam_table_def t = { .name = LONG_TABLE, .columns = cols, .ncolumns = 3,
                       .primary_key = pkcols, .nprimary_key = 2,
                       .uniques = uniques, .nuniques = 1 };
  loam_index_def x = { .table = LONG_TABLE, .columns = ixcols, .ncolumns = 2 };
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s = NULL;
  char *sql = NULL, *ixsql = NULL;
  int n = 0;
  PG_OPEN(c, &e);
  EXEC(c, "DROP TABLE IF EXISTS \"" LONG_TABLE "\", ddl_pg_names_ref CASCADE", &e);
  EXEC(c, "CREATE TABLE ddl_pg_names_ref (v text UNIQUE)", &e);
  EXEC(c, "CREATE TABLE \"" LONG_TABLE "\" (k1 bigint, k2 bigint, \"" LONG_COL "\" text "
          "CHECK (\"" LONG_COL "\" IN ('a', 'b')) UNIQUE REFERENCES ddl_pg_names_ref (v), "
          "PRIMARY KEY (k1, \"" LONG_COL "\"), UNIQUE (k2, k1))", &e);
  EXEC(c, "CREATE INDEX ON \"" LONG_TABLE "\" (k1, \"" LONG_COL "\")", &e);
  sql = render_table(&t, LOAM_POSTGRES);
  ixsql = render_index(&x, LOAM_POSTGRES);
  CHECK(sql != NULL && ixsql != NULL);
  CHECK_OK(loam_query(c, "SELECT conname FROM pg_constraint WHERE conrelid = "
                         "(SELECT oid FROM pg_class WHERE relname = $1) "
                         "UNION ALL SELECT indexrelid::regclass::text FROM pg_index "
                         "WHERE indrelid = (SELECT oid FROM pg_class WHERE relname = $1) "
                         "AND NOT indisunique AND NOT indisprimary",
                      (loam_value[]){ loam_text(LONG_TABLE, strlen(LONG_TABLE)) }, 1, 0, &s, &e),
           &e);
  while (loam_step(s, &e) == LOAM_ROW) {
    loam_value v;
    char want[160];
    loam_column(s, 0, &v);
    if (v.u.s.ptr[0] == '"')   /* regclass quotes the index name */
      snprintf(want, sizeof want, "%s", v.u.s.ptr);
    else
      snprintf(want, sizeof want, "\"%s\"", v.u.s.ptr);
    if (strstr(sql, want) == NULL && strstr(ixsql, want) == NULL) {
      t_fail(__FILE__, __LINE__, "PostgreSQL named a constraint %s, which loam's DDL lacks:\n"
             "      %s\n      %s", want, sql, ixsql);
      break;
    }
    n++;
  }
  loam_stmt_close(s);
  free(sql);
  free(ixsql);
  if (!t_failed()) CHECK_INT(n, 6);   /* pkey, check, two uniques, fkey, index */
  EXEC(c, "DROP TABLE \"" LONG_TABLE "\", ddl_pg_names_ref", &e);
  loam_conn_close(c);
  loam_error_clear(&e);
}


TEST(ddl_names_collide) {
  static const char *const one[] = { "a" };
  static const loam_column_def cols[] = {
    { .name = "a", .type = LOAM_COL_TEXT, .unique = 1 },
  };
  static const loam_unique_def uniques[] = { { NULL, one, 1 } };
  static const loam_check_def checks[] = { { "t_a_key", "a <> ''" } };
  loam_table_def t = { .name = "t", .columns = cols, .ncolumns = 1,
                       .uniques = uniques, .nuniques = 1 };
  CHECK_STR(rejected(&t), "table 't': constraint name 't_a_key' is used twice (rename one, "
                          "or shorten the table or column names that make it)");
  t.nuniques = 0;
  t.checks = checks;
  t.nchecks = 1;
  CHECK_HAS(rejected(&t), "table 't': constraint name 't_a_key' is used twice");
}


/* 'loam_constraint_name', or the error message (static) when it fails. */
static const char *cname (const char *table, const char *const *cols, int ncols,
                          const char *suffix, int shorten) {
  static char out[512];
  loam_error e = LOAM_ERROR_INIT;
  char *name = (char *)"unset";
  if (loam_constraint_name(table, cols, ncols, suffix, shorten, &name, &e) == LOAM_OK)
    snprintf(out, sizeof out, "%s", name);
  else
    snprintf(out, sizeof out, "%s: %s%s", loam_errcode_name(e.code), e.message,
             name == NULL ? "" : " (output not cleared)");
  loam_name_free(name == NULL || strcmp(name, "unset") == 0 ? NULL : name);
  loam_error_clear(&e);
  return out;
}


/*
** The public naming rule is the one the DDL applies: short names as they
** are, a long one shortened to the very name CREATE TABLE carries, and
** with 'shorten' 0 the whole name it was made from.
*/
TEST(ddl_constraint_name) {
  static const char *const ab2[] = { "a", "b" };
  static const char *const longcol[] = { "cccccccccccccccccccccccccccccccccccccccc" };
  static const char *const nullcol[] = { "a", NULL };
  static const loam_column_def cols[] = {
    { .name = "cccccccccccccccccccccccccccccccccccccccc", .type = LOAM_COL_TEXT, .unique = 1 },
  };
  const char *tt = "tttttttttttttttttttttttttttttttttttttttt";
  loam_table_def t = { .name = tt, .columns = cols, .ncolumns = 1 };
  char *sql;
  CHECK_INT(LOAM_IDENT_MAX, 63);
  CHECK_STR(cname("orders", ab2, 2, "key", 1), "orders_a_b_key");
  CHECK_STR(cname("orders", NULL, 0, "pkey", 1), "orders_pkey");
  CHECK_STR(cname("orders", ab2, 1, "check1", 0), "orders_a_check1");
  CHECK_STR(cname(tt, longcol, 1, "key", 1),
            "ttttttttttttttttttttttttttttt_ccccccccccccccccccccccccccccc_key");
  CHECK_INT(strlen(cname(tt, longcol, 1, "key", 1)), LOAM_IDENT_MAX);
  CHECK_STR(cname(tt, longcol, 1, "key", 0),
            "tttttttttttttttttttttttttttttttttttttttt_cccccccccccccccccccccccccccccccccccccccc_key");
  sql = render_table(&t, LOAM_POSTGRES);
  CHECK(sql != NULL);
  if (strstr(sql, "\"ttttttttttttttttttttttttttttt_ccccccccccccccccccccccccccccc_key\"") == NULL) {
    t_fail(__FILE__, __LINE__, "the DDL names the constraint otherwise: %s", sql);
    free(sql);
    return;
  }
  free(sql);
  CHECK_STR(cname(NULL, ab2, 1, "key", 1),
            "misuse: constraint name: NULL table, columns or suffix");
  CHECK_STR(cname("t", NULL, 1, "key", 1),
            "misuse: constraint name: NULL table, columns or suffix");
  CHECK_STR(cname("t", ab2, 1, NULL, 1), "misuse: constraint name: NULL table, columns or suffix");
  CHECK_STR(cname("t", nullcol, 2, "key", 1), "misuse: constraint name: column 2 is NULL");
  CHECK_STR(cname("t", ab2, 1, "ssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss", 1),
            "misuse: constraint name: suffix 'ssssssssssssssssssss' is too long");
  CHECK_STR(cname("t", ab2, 1, "key", 1), "t_a_key");
  {
    loam_error e = LOAM_ERROR_INIT;
    CHECK_INT(loam_constraint_name("t", ab2, 1, "key", 1, NULL, &e), LOAM_ERROR);
    CHECK_STR(e.message, "constraint name: no output pointer");
    loam_error_clear(&e);
  }
}

/* }====================================================================== */


/* {======================================================================
** Refused declarations
** ======================================================================= */

/* A one-column table 'ddl_bad' around column 'c'. */
static const char *bad_column (loam_column_def c) {
  loam_table_def t = { .name = "ddl_bad", .columns = &c, .ncolumns = 1 };
  return rejected(&t);
}

#define DEF(v) .defval = { LOAM_DEFAULT_VALUE, (v), NULL }


TEST(ddl_reject_table_shape) {
  static const char *const pk_c[] = { "c" };
  static const char *const pk_x[] = { "x" };
  static const char *const pk_cc[] = { "c", "c" };
  loam_column_def two[] = {
    { .name = "c", .type = LOAM_COL_TEXT }, { .name = "c", .type = LOAM_COL_INTEGER },
  };
  loam_column_def pks[] = {
    { .name = "id", .type = LOAM_COL_ID }, { .name = "c", .type = LOAM_COL_TEXT, .primary_key = 1 },
  };
  loam_column_def one[] = { { .name = "c", .type = LOAM_COL_TEXT, .primary_key = 1 } };
  loam_table_def t = { .name = "ddl_bad", .columns = two, .ncolumns = 0 };
  loam_error e = LOAM_ERROR_INIT;
  loam_rendered *sql = (loam_rendered *)&e;   /* any non-NULL pointer, never read */
  CHECK_STR(rejected(&t), "table 'ddl_bad': has no columns");
  t.ncolumns = 2;
  CHECK_STR(rejected(&t), "table 'ddl_bad': column 'c' is declared twice");
  t.columns = pks;
  CHECK_STR(rejected(&t), "table 'ddl_bad': has two primary keys (columns 'id' and 'c'); "
                          "declare a composite primary key instead");
  pks[1].primary_key = 0;
  t.primary_key = pk_c;
  t.nprimary_key = 1;
  CHECK_STR(rejected(&t), "table 'ddl_bad': has two primary keys (column 'id' and the "
                          "composite primary key)");
  t.columns = one;
  t.ncolumns = 1;
  CHECK_STR(rejected(&t), "table 'ddl_bad': has two primary keys (column 'c' and the "
                          "composite primary key)");
  one[0].primary_key = 0;
  t.primary_key = pk_x;
  CHECK_STR(rejected(&t), "table 'ddl_bad': primary key names column 'x', which the table "
                          "does not declare");
  t.primary_key = pk_cc;
  t.nprimary_key = 2;
  CHECK_STR(rejected(&t), "table 'ddl_bad': primary key names column 'c' twice");
  t.nprimary_key = 0;
  t.name = "";
  CHECK_STR(rejected(&t), "table name: invalid identifier: empty name");
  t.name = "ddl_bad_0123456789012345678901234567890123456789012345678901234567890123";
  CHECK_STR(rejected(&t), "table name: invalid identifier 'ddl_bad_012345678901...': "
                          "longer than 63 bytes");
  t.name = "ddl_bad";
  one[0].name = NULL;
  CHECK_STR(rejected(&t), "table 'ddl_bad': column #1: invalid identifier: empty name");
  CHECK_INT(loam_render_create_table(NULL, LOAM_SQLITE, &sql, &e), LOAM_ERROR);
  CHECK(sql == NULL);
  CHECK_STR(e.message, "DDL: no table definition");
  loam_error_clear(&e);
}


TEST(ddl_reject_id) {
  static const char *const pk_id[] = { "id" };
  loam_column_def two[] = { { .name = "id", .type = LOAM_COL_ID }, { .name = "id2", .type = LOAM_COL_ID } };
  loam_table_def t = { .name = "ddl_bad", .columns = two, .ncolumns = 2 };
  CHECK_STR(rejected(&t), "table 'ddl_bad': has two primary keys (columns 'id' and 'id2'); "
                          "declare a composite primary key instead");
  t.ncolumns = 1;
  t.primary_key = pk_id;
  t.nprimary_key = 1;
  CHECK_STR(rejected(&t), "table 'ddl_bad': has two primary keys (column 'id' and the "
                          "composite primary key)");
  CHECK_STR(bad_column((loam_column_def){ .name = "id", .type = LOAM_COL_ID, DEF(loam_int(1)) }),
            "table 'ddl_bad': column 'id': an id column takes its values from the database "
            "and cannot have a default");
}


TEST(ddl_reject_type_options) {
  static const char *const dup[] = { "a", "b", "a" };
  static const char *const hole[] = { "a", NULL };
  CHECK_STR(bad_column((loam_column_def){ .name = "c" }),
            "table 'ddl_bad': column 'c' has an unknown type (0)");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = (loam_col_type)99 }),
            "table 'ddl_bad': column 'c' has an unknown type (99)");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_TEXT, .length = -1 }),
            "table 'ddl_bad': column 'c': length -1 is out of range (1 to 10485760)");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_INTEGER, .length = 5 }),
            "table 'ddl_bad': column 'c': 'length' applies to text columns only, not integer");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_NUMERIC, .precision = -2 }),
            "table 'ddl_bad': column 'c': precision -2 is out of range (1 to 1000)");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_NUMERIC, .scale = 2 }),
            "table 'ddl_bad': column 'c': a scale needs a precision");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_NUMERIC,
                                          .precision = 4, .scale = 5 }),
            "table 'ddl_bad': column 'c': scale 5 is out of range (0 to the precision, 4)");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_FLOAT, .precision = 4 }),
            "table 'ddl_bad': column 'c': precision and scale apply to numeric columns only, "
            "not float");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_ENUM }),
            "table 'ddl_bad': column 'c': an enum needs at least one value");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_ENUM,
                                          .enum_values = dup, .nenum_values = 3 }),
            "table 'ddl_bad': column 'c': enum value 'a' is listed twice");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_ENUM,
                                          .enum_values = hole, .nenum_values = 2 }),
            "table 'ddl_bad': column 'c': enum value #2 is missing");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_TEXT,
                                          .enum_values = dup, .nenum_values = 3 }),
            "table 'ddl_bad': column 'c': enum values apply to enum columns only, not text");
}


TEST(ddl_reject_defaults) {
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_INTEGER,
                                          DEF(loam_text("5", 1)) }),
            "table 'ddl_bad': column 'c': default '5' (text) does not fit the column type "
            "(integer)");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_INTEGER,
                                          DEF(loam_int(INT64_C(3000000000))) }),
            "table 'ddl_bad': column 'c': default 3000000000 (integer) is out of range for an "
            "integer (32-bit) column; use bigint");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_INTEGER,
                                          DEF(loam_double(1.5)) }),
            "table 'ddl_bad': column 'c': default 1.5 (double) does not fit the column type "
            "(integer)");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_BOOLEAN,
                                          DEF(loam_int(1)) }),
            "table 'ddl_bad': column 'c': default 1 (integer) does not fit the column type "
            "(boolean)");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_TEXT,
                                          DEF(loam_bool(1)) }),
            "table 'ddl_bad': column 'c': default true (boolean) does not fit the column type "
            "(text)");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_ENUM,
                                          .enum_values = ab, .nenum_values = 2,
                                          DEF(loam_text("gold", 4)) }),
            "table 'ddl_bad': column 'c': default 'gold' (text) is not one of the enum values");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_TEXT, .length = 3,
                                          DEF(loam_text("\xc3\xa9\xc3\xa9\xc3\xa9x", 7)) }),
            "table 'ddl_bad': column 'c': default '\xc3\xa9\xc3\xa9\xc3\xa9x' (text) is longer "
            "than the column's length");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_TEXT,
                                          DEF(loam_text("a\0b", 3)) }),
            "table 'ddl_bad': column 'c': default 'a' (text) contains a NUL byte");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_FLOAT,
                                          DEF(loam_double(INFINITY)) }),
            "table 'ddl_bad': column 'c': default inf (double) is not a finite number");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_FLOAT,
                                          DEF(loam_double(NAN)) }),
            "table 'ddl_bad': column 'c': default nan (double) is not a finite number");
  CHECK_HAS(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_FLOAT,
                                          DEF(loam_double(-INFINITY)) }),
            "is not a finite number");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_TEXT, .not_null = 1,
                                          DEF(loam_null()) }),
            "table 'ddl_bad': column 'c': default NULL (null) is not allowed on a NOT NULL "
            "column");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_NUMERIC, .precision = 4,
                                          .scale = 2, DEF(loam_int(123)) }),
            "table 'ddl_bad': column 'c': default 123 (integer) has too many digits for the "
            "column's precision and scale");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_NUMERIC, .precision = 4,
                                          .scale = 2, DEF(loam_double(99.999)) }),
            "table 'ddl_bad': column 'c': default 99.999 (double) has too many digits for the "
            "column's precision and scale");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_NUMERIC,
                                          DEF(loam_text("1e5", 3)) }),
            "table 'ddl_bad': column 'c': default '1e5' (text) is not a decimal number");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_NUMERIC,
                                          DEF(loam_text("1; DROP", 7)) }),
            "table 'ddl_bad': column 'c': default '1; DROP' (text) is not a decimal number");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_BLOB,
                                          DEF(loam_text("x", 1)) }),
            "table 'ddl_bad': column 'c': default 'x' (text) does not fit the column type (blob)");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_TEXT,
                                          DEF(loam_blob("x", 1)) }),
            "table 'ddl_bad': column 'c': default <1-byte blob> (blob) does not fit the column "
            "type (text)");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_TEXT,
                                          .defval = { LOAM_DEFAULT_SQL, loam_null(), "" } }),
            "table 'ddl_bad': column 'c': raw SQL default is empty");
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_TEXT,
                                          .defval = { LOAM_DEFAULT_NOW, loam_null(), NULL } }),
            "table 'ddl_bad': column 'c': the 'now' default needs a date or timestamp column, "
            "not text");
  {
    /* SQLite alone: PostgreSQL's date types make any expression's value canonical */
    loam_column_def c = { .name = "at", .type = LOAM_COL_TIMESTAMP,
                          .defval = { LOAM_DEFAULT_SQL, loam_null(), "CURRENT_TIMESTAMP" } };
    loam_table_def t = { .name = "ddl_bad", .columns = &c, .ncolumns = 1 };
    CHECK(render_table(&t, LOAM_SQLITE) == NULL);
    CHECK_STR(lasterr, "(failed: misuse: table 'ddl_bad': column 'at': a raw SQL default on a "
              "timestamp column cannot be known to write the canonical timestamp text on "
              "SQLite; use the 'now' default (loam.now) or a literal)");
    c.type = LOAM_COL_DATE;
    c.defval.sql = "CURRENT_DATE";
    CHECK(render_table(&t, LOAM_SQLITE) == NULL);
    CHECK_HAS(lasterr, "column 'at': a raw SQL default on a date column");
    CHECK_SQL(render_table(&t, LOAM_POSTGRES),
              "CREATE TABLE \"ddl_bad\" (\"at\" date DEFAULT (CURRENT_DATE))");
  }
  CHECK_STR(bad_column((loam_column_def){ .name = "c", .type = LOAM_COL_TEXT,
                                          .defval = { (loam_default_kind)9, loam_null(), NULL } }),
            "table 'ddl_bad': column 'c': unknown default kind (9)");
}


TEST(ddl_reject_foreign_keys) {
  static const char *const pk_c[] = { "c" };
  loam_column_def c = { .name = "c", .type = LOAM_COL_BIGINT, .not_null = 1,
                        .references = { "p", "id", LOAM_FK_SET_NULL, 0 } };
  loam_table_def t = { .name = "ddl_bad", .columns = &c, .ncolumns = 1 };
  CHECK_STR(rejected(&t), "table 'ddl_bad': column 'c': foreign key action SET NULL on a "
                          "NOT NULL column");
  c.not_null = 0;
  c.references.on_delete = LOAM_FK_CASCADE;
  c.references.on_update = LOAM_FK_SET_NULL;
  t.primary_key = pk_c;    /* a key column is NOT NULL too */
  t.nprimary_key = 1;
  CHECK_STR(rejected(&t), "table 'ddl_bad': column 'c': foreign key action SET NULL on a "
                          "NOT NULL column");
  t.nprimary_key = 0;
  c.references.on_update = (loam_fk_action)12;
  CHECK_STR(rejected(&t), "table 'ddl_bad': column 'c': unknown foreign key action (12)");
  c.references.on_update = 0;
  c.references.table = "";
  CHECK_STR(rejected(&t), "table 'ddl_bad': column 'c': referenced table: invalid "
                          "identifier: empty name");
  c.references.table = NULL;
  CHECK_STR(rejected(&t), "table 'ddl_bad': column 'c': foreign key has no referenced table");
}


TEST(ddl_reject_table_constraints) {
  static const char *const none[] = { "zz" };
  static const char *const c1[] = { "c" };
  loam_column_def c = { .name = "c", .type = LOAM_COL_TEXT };
  loam_check_def k = { NULL, "c <> ''" };
  loam_unique_def u = { NULL, none, 1 };
  loam_table_def t = { .name = "ddl_bad", .columns = &c, .ncolumns = 1, .checks = &k, .nchecks = 1 };
  CHECK_STR(rejected(&t), "table 'ddl_bad': check #1 has no name (a schema diff matches "
                          "checks by name)");
  k.name = "ok";
  k.sql = "";
  CHECK_STR(rejected(&t), "table 'ddl_bad': check 'ok' has no SQL");
  t.nchecks = 0;
  t.uniques = &u;
  t.nuniques = 1;
  CHECK_STR(rejected(&t), "table 'ddl_bad': unique constraint #1 names column 'zz', which "
                          "the table does not declare");
  u.ncolumns = 0;
  CHECK_STR(rejected(&t), "table 'ddl_bad': unique constraint #1 has no columns");
  u.columns = c1;
  u.ncolumns = 1;
  u.name = "";
  CHECK_STR(rejected(&t), "table 'ddl_bad': unique constraint #1: invalid identifier: "
                          "empty name");
}


TEST(ddl_reject_index) {
  static const char *const dup[] = { "a", "a" };
  static const char *const empty[] = { "" };
  loam_index_def x = { .name = "ix", .table = "t", .columns = ab, .ncolumns = 0 };
  loam_error e = LOAM_ERROR_INIT;
  loam_rendered *sql = NULL;
  CHECK_INT(loam_render_create_index(&x, LOAM_SQLITE, &sql, &e), LOAM_ERROR);
  CHECK_STR(e.message, "table 't': index 'ix' has no columns");
  x.columns = dup;
  x.ncolumns = 2;
  CHECK_INT(loam_render_create_index(&x, LOAM_POSTGRES, &sql, &e), LOAM_ERROR);
  CHECK_STR(e.message, "table 't': index 'ix' names column 'a' twice");
  x.columns = empty;
  x.ncolumns = 1;
  CHECK_INT(loam_render_create_index(&x, LOAM_POSTGRES, &sql, &e), LOAM_ERROR);
  CHECK_STR(e.message, "table 't': index column #1: invalid identifier: empty name");
  x.columns = ab;
  x.where = "";
  CHECK_INT(loam_render_create_index(&x, LOAM_POSTGRES, &sql, &e), LOAM_ERROR);
  CHECK_STR(e.message, "table 't': index 'ix' has an empty WHERE predicate");
  x.where = NULL;
  x.table = NULL;
  CHECK_INT(loam_render_create_index(&x, LOAM_POSTGRES, &sql, &e), LOAM_ERROR);
  CHECK_STR(e.message, "index table: invalid identifier: empty name");
  CHECK(sql == NULL);
  loam_error_clear(&e);
}

/* }====================================================================== */


/* {======================================================================
** Injection
** ======================================================================= */

#define EVIL_TABLE "ddl_inj\"; DROP TABLE ddl_victim; --"
#define EVIL_COL   "c\"'); DROP TABLE ddl_victim; --"

TEST(ddl_injection_text) {
  static const char *const vals[] = { "a'); DROP TABLE x; --", "b\"" };
  loam_column_def c = { .name = EVIL_COL, .type = LOAM_COL_ENUM, .enum_values = vals,
                        .nenum_values = 2,
                        .defval = { LOAM_DEFAULT_VALUE, loam_text(vals[0], strlen(vals[0])), NULL } };
  loam_table_def t = { .name = EVIL_TABLE, .columns = &c, .ncolumns = 1 };
  CHECK_SQL(render_table(&t, LOAM_POSTGRES),
    "CREATE TABLE \"ddl_inj\"\"; DROP TABLE ddl_victim; --\" ("
    "\"c\"\"'); DROP TABLE ddl_victim; --\" text DEFAULT 'a''); DROP TABLE x; --' "
    "CONSTRAINT \"ddl_inj\"\"; DROP TABLE ddl_vic_c\"\"'); DROP TABLE ddl_victim;_check\" "
    "CHECK (\"c\"\"'); DROP TABLE ddl_victim; --\" IN "
    "('a''); DROP TABLE x; --', 'b\"')))");
}


/* Hostile names and defaults stay inside their quotes on a real server. */
static void injection_run (loam_conn *c) {
  static const char evil[] = "x'); DROP TABLE ddl_victim; --";
  loam_column_def cols[] = {
    { .name = "id", .type = LOAM_COL_ID },
    { .name = EVIL_COL, .type = LOAM_COL_TEXT,
      .defval = { LOAM_DEFAULT_VALUE, loam_text(evil, sizeof evil - 1), NULL } },
  };
  loam_table_def t = { .name = EVIL_TABLE, .columns = cols, .ncolumns = 2 };
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s = NULL;
  loam_value v;
  CHECK_OK(drop(c, EVIL_TABLE, &e), &e);
  CHECK_OK(drop(c, "ddl_victim", &e), &e);
  EXEC(c, "CREATE TABLE ddl_victim (v integer)", &e);
  CHECK_OK(create(c, &t, &e), &e);
  EXEC(c, "INSERT INTO \"ddl_inj\"\"; DROP TABLE ddl_victim; --\" (id) VALUES (1)", &e);
  CHECK_OK(loam_query(c, "SELECT \"c\"\"'); DROP TABLE ddl_victim; --\" FROM "
                         "\"ddl_inj\"\"; DROP TABLE ddl_victim; --\"", NULL, 0, 0, &s, &e), &e);
  CHECK_INT(loam_step(s, &e), LOAM_ROW);
  loam_column(s, 0, &v);
  CHECK_STR(v.u.s.ptr, evil);
  loam_stmt_close(s);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM ddl_victim"), 0);   /* still there */
  CHECK_OK(drop(c, EVIL_TABLE, &e), &e);
  CHECK_OK(drop(c, "ddl_victim", &e), &e);
  loam_error_clear(&e);
}

ON_BOTH(ddl_injection_run, injection_run)

/* }====================================================================== */


/* {======================================================================
** Constraints at work
** ======================================================================= */

/*
** Parent and child tables with every kind of constraint, then rows that
** break each one.
*/
static void constraints_run (loam_conn *c) {
  static const char *const tiers[] = { "free", "pro" };
  static const char *const code[] = { "code" };
  int pg = loam_conn_backend(c) == LOAM_POSTGRES;
  const char *pfx = pg ? "ddl_pg" : "ddl_lite";
  char parent[64], child[64], ptier[80], cfk[80], sql[512];
  loam_column_def pcols[] = {
    { .name = "id", .type = LOAM_COL_ID },
    { .name = "name", .type = LOAM_COL_TEXT, .length = 5, .not_null = 1 },
    { .name = "tier", .type = LOAM_COL_ENUM, .enum_values = tiers, .nenum_values = 2,
      .not_null = 1, .defval = { LOAM_DEFAULT_VALUE, loam_text("free", 4), NULL } },
    { .name = "meta", .type = LOAM_COL_JSON },
  };
  loam_column_def ccols[] = {
    { .name = "id", .type = LOAM_COL_ID },
    { .name = "parent_id", .type = LOAM_COL_BIGINT, .not_null = 1,
      .references = { parent, "id", LOAM_FK_CASCADE, 0 } },
    { .name = "code", .type = LOAM_COL_TEXT },
    { .name = "active", .type = LOAM_COL_BOOLEAN, .not_null = 1,
      .defval = { LOAM_DEFAULT_VALUE, loam_bool(1), NULL } },
  };
  loam_table_def pt = { .name = parent, .columns = pcols, .ncolumns = 4 };
  loam_table_def ct = { .name = child, .columns = ccols, .ncolumns = 4 };
  loam_index_def ix = { .table = child, .columns = code, .ncolumns = 1, .unique = 1,
                        .where = "active" };
  loam_error e = LOAM_ERROR_INIT;
  snprintf(parent, sizeof parent, "%s_parent", pfx);
  snprintf(child, sizeof child, "%s_child", pfx);
  snprintf(ptier, sizeof ptier, "%s_tier_check", parent);
  snprintf(cfk, sizeof cfk, "%s_parent_id_fkey", child);
  CHECK_OK(drop(c, child, &e), &e);
  CHECK_OK(drop(c, parent, &e), &e);
  CHECK_OK(create(c, &pt, &e), &e);
  CHECK_OK(create(c, &ct, &e), &e);
  CHECK_OK(create_index(c, &ix, &e), &e);

  snprintf(sql, sizeof sql, "INSERT INTO %s (name) VALUES ('ann')", parent);
  EXEC(c, sql, &e);
  CHECK_INT(t_scalar(c, pg ? "SELECT count(*) FROM ddl_pg_parent WHERE tier = 'free'"
                         : "SELECT count(*) FROM ddl_lite_parent WHERE tier = 'free'"), 1);

  /* enum value outside its set */
  snprintf(sql, sizeof sql, "INSERT INTO %s (name, tier) VALUES ('bob', 'gold')", parent);
  CHECK_FAILS(c, sql, &e, LOAM_E_CHECK_VIOLATION);
  CHECK_STR(e.constraint, ptier);

  /* text longer than its length: SQLite's CHECK reports a check_violation, while
     PostgreSQL's varchar(n) refuses the value itself, a data_error (22001) */
  snprintf(sql, sizeof sql, "INSERT INTO %s (name) VALUES ('toolong')", parent);
  CHECK_FAILS(c, sql, &e, pg ? LOAM_E_DATA_ERROR : LOAM_E_CHECK_VIOLATION);
  if (pg) CHECK_STR(e.sqlstate, "22001");
  else CHECK_STR(e.constraint, "ddl_lite_parent_name_check");

  /* json that does not parse: SQLite's CHECK, PostgreSQL's jsonb input */
  snprintf(sql, sizeof sql, "INSERT INTO %s (name, meta) VALUES ('cy', '{oops')", parent);
  CHECK_FAILS(c, sql, &e, pg ? LOAM_E_DATA_ERROR : LOAM_E_CHECK_VIOLATION);

  snprintf(sql, sizeof sql, "INSERT INTO %s (tier) VALUES ('pro')", parent);
  CHECK_FAILS(c, sql, &e, LOAM_E_NOT_NULL_VIOLATION);

  /* foreign key: no such parent */
  snprintf(sql, sizeof sql, "INSERT INTO %s (parent_id, code) VALUES (99, 'x')", child);
  CHECK_FAILS(c, sql, &e, LOAM_E_FOREIGN_KEY_VIOLATION);
  if (pg) CHECK_STR(e.constraint, cfk);

  /* partial unique index: duplicates allowed outside its WHERE only */
  snprintf(sql, sizeof sql, "INSERT INTO %s (parent_id, code) VALUES (1, 'x')", child);
  EXEC(c, sql, &e);
  snprintf(sql, sizeof sql, "INSERT INTO %s (parent_id, code, active) VALUES (1, 'x', false)",
           child);
  EXEC(c, sql, &e);
  EXEC(c, sql, &e);
  snprintf(sql, sizeof sql, "INSERT INTO %s (parent_id, code) VALUES (1, 'x')", child);
  CHECK_FAILS(c, sql, &e, LOAM_E_UNIQUE_VIOLATION);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", child);
  CHECK_INT(t_scalar(c, sql), 3);

  /* ON DELETE CASCADE takes the children along */
  snprintf(sql, sizeof sql, "DELETE FROM %s WHERE id = 1", parent);
  EXEC(c, sql, &e);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", child);
  CHECK_INT(t_scalar(c, sql), 0);

  CHECK_OK(drop(c, child, &e), &e);
  CHECK_OK(drop(c, parent, &e), &e);
  loam_error_clear(&e);
}

ON_BOTH(ddl_constraints, constraints_run)


/* A composite primary key refuses NULL on SQLite too, thanks to NOT NULL. */
static void composite_run (loam_conn *c) {
  static const char *const pk[] = { "a", "b" };
  static const loam_column_def cols[] = {
    { .name = "a", .type = LOAM_COL_TEXT }, { .name = "b", .type = LOAM_COL_TEXT },
  };
  loam_table_def t = { .name = "ddl_composite", .columns = cols, .ncolumns = 2,
                       .primary_key = pk, .nprimary_key = 2 };
  loam_error e = LOAM_ERROR_INIT;
  CHECK_OK(drop(c, "ddl_composite", &e), &e);
  CHECK_OK(create(c, &t, &e), &e);
  EXEC(c, "INSERT INTO ddl_composite VALUES ('x', 'y')", &e);
  CHECK_FAILS(c, "INSERT INTO ddl_composite VALUES ('x', 'y')", &e, LOAM_E_UNIQUE_VIOLATION);
  CHECK_FAILS(c, "INSERT INTO ddl_composite VALUES ('x', NULL)", &e, LOAM_E_NOT_NULL_VIOLATION);
  CHECK_OK(drop(c, "ddl_composite", &e), &e);
  loam_error_clear(&e);
}

ON_BOTH(ddl_composite_key, composite_run)

/* }====================================================================== */
