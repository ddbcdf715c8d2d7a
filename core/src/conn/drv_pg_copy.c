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


/* The most bytes 'put_field' writes for 'v', its delimiter included. */
static size_t field_room (const loam_value *v) {
  switch (v->type) {
    case LOAM_TEXT: return 2 * v->u.s.len + 1;
    case LOAM_BLOB: return 3 + 2 * v->u.s.len + 1;
    default: return 24;    /* an integer: 20 bytes; NULL, a boolean: 2 */
  }
}


/*
** Writes the field of 'v' at 'p' and returns its end: text with COPY's
** escapes (backslash and the delimiters), a blob as bytea's hex input
** with its backslash escaped.  Doubles are written by the caller.
*/
static char *put_field (char *p, const loam_value *v) {
  static const char hex[] = "0123456789abcdef";
  size_t i;
  switch (v->type) {
    case LOAM_NULL: *p++ = '\\'; *p++ = 'N'; break;
    case LOAM_BOOL: *p++ = v->u.b ? 't' : 'f'; break;
    case LOAM_INT: {
      char tmp[24], *t = tmp + sizeof tmp;
      uint64_t u = v->u.i < 0 ? (uint64_t)0 - (uint64_t)v->u.i : (uint64_t)v->u.i;
      do {
        *--t = (char)('0' + u % 10);
        u /= 10;
      } while (u != 0);
      if (v->u.i < 0) *--t = '-';
      memcpy(p, t, (size_t)(tmp + sizeof tmp - t));
      p += tmp + sizeof tmp - t;
      break;
    }
    case LOAM_TEXT:
      for (i = 0; i < v->u.s.len; i++) {
        char c = v->u.s.ptr[i];
        switch (c) {
          case '\\': *p++ = '\\'; *p++ = '\\'; break;
          case '\t': *p++ = '\\'; *p++ = 't'; break;
          case '\n': *p++ = '\\'; *p++ = 'n'; break;
          case '\r': *p++ = '\\'; *p++ = 'r'; break;
          default: *p++ = c; break;
        }
      }
      break;
    case LOAM_BLOB: {
      const unsigned char *u = (const unsigned char *)v->u.s.ptr;
      *p++ = '\\';
      *p++ = '\\';
      *p++ = 'x';
      for (i = 0; i < v->u.s.len; i++) {
        *p++ = hex[u[i] >> 4];
        *p++ = hex[u[i] & 15];
      }
      break;
    }
    default: break;
  }
  return p;
}


/*
** Appends row 'row' of 'ncols' values, delimited; 0 when memory ran out.
** A row without doubles is written in one reserved stretch.
*/
static int add_row (loam__buf *b, const loam_value *row, int ncols) {
  size_t room = 0;
  char *p;
  int c;
  for (c = 0; c < ncols && room != (size_t)-1; c++)
    room = row[c].type == LOAM_DOUBLE ? (size_t)-1 : room + field_room(&row[c]);
  if (room != (size_t)-1) {
    if ((p = loam__buf_reserve(b, room)) == NULL) return 0;
    for (c = 0; c < ncols; c++) {
      p = put_field(p, &row[c]);
      *p++ = c + 1 == ncols ? '\n' : '\t';
    }
    b->len = (size_t)(p - b->p);
    return 1;
  }
  for (c = 0; c < ncols; c++) {
    const loam_value *v = &row[c];
    if (v->type == LOAM_DOUBLE) loam__pg_add_double(b, v->u.d, 1);
    else {
      if ((p = loam__buf_reserve(b, field_room(v))) == NULL) return 0;
      b->len += (size_t)(put_field(p, v) - p);
    }
    loam__buf_addc(b, c + 1 == ncols ? '\n' : '\t');
  }
  return !b->oom;
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
  if (conn->tx_pending != NULL && loam__pg_begin_now(pc, err) != LOAM_OK) return LOAM_ERROR;
  if (loam__pg_param_types(pc, one, ncols, &known, err) != LOAM_OK) return LOAM_ERROR;
  if (!known) return LOAM__DECLINED;
  for (i = 0; i < n; i++)
    if (!copyable(&v[i], pc->types[i % (size_t)ncols])) return LOAM__DECLINED;
  loam__pg_flush_dead(pc);
  r = PQexec(pg, copy);
  if (PQresultStatus(r) != PGRES_COPY_IN) return finish(pc, r, changes, err);
  PQclear(r);
  loam__buf_reset(b);
  for (i = 0; i < (size_t)nrows && ok; i++) {
    if (!add_row(b, v + i * (size_t)ncols, ncols)) break;
    if (b->len >= COPY_CHUNK || i + 1 == (size_t)nrows) {
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
