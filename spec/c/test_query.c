/*
** test_query.c: the query builder's rendering, exact to the byte.
**
** Every feature is rendered for SQLite and for PostgreSQL and compared
** with the whole expected text and the whole parameter list, so a change
** of spacing or numbering shows here before it reaches a prepared
** statement.  Error tests check the code and the message that names the
** problem.  test_query_db.c runs rendered statements on real databases.
*/
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loam.h"
#include "t.h"
#include "test_query.h"


#define S LOAM_SQLITE
#define P LOAM_POSTGRES


/* {======================================================================
** Helpers (declared in test_query.h, shared with test_query_db.c)
** ======================================================================= */

/*
** Writes the key list blob 'p' of 'n' bytes (sqlite_keys.c) readably to
** 'out' as keys<width>[i:1,f:0.5,t:"a\0b"], decoding it independently of
** the core, so the tests pin the format byte for byte.
*/
static int keys_text (char *out, size_t room, const unsigned char *p, size_t n) {
  size_t pos = 4, used;
  int w, k;
  if (n < 4 || p[0] != 'l' || p[1] != 'k' || p[2] != 1) return snprintf(out, room, "blob:%zu", n);
  w = snprintf(out, room, "keys%d[", p[3]);
  used = w > 0 ? (size_t)w : 0;
  while (pos < n && used + 40 < room) {
    uint64_t u = 0;
    double d;
    char tag = (char)p[pos++];
    if (pos > 5) out[used++] = ',';
    if (tag == 'i' || tag == 'f') {
      for (k = 7; k >= 0; k--) u = (u << 8) | p[pos + (size_t)k];
      pos += 8;
      memcpy(&d, &u, sizeof d);
      if (tag == 'i') w = snprintf(out + used, room - used, "i:%" PRId64, (int64_t)u);
      else w = snprintf(out + used, room - used, "f:%.17g", d);
      used += w > 0 ? (size_t)w : 0;
    }
    else if (tag == 't') {
      uint32_t len = (uint32_t)(p[pos] | p[pos + 1] << 8 | p[pos + 2] << 16 |
                                (uint32_t)p[pos + 3] << 24);
      pos += 4;
      used += (size_t)snprintf(out + used, room - used, "t:\"");
      for (k = 0; k < (int)len && used + 8 < room; k++) {
        if (p[pos + (size_t)k] == 0) used += (size_t)snprintf(out + used, room - used, "\\0");
        else out[used++] = (char)p[pos + (size_t)k];
      }
      pos += len;
      out[used++] = '"';
    }
    else return snprintf(out, room, "bad tag %d", tag);
  }
  if (used + 2 < room) out[used++] = ']';
  out[used] = '\0';
  return (int)used;
}


const char *qb_params (const loam_rendered *rs, int i) {
  static char out[8192];
  size_t used = 0;
  int n, j;
  const loam_value *v = loam_rendered_params(rs, i, &n);
  out[0] = '\0';
  for (j = 0; j < n && used < sizeof out - 64; j++) {
    const char *sep = j > 0 ? ", " : "";
    size_t room = sizeof out - used;
    int w;
    switch (v[j].type) {
      case LOAM_NULL: w = snprintf(out + used, room, "%sNULL", sep); break;
      case LOAM_BOOL:
        w = snprintf(out + used, room, "%s%s", sep, v[j].u.b ? "true" : "false");
        break;
      case LOAM_INT: w = snprintf(out + used, room, "%s%" PRId64, sep, v[j].u.i); break;
      case LOAM_DOUBLE: w = snprintf(out + used, room, "%s%.17g", sep, v[j].u.d); break;
      case LOAM_TEXT:
        w = snprintf(out + used, room, "%s'%.*s'", sep, (int)v[j].u.s.len, v[j].u.s.ptr);
        break;
      default:
        w = snprintf(out + used, room, "%s", sep);
        if (w >= 0) w += keys_text(out + used + w, room - (size_t)w,
                                   (const unsigned char *)v[j].u.s.ptr, v[j].u.s.len);
        break;
    }
    if (w < 0) break;
    used += (size_t)w < room ? (size_t)w : room - 1;
  }
  return out;
}


int qb_expect (const char *file, int line, loam_qb *qb, const loam_qstmt *st, loam_backend d,
               const char *sql, const char *params) {
  loam_error e = LOAM_ERROR_INIT;
  loam_rendered *rs = NULL;
  int ok = 0;
  if (loam_qb_render(qb, st, d, 0, &rs, &e) != LOAM_OK)
    t_fail(file, line, "render failed: %s: %s", loam_errcode_name(e.code), e.message);
  else if (loam_rendered_count(rs) != 1)
    t_fail(file, line, "%d statements, expected 1", loam_rendered_count(rs));
  else if (strcmp(loam_rendered_sql(rs, 0, NULL), sql) != 0)
    t_fail(file, line, "%s SQL is\n      %s\n    expected\n      %s",
           d == S ? "sqlite" : "postgres", loam_rendered_sql(rs, 0, NULL), sql);
  else if (strcmp(qb_params(rs, 0), params) != 0)
    t_fail(file, line, "params are [%s], expected [%s]", qb_params(rs, 0), params);
  else ok = 1;
  loam_rendered_free(rs);
  loam_error_clear(&e);
  return ok;
}


int qb_expect_err (const char *file, int line, loam_qb *qb, const loam_qstmt *st,
                   loam_backend d, loam_errcode code, const char *msg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_rendered *rs = NULL;
  int ok = 0;
  if (loam_qb_render(qb, st, d, 0, &rs, &e) == LOAM_OK)
    t_fail(file, line, "render succeeded: %s", loam_rendered_sql(rs, 0, NULL));
  else if (rs != NULL)
    t_fail(file, line, "a failed render left a result");
  else if (e.code != code)
    t_fail(file, line, "error %s (%s), expected %s", loam_errcode_name(e.code), e.message,
           loam_errcode_name(code));
  else if (e.message == NULL || strstr(e.message, msg) == NULL)
    t_fail(file, line, "message \"%s\" lacks \"%s\"", e.message ? e.message : "", msg);
  else ok = 1;
  loam_rendered_free(rs);
  loam_error_clear(&e);
  return ok;
}

/* }====================================================================== */


/* Short names for the constructors these tests use most. */
#define col(name)      loam_qb_col(qb, NULL, name)
#define tcol(t, name)  loam_qb_col(qb, t, name)
#define ival(i)        loam_qb_val(qb, loam_int(i))
#define tval(s)        loam_qb_val(qb, loam_text(s, strlen(s)))
#define eq(l, r)       loam_qb_op(qb, "=", l, r)


/* {======================================================================
** SELECT
** ======================================================================= */

TEST(qb_select_star) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "orders", NULL);
  EXPECT(qb, st, S, "SELECT * FROM \"orders\"", "");
  EXPECT(qb, st, P, "SELECT * FROM \"orders\"", "");
  loam_qb_free(qb);
}


