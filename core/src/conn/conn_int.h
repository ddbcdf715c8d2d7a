/*
** conn_int.h: the connection layer's internals shared by its files and
** the layers above (the pool, the batch loader, migrations): URLs, the
** statement cache, the driver interface, the connection and statement
** structures, and instrumentation.
**
** Internal to libloam, like everything under core/src.
*/
#ifndef LOAM_CONN_INT_H
#define LOAM_CONN_INT_H

#include <stdatomic.h>

#include "base/loam_int.h"


/* {======================================================================
** URLs (url.c)
** ======================================================================= */

typedef struct loam__kv {
  char *key;
  char *value;
  /*
  ** The option follows a 'password' or 'sslpassword' option: an unencoded
  ** '&' in that password would have cut it here, so neither its name nor
  ** its value may appear in a message.
  */
  int secret;
} loam__kv;

typedef struct loam__url {
  loam_backend backend;
  /* SQLite */
  char *path;            /* file path, or ":memory:" */
  /* PostgreSQL (decoded) */
  char *user;
  char *password;
  char *host;            /* host name, IP, or socket directory */
  char *port;
  char *dbname;
  /* query options in order, decoded */
  loam__kv *opts;
  int nopts;
  /* '?pgbouncer=transaction': a transaction-pooling proxy is in front (drv_pg_connect.c) */
  int pgbouncer;
} loam__url;

/* Parses 'url' into '*u' (which the caller frees with 'loam__url_free'). */
LOAMI_FUNC int loam__url_parse (const char *url, loam__url *u, loam_error *err);
LOAMI_FUNC void loam__url_free (loam__url *u);
/*
** True for the PostgreSQL options whose values the URL parser checks
** against a fixed vocabulary or as numbers: such a value is no free text,
** so it is no piece of a password even after a password option.
*/
LOAMI_FUNC int loam__url_pg_fixed_value (const char *key);
/* True for the options that hold a password ('password', 'sslpassword'). */
LOAMI_FUNC int loam__url_is_secret_key (const char *key);
/*
** Reports option 'i' of 'u' as LOAM_E_INVALID_URL: 'what', the quoted
** option name, 'why', and with 'showvalue' " (got 'value')".  An option
** that may hold a piece of a password is named by its position alone and
** its value is left out.
*/
LOAMI_FUNC int loam__url_opt_error (const loam__url *u, int i, const char *what, const char *why,
                                    int showvalue, loam_error *err);

/* }====================================================================== */


/* {======================================================================
** Statements with their kind known (conn.c)
** ======================================================================= */

/* The kind of raw SQL, read from its first keyword (conn.c). */
LOAMI_FUNC loam_sql_kind loam__sql_classify (const char *sql);

/*
** A flag of 'loam__query' beside the public ones: the caller steps the
** statement to its end and closes it before its parameters go (as
** 'loam__exec' does), so a driver may bind them where they are instead
** of copying them.
*/
#define LOAM__PARAMS_HELD 0x100

/* 'loam_query' with the kind already known (conn.c). */
LOAMI_FUNC int loam__query (loam_conn *c, const char *sql, loam_sql_kind kind,
                            const loam_value *params, int nparams, int flags, loam_stmt **out,
                            loam_error *err);

/* 'loam_exec' with the kind already known (conn.c). */
LOAMI_FUNC int loam__exec (loam_conn *c, const char *sql, loam_sql_kind kind,
                           const loam_value *params, int nparams, int64_t *changes, int64_t *id,
                           int *has_id, loam_error *err);

/* }====================================================================== */


/* {======================================================================
** Prepared-statement cache (stmt_cache.c)
**
** An LRU map from a key (SQL text, plus whatever else makes a statement
** distinct for its driver) to a driver handle.  Entries handed out with
** 'loam__cache_get' are pinned until 'loam__cache_release', and pinned
** entries are never evicted, so a statement in use is never finalized under
** its user.  The cache may then hold more than its capacity for a while.
** ======================================================================= */

typedef struct loam__centry loam__centry;

typedef struct loam__cache {
  int capacity;              /* 0 disables caching */
  int count;
  loam__centry **buckets;
  size_t nbuckets;
  loam__centry *head;        /* most recently used */
  loam__centry *tail;        /* least recently used */
  void (*destroy) (void *ud, void *handle);
  void *ud;
} loam__cache;

LOAMI_FUNC void loam__cache_init (loam__cache *c, int capacity,
                                  void (*destroy) (void *ud, void *handle), void *ud);
