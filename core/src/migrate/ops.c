/*
** ops.c: migration operations rendered for a backend.
**
** An operation is a plain struct (loam.h, 'loam_op'), which the Lua
** migration files fill and a C host can fill as well; this file turns one
** into the statements that perform it, and derives the operation that
** undoes it.  The pieces of a column or an index come from ddl.c, so a
** column added by a migration is written exactly as CREATE TABLE writes
** it; what differs between the backends is read from the dialect's
** 'alter' table (dialect.c): where SQLite has no ALTER for an operation,
** it is handed to rebuild.c, which writes the documented table rebuild
** from the table as introspected.
*/
#include <stdlib.h>
#include <string.h>

#include "migrate/migrate_int.h"
#include "sql/dialect_int.h"


static const char *const opnames[] = {
  "(none)", "create_table", "drop_table", "rename_table", "add_column", "drop_column",
  "rename_column", "alter_column", "add_index", "drop_index", "add_foreign_key",
  "validate_foreign_key", "drop_foreign_key", "add_check", "drop_check", "execute", "backfill",
  "add_unique", "drop_unique"
};

/* The last operation kind. */
#define LASTKIND LOAM_OP_DROP_UNIQUE


const char *loam__op_name (int kind) {
  return (kind >= LOAM_OP_CREATE_TABLE && kind <= LASTKIND) ? opnames[kind] : opnames[0];
}


/* Refuses 'op' with a message naming it and its table. */
static int bad (const loam_op *op, loam_error *err, const char *why) {
  if (op->table != NULL)
    return loam__err(err, LOAM_E_MISUSE, "%s on table '%.80s': %s", loam__op_name(op->kind),
                     op->table, why);
  return loam__err(err, LOAM_E_MISUSE, "%s: %s", loam__op_name(op->kind), why);
}


/* Checks identifier 'name' of 'op' ('what': "column name"). */
static int ident (const loam_op *op, const char *name, const char *what, loam_error *err) {
  loam_error e = LOAM_ERROR_INIT;
  int rc = loam__ident_check(name, name != NULL ? strlen(name) : 0, &e);
  if (rc != LOAM_OK) {
    loam__buf m = LOAM__BUF_INIT;
    loam__buf_addf(&m, "%s: %s", what, e.message != NULL ? e.message : "invalid");
    rc = loam__buf_cstr(&m) != NULL ? bad(op, err, m.p) : loam__err_nomem(err);
    loam__buf_free(&m);
  }
  loam_error_clear(&e);
  return rc;
}


/* The statements of one rendering: texts separated by NULs, a kind each. */
typedef struct S {
  loam__buf texts;
  loam_sql_kind kinds[64];
  int n;
} S;


/* Ends the statement written at the end of 'texts' since the previous one. */
static void endstmt (S *s, loam_sql_kind kind) {
  loam__buf_addc(&s->texts, '\0');
  if (s->n < 64) s->kinds[s->n++] = kind;
}


static int deliver (S *s, const loam_value *params, int nparams, loam_rendered **out,
                    loam_error *err) {
  const char *texts[64];
  size_t at = 0;
  int i, rc = LOAM_OK;
  if (s->texts.oom || s->n >= 64) rc = loam__err_nomem(err);
  for (i = 0; rc == LOAM_OK && i < s->n; i++) {
    texts[i] = s->texts.p + at;
    at += strlen(texts[i]) + 1;
  }
  if (rc == LOAM_OK &&
      (*out = loam__rendered_list(s->n, texts, s->kinds, params, nparams)) == NULL)
    rc = loam__err_nomem(err);
  loam__buf_free(&s->texts);
  return rc;
}


static void name (loam__buf *b, const char *s) {
  loam__buf_ident(b, s, strlen(s));
}


/* ALTER TABLE "t" */
static void altertable (S *s, const loam_op *op) {
  loam__buf_adds(&s->texts, "ALTER TABLE ");
  name(&s->texts, op->table);
  loam__buf_addc(&s->texts, ' ');
}


