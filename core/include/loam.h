/*
** loam.h: the public C interface of libloam.
**
** libloam is the core of the loam ORM: connections to SQLite and PostgreSQL
** behind one interface, bound parameters, typed result values, a prepared
** statement cache per connection and one error structure with stable codes.
** It has no Lua dependency; the Lua binding is a plain client of this header.
**
** Conventions
**   - Handles ('loam_conn', 'loam_stmt') are opaque.  Every constructor has
**     a matching destructor; destructors accept NULL and do nothing then.
**   - Fallible functions return a status: LOAM_OK (0), or LOAM_ERROR with the
**     details written into the caller's 'loam_error' (which may be NULL when
**     the caller does not want them).  Stepping returns LOAM_ROW or LOAM_DONE.
**   - Strings passed in are borrowed for the duration of the call only.
**   - A connection and its statements must be used by one thread at a time.
*/
#ifndef LOAM_H
#define LOAM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LOAM_VERSION "0.1.0"

#if defined(__GNUC__)
#define LOAM_API __attribute__((visibility("default")))
#else
#define LOAM_API
#endif

/* Status returns. */
#define LOAM_OK     0
#define LOAM_ERROR  1
#define LOAM_ROW    100
#define LOAM_DONE   101

/*
** Stable error codes.  The same failure has the same code on every backend;
** 'loam_errcode_name' gives the stable lower-case name ("unique_violation")
** used by the Lua layer.  Values are append-only.
*/
typedef enum loam_errcode {
  LOAM_E_NONE = 0,
  LOAM_E_MISUSE,                /* API misuse: closed handle, bad argument, wrong parameter count */
  LOAM_E_NOMEM,                 /* out of memory */
  LOAM_E_INVALID_URL,           /* malformed URL, unknown scheme or option */
  LOAM_E_CONNECTION_FAILED,     /* server unreachable, database missing, connection lost */
  LOAM_E_AUTH_FAILED,           /* wrong password or user */
  LOAM_E_TIMEOUT,               /* statement_timeout, lock_timeout, connect timeout */
  LOAM_E_BUSY,                  /* SQLite database locked past busy_timeout */
  LOAM_E_SYNTAX_ERROR,          /* SQL syntax error */
  LOAM_E_UNDEFINED_TABLE,       /* no such table */
  LOAM_E_UNDEFINED_COLUMN,      /* no such column */
  LOAM_E_UNIQUE_VIOLATION,
  LOAM_E_FOREIGN_KEY_VIOLATION,
  LOAM_E_NOT_NULL_VIOLATION,
  LOAM_E_CHECK_VIOLATION,
  LOAM_E_CONSTRAINT_VIOLATION,  /* any other constraint (exclusion, ...) */
  LOAM_E_SERIALIZATION_FAILURE, /* retryable: concurrent update under SERIALIZABLE */
  LOAM_E_DEADLOCK,              /* retryable: chosen as deadlock victim */
  LOAM_E_DATA_ERROR,            /* value out of range, invalid input syntax, bad encoding */
  LOAM_E_READ_ONLY,             /* write to a read-only database or transaction */
  LOAM_E_TRANSACTION_ABORTED,   /* PostgreSQL: statement in a failed transaction */
  LOAM_E_PERMISSION_DENIED,     /* insufficient privilege */
  LOAM_E_DATABASE_ERROR,        /* any other error reported by the backend */
  LOAM_E__COUNT
} loam_errcode;

/*
** One error structure for the whole library.  Initialise it with
** LOAM_ERROR_INIT (all zero).  A failing call first clears it, then fills
** it.  The strings are owned by the structure: they stay valid until the
** next call that writes into it or 'loam_error_clear', which frees them.
** 'message' is never NULL after a failure; the others are NULL when the
** backend did not name them.  Driver text has no trailing newline.
** Messages never contain a password from a connection URL.
*/
typedef struct loam_error {
  loam_errcode code;
  char sqlstate[6];      /* five characters and NUL; "" when the backend gives none */
  char *message;         /* primary message */
  char *detail;          /* backend detail line, or NULL */
  char *constraint;      /* constraint name, or NULL */
  char *table;           /* table name, or NULL */
  char *column;          /* column name, or NULL */
} loam_error;

