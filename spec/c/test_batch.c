/*
** test_batch.c: the batched relation loader and the builder constructs it
** rests on.
**
** The constructs (a subquery in FROM, row_number() OVER, exact tuple IN)
** are rendered for both dialects and compared to the byte.  The loader
** runs against real SQLite (in memory) and the real PostgreSQL cluster of
** LOAM_TEST_PG, failing when there is none: deduplication, NULL keys, the
** integer/float rule, to-one groups, per-key limits, composite keys that
** must not over-fetch, 100,000 parents in one statement, the pipeline's
** single round trip, its failures and its use of the statement cache.
** The statements a load sends are counted with the connection's trace
** hook, which sees every statement, pipelined ones included.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loam.h"
#include "t.h"
#include "test_query.h"


#define S LOAM_SQLITE
#define P LOAM_POSTGRES

#define col(name)      loam_qb_col(qb, NULL, name)
#define tcol(t, name)  loam_qb_col(qb, t, name)
#define ival(i)        loam_qb_val(qb, loam_int(i))
#define txt(s)         loam_text(s, strlen(s))

#define EXEC(c, sql, e) CHECK_OK(loam_exec((c), (sql), NULL, 0, NULL, NULL, NULL, (e)), (e))


/* {======================================================================
** The builder constructs
** ======================================================================= */

TEST(batch_qb_select_from_subquery) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *sub = loam_qb_select(qb, "items", "i"), *st;
  loam_qb_column(sub, tcol("i", "id"));
  loam_qb_where(sub, loam_qb_op(qb, "=", tcol("i", "sku"), loam_qb_val(qb, txt("x"))));
  st = loam_qb_select_from(qb, sub, "sub");
  loam_qb_where(st, loam_qb_op(qb, ">", col("id"), ival(5)));
  loam_qb_order(st, col("id"), LOAM_DESC);
  EXPECT(qb, st, S, "SELECT * FROM (SELECT \"i\".\"id\" FROM \"items\" AS \"i\" WHERE "
         "(\"i\".\"sku\" = ?)) AS \"sub\" WHERE (\"id\" > ?) ORDER BY \"id\" DESC", "'x', 5");
  EXPECT(qb, st, P, "SELECT * FROM (SELECT \"i\".\"id\" FROM \"items\" AS \"i\" WHERE "
         "(\"i\".\"sku\" = $1)) AS \"sub\" WHERE (\"id\" > $2) ORDER BY \"id\" DESC", "'x', 5");
  loam_qb_free(qb);
}


TEST(batch_qb_select_from_needs_alias_and_select) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select_from(qb, loam_qb_select(qb, "t", NULL), NULL);
  EXPECT_ERR(qb, st, S, LOAM_E_MISUSE, "FROM (subquery): an alias is required");
  loam_qb_free(qb);
  qb = loam_qb_new();
  st = loam_qb_select_from(qb, loam_qb_delete(qb, "t"), "s");
  EXPECT_ERR(qb, st, P, LOAM_E_MISUSE, "the subquery must be a SELECT");
  loam_qb_free(qb);
}


TEST(batch_qb_row_number) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  loam_expr *part[2], *order[2];
  int flags[2] = { LOAM_DESC | LOAM_NULLS_LAST, 0 };
  part[0] = col("a");
  part[1] = col("b");
  order[0] = col("c");
  order[1] = col("d");
  loam_qb_column(st, col("a"));
  loam_qb_column(st, loam_qb_alias(qb, loam_qb_row_number(qb, part, 2, order, flags, 2), "rn"));
  loam_qb_column(st, loam_qb_row_number(qb, NULL, 0, order, NULL, 1));
  loam_qb_column(st, loam_qb_row_number(qb, part, 1, NULL, NULL, 0));
  loam_qb_column(st, loam_qb_row_number(qb, NULL, 0, NULL, NULL, 0));
  EXPECT(qb, st, S, "SELECT \"a\", row_number() OVER (PARTITION BY \"a\", \"b\" ORDER BY \"c\" "
         "DESC NULLS LAST, \"d\" ASC) AS \"rn\", row_number() OVER (ORDER BY \"c\" ASC), "
         "row_number() OVER (PARTITION BY \"a\"), row_number() OVER () FROM \"t\"", "");
  EXPECT(qb, st, P, "SELECT \"a\", row_number() OVER (PARTITION BY \"a\", \"b\" ORDER BY \"c\" "
         "DESC NULLS LAST, \"d\" ASC) AS \"rn\", row_number() OVER (ORDER BY \"c\" ASC), "
         "row_number() OVER (PARTITION BY \"a\"), row_number() OVER () FROM \"t\"", "");
  loam_qb_free(qb);
}


TEST(batch_qb_row_number_bad_flags) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  loam_expr *order[1];
  int flags[1] = { LOAM_NULLS_FIRST | LOAM_NULLS_LAST };
  order[0] = col("c");
  loam_qb_column(st, loam_qb_row_number(qb, NULL, 0, order, flags, 1));
  EXPECT_ERR(qb, st, S, LOAM_E_MISUSE, "ORDER BY: bad flags 6");
  loam_qb_free(qb);
}


TEST(batch_qb_in_tuples) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  loam_expr *ex[2];
  loam_value v[6];
  v[0] = loam_int(1); v[1] = txt("a");
  v[2] = loam_int(2); v[3] = txt("b\"c");
  v[4] = loam_double(2.5); v[5] = txt("");
  ex[0] = col("n");
  ex[1] = tcol("t", "s");
  loam_qb_where(st, loam_qb_in_tuples(qb, ex, 2, v, 3, 0));
  EXPECT(qb, st, S, "SELECT * FROM \"t\" WHERE ((\"n\", \"t\".\"s\") IN (SELECT k1, k2 FROM "
         "loam_keys(?)))", "keys2[i:1,t:\"a\",i:2,t:\"b\"c\",f:2.5,t:\"\"]");
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE ((\"n\", \"t\".\"s\") IN (SELECT * FROM "
         "unnest($1::numeric[], $2::text[])))", "'{1,2,2.5}', '{\"a\",\"b\\\"c\",\"\"}'");
  loam_qb_free(qb);
}


