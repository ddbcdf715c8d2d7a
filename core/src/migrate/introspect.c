/*
** introspect.c: reads the schema of a live database.
**
** Tables, columns, keys, checks, foreign keys and indexes, from the
** catalog queries that each backend's dialect describes (dialect.c): the
** same row shapes on SQLite (pragmas) and PostgreSQL (pg_catalog), so
** this file reads them without asking which backend it talks to.  What
** SQLite keeps only in its CREATE text (constraint names, checks, index
** expressions and predicates) comes from createsql.c where the dialect
** says so ('names_in_sql').  The result is the read-only tree of loam.h,
** allocated in one arena; it is what a migration diffs against, what a
** table rebuild recreates, and what 'models pull' writes out.
*/
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/migrate_int.h"
#include "sql/dialect_int.h"


/* The public tree and the arena that holds it. */
typedef struct box {
  loam_db_schema pub;
  loam__arena arena;
} box;

/* State of one introspection. */
typedef struct I {
  loam_conn *conn;
  const loam__dialect_desc *d;
  loam__arena *a;
  loam_error *err;
} I;


static int nomem (I *in) {
  return loam__err_nomem(in->err);
}


/* A growable array in the arena; the old copy is left there (a tree is short-lived). */
static void *push (I *in, void **arr, int *n, int *cap, size_t size) {
  char *p;
  if (*n == *cap) {
    int ncap = *cap ? *cap * 2 : 4;
    void *na = loam__arena_alloc(in->a, size * (size_t)ncap);
    if (na == NULL) return NULL;
    if (*n > 0) memcpy(na, *arr, size * (size_t)*n);
    *arr = na;
    *cap = ncap;
  }
  p = (char *)*arr + size * (size_t)(*n)++;
  return p;
}


/* {======================================================================
** Reading rows
** ======================================================================= */

/* Column 'i' of the current row as a copy in the arena; NULL for SQL NULL. */
static const char *col_text (I *in, loam_stmt *st, int i) {
  loam_value v;
  if (loam_column(st, i, &v) != LOAM_OK || v.type == LOAM_NULL) return NULL;
  if (v.type == LOAM_TEXT || v.type == LOAM_BLOB)
    return loam__arena_strndup(in->a, v.u.s.ptr, v.u.s.len);
  if (v.type == LOAM_INT || v.type == LOAM_BOOL) {
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", v.type == LOAM_INT ? (long long)v.u.i : v.u.b);
    return loam__arena_strndup(in->a, buf, (size_t)n);
  }
  return NULL;
}


/* Column 'i' as an integer: integers, booleans and integer text; 0 for anything else. */
static int64_t col_int (loam_stmt *st, int i) {
  loam_value v;
  if (loam_column(st, i, &v) != LOAM_OK) return 0;
  switch (v.type) {
    case LOAM_INT: return v.u.i;
    case LOAM_BOOL: return v.u.b;
    case LOAM_TEXT: return strtoll(v.u.s.ptr, NULL, 10);
    default: return 0;
  }
}


/* Runs catalog query 'sql' with the table name 'table' (or none when NULL). */
static int run (I *in, const char *sql, const char *table, loam_stmt **st) {
  loam_value p = loam_text(table != NULL ? table : "", table != NULL ? strlen(table) : 0);
  return loam_query(in->conn, sql, &p, table != NULL ? 1 : 0, 0, st, in->err);
}


/* Steps 'st': 1 at a row, 0 at the end, -1 after an error (reported). */
static int next (I *in, loam_stmt *st) {
  int rc = loam_step(st, in->err);
  return rc == LOAM_ROW ? 1 : rc == LOAM_DONE ? 0 : -1;
}

/* }====================================================================== */


/* {======================================================================
** Types
** ======================================================================= */

/* Reads the type text of 'c' as a loam type with its length, precision and scale. */
static void readtype (I *in, loam_db_column *c) {
  const char *t = c->type, *open;
  size_t base;
  int i;
  if (t == NULL) return;
  open = strchr(t, '(');
  base = open != NULL ? (size_t)(open - t) : strlen(t);
  while (base > 0 && t[base - 1] == ' ') base--;
  for (i = 0; in->d->read_types[i].name != NULL; i++) {
    const char *n = in->d->read_types[i].name;
    size_t k;
    if (strlen(n) != base) continue;
    for (k = 0; k < base && tolower((unsigned char)t[k]) == tolower((unsigned char)n[k]); k++)
      ;
    if (k == base) break;
  }
  if (in->d->read_types[i].name == NULL) return;
  c->loam_type = (loam_col_type)in->d->read_types[i].type;
  if (open == NULL) return;
  if (c->loam_type == LOAM_COL_TEXT) c->length = atoi(open + 1);
  else if (c->loam_type == LOAM_COL_NUMERIC) {
    const char *comma = strchr(open, ',');
    c->precision = atoi(open + 1);
    c->scale = comma != NULL ? atoi(comma + 1) : 0;
  }
}

