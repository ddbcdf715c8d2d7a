/*
** backfill.c: the batches of a BACKFILL operation.
**
** A backfill changes the rows its predicate still selects, a batch at a
** time by ranges of a unique key column (loam.h, "Backfills").  This file
** checks one against the live table (its key found and proved unique, its
** columns there), builds the two statements of a batch with the builder
** (so identifiers are quoted and values bound, as everywhere else), and
** runs one batch.  The transaction around each batch, the lease, the
** lock_timeout with its retries and the journal of the last key belong to
** the runner (migrate.c), which calls 'loam__fill_batch' once a batch.
*/
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/migrate_int.h"


/* Refuses 'op' with code 'code' and a message naming its table. */
static int fail (const loam_op *op, loam_error *err, loam_errcode code, const char *fmt, ...)
  LOAMI_PRINTF(4, 5);
static int fail (const loam_op *op, loam_error *err, loam_errcode code, const char *fmt, ...) {
  loam__buf b = LOAM__BUF_INIT;
  va_list ap;
  int rc;
  loam__buf_addf(&b, "backfill of table '%.80s': ", op->table != NULL ? op->table : "");
  va_start(ap, fmt);
  loam__buf_vaddf(&b, fmt, ap);
  va_end(ap);
  rc = loam__buf_cstr(&b) != NULL ? loam__err(err, code, "%s", b.p) : loam__err_nomem(err);
  loam__buf_free(&b);
  return rc;
}


/* Checks the shape of 'op' (no database needed). */
static int shape (const loam_op *op, loam_error *err) {
  loam_error e = LOAM_ERROR_INIT;
  int i, k;
  if (op->table == NULL || loam__ident_check(op->table, strlen(op->table), &e) != LOAM_OK) {
    loam_error_clear(&e);
    return loam__err(err, LOAM_E_MISUSE, "backfill: a table name is required (1 to %d bytes)",
                     LOAM_IDENT_MAX);
  }
  if (op->nset <= 0 || op->set == NULL)
    return fail(op, err, LOAM_E_MISUSE, "nothing to SET");
  if (op->nwhere <= 0 || op->where == NULL)
    return fail(op, err, LOAM_E_MISUSE, "no predicate: 'where' selects the rows still to "
                "change, which is what makes a resumed run skip those done");
  if (op->batch < 0 || op->batch > LOAM_BACKFILL_BATCH_MAX)
    return fail(op, err, LOAM_E_MISUSE, "batch size %d is out of range (1 to %d)", op->batch,
                LOAM_BACKFILL_BATCH_MAX);
  if (op->pause_ms < 0 || op->pause_ms > 3600000)
    return fail(op, err, LOAM_E_MISUSE, "pause of %d ms is out of range (0 to 3600000)",
                op->pause_ms);
  for (k = 0; k < 2; k++) {
    const loam_assign *a = k == 0 ? op->set : op->where;
    for (i = 0; i < (k == 0 ? op->nset : op->nwhere); i++) {
      if (a[i].column == NULL && a[i].sql == NULL)
        return fail(op, err, LOAM_E_MISUSE, "%s item %d has neither a column nor SQL",
                    k == 0 ? "SET" : "WHERE", i + 1);
      if (a[i].nparams < 0 || (a[i].nparams > 0 && a[i].params == NULL))
        return fail(op, err, LOAM_E_MISUSE, "%s item %d: bad parameter list",
                    k == 0 ? "SET" : "WHERE", i + 1);
    }
  }
  return LOAM_OK;
}


/* Whether the key 'k' names exactly column 'c'. */
static int onecol (const loam_db_key *k, const char *c) {
  return k->ncolumns == 1 && strcmp(k->columns[0], c) == 0;
}


