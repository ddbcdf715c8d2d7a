/*
** loam_int.h: internal interfaces shared by the files of libloam.
**
** Nothing here is part of the public API.  Internal functions that cross
** files carry the 'loam__' prefix and hidden visibility, so the shared
** library exports only the 'loam_' names of loam.h.
*/
#ifndef LOAM_INT_H
#define LOAM_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "loam.h"

#if defined(__GNUC__)
#define LOAMI_FUNC __attribute__((visibility("hidden"))) extern
#define LOAMI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define LOAMI_FUNC extern
#define LOAMI_PRINTF(f, a)
#endif


/* {======================================================================
** Hashing (hash.c)
** ======================================================================= */

/* The 64-bit FNV-1a offset basis and prime; fingerprints depend on both. */
#define LOAM__FNV_BASIS UINT64_C(0xcbf29ce484222325)
#define LOAM__FNV_PRIME UINT64_C(0x100000001b3)

/*
** Continues the FNV-1a hash 'h' (LOAM__FNV_BASIS to start) over the 'n'
** bytes at 'p'.  Hashing two pieces one after the other gives the hash of
** their concatenation.
*/
LOAMI_FUNC uint64_t loam__fnv1a (uint64_t h, const void *p, size_t n);

/* }====================================================================== */


/* {======================================================================
** Growable byte buffer (buf.c)
**
** The one buffer type for SQL text and messages.  Appends never fail
** visibly: on allocation failure the buffer sets 'oom' and ignores further
** appends, so callers check once at the end.  'p' is always NUL-terminated
** once anything was appended (or after 'loam__buf_cstr').
** ======================================================================= */

typedef struct loam__buf {
  char *p;
  size_t len;
  size_t cap;
  int oom;
} loam__buf;

#define LOAM__BUF_INIT { NULL, 0, 0, 0 }

LOAMI_FUNC void loam__buf_add (loam__buf *b, const void *p, size_t n);
LOAMI_FUNC void loam__buf_adds (loam__buf *b, const char *s);
LOAMI_FUNC void loam__buf_addc (loam__buf *b, char c);
LOAMI_FUNC void loam__buf_addf (loam__buf *b, const char *fmt, ...) LOAMI_PRINTF(2, 3);
LOAMI_FUNC void loam__buf_vaddf (loam__buf *b, const char *fmt, va_list ap);
/* Appends 'i' in decimal, as "%" PRId64 would. */
LOAMI_FUNC void loam__buf_int (loam__buf *b, int64_t i);
/*
** Appends the finite double 'd' with '.' as the decimal point whatever the
** locale, in a form that reads back as exactly 'd': always 17 significant
** digits, or with 'shortest' the fewest (15 to 17) that do.  NaN and the
** infinities are each caller's to write or refuse.
*/
LOAMI_FUNC void loam__buf_double (loam__buf *b, double d, int shortest);
/* Appends 'name' as a quoted identifier ("a""b"). */
LOAMI_FUNC void loam__buf_ident (loam__buf *b, const char *name, size_t len);
/* Appends 's' as a quoted SQL string literal ('it''s'); DDL only, where no parameters exist. */
LOAMI_FUNC void loam__buf_literal (loam__buf *b, const char *s, size_t len);
/*
** Makes room for 'n' more bytes (and a NUL) and returns where they go;
** the caller writes at most 'n' bytes there and adds what it wrote to
** 'len' (the NUL is then its to write, or the next append's).  NULL after
** OOM.  For writers of many small pieces, which check the room once.
*/
LOAMI_FUNC char *loam__buf_reserve (loam__buf *b, size_t n);
/* Returns the NUL-terminated contents ("" when empty, NULL after OOM). */
LOAMI_FUNC const char *loam__buf_cstr (loam__buf *b);
LOAMI_FUNC void loam__buf_reset (loam__buf *b);   /* keeps the memory */
LOAMI_FUNC void loam__buf_free (loam__buf *b);

/* strdup/strndup that return NULL on allocation failure. */
LOAMI_FUNC char *loam__strdup (const char *s);
LOAMI_FUNC char *loam__strndup (const char *s, size_t n);

/* }====================================================================== */


/* {======================================================================
** Values (value.c)
**
** The canonical forms in which values match keys, whatever the backend
** returned: integers (booleans as 0 and 1, doubles with an integral
** value), other doubles, text.  The integer 1 and the text '1' never
** match.
** ======================================================================= */

/* Appends a short description of 'v' for a message: 'text', 42, true, ... */
LOAMI_FUNC void loam__value_describe (loam__buf *m, const loam_value *v);

