/*
** rebuild.c: SQLite's table rebuild, for the ALTERs it cannot do in place.
**
** SQLite changes a column's type, nullness or default, and adds or drops
** a constraint, only by making the table anew (sqlite.org/lang_altertable,
** "Making Other Kinds Of Table Schema Changes"): create the new table
** under another name, copy the rows, drop the old table, rename the new
** one, create the indexes and triggers again, and check the foreign keys.
** The new table is written from the table as introspected (introspect.c)
** with the operation applied, so every column keeps its declared type,
** NOT NULL and default, and every constraint its name; indexes and
** triggers are recreated from the text SQLite keeps for them.  What the
** pragmas do not report (a column's COLLATE, AUTOINCREMENT, generated
** columns) is not carried over.  loam.h says how the statements are run.
*/
#include <string.h>

#include "migrate/migrate_int.h"
#include "sql/dialect_int.h"


#define MAXSTMT 64
#define PREFIX "loam_rebuild_"

typedef struct col {
  const char *name;
  const char *type;
  const char *def;
  const char *text;        /* a whole new definition (ADD_COLUMN), else NULL */
  int not_null, rowid, copy, gone;
} col;

/* The table as it becomes. */
typedef struct W {
  const loam_db_table *t;
  const loam_op *op;
  loam__arena a;
  col *cols;
  int ncols;
  const loam_db_check *checks;
  int nchecks;
  loam_db_key *uniques;
  int nuniques;
  loam_db_fk *fks;
  int nfks;
  const char *dropped;     /* DROP_COLUMN: the column */
  loam_error *err;
} W;


static int fail (W *w, loam_errcode code, const char *what, const char *name) {
  return loam__err(w->err, code, "%s on table '%.80s': %s '%.80s'", loam__op_name(w->op->kind),
                   w->t->name, what, name);
}


static void ident (loam__buf *b, const char *s) {
  loam__buf_ident(b, s, strlen(s));
}


static int has (const char *const *cols, int n, const char *name) {
  int i;
  for (i = 0; i < n; i++)
    if (loam__sqlite_same_name(cols[i], name)) return 1;
  return 0;
}


int loam__sql_mentions (const char *sql, const char *c) {
  size_t n = strlen(c);
  const char *p = sql;
  while ((p = strstr(p, c)) != NULL) {
    char before = p > sql ? p[-1] : ' ', after = p[n];
    int word = !(before == '_' || (before >= 'a' && before <= 'z') ||
                 (before >= 'A' && before <= 'Z') || (before >= '0' && before <= '9')) &&
               !(after == '_' || (after >= 'a' && after <= 'z') || (after >= 'A' && after <= 'Z') ||
                 (after >= '0' && after <= '9'));
    if (word) return 1;
    p += n;
  }
  return 0;
}


static col *findcol (W *w, const char *name) {
  int i;
  for (i = 0; i < w->ncols; i++)
    if (!w->cols[i].gone && loam__sqlite_same_name(w->cols[i].name, name)) return &w->cols[i];
  return NULL;
}


/* Copies the table's lists into the arena, with room for one more of each. */
static int load (W *w) {
  const loam_db_table *t = w->t;
  int i;
  w->cols = loam__arena_alloc(&w->a, sizeof *w->cols * (size_t)(t->ncolumns + 1));
  w->fks = loam__arena_alloc(&w->a, sizeof *w->fks * (size_t)(t->nfks + 1));
  w->checks = loam__arena_alloc(&w->a, sizeof *w->checks * (size_t)(t->nchecks + 1));
  w->uniques = loam__arena_alloc(&w->a, sizeof *w->uniques * (size_t)(t->nuniques + 1));
  if (w->a.oom) return loam__err_nomem(w->err);
  for (i = 0; i < t->ncolumns; i++) {
    const loam_db_column *c = &t->columns[i];
    col *k = &w->cols[w->ncols++];
    k->name = c->name;
    k->type = c->type;
    k->def = c->default_sql;
    k->not_null = c->not_null;
    k->rowid = c->generated;
    k->copy = 1;
  }
  /* memcpy must not be given the NULL list of an empty table part */
  if (t->nfks > 0) memcpy(w->fks, t->fks, sizeof *w->fks * (size_t)t->nfks);
  w->nfks = t->nfks;
  if (t->nchecks > 0) memcpy((void *)w->checks, t->checks, sizeof *w->checks * (size_t)t->nchecks);
  w->nchecks = t->nchecks;
  if (t->nuniques > 0) memcpy(w->uniques, t->uniques, sizeof *w->uniques * (size_t)t->nuniques);
  w->nuniques = t->nuniques;
  return LOAM_OK;
}