/* Whether column 'c' of 't' is unique: its one-column primary key, UNIQUE constraint or index. */
static int unique (const loam_db_table *t, const char *c) {
  int i;
  if (onecol(&t->primary_key, c)) return 1;
  for (i = 0; i < t->nuniques; i++)
    if (onecol(&t->uniques[i], c)) return 1;
  for (i = 0; i < t->nindexes; i++) {
    const loam_db_index *x = &t->indexes[i];
    if (x->unique && x->where == NULL && x->ncolumns == 1 && x->columns[0] != NULL &&
        strcmp(x->columns[0], c) == 0 && x->valid)
      return 1;
  }
  return 0;
}


static int render (const loam__fill *f, loam_backend be, const loam_value *hi,
                   loam_rendered **out, loam_error *err);


/* Renders both statements once, so a bad fragment is refused before any batch. */
static int trial (loam_conn *c, const loam__fill *f, loam_error *err) {
  loam_value zero = loam_int(0);
  loam_rendered *rs = NULL;
  int rc = render(f, loam_conn_backend(c), NULL, &rs, err);
  loam_rendered_free(rs);
  rs = NULL;
  if (rc == LOAM_OK) rc = render(f, loam_conn_backend(c), &zero, &rs, err);
  loam_rendered_free(rs);
  return rc;
}


int loam__fill_start (loam_conn *c, const loam_op *op, loam__fill *f, loam_error *err) {
  loam_db_schema *s = NULL;
  const loam_db_table *t;
  const char *key;
  int i, k, rc = LOAM_OK;
  memset(f, 0, sizeof *f);
  f->op = op;
  f->last.type = f->hi.type = LOAM_NULL;
  if (op == NULL || op->kind != LOAM_OP_BACKFILL)
    return loam__err(err, LOAM_E_MISUSE, "backfill: not a BACKFILL operation");
  if (shape(op, err) != LOAM_OK) return LOAM_ERROR;
  f->batch = op->batch > 0 ? op->batch : 1000;
  if (loam_introspect(c, &op->table, 1, &s, err) != LOAM_OK) {
    if (err != NULL && err->code == LOAM_E_UNDEFINED_TABLE)
      return fail(op, err, LOAM_E_UNDEFINED_TABLE, "no such table");
    return LOAM_ERROR;
  }
  t = &s->tables[0];
  key = op->key;
  if (key == NULL) {
    if (t->primary_key.ncolumns != 1)
      rc = fail(op, err, LOAM_E_MISUSE, "the table has %s, and the batches are ranges of one "
                "unique column: name it as the key", t->primary_key.ncolumns == 0
                ? "no primary key" : "a primary key of several columns");
    else key = t->primary_key.columns[0];
  }
  else if (loam_db_table_column(t, key) == NULL)
    rc = fail(op, err, LOAM_E_UNDEFINED_COLUMN, "the key column '%.80s' does not exist", key);
  else if (!unique(t, key))
    rc = fail(op, err, LOAM_E_MISUSE, "the key column '%.80s' is not unique (no one-column "
              "primary key, UNIQUE constraint or unique index has it), so its ranges would not "
              "make batches of 'batch' rows", key);
  for (k = 0; rc == LOAM_OK && k < 2; k++) {
    const loam_assign *a = k == 0 ? op->set : op->where;
    for (i = 0; rc == LOAM_OK && i < (k == 0 ? op->nset : op->nwhere); i++)
      if (a[i].column != NULL && loam_db_table_column(t, a[i].column) == NULL)
        rc = fail(op, err, LOAM_E_UNDEFINED_COLUMN, "the %s column '%.80s' does not exist",
                  k == 0 ? "SET" : "WHERE", a[i].column);
  }
  if (rc == LOAM_OK) memcpy(f->key, key, strlen(key) + 1);   /* validated: <= LOAM_IDENT_MAX */
  loam_db_schema_free(s);
  return rc == LOAM_OK ? trial(c, f, err) : rc;
}