TEST(qb_select_every_clause) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "orders", "o");
  loam_expr *both[2];
  loam_qb_distinct(st, 1);
  loam_qb_column(st, tcol("o", "id"));
  loam_qb_column(st, loam_qb_alias(qb, loam_qb_agg(qb, "count", NULL, 0), "n"));
  loam_qb_column(st, loam_qb_star(qb, "c"));
  loam_qb_join(st, LOAM_JOIN_INNER, "customers", "c",
               eq(tcol("o", "customer_id"), tcol("c", "id")));
  loam_qb_join(st, LOAM_JOIN_LEFT, "items", NULL, eq(tcol("items", "order_id"), tcol("o", "id")));
  both[0] = eq(tcol("o", "status"), tval("paid"));
  both[1] = loam_qb_op(qb, ">", tcol("o", "total"), ival(100));
  loam_qb_where(st, loam_qb_and(qb, both, 2));
  loam_qb_where(st, loam_qb_is_null(qb, tcol("c", "deleted_at"), 0));
  loam_qb_group(st, tcol("o", "id"));
  loam_qb_group(st, tcol("c", "id"));
  loam_qb_having(st, loam_qb_op(qb, ">=", loam_qb_agg(qb, "sum", tcol("items", "qty"), 0),
                                ival(2)));
  loam_qb_order(st, tcol("o", "created_at"), LOAM_DESC | LOAM_NULLS_LAST);
  loam_qb_order(st, tcol("o", "id"), 0);
  loam_qb_order(st, col("x"), LOAM_NULLS_FIRST);
  loam_qb_limit(st, 20);
  loam_qb_offset(st, 40);
  EXPECT(qb, st, S,
         "SELECT DISTINCT \"o\".\"id\", count(*) AS \"n\", \"c\".* FROM \"orders\" AS \"o\" "
         "INNER JOIN \"customers\" AS \"c\" ON (\"o\".\"customer_id\" = \"c\".\"id\") "
         "LEFT JOIN \"items\" ON (\"items\".\"order_id\" = \"o\".\"id\") "
         "WHERE (((\"o\".\"status\" = ?) AND (\"o\".\"total\" > ?)) "
         "AND (\"c\".\"deleted_at\" IS NULL)) "
         "GROUP BY \"o\".\"id\", \"c\".\"id\" HAVING (sum(\"items\".\"qty\") >= ?) "
         "ORDER BY \"o\".\"created_at\" DESC NULLS LAST, \"o\".\"id\" ASC, \"x\" ASC NULLS FIRST "
         "LIMIT ? OFFSET ?",
         "'paid', 100, 2, 20, 40");
  EXPECT(qb, st, P,
         "SELECT DISTINCT \"o\".\"id\", count(*) AS \"n\", \"c\".* FROM \"orders\" AS \"o\" "
         "INNER JOIN \"customers\" AS \"c\" ON (\"o\".\"customer_id\" = \"c\".\"id\") "
         "LEFT JOIN \"items\" ON (\"items\".\"order_id\" = \"o\".\"id\") "
         "WHERE (((\"o\".\"status\" = $1) AND (\"o\".\"total\" > $2)) "
         "AND (\"c\".\"deleted_at\" IS NULL)) "
         "GROUP BY \"o\".\"id\", \"c\".\"id\" HAVING (sum(\"items\".\"qty\") >= $3) "
         "ORDER BY \"o\".\"created_at\" DESC NULLS LAST, \"o\".\"id\" ASC, \"x\" ASC NULLS FIRST "
         "LIMIT $4 OFFSET $5",
         "'paid', 100, 2, 20, 40");
  loam_qb_free(qb);
}


TEST(qb_select_without_from) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, NULL, NULL);
  loam_value one = loam_int(1);
  loam_qb_column(st, loam_qb_alias(qb, loam_qb_raw(qb, "? + 1", &one, 1), "two"));
  EXPECT(qb, st, S, "SELECT ? + 1 AS \"two\"", "1");
  EXPECT(qb, st, P, "SELECT $1 + 1 AS \"two\"", "1");
  loam_qb_free(qb);
}


TEST(qb_offset_without_limit) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  loam_qb_offset(st, 5);
  EXPECT(qb, st, S, "SELECT * FROM \"t\" LIMIT -1 OFFSET ?", "5");
  EXPECT(qb, st, P, "SELECT * FROM \"t\" OFFSET $1", "5");
  loam_qb_limit(st, 0);
  EXPECT(qb, st, S, "SELECT * FROM \"t\" LIMIT ? OFFSET ?", "0, 5");
  loam_qb_free(qb);
}


TEST(qb_lock) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "jobs", NULL);
  loam_qb_where(st, eq(col("state"), tval("queued")));
  loam_qb_limit(st, 1);
  loam_qb_lock(st, LOAM_FOR_UPDATE | LOAM_SKIP_LOCKED);
  EXPECT(qb, st, P, "SELECT * FROM \"jobs\" WHERE (\"state\" = $1) LIMIT $2 FOR UPDATE SKIP LOCKED",
         "'queued', 1");
  EXPECT_ERR(qb, st, S, LOAM_E_MISUSE, "FOR UPDATE/FOR SHARE is PostgreSQL only");
  loam_qb_lock(st, LOAM_FOR_SHARE | LOAM_NOWAIT);
  EXPECT(qb, st, P, "SELECT * FROM \"jobs\" WHERE (\"state\" = $1) LIMIT $2 FOR SHARE NOWAIT",
         "'queued', 1");
  loam_qb_lock(st, 0);
  EXPECT(qb, st, S, "SELECT * FROM \"jobs\" WHERE (\"state\" = ?) LIMIT ?", "'queued', 1");
  loam_qb_lock(st, LOAM_SKIP_LOCKED);
  EXPECT_ERR(qb, st, P, LOAM_E_MISUSE, "lock: bad flags 4");
  loam_qb_free(qb);
}


TEST(qb_explain) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL), *sub, *outer;
  loam_qb_where(st, eq(col("id"), ival(7)));
  loam_qb_explain(st, 1);
  EXPECT(qb, st, S, "EXPLAIN QUERY PLAN SELECT * FROM \"t\" WHERE (\"id\" = ?)", "7");
  EXPECT(qb, st, P, "EXPLAIN SELECT * FROM \"t\" WHERE (\"id\" = $1)", "7");
  loam_qb_explain(st, 0);
  EXPECT(qb, st, S, "SELECT * FROM \"t\" WHERE (\"id\" = ?)", "7");
  /* the plan is the outermost statement's: a subquery cannot ask for one */
  sub = loam_qb_select(qb, "u", NULL);
  loam_qb_column(sub, col("id"));
  loam_qb_explain(sub, 1);
  loam_qb_where(st, loam_qb_in_query(qb, col("id"), sub, 0));
  EXPECT_ERR(qb, st, S, LOAM_E_MISUSE, "EXPLAIN belongs to the outermost statement");
  EXPECT_ERR(qb, st, P, LOAM_E_MISUSE, "EXPLAIN belongs to the outermost statement");
  outer = loam_qb_select_from(qb, sub, "s");
  EXPECT_ERR(qb, outer, P, LOAM_E_MISUSE, "EXPLAIN belongs to the outermost statement");
  loam_qb_free(qb);
}


TEST(qb_explain_is_for_select) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_delete(qb, "t");
  loam_qb_explain(st, 1);
  EXPECT_ERR(qb, st, S, LOAM_E_MISUSE, "EXPLAIN does not apply to DELETE");
  loam_qb_free(qb);
}

/* }====================================================================== */


/* {======================================================================
** Expressions
** ======================================================================= */

TEST(qb_operators) {
  static const char *const ops[] = { "=", "<>", "<", "<=", ">", ">=", "LIKE", "ILIKE",
                                     "NOT LIKE", "NOT ILIKE" };
  static const char *const sqlite_ops[] = { "=", "<>", "<", "<=", ">", ">=", "LIKE", "LIKE",
                                            "NOT LIKE", "NOT LIKE" };
  size_t i;
  for (i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    loam_qb *qb = loam_qb_new();
    loam_qstmt *st = loam_qb_select(qb, "t", NULL);
    char want[128];
    loam_qb_where(st, loam_qb_op(qb, ops[i], col("a"), tval("x")));
    snprintf(want, sizeof want, "SELECT * FROM \"t\" WHERE (\"a\" %s ?)", sqlite_ops[i]);
    EXPECT(qb, st, S, want, "'x'");
    snprintf(want, sizeof want, "SELECT * FROM \"t\" WHERE (\"a\" %s $1)", ops[i]);
    EXPECT(qb, st, P, want, "'x'");
    loam_qb_free(qb);
  }
}


