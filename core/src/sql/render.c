/*
** render.c: turns a builder's statement into SQL text and parameters.
**
** One walk of the tree appends to one buffer and records each value as it
** meets its placeholder, so parameters come out in text order for both
** dialects ('?' on SQLite, '$n' on PostgreSQL).  Whatever differs
** between the backends is read from their descriptions (dialect.c), never
** decided here.  A multi-row INSERT is rendered as text at most twice (the
** full chunk and the last, shorter one) whatever the number of rows; its
** values are then laid out chunk by chunk without touching the text
** again.  The result is copied into one allocation, so it outlives the
** builder and frees with one call.
**
** 'loam_rendered' is also the form of the DDL (ddl.c, through
** 'loam__rendered_text'): every statement carries its kind, which the
** drivers act on instead of reading the text again.
*/
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sql/dialect_int.h"
#include "sql/builder_int.h"


/* A parameter while rendering: 'gen' is 1 + its offset in 'data' when its bytes were generated. */
typedef struct rparam {
  loam_value v;
  size_t gen;
} rparam;

/* A statement while rendering: offsets, since the buffers may still move. */
typedef struct rchunk {
  size_t text;             /* offset of its NUL-terminated text in 'sql' */
  size_t len;
  size_t first;            /* its first parameter */
  int np;
} rchunk;

struct loam_rendered {
  int n;
  struct loam__rchunk {
    const char *text;
    size_t len;
    const loam_value *params;
    int np;
    loam_sql_kind kind;
  } *c;
};

/* The state of one rendering. */
typedef struct R {
  const loam__dialect_desc *d;
  int collect;             /* record parameters; else only count placeholders */
  int nph;                 /* placeholders of the statement being rendered */
  int depth;
  loam__buf sql;           /* texts of all statements, each followed by a NUL */
  loam__buf data;          /* generated parameter bytes (IN lists) */
  rparam *params;
  size_t np, pcap;
  rchunk *chunks;
  size_t nchunks, ccap;
  loam_error *err;
  int rc;                  /* LOAM_OK until the first error */
} R;


/* Records the first error of the rendering; the walk then runs out without effect. */
static void rfail (R *r, loam_errcode code, const char *fmt, ...) LOAMI_PRINTF(3, 4);
static void rfail (R *r, loam_errcode code, const char *fmt, ...) {
  loam__buf m = LOAM__BUF_INIT;
  va_list ap;
  if (r->rc != LOAM_OK) return;
  r->rc = LOAM_ERROR;
  va_start(ap, fmt);
  loam__buf_vaddf(&m, fmt, ap);
  va_end(ap);
  if (loam__buf_cstr(&m) == NULL) loam__err_nomem(r->err);
  else loam__err_msg(r->err, code, m.p, m.len);
  loam__buf_free(&m);
}


static void nomem (R *r) {
  if (r->rc == LOAM_OK) {
    r->rc = LOAM_ERROR;
    loam__err_nomem(r->err);
  }
}


/*
** Grows the array 'p' of '*cap' items of 'size' bytes to hold one more
** than 'len'; returns it (moved, perhaps), or NULL with 'p' untouched.
*/
static void *grow (R *r, void *p, size_t *cap, size_t len, size_t size) {
  size_t want = *cap > 0 ? *cap * 2 : 16;
  if (len < *cap) return p;
  if (want > SIZE_MAX / size || (p = realloc(p, want * size)) == NULL) {
    nomem(r);
    return NULL;
  }
  *cap = want;
  return p;
}


/* {======================================================================
** Parameters
** ======================================================================= */

/* Appends the placeholder of the next parameter. */
static void placeholder (R *r) {
  r->nph++;
  r->d->placeholder(&r->sql, r->nph);
}


static void push (R *r, const loam_value *v, size_t gen) {
  rparam *p = grow(r, r->params, &r->pcap, r->np, sizeof *p);
  if (p == NULL) return;
  r->params = p;
  r->params[r->np].v = *v;
  r->params[r->np].gen = gen;
  r->np++;
}


/* What the backend cannot take of 'v', or NULL. */
static const char *refused (const R *r, const loam_value *v) {
  if (r->d->stores_nan || v->type != LOAM_DOUBLE || !isnan(v->u.d)) return NULL;
  return "NaN";
}


/* Records value 'v' for the placeholder just written. */
static void value (R *r, const loam_value *v) {
  const char *what;
  if (!r->collect) return;
  if ((what = refused(r, v)) != NULL) {
    rfail(r, LOAM_E_DATA_ERROR, "parameter %d: %s cannot store %s", r->nph, r->d->name, what);
    return;
  }
  push(r, v, 0);
}

/* }====================================================================== */