#define LOAM_ERROR_INIT { LOAM_E_NONE, "", NULL, NULL, NULL, NULL, NULL }

/* Frees the strings of 'err' and resets it to LOAM_ERROR_INIT.  NULL is fine. */
LOAM_API void loam_error_clear (loam_error *err);

/* The stable name of 'code' ("unique_violation"); a static string. */
LOAM_API const char *loam_errcode_name (int code);


/* {======================================================================
** Values
** ======================================================================= */

typedef enum loam_type {
  LOAM_NULL = 0,
  LOAM_BOOL,
  LOAM_INT,      /* int64_t, exact on both backends */
  LOAM_DOUBLE,
  LOAM_TEXT,     /* UTF-8 bytes; 'len' excludes any terminator */
  LOAM_BLOB      /* raw bytes */
} loam_type;

/*
** A parameter or result value.  For TEXT and BLOB, 's.ptr' is borrowed:
** as a parameter it must stay valid during the call; as a result it stays
** valid until the next 'loam_step' or 'loam_stmt_close' on that statement.
** Result TEXT is always NUL-terminated at s.ptr[s.len].
*/
typedef struct loam_value {
  loam_type type;
  union {
    int b;
    int64_t i;
    double d;
    struct { const char *ptr; size_t len; } s;
  } u;
} loam_value;

static inline loam_value loam_null (void) {
  loam_value v; v.type = LOAM_NULL; v.u.i = 0; return v;
}
static inline loam_value loam_bool (int b) {
  loam_value v; v.type = LOAM_BOOL; v.u.b = (b != 0); return v;
}
static inline loam_value loam_int (int64_t i) {
  loam_value v; v.type = LOAM_INT; v.u.i = i; return v;
}
static inline loam_value loam_double (double d) {
  loam_value v; v.type = LOAM_DOUBLE; v.u.d = d; return v;
}
static inline loam_value loam_text (const char *p, size_t len) {
  loam_value v; v.type = LOAM_TEXT; v.u.s.ptr = p; v.u.s.len = len; return v;
}
static inline loam_value loam_blob (const void *p, size_t len) {
  loam_value v; v.type = LOAM_BLOB; v.u.s.ptr = (const char *)p; v.u.s.len = len; return v;
}

/* "null", "boolean", "integer", "double", "text", "blob"; a static string. */
LOAM_API const char *loam_type_name (int type);

/* }====================================================================== */


/* {======================================================================
** Connections
** ======================================================================= */

typedef struct loam_conn loam_conn;

typedef enum loam_backend {
  LOAM_SQLITE = 1,
  LOAM_POSTGRES = 2
} loam_backend;

/*
** Connection options.  Start from LOAM_CONN_OPTS_INIT; a negative field
** means "the default".
*/
typedef struct loam_conn_opts {
  int statement_cache;     /* prepared statements kept per connection (LRU); 0 disables; default 64 */
  int busy_timeout_ms;     /* SQLite busy_timeout; default 5000 */
  int connect_timeout_s;   /* PostgreSQL connect_timeout; default 10 */
} loam_conn_opts;

#define LOAM_CONN_OPTS_INIT { -1, -1, -1 }

/*
** Opens a connection.  'url' is one of
**   sqlite:path/to.db    sqlite:/abs/path.db    sqlite::memory:
**   postgres://user:password@host:port/dbname?option=value...
**   postgresql:///dbname?host=/socket/dir
** SQLite URLs accept '?mode=ro|rw|rwc' and '?busy_timeout=MS'.
** PostgreSQL query options are passed to libpq as connection keywords.
** SQLite connections enable foreign keys, set busy_timeout and use WAL for
** file databases.  'opts' may be NULL.  On success '*out' receives a handle
** the caller frees with 'loam_conn_close'; on failure '*out' is NULL.
*/
LOAM_API int loam_connect (const char *url,
                           const loam_conn_opts *opts,   /* may be NULL */
                           loam_conn **out,              /* OUT: new handle */
                           loam_error *err);             /* OUT: may be NULL */