TEST(qb_unknown_operator) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  CHECK(loam_qb_op(qb, "LIKEE", col("a"), ival(1)) == NULL);
  loam_qb_where(st, loam_qb_op(qb, "!=", col("a"), ival(1)));  /* later errors are dropped */
  EXPECT_ERR(qb, st, S, LOAM_E_MISUSE, "unknown operator 'LIKEE'");
  EXPECT_ERR(qb, st, P, LOAM_E_MISUSE, "unknown operator 'LIKEE'");
  loam_qb_free(qb);
}


TEST(qb_and_or_not) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  loam_expr *two[2], *one[1];
  two[0] = eq(col("a"), ival(1));
  two[1] = eq(col("b"), ival(2));
  one[0] = loam_qb_or(qb, two, 2);
  loam_qb_where(st, loam_qb_not(qb, loam_qb_and(qb, one, 1)));
  EXPECT(qb, st, S, "SELECT * FROM \"t\" WHERE (NOT ((\"a\" = ?) OR (\"b\" = ?)))", "1, 2");
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE (NOT ((\"a\" = $1) OR (\"b\" = $2)))", "1, 2");
  st = loam_qb_select(qb, "t", NULL);
  loam_qb_where(st, loam_qb_and(qb, NULL, 0));
  EXPECT(qb, st, S, "SELECT * FROM \"t\" WHERE 1 = 1", "");
  st = loam_qb_select(qb, "t", NULL);
  loam_qb_where(st, loam_qb_or(qb, NULL, 0));
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE 1 = 0", "");
  loam_qb_free(qb);
}


TEST(qb_null_and_between) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  loam_expr *four[4];
  four[0] = loam_qb_is_null(qb, col("a"), 0);
  four[1] = loam_qb_is_null(qb, col("b"), 1);
  four[2] = loam_qb_between(qb, col("c"), ival(1), ival(9), 0);
  four[3] = loam_qb_between(qb, col("d"), loam_qb_val(qb, loam_double(0.5)), col("e"), 1);
  loam_qb_where(st, loam_qb_and(qb, four, 4));
  EXPECT(qb, st, S, "SELECT * FROM \"t\" WHERE ((\"a\" IS NULL) AND (\"b\" IS NOT NULL) AND "
         "(\"c\" BETWEEN ? AND ?) AND (\"d\" NOT BETWEEN ? AND \"e\"))", "1, 9, 0.5");
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE ((\"a\" IS NULL) AND (\"b\" IS NOT NULL) AND "
         "(\"c\" BETWEEN $1 AND $2) AND (\"d\" NOT BETWEEN $3 AND \"e\"))", "1, 9, 0.5");
  loam_qb_free(qb);
}


TEST(qb_values_of_every_type) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, NULL, NULL);
  char bytes[3] = { 'a', '\0', 'b' };
  char text[] = "mutable";
  loam_qb_column(st, loam_qb_val(qb, loam_null()));
  loam_qb_column(st, loam_qb_val(qb, loam_bool(1)));
  loam_qb_column(st, loam_qb_val(qb, loam_int(INT64_MIN)));
  loam_qb_column(st, loam_qb_val(qb, loam_double(-0.25)));
  loam_qb_column(st, loam_qb_val(qb, loam_text(text, strlen(text))));
  loam_qb_column(st, loam_qb_val(qb, loam_blob(bytes, 3)));
  strcpy(text, "changed");  /* the builder copied the text */
  EXPECT(qb, st, S, "SELECT ?, ?, ?, ?, ?, ?",
         "NULL, true, -9223372036854775808, -0.25, 'mutable', blob:3");
  EXPECT(qb, st, P, "SELECT $1, $2, $3, $4, $5, $6",
         "NULL, true, -9223372036854775808, -0.25, 'mutable', blob:3");
  loam_qb_free(qb);
}


TEST(qb_nan_value) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  loam_qb_where(st, eq(col("x"), loam_qb_val(qb, loam_double(NAN))));
  EXPECT_ERR(qb, st, S, LOAM_E_DATA_ERROR, "parameter 1: SQLite cannot store NaN");
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE (\"x\" = $1)", "nan");
  st = loam_qb_select(qb, "t", NULL);
  loam_qb_where(st, eq(col("x"), loam_qb_val(qb, loam_double(-INFINITY))));
  EXPECT(qb, st, S, "SELECT * FROM \"t\" WHERE (\"x\" = ?)", "-inf");
  loam_qb_free(qb);
}


TEST(qb_aggregates) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  loam_qb_column(st, loam_qb_agg(qb, "count", NULL, 0));
  loam_qb_column(st, loam_qb_agg(qb, "count", col("a"), 0));
  loam_qb_column(st, loam_qb_agg(qb, "count", col("a"), 1));
  loam_qb_column(st, loam_qb_agg(qb, "sum", col("b"), 0));
  loam_qb_column(st, loam_qb_agg(qb, "avg", col("b"), 0));
  loam_qb_column(st, loam_qb_alias(qb, loam_qb_agg(qb, "min", col("c"), 0), "lo"));
  loam_qb_column(st, loam_qb_agg(qb, "max", col("c"), 1));
  EXPECT(qb, st, S, "SELECT count(*), count(\"a\"), count(DISTINCT \"a\"), sum(\"b\"), avg(\"b\"), "
         "min(\"c\") AS \"lo\", max(DISTINCT \"c\") FROM \"t\"", "");
  loam_qb_free(qb);
  qb = loam_qb_new();
  st = loam_qb_select(qb, "t", NULL);
  loam_qb_column(st, loam_qb_agg(qb, "sum", NULL, 0));
  EXPECT_ERR(qb, st, P, LOAM_E_MISUSE, "aggregate sum(*) needs an expression");
  loam_qb_free(qb);
  qb = loam_qb_new();
  st = loam_qb_select(qb, "t", NULL);
  loam_qb_column(st, loam_qb_agg(qb, "median", col("a"), 0));
  EXPECT_ERR(qb, st, P, LOAM_E_MISUSE, "unknown aggregate function 'median'");
  loam_qb_free(qb);
}


TEST(qb_alias_outside_projection) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  loam_qb_where(st, eq(loam_qb_alias(qb, col("a"), "x"), ival(1)));
  EXPECT_ERR(qb, st, S, LOAM_E_MISUSE, "alias \"x\": AS belongs in result columns and RETURNING");
  loam_qb_free(qb);
}


