/*
** test_ops.c: migration operations (ops.c, rebuild.c): their SQL on each
** backend as exact text, their inverses, and what they do to real
** databases, SQLite's table rebuild above all: it must keep the rows, the
** indexes, the triggers and the foreign keys, and undo itself whole when
** the foreign key check fails.
*/
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "loam.h"


static int exec (loam_conn *c, const char *sql, loam_error *err) {
  return loam_exec(c, sql, NULL, 0, NULL, NULL, NULL, err);
}


/* The statements of 'op' on 'be' joined by "; ", or NULL with the error in 'err'. */
static char *render (const loam_op *op, loam_backend be, const loam_db_table *t,
                     loam_error *err) {
  static char buf[4096];
  loam_rendered *rs = NULL;
  int i;
  if (loam_render_op(op, be, t, &rs, err) != LOAM_OK) return NULL;
  buf[0] = '\0';
  for (i = 0; i < loam_rendered_count(rs); i++) {
    if (i > 0) strcat(buf, "; ");
    strncat(buf, loam_rendered_sql(rs, i, NULL), sizeof buf - strlen(buf) - 3);
  }
  loam_rendered_free(rs);
  return buf;
}


static const char *const ab[] = { "a", "b" };
static const char *const xy[] = { "x", "y" };
static const char *const c_col[] = { "c" };