/* {======================================================================
** Checking an operation
** ======================================================================= */

static int checkcols (const loam_op *op, const char *const *cols, int n, const char *what,
                      loam_error *err) {
  int i;
  if (n <= 0 || cols == NULL) return bad(op, err, "no columns");
  for (i = 0; i < n; i++)
    if (ident(op, cols[i], what, err) != LOAM_OK) return LOAM_ERROR;
  return LOAM_OK;
}


static int check (const loam_op *op, loam_error *err) {
  if (op->kind < LOAM_OP_CREATE_TABLE || op->kind > LASTKIND)
    return loam__err(err, LOAM_E_MISUSE, "unknown migration operation (%d)", (int)op->kind);
  if (op->kind == LOAM_OP_BACKFILL)
    return bad(op, err, "runs in batches, each in a transaction of its own: the migration "
               "runner runs it, and 'loam_backfill_plan' shows its first batch");
  if (op->kind != LOAM_OP_EXECUTE && op->kind != LOAM_OP_CREATE_TABLE &&
      op->kind != LOAM_OP_ADD_INDEX && ident(op, op->table, "table name", err) != LOAM_OK)
    return LOAM_ERROR;
  switch (op->kind) {
    case LOAM_OP_CREATE_TABLE:
      return op->def != NULL ? LOAM_OK : bad(op, err, "no table definition");
    case LOAM_OP_DROP_TABLE:
      return LOAM_OK;
    case LOAM_OP_RENAME_TABLE:
      return ident(op, op->new_name, "new name", err);
    case LOAM_OP_ADD_COLUMN:
      return LOAM_OK;                       /* ddl.c checks the column */
    case LOAM_OP_RENAME_COLUMN:
      if (ident(op, op->name, "column name", err) != LOAM_OK) return LOAM_ERROR;
      return ident(op, op->new_name, "new name", err);
    case LOAM_OP_ALTER_COLUMN:
      if (ident(op, op->name, "column name", err) != LOAM_OK) return LOAM_ERROR;
      if (op->alter == 0 || (op->alter & ~(LOAM_ALTER_TYPE | LOAM_ALTER_NULL |
                                             LOAM_ALTER_DEFAULT)) != 0)
        return bad(op, err, "'alter' must say what changes: type, null and/or default");
      if (op->column.name != NULL && strcmp(op->column.name, op->name) != 0)
        return bad(op, err, "the column's new definition has another name (use rename_column)");
      if ((op->alter & LOAM_ALTER_TYPE) && op->column.type == LOAM_COL_ID)
        return bad(op, err, "a column cannot become an id column");
      return LOAM_OK;
    case LOAM_OP_ADD_INDEX:
      return op->index.table != NULL ? LOAM_OK : bad(op, err, "no index definition");
    case LOAM_OP_DROP_COLUMN:
    case LOAM_OP_DROP_INDEX:
    case LOAM_OP_VALIDATE_FOREIGN_KEY:
    case LOAM_OP_DROP_FOREIGN_KEY:
    case LOAM_OP_DROP_CHECK:
    case LOAM_OP_DROP_UNIQUE:
      return ident(op, op->name, "name", err);
    case LOAM_OP_ADD_UNIQUE:
      if (op->name != NULL && ident(op, op->name, "constraint name", err) != LOAM_OK)
        return LOAM_ERROR;
      return checkcols(op, op->columns, op->ncolumns, "column", err);
    case LOAM_OP_ADD_FOREIGN_KEY:
      if (op->name != NULL && ident(op, op->name, "constraint name", err) != LOAM_OK)
        return LOAM_ERROR;
      if (checkcols(op, op->columns, op->ncolumns, "column", err) != LOAM_OK ||
          ident(op, op->ref_table, "referenced table", err) != LOAM_OK ||
          checkcols(op, op->ref_columns, op->ncolumns, "referenced column", err) != LOAM_OK)
        return LOAM_ERROR;
      if (loam__fk_action_sql(op->on_delete) == NULL || loam__fk_action_sql(op->on_update) == NULL)
        return bad(op, err, "unknown foreign key action");
      return LOAM_OK;
    case LOAM_OP_ADD_CHECK:
      if (ident(op, op->name, "constraint name (a check needs one)", err) != LOAM_OK)
        return LOAM_ERROR;
      return op->sql != NULL && op->sql[0] != '\0' ? LOAM_OK : bad(op, err, "no predicate");
    case LOAM_OP_EXECUTE:
      if (op->sql == NULL || op->sql[0] == '\0') return bad(op, err, "no SQL");
      if (op->nparams < 0 || (op->nparams > 0 && op->params == NULL))
        return bad(op, err, "bad parameter list");
      return LOAM_OK;
    default:
      return loam__err(err, LOAM_E_MISUSE, "unknown migration operation (%d)", (int)op->kind);
  }
}

