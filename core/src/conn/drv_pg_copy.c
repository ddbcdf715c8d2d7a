/*
** drv_pg_copy.c: many rows into one table with COPY ... FROM STDIN.
**
** COPY in text format is PostgreSQL's fastest way in for rows that the
** client holds: one statement, the rows streamed without a round trip
** each, no parameter limit.  It must change nothing but the speed of a
** bulk insert ('loam_insert_rows'), so the rows only go this way when
** every value reaches its column exactly as the INSERT of the same row
** would bind it.  The server reads a COPY field with the column's input
** function, as it reads an untyped text parameter, so text and NULL always
** qualify.  A typed value qualifies where the INSERT's parameter has the
** type it would be read as anyway: a boolean for a boolean, an integer
** for an integer, numeric or float8 (each reads the decimal exactly as
** the cast from int8 gives it), a double for a float8 (the shortest text
** that reads back as it), a blob for a bytea (as '\x' and hex digits).
** The parameter types come from a probe of the one-row INSERT, learned
** once per shape (drv_pg_types.c).  Anything else is declined, and the
** caller inserts with multi-row VALUES instead.
**
** A failed COPY inserts nothing: it is one statement.  Its error is the
** server's, reported like any other (the same SQLSTATE, constraint and
** table as the INSERT would raise).
*/
#include <stdlib.h>
#include <string.h>

#include "conn/drv_pg_int.h"

#define OID_BOOL     16
#define OID_BYTEA    17
#define OID_INT8     20
#define OID_INT2     21
#define OID_INT4     23
#define OID_FLOAT8   701
#define OID_NUMERIC  1700

/* The bytes gathered before they go to libpq. */
#define COPY_CHUNK  (256 * 1024)


/* Whether value 'v' goes into a column whose INSERT parameter has type 'type' as it would there. */
static int copyable (const loam_value *v, Oid type) {
  switch (v->type) {
    case LOAM_NULL: case LOAM_TEXT: return 1;
    case LOAM_BOOL: return type == OID_BOOL;
    case LOAM_INT:
      return type == OID_INT2 || type == OID_INT4 || type == OID_INT8 ||
             type == OID_NUMERIC || type == OID_FLOAT8;
    case LOAM_DOUBLE: return type == OID_FLOAT8;
    case LOAM_BLOB: return type == OID_BYTEA;
    default: return 0;
  }
}


/* Appends the text of a field with COPY's escapes: backslash, and the row and field delimiters. */
static void add_escaped (loam__buf *b, const char *p, size_t n) {
  size_t i, from = 0;
  for (i = 0; i < n; i++) {
    const char *esc;
    switch (p[i]) {
      case '\\': esc = "\\\\"; break;
      case '\t': esc = "\\t"; break;
      case '\n': esc = "\\n"; break;
      case '\r': esc = "\\r"; break;
      default: continue;
    }
    loam__buf_add(b, p + from, i - from);
    loam__buf_add(b, esc, 2);
    from = i + 1;
  }
  loam__buf_add(b, p + from, n - from);
}


/* Appends a blob as bytea's hex input, its backslash escaped for COPY. */
static void add_hex (loam__buf *b, const unsigned char *p, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t i;
  loam__buf_add(b, "\\\\x", 3);
  for (i = 0; i < n; i++) {
    char two[2];
    two[0] = hex[p[i] >> 4];
    two[1] = hex[p[i] & 15];
    loam__buf_add(b, two, 2);
  }
}


static void add_field (loam__buf *b, const loam_value *v) {
  switch (v->type) {
    case LOAM_NULL: loam__buf_add(b, "\\N", 2); break;
    case LOAM_BOOL: loam__buf_addc(b, v->u.b ? 't' : 'f'); break;
    case LOAM_INT: loam__buf_int(b, v->u.i); break;
    case LOAM_DOUBLE: loam__pg_add_double(b, v->u.d, 1); break;
    case LOAM_TEXT: add_escaped(b, v->u.s.ptr, v->u.s.len); break;
    case LOAM_BLOB: add_hex(b, (const unsigned char *)v->u.s.ptr, v->u.s.len); break;
  }
}


/* Reads the results of the command that just ended; 'r' is its first. */
static int finish (pgconn *pc, PGresult *r, int64_t *changes, loam_error *err) {
  int rc = LOAM_OK;
  PGresult *more;
  if (PQresultStatus(r) == PGRES_COMMAND_OK) *changes = (int64_t)strtoll(PQcmdTuples(r), NULL, 10);
  else rc = loam__pg_report(pc, r, err);
  PQclear(r);
  while ((more = PQgetResult(pc->pg)) != NULL) PQclear(more);
  return rc;
}


int loam__pg_copy_rows (loam_conn *conn, const char *copy, const char *one, const loam_value *v,
                        int nrows, int ncols, int64_t *changes, loam_error *err) {
  pgconn *pc = conn->impl;
  PGconn *pg = pc->pg;
  loam__buf *b = &pc->text;
  size_t i, n = (size_t)nrows * (size_t)ncols;
  int known, ok = 1;
  PGresult *r;
  if (PQstatus(pg) != CONNECTION_OK)
    return loam__err(err, LOAM_E_CONNECTION_FAILED, "the connection to the server was lost");
  if (loam__pg_param_types(pc, one, ncols, &known, err) != LOAM_OK) return LOAM_ERROR;
  if (!known) return LOAM__DECLINED;
  for (i = 0; i < n; i++)
    if (!copyable(&v[i], pc->types[i % (size_t)ncols])) return LOAM__DECLINED;
  loam__pg_flush_dead(pc);
  r = PQexec(pg, copy);
  if (PQresultStatus(r) != PGRES_COPY_IN) return finish(pc, r, changes, err);
  PQclear(r);
  loam__buf_reset(b);
  for (i = 0; i < n && ok; i++) {
    add_field(b, &v[i]);
    loam__buf_addc(b, (i + 1) % (size_t)ncols == 0 ? '\n' : '\t');
    if (b->oom) break;
    if (b->len >= COPY_CHUNK || i + 1 == n) {
      ok = PQputCopyData(pg, b->p, (int)b->len) == 1;
      loam__buf_reset(b);
    }
  }
  if (b->oom) {
    /* The server ends the COPY with an error of its own; ours is the one to report. */
    loam__buf_free(b);
    PQputCopyEnd(pg, "out of memory");
    finish(pc, PQgetResult(pg), changes, NULL);
    return loam__err_nomem(err);
  }
  if (!ok || PQputCopyEnd(pg, NULL) != 1) {
    loam__pg_report(pc, NULL, err);
    while ((r = PQgetResult(pg)) != NULL) PQclear(r);
    return LOAM_ERROR;
  }
  return finish(pc, PQgetResult(pg), changes, err);
}