/* Finds and pins 'key'; returns NULL (and pins nothing) when absent or already pinned. */
LOAMI_FUNC loam__centry *loam__cache_get (loam__cache *c, const char *key, size_t keylen);
/* Adds a pinned entry for 'handle'; NULL when caching is off or memory ran out
** (the caller then owns 'handle' and destroys it itself). */
LOAMI_FUNC loam__centry *loam__cache_put (loam__cache *c, const char *key, size_t keylen,
                                          void *handle);
LOAMI_FUNC void *loam__cache_handle (const loam__centry *e);
/* Unpins; then evicts least recently used unpinned entries above capacity. */
LOAMI_FUNC void loam__cache_release (loam__cache *c, loam__centry *e);
/* Removes 'e' (pinned by the caller) and destroys its handle. */
LOAMI_FUNC void loam__cache_drop (loam__cache *c, loam__centry *e);
/* Destroys every handle; pinned ones too (the connection is closing). */
LOAMI_FUNC void loam__cache_clear (loam__cache *c);

/* }====================================================================== */


/* {======================================================================
** Drivers (conn.c dispatches; drv_sqlite.c and drv_pg.c, with
** drv_pg_pipe.c, implement)
**
** Dialects are data, drivers are transport: a driver prepares, binds,
** steps and reports errors.  It never builds SQL of its own beyond the
** session settings it needs.
** ======================================================================= */

typedef struct loam__driver loam__driver;

/*
** One statement of a pipeline (the 'pipeline' operation of a driver).
** The driver sets 'stmt' to a statement holding the statement's whole
** result.  It is on no connection's list and never reaches a user: the
** caller reads it with the driver's 'step', 'column_name' and 'column',
** then releases it with the driver's 'finish' and 'free'.
*/
typedef struct loam__pipe {
  const char *sql;
  loam_sql_kind kind;
  const loam_value *params;
  int nparams;
  loam_stmt *stmt;           /* OUT */
} loam__pipe;

/*
** The common head of every statement.  A driver allocates its own struct
** with this as the first member.
*/
struct loam_stmt {
  loam_conn *conn;           /* NULL once the connection closed under it */
  loam_stmt *next, *prev;    /* the connection's list of open statements */
  int ncols;
  int state;                 /* LOAM__ST_* */
  int64_t changes;
  int has_insert_id;
  int64_t insert_id;
  /* Instrumentation (trace.c), set by 'loam__trace_begin'. */
  int64_t t0;                /* start, monotonic nanoseconds */
  int64_t rows;              /* rows stepped so far */
  /* Owned copies of the SQL and the parameters for the hook, in one block;
  ** NULL without a hook.  One pointer, so the statement stays as small as
  ** before (its size decides which of malloc's paths 'calloc' takes). */
  struct loam__tcopy *tcopy;
  int tnparams;
};

enum { LOAM__ST_READY = 0, LOAM__ST_ROW, LOAM__ST_DONE, LOAM__ST_FAILED, LOAM__ST_DEAD };