/* Text keys of a date, timestamp or numeric column are bound as that type on PostgreSQL. */
TEST(batch_qb_in_tuples_coltypes) {
  static const int types[] = { LOAM_COL_DATE, LOAM_COL_INTEGER, LOAM_COL_NUMERIC };
  static const int stamp[] = { LOAM_COL_TIMESTAMP };
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  loam_expr *ex[3], *in;
  loam_value v[3];
  v[0] = txt("2021-01-01"); v[1] = loam_int(1); v[2] = txt("12345678901234567890.5");
  ex[0] = col("d");
  ex[1] = col("n");
  ex[2] = col("x");
  in = loam_qb_in_tuples(qb, ex, 3, v, 1, 0);
  CHECK(loam_qb_in_coltypes(qb, in, types, 3) == in);
  loam_qb_where(st, in);
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE ((\"d\", \"n\", \"x\") IN (SELECT * FROM "
         "unnest($1::date[], $2::int8[], $3::numeric[])))",
         "'{\"2021-01-01\"}', '{1}', '{\"12345678901234567890.5\"}'");
  EXPECT(qb, st, S, "SELECT * FROM \"t\" WHERE ((\"d\", \"n\", \"x\") IN (SELECT k1, k2, k3 "
         "FROM loam_keys(?)))", "keys3[t:\"2021-01-01\",i:1,t:\"12345678901234567890.5\"]");
  st = loam_qb_select(qb, "t", NULL);
  loam_qb_where(st, loam_qb_in_coltypes(qb, loam_qb_in_tuples(qb, ex, 1, v, 1, 0), stamp, 1));
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE (\"d\" IN (SELECT * FROM "
         "unnest($1::timestamptz[])))", "'{\"2021-01-01\"}'");
  /* an IN list takes one type, as 'loam_qb_in_coltype' */
  st = loam_qb_select(qb, "t", NULL);
  loam_qb_where(st, loam_qb_in_coltypes(qb, loam_qb_in_list(qb, col("d"), v, 1, 0), types, 1));
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE (\"d\" IN (SELECT * FROM "
         "unnest($1::date[])))", "'{\"2021-01-01\"}'");
  loam_qb_free(qb);
  qb = loam_qb_new();
  st = loam_qb_select(qb, "t", NULL);
  loam_qb_where(st, loam_qb_in_coltypes(qb, loam_qb_in_tuples(qb, ex, 3, v, 1, 0), types, 2));
  EXPECT_ERR(qb, st, P, LOAM_E_MISUSE, "IN column types: needs an IN list or tuples and one "
             "column type per expression");
  loam_qb_free(qb);
  qb = loam_qb_new();
  st = loam_qb_select(qb, "t", NULL);
  {
    static const int bad[] = { LOAM_COL_DATE, 99 };
    loam_qb_where(st, loam_qb_in_coltypes(qb, loam_qb_in_tuples(qb, ex, 2, v, 1, 0), bad, 2));
  }
  EXPECT_ERR(qb, st, S, LOAM_E_MISUSE, "IN column types: column type 99 of expression 2 is "
             "unknown");
  loam_qb_free(qb);
}


TEST(batch_qb_in_tuples_negated_empty_single) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  loam_expr *ex[1];
  loam_value v[2];
  v[0] = loam_bool(1);
  v[1] = loam_bool(0);
  ex[0] = col("b");
  loam_qb_where(st, loam_qb_in_tuples(qb, ex, 1, v, 2, 1));
  loam_qb_where(st, loam_qb_in_tuples(qb, ex, 1, NULL, 0, 0));
  loam_qb_where(st, loam_qb_in_tuples(qb, ex, 1, NULL, 0, 1));
  /* One expression renders as the IN list of 'loam_qb_in_list' does. */
  EXPECT(qb, st, S, "SELECT * FROM \"t\" WHERE (((\"b\" NOT IN (SELECT k1 FROM "
         "loam_keys(?))) AND (1 = 0)) AND (1 = 1))", "keys1[i:1,i:0]");
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE (((\"b\" NOT IN (SELECT * FROM "
         "unnest($1::bool[]))) AND (1 = 0)) AND (1 = 1))", "'{t,f}'");
  loam_qb_free(qb);
}


TEST(batch_qb_in_tuples_refuses_null_and_mixed) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  loam_expr *ex[2];
  loam_value v[4];
  v[0] = loam_int(1); v[1] = txt("a");
  v[2] = loam_null(); v[3] = txt("b");
  ex[0] = col("n");
  ex[1] = col("s");
  loam_qb_where(st, loam_qb_in_tuples(qb, ex, 2, v, 2, 0));
  EXPECT_ERR(qb, st, S, LOAM_E_MISUSE, "IN list: tuple 2 value 1 is NULL");
  loam_qb_free(qb);
  qb = loam_qb_new();
  st = loam_qb_select(qb, "t", NULL);
  ex[0] = col("n");
  ex[1] = col("s");
  v[2] = loam_int(2);
  v[3] = loam_int(3);
  loam_qb_where(st, loam_qb_in_tuples(qb, ex, 2, v, 2, 0));
  EXPECT_ERR(qb, st, P, LOAM_E_MISUSE, "IN list: tuple 2 value 2 is of type integer after "
             "values of type text");
  loam_qb_free(qb);
}

/* }====================================================================== */


/* {======================================================================
** Loading: helpers
** ======================================================================= */

/* What the trace hook saw: statements, and the text of the last one. */
typedef struct seen {
  int statements;
  int errors;
  char last[2048];
} seen;

static void on_statement (void *ud, const loam_trace_event *ev) {
  seen *s = ud;
  s->statements++;
  if (ev->errcode != LOAM_E_NONE) s->errors++;
  snprintf(s->last, sizeof s->last, "%s", ev->sql);
}


/* Opens 'c' on 'backend' (SQLite in memory) with the hook counting into 'sn'. */
#define OPEN(c, backend, sn, e) \
  loam_conn *c = NULL; \
  seen sn; \
  memset(&sn, 0, sizeof sn); \
  do { \
    const char *url_ = (backend) == S ? "sqlite::memory:" : t_pg_url(); \
    if (url_ == NULL) { \
      t_fail(__FILE__, __LINE__, "LOAM_TEST_PG is not set; the PostgreSQL tests need a server"); \
      return; \
    } \
    CHECK_OK(loam_connect(url_, NULL, &c, (e)), (e)); \
    loam_conn_set_trace(c, on_statement, &sn); \
  } while (0)

/* Runs every test body on SQLite, then on PostgreSQL. */
#define BOTH(name) \
  static void name##_on (loam_backend d); \
  TEST(name) { name##_on(S); if (!t_failed()) name##_on(P); } \
  static void name##_on (loam_backend d)


/*
** Orders and their items: order 1 has items 1..5, order 2 items 6..7,
** order 3 none, order 4 item 8; 'price' is a double, 'sku' text.
*/
static int seed (loam_conn *c, loam_error *e) {
  static const char *const sql[] = {
    "DROP TABLE IF EXISTS batch_items",
    "CREATE TABLE batch_items (id integer PRIMARY KEY, order_id integer, sku text, "
    "price double precision, line integer)",
    "INSERT INTO batch_items VALUES (1, 1, 'a', 1.0, 1), (2, 1, 'b', 2.5, 2), "
    "(3, 1, 'c', 3.0, 3), (4, 1, 'd', 1.0, 4), (5, 1, 'e', 2.0, 5), (6, 2, 'a', 1.0, 1), "
    "(7, 2, 'b', 2.5, 2), (8, 4, 'z', NULL, 1)",
  };
  size_t i;
  for (i = 0; i < sizeof sql / sizeof sql[0]; i++)
    if (loam_exec(c, sql[i], NULL, 0, NULL, NULL, NULL, e) != LOAM_OK) return LOAM_ERROR;
  return LOAM_OK;
}


/* A spec over batch_items in 'qb', keyed on 'keycol', ordered by id ('desc'). */
static loam_batch_spec items_spec (loam_qb *qb, const char *keycol, loam_expr **key,
                                   const loam_value *keys, int nkeys, int desc) {
  loam_batch_spec sp = LOAM_BATCH_SPEC_INIT;
  sp.qb = qb;
  sp.query = loam_qb_select(qb, "batch_items", NULL);
  loam_qb_order(sp.query, col("id"), desc ? LOAM_DESC : 0);
  key[0] = tcol("batch_items", keycol);
  sp.key = key;
  sp.nkey = 1;
  sp.keys = keys;
  sp.nkeys = nkeys;
  return sp;
}


/* The integer column 'name' of row 'j' of the group of key 'k' in spec 's', or -1. */
static int64_t group_int (const loam_batch *b, int s, int k, int j, const char *name) {
  int g = loam_batch_key_group(b, s, k), c;
  int row = loam_batch_group_row(b, s, g, j);
  loam_value v;
  for (c = 0; c < loam_batch_column_count(b, s); c++)
    if (strcmp(loam_batch_column_name(b, s, c), name) == 0 &&
        loam_batch_column(b, s, row, c, &v) == LOAM_OK && v.type == LOAM_INT)
      return v.u.i;
  return -1;
}


/* The ids of the rows of key 'k', as "1,2,3". */
static const char *group_ids (const loam_batch *b, int s, int k) {
  static char out[256];
  int g = loam_batch_key_group(b, s, k), j, n = loam_batch_group_size(b, s, g);
  size_t used = 0;
  out[0] = '\0';
  for (j = 0; j < n && used < sizeof out - 24; j++)
    used += (size_t)snprintf(out + used, sizeof out - used, "%s%lld", j ? "," : "",
                             (long long)group_int(b, s, k, j, "id"));
  return out;
}

/* }====================================================================== */


/* {======================================================================
** Loading on both backends
** ======================================================================= */

BOTH(batch_dedup_groups_and_hidden_columns) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value keys[6];
  loam_expr *key[1];
  loam_batch *b = NULL;
  loam_batch_spec sp;
  loam_qb *qb = loam_qb_new();
  int c;
  OPEN(conn, d, sn, &e);
  CHECK_OK(seed(conn, &e), &e);
  keys[0] = loam_int(2); keys[1] = loam_int(1); keys[2] = loam_int(2);
  keys[3] = loam_int(3); keys[4] = loam_int(1); keys[5] = loam_int(99);
  sp = items_spec(qb, "order_id", key, keys, 6, 0);
  sn.statements = 0;
  CHECK_OK(loam_batch_load(conn, &sp, 1, &b, &e), &e);
  CHECK_INT(sn.statements, 1);
  CHECK_INT(loam_batch_round_trips(b), 1);
  CHECK_INT(loam_batch_group_count(b, 0), 4);
  CHECK_INT(loam_batch_key_group(b, 0, 0), loam_batch_key_group(b, 0, 2));
  CHECK_INT(loam_batch_key_group(b, 0, 1), loam_batch_key_group(b, 0, 4));
  CHECK_STR(group_ids(b, 0, 0), "6,7");
  CHECK_STR(group_ids(b, 0, 1), "1,2,3,4,5");
  CHECK_STR(group_ids(b, 0, 3), "");
  CHECK_STR(group_ids(b, 0, 5), "");
  CHECK_INT(loam_batch_row_count(b, 0), 7);
  CHECK_INT(loam_batch_column_count(b, 0), 5);
  for (c = 0; c < 5; c++) CHECK(strncmp(loam_batch_column_name(b, 0, c), "__loam", 6) != 0);
  CHECK(loam_batch_column_name(b, 0, 5) == NULL);
  CHECK_STR(sn.last, d == S
    ? "SELECT *, \"batch_items\".\"order_id\" AS \"__loam_k1\" FROM \"batch_items\" WHERE "
      "(\"batch_items\".\"order_id\" IN (SELECT k1 FROM loam_keys(?))) ORDER BY "
      "\"id\" ASC"
    : "SELECT *, \"batch_items\".\"order_id\" AS \"__loam_k1\" FROM \"batch_items\" WHERE "
      "(\"batch_items\".\"order_id\" IN (SELECT * FROM unnest($1::int8[]))) ORDER BY "
      "\"id\" ASC");
  loam_batch_free(b);
  loam_qb_free(qb);
  loam_conn_close(conn);
}


BOTH(batch_null_keys_are_never_sent) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value keys[3];
  loam_expr *key[1];
  loam_batch *b = NULL;
  loam_batch_spec sp;
  loam_qb *qb = loam_qb_new();
  OPEN(conn, d, sn, &e);
  CHECK_OK(seed(conn, &e), &e);
  keys[0] = loam_null(); keys[1] = loam_int(4); keys[2] = loam_null();
  sp = items_spec(qb, "order_id", key, keys, 3, 0);
  CHECK_OK(loam_batch_load(conn, &sp, 1, &b, &e), &e);
  CHECK_INT(loam_batch_key_group(b, 0, 0), -1);
  CHECK_INT(loam_batch_key_group(b, 0, 2), -1);
  CHECK_STR(group_ids(b, 0, 1), "8");
  CHECK_INT(loam_batch_group_count(b, 0), 1);
  loam_batch_free(b);
  loam_qb_free(qb);
  /* Only NULLs: no statement at all. */
  qb = loam_qb_new();
  keys[1] = loam_null();
  sp = items_spec(qb, "order_id", key, keys, 3, 0);
  sn.statements = 0;
  CHECK_OK(loam_batch_load(conn, &sp, 1, &b, &e), &e);
  CHECK_INT(sn.statements, 0);
  CHECK_INT(loam_batch_round_trips(b), 0);
  CHECK_INT(loam_batch_group_count(b, 0), 0);
  CHECK_INT(loam_batch_row_count(b, 0), 0);
  loam_batch_free(b);
  loam_qb_free(qb);
  loam_conn_close(conn);
}


