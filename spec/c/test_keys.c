/*
** test_keys.c: key lists compared with a column that leads an index
** ('loam_qb_in_indexed', the batch spec's 'key_indexed').
**
** The rendered text is compared to the byte for both dialects: on
** PostgreSQL a one-column list of integers, text or booleans becomes
** '= ANY($1::T[])' (negated '<> ALL'), with the very array parameter of
** the unnest form; doubles, composite keys and every SQLite list keep
** their form.  Then the same loads run against real SQLite and the real
** PostgreSQL cluster with and without 'key_indexed', and their answers
** must be equal: groups, order, NULL and duplicate keys, an integer
** column against int8 keys, text keys at a date column.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loam.h"
#include "t.h"
#include "test_query.h"


#define S LOAM_SQLITE
#define P LOAM_POSTGRES

#define col(name)  loam_qb_col(qb, NULL, name)
#define txt(s)     loam_text(s, strlen(s))


/* {======================================================================
** Rendering
** ======================================================================= */

/* SELECT * FROM "t" WHERE 'in' marked indexed, in a fresh statement of 'qb'. */
static loam_qstmt *indexed_where (loam_qb *qb, loam_expr *in) {
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  loam_qb_where(st, loam_qb_in_indexed(qb, in));
  return st;
}


TEST(keys_indexed_integers_render_any) {
  loam_qb *qb = loam_qb_new();
  loam_value v[3];
  loam_qstmt *st;
  v[0] = loam_int(3); v[1] = loam_int(-1); v[2] = loam_int(3);
  st = indexed_where(qb, loam_qb_in_list(qb, col("x"), v, 3, 0));
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE (\"x\" = ANY($1::int8[]))", "'{3,-1,3}'");
  EXPECT(qb, st, S, "SELECT * FROM \"t\" WHERE (\"x\" IN (SELECT k1 FROM loam_keys(?)))",
         "keys1[i:3,i:-1,i:3]");
  st = indexed_where(qb, loam_qb_in_list(qb, col("x"), v, 3, 1));
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE (\"x\" <> ALL($1::int8[]))", "'{3,-1,3}'");
  EXPECT(qb, st, S, "SELECT * FROM \"t\" WHERE (\"x\" NOT IN (SELECT k1 FROM loam_keys(?)))",
         "keys1[i:3,i:-1,i:3]");
  /* Placeholders around it keep their numbers. */
  st = loam_qb_select(qb, "t", NULL);
  loam_qb_where(st, loam_qb_op(qb, ">", col("y"), loam_qb_val(qb, loam_int(7))));
  loam_qb_where(st, loam_qb_in_indexed(qb, loam_qb_in_list(qb, col("x"), v, 2, 0)));
  loam_qb_where(st, loam_qb_op(qb, "<", col("y"), loam_qb_val(qb, loam_int(9))));
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE (((\"y\" > $1) AND (\"x\" = ANY($2::int8[]))) "
         "AND (\"y\" < $3))", "7, '{3,-1}', 9");
  loam_qb_free(qb);
}


TEST(keys_indexed_text_bool_and_column_types) {
  loam_qb *qb = loam_qb_new();
  loam_value v[2];
  loam_qstmt *st;
  v[0] = txt("a\"b"); v[1] = txt("");
  st = indexed_where(qb, loam_qb_in_list(qb, col("x"), v, 2, 0));
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE (\"x\" = ANY($1::text[]))", "'{\"a\\\"b\",\"\"}'");
  v[0] = txt("2021-01-01"); v[1] = txt("2021-01-02");
  st = indexed_where(qb, loam_qb_in_coltype(qb, loam_qb_in_list(qb, col("x"), v, 2, 0),
                                            LOAM_COL_DATE));
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE (\"x\" = ANY($1::date[]))",
         "'{\"2021-01-01\",\"2021-01-02\"}'");
  v[0] = loam_bool(1); v[1] = loam_bool(0);
  st = indexed_where(qb, loam_qb_in_list(qb, col("x"), v, 2, 0));
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE (\"x\" = ANY($1::bool[]))", "'{t,f}'");
  EXPECT(qb, st, S, "SELECT * FROM \"t\" WHERE (\"x\" IN (SELECT k1 FROM loam_keys(?)))",
         "keys1[i:1,i:0]");
  loam_qb_free(qb);
}


/*
** Doubles keep the subquery: float8[] (or numeric[], when mixed with
** integers) against an integer column would cast the column, and a cast
** column is not the index's.
*/
TEST(keys_indexed_doubles_keep_the_subquery) {
  loam_qb *qb = loam_qb_new();
  loam_value v[2];
  loam_qstmt *st;
  v[0] = loam_double(2.5); v[1] = loam_double(0.5);
  st = indexed_where(qb, loam_qb_in_list(qb, col("x"), v, 2, 0));
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE (\"x\" IN (SELECT * FROM unnest($1::float8[])))",
         "'{2.5,0.5}'");
  v[0] = loam_int(2);
  st = indexed_where(qb, loam_qb_in_list(qb, col("x"), v, 2, 0));
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE (\"x\" IN (SELECT * FROM unnest($1::numeric[])))",
         "'{2,0.5}'");
  loam_qb_free(qb);
}


/*
** Up to 128 keys go as '= ANY'; a longer list keeps the hashed subquery,
** whose cost stays bounded where a plan scans the table anyway.
*/
TEST(keys_indexed_long_lists_keep_the_subquery) {
  static const struct { int n; const char *sql; } cases[] = {
    { 128, "SELECT * FROM \"t\" WHERE (\"x\" = ANY($1::int8[]))" },
    { 129, "SELECT * FROM \"t\" WHERE (\"x\" IN (SELECT * FROM unnest($1::int8[])))" },
  };
  loam_value v[129];
  size_t k;
  int i;
  for (i = 0; i < 129; i++) v[i] = loam_int(i);
  for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    loam_qb *qb = loam_qb_new();
    loam_rendered *rs = NULL;
    loam_error err;
    loam_qstmt *st = indexed_where(qb, loam_qb_in_list(qb, col("x"), v, cases[k].n, 0));
    int np = 0;
    CHECK_OK(loam_qb_render(qb, st, P, 0, &rs, &err), &err);
    CHECK_STR(loam_rendered_sql(rs, 0, NULL), cases[k].sql);
    CHECK(loam_rendered_params(rs, 0, &np) != NULL && np == 1);
    loam_rendered_free(rs);
    loam_qb_free(qb);
  }
}


/* Tuples: one expression renders as a list does; two or more keep the unnest form. */
TEST(keys_indexed_tuples) {
  loam_qb *qb = loam_qb_new();
  loam_expr *ex[2];
  loam_value v[4], one[2];
  loam_qstmt *st;
  ex[0] = col("a");
  ex[1] = col("b");
  v[0] = loam_int(1); v[1] = txt("x"); v[2] = loam_int(2); v[3] = txt("y");
  one[0] = loam_int(1); one[1] = loam_int(2);
  st = indexed_where(qb, loam_qb_in_tuples(qb, ex, 1, one, 2, 0));
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE (\"a\" = ANY($1::int8[]))", "'{1,2}'");
  st = indexed_where(qb, loam_qb_in_tuples(qb, ex, 2, v, 2, 0));
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE ((\"a\", \"b\") IN (SELECT * FROM "
         "unnest($1::int8[], $2::text[])))", "'{1,2}', '{\"x\",\"y\"}'");
  EXPECT(qb, st, S, "SELECT * FROM \"t\" WHERE ((\"a\", \"b\") IN (SELECT k1, k2 FROM "
         "loam_keys(?)))", "keys2[i:1,t:\"x\",i:2,t:\"y\"]");
  loam_qb_free(qb);
}


TEST(keys_indexed_empty_and_refused) {
  loam_qb *qb = loam_qb_new();
  loam_value v[2];
  loam_qstmt *st = indexed_where(qb, loam_qb_in_list(qb, col("x"), NULL, 0, 0));
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE (1 = 0)", "");
  st = indexed_where(qb, loam_qb_in_list(qb, col("x"), NULL, 0, 1));
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE (1 = 1)", "");
  /* The value check is the list's, whatever its form. */
  v[0] = txt("ok"); v[1] = loam_text("nul\0", 4);
  st = indexed_where(qb, loam_qb_in_list(qb, col("x"), v, 2, 0));
  EXPECT_ERR(qb, st, P, LOAM_E_DATA_ERROR, "IN list: value 2 is text holding a NUL byte");
  loam_qb_free(qb);
  qb = loam_qb_new();
  st = indexed_where(qb, loam_qb_op(qb, "=", col("x"), loam_qb_val(qb, loam_int(1))));
  EXPECT_ERR(qb, st, P, LOAM_E_MISUSE, "IN indexed: needs an IN list or tuples");
  loam_qb_free(qb);
  qb = loam_qb_new();
  CHECK(loam_qb_in_indexed(qb, NULL) == NULL);
  loam_qb_free(qb);
}

/* }====================================================================== */


/* {======================================================================
** Loading: the same answers with and without the index's form
** ======================================================================= */

/* What the trace hook saw: the text of the last statement. */
static void on_statement (void *ud, const loam_trace_event *ev) {
  snprintf((char *)ud, 2048, "%s", ev->sql);
}


/*
** Children of parents 1..4, 'pid' an indexed integer column (int4, so
** int8 keys meet a cross-type operator), 'day' an indexed date; parent 3
** has none, and one child has no parent.
*/
static int seed (loam_conn *c, loam_error *e) {
  static const char *const sql[] = {
    "DROP TABLE IF EXISTS keys_kids",
    "CREATE TABLE keys_kids (id integer PRIMARY KEY, pid integer, day date, name text)",
    "CREATE INDEX keys_kids_pid_idx ON keys_kids (pid)",
    "CREATE INDEX keys_kids_day_idx ON keys_kids (day)",
    "INSERT INTO keys_kids VALUES (1, 1, '2021-01-01', 'a'), (2, 2, '2021-01-02', 'b'), "
    "(3, 1, '2021-01-01', 'c'), (4, 4, '2021-01-04', 'd'), (5, NULL, NULL, 'e'), "
    "(6, 2, '2021-01-02', 'f'), (7, 1, '2021-01-03', 'g')",
  };
  size_t i;
  for (i = 0; i < sizeof sql / sizeof sql[0]; i++)
    if (loam_exec(c, sql[i], NULL, 0, NULL, NULL, NULL, e) != LOAM_OK) return LOAM_ERROR;
  return LOAM_OK;
}


/*
** Loads keys_kids by 'keycol' ('coltype', or 0) for 'keys' (at most 16),
** ordered by id descending, and writes each key's group as "k:ids;..."
** into 'out' (NULL keys and unmatched keys show an empty list).
*/
static int load (loam_conn *c, const char *keycol, int coltype, const loam_value *keys, int n,
                 int indexed, int limit, char *out, size_t outsz, loam_error *e) {
  loam_qb *qb = loam_qb_new();
  loam_batch_spec sp = LOAM_BATCH_SPEC_INIT;
  loam_expr *key[1];
  loam_batch *b = NULL;
  size_t used = 0;
  int k, rc;
  sp.qb = qb;
  sp.query = loam_qb_select(qb, "keys_kids", NULL);
  loam_qb_column(sp.query, col("id"));
  loam_qb_order(sp.query, col("id"), LOAM_DESC);
  key[0] = loam_qb_col(qb, "keys_kids", keycol);
  sp.key = key;
  sp.nkey = 1;
  sp.keys = keys;
  sp.nkeys = n;
  sp.key_coltypes = coltype != 0 ? &coltype : NULL;
  sp.key_indexed = indexed;
  sp.limit_per_key = limit;
  rc = loam_batch_load(c, &sp, 1, &b, e);
  out[0] = '\0';
  for (k = 0; rc == LOAM_OK && k < n && used < outsz - 64; k++) {
    int g = loam_batch_key_group(b, 0, k), j;
    used += (size_t)snprintf(out + used, outsz - used, "%s%d:", k ? ";" : "", g);
    for (j = 0; j < loam_batch_group_size(b, 0, g) && used < outsz - 32; j++) {
      loam_value v;
      loam_batch_column(b, 0, loam_batch_group_row(b, 0, g, j), 0, &v);
      used += (size_t)snprintf(out + used, outsz - used, "%s%lld", j ? "," : "",
                               (long long)v.u.i);
    }
  }
  loam_batch_free(b);
  loam_qb_free(qb);
  return rc;
}


static void same_answers (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  char last[2048] = "", plain[1024], probed[1024];
  loam_value keys[6];
  const char *url = t_url(pg, "keys_same_answers");
  if (url == NULL) return;
  CHECK_OK(loam_connect(url, NULL, &c, &e), &e);
  loam_conn_set_trace(c, on_statement, last);
  CHECK_OK(seed(c, &e), &e);
  /* Duplicates, a NULL, a key without children, one that matches nothing. */
  keys[0] = loam_int(2); keys[1] = loam_int(1); keys[2] = loam_null();
  keys[3] = loam_int(2); keys[4] = loam_int(3); keys[5] = loam_int(99);
  CHECK_OK(load(c, "pid", 0, keys, 6, 0, 0, plain, sizeof plain, &e), &e);
  CHECK_HAS(last, pg ? "(\"keys_kids\".\"pid\" IN (SELECT * FROM unnest($1::int8[])))"
                     : "(\"keys_kids\".\"pid\" IN (SELECT k1 FROM loam_keys(?)))");
  CHECK_OK(load(c, "pid", 0, keys, 6, 1, 0, probed, sizeof probed, &e), &e);
  CHECK_HAS(last, pg ? "(\"keys_kids\".\"pid\" = ANY($1::int8[]))"
                     : "(\"keys_kids\".\"pid\" IN (SELECT k1 FROM loam_keys(?)))");
  CHECK_STR(plain, "0:6,2;1:7,3,1;-1:;0:6,2;2:;3:");
  CHECK_STR(probed, plain);
  /* A per-key limit wraps the statement; the key predicate stays inside. */
  CHECK_OK(load(c, "pid", 0, keys, 6, 1, 1, probed, sizeof probed, &e), &e);
  if (pg) CHECK_HAS(last, "= ANY($1::int8[])");
  CHECK_STR(probed, "0:6;1:7;-1:;0:6;2:;3:");
  /* Text keys at a date column: date[] on PostgreSQL, either form. */
  keys[0] = txt("2021-01-02"); keys[1] = txt("2021-01-01"); keys[2] = txt("2021-01-09");
  CHECK_OK(load(c, "day", LOAM_COL_DATE, keys, 3, 0, 0, plain, sizeof plain, &e), &e);
  CHECK_OK(load(c, "day", LOAM_COL_DATE, keys, 3, 1, 0, probed, sizeof probed, &e), &e);
  if (pg) CHECK_HAS(last, "(\"keys_kids\".\"day\" = ANY($1::date[]))");
  CHECK_STR(plain, "0:6,2;1:3,1;2:");
  CHECK_STR(probed, plain);
  /* Doubles keep the subquery, and their answers. */
  keys[0] = loam_double(2.5); keys[1] = loam_int(4);
  CHECK_OK(load(c, "pid", 0, keys, 2, 1, 0, probed, sizeof probed, &e), &e);
  if (pg) CHECK_HAS(last, "IN (SELECT * FROM unnest($1::numeric[]))");
  CHECK_STR(probed, "0:;1:4");
  /* A key value the column's type cannot take fails alike in both forms. */
  keys[0] = txt("x");
  if (pg) {
    loam_errcode code;
    CHECK_INT(load(c, "pid", 0, keys, 1, 0, 0, plain, sizeof plain, &e), LOAM_ERROR);
    code = e.code;
    loam_error_clear(&e);
    CHECK_INT(load(c, "pid", 0, keys, 1, 1, 0, probed, sizeof probed, &e), LOAM_ERROR);
    CHECK_INT(e.code, code);
    loam_error_clear(&e);
  }
  CHECK_OK(loam_exec(c, "DROP TABLE keys_kids", NULL, 0, NULL, NULL, NULL, &e), &e);
  loam_conn_close(c);
  loam_error_clear(&e);
}

TEST(keys_indexed_loads_answer_the_same) {
  T_ON_BOTH(same_answers);
}

/* }====================================================================== */
