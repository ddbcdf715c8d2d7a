/*
** test_introspect.c: reading a live schema back (introspect.c) on both
** backends.
**
** A multi-table schema with composite keys, a self-reference, a composite
** foreign key with actions, checks, a partial, a unique and an expression
** index is created through loam's own DDL (and raw SQL for what the DDL
** does not declare), read back, and compared with what was declared.  On
** PostgreSQL the tables live in a schema of their own, first in the
** search_path, so the tables other tests leave behind stay out of sight.
*/
#include <string.h>

#include "t.h"
#include "loam.h"


static int exec (loam_conn *c, const char *sql, loam_error *err) {
  return loam_exec(c, sql, NULL, 0, NULL, NULL, NULL, err);
}


/* Renders and runs a loam DDL result; frees it. */
static int run_rendered (loam_conn *c, int rc, loam_rendered **rs, loam_error *err) {
  if (rc == LOAM_OK) rc = loam_exec_rendered(c, *rs, 0, NULL, NULL, NULL, err);
  loam_rendered_free(*rs);
  *rs = NULL;
  return rc;
}


static const char *const tiers[] = { "free", "pro" };
static const char *const orders_pk[] = { "customer_id", "number" };
static const char *const cat_idx_cols[] = { "parent_id", "name" };
static const char *const status_col[] = { "status" };

static const loam_column_def customers_cols[] = {
  { .name = "id", .type = LOAM_COL_ID },
  { .name = "email", .type = LOAM_COL_TEXT, .length = 200, .not_null = 1, .unique = 1 },
  { .name = "name", .type = LOAM_COL_TEXT },
  { .name = "tier", .type = LOAM_COL_ENUM, .enum_values = tiers, .nenum_values = 2,
    .defval = { .kind = LOAM_DEFAULT_VALUE, .value = { .type = LOAM_TEXT,
                .u.s = { "free", 4 } } } },
  { .name = "created", .type = LOAM_COL_TIMESTAMP, .defval = { .kind = LOAM_DEFAULT_NOW } },
};
static const loam_check_def customers_checks[] = {
  { "customers_name_nonempty", "length(name) > 0" },
};
static const loam_column_def categories_cols[] = {
  { .name = "id", .type = LOAM_COL_ID },
  { .name = "parent_id", .type = LOAM_COL_BIGINT,
    .references = { "categories", "id", LOAM_FK_SET_NULL, LOAM_FK_NO_ACTION } },
  { .name = "name", .type = LOAM_COL_TEXT, .not_null = 1 },
};
static const loam_column_def orders_cols[] = {
  { .name = "customer_id", .type = LOAM_COL_BIGINT,
    .references = { "customers", "id", LOAM_FK_CASCADE, LOAM_FK_NO_ACTION } },
  { .name = "number", .type = LOAM_COL_INTEGER },
  { .name = "total", .type = LOAM_COL_NUMERIC, .precision = 10, .scale = 2 },
  { .name = "status", .type = LOAM_COL_TEXT, .not_null = 1,
    .defval = { .kind = LOAM_DEFAULT_VALUE, .value = { .type = LOAM_TEXT,
                .u.s = { "new", 3 } } } },
};

static const loam_table_def tables[] = {
  { .name = "customers", .columns = customers_cols, .ncolumns = 5,
    .checks = customers_checks, .nchecks = 1 },
  { .name = "categories", .columns = categories_cols, .ncolumns = 3 },
  { .name = "orders", .columns = orders_cols, .ncolumns = 4, .primary_key = orders_pk,
    .nprimary_key = 2 },
};

/* What the DDL does not declare: a composite foreign key, an expression index. */
static const char *const raw[] = {
  "CREATE TABLE order_lines (customer_id bigint NOT NULL, number integer NOT NULL, "
  "line integer NOT NULL, qty integer NOT NULL DEFAULT 1, "
  "CONSTRAINT order_lines_pkey PRIMARY KEY (customer_id, number, line), "
  "CONSTRAINT order_lines_order_fkey FOREIGN KEY (customer_id, number) "
  "REFERENCES orders (customer_id, number) ON DELETE CASCADE ON UPDATE RESTRICT, "
  "CONSTRAINT order_lines_qty_check CHECK (qty > 0))",
  "CREATE INDEX customers_lower_email_idx ON customers (lower(email))",
};