/* {======================================================================
** Expressions
** ======================================================================= */

static void select_stmt (R *r, const loam_qstmt *st);

/* Appends a text, or a string literal (the "" makes anything else a compile error). */
#define addt(r, t)  loam__buf_add(&(r)->sql, (t).p, (t).len)
#define adds(r, s)  loam__buf_add(&(r)->sql, "" s, sizeof(s) - 1)


/*
** A key set's parameter: its bytes are generated into 'data' and the
** parameter points there by offset until the result is built.
*/
static void gen_param (R *r, int rc, size_t off) {
  loam_value v;
  if (rc != LOAM_OK) { r->rc = LOAM_ERROR; return; }
  if (r->data.oom) { nomem(r); return; }
  v = r->d->keys_type == LOAM_TEXT ? loam_text(NULL, r->data.len - off)
                                   : loam_blob(NULL, r->data.len - off);
  push(r, &v, off + 1);
}


/*
** The typed key set of an IN: 'nrows' rows of 'ncols' values ('vals',
** row after row; column 'c' of element type 'ltypes[c]') as a one-column
** or multi-column subquery whose list is bound whole, so the text depends
** only on 'ncols' and the types; ' IN (' or ' NOT IN (' comes before it.
** For one column that leads an index ('indexed') and a list of at most
** ANY_MAX_KEYS keys the dialect may write an operator on the list instead,
** such as ' = ANY($1::int8[])'.  The bound keeps the worst case of that
** form small: a plan that scans the table anyway (a generic plan on a
** column of few distinct values) compares each row with the whole array,
** which for thousands of keys costs seconds where the hashed subquery
** costs milliseconds (bench/RESULTS.md).  The dialect
** writes the text and the bytes of its parameters (one blob on SQLite,
** one array per column on PostgreSQL), which are the same for both forms.
*/
#define ANY_MAX_KEYS 128

static void key_set (R *r, const loam_value *vals, int nrows, int ncols,
                     const unsigned char *ltypes, const unsigned char *coltypes, int negate,
                     int indexed) {
  int i, n = 0;
  if (ncols == 1 && indexed && nrows <= ANY_MAX_KEYS && r->d->keys_indexed != NULL)
    n = r->d->keys_indexed(&r->sql, r->nph + 1, ltypes[0], coltypes != NULL ? coltypes[0] : 0,
                           negate);
  if (n == 0) {
    if (negate) adds(r, " NOT IN (");
    else adds(r, " IN (");
    n = r->d->keys_sql(&r->sql, r->nph + 1, ncols, ltypes, coltypes);
    loam__buf_addc(&r->sql, ')');
  }
  r->nph += n;
  for (i = 0; i < n && r->collect && r->rc == LOAM_OK; i++) {
    size_t off = r->data.len;
    gen_param(r, r->d->keys_param(&r->data, vals, nrows, ncols, i, r->err), off);
  }
}


/*
** Where an expression stands.  A raw fragment is parenthesized as an
** operand (of AND, of a comparison, of WHERE), where 'a OR b' would
** otherwise mix with the operators around it; elsewhere it stays bare, so
** that 'x DESC NULLS LAST' in ORDER BY or '*' in a SELECT list still work.
** An alias belongs only in a projection.
*/
enum { OPERAND, BARE, PROJ };

static void expr (R *r, const loam_expr *e, int ctx);

/* Renders the expressions of 'v' separated by ", ". */
static void expr_list (R *r, const loam__qvec *v, int ctx) {
  const loam_expr *const *items = v->p;
  int i;
  for (i = 0; i < v->n; i++) {
    if (i > 0) adds(r, ", ");
    expr(r, items[i], ctx);
  }
}


static void op (R *r, const loam_expr *e) {
  const char *text = loam__qops[e->sub];
  if (e->sub == LOAM__OP_ILIKE) text = r->d->ilike;
  else if (e->sub == LOAM__OP_NOT_ILIKE) text = r->d->not_ilike;
  loam__buf_addc(&r->sql, '(');
  expr(r, e->u.x.a, OPERAND);
  loam__buf_addc(&r->sql, ' ');
  loam__buf_adds(&r->sql, text);
  loam__buf_addc(&r->sql, ' ');
  expr(r, e->u.x.b, OPERAND);
  loam__buf_addc(&r->sql, ')');
}


static void junction (R *r, const loam_expr *e) {
  int i;
  if (e->n == 0) {
    if (e->kind == LOAM__X_AND) adds(r, "1 = 1");
    else adds(r, "1 = 0");
    return;
  }
  loam__buf_addc(&r->sql, '(');
  for (i = 0; i < e->n; i++) {
    if (i > 0) {
      if (e->kind == LOAM__X_AND) adds(r, " AND ");
      else adds(r, " OR ");
    }
    expr(r, e->u.items[i], OPERAND);
  }
  loam__buf_addc(&r->sql, ')');
}