struct loam__driver {
  const char *name;
  /* Opens the backend connection into 'conn->impl'. */
  int (*open) (loam_conn *conn, const loam__url *u, const loam_conn_opts *o, loam_error *err);
  /* Closes the backend connection (statements are already finalized). */
  void (*close) (loam_conn *conn);
  /*
  ** Prepares (or fetches from the cache), binds and starts 'sql' of kind
  ** 'kind'; '*out' is a new statement.  The driver acts on 'kind', never
  ** on the text (conn.c classifies raw SQL once).
  */
  int (*query) (loam_conn *conn, const char *sql, loam_sql_kind kind, const loam_value *params,
                int nparams, int flags, loam_stmt **out, loam_error *err);
  /* Advances: LOAM_ROW, LOAM_DONE or LOAM_ERROR; sets 'changes' and insert id at DONE. */
  int (*step) (loam_stmt *s, loam_error *err);
  const char *(*column_name) (const loam_stmt *s, int i);
  void (*column) (loam_stmt *s, int i, loam_value *out);
  /* Releases the backend resources of 's' (not 's' itself). */
  void (*finish) (loam_stmt *s);
  /*
  ** Runs the 'n' statements of 'q' in one round trip and sets every
  ** 'q[i].stmt'; NULL when the backend cannot (its callers then run the
  ** statements one by one).  On failure no 'stmt' is set, the error is
  ** the first statement's that failed, and the connection is ready for
  ** the next statement.  Each statement that ran is reported through
  ** 'loam__trace_done', since none of them goes through 'loam_query'.
  */
  int (*pipeline) (loam_conn *conn, loam__pipe *q, int n, loam_error *err);
  /* Whether the connection is inside a transaction: LOAM__TX_* (tx.c decides BEGIN or SAVEPOINT). */
  int (*in_transaction) (loam_conn *conn);
  /*
  ** Inserts the 'nrows' rows of 'ncols' values of 'v' (row after row) with
  ** 'copy', the dialect's COPY of the columns from the client, as one
  ** statement; 'one' is the INSERT of one row of those columns, whose
  ** parameter types tell how the server would read each value.  Returns
  ** LOAM__DECLINED, having sent at most a probe of 'one', when a value
  ** would not go in exactly as that INSERT binds it; else LOAM_OK with
  ** '*changes' set, or LOAM_ERROR.  NULL when the backend has no COPY.
  */
  int (*copy_rows) (loam_conn *conn, const char *copy, const char *one, const loam_value *v,
                    int nrows, int ncols, int64_t *changes, loam_error *err);
  /*
  ** Whether the connection can still be used: with 'ping' after a round
  ** trip to the server, otherwise from what is already known.
  */
  int (*alive) (loam_conn *conn, int ping);
  /* 'loam_conn_cancel': the one operation that another thread may call. */
  int (*cancel) (loam_conn *conn, loam_error *err);
  /* The server process of the session (PostgreSQL), or 0. */
  int (*server_pid) (loam_conn *conn);
  /*
  ** Runs one of tx.c's own statements ('sql': no parameters, no rows) as
  ** a simple query, reporting it through 'loam__trace_done'; NULL when
  ** the driver has no cheaper way than 'loam__exec'.
  */
  int (*exec_tx) (loam_conn *conn, const char *sql, loam_error *err);
  /*
  ** The outermost BEGIN may wait in 'tx_pending' for the transaction's
  ** first statement, which the driver sends with it (PostgreSQL: one round
  ** trip for both).  Such a driver counts a pending BEGIN as an open
  ** transaction in 'in_transaction', and sends it, alone and first, before
  ** anything else that reaches the server inside the transaction.
  */
  int defers_begin;
};

/* What a driver's 'copy_rows' returns when the rows must go in as INSERTs. */
#define LOAM__DECLINED 2

/* The answers of a driver's 'in_transaction'. */
enum { LOAM__TX_NONE = 0, LOAM__TX_OPEN, LOAM__TX_FAILED /* PostgreSQL: awaiting ROLLBACK */ };

struct loam_conn {
  const loam__driver *drv;
  loam_backend backend;
  void *impl;                /* driver state */
  loam__cache cache;
  loam_stmt *stmts;          /* open statements */
  loam_stmt *streaming;      /* PostgreSQL: the statement that owns the wire, if any */
  loam_stats stats;          /* instrumentation counters (trace.c) */
  loam_trace_fn trace;       /* the trace hook, or NULL */
  void *trace_ud;
  int64_t pool_wait_ns;      /* the wait of its pool checkout, until its first statement ends */
  /*
  ** Statements that may have written ('loam_conn_writes'): every one that
  ** reached the driver but a SELECT, and each COPY.  Read-your-writes on
  ** replicas (pool/replica.c) compares it across a checkout.
  */
  uint64_t writes;
  /* Transaction levels (tx.c): bit i of 'tx_began' says level i+1 began the transaction. */
  int tx_depth;
  uint32_t tx_began;
  /*
  ** The BEGIN of the outermost level, not sent yet (a driver that
  ** 'defers_begin'): the dialect's text or 'tx_begin_sql'; NULL when none
  ** waits.  The driver clears it when it sends it; a COMMIT or ROLLBACK
  ** finding it still there sends nothing.
  */
  const char *tx_pending;
  char tx_begin_sql[64];
  /*
  ** Whether a BEGIN waits, for another thread: the pool's report of who
  ** holds its connections reads it.  Set with 'tx_pending' by
  ** 'loam__tx_pend'.
  */
  atomic_int tx_waiting;
  /* What the outermost level was opened with, and its hooks (tx.c). */
  int tx_internal;           /* tx.c is running a statement of its own */
  int tx_query_only;         /* SQLite: tx.c set 'query_only' for a read-only transaction */
  int tx_warned;             /* the long transaction was reported */
  int64_t tx_started_ns;
  int64_t tx_warn_ns;        /* report past this age; 0: never */
  loam_tx_log_fn tx_log;
  void *tx_log_ud;
  char tx_tag[96];
  struct loam__txhook *tx_hooks;   /* registration order, depths never decreasing */
  int tx_nhooks, tx_caphooks;
  /*
  ** A callback of tx.c (a hook, the body of 'loam_tx_run') is running: a
  ** 'loam_conn_close' from inside it closes everything but leaves the
  ** structure ('tx_closed') for tx.c to free once the callback returned.
  */
  int tx_busy;
  int tx_closed;
};

