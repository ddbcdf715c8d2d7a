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
  LOAM_E_MISUSE,                /* API misuse: closed handle, bad argument, wrong parameter count,
                                   more parameters than the backend takes */
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
  LOAM_E_DISK_FULL,             /* no space left for the database or its journal */
  LOAM_E_CORRUPT,               /* the database file or an index is damaged */
  LOAM_E_IO_ERROR,              /* the operating system failed a read or write */
  LOAM_E_UNDEFINED_FUNCTION,    /* PostgreSQL: no function matches the name and argument types */
  LOAM_E_CANCELED,              /* the statement was canceled by 'loam_conn_cancel' */
  LOAM_E_POOL_TIMEOUT,          /* no pooled connection became free within the acquire timeout */
  LOAM_E_LOCKED,                /* another migrator holds the migration lock */
  LOAM_E_CHECKSUM_MISMATCH,     /* an applied migration's source changed */
  LOAM_E_MIGRATION_CONFLICT,    /* two heads, a missing parent, a migration out of order */
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
** The value of a timeout option that asks to wait without limit.  No
** timeout of loam is unlimited by default, and none becomes unlimited by
** being 0.
*/
#define LOAM_FOREVER (-2)

/*
** Connection options.  Start from LOAM_CONN_OPTS_INIT; -1 in a field
** means "the default".  Other negative values are LOAM_E_MISUSE at
** 'loam_connect', except LOAM_FOREVER where a field says so.
*/
typedef struct loam_conn_opts {
  int statement_cache;     /* prepared statements kept per connection (LRU); 0 disables; default 64 */
  int busy_timeout_ms;     /* SQLite busy_timeout; default 5000 */
  int connect_timeout_s;   /* PostgreSQL: seconds per host to connect; default 10; at least 1,
                              or LOAM_FOREVER (0 is LOAM_E_MISUSE: it would mean forever) */
  int statement_timeout_ms;   /* every statement's limit (LOAM_E_TIMEOUT past it); PostgreSQL:
                                 'statement_timeout', SQLite: each 'loam_step' is interrupted;
                                 0: none; default: none on SQLite, the server's on PostgreSQL */
  int idle_in_tx_timeout_ms;  /* PostgreSQL 'idle_in_transaction_session_timeout': the server
                                 ends a session idle that long inside a transaction; 0: none;
                                 default: the server's.  Ignored on SQLite */
} loam_conn_opts;

#define LOAM_CONN_OPTS_INIT { -1, -1, -1, -1, -1 }

/*
** Opens a connection.  'url' is one of
**   sqlite:path/to.db    sqlite:/abs/path.db    sqlite::memory:
**   postgres://user:password@host:port/dbname?option=value...
**   postgresql:///dbname?host=/socket/dir
** SQLite URLs accept '?mode=ro|rw|rwc' and '?busy_timeout=MS'.
** PostgreSQL query options are passed to libpq as connection keywords,
** except loam's own '?pgbouncer=transaction': PgBouncer in transaction
** pooling mode is in front, so the statement cache is off (a
** statement_cache above 0 is LOAM_E_MISUSE, as are the two session
** timeouts), and the settings below are SET once at connect for PgBouncer
** to keep per client instead of travelling in the startup packet.
** SQLite connections enable foreign keys, set busy_timeout and use WAL for
** file databases.  PostgreSQL connections set, in the startup packet (so
** role and database settings cannot override them), client_encoding UTF8,
** standard_conforming_strings on, DateStyle ISO, IntervalStyle postgres,
** TimeZone UTC and extra_float_digits 3, and fail (LOAM_E_CONNECTION_FAILED)
** when the server reports another value for one.  'opts' may be NULL.  On success '*out' receives a handle
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

/*
** Asks the statement running on 'conn' to stop; it then fails with
** LOAM_E_CANCELED.  This is the one call that may be made from another
** thread while the connection's owner uses it; the caller makes sure
** 'conn' stays open during the call (a pool's checkout does).  Nothing
** running is no error, and nothing is remembered for a later statement.
** PostgreSQL sends a cancel request on a connection of its own
** (LOAM_E_CONNECTION_FAILED when that fails); SQLite interrupts in-process.
*/
LOAM_API int loam_conn_cancel (loam_conn *conn, loam_error *err /* OUT: may be NULL */);

/* }====================================================================== */


/* {======================================================================
** Pools
**
** A pool is the one handle that several threads share: each thread
** checks a connection out ('loam_pool_acquire'), uses it alone, and hands
** it back ('loam_pool_release').  Connections are opened when needed, up
** to 'size' kept and 'max_overflow' more under load (closed again when
** handed back with nobody waiting).  The pool never closes a connection
** that is checked out.  At checkout, a connection past its lifetime is
** replaced, and one that sat unused longer than 'health_check_ms' (or
** since the pool last met a dead connection) is first tried with a round
** trip and replaced when dead, so a server restart costs the application
** nothing but the statements that were running.  At release the
** connection's open statements are finalized and an open transaction is
** rolled back; a connection that is broken or cannot roll back is closed.
** A pool has no thread of its own: idle timeouts and leaks are looked at
** inside its calls.
** ======================================================================= */

typedef struct loam_pool loam_pool;

/* What a pool hook is told about. */
typedef enum loam_pool_event {
  LOAM_POOL_LEAK = 1,   /* a connection was held past 'leak_threshold_ms' (once per checkout) */
  LOAM_POOL_WARNING,    /* the pool's settings do not fit the server (max_connections) */
  LOAM_POOL_NESTED,     /* a thread holding a connection in a transaction asks for another */
  LOAM_POOL_REPLICA     /* a replica is skipped by reads, or used again (once per change) */
} loam_pool_event;

/*
** A pool hook.  'message' is borrowed for the call (it names, for a leak,
** how long the connection has been held and the tag it was acquired
** with).  It runs in whichever thread made the pool call that noticed, with
** no lock of the pool held, and must not unwind past that call.  The
** warning comes from inside 'loam_pool_open', while the process's list of
** pools is locked: a hook must not open or close a pool.
*/
typedef void (*loam_pool_hook) (void *ud, loam_pool_event ev, const char *message);

/*
** Pool options.  Start from LOAM_POOL_OPTS_INIT; -1 means the default.
** Times are milliseconds.  Out of range: LOAM_E_MISUSE naming the option.
*/
typedef struct loam_pool_opts {
  int size;                 /* connections kept; 1..1000; default 5 */
  int max_overflow;         /* more under load, closed when handed back; 0..1000; default 5 */
  int acquire_timeout_ms;   /* longest wait at 'loam_pool_acquire'; 0: do not wait; default 30000;
                               LOAM_FOREVER waits without limit */
  int max_lifetime_ms;      /* a connection is replaced after this, less a random tenth
                               (so they do not all go at once); default 1800000; LOAM_FOREVER */
  int idle_timeout_ms;      /* an idle connection unused this long is closed; default 600000;
                               LOAM_FOREVER: never */
  int health_check_ms;      /* a connection idle longer is tried before checkout; 0: always;
                               default 1000 */
  int leak_threshold_ms;    /* held longer: reported once (LOAM_POOL_LEAK); default 60000;
                               LOAM_FOREVER: never */
  loam_conn_opts conn;      /* options of every connection */
  loam_pool_hook hook;      /* leaks and warnings; NULL: written to stderr */
  void *hook_ud;
  int processes;            /* processes that each open such a pool, for the max_connections
                               warning; 1..10000; default 1 */
  /* Read replicas ('loam_pool_acquire_read'), PostgreSQL only. */
  const char *const *replicas;   /* 'nreplicas' URLs of streaming replicas (copied); NULL: none */
  int nreplicas;            /* 0..16 */
  int max_lag_ms;           /* a replica replaying further behind is skipped; 0..86400000;
                               default 1000 */
  int replica_check_ms;     /* each replica is checked at most this often, when a read wants
                               it; 0: before every such read; 0..86400000; default 1000 */
} loam_pool_opts;

#define LOAM_POOL_OPTS_INIT { -1, -1, -1, -1, -1, -1, -1, LOAM_CONN_OPTS_INIT, NULL, NULL, -1, \
                              NULL, 0, -1, -1 }

/*
** Opens the pool for 'url', or finds the one this process already has:
** one pool per process per URL (the same text).  Opening an open URL
** again returns the same handle when the options are the same (with
** their defaults filled in; the hook is not compared and stays the
** first one's), and LOAM_E_MISUSE naming every option that differs
** otherwise.  A new pool opens one connection at once, so a bad URL,
** server or password fails here, with that connection's error; on
** PostgreSQL it then compares processes x (size + max_overflow) with what
** the server takes (max_connections less superuser_reserved_connections) and warns
** through the hook (LOAM_POOL_WARNING) when they would not fit.  An
** in-memory SQLite database is private to one connection: a pool over
** one must have size 1 and no overflow.  Each successful open is matched
** by one 'loam_pool_close'; '*out' is NULL on failure.
*/
LOAM_API int loam_pool_open (const char *url,
                             const loam_pool_opts *opts,   /* may be NULL */
                             loam_pool **out,              /* OUT */
                             loam_error *err);             /* OUT: may be NULL */

/*
** Gives up one open of 'pool'.  The last one closes it: idle connections
** are closed at once, threads waiting in 'loam_pool_acquire' fail with
** LOAM_E_MISUSE, and connections still checked out are closed as they
** are released; the memory goes with the last of them.  After it, the
** handle may be used only to release those.  NULL is fine.
*/
LOAM_API void loam_pool_close (loam_pool *pool);

/*
** Checks a connection out for the caller's thread alone.  'tag' (may be
** NULL; copied, up to 95 bytes) says where: the Lua layer passes
** "file:line", a C program its function; it appears in timeout errors
** and leak reports.  Waits up to the acquire timeout for a connection;
** past it, LOAM_E_POOL_TIMEOUT with a message that says the pool is
** exhausted: its size, how many are in use and waiting, and for each
** checked-out connection its age, its tag and, on PostgreSQL, its
** server state and statement (from pg_stat_activity, read on one
** monitoring connection that the pool opens for this, outside its size,
** with short timeouts of its own).  A failure to open a new connection
** is that connection's error.  '*out' stays the pool's: hand it back with
** 'loam_pool_release' (or 'loam_pool_abandon'), never 'loam_conn_close'.
** A thread that asks while it holds a connection of the same pool inside
** a transaction is told, through the hook (LOAM_POOL_NESTED), before any
** wait: once the pool is exhausted it would wait for itself.
*/
LOAM_API int loam_pool_acquire (loam_pool *pool,
                                const char *tag,          /* may be NULL */
                                loam_conn **out,          /* OUT */
                                loam_error *err);         /* OUT: may be NULL */

/*
** Hands 'conn' back (see above for what is reset).  LOAM_E_MISUSE when it
** is not checked out of 'pool' (released twice, or another pool's); the
** connection is then left alone.  A connection that could not be reset
** is closed, which is no error of the release.
*/
LOAM_API int loam_pool_release (loam_pool *pool, loam_conn *conn, loam_error *err);

/*
** 'loam_pool_release' for a checkout its holder lost without handing it
** back (a Lua connection the garbage collector found): released the same
** way, then counted and reported as a leak (LOAM_POOL_LEAK, naming its
** tag and how long it was held) unless it was reported already.
*/
LOAM_API int loam_pool_abandon (loam_pool *pool, loam_conn *conn, loam_error *err);

/*
** One more open of 'pool', matched by one more 'loam_pool_close': for a
** holder of a borrowed pool (a routing's replica) that keeps it longer.
** Nothing on a closed pool or NULL.
*/
LOAM_API void loam_pool_retain (loam_pool *pool);

/*
** Replaces the hook ('fn' NULL: stderr again), the pool's and its
** replicas' pools' (those that report to the hook they were opened with);
** 'ud' must outlive the pool or the next call.
*/
LOAM_API void loam_pool_set_hook (loam_pool *pool, loam_pool_hook fn, void *ud);

/*
** A snapshot of a pool.  The counters grow from the pool's opening on;
** wait times are those of every successful or timed-out acquire, in
** nanoseconds, the percentiles read from a histogram (to within 1/8).
*/
typedef struct loam_pool_metrics {
  int size, max_overflow;
  int open;             /* connections open, checked out or idle */
  int in_use;           /* checked out, or being opened or handed back */
  int idle;
  int waiting;          /* threads waiting in 'loam_pool_acquire' */
  int64_t acquires;     /* successful checkouts */
  int64_t timeouts;     /* acquires that failed with LOAM_E_POOL_TIMEOUT */
  int64_t leaks;        /* checkouts reported as leaks */
  int64_t opened;       /* connections opened */
  int64_t discarded;    /* closed because they were dead, broken or could not be reset */
  int64_t wait_max_ns, wait_p50_ns, wait_p90_ns, wait_p99_ns;
  int replicas;         /* the replicas of 'loam_pool_opts' ('loam_pool_replica_stats') */
  int64_t primary_reads;   /* 'loam_pool_acquire_read' calls answered by the primary */
} loam_pool_metrics;

/* Writes the snapshot of 'pool' into '*out' (all zero for NULL). */
LOAM_API void loam_pool_stats (loam_pool *pool, loam_pool_metrics *out /* OUT */);

/* The backend of the pool's connections, known from its opening on (0 for NULL). */
LOAM_API loam_backend loam_pool_backend (const loam_pool *pool);