static void raw (R *r, const loam_expr *e) {
  int i;
  if (!r->d->literal_qmark && e->u.raw.literal_q) {
    rfail(r, LOAM_E_MISUSE, "raw SQL fragment: '?" "?' (a literal '?' operator) has no meaning "
          "on %s", r->d->name);
    return;
  }
  addt(r, e->u.raw.parts[0]);
  for (i = 0; i < e->n; i++) {
    placeholder(r);
    value(r, &e->u.raw.params[i]);
    addt(r, e->u.raw.parts[i + 1]);
  }
}


/*
** (e IN (key set)) for one expression, ((e1, e2) IN (key set)) for
** several: matching is exact per tuple, never one IN per column (which
** would also match the mixed pairs).  No rows renders (1 = 0), negated
** (1 = 1), with no parameter.  NOT IN is safe: lists never hold NULL,
** and for the same reason so is '<> ALL'.
*/
static void in_set (R *r, loam_expr *const *exprs, int n, const loam_value *vals, int nrows,
                    const unsigned char *ltypes, const unsigned char *coltypes, int negate,
                    int indexed) {
  int i;
  if (nrows == 0) {
    if (negate) adds(r, "(1 = 1)");
    else adds(r, "(1 = 0)");
    return;
  }
  loam__buf_addc(&r->sql, '(');
  if (n > 1) loam__buf_addc(&r->sql, '(');
  for (i = 0; i < n; i++) {
    if (i > 0) adds(r, ", ");
    expr(r, exprs[i], OPERAND);
  }
  if (n > 1) loam__buf_addc(&r->sql, ')');
  key_set(r, vals, nrows, n, ltypes, coltypes, negate, indexed);
  loam__buf_addc(&r->sql, ')');
}


/* The items of an ORDER BY: e ASC|DESC [NULLS FIRST|LAST], ... */
static void order_items (R *r, const loam__qorder *o, int n) {
  int i;
  for (i = 0; i < n; i++) {
    if (i > 0) adds(r, ", ");
    expr(r, o[i].e, BARE);
    if (o[i].flags & LOAM_DESC) adds(r, " DESC");
    else adds(r, " ASC");
    if (o[i].flags & LOAM_NULLS_FIRST) adds(r, " NULLS FIRST");
    else if (o[i].flags & LOAM_NULLS_LAST) adds(r, " NULLS LAST");
  }
}


/* row_number() OVER ([PARTITION BY ...] [ORDER BY ...]) */
static void row_number (R *r, const loam_expr *e) {
  int i;
  adds(r, "row_number() OVER (");
  for (i = 0; i < e->n; i++) {
    if (i == 0) adds(r, "PARTITION BY ");
    else adds(r, ", ");
    expr(r, e->u.win.part[i], BARE);
  }
  if (e->u.win.norder > 0) {
    if (e->n > 0) loam__buf_addc(&r->sql, ' ');
    adds(r, "ORDER BY ");
    order_items(r, e->u.win.order, e->u.win.norder);
  }
  loam__buf_addc(&r->sql, ')');
}


