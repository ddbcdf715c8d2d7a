/*
** dialect_int.h: what loam knows about the SQL of each backend, as data.
**
** The renderers (render.c for queries, ddl.c for schema, tx.c for
** transactions, sqltext.c for the placeholders of raw SQL) and the
** catalog readers (schema.c) never ask
** which backend they write for: they read one 'loam__dialect_desc'
** (dialect.c) and write what it says.  A fact that differs between SQLite
** and PostgreSQL belongs here, as a field with the reason for each side's
** value beside it in dialect.c; the drivers only prepare, bind, step and
** report.
*/
#ifndef LOAM_DIALECT_INT_H
#define LOAM_DIALECT_INT_H

#include "sql/sql_int.h"


/*
** ALTER TABLE operations a migration may need, for the 'alter' fact
** table: whether the backend runs each in place or needs the table
** rebuilt (create the new table, copy the rows, drop the old one, rename).
*/
enum {
  LOAM__ALTER_RENAME_TABLE,
  LOAM__ALTER_ADD_COLUMN,
  LOAM__ALTER_DROP_COLUMN,
  LOAM__ALTER_RENAME_COLUMN,
  LOAM__ALTER_COLUMN_TYPE,
  LOAM__ALTER_SET_NOT_NULL,
  LOAM__ALTER_DROP_NOT_NULL,
  LOAM__ALTER_SET_DEFAULT,
  LOAM__ALTER_DROP_DEFAULT,
  LOAM__ALTER_ADD_CONSTRAINT,    /* primary key, unique, check, foreign key */
  LOAM__ALTER_DROP_CONSTRAINT,
  LOAM__ALTER_N
};

/* How a backend performs one ALTER TABLE operation. */
enum {
  LOAM__ALTER_IN_PLACE,          /* always an ALTER TABLE statement */
  LOAM__ALTER_LIMITED,           /* in place, except in the cases dialect.c lists: rebuild */
  LOAM__ALTER_REBUILD            /* always a table rebuild */
};

