/*
** sqltext.c: the little lexing libloam does on SQL text it did not build.
**
** Raw SQL takes '?' placeholders, or numbered ones ('$n', and SQLite's
** '?n'), on every backend.  Each backend wants its own form (PostgreSQL
** '$n', SQLite '?' and '?n'), so the text is rewritten here, and the
** rewrite must leave alone every '?' that is not a placeholder: inside
** string literals (standard, E'' escape and dollar-quoted), quoted
** identifiers and comments.  The same scan counts the parameters the same
** way for both backends (so a count error reads alike on both), refuses
** mixed styles and numbered placeholders with gaps, and refuses a second
** statement, which a prepared statement could not hold anyway.
**
** The scanner is one token reader, 'loam__sql_token', which the
** fingerprints of trace.c use as well, so both read quotes and comments
** the same way.  Each backend's placeholders are its dialect's
** (dialect.c).
*/
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "sql/dialect_int.h"


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


/* The most parameters a statement may take: PostgreSQL's limit (a 16-bit count). */
#define MAXPARAM 65535

/* What 'loam__sql_params' learns about the placeholders of one text. */
typedef struct scan {
  int npos;                   /* positional '?' seen */
  int maxnum;                 /* highest numbered placeholder ('$n', '?n') */
  const char *firstnum;       /* the first numbered one, for messages */
  unsigned char *used;        /* numbered placeholders seen, one bit per number */
} scan;


/*
** Reads the number of the numbered placeholder 'p' .. 'end' ('$n' or
** '?n') into '*n'.  Zero and numbers past MAXPARAM are refused.
*/
static int placeholder_number (const char *p, const char *end, int *n, loam_error *err) {
  long v = 0;
  const char *d;
  for (d = p + 1; d < end; d++)
    if (v <= MAXPARAM) v = v * 10 + (*d - '0');
  if (v == 0 || v > MAXPARAM)
    return loam__err(err, LOAM_E_MISUSE, "placeholder '%.*s' is out of range (1 to %d)",
                     (int)(end - p > 12 ? 12 : end - p), p, MAXPARAM);
  *n = (int)v;
  return LOAM_OK;
}


/* Notes numbered placeholder 'n' in 'sc'. */
static int note_number (scan *sc, int n, loam_error *err) {
  if (sc->used == NULL && (sc->used = calloc(MAXPARAM / 8 + 1, 1)) == NULL)
    return loam__err_nomem(err);
  sc->used[n / 8] |= (unsigned char)(1u << (n % 8));
  if (n > sc->maxnum) sc->maxnum = n;
  return LOAM_OK;
}


/* The checks once the whole text was read: one style, and no number left out. */
static int check_scan (const scan *sc, int *nparams, loam_error *err) {
  int i;
  if (sc->npos > 0 && sc->maxnum > 0)
    return loam__err(err, LOAM_E_MISUSE, "SQL mixes '?' and numbered placeholders ('%.*s'); "
                     "use one style", (int)strspn(sc->firstnum + 1, "0123456789") + 1,
                     sc->firstnum);
  for (i = 1; i < sc->maxnum; i++)
    if (!(sc->used[i / 8] & (1u << (i % 8))))
      return loam__err(err, LOAM_E_MISUSE, "SQL uses placeholder %d but not %d: every "
                       "parameter must appear in the text", sc->maxnum, i);
  *nparams = sc->npos > 0 ? sc->npos : sc->maxnum;
  return LOAM_OK;
}


/*
** Writes a blank before a '$n' that would otherwise glue onto the token
** before it 'p': after a name or a number, '$n' would become part of it
** ('$' is a name character, and a number runs on over name characters);
** after a '$' it would open a dollar quote.
*/
static void glue_guard (loam__buf *out, const char *sql, const char *p, int prev) {
  if (prev == LOAM__TK_WORD || prev == LOAM__TK_NUMBER || (p > sql && p[-1] == '$'))
    loam__buf_addc(out, ' ');
}


/*
** The one reading of raw SQL placeholders, for both backends.  Each
** placeholder token is rewritten into the backend's own form, so '$n'
** and '?n' mean the n-th parameter on both (SQLite alone would number a
** '$2' by its first appearance, as a named parameter).
*/
/* True when the word token 'p'..'e' is 'kw' (upper-case), in any case. */
static int word_is (const char *p, const char *e, const char *kw) {
  size_t n = strlen(kw), i;
  if ((size_t)(e - p) != n) return 0;
  for (i = 0; i < n; i++)
    if (toupper((unsigned char)p[i]) != kw[i]) return 0;
  return 1;
}


/*
** True when 'sql' is CREATE [TEMP|TEMPORARY] TRIGGER: its body holds
** statements of its own, each ending with ';', and the trigger ends at
** the ';' after the END that closes no CASE expression.
*/
static int is_trigger (const char *sql) {
  const char *p = sql, *e;
  int kind, i;
  for (i = 0; i < 3; i++) {
    do { e = loam__sql_token(p, &kind); if (kind == LOAM__TK_SPACE) p = e; }
    while (kind == LOAM__TK_SPACE);
    if (kind != LOAM__TK_WORD) return 0;
    if (i == 0 && !word_is(p, e, "CREATE")) return 0;
    if (i > 0 && word_is(p, e, "TRIGGER")) return 1;
    if (i == 1 && !word_is(p, e, "TEMP") && !word_is(p, e, "TEMPORARY")) return 0;
    p = e;
  }
  return 0;
}


