/*
** fuzz/sqltext.c: the placeholder rewriter and the SQL normaliser on
** arbitrary text.
**
** The input (up to its first NUL) is SQL as a user might pass it to raw
** SQL.  The rewriter of PostgreSQL's driver ('loam__sql_to_dollar') must
** either refuse it or give text and a parameter count that agree with
** each other: the count is the number of '?' placeholders, or the highest
** '$n' or '?NNN'; no '?' placeholder survives, and the rewritten text
** holds its '$n' as tokens of their own; rewriting the result again gives the same text and count (unless
** the input held the '??' operator, which the first rewrite turns into a
** '?' on purpose); and the rewrite is invisible to the normaliser, which
** reads '?' and '$n' alike.  The normaliser ('loam_sql_normalize') must be
** idempotent, report the same length whatever the buffer, and truncate to
** a NUL-terminated prefix.  SQLite's reading of the same text
** ('loam__sql_params' for LOAM_SQLITE) must agree: it accepts what the
** PostgreSQL rewrite accepts (but the '??' operator, PostgreSQL's alone),
** with the same count.  Nothing may crash, leak or read out of bounds.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn/conn_int.h"
#include "sql/sql_int.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);


static void fail (const char *what, const char *in, const char *a, const char *b) {
  fprintf(stderr, "sqltext property failed: %s\n  input:  [%s]\n  first:  [%s]\n  second: [%s]\n",
          what, in, a ? a : "(null)", b ? b : "(null)");
  abort();
}


/* The normalised text of 'sql', malloc'ed; checks the length contract on the way. */
static char *normalized (const char *sql) {
  size_t n = loam_sql_normalize(sql, NULL, 0), m, cut;
  char *buf = malloc(n + 1), small[8];
  if (buf == NULL) abort();
  m = loam_sql_normalize(sql, buf, n + 1);
  if (m != n || strlen(buf) != n) fail("normalised length differs with a buffer", sql, buf, NULL);
  /* A short buffer gets a NUL-terminated prefix and the same length. */
  cut = n < sizeof small ? n + 1 : sizeof small;
  if (loam_sql_normalize(sql, small, cut) != n || strlen(small) != cut - 1 ||
      memcmp(small, buf, cut - 1) != 0)
    fail("truncated normalisation is not a prefix", sql, buf, small);
  return buf;
}


/* Placeholders as the lexer sees them: '?' ones and the highest '$n'. */
static void count_params (const char *sql, int *nq, long *maxdollar, int *opq) {
  const char *p = sql, *e;
  int kind;
  *nq = 0;
  *maxdollar = 0;
  *opq = 0;
  for (; (e = loam__sql_token(p, &kind)), kind != LOAM__TK_END; p = e) {
    if (e <= p) fail("the lexer did not advance", sql, p, NULL);
    if (kind == LOAM__TK_PARAM && e == p + 1) (*nq)++;
    else if (kind == LOAM__TK_PARAM) {  /* '$n', or SQLite's '?NNN' */
      long n = 0;
      const char *d;
      for (d = p + 1; d < e; d++) if (n < 100000) n = n * 10 + (*d - '0');
      if (n > 65535) n = 65535;
      if (n > *maxdollar) *maxdollar = n;
    }
    else if (kind == LOAM__TK_PUNCT && *p == '?') (*opq)++;
  }
}


/* Whether 'a' and 'b' are equal once their spaces are left out. */
static int same_but_blanks (const char *a, const char *b) {
  for (;;) {
    while (*a == ' ') a++;
    while (*b == ' ') b++;
    if (*a != *b) return 0;
    if (*a == '\0') return 1;
    a++, b++;
  }
}


int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  char *sql = malloc(size + 1), *n1, *n2;
  loam__buf out = LOAM__BUF_INIT, again = LOAM__BUF_INIT;
  loam_error err = LOAM_ERROR_INIT;
  int np = -1, np2 = -1, nq, opq;
  long maxd;
  if (sql == NULL) return 0;
  memcpy(sql, data, size);
  sql[size] = '\0';

  n1 = normalized(sql);
  n2 = normalized(n1);
  if (strcmp(n1, n2) != 0) fail("normalise(normalise(x)) != normalise(x)", sql, n1, n2);
  free(n2);

  count_params(sql, &nq, &maxd, &opq);
  {
    loam__buf lite = LOAM__BUF_INIT;
    loam_error lerr = LOAM_ERROR_INIT;
    int nl = -1, okl = loam__sql_params(sql, LOAM_SQLITE, &lite, &nl, &lerr) == LOAM_OK;
    int okp = loam__sql_params(sql, LOAM_POSTGRES, &again, &np2, &err) == LOAM_OK;
    if (opq == 0 && okl != okp)
      fail("SQLite and PostgreSQL disagree on accepting the text", sql,
           okl ? loam__buf_cstr(&lite) : lerr.message, okp ? loam__buf_cstr(&again) : err.message);
    if (okl && okp && nl != np2)
      fail("SQLite and PostgreSQL count the parameters differently", sql, NULL, NULL);
    loam_error_clear(&lerr);
    loam_error_clear(&err);
    loam__buf_free(&lite);
    loam__buf_reset(&again);
  }
  if (loam__sql_to_dollar(sql, &out, &np, &err) == LOAM_OK) {
    const char *y = loam__buf_cstr(&out);
    int yq, yop;
    long ymax;
    if (y == NULL) abort();
    if (err.code != LOAM_E_NONE || err.message != NULL)
      fail("success left an error behind", sql, y, err.message);
    if (np != (nq > 0 ? nq : (int)maxd))
      fail("parameter count is neither the '?' count nor the highest '$n'", sql, y, NULL);
    if (opq == 0) {
      count_params(y, &yq, &ymax, &yop);
      if (yq != 0 || yop != 0) fail("a '?' survived the rewrite", sql, y, NULL);
      if (ymax != np) fail("the rewritten text's highest '$n' is not the count", sql, y, NULL);
      if (loam__sql_to_dollar(y, &again, &np2, &err) != LOAM_OK)
        fail("rewriting the rewritten text failed", sql, y, err.message);
      if (np2 != np || strcmp(loam__buf_cstr(&again), y) != 0)
        fail("rewriting twice differs from once", sql, y, loam__buf_cstr(&again));
      /* '?' and '$n' both normalise to '?', so the rewrite is invisible
      ** there, but for blanks it may add to keep '$n' a token of its own. */
      n2 = normalized(y);
      if (!same_but_blanks(n1, n2)) fail("the rewrite changed the normalised text", sql, n1, n2);
      free(n2);
    }
  }
  else {
    if (err.code != LOAM_E_MISUSE || err.message == NULL || err.message[0] == '\0')
      fail("a refusal without a misuse code and a message", sql, err.message, NULL);
  }
  loam_error_clear(&err);
  loam__buf_free(&out);
  loam__buf_free(&again);
  free(n1);
  free(sql);
  return 0;
}