/* }====================================================================== */


/* {======================================================================
** One table
** ======================================================================= */

/* The table being read, with the capacities of its arrays. */
typedef struct T {
  loam_db_table *t;
  int ccap, ucap, kcap, fcap, xcap;
  loam__sqlcons *cons;      /* what the CREATE text declares ('names_in_sql') */
  int ncons;
} T;


static int readcolumns (I *in, T *tb) {
  loam_db_table *t = tb->t;
  loam_stmt *st;
  int r;
  if (run(in, in->d->cat_columns, t->name, &st) != LOAM_OK) return LOAM_ERROR;
  while ((r = next(in, st)) == 1) {
    loam_db_column *c = push(in, (void **)&t->columns, &t->ncolumns, &tb->ccap, sizeof *c);
    if (c == NULL) break;
    c->name = col_text(in, st, 0);
    c->type = col_text(in, st, 1);
    c->not_null = col_int(st, 2) != 0;
    c->default_sql = col_text(in, st, 3);
    c->generated = col_int(st, 4) != 0;
    readtype(in, c);
  }
  loam_stmt_close(st);
  if (r < 0) return LOAM_ERROR;
  return in->a->oom ? nomem(in) : LOAM_OK;
}


/* The names of columns 'cols' equal those of 'c' (in any order, as SQLite compares names). */
static int samecols (const char *const *cols, int n, const loam__sqlcons *c) {
  int i, j;
  if (n != c->ncolumns) return 0;
  for (i = 0; i < n; i++) {
    for (j = 0; j < n; j++)
      if (loam__sqlite_same_name(cols[i], c->columns[j])) break;
    if (j == n) return 0;
  }
  return 1;
}


/* The name the CREATE text gives the constraint of kind 'kind' over 'cols', or NULL. */
static const char *consname (const T *tb, char kind, const char *const *cols, int n) {
  int i;
  for (i = 0; i < tb->ncons; i++)
    if (tb->cons[i].kind == kind && (kind == 'p' || samecols(cols, n, &tb->cons[i])))
      return tb->cons[i].name;
  return NULL;
}


static loam_fk_action action (const char *s) {
  static const char *const names[] = { "NO ACTION", "RESTRICT", "CASCADE", "SET NULL",
                                       "SET DEFAULT" };
  int i;
  for (i = 0; s != NULL && i < 5; i++)
    if (strcmp(s, names[i]) == 0) return (loam_fk_action)i;
  return LOAM_FK_NO_ACTION;
}


/* Appends the column 'name' to a key's list (arrays grow in the arena). */
static int addcol (I *in, const char *const **cols, int *n, int *cap, const char *name) {
  const char **slot = push(in, (void **)cols, n, cap, sizeof *slot);
  if (slot == NULL) return LOAM_ERROR;
  *slot = name;
  return LOAM_OK;
}


static int readkeys (I *in, T *tb) {
  loam_db_table *t = tb->t;
  loam_stmt *st;
  char kind = 0;
  int64_t grp = -1;
  int r, cap1 = 0, cap2 = 0;
  loam_db_key *key = NULL;
  loam_db_fk *fk = NULL;
  if (run(in, in->d->cat_keys, t->name, &st) != LOAM_OK) return LOAM_ERROR;
  while ((r = next(in, st)) == 1) {
    const char *k = col_text(in, st, 0);
    int64_t g = col_int(st, 1);
    const char *col = col_text(in, st, 3);
    if (k == NULL || col == NULL) break;
    if (k[0] != kind || g != grp) {      /* the first row of a constraint */
      kind = k[0];
      grp = g;
      cap1 = cap2 = 0;
      key = NULL;
      fk = NULL;
      if (kind == 'p') key = &t->primary_key;
      else if (kind == 'u') key = push(in, (void **)&t->uniques, &t->nuniques, &tb->ucap,
                                       sizeof *key);
      else if (kind == 'f') {
        fk = push(in, (void **)&t->fks, &t->nfks, &tb->fcap, sizeof *fk);
        if (fk == NULL) break;
        fk->ref_table = col_text(in, st, 4);
        fk->on_update = action(col_text(in, st, 6));
        fk->on_delete = action(col_text(in, st, 7));
        fk->validated = col_int(st, 8) != 0;
      }
      if (key != NULL) key->name = col_text(in, st, 2);
      else if (fk != NULL) fk->name = col_text(in, st, 2);
    }
    if (key != NULL && addcol(in, &key->columns, &key->ncolumns, &cap1, col) != LOAM_OK) break;
    if (fk != NULL) {
      int n = fk->ncolumns;
      if (addcol(in, &fk->columns, &fk->ncolumns, &cap1, col) != LOAM_OK ||
          addcol(in, &fk->ref_columns, &n, &cap2, col_text(in, st, 5)) != LOAM_OK)
        break;
    }
  }
  loam_stmt_close(st);
  if (r < 0) return LOAM_ERROR;
  return in->a->oom ? nomem(in) : LOAM_OK;
}