TEST(ops_render_in_place) {
  loam_error err = LOAM_ERROR_INIT;
  loam_op op;
  loam_rendered *rs = NULL;
  const loam_value *pv;
  int np = 0;
  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_RENAME_TABLE;
  op.table = "t";
  op.new_name = "u";
  CHECK_STR(render(&op, LOAM_SQLITE, NULL, &err), "ALTER TABLE \"t\" RENAME TO \"u\"");
  CHECK_STR(render(&op, LOAM_POSTGRES, NULL, &err), "ALTER TABLE \"t\" RENAME TO \"u\"");

  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_ADD_COLUMN;
  op.table = "t";
  op.column.name = "c";
  op.column.type = LOAM_COL_TEXT;
  op.column.not_null = 1;
  op.column.defval.kind = LOAM_DEFAULT_VALUE;
  op.column.defval.value = loam_text("it's", 4);
  CHECK_STR(render(&op, LOAM_SQLITE, NULL, &err),
            "ALTER TABLE \"t\" ADD COLUMN \"c\" TEXT NOT NULL DEFAULT 'it''s'");
  CHECK_STR(render(&op, LOAM_POSTGRES, NULL, &err),
            "ALTER TABLE \"t\" ADD COLUMN \"c\" text NOT NULL DEFAULT 'it''s'");
  CHECK_INT(loam_op_rebuilds(&op, LOAM_SQLITE), 0);
  /* SQLite cannot add a UNIQUE column in place */
  op.column.unique = 1;
  CHECK_INT(loam_op_rebuilds(&op, LOAM_SQLITE), 1);
  CHECK_INT(loam_op_rebuilds(&op, LOAM_POSTGRES), 0);
  CHECK(render(&op, LOAM_SQLITE, NULL, &err) == NULL);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_STR(err.message, "add_column on table 't': SQLite performs it by rebuilding the table, "
            "which needs the table as introspected");
  CHECK_STR(render(&op, LOAM_POSTGRES, NULL, &err),
            "ALTER TABLE \"t\" ADD COLUMN \"c\" text NOT NULL DEFAULT 'it''s' "
            "CONSTRAINT \"t_c_key\" UNIQUE");

  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_RENAME_COLUMN;
  op.table = "t";
  op.name = "c";
  op.new_name = "d";
  CHECK_STR(render(&op, LOAM_SQLITE, NULL, &err), "ALTER TABLE \"t\" RENAME COLUMN \"c\" TO \"d\"");
  CHECK_STR(render(&op, LOAM_POSTGRES, NULL, &err),
            "ALTER TABLE \"t\" RENAME COLUMN \"c\" TO \"d\"");

  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_DROP_COLUMN;
  op.table = "t";
  op.name = "c";
  CHECK_STR(render(&op, LOAM_POSTGRES, NULL, &err), "ALTER TABLE \"t\" DROP COLUMN \"c\"");

  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_ALTER_COLUMN;
  op.table = "t";
  op.name = "c";
  op.alter = LOAM_ALTER_TYPE | LOAM_ALTER_NULL | LOAM_ALTER_DEFAULT;
  op.column.type = LOAM_COL_BIGINT;
  op.column.not_null = 1;
  op.column.defval.kind = LOAM_DEFAULT_VALUE;
  op.column.defval.value = loam_int(0);
  CHECK_STR(render(&op, LOAM_POSTGRES, NULL, &err),
            "ALTER TABLE \"t\" ALTER COLUMN \"c\" TYPE bigint, ALTER COLUMN \"c\" SET NOT NULL, "
            "ALTER COLUMN \"c\" SET DEFAULT 0");
  op.alter = LOAM_ALTER_NULL | LOAM_ALTER_DEFAULT;
  op.column.not_null = 0;
  op.column.defval.kind = LOAM_DEFAULT_NONE;
  CHECK_STR(render(&op, LOAM_POSTGRES, NULL, &err),
            "ALTER TABLE \"t\" ALTER COLUMN \"c\" DROP NOT NULL, ALTER COLUMN \"c\" DROP DEFAULT");
  CHECK_INT(loam_op_rebuilds(&op, LOAM_SQLITE), 1);
  CHECK_INT(loam_op_rebuilds(&op, LOAM_POSTGRES), 0);

  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_ADD_INDEX;
  op.index.table = "t";
  op.index.columns = c_col;
  op.index.ncolumns = 1;
  op.index.where = "c > 0";
  op.concurrently = 1;
  CHECK_STR(render(&op, LOAM_POSTGRES, NULL, &err),
            "CREATE INDEX CONCURRENTLY \"t_c_idx\" ON \"t\" (\"c\") WHERE (c > 0)");
  CHECK_STR(render(&op, LOAM_SQLITE, NULL, &err),
            "CREATE INDEX \"t_c_idx\" ON \"t\" (\"c\") WHERE (c > 0)");
  CHECK_INT(loam_op_needs_autocommit(&op, LOAM_POSTGRES), 1);
  CHECK_INT(loam_op_needs_autocommit(&op, LOAM_SQLITE), 0);
  op.concurrently = 0;
  CHECK_INT(loam_op_needs_autocommit(&op, LOAM_POSTGRES), 0);

  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_DROP_INDEX;
  op.table = "t";
  op.name = "t_c_idx";
  op.concurrently = 1;
  CHECK_STR(render(&op, LOAM_POSTGRES, NULL, &err), "DROP INDEX CONCURRENTLY \"t_c_idx\"");
  CHECK_STR(render(&op, LOAM_SQLITE, NULL, &err), "DROP INDEX \"t_c_idx\"");
  CHECK_INT(loam_op_needs_autocommit(&op, LOAM_POSTGRES), 1);

  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_ADD_FOREIGN_KEY;
  op.table = "t";
  op.columns = ab;
  op.ref_table = "r";
  op.ref_columns = xy;
  op.ncolumns = 2;
  op.on_delete = LOAM_FK_CASCADE;
  op.on_update = LOAM_FK_SET_NULL;
  op.not_valid = 1;
  CHECK_STR(render(&op, LOAM_POSTGRES, NULL, &err),
            "ALTER TABLE \"t\" ADD CONSTRAINT \"t_a_b_fkey\" FOREIGN KEY (\"a\", \"b\") "
            "REFERENCES \"r\" (\"x\", \"y\") ON DELETE CASCADE ON UPDATE SET NULL NOT VALID");
  CHECK_INT(loam_op_rebuilds(&op, LOAM_SQLITE), 1);

  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_VALIDATE_FOREIGN_KEY;
  op.table = "t";
  op.name = "t_a_b_fkey";
  CHECK_STR(render(&op, LOAM_POSTGRES, NULL, &err),
            "ALTER TABLE \"t\" VALIDATE CONSTRAINT \"t_a_b_fkey\"");
  /* SQLite checks every row as it is written: validating is checking the table */
  CHECK_OK(loam_render_op(&op, LOAM_SQLITE, NULL, &rs, &err), &err);
  CHECK_STR(loam_rendered_sql(rs, 0, NULL), "SELECT * FROM pragma_foreign_key_check('t')");
  CHECK_INT(loam_rendered_kind(rs, 0), LOAM_SQL_SELECT);
  loam_rendered_free(rs);

  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_ADD_CHECK;
  op.table = "t";
  op.name = "t_pos";
  op.sql = "a > 0";
  op.not_valid = 1;
  CHECK_STR(render(&op, LOAM_POSTGRES, NULL, &err),
            "ALTER TABLE \"t\" ADD CONSTRAINT \"t_pos\" CHECK (a > 0) NOT VALID");
  op.kind = LOAM_OP_DROP_CHECK;
  CHECK_STR(render(&op, LOAM_POSTGRES, NULL, &err), "ALTER TABLE \"t\" DROP CONSTRAINT \"t_pos\"");
  op.kind = LOAM_OP_DROP_FOREIGN_KEY;
  CHECK_STR(render(&op, LOAM_POSTGRES, NULL, &err), "ALTER TABLE \"t\" DROP CONSTRAINT \"t_pos\"");

  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_ADD_UNIQUE;
  op.table = "t";
  op.columns = ab;
  op.ncolumns = 2;
  CHECK_STR(render(&op, LOAM_POSTGRES, NULL, &err),
            "ALTER TABLE \"t\" ADD CONSTRAINT \"t_a_b_key\" UNIQUE (\"a\", \"b\")");
  CHECK_INT(loam_op_rebuilds(&op, LOAM_SQLITE), 1);
  op.name = "t_ab";
  CHECK_STR(render(&op, LOAM_POSTGRES, NULL, &err),
            "ALTER TABLE \"t\" ADD CONSTRAINT \"t_ab\" UNIQUE (\"a\", \"b\")");
  op.kind = LOAM_OP_DROP_UNIQUE;
  CHECK_STR(render(&op, LOAM_POSTGRES, NULL, &err), "ALTER TABLE \"t\" DROP CONSTRAINT \"t_ab\"");
  CHECK_INT(loam_op_rebuilds(&op, LOAM_SQLITE), 1);

  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_EXECUTE;
  {
    loam_value p[2];
    p[0] = loam_text("x", 1);
    p[1] = loam_int(7);
    op.sql = "UPDATE t SET a = ? WHERE b = ?";
    op.params = p;
    op.nparams = 2;
    CHECK_OK(loam_render_op(&op, LOAM_POSTGRES, NULL, &rs, &err), &err);
  }
  CHECK_STR(loam_rendered_sql(rs, 0, NULL), "UPDATE t SET a = ? WHERE b = ?");
  CHECK_INT(loam_rendered_kind(rs, 0), LOAM_SQL_UPDATE);
  pv = loam_rendered_params(rs, 0, &np);
  CHECK_INT(np, 2);
  CHECK_INT(pv[0].type, LOAM_TEXT);
  CHECK_STR(pv[0].u.s.ptr, "x");
  CHECK_INT(pv[1].u.i, 7);
  loam_rendered_free(rs);

  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_CREATE_TABLE;
  {
    loam_column_def cols[1];
    loam_table_def def;
    memset(cols, 0, sizeof cols);
    memset(&def, 0, sizeof def);
    cols[0].name = "id";
    cols[0].type = LOAM_COL_ID;
    def.name = "t";
    def.columns = cols;
    def.ncolumns = 1;
    op.def = &def;
    CHECK_STR(render(&op, LOAM_SQLITE, NULL, &err),
              "CREATE TABLE \"t\" (\"id\" INTEGER CONSTRAINT \"t_pkey\" PRIMARY KEY)");
  }
  op.kind = LOAM_OP_DROP_TABLE;
  op.table = "t";
  CHECK_STR(render(&op, LOAM_POSTGRES, NULL, &err), "DROP TABLE \"t\"");
  loam_error_clear(&err);
}