static void expr (R *r, const loam_expr *e, int ctx) {
  if (r->rc != LOAM_OK) return;
  if (++r->depth > LOAM__QB_DEPTH) {
    rfail(r, LOAM_E_MISUSE, "query nests deeper than %d levels", LOAM__QB_DEPTH);
    return;
  }
  switch (e->kind) {
    case LOAM__X_SQL:
      addt(r, e->u.sql);
      break;
    case LOAM__X_VAL:
      placeholder(r);
      value(r, &e->u.val);
      break;
    case LOAM__X_RAW:
      if (ctx == OPERAND) loam__buf_addc(&r->sql, '(');
      raw(r, e);
      if (ctx == OPERAND) loam__buf_addc(&r->sql, ')');
      break;
    case LOAM__X_OP:
      op(r, e);
      break;
    case LOAM__X_AND: case LOAM__X_OR:
      junction(r, e);
      break;
    case LOAM__X_NOT:
      adds(r, "(NOT ");
      expr(r, e->u.x.a, OPERAND);
      loam__buf_addc(&r->sql, ')');
      break;
    case LOAM__X_NULL:
      loam__buf_addc(&r->sql, '(');
      expr(r, e->u.x.a, OPERAND);
      if (e->negate) adds(r, " IS NOT NULL)");
      else adds(r, " IS NULL)");
      break;
    case LOAM__X_BETWEEN:
      loam__buf_addc(&r->sql, '(');
      expr(r, e->u.x.a, OPERAND);
      if (e->negate) adds(r, " NOT BETWEEN ");
      else adds(r, " BETWEEN ");
      expr(r, e->u.x.b, OPERAND);
      adds(r, " AND ");
      expr(r, e->u.x.c, OPERAND);
      loam__buf_addc(&r->sql, ')');
      break;
    case LOAM__X_INLIST:
      in_set(r, &e->u.in.a, 1, e->u.in.vals, e->n, &e->ltype, &e->coltype, e->negate,
             e->indexed);
      break;
    case LOAM__X_INTUPLES:
      in_set(r, e->u.tup.exprs, e->n, e->u.tup.vals, e->u.tup.ntuples, e->u.tup.ltypes,
             e->u.tup.coltypes, e->negate, e->indexed);
      break;
    case LOAM__X_ROWNUM:
      row_number(r, e);
      break;
    case LOAM__X_INQUERY:
      loam__buf_addc(&r->sql, '(');
      expr(r, e->u.inq.a, OPERAND);
      if (e->negate) adds(r, " NOT IN (");
      else adds(r, " IN (");
      select_stmt(r, e->u.inq.q);
      adds(r, "))");
      break;
    case LOAM__X_AGG:
      loam__buf_adds(&r->sql, loam__qaggs[e->sub]);
      loam__buf_addc(&r->sql, '(');
      if (e->u.x.a == NULL) loam__buf_addc(&r->sql, '*');
      else {
        if (e->negate) adds(r, "DISTINCT ");
        expr(r, e->u.x.a, BARE);
      }
      loam__buf_addc(&r->sql, ')');
      break;
    case LOAM__X_ALIAS:
      if (ctx != PROJ) {
        rfail(r, LOAM_E_MISUSE, "alias %.*s: AS belongs in result columns and RETURNING only",
              (int)e->u.alias.name.len, e->u.alias.name.p);
        break;
      }
      expr(r, e->u.alias.a, BARE);
      adds(r, " AS ");
      addt(r, e->u.alias.name);
      break;
    case LOAM__X_EXCLUDED:
      loam__buf_adds(&r->sql, r->d->excluded);
      addt(r, e->u.sql);
      break;
    default:
      rfail(r, LOAM_E_MISUSE, "unknown expression node %d", e->kind);
      break;
  }
  r->depth--;
}

/* }====================================================================== */


/* {======================================================================
** Statements
** ======================================================================= */

static void where (R *r, const loam_expr *e) {
  if (e == NULL) return;
  adds(r, " WHERE ");
  expr(r, e, OPERAND);
}


static void returning (R *r, const loam_qstmt *st) {
  if (st->returning.n == 0) return;
  adds(r, " RETURNING ");
  expr_list(r, &st->returning, PROJ);
}


static void set_list (R *r, const loam_qstmt *st) {
  const loam__qset *s = st->set.p;
  int i;
  for (i = 0; i < st->set.n; i++) {
    if (i > 0) adds(r, ", ");
    if (s[i].col.p != NULL) {
      addt(r, s[i].col);
      adds(r, " = ");
    }
    expr(r, s[i].e, BARE);
  }
}


/* Appends quoted names separated by ", ". */
static void names (R *r, const loam__qvec *v) {
  const loam__text *t = v->p;
  int i;
  for (i = 0; i < v->n; i++) {
    if (i > 0) adds(r, ", ");
    addt(r, t[i]);
  }
}


static void bound (R *r, int64_t n) {
  loam_value v = loam_int(n);
  placeholder(r);
  value(r, &v);
}


