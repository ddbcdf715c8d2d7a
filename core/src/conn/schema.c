/*
** schema.c: what the database holds, read from its catalogs.
**
** Every question about the live schema (does this table exist?) is
** answered here, with the catalog query that the backend's dialect
** describes (dialect.c), so that no layer above the core writes catalog
** SQL of its own and a difference between the catalogs of SQLite and
** PostgreSQL is stated once, as data.  It is also where the migration
** runner starts: its history table, LOAM_MIGRATIONS_TABLE, is named in
** loam.h, and whether it exists is the first thing a run asks.
**
** The queries go through 'loam_query' like any other statement, so the
** statement cache keeps them and the instrumentation counts them.
*/
#include <string.h>

#include "conn/conn_int.h"
#include "sql/dialect_int.h"


/* Runs the one-row, one-integer catalog query 'sql' with the text 'arg'. */
static int count_of (loam_conn *conn, const char *sql, const char *arg, int64_t *n,
                     loam_error *err) {
  loam_value param = loam_text(arg, strlen(arg));
  loam_value v;
  loam_stmt *st = NULL;
  int rc = loam_query(conn, sql, &param, 1, 0, &st, err);
  if (rc != LOAM_OK) return rc;
  rc = loam_step(st, err);
  if (rc == LOAM_ROW && loam_column(st, 0, &v) == LOAM_OK && v.type == LOAM_INT) {
    *n = v.u.i;
    rc = LOAM_OK;
  }
  else if (rc != LOAM_ERROR)
    rc = loam__err(err, LOAM_E_DATABASE_ERROR, "catalog query returned no count: %s", sql);
  loam_stmt_close(st);
  return rc;
}


int loam_table_exists (loam_conn *conn, const char *name, int *exists, loam_error *err) {
  const loam__dialect_desc *d;
  int64_t n = 0;
  if (conn == NULL) return loam__err(err, LOAM_E_MISUSE, "attempt to use a closed connection");
  if (name == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_table_exists: table name is NULL");
  if (exists == NULL)
    return loam__err(err, LOAM_E_MISUSE, "loam_table_exists: 'exists' is NULL");
  d = loam__dialect(loam_conn_backend(conn));
  if (d == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_table_exists: unknown backend");
  if (count_of(conn, d->table_exists, name, &n, err) != LOAM_OK) return LOAM_ERROR;
  *exists = n > 0;
  return LOAM_OK;
}