/* The class of a key position; all keys of one position share one. */
enum { LOAM__VC_NONE, LOAM__VC_NUM, LOAM__VC_TEXT, LOAM__VC_BOOL };

/* The class of values of 'type' as keys: LOAM__VC_NONE for NULL and blobs. */
LOAMI_FUNC int loam__value_class (int type);

/* A double with an integral value in range becomes that integer; other values are kept. */
LOAMI_FUNC loam_value loam__value_integral (loam_value v);

/*
** The form in which values of class 'cls' compare: integers (booleans as
** 0 and 1), other doubles, text; the text of a numeric position
** ('numeric') as a decimal, without trailing zeros.  Returns 0 when 'v'
** cannot equal any key of that class.  Text in '*out' points into 'v'.
*/
LOAMI_FUNC int loam__value_canon (const loam_value *v, int cls, int numeric,
                                  loam_value *out /* OUT */);

/* The starting value of a hash over canonical values. */
#define LOAM__VALUE_HASH_INIT LOAM__FNV_BASIS

/* Adds the canonical value 'c' to the hash 'h'. */
LOAMI_FUNC uint64_t loam__value_hash (uint64_t h, const loam_value *c);

/* Whether the canonical values 'a' and 'b' are equal. */
LOAMI_FUNC int loam__value_same (const loam_value *a, const loam_value *b);

/* }====================================================================== */


/* {======================================================================
** Errors (error.c)
** ======================================================================= */

/*
** Clears 'err' and sets code and a formatted message.  Returns LOAM_ERROR
** so callers can 'return loam__err(...)'.  'err' may be NULL.
*/
LOAMI_FUNC int loam__err (loam_error *err, loam_errcode code, const char *fmt, ...)
  LOAMI_PRINTF(3, 4);
/* Copies 'msg' (first 'n' bytes, trailing whitespace and newlines dropped). */
LOAMI_FUNC int loam__err_msg (loam_error *err, loam_errcode code, const char *msg, size_t n);
/* Sets an owned field ('detail', 'constraint', 'table', 'column') from 'v' (NULL clears). */
LOAMI_FUNC void loam__err_field (char **field, const char *v, size_t n);
LOAMI_FUNC int loam__err_nomem (loam_error *err);

/* }====================================================================== */


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
** SQL text (sqltext.c)
** ======================================================================= */

/*
** Scans 'sql' as PostgreSQL reads it (string literals, E'' strings,
** dollar quotes, quoted identifiers, nested block comments, line comments)
** and writes into 'out' the text 'backend' prepares: positional '?' become
** '$1'..'$n' on PostgreSQL and stay on SQLite; numbered placeholders ('$n'
** or '?n', the n-th parameter on both) become '$n' on PostgreSQL and '?n'
** on SQLite; '??' becomes '?' on PostgreSQL and is refused on SQLite.
** A '$n' is written with a blank before it where it would glue onto the
** token before it.  '*nparams' receives the number of parameters the statement takes.
** LOAM_E_MISUSE: mixed positional and numbered placeholders, a numbered
** one out of 1..65535, numbers with a gap, a second statement after ';'.
*/
LOAMI_FUNC int loam__sql_params (const char *sql, loam_backend backend, loam__buf *out,
                                 int *nparams, loam_error *err);

/* 'loam__sql_params' for PostgreSQL. */
LOAMI_FUNC int loam__sql_to_dollar (const char *sql, loam__buf *out, int *nparams,
                                   loam_error *err);

/* Token kinds of 'loam__sql_token'. */
enum {
  LOAM__TK_END = 0,   /* the terminating NUL */
  LOAM__TK_SPACE,     /* a run of blanks and comments */
  LOAM__TK_STRING,    /* '...', E'...' (backslash escapes), X'', B'', N'', $tag$...$tag$ */
  LOAM__TK_QIDENT,    /* "..." */
  LOAM__TK_NUMBER,    /* 42, 1.5e-3, .5, 0x1F */
  LOAM__TK_PARAM,     /* '?' (or SQLite's '?NNN'), or '$n' */
  LOAM__TK_WORD,      /* keyword or bare identifier ('$' allowed after the first byte) */
  LOAM__TK_PUNCT      /* any other byte, or '??' (the literal '?' operator) */
};

/*
** The one SQL lexer of libloam, reading as PostgreSQL does (string
** literals, E'' strings, dollar quotes, quoted identifiers, nested block
** comments, line comments).  Returns the end of the token that starts at
** 'p' and writes its kind into '*kind'.  An unterminated quote or comment
** runs to the end of the text.
*/
LOAMI_FUNC const char *loam__sql_token (const char *p, int *kind /* OUT */);