static int readchecks (I *in, T *tb) {
  loam_db_table *t = tb->t;
  loam_stmt *st;
  int r, i;
  if (in->d->cat_checks == NULL) {
    for (i = 0; i < tb->ncons; i++) {
      loam_db_check *k;
      if (tb->cons[i].kind != 'c' || tb->cons[i].check == NULL) continue;
      if ((k = push(in, (void **)&t->checks, &t->nchecks, &tb->kcap, sizeof *k)) == NULL)
        return nomem(in);
      k->name = tb->cons[i].name;
      k->sql = tb->cons[i].check;
      k->validated = 1;
    }
    return LOAM_OK;
  }
  if (run(in, in->d->cat_checks, t->name, &st) != LOAM_OK) return LOAM_ERROR;
  while ((r = next(in, st)) == 1) {
    loam_db_check *k = push(in, (void **)&t->checks, &t->nchecks, &tb->kcap, sizeof *k);
    if (k == NULL) break;
    k->name = col_text(in, st, 0);
    k->sql = col_text(in, st, 1);
    k->validated = col_int(st, 2) != 0;
  }
  loam_stmt_close(st);
  if (r < 0) return LOAM_ERROR;
  return in->a->oom ? nomem(in) : LOAM_OK;
}


static int readindexes (I *in, T *tb) {
  loam_db_table *t = tb->t;
  loam_db_index *x = NULL;
  loam_stmt *st;
  const char **parts = NULL;
  int r, nparts = 0, cap1 = 0, cap2 = 0, nexpr = 0;
  if (run(in, in->d->cat_indexes, t->name, &st) != LOAM_OK) return LOAM_ERROR;
  while ((r = next(in, st)) == 1) {
    const char *name = col_text(in, st, 0);
    const char *col, *expr;
    if (name == NULL) break;
    if (x == NULL || strcmp(x->name, name) != 0) {
      x = push(in, (void **)&t->indexes, &t->nindexes, &tb->xcap, sizeof *x);
      if (x == NULL) break;
      x->name = name;
      x->unique = col_int(st, 1) != 0;
      x->valid = col_int(st, 2) != 0;
      x->where = col_text(in, st, 3);
      x->sql = col_text(in, st, 6);
      cap1 = cap2 = nexpr = 0;
      nparts = 0;
      if (in->d->names_in_sql &&
          loam__sqlite_index_parts(in->a, x->sql, &parts, &nparts, &x->where) != LOAM_OK)
        break;
    }
    col = col_text(in, st, 4);
    expr = col_text(in, st, 5);
    if (col == NULL && expr == NULL && x->ncolumns < nparts) expr = parts[x->ncolumns];
    if (addcol(in, &x->columns, &x->ncolumns, &cap1, col) != LOAM_OK ||
        addcol(in, &x->exprs, &nexpr, &cap2, expr) != LOAM_OK)
      break;
  }
  loam_stmt_close(st);
  if (r < 0) return LOAM_ERROR;
  return in->a->oom ? nomem(in) : LOAM_OK;
}


static int readtriggers (I *in, T *tb) {
  loam_db_table *t = tb->t;
  loam_stmt *st;
  int r, cap = 0;
  if (in->d->cat_triggers == NULL) return LOAM_OK;
  if (run(in, in->d->cat_triggers, t->name, &st) != LOAM_OK) return LOAM_ERROR;
  while ((r = next(in, st)) == 1)
    if (addcol(in, &t->triggers, &t->ntriggers, &cap, col_text(in, st, 0)) != LOAM_OK) break;
  loam_stmt_close(st);
  if (r < 0) return LOAM_ERROR;
  return in->a->oom ? nomem(in) : LOAM_OK;
}