static int apply (W *w) {
  const loam_op *op = w->op;
  loam__buf b = LOAM__BUF_INIT, d = LOAM__BUF_INIT;
  col *c;
  int i, n;
  switch (op->kind) {
    case LOAM_OP_ALTER_COLUMN: {
      loam_column_def def = op->column;
      if ((c = findcol(w, op->name)) == NULL)
        return fail(w, LOAM_E_UNDEFINED_COLUMN, "no column", op->name);
      def.name = op->name;
      if (loam__ddl_column_parts(w->t->name, &def, LOAM_SQLITE, &b, &d, w->err) != LOAM_OK)
        return LOAM_ERROR;
      if (op->alter & LOAM_ALTER_TYPE) {
        c->type = loam__arena_strndup(&w->a, b.p != NULL ? b.p : "", b.len);
        c->rowid = 0;
      }
      if (op->alter & LOAM_ALTER_NULL) c->not_null = def.not_null;
      if (op->alter & LOAM_ALTER_DEFAULT)
        c->def = d.len > 0 ? loam__arena_strndup(&w->a, d.p, d.len) : NULL;
      break;
    }
    case LOAM_OP_ADD_COLUMN:
      if (findcol(w, op->column.name != NULL ? op->column.name : "") != NULL)
        return fail(w, LOAM_E_MISUSE, "there is already a column", op->column.name);
      if (loam__ddl_column(w->t->name, &op->column, LOAM_SQLITE, &b, w->err) != LOAM_OK)
        return LOAM_ERROR;
      c = &w->cols[w->ncols++];
      c->name = op->column.name;
      c->text = loam__arena_strndup(&w->a, b.p, b.len);
      break;
    case LOAM_OP_DROP_COLUMN:
      if ((c = findcol(w, op->name)) == NULL)
        return fail(w, LOAM_E_UNDEFINED_COLUMN, "no column", op->name);
      c->gone = 1;
      w->dropped = c->name;
      /* as PostgreSQL does: the constraints over the column go with it */
      for (i = n = 0; i < w->nfks; i++)
        if (!has(w->fks[i].columns, w->fks[i].ncolumns, c->name)) w->fks[n++] = w->fks[i];
      w->nfks = n;
      for (i = n = 0; i < w->nchecks; i++)
        if (!loam__sql_mentions(w->checks[i].sql, c->name))
          ((loam_db_check *)w->checks)[n++] = w->checks[i];
      w->nchecks = n;
      break;
    case LOAM_OP_ADD_FOREIGN_KEY: {
      loam_db_fk *f = &w->fks[w->nfks++];
      char *gen = NULL;
      if (op->name == NULL &&
          loam_constraint_name(op->table, op->columns, op->ncolumns, "fkey", 1, &gen, w->err) !=
          LOAM_OK)
        return LOAM_ERROR;
      f->name = op->name != NULL ? op->name : loam__arena_strdup(&w->a, gen);
      loam_name_free(gen);
      f->columns = op->columns;
      f->ref_table = op->ref_table;
      f->ref_columns = op->ref_columns;
      f->ncolumns = op->ncolumns;
      f->on_delete = op->on_delete;
      f->on_update = op->on_update;
      break;
    }
    case LOAM_OP_ADD_CHECK: {
      loam_db_check *k = (loam_db_check *)&w->checks[w->nchecks++];
      k->name = op->name;
      k->sql = op->sql;
      break;
    }
    case LOAM_OP_ADD_UNIQUE: {
      loam_db_key *u = &w->uniques[w->nuniques++];
      char *gen = NULL;
      if (op->name == NULL &&
          loam_constraint_name(op->table, op->columns, op->ncolumns, "key", 1, &gen, w->err) !=
          LOAM_OK)
        return LOAM_ERROR;
      u->name = op->name != NULL ? op->name : loam__arena_strdup(&w->a, gen);
      loam_name_free(gen);
      u->columns = op->columns;
      u->ncolumns = op->ncolumns;
      for (i = 0; i < op->ncolumns; i++)
        if (findcol(w, op->columns[i]) == NULL)
          return fail(w, LOAM_E_UNDEFINED_COLUMN, "no column", op->columns[i]);
      break;
    }
    case LOAM_OP_DROP_UNIQUE:
      for (i = 0; i < w->nuniques &&
                  !(w->uniques[i].name && strcmp(w->uniques[i].name, op->name) == 0); i++)
        ;
      if (i == w->nuniques) return fail(w, LOAM_E_MISUSE, "no unique constraint named", op->name);
      w->uniques[i] = w->uniques[--w->nuniques];
      break;
    case LOAM_OP_DROP_FOREIGN_KEY:
      for (i = 0; i < w->nfks && !(w->fks[i].name && strcmp(w->fks[i].name, op->name) == 0); i++)
        ;
      if (i == w->nfks) return fail(w, LOAM_E_MISUSE, "no foreign key named", op->name);
      w->fks[i] = w->fks[--w->nfks];
      break;
    case LOAM_OP_DROP_CHECK:
      for (i = 0; i < w->nchecks &&
                  !(w->checks[i].name && strcmp(w->checks[i].name, op->name) == 0); i++)
        ;
      if (i == w->nchecks) return fail(w, LOAM_E_MISUSE, "no check named", op->name);
      ((loam_db_check *)w->checks)[i] = w->checks[--w->nchecks];
      break;
    default:
      break;
  }
  loam__buf_free(&b);
  loam__buf_free(&d);
  return w->a.oom ? loam__err_nomem(w->err) : LOAM_OK;
}