TEST(qb_in_query) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "customers", NULL);
  loam_qstmt *sub = loam_qb_select(qb, "orders", NULL);
  loam_qb_column(sub, col("customer_id"));
  loam_qb_where(sub, loam_qb_op(qb, ">", col("total"), ival(100)));
  loam_qb_where(st, eq(col("tier"), tval("pro")));
  loam_qb_where(st, loam_qb_in_query(qb, col("id"), sub, 0));
  loam_qb_where(st, loam_qb_in_query(qb, col("id"), sub, 1));
  EXPECT(qb, st, S, "SELECT * FROM \"customers\" WHERE (((\"tier\" = ?) AND (\"id\" IN (SELECT "
         "\"customer_id\" FROM \"orders\" WHERE (\"total\" > ?)))) AND (\"id\" NOT IN (SELECT "
         "\"customer_id\" FROM \"orders\" WHERE (\"total\" > ?))))", "'pro', 100, 100");
  EXPECT(qb, st, P, "SELECT * FROM \"customers\" WHERE (((\"tier\" = $1) AND (\"id\" IN (SELECT "
         "\"customer_id\" FROM \"orders\" WHERE (\"total\" > $2)))) AND (\"id\" NOT IN (SELECT "
         "\"customer_id\" FROM \"orders\" WHERE (\"total\" > $3))))", "'pro', 100, 100");
  loam_qb_free(qb);
}


TEST(qb_in_query_cycle) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  loam_qb_where(st, loam_qb_in_query(qb, col("id"), st, 0));
  EXPECT_ERR(qb, st, S, LOAM_E_MISUSE, "query nests deeper than 200 levels");
  loam_qb_free(qb);
}


TEST(qb_deep_nesting) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  loam_expr *e = eq(col("a"), ival(1));
  int i;
  loam_rendered *rs = NULL;
  loam_error err = LOAM_ERROR_INIT;
  for (i = 0; i < 150; i++) e = loam_qb_not(qb, e);
  loam_qb_where(st, e);
  CHECK_OK(loam_qb_render(qb, st, S, 0, &rs, &err), &err);
  CHECK_HAS(loam_rendered_sql(rs, 0, NULL), "WHERE (NOT (NOT (NOT");
  loam_rendered_free(rs);
  for (i = 0; i < 100; i++) e = loam_qb_not(qb, e);
  st = loam_qb_select(qb, "t", NULL);
  loam_qb_where(st, e);
  EXPECT_ERR(qb, st, P, LOAM_E_MISUSE, "query nests deeper than 200 levels");
  loam_qb_free(qb);
}


TEST(qb_excluded) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, NULL, NULL);
  loam_qb_column(st, loam_qb_excluded(qb, "name"));
  EXPECT(qb, st, S, "SELECT excluded.\"name\"", "");
  EXPECT(qb, st, P, "SELECT EXCLUDED.\"name\"", "");
  loam_qb_free(qb);
}

/* }====================================================================== */


/* {======================================================================
** Raw fragments
** ======================================================================= */

TEST(qb_raw_renumbered) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  loam_value two[2];
  two[0] = loam_text("A", 1);
  two[1] = loam_null();
  loam_qb_column(st, loam_qb_raw(qb, "*", NULL, 0));
  loam_qb_where(st, eq(col("a"), ival(7)));
  loam_qb_where(st, loam_qb_raw(qb, "lower(?) = ? OR b", two, 2));
  loam_qb_order(st, loam_qb_raw(qb, "c COLLATE NOCASE", NULL, 0), LOAM_DESC);
  EXPECT(qb, st, S, "SELECT * FROM \"t\" WHERE ((\"a\" = ?) AND (lower(?) = ? OR b)) "
         "ORDER BY c COLLATE NOCASE DESC", "7, 'A', NULL");
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE ((\"a\" = $1) AND (lower($2) = $3 OR b)) "
         "ORDER BY c COLLATE NOCASE DESC", "7, 'A', NULL");
  loam_qb_free(qb);
}


TEST(qb_raw_literal_question_mark) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  loam_value k = loam_text("k", 1);
  loam_qb_where(st, loam_qb_raw(qb, "doc ?" "? ? AND 'it''s' <> ''", &k, 1));
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE (doc ?" "? $1 AND 'it''s' <> '')", "'k'");
  EXPECT_ERR(qb, st, S, LOAM_E_MISUSE, "has no meaning on SQLite");
  loam_qb_free(qb);
}


/* Each bad fragment, in a fresh builder: the message names the problem. */
TEST(qb_raw_refused) {
  static const struct { const char *sql; int n; const char *msg; } cases[] = {
    { "a = ?1", 1, "write placeholders as '?', not '?1'" },
    { "a = $1", 1, "write placeholders as '?', not '$n'" },
    { "a = '?' AND b = ?", 1, "a '?' inside a string literal, quoted name or comment" },
    { "a = ? -- why?", 1, "a '?' inside a string literal" },
    { "a = ?", 2, "raw SQL fragment takes 1 parameter, 2 given" },
    { "a = ?; DROP TABLE t", 1, "raw SQL fragment: SQL holds more than one statement" },
  };
  size_t i;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    loam_qb *qb = loam_qb_new();
    loam_qstmt *st = loam_qb_select(qb, "t", NULL);
    loam_value v[2];
    v[0] = v[1] = loam_int(1);
    CHECK(loam_qb_raw(qb, cases[i].sql, v, cases[i].n) == NULL);
    loam_qb_where(st, NULL);
    EXPECT_ERR(qb, st, S, LOAM_E_MISUSE, cases[i].msg);
    loam_qb_free(qb);
  }
}

/* }====================================================================== */


/* {======================================================================
** Identifiers and injection
** ======================================================================= */

TEST(qb_identifiers_quoted) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "we\"ird", "x\"; DROP TABLE t; --");
  loam_qb_column(st, loam_qb_col(qb, "a\"b", "select"));
  EXPECT(qb, st, S, "SELECT \"a\"\"b\".\"select\" FROM \"we\"\"ird\" AS "
         "\"x\"\"; DROP TABLE t; --\"", "");
  loam_qb_free(qb);
}


TEST(qb_value_never_in_text) {
  static const char evil[] = "'; DROP TABLE x; --";
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "x", NULL);
  loam_value list[2];
  loam_rendered *rs = NULL;
  loam_error e = LOAM_ERROR_INIT;
  int d;
  list[0] = loam_text(evil, strlen(evil));
  list[1] = loam_text("\"", 1);
  loam_qb_where(st, eq(col("name"), tval(evil)));
  loam_qb_where(st, loam_qb_in_list(qb, col("name"), list, 2, 0));
  for (d = S; d <= P; d++) {
    CHECK_OK(loam_qb_render(qb, st, (loam_backend)d, 0, &rs, &e), &e);
    CHECK(strstr(loam_rendered_sql(rs, 0, NULL), "DROP") == NULL);
    CHECK_HAS(qb_params(rs, 0), evil);
    loam_rendered_free(rs);
  }
  loam_qb_free(qb);
}


TEST(qb_invalid_identifiers) {
  static const char long64[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  CHECK(loam_qb_col(qb, NULL, "") == NULL);
  EXPECT_ERR(qb, st, S, LOAM_E_MISUSE, "invalid identifier: empty name");
  loam_qb_free(qb);
  qb = loam_qb_new();
  CHECK(loam_qb_select(qb, long64, NULL) == NULL);
  EXPECT_ERR(qb, NULL, P, LOAM_E_MISUSE, "longer than 63 bytes");
  loam_qb_free(qb);
  qb = loam_qb_new();
  CHECK(loam_qb_insert(qb, NULL) == NULL);
  EXPECT_ERR(qb, NULL, P, LOAM_E_MISUSE, "invalid identifier: empty name");
  loam_qb_free(qb);
  qb = loam_qb_new();
  st = loam_qb_select(qb, "t", NULL);
  loam_qb_column(st, NULL);
  EXPECT_ERR(qb, st, P, LOAM_E_MISUSE, "a result column: an expression is missing (NULL)");
  loam_qb_free(qb);
}


TEST(qb_misuse_of_statements) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_insert(qb, "t");
  loam_qb_join(st, LOAM_JOIN_INNER, "u", NULL, eq(col("a"), col("b")));
  EXPECT_ERR(qb, st, S, LOAM_E_MISUSE, "JOIN ... ON does not apply to INSERT");
  loam_qb_free(qb);
  qb = loam_qb_new();
  st = loam_qb_select(qb, "t", NULL);
  loam_qb_limit(st, -1);
  EXPECT_ERR(qb, st, S, LOAM_E_MISUSE, "LIMIT must not be negative");
  loam_qb_free(qb);
  qb = loam_qb_new();
  EXPECT_ERR(qb, NULL, S, LOAM_E_MISUSE, "render: no statement of this builder");
  loam_qb_free(qb);
  EXPECT_ERR(NULL, NULL, S, LOAM_E_NOMEM, "out of memory");
}