static int create_schema (loam_conn *c, loam_error *err) {
  loam_backend be = loam_conn_backend(c);
  loam_index_def open = { .name = "orders_open_idx", .table = "orders", .columns = status_col,
                          .ncolumns = 1, .where = "status <> 'done'" };
  loam_index_def uniq = { .table = "categories", .columns = cat_idx_cols, .ncolumns = 2,
                          .unique = 1 };
  loam_rendered *rs = NULL;
  size_t i;
  for (i = 0; i < sizeof tables / sizeof tables[0]; i++)
    if (run_rendered(c, loam_render_create_table(&tables[i], be, &rs, err), &rs, err) != LOAM_OK)
      return LOAM_ERROR;
  if (run_rendered(c, loam_render_create_index(&open, be, &rs, err), &rs, err) != LOAM_OK ||
      run_rendered(c, loam_render_create_index(&uniq, be, &rs, err), &rs, err) != LOAM_OK)
    return LOAM_ERROR;
  for (i = 0; i < sizeof raw / sizeof raw[0]; i++)
    if (exec(c, raw[i], err) != LOAM_OK) return LOAM_ERROR;
  return LOAM_OK;
}


/* The loam type a declared type reads back as on 'be'. */
static loam_col_type readback (loam_backend be, loam_col_type t) {
  switch (t) {
    case LOAM_COL_ENUM: return LOAM_COL_TEXT;
    case LOAM_COL_BIGINT: return be == LOAM_SQLITE ? LOAM_COL_INTEGER : t;
    case LOAM_COL_JSON: return be == LOAM_SQLITE ? LOAM_COL_TEXT : t;
    default: return t;
  }
}


/*
** The round trip: every declared column comes back in order with its type,
** nullness, default and foreign key; the declared checks and the composite
** primary key come back by name.
*/
static void check_against_def (loam_backend be, const loam_table_def *def,
                               const loam_db_table *t) {
  int i, j;
  CHECK(t != NULL);
  CHECK_INT(t->ncolumns, def->ncolumns);
  for (i = 0; i < def->ncolumns; i++) {
    const loam_column_def *d = &def->columns[i];
    const loam_db_column *c = &t->columns[i];
    int pk = d->type == LOAM_COL_ID || d->primary_key;
    for (j = 0; j < def->nprimary_key; j++)
      if (strcmp(def->primary_key[j], d->name) == 0) pk = 1;
    CHECK_STR(c->name, d->name);
    CHECK_INT(c->loam_type, readback(be, d->type));
    CHECK_INT(c->not_null, d->not_null || pk);
    CHECK_INT(c->generated, d->type == LOAM_COL_ID);
    CHECK_INT(c->default_sql != NULL, d->defval.kind != LOAM_DEFAULT_NONE);
    if (d->type == LOAM_COL_TEXT && be == LOAM_POSTGRES) CHECK_INT(c->length, d->length);
    if (d->type == LOAM_COL_NUMERIC) {
      CHECK_INT(c->precision, d->precision);
      CHECK_INT(c->scale, d->scale);
    }
    if (d->references.table != NULL) {
      for (j = 0; j < t->nfks; j++)
        if (t->fks[j].ncolumns == 1 && strcmp(t->fks[j].columns[0], d->name) == 0) break;
      CHECK(j < t->nfks);
      CHECK_STR(t->fks[j].ref_table, d->references.table);
      CHECK_STR(t->fks[j].ref_columns[0], d->references.column);
      CHECK_INT(t->fks[j].on_delete, d->references.on_delete);
      CHECK_INT(t->fks[j].on_update, d->references.on_update);
      CHECK_INT(t->fks[j].validated, 1);
    }
  }
  {
    char pkname[80];
    snprintf(pkname, sizeof pkname, "%s_pkey", def->name);
    CHECK_STR(t->primary_key.name, pkname);
  }
  if (def->nprimary_key > 0) {
    CHECK_INT(t->primary_key.ncolumns, def->nprimary_key);
    for (i = 0; i < def->nprimary_key; i++)
      CHECK_STR(t->primary_key.columns[i], def->primary_key[i]);
  }
  for (i = 0; i < def->nchecks; i++) {
    for (j = 0; j < t->nchecks; j++)
      if (t->checks[j].name != NULL && strcmp(t->checks[j].name, def->checks[i].name) == 0)
        break;
    CHECK(j < t->nchecks);
    CHECK_HAS(t->checks[j].sql, "length(");
  }
}


