/*
** redact.c: SQL text shown without its values: fingerprints and the
** normalised text they hash, the redacted text of a query log, and the
** description of the parameters bound to a statement.
**
** A fingerprint identifies the shape of a statement whatever its values:
** the hash of the text with literals and placeholders made '?', so an N+1
** loop shows up as one fingerprint run many times.  A log line needs more
** of the text than that (which parameter is which) and no value at all:
** the redacted text keeps placeholders and drops literals.  Both read the
** text with the one lexer of sqltext.c, so a '1' inside a comment or a
** quoted name is never taken for a literal, and a quote inside a literal
** never ends it early: what the lexer calls a literal is exactly what
** goes, and an unterminated one runs to the end of the text.
**
** Parameters are shown as their type and size.  A value is shown only
** when the caller allows the column the parameter is compared with, set
** to or inserted into, which is read from the text around it: 'col = ?'
** (and the other comparisons, LIKE, ILIKE), 'col IN (?, ...)', 'col =
** ANY(?)', 'SET col = ?', 'INSERT INTO t (cols) VALUES (...)', and 'LIMIT
** ?' / 'OFFSET ?' (named 'limit' and 'offset').  A parameter found in no
** such place is never shown.
*/
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/sql_int.h"


/*
** Where text goes: into the hash always, into 'buf' while it has room.
** 'len' counts every byte, written or not.
*/
typedef struct sink {
  char *buf;
  size_t size;
  size_t len;
  uint64_t hash;
} sink;


static void emit (sink *k, const char *p, size_t n) {
  size_t i;
  k->hash = loam__fnv1a(k->hash, p, n);
  for (i = 0; i < n && k->len + i + 1 < k->size; i++) k->buf[k->len + i] = p[i];
  k->len += n;
}


static void emits (sink *k, const char *s) {
  emit(k, s, strlen(s));
}


/* Ends the text in 'buf' and returns its full length, as snprintf does. */
static size_t finish (sink *k) {
  if (k->size > 0) k->buf[k->len < k->size ? k->len : k->size - 1] = '\0';
  return k->len;
}


static void sink_init (sink *k, char *buf, size_t size) {
  k->buf = buf;
  k->size = (buf == NULL) ? 0 : size;
  k->len = 0;
  k->hash = LOAM__FNV_BASIS;
}


/* True when the token [p, e) of kind 'kind' is the word 'w' (upper-case), in any case. */
static int isword (const char *p, const char *e, int kind, const char *w) {
  if (kind != LOAM__TK_WORD || (size_t)(e - p) != strlen(w)) return 0;
  for (; p < e; p++, w++)
    if (toupper((unsigned char)*p) != *w) return 0;
  return 1;
}


/* {======================================================================
** Fingerprints and normalised text
** ======================================================================= */

/* Values that normalise to '?'. */
static int isvalue (const char *p, const char *e, int kind) {
  return kind == LOAM__TK_STRING || kind == LOAM__TK_NUMBER || kind == LOAM__TK_PARAM ||
         isword(p, e, kind, "TRUE") || isword(p, e, kind, "FALSE");
}


/* The next token at 'p' that is not blank; its kind into '*kind', its end returned. */
static const char *nextsolid (const char **p, int *kind) {
  const char *e = loam__sql_token(*p, kind);
  if (*kind == LOAM__TK_SPACE) {
    *p = e;
    e = loam__sql_token(e, kind);
  }
  return e;
}


/*
** If 'p' (just after a word IN) starts '(' value, value, ... ')' with
** only values and commas inside (a value may carry a sign), returns the
** end of the ')', else NULL.  Blanks before the '(' are the caller's.
*/
static const char *valuelist (const char *p) {
  const char *e;
  int kind;
  e = nextsolid(&p, &kind);
  if (kind != LOAM__TK_PUNCT || *p != '(') return NULL;
  p = e;
  for (;;) {
    e = nextsolid(&p, &kind);
    if (kind == LOAM__TK_PUNCT && (*p == '-' || *p == '+')) {
      p = e;
      e = nextsolid(&p, &kind);
    }
    if (!isvalue(p, e, kind)) return NULL;
    p = e;
    e = nextsolid(&p, &kind);
    if (kind != LOAM__TK_PUNCT) return NULL;
    if (*p == ')') return e;
    if (*p != ',') return NULL;
    p = e;
  }
}