/* }====================================================================== */


/* {======================================================================
** IN lists
** ======================================================================= */

/* Renders "x IN list" (or NOT IN) for 'd' into 'sql' and 'param' (static buffers). */
static int in_list (loam_backend d, const loam_value *v, int n, int negate, loam_errcode *code,
                    const char **sql, const char **param) {
  static char sbuf[256], pbuf[4096];
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  loam_rendered *rs = NULL;
  loam_error e = LOAM_ERROR_INIT;
  int rc;
  loam_qb_where(st, loam_qb_in_list(qb, loam_qb_col(qb, NULL, "x"), v, n, negate));
  rc = loam_qb_render(qb, st, d, 0, &rs, &e);
  *code = e.code;
  if (rc == LOAM_OK) {
    snprintf(sbuf, sizeof sbuf, "%s", loam_rendered_sql(rs, 0, NULL));
    snprintf(pbuf, sizeof pbuf, "%s", qb_params(rs, 0));
  }
  else snprintf(sbuf, sizeof sbuf, "%s", e.message);
  *sql = sbuf;
  *param = pbuf;
  loam_rendered_free(rs);
  loam_error_clear(&e);
  loam_qb_free(qb);
  return rc;
}

#define IN_OK(d, v, n, neg, want_sql, want_param) do { \
    loam_errcode c_; const char *s_, *p_; \
    CHECK_INT(in_list(d, v, n, neg, &c_, &s_, &p_), LOAM_OK); \
    CHECK_STR(s_, want_sql); CHECK_STR(p_, want_param); } while (0)

#define IN_ERR(d, v, n, want_code, want_msg) do { \
    loam_errcode c_; const char *s_, *p_; \
    CHECK_INT(in_list(d, v, n, 0, &c_, &s_, &p_), LOAM_ERROR); \
    CHECK_INT(c_, want_code); CHECK_HAS(s_, want_msg); } while (0)


TEST(qb_in_list_integers) {
  loam_value v[3];
  v[0] = loam_int(1); v[1] = loam_int(-2); v[2] = loam_int(INT64_MAX);
  IN_OK(S, v, 3, 0, "SELECT * FROM \"t\" WHERE (\"x\" IN (SELECT k1 FROM loam_keys(?)))",
        "keys1[i:1,i:-2,i:9223372036854775807]");
  IN_OK(S, v, 3, 1, "SELECT * FROM \"t\" WHERE (\"x\" NOT IN (SELECT k1 FROM loam_keys(?)))",
        "keys1[i:1,i:-2,i:9223372036854775807]");
  v[2] = loam_int(INT64_MIN);
  IN_OK(S, v, 3, 0, "SELECT * FROM \"t\" WHERE (\"x\" IN (SELECT k1 FROM loam_keys(?)))",
        "keys1[i:1,i:-2,i:-9223372036854775808]");
  v[2] = loam_int(INT64_MAX);
  IN_OK(P, v, 3, 0, "SELECT * FROM \"t\" WHERE (\"x\" IN (SELECT * FROM unnest($1::int8[])))",
        "'{1,-2,9223372036854775807}'");
  IN_OK(P, v, 3, 1, "SELECT * FROM \"t\" WHERE (\"x\" NOT IN (SELECT * FROM unnest($1::int8[])))",
        "'{1,-2,9223372036854775807}'");
}


TEST(qb_in_list_empty) {
  IN_OK(S, NULL, 0, 0, "SELECT * FROM \"t\" WHERE (1 = 0)", "");
  IN_OK(S, NULL, 0, 1, "SELECT * FROM \"t\" WHERE (1 = 1)", "");
  IN_OK(P, NULL, 0, 0, "SELECT * FROM \"t\" WHERE (1 = 0)", "");
  IN_OK(P, NULL, 0, 1, "SELECT * FROM \"t\" WHERE (1 = 1)", "");
}


TEST(qb_in_list_doubles_and_mixed) {
  /* Mixed with integers, floats go as numeric on PostgreSQL, which holds both exactly. */
  loam_value v[3];
  v[0] = loam_int(1); v[1] = loam_double(0.1); v[2] = loam_double(-1e300);
  IN_OK(S, v, 3, 0, "SELECT * FROM \"t\" WHERE (\"x\" IN (SELECT k1 FROM loam_keys(?)))",
        "keys1[i:1,f:0.10000000000000001,f:-1.0000000000000001e+300]");
  IN_OK(P, v, 3, 0, "SELECT * FROM \"t\" WHERE (\"x\" IN (SELECT * FROM unnest($1::numeric[])))",
        "'{1,0.10000000000000001,-1.0000000000000001e+300}'");
  v[1] = loam_double(NAN); v[2] = loam_double(INFINITY);
  IN_OK(P, v, 3, 0, "SELECT * FROM \"t\" WHERE (\"x\" IN (SELECT * FROM unnest($1::numeric[])))",
        "'{1,NaN,Infinity}'");
  IN_ERR(S, v, 3, LOAM_E_DATA_ERROR, "IN list: value 2 is NaN, which SQLite cannot store");
  v[1] = loam_double(-INFINITY);
  IN_OK(S, v, 3, 0, "SELECT * FROM \"t\" WHERE (\"x\" IN (SELECT k1 FROM loam_keys(?)))",
        "keys1[i:1,f:-inf,f:inf]");
}


TEST(qb_in_list_booleans) {
  loam_value v[2];
  v[0] = loam_bool(1); v[1] = loam_bool(0);
  IN_OK(S, v, 2, 0, "SELECT * FROM \"t\" WHERE (\"x\" IN (SELECT k1 FROM loam_keys(?)))",
        "keys1[i:1,i:0]");
  IN_OK(P, v, 2, 0, "SELECT * FROM \"t\" WHERE (\"x\" IN (SELECT * FROM unnest($1::bool[])))",
        "'{t,f}'");
}


TEST(qb_in_list_text_escaping) {
  static const char ctl[] = "tab\tnl\ncr\rbs\bff\fone\001us\037";
  loam_value v[6];
  v[0] = loam_text("a\"b", 3);
  v[1] = loam_text("c\\d", 3);
  v[2] = loam_text("", 0);
  v[3] = loam_text("NULL", 4);
  v[4] = loam_text("{x, y}", 6);
  v[5] = loam_text("h\xc3\xa9", 3);
  IN_OK(S, v, 6, 0, "SELECT * FROM \"t\" WHERE (\"x\" IN (SELECT k1 FROM loam_keys(?)))",
        "keys1[t:\"a\"b\",t:\"c\\d\",t:\"\",t:\"NULL\",t:\"{x, y}\",t:\"h\xc3\xa9\"]");
  IN_OK(P, v, 6, 0, "SELECT * FROM \"t\" WHERE (\"x\" IN (SELECT * FROM unnest($1::text[])))",
        "'{\"a\\\"b\",\"c\\\\d\",\"\",\"NULL\",\"{x, y}\",\"h\xc3\xa9\"}'");
  v[0] = loam_text(ctl, sizeof ctl - 1);
  v[1] = loam_text("nul\0byte", 8);
  IN_OK(S, v, 2, 0, "SELECT * FROM \"t\" WHERE (\"x\" IN (SELECT k1 FROM loam_keys(?)))",
        "keys1[t:\"tab\tnl\ncr\rbs\bff\fone\001us\037\",t:\"nul\\0byte\"]");
  IN_ERR(P, v, 2, LOAM_E_DATA_ERROR, "IN list: value 2 is text holding a NUL byte");
}