/*
** 1.0 is the integer 1 both ways: as a parent key (it shares a group with
** 1, and is sent as an integer) and as a column value (a double column
** holding 1.0 falls into the group of the key 1).  2.5 stays a double.
*/
BOTH(batch_int_float_keys) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value keys[4];
  loam_expr *key[1];
  loam_batch *b = NULL;
  loam_batch_spec sp;
  loam_qb *qb = loam_qb_new();
  OPEN(conn, d, sn, &e);
  CHECK_OK(seed(conn, &e), &e);
  keys[0] = loam_double(1.0); keys[1] = loam_int(1); keys[2] = loam_double(2.5);
  keys[3] = loam_int(7);
  sp = items_spec(qb, "price", key, keys, 4, 0);
  CHECK_OK(loam_batch_load(conn, &sp, 1, &b, &e), &e);
  CHECK_INT(loam_batch_group_count(b, 0), 3);
  CHECK_INT(loam_batch_key_group(b, 0, 0), loam_batch_key_group(b, 0, 1));
  CHECK_STR(group_ids(b, 0, 0), "1,4,6");
  CHECK_STR(group_ids(b, 0, 2), "2,7");
  CHECK_STR(group_ids(b, 0, 3), "");
  loam_batch_free(b);
  loam_qb_free(qb);
  /* The same keys as integers only: an int8 list, the same groups. */
  qb = loam_qb_new();
  keys[2] = loam_double(3.0);
  sp = items_spec(qb, "price", key, keys, 4, 0);
  CHECK_OK(loam_batch_load(conn, &sp, 1, &b, &e), &e);
  if (d == P) CHECK_HAS(sn.last, "unnest($1::int8[])");
  CHECK_STR(group_ids(b, 0, 1), "1,4,6");
  CHECK_STR(group_ids(b, 0, 2), "3");
  loam_batch_free(b);
  loam_qb_free(qb);
  loam_conn_close(conn);
}


