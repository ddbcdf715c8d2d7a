/*
** value.c: what libloam knows about a 'loam_value' as such.
**
** A value is the one type in which parameters go in and columns come
** out, whatever the backend.  This file names and describes values for
** messages, and gives values the canonical forms in which they compare
** and hash when rows must be matched to keys (the batch loader): the two backends
** return one number as an integer, a double, a boolean or numeric text,
** and a match must not depend on which of them came back.  Nothing here
** knows about connections, statements or SQL text.
*/
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/loam_int.h"


const char *loam_type_name (int type) {
  switch (type) {
    case LOAM_NULL: return "null";
    case LOAM_BOOL: return "boolean";
    case LOAM_INT: return "integer";
    case LOAM_DOUBLE: return "double";
    case LOAM_TEXT: return "text";
    case LOAM_BLOB: return "blob";
    default: return "unknown";
  }
}


void loam__value_describe (loam__buf *m, const loam_value *v) {
  switch (v->type) {
    case LOAM_NULL: loam__buf_adds(m, "NULL"); break;
    case LOAM_BOOL: loam__buf_adds(m, v->u.b ? "true" : "false"); break;
    case LOAM_INT: loam__buf_int(m, v->u.i); break;
    case LOAM_DOUBLE: loam__buf_addf(m, "%g", v->u.d); break;
    case LOAM_TEXT:
      if (v->u.s.len > 40) loam__buf_addf(m, "'%.40s...'", v->u.s.ptr);
      else loam__buf_addf(m, "'%.*s'", (int)v->u.s.len, v->u.s.ptr);
      break;
    default: loam__buf_addf(m, "<%zu-byte blob>", v->u.s.len); break;
  }
}


/* {======================================================================
** Canonical forms
** ======================================================================= */

int loam__value_class (int type) {
  switch (type) {
    case LOAM_INT: case LOAM_DOUBLE: return LOAM__VC_NUM;
    case LOAM_TEXT: return LOAM__VC_TEXT;
    case LOAM_BOOL: return LOAM__VC_BOOL;
    default: return LOAM__VC_NONE;
  }
}


loam_value loam__value_integral (loam_value v) {
  if (v.type == LOAM_DOUBLE && v.u.d == floor(v.u.d) && v.u.d >= -9223372036854775808.0 &&
      v.u.d < 9223372036854775808.0)
    return loam_int((int64_t)v.u.d);
  return v;
}


/*
** The decimal text 'v' without the trailing zeros of its fraction, nor
** its point when nothing is left: '2.50' and '2.5' are one number, and so
** are '1.0' and '1'.  PostgreSQL prints a numeric with the scale of its
** column, the keys come with the scale of theirs, and no other form needs
** reading: numeric text has no exponent and no leading zeros.
*/
static loam_value decimal (loam_value v) {
  const char *p = v.u.s.ptr;
  size_t n = v.u.s.len;
  if (memchr(p, '.', n) == NULL) return v;
  while (n > 0 && p[n - 1] == '0') n--;
  if (n > 0 && p[n - 1] == '.') n--;
  v.u.s.len = n;
  return v;
}


int loam__value_canon (const loam_value *v, int cls, int numeric, loam_value *out) {
  switch (v->type) {
    case LOAM_INT:
      *out = *v;
      return cls == LOAM__VC_NUM || (cls == LOAM__VC_BOOL && (v->u.i == 0 || v->u.i == 1));
    case LOAM_BOOL:
      *out = loam_int(v->u.b);
      return cls == LOAM__VC_BOOL || cls == LOAM__VC_NUM;
    case LOAM_DOUBLE: *out = loam__value_integral(*v); return cls == LOAM__VC_NUM;
    case LOAM_TEXT:
      if (cls == LOAM__VC_TEXT) { *out = numeric ? decimal(*v) : *v; return 1; }
      if (cls == LOAM__VC_NUM && v->u.s.len > 0 && v->u.s.len < 64) {
        /* PostgreSQL's numeric (and any type without a binary reading) comes back as text. */
        char *end;
        double d;
        long long i;
        /* Past 64 bits strtoll clamps: such a key is read as the double it is. */
        errno = 0;
        i = strtoll(v->u.s.ptr, &end, 10);
        if (*end == '\0' && errno != ERANGE) { *out = loam_int((int64_t)i); return 1; }
        d = strtod(v->u.s.ptr, &end);
        if (*end == '\0') { *out = loam__value_integral(loam_double(d)); return 1; }
      }
      return 0;
    default:
      return 0;
  }
}

/* }====================================================================== */


/* {======================================================================
** Hashing and comparing canonical values
** ======================================================================= */

uint64_t loam__value_hash (uint64_t h, const loam_value *c) {
  unsigned char tag = (unsigned char)c->type;
  h = loam__fnv1a(h, &tag, 1);
  if (c->type == LOAM_TEXT) {
    h = loam__fnv1a(h, &c->u.s.len, sizeof c->u.s.len);
    return loam__fnv1a(h, c->u.s.ptr, c->u.s.len);
  }
  if (c->type == LOAM_DOUBLE) return loam__fnv1a(h, &c->u.d, sizeof c->u.d);
  return loam__fnv1a(h, &c->u.i, sizeof c->u.i);
}


int loam__value_same (const loam_value *a, const loam_value *b) {
  if (a->type != b->type) return 0;
  if (a->type == LOAM_TEXT)
    return a->u.s.len == b->u.s.len && memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0;
  if (a->type == LOAM_DOUBLE) return a->u.d == b->u.d;
  return a->u.i == b->u.i;
}

/* }====================================================================== */