static void select_stmt (R *r, const loam_qstmt *st) {
  const loam__qjoin *j = st->joins.p;
  int i;
  if (++r->depth > LOAM__QB_DEPTH) {
    rfail(r, LOAM_E_MISUSE, "query nests deeper than %d levels", LOAM__QB_DEPTH);
    return;
  }
  if (st->explain) {
    if (r->depth > 1) {
      rfail(r, LOAM_E_MISUSE, "EXPLAIN belongs to the outermost statement, not a subquery");
      return;
    }
    loam__buf_adds(&r->sql, r->d->explain);
  }
  adds(r, "SELECT ");
  if (st->distinct) adds(r, "DISTINCT ");
  if (st->columns.n == 0) loam__buf_addc(&r->sql, '*');
  else expr_list(r, &st->columns, PROJ);
  if (st->fromq != NULL) {
    adds(r, " FROM (");
    select_stmt(r, st->fromq);
    adds(r, ") AS ");
    addt(r, st->table);
  }
  else if (st->table.p != NULL) {
    adds(r, " FROM ");
    addt(r, st->table);
  }
  for (i = 0; i < st->joins.n; i++) {
    if (j[i].kind == LOAM_JOIN_LEFT) adds(r, " LEFT JOIN ");
    else adds(r, " INNER JOIN ");
    addt(r, j[i].table);
    adds(r, " ON ");
    expr(r, j[i].on, OPERAND);
  }
  where(r, st->where);
  if (st->group.n > 0) {
    adds(r, " GROUP BY ");
    expr_list(r, &st->group, BARE);
  }
  if (st->having != NULL) {
    adds(r, " HAVING ");
    expr(r, st->having, OPERAND);
  }
  if (st->order.n > 0) {
    adds(r, " ORDER BY ");
    order_items(r, st->order.p, st->order.n);
  }
  if (st->has_limit) {
    adds(r, " LIMIT ");
    bound(r, st->limit);
  }
  if (st->has_offset) {
    if (!st->has_limit && r->d->offset_alone != NULL)
      loam__buf_adds(&r->sql, r->d->offset_alone);
    adds(r, " OFFSET ");
    bound(r, st->offset);
  }
  if (st->lock != 0) {
    if (!r->d->row_locks) rfail(r, LOAM_E_MISUSE, "%s", r->d->no_row_locks);
    if (st->lock & LOAM_FOR_SHARE) adds(r, " FOR SHARE");
    else adds(r, " FOR UPDATE");
    if (st->lock & LOAM_SKIP_LOCKED) adds(r, " SKIP LOCKED");
    else if (st->lock & LOAM_NOWAIT) adds(r, " NOWAIT");
  }
  r->depth--;
}


static void update_stmt (R *r, const loam_qstmt *st) {
  if (st->set.n == 0) {
    rfail(r, LOAM_E_MISUSE, "UPDATE %.*s: nothing to SET", (int)st->table.len, st->table.p);
    return;
  }
  adds(r, "UPDATE ");
  addt(r, st->table);
  adds(r, " SET ");
  set_list(r, st);
  where(r, st->where);
  returning(r, st);
}


static void delete_stmt (R *r, const loam_qstmt *st) {
  adds(r, "DELETE FROM ");
  addt(r, st->table);
  where(r, st->where);
  returning(r, st);
}


/* What follows the rows of an INSERT: ON CONFLICT and RETURNING. */
static void insert_suffix (R *r, const loam_qstmt *st) {
  if (st->conflict != 0) {
    adds(r, " ON CONFLICT");
    if (st->target.n > 0) {
      adds(r, " (");
      names(r, &st->target);
      loam__buf_addc(&r->sql, ')');
    }
    if (st->conflict == LOAM_DO_NOTHING) adds(r, " DO NOTHING");
    else {
      adds(r, " DO UPDATE SET ");
      set_list(r, st);
      where(r, st->where);
    }
  }
  returning(r, st);
}


/* Whether the dialect writes every placeholder alike, whatever its number ('?'). */
static int same_placeholders (const loam__dialect_desc *d) {
  loam__buf x = LOAM__BUF_INIT, y = LOAM__BUF_INIT;
  int same;
  d->placeholder(&x, 1);
  d->placeholder(&y, 2);
  same = !x.oom && !y.oom && x.len == y.len && memcmp(x.p, y.p, x.len) == 0;
  loam__buf_free(&x);
  loam__buf_free(&y);
  return same;
}


/* The text of an INSERT of 'rows' rows, NUL-terminated, into '*t' (offset and length). */
static void insert_text (R *r, const loam_qstmt *st, int rows, rchunk *t) {
  int i, c;
  t->text = r->sql.len;
  r->nph = 0;
  adds(r, "INSERT INTO ");
  addt(r, st->table);
  if (st->names.n == 0) adds(r, " DEFAULT VALUES");
  else {
    adds(r, " (");
    names(r, &st->names);
    adds(r, ") VALUES ");
    for (i = 0; i < rows; i++) {
      size_t row = r->sql.len;
      if (i == 0) loam__buf_addc(&r->sql, '(');
      else adds(r, ", (");
      for (c = 0; c < st->names.n; c++) {
        if (c > 0) adds(r, ", ");
        placeholder(r);
      }
      loam__buf_addc(&r->sql, ')');
      /*
      ** With placeholders that read alike, every later row is the text of
      ** the second: copied, not written again (a bulk insert's statement
      ** holds thousands of rows).
      */
      if (i == 1 && rows > 2 && same_placeholders(r->d)) {
        size_t len = r->sql.len - row, k;
        if (loam__buf_reserve(&r->sql, len * (size_t)(rows - 2)) == NULL)
          break;   /* the buffer's own flag reports it */
        for (k = 2; k < (size_t)rows; k++) {
          memcpy(r->sql.p + r->sql.len, r->sql.p + row, len);
          r->sql.len += len;
        }
        r->sql.p[r->sql.len] = '\0';
        r->nph += (rows - 2) * st->names.n;
        break;
      }
    }
  }
  insert_suffix(r, st);
  t->len = r->sql.len - t->text;
  loam__buf_addc(&r->sql, '\0');
}