/*
** Read replicas.  A pool opened with 'replicas' (PostgreSQL streaming
** replicas of its server) serves reads from them: 'loam_pool_acquire_read'
** checks out a connection of a replica that is usable and has replayed
** what the caller wrote, the replicas taking turns, or else one of the
** primary.  Each replica has a pool of its own, the process's pool for
** its URL, opened with the primary pool's options.  A replica is usable
** when its last check (one short query, at most every
** 'replica_check_ms', run by a read that wants it) found it in recovery,
** streaming from its primary, and no more than 'max_lag_ms' behind: with
** WAL received and not yet replayed, its lag is the age of the last
** transaction it replayed (by its clock, the primary's stamp) but no
** more than the time since a check found nothing waiting, a lag not
** known when neither is (over any limit); with nothing waiting, 0.  One that cannot be reached, is no standby,
** does not stream from the primary or lags is skipped, reported
** once through the hook (LOAM_POOL_REPLICA), and used again, reported
** again, once a check passes.  A read never waits for a replica's pool:
** one with every connection out is passed over for the next replica or
** the primary.  A check never waits for the replica's
** pool: with every connection out serving reads, the last check stands.  A replica that is down at
** 'loam_pool_open' is only skipped; a malformed replica URL is
** LOAM_E_INVALID_URL, an SQLite replica or primary LOAM_E_MISUSE, and
** the primary pool's options refused by a replica's pool (another open of
** that URL with other options) LOAM_E_MISUSE, with nothing left open.
**
** Read-your-writes.  A caller keeps a token, its own (a request, a
** session, a thread), starting at LOAM_READ_TOKEN_INIT, and passes it to
** both acquires.  A checkout of 'loam_pool_acquire_write' that ran a
** statement that may have written ('loam_conn_writes': raw or rendered,
** prepared or not, COPY, a transaction) marks the token when it is
** released, or at a read with the token while it is still held (of the
** same pool); the next read with the token asks the primary for its WAL
** insert position (one round trip, on the primary connection it then
** returns when no replica has it), and reads go to a replica only once it
** has replayed up to there, compared with the primary's own WAL page and
** segment sizes.  A token belongs to one caller at a time, like a
** checkout, and must stay valid until the checkouts made with it are
** released.
** ======================================================================= */

typedef struct loam_read_token {
  uint64_t lsn;         /* the primary's WAL position the holder's reads must see; 0: none */
  int wrote;            /* written since 'lsn' was read: the next read asks the primary */
} loam_read_token;

#define LOAM_READ_TOKEN_INIT { 0, 0 }

/*
** 'loam_pool_acquire' (a connection of the primary) that marks 'tok' (may
** be NULL) at release when the checkout wrote.
*/
LOAM_API int loam_pool_acquire_write (loam_pool *pool,
                                      loam_read_token *tok,     /* may be NULL */
                                      const char *tag,          /* may be NULL */
                                      loam_conn **out,          /* OUT */
                                      loam_error *err);         /* OUT: may be NULL */

/*
** A connection for reads outside a transaction: a replica's (see above),
** or the primary's, checked out as 'loam_pool_acquire_write' does, when
** no replica is usable and caught up with 'tok' (NULL: no writes to
** wait for), or the pool has no replicas.  Hand it back with
** 'loam_pool_release' (or 'loam_pool_abandon') on this pool, whichever
** server it came from.  The errors are those of 'loam_pool_acquire' on
** the primary; a replica that fails is skipped for the primary instead.
*/
LOAM_API int loam_pool_acquire_read (loam_pool *pool,
                                     loam_read_token *tok,      /* may be NULL */
                                     const char *tag,           /* may be NULL */
                                     loam_conn **out,           /* OUT */
                                     loam_error *err);          /* OUT: may be NULL */

/* What 'loam_pool_replica_stats' tells of one replica. */
typedef struct loam_replica_metrics {
  int healthy;          /* reads may use it (its last check passed) */
  int64_t lag_ms;       /* its replay lag at the last check that reached it; -1: not known */
  int64_t reads;        /* 'loam_pool_acquire_read' calls it answered */
  char error[256];      /* why it is skipped ("" when healthy), cut to fit */
  loam_pool_metrics pool;   /* its pool's ('open' 0 while it was never reached) */
} loam_replica_metrics;

/*
** Writes the state of replica 'i' (0-based, in the order of the options)
** into '*out'; LOAM_E_MISUSE when 'pool' has no such replica.
*/
LOAM_API int loam_pool_replica_stats (loam_pool *pool, int i,
                                      loam_replica_metrics *out,   /* OUT */
                                      loam_error *err);            /* OUT: may be NULL */

/*
** The routing itself, for a host that keeps its own connection to the
** primary (the Lua Database does, with or without a pool): the replicas'
** pools, their checks and reports, and the choice of a read's server,
** without checking anything out.  A pool with 'replicas' runs on one of
** these.  It is shared by threads like a pool.
*/
typedef struct loam_replicas loam_replicas;

typedef struct loam_replicas_opts {
  const char *const *urls;  /* 'n' PostgreSQL URLs of streaming replicas (copied) */
  int n;                    /* 1..16 */
  int max_lag_ms;           /* as in 'loam_pool_opts'; -1: 1000 */
  int check_ms;             /* 'replica_check_ms' of 'loam_pool_opts'; -1: 1000 */
  const loam_pool_opts *pool;   /* the options of each replica's pool (the process's pool
                                   for its URL; its replica fields are not used); NULL: the
                                   defaults */
  loam_pool_hook hook;      /* LOAM_POOL_REPLICA reports; NULL: written to stderr */
  void *hook_ud;
  int own_pools;            /* 1: each replica's pool is the routing's own, which no
                               'loam_pool_open' finds (and so no other options clash
                               with); 0: the process's pool for its URL */
} loam_replicas_opts;

#define LOAM_REPLICAS_OPTS_INIT { NULL, 0, -1, -1, NULL, NULL, NULL, 0 }

/*
** Opens the routing and checks each replica once (see the pool's read
** replicas above for what is an error and what is only skipped); '*out'
** is freed with 'loam_replicas_close', and is NULL on failure.  The hook
** is called from inside the routing's calls, in the calling thread, with
** no lock held.
*/
LOAM_API int loam_replicas_open (const loam_replicas_opts *opts,
                                 loam_replicas **out,          /* OUT */
                                 loam_error *err);             /* OUT: may be NULL */

/*
** The server a read takes now: '*replica' is the index (0-based) of a
** usable replica that has replayed what 'tok' needs, the replicas taking
** turns, or -1 for the primary.  With 'tok->wrote' the primary's WAL
** position is read first on 'primary' (a connection to the primary the
** caller holds, outside a transaction; needed only then), without its
** trace hook.  Each answer counts as one read of that server.
*/
LOAM_API int loam_replicas_route (loam_replicas *rs,
                                  loam_conn *primary,         /* may be NULL unless tok->wrote */
                                  loam_read_token *tok,       /* may be NULL */
                                  int *replica,               /* OUT */
                                  loam_error *err);           /* OUT: may be NULL */

/*
** The pool of replica 'i', borrowed: valid until 'loam_replicas_close';
** NULL while no check has reached the server.  A host that keeps it
** longer takes an open of its own ('loam_pool_retain').
*/
LOAM_API loam_pool *loam_replicas_pool (loam_replicas *rs, int i);

/* 'loam_pool_replica_stats' for the routing's replica 'i'. */
LOAM_API int loam_replicas_stats (loam_replicas *rs, int i,
                                  loam_replica_metrics *out,  /* OUT */
                                  loam_error *err);           /* OUT: may be NULL */

/* The reads the routing answered with the primary (0 for NULL). */
LOAM_API int64_t loam_replicas_primary_reads (loam_replicas *rs);

/* Closes the replicas' pools (each one open of the process's pool) and frees 'rs'.  NULL is fine. */
LOAM_API void loam_replicas_close (loam_replicas *rs);

/* }====================================================================== */


/* {======================================================================
** Statements and results
** ======================================================================= */

typedef struct loam_stmt loam_stmt;

/* Flags for 'loam_query'. */
#define LOAM_STREAM 1   /* fetch rows one at a time (PostgreSQL single-row mode) */

/*
** Runs 'sql' with 'nparams' bound values.  Placeholders are '?' (by
** position) or numbered, '$n' or '?n' (the n-th value), on both backends;
** '?' mixed with numbered ones, a number left out, or a count other than
** 'nparams' is LOAM_E_MISUSE.  '?' inside literals, quoted names and
** comments is text.  '??' stands for the literal '?' operator on
** PostgreSQL (LOAM_E_MISUSE on SQLite).  'sql' must hold one statement.
** It is a NUL-terminated C string: text after an embedded NUL byte is
** never seen, so callers holding SQL with a length (a Lua string, say)
** must refuse text that contains one, as the Lua binding does.  Rows are
** then read with 'loam_step'.
**
** On PostgreSQL an integer value takes the parameter type the statement
** wants (int2, int4, int8, numeric, oid), learned once per statement shape
** by a Parse and Describe with the integers untyped; where the statement
** says nothing ('SELECT ?') or the value does not fit what it wants, the
** integer is bound as int8.
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

/*
** The number of parameters 'sql' takes on 'backend', read as 'loam_query'
** reads it, into '*n'; nothing is prepared or sent.  LOAM_E_MISUSE where
** that reading refuses the text (mixed placeholder styles, a number left
** out, a second statement, '??' on SQLite), a NULL 'sql' or 'n', or an
** unknown backend.  A caller can compare it with the parameters it passed
** to tell, after 'loam_query' failed, whether the count was the cause.
*/
LOAM_API int loam_sql_param_count (loam_backend backend,
                                   const char *sql,
                                   int *n,                /* OUT */
                                   loam_error *err);      /* OUT: may be NULL */

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


/* {======================================================================
** Bulk inserts (bulk.c)
** ======================================================================= */

/*
** Inserts 'nrows' rows into 'table': 'vals' holds 'nrows' * 'ncols'
** values, row after row, one per column of 'columns' in order (LOAM_NULL
** is NULL).  The rows go in as the INSERT that the builder renders for
** them would put them ('loam_qb_insert' and 'loam_qb_render'), whole or
** not at all, with no RETURNING:
**   SQLite      multi-row INSERT ... VALUES in chunks of as many rows as
**               the parameter limit (32766) allows; the full chunks share
**               one text and so one prepared statement
**   PostgreSQL  from 64 rows on, COPY "table" ("c1", ...) FROM STDIN in
**               text format, one statement, when every value goes into
**               its column as the INSERT binds it: text and NULL into any
**               column, booleans into boolean, integers into integer,
**               numeric and float8 columns, doubles into float8, blobs
**               into bytea (the column types are read once per table and
**               columns from the server); otherwise, and for fewer rows,
**               multi-row VALUES in chunks under 65535 parameters
** Nothing is sent when an argument is wrong (LOAM_E_MISUSE: a NULL table
** or column, no column, a bad identifier, a value of unknown type) or a
** value cannot be stored (LOAM_E_DATA_ERROR naming its row and column:
** NaN on SQLite, text with a NUL byte on PostgreSQL).  A constraint
** violation or any other failure of the database comes with the code,
** SQLSTATE, constraint and table that the INSERT would report.  Several
** statements run in one transaction level ('loam_tx_begin': a savepoint
** inside an open transaction), rolled back when one fails; COPY and a
** single INSERT are one statement each, which applies whole or not at
** all, and on PostgreSQL a failure aborts an enclosing transaction as
** any failed statement does.  Every statement passes through the
** instrumentation (the COPY as one statement with no parameters).
** '*inserted' (may be NULL) receives the rows inserted; 0 rows send
** nothing.  LOAM_E_MISUSE while the connection streams a result.
*/
LOAM_API int loam_insert_rows (loam_conn *conn,
                               const char *table,
                               const char *const *columns,  /* 'ncols' names */
                               int ncols,
                               const loam_value *vals,       /* nrows * ncols; may be NULL when
                                                                nrows is 0 */
                               int nrows,
                               int64_t *inserted,            /* OUT: may be NULL */
                               loam_error *err);             /* OUT: may be NULL */

/* }====================================================================== */


/* {======================================================================
** Schema introspection (schema.c)
**
** What the database holds, read from its catalogs with the catalog
** queries of each backend's dialect, so that no layer above the core
** writes catalog SQL of its own.
** ======================================================================= */

/*
** The table in which migrations record themselves.  Its presence means
** the schema belongs to migrations: creating tables straight from models
** is refused there.
*/
#define LOAM_MIGRATIONS_TABLE "loam_migrations"

/*
** Whether a table named 'name' (exactly, as stored: no quoting, no case
** folding) exists where an unqualified name would be created: on SQLite
** in the main database, on PostgreSQL in the connection's current schema
** (the first existing schema of its search_path, 'current_schema()').
** Views and temporary tables do not count, on either backend.  On success '*exists' receives
** 1 or 0.  LOAM_E_MISUSE for a closed (NULL) connection, a NULL name or
** a NULL 'exists'; database failures as 'loam_query' reports them.  The
** query runs through 'loam_query', so instrumentation sees it.
*/
LOAM_API int loam_table_exists (loam_conn *conn,
                                const char *name,
                                int *exists,              /* OUT */
                                loam_error *err);         /* OUT: may be NULL */

/*
** Whether a numeric column of 'backend' keeps every digit of a decimal:
** 1 on PostgreSQL (numeric is arbitrary precision); 0 on SQLite, where a
** NUMERIC column stores an integer or a double, and for an unknown
** backend.  A caller sending numeric keys can send their decimal text
** where it is 1 (with the column type, see 'key_coltypes') and numbers
** otherwise, which is what the column holds there.
*/
LOAM_API int loam_exact_numeric (loam_backend backend);

/* }====================================================================== */


/* {======================================================================
** Transactions (tx.c)
**
** Short, explicit transactions that nest.  Each 'loam_tx_begin' opens a
** level that exactly one 'loam_tx_commit' or 'loam_tx_rollback' ends,
** innermost first.  A level begins the transaction when the connection is
** not inside one ('BEGIN IMMEDIATE' on SQLite, so the write lock is taken
** up front and busy_timeout applies instead of a deadlock on upgrade;
** 'BEGIN' on PostgreSQL); otherwise, inside an outer level or a
** transaction the caller opened with raw SQL, it sets the savepoint
** "loam_sp_<depth>" (depth counted from 1), which its commit releases and
** its rollback undoes, keeping the outer work.  The levels belong to the
** connection: a raw COMMIT or ROLLBACK does not end them, and
** 'loam_conn_close' with levels open just closes (the backend rolls the
** transaction back).  At most LOAM_TX_MAX_DEPTH levels may be open.
**
** Statements never run in autocommit by surprise while a level is open:
** a statement that ends the transaction under the levels (a raw COMMIT,
** ROLLBACK or END; what it ended stays ended) fails with LOAM_E_MISUSE
** once it ran, and so does every statement after it, before it is sent,
** until the levels are rolled back ('loam_tx_commit' refuses).  The same
** holds when the backend ended the transaction itself (SQLite rolls back
** on some errors).
**
** Each statement goes through 'loam_exec', so the instrumentation counts
** and reports it.  A statement streaming on a PostgreSQL connection must
** be closed before a level ends (the wire is its until then).
** ======================================================================= */