/*
** What the catalog leaves to the reader: constraint names from the
** CREATE text, the rowid alias, and the referenced columns of a foreign
** key that names none (SQLite: the referenced table's primary key).
*/
static int complete (I *in, T *tb) {
  loam_db_table *t = tb->t;
  int i, j;
  if (in->d->names_in_sql) {
    loam_db_key *pk = &t->primary_key;
    if (pk->ncolumns > 0) pk->name = consname(tb, 'p', NULL, 0);
    for (i = 0; i < t->nuniques; i++) {
      loam_db_key *u = (loam_db_key *)&t->uniques[i];
      u->name = consname(tb, 'u', u->columns, u->ncolumns);
    }
    for (i = 0; i < t->nfks; i++) {
      loam_db_fk *f = (loam_db_fk *)&t->fks[i];
      f->name = consname(tb, 'f', f->columns, f->ncolumns);
    }
  }
  if (in->d->rowid_alias && t->primary_key.ncolumns == 1) {
    loam_db_column *c = (loam_db_column *)loam_db_table_column(t, t->primary_key.columns[0]);
    if (c != NULL && c->type != NULL && loam__sqlite_same_name(c->type, "INTEGER")) {
      c->generated = 1;
      c->not_null = 1;
    }
  }
  for (i = 0; i < t->ncolumns; i++) {
    loam_db_column *c = (loam_db_column *)&t->columns[i];
    if (c->generated && t->primary_key.ncolumns == 1 &&
        strcmp(t->primary_key.columns[0], c->name) == 0 &&
        (c->loam_type == LOAM_COL_INTEGER || c->loam_type == LOAM_COL_BIGINT))
      c->loam_type = LOAM_COL_ID;
  }
  for (i = 0; i < t->nfks; i++) {
    loam_db_fk *f = (loam_db_fk *)&t->fks[i];
    loam_db_table ref;
    T rt;
    for (j = 0; j < f->ncolumns && f->ref_columns[j] != NULL; j++)
      ;
    if (j == f->ncolumns || f->ref_table == NULL) continue;
    memset(&ref, 0, sizeof ref);
    memset(&rt, 0, sizeof rt);
    ref.name = f->ref_table;
    rt.t = &ref;
    if (readkeys(in, &rt) != LOAM_OK) return LOAM_ERROR;
    for (j = 0; j < f->ncolumns && j < ref.primary_key.ncolumns; j++)
      ((const char **)f->ref_columns)[j] = ref.primary_key.columns[j];
  }
  return LOAM_OK;
}


static const char *keyname (const void *p, size_t off) {
  const char *s = *(const char *const *)((const char *)p + off);
  return s != NULL ? s : "";
}

static int by_key_name (const void *a, const void *b) {
  return strcmp(keyname(a, offsetof(loam_db_key, name)), keyname(b, offsetof(loam_db_key, name)));
}
static int by_check_name (const void *a, const void *b) {
  return strcmp(keyname(a, offsetof(loam_db_check, name)),
                keyname(b, offsetof(loam_db_check, name)));
}
static int by_fk_name (const void *a, const void *b) {
  return strcmp(keyname(a, offsetof(loam_db_fk, name)), keyname(b, offsetof(loam_db_fk, name)));
}
static int by_index_name (const void *a, const void *b) {
  return strcmp(keyname(a, offsetof(loam_db_index, name)),
                keyname(b, offsetof(loam_db_index, name)));
}
static int by_table_name (const void *a, const void *b) {
  return strcmp(keyname(a, offsetof(loam_db_table, name)),
                keyname(b, offsetof(loam_db_table, name)));
}


/* qsort, which must not be given a NULL array even when it is empty. */
static void sort (const void *base, int n, size_t size, int (*cmp) (const void *, const void *)) {
  if (n > 1) qsort((void *)base, (size_t)n, size, cmp);
}