BOTH(batch_one_keeps_the_first_row) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value keys[3];
  loam_expr *key[1];
  loam_batch *b = NULL;
  loam_batch_spec sp;
  loam_qb *qb = loam_qb_new();
  OPEN(conn, d, sn, &e);
  CHECK_OK(seed(conn, &e), &e);
  keys[0] = loam_int(1); keys[1] = loam_int(3); keys[2] = loam_int(2);
  sp = items_spec(qb, "order_id", key, keys, 3, 1);
  sp.one = 1;
  CHECK_OK(loam_batch_load(conn, &sp, 1, &b, &e), &e);
  CHECK_STR(group_ids(b, 0, 0), "5");
  CHECK_STR(group_ids(b, 0, 1), "");
  CHECK_STR(group_ids(b, 0, 2), "7");
  CHECK_INT(loam_batch_row_count(b, 0), 2);
  loam_batch_free(b);
  loam_qb_free(qb);
  loam_conn_close(conn);
}


/* The 3 newest items of each order, in one statement, newest first. */
BOTH(batch_limit_per_key) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value keys[4];
  loam_expr *key[1];
  loam_batch *b = NULL;
  loam_batch_spec sp;
  loam_qb *qb = loam_qb_new();
  OPEN(conn, d, sn, &e);
  CHECK_OK(seed(conn, &e), &e);
  keys[0] = loam_int(1); keys[1] = loam_int(2); keys[2] = loam_int(3); keys[3] = loam_int(4);
  sp = items_spec(qb, "order_id", key, keys, 4, 1);
  sp.limit_per_key = 3;
  CHECK_OK(loam_batch_load(conn, &sp, 1, &b, &e), &e);
  CHECK_STR(group_ids(b, 0, 0), "5,4,3");
  CHECK_STR(group_ids(b, 0, 1), "7,6");
  CHECK_STR(group_ids(b, 0, 2), "");
  CHECK_STR(group_ids(b, 0, 3), "8");
  CHECK_INT(loam_batch_column_count(b, 0), 5);
  CHECK_STR(sn.last, d == S
    ? "SELECT * FROM (SELECT *, \"batch_items\".\"order_id\" AS \"__loam_k1\", row_number() "
      "OVER (PARTITION BY \"batch_items\".\"order_id\" ORDER BY \"id\" DESC) AS \"__loam_rn\" "
      "FROM \"batch_items\" WHERE (\"batch_items\".\"order_id\" IN (SELECT k1 FROM "
      "loam_keys(?)))) AS \"__loam_sub\" WHERE (\"__loam_rn\" <= ?) ORDER BY \"__loam_rn\" ASC"
    : "SELECT * FROM (SELECT *, \"batch_items\".\"order_id\" AS \"__loam_k1\", row_number() "
      "OVER (PARTITION BY \"batch_items\".\"order_id\" ORDER BY \"id\" DESC) AS \"__loam_rn\" "
      "FROM \"batch_items\" WHERE (\"batch_items\".\"order_id\" IN (SELECT * FROM "
      "unnest($1::int8[])))) AS \"__loam_sub\" WHERE (\"__loam_rn\" <= $2) ORDER BY "
      "\"__loam_rn\" ASC");
  loam_batch_free(b);
  loam_qb_free(qb);
  loam_conn_close(conn);
}