TEST(ops_render_refuses_bad_operations) {
  loam_error err = LOAM_ERROR_INIT;
  loam_rendered *rs = (loam_rendered *)1;
  loam_op op;
  memset(&op, 0, sizeof op);
  CHECK_INT(loam_render_op(&op, LOAM_SQLITE, NULL, &rs, &err), LOAM_ERROR);
  CHECK(rs == NULL);
  CHECK_STR(err.message, "unknown migration operation (0)");
  op.kind = LOAM_OP_RENAME_TABLE;
  op.table = "t";
  CHECK(render(&op, LOAM_SQLITE, NULL, &err) == NULL);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_HAS(err.message, "rename_table on table 't': new name: ");
  op.kind = LOAM_OP_ALTER_COLUMN;
  op.name = "c";
  CHECK(render(&op, LOAM_POSTGRES, NULL, &err) == NULL);
  CHECK_STR(err.message, "alter_column on table 't': 'alter' must say what changes: type, null "
            "and/or default");
  op.alter = LOAM_ALTER_TYPE;
  op.column.type = LOAM_COL_TEXT;
  op.column.length = -1;
  CHECK(render(&op, LOAM_POSTGRES, NULL, &err) == NULL);
  CHECK_HAS(err.message, "length -1 is out of range");
  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_ADD_CHECK;
  op.table = "t";
  op.sql = "a > 0";
  CHECK(render(&op, LOAM_POSTGRES, NULL, &err) == NULL);
  CHECK_HAS(err.message, "add_check on table 't': constraint name (a check needs one)");
  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_ADD_FOREIGN_KEY;
  op.table = "t";
  op.columns = ab;
  op.ncolumns = 2;
  op.ref_table = "r";
  op.ref_columns = xy;
  op.on_delete = (loam_fk_action)9;
  CHECK(render(&op, LOAM_POSTGRES, NULL, &err) == NULL);
  CHECK_STR(err.message, "add_foreign_key on table 't': unknown foreign key action");
  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_ADD_UNIQUE;
  op.table = "t";
  CHECK(render(&op, LOAM_POSTGRES, NULL, &err) == NULL);
  CHECK_STR(err.message, "add_unique on table 't': no columns");
  op.kind = LOAM_OP_DROP_UNIQUE;
  CHECK(render(&op, LOAM_SQLITE, NULL, &err) == NULL);
  CHECK_STR(err.message, "drop_unique on table 't': name: invalid identifier: empty name");
  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_EXECUTE;
  CHECK(render(&op, LOAM_POSTGRES, NULL, &err) == NULL);
  CHECK_STR(err.message, "execute: no SQL");
  /* a SQLite trigger is one statement with its body; nothing may follow it */
  {
    int n = -1;
    const char *trig = "CREATE TEMP TRIGGER x AFTER INSERT ON t BEGIN DELETE FROM t; "
                       "SELECT CASE WHEN 1 THEN ? END; END;";
    CHECK_OK(loam_sql_param_count(LOAM_SQLITE, trig, &n, &err), &err);
    CHECK_INT(n, 1);
    CHECK_INT(loam_sql_param_count(LOAM_SQLITE, "CREATE TRIGGER x AFTER INSERT ON t BEGIN "
                                   "DELETE FROM t; END; DROP TABLE t", &n, &err), LOAM_ERROR);
    CHECK_HAS(err.message, "more than one statement");
    CHECK_INT(loam_sql_param_count(LOAM_POSTGRES, "CREATE TRIGGER x; DROP TABLE t", &n, &err),
              LOAM_ERROR);
    CHECK_HAS(err.message, "more than one statement");
  }
  CHECK_INT(loam_render_op(NULL, LOAM_SQLITE, NULL, &rs, &err), LOAM_ERROR);
  CHECK_STR(err.message, "loam_render_op: 'op' is NULL");
  CHECK_INT(loam_render_op(&op, LOAM_SQLITE, NULL, NULL, &err), LOAM_ERROR);
  CHECK_STR(err.message, "loam_render_op: 'out' is NULL");
  op.sql = "SELECT 1";
  CHECK_INT(loam_render_op(&op, (loam_backend)9, NULL, &rs, &err), LOAM_ERROR);
  CHECK_STR(err.message, "loam_render_op: unknown backend (9)");
  loam_error_clear(&err);
}