int loam__fill_resume (loam__fill *f, const loam_value *last, loam_error *err) {
  char *copy = NULL;
  if (last->type == LOAM_TEXT || last->type == LOAM_BLOB) {
    copy = loam__strndup(last->u.s.len > 0 ? last->u.s.ptr : "", last->u.s.len);
    if (copy == NULL) return loam__err_nomem(err);
  }
  free(f->owned);
  f->owned = copy;
  f->last = *last;
  if (copy != NULL) f->last.u.s.ptr = copy;
  return LOAM_OK;
}


void loam__fill_free (loam__fill *f) {
  free(f->owned);
  free(f->hiowned);
  f->owned = f->hiowned = NULL;
  f->last.type = f->hi.type = LOAM_NULL;
}


/* Item 'a' of the predicate as an expression of 'qb'. */
static loam_expr *cond (loam_qb *qb, const loam_assign *a) {
  loam_expr *raw = a->sql != NULL ? loam_qb_raw(qb, a->sql, a->params, a->nparams) : NULL;
  if (a->column == NULL) return raw;
  if (raw != NULL) return loam_qb_op(qb, "=", loam_qb_col(qb, NULL, a->column), raw);
  if (a->value.type == LOAM_NULL) return loam_qb_is_null(qb, loam_qb_col(qb, NULL, a->column), 0);
  return loam_qb_op(qb, "=", loam_qb_col(qb, NULL, a->column), loam_qb_val(qb, a->value));
}


/*
** "k" > lo (when a batch is done), ["k" <= hi,] and the predicate, ANDed
** in that order: the WHERE of both statements.
*/
static loam_expr *range (loam_qb *qb, const loam__fill *f, const loam_value *hi) {
  loam_expr *items[64], **v = items, *e;
  int n = 0, i, cap = f->op->nwhere + 2;
  if (cap > 64 && (v = malloc(sizeof *v * (size_t)cap)) == NULL) return NULL;
  if (f->last.type != LOAM_NULL)
    v[n++] = loam_qb_op(qb, ">", loam_qb_col(qb, NULL, f->key), loam_qb_val(qb, f->last));
  if (hi != NULL)
    v[n++] = loam_qb_op(qb, "<=", loam_qb_col(qb, NULL, f->key), loam_qb_val(qb, *hi));
  for (i = 0; i < f->op->nwhere; i++) v[n++] = cond(qb, &f->op->where[i]);
  e = loam_qb_and(qb, v, n);
  if (v != items) free(v);
  return e;
}


/*
** Renders the statement that finds the next batch's last key (with 'hi'
** NULL) or the UPDATE of the batch up to 'hi', for 'be'.
*/
static int render (const loam__fill *f, loam_backend be, const loam_value *hi,
                   loam_rendered **out, loam_error *err) {
  loam_qb *qb = loam_qb_new();
  loam_qstmt *st;
  int i, rc;
  if (qb == NULL) return loam__err_nomem(err);
  if (hi == NULL) {
    loam_qstmt *sub = loam_qb_select(qb, f->op->table, NULL);
    loam_qb_column(sub, loam_qb_col(qb, NULL, f->key));
    loam_qb_where(sub, range(qb, f, NULL));
    loam_qb_order(sub, loam_qb_col(qb, NULL, f->key), 0);
    loam_qb_limit(sub, f->batch);
    st = loam_qb_select_from(qb, sub, "b");
    loam_qb_column(st, loam_qb_alias(qb, loam_qb_agg(qb, "max", loam_qb_col(qb, NULL, f->key), 0),
                                     "hi"));
  }
  else {
    st = loam_qb_update(qb, f->op->table);
    for (i = 0; i < f->op->nset; i++) {
      const loam_assign *a = &f->op->set[i];
      loam_expr *raw = a->sql != NULL ? loam_qb_raw(qb, a->sql, a->params, a->nparams) : NULL;
      if (a->column == NULL) loam_qb_set_raw(st, raw);
      else loam_qb_set(st, a->column, raw != NULL ? raw : loam_qb_val(qb, a->value));
    }
    loam_qb_where(st, range(qb, f, hi));
  }
  rc = loam_qb_render(qb, st, be, 0, out, err);
  loam_qb_free(qb);
  if (rc != LOAM_OK) return fail(f->op, err, err != NULL ? err->code : LOAM_E_MISUSE, "%s",
                                 err != NULL && err->message != NULL ? err->message : "");
  return LOAM_OK;
}