/*
** Keys (1, 'a') and (2, 'b') match exactly those pairs: a per-column IN
** would also fetch (1, 'b') and (2, 'a'), which exist.
*/
BOTH(batch_composite_keys_match_exact_tuples) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value keys[8];
  loam_expr *key[2];
  loam_batch *b = NULL;
  loam_batch_spec sp = LOAM_BATCH_SPEC_INIT;
  loam_qb *qb = loam_qb_new();
  OPEN(conn, d, sn, &e);
  CHECK_OK(seed(conn, &e), &e);
  keys[0] = loam_int(1); keys[1] = txt("a");
  keys[2] = loam_int(2); keys[3] = txt("b");
  keys[4] = loam_double(1.0); keys[5] = txt("a");
  keys[6] = loam_int(2); keys[7] = loam_null();
  sp.qb = qb;
  sp.query = loam_qb_select(qb, "batch_items", NULL);
  loam_qb_column(sp.query, col("id"));
  key[0] = col("order_id");
  key[1] = col("sku");
  sp.key = key;
  sp.nkey = 2;
  sp.keys = keys;
  sp.nkeys = 4;
  CHECK_OK(loam_batch_load(conn, &sp, 1, &b, &e), &e);
  CHECK_INT(loam_batch_row_count(b, 0), 2);
  CHECK_INT(loam_batch_group_count(b, 0), 2);
  CHECK_STR(group_ids(b, 0, 0), "1");
  CHECK_STR(group_ids(b, 0, 1), "7");
  CHECK_INT(loam_batch_key_group(b, 0, 2), loam_batch_key_group(b, 0, 0));
  CHECK_INT(loam_batch_key_group(b, 0, 3), -1);
  CHECK_INT(loam_batch_column_count(b, 0), 1);
  CHECK_HAS(sn.last, d == S ? "((\"order_id\", \"sku\") IN (SELECT k1, k2 "
                              "FROM loam_keys(?)))"
                            : "((\"order_id\", \"sku\") IN (SELECT * FROM unnest($1::int8[], "
                              "$2::text[])))");
  loam_batch_free(b);
  loam_qb_free(qb);
  loam_conn_close(conn);
}


/* 100,000 parents: one statement, one parameter, every group right. */
BOTH(batch_100000_keys_one_statement) {
  enum { N = 100000 };
  loam_error e = LOAM_ERROR_INIT;
  loam_value *keys = malloc(N * sizeof *keys);
  loam_expr *key[1];
  loam_batch *b = NULL;
  loam_batch_spec sp;
  loam_qb *qb = loam_qb_new();
  int i, ok = 1;
  OPEN(conn, d, sn, &e);
  CHECK(keys != NULL);
  EXEC(conn, "DROP TABLE IF EXISTS batch_items", &e);
  EXEC(conn, "CREATE TABLE batch_items (id integer PRIMARY KEY, order_id integer, sku text, "
             "price double precision, line integer)", &e);
  EXEC(conn, d == S
    ? "INSERT INTO batch_items (id, order_id) WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL "
      "SELECT n + 1 FROM s WHERE n < 100000) SELECT n, 100001 - n FROM s"
    : "INSERT INTO batch_items (id, order_id) SELECT n, 100001 - n FROM generate_series(1, "
      "100000) AS n", &e);
  for (i = 0; i < N; i++) keys[i] = loam_int(i + 1);
  sp = items_spec(qb, "order_id", key, keys, N, 0);
  sn.statements = 0;
  CHECK_OK(loam_batch_load(conn, &sp, 1, &b, &e), &e);
  CHECK_INT(sn.statements, 1);
  CHECK_INT(loam_batch_group_count(b, 0), N);
  CHECK_INT(loam_batch_row_count(b, 0), N);
  for (i = 0; i < N && ok; i++)
    ok = loam_batch_group_size(b, 0, loam_batch_key_group(b, 0, i)) == 1 &&
         group_int(b, 0, i, 0, "id") == N + 1 - (i + 1);
  CHECK(ok);
  loam_batch_free(b);
  loam_qb_free(qb);
  free(keys);
  loam_conn_close(conn);
}


BOTH(batch_refuses_bad_specs_before_sending) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value keys[2];
  loam_expr *key[1];
  loam_batch *b = NULL;
  loam_batch_spec sp;
  loam_qb *qb = loam_qb_new();
  OPEN(conn, d, sn, &e);
  keys[0] = loam_int(1);
  keys[1] = txt("1");
  sp = items_spec(qb, "order_id", key, keys, 2, 0);
  sn.statements = 0;
  CHECK_INT(loam_batch_load(conn, &sp, 1, &b, &e), LOAM_ERROR);
  CHECK(b == NULL);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_HAS(e.message, "batch key 2: value 1 is of type text after keys of another type");
  keys[1] = loam_blob("x", 1);
  CHECK_INT(loam_batch_load(conn, &sp, 1, &b, &e), LOAM_ERROR);
  CHECK_HAS(e.message, "batch key 2: value 1 is of type blob, which cannot be a key");
  keys[1] = loam_int(2);
  loam_qb_limit(sp.query, 10);
  CHECK_INT(loam_batch_load(conn, &sp, 1, &b, &e), LOAM_ERROR);
  CHECK_HAS(e.message, "the query must have no LIMIT or OFFSET");
  sp.nkey = 0;
  CHECK_INT(loam_batch_load(conn, &sp, 1, &b, &e), LOAM_ERROR);
  CHECK_HAS(e.message, "batch spec 1: needs");
  CHECK_INT(sn.statements, 0);
  loam_error_clear(&e);
  loam_qb_free(qb);
  loam_conn_close(conn);
}