/* Sets 'tx_pending' to 'sql' (NULL: no BEGIN waits any more), and 'tx_waiting' with it. */
static inline void loam__tx_pend (loam_conn *c, const char *sql) {
  c->tx_pending = sql;
  atomic_store_explicit(&c->tx_waiting, sql != NULL, memory_order_relaxed);
}

/*
** The checks of tx.c on a statement while a level is open ('tx_depth' >
** 0): 'before' (at 'loam_query', 'now' its start) refuses a statement
** that would run in autocommit and reports a long transaction; 'after'
** (at the step that finished a statement) fails the statement that ended
** the transaction under the levels.  'end_all' calls the hooks still
** registered as rolled back and frees them: the connection closes
** ('closing') or is reset, which also puts 'query_only' back.
*/
LOAMI_FUNC int loam__tx_before (loam_conn *conn, int64_t now, loam_error *err);
LOAMI_FUNC int loam__tx_after (loam_conn *conn, loam_error *err);
LOAMI_FUNC void loam__tx_end_all (loam_conn *conn, int closing);
/*
** Around a callback: 'enter' marks the connection busy; 'leave' returns 1
** when the callback closed it (then freed, unless an outer callback still
** runs), else 0.
*/
LOAMI_FUNC void loam__tx_enter (loam_conn *conn);
LOAMI_FUNC int loam__tx_leave (loam_conn *conn);
/* 'loam_tx_begin_with' without the refusal of retry options; 'fname' names the caller. */
LOAMI_FUNC int loam__tx_begin (loam_conn *conn, const loam_tx_opts *o, const char *fname,
                               loam_error *err);

/*
** Makes a connection that is handed back to a pool like a fresh one
** (conn.c): finalizes its open statements (they become unusable, as at
** close), rolls back an open transaction and forgets its levels.  Returns
** LOAM_ERROR (with 'err', OUT, may be NULL) when that failed or the
** connection is no longer usable: the caller then closes it.
*/
LOAMI_FUNC int loam__conn_reset (loam_conn *conn, loam_error *err);

/*
** Whether 'loam__conn_reset' would find nothing to do: no statement
** open, no level, no hook, no transaction, the connection usable.  Asks
** nothing of the server, so the pool may call it under its lock.
*/
LOAMI_FUNC int loam__conn_clean (loam_conn *conn);

/*
** Instrumentation (trace.c): every statement that reached the backend is
** reported once, when it finished or failed, whatever path ran it
** ('loam_query', a pipeline, the batch loader).  'errcode' is LOAM_E_NONE
** on success.
*/
LOAMI_FUNC void loam__trace_done (loam_conn *conn, const char *sql, const loam_value *params,
                                  int nparams, int64_t rows, int64_t elapsed_ns, int errcode);

/* The monotonic clock in nanoseconds, for 'elapsed_ns' above. */
LOAMI_FUNC int64_t loam__clock_ns (void);

/*
** For statements made through a driver's 'query': 'begin' records in 's'
** (already on its connection) its start 't0', a 'loam__clock_ns' reading,
** and copies of 'sql' and 'params' when the connection has a hook; 'end'
** reports the statement through 'loam__trace_done' and frees the copies.  conn.c calls
** 'end' exactly once per statement: at the step that finished it, or when
** it is finalized before that.
*/
LOAMI_FUNC void loam__trace_begin (loam_stmt *s, const char *sql, const loam_value *params,
                                   int nparams, int64_t t0);
LOAMI_FUNC void loam__trace_end (loam_stmt *s, int errcode);

LOAMI_FUNC const loam__driver loam__sqlite_driver;
/* Registers the 'loam_keys' table-valued function (sqlite_keys.c) on 'db'; an SQLite result code. */
struct sqlite3;
LOAMI_FUNC int loam__sqlite_keys_register (struct sqlite3 *db);
LOAMI_FUNC const loam__driver loam__pg_driver;

/* }====================================================================== */

#endif