/*
** Closes the connection and frees it.  Statements still open on it are
** finalized and become unusable ('loam_step' reports LOAM_E_MISUSE); each
** must still be freed with 'loam_stmt_close'.  NULL is fine.
*/
LOAM_API void loam_conn_close (loam_conn *conn);

LOAM_API loam_backend loam_conn_backend (const loam_conn *conn);

/* Statements currently held in the prepared-statement cache. */
LOAM_API int loam_conn_cached_statements (const loam_conn *conn);

/* }====================================================================== */


/* {======================================================================
** Statements and results
** ======================================================================= */

typedef struct loam_stmt loam_stmt;

/* Flags for 'loam_query'. */
#define LOAM_STREAM 1   /* fetch rows one at a time (PostgreSQL single-row mode) */

/*
** Runs 'sql' with 'nparams' bound values.  Placeholders are '?' on both
** backends; PostgreSQL also takes '$1'...'$n' (not mixed with '?'), and
** '??' there stands for a literal '?' operator.  'sql' must hold one
** statement.  Rows are then read with 'loam_step'.
**
** Without LOAM_STREAM a PostgreSQL result is fetched whole, and the
** connection is free for other statements at once.  With LOAM_STREAM rows
** arrive one at a time in constant memory and the connection runs nothing
** else until the statement is done or closed (LOAM_E_MISUSE otherwise).
** SQLite always steps lazily.
**
** On success '*out' receives a statement the caller frees with
** 'loam_stmt_close'; on failure '*out' is NULL.
*/
LOAM_API int loam_query (loam_conn *conn,
                         const char *sql,
                         const loam_value *params,   /* may be NULL when nparams is 0 */
                         int nparams,
                         int flags,                  /* 0 or LOAM_STREAM */
                         loam_stmt **out,            /* OUT: new statement */
                         loam_error *err);           /* OUT: may be NULL */

/* Advances to the next row: LOAM_ROW, LOAM_DONE or LOAM_ERROR. */
LOAM_API int loam_step (loam_stmt *stmt, loam_error *err);

LOAM_API int loam_column_count (const loam_stmt *stmt);

/* Column name; valid until 'loam_stmt_close'.  NULL when 'i' is out of range. */
LOAM_API const char *loam_column_name (const loam_stmt *stmt, int i);

/*
** Writes column 'i' of the current row into '*out'.  Types follow the
** column: booleans come back as LOAM_BOOL on both backends (SQLite columns
** declared BOOLEAN), integers as LOAM_INT, floating point as LOAM_DOUBLE,
** bytea/BLOB as LOAM_BLOB, PostgreSQL numeric and every other type as
** LOAM_TEXT in the server's text form.  Returns LOAM_ERROR (misuse) when
** there is no current row or 'i' is out of range.
*/
LOAM_API int loam_column (loam_stmt *stmt, int i, loam_value *out /* OUT */);

/* Rows inserted, updated or deleted; meaningful once 'loam_step' returned LOAM_DONE. */
LOAM_API int64_t loam_stmt_changes (const loam_stmt *stmt);

/*
** The rowid of an SQLite INSERT that ran to completion, for statements
** without RETURNING.  Returns 1 and writes '*id' when there is one.
*/
LOAM_API int loam_stmt_insert_id (const loam_stmt *stmt, int64_t *id /* OUT */);

/* Finalizes and frees the statement.  NULL is fine. */
LOAM_API void loam_stmt_close (loam_stmt *stmt);

/*
** Runs 'sql' to completion.  '*changes' (may be NULL) receives the rows
** affected; '*id' (may be NULL) the generated key: the first column of the
** first row returned (INSERT ... RETURNING id) when it is an integer,
** otherwise the SQLite rowid of an INSERT; '*has_id' (may be NULL) says
** whether '*id' was set.
*/
LOAM_API int loam_exec (loam_conn *conn,
                        const char *sql,
                        const loam_value *params,
                        int nparams,
                        int64_t *changes,   /* OUT: may be NULL */
                        int64_t *id,        /* OUT: may be NULL */
                        int *has_id,        /* OUT: may be NULL */
                        loam_error *err);

/* }====================================================================== */

#ifdef __cplusplus
}
#endif

#endif