/*
** The normaliser.  A blank run is emitted lazily, as one space before the
** next solid token, so blanks at either end vanish; ';' are held back the
** same way and vanish, however many, when nothing follows them.
*/
static void normalize (const char *sql, sink *k) {
  const char *p = sql, *e;
  int kind, space = 0, semi = 0;
  if (p == NULL) return;
  for (; (e = loam__sql_token(p, &kind)), kind != LOAM__TK_END; p = e) {
    if (kind == LOAM__TK_SPACE) {
      space = 1;
      continue;
    }
    if (kind == LOAM__TK_PUNCT && *p == ';' && e == p + 1) {
      semi++;
      space = 0;
      continue;
    }
    for (; semi > 0; semi--) emit(k, ";", 1);
    if (space && k->len > 0) emit(k, " ", 1);
    semi = space = 0;
    if (isvalue(p, e, kind))
      emit(k, "?", 1);
    else if (isword(p, e, kind, "IN")) {
      const char *end = valuelist(e);
      emit(k, p, (size_t)(e - p));
      if (end != NULL) {
        const char *q = e;
        int k2;
        loam__sql_token(q, &k2);
        if (k2 == LOAM__TK_SPACE) emit(k, " ", 1);
        emit(k, "(?)", 3);
        e = end;
      }
    }
    else
      emit(k, p, (size_t)(e - p));
  }
}


uint64_t loam_fingerprint (const char *sql) {
  sink k;
  sink_init(&k, NULL, 0);
  normalize(sql, &k);
  return k.hash;
}


size_t loam_sql_normalize (const char *sql, char *buf, size_t size) {
  sink k;
  sink_init(&k, buf, size);
  normalize(sql, &k);
  return finish(&k);
}

/* }====================================================================== */


/* {======================================================================
** Redacted text
** ======================================================================= */

/*
** Two strings can follow each other with nothing between them ('a'b'c'
** is 'a' then the bit string b'c'); their marks are written apart, since
** glued they would read as one string holding a quote.
*/
size_t loam_sql_redact (const char *sql, char *buf, size_t size) {
  const char *p = sql, *e;
  int kind, space = 0, prev = LOAM__TK_SPACE;
  sink k;
  sink_init(&k, buf, size);
  if (p != NULL) {
    for (; (e = loam__sql_token(p, &kind)), kind != LOAM__TK_END; p = e) {
      if (kind == LOAM__TK_SPACE) {
        space = 1;
        continue;
      }
      if ((space || (kind == LOAM__TK_STRING && prev == LOAM__TK_STRING)) && k.len > 0)
        emit(&k, " ", 1);
      space = 0;
      prev = kind;
      if (kind == LOAM__TK_STRING) emits(&k, LOAM_REDACTED_STRING);
      else if (kind == LOAM__TK_NUMBER) emits(&k, LOAM_REDACTED_NUMBER);
      else emit(&k, p, (size_t)(e - p));
    }
  }
  return finish(&k);
}

/* }====================================================================== */


/* {======================================================================
** Parameters
** ======================================================================= */

/* A name as written (quotes included for a quoted one); 'p' NULL for none. */
typedef struct name {
  const char *p;
  size_t n;
} name;

/* A solid token, as the column finder remembers the last few. */
typedef struct tok {
  const char *p, *e;
  int kind;
} tok;

#define RING      6     /* solid tokens remembered */
#define MAXCOLS   256   /* INSERT columns remembered; later ones go unnamed */
#define MAXDEPTH  64    /* parentheses followed; deeper ones are not looked into */

/* What the column finder knows at a point of the text. */
typedef struct finder {
  tok ring[RING];        /* ring[0] the last solid token */
  name table;            /* the statement's table: after the first FROM, INTO or UPDATE */
  int want_table;        /* the last word asks for a table name next */
  int insert;            /* 0; 1 after INTO t; 2 reading its columns; 3 after them; 4 in VALUES */
  name cols[MAXCOLS];
  int ncols;
  int depth;             /* parentheses open */
  int tuple_pos;         /* in VALUES: the position in the open row */
  name in_col[MAXDEPTH + 1];  /* the column of 'col IN (' / 'col = ANY(' opened at a depth */
  name in_tab[MAXDEPTH + 1];
  int npos;              /* positional '?' seen */
} finder;