/* Adds a statement of text 't' whose parameters are those from 'first' on. */
static void chunk (R *r, const rchunk *t, size_t first) {
  rchunk *c = grow(r, r->chunks, &r->ccap, r->nchunks, sizeof *c);
  if (c == NULL) return;
  r->chunks = c;
  c = &r->chunks[r->nchunks++];
  c->text = t->text;
  c->len = t->len;
  c->first = first;
  c->np = (int)(r->np - first);
}


/*
** An INSERT in chunks of 'per' rows.  The clauses after the rows are
** rendered first, on their own, for their parameter count and values
** (the text is dropped, the values stay at the head of 'params'); then
** the two texts are rendered without values; then each chunk's values
** are laid out after them: its rows', then a copy of the clauses'.
*/
static void insert_stmt (R *r, const loam_qstmt *st, int budget) {
  const loam_value *vals = st->values.p;
  const loam__text *names = st->names.p;
  int ncols = st->names.n, per, full, nchunks, k;
  size_t ntail, i;
  rchunk textfull = { 0, 0, 0, 0 }, textlast = { 0, 0, 0, 0 };
  if (st->nrows == 0) {
    rfail(r, LOAM_E_MISUSE, "INSERT INTO %.*s: no rows", (int)st->table.len, st->table.p);
    return;
  }
  if ((st->set.n > 0 || st->where != NULL) && st->conflict != LOAM_DO_UPDATE) {
    rfail(r, LOAM_E_MISUSE, "INSERT: SET and WHERE belong to ON CONFLICT DO UPDATE");
    return;
  }
  if (st->conflict == LOAM_DO_UPDATE && st->set.n == 0) {
    rfail(r, LOAM_E_MISUSE, "ON CONFLICT DO UPDATE: nothing to SET");
    return;
  }
  r->nph = 0;
  insert_suffix(r, st);
  r->sql.len = 0;
  ntail = r->np;
  per = ncols == 0 ? 1 : (budget - (int)ntail) / ncols;
  if (r->rc == LOAM_OK && per < 1)
    rfail(r, LOAM_E_MISUSE, "INSERT: one row takes %d parameters, more than the budget of %d",
          ncols + (int)ntail, budget);
  if (r->rc != LOAM_OK) return;
  if (per > st->nrows) per = st->nrows;
  full = st->nrows / per;
  nchunks = full + (st->nrows % per != 0);
  r->collect = 0;
  insert_text(r, st, per, &textfull);
  if (nchunks > full) insert_text(r, st, st->nrows % per, &textlast);
  r->collect = 1;
  for (k = 0; k < nchunks && r->rc == LOAM_OK; k++) {
    size_t first = r->np, n = (size_t)(k < full ? per : st->nrows % per) * (size_t)ncols, c;
    const loam_value *v = vals + (size_t)k * (size_t)per * (size_t)ncols;
    for (c = 0; c < n; c++) {
      const char *what = refused(r, &v[c]);
      if (what != NULL) {
        rfail(r, LOAM_E_DATA_ERROR, "INSERT row %zu, column %.*s: %s cannot store %s",
              (size_t)k * (size_t)per + c / (size_t)ncols + 1, (int)names[c % (size_t)ncols].len,
              names[c % (size_t)ncols].p, r->d->name, what);
        return;
      }
      push(r, &v[c], 0);
    }
    for (i = 0; i < ntail; i++) {
      rparam t = r->params[i];  /* 'push' may move the array */
      push(r, &t.v, t.gen);
    }
    chunk(r, k < full ? &textfull : &textlast, first);
  }
}