/* }====================================================================== */


/* {======================================================================
** Several specs: SQLite one by one, PostgreSQL in one pipeline
** ======================================================================= */

/*
** Three specs over batch_items; each selects txid_current() on PostgreSQL
** (the transaction it ran in) and 'bad' makes the second fail: 1 at parse
** time (an unknown column), 2 at run time (a division by zero).
*/
static void three_specs (loam_qb *qb, loam_batch_spec *sp, loam_expr **key, const loam_value *keys,
                         int pg, int bad) {
  int i;
  for (i = 0; i < 3; i++) {
    sp[i] = items_spec(qb, i == 2 ? "line" : "order_id", &key[i], keys, 2, 0);
    loam_qb_column(sp[i].query, col("id"));
    if (pg) loam_qb_column(sp[i].query, loam_qb_alias(qb, loam_qb_raw(qb, "txid_current()",
                                                                      NULL, 0), "xid"));
    if (i == 1 && bad == 1) loam_qb_column(sp[i].query, col("no_such_column"));
    if (i == 1 && bad == 2)
      loam_qb_column(sp[i].query, loam_qb_raw(qb, "1 / (\"id\" - \"id\")", NULL, 0));
  }
}


TEST(batch_sqlite_specs_run_one_by_one) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value keys[2];
  loam_expr *key[3];
  loam_batch_spec sp[3];
  loam_batch *b = NULL;
  loam_qb *qb = loam_qb_new();
  OPEN(conn, S, sn, &e);
  CHECK_OK(seed(conn, &e), &e);
  keys[0] = loam_int(1); keys[1] = loam_int(2);
  three_specs(qb, sp, key, keys, 0, 0);
  sn.statements = 0;
  CHECK_OK(loam_batch_load(conn, sp, 3, &b, &e), &e);
  CHECK_INT(sn.statements, 3);
  CHECK_INT(loam_batch_round_trips(b), 3);
  CHECK_STR(group_ids(b, 0, 1), "6,7");
  CHECK_STR(group_ids(b, 2, 0), "1,6,8");
  loam_batch_free(b);
  loam_qb_free(qb);
  loam_conn_close(conn);
}


/*
** The proof of one round trip is on the server: statements of one
** pipeline share its implicit transaction up to the single Sync, so all
** three see the same txid_current(), where three round trips (each ending
** with its own Sync) would see three.  The trace hook still sees three
** statements, and the loader reports one round trip.
*/
TEST(batch_pg_pipeline_is_one_round_trip) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value keys[2];
  loam_expr *key[3];
  loam_batch_spec sp[3];
  loam_batch *b = NULL;
  loam_qb *qb = loam_qb_new();
  int64_t xid[3];
  int i;
  OPEN(conn, P, sn, &e);
  CHECK_OK(seed(conn, &e), &e);
  keys[0] = loam_int(1); keys[1] = loam_int(2);
  three_specs(qb, sp, key, keys, 1, 0);
  sn.statements = 0;
  CHECK_OK(loam_batch_load(conn, sp, 3, &b, &e), &e);
  CHECK_INT(sn.statements, 3);
  CHECK_INT(loam_batch_round_trips(b), 1);
  for (i = 0; i < 3; i++) xid[i] = group_int(b, i, 0, 0, "xid");
  CHECK(xid[0] > 0);
  CHECK_INT(xid[1], xid[0]);
  CHECK_INT(xid[2], xid[0]);
  CHECK_STR(group_ids(b, 0, 1), "6,7");
  CHECK_STR(group_ids(b, 1, 0), "1,2,3,4,5");
  CHECK_STR(group_ids(b, 2, 0), "1,6,8");
  loam_batch_free(b);
  loam_qb_free(qb);
  /* The control: the same three loads one by one run in three transactions. */
  for (i = 0; i < 3; i++) {
    qb = loam_qb_new();
    three_specs(qb, sp, key, keys, 1, 0);
    CHECK_OK(loam_batch_load(conn, &sp[i], 1, &b, &e), &e);
    xid[i] = group_int(b, 0, 0, 0, "xid");
    loam_batch_free(b);
    loam_qb_free(qb);
  }
  CHECK(xid[0] != xid[1] && xid[1] != xid[2] && xid[0] != xid[2]);
  loam_conn_close(conn);
}


/* Runs 'sql', which must return the single integer 'want'. */
static int scalar_is (loam_conn *c, const char *sql, int64_t want) {
  loam_stmt *s = NULL;
  loam_value v;
  int ok;
  if (loam_query(c, sql, NULL, 0, 0, &s, NULL) != LOAM_OK) return 0;
  ok = loam_step(s, NULL) == LOAM_ROW && loam_column(s, 0, &v) == LOAM_OK &&
       v.type == LOAM_INT && v.u.i == want;
  loam_stmt_close(s);
  return ok;
}