/* }====================================================================== */


/* {======================================================================
** Which operations need what
** ======================================================================= */

/* The ALTER of the dialect's 'alter' table that 'op' is, or -1. */
static int alterkind (const loam_op *op) {
  switch (op->kind) {
    case LOAM_OP_RENAME_TABLE: return LOAM__ALTER_RENAME_TABLE;
    case LOAM_OP_ADD_COLUMN: return LOAM__ALTER_ADD_COLUMN;
    case LOAM_OP_DROP_COLUMN: return LOAM__ALTER_DROP_COLUMN;
    case LOAM_OP_RENAME_COLUMN: return LOAM__ALTER_RENAME_COLUMN;
    case LOAM_OP_ALTER_COLUMN:
      if (op->alter & LOAM_ALTER_TYPE) return LOAM__ALTER_COLUMN_TYPE;
      if (op->alter & LOAM_ALTER_NULL)
        return op->column.not_null ? LOAM__ALTER_SET_NOT_NULL : LOAM__ALTER_DROP_NOT_NULL;
      return op->column.defval.kind != LOAM_DEFAULT_NONE ? LOAM__ALTER_SET_DEFAULT
                                                         : LOAM__ALTER_DROP_DEFAULT;
    case LOAM_OP_ADD_FOREIGN_KEY:
    case LOAM_OP_ADD_CHECK:
    case LOAM_OP_ADD_UNIQUE:
      return LOAM__ALTER_ADD_CONSTRAINT;
    case LOAM_OP_DROP_FOREIGN_KEY:
    case LOAM_OP_DROP_CHECK:
    case LOAM_OP_DROP_UNIQUE:
      return LOAM__ALTER_DROP_CONSTRAINT;
    default:
      return -1;
  }
}