int loam__sql_params (const char *sql, loam_backend backend, loam__buf *out, int *nparams,
                      loam_error *err) {
  const loam__dialect_desc *d = loam__dialect(backend);
  const char *p, *next, *run = sql;
  scan sc = { 0, 0, NULL, NULL };
  int kind, n = 0, rc = LOAM_OK, prev = LOAM__TK_SPACE;
  int trigger, after_end = 0;     /* in a trigger: the last word was END of no CASE */
  int cases = 0;                  /* in a trigger: CASE expressions open */
  if (d == NULL) return loam__err(err, LOAM_E_MISUSE, "SQL: unknown backend (%d)", (int)backend);
  trigger = d->trigger_bodies && is_trigger(sql);
  for (p = sql; (next = loam__sql_token(p, &kind)), kind != LOAM__TK_END;
       prev = kind, p = next) {
    if (trigger && kind != LOAM__TK_SPACE) {
      int end = kind == LOAM__TK_WORD && word_is(p, next, "END");
      if (kind == LOAM__TK_WORD && word_is(p, next, "CASE")) cases++;
      if (end && cases > 0) { cases--; end = 0; }
      if (kind == LOAM__TK_PUNCT && *p == ';' && !after_end) continue;
      after_end = end;
    }
    if (kind == LOAM__TK_PARAM && next == p + 1) {    /* a positional '?' */
      sc.npos++;
      loam__buf_add(out, run, (size_t)(p - run));
      if (d->numbered == '$') glue_guard(out, sql, p, prev);
      d->placeholder(out, sc.npos);
      run = next;
    }
    else if (kind == LOAM__TK_PARAM) {                /* '$n' or '?n' */
      if ((rc = placeholder_number(p, next, &n, err)) != LOAM_OK ||
          (rc = note_number(&sc, n, err)) != LOAM_OK)
        break;
      if (sc.firstnum == NULL) sc.firstnum = p;
      loam__buf_add(out, run, (size_t)(p - run));
      if (d->numbered == '$') glue_guard(out, sql, p, prev);
      loam__buf_addc(out, d->numbered);
      loam__buf_int(out, n);
      run = next;
    }
    else if (kind == LOAM__TK_PUNCT && *p == '?') {   /* '??': the operator '?' */
      if (!d->literal_qmark) {
        rc = loam__err(err, LOAM_E_MISUSE, "'?" "?' (the literal '?' operator) exists on "
                       "PostgreSQL only; %s has no '?' operator", d->name);
        break;
      }
      loam__buf_add(out, run, (size_t)(p - run));
      loam__buf_addc(out, '?');
      run = next;
    }
    else if (kind == LOAM__TK_PUNCT && *p == ';') {
      const char *rest = skip_space(next);
      if (*rest != '\0' && *rest != ';') {
        rc = loam__err(err, LOAM_E_MISUSE,
                       "SQL holds more than one statement; run them one at a time");
        break;
      }
    }
  }
  if (rc == LOAM_OK) rc = check_scan(&sc, nparams, err);
  free(sc.used);
  if (rc != LOAM_OK) return rc;
  loam__buf_add(out, run, (size_t)(p - run));
  if (loam__buf_cstr(out) == NULL) return loam__err_nomem(err);
  return LOAM_OK;
}


int loam__sql_to_dollar (const char *sql, loam__buf *out, int *nparams, loam_error *err) {
  return loam__sql_params(sql, LOAM_POSTGRES, out, nparams, err);
}


/*
** Whether 'sql' holds a named parameter of dialect 'd' (':name' on
** SQLite): a mark of 'named_marks' outside literals, quoted names and
** comments with a name glued to it.
*/
static int has_named (const loam__dialect_desc *d, const char *sql) {
  const char *p, *next;
  int kind;
  if (d->named_marks == NULL) return 0;
  for (p = sql; (next = loam__sql_token(p, &kind)), kind != LOAM__TK_END; p = next)
    if (kind == LOAM__TK_PUNCT && next == p + 1 && strchr(d->named_marks, *p) != NULL &&
        identchar((unsigned char)*next))
      return 1;
  return 0;
}


/*
** The count alone: the rewritten text is dropped.  A named parameter,
** which the driver refuses only once the backend prepared the text, is
** refused here too, so that a caller never takes the count of a text
** 'loam_query' does not take for a count it got wrong.  A count is not
** checked against a backend's limit, which the driver reports.
*/
int loam_sql_param_count (loam_backend backend, const char *sql, int *n, loam_error *err) {
  loam__buf out = LOAM__BUF_INIT;
  const loam__dialect_desc *d = loam__dialect(backend);
  int rc;
  if (sql == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_sql_param_count: SQL text is NULL");
  if (n == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_sql_param_count: 'n' is NULL");
  rc = loam__sql_params(sql, backend, &out, n, err);
  loam__buf_free(&out);
  if (rc == LOAM_OK && has_named(d, sql))
    rc = loam__err(err, LOAM_E_MISUSE, "SQL holds placeholders loam does not read: write them "
                   "as '?' or '$n' (not ':name', '@name' or '$name'), outside literals, quoted "
                   "names and comments");
  return rc;
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
  if (len > LOAM_IDENT_MAX)
    return loam__err(err, LOAM_E_MISUSE, "invalid identifier '%.*s...': longer than %d bytes",
                     20, name, LOAM_IDENT_MAX);
  return LOAM_OK;
}