/* Text compared with a date, timestamp or numeric column travels as that type's array. */
TEST(qb_in_list_coltype) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  loam_value v[1];
  v[0] = loam_text("2021-01-01 00:00:00+00", 22);
  loam_qb_where(st, loam_qb_in_coltype(qb, loam_qb_in_list(qb, col("x"), v, 1, 0),
                                       LOAM_COL_TIMESTAMP));
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE (\"x\" IN (SELECT * FROM "
         "unnest($1::timestamptz[])))", "'{\"2021-01-01 00:00:00+00\"}'");
  EXPECT(qb, st, S, "SELECT * FROM \"t\" WHERE (\"x\" IN (SELECT k1 FROM loam_keys(?)))",
         "keys1[t:\"2021-01-01 00:00:00+00\"]");
  st = loam_qb_select(qb, "t", NULL);
  loam_qb_where(st, loam_qb_in_coltype(qb, loam_qb_in_list(qb, col("x"), v, 1, 0),
                                       LOAM_COL_DATE));
  EXPECT(qb, st, P, "SELECT * FROM \"t\" WHERE (\"x\" IN (SELECT * FROM unnest($1::date[])))",
         "'{\"2021-01-01 00:00:00+00\"}'");
  loam_qb_free(qb);
  qb = loam_qb_new();
  st = loam_qb_select(qb, "t", NULL);
  loam_qb_where(st, loam_qb_in_coltype(qb, col("x"), LOAM_COL_DATE));
  EXPECT_ERR(qb, st, P, LOAM_E_MISUSE, "IN list column type: needs an IN list");
  loam_qb_free(qb);
}


TEST(qb_in_list_refused) {
  loam_value v[2];
  v[0] = loam_int(1); v[1] = loam_null();
  IN_ERR(S, v, 2, LOAM_E_MISUSE, "IN list: value 2 is NULL, which never matches IN");
  v[1] = loam_text("1", 1);
  IN_ERR(P, v, 2, LOAM_E_MISUSE, "value 2 is of type text after values of type integer");
  v[1] = loam_bool(1);
  IN_ERR(P, v, 2, LOAM_E_MISUSE, "value 2 is of type boolean after values of type integer");
  v[0] = loam_blob("x", 1);
  IN_ERR(S, v, 1, LOAM_E_MISUSE, "value 1 is of type blob, which a list cannot hold");
}


/* A list of 100,000 values is one parameter and the text of a list of three. */
TEST(qb_in_list_100k) {
  enum { N = 100000 };
  loam_value *v = malloc(N * sizeof *v);
  loam_errcode c;
  const char *sql, *param;
  char small[256];
  int i, d;
  CHECK(v != NULL);
  for (i = 0; i < N; i++) v[i] = loam_int(i);
  for (d = S; d <= P; d++) {
    loam_qb *qb = loam_qb_new();
    loam_qstmt *st = loam_qb_select(qb, "t", NULL);
    loam_rendered *rs = NULL;
    loam_error e = LOAM_ERROR_INIT;
    int np;
    const loam_value *p;
    CHECK_INT(in_list((loam_backend)d, v, 3, 0, &c, &sql, &param), LOAM_OK);
    snprintf(small, sizeof small, "%s", sql);
    loam_qb_where(st, loam_qb_in_list(qb, col("x"), v, N, 0));
    CHECK_OK(loam_qb_render(qb, st, (loam_backend)d, 0, &rs, &e), &e);
    CHECK_STR(loam_rendered_sql(rs, 0, NULL), small);
    p = loam_rendered_params(rs, 0, &np);
    CHECK_INT(np, 1);
    if (d == S) {
      /* The header, then 9 bytes per integer. */
      CHECK_INT(p[0].type, LOAM_BLOB);
      CHECK(p[0].u.s.len == 4 + 9 * (size_t)N);
      CHECK(memcmp(p[0].u.s.ptr, "lk\1\1i\0\0\0\0\0\0\0\0i\1", 15) == 0);
      CHECK(memcmp(p[0].u.s.ptr + p[0].u.s.len - 9, "i\x9f\x86\1\0\0\0\0\0", 9) == 0);
    }
    else {
      CHECK_INT(p[0].type, LOAM_TEXT);
      CHECK(strncmp(p[0].u.s.ptr + 1, "0,1,2,3,", 8) == 0);
      CHECK(strncmp(p[0].u.s.ptr + p[0].u.s.len - 7, ",99999", 6) == 0);
    }
    loam_rendered_free(rs);
    loam_qb_free(qb);
  }
  free(v);
}

/* }====================================================================== */


/* {======================================================================
** INSERT, UPDATE, DELETE
** ======================================================================= */

TEST(qb_insert_rows_returning) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_insert(qb, "t");
  loam_value r1[2], r2[2];
  r1[0] = loam_int(1); r1[1] = loam_text("x", 1);
  r2[0] = loam_int(2); r2[1] = loam_null();
  loam_qb_insert_column(st, "a");
  loam_qb_insert_column(st, "b");
  loam_qb_insert_row(st, r1, 2);
  loam_qb_insert_row(st, r2, 2);
  loam_qb_returning(st, col("id"));
  loam_qb_returning(st, loam_qb_alias(qb, col("b"), "bee"));
  EXPECT(qb, st, S, "INSERT INTO \"t\" (\"a\", \"b\") VALUES (?, ?), (?, ?) RETURNING \"id\", "
         "\"b\" AS \"bee\"", "1, 'x', 2, NULL");
  EXPECT(qb, st, P, "INSERT INTO \"t\" (\"a\", \"b\") VALUES ($1, $2), ($3, $4) RETURNING \"id\", "
         "\"b\" AS \"bee\"", "1, 'x', 2, NULL");
  loam_qb_free(qb);
}


TEST(qb_insert_default_values) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_insert(qb, "t");
  loam_rendered *rs = NULL;
  loam_error e = LOAM_ERROR_INIT;
  loam_qb_insert_row(st, NULL, 0);
  EXPECT(qb, st, S, "INSERT INTO \"t\" DEFAULT VALUES", "");
  loam_qb_returning(st, col("id"));
  EXPECT(qb, st, P, "INSERT INTO \"t\" DEFAULT VALUES RETURNING \"id\"", "");
  loam_qb_insert_row(st, NULL, 0);
  loam_qb_insert_row(st, NULL, 0);
  CHECK_OK(loam_qb_render(qb, st, S, 0, &rs, &e), &e);
  CHECK_INT(loam_rendered_count(rs), 3);
  CHECK_STR(loam_rendered_sql(rs, 2, NULL), "INSERT INTO \"t\" DEFAULT VALUES RETURNING \"id\"");
  CHECK(loam_rendered_sql(rs, 0, NULL) == loam_rendered_sql(rs, 2, NULL));
  loam_rendered_free(rs);
  loam_qb_free(qb);
}


