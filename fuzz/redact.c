/*
** fuzz/redact.c: no literal of the SQL reaches its redacted text.
**
** The input (up to its first NUL) is SQL.  Every string literal '...'
** in it and every number is replaced by a planted secret of its kind
** (where that cannot change how the text is read: the rewritten text
** must lex into the same kinds of tokens, else the input is skipped), and
** the redacted text ('loam_sql_redact') of the rewritten SQL must not
** hold either secret, unless the SQL already held it outside its
** literals.  Read again, the redacted text must hold no number and no
** string but the mark '…'.  The parameters are described as well
** ('loam_sql_params_redact', every column allowed but the planted secret
** of the text bound), and no secret value may show there either.
** Nothing may crash, leak or read out of bounds.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/sql_int.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define SECRET_STRING "Zq8Wx3Kv"
#define SECRET_NUMBER "90817263"


static void fail (const char *what, const char *sql, const char *out) {
  fprintf(stderr, "redact property failed: %s\n  sql: [%s]\n  out: [%s]\n", what, sql, out);
  abort();
}


static int identchar (int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '$' || c >= 0x80;
}


/* The kinds of the tokens of 'sql', blanks left out, as a string of digits. */
static char *kinds (const char *sql) {
  loam__buf b = LOAM__BUF_INIT;
  const char *p, *e;
  int kind;
  char *s;
  for (p = sql; (e = loam__sql_token(p, &kind)), kind != LOAM__TK_END; p = e)
    if (kind != LOAM__TK_SPACE) loam__buf_addc(&b, (char)('0' + kind));
  s = strdup(loam__buf_cstr(&b) ? loam__buf_cstr(&b) : "");
  loam__buf_free(&b);
  if (s == NULL) abort();
  return s;
}


static char *redacted (const char *sql) {
  size_t n = loam_sql_redact(sql, NULL, 0);
  char *buf = malloc(n + 1);
  if (buf == NULL) abort();
  if (loam_sql_redact(sql, buf, n + 1) != n) abort();
  return buf;
}


int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  static const char *const allow_all[] = { "a", "b", "t.a", "limit", NULL };
  const uint8_t *nul = memchr(data, 0, size);
  size_t n = nul ? (size_t)(nul - data) : size;
  char *sql = malloc(n + 1), *out, *k1, *k2, *redo, desc[512];
  const char *p, *e;
  loam__buf plant = LOAM__BUF_INIT;
  loam_value params[3];
  int kind;
  if (sql == NULL) return 0;
  memcpy(sql, data, n);
  sql[n] = '\0';

  /* Plant the secrets in the literals that can take them as they are. */
  for (p = sql; (e = loam__sql_token(p, &kind)), kind != LOAM__TK_END; p = e) {
    int before = p > sql ? (unsigned char)p[-1] : 0;
    size_t len = (size_t)(e - p);
    if (kind == LOAM__TK_STRING && p[0] == '\'' && len >= 2 && p[len - 1] == '\'' &&
        *e != '\'')
      loam__buf_adds(&plant, "'" SECRET_STRING "'");
    else if (kind == LOAM__TK_NUMBER && p[0] >= '0' && p[0] <= '9' && before != '.' &&
             !identchar(before))
      loam__buf_adds(&plant, SECRET_NUMBER);
    else
      loam__buf_add(&plant, p, len);
  }
  if (loam__buf_cstr(&plant) == NULL) abort();
  k1 = kinds(sql);
  k2 = kinds(plant.p);
  if (strcmp(k1, k2) == 0 && strstr(sql, SECRET_STRING) == NULL &&
      strstr(sql, SECRET_NUMBER) == NULL) {
    out = redacted(plant.p);
    if (strstr(out, SECRET_STRING) != NULL || strstr(out, SECRET_NUMBER) != NULL)
      fail("a planted literal reached the redacted text", plant.p, out);
    free(out);
  }

  /* The redacted text holds no literal but the mark. */
  out = redacted(sql);
  for (p = out; (e = loam__sql_token(p, &kind)), kind != LOAM__TK_END; p = e) {
    if (kind == LOAM__TK_NUMBER) fail("a number in the redacted text", sql, out);
    if (kind == LOAM__TK_STRING && ((size_t)(e - p) != strlen(LOAM_REDACTED_STRING) ||
                                    memcmp(p, LOAM_REDACTED_STRING, (size_t)(e - p)) != 0))
      fail("a string other than the mark in the redacted text", sql, out);
  }
  /* Redacting is stable: the redacted text redacts to itself. */
  redo = redacted(out);
  if (strcmp(redo, out) != 0) fail("redacting the redacted text changed it", out, redo);

  /* Parameters: the secret text is bound where no allowed column could take it. */
  params[0] = loam_text(SECRET_STRING, strlen(SECRET_STRING));
  params[1] = loam_int(90817263);
  params[2] = loam_text("shown", 5);
  if (loam_sql_params_redact(sql, params, 3, NULL, desc, sizeof desc) >= sizeof desc)
    fail("parameters described at length", sql, desc);
  if (strstr(desc, SECRET_STRING) != NULL || strstr(desc, SECRET_NUMBER) != NULL ||
      strstr(desc, "shown") != NULL)
    fail("a value shown with nothing allowed", sql, desc);
  loam_sql_params_redact(sql, params, 3, allow_all, desc, sizeof desc);

  free(out);
  free(redo);
  free(k1);
  free(k2);
  loam__buf_free(&plant);
  free(sql);
  return 0;
}