TEST(ops_inverse) {
  loam_error err = LOAM_ERROR_INIT;
  loam_op op, inv;
  char name[LOAM_IDENT_MAX + 1];
  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_ADD_INDEX;
  op.index.table = "t";
  op.index.columns = c_col;
  op.index.ncolumns = 1;
  op.concurrently = 1;
  CHECK_OK(loam_op_inverse(&op, &inv, name, &err), &err);
  CHECK_INT(inv.kind, LOAM_OP_DROP_INDEX);
  CHECK_STR(inv.table, "t");
  CHECK_STR(inv.name, "t_c_idx");
  CHECK_INT(inv.concurrently, 1);

  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_ADD_FOREIGN_KEY;
  op.table = "t";
  op.columns = ab;
  op.ref_table = "r";
  op.ref_columns = xy;
  op.ncolumns = 2;
  CHECK_OK(loam_op_inverse(&op, &inv, name, &err), &err);
  CHECK_INT(inv.kind, LOAM_OP_DROP_FOREIGN_KEY);
  CHECK_STR(inv.name, "t_a_b_fkey");
  op.kind = LOAM_OP_ADD_UNIQUE;
  CHECK_OK(loam_op_inverse(&op, &inv, name, &err), &err);
  CHECK_INT(inv.kind, LOAM_OP_DROP_UNIQUE);
  CHECK_STR(inv.name, "t_a_b_key");
  op.kind = LOAM_OP_DROP_UNIQUE;
  op.name = "t_a_b_key";
  CHECK_INT(loam_op_inverse(&op, &inv, name, &err), LOAM_ERROR);
  CHECK_STR(err.message, "drop_unique on table 't': cannot be reversed: it does not say what "
            "the constraint was; write the 'down' yourself");

  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_RENAME_COLUMN;
  op.table = "t";
  op.name = "a";
  op.new_name = "b";
  CHECK_OK(loam_op_inverse(&op, &inv, name, &err), &err);
  CHECK_INT(inv.kind, LOAM_OP_RENAME_COLUMN);
  CHECK_STR(inv.name, "b");
  CHECK_STR(inv.new_name, "a");

  op.kind = LOAM_OP_VALIDATE_FOREIGN_KEY;
  CHECK_OK(loam_op_inverse(&op, &inv, name, &err), &err);
  CHECK_INT(inv.kind, 0);

  /* what cannot be undone says which and why */
  op.kind = LOAM_OP_DROP_TABLE;
  CHECK_INT(loam_op_inverse(&op, &inv, name, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_STR(err.message, "drop_table on table 't': cannot be reversed: its rows are gone; write "
            "the 'down' yourself");
  op.kind = LOAM_OP_DROP_COLUMN;
  CHECK_INT(loam_op_inverse(&op, &inv, name, &err), LOAM_ERROR);
  CHECK_HAS(err.message, "drop_column on table 't': cannot be reversed: the column's values");
  op.kind = LOAM_OP_ALTER_COLUMN;
  op.alter = LOAM_ALTER_NULL;
  CHECK_INT(loam_op_inverse(&op, &inv, name, &err), LOAM_ERROR);
  CHECK_STR(err.message, "alter_column on table 't': cannot be reversed: the column as it was "
            "('before') is not given");
  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_EXECUTE;
  op.sql = "DELETE FROM t";
  CHECK_INT(loam_op_inverse(&op, &inv, name, &err), LOAM_ERROR);
  CHECK_STR(err.message, "execute: cannot be reversed: no statement that undoes it "
            "('down_sql') is given");
  op.down_sql = "SELECT 1";
  CHECK_OK(loam_op_inverse(&op, &inv, name, &err), &err);
  CHECK_STR(inv.sql, "SELECT 1");
  CHECK_INT(loam_op_inverse(NULL, &inv, name, &err), LOAM_ERROR);
  CHECK_STR(err.message, "loam_op_inverse: NULL argument");
  loam_error_clear(&err);
}


/* {======================================================================
** On real databases
** ======================================================================= */

/*
** Runs 'op' as a migration runs it: in a transaction of its own, unless it
** must run outside one; a SQLite rebuild with foreign keys off around it.
*/
static int apply (loam_conn *c, const loam_op *op, loam_error *err) {
  loam_backend be = loam_conn_backend(c);
  int fkoff = loam_op_rebuilds(op, be), rc;
  if (loam_op_needs_autocommit(op, be)) return loam_op_run(c, op, err);
  if (fkoff && exec(c, "PRAGMA foreign_keys = OFF", err) != LOAM_OK) return LOAM_ERROR;
  rc = loam_tx_begin(c, err);
  if (rc == LOAM_OK) {
    rc = loam_op_run(c, op, err);
    if (rc == LOAM_OK) rc = loam_tx_commit(c, err);
    if (rc != LOAM_OK) loam_tx_rollback(c, NULL);     /* keeps the first error in 'err' */
  }
  if (fkoff) exec(c, "PRAGMA foreign_keys = ON", NULL);
  return rc;
}


/* Appends the strings of a list to 'b'. */
static void dumplist (char *b, size_t size, const char *const *l, int n) {
  int i;
  for (i = 0; i < n; i++) {
    strncat(b, l[i] != NULL ? l[i] : "-", size - strlen(b) - 1);
    strncat(b, ",", size - strlen(b) - 1);
  }
}


/*
** The schema of 'c' as text: everything introspection reads except the
** CREATE texts (a rebuild writes its own), so two equal dumps are equal
** schemas.
*/
static char *dump (loam_conn *c) {
  static char b[16384];
  loam_db_schema *s = NULL;
  int i, j;
  char line[600];
  b[0] = '\0';
  if (loam_introspect(c, NULL, 0, &s, NULL) != LOAM_OK) return b;
  for (i = 0; i < s->ntables; i++) {
    const loam_db_table *t = &s->tables[i];
#define ADD(...) do { snprintf(line, sizeof line, __VA_ARGS__); \
                      strncat(b, line, sizeof b - strlen(b) - 1); } while (0)
    ADD("table %s\n", t->name);
    for (j = 0; j < t->ncolumns; j++) {
      const loam_db_column *k = &t->columns[j];
      ADD(" col %s %s %d %d %s %d\n", k->name, k->type, (int)k->loam_type, k->not_null,
          k->default_sql ? k->default_sql : "-", k->generated);
    }
    ADD(" pk %s ", t->primary_key.name ? t->primary_key.name : "-");
    dumplist(b, sizeof b, t->primary_key.columns, t->primary_key.ncolumns);
    for (j = 0; j < t->nuniques; j++) {
      ADD("\n unique %s ", t->uniques[j].name ? t->uniques[j].name : "-");
      dumplist(b, sizeof b, t->uniques[j].columns, t->uniques[j].ncolumns);
    }
    for (j = 0; j < t->nchecks; j++)
      ADD("\n check %s %s", t->checks[j].name ? t->checks[j].name : "-", t->checks[j].sql);
    for (j = 0; j < t->nfks; j++) {
      const loam_db_fk *f = &t->fks[j];
      ADD("\n fk %s %s %d %d %d ", f->name ? f->name : "-", f->ref_table, (int)f->on_delete,
          (int)f->on_update, f->validated);
      dumplist(b, sizeof b, f->columns, f->ncolumns);
      dumplist(b, sizeof b, f->ref_columns, f->ncolumns);
    }
    for (j = 0; j < t->nindexes; j++) {
      const loam_db_index *x = &t->indexes[j];
      ADD("\n index %s %d %s ", x->name, x->unique, x->where ? x->where : "-");
      dumplist(b, sizeof b, x->columns, x->ncolumns);
    }
    ADD("\n triggers %d\n", t->ntriggers);
#undef ADD
  }
  loam_db_schema_free(s);
  return b;
}


static const loam_column_def parent_cols[] = {
  { .name = "id", .type = LOAM_COL_ID },
  { .name = "name", .type = LOAM_COL_TEXT, .not_null = 1 },
};
static const loam_column_def child_cols[] = {
  { .name = "id", .type = LOAM_COL_ID },
  { .name = "parent_id", .type = LOAM_COL_BIGINT, .not_null = 1,
    .references = { "parent", "id", LOAM_FK_CASCADE, LOAM_FK_NO_ACTION } },
  { .name = "qty", .type = LOAM_COL_INTEGER },
  { .name = "note", .type = LOAM_COL_TEXT },
};
static const char *const qty_col[] = { "qty" };
static const char *const owner_col[] = { "owner_id" };
static const char *const id_col[] = { "id" };
static const char *const remark_col[] = { "remark" };


/* parent and child with rows, an index, and on SQLite a trigger. */
static int setup (loam_conn *c, loam_error *err) {
  loam_backend be = loam_conn_backend(c);
  loam_table_def p = { .name = "parent", .columns = parent_cols, .ncolumns = 2 };
  loam_table_def k = { .name = "child", .columns = child_cols, .ncolumns = 4 };
  loam_index_def x = { .name = "child_qty_idx", .table = "child", .columns = qty_col,
                       .ncolumns = 1 };
  loam_op op;
  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_CREATE_TABLE;
  op.def = &p;
  if (loam_op_run(c, &op, err) != LOAM_OK) return LOAM_ERROR;
  op.def = &k;
  if (loam_op_run(c, &op, err) != LOAM_OK) return LOAM_ERROR;
  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_ADD_INDEX;
  op.index = x;
  if (loam_op_run(c, &op, err) != LOAM_OK ||
      exec(c, "INSERT INTO parent (name) VALUES ('p1'), ('p2')", err) != LOAM_OK ||
      exec(c, "INSERT INTO child (parent_id, qty, note) VALUES (1, 5, 'a'), (1, 6, NULL), "
           "(2, 7, 'c')", err) != LOAM_OK)
    return LOAM_ERROR;
  if (be == LOAM_SQLITE &&
      exec(c, "CREATE TRIGGER child_touch AFTER UPDATE OF qty ON child BEGIN "
           "UPDATE parent SET name = name || '!' WHERE id = new.parent_id; END", err) != LOAM_OK)
    return LOAM_ERROR;
  return LOAM_OK;
}


/* A connection with the two tables: SQLite in memory, PostgreSQL in a schema of its own. */
static loam_conn *open_db (loam_backend be, loam_error *err) {
  loam_conn *c = NULL;
  if (be == LOAM_SQLITE) {
    if (loam_connect("sqlite::memory:", NULL, &c, err) != LOAM_OK) return NULL;
  }
  else {
    const char *url = t_pg_url();
    if (url == NULL) {
      t_fail(__FILE__, __LINE__, "LOAM_TEST_PG is not set; the PostgreSQL tests need a server");
      return NULL;
    }
    if (loam_connect(url, NULL, &c, err) != LOAM_OK ||
        exec(c, "DROP SCHEMA IF EXISTS loam_ops CASCADE", err) != LOAM_OK ||
        exec(c, "CREATE SCHEMA loam_ops", err) != LOAM_OK ||
        exec(c, "SET search_path TO loam_ops", err) != LOAM_OK) {
      loam_conn_close(c);
      return NULL;
    }
  }
  if (setup(c, err) != LOAM_OK) {
    loam_conn_close(c);
    return NULL;
  }
  return c;
}


/* The operations of one migration, each reversible. */
static int build_ops (loam_op *ops, loam_value *param) {
  int n = 0;
  memset(ops, 0, sizeof *ops * 12);
  ops[n].kind = LOAM_OP_ADD_COLUMN;
  ops[n].table = "child";
  ops[n].column.name = "flag";
  ops[n].column.type = LOAM_COL_BOOLEAN;
  ops[n].column.not_null = 1;
  ops[n].column.defval.kind = LOAM_DEFAULT_VALUE;
  ops[n++].column.defval.value = loam_bool(0);
  ops[n].kind = LOAM_OP_RENAME_COLUMN;
  ops[n].table = "child";
  ops[n].name = "note";
  ops[n++].new_name = "remark";
  ops[n].kind = LOAM_OP_ALTER_COLUMN;
  ops[n].table = "child";
  ops[n].name = "qty";
  ops[n].alter = LOAM_ALTER_NULL | LOAM_ALTER_DEFAULT;
  ops[n].column.type = LOAM_COL_INTEGER;
  ops[n].column.not_null = 1;
  ops[n].column.defval.kind = LOAM_DEFAULT_VALUE;
  ops[n].column.defval.value = loam_int(1);
  ops[n].before.name = "qty";
  ops[n++].before.type = LOAM_COL_INTEGER;
  ops[n].kind = LOAM_OP_ADD_CHECK;
  ops[n].table = "child";
  ops[n].name = "child_qty_pos";
  ops[n++].sql = "qty > 0";
  ops[n].kind = LOAM_OP_ADD_COLUMN;
  ops[n].table = "child";
  ops[n].column.name = "owner_id";
  ops[n++].column.type = LOAM_COL_BIGINT;
  ops[n].kind = LOAM_OP_ADD_FOREIGN_KEY;
  ops[n].table = "child";
  ops[n].columns = owner_col;
  ops[n].ref_table = "parent";
  ops[n].ref_columns = id_col;
  ops[n].ncolumns = 1;
  ops[n].on_delete = LOAM_FK_SET_NULL;
  ops[n++].not_valid = 1;
  ops[n].kind = LOAM_OP_VALIDATE_FOREIGN_KEY;
  ops[n].table = "child";
  ops[n++].name = "child_owner_id_fkey";
  ops[n].kind = LOAM_OP_ADD_INDEX;
  ops[n].index.table = "child";
  ops[n].index.columns = remark_col;
  ops[n].index.ncolumns = 1;
  ops[n].index.where = "remark IS NOT NULL";
  ops[n++].concurrently = 1;
  ops[n].kind = LOAM_OP_ADD_UNIQUE;
  ops[n].table = "child";
  ops[n].columns = qty_col;
  ops[n++].ncolumns = 1;
  ops[n].kind = LOAM_OP_RENAME_TABLE;
  ops[n].table = "child";
  ops[n++].new_name = "item";
  ops[n].kind = LOAM_OP_EXECUTE;
  *param = loam_int(10);
  ops[n].sql = "UPDATE item SET qty = qty + ?";
  ops[n].params = param;
  ops[n].nparams = 1;
  ops[n++].down_sql = "UPDATE item SET qty = qty - 10";
  return n;
}


static void check_apply_and_undo (loam_backend be) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = open_db(be, &err);
  loam_op ops[12], inv;
  loam_value param;
  char before[16384], name[LOAM_IDENT_MAX + 1];
  const loam_db_table *t;
  loam_db_schema *s = NULL;
  int n, i;
  if (c == NULL) {
    if (!t_failed()) t_fail(__FILE__, __LINE__, "setup: %s", err.message);
    loam_error_clear(&err);
    return;
  }
  strcpy(before, dump(c));
  CHECK_HAS(before, "table child");
  n = build_ops(ops, &param);
  for (i = 0; i < n; i++) {
    if (apply(c, &ops[i], &err) != LOAM_OK) {
      t_fail(__FILE__, __LINE__, "%s: %s", loam_errcode_name(err.code), err.message);
      goto done;
    }
  }
  CHECK_OK(loam_introspect(c, NULL, 0, &s, &err), &err);
  t = loam_db_schema_table(s, "item");
  CHECK(t != NULL && loam_db_schema_table(s, "child") == NULL);
  CHECK_INT(t->ncolumns, 6);
  CHECK_STR(t->columns[3].name, "remark");
  CHECK_INT(loam_db_table_column(t, "qty")->not_null, 1);
  CHECK_STR(loam_db_table_column(t, "qty")->default_sql, "1");
  CHECK_INT(loam_db_table_column(t, "flag")->loam_type, LOAM_COL_BOOLEAN);
  CHECK_INT(t->nchecks, 1);
  CHECK_STR(t->checks[0].name, "child_qty_pos");
  CHECK_INT(t->nuniques, 1);
  CHECK_STR(t->uniques[0].name, "child_qty_key");
  CHECK_INT(t->nfks, 2);
  CHECK_STR(t->fks[0].name, "child_owner_id_fkey");
  CHECK_INT(t->fks[0].on_delete, LOAM_FK_SET_NULL);
  CHECK_INT(t->fks[0].validated, 1);
  CHECK_STR(t->fks[1].name, "child_parent_id_fkey");
  CHECK_INT(t->fks[1].on_delete, LOAM_FK_CASCADE);
  CHECK_INT(t->nindexes, 2);
  CHECK_STR(t->indexes[0].name, "child_qty_idx");
  CHECK_STR(t->indexes[1].name, "child_remark_idx");
  CHECK(t->indexes[1].where != NULL);
  CHECK_INT(t->ntriggers, be == LOAM_SQLITE ? 1 : 0);
  CHECK_INT(t_scalar(c, "SELECT sum(qty) FROM item"), 48);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM item WHERE remark IS NULL"), 1);
  loam_db_schema_free(s);
  s = NULL;
  /* the derived 'down': the inverses, last first, give the schema and rows back */
  for (i = n - 1; i >= 0; i--) {
    CHECK_OK(loam_op_inverse(&ops[i], &inv, name, &err), &err);
    if (inv.kind == 0) continue;
    if (apply(c, &inv, &err) != LOAM_OK) {
      t_fail(__FILE__, __LINE__, "undo %d: %s: %s", i, loam_errcode_name(err.code), err.message);
      goto done;
    }
  }
  CHECK_STR(dump(c), before);
  CHECK_INT(t_scalar(c, "SELECT sum(qty) FROM child"), 18);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM child WHERE note IS NULL"), 1);
done:
  loam_db_schema_free(s);
  if (be == LOAM_POSTGRES) exec(c, "DROP SCHEMA loam_ops CASCADE", NULL);
  loam_conn_close(c);
  loam_error_clear(&err);
}