/* True when 'sql' starts (after blanks and comments) with keyword 'kw' (upper-case). */
LOAMI_FUNC int loam__sql_starts_with (const char *sql, const char *kw);

/* A result of one statement with no parameters (render.c); NULL when out of memory. */
LOAMI_FUNC loam_rendered *loam__rendered_text (const char *sql, size_t len, loam_sql_kind kind);

/*
** The text of a bulk insert into the INSERT 'st' of 'qb', which has its
** columns and nothing else (render.c): the INSERT of 'rows' rows of
** placeholders, or with 'rows' 0 the dialect's COPY of those columns from
** the client (LOAM_E_MISUSE where it has none).  On success '*out' holds
** the NUL-terminated text; the caller frees it with 'loam__buf_free'.
*/
LOAMI_FUNC int loam__insert_text (loam_qb *qb, const loam_qstmt *st, loam_backend dialect,
                                  int rows, loam__buf *out, loam_error *err);

/*
** A result of 'n' statements (render.c): the texts 'texts' with the kinds
** 'kinds', the 'nparams' values 'params' bound to the first one; all
** copied.  NULL when out of memory or 'n' < 1.
*/
LOAMI_FUNC loam_rendered *loam__rendered_list (int n, const char *const *texts,
                                               const loam_sql_kind *kinds,
                                               const loam_value *params, int nparams);

/* The kind of raw SQL, read from its first keyword (conn.c). */
LOAMI_FUNC loam_sql_kind loam__sql_classify (const char *sql);

/* 'loam_query' with the kind already known (conn.c). */
LOAMI_FUNC int loam__query (loam_conn *c, const char *sql, loam_sql_kind kind,
                            const loam_value *params, int nparams, int flags, loam_stmt **out,
                            loam_error *err);

/* 'loam_exec' with the kind already known (conn.c). */
LOAMI_FUNC int loam__exec (loam_conn *c, const char *sql, loam_sql_kind kind,
                           const loam_value *params, int nparams, int64_t *changes, int64_t *id,
                           int *has_id, loam_error *err);

/* Checks an identifier: non-empty, no NUL, at most LOAM_IDENT_MAX bytes (LOAM_E_MISUSE). */
LOAMI_FUNC int loam__ident_check (const char *name, size_t len, loam_error *err);

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
  char *tsql;                /* owned copy of the SQL for the hook; NULL without a hook */
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
  /* Transaction levels (tx.c): bit i of 'tx_began' says level i+1 began the transaction. */
  int tx_depth;
  uint32_t tx_began;
};

/*
** Makes a connection that is handed back to a pool like a fresh one
** (conn.c): finalizes its open statements (they become unusable, as at
** close), rolls back an open transaction and forgets its levels.  Returns
** LOAM_ERROR (with 'err', OUT, may be NULL) when that failed or the
** connection is no longer usable: the caller then closes it.
*/
LOAMI_FUNC int loam__conn_reset (loam_conn *conn, loam_error *err);

/*
** Instrumentation (trace.c): every statement that reached the backend is
** reported once, when it finished or failed, whatever path ran it
** ('loam_query', a pipeline, the batch loader).  'errcode' is LOAM_E_NONE
** on success.
*/
LOAMI_FUNC void loam__trace_done (loam_conn *conn, const char *sql, int nparams,
                                  int64_t rows, int64_t elapsed_ns, int errcode);

/* The monotonic clock in nanoseconds, for 'elapsed_ns' above. */
LOAMI_FUNC int64_t loam__clock_ns (void);

/*
** For statements made through a driver's 'query': 'begin' records in 's'
** (already on its connection) its start 't0', a 'loam__clock_ns' reading,
** and a copy of 'sql' when the connection has a hook; 'end' reports the
** statement through 'loam__trace_done' and frees the copy.  conn.c calls
** 'end' exactly once per statement: at the step that finished it, or when
** it is finalized before that.
*/
LOAMI_FUNC void loam__trace_begin (loam_stmt *s, const char *sql, int nparams, int64_t t0);
LOAMI_FUNC void loam__trace_end (loam_stmt *s, int errcode);

LOAMI_FUNC const loam__driver loam__sqlite_driver;
/* Registers the 'loam_keys' table-valued function (sqlite_keys.c) on 'db'; an SQLite result code. */
struct sqlite3;
LOAMI_FUNC int loam__sqlite_keys_register (struct sqlite3 *db);
LOAMI_FUNC const loam__driver loam__pg_driver;

/* }====================================================================== */

#endif