#define LOAM_TX_MAX_DEPTH 32

/*
** Opens a level.  LOAM_E_MISUSE beyond LOAM_TX_MAX_DEPTH levels; the
** backend's error when BEGIN or SAVEPOINT fails (on PostgreSQL a failed
** transaction refuses new savepoints).  No level is open after a failure.
*/
LOAM_API int loam_tx_begin (loam_conn *conn, loam_error *err);

/*
** Ends the innermost level keeping its work: COMMIT, or RELEASE SAVEPOINT.
** When that fails, or the transaction already failed on PostgreSQL
** (LOAM_E_TRANSACTION_ABORTED: COMMIT there would roll back and report
** success), or ended under the level (LOAM_E_MISUSE), the level stays
** open and the caller ends it with 'loam_tx_rollback'.  LOAM_E_MISUSE
** when no level is open.
*/
LOAM_API int loam_tx_commit (loam_conn *conn, loam_error *err);

/*
** Ends the innermost level undoing its work: ROLLBACK, or ROLLBACK TO
** SAVEPOINT then RELEASE SAVEPOINT (both work in a failed PostgreSQL
** transaction).  When the transaction already ended under the level (a
** failed COMMIT on PostgreSQL, a raw ROLLBACK) nothing is sent.  The level
** ends even when a statement fails, so the levels never fall out of step
** with the caller's nesting.  LOAM_E_MISUSE when no level is open.
*/
LOAM_API int loam_tx_rollback (loam_conn *conn, loam_error *err);

/* What 'loam_conn_tx_status' answers. */
typedef enum loam_tx_status {
  LOAM_TX_IDLE = 0,     /* no transaction open (or no connection) */
  LOAM_TX_OPEN,         /* inside a transaction that can go on */
  LOAM_TX_FAILED        /* PostgreSQL: a statement failed; only a rollback is accepted */
} loam_tx_status;

/*
** Whether 'conn' is inside a transaction, as its driver knows it without a
** round trip; transactions begun by raw SQL count too.
*/
LOAM_API loam_tx_status loam_conn_tx_status (loam_conn *conn);


/*
** Isolation levels.  PostgreSQL takes each ('BEGIN ISOLATION LEVEL ...').
** SQLite runs every transaction SERIALIZABLE (one writer at a time, and a
** reader sees one snapshot): it honours LOAM_SERIALIZABLE and the default,
** and refuses the weaker two (LOAM_E_MISUSE) rather than pretend.
*/
typedef enum loam_isolation {
  LOAM_ISOLATION_DEFAULT = 0,   /* the backend's: READ COMMITTED, SQLite's SERIALIZABLE */
  LOAM_READ_COMMITTED,
  LOAM_REPEATABLE_READ,
  LOAM_SERIALIZABLE
} loam_isolation;

/* Where the reports of a transaction go: 'message' is borrowed for the call. */
typedef void (*loam_tx_log_fn) (void *ud, const char *message);

/*
** Options of an outermost transaction.  Start from LOAM_TX_OPTS_INIT.
**   - 'read_only': PostgreSQL 'BEGIN READ ONLY'; SQLite begins with a
**     plain (deferred) BEGIN, so it takes no write lock, and sets 'PRAGMA
**     query_only' for the transaction's length (turned off when it ends).
**     A write then fails with LOAM_E_READ_ONLY on both.
**   - 'tag' says where the transaction started (the Lua layer passes
**     "file:line", a C program its function); copied, up to 95 bytes.
**   - 'warn_after_ms' (0: never): a transaction open longer is reported
**     once, through 'log' (NULL: a line on stderr), at its first
**     statement past that time or at its end, naming its tag.
**   - 'retry_*' are read by 'loam_tx_run' only: up to 'retry_attempts'
**     runs in all (0 or 1: one), waiting between them 'retry_base_ms'
**     (-1: 10) doubled at each retry, at most 'retry_max_ms' (-1: 1000),
**     less a random part of up to half (so that two retrying transactions
**     part ways).
*/
typedef struct loam_tx_opts {
  int isolation;             /* loam_isolation */
  int read_only;
  const char *tag;           /* may be NULL */
  int warn_after_ms;
  loam_tx_log_fn log;        /* may be NULL */
  void *log_ud;
  int retry_attempts;        /* 0..1000 */
  int retry_base_ms;         /* -1, or 0..60000 */
  int retry_max_ms;          /* -1, or 0..600000 and at least 'retry_base_ms' */
} loam_tx_opts;

#define LOAM_TX_OPTS_INIT { LOAM_ISOLATION_DEFAULT, 0, NULL, 0, NULL, NULL, 0, -1, -1 }

/*
** 'loam_tx_begin' with options ('opts' NULL: none).  Isolation and
** read-only belong to a transaction, not to a savepoint: asking for them
** when the level would be a savepoint (a level is open, or the caller
** began a transaction with raw SQL) is LOAM_E_MISUSE, and so are a level
** out of range, a weaker level on SQLite, or retry options here.  Nothing
** is sent then.  The tag, the report and the hooks are those of the
** outermost level; an inner level's 'tag' is ignored.
*/
LOAM_API int loam_tx_begin_with (loam_conn *conn, const loam_tx_opts *opts, loam_error *err);

/* How a transaction ended, for a hook of 'loam_tx_on_end'. */
typedef enum loam_tx_outcome {
  LOAM_TX_COMMITTED = 1,     /* the outermost level committed */
  LOAM_TX_ROLLED_BACK        /* the hook's level, or one around it, was undone */
} loam_tx_outcome;

/*
** A hook of 'loam_tx_on_end'.  It runs after the statement that ended the
** transaction or the savepoint, inside the 'loam_tx_commit',
** 'loam_tx_rollback', 'loam_conn_close' or pool release that ended it,
** with no level of that transaction open any more.  It may run statements
** on 'conn' (and open a new transaction there), except when called from
** 'loam_conn_close' or a pool's reset, and must not unwind past that call.
** It may close 'conn': the hooks still registered are then called with
** LOAM_TX_ROLLED_BACK from that close, and the call that ran the hook
** returns without touching 'conn' again.
*/
typedef void (*loam_tx_end_fn) (void *ud, loam_conn *conn, loam_tx_outcome outcome);

/*
** Registers 'fn' at the innermost open level: it is called exactly once,
** with LOAM_TX_COMMITTED after the outermost level committed, or with
** LOAM_TX_ROLLED_BACK right after its level (or any around it) was rolled
** back, or the connection closed or was reset with it open.  A savepoint
** that commits hands its hooks to the level around it.  Hooks run in the
** order they were registered.  'ud' is the caller's, passed back
** untouched (free it in the hook).  LOAM_E_MISUSE when no level is open,
** or when the outermost level is a savepoint inside a transaction begun
** with raw SQL (loam cannot tell when that one commits); LOAM_E_NOMEM.
** 'fn' is not called when registering fails.
*/
LOAM_API int loam_tx_on_end (loam_conn *conn, loam_tx_end_fn fn, void *ud, loam_error *err);

/*
** The body of 'loam_tx_run': the work of one attempt, on 'conn'.  It
** returns LOAM_OK to commit, or LOAM_ERROR with 'err' set to roll back:
** the code in 'err' decides whether to try again.
*/
typedef int (*loam_tx_body) (void *ud, loam_conn *conn, loam_error *err);

/*
** Runs 'body' in an outermost transaction ('loam_tx_begin_with') and
** commits it.  When the transaction fails with LOAM_E_SERIALIZATION_FAILURE,
** LOAM_E_DEADLOCK or LOAM_E_BUSY (at BEGIN, in 'body', or at COMMIT) and
** 'opts' allows more attempts, it is rolled back, the caller's thread
** sleeps (see 'loam_tx_opts') and the whole body runs again; any other
** failure is rolled back and returned at once.  After the last attempt
** the error is that attempt's, its message ending in "(gave up after N
** attempts)".  '*attempts' (may be NULL) receives the runs made.
** LOAM_E_MISUSE, with nothing sent, for bad options, or for retries
** inside an open level (a savepoint cannot undo what made it fail);
** without them, inside a level the body runs in a savepoint.  A body
** that closes 'conn' ends the run: its error, or LOAM_E_MISUSE saying
** nothing was committed, and 'conn' is not touched again.
*/
LOAM_API int loam_tx_run (loam_conn *conn, const loam_tx_opts *opts,
                          loam_tx_body body, void *ud,
                          int *attempts,             /* OUT: may be NULL */
                          loam_error *err);          /* OUT: may be NULL */

/* }====================================================================== */

/* {======================================================================
** Query builder (builder.c, render.c)
**
** SELECT, INSERT, UPDATE and DELETE statements are built as a tree in a
** builder and rendered into SQL text plus bound parameters for a backend.
** Values never enter the text: each one becomes a placeholder ('?' on
** SQLite, '$1'..'$n' on PostgreSQL, numbered in text order).  Identifiers
** are validated (non-empty, no NUL, at most 63 bytes) and always quoted,
** with embedded '"' doubled.  The text depends only on the shape of the
** tree, never on its values, so the statement cache reuses one prepared
** statement per shape.
**
** Ownership.  Every node ('loam_expr', 'loam_qstmt') lives in the memory
** of its builder ('loam_qb') and is freed with it by 'loam_qb_free'; no
** node is freed on its own.  Nodes of one builder must not be used with
** another.  Strings and values passed in are copied: the caller's memory
** is borrowed for the duration of the call only.  Nodes are immutable
** once made, except statements, which gain clauses through the setters.
**
** Errors.  Constructors and setters never report failure themselves: on
** bad input or out of memory they record the first error in the builder
** (later ones are dropped) and return NULL; a NULL argument where a node
** is expected is ignored silently once an error was recorded, so a whole
** tree can be built without checks and 'loam_qb_render' reports the first
** problem, with a message naming it (the operator, the identifier, the
** row...).  The codes are LOAM_E_MISUSE (bad shape or name), LOAM_E_NOMEM
** and LOAM_E_DATA_ERROR (a value the backend cannot take, found while
** rendering).  Functions accept a NULL builder or statement and do
** nothing then ('loam_qb_new' returns NULL only when memory ran out).
**
** A builder and its nodes must be used by one thread at a time.  A
** result ('loam_rendered') is independent of its builder and immutable.
**
** 'loam_rendered' is loam's one rendered form, for queries and DDL alike:
** one or several statements, each with its text, its parameters and its
** kind.  'loam_qb_render' and the 'loam_render_*' DDL functions hand the
** caller a new one, which owns all its text and values and is freed, whole,
** with 'loam_rendered_free'.  The drivers act on the kind (whether an INSERT reports a rowid,
** whether a statement drops PostgreSQL's prepared statements), so a
** rendered statement is best run with 'loam_query_rendered' or
** 'loam_exec_rendered'.  Raw SQL given to 'loam_query' or 'loam_exec' is
** classified once, there, from its first keyword.
** ======================================================================= */

typedef struct loam_qb loam_qb;         /* a builder: the memory of one tree */
typedef struct loam_expr loam_expr;     /* an expression node */
typedef struct loam_qstmt loam_qstmt;   /* a statement node */
typedef struct loam_rendered loam_rendered;   /* rendered statements and their parameters */

/* What a statement does; the drivers decide on it instead of reading SQL text. */
typedef enum loam_sql_kind {
  LOAM_SQL_UNKNOWN = 0,      /* raw SQL of no kind below */
  LOAM_SQL_SELECT,
  LOAM_SQL_INSERT,           /* also SQLite's REPLACE; reports a rowid on SQLite */
  LOAM_SQL_UPDATE,
  LOAM_SQL_DELETE,
  LOAM_SQL_DDL,              /* CREATE, DROP, ALTER */
  LOAM_SQL_TX,               /* BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE, ... */
  LOAM_SQL_RESET             /* DISCARD, DEALLOCATE: drop the session's prepared statements */
} loam_sql_kind;

/* A new empty builder, freed with 'loam_qb_free'; NULL when out of memory. */
LOAM_API loam_qb *loam_qb_new (void);

/* Frees the builder and every node made in it.  NULL is fine. */
LOAM_API void loam_qb_free (loam_qb *qb);


/*
** Expressions.  Each returns a node owned by 'qb', or NULL after an error
** (recorded in 'qb').  Rendering is shown for SQLite / PostgreSQL.
*/

/* A column: "name", or "table"."name" when 'table' is not NULL. */
LOAM_API loam_expr *loam_qb_col (loam_qb *qb, const char *table, const char *name);

/* '*', or "table".* when 'table' is not NULL. */
LOAM_API loam_expr *loam_qb_star (loam_qb *qb, const char *table);

/*
** A bound value (text and blob bytes are copied).  LOAM_NULL binds NULL.
** A NaN or infinite double is refused on SQLite (LOAM_E_DATA_ERROR at
** render: SQLite would store NULL), bound as such on PostgreSQL.
*/
LOAM_API loam_expr *loam_qb_val (loam_qb *qb, loam_value v);

/*
** A raw SQL fragment from the program (never from end users), inserted
** as is except for its placeholders: each '?' is one of the 'nparams'
** values (copied), renumbered in place for PostgreSQL.  '??' stays in the
** text: it is the literal '?' operator that 'loam_query' turns into '?'
** on PostgreSQL (SQLite has no such operator: refused there at render).
** As an operand (of AND, OR, NOT, a comparison; a WHERE, HAVING or ON
** condition) the fragment is put in parentheses, so 'a OR b' cannot mix
** with the operators around it; in result columns, GROUP BY, ORDER BY
** and SET values it stays bare.  The fragment is checked when made: placeholders other than '?', a '?'
** inside a string literal, quoted name or comment (ambiguous: bind the
** value instead), a second statement after ';', or a parameter count
** other than 'nparams' are LOAM_E_MISUSE.  'sql' is NUL-terminated
** (see 'loam_query' on text with an embedded NUL byte).
*/
LOAM_API loam_expr *loam_qb_raw (loam_qb *qb, const char *sql,
                                 const loam_value *params,   /* may be NULL when nparams is 0 */
                                 int nparams);