/*
** The text of a bulk insert ('loam_insert_rows'): the INSERT of 'rows'
** rows of placeholders, laid out exactly as 'insert_text' lays out a
** chunk, or with 'rows' 0 the COPY of the same columns from the client.
*/
int loam__insert_text (loam_qb *qb, const loam_qstmt *st, loam_backend dialect, int rows,
                       loam__buf *out, loam_error *err) {
  const loam__dialect_desc *d = loam__dialect(dialect);
  rchunk t = { 0, 0, 0, 0 };
  R r;
  if (loam__qb_error(qb, err) != LOAM_OK) return LOAM_ERROR;
  if (d == NULL || st == NULL || st->qb != qb || st->kind != LOAM__Q_INSERT ||
      st->names.n == 0 || st->nrows != 0 || st->conflict != 0 || st->returning.n != 0 ||
      rows < 0 || (rows == 0 && d->copy_in == NULL))
    return loam__err(err, LOAM_E_MISUSE, "bulk insert: not an INSERT of columns alone");
  memset(&r, 0, sizeof r);
  r.d = d;
  r.err = err;
  r.rc = LOAM_OK;
  if (rows > 0) {
    insert_text(&r, st, rows, &t);
    r.sql.len = t.len;
  }
  else {
    adds(&r, "COPY ");
    addt(&r, st->table);
    adds(&r, " (");
    names(&r, &st->names);
    loam__buf_addc(&r.sql, ')');
    loam__buf_adds(&r.sql, d->copy_in);
  }
  if (loam__buf_cstr(&r.sql) == NULL) {
    loam__buf_free(&r.sql);
    return loam__err_nomem(err);
  }
  *out = r.sql;
  return LOAM_OK;
}

/* }====================================================================== */


/* {======================================================================
** Results
** ======================================================================= */

/*
** Copies the rendering into one block: the header, the chunk table, the
** parameters, the texts, the generated bytes and the values' own bytes
** (which live in the builder), in that order.
*/
static loam_rendered *build (R *r, loam_sql_kind kind) {
  size_t bytes = 0, size, i, off;
  loam_rendered *s;
  loam_value *pv;
  char *text, *data, *own;
  for (i = 0; i < r->np; i++) {
    const rparam *p = &r->params[i];
    if (p->gen == 0 && (p->v.type == LOAM_TEXT || p->v.type == LOAM_BLOB)) bytes += p->v.u.s.len;
  }
  size = sizeof *s + r->nchunks * sizeof *s->c + r->np * sizeof *pv;
  if (SIZE_MAX - size < r->sql.len + r->data.len + bytes + 1) return NULL;
  s = malloc(size + r->sql.len + r->data.len + bytes + 1);
  if (s == NULL) return NULL;
  s->n = (int)r->nchunks;
  s->c = (struct loam__rchunk *)(s + 1);
  pv = (loam_value *)(s->c + r->nchunks);
  text = (char *)(pv + r->np);
  data = text + r->sql.len;
  own = data + r->data.len;
  if (r->sql.len > 0) memcpy(text, r->sql.p, r->sql.len);
  if (r->data.len > 0) memcpy(data, r->data.p, r->data.len);
  for (i = 0, off = 0; i < r->np; i++) {
    const rparam *p = &r->params[i];
    pv[i] = p->v;
    if (p->gen != 0) pv[i].u.s.ptr = data + p->gen - 1;
    else if (p->v.type == LOAM_TEXT || p->v.type == LOAM_BLOB) {
      if (p->v.u.s.len > 0) memcpy(own + off, p->v.u.s.ptr, p->v.u.s.len);
      pv[i].u.s.ptr = own + off;
      off += p->v.u.s.len;
    }
  }
  own[off] = '\0';
  for (i = 0; i < r->nchunks; i++) {
    const rchunk *c = &r->chunks[i];
    s->c[i].text = text + c->text;
    s->c[i].len = c->len;
    s->c[i].params = c->np > 0 ? pv + c->first : NULL;
    s->c[i].np = c->np;
    s->c[i].kind = kind;
  }
  return s;
}


loam_rendered *loam__rendered_list (int n, const char *const *texts, const loam_sql_kind *kinds,
                                    const loam_value *params, int nparams) {
  loam_rendered *s;
  size_t size = sizeof *s + sizeof *s->c * (size_t)n + sizeof(loam_value) * (size_t)nparams;
  size_t off;
  loam_value *pv;
  char *own;
  int i;
  if (n <= 0) return NULL;
  for (i = 0; i < n; i++) size += strlen(texts[i]) + 1;
  for (i = 0; i < nparams; i++)
    if (params[i].type == LOAM_TEXT || params[i].type == LOAM_BLOB) size += params[i].u.s.len + 1;
  if ((s = malloc(size)) == NULL) return NULL;
  s->n = n;
  s->c = (struct loam__rchunk *)(s + 1);
  pv = (loam_value *)(s->c + n);
  own = (char *)(pv + nparams);
  off = 0;
  for (i = 0; i < nparams; i++) {
    pv[i] = params[i];
    if (params[i].type == LOAM_TEXT || params[i].type == LOAM_BLOB) {
      if (params[i].u.s.len > 0) memcpy(own + off, params[i].u.s.ptr, params[i].u.s.len);
      own[off + params[i].u.s.len] = '\0';
      pv[i].u.s.ptr = own + off;
      off += params[i].u.s.len + 1;
    }
  }
  for (i = 0; i < n; i++) {
    size_t len = strlen(texts[i]);
    memcpy(own + off, texts[i], len + 1);
    s->c[i].text = own + off;
    s->c[i].len = len;
    s->c[i].params = (i == 0 && nparams > 0) ? pv : NULL;
    s->c[i].np = i == 0 ? nparams : 0;
    s->c[i].kind = kinds[i];
    off += len + 1;
  }
  return s;
}


