/*
** sqltext.c: the little lexing libloam does on SQL text it did not build.
**
** Raw SQL takes '?' placeholders on every backend.  PostgreSQL wants '$n',
** so its text is rewritten here, and the rewrite must leave alone every '?'
** that is not a placeholder: inside string literals (standard, E'' escape
** and dollar-quoted), quoted identifiers and comments.  The same scan
** counts the parameters and refuses a second statement, which a prepared
** statement could not hold anyway.
**
** The scanner is one token reader, 'loam__sql_token', which the
** fingerprints of trace.c use as well, so both read quotes and comments
** the same way.
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


/* 'p' starts a number: digits, a fraction, an exponent with its sign, or hex digits. */
static const char *skip_number (const char *p) {
  int hex = (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'));
  const char *q = p + 1;
  while (identchar((unsigned char)*q) || *q == '.' ||
         ((*q == '+' || *q == '-') && !hex && (q[-1] == 'e' || q[-1] == 'E')))
    q++;
  return q;
}


const char *loam__sql_token (const char *p, int *kind) {
  unsigned char c = (unsigned char)*p;
  const char *q;
  if (c == '\0') { *kind = LOAM__TK_END; return p; }
  if (isspace(c) || (c == '-' && p[1] == '-') || (c == '/' && p[1] == '*')) {
    *kind = LOAM__TK_SPACE;
    return skip_space(p);
  }
  if (c == '\'') { *kind = LOAM__TK_STRING; return skip_quoted(p, '\'', 0); }
  if (c == '"') { *kind = LOAM__TK_QIDENT; return skip_quoted(p, '"', 0); }
  if (c == '?') {
    if (p[1] == '?') { *kind = LOAM__TK_PUNCT; return p + 2; }
    for (q = p + 1; isdigit((unsigned char)*q); q++)
      ;
    *kind = LOAM__TK_PARAM;
    return q;
  }
  if (c == '$') {
    if (isdigit((unsigned char)p[1])) {
      for (q = p + 1; isdigit((unsigned char)*q); q++)
        ;
      *kind = LOAM__TK_PARAM;
      return q;
    }
    if ((q = skip_dollar_quote(p)) != NULL) { *kind = LOAM__TK_STRING; return q; }
    *kind = LOAM__TK_PUNCT;
    return p + 1;
  }
  if (isdigit(c) || (c == '.' && isdigit((unsigned char)p[1]))) {
    *kind = LOAM__TK_NUMBER;
    return skip_number(p);
  }
  if (identchar(c)) {
    for (q = p + 1; identchar((unsigned char)*q); q++)
      ;
    /* A one-letter prefix glued to a quote makes a string: E'' (with
    ** backslash escapes), X'' and B'' (bits), N'' (national). */
    if (q == p + 1 && *q == '\'' && strchr("EeXxBbNn", c) != NULL) {
      *kind = LOAM__TK_STRING;
      return skip_quoted(q, '\'', c == 'E' || c == 'e');
    }
    *kind = LOAM__TK_WORD;
    return q;
  }
  *kind = LOAM__TK_PUNCT;
  return p + 1;
}


int loam__sql_to_dollar (const char *sql, loam__buf *out, int *nparams, loam_error *err) {
  const char *p, *next, *run = sql;
  int nq = 0, maxdollar = 0, kind, prev = LOAM__TK_SPACE;
  for (p = sql; (next = loam__sql_token(p, &kind)), kind != LOAM__TK_END;
       prev = kind, p = next) {
    if (kind == LOAM__TK_PARAM && *p == '?') {
      loam__buf_add(out, run, (size_t)(p - run));
      /* Glued to a name or a number, '$n' would become part of it ('$' is a
      ** name character, and a number runs on over name characters); after
      ** a '$' it would open a dollar quote. */
      if (prev == LOAM__TK_WORD || prev == LOAM__TK_NUMBER || (p > sql && p[-1] == '$'))
        loam__buf_addc(out, ' ');
      run = p + 1;
      if (next == p + 1) loam__buf_addf(out, "$%d", ++nq);
      else loam__buf_addc(out, '$');  /* SQLite's '?NNN' is parameter NNN, as '$NNN' is */
    }
    if (kind == LOAM__TK_PARAM && next > p + 1) {  /* '$n' or '?NNN': the highest counts */
      long n = 0;
      for (p++; p < next; p++)
        if (n < 100000) n = n * 10 + (*p - '0');
      if (n > maxdollar) maxdollar = (int)(n > 65535 ? 65535 : n);
    }
    else if (kind == LOAM__TK_PUNCT && *p == '?') {  /* '??': the operator '?' */
      loam__buf_add(out, run, (size_t)(p - run));
      loam__buf_addc(out, '?');
      run = next;
    }
    else if (kind == LOAM__TK_PUNCT && *p == ';') {
      const char *rest = skip_space(next);
      if (*rest != '\0' && *rest != ';')
        return loam__err(err, LOAM_E_MISUSE,
                         "SQL holds more than one statement; run them one at a time");
    }
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