/*
** (l OP r).  'op' is one of "=", "<>", "<", "<=", ">", ">=", "LIKE",
** "ILIKE", "NOT LIKE", "NOT ILIKE"; anything else is LOAM_E_MISUSE.
** SQLite renders ILIKE as LIKE, which is case-insensitive for ASCII there.
*/
LOAM_API loam_expr *loam_qb_op (loam_qb *qb, const char *op, loam_expr *l, loam_expr *r);

/*
** (E1 AND E2 ...) / (E1 OR E2 ...) of 'n' items (the array is copied).
** One item renders as itself; none renders as 1 = 1 (AND) or 1 = 0 (OR).
*/
LOAM_API loam_expr *loam_qb_and (loam_qb *qb, loam_expr *const *items, int n);
LOAM_API loam_expr *loam_qb_or (loam_qb *qb, loam_expr *const *items, int n);

/* (NOT e) */
LOAM_API loam_expr *loam_qb_not (loam_qb *qb, loam_expr *e);

/* (e IS NULL), or (e IS NOT NULL) when 'negate' is non-zero. */
LOAM_API loam_expr *loam_qb_is_null (loam_qb *qb, loam_expr *e, int negate);

/* (e BETWEEN lo AND hi), or NOT BETWEEN when 'negate' is non-zero. */
LOAM_API loam_expr *loam_qb_between (loam_qb *qb, loam_expr *e, loam_expr *lo, loam_expr *hi,
                                     int negate);

/*
** e IN (n values), bound as ONE parameter whatever 'n', so a query keeps
** one text (and one prepared statement) for lists of every length:
**   SQLite      (e IN (SELECT k1 FROM loam_keys(?)))              a blob in loam's own exact
**                                                                 form, read by the table-valued
**                                                                 function every loam SQLite
**                                                                 connection registers
**   PostgreSQL  (e IN (SELECT * FROM unnest($n::T[])))            an array literal text
** negated: NOT IN.  PostgreSQL hashes the list (a semi-join for IN, a
** hashed subplan for NOT IN while the list fits in work_mem), where
** '= ANY($n)' would compare each row with the whole array (unless an index
** serves it: see 'loam_qb_in_indexed').  T follows the
** values: int8, float8 (doubles, or integers mixed with doubles), text or
** bool; any other mix is LOAM_E_MISUSE, and so are NULL values (NULL never
** matches IN: test it with 'loam_qb_is_null'; it also keeps NOT IN exact)
** and blobs.  SQLite gets booleans as 1/0.  An empty list renders (1 = 0),
** negated (1 = 1), with no parameter.  The values (and their text) are
** copied.
*/
LOAM_API loam_expr *loam_qb_in_list (loam_qb *qb, loam_expr *e,
                                     const loam_value *vals,   /* may be NULL when n is 0 */
                                     int n, int negate);

/*
** Tells the IN list 'in' (made by 'loam_qb_in_list') the loam type of the
** column it is compared with ('loam_col_type', or 0 for none), and returns
** it.  On PostgreSQL a list of text compared with a date, timestamp or
** numeric column is then bound as that type's array (date[], timestamptz[],
** numeric[]), since text does not compare with those types, while one
** untyped parameter does: the list matches what equality matches.  SQLite
** needs no type.  Anything but an IN list is LOAM_E_MISUSE.
*/
LOAM_API loam_expr *loam_qb_in_coltype (loam_qb *qb, loam_expr *in, int coltype);

/*
** Tells the IN list or tuples 'in' (made by 'loam_qb_in_list' or
** 'loam_qb_in_tuples') that its expression is a column leading an index
** of its table (a primary key, a unique constraint or an index whose
** first column it is), and returns it.  On PostgreSQL a one-expression
** list of at most 128 integers, text or booleans then renders
**   (e = ANY($n::T[]))         negated (e <> ALL($n::T[]))
** with the same array parameter and element type T as the unnest form:
** the planner probes the index once per key instead of hashing the list
** and joining it (a third of the server's time for 100 keys).  Without an
** index '= ANY' would compare every row with the whole array, hence the
** caller's word; and since a plan may scan the table even with one (a
** generic plan on a column of few distinct values), longer lists keep the
** hashed form, which bounds that cost.  The answers are those of the unnest form (the list holds
** no NULL, duplicates match once).  Lists of doubles (which would cast an
** integer column and lose its index), tuples of two or more expressions
** and every SQLite list keep the form of 'loam_qb_in_list'.  Anything but
** an IN list or tuples is LOAM_E_MISUSE.
*/
LOAM_API loam_expr *loam_qb_in_indexed (loam_qb *qb, loam_expr *in);

/* (e IN (SELECT ...)), or NOT IN when 'negate' is non-zero; 'sub' must be a SELECT of 'qb'. */
LOAM_API loam_expr *loam_qb_in_query (loam_qb *qb, loam_expr *e, loam_qstmt *sub, int negate);

/*
** An aggregate: 'fn' is "count", "sum", "avg", "min" or "max".  'e' NULL
** gives count(*) (count only); 'distinct' non-zero gives fn(DISTINCT e).
*/
LOAM_API loam_expr *loam_qb_agg (loam_qb *qb, const char *fn, loam_expr *e, int distinct);

/* e AS "name": for SELECT columns and RETURNING only (elsewhere refused at render). */
LOAM_API loam_expr *loam_qb_alias (loam_qb *qb, loam_expr *e, const char *name);

/* excluded."name" / EXCLUDED."name": the proposed row in an upsert's SET or WHERE. */
LOAM_API loam_expr *loam_qb_excluded (loam_qb *qb, const char *name);


/*
** Statements.  A constructor returns a statement owned by 'qb' (NULL
** after an error); the setters add clauses to it.  A setter that does not
** fit the statement kind records LOAM_E_MISUSE.
*/

/* SELECT ... FROM "table" [AS "alias"]; 'table' NULL: no FROM clause, 'alias' may be NULL. */
LOAM_API loam_qstmt *loam_qb_select (loam_qb *qb, const char *table, const char *alias);
/* INSERT INTO "table" */
LOAM_API loam_qstmt *loam_qb_insert (loam_qb *qb, const char *table);
/* UPDATE "table" */
LOAM_API loam_qstmt *loam_qb_update (loam_qb *qb, const char *table);
/* DELETE FROM "table" */
LOAM_API loam_qstmt *loam_qb_delete (loam_qb *qb, const char *table);

/* SELECT: DISTINCT when 'on' is non-zero. */
LOAM_API void loam_qb_distinct (loam_qstmt *st, int on);

/* SELECT: appends a result column; none gives '*'.  'e' may be a 'loam_qb_alias'. */
LOAM_API void loam_qb_column (loam_qstmt *st, loam_expr *e);

typedef enum loam_join {
  LOAM_JOIN_INNER = 1,
  LOAM_JOIN_LEFT = 2
} loam_join;

/* SELECT: appends INNER|LEFT JOIN "table" [AS "alias"] ON on ('alias' may be NULL). */
LOAM_API void loam_qb_join (loam_qstmt *st, loam_join kind, const char *table,
                            const char *alias, loam_expr *on);

/*
** SELECT, UPDATE, DELETE: the WHERE condition; a second call ANDs the
** conditions.  INSERT: the WHERE of ON CONFLICT DO UPDATE.
*/
LOAM_API void loam_qb_where (loam_qstmt *st, loam_expr *e);

/* SELECT: appends a GROUP BY expression. */
LOAM_API void loam_qb_group (loam_qstmt *st, loam_expr *e);

/* SELECT: the HAVING condition; a second call ANDs the conditions. */
LOAM_API void loam_qb_having (loam_qstmt *st, loam_expr *e);

/* Flags of 'loam_qb_order'; 0 is ASC with the backend's NULL placement. */
#define LOAM_DESC         1
#define LOAM_NULLS_FIRST  2
#define LOAM_NULLS_LAST   4

/* SELECT: appends 'e' ASC|DESC [NULLS FIRST|LAST] to ORDER BY. */
LOAM_API void loam_qb_order (loam_qstmt *st, loam_expr *e, int flags);

/*
** SELECT: LIMIT and OFFSET, bound as parameters (negative: LOAM_E_MISUSE).
** An OFFSET without LIMIT renders LIMIT -1 OFFSET ? on SQLite, which
** needs a LIMIT there.
*/
LOAM_API void loam_qb_limit (loam_qstmt *st, int64_t n);
LOAM_API void loam_qb_offset (loam_qstmt *st, int64_t n);

/* Flags of 'loam_qb_lock': one mode, optionally with one modifier. */
#define LOAM_FOR_UPDATE   1
#define LOAM_FOR_SHARE    2
#define LOAM_SKIP_LOCKED  4
#define LOAM_NOWAIT       8

/*
** SELECT: FOR UPDATE|SHARE [SKIP LOCKED|NOWAIT], PostgreSQL only: SQLite
** locks whole databases, so rendering a lock for it is LOAM_E_MISUSE
** rather than a silent no-op.  0 removes the lock.
*/
LOAM_API void loam_qb_lock (loam_qstmt *st, int flags);

/*
** SELECT: renders the statement as a request for its plan, after the
** dialect's prefix ("EXPLAIN QUERY PLAN " on SQLite, "EXPLAIN " on
** PostgreSQL); running it returns the plan's rows, whose columns differ
** per backend, instead of the query's.  Only the outermost statement may
** ask: a subquery that does is LOAM_E_MISUSE when rendered.  0 removes it.
*/
LOAM_API void loam_qb_explain (loam_qstmt *st, int on);

/* INSERT: appends a column name. */
LOAM_API void loam_qb_insert_column (loam_qstmt *st, const char *name);

/*
** INSERT: appends a row of 'n' values (copied), one per column in order;
** LOAM_NULL is NULL.  A row of another length is LOAM_E_MISUSE naming the
** row (counted from 1).  With no columns, every row must be empty and
** each renders as its own INSERT INTO "t" DEFAULT VALUES.
*/
LOAM_API void loam_qb_insert_row (loam_qstmt *st, const loam_value *vals, int n);

typedef enum loam_conflict {
  LOAM_DO_NOTHING = 1,
  LOAM_DO_UPDATE = 2
} loam_conflict;

/*
** INSERT: ON CONFLICT ("c1", ...) DO NOTHING | DO UPDATE SET ... [WHERE ...].
** 'target' names 'ntarget' columns (copied); DO UPDATE needs at least one,
** and its SET items come from 'loam_qb_set', its WHERE from 'loam_qb_where'.
*/
LOAM_API void loam_qb_on_conflict (loam_qstmt *st, loam_conflict action,
                                   const char *const *target, int ntarget);

/* UPDATE, and INSERT with ON CONFLICT DO UPDATE: appends "col" = e to SET. */
LOAM_API void loam_qb_set (loam_qstmt *st, const char *col, loam_expr *e);

/*
** UPDATE, and INSERT with ON CONFLICT DO UPDATE: appends the raw fragment
** 'e' (made by 'loam_qb_raw') to SET as it is: assignments the program
** wrote ("a = ?, b = b + 1"), whose values are bound like any raw
** fragment's.  Anything but a raw fragment is LOAM_E_MISUSE.
*/
LOAM_API void loam_qb_set_raw (loam_qstmt *st, loam_expr *e);

/* INSERT, UPDATE, DELETE: appends an expression (a column, an alias) to RETURNING. */
LOAM_API void loam_qb_returning (loam_qstmt *st, loam_expr *e);


/*
** Renders 'st' (a statement of 'qb') for 'dialect'.  'max_params' is the
** parameter budget of one statement, 0 for the backend's own limit
** (SQLite 32766, PostgreSQL 65535).  An INSERT of many rows is split into
** chunks that stay within the budget: floor((budget - P) / columns) rows
** each, where P counts the parameters of its ON CONFLICT and RETURNING
** clauses; all full chunks share one SQL text.  Any other statement is
** one chunk, and more parameters than the budget is LOAM_E_MISUSE.
**
** The first error recorded while building comes out here.  On success
** '*out' receives a result the caller frees with 'loam_rendered_free'; on
** failure '*out' is NULL.  Rendering does not change the tree: the same
** statement may be rendered again, for either dialect.
*/
LOAM_API int loam_qb_render (loam_qb *qb,
                             const loam_qstmt *st,
                             loam_backend dialect,
                             int max_params,        /* 0: the backend's limit */
                             loam_rendered **out,   /* OUT: new result */
                             loam_error *err);      /* OUT: may be NULL */

/* The number of statements (an INSERT's chunks) in 'rs'; at least 1. */
LOAM_API int loam_rendered_count (const loam_rendered *rs);

/*
** The text of statement 'i' (NUL-terminated, '*len' its length when 'len'
** is not NULL); valid until 'loam_rendered_free'.  Statements with the same
** text share one pointer.  NULL when 'i' is out of range.
*/
LOAM_API const char *loam_rendered_sql (const loam_rendered *rs, int i,
                                        size_t *len /* OUT: may be NULL */);

/*
** The parameters of statement 'i' and their count in '*nparams'; text and
** blob bytes belong to 'rs' and stay valid until 'loam_rendered_free'.
** 'loam_query_rendered' and 'loam_exec_rendered' bind them.  NULL (and 0) when
** there are none or 'i' is out of range.
*/
LOAM_API const loam_value *loam_rendered_params (const loam_rendered *rs, int i,
                                                 int *nparams /* OUT: may be NULL */);

/* The kind of statement 'i'; LOAM_SQL_UNKNOWN when 'i' is out of range. */
LOAM_API loam_sql_kind loam_rendered_kind (const loam_rendered *rs, int i);

/* Frees a result.  NULL is fine. */
LOAM_API void loam_rendered_free (loam_rendered *rs);

/*
** 'loam_query' and 'loam_exec' for statement 'i' of 'rs', with its kind
** instead of a reading of its text.  'rs' must outlive the call only (the
** statement copies what it keeps); 'i' out of range is LOAM_E_MISUSE.
*/
LOAM_API int loam_query_rendered (loam_conn *c, const loam_rendered *rs, int i,
                                  int flags,               /* 0 or LOAM_STREAM */
                                  loam_stmt **out,         /* OUT: new statement */
                                  loam_error *err);        /* OUT: may be NULL */
