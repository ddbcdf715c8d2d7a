/*
** bulk.c: many rows into one table ('loam_insert_rows').
**
** The rows arrive as one array of values, so nothing is copied into a
** builder: the builder only names the table and columns, the renderer
** writes the statement texts (render.c), and the values are bound straight
** from the caller's array.  Every value is checked before anything is
** sent, so a value the backend cannot take fails the call with nothing
** applied, naming its row and column.  Then, on a backend with COPY and
** for enough rows, the driver streams them in one statement, unless a
** value would go in otherwise than as an INSERT binds it (drv_pg_copy.c).
** Otherwise the rows go in as multi-row INSERTs of as many rows as the
** dialect's parameter budget allows, all full chunks one text and so one
** prepared statement, in one transaction level when there are several,
** so the call applies whole or not at all.
*/
#include <string.h>

#include "conn/conn_int.h"
#include "sql/builder_int.h"
#include "sql/dialect_int.h"

/*
** Below this many rows, one multi-row INSERT (one round trip for a
** prepared statement) beats COPY, which takes two (the COPY, then its
** end) besides the probe of a new shape.
*/
#define COPY_MIN_ROWS 64


/* Checks every value before anything is sent; 'd' says what the backend stores. */
static int check_values (const loam__dialect_desc *d, const char *const *cols, int ncols,
                         const loam_value *v, int nrows, loam_error *err) {
  size_t i, n = (size_t)nrows * (size_t)ncols;
  for (i = 0; i < n; i++) {
    size_t row = i / (size_t)ncols + 1;
    const char *col = cols[i % (size_t)ncols];
    loam_type t = v[i].type;
    if ((int)t < (int)LOAM_NULL || t > LOAM_BLOB)
      return loam__err(err, LOAM_E_MISUSE, "INSERT row %zu, column %s: unknown value type (%d)",
                       row, col, (int)t);
    if ((t == LOAM_TEXT || t == LOAM_BLOB) && v[i].u.s.ptr == NULL && v[i].u.s.len > 0)
      return loam__err(err, LOAM_E_MISUSE, "INSERT row %zu, column %s: NULL pointer with a "
                       "length", row, col);
    /* The messages of the renderer's own refusals, so both roads say the same. */
    if (t == LOAM_DOUBLE && !d->stores_nan && v[i].u.d != v[i].u.d)
      return loam__err(err, LOAM_E_DATA_ERROR, "INSERT row %zu, column %s: %s cannot store NaN",
                       row, col, d->name);
    if (t == LOAM_TEXT && !d->text_nul && v[i].u.s.len > 0 &&
        memchr(v[i].u.s.ptr, '\0', v[i].u.s.len) != NULL)
      return loam__err(err, LOAM_E_DATA_ERROR, "INSERT row %zu, column %s: text contains a NUL "
                       "byte; bind it as a blob", row, col);
  }
  return LOAM_OK;
}


/* The rows with COPY: LOAM__DECLINED when the driver leaves them to INSERTs. */
static int copy_rows (loam_conn *c, loam_qb *qb, loam_qstmt *st, const loam_value *v,
                      int nrows, int ncols, int64_t *changes, loam_error *err) {
  loam__buf copy = LOAM__BUF_INIT, one = LOAM__BUF_INIT;
  int64_t t0;
  int rc;
  if (loam__insert_text(qb, st, c->backend, 0, &copy, err) != LOAM_OK ||
      loam__insert_text(qb, st, c->backend, 1, &one, err) != LOAM_OK) {
    loam__buf_free(&copy);
    return LOAM_ERROR;
  }
  t0 = loam__clock_ns();
  rc = c->drv->copy_rows(c, copy.p, one.p, v, nrows, ncols, changes, err);
  if (rc != LOAM__DECLINED) {
    c->writes++;  /* see 'loam_conn_writes' */
    loam__trace_done(c, copy.p, NULL, 0, 0, loam__clock_ns() - t0,
                     rc == LOAM_OK ? LOAM_E_NONE : err->code);
  }
  loam__buf_free(&copy);
  loam__buf_free(&one);
  return rc;
}


