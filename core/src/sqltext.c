/*
** sqltext.c: the little lexing libloam does on SQL text it did not build.
**
** Raw SQL takes '?' placeholders on every backend.  PostgreSQL wants '$n',
** so its text is rewritten here, and the rewrite must leave alone every '?'
** that is not a placeholder: inside string literals (standard, E'' escape
** and dollar-quoted), quoted identifiers and comments.  The same scan
** counts the parameters and refuses a second statement, which a prepared
** statement could not hold anyway.
*/
#include <ctype.h>
#include <string.h>

#include "loam_int.h"


static int identchar (int c) {
  return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}


/* Skips a '/' '*' comment starting at 'p' (nested, as PostgreSQL allows). */
static const char *skip_block_comment (const char *p) {
  int depth = 0;
  while (*p != '\0') {
    if (p[0] == '/' && p[1] == '*') { depth++; p += 2; }
    else if (p[0] == '*' && p[1] == '/') { p += 2; if (--depth == 0) return p; }
    else p++;
  }
  return p;
}


static const char *skip_line_comment (const char *p) {
  while (*p != '\0' && *p != '\n') p++;
  return p;
}


/* Skips blanks and comments. */
static const char *skip_space (const char *p) {
  for (;;) {
    if (isspace((unsigned char)*p)) p++;
    else if (p[0] == '-' && p[1] == '-') p = skip_line_comment(p);
    else if (p[0] == '/' && p[1] == '*') p = skip_block_comment(p);
    else return p;
  }
}


/*
** Returns the end of the quoted run starting at 'p' (which points at the
** opening quote 'q').  Doubled quotes stay inside; with 'backslash' set
** (E'' strings) a backslash escapes the next character.
*/
static const char *skip_quoted (const char *p, char q, int backslash) {
  p++;
  while (*p != '\0') {
    if (backslash && *p == '\\' && p[1] != '\0') p += 2;
    else if (*p == q) {
      if (p[1] == q) p += 2;
      else return p + 1;
    }
    else p++;
  }
  return p;
}


/*
** If 'p' opens a dollar quote ('$tag$'), returns the end of the quoted
** text; otherwise NULL.
*/
static const char *skip_dollar_quote (const char *p) {
  const char *t = p + 1, *end;
  size_t taglen;
  if (isdigit((unsigned char)*t)) return NULL;
  while (isalnum((unsigned char)*t) || *t == '_' || (unsigned char)*t >= 0x80) t++;
  if (*t != '$') return NULL;
  taglen = (size_t)(t - p) + 1;
  end = t + 1;
  while ((end = strchr(end, '$')) != NULL) {
    if (strncmp(end, p, taglen) == 0) return end + taglen;
    end++;
  }
  return p + strlen(p);
}


int loam__sql_to_dollar (const char *sql, loam__buf *out, int *nparams, loam_error *err) {
  const char *p = sql, *run = sql;
  int nq = 0, maxdollar = 0, prev_ident = 0;
  while (*p != '\0') {
    const char *next = NULL;
    char c = *p;
    if (c == '\'') {
      int esc = (p > sql && (p[-1] == 'E' || p[-1] == 'e') &&
                 (p - 1 == sql || !identchar((unsigned char)p[-2])));
      next = skip_quoted(p, '\'', esc);
    }
    else if (c == '"') next = skip_quoted(p, '"', 0);
    else if (c == '-' && p[1] == '-') next = skip_line_comment(p);
    else if (c == '/' && p[1] == '*') next = skip_block_comment(p);
    else if (c == '$' && !prev_ident) {
      if (isdigit((unsigned char)p[1])) {
        long n = 0;
        next = p + 1;
        while (isdigit((unsigned char)*next)) {
          if (n < 100000) n = n * 10 + (*next - '0');
          next++;
        }
        if (n > maxdollar) maxdollar = (int)(n > 65535 ? 65535 : n);
      }
      else next = skip_dollar_quote(p);
    }
    else if (c == '?') {
      loam__buf_add(out, run, (size_t)(p - run));
      if (p[1] == '?') { loam__buf_addc(out, '?'); p += 2; }
      else { loam__buf_addf(out, "$%d", ++nq); p += 1; }
      run = p;
      prev_ident = 0;
      continue;
    }
    else if (c == ';') {
      const char *rest = skip_space(p + 1);
      if (*rest != '\0' && *rest != ';')
        return loam__err(err, LOAM_E_MISUSE,
                         "SQL holds more than one statement; run them one at a time");
    }
    if (next != NULL) { prev_ident = 0; p = next; }
    else { prev_ident = identchar((unsigned char)c); p++; }
  }
  loam__buf_add(out, run, (size_t)(p - run));
  if (nq > 0 && maxdollar > 0)
    return loam__err(err, LOAM_E_MISUSE, "SQL mixes '?' and '$n' placeholders; use one style");
  if (loam__buf_cstr(out) == NULL) return loam__err_nomem(err);
  *nparams = nq > 0 ? nq : maxdollar;
  return LOAM_OK;
}


int loam__sql_starts_with (const char *sql, const char *kw) {
  size_t n = strlen(kw), i;
  const char *p = skip_space(sql);
  for (i = 0; i < n; i++)
    if (toupper((unsigned char)p[i]) != kw[i]) return 0;
  return !identchar((unsigned char)p[n]);
}


/*
** Identifiers come from model declarations, never from end users, but a
** wrong one must still fail loudly before any SQL is sent: empty, too long
** for PostgreSQL (which would truncate it silently) or holding a NUL.
*/
int loam__ident_check (const char *name, size_t len, loam_error *err) {
  if (name == NULL || len == 0)
    return loam__err(err, LOAM_E_MISUSE, "invalid identifier: empty name");
  if (memchr(name, '\0', len) != NULL)
    return loam__err(err, LOAM_E_MISUSE, "invalid identifier: name contains a NUL byte");
  if (len > LOAM__IDENT_MAX)
    return loam__err(err, LOAM_E_MISUSE, "invalid identifier '%.*s...': longer than %d bytes",
                     20, name, LOAM__IDENT_MAX);
  return LOAM_OK;
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
