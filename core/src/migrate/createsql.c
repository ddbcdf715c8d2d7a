/*
** createsql.c: what SQLite keeps only in the CREATE text.
**
** SQLite's pragmas give the columns, keys, foreign keys and indexes of a
** table, but not the names of its constraints, its CHECK predicates, or
** the expressions and WHERE predicate of an index: those exist only in
** the text of the CREATE statement that 'sqlite_schema' stores.  This
** file reads them from there with the core's SQL lexer ('loam__sql_token'),
** so quotes, comments and nested parentheses are understood, and hands
** them to introspect.c, which matches them with what the pragmas say.
** Text it cannot make sense of yields less, never an error: the pragmas
** stay the truth about what exists.
*/
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/migrate_int.h"


typedef struct tok {
  int kind;
  const char *p, *e;       /* the token's text */
} tok;

/* The tokens of one text, blanks and comments left out. */
typedef struct toks {
  tok *t;
  int n, cap;
} toks;


static int lex (const char *sql, toks *ts) {
  const char *p = sql;
  for (;;) {
    int kind;
    const char *e = loam__sql_token(p, &kind);
    if (kind == LOAM__TK_END) return LOAM_OK;
    if (kind != LOAM__TK_SPACE) {
      if (ts->n == ts->cap) {
        int cap = ts->cap ? ts->cap * 2 : 64;
        tok *t = realloc(ts->t, (size_t)cap * sizeof *t);
        if (t == NULL) return LOAM_ERROR;
        ts->t = t;
        ts->cap = cap;
      }
      ts->t[ts->n].kind = kind;
      ts->t[ts->n].p = p;
      ts->t[ts->n].e = e;
      ts->n++;
    }
    p = e;
  }
}


/* True when token 'k' is the keyword 'kw' (upper-case), in any case. */
static int is (const toks *ts, int k, const char *kw) {
  size_t n;
  if (k >= ts->n || ts->t[k].kind != LOAM__TK_WORD) return 0;
  n = (size_t)(ts->t[k].e - ts->t[k].p);
  if (strlen(kw) != n) return 0;
  for (size_t i = 0; i < n; i++)
    if (toupper((unsigned char)ts->t[k].p[i]) != kw[i]) return 0;
  return 1;
}


static int punct (const toks *ts, int k, char c) {
  return k < ts->n && ts->t[k].kind == LOAM__TK_PUNCT && ts->t[k].e - ts->t[k].p == 1 &&
         ts->t[k].p[0] == c;
}


/* The token after the parenthesis group that opens at 'k' (or 'k' + 1 when none does). */
static int skipgroup (const toks *ts, int k) {
  int depth = 0;
  if (!punct(ts, k, '(')) return k + 1;
  for (; k < ts->n; k++) {
    if (punct(ts, k, '(')) depth++;
    else if (punct(ts, k, ')') && --depth == 0) return k + 1;
  }
  return ts->n;
}


/*
** The name token 'k' spells: a bare word, or a quoted name ("..." or, as
** SQLite also takes, '...') with its doubled quotes undone.  NULL for any
** other token, or when memory ran out.
*/
static const char *name (loam__arena *a, const toks *ts, int k) {
  const tok *t;
  char *s, *w;
  const char *r;
  if (k >= ts->n) return NULL;
  t = &ts->t[k];
  if (t->kind == LOAM__TK_WORD) return loam__arena_strndup(a, t->p, (size_t)(t->e - t->p));
  if ((t->kind != LOAM__TK_QIDENT && t->kind != LOAM__TK_STRING) || t->p[0] != t->e[-1] ||
      t->e - t->p < 2)
    return NULL;
  s = w = loam__arena_alloc(a, (size_t)(t->e - t->p));
  if (s == NULL) return NULL;
  for (r = t->p + 1; r < t->e - 1; r++) {
    *w++ = *r;
    if (*r == t->p[0]) r++;      /* a doubled quote */
  }
  return s;
}


/* The text from the start of token 'from' to the end of token 'to' - 1, or NULL. */
static const char *text (loam__arena *a, const toks *ts, int from, int to) {
  if (from >= to) return NULL;
  return loam__arena_strndup(a, ts->t[from].p, (size_t)(ts->t[to - 1].e - ts->t[from].p));
}


/* The names of the list "( a, b, ... )" that opens at 'k', into 'c'. */
static void namelist (loam__arena *a, const toks *ts, int k, loam__sqlcons *c) {
  int end = skipgroup(ts, k), i, n = 0;
  if (!punct(ts, k, '(')) return;
  c->columns = loam__arena_alloc(a, sizeof(char *) * (size_t)(end - k));
  if (c->columns == NULL) return;
  /* each item is a name, maybe followed by COLLATE x or ASC/DESC */
  for (i = k + 1; i < end - 1; i++) {
    if (i == k + 1 || punct(ts, i - 1, ',')) {
      const char *s = name(a, ts, i);
      if (s != NULL) c->columns[n++] = s;
    }
  }
  c->ncolumns = n;
}


typedef struct list {
  loam__sqlcons *c;
  int n, cap;
} list;


static loam__sqlcons *add (loam__arena *a, list *l, char kind, const char *cname) {
  loam__sqlcons *c;
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 8;
    loam__sqlcons *nc = loam__arena_alloc(a, sizeof *nc * (size_t)cap);
    if (nc == NULL) return NULL;
    if (l->n > 0) memcpy(nc, l->c, sizeof *nc * (size_t)l->n);
    l->c = nc;
    l->cap = cap;
  }
  c = &l->c[l->n++];
  c->kind = kind;
  c->name = cname;
  return c;
}