TEST(qb_insert_on_conflict) {
  static const char *const target[] = { "email" };
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_insert(qb, "users");
  loam_value row[2];
  row[0] = loam_text("a@x", 3); row[1] = loam_text("Ann", 3);
  loam_qb_insert_column(st, "email");
  loam_qb_insert_column(st, "name");
  loam_qb_insert_row(st, row, 2);
  loam_qb_on_conflict(st, LOAM_DO_NOTHING, NULL, 0);
  EXPECT(qb, st, S, "INSERT INTO \"users\" (\"email\", \"name\") VALUES (?, ?) ON CONFLICT "
         "DO NOTHING", "'a@x', 'Ann'");
  loam_qb_on_conflict(st, LOAM_DO_NOTHING, target, 1);
  EXPECT(qb, st, P, "INSERT INTO \"users\" (\"email\", \"name\") VALUES ($1, $2) ON CONFLICT "
         "(\"email\") DO NOTHING", "'a@x', 'Ann'");
  loam_qb_on_conflict(st, LOAM_DO_UPDATE, target, 1);
  loam_qb_set(st, "name", loam_qb_excluded(qb, "name"));
  loam_qb_set(st, "visits", loam_qb_raw(qb, "\"users\".\"visits\" + 1", NULL, 0));
  loam_qb_where(st, loam_qb_op(qb, "<>", tcol("users", "name"), tval("root")));
  loam_qb_returning(st, col("id"));
  EXPECT(qb, st, S, "INSERT INTO \"users\" (\"email\", \"name\") VALUES (?, ?) ON CONFLICT "
         "(\"email\") DO UPDATE SET \"name\" = excluded.\"name\", "
         "\"visits\" = \"users\".\"visits\" + 1 "
         "WHERE (\"users\".\"name\" <> ?) RETURNING \"id\"", "'a@x', 'Ann', 'root'");
  EXPECT(qb, st, P, "INSERT INTO \"users\" (\"email\", \"name\") VALUES ($1, $2) ON CONFLICT "
         "(\"email\") DO UPDATE SET \"name\" = EXCLUDED.\"name\", "
         "\"visits\" = \"users\".\"visits\" + 1 "
         "WHERE (\"users\".\"name\" <> $3) RETURNING \"id\"", "'a@x', 'Ann', 'root'");
  loam_qb_free(qb);
}


TEST(qb_insert_refused) {
  static const char *const target[] = { "a" };
  loam_value v[2];
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_insert(qb, "t");
  v[0] = v[1] = loam_int(1);
  loam_qb_insert_column(st, "a");
  loam_qb_insert_column(st, "b");
  loam_qb_insert_row(st, v, 2);
  loam_qb_insert_row(st, v, 1);
  EXPECT_ERR(qb, st, S, LOAM_E_MISUSE, "INSERT: row 2 has 1 value for 2 columns");
  loam_qb_free(qb);
  qb = loam_qb_new();
  st = loam_qb_insert(qb, "t");
  loam_qb_insert_column(st, "a");
  EXPECT_ERR(qb, st, P, LOAM_E_MISUSE, "INSERT INTO \"t\": no rows");
  loam_qb_on_conflict(st, LOAM_DO_UPDATE, NULL, 0);
  EXPECT_ERR(qb, st, P, LOAM_E_MISUSE, "ON CONFLICT DO UPDATE needs the conflict target columns");
  loam_qb_free(qb);
  qb = loam_qb_new();
  st = loam_qb_insert(qb, "t");
  loam_qb_insert_column(st, "a");
  loam_qb_insert_row(st, v, 1);
  loam_qb_on_conflict(st, LOAM_DO_UPDATE, target, 1);
  EXPECT_ERR(qb, st, S, LOAM_E_MISUSE, "ON CONFLICT DO UPDATE: nothing to SET");
  loam_qb_on_conflict(st, LOAM_DO_NOTHING, target, 1);
  loam_qb_set(st, "a", ival(2));
  EXPECT_ERR(qb, st, S, LOAM_E_MISUSE, "SET and WHERE belong to ON CONFLICT DO UPDATE");
  loam_qb_free(qb);
  qb = loam_qb_new();
  st = loam_qb_insert(qb, "t");
  loam_qb_insert_column(st, "a");
  loam_qb_insert_row(st, v, 1);
  loam_qb_insert_column(st, "b");
  EXPECT_ERR(qb, st, S, LOAM_E_MISUSE, "columns must come before the rows");
  loam_qb_free(qb);
  qb = loam_qb_new();
  st = loam_qb_insert(qb, "t");
  loam_qb_insert_column(st, "a");
  loam_qb_insert_column(st, "b");
  loam_qb_insert_row(st, v, 2);
  v[1] = loam_double(NAN);
  loam_qb_insert_row(st, v, 2);
  EXPECT_ERR(qb, st, S, LOAM_E_DATA_ERROR, "INSERT row 2, column \"b\": SQLite cannot store NaN");
  EXPECT(qb, st, P, "INSERT INTO \"t\" (\"a\", \"b\") VALUES ($1, $2), ($3, $4)", "1, 1, 1, nan");
  loam_qb_free(qb);
}


TEST(qb_update_and_delete) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *up = loam_qb_update(qb, "t"), *del = loam_qb_delete(qb, "t");
  loam_qb_set(up, "a", ival(1));
  loam_qb_set(up, "b", loam_qb_raw(qb, "b + ?", (loam_value[]){ loam_int(2) }, 1));
  loam_qb_where(up, eq(col("id"), ival(3)));
  loam_qb_returning(up, col("b"));
  EXPECT(qb, up, S, "UPDATE \"t\" SET \"a\" = ?, \"b\" = b + ? WHERE (\"id\" = ?) RETURNING \"b\"",
         "1, 2, 3");
  EXPECT(qb, up, P, "UPDATE \"t\" SET \"a\" = $1, \"b\" = b + $2 WHERE (\"id\" = $3) "
         "RETURNING \"b\"", "1, 2, 3");
  EXPECT(qb, del, S, "DELETE FROM \"t\"", "");
  loam_qb_where(del, loam_qb_is_null(qb, col("gone"), 1));
  loam_qb_returning(del, loam_qb_star(qb, NULL));
  EXPECT(qb, del, P, "DELETE FROM \"t\" WHERE (\"gone\" IS NOT NULL) RETURNING *", "");
  up = loam_qb_update(qb, "u");
  EXPECT_ERR(qb, up, S, LOAM_E_MISUSE, "UPDATE \"u\": nothing to SET");
  loam_qb_free(qb);
}

/* A raw SET item: assignments the program wrote, its values bound in text order. */
TEST(qb_update_set_raw) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *up = loam_qb_update(qb, "t");
  loam_qb_set(up, "a", ival(1));
  loam_qb_set_raw(up, loam_qb_raw(qb, "b = ?, c = c + 1", (loam_value[]){ loam_int(2) }, 1));
  loam_qb_where(up, eq(col("id"), ival(3)));
  EXPECT(qb, up, S, "UPDATE \"t\" SET \"a\" = ?, b = ?, c = c + 1 WHERE (\"id\" = ?)", "1, 2, 3");
  EXPECT(qb, up, P, "UPDATE \"t\" SET \"a\" = $1, b = $2, c = c + 1 WHERE (\"id\" = $3)",
         "1, 2, 3");
  loam_qb_free(qb);
  qb = loam_qb_new();
  up = loam_qb_update(qb, "t");
  loam_qb_set_raw(up, col("a"));
  EXPECT_ERR(qb, up, S, LOAM_E_MISUSE, "SET: an item without a column must be a raw SQL "
             "fragment (loam_qb_raw) of assignments");
  loam_qb_free(qb);
  qb = loam_qb_new();
  up = loam_qb_select(qb, "t", NULL);
  loam_qb_set_raw(up, loam_qb_raw(qb, "a = 1", NULL, 0));
  EXPECT_ERR(qb, up, S, LOAM_E_MISUSE, "SET does not apply to");
  loam_qb_free(qb);
}