/*
** Runs the SELECT of the next batch: into '*hi' its last key (copied into
** '*hold', which the caller frees), type LOAM_NULL when no row is left.
*/
static int nextkey (loam_conn *c, const loam__fill *f, loam_rendered **sel, loam_value *hi,
                    char **hold, loam_error *err) {
  loam_stmt *st = NULL;
  loam_value v;
  int rc;
  *hold = NULL;
  hi->type = LOAM_NULL;
  if (render(f, loam_conn_backend(c), NULL, sel, err) != LOAM_OK) return LOAM_ERROR;
  if (loam_query_rendered(c, *sel, 0, 0, &st, err) != LOAM_OK) return LOAM_ERROR;
  rc = loam_step(st, err);
  if (rc == LOAM_ROW && loam_column(st, 0, &v) == LOAM_OK) {
    *hi = v;
    if (v.type == LOAM_TEXT || v.type == LOAM_BLOB) {
      *hold = loam__strndup(v.u.s.len > 0 ? v.u.s.ptr : "", v.u.s.len);
      if (*hold == NULL) rc = loam__err_nomem(err);
      else hi->u.s.ptr = *hold;
    }
  }
  loam_stmt_close(st);
  if (rc == LOAM_ERROR) return LOAM_ERROR;
  if (hi->type == LOAM_BLOB)
    return fail(f->op, err, LOAM_E_MISUSE, "the key column '%.80s' holds blobs, which cannot "
                "bound a range", f->key);
  return LOAM_OK;
}


int loam__fill_batch (loam_conn *c, loam__fill *f, int *more, int64_t *rows, loam_error *err) {
  loam_rendered *sel = NULL, *upd = NULL;
  int rc;
  *more = 0;
  *rows = 0;
  free(f->hiowned);
  f->hiowned = NULL;
  rc = nextkey(c, f, &sel, &f->hi, &f->hiowned, err);
  if (rc == LOAM_OK && f->hi.type != LOAM_NULL) {
    rc = render(f, loam_conn_backend(c), &f->hi, &upd, err);
    if (rc == LOAM_OK) rc = loam_exec_rendered(c, upd, 0, rows, NULL, NULL, err);
    *more = rc == LOAM_OK;
  }
  loam_rendered_free(sel);
  loam_rendered_free(upd);
  return rc;
}


void loam__fill_advance (loam__fill *f) {
  free(f->owned);
  f->owned = f->hiowned;
  f->last = f->hi;
  f->hiowned = NULL;
  f->hi.type = LOAM_NULL;
}


int loam_backfill_plan (loam_conn *conn, const loam_op *op, loam_rendered **select,
                        loam_rendered **update, char *key, loam_error *err) {
  loam__fill f;
  loam_value hi;
  char *hold = NULL;
  int rc;
  if (select == NULL || update == NULL)
    return loam__err(err, LOAM_E_MISUSE, "loam_backfill_plan: NULL output");
  *select = *update = NULL;
  if (conn == NULL) return loam__err(err, LOAM_E_MISUSE, "attempt to use a closed connection");
  rc = loam__fill_start(conn, op, &f, err);
  if (rc == LOAM_OK) rc = nextkey(conn, &f, select, &hi, &hold, err);
  if (rc == LOAM_OK && hi.type != LOAM_NULL)
    rc = render(&f, loam_conn_backend(conn), &hi, update, err);
  if (rc == LOAM_OK && key != NULL) memcpy(key, f.key, strlen(f.key) + 1);
  if (rc != LOAM_OK) {
    loam_rendered_free(*select);
    loam_rendered_free(*update);
    *select = *update = NULL;
  }
  free(hold);
  loam__fill_free(&f);
  return rc;
}