/*
** 'loam_query_rendered' with 'params' bound in place of the values of
** statement 'i': the text and kind are reused, so a statement rendered once
** runs again with new values without being rendered or read again.
** 'nparams' must equal the statement's count (else LOAM_E_MISUSE); 'params'
** and 'rs' must outlive the call only.
*/
LOAM_API int loam_query_rendered_with (loam_conn *c, const loam_rendered *rs, int i,
                                       const loam_value *params, int nparams,
                                       int flags,          /* 0 or LOAM_STREAM */
                                       loam_stmt **out,    /* OUT: new statement */
                                       loam_error *err);   /* OUT: may be NULL */
LOAM_API int loam_exec_rendered (loam_conn *c, const loam_rendered *rs, int i,
                                 int64_t *changes,         /* OUT: may be NULL */
                                 int64_t *id,              /* OUT: may be NULL */
                                 int *has_id,              /* OUT: may be NULL */
                                 loam_error *err);         /* OUT: may be NULL */

/* }====================================================================== */


/* {======================================================================
** Schema definitions (ddl.c)
**
** Plain value structs describe a table, column by column, in declaration
** order; the render functions turn them into one DDL statement for a
** backend.  The structs are complete declarations (every type option,
** default, key and constraint), so a schema diff can compare them with a
** live database.  Start each struct from zero ('= {0}' or memset): every
** zero field means "not given".  All pointers in them are borrowed for the
** duration of the render call only.
**
** DDL takes no parameters on either backend, so defaults are rendered as
** SQL literals: text quoted with embedded quotes doubled, integers exactly,
** doubles in the shortest form that reads back to the same double,
** booleans as 1/0 (SQLite) or true/false (PostgreSQL), blobs as X'..' or
** decode('..', 'hex').  Identifiers are validated (non-empty, at most 63
** bytes) and always quoted.  Raw SQL (checks, raw defaults, index
** predicates) comes from the model author and is inserted in parentheses.
**
** Constraint names follow PostgreSQL's own defaults, so a table created by
** loam and one created by hand with unnamed constraints agree, and both
** backends carry the same names:
**   primary key            <table>_pkey
**   UNIQUE on columns      <table>_<col>[_<col>...]_key
**   CHECK of a column      <table>_<col>_check   (enum values, SQLite text length, SQLite json)
**   FOREIGN KEY            <table>_<col>[_<col>...]_fkey
**   index without a name   <table>_<col>[_<col>...]_idx
** A name longer than 63 bytes is shortened as PostgreSQL does it: the
** longer of the table part and the column part loses bytes first (never
** in the middle of a UTF-8 character), the suffix is kept.  Explicit
** names (checks, uniques, indexes) are used as given.  Two constraints of
** one table with the same name are refused.
**
** Type mapping (SQLite / PostgreSQL):
**   ID        INTEGER PRIMARY KEY (the rowid alias) /
**             bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY
**   INTEGER   INTEGER / integer (32 bits: defaults must fit)
**   BIGINT    INTEGER / bigint
**   TEXT      TEXT / text; with 'length': TEXT + CHECK (length("c") <= n) / varchar(n)
**   NUMERIC   NUMERIC(p,s) / numeric(p,s); NUMERIC / numeric without precision
**   BOOLEAN   BOOLEAN / boolean
**   FLOAT     REAL / double precision
**   DATE      DATE / date
**   TIMESTAMP TIMESTAMP / timestamptz
**   JSON      TEXT + CHECK ("c" IS NULL OR json_valid("c")) / jsonb
**   BLOB      BLOB / bytea
**   ENUM      TEXT / text, + CHECK ("c" IN ('a', 'b')) on both
** Note that a text value longer than 'length' is a check_violation on
** SQLite but a data_error on PostgreSQL (varchar refuses it).
**
** Primary-key columns are rendered NOT NULL on both backends (SQLite would
** otherwise accept NULL keys in a composite primary key).
**
** Every inconsistent declaration is LOAM_E_MISUSE with a message naming the
** table and column: no columns, a column declared twice, two primary keys,
** an ID column that is not the only key, options that do not apply to the
** type, length/precision < 0, scale > precision, an enum without values or
** with a value twice, a default that does not fit the column (a string on
** an integer column, an enum default outside its values, NULL on a NOT
** NULL column, a text longer than 'length', NaN or infinity), SET NULL on
** a NOT NULL column, an unknown type or action, a constraint name used
** twice.
**
** LOAM_DEFAULT_NOW is "now" in the canonical text loam writes, so rows
** that take it equal and sort with values written by loam:
**   DATE       DEFAULT (date('now')) / DEFAULT CURRENT_DATE
**   TIMESTAMP  DEFAULT (rtrim(rtrim(strftime('%Y-%m-%d %H:%M:%f', 'now'), '0'), '.')
**              || '+00') / DEFAULT CURRENT_TIMESTAMP
** SQLite's clock has milliseconds, and the fraction is trimmed of its
** trailing zeros as PostgreSQL prints it ('12:00:00.5+00', '12:00:00+00').
** The day is UTC on both (loam sets TimeZone=UTC on every PostgreSQL
** session).  SQLite reads the clock once per statement, PostgreSQL once
** per transaction.  Any other column type is LOAM_E_MISUSE.  A raw SQL
** default on a DATE or TIMESTAMP column is LOAM_E_MISUSE on SQLite: SQLite
** has no date type, so nothing says the expression writes the canonical
** text (CURRENT_TIMESTAMP writes '2021-01-01 00:00:00', which never
** equals the '2021-01-01 00:00:00+00' that loam writes and compares).
** ======================================================================= */

typedef enum loam_col_type {
  LOAM_COL_ID = 1,     /* the surrogate primary key; zero is "no type" and refused */
  LOAM_COL_INTEGER,
  LOAM_COL_BIGINT,
  LOAM_COL_TEXT,
  LOAM_COL_NUMERIC,
  LOAM_COL_BOOLEAN,
  LOAM_COL_FLOAT,
  LOAM_COL_DATE,
  LOAM_COL_TIMESTAMP,
  LOAM_COL_JSON,
  LOAM_COL_BLOB,
  LOAM_COL_ENUM
} loam_col_type;

/* Referential actions; zero (NO ACTION, the SQL default) is not rendered. */
typedef enum loam_fk_action {
  LOAM_FK_NO_ACTION = 0,
  LOAM_FK_RESTRICT,
  LOAM_FK_CASCADE,
  LOAM_FK_SET_NULL,
  LOAM_FK_SET_DEFAULT
} loam_fk_action;

typedef enum loam_default_kind {
  LOAM_DEFAULT_NONE = 0,
  LOAM_DEFAULT_VALUE,    /* 'value', rendered as a literal (LOAM_NULL: DEFAULT NULL) */
  LOAM_DEFAULT_SQL,      /* 'sql', a raw expression (refused on SQLite for DATE and TIMESTAMP) */
  LOAM_DEFAULT_NOW       /* the current date or time, DATE and TIMESTAMP columns only */
} loam_default_kind;

typedef struct loam_default {
  loam_default_kind kind;
  loam_value value;      /* LOAM_DEFAULT_VALUE; TEXT must not contain NUL bytes */
  const char *sql;       /* LOAM_DEFAULT_SQL; rendered as DEFAULT (sql) */
} loam_default;

/* A column's foreign key; 'table' NULL means the column has none. */
typedef struct loam_fk_def {
  const char *table;
  const char *column;        /* NULL: the referenced table's primary key */
  loam_fk_action on_delete;
  loam_fk_action on_update;
} loam_fk_def;

typedef struct loam_column_def {
  const char *name;
  loam_col_type type;
  int length;                /* TEXT: most characters; 0: unlimited */
  int precision;             /* NUMERIC: total digits (1..1000); 0: unconstrained */
  int scale;                 /* NUMERIC: digits after the point (0..precision) */
  int not_null;              /* non-zero: NOT NULL (zero: nullable, the SQL default) */
  int unique;                /* non-zero: UNIQUE, named <table>_<col>_key */
  int primary_key;           /* non-zero: the single-column primary key (implied by ID) */
  loam_default defval;       /* the column default */
  const char *const *enum_values;   /* ENUM: the allowed values, in order */
  int nenum_values;
  loam_fk_def references;    /* foreign key */
} loam_column_def;

/*
** A named CHECK constraint over the table; 'sql' is the raw predicate.
** Raw SQL here (and in defaults and index predicates) is NUL-terminated,
** like 'loam_query''s.
*/
typedef struct loam_check_def {
  const char *name;          /* required: a diff matches checks by name */
  const char *sql;
} loam_check_def;

/* A UNIQUE constraint over one or more columns. */
typedef struct loam_unique_def {
  const char *name;          /* NULL: <table>_<cols>_key */
  const char *const *columns;
  int ncolumns;
} loam_unique_def;

/*
** A FOREIGN KEY declared by the table, over one or more of its columns:
** how a composite key is referenced (a single column may say it itself,
** in 'references').  Named <table>_<col>[_<col>...]_fkey without a name,
** as PostgreSQL names it.  Every column must be one the table declares;
** SET NULL is refused when one of them is NOT NULL.
*/
typedef struct loam_foreign_key_def {
  const char *name;                  /* NULL: <table>_<cols>_fkey */
  const char *const *columns;        /* 'ncolumns' columns of the table ... */
  int ncolumns;
  const char *ref_table;
  const char *const *ref_columns;    /* ... referencing as many of 'ref_table'; NULL: its
                                        primary key */
  loam_fk_action on_delete;
  loam_fk_action on_update;
} loam_foreign_key_def;

typedef struct loam_table_def {
  const char *name;
  const loam_column_def *columns;     /* in declaration order, at least one */
  int ncolumns;
  const char *const *primary_key;     /* composite primary key (column names); may be NULL */
  int nprimary_key;
  const loam_check_def *checks;
  int nchecks;
  const loam_unique_def *uniques;
  int nuniques;
  int if_not_exists;
  const loam_foreign_key_def *foreign_keys;   /* table constraints, after the checks */
  int nforeign_keys;
} loam_table_def;

typedef struct loam_index_def {
  const char *name;          /* NULL: <table>_<cols>_idx */
  const char *table;
  const char *const *columns;
  int ncolumns;
  int unique;
  const char *where;         /* raw predicate of a partial index, or NULL */
  int if_not_exists;
} loam_index_def;

/*
** Renders CREATE TABLE for 'backend' (no trailing ';'), as one statement
** of kind LOAM_SQL_DDL.  On success '*out' receives a result the caller
** frees with 'loam_rendered_free' (see 'loam_qb_render'); on failure it is
** set to NULL and 'err' tells why (LOAM_E_MISUSE for a bad declaration,
** LOAM_E_NOMEM).
*/
LOAM_API int loam_render_create_table (const loam_table_def *def,
                                       loam_backend backend,
                                       loam_rendered **out, /* OUT: free with loam_rendered_free */
                                       loam_error *err);    /* OUT: may be NULL */

/* Renders CREATE [UNIQUE] INDEX [IF NOT EXISTS] ... [WHERE (...)]; as above. */
LOAM_API int loam_render_create_index (const loam_index_def *def,
                                       loam_backend backend,
                                       loam_rendered **out, /* OUT: free with loam_rendered_free */
                                       loam_error *err);    /* OUT: may be NULL */

/* Renders DROP TABLE [IF EXISTS] "table"; as above. */
LOAM_API int loam_render_drop_table (const char *table,
                                     int if_exists,
                                     loam_backend backend,
                                     loam_rendered **out,   /* OUT: free with loam_rendered_free */
                                     loam_error *err);      /* OUT: may be NULL */

/* The longest identifier PostgreSQL keeps whole (NAMEDATALEN - 1); longer ones are refused. */
#define LOAM_IDENT_MAX 63

/*
** The name the DDL gives a constraint or index of 'table' over the
** 'ncols' columns 'cols' (0 for a primary key) that has no name of its
** own: <table>_<col>[_<col>...]_<suffix>, shortened past LOAM_IDENT_MAX
** bytes as the naming rules above say.  With 'shorten' 0 it is left whole,
** for a caller that must tell a name that would be shortened.  On success
** '*name_out' receives a NUL-terminated string the caller frees with
** 'loam_name_free'; on failure it is set to NULL and 'err' tells why
** (LOAM_E_MISUSE for a NULL name or a suffix too long to leave room for
** the names, LOAM_E_NOMEM).
*/
LOAM_API int loam_constraint_name (const char *table,
                                   const char *const *cols,   /* may be NULL when ncols is 0 */
                                   int ncols,
                                   const char *suffix,        /* "pkey", "key", "idx", ... */
                                   int shorten,
                                   char **name_out,           /* OUT: free with loam_name_free */
                                   loam_error *err);          /* OUT: may be NULL */

/* Frees a name returned by 'loam_constraint_name'.  NULL is fine. */
LOAM_API void loam_name_free (char *name);

/* }====================================================================== */

/* {======================================================================
** Introspection (migrate/introspect.c)
**
** What a live database holds, read from its own catalogs: SQLite's
** 'sqlite_schema' and pragmas (table_xinfo, index_list, index_xinfo,
** foreign_key_list), PostgreSQL's pg_catalog.  The tables are those an
** unqualified name reaches: SQLite's main database, PostgreSQL's current
** schema ('current_schema()'); views, temporary tables and SQLite's own
** 'sqlite_*' tables are left out.
**
** The result is a plain tree of read-only structs, all of its memory
** owned by the 'loam_db_schema' and freed with it by
** 'loam_db_schema_free'; nothing in it refers to the connection.  Tables
** are sorted by name (bytewise), and within a table the unique
** constraints, checks, foreign keys and indexes are sorted by name (a
** constraint SQLite keeps without a name sorts first).  Columns come in
** table order, the columns of a key in key order.
**
** Names.  SQLite keeps constraint names only in the CREATE TABLE text, so
** they are read from there: a constraint declared without CONSTRAINT
** "name" has the name NULL on SQLite.  PostgreSQL names every constraint.
**
** Text.  Types, defaults, check predicates, index expressions and index
** predicates are the database's own text: as declared on SQLite, as
** PostgreSQL prints them (pg_get_expr, format_type).  They differ between
** the backends ("'x'" and "'x'::text"); a comparison of two schemas
** compares within one backend.
** ======================================================================= */