loam_rendered *loam__rendered_text (const char *sql, size_t len, loam_sql_kind kind) {
  loam_rendered *s;
  char *text;
  if (SIZE_MAX - sizeof *s - sizeof *s->c - 1 < len) return NULL;
  s = malloc(sizeof *s + sizeof *s->c + len + 1);
  if (s == NULL) return NULL;
  s->n = 1;
  s->c = (struct loam__rchunk *)(s + 1);
  text = (char *)(s->c + 1);
  if (len > 0) memcpy(text, sql, len);
  text[len] = '\0';
  s->c[0].text = text;
  s->c[0].len = len;
  s->c[0].params = NULL;
  s->c[0].np = 0;
  s->c[0].kind = kind;
  return s;
}


/* The public kind of a builder's statement. */
static loam_sql_kind kindof (const loam_qstmt *st) {
  switch (st->kind) {
    case LOAM__Q_SELECT: return LOAM_SQL_SELECT;
    case LOAM__Q_INSERT: return LOAM_SQL_INSERT;
    case LOAM__Q_UPDATE: return LOAM_SQL_UPDATE;
    default: return LOAM_SQL_DELETE;
  }
}


int loam_qb_render (loam_qb *qb, const loam_qstmt *st, loam_backend dialect, int max_params,
                    loam_rendered **out, loam_error *err) {
  R r;
  rchunk text = { 0, 0, 0, 0 };
  const loam__dialect_desc *d = loam__dialect(dialect);
  int budget;
  *out = NULL;
  if (loam__qb_error(qb, err) != LOAM_OK) return LOAM_ERROR;
  if (st == NULL || st->qb != qb)
    return loam__err(err, LOAM_E_MISUSE, "render: no statement of this builder");
  if (d == NULL)
    return loam__err(err, LOAM_E_MISUSE, "render: unknown dialect %d", (int)dialect);
  if (max_params < 0 || max_params > d->max_params_limit)
    return loam__err(err, LOAM_E_MISUSE, "render: max_params must be between 1 and %d",
                     d->max_params_limit);
  budget = max_params > 0 ? max_params : d->max_params;
  memset(&r, 0, sizeof r);
  r.d = d;
  r.collect = 1;
  r.err = err;
  r.rc = LOAM_OK;
  if (st->kind == LOAM__Q_INSERT) insert_stmt(&r, st, budget);
  else {
    if (st->kind == LOAM__Q_SELECT) select_stmt(&r, st);
    else if (st->kind == LOAM__Q_UPDATE) update_stmt(&r, st);
    else delete_stmt(&r, st);
    text.len = r.sql.len;
    loam__buf_addc(&r.sql, '\0');
    if (r.nph > budget)
      rfail(&r, LOAM_E_MISUSE, "statement takes %d parameters, more than the budget of %d",
            r.nph, budget);
    chunk(&r, &text, 0);
  }
  if (r.rc == LOAM_OK && (r.sql.oom || r.data.oom || (*out = build(&r, kindof(st))) == NULL)) nomem(&r);
  loam__buf_free(&r.sql);
  loam__buf_free(&r.data);
  free(r.params);
  free(r.chunks);
  return r.rc;
}


int loam_rendered_count (const loam_rendered *rs) {
  return rs != NULL ? rs->n : 0;
}


const char *loam_rendered_sql (const loam_rendered *rs, int i, size_t *len) {
  if (rs == NULL || i < 0 || i >= rs->n) {
    if (len != NULL) *len = 0;
    return NULL;
  }
  if (len != NULL) *len = rs->c[i].len;
  return rs->c[i].text;
}


const loam_value *loam_rendered_params (const loam_rendered *rs, int i, int *nparams) {
  if (rs == NULL || i < 0 || i >= rs->n) {
    if (nparams != NULL) *nparams = 0;
    return NULL;
  }
  if (nparams != NULL) *nparams = rs->c[i].np;
  return rs->c[i].params;
}


loam_sql_kind loam_rendered_kind (const loam_rendered *rs, int i) {
  return (rs == NULL || i < 0 || i >= rs->n) ? LOAM_SQL_UNKNOWN : rs->c[i].kind;
}


void loam_rendered_free (loam_rendered *rs) {
  free(rs);
}

/* }====================================================================== */