/* A key over the dropped column goes with it. */
static int keeps (const W *w, const char *const *cols, int n) {
  return w->dropped == NULL || !has(cols, n, w->dropped);
}


/* And so does an index that names it: as a key part, in an expression or its predicate. */
static int keepsindex (const W *w, const loam_db_index *x) {
  int i;
  if (w->dropped == NULL) return 1;
  if (x->where != NULL && loam__sql_mentions(x->where, w->dropped)) return 0;
  for (i = 0; i < x->ncolumns; i++)
    if (x->exprs[i] != NULL && loam__sql_mentions(x->exprs[i], w->dropped)) return 0;
  return keeps(w, x->columns, x->ncolumns);
}


static void constraintname (loam__buf *b, const char *name) {
  if (name == NULL) return;
  loam__buf_adds(b, "CONSTRAINT ");
  ident(b, name);
  loam__buf_addc(b, ' ');
}


/* CREATE TABLE "loam_rebuild_<t>" (...) */
static void create (W *w, loam__buf *b, const char *newname) {
  const loam_db_table *t = w->t;
  const loam_db_key *pk = &t->primary_key;
  int i, first = 1, inlinepk = 0;
  loam__buf_adds(b, "CREATE TABLE ");
  ident(b, newname);
  loam__buf_adds(b, " (");
  for (i = 0; i < w->ncols; i++) {
    const col *c = &w->cols[i];
    if (c->gone) continue;
    if (!first) loam__buf_adds(b, ", ");
    first = 0;
    if (c->text != NULL) { loam__buf_adds(b, c->text); continue; }
    ident(b, c->name);
    if (c->type != NULL && c->type[0] != '\0') {
      loam__buf_addc(b, ' ');
      loam__buf_adds(b, c->type);
    }
    if (c->rowid) {
      /* the rowid alias keeps its form: the key written with the column */
      loam__buf_addc(b, ' ');
      constraintname(b, pk->name);
      loam__buf_adds(b, "PRIMARY KEY");
      inlinepk = 1;
      continue;
    }
    if (c->not_null) loam__buf_adds(b, " NOT NULL");
    if (c->def != NULL) {
      loam__buf_adds(b, " DEFAULT ");
      loam__buf_adds(b, c->def);
    }
  }
  if (pk->ncolumns > 0 && !inlinepk && keeps(w, pk->columns, pk->ncolumns)) {
    loam__buf_adds(b, ", ");
    constraintname(b, pk->name);
    loam__buf_adds(b, "PRIMARY KEY ");
    loam__ddl_collist(b, pk->columns, pk->ncolumns);
  }
  for (i = 0; i < w->nuniques; i++) {
    const loam_db_key *u = &w->uniques[i];
    if (!keeps(w, u->columns, u->ncolumns)) continue;
    loam__buf_adds(b, ", ");
    constraintname(b, u->name);
    loam__buf_adds(b, "UNIQUE ");
    loam__ddl_collist(b, u->columns, u->ncolumns);
  }
  for (i = 0; i < w->nchecks; i++) {
    loam__buf_adds(b, ", ");
    constraintname(b, w->checks[i].name);
    loam__buf_adds(b, "CHECK (");
    loam__buf_adds(b, w->checks[i].sql);
    loam__buf_addc(b, ')');
  }
  for (i = 0; i < w->nfks; i++) {
    const loam_db_fk *f = &w->fks[i];
    loam__buf_adds(b, ", ");
    constraintname(b, f->name);
    loam__ddl_fk_clause(b, f->columns, f->ref_table, f->ref_columns, f->ncolumns, f->on_delete,
                        f->on_update);
  }
  loam__buf_addc(b, ')');
}