TEST(ops_apply_and_undo_sqlite) { check_apply_and_undo(LOAM_SQLITE); }
TEST(ops_apply_and_undo_postgres) { check_apply_and_undo(LOAM_POSTGRES); }


/* A failing operation changes nothing, with the same code on both backends. */
static void check_failure_changes_nothing (loam_backend be) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = open_db(be, &err);
  char before[16384];
  loam_op op;
  if (c == NULL) {
    if (!t_failed()) t_fail(__FILE__, __LINE__, "setup: %s", err.message);
    loam_error_clear(&err);
    return;
  }
  strcpy(before, dump(c));
  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_ALTER_COLUMN;
  op.table = "child";
  op.name = "note";
  op.alter = LOAM_ALTER_NULL;
  op.column.type = LOAM_COL_TEXT;
  op.column.not_null = 1;
  CHECK_INT(apply(c, &op, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_NOT_NULL_VIOLATION);
  CHECK_STR(dump(c), before);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM child"), 3);
  /* a column that is not there */
  op.name = "nope";
  CHECK_INT(apply(c, &op, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_UNDEFINED_COLUMN);
  CHECK_HAS(err.message, "nope");
  CHECK_STR(dump(c), before);
  if (be == LOAM_POSTGRES) exec(c, "DROP SCHEMA loam_ops CASCADE", NULL);
  loam_conn_close(c);
  loam_error_clear(&err);
}


TEST(ops_failure_changes_nothing_sqlite) { check_failure_changes_nothing(LOAM_SQLITE); }
TEST(ops_failure_changes_nothing_postgres) { check_failure_changes_nothing(LOAM_POSTGRES); }


/*
** SQLite's rebuild keeps what the table had: rows, indexes, the trigger,
** the foreign keys in both directions with their actions; and a foreign
** key check that fails undoes it.
*/
TEST(ops_sqlite_rebuild_keeps_the_table) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = open_db(LOAM_SQLITE, &err);
  loam_rendered *rs = NULL;
  loam_db_schema *s = NULL;
  char before[16384];
  loam_op op;
  if (c == NULL) {
    t_fail(__FILE__, __LINE__, "setup: %s", err.message);
    loam_error_clear(&err);
    return;
  }
  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_ALTER_COLUMN;
  op.table = "child";
  op.name = "qty";
  op.alter = LOAM_ALTER_TYPE | LOAM_ALTER_DEFAULT;
  op.column.type = LOAM_COL_NUMERIC;
  op.column.precision = 8;
  op.column.scale = 2;
  op.column.defval.kind = LOAM_DEFAULT_VALUE;
  op.column.defval.value = loam_int(3);
  /* the statements, exactly */
  {
    const char *const one[] = { "child" };
    CHECK_OK(loam_introspect(c, one, 1, &s, &err), &err);
  }
  CHECK_OK(loam_render_op(&op, LOAM_SQLITE, &s->tables[0], &rs, &err), &err);
  CHECK_INT(loam_rendered_count(rs), 7);
  CHECK_STR(loam_rendered_sql(rs, 0, NULL),
            "CREATE TABLE \"loam_rebuild_child\" (\"id\" INTEGER CONSTRAINT \"child_pkey\" "
            "PRIMARY KEY, \"parent_id\" INTEGER NOT NULL, \"qty\" NUMERIC(8,2) DEFAULT 3, "
            "\"note\" TEXT, CONSTRAINT \"child_parent_id_fkey\" FOREIGN KEY (\"parent_id\") "
            "REFERENCES \"parent\" (\"id\") ON DELETE CASCADE)");
  CHECK_STR(loam_rendered_sql(rs, 1, NULL),
            "INSERT INTO \"loam_rebuild_child\" (\"id\", \"parent_id\", \"qty\", \"note\") "
            "SELECT \"id\", \"parent_id\", \"qty\", \"note\" FROM \"child\"");
  CHECK_STR(loam_rendered_sql(rs, 2, NULL), "DROP TABLE \"child\"");
  CHECK_STR(loam_rendered_sql(rs, 3, NULL),
            "ALTER TABLE \"loam_rebuild_child\" RENAME TO \"child\"");
  CHECK_STR(loam_rendered_sql(rs, 4, NULL),
            "CREATE INDEX \"child_qty_idx\" ON \"child\" (\"qty\")");
  CHECK_HAS(loam_rendered_sql(rs, 5, NULL), "CREATE TRIGGER child_touch");
  CHECK_STR(loam_rendered_sql(rs, 6, NULL), "SELECT * FROM pragma_foreign_key_check('child')");
  CHECK_INT(loam_rendered_kind(rs, 6), LOAM_SQL_SELECT);
  loam_rendered_free(rs);
  rs = NULL;
  /* another table, or none, is refused */
  CHECK_INT(loam_render_op(&op, LOAM_SQLITE, NULL, &rs, &err), LOAM_ERROR);
  op.table = "parent";
  CHECK_INT(loam_render_op(&op, LOAM_SQLITE, &s->tables[0], &rs, &err), LOAM_ERROR);
  CHECK_STR(err.message, "alter_column on table 'parent': the introspected table given is "
            "another table");
  op.table = "child";
  loam_db_schema_free(s);
  s = NULL;
  /* run with foreign keys on: refused before anything changes */
  CHECK_OK(loam_tx_begin(c, &err), &err);
  CHECK_INT(loam_op_run(c, &op, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_HAS(err.message, "needs foreign keys switched off before the transaction");
  CHECK_OK(loam_tx_rollback(c, &err), &err);

  CHECK_OK(apply(c, &op, &err), &err);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM child"), 3);
  CHECK_INT(t_scalar(c, "SELECT sum(qty) FROM child"), 18);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM sqlite_schema WHERE name = 'child_qty_idx'"), 1);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'loam_rebuild%'"), 0);
  CHECK_OK(exec(c, "INSERT INTO child (parent_id) VALUES (2)", &err), &err);
  CHECK_INT(t_scalar(c, "SELECT qty = 3 FROM child WHERE id = 4"), 1);
  /* the trigger fires */
  CHECK_OK(exec(c, "UPDATE child SET qty = 9 WHERE id = 3", &err), &err);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM parent WHERE name = 'p2!'"), 1);
  /* its foreign key holds, and cascades */
  CHECK_INT(exec(c, "INSERT INTO child (parent_id) VALUES (99)", &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_FOREIGN_KEY_VIOLATION);
  CHECK_OK(exec(c, "DELETE FROM parent WHERE id = 1", &err), &err);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM child"), 2);

  /* a foreign key that existing rows break: the check fails, nothing changes */
  CHECK_OK(exec(c, "INSERT INTO child (parent_id, qty) VALUES (2, 77)", &err), &err);
  strcpy(before, dump(c));
  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_ADD_FOREIGN_KEY;
  op.table = "child";
  op.columns = qty_col;
  op.ref_table = "parent";
  op.ref_columns = id_col;
  op.ncolumns = 1;
  CHECK_INT(apply(c, &op, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_FOREIGN_KEY_VIOLATION);
  CHECK_HAS(err.message, "foreign key check failed: a row of 'child' (rowid ");
  CHECK_HAS(err.message, "references a row of 'parent' that does not exist");
  CHECK_STR(dump(c), before);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM child"), 3);
  CHECK_INT(t_scalar(c, "PRAGMA foreign_keys"), 1);
  /* dropping a key column takes its foreign key along, as on PostgreSQL */
  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_DROP_COLUMN;
  op.table = "child";
  op.name = "parent_id";
  CHECK_OK(apply(c, &op, &err), &err);
  CHECK_OK(loam_introspect(c, NULL, 0, &s, &err), &err);
  CHECK_INT(loam_db_schema_table(s, "child")->nfks, 0);
  CHECK_INT(loam_db_schema_table(s, "child")->ncolumns, 3);
  CHECK_INT(loam_db_schema_table(s, "child")->nindexes, 1);
  loam_db_schema_free(s);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM child"), 3);
  loam_conn_close(c);
  loam_error_clear(&err);
}


/*
** Dropping a column that indexes and a check name: PostgreSQL drops them
** with it; SQLite's DROP COLUMN would refuse, so its rebuild leaves them
** out.  Both end alike, with the rows and the other indexes kept.
*/
static void check_drop_named_column (loam_backend be) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = open_db(be, &err);
  loam_db_schema *s = NULL;
  const loam_db_table *t;
  loam_op op;
  if (c == NULL) {
    if (!t_failed()) t_fail(__FILE__, __LINE__, "setup: %s", err.message);
    loam_error_clear(&err);
    return;
  }
  CHECK_OK(exec(c, "CREATE INDEX child_note_idx ON child (note)", &err), &err);
  CHECK_OK(exec(c, "CREATE INDEX child_noted_idx ON child (qty) WHERE note IS NOT NULL", &err),
           &err);
  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_ADD_CHECK;
  op.table = "child";
  op.name = "child_note_short";
  op.sql = "length(note) < 10";
  CHECK_OK(apply(c, &op, &err), &err);
  memset(&op, 0, sizeof op);
  op.kind = LOAM_OP_DROP_COLUMN;
  op.table = "child";
  op.name = "note";
  CHECK_OK(apply(c, &op, &err), &err);
  {
    const char *const one[] = { "child" };
    CHECK_OK(loam_introspect(c, one, 1, &s, &err), &err);
  }
  t = &s->tables[0];
  CHECK_INT(t->ncolumns, 3);
  CHECK(loam_db_table_column(t, "note") == NULL);
  CHECK_INT(t->nchecks, 0);
  CHECK_INT(t->nindexes, 1);
  CHECK_STR(t->indexes[0].name, "child_qty_idx");
  CHECK_INT(t->nfks, 1);
  CHECK_INT(t->ntriggers, be == LOAM_SQLITE ? 1 : 0);
  CHECK_INT(t_scalar(c, "SELECT sum(qty) FROM child"), 18);
  loam_db_schema_free(s);
  if (be == LOAM_POSTGRES) exec(c, "DROP SCHEMA loam_ops CASCADE", NULL);
  loam_conn_close(c);
  loam_error_clear(&err);
}

TEST(ops_drop_named_column_sqlite) { check_drop_named_column(LOAM_SQLITE); }
TEST(ops_drop_named_column_postgres) { check_drop_named_column(LOAM_POSTGRES); }