/*
** The second of three pipelined statements fails, at parse time and at
** run time: the first error comes out with its code, the third never ran,
** and the connection is clean (the same pipeline then succeeds, and a
** transaction works).
*/
TEST(batch_pg_pipeline_error_leaves_connection_usable) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value keys[2];
  loam_expr *key[3];
  loam_batch_spec sp[3];
  loam_batch *b = NULL;
  loam_qb *qb;
  int bad, round;
  OPEN(conn, P, sn, &e);
  CHECK_OK(seed(conn, &e), &e);
  keys[0] = loam_int(1); keys[1] = loam_int(2);
  for (bad = 1; bad <= 2; bad++) {
    for (round = 0; round < 2; round++) {
      qb = loam_qb_new();
      three_specs(qb, sp, key, keys, 1, bad);
      sn.statements = sn.errors = 0;
      CHECK_INT(loam_batch_load(conn, sp, 3, &b, &e), LOAM_ERROR);
      loam_qb_free(qb);
      CHECK(b == NULL);
      CHECK_INT(e.code, bad == 1 ? LOAM_E_UNDEFINED_COLUMN : LOAM_E_DATA_ERROR);
      CHECK_STR(e.sqlstate, bad == 1 ? "42703" : "22012");
      CHECK_INT(sn.statements, 2);
      CHECK_INT(sn.errors, 1);
      CHECK(scalar_is(conn, "SELECT 41 + 1", 42));
    }
    qb = loam_qb_new();
    three_specs(qb, sp, key, keys, 1, 0);
    CHECK_OK(loam_batch_load(conn, sp, 3, &b, &e), &e);
    CHECK_STR(group_ids(b, 2, 0), "1,6,8");
    loam_batch_free(b);
    loam_qb_free(qb);
  }
  /* Inside a transaction the failure aborts it, as any failed statement does. */
  EXEC(conn, "BEGIN", &e);
  qb = loam_qb_new();
  three_specs(qb, sp, key, keys, 1, 2);
  CHECK_INT(loam_batch_load(conn, sp, 3, &b, &e), LOAM_ERROR);
  loam_qb_free(qb);
  CHECK_INT(loam_exec(conn, "SELECT 1", NULL, 0, NULL, NULL, NULL, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_TRANSACTION_ABORTED);
  EXEC(conn, "ROLLBACK", &e);
  CHECK(scalar_is(conn, "SELECT 7", 7));
  loam_error_clear(&e);
  loam_conn_close(conn);
}


/*
** True when the server holds exactly the prepared statements of the
** client's cache (the counting query is one of them once it ran).
*/
static int server_agrees (loam_conn *c) {
  loam_stmt *s = NULL;
  loam_value v;
  int ok;
  if (loam_query(c, "SELECT count(*) FROM pg_prepared_statements", NULL, 0, 0, &s, NULL)
      != LOAM_OK)
    return 0;
  ok = loam_step(s, NULL) == LOAM_ROW && loam_column(s, 0, &v) == LOAM_OK &&
       v.type == LOAM_INT && v.u.i == loam_conn_cached_statements(c);
  loam_stmt_close(s);
  return ok;
}


/*
** A shape prepares once: loading it again, alone or in a pipeline, or
** twice in one pipeline, adds no prepared statement, on the client's
** cache or on the server.
*/
TEST(batch_pg_same_shape_reuses_one_statement) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value keys[2], other[3];
  loam_expr *key[3];
  loam_batch_spec sp[3];
  loam_batch *b = NULL;
  loam_qb *qb;
  int cached, i;
  OPEN(conn, P, sn, &e);
  CHECK_OK(seed(conn, &e), &e);
  keys[0] = loam_int(1); keys[1] = loam_int(2);
  other[0] = loam_int(4); other[1] = loam_int(1); other[2] = loam_int(3);
  cached = loam_conn_cached_statements(conn);
  for (i = 0; i < 3; i++) {
    qb = loam_qb_new();
    sp[0] = items_spec(qb, "order_id", &key[0], i == 1 ? other : keys, i == 1 ? 3 : 2, 0);
    CHECK_OK(loam_batch_load(conn, sp, 1, &b, &e), &e);
    loam_batch_free(b);
    loam_qb_free(qb);
    CHECK_INT(loam_conn_cached_statements(conn), cached + 1);
  }
  CHECK(server_agrees(conn));
  cached = loam_conn_cached_statements(conn);
  for (i = 0; i < 2; i++) {
    qb = loam_qb_new();
    three_specs(qb, sp, key, keys, 1, 0);
    /* the first spec again under another key list: the same text as the second */
    sp[0] = items_spec(qb, "order_id", &key[0], other, 3, 0);
    loam_qb_column(sp[0].query, col("id"));
    loam_qb_column(sp[0].query, loam_qb_alias(qb, loam_qb_raw(qb, "txid_current()", NULL, 0),
                                              "xid"));
    CHECK_OK(loam_batch_load(conn, sp, 3, &b, &e), &e);
    CHECK_STR(group_ids(b, 0, 0), "8");
    CHECK_STR(group_ids(b, 1, 0), "1,2,3,4,5");
    loam_batch_free(b);
    loam_qb_free(qb);
    CHECK_INT(loam_conn_cached_statements(conn), cached + 2);
  }
  CHECK(server_agrees(conn));
  loam_conn_close(conn);
}

/* }====================================================================== */


/*
** Without a statement cache (PgBouncer's transaction mode) the pipeline
** runs unnamed statements: the same results, nothing prepared, and a
** failure still leaves the connection clean.
*/
TEST(batch_pg_pipeline_without_cache) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn_opts o = LOAM_CONN_OPTS_INIT;
  loam_value keys[2];
  loam_expr *key[3];
  loam_batch_spec sp[3];
  loam_batch *b = NULL;
  loam_conn *conn = NULL;
  loam_qb *qb;
  int bad;
  if (t_pg_url() == NULL) {
    t_fail(__FILE__, __LINE__, "LOAM_TEST_PG is not set; the PostgreSQL tests need a server");
    return;
  }
  o.statement_cache = 0;
  CHECK_OK(loam_connect(t_pg_url(), &o, &conn, &e), &e);
  CHECK_OK(seed(conn, &e), &e);
  keys[0] = loam_int(1); keys[1] = loam_int(2);
  for (bad = 0; bad <= 2; bad++) {
    qb = loam_qb_new();
    three_specs(qb, sp, key, keys, 1, bad);
    if (bad == 0) {
      CHECK_OK(loam_batch_load(conn, sp, 3, &b, &e), &e);
      CHECK_INT(loam_batch_round_trips(b), 1);
      CHECK_INT(group_int(b, 1, 0, 0, "xid"), group_int(b, 0, 0, 0, "xid"));
      CHECK_STR(group_ids(b, 2, 1), "2,7");
      loam_batch_free(b);
    }
    else {
      CHECK_INT(loam_batch_load(conn, sp, 3, &b, &e), LOAM_ERROR);
      CHECK_INT(e.code, bad == 1 ? LOAM_E_UNDEFINED_COLUMN : LOAM_E_DATA_ERROR);
    }
    loam_qb_free(qb);
    CHECK(scalar_is(conn, "SELECT count(*) FROM pg_prepared_statements", 0));
  }
  loam_error_clear(&e);
  loam_conn_close(conn);
}