int loam__rebuild (loam__buf *texts, loam_sql_kind *kinds, int *n, const loam_op *op,
                   const loam_db_table *t, loam_error *err) {
  loam__buf newname = LOAM__BUF_INIT;
  W w;
  int i, first, rc;
  memset(&w, 0, sizeof w);
  w.t = t;
  w.op = op;
  w.err = err;
  *n = 0;
  if (2 + t->nindexes + t->ntriggers + 4 > MAXSTMT)
    return loam__err(err, LOAM_E_MISUSE, "%s on table '%.80s': too many indexes and triggers "
                     "to rebuild the table", loam__op_name(op->kind), t->name);
  loam__buf_adds(&newname, PREFIX);
  loam__buf_adds(&newname, t->name);
  if (loam__buf_cstr(&newname) == NULL) return loam__err_nomem(err);
  if (newname.len > LOAM_IDENT_MAX) newname.p[LOAM_IDENT_MAX] = '\0';
  rc = load(&w);
  if (rc == LOAM_OK) rc = apply(&w);
  if (rc == LOAM_OK) {
    create(&w, texts, newname.p);
    loam__buf_addc(texts, '\0');
    kinds[(*n)++] = LOAM_SQL_DDL;
    /* the columns the old and the new table share keep their values */
    loam__buf_adds(texts, "INSERT INTO ");
    ident(texts, newname.p);
    loam__buf_adds(texts, " (");
    for (i = 0, first = 1; i < w.ncols; i++) {
      if (w.cols[i].gone || !w.cols[i].copy) continue;
      if (!first) loam__buf_adds(texts, ", ");
      first = 0;
      ident(texts, w.cols[i].name);
    }
    loam__buf_adds(texts, ") SELECT ");
    for (i = 0, first = 1; i < w.ncols; i++) {
      if (w.cols[i].gone || !w.cols[i].copy) continue;
      if (!first) loam__buf_adds(texts, ", ");
      first = 0;
      ident(texts, w.cols[i].name);
    }
    loam__buf_adds(texts, " FROM ");
    ident(texts, t->name);
    loam__buf_addc(texts, '\0');
    kinds[(*n)++] = LOAM_SQL_INSERT;
    loam__buf_adds(texts, "DROP TABLE ");
    ident(texts, t->name);
    loam__buf_addc(texts, '\0');
    kinds[(*n)++] = LOAM_SQL_DDL;
    loam__buf_adds(texts, "ALTER TABLE ");
    ident(texts, newname.p);
    loam__buf_adds(texts, " RENAME TO ");
    ident(texts, t->name);
    loam__buf_addc(texts, '\0');
    kinds[(*n)++] = LOAM_SQL_DDL;
    for (i = 0; i < t->nindexes; i++) {
      const loam_db_index *x = &t->indexes[i];
      if (x->sql == NULL || !keepsindex(&w, x)) continue;
      loam__buf_adds(texts, x->sql);
      loam__buf_addc(texts, '\0');
      kinds[(*n)++] = LOAM_SQL_DDL;
    }
    for (i = 0; i < t->ntriggers; i++) {
      loam__buf_adds(texts, t->triggers[i]);
      loam__buf_addc(texts, '\0');
      kinds[(*n)++] = LOAM_SQL_DDL;
    }
    loam__buf_adds(texts, loam__dialect(LOAM_SQLITE)->validate_check);
    loam__buf_literal(texts, t->name, strlen(t->name));
    loam__buf_addc(texts, ')');
    loam__buf_addc(texts, '\0');
    kinds[(*n)++] = LOAM_SQL_SELECT;
  }
  loam__buf_free(&newname);
  loam__arena_free(&w.a);
  return rc;
}