static int isname (const tok *t) {
  return t->kind == LOAM__TK_WORD || t->kind == LOAM__TK_QIDENT;
}

static int ispunct1 (const tok *t, char c) {
  return t->kind == LOAM__TK_PUNCT && t->e == t->p + 1 && *t->p == c;
}

static name name_of (const tok *t) {
  name n;
  n.p = t->p;
  n.n = (size_t)(t->e - t->p);
  return n;
}


/*
** The comparison that ends at ring[i] going back ('=', '<', '>', '<=',
** '>=', '<>', '!=', LIKE, ILIKE): how many tokens it takes, or 0.
*/
static int comparison (const finder *f, int i) {
  const tok *t = &f->ring[i];
  if (isword(t->p, t->e, t->kind, "LIKE") || isword(t->p, t->e, t->kind, "ILIKE")) return 1;
  if (ispunct1(t, '=') || ispunct1(t, '<') || ispunct1(t, '>')) {
    const tok *u = &f->ring[i + 1];
    if (i + 1 < RING && ((ispunct1(t, '=') && (ispunct1(u, '<') || ispunct1(u, '>') ||
                                               ispunct1(u, '!'))) ||
                         (ispunct1(t, '>') && ispunct1(u, '<'))))
      return 2;
    return 1;
  }
  return 0;
}


/*
** The column named at ring[i] going back ('col' or 'qual.col'): the
** column into '*col', its table (the qualifier, else the statement's)
** into '*tab'.  Returns 0 when ring[i] is no name.
*/
static int column_at (const finder *f, int i, name *col, name *tab) {
  if (i >= RING || !isname(&f->ring[i])) return 0;
  *col = name_of(&f->ring[i]);
  if (i + 2 < RING && ispunct1(&f->ring[i + 1], '.') && isname(&f->ring[i + 2]))
    *tab = name_of(&f->ring[i + 2]);
  else
    *tab = f->table;
  return 1;
}


/* The column that a placeholder coming now is compared with or set to, read from the ring. */
static int compared (const finder *f, name *col, name *tab) {
  int n = comparison(f, 0);
  return n > 0 && column_at(f, n, col, tab);
}


/* Remembers solid token 't' as the last one. */
static void keep (finder *f, const tok *t) {
  memmove(&f->ring[1], &f->ring[0], sizeof(tok) * (RING - 1));
  f->ring[0] = *t;
}


/* What follows INSERT INTO t: '(' opens the columns, '.' qualifies the name, anything else ends it. */
static void after_into (finder *f, const tok *t) {
  const tok *r0 = &f->ring[0];
  if (isname(t) && (ispunct1(r0, '.') || isword(r0->p, r0->e, r0->kind, "INTO")))
    f->table = name_of(t);
  else if (ispunct1(t, '(') && f->depth == 0) f->insert = 2;
  else if (!ispunct1(t, '.')) f->insert = 5;
}