/* A column. */
typedef struct loam_db_column {
  const char *name;
  const char *type;          /* as the database spells it: "NUMERIC(10,2)", "character varying(20)" */
  loam_col_type loam_type;   /* the loam type the type reads as (ID for a generated single-column
                                key), or 0 when it reads as none */
  int length;                /* TEXT with a length (varchar(n)); else 0 */
  int precision, scale;      /* NUMERIC(p,s); else 0 */
  int not_null;              /* NOT NULL, as the database enforces it (PostgreSQL: every primary
                                key column; SQLite: declared, or the rowid alias) */
  const char *default_sql;   /* the default expression as the database prints it, or NULL */
  int generated;             /* values generated by the database: a PostgreSQL identity
                                column, SQLite's rowid alias (INTEGER PRIMARY KEY) */
} loam_db_column;

/* A primary key or a UNIQUE constraint. */
typedef struct loam_db_key {
  const char *name;          /* NULL when unnamed (SQLite); NULL with 0 columns: no primary key */
  const char *const *columns;
  int ncolumns;
} loam_db_key;

typedef struct loam_db_check {
  const char *name;          /* NULL when unnamed (SQLite) */
  const char *sql;           /* the predicate, without CHECK */
  int validated;             /* 0 for a PostgreSQL NOT VALID check */
} loam_db_check;

typedef struct loam_db_fk {
  const char *name;          /* NULL when unnamed (SQLite) */
  const char *const *columns;          /* 'ncolumns' columns of this table ... */
  const char *ref_table;
  const char *const *ref_columns;      /* ... referencing as many of 'ref_table' */
  int ncolumns;
  loam_fk_action on_delete;
  loam_fk_action on_update;
  int validated;             /* 0 for a PostgreSQL NOT VALID foreign key */
} loam_db_fk;

/*
** An index that is not there for a constraint (primary keys and UNIQUE
** constraints have their own).  Each key part is a column ('columns[i]')
** or, where that is NULL, an expression ('exprs[i]', else NULL).
*/
typedef struct loam_db_index {
  const char *name;
  int unique;
  const char *const *columns;
  const char *const *exprs;
  int ncolumns;
  const char *where;         /* the predicate of a partial index, or NULL */
  int valid;                 /* 0 for a PostgreSQL index whose concurrent build failed */
  const char *sql;           /* SQLite: the CREATE INDEX text it keeps; PostgreSQL: NULL */
} loam_db_index;

typedef struct loam_db_table {
  const char *name;
  const loam_db_column *columns;
  int ncolumns;
  loam_db_key primary_key;
  const loam_db_key *uniques;
  int nuniques;
  const loam_db_check *checks;
  int nchecks;
  const loam_db_fk *fks;
  int nfks;
  const loam_db_index *indexes;
  int nindexes;
  const char *sql;           /* SQLite: the CREATE TABLE text it keeps; PostgreSQL: NULL */
  const char *const *triggers;   /* SQLite: the CREATE TRIGGER text of each trigger on the
                                    table, by name (a rebuild makes them again); PostgreSQL: none */
  int ntriggers;
} loam_db_table;

typedef struct loam_db_schema {
  loam_backend backend;
  const loam_db_table *tables;
  int ntables;
} loam_db_schema;

/*
** Reads the tables named in 'tables' ('ntables' names, as stored: no
** quoting, no case folding), or with 'tables' NULL every table.  A named
** table that does not exist is LOAM_E_UNDEFINED_TABLE, with a message
** naming it; a name given twice is read once.  LOAM_E_MISUSE for a NULL
** connection or 'out', or a NULL name.  The catalog queries run through
** 'loam_query', so instrumentation counts them; run them in a transaction
** for a consistent picture while others change the schema.  On success
** '*out' receives a tree the caller frees with 'loam_db_schema_free'; on
** failure '*out' is NULL.
*/
LOAM_API int loam_introspect (loam_conn *conn,
                              const char *const *tables,   /* NULL: every table */
                              int ntables,
                              loam_db_schema **out,        /* OUT: free with loam_db_schema_free */
                              loam_error *err);            /* OUT: may be NULL */

/* The table named 'name' in 's', or NULL. */
LOAM_API const loam_db_table *loam_db_schema_table (const loam_db_schema *s, const char *name);

/* The column named 'name' in 't', or NULL. */
LOAM_API const loam_db_column *loam_db_table_column (const loam_db_table *t, const char *name);

/* Frees 's' and everything in it.  NULL is fine. */
LOAM_API void loam_db_schema_free (loam_db_schema *s);

/* }====================================================================== */


/* {======================================================================
** Migration operations (migrate/ops.c, migrate/rebuild.c)
**
** A migration is a list of operations, each a plain struct: what a Lua
** migration file declares ("add_column", "add_index") is read into one
** 'loam_op' per call, and the core renders it for a backend.  Start each
** from zero ('= {0}'); the fields each kind reads are listed with it, the
** others are ignored.  Pointers are borrowed for the duration of a call.
**
** Rendering gives the one rendered form ('loam_rendered'): one or more
** statements, each with its kind, to run in order.  Where SQLite cannot
** ALTER in place (a column's type, nullness or default, a check, a
** foreign key, dropping a column that a constraint names), the statements
** are SQLite's documented table rebuild, made from the table as it is now
** (a 'loam_db_table' from 'loam_introspect'):
**     CREATE TABLE "loam_rebuild_<t>" (the table as it becomes)
**     INSERT INTO "loam_rebuild_<t>" (...) SELECT ... FROM "<t>"
**     DROP TABLE "<t>"
**     ALTER TABLE "loam_rebuild_<t>" RENAME TO "<t>"
**     every index and trigger of "<t>" again, as SQLite keeps their text
**     SELECT * FROM pragma_foreign_key_check('<t>')    (kind SELECT)
** The caller runs them in one transaction with foreign keys switched off
** outside it ('PRAGMA foreign_keys = OFF' before BEGIN, ON again after
** COMMIT or ROLLBACK: SQLite ignores the pragma inside a transaction, and
** with foreign keys on, DROP TABLE would run the ON DELETE actions of
** every referencing table); 'loam_op_rebuilds' says when that is.  A
** statement of kind LOAM_SQL_SELECT in a rendered operation other than
** EXECUTE (the last one of a rebuild; SQLite's VALIDATE_FOREIGN_KEY) is a
** check: a row from it
** is a foreign key violation, and the caller rolls back.  'loam_op_run'
** does all of this but the transaction and the pragma.
** ======================================================================= */

typedef enum loam_op_kind {
  LOAM_OP_CREATE_TABLE = 1,    /* 'def' */
  LOAM_OP_DROP_TABLE,          /* 'table' */
  LOAM_OP_RENAME_TABLE,        /* 'table', 'new_name' */
  LOAM_OP_ADD_COLUMN,          /* 'table', 'column' */
  LOAM_OP_DROP_COLUMN,         /* 'table', 'name' */
  LOAM_OP_RENAME_COLUMN,       /* 'table', 'name', 'new_name' */
  LOAM_OP_ALTER_COLUMN,        /* 'table', 'name', 'alter', 'column' (what it becomes) and, for
                                  a reversible one, 'before' (what it was) */
  LOAM_OP_ADD_INDEX,           /* 'index', 'concurrently' */
  LOAM_OP_DROP_INDEX,          /* 'table', 'name', 'concurrently' */
  LOAM_OP_ADD_FOREIGN_KEY,     /* 'table', 'name', 'columns', 'ref_table', 'ref_columns',
                                  'ncolumns', 'on_delete', 'on_update', 'not_valid' */
  LOAM_OP_VALIDATE_FOREIGN_KEY,/* 'table', 'name' */
  LOAM_OP_DROP_FOREIGN_KEY,    /* 'table', 'name' */
  LOAM_OP_ADD_CHECK,           /* 'table', 'name', 'sql' (the predicate), 'not_valid' */
  LOAM_OP_DROP_CHECK,          /* 'table', 'name' */
  LOAM_OP_EXECUTE,             /* 'sql', 'params', 'nparams'; 'down_sql' makes it reversible */
  LOAM_OP_BACKFILL,            /* 'table', 'set', 'nset', 'where', 'nwhere', 'key', 'batch',
                                  'pause_ms': see "Backfills" below */
  LOAM_OP_ADD_UNIQUE,          /* 'table', 'name' (NULL: <table>_<cols>_key), 'columns',
                                  'ncolumns' */
  LOAM_OP_DROP_UNIQUE          /* 'table', 'name' */
} loam_op_kind;

/*
** One item of a BACKFILL's SET list or WHERE predicate:
**   column, value          SET "column" = value; WHERE "column" = value
**                          (LOAM_NULL: "column" IS NULL)
**   column, sql, params    SET "column" = (sql); WHERE "column" = (sql)
**   sql, params            SET sql (assignments: "a = ?, b = b + 1");
**                          WHERE (sql) (a predicate)
** 'sql' is a raw fragment as 'loam_qb_raw' takes it: its '?' are the
** 'nparams' values of 'params', bound.
*/
typedef struct loam_assign {
  const char *column;          /* quoted by the core; NULL: 'sql' is the whole item */
  const char *sql;             /* NULL: 'value' */
  const loam_value *params;
  int nparams;
  loam_value value;
} loam_assign;

/* What an ALTER_COLUMN changes ('alter', bits). */
#define LOAM_ALTER_TYPE     1    /* the type and its options (length, precision, scale) */
#define LOAM_ALTER_NULL     2    /* NOT NULL on or off ('column.not_null') */
#define LOAM_ALTER_DEFAULT  4    /* the default ('column.defval'; kind NONE drops it) */

typedef struct loam_op {
  loam_op_kind kind;
  const char *table;
  const char *name;            /* the column, index or constraint acted on */
  const char *new_name;        /* RENAME_TABLE, RENAME_COLUMN */
  const loam_table_def *def;   /* CREATE_TABLE */
  loam_column_def column;      /* ADD_COLUMN; ALTER_COLUMN: the column as it becomes */
  loam_column_def before;      /* ALTER_COLUMN: the column as it was ('before.name' NULL: unknown,
                                  and the operation cannot be reversed) */
  int alter;                   /* ALTER_COLUMN: LOAM_ALTER_* bits */
  loam_index_def index;        /* ADD_INDEX */
  int concurrently;            /* ADD_INDEX, DROP_INDEX: CONCURRENTLY on PostgreSQL; SQLite
                                  builds every index in place */
  const char *const *columns;  /* ADD_FOREIGN_KEY, ADD_UNIQUE: 'ncolumns' columns of 'table' ... */
  const char *ref_table;
  const char *const *ref_columns;   /* ... referencing as many of 'ref_table' */
  int ncolumns;
  loam_fk_action on_delete;
  loam_fk_action on_update;
  int not_valid;               /* ADD_FOREIGN_KEY, ADD_CHECK: NOT VALID on PostgreSQL (existing
                                  rows are checked later, by VALIDATE); SQLite checks nothing
                                  for existing rows either way */
  const char *sql;             /* ADD_CHECK: the predicate; EXECUTE: one statement */
  const loam_value *params;    /* EXECUTE: its 'nparams' parameters */
  int nparams;
  const char *down_sql;        /* EXECUTE: the statement that undoes it, or NULL */
  const loam_assign *set;      /* BACKFILL: the 'nset' items of SET */
  int nset;
  const loam_assign *where;    /* BACKFILL: the 'nwhere' items of the predicate (ANDed) that
                                  selects the rows still to change */
  int nwhere;
  const char *key;             /* BACKFILL: the unique column the batches are ranges of; NULL:
                                  the table's one-column primary key */
  int batch;                   /* BACKFILL: rows a batch, 1 .. LOAM_BACKFILL_BATCH_MAX; 0: 1000 */
  int pause_ms;                /* BACKFILL: the pause after each batch, 0 .. 3600000 */
} loam_op;

#define LOAM_BACKFILL_BATCH_MAX 1000000

/*
** Renders 'op' for 'backend'.  'table' is the table the operation acts
** on as it is now, from 'loam_introspect', or NULL; an operation that
** SQLite performs by a rebuild needs it (LOAM_E_MISUSE without it, or
** with another table).  Every name is validated and quoted; a bad or
** missing field is LOAM_E_MISUSE naming the operation and the table.  On
** success '*out' receives statements the caller frees with
** 'loam_rendered_free'; on failure it is NULL.
*/
LOAM_API int loam_render_op (const loam_op *op,
                             loam_backend backend,
                             const loam_db_table *table,   /* may be NULL: see above */
                             loam_rendered **out,          /* OUT: free with loam_rendered_free */
                             loam_error *err);             /* OUT: may be NULL */

/*
** Runs 'op' on 'conn' in the caller's transaction (or outside any, for an
** operation 'loam_op_needs_autocommit' names): introspects the table when
** the backend may rebuild it, renders, and runs each statement; a row
** from a foreign key check is LOAM_E_FOREIGN_KEY_VIOLATION, naming the
** tables.  A SQLite rebuild while foreign keys are on is LOAM_E_MISUSE
** (see above: the caller switches them off before its transaction).
** Errors of the statements come back as 'loam_exec' reports them; the
** caller rolls its transaction back.
*/
LOAM_API int loam_op_run (loam_conn *conn, const loam_op *op, loam_error *err);

/*
** 1 when 'op' is performed on 'backend' by a table rebuild (so its
** rendering needs the introspected table, foreign keys switched off
** around the transaction and the check of its last statement), else 0.
*/
LOAM_API int loam_op_rebuilds (const loam_op *op, loam_backend backend);

/*
** 1 when 'op' must run outside a transaction on 'backend' (a CONCURRENTLY
** index build or drop on PostgreSQL), else 0.
*/
LOAM_API int loam_op_needs_autocommit (const loam_op *op, loam_backend backend);

