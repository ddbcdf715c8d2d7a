/*
** buf.c: the growable byte buffer used for SQL text and messages.
**
** Appends do not report allocation failure one by one: the buffer records
** it in 'oom' and ignores the rest, so a caller that builds a string in
** many steps checks once at the end (the rule sds and luaL_Buffer follow
** in their own ways).  Capacity doubles, so appends are amortised O(1).
** Numbers are written here too, in the one form every SQL text and
** parameter of the library wants, whatever locale the host program set,
** and so are quoted identifiers and string literals, so that every piece
** of SQL the library writes is appended by this file.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/loam_int.h"


static int grow (loam__buf *b, size_t extra) {
  size_t need, cap;
  char *p;
  if (b->oom) return 0;
  if (extra > SIZE_MAX - b->len - 1) { b->oom = 1; return 0; }
  need = b->len + extra + 1;
  if (need <= b->cap) return 1;
  cap = b->cap ? b->cap : 64;
  while (cap < need) cap = (cap > SIZE_MAX / 2) ? need : cap * 2;
  p = realloc(b->p, cap);
  if (p == NULL) { b->oom = 1; return 0; }
  b->p = p;
  b->cap = cap;
  return 1;
}


char *loam__buf_reserve (loam__buf *b, size_t n) {
  return grow(b, n) ? b->p + b->len : NULL;
}


void loam__buf_add (loam__buf *b, const void *p, size_t n) {
  if (!grow(b, n)) return;
  if (n > 0) memcpy(b->p + b->len, p, n);
  b->len += n;
  b->p[b->len] = '\0';
}


void loam__buf_adds (loam__buf *b, const char *s) {
  loam__buf_add(b, s, strlen(s));
}


void loam__buf_addc (loam__buf *b, char c) {
  loam__buf_add(b, &c, 1);
}


void loam__buf_vaddf (loam__buf *b, const char *fmt, va_list ap) {
  va_list aq;
  int n;
  va_copy(aq, ap);
  n = vsnprintf(NULL, 0, fmt, aq);
  va_end(aq);
  if (n < 0) { b->oom = 1; return; }
  if (!grow(b, (size_t)n)) return;
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
}


void loam__buf_addf (loam__buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  loam__buf_vaddf(b, fmt, ap);
  va_end(ap);
}


/* Digit by digit: this runs for every integer parameter and has no format to parse. */
void loam__buf_int (loam__buf *b, int64_t i) {
  char tmp[24], *p = tmp + sizeof tmp;
  uint64_t u = i < 0 ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
  do {
    *--p = (char)('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (i < 0) *--p = '-';
  loam__buf_add(b, p, (size_t)(tmp + sizeof tmp - p));
}


/*
** "%.17g" always reads back as the same double; 'shortest' tries 15 and
** 16 digits first, so that a default such as 0.1 stays 0.1 in DDL a
** person reads.  "%g" follows LC_NUMERIC, which a host program may have
** set to a locale whose decimal point is a comma (or several bytes), and
** SQL, JSON and PostgreSQL's parameter text all want '.': whatever stands
** between the digits that is not a sign or an exponent is that point.
** The text of a finite double is at most 24 bytes and the locale's point,
** so 's' always holds it whole.
*/
void loam__buf_double (loam__buf *b, double d, int shortest) {
  char s[64];
  int prec;
  size_t i = 0, run;
  for (prec = shortest ? 15 : 17; prec < 17; prec++) {
    snprintf(s, sizeof s, "%.*g", prec, d);
    if (strtod(s, NULL) == d) break;
  }
  if (prec == 17) snprintf(s, sizeof s, "%.17g", d);
  for (;;) {
    run = strspn(s + i, "0123456789+-eE");
    loam__buf_add(b, s + i, run);
    i += run;
    if (s[i] == '\0') break;
    loam__buf_addc(b, '.');
    i += strcspn(s + i, "0123456789eE");
  }
}


const char *loam__buf_cstr (loam__buf *b) {
  if (b->oom) return NULL;
  if (b->p == NULL && !grow(b, 0)) return NULL;
  b->p[b->len] = '\0';
  return b->p;
}


void loam__buf_reset (loam__buf *b) {
  b->len = 0;
  b->oom = 0;
  if (b->p) b->p[0] = '\0';
}


void loam__buf_free (loam__buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
  b->oom = 0;
}


char *loam__strndup (const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p == NULL) return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}


char *loam__strdup (const char *s) {
  return loam__strndup(s, strlen(s));
}


/*
** Identifiers and string literals escape the same way, each with its own
** quote: the quote doubled, every other byte as it is.  The runs between
** quotes are copied whole.
*/
static void addquoted (loam__buf *b, char q, const char *s, size_t len) {
  size_t i, run = 0;
  loam__buf_addc(b, q);
  for (i = 0; i < len; i++) {
    if (s[i] == q) {
      loam__buf_add(b, s + run, i + 1 - run);
      loam__buf_addc(b, q);
      run = i + 1;
    }
  }
  loam__buf_add(b, s + run, len - run);
  loam__buf_addc(b, q);
}


void loam__buf_ident (loam__buf *b, const char *name, size_t len) {
  addquoted(b, '"', name, len);
}


void loam__buf_literal (loam__buf *b, const char *s, size_t len) {
  addquoted(b, '\'', s, len);
}