/*
** The cases in which SQLite's limited ALTERs need the rebuild (see the
** comment of its 'alter' table in dialect.c): ADD COLUMN of a key, a
** unique or a referencing column, or of one whose default SQLite cannot
** add in place; DROP COLUMN of a column that a key, a unique constraint,
** a foreign key, an index or a check names, where SQLite's DROP COLUMN
** refuses while PostgreSQL's drops those along with the column: the
** rebuild leaves them out, so both backends end alike.
*/
static int limited (const loam_op *op, const loam_db_table *t) {
  const loam_column_def *c = &op->column;
  int i, j;
  if (op->kind == LOAM_OP_ADD_COLUMN)
    return c->primary_key || c->unique || c->type == LOAM_COL_ID ||
           c->references.table != NULL || c->defval.kind == LOAM_DEFAULT_NOW ||
           c->defval.kind == LOAM_DEFAULT_SQL ||
           (c->not_null && (c->defval.kind == LOAM_DEFAULT_NONE ||
                            c->defval.value.type == LOAM_NULL));
  if (t == NULL) return 1;
  for (i = 0; i < t->primary_key.ncolumns; i++)
    if (strcmp(t->primary_key.columns[i], op->name) == 0) return 1;
  for (i = 0; i < t->nuniques; i++)
    for (j = 0; j < t->uniques[i].ncolumns; j++)
      if (strcmp(t->uniques[i].columns[j], op->name) == 0) return 1;
  for (i = 0; i < t->nfks; i++)
    for (j = 0; j < t->fks[i].ncolumns; j++)
      if (strcmp(t->fks[i].columns[j], op->name) == 0) return 1;
  for (i = 0; i < t->nchecks; i++)
    if (loam__sql_mentions(t->checks[i].sql, op->name)) return 1;
  for (i = 0; i < t->nindexes; i++) {
    const loam_db_index *x = &t->indexes[i];
    if (x->where != NULL && loam__sql_mentions(x->where, op->name)) return 1;
    for (j = 0; j < x->ncolumns; j++)
      if ((x->columns[j] != NULL && strcmp(x->columns[j], op->name) == 0) ||
          (x->exprs[j] != NULL && loam__sql_mentions(x->exprs[j], op->name)))
        return 1;
  }
  return 0;
}


static int rebuilds (const loam_op *op, const loam__dialect_desc *d, const loam_db_table *t) {
  int k = alterkind(op);
  if (k < 0 || d == NULL) return 0;
  if (d->alter[k] == LOAM__ALTER_REBUILD) return 1;
  if (d->alter[k] == LOAM__ALTER_LIMITED) return limited(op, t);
  return 0;
}


int loam_op_rebuilds (const loam_op *op, loam_backend backend) {
  return op != NULL && rebuilds(op, loam__dialect(backend), NULL);
}


int loam_op_needs_autocommit (const loam_op *op, loam_backend backend) {
  const loam__dialect_desc *d = loam__dialect(backend);
  return op != NULL && d != NULL && d->concurrent_index && op->concurrently &&
         (op->kind == LOAM_OP_ADD_INDEX || op->kind == LOAM_OP_DROP_INDEX);
}

/* }====================================================================== */


/* {======================================================================
** Rendering
** ======================================================================= */

static int altercolumn (S *s, const loam_op *op, loam_backend be, loam_error *err) {
  loam__buf type = LOAM__BUF_INIT, def = LOAM__BUF_INIT;
  loam_column_def c = op->column;
  int first = 1, rc;
  c.name = op->name;
  rc = loam__ddl_column_parts(op->table, &c, be, &type, &def, err);
  altertable(s, op);
  if (rc == LOAM_OK && (op->alter & LOAM_ALTER_TYPE)) {
    loam__buf_adds(&s->texts, "ALTER COLUMN ");
    name(&s->texts, op->name);
    loam__buf_adds(&s->texts, " TYPE ");
    loam__buf_add(&s->texts, type.p, type.len);
    first = 0;
  }
  if (rc == LOAM_OK && (op->alter & LOAM_ALTER_NULL)) {
    if (!first) loam__buf_adds(&s->texts, ", ");
    loam__buf_adds(&s->texts, "ALTER COLUMN ");
    name(&s->texts, op->name);
    loam__buf_adds(&s->texts, c.not_null ? " SET NOT NULL" : " DROP NOT NULL");
    first = 0;
  }
  if (rc == LOAM_OK && (op->alter & LOAM_ALTER_DEFAULT)) {
    if (!first) loam__buf_adds(&s->texts, ", ");
    loam__buf_adds(&s->texts, "ALTER COLUMN ");
    name(&s->texts, op->name);
    if (def.len > 0) {
      loam__buf_adds(&s->texts, " SET DEFAULT ");
      loam__buf_add(&s->texts, def.p, def.len);
    }
    else loam__buf_adds(&s->texts, " DROP DEFAULT");
  }
  loam__buf_free(&type);
  loam__buf_free(&def);
  return rc;
}