/*
** Reads solid token 't' (a placeholder comes as a number) into the
** finder's state: the table, an INSERT's columns and rows, the columns of
** IN and ANY lists, and the parentheses.
*/
static void follow (finder *f, const tok *t) {
  if (f->want_table && isname(t)) {
    f->table = name_of(t);
    f->want_table = 0;
    keep(f, t);
    return;
  }
  f->want_table = 0;
  if (f->insert == 1) after_into(f, t);
  if (t->kind == LOAM__TK_WORD && f->table.p == NULL &&
      (isword(t->p, t->e, t->kind, "FROM") || isword(t->p, t->e, t->kind, "INTO") ||
       isword(t->p, t->e, t->kind, "UPDATE")))
    f->want_table = 1;
  if (isword(t->p, t->e, t->kind, "INTO") && f->insert == 0) f->insert = 1;
  if (ispunct1(t, '(')) {
    if (f->insert == 4 && f->depth == 0) f->tuple_pos = 0;
    if (f->depth < MAXDEPTH) {
      name col = { NULL, 0 }, tab = { NULL, 0 };
      const tok *r0 = &f->ring[0];
      /* 'col [NOT] IN (' and 'col op ANY|SOME|ALL (' */
      if (isword(r0->p, r0->e, r0->kind, "IN")) {
        const tok *r1 = &f->ring[1];
        column_at(f, isword(r1->p, r1->e, r1->kind, "NOT") ? 2 : 1, &col, &tab);
      }
      else if (isword(r0->p, r0->e, r0->kind, "ANY") || isword(r0->p, r0->e, r0->kind, "SOME") ||
               isword(r0->p, r0->e, r0->kind, "ALL")) {
        int n = comparison(f, 1);
        if (n > 0) column_at(f, n + 1, &col, &tab);
      }
      else if (f->depth > 0) {
        col = f->in_col[f->depth];   /* a subquery or a call inside the list keeps its column */
        tab = f->in_tab[f->depth];
      }
      f->in_col[f->depth + 1] = col;
      f->in_tab[f->depth + 1] = tab;
    }
    f->depth++;
  }
  else if (ispunct1(t, ')')) {
    if (f->depth > 0) f->depth--;
    if (f->insert == 2 && f->depth == 0) f->insert = 3;
  }
  else if (ispunct1(t, ',')) {
    if (f->insert == 4 && f->depth == 1) f->tuple_pos++;
  }
  else if (isname(t) && f->insert == 2 && f->depth == 1) {
    if (f->ncols < MAXCOLS) f->cols[f->ncols] = name_of(t);
    f->ncols++;
  }
  else if (isword(t->p, t->e, t->kind, "VALUES") && f->insert == 3 && f->depth == 0)
    f->insert = 4;
  else if (f->insert == 4 && f->depth == 0)
    f->insert = 5;             /* past the rows: ON CONFLICT, RETURNING ... */
  keep(f, t);
}


/* The parameter numbered 'n' (1-based) named by the placeholder at 'f' now. */
static void place (finder *f, name *cols, name *tabs, int nparams, int n) {
  name col = { NULL, 0 }, tab = { NULL, 0 };
  const tok *r0 = &f->ring[0];
  static const char lim[] = "limit", off[] = "offset";
  if (n < 1 || n > nparams || cols[n - 1].p != NULL) return;
  if (compared(f, &col, &tab))
    ;
  else if (f->insert == 4 && f->depth == 1 && f->tuple_pos < f->ncols &&
           f->tuple_pos < MAXCOLS) {
    col = f->cols[f->tuple_pos];
    tab = f->table;
  }
  else if (isword(r0->p, r0->e, r0->kind, "LIMIT")) {
    col.p = lim;
    col.n = sizeof lim - 1;
  }
  else if (isword(r0->p, r0->e, r0->kind, "OFFSET")) {
    col.p = off;
    col.n = sizeof off - 1;
  }
  else if (f->depth > 0 && f->depth <= MAXDEPTH && f->in_col[f->depth].p != NULL) {
    col = f->in_col[f->depth];
    tab = f->in_tab[f->depth];
  }
  cols[n - 1] = col;
  tabs[n - 1] = tab;
}


/* Finds the column of each of the 'nparams' parameters of 'sql' (p NULL: none). */
static void find_columns (const char *sql, int nparams, name *cols, name *tabs) {
  finder *f = (finder *)calloc(1, sizeof(finder));
  const char *p, *e;
  int kind;
  if (f == NULL) return;       /* no memory: every parameter stays unnamed */
  for (p = sql; (e = loam__sql_token(p, &kind)), kind != LOAM__TK_END; p = e) {
    tok t;
    if (kind == LOAM__TK_SPACE) continue;
    t.p = p;
    t.e = e;
    t.kind = kind;
    if (kind == LOAM__TK_PARAM) {
      long n = 0;
      const char *d;
      if (e == p + 1) n = ++f->npos;
      else
        for (d = p + 1; d < e && n <= nparams; d++) n = n * 10 + (*d - '0');
      if (n <= nparams) place(f, cols, tabs, nparams, (int)n);
      /* A placeholder is a value of the row or list it stands in. */
      t.kind = LOAM__TK_NUMBER;
    }
    follow(f, &t);
  }
  free(f);
}