/* }====================================================================== */


/* {======================================================================
** Chunks and budgets
** ======================================================================= */

TEST(qb_insert_chunks) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_insert(qb, "t");
  static const char *const target[] = { "a" };
  loam_rendered *rs = NULL;
  loam_error e = LOAM_ERROR_INIT;
  int i;
  loam_qb_insert_column(st, "a");
  loam_qb_insert_column(st, "b");
  for (i = 0; i < 10; i++) {
    loam_value row[2];
    row[0] = loam_int(i);
    row[1] = loam_int(i * 10);
    loam_qb_insert_row(st, row, 2);
  }
  CHECK_OK(loam_qb_render(qb, st, P, 6, &rs, &e), &e);   /* 3 rows a chunk */
  CHECK_INT(loam_rendered_count(rs), 4);
  CHECK_STR(loam_rendered_sql(rs, 0, NULL),
            "INSERT INTO \"t\" (\"a\", \"b\") VALUES ($1, $2), ($3, $4), ($5, $6)");
  CHECK(loam_rendered_sql(rs, 1, NULL) == loam_rendered_sql(rs, 0, NULL));
  CHECK(loam_rendered_sql(rs, 2, NULL) == loam_rendered_sql(rs, 0, NULL));
  CHECK_STR(loam_rendered_sql(rs, 3, NULL), "INSERT INTO \"t\" (\"a\", \"b\") VALUES ($1, $2)");
  CHECK_STR(qb_params(rs, 0), "0, 0, 1, 10, 2, 20");
  CHECK_STR(qb_params(rs, 2), "6, 60, 7, 70, 8, 80");
  CHECK_STR(qb_params(rs, 3), "9, 90");
  loam_rendered_free(rs);
  /* The clauses after the rows take their share of the budget, in every chunk. */
  loam_qb_on_conflict(st, LOAM_DO_UPDATE, target, 1);
  loam_qb_set(st, "b", ival(-1));
  CHECK_OK(loam_qb_render(qb, st, S, 6, &rs, &e), &e);   /* (6 - 1) / 2 = 2 rows a chunk */
  CHECK_INT(loam_rendered_count(rs), 5);
  CHECK_STR(loam_rendered_sql(rs, 4, NULL),
            "INSERT INTO \"t\" (\"a\", \"b\") VALUES (?, ?), (?, ?) ON CONFLICT (\"a\") "
            "DO UPDATE SET \"b\" = ?");
  CHECK_STR(qb_params(rs, 4), "8, 80, 9, 90, -1");
  loam_rendered_free(rs);
  CHECK_OK(loam_qb_render(qb, st, S, 0, &rs, &e), &e);
  CHECK_INT(loam_rendered_count(rs), 1);
  loam_rendered_free(rs);
  CHECK_INT(loam_qb_render(qb, st, S, 2, &rs, &e), LOAM_ERROR);
  CHECK_HAS(e.message, "INSERT: one row takes 3 parameters, more than the budget of 2");
  loam_error_clear(&e);
  loam_qb_free(qb);
}


TEST(qb_statement_over_budget) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  loam_rendered *rs = NULL;
  loam_error e = LOAM_ERROR_INIT;
  loam_qb_where(st, eq(col("a"), ival(1)));
  loam_qb_where(st, eq(col("b"), ival(2)));
  loam_qb_limit(st, 3);
  CHECK_INT(loam_qb_render(qb, st, P, 2, &rs, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_HAS(e.message, "statement takes 3 parameters, more than the budget of 2");
  CHECK_INT(loam_qb_render(qb, st, P, 70000, &rs, &e), LOAM_ERROR);
  CHECK_HAS(e.message, "max_params must be between 1 and 65535");
  CHECK_OK(loam_qb_render(qb, st, P, 3, &rs, &e), &e);
  loam_rendered_free(rs);
  loam_error_clear(&e);
  loam_qb_free(qb);
}


/* Every statement of a result carries the kind of the statement it renders. */
TEST(qb_rendered_kind) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *sel = loam_qb_select(qb, "t", NULL);
  loam_qstmt *del = loam_qb_delete(qb, "t");
  loam_qstmt *ins = loam_qb_insert(qb, "t");
  loam_rendered *rs = NULL;
  loam_error e = LOAM_ERROR_INIT;
  int i;
  loam_qb_insert_column(ins, "a");
  for (i = 0; i < 5; i++) {
    loam_value v = loam_int(i);
    loam_qb_insert_row(ins, &v, 1);
  }
  CHECK_OK(loam_qb_render(qb, sel, S, 0, &rs, &e), &e);
  CHECK_INT(loam_rendered_kind(rs, 0), LOAM_SQL_SELECT);
  CHECK_INT(loam_rendered_kind(rs, 1), LOAM_SQL_UNKNOWN);
  CHECK_INT(loam_rendered_kind(rs, -1), LOAM_SQL_UNKNOWN);
  loam_rendered_free(rs);
  CHECK_OK(loam_qb_render(qb, del, P, 0, &rs, &e), &e);
  CHECK_INT(loam_rendered_kind(rs, 0), LOAM_SQL_DELETE);
  loam_rendered_free(rs);
  CHECK_OK(loam_qb_render(qb, ins, P, 2, &rs, &e), &e);
  CHECK_INT(loam_rendered_count(rs), 3);
  for (i = 0; i < 3; i++) CHECK_INT(loam_rendered_kind(rs, i), LOAM_SQL_INSERT);
  loam_rendered_free(rs);
  CHECK_INT(loam_rendered_kind(NULL, 0), LOAM_SQL_UNKNOWN);
  loam_error_clear(&e);
  loam_qb_free(qb);
}


/* The result owns its text and values: the builder can go first. */
TEST(qb_result_outlives_builder) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st = loam_qb_select(qb, "t", NULL);
  loam_rendered *rs = NULL;
  loam_error e = LOAM_ERROR_INIT;
  loam_value two[2];
  two[0] = loam_text("aa", 2);
  two[1] = loam_text("bb", 2);
  loam_qb_where(st, eq(col("a"), loam_qb_val(qb, loam_blob("\0\1", 2))));
  loam_qb_where(st, loam_qb_in_list(qb, col("b"), two, 2, 0));
  CHECK_OK(loam_qb_render(qb, st, P, 0, &rs, &e), &e);
  loam_qb_free(qb);
  CHECK_STR(loam_rendered_sql(rs, 0, NULL),
            "SELECT * FROM \"t\" WHERE ((\"a\" = $1) AND "
            "(\"b\" IN (SELECT * FROM unnest($2::text[]))))");
  CHECK_STR(qb_params(rs, 0), "blob:2, '{\"aa\",\"bb\"}'");
  CHECK(memcmp(loam_rendered_params(rs, 0, NULL)[0].u.s.ptr, "\0\1", 2) == 0);
  CHECK(loam_rendered_sql(rs, 1, NULL) == NULL);
  CHECK(loam_rendered_params(rs, -1, NULL) == NULL);
  loam_rendered_free(rs);
  loam_rendered_free(NULL);
  loam_qb_free(NULL);
}

/* }====================================================================== */