static int readtable (I *in, loam_db_table *t) {
  T tb;
  memset(&tb, 0, sizeof tb);
  tb.t = t;
  if (in->d->names_in_sql &&
      loam__sqlite_constraints(in->a, t->sql, &tb.cons, &tb.ncons) != LOAM_OK)
    return nomem(in);
  if (readcolumns(in, &tb) != LOAM_OK || readkeys(in, &tb) != LOAM_OK ||
      readchecks(in, &tb) != LOAM_OK || readindexes(in, &tb) != LOAM_OK ||
      readtriggers(in, &tb) != LOAM_OK ||
      complete(in, &tb) != LOAM_OK)
    return LOAM_ERROR;
  sort(t->uniques, t->nuniques, sizeof *t->uniques, by_key_name);
  sort(t->checks, t->nchecks, sizeof *t->checks, by_check_name);
  sort(t->fks, t->nfks, sizeof *t->fks, by_fk_name);
  sort(t->indexes, t->nindexes, sizeof *t->indexes, by_index_name);
  return LOAM_OK;
}

/* }====================================================================== */


/* {======================================================================
** Entry points
** ======================================================================= */

/* Whether 'name' is among the 'n' names of 'tables' (all when 'tables' is NULL). */
static int wanted (const char *const *tables, int n, const char *name) {
  int i;
  if (tables == NULL) return 1;
  for (i = 0; i < n; i++)
    if (strcmp(tables[i], name) == 0) return 1;
  return 0;
}


static int readtables (I *in, box *b, const char *const *tables, int ntables) {
  loam_db_schema *s = &b->pub;
  loam_stmt *st;
  int r, cap = 0, i, j;
  if (run(in, in->d->cat_tables, NULL, &st) != LOAM_OK) return LOAM_ERROR;
  while ((r = next(in, st)) == 1) {
    const char *name = col_text(in, st, 0);
    loam_db_table *t;
    if (name == NULL || !wanted(tables, ntables, name)) continue;
    if ((t = push(in, (void **)&s->tables, &s->ntables, &cap, sizeof *t)) == NULL) break;
    t->name = name;
    t->sql = col_text(in, st, 1);
  }
  loam_stmt_close(st);
  if (r < 0) return LOAM_ERROR;
  if (in->a->oom) return nomem(in);
  for (i = 0; tables != NULL && i < ntables; i++) {
    for (j = 0; j < s->ntables && strcmp(s->tables[j].name, tables[i]) != 0; j++)
      ;
    if (j == s->ntables)
      return loam__err(in->err, LOAM_E_UNDEFINED_TABLE, "introspection: no table '%.200s'",
                       tables[i]);
  }
  sort(s->tables, s->ntables, sizeof *s->tables, by_table_name);
  for (i = 0; i < s->ntables; i++)
    if (readtable(in, (loam_db_table *)&s->tables[i]) != LOAM_OK) return LOAM_ERROR;
  return LOAM_OK;
}


int loam_introspect (loam_conn *conn, const char *const *tables, int ntables,
                     loam_db_schema **out, loam_error *err) {
  I in;
  box *b;
  int i;
  if (out == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_introspect: 'out' is NULL");
  *out = NULL;
  if (conn == NULL) return loam__err(err, LOAM_E_MISUSE, "attempt to use a closed connection");
  if (ntables < 0 || (tables == NULL && ntables > 0))
    return loam__err(err, LOAM_E_MISUSE, "loam_introspect: bad table list");
  for (i = 0; tables != NULL && i < ntables; i++)
    if (tables[i] == NULL)
      return loam__err(err, LOAM_E_MISUSE, "loam_introspect: table name #%d is NULL", i + 1);
  if ((b = calloc(1, sizeof *b)) == NULL) return loam__err_nomem(err);
  in.conn = conn;
  in.d = loam__dialect(loam_conn_backend(conn));
  in.a = &b->arena;
  in.err = err;
  b->pub.backend = loam_conn_backend(conn);
  if (readtables(&in, b, tables, ntables) != LOAM_OK) {
    loam_db_schema_free(&b->pub);
    return LOAM_ERROR;
  }
  *out = &b->pub;
  return LOAM_OK;
}


const loam_db_table *loam_db_schema_table (const loam_db_schema *s, const char *name) {
  int i;
  if (s == NULL || name == NULL) return NULL;
  for (i = 0; i < s->ntables; i++)
    if (strcmp(s->tables[i].name, name) == 0) return &s->tables[i];
  return NULL;
}


const loam_db_column *loam_db_table_column (const loam_db_table *t, const char *name) {
  int i;
  if (t == NULL || name == NULL) return NULL;
  for (i = 0; i < t->ncolumns; i++)
    if (strcmp(t->columns[i].name, name) == 0) return &t->columns[i];
  return NULL;
}


void loam_db_schema_free (loam_db_schema *s) {
  box *b = (box *)s;
  if (b == NULL) return;
  loam__arena_free(&b->arena);
  free(b);
}

/* }====================================================================== */
