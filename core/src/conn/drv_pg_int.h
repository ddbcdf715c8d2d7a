/*
** drv_pg_int.h: the PostgreSQL driver's internals, shared by its files:
** drv_pg.c (binding, prepared statements, results read whole or
** streamed), drv_pg_connect.c (connecting) and drv_pg_pipe.c (pipelines).
**
** drv_pg_types.c (the types of integer parameters) uses them too.
** The structs are the driver's state for a connection, a statement and a
** server-side prepared statement; the functions are the few that the
** files share, with the 'loam__pg_' prefix and hidden visibility like
** every internal function of libloam.
*/
#ifndef LOAM_DRV_PG_INT_H
#define LOAM_DRV_PG_INT_H

#include <stdatomic.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "conn/conn_int.h"
#include "sql/sql_int.h"


/*
** A server-side prepared statement, named "loam_<id>": the name is
** written once, when it is prepared, not at every execution.
*/
typedef struct pgprep {
  unsigned long id;
  char name[32];
} pgprep;


/* The driver's state of one connection (its 'impl'). */
typedef struct pgconn {
  PGconn *pg;
  loam_conn *conn;
  unsigned long lastid;       /* the last prepared-statement number handed out */
  /* Evicted statements whose DEALLOCATE waits for a safe point. */
  unsigned long *dead;
  int ndead, capdead;
  int forget;                 /* the server already dropped every prepared statement */
  /* Scratch space reused by every query, so binding does not allocate. */
  loam__buf key;              /* cache key */
  loam__buf sql;              /* SQL with '$n' placeholders */
  loam__buf text;             /* parameter values in text form */
  const char **vals;
  int *lens, *fmts;
  Oid *types;
  size_t *offs;
  int cappar;
  loam__cache memo;           /* learned parameter types per statement shape (drv_pg_types.c) */
  /*
  ** What 'loam_conn_cancel' uses from another thread: the cancel key,
  ** made once at open since the session's key never changes, and a flag
  ** that tells the statement's 57014 apart from a statement_timeout.
  */
  PGcancel *cancel;
  atomic_int canceled;
  /*
  ** Stuck in pipeline mode (a send failed halfway and the queue could not
  ** be synced away): libpq would refuse every later call while reporting
  ** the connection fine, so the driver reports it lost itself.
  */
  int broken;
} pgconn;


/* A statement over one result, or a stream of single-row results. */
typedef struct pgstmt {
  struct loam_stmt base;      /* first: conn.c sees only this */
  PGresult *res;              /* the result holding the current row */
  int row, nrows;             /* current row of 'res' and its row count */
  int stream;                 /* single-row mode: every row is its own PGresult */
  int primed;                 /* stream: 'res' was fetched by the query, not yet stepped */
  int hasbytea;
  char **names;               /* column names, copied (one block) */
  Oid *ftypes;                /* column types, in the same block: read once, not per value */
  unsigned char **blobs;      /* decoded bytea values of the current row, per column */
  size_t *bloblens;
} pgstmt;

/*
** Opens the connection 'u' names (drv_pg_connect.c).  Returns the new
** PGconn, which the caller finishes with PQfinish, or NULL with 'err'
** (OUT; may be NULL) filled.
*/
LOAMI_FUNC PGconn *loam__pg_connect (const loam__url *u, const loam_conn_opts *o,
                                     loam_error *err);

/* The loam code of a five-character SQLSTATE (LOAM_E_DATABASE_ERROR when unknown). */
LOAMI_FUNC loam_errcode loam__pg_code_of_sqlstate (const char *state);

/*
** Fills 'err' (OUT; may be NULL) from the failed result 'r', or from the
** connection when 'r' is NULL.  Returns LOAM_ERROR.
*/
LOAMI_FUNC int loam__pg_report (pgconn *pc, const PGresult *r, loam_error *err);

/* The error code 'loam__pg_report' gives 'r', without its side effects (none for a cancel). */
LOAMI_FUNC loam_errcode loam__pg_code (pgconn *pc, const PGresult *r);

/* Leaves pipeline mode, marking the connection 'broken' when libpq cannot. */
LOAMI_FUNC void loam__pg_leave_pipeline (pgconn *pc);

/*
** The statement cache's destroy callback ('ud' is the pgconn): frees the
** pgprep 'handle' and queues its name for DEALLOCATE.
*/
LOAMI_FUNC void loam__pg_destroy_prep (void *ud, void *handle);

/* Sends the queued DEALLOCATEs, when the connection can take them. */
LOAMI_FUNC void loam__pg_flush_dead (pgconn *pc);

/* Empties the statement cache without a DEALLOCATE for any of its names. */
LOAMI_FUNC void loam__pg_forget_all (pgconn *pc);


