/*
** fuzz/fingerprint.c: statement fingerprints ignore values and layout,
** and nothing else.
**
** The input (up to its first NUL) is SQL; the bytes after the NUL steer a
** rewrite of it that keeps its shape: every blank run becomes other
** blanks or a comment, every literal, number, placeholder, TRUE or FALSE
** another one of its kind, each rewritten token chosen so that it cannot
** merge with its neighbours.  The two texts must normalise alike and so
** get one fingerprint ('loam_fingerprint'), which must also be the FNV-1a
** hash of the normalised text, as loam.h promises, and equal that of the
** normalised text itself.  Nothing may crash, leak or read out of bounds.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn/conn_int.h"
#include "sql/sql_int.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);


static void fail (const char *what, const char *a, const char *b, const char *na,
                  const char *nb) {
  fprintf(stderr, "fingerprint property failed: %s\n  first:  [%s]\n  second: [%s]\n"
          "  normalised: [%s]\n              [%s]\n", what, a, b, na ? na : "", nb ? nb : "");
  abort();
}


static char *normalized (const char *sql) {
  size_t n = loam_sql_normalize(sql, NULL, 0);
  char *buf = malloc(n + 1);
  if (buf == NULL) abort();
  loam_sql_normalize(sql, buf, n + 1);
  return buf;
}


static uint64_t fnv1a (const char *s) {
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  for (; *s != '\0'; s++) h = (h ^ (unsigned char)*s) * UINT64_C(0x100000001b3);
  return h;
}


static int identchar (int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '$' || c >= 0x80;
}


/* Whether the token [p, e) is the word 'w' (upper-case) in any case. */
static int isword (const char *p, const char *e, const char *w) {
  size_t n = strlen(w), i;
  if ((size_t)(e - p) != n) return 0;
  for (i = 0; i < n; i++)
    if ((p[i] & ~0x20) != w[i]) return 0;
  return 1;
}


/* The steering bytes, read round-robin (0 when there are none). */
typedef struct steer {
  const uint8_t *p;
  size_t n, i;
} steer;

static unsigned pick (steer *s) {
  return s->n == 0 ? 0 : s->p[s->i++ % s->n];
}


/*
** Appends to 'out' a rewrite of the token [p, e) of kind 'kind' in 'sql'
** that normalises the same, or the token itself.
*/
static void rewrite (loam__buf *out, const char *sql, const char *p, const char *e, int kind,
                     int prev, steer *st) {
  static const char *const blanks[] = { " ", "\n\t ", " /* a comment */ ", " -- a comment\n" };
  static const char *const strings[] = { "'v'", "'it''s'", "''", "'?'" };
  unsigned c = pick(st);
  int before = p > sql ? (unsigned char)p[-1] : 0, after = (unsigned char)*e;
  size_t len = (size_t)(e - p);
  if (c % 4 == 0) { loam__buf_add(out, p, len); return; }  /* kept as it is */
  if (kind == LOAM__TK_SPACE) {
    /* A comment that is never closed runs to the end: leave it to be one. */
    if (*e == '\0' && len >= 2 && p[len - 1] != '\n' && p[len - 1] != '/')
      loam__buf_add(out, p, len);
    else loam__buf_adds(out, blanks[c % 4]);
  }
  else if (kind == LOAM__TK_STRING && before != '\'' && after != '\'' && len >= 2 &&
           p[len - 1] == '\'' && (p[0] == '\'' || p[1] == '\''))
    loam__buf_adds(out, strings[(c >> 2) % 4]);
  else if (kind == LOAM__TK_NUMBER) {
    /* Digits other than 0 change among 1-9: the token keeps its shape ('0x', exponents). */
    size_t i;
    for (i = 0; i < len; i++) {
      char d = p[i];
      if (d >= '1' && d <= '9') d = (char)('1' + (d - '1' + (int)c) % 9);
      loam__buf_addc(out, d);
    }
  }
  else if (kind == LOAM__TK_PARAM && prev != LOAM__TK_WORD && prev != LOAM__TK_NUMBER &&
           !identchar(before) && before != '?' && before != '$' && after != '?' &&
           !(after >= '0' && after <= '9'))
    loam__buf_adds(out, (c & 4) ? "?" : "$7");
  else if (kind == LOAM__TK_WORD && (isword(p, e, "TRUE") || isword(p, e, "FALSE")))
    loam__buf_adds(out, (c & 4) ? "false" : "TRUE");
  else loam__buf_add(out, p, len);
}


int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  const uint8_t *nul = memchr(data, 0, size);
  size_t n = nul ? (size_t)(nul - data) : size;
  char *sql = malloc(n + 1), *n1, *n2, *n3;
  const char *p, *e, *other;
  loam__buf out = LOAM__BUF_INIT;
  steer st;
  int kind, prev = LOAM__TK_SPACE;
  if (sql == NULL) return 0;
  memcpy(sql, data, n);
  sql[n] = '\0';
  st.p = nul ? nul + 1 : NULL;
  st.n = nul ? size - n - 1 : 0;
  st.i = 0;

  for (p = sql; (e = loam__sql_token(p, &kind)), kind != LOAM__TK_END; prev = kind, p = e)
    rewrite(&out, sql, p, e, kind, prev, &st);
  other = loam__buf_cstr(&out);
  if (other == NULL) abort();

  n1 = normalized(sql);
  n2 = normalized(other);
  n3 = normalized(n1);
  if (loam_fingerprint(sql) != fnv1a(n1))
    fail("the fingerprint is not the hash of the normalised text", sql, other, n1, n2);
  if (loam_fingerprint(n1) != loam_fingerprint(sql) || strcmp(n1, n3) != 0)
    fail("the normalised text has another fingerprint", sql, n1, n1, n3);
  if (strcmp(n1, n2) != 0 || loam_fingerprint(sql) != loam_fingerprint(other))
    fail("a rewrite that keeps the shape changed the fingerprint", sql, other, n1, n2);
  if (loam_fingerprint(NULL) != loam_fingerprint(""))
    fail("NULL and the empty text differ", "", "", NULL, NULL);

  free(n1);
  free(n2);
  free(n3);
  loam__buf_free(&out);
  free(sql);
  return 0;
}