/* The statements of 'op' where the backend has an ALTER (or a CREATE, DROP) for it. */
static int inplace (S *s, const loam_op *op, const loam__dialect_desc *d, loam_error *err) {
  loam__buf *b = &s->texts;
  switch (op->kind) {
    case LOAM_OP_RENAME_TABLE:
      altertable(s, op);
      loam__buf_adds(b, "RENAME TO ");
      name(b, op->new_name);
      break;
    case LOAM_OP_ADD_COLUMN:
      altertable(s, op);
      loam__buf_adds(b, "ADD COLUMN ");
      if (loam__ddl_column(op->table, &op->column, d->backend, b, err) != LOAM_OK)
        return LOAM_ERROR;
      break;
    case LOAM_OP_DROP_COLUMN:
      altertable(s, op);
      loam__buf_adds(b, "DROP COLUMN ");
      name(b, op->name);
      break;
    case LOAM_OP_RENAME_COLUMN:
      altertable(s, op);
      loam__buf_adds(b, "RENAME COLUMN ");
      name(b, op->name);
      loam__buf_adds(b, " TO ");
      name(b, op->new_name);
      break;
    case LOAM_OP_ALTER_COLUMN:
      if (altercolumn(s, op, d->backend, err) != LOAM_OK) return LOAM_ERROR;
      break;
    case LOAM_OP_DROP_INDEX:
      loam__buf_adds(b, "DROP INDEX ");
      if (op->concurrently && d->concurrent_index) loam__buf_adds(b, "CONCURRENTLY ");
      name(b, op->name);
      break;
    case LOAM_OP_ADD_FOREIGN_KEY: {
      char *gen = NULL;
      const char *cname = op->name;
      if (cname == NULL) {
        if (loam_constraint_name(op->table, op->columns, op->ncolumns, "fkey", 1, &gen, err) !=
            LOAM_OK)
          return LOAM_ERROR;
        cname = gen;
      }
      altertable(s, op);
      loam__buf_adds(b, "ADD CONSTRAINT ");
      name(b, cname);
      loam__buf_addc(b, ' ');
      loam__ddl_fk_clause(b, op->columns, op->ref_table, op->ref_columns, op->ncolumns,
                          op->on_delete, op->on_update);
      if (op->not_valid) loam__buf_adds(b, " NOT VALID");
      loam_name_free(gen);
      break;
    }
    case LOAM_OP_VALIDATE_FOREIGN_KEY:
      if (d->validate_check != NULL) {
        /* nothing to validate in place: every row is checked as it is written */
        loam__buf_adds(b, d->validate_check);
        loam__buf_literal(b, op->table, strlen(op->table));
        loam__buf_addc(b, ')');
        endstmt(s, LOAM_SQL_SELECT);
        return LOAM_OK;
      }
      altertable(s, op);
      loam__buf_adds(b, "VALIDATE CONSTRAINT ");
      name(b, op->name);
      break;
    case LOAM_OP_ADD_CHECK:
      altertable(s, op);
      loam__buf_adds(b, "ADD CONSTRAINT ");
      name(b, op->name);
      loam__buf_adds(b, " CHECK (");
      loam__buf_adds(b, op->sql);
      loam__buf_addc(b, ')');
      if (op->not_valid) loam__buf_adds(b, " NOT VALID");
      break;
    case LOAM_OP_ADD_UNIQUE: {
      char *gen = NULL;
      if (op->name == NULL &&
          loam_constraint_name(op->table, op->columns, op->ncolumns, "key", 1, &gen, err) !=
          LOAM_OK)
        return LOAM_ERROR;
      altertable(s, op);
      loam__buf_adds(b, "ADD CONSTRAINT ");
      name(b, op->name != NULL ? op->name : gen);
      loam__buf_adds(b, " UNIQUE ");
      loam__ddl_collist(b, op->columns, op->ncolumns);
      loam_name_free(gen);
      break;
    }
    case LOAM_OP_DROP_FOREIGN_KEY:
    case LOAM_OP_DROP_CHECK:
    case LOAM_OP_DROP_UNIQUE:
      altertable(s, op);
      loam__buf_adds(b, "DROP CONSTRAINT ");
      name(b, op->name);
      break;
    default:
      return bad(op, err, "has no rendering");
  }
  endstmt(s, LOAM_SQL_DDL);
  return LOAM_OK;
}


