/*
** tx.c: nested transactions over savepoints.
**
** The connection keeps a stack of levels ('tx_depth', with one bit of
** 'tx_began' per level) so that the statement ending a level matches the
** one that opened it: only a level that sent BEGIN may send COMMIT or
** ROLLBACK, every other level owns a savepoint named after its depth.
** Whether BEGIN is possible is asked of the driver each time rather than
** remembered, since the caller may have opened or ended a transaction
** with raw SQL in between.  The statements themselves are the dialect's
** (dialect.c).
*/
#include "conn/conn_int.h"
#include "sql/dialect_int.h"


_Static_assert(LOAM_TX_MAX_DEPTH <= 32, "one bit of 'tx_began' per level");


static int check (loam_conn *c, int needlevel, const char *fname, loam_error *err) {
  if (c == NULL) return loam__err(err, LOAM_E_MISUSE, "attempt to use a closed connection");
  if (needlevel && c->tx_depth == 0)
    return loam__err(err, LOAM_E_MISUSE, "%s: no transaction open (call loam_tx_begin first)",
                     fname);
  return LOAM_OK;
}


/* Whether the innermost level sent BEGIN. */
static int top_began (const loam_conn *c) {
  return (int)((c->tx_began >> (c->tx_depth - 1)) & 1u);
}


/* Runs "<verb> loam_sp_<depth>": the savepoint of the level at that depth. */
static int savepoint (loam_conn *c, const char *verb, int depth, loam_error *err) {
  loam__buf sql = LOAM__BUF_INIT;
  int rc;
  loam__buf_adds(&sql, verb);
  loam__buf_adds(&sql, " loam_sp_");
  loam__buf_int(&sql, depth);
  if (loam__buf_cstr(&sql) == NULL) rc = loam__err_nomem(err);
  else rc = loam__exec(c, sql.p, LOAM_SQL_TX, NULL, 0, NULL, NULL, NULL, err);
  loam__buf_free(&sql);
  return rc;
}


/* Runs one of the dialect's statements that ends or opens a transaction. */
static int run (loam_conn *c, const char *sql, loam_error *err) {
  return loam__exec(c, sql, LOAM_SQL_TX, NULL, 0, NULL, NULL, NULL, err);
}


static void pop (loam_conn *c) {
  c->tx_depth--;
  c->tx_began &= ~((uint32_t)1 << c->tx_depth);
}


int loam_tx_begin (loam_conn *c, loam_error *err) {
  int began;
  if (check(c, 0, "loam_tx_begin", err) != LOAM_OK) return LOAM_ERROR;
  if (c->tx_depth >= LOAM_TX_MAX_DEPTH)
    return loam__err(err, LOAM_E_MISUSE,
                     "loam_tx_begin: transactions nested deeper than %d levels",
                     LOAM_TX_MAX_DEPTH);
  began = c->drv->in_transaction(c) == LOAM__TX_NONE;
  if (began) {
    if (run(c, loam__dialect(c->backend)->begin, err) != LOAM_OK) return LOAM_ERROR;
  }
  else if (savepoint(c, loam__dialect(c->backend)->savepoint, c->tx_depth + 1, err) != LOAM_OK)
    return LOAM_ERROR;
  if (began) c->tx_began |= (uint32_t)1 << c->tx_depth;
  c->tx_depth++;
  return LOAM_OK;
}


int loam_tx_commit (loam_conn *c, loam_error *err) {
  int state, rc;
  if (check(c, 1, "loam_tx_commit", err) != LOAM_OK) return LOAM_ERROR;
  state = c->drv->in_transaction(c);
  if (state == LOAM__TX_NONE)
    return loam__err(err, LOAM_E_MISUSE,
                     "loam_tx_commit: the transaction already ended (a COMMIT or ROLLBACK "
                     "in raw SQL?); roll this level back");
  /* PostgreSQL answers COMMIT in a failed transaction by rolling back and
  ** reporting success: the caller would believe its work was kept. */
  if (state == LOAM__TX_FAILED)
    return loam__err(err, LOAM_E_TRANSACTION_ABORTED,
                     "loam_tx_commit: a statement failed in this transaction; roll it back");
  if (top_began(c))
    rc = run(c, loam__dialect(c->backend)->commit, err);
  else
    rc = savepoint(c, loam__dialect(c->backend)->release, c->tx_depth, err);
  if (rc != LOAM_OK) return LOAM_ERROR;
  pop(c);
  return LOAM_OK;
}


int loam_tx_rollback (loam_conn *c, loam_error *err) {
  int rc = LOAM_OK;
  if (check(c, 1, "loam_tx_rollback", err) != LOAM_OK) return LOAM_ERROR;
  /* Without a transaction the level's work ended with it: nothing to undo here. */
  if (c->drv->in_transaction(c) != LOAM__TX_NONE) {
    const loam__dialect_desc *d = loam__dialect(c->backend);
    if (top_began(c))
      rc = run(c, d->rollback, err);
    else if ((rc = savepoint(c, d->rollback_to, c->tx_depth, err)) == LOAM_OK)
      /* ROLLBACK TO keeps the savepoint; releasing it ends the level for good. */
      rc = savepoint(c, d->release, c->tx_depth, err);
  }
  pop(c);
  return rc;
}
