/*
** migrate_int.h: the internal interfaces of the migrate layer.
**
** The layer reads live schemas (introspect.c, with createsql.c for what
** SQLite keeps only in its CREATE text) on top of conn, and keeps what it
** reads in an arena (arena.c): one owner for a whole tree of small
** strings and arrays, freed at once.
*/
#ifndef LOAM_MIGRATE_INT_H
#define LOAM_MIGRATE_INT_H

#include "conn/conn_int.h"
#include "sql/sql_int.h"


/* {======================================================================
** Arena (arena.c)
** ======================================================================= */

typedef struct loam__arena {
  struct loam__ablock *head;   /* the newest block */
  int oom;                     /* an allocation failed; later ones return NULL too */
} loam__arena;

#define LOAM__ARENA_INIT { NULL, 0 }

/* 'n' zeroed bytes aligned for any type, or NULL (and 'oom' set). */
LOAMI_FUNC void *loam__arena_alloc (loam__arena *a, size_t n);
/* A NUL-terminated copy of 'n' bytes of 's', or NULL. */
LOAMI_FUNC char *loam__arena_strndup (loam__arena *a, const char *s, size_t n);
/* A copy of 's'; NULL for a NULL 's' (and then 'oom' is left alone). */
LOAMI_FUNC char *loam__arena_strdup (loam__arena *a, const char *s);
/* Frees every block; the arena is empty and usable again. */
LOAMI_FUNC void loam__arena_free (loam__arena *a);

/* }====================================================================== */


/* {======================================================================
** SQLite's CREATE text (createsql.c)
** ======================================================================= */

/* A constraint as a CREATE TABLE text declares it. */
typedef struct loam__sqlcons {
  char kind;                   /* 'p' primary key, 'u' unique, 'c' check, 'f' foreign key */
  const char *name;            /* CONSTRAINT "name", or NULL */
  const char **columns;        /* the columns it is over (its own column for a column constraint) */
  int ncolumns;
  const char *check;           /* 'c': the predicate inside CHECK ( ... ) */
} loam__sqlcons;

/*
** Reads the constraints of the CREATE TABLE text 'sql' into '*out' ('*n'
** of them), everything allocated in 'a'.  Text it cannot read gives fewer
** constraints, never an error; LOAM_ERROR only when memory ran out.
*/
LOAMI_FUNC int loam__sqlite_constraints (loam__arena *a, const char *sql, loam__sqlcons **out,
                                         int *n);

/*
** Reads the key parts of the CREATE INDEX text 'sql' (the text of each,
** into '*parts', '*nparts' of them) and its WHERE predicate ('*where',
** NULL when there is none), allocated in 'a'.  LOAM_ERROR when memory ran out.
*/
LOAMI_FUNC int loam__sqlite_index_parts (loam__arena *a, const char *sql, const char ***parts,
                                         int *nparts, const char **where);

/* True when identifiers 'a' and 'b' name the same thing on SQLite (ASCII case folded). */
LOAMI_FUNC int loam__sqlite_same_name (const char *a, const char *b);

/* }====================================================================== */

/* {======================================================================
** Migration operations (ops.c, rebuild.c)
** ======================================================================= */

/*
** True when the SQL text 'sql' names column 'c' as a word, bare or quoted
** (rebuild.c).  A word of the same spelling in a string literal counts
** too: the answer errs towards "it does".
*/
LOAMI_FUNC int loam__sql_mentions (const char *sql, const char *c);

/* The name of operation kind 'kind' for messages ("add_column"). */
LOAMI_FUNC const char *loam__op_name (int kind);

/*
** Appends to 'texts' the statements of SQLite's table rebuild that
** performs 'op' on 't' (the table as introspected), each followed by a
** NUL, and their kinds to 'kinds' (room for 64), their number in '*n'.
*/
LOAMI_FUNC int loam__rebuild (loam__buf *texts, loam_sql_kind *kinds, int *n, const loam_op *op,
                              const loam_db_table *t, loam_error *err);

/* }====================================================================== */


/* {======================================================================
** Backfills (backfill.c)
** ======================================================================= */

/* A backfill being run: its operation, its key and the last key done. */
typedef struct loam__fill {
  const loam_op *op;
  char key[LOAM_IDENT_MAX + 1];
  int batch;                   /* rows a batch, the default applied */
  loam_value last;             /* the last key done; type LOAM_NULL before the first batch */
  char *owned;                 /* the bytes of 'last' when it is text */
  loam_value hi;               /* the last key of the batch run, until 'loam__fill_advance' */
  char *hiowned;
} loam__fill;

/*
** Checks BACKFILL 'op' against its table on 'c' and readies '*f' for its
** first batch (loam.h lists the refusals).  '*f' is freed with
** 'loam__fill_free' whatever this returns.
*/
LOAMI_FUNC int loam__fill_start (loam_conn *c, const loam_op *op, loam__fill *f,
                                 loam_error *err);
/* Continues after the key 'last' (copied), as a journal kept it. */
LOAMI_FUNC int loam__fill_resume (loam__fill *f, const loam_value *last, loam_error *err);
/*
** Runs the next batch in the caller's transaction: '*more' is 1 when it
** changed a range ('*rows' rows; 'f->hi' is its last key), 0 when no row
** was left.  Once the transaction commits, 'loam__fill_advance' makes
** 'f->hi' the key the next batch starts after; a batch rolled back is
** simply run again.
*/
LOAMI_FUNC int loam__fill_batch (loam_conn *c, loam__fill *f, int *more, int64_t *rows,
                                 loam_error *err);
LOAMI_FUNC void loam__fill_advance (loam__fill *f);
LOAMI_FUNC void loam__fill_free (loam__fill *f);

/* }====================================================================== */


/* {======================================================================
** The migration lock (lock.c)
** ======================================================================= */

/* Takes the lease for 'owner' for 'ttl_ms', waiting up to 'wait_ms' (LOAM_E_LOCKED after). */
LOAMI_FUNC int loam__lock_take (loam_conn *c, const char *owner, int ttl_ms, int wait_ms,
                                loam_error *err);
/* Extends the lease of 'owner'; LOAM_E_LOCKED when another took it. */
LOAMI_FUNC int loam__lock_renew (loam_conn *c, const char *owner, int ttl_ms, loam_error *err);
/* Gives the lease up, if 'owner' holds it. */
LOAMI_FUNC void loam__lock_release (loam_conn *c, const char *owner);
/* A name for this migrator, unique among those running, from 'who' (may be NULL). */
LOAMI_FUNC void loam__lock_owner (char *buf, size_t size, const char *who);
LOAMI_FUNC void loam__sleep_ms (int ms);

/* }====================================================================== */

#endif