/*
** With room for one statement, each new shape of a pipeline evicts the
** one before while the pipeline runs.  A statement whose Parse failed
** must then leave no DEALLOCATE behind: after a rollback to a savepoint
** the next statement would run it inside the transaction, where it
** would fail and abort the transaction once more.
*/
TEST(batch_pg_pipeline_eviction_and_failed_parse) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn_opts o = LOAM_CONN_OPTS_INIT;
  loam_value keys[2];
  loam_expr *key[3];
  loam_batch_spec sp[3];
  loam_batch *b = NULL;
  loam_conn *conn = NULL;
  loam_qb *qb;
  int round;
  if (t_pg_url() == NULL) {
    t_fail(__FILE__, __LINE__, "LOAM_TEST_PG is not set; the PostgreSQL tests need a server");
    return;
  }
  o.statement_cache = 1;
  CHECK_OK(loam_connect(t_pg_url(), &o, &conn, &e), &e);
  CHECK_OK(seed(conn, &e), &e);
  keys[0] = loam_int(1); keys[1] = loam_int(2);
  for (round = 0; round < 2; round++) {
    EXEC(conn, "BEGIN", &e);
    EXEC(conn, "SAVEPOINT before_load", &e);
    qb = loam_qb_new();
    three_specs(qb, sp, key, keys, 1, 1);
    if (round == 0) sp[0] = items_spec(qb, "id", &key[0], keys, 2, 0);   /* a third shape */
    CHECK_INT(loam_batch_load(conn, sp, 3, &b, &e), LOAM_ERROR);
    CHECK_INT(e.code, LOAM_E_UNDEFINED_COLUMN);
    loam_qb_free(qb);
    EXEC(conn, "ROLLBACK TO SAVEPOINT before_load", &e);
    CHECK(scalar_is(conn, "SELECT 1", 1));
    CHECK(scalar_is(conn, "SELECT 2", 2));
    EXEC(conn, "COMMIT", &e);
  }
  qb = loam_qb_new();
  three_specs(qb, sp, key, keys, 1, 0);
  CHECK_OK(loam_batch_load(conn, sp, 3, &b, &e), &e);
  CHECK_STR(group_ids(b, 1, 1), "6,7");
  loam_batch_free(b);
  loam_qb_free(qb);
  loam_error_clear(&e);
  loam_conn_close(conn);
}


/* A streaming result owns the wire: a pipeline then is misuse, and waits for nothing. */
TEST(batch_pg_pipeline_refused_while_streaming) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value keys[2];
  loam_expr *key[3];
  loam_batch_spec sp[3];
  loam_batch *b = NULL;
  loam_stmt *s = NULL;
  loam_qb *qb = loam_qb_new();
  OPEN(conn, P, sn, &e);
  CHECK_OK(seed(conn, &e), &e);
  keys[0] = loam_int(1); keys[1] = loam_int(2);
  three_specs(qb, sp, key, keys, 1, 0);
  CHECK_OK(loam_query(conn, "SELECT * FROM batch_items", NULL, 0, LOAM_STREAM, &s, &e), &e);
  CHECK_INT(loam_step(s, &e), LOAM_ROW);
  CHECK_INT(loam_batch_load(conn, sp, 3, &b, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_HAS(e.message, "busy streaming");
  loam_stmt_close(s);
  CHECK(scalar_is(conn, "SELECT 3", 3));
  loam_error_clear(&e);
  loam_qb_free(qb);
  loam_conn_close(conn);
}


/* A connection the server ended: the pipeline reports it and frees everything. */
TEST(batch_pg_pipeline_on_a_lost_connection) {
  loam_error e = LOAM_ERROR_INIT;
  loam_value keys[2];
  loam_expr *key[3];
  loam_batch_spec sp[3];
  loam_batch *b = NULL;
  loam_conn *killer = NULL;
  loam_stmt *s = NULL;
  loam_value pid;
  loam_qb *qb = loam_qb_new();
  OPEN(conn, P, sn, &e);
  CHECK_OK(seed(conn, &e), &e);
  CHECK_OK(loam_connect(t_pg_url(), NULL, &killer, &e), &e);
  CHECK_OK(loam_query(conn, "SELECT pg_backend_pid()", NULL, 0, 0, &s, &e), &e);
  CHECK_INT(loam_step(s, &e), LOAM_ROW);
  CHECK_INT(loam_column(s, 0, &pid), LOAM_OK);
  loam_stmt_close(s);
  s = NULL;
  CHECK_OK(loam_query(killer, "SELECT pg_terminate_backend(?::int4, 10000)", &pid, 1, 0, &s, &e), &e);
  CHECK_INT(loam_step(s, &e), LOAM_ROW);
  loam_stmt_close(s);
  loam_conn_close(killer);
  keys[0] = loam_int(1); keys[1] = loam_int(2);
  three_specs(qb, sp, key, keys, 1, 0);
  CHECK_INT(loam_batch_load(conn, sp, 3, &b, &e), LOAM_ERROR);
  CHECK(b == NULL);
  CHECK_INT(e.code, LOAM_E_CONNECTION_FAILED);
  loam_error_clear(&e);
  loam_qb_free(qb);
  loam_conn_close(conn);
}