/*
** Binds 'params' into the connection's scratch arrays and finds or makes
** the prepared statement for 'sql', of kind 'kind' (LOAM_SQL_RESET runs
** unnamed: it may drop what the cache holds).  OUT: '*prep' (NULL when caching is
** off: run 'pc->sql' unnamed), '*entry' (the pinned cache entry, which the
** caller releases; NULL when the caller owns '*prep'), and with 'fresh'
** not NULL (in a pipeline) '*fresh', set when a Parse was only queued.
*/
LOAMI_FUNC int loam__pg_prepare (pgconn *pc, const char *sql, loam_sql_kind kind,
                                 const loam_value *params, int nparams, int *fresh, pgprep **prep,
                                 loam__centry **entry, loam_error *err);

/*
** A new statement over result 'r', which it owns from the call on, even
** when it fails (NULL, with 'err' set).  Freed with 'loam__pg_finish' and
** then free().
*/
LOAMI_FUNC pgstmt *loam__pg_wrap (PGresult *r, loam_error *err);

/* The driver's 'finish': releases what the statement holds, not the struct. */
LOAMI_FUNC void loam__pg_finish (loam_stmt *base);

/* Sets up and frees the cache of learned parameter types (drv_pg_types.c). */
LOAMI_FUNC void loam__pg_types_init (pgconn *pc, int statement_cache);
LOAMI_FUNC void loam__pg_types_free (pgconn *pc);

/* 0 when 'v' fits int2, 1 when it fits int4, else 2. */
LOAMI_FUNC int loam__pg_int_class (int64_t v);

/* True when one of the 'n' values of 'params' is an integer. */
LOAMI_FUNC int loam__pg_has_int (const loam_value *params, int n);

/*
** Sets the types of the integer parameters in 'pc->types' (bound untyped
** by 'loam__pg_prepare') for the statement in 'pc->sql', whose cache key
** is in 'pc->key': from what an earlier probe learned, else by a probe
** when 'can_probe' (not inside a pipeline), else int8.  Returns
** LOAM_ERROR only when the connection failed.
*/
LOAMI_FUNC int loam__pg_learn_types (pgconn *pc, const loam_value *params, int n,
                                     int can_probe, loam_error *err);

/*
** Before a pipeline: probes the integer parameter types of statement
** 'sql' unless they are known, so its Parse inside the pipeline has
** them.  Errors are left for the pipeline to report.
*/
LOAMI_FUNC void loam__pg_warm_types (pgconn *pc, const char *sql, const loam_value *params,
                                     int nparams);

/* Makes room for 'n' parameters in the scratch arrays; 0 when memory ran out. */
LOAMI_FUNC int loam__pg_grow_params (pgconn *pc, int n);

/*
** Appends the double 'd' in the text form float8 reads: NaN and the
** infinities as words, else as 'loam__buf_double' writes it.
*/
LOAMI_FUNC void loam__pg_add_double (loam__buf *b, double d, int shortest);

/*
** The types the server gives the 'n' parameters of 'sql', all sent
** untyped, into 'pc->types' (drv_pg_types.c): from what an earlier call
** learned, else by a probe.  '*known' is 0 when the server refused the
** statement or the connection's transaction failed (nothing is learned
** then).  Returns LOAM_ERROR only when the connection failed.
*/
LOAMI_FUNC int loam__pg_param_types (pgconn *pc, const char *sql, int n, int *known,
                                     loam_error *err);

/* The driver's 'copy_rows' operation (drv_pg_copy.c). */
LOAMI_FUNC int loam__pg_copy_rows (loam_conn *conn, const char *copy, const char *one,
                                   const loam_value *v, int nrows, int ncols, int64_t *changes,
                                   loam_error *err);

/*
** Sends the BEGIN waiting in the connection's 'tx_pending' (which it
** clears) as a query of its own, reported like a statement (drv_pg.c).
*/
LOAMI_FUNC int loam__pg_begin_now (pgconn *pc, loam_error *err);

/*
** Sends the BEGIN waiting in 'tx_pending' (which it clears) and the
** prepared statement 'name', bound in the scratch arrays, in one round
** trip (drv_pg_pipe.c); BEGIN is reported like a statement.  Returns the
** statement's result, or BEGIN's when that failed, or NULL when the
** connection failed; the caller clears it.
*/
LOAMI_FUNC PGresult *loam__pg_begin_with (pgconn *pc, const char *name, int nparams);

/* The driver's 'pipeline' operation (drv_pg_pipe.c). */
LOAMI_FUNC int loam__pg_pipeline (loam_conn *conn, loam__pipe *q, int n, loam_error *err);

#endif