typedef struct loam__dialect_desc {
  loam_backend backend;
  const char *name;              /* for messages: "SQLite", "PostgreSQL" */

  /* Parameters */
  /* Appends the placeholder of the 'n'-th parameter (from 1) of a statement. */
  void (*placeholder) (loam__buf *b, int n);
  char numbered;                 /* the mark of a numbered placeholder in raw SQL ('$n', '?n') */
  int max_params;                /* the most one statement takes by default */
  int max_params_limit;          /* the most a caller may ask for instead */
  int stores_nan;                /* a double parameter may be NaN */
  int literal_qmark;             /* '??' in raw SQL means a literal '?' operator */
  const char *named_marks;       /* marks that, glued to a name, make a named parameter the
                                    backend reads and loam refuses, or NULL */
  int trigger_bodies;            /* CREATE TRIGGER holds statements ending in ';' up to END */

  /* IN lists: the key set is bound whole, so the text depends only on its shape */
  /*
  ** Appends the subquery that reads a key set of 'ncols' columns (element
  ** types 'ltypes', column types 'coltypes' or NULL, as in builder_int.h),
  ** numbering its placeholders from 'first'; returns how many it wrote.
  */
  int (*keys_sql) (loam__buf *b, int first, int ncols, const unsigned char *ltypes,
                   const unsigned char *coltypes);
  /*
  ** For a one-column key set compared with a column that leads an index:
  ** appends the operator and its operand (' = ANY($first::T[])', negated
  ** ' <> ALL(...)') in place of ' IN (subquery)' and returns how many
  ** placeholders it wrote (numbered and bound as 'keys_param' counts
  ** them), or writes nothing and returns 0 where the backend keeps its
  ** subquery.  NULL: always the subquery.
  */
  int (*keys_indexed) (loam__buf *b, int first, int ltype, int coltype, int negate);
  /*
  ** Appends to 'b' the bytes of the key set's parameter 'i' (counted as
  ** 'keys_sql' counts them) for 'nrows' tuples of 'ncols' values ('v',
  ** row after row).  LOAM_E_DATA_ERROR on a value the backend cannot take.
  */
  int (*keys_param) (loam__buf *b, const loam_value *v, int nrows, int ncols, int i,
                     loam_error *err);
  loam_type keys_type;           /* the type those bytes are bound as */

  /* Queries */
  const char *ilike;             /* operator text written for ILIKE */
  const char *not_ilike;         /* and for NOT ILIKE */
  const char *excluded;          /* the row an upsert proposed, before a column */
  const char *offset_alone;      /* written before an OFFSET without LIMIT, or NULL */
  int row_locks;                 /* FOR UPDATE/FOR SHARE, with SKIP LOCKED/NOWAIT */
  const char *no_row_locks;      /* without them: the message of the refusal */
  const char *explain;           /* prefix of a statement that shows its plan */

  /* Bulk inserts */
  const char *copy_in;           /* after COPY "t" ("c", ...): rows read from the client, or
                                    NULL when the backend has no COPY */
  int text_nul;                  /* a text parameter may hold NUL bytes */

  /* Transactions; a savepoint statement is followed by a blank and the name */
  const char *begin;
  const char *commit;
  const char *rollback;
  const char *savepoint;
  const char *release;
  const char *rollback_to;
  /*
  ** Options of a transaction: what 'begin' takes after it for each
  ** loam_isolation (NULL: the backend cannot honour that level) and for
  ** read-only (NULL: none; then 'begin_read' begins it and 'query_only_on'
  ** and 'query_only_off' set the connection read-only around it).
  */
  const char *isolation[4];
  const char *read_only;
  const char *begin_read;
  const char *query_only_on;
  const char *query_only_off;

  /* Schema */
  const char *types[LOAM_COL_ENUM + 1];   /* column type per loam_col_type (not id) */
  const char *identity;          /* the type of an id column, its values generated */
  const char *varchar;           /* the type of a text with a length 'n', before '(n)'; NULL:
                                    text and a CHECK of the length */
  int json_check;                /* json needs a CHECK of its validity */
  int text_dates;                /* dates are stored as text: raw SQL defaults cannot be trusted */
  int exact_numeric;             /* a numeric column keeps every digit of a decimal */
  const char *true_literal;
  const char *false_literal;
  const char *blob_open;         /* a blob literal: this, the hex digits, 'blob_close' */
  const char *blob_close;
  const char *now_date;          /* the 'now' default of a date column */
  const char *now_timestamp;     /* and of a timestamp column */
  unsigned char alter[LOAM__ALTER_N];     /* LOAM__ALTER_IN_PLACE... per operation */

  /* Catalogs (schema.c); each query takes its parameters as '?' */
  /* One row, one integer column: how many tables the name '?' has where
  ** an unqualified name is created (0 or 1) */
  const char *table_exists;

  /*
  ** Introspection (migrate/introspect.c).  Each query but 'cat_tables'
  ** takes the table name as its one parameter, and each returns the
  ** columns its comment lists, in that order.
  */
  /* (name, create_sql): every table an unqualified name reaches */
  const char *cat_tables;
  /* (name, type, not_null, default_sql, generated), in table order */
  const char *cat_columns;
  /* (kind 'p' | 'u' | 'f', group, name, column, ref_table, ref_column,
  ** on_update, on_delete, validated): a row per key column, the rows of
  ** one constraint together (same kind and group) and in key order; the
  ** actions spelled as in SQL ("SET NULL") */
  const char *cat_keys;
  /* (name, predicate, validated), or NULL: see 'names_in_sql' */
  const char *cat_checks;
  /* (name, unique, valid, predicate, column, expression, create_sql): a
  ** row per key part of every index no constraint owns, in key order */
  const char *cat_indexes;
  /* (create_sql) of each trigger of the table, or NULL: none to keep */
  const char *cat_triggers;
  /* the catalog keeps constraint names, checks, index expressions and
  ** index predicates only in the CREATE text ('create_sql' above) */
  int names_in_sql;
  /* a sole INTEGER primary key column is the generated rowid */
  int rowid_alias;
  /* how the catalog spells each loam type: the type name before any
  ** '(...)', compared without case; the first match wins; ended by NULL */
  const struct loam__typename { const char *name; int type; } *read_types;

  /* Migration operations (migrate/ops.c) */
  int concurrent_index;          /* CREATE/DROP INDEX CONCURRENTLY, outside a transaction */
  /* the start of a query, completed by a table name literal and ')', whose
  ** rows are the rows that break a foreign key; NULL: the backend
  ** validates a constraint itself */
  const char *validate_check;
  /* one row, one integer: non-zero when foreign keys are enforced (a
  ** table rebuild needs them off), or NULL */
  const char *fk_off_check;
  /* around a transaction that rebuilds a table: foreign keys off, and on again; or NULL */
  const char *fk_off;
  const char *fk_on;

  /* The migration runner (migrate/migrate.c) */
  /* in a migration's transaction, completed by milliseconds: how long DDL
  ** waits for a table lock before it fails (and is retried); NULL: none */
  const char *ddl_lock_timeout;
} loam__dialect_desc;


/* {======================================================================
** DDL pieces for the migration operations (ddl.c)
** ======================================================================= */

/* 'loam_render_create_index', with CREATE INDEX CONCURRENTLY when 'concurrently'. */
LOAMI_FUNC int loam__render_index (const loam_index_def *def, loam_backend backend,
                                   int concurrently, loam_rendered **out, loam_error *err);
/* Appends to 'out' the definition of column 'c' of 'table', checked as CREATE TABLE checks it. */
LOAMI_FUNC int loam__ddl_column (const char *table, const loam_column_def *c,
                                 loam_backend backend, loam__buf *out, loam_error *err);
/* Appends the type of 'c' to 'type' and its default expression (if any) to 'def'. */
LOAMI_FUNC int loam__ddl_column_parts (const char *table, const loam_column_def *c,
                                       loam_backend backend, loam__buf *type, loam__buf *def,
                                       loam_error *err);
/* Appends ("c1", "c2", ...), each name quoted. */
LOAMI_FUNC void loam__ddl_collist (loam__buf *b, const char *const *cols, int n);
/*
** Appends FOREIGN KEY ("c1", ...) REFERENCES "t" ("r1", ...) and the
** actions other than NO ACTION ('n' columns on each side, checked;
** 'ref_cols' NULL leaves the referenced list out: the primary key).
*/
LOAMI_FUNC void loam__ddl_fk_clause (loam__buf *b, const char *const *cols, const char *ref_table,
                                     const char *const *ref_cols, int n,
                                     loam_fk_action on_delete, loam_fk_action on_update);
/* "CASCADE", "SET NULL"...; NULL for an unknown action. */
LOAMI_FUNC const char *loam__fk_action_sql (loam_fk_action a);

/* }====================================================================== */


/* The dialect of 'backend', or NULL when there is no such backend. */
LOAMI_FUNC const loam__dialect_desc *loam__dialect (loam_backend backend);

#endif