/* Whether 'a' (length 'n') and the name 'nm' (quotes taken off) are the same, in any case. */
static int same (const char *a, size_t n, name nm) {
  size_t i;
  if (nm.p == NULL) return 0;
  if (nm.n >= 2 && nm.p[0] == '"') {
    nm.p++;
    nm.n -= 2;
  }
  if (n != nm.n) return 0;
  for (i = 0; i < n; i++)
    if (tolower((unsigned char)a[i]) != tolower((unsigned char)nm.p[i])) return 0;
  return 1;
}


/* Whether an entry of 'allow' ("table.column" or "column") names column 'col' of 'tab'. */
static int allowed (const char *const *allow, name col, name tab) {
  if (allow == NULL || col.p == NULL) return 0;
  for (; *allow != NULL; allow++) {
    const char *a = *allow, *dot = strrchr(a, '.');
    if (dot == NULL) {
      if (same(a, strlen(a), col)) return 1;
    }
    else if (same(a, (size_t)(dot - a), tab) && same(dot + 1, strlen(dot + 1), col))
      return 1;
  }
  return 0;
}


/* Writes the value of 'v' as SQL would read it, on one line. */
static void show_value (sink *k, const loam_value *v) {
  char num[40];
  size_t i;
  switch (v->type) {
    case LOAM_BOOL: emits(k, v->u.b ? "TRUE" : "FALSE"); return;
    case LOAM_INT: snprintf(num, sizeof num, "%lld", (long long)v->u.i); emits(k, num); return;
    case LOAM_DOUBLE: snprintf(num, sizeof num, "%.17g", v->u.d); emits(k, num); return;
    case LOAM_TEXT:
      emit(k, "'", 1);
      for (i = 0; i < v->u.s.len; i++) {
        unsigned char c = (unsigned char)v->u.s.ptr[i];
        if (c == '\'') emit(k, "''", 2);
        else if (c < 0x20 || c == 0x7f) {
          snprintf(num, sizeof num, "\\x%02x", c);
          emits(k, num);
        }
        else emit(k, (const char *)&c, 1);
      }
      emit(k, "'", 1);
      return;
    case LOAM_BLOB:
      emits(k, "x'");
      for (i = 0; i < v->u.s.len; i++) {
        snprintf(num, sizeof num, "%02x", (unsigned char)v->u.s.ptr[i]);
        emit(k, num, 2);
      }
      emit(k, "'", 1);
      return;
    default: emits(k, "NULL"); return;
  }
}


/* Writes what the value 'v' may show without being allowed: its type and size. */
static void show_kind (sink *k, const loam_value *v) {
  char s[48];
  if (v->type == LOAM_NULL) {
    emits(k, "NULL");
    return;
  }
  if (v->type == LOAM_TEXT || v->type == LOAM_BLOB)
    snprintf(s, sizeof s, "<%s %zu>", loam_type_name(v->type), v->u.s.len);
  else
    snprintf(s, sizeof s, "<%s>", loam_type_name(v->type));
  emits(k, s);
}


size_t loam_sql_params_redact (const char *sql, const loam_value *params, int nparams,
                               const char *const *allow, char *buf, size_t size) {
  name *cols = NULL, *tabs = NULL;
  sink k;
  int i;
  sink_init(&k, buf, size);
  if (params == NULL || nparams <= 0) return finish(&k);
  if (sql != NULL && allow != NULL && *allow != NULL &&
      (cols = (name *)calloc((size_t)nparams * 2, sizeof(name))) != NULL) {
    tabs = cols + nparams;
    find_columns(sql, nparams, cols, tabs);
  }
  for (i = 0; i < nparams; i++) {
    char head[24];
    snprintf(head, sizeof head, "%s$%d=", i > 0 ? ", " : "", i + 1);
    emits(&k, head);
    if (cols != NULL && allowed(allow, cols[i], tabs[i])) show_value(&k, &params[i]);
    else show_kind(&k, &params[i]);
  }
  free(cols);
  return finish(&k);
}

/* }====================================================================== */