/* The predicate of CHECK at 'k' (the group that follows it). */
static void check (loam__arena *a, const toks *ts, int k, loam__sqlcons *c) {
  int end = skipgroup(ts, k + 1);
  if (punct(ts, k + 1, '(')) c->check = text(a, ts, k + 2, end - 1);
}


/* A table constraint: the item at 'k' starts with CONSTRAINT or a constraint keyword. */
static void tableconstraint (loam__arena *a, const toks *ts, int k, list *l) {
  const char *cname = NULL;
  loam__sqlcons *c;
  if (is(ts, k, "CONSTRAINT")) {
    cname = name(a, ts, k + 1);
    k += 2;
  }
  if (is(ts, k, "PRIMARY") && is(ts, k + 1, "KEY")) {
    if ((c = add(a, l, 'p', cname)) != NULL) namelist(a, ts, k + 2, c);
  }
  else if (is(ts, k, "UNIQUE")) {
    if ((c = add(a, l, 'u', cname)) != NULL) namelist(a, ts, k + 1, c);
  }
  else if (is(ts, k, "CHECK")) {
    if ((c = add(a, l, 'c', cname)) != NULL) check(a, ts, k, c);
  }
  else if (is(ts, k, "FOREIGN") && is(ts, k + 1, "KEY")) {
    if ((c = add(a, l, 'f', cname)) != NULL) namelist(a, ts, k + 2, c);
  }
}


/*
** A column definition 'from'..'to': its name, its type, then column
** constraints, each after an optional CONSTRAINT "name".
*/
static void columndef (loam__arena *a, const toks *ts, int from, int to, list *l) {
  const char *col = name(a, ts, from);
  const char *cname = NULL;
  int k = from + 1;
  if (col == NULL) return;
  while (k < to) {
    char kind = 0;
    loam__sqlcons *c;
    if (is(ts, k, "CONSTRAINT")) {
      cname = name(a, ts, k + 1);
      k += 2;
      continue;
    }
    if (is(ts, k, "PRIMARY")) kind = 'p';
    else if (is(ts, k, "UNIQUE")) kind = 'u';
    else if (is(ts, k, "CHECK")) kind = 'c';
    else if (is(ts, k, "REFERENCES")) kind = 'f';
    else if (is(ts, k, "NOT") || is(ts, k, "DEFAULT") || is(ts, k, "COLLATE") ||
             is(ts, k, "GENERATED") || is(ts, k, "AS"))
      cname = NULL;            /* a constraint the catalog reports without its name */
    if (kind != 0 && (c = add(a, l, kind, cname)) != NULL) {
      cname = NULL;
      if (kind == 'c') check(a, ts, k, c);
      if ((c->columns = loam__arena_alloc(a, sizeof(char *))) != NULL) {
        c->columns[0] = col;
        c->ncolumns = 1;
      }
    }
    k = punct(ts, k, '(') ? skipgroup(ts, k) : k + 1;
  }
}


int loam__sqlite_constraints (loam__arena *a, const char *sql, loam__sqlcons **out, int *n) {
  toks ts = { NULL, 0, 0 };
  list l = { NULL, 0, 0 };
  int k = 0, end;
  *out = NULL;
  *n = 0;
  if (sql == NULL) return LOAM_OK;
  if (lex(sql, &ts) != LOAM_OK) { free(ts.t); return LOAM_ERROR; }
  while (k < ts.n && !punct(&ts, k, '(')) k++;
  end = skipgroup(&ts, k) - 1;       /* the closing parenthesis */
  k++;
  while (k < end) {
    int from = k;
    while (k < end && !punct(&ts, k, ',')) k = punct(&ts, k, '(') ? skipgroup(&ts, k) : k + 1;
    if (is(&ts, from, "CONSTRAINT") || is(&ts, from, "PRIMARY") || is(&ts, from, "UNIQUE") ||
        is(&ts, from, "CHECK") || is(&ts, from, "FOREIGN"))
      tableconstraint(a, &ts, from, &l);
    else
      columndef(a, &ts, from, k, &l);
    k++;
  }
  free(ts.t);
  if (a->oom) return LOAM_ERROR;
  *out = l.c;
  *n = l.n;
  return LOAM_OK;
}


int loam__sqlite_index_parts (loam__arena *a, const char *sql, const char ***parts,
                              int *nparts, const char **where) {
  toks ts = { NULL, 0, 0 };
  int k = 0, end, n = 0;
  *parts = NULL;
  *nparts = 0;
  *where = NULL;
  if (sql == NULL) return LOAM_OK;
  if (lex(sql, &ts) != LOAM_OK) { free(ts.t); return LOAM_ERROR; }
  while (k < ts.n && !is(&ts, k, "ON")) k++;
  k += 2;                             /* ON "table" */
  end = skipgroup(&ts, k) - 1;
  if (punct(&ts, k, '(') && end > k &&
      (*parts = loam__arena_alloc(a, sizeof(char *) * (size_t)(end - k))) != NULL) {
    k++;
    while (k < end) {
      int from = k;
      while (k < end && !punct(&ts, k, ',')) k = punct(&ts, k, '(') ? skipgroup(&ts, k) : k + 1;
      (*parts)[n++] = text(a, &ts, from, k);
      k++;
    }
    *nparts = n;
    k = end + 1;
    if (is(&ts, k, "WHERE")) {
      int last = ts.n;
      if (punct(&ts, last - 1, ';')) last--;
      *where = text(a, &ts, k + 1, last);
    }
  }
  free(ts.t);
  return a->oom ? LOAM_ERROR : LOAM_OK;
}


int loam__sqlite_same_name (const char *a, const char *b) {
  for (; *a != '\0' && *b != '\0'; a++, b++)
    if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
  return *a == *b;
}