/* The rows as INSERTs of at most 'per' rows each, in one level when there are several. */
static int insert_chunks (loam_conn *c, loam_qb *qb, loam_qstmt *st, const loam_value *v,
                          int nrows, int ncols, int per, int64_t *changes, loam_error *err) {
  loam__buf full = LOAM__BUF_INIT, last = LOAM__BUF_INIT;
  int nchunks = nrows / per + (nrows % per != 0), k, rc = LOAM_OK;
  if (loam__insert_text(qb, st, c->backend, per, &full, err) != LOAM_OK ||
      (nrows % per != 0 && loam__insert_text(qb, st, c->backend, nrows % per, &last, err)
                           != LOAM_OK)) {
    loam__buf_free(&full);
    return LOAM_ERROR;
  }
  if (nchunks > 1 && loam_tx_begin(c, err) != LOAM_OK) rc = LOAM_ERROR;
  for (k = 0; k < nchunks && rc == LOAM_OK; k++) {
    int rows = k < nrows / per ? per : nrows % per;
    int64_t n = 0;
    rc = loam__exec(c, rows == per ? full.p : last.p, LOAM_SQL_INSERT,
                    v + (size_t)k * (size_t)per * (size_t)ncols, rows * ncols, &n, NULL, NULL,
                    err);
    *changes += n;
  }
  if (nchunks > 1 && k > 0) {
    if (rc == LOAM_OK && loam_tx_commit(c, err) != LOAM_OK) rc = LOAM_ERROR;
    if (rc != LOAM_OK) {
      loam_tx_rollback(c, NULL);
      *changes = 0;
    }
  }
  loam__buf_free(&full);
  loam__buf_free(&last);
  return rc;
}


int loam_insert_rows (loam_conn *c, const char *table, const char *const *columns, int ncols,
                      const loam_value *vals, int nrows, int64_t *inserted, loam_error *err) {
  loam_error local = LOAM_ERROR_INIT;
  const loam__dialect_desc *d;
  loam_qb *qb;
  loam_qstmt *st;
  int64_t changes = 0;
  int i, rc = LOAM__DECLINED;
  if (inserted != NULL) *inserted = 0;
  if (c == NULL) return loam__err(err, LOAM_E_MISUSE, "attempt to use a closed connection");
  if (table == NULL || columns == NULL || ncols < 1 || nrows < 0 || (nrows > 0 && vals == NULL))
    return loam__err(err, LOAM_E_MISUSE, "loam_insert_rows: needs a table, at least one "
                     "column and the values of 'nrows' rows");
  d = loam__dialect(c->backend);
  if (ncols > d->max_params)
    return loam__err(err, LOAM_E_MISUSE, "INSERT: one row takes %d parameters, more than the "
                     "budget of %d", ncols, d->max_params);
  for (i = 0; i < ncols; i++)
    if (columns[i] == NULL)
      return loam__err(err, LOAM_E_MISUSE, "loam_insert_rows: column %d is NULL", i + 1);
  if (err == NULL) err = &local;
  if ((qb = loam_qb_new()) == NULL) return loam__err_nomem(err);
  st = loam_qb_insert(qb, table);
  for (i = 0; i < ncols; i++) loam_qb_insert_column(st, columns[i]);
  if (loam__qb_error(qb, err) != LOAM_OK ||
      check_values(d, columns, ncols, vals, nrows, err) != LOAM_OK)
    rc = LOAM_ERROR;
  else if (nrows == 0)
    rc = LOAM_OK;
  else if (c->streaming != NULL)
    rc = loam__err(err, LOAM_E_MISUSE, "connection is busy streaming another result; "
                   "finish or close that iteration first");
  else if (c->drv->copy_rows != NULL && nrows >= COPY_MIN_ROWS)
    rc = copy_rows(c, qb, st, vals, nrows, ncols, &changes, err);
  if (rc == LOAM__DECLINED)
    rc = insert_chunks(c, qb, st, vals, nrows, ncols,
                       d->max_params / ncols < nrows ? d->max_params / ncols : nrows, &changes,
                       err);
  loam_qb_free(qb);
  loam_error_clear(&local);
  if (rc == LOAM_OK && inserted != NULL) *inserted = changes;
  return rc;
}