/* Everything both backends must read alike from the schema of 'create_schema'. */
static void check_schema (loam_conn *c) {
  loam_backend be = loam_conn_backend(c);
  loam_error err = LOAM_ERROR_INIT;
  loam_db_schema *s = NULL;
  const loam_db_table *t;
  const loam_db_index *x;
  const loam_db_fk *f;
  size_t i;
  CHECK_OK(loam_introspect(c, NULL, 0, &s, &err), &err);
  CHECK_INT(s->backend, be);
  CHECK_INT(s->ntables, 4);
  CHECK_STR(s->tables[0].name, "categories");
  CHECK_STR(s->tables[1].name, "customers");
  CHECK_STR(s->tables[2].name, "order_lines");
  CHECK_STR(s->tables[3].name, "orders");
  for (i = 0; i < sizeof tables / sizeof tables[0]; i++) {
    check_against_def(be, &tables[i], loam_db_schema_table(s, tables[i].name));
    if (t_failed()) goto done;
  }

  /* customers: id is the generated key, email unique, checks by name, an expression index */
  t = loam_db_schema_table(s, "customers");
  CHECK_INT(t->columns[0].loam_type, LOAM_COL_ID);
  CHECK_INT(t->primary_key.ncolumns, 1);
  CHECK_STR(t->primary_key.columns[0], "id");
  CHECK_INT(t->nuniques, 1);
  CHECK_STR(t->uniques[0].name, "customers_email_key");
  CHECK_INT(t->uniques[0].ncolumns, 1);
  CHECK_STR(t->uniques[0].columns[0], "email");
  /* the enum's check on both; the length's on SQLite only (varchar on PostgreSQL) */
  CHECK_INT(t->nchecks, be == LOAM_SQLITE ? 3 : 2);
  if (be == LOAM_SQLITE) {
    CHECK_STR(t->checks[0].name, "customers_email_check");
    CHECK_STR(t->checks[0].sql, "length(\"email\") <= 200");
    CHECK_STR(t->checks[1].sql, "length(name) > 0");
    CHECK_STR(t->checks[2].sql, "\"tier\" IN ('free', 'pro')");
  }
  else {
    CHECK_STR(t->checks[0].name, "customers_name_nonempty");
    CHECK_STR(t->checks[1].name, "customers_tier_check");
    CHECK_HAS(t->checks[1].sql, "'free'");
    CHECK_STR(loam_db_table_column(t, "email")->type, "character varying(200)");
  }
  CHECK_HAS(loam_db_table_column(t, "tier")->default_sql, "'free'");
  CHECK_INT(t->nfks, 0);
  CHECK_INT(t->nindexes, 1);
  x = &t->indexes[0];
  CHECK_STR(x->name, "customers_lower_email_idx");
  CHECK_INT(x->unique, 0);
  CHECK_INT(x->valid, 1);
  CHECK_INT(x->ncolumns, 1);
  CHECK(x->columns[0] == NULL);
  /* PostgreSQL prints the cast that varchar takes to reach lower(text) */
  CHECK_STR(x->exprs[0], be == LOAM_SQLITE ? "lower(email)" : "lower(email::text)");
  CHECK(x->where == NULL);

  /* categories: the self-reference, a unique index over two columns */
  t = loam_db_schema_table(s, "categories");
  CHECK_INT(t->nfks, 1);
  f = &t->fks[0];
  CHECK_STR(f->name, "categories_parent_id_fkey");
  CHECK_STR(f->ref_table, "categories");
  CHECK_INT(f->on_delete, LOAM_FK_SET_NULL);
  CHECK_INT(t->nindexes, 1);
  x = &t->indexes[0];
  CHECK_STR(x->name, "categories_parent_id_name_idx");
  CHECK_INT(x->unique, 1);
  CHECK_INT(x->ncolumns, 2);
  CHECK_STR(x->columns[0], "parent_id");
  CHECK_STR(x->columns[1], "name");
  CHECK(x->exprs[0] == NULL && x->exprs[1] == NULL);

  /* orders: the composite key, the partial index */
  t = loam_db_schema_table(s, "orders");
  CHECK_INT(t->nuniques, 0);
  CHECK_INT(t->nfks, 1);
  CHECK_STR(t->fks[0].name, "orders_customer_id_fkey");
  CHECK_INT(t->fks[0].on_delete, LOAM_FK_CASCADE);
  CHECK_INT(t->nindexes, 1);
  x = &t->indexes[0];
  CHECK_STR(x->name, "orders_open_idx");
  CHECK_STR(x->columns[0], "status");
  CHECK_STR(x->where, be == LOAM_SQLITE ? "(status <> 'done')" : "(status <> 'done'::text)");
  CHECK_STR(loam_db_table_column(t, "total")->type,
            be == LOAM_SQLITE ? "NUMERIC(10,2)" : "numeric(10,2)");

  /* order_lines: a key of three columns, a composite foreign key with two actions */
  t = loam_db_schema_table(s, "order_lines");
  CHECK_STR(t->primary_key.name, "order_lines_pkey");
  CHECK_INT(t->primary_key.ncolumns, 3);
  CHECK_STR(t->primary_key.columns[0], "customer_id");
  CHECK_STR(t->primary_key.columns[1], "number");
  CHECK_STR(t->primary_key.columns[2], "line");
  CHECK_INT(t->columns[0].loam_type, LOAM_COL_BIGINT);
  CHECK_INT(t->columns[0].generated, 0);
  CHECK_HAS(loam_db_table_column(t, "qty")->default_sql, "1");
  CHECK_INT(t->nfks, 1);
  f = &t->fks[0];
  CHECK_STR(f->name, "order_lines_order_fkey");
  CHECK_STR(f->ref_table, "orders");
  CHECK_INT(f->ncolumns, 2);
  CHECK_STR(f->columns[0], "customer_id");
  CHECK_STR(f->columns[1], "number");
  CHECK_STR(f->ref_columns[0], "customer_id");
  CHECK_STR(f->ref_columns[1], "number");
  CHECK_INT(f->on_delete, LOAM_FK_CASCADE);
  CHECK_INT(f->on_update, LOAM_FK_RESTRICT);
  CHECK_INT(t->nchecks, 1);
  CHECK_STR(t->checks[0].name, "order_lines_qty_check");
  CHECK_STR(t->checks[0].sql, be == LOAM_SQLITE ? "qty > 0" : "(qty > 0)");
  CHECK_INT(t->nindexes, 0);
  CHECK(t->sql != NULL || be == LOAM_POSTGRES);
  CHECK(t->sql == NULL || be == LOAM_SQLITE);
  CHECK(loam_db_schema_table(s, "nope") == NULL);
  CHECK(loam_db_table_column(t, "nope") == NULL);
  loam_db_schema_free(s);
  s = NULL;

  /* a chosen table alone; a name given twice is read once */
  {
    const char *const two[] = { "orders", "orders" };
    CHECK_OK(loam_introspect(c, two, 2, &s, &err), &err);
    CHECK_INT(s->ntables, 1);
    CHECK_STR(s->tables[0].name, "orders");
  }
  loam_db_schema_free(s);
  s = (loam_db_schema *)1;

  /* a table that does not exist is named; nothing is handed out */
  {
    const char *const missing[] = { "orders", "no_such_table" };
    CHECK_INT(loam_introspect(c, missing, 2, &s, &err), LOAM_ERROR);
    CHECK_INT(err.code, LOAM_E_UNDEFINED_TABLE);
    CHECK_STR(err.message, "introspection: no table 'no_such_table'");
    CHECK(s == NULL);
  }
  /* misuse */
  CHECK_INT(loam_introspect(NULL, NULL, 0, &s, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_STR(err.message, "attempt to use a closed connection");
  CHECK_INT(loam_introspect(c, NULL, 0, NULL, &err), LOAM_ERROR);
  CHECK_STR(err.message, "loam_introspect: 'out' is NULL");
  {
    const char *const bad[] = { NULL };
    CHECK_INT(loam_introspect(c, bad, 1, &s, &err), LOAM_ERROR);
    CHECK_STR(err.message, "loam_introspect: table name #1 is NULL");
  }
  CHECK_INT(loam_introspect(c, NULL, 3, &s, &err), LOAM_ERROR);
  CHECK_STR(err.message, "loam_introspect: bad table list");
  loam_db_schema_free(NULL);
done:
  loam_db_schema_free(s != (loam_db_schema *)1 ? s : NULL);
  loam_error_clear(&err);
}


TEST(introspect_sqlite) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  loam_db_schema *s = NULL;
  const loam_db_table *t;
  CHECK_OK(loam_connect("sqlite::memory:", NULL, &c, &err), &err);
  if (create_schema(c, &err) != LOAM_OK) {
    t_fail(__FILE__, __LINE__, "schema: %s", err.message);
    loam_conn_close(c);
    loam_error_clear(&err);
    return;
  }
  check_schema(c);
  if (t_failed()) { loam_conn_close(c); return; }
  /*
  ** What SQLite alone allows: constraints without names, a foreign key
  ** that names no column (the referenced primary key), quoted and
  ** commented CREATE text, and its own tables left out.
  */
  CHECK_OK(exec(c, "CREATE TABLE \"odd \"\"t\"\"\" (a INTEGER PRIMARY KEY AUTOINCREMENT, "
                "b TEXT UNIQUE /* , CONSTRAINT x CHECK (0) */, "
                "c INTEGER REFERENCES customers ON DELETE RESTRICT, "
                "CHECK (b <> ','), UNIQUE (b, c))", &err), &err);
  CHECK_OK(exec(c, "INSERT INTO \"odd \"\"t\"\"\" (b) VALUES ('x')", &err), &err);
  {
    const char *const one[] = { "odd \"t\"" };
    CHECK_OK(loam_introspect(c, one, 1, &s, &err), &err);
  }
  t = &s->tables[0];
  CHECK_STR(t->name, "odd \"t\"");
  CHECK(t->primary_key.name == NULL);
  CHECK_INT(t->columns[0].loam_type, LOAM_COL_ID);
  CHECK_INT(t->nuniques, 2);
  CHECK(t->uniques[0].name == NULL && t->uniques[1].name == NULL);
  CHECK_INT(t->nchecks, 1);
  CHECK(t->checks[0].name == NULL);
  CHECK_STR(t->checks[0].sql, "b <> ','");
  CHECK_INT(t->nfks, 1);
  CHECK(t->fks[0].name == NULL);
  CHECK_STR(t->fks[0].ref_table, "customers");
  CHECK_STR(t->fks[0].ref_columns[0], "id");
  CHECK_INT(t->fks[0].on_delete, LOAM_FK_RESTRICT);
  loam_db_schema_free(s);
  CHECK_OK(loam_introspect(c, NULL, 0, &s, &err), &err);
  CHECK_INT(s->ntables, 5);                 /* no sqlite_sequence */
  loam_db_schema_free(s);
  loam_conn_close(c);
  loam_error_clear(&err);
}


/* A connection to the test cluster with an empty schema of its own first in the search_path. */
static loam_conn *pg_schema (const char *schema, loam_error *err) {
  loam_conn *c = NULL;
  char sql[200];
  const char *url = t_pg_url();
  if (url == NULL) {
    t_fail(__FILE__, __LINE__, "LOAM_TEST_PG is not set; the PostgreSQL tests need a server");
    return NULL;
  }
  if (loam_connect(url, NULL, &c, err) != LOAM_OK) return NULL;
  snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", schema);
  if (exec(c, sql, err) == LOAM_OK) {
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", schema);
    if (exec(c, sql, err) == LOAM_OK) {
      snprintf(sql, sizeof sql, "SET search_path TO %s", schema);
      if (exec(c, sql, err) == LOAM_OK) return c;
    }
  }
  loam_conn_close(c);
  return NULL;
}


TEST(introspect_postgres) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = pg_schema("loam_intro", &err);
  loam_db_schema *s = NULL;
  const loam_db_table *t;
  if (c == NULL) {
    t_fail(__FILE__, __LINE__, "PostgreSQL: %s", err.message ? err.message : "no URL");
    loam_error_clear(&err);
    return;
  }
  if (create_schema(c, &err) != LOAM_OK) {
    t_fail(__FILE__, __LINE__, "schema: %s", err.message);
    loam_conn_close(c);
    loam_error_clear(&err);
    return;
  }
  check_schema(c);
  if (t_failed()) { loam_conn_close(c); return; }
  /*
  ** What PostgreSQL alone has: NOT VALID constraints, and the INVALID
  ** index a failed concurrent build leaves behind.
  */
  CHECK_OK(exec(c, "INSERT INTO customers (email) VALUES ('a'), ('b')", &err), &err);
  CHECK_OK(exec(c, "CREATE TABLE dup (v integer, w integer)", &err), &err);
  CHECK_OK(exec(c, "INSERT INTO dup VALUES (1, 1), (1, 1)", &err), &err);
  CHECK_OK(exec(c, "ALTER TABLE dup ADD CONSTRAINT dup_w_fkey FOREIGN KEY (w) "
                "REFERENCES customers (id) NOT VALID", &err), &err);
  CHECK_OK(exec(c, "ALTER TABLE dup ADD CONSTRAINT dup_v_check CHECK (v > 0) NOT VALID", &err),
           &err);
  CHECK_INT(exec(c, "CREATE UNIQUE INDEX CONCURRENTLY dup_v_idx ON dup (v)", &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_UNIQUE_VIOLATION);
  {
    const char *const one[] = { "dup" };
    CHECK_OK(loam_introspect(c, one, 1, &s, &err), &err);
  }
  t = &s->tables[0];
  CHECK_INT(t->nfks, 1);
  CHECK_INT(t->fks[0].validated, 0);
  CHECK_INT(t->nchecks, 1);
  CHECK_INT(t->checks[0].validated, 0);
  CHECK_STR(t->checks[0].sql, "(v > 0)");
  CHECK_INT(t->nindexes, 1);
  CHECK_STR(t->indexes[0].name, "dup_v_idx");
  CHECK_INT(t->indexes[0].valid, 0);
  CHECK_INT(t->primary_key.ncolumns, 0);
  CHECK(t->primary_key.name == NULL);
  loam_db_schema_free(s);
  /* a database failure comes back as the backend reports it, nothing handed out */
  s = (loam_db_schema *)1;
  CHECK_OK(exec(c, "BEGIN", &err), &err);
  CHECK_INT(exec(c, "SELECT 1/0", &err), LOAM_ERROR);
  CHECK_INT(loam_introspect(c, NULL, 0, &s, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_TRANSACTION_ABORTED);
  CHECK(s == NULL);
  CHECK_OK(exec(c, "ROLLBACK", &err), &err);
  CHECK_OK(exec(c, "DROP SCHEMA loam_intro CASCADE", &err), &err);
  loam_conn_close(c);
  loam_error_clear(&err);
}