int loam_render_op (const loam_op *op, loam_backend backend, const loam_db_table *table,
                    loam_rendered **out, loam_error *err) {
  const loam__dialect_desc *d = loam__dialect(backend);
  S s;
  int rc;
  if (out == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_render_op: 'out' is NULL");
  *out = NULL;
  if (op == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_render_op: 'op' is NULL");
  if (d == NULL)
    return loam__err(err, LOAM_E_MISUSE, "loam_render_op: unknown backend (%d)", (int)backend);
  if (check(op, err) != LOAM_OK) return LOAM_ERROR;
  switch (op->kind) {
    case LOAM_OP_CREATE_TABLE: return loam_render_create_table(op->def, backend, out, err);
    case LOAM_OP_DROP_TABLE: return loam_render_drop_table(op->table, 0, backend, out, err);
    case LOAM_OP_ADD_INDEX:
      return loam__render_index(&op->index, backend, op->concurrently && d->concurrent_index,
                                out, err);
    case LOAM_OP_EXECUTE: {
      const char *text = op->sql;
      loam_sql_kind kind = loam__sql_classify(op->sql);
      if ((*out = loam__rendered_list(1, &text, &kind, op->params, op->nparams)) == NULL)
        return loam__err_nomem(err);
      return LOAM_OK;
    }
    default:
      break;
  }
  memset(&s, 0, sizeof s);
  if (rebuilds(op, d, table)) {
    if (table == NULL)
      return bad(op, err, "SQLite performs it by rebuilding the table, which needs the table "
                 "as introspected");
    if (strcmp(table->name, op->table) != 0)
      return bad(op, err, "the introspected table given is another table");
    rc = loam__rebuild(&s.texts, s.kinds, &s.n, op, table, err);
  }
  else rc = inplace(&s, op, d, err);
  if (rc != LOAM_OK) {
    loam__buf_free(&s.texts);
    return LOAM_ERROR;
  }
  return deliver(&s, NULL, 0, out, err);
}

/* }====================================================================== */


/* {======================================================================
** Undoing
** ======================================================================= */

static int irreversible (const loam_op *op, const char *why, loam_error *err) {
  loam__buf m = LOAM__BUF_INIT;
  int rc;
  loam__buf_addf(&m, "cannot be reversed: %s", why);
  rc = loam__buf_cstr(&m) != NULL ? bad(op, err, m.p) : loam__err_nomem(err);
  loam__buf_free(&m);
  return rc;
}


/* Copies the generated name 'gen' into 'buf' (LOAM_IDENT_MAX + 1 bytes) and frees it. */
static const char *keepname (char *gen, char *buf) {
  size_t n = strlen(gen);
  memcpy(buf, gen, n + 1);
  loam_name_free(gen);
  return buf;
}


int loam_op_inverse (const loam_op *op, loam_op *inv, char *name_buf, loam_error *err) {
  char *gen = NULL;
  if (op == NULL || inv == NULL || name_buf == NULL)
    return loam__err(err, LOAM_E_MISUSE, "loam_op_inverse: NULL argument");
  if (op->kind == LOAM_OP_BACKFILL)
    return irreversible(op, "the values it overwrites are not kept; write the 'down' yourself",
                        err);
  if (check(op, err) != LOAM_OK) return LOAM_ERROR;
  memset(inv, 0, sizeof *inv);
  inv->table = op->table;
  switch (op->kind) {
    case LOAM_OP_CREATE_TABLE:
      inv->kind = LOAM_OP_DROP_TABLE;
      inv->table = op->def->name;
      return LOAM_OK;
    case LOAM_OP_RENAME_TABLE:
      inv->kind = LOAM_OP_RENAME_TABLE;
      inv->table = op->new_name;
      inv->new_name = op->table;
      return LOAM_OK;
    case LOAM_OP_ADD_COLUMN:
      inv->kind = LOAM_OP_DROP_COLUMN;
      inv->name = op->column.name;
      return LOAM_OK;
    case LOAM_OP_RENAME_COLUMN:
      inv->kind = LOAM_OP_RENAME_COLUMN;
      inv->name = op->new_name;
      inv->new_name = op->name;
      return LOAM_OK;
    case LOAM_OP_ALTER_COLUMN:
      if (op->before.name == NULL)
        return irreversible(op, "the column as it was ('before') is not given", err);
      inv->kind = LOAM_OP_ALTER_COLUMN;
      inv->name = op->name;
      inv->alter = op->alter;
      inv->column = op->before;
      inv->before = op->column;
      inv->before.name = op->name;
      return LOAM_OK;
    case LOAM_OP_ADD_INDEX:
      inv->kind = LOAM_OP_DROP_INDEX;
      inv->table = op->index.table;
      inv->concurrently = op->concurrently;
      if (op->index.name != NULL) { inv->name = op->index.name; return LOAM_OK; }
      if (loam_constraint_name(op->index.table, op->index.columns, op->index.ncolumns, "idx", 1,
                               &gen, err) != LOAM_OK)
        return LOAM_ERROR;
      inv->name = keepname(gen, name_buf);
      return LOAM_OK;
    case LOAM_OP_ADD_FOREIGN_KEY:
      inv->kind = LOAM_OP_DROP_FOREIGN_KEY;
      if (op->name != NULL) { inv->name = op->name; return LOAM_OK; }
      if (loam_constraint_name(op->table, op->columns, op->ncolumns, "fkey", 1, &gen, err) !=
          LOAM_OK)
        return LOAM_ERROR;
      inv->name = keepname(gen, name_buf);
      return LOAM_OK;
    case LOAM_OP_VALIDATE_FOREIGN_KEY:
      inv->kind = (loam_op_kind)0;       /* a validated key is still the same key */
      return LOAM_OK;
    case LOAM_OP_ADD_CHECK:
      inv->kind = LOAM_OP_DROP_CHECK;
      inv->name = op->name;
      return LOAM_OK;
    case LOAM_OP_ADD_UNIQUE:
      inv->kind = LOAM_OP_DROP_UNIQUE;
      if (op->name != NULL) { inv->name = op->name; return LOAM_OK; }
      if (loam_constraint_name(op->table, op->columns, op->ncolumns, "key", 1, &gen, err) !=
          LOAM_OK)
        return LOAM_ERROR;
      inv->name = keepname(gen, name_buf);
      return LOAM_OK;
    case LOAM_OP_EXECUTE:
      if (op->down_sql == NULL)
        return irreversible(op, "no statement that undoes it ('down_sql') is given", err);
      inv->kind = LOAM_OP_EXECUTE;
      inv->sql = op->down_sql;
      inv->down_sql = op->sql;
      return LOAM_OK;
    case LOAM_OP_DROP_TABLE:
      return irreversible(op, "its rows are gone; write the 'down' yourself", err);
    case LOAM_OP_DROP_COLUMN:
      return irreversible(op, "the column's values are gone; write the 'down' yourself", err);
    case LOAM_OP_DROP_INDEX:
      return irreversible(op, "it does not say what the index was; write the 'down' yourself",
                          err);
    case LOAM_OP_DROP_FOREIGN_KEY:
    case LOAM_OP_DROP_CHECK:
    case LOAM_OP_DROP_UNIQUE:
      return irreversible(op, "it does not say what the constraint was; write the 'down' "
                          "yourself", err);
    default:
      return loam__err(err, LOAM_E_MISUSE, "unknown migration operation (%d)", (int)op->kind);
  }
}

/* }====================================================================== */


/* {======================================================================
** Running
** ======================================================================= */

/*
** Runs the 'pragma_foreign_key_check' statement 'i' of 'rs': a row is a
** row that references nothing, reported as the violation it is.
*/
static int fkcheck (loam_conn *c, const loam_rendered *rs, int i, loam_error *err) {
  loam_stmt *st = NULL;
  loam_value tab, rowid, parent;
  int rc = loam_query_rendered(c, rs, i, 0, &st, err);
  if (rc != LOAM_OK) return rc;
  rc = loam_step(st, err);
  if (rc == LOAM_ROW) {
    loam_column(st, 0, &tab);
    loam_column(st, 1, &rowid);
    loam_column(st, 2, &parent);
    rc = loam__err(err, LOAM_E_FOREIGN_KEY_VIOLATION,
                   "foreign key check failed: a row of '%.80s' (rowid %lld) references a row "
                   "of '%.80s' that does not exist",
                   tab.type == LOAM_TEXT ? tab.u.s.ptr : "?",
                   rowid.type == LOAM_INT ? (long long)rowid.u.i : -1LL,
                   parent.type == LOAM_TEXT ? parent.u.s.ptr : "?");
  }
  else if (rc == LOAM_DONE) rc = LOAM_OK;
  loam_stmt_close(st);
  return rc;
}


int loam_op_run (loam_conn *conn, const loam_op *op, loam_error *err) {
  const loam__dialect_desc *d;
  loam_db_schema *s = NULL;
  const loam_db_table *t = NULL;
  loam_rendered *rs = NULL;
  int rc, i;
  if (conn == NULL) return loam__err(err, LOAM_E_MISUSE, "attempt to use a closed connection");
  if (op == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_op_run: 'op' is NULL");
  d = loam__dialect(loam_conn_backend(conn));
  if (check(op, err) != LOAM_OK) return LOAM_ERROR;
  if (rebuilds(op, d, NULL)) {
    /* the introspected table decides (a limited ALTER may still run in place) */
    if (loam_introspect(conn, &op->table, 1, &s, err) != LOAM_OK) return LOAM_ERROR;
    t = &s->tables[0];
    if (rebuilds(op, d, t) && d->fk_off_check != NULL) {
      loam_stmt *st = NULL;
      loam_value v;
      rc = loam_query(conn, d->fk_off_check, NULL, 0, 0, &st, err);
      if (rc == LOAM_OK && loam_step(st, err) == LOAM_ROW && loam_column(st, 0, &v) == LOAM_OK &&
          v.type == LOAM_INT && v.u.i != 0)
        rc = bad(op, err, "rebuilding the table needs foreign keys switched off before the "
                 "transaction (PRAGMA foreign_keys = OFF): with them on, dropping the old "
                 "table would run the ON DELETE actions of the tables that reference it");
      loam_stmt_close(st);
      if (rc != LOAM_OK) {
        loam_db_schema_free(s);
        return LOAM_ERROR;
      }
    }
  }
  rc = loam_render_op(op, loam_conn_backend(conn), t, &rs, err);
  for (i = 0; rc == LOAM_OK && i < loam_rendered_count(rs); i++)
    rc = loam_rendered_kind(rs, i) == LOAM_SQL_SELECT && op->kind != LOAM_OP_EXECUTE
           ? fkcheck(conn, rs, i, err)
           : loam_exec_rendered(conn, rs, i, NULL, NULL, NULL, err);
  loam_rendered_free(rs);
  loam_db_schema_free(s);
  return rc;
}

/* }====================================================================== */
