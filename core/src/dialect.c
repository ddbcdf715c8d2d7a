/*
** dialect.c: PostgreSQL's key lists, written as array literals.
**
** An IN list is bound as one parameter (one per column of tuples) so that
** a query keeps one text whatever the length of its list.  On PostgreSQL
** that parameter is an array literal read by 'unnest($n::T[])', written
** here in one pass with every string escaped, so no value can end its
** element early or change the list.  SQLite's lists are a binary blob
** (sqlite_keys.c).
*/
#include <math.h>
#include <string.h>

#include "query_int.h"


const char *loam__pg_array_type (int ltype, int coltype) {
  if (ltype == LOAM_TEXT) {
    switch (coltype) {
      case LOAM_COL_DATE: return "date";
      case LOAM_COL_TIMESTAMP: return "timestamptz";
      case LOAM_COL_NUMERIC: return "numeric";
      default: return "text";
    }
  }
  switch (ltype) {
    case LOAM_INT: return "int8";
    case LOAM_DOUBLE: return "float8";
    case LOAM_BOOL: return "bool";
    default: return "text";
  }
}


/*
** Appends 's' with each byte that 'special' marks escaped by 'esc',
** copying the runs between them whole.
*/
static void add_escaped (loam__buf *b, const char *s, size_t n, int (*special) (unsigned char),
                         void (*esc) (loam__buf *, unsigned char)) {
  size_t i, run = 0;
  for (i = 0; i < n; i++) {
    if (!special((unsigned char)s[i])) continue;
    loam__buf_add(b, s + run, i - run);
    esc(b, (unsigned char)s[i]);
    run = i + 1;
  }
  loam__buf_add(b, s + run, n - run);
}


/* {======================================================================
** Array literals for PostgreSQL
** ======================================================================= */

static int pg_special (unsigned char c) {
  return c == '"' || c == '\\';
}


static void pg_escape (loam__buf *b, unsigned char c) {
  loam__buf_addc(b, '\\');
  loam__buf_addc(b, (char)c);
}


/*
** Every text element is double-quoted, so no content (commas, braces,
** blanks, the word NULL, the empty string) is read as array syntax.
** 'stride' lets one column of tuples be written where the tuples lie.
*/
int loam__pg_array (loam__buf *b, const loam_value *v, int n, int stride, loam_error *err) {
  int i;
  loam__buf_addc(b, '{');
  for (i = 0; i < n; i++) {
    const loam_value *e = v + (size_t)i * (size_t)stride;
    if (i > 0) loam__buf_addc(b, ',');
    switch (e->type) {
      case LOAM_INT: loam__buf_int(b, e->u.i); break;
      case LOAM_BOOL: loam__buf_addc(b, e->u.b ? 't' : 'f'); break;
      case LOAM_DOUBLE:
        if (isnan(e->u.d)) loam__buf_adds(b, "NaN");
        else if (isinf(e->u.d)) loam__buf_adds(b, e->u.d > 0 ? "Infinity" : "-Infinity");
        else loam__buf_double(b, e->u.d, 0);
        break;
      default:
        if (e->u.s.len > 0 && memchr(e->u.s.ptr, '\0', e->u.s.len) != NULL)
          return loam__err(err, LOAM_E_DATA_ERROR, "IN list: value %d is text holding a NUL "
                           "byte, which PostgreSQL cannot store", i + 1);
        loam__buf_addc(b, '"');
        add_escaped(b, e->u.s.ptr, e->u.s.len, pg_special, pg_escape);
        loam__buf_addc(b, '"');
        break;
    }
  }
  loam__buf_addc(b, '}');
  return LOAM_OK;
}

/* }====================================================================== */