/*
** The operation that undoes 'op', for a migration whose 'down' is
** derived: CREATE_TABLE and DROP_TABLE, ADD and DROP of a column, index,
** foreign key or check, RENAME back, ALTER_COLUMN back to 'before',
** EXECUTE of 'down_sql'.  A VALIDATE_FOREIGN_KEY has nothing to undo:
** '*inv' is set to kind 0 ("nothing").  Borrowed pointers of '*inv' point
** into 'op' (the index name a default-named ADD_INDEX gets is written into
** 'name_buf', of LOAM_IDENT_MAX + 1 bytes), so 'op' and 'name_buf' must
** outlive '*inv'.  An operation that cannot be undone (dropping a table or
** column loses its data; a drop of an index or check, an ALTER_COLUMN
** without 'before', an EXECUTE without 'down_sql' do not say what to
** recreate) is LOAM_E_MISUSE, with a message saying which and why.
*/
LOAM_API int loam_op_inverse (const loam_op *op,
                              loam_op *inv,                /* OUT */
                              char *name_buf,              /* LOAM_IDENT_MAX + 1 bytes */
                              loam_error *err);            /* OUT: may be NULL */

/* }====================================================================== */


/* {======================================================================
** Backfills (migrate/backfill.c)
**
** A BACKFILL changes the rows of 'table' that its predicate ('where')
** still selects, 'batch' rows at a time by ranges of a unique key column,
** each batch in a short transaction of its own:
**     SELECT max("k") AS "hi" FROM (SELECT "k" FROM "t" WHERE "k" > lo
**       AND (where) ORDER BY "k" LIMIT batch) AS "b"       -- the batch's last key
**     UPDATE "t" SET ... WHERE "k" > lo AND "k" <= hi AND (where)
** (the first batch has no lower bound).  The predicate makes it safe to
** run again, since a row done no longer matches; the runner also journals
** the last key of each batch with it, so a run that stopped resumes after
** the last batch committed instead of scanning the rows done again.  Only
** the runner runs one (a migration that holds BACKFILL operations, all
** before any other operation: see 'loam_migrate_up'): 'loam_render_op' and
** 'loam_op_run' refuse it, and it has no derived inverse.
**
** Before its first batch it is checked against the table as it is: no
** table is LOAM_E_UNDEFINED_TABLE; a key, SET or WHERE column that the
** table lacks is LOAM_E_UNDEFINED_COLUMN; a key that is not unique (the
** one-column primary key, a one-column UNIQUE constraint or a unique index
** without predicate), no key given for a table without a one-column
** primary key, an empty SET or predicate, and 'batch' or 'pause_ms' out of
** range are LOAM_E_MISUSE.  Messages name the table and the column.
** ======================================================================= */

/*
** The plan of BACKFILL 'op' on 'conn', changing nothing: checks it as the
** runner does, reads the last key of its first batch (one SELECT), and
** renders the first batch: '*select', the statement that finds a batch's
** last key, and '*update', the first batch's UPDATE with its bounds, or
** NULL when no row is left to change.  'key' (LOAM_IDENT_MAX + 1 bytes,
** may be NULL) receives the key column.  The caller frees both results
** with 'loam_rendered_free'; on failure both are NULL.
*/
LOAM_API int loam_backfill_plan (loam_conn *conn, const loam_op *op,
                                 loam_rendered **select,   /* OUT */
                                 loam_rendered **update,   /* OUT: NULL when nothing is left */
                                 char *key,                /* OUT: may be NULL */
                                 loam_error *err);         /* OUT: may be NULL */

/* }====================================================================== */


/* {======================================================================
** The migration runner (migrate/migrate.c, migrate/lock.c)
**
** Migrations are versioned lists of operations ('loam_op').  The runner
** records each applied one in LOAM_MIGRATIONS_TABLE (version, name,
** checksum, applied_at, duration_ms) and promises:
**   - each migration runs in a transaction of its own (SQLite: BEGIN
**     IMMEDIATE), with the history row written in that same transaction:
**     a failure leaves schema and history exactly as before it;
**   - a migration marked 'non_transactional' (CONCURRENTLY index builds
**     on PostgreSQL) runs its steps one by one outside a transaction and
**     journals each (LOAM_MIGRATION_STEPS_TABLE), so a run that failed
**     resumes after the last step done; an INVALID index that a failed
**     concurrent build left is dropped before the build is tried again.
**     Its down runs the same way (the history row goes after the last
**     step), so a DROP INDEX CONCURRENTLY runs as written, and a failed
**     down resumes too;
**   - one migrator at a time, through a lease row in
**     LOAM_MIGRATION_LOCK_TABLE taken and renewed in short transactions,
**     which holds through PgBouncer in transaction mode (lock.c says why);
**   - DDL on PostgreSQL runs under a short lock_timeout and is retried
**     with a doubling backoff, so a migration waiting for a busy table
**     does not queue every other query of that table behind it;
**   - a migration that holds BACKFILL operations (they come first in the
**     list it runs) runs each batch in a transaction of its own, under
**     the lease (renewed in it) and the lock_timeout with its retries,
**     journaling the batch's last key in LOAM_MIGRATION_PROGRESS_TABLE in
**     that transaction; then its other operations run in one transaction
**     with the history row, which also clears the journal.  A run that
**     stopped leaves the migration unrecorded and its batches done, and
**     the next run resumes after the last batch journaled;
**   - an applied migration whose source changed is LOAM_E_CHECKSUM_MISMATCH;
**     two heads (two migrations that no other follows), a missing parent
**     and a pending migration older than the newest applied one (out of
**     order, applied only with 'out_of_order') are LOAM_E_MIGRATION_CONFLICT.
** Messages name the migration (version and name) and, for a failed
** operation, its step and kind; the code is the operation's own.
** ======================================================================= */

#define LOAM_MIGRATION_STEPS_TABLE "loam_migration_steps"
#define LOAM_MIGRATION_LOCK_TABLE "loam_migration_lock"
#define LOAM_MIGRATION_PROGRESS_TABLE "loam_migration_progress"

/*
** Called after each batch of a backfill: the migration, the step (from 1),
** the table, and the rows and batches done so far in this run.
*/
typedef void (*loam_migrate_progress_fn) (void *ud, const char *version, int step,
                                          const char *table, int64_t rows, int64_t batches);

/* One migration; every pointer is borrowed for the duration of a call. */
typedef struct loam_migration {
  const char *version;           /* UTC "yyyymmddHHMMSS": versions sort in the order written */
  const char *name;              /* "add_orders_status_index" */
  const char *const *parents;    /* the versions it follows: none for the first, two or more
                                    for a merge */
  int nparents;
  const char *source;            /* the file's text: its checksum is recorded and compared */
  size_t source_len;
  const loam_op *up;             /* the operations of 'up', in order */
  int nup;
  const loam_op *down;           /* of 'down' (a derived 'down': 'loam_op_inverse' of each
                                    operation of 'up', last first) */
  int ndown;
  int non_transactional;         /* steps run one by one, journaled, outside a transaction
                                    (those of up, and of down when reverted) */
} loam_migration;

/* Options of a run; start from LOAM_MIGRATE_OPTS_INIT (a negative field is the default). */
typedef struct loam_migrate_opts {
  const char *owner;             /* who runs, named to a migrator that waits ("deploy@host");
                                    NULL: "pid <n>" */
  int lock_wait_ms;              /* how long to wait for another migrator; default 60000 */
  int lock_ttl_ms;               /* the lease, renewed at every migration; default 600000 */
  int lock_timeout_ms;           /* PostgreSQL lock_timeout of DDL; default 2000 */
  int ddl_retries;               /* tries again after a lock timeout; default 5 */
  int out_of_order;              /* non-zero: apply a pending migration older than the newest
                                    applied one */
  const char *to;                /* up: stop after this version; NULL: all */
  loam_migrate_progress_fn progress;   /* may be NULL */
  void *progress_ud;
} loam_migrate_opts;

#define LOAM_MIGRATE_OPTS_INIT { NULL, -1, -1, -1, -1, 0, NULL, NULL, NULL }

/*
** Applies the pending migrations among the 'n' of 'migs' (in any order:
** they are sorted by version), up to 'opts->to'.  '*applied' (may be
** NULL) receives how many were applied, also after a failure (those
** before it stay applied).  Creates the runner's tables when missing.
*/
LOAM_API int loam_migrate_up (loam_conn *conn,
                              const loam_migration *migs, int n,
                              const loam_migrate_opts *opts,   /* may be NULL */
                              int *applied,                    /* OUT: may be NULL */
                              loam_error *err);                /* OUT: may be NULL */

/*
** Reverts the 'steps' most recently applied migrations, newest first,
** each by its 'down' operations in a transaction with the removal of its
** history row (a 'non_transactional' one: step by step, journaled, then
** the removal).  A migration to revert must be among 'migs' (else
** LOAM_E_MIGRATION_CONFLICT naming it); '*reverted' as for up.  Unlike
** up, down and status take the migrations as given: two heads or a
** missing parent do not stop them.
*/
LOAM_API int loam_migrate_down (loam_conn *conn,
                                const loam_migration *migs, int n,
                                int steps,
                                const loam_migrate_opts *opts, /* may be NULL */
                                int *reverted,                 /* OUT: may be NULL */
                                loam_error *err);              /* OUT: may be NULL */

typedef enum loam_migration_state {
  LOAM_MIG_PENDING = 1,          /* not applied */
  LOAM_MIG_APPLIED,
  LOAM_MIG_CHANGED,              /* applied, but its source changed since */
  LOAM_MIG_MISSING,              /* applied, but not among the migrations given */
  LOAM_MIG_OUT_OF_ORDER,         /* pending, and older than the newest applied one */
  LOAM_MIG_PARTIAL               /* non-transactional, or with backfills: some steps done
                                    (journaled) */
} loam_migration_state;

typedef struct loam_migration_status {
  const char *version;
  const char *name;              /* NULL for a missing one */
  loam_migration_state state;
  const char *applied_at;        /* as the history table keeps it; NULL when not applied */
  int64_t duration_ms;
  int steps_done;                /* LOAM_MIG_PARTIAL: the steps journaled */
} loam_migration_status;

/*
** The state of each migration of 'migs' and of each applied one missing
** from it, by version, into '*out' ('*nout' of them), which the caller
** frees with 'loam_migration_status_free'.  Reads only: takes no lock and
** creates nothing (no history table: everything is pending).
*/
LOAM_API int loam_migrate_status (loam_conn *conn,
                                  const loam_migration *migs, int n,
                                  loam_migration_status **out,   /* OUT */
                                  int *nout,                     /* OUT */
                                  loam_error *err);              /* OUT: may be NULL */

/* Frees a status list.  NULL is fine. */
LOAM_API void loam_migration_status_free (loam_migration_status *s);

/*
** The checksum of a migration's source as the history keeps it: 16
** lower-case hex digits of loam's 64-bit hash and a NUL, into 'out'.
*/
LOAM_API void loam_migration_checksum (const char *source, size_t len, char out[17]);

/* }====================================================================== */


/* {======================================================================
** Batched loading (batch.c)
**
** The batched ("select-in") loader fetches the child rows of many parents
** in one statement per relation, whatever the number of parents: the
** parent keys travel as one list (one parameter on SQLite, one array per
** key column on PostgreSQL), so a relation keeps one SQL text (and one
** prepared statement) for 1 or 100,000 parents.  On PostgreSQL
** the statements of one call share one round trip (pipeline mode).
**
** It rests on three builder constructs, usable on their own (builder.c,
** render.c; ownership and errors as for every 'loam_qb_*' function):
** ======================================================================= */

/*
** SELECT ... FROM (sub) AS "alias": 'sub' must be a SELECT of 'qb' and
** 'alias' is required (PostgreSQL wants one).  The clauses are added with
** the usual setters.
*/
LOAM_API loam_qstmt *loam_qb_select_from (loam_qb *qb, loam_qstmt *sub, const char *alias);

/*
** row_number() OVER ([PARTITION BY p1, ...] [ORDER BY o1 ASC|DESC ...]):
** 'npartition' expressions, then 'norder' ORDER BY items whose flags are
** those of 'loam_qb_order' ('flags' may be NULL: all ASC).  The arrays
** are copied.  Both lists may be empty: row_number() OVER ().
*/
LOAM_API loam_expr *loam_qb_row_number (loam_qb *qb,
                                        loam_expr *const *partition, int npartition,
                                        loam_expr *const *order, const int *flags, int norder);

/*
** (e1, e2, ...) IN (the 'ntuples' tuples of 'vals'), exact tuple matching
** with ONE list whatever 'ntuples':
**   SQLite      ((e1, e2) IN (SELECT k1, k2 FROM loam_keys(?)))
**                 one blob parameter, the tuples row after row
**   PostgreSQL  ((e1, e2) IN (SELECT * FROM unnest($1::T1[], $2::T2[])))
**                 one array parameter per expression
** 'vals' holds 'ntuples' rows of 'nexprs' values, row after row (copied).
** Each position has one element type, by the rules of 'loam_qb_in_list'
** (NULL and blobs refused, integers mixed with doubles become doubles).
** 'negate' gives NOT IN.  No tuple renders (1 = 0), negated (1 = 1).
** One expression renders exactly as 'loam_qb_in_list' does: (e IN ...).  At most 32
** expressions (LOAM_E_MISUSE beyond).
*/
LOAM_API loam_expr *loam_qb_in_tuples (loam_qb *qb, loam_expr *const *exprs, int nexprs,
                                       const loam_value *vals, int ntuples, int negate);

/*
** Tells the IN tuples 'in' (made by 'loam_qb_in_tuples') the loam type of
** the column each expression is, as 'loam_qb_in_coltype' does for a list:
** 'coltypes' holds 'n' 'loam_col_type' values (0 for none), 'n' being the
** number of expressions; the array is copied.  On PostgreSQL the text
** values of a position compared with a date, timestamp or numeric column
** are then bound as that type's array.  Given an IN list and 'n' = 1 it
** is 'loam_qb_in_coltype'.  Anything else, or an unknown type, is
** LOAM_E_MISUSE.
*/
LOAM_API loam_expr *loam_qb_in_coltypes (loam_qb *qb, loam_expr *in, const int *coltypes, int n);

