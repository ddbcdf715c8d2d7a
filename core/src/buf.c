/*
** buf.c: the growable byte buffer used for SQL text and messages.
**
** Appends do not report allocation failure one by one: the buffer records
** it in 'oom' and ignores the rest, so a caller that builds a string in
** many steps checks once at the end (the rule sds and luaL_Buffer follow
** in their own ways).  Capacity doubles, so appends are amortised O(1).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loam_int.h"


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