/*
** One relation to load.  Start from LOAM_BATCH_SPEC_INIT.  The loader
** adds clauses to 'query' as the setters would (hidden key columns, the
** key predicate) and, for a per-key limit, moves its ORDER BY into the
** window: the statement belongs to the spec from the call on and must not
** be given to another spec.  Everything else is borrowed for the duration
** of the call.
*/
typedef struct loam_batch_spec {
  loam_qb *qb;                 /* the builder of 'query' and 'key' */
  loam_qstmt *query;           /* a SELECT of 'qb' without LIMIT or OFFSET: the child rows */
  loam_expr *const *key;       /* 'nkey' child-side key expressions ("items"."order_id") */
  int nkey;                    /* 1, or more for a composite key */
  const loam_value *keys;      /* 'nkeys' parent keys of 'nkey' values each, key after key */
  int nkeys;                   /* the number of parents; duplicates and NULLs allowed */
  int64_t limit_per_key;       /* at most this many rows per key; 0: no limit */
  int one;                     /* non-zero: a to-one relation, at most one row per key */
  const int *key_coltypes;     /* 'nkey' loam_col_type values of the key columns (0: not
                                  known), or NULL: see 'loam_qb_in_coltypes' */
  int key_indexed;             /* non-zero: the one key column leads an index of its table,
                                  see 'loam_qb_in_indexed' (which lists it applies to) */
} loam_batch_spec;

#define LOAM_BATCH_SPEC_INIT { NULL, NULL, NULL, 0, NULL, 0, 0, 0, NULL, 0 }

/* The rows of a load, grouped by key (opaque). */
typedef struct loam_batch loam_batch;

/*
** Loads the 'nspecs' relations of 'specs' on 'conn'.  For each spec:
**   - the parent keys are deduplicated (exact and typed: the integer 1 and
**     the text '1' differ; a double with an integral value, 1.0, is the
**     integer 1) and a key holding a NULL gets an empty group without
**     being sent.  The keys of one position share one class (numbers,
**     text or booleans); blobs are refused (LOAM_E_MISUSE naming the key);
**   - the key expressions join the result columns as "__loam_k1"... (no
**     result column at all becomes *, plus them), and the key predicate
**     ANDs into WHERE: exact tuples ('loam_qb_in_tuples'), which for one
**     key is the IN list of 'loam_qb_in_list';
**   - with 'limit_per_key', the statement moves into
**       SELECT * FROM (SELECT ..., row_number() OVER (PARTITION BY keys
**       ORDER BY the query's ORDER BY) AS "__loam_rn" FROM ...) AS
**       "__loam_sub" WHERE ("__loam_rn" <= ?) ORDER BY "__loam_rn" ASC;
**   - with 'key_indexed', a one-column key goes to PostgreSQL as
**     (e = ANY($1::T[])), which probes the index ('loam_qb_in_indexed');
**   - with 'key_coltypes', text keys at a date, timestamp or numeric
**     position go to PostgreSQL as that type's array, and at a numeric
**     position they match a row's numeric text by value as decimals
**     ('2.5' matches '2.50'; no rounding through doubles);
**   - rows are grouped by their key values (a hash lookup), each group in
**     the order of the statement; with 'one' a group keeps its first row.
**     A row whose key equals no parent key exactly (a case-insensitive
**     collation, say) is dropped.
** A spec whose keys are all NULL sends nothing.  On PostgreSQL, two or
** more statements go out in ONE round trip (pipeline mode) and run in one
** implicit transaction when none is open; on SQLite they run one after
** the other.  Every statement passes through the statement cache and the
** connection's instrumentation.
**
** Nothing is sent when a spec is malformed (the builder's first error or
** LOAM_E_MISUSE).  When a statement fails, the first failure is reported
** (its code and SQLSTATE) and the connection stays usable; as with any
** failed statement, an open transaction is aborted.  On success '*out'
** receives a result the caller frees with 'loam_batch_free'; it does not
** depend on the builders or the keys.  On failure '*out' is NULL.
*/
LOAM_API int loam_batch_load (loam_conn *conn,
                              const loam_batch_spec *specs,
                              int nspecs,
                              loam_batch **out,       /* OUT: new result */
                              loam_error *err);       /* OUT: may be NULL */

/* Frees a result.  NULL is fine. */
LOAM_API void loam_batch_free (loam_batch *b);

/*
** Reading a result.  's' is a spec (0..nspecs-1), 'k' a parent key
** position (0..nkeys-1 of that spec), 'g' a group, 'row' a row of the
** spec (0..loam_batch_row_count-1).  Out-of-range arguments give -1
** (counts: 0; names: NULL; 'loam_batch_column': LOAM_ERROR).
*/

/*
** The round trips the load took: 1 for a PostgreSQL pipeline of any
** length, one per statement otherwise, 0 when no spec had a key to send.
*/
LOAM_API int loam_batch_round_trips (const loam_batch *b);

/* Equal keys share one group: the group of key position 'k', or -1 for a key holding NULL. */
LOAM_API int loam_batch_key_group (const loam_batch *b, int s, int k);

/* The distinct non-NULL keys of spec 's'. */
LOAM_API int loam_batch_group_count (const loam_batch *b, int s);

/* The number of rows of group 'g', and the row number of its 'j'-th row (in statement order). */
LOAM_API int loam_batch_group_size (const loam_batch *b, int s, int g);
LOAM_API int loam_batch_group_row (const loam_batch *b, int s, int g, int j);

/* The rows of spec 's' in all groups together. */
LOAM_API int loam_batch_row_count (const loam_batch *b, int s);

/* The result columns of spec 's', without the hidden key and row-number columns. */
LOAM_API int loam_batch_column_count (const loam_batch *b, int s);

/* A column name, valid until 'loam_batch_free'. */
LOAM_API const char *loam_batch_column_name (const loam_batch *b, int s, int col);

/*
** Writes column 'col' of row 'row' of spec 's' into '*out', typed as
** 'loam_column' gives it.  Text and blob bytes belong to 'b' and stay
** valid until 'loam_batch_free'; text is NUL-terminated.
*/
LOAM_API int loam_batch_column (const loam_batch *b, int s, int row, int col,
                                loam_value *out /* OUT */);

/* }====================================================================== */


/* {======================================================================
** Instrumentation (trace.c; fingerprints and redaction: redact.c)
**
** Every statement that reaches a connection through 'loam_query' (and so
** 'loam_exec', the batch loader and pipelines) is accounted once, when it
** ends: at LOAM_DONE, at a failure (including one inside 'loam_query'
** itself: a syntax error, a wrong parameter count), or when it is closed
** before its end ('loam_stmt_close', or 'loam_conn_close' finalizing it).
** A call of 'loam_query' with no connection, no SQL or no 'out' is not.
**
** Time runs from the start of 'loam_query' to that end, on the monotonic
** clock; for a statement read row by row it includes the time the caller
** spent between rows.  Without a trace hook the cost per statement is two
** clock reads and a few additions.
** ======================================================================= */

/*
** Per-connection counters since the connection opened.  They only grow,
** so a host subtracts two snapshots to get, say, the queries of one request.
*/
typedef struct loam_stats {
  int64_t queries;      /* statements accounted, failed ones included */
  int64_t rows;         /* rows read (each LOAM_ROW from 'loam_step') */
  int64_t errors;       /* statements that failed */
  int64_t elapsed_ns;   /* their total time, in nanoseconds */
} loam_stats;

/* Writes the counters of 'conn' into '*out' (all zero for a NULL 'conn'). */
LOAM_API void loam_conn_stats (const loam_conn *conn, loam_stats *out /* OUT */);

/*
** How many statements that may have written ran on 'conn' since it
** opened (0 for NULL): every statement of a kind other than
** LOAM_SQL_SELECT that reached the backend (raw or rendered INSERT,
** UPDATE, DELETE, DDL, BEGIN and COMMIT, and text of no known kind such
** as 'WITH'), each COPY of 'loam_insert_rows', and a SELECT with the
** word INTO outside quotes (PostgreSQL's 'SELECT ... INTO t').  Another
** SELECT is taken as a read: one that calls a function that writes is not
** counted (run it in a transaction).  It only grows; read-your-writes on replicas
** compares it before and after a checkout ('loam_pool_acquire_write').
*/
LOAM_API uint64_t loam_conn_writes (const loam_conn *conn);

/*
** What a trace hook receives about one statement.  The structure and
** 'sql' are borrowed: valid during the hook call only (copy what you keep).
*/
typedef struct loam_trace_event {
  loam_conn *conn;          /* the connection that ran it */
  const char *sql;          /* the text as given to 'loam_query'; never NULL */
  int nparams;              /* parameters bound */
  uint64_t fingerprint;     /* loam_fingerprint(sql) */
  int64_t rows;             /* rows read before the end */
  int64_t elapsed_ns;       /* from 'loam_query' to the end */
  loam_errcode errcode;     /* LOAM_E_NONE unless it failed (closing early is no failure) */
  const loam_value *params; /* the 'nparams' values bound (NULL when none); for a
                               statement read row by row, a copy made for the hook */
  int64_t wait_ns;          /* on a pool's connection, the wait of the checkout the
                               statement is the first of ('loam_pool_acquire'); else 0 */
} loam_trace_event;

/*
** A trace hook.  It runs inside the libloam call that ended the statement
** ('loam_query', 'loam_step', 'loam_stmt_close', 'loam_conn_close', ...),
** so it must not use 'ev->conn' or its statements, must not unwind past
** that call (longjmp, C++ exceptions) and should be quick: record the event
** and act on it after the call returned.
*/
typedef void (*loam_trace_fn) (void *ud, const loam_trace_event *ev);

/*
** Sets the trace hook of 'conn' ('fn' NULL removes it); 'ud' is passed
** back untouched and must stay valid while the hook is set or the
** connection open.  Statements that started while no hook was set are
** counted but not reported to a hook set later.  NULL 'conn' is ignored.
*/
LOAM_API void loam_conn_set_trace (loam_conn *conn, loam_trace_fn fn, void *ud);

/*
** The fingerprint of 'sql': the 64-bit FNV-1a hash of its normalised text
** ('loam_sql_normalize'), so statements that differ only in their values
** share it.  It needs no memory and cannot fail; NULL hashes as "".
*/
LOAM_API uint64_t loam_fingerprint (const char *sql);

/*
** Writes the normalised text of 'sql' into 'buf' (of 'size' bytes, always
** NUL-terminated when 'size' > 0, truncated if too small; 'buf' may be NULL
** when 'size' is 0) and returns its full length without the NUL, as
** snprintf does.  The result is never longer than 'sql', so a buffer of
** strlen(sql) + 1 bytes always suffices.  Normalising, with the lexer
** that reads raw SQL for PostgreSQL:
**   - string literals (also E'', X'', B'', N'' and dollar-quoted ones),
**     numbers, TRUE and FALSE become '?';
**   - placeholders ('?', '$1', '?1') become '?'; '??' stays as written;
**   - 'IN (' a list of such values ')' becomes 'IN (?)', whatever its length;
**   - comments are dropped, each run of blanks and comments becomes one
**     space (none at either end), and a final ';' goes;
**   - everything else is kept as written: keywords keep their case, quoted
**     identifiers their contents, operators their spacing ('a=?' and
**     'a = ?' differ); a sign before a number stays ('-?').
** SQL that libloam renders is already parameterised, so its normalised
** form is its text with '$n' written '?'.
*/
LOAM_API size_t loam_sql_normalize (const char *sql, char *buf, size_t size);

/* What 'loam_sql_redact' writes in place of a string literal and of a number. */
#define LOAM_REDACTED_STRING  "'\xe2\x80\xa6'"   /* U+2026, the ellipsis, quoted */
#define LOAM_REDACTED_NUMBER  "\xe2\x80\xa6"     /* the ellipsis alone */

/*
** Writes 'sql' for a log line into 'buf' (of 'size' bytes, always
** NUL-terminated when 'size' > 0, truncated if too small; 'buf' may be
** NULL when 'size' is 0) and returns its full length without the NUL, as
** snprintf does (a literal shorter than its mark makes the text longer).
** With the lexer of 'loam_sql_normalize':
**   - every string literal (also E'', X'', B'', N'' and dollar-quoted ones,
**     and one left open, which runs to the end) becomes '…', every number
**     … (a sign before it stays);
**   - comments are dropped, each run of blanks and comments becomes one
**     space (none at either end), so the text is one line;
**   - everything else is kept as written: placeholders, keywords, TRUE,
**     FALSE and NULL, quoted identifiers.
** No byte of a literal's contents is copied.  A double-quoted word is a
** name and is kept, even where SQLite would take it for a string.
*/
LOAM_API size_t loam_sql_redact (const char *sql, char *buf, size_t size);

/*
** Writes the 'nparams' values 'params' bound to 'sql' for a log line into
** 'buf' (as 'loam_sql_redact' writes), "$1=<text 12>, $2=<integer>, $3=NULL":
** each value as its type and, for text and blob, its size in bytes; NULL
** as NULL.  A value is shown as SQL would read it ('ada@example.com',
** 42, TRUE, x'00ff'; control bytes of text as \xNN) only when the column
** it goes with is allowed by an entry of 'allow', a NULL-terminated array
** (NULL: nothing allowed) of "table.column" or "column" (any table),
** written without quotes and matched without regard to case (a quoted
** name of the SQL is compared without its quotes).  The column is read
** from the text around the placeholder: 'col = ?' (also <, >, <=, >=, <>,
** !=, LIKE, ILIKE; 't.col' names table 't', else the statement's table,
** the first after FROM, INTO or UPDATE), 'col [NOT] IN (?, ...)' and
** anything inside those parentheses, 'col = ANY(?)', 'SET col = ?', the
** rows of 'INSERT INTO t (cols) VALUES (...)'; 'LIMIT ?' and 'OFFSET ?'
** are the columns 'limit' and 'offset'.  A parameter in no such place is
** never shown.  Placeholders are '?' (counted in order), '$n' and '?n'.
** Without memory for the column search, no value is shown.
*/
LOAM_API size_t loam_sql_params_redact (const char *sql, const loam_value *params,
                                        int nparams, const char *const *allow, char *buf,
                                        size_t size);

/* }====================================================================== */

#ifdef __cplusplus
}
#endif

#endif
