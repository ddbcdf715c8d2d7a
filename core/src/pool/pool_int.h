/*
** pool_int.h: the pool's internals, shared by its files: pool.c
** (checkout and release), pool_open.c (options, the one pool per URL,
** opening and closing) and pool_report.c (the messages of an exhausted
** pool and of a leak, with the server's view of each holder).
**
** One mutex guards everything of a pool but the monitoring connection,
** which has a mutex of its own.  A slot is the place of one connection.
** A thread that took a slot out of the idle stack or the empty ones
** ('S_BUSY' with 'out' 0) owns it and may open, check or close its
** connection without the lock; the other threads read a busy slot's
** fields only once 'out' says it is checked out, which is set under the
** lock after that work, so each such read is ordered after the write.
*/
#ifndef LOAM_POOL_INT_H
#define LOAM_POOL_INT_H

#include <pthread.h>

#include "conn/conn_int.h"

#define LOAMP_TAG_MAX 96
#define LOAMP_MAX_REPLICAS 16

/* Buckets of the wait histogram: 8 per power of two (see 'loamP_bucket'). */
#define LOAMP_NBUCKETS 496

enum { LOAMP_S_EMPTY = 0, LOAMP_S_IDLE, LOAMP_S_BUSY };

typedef struct loamP_slot {
  loam_conn *conn;
  int state;                 /* LOAMP_S_* */
  int out;                   /* checked out to a caller (not being opened or reset) */
  int leaked;                /* reported as a leak during this checkout */
  int pid;                   /* the server process (PostgreSQL), else 0 */
  int64_t opened_ns;
  int64_t expires_ns;        /* end of its lifetime, jitter included; INT64_MAX: none */
  int64_t idle_since_ns;
  int64_t acquired_ns;
  int64_t checkout;          /* the process's number of this checkout (pool.c) */
  loam_read_token *tok;      /* 'loam_pool_acquire_write': marked at release after a write */
  uint64_t writes;           /* 'loam_conn_writes' of 'conn' at the checkout */
  char tag[LOAMP_TAG_MAX];
} loamP_slot;

/*
** One read replica of a pool (replica.c), guarded by the pool's lock.
** The thread that set 'checking' checks it without the lock; the others
** go by the last check meanwhile.
*/
typedef struct loamP_replica {
  char *url;
  loam_pool *sub;            /* its pool, NULL until a check first reached it */
  int state;                 /* -1 never checked, 0 skipped, 1 usable */
  int checking;
  int64_t checked_ns;        /* when the last check started */
  uint64_t replay;           /* its replay position at the last check */
  uint64_t wait_lsn;         /* WAL it had received and not replayed, seen at 'wait_since_ns' */
  int64_t wait_since_ns;     /* 0: none waiting */
  int64_t lag_ms;
  int64_t reads;
  int out;                   /* its connections checked out through the pool */
  char error[256];
} loamP_replica;

struct loam_pool {
  pthread_mutex_t mu;
  pthread_cond_t cv;         /* a slot became idle or empty, or the pool closed */
  char *url;
  loam_pool_opts o;          /* with every default filled in */
  loam_backend backend;
  int pgbouncer;             /* the URL has '?pgbouncer=transaction' */
  int nslots;                /* size + max_overflow */
  loamP_slot *slots;
  int *idle;                 /* stack of idle slot numbers, the most recent last */
  int nidle;
  int nopen;                 /* slots holding or opening a connection */
  int nbusy;                 /* slots checked out, being opened or reset */
  int nwaiting;
  int refs;                  /* opens not yet closed */
  int closed;
  int64_t dead_ns;           /* when a dead connection was last met: idle ones older are tried */
  int64_t next_sweep_ns;
  uint64_t rng;
  loam_pool_hook hook;
  void *hook_ud;
  /* Counters of 'loam_pool_stats'. */
  int64_t acquires, timeouts, leaks, opened, discarded, wait_max_ns;
  int64_t hist[LOAMP_NBUCKETS];
  /* The monitoring connection (pool_report.c), opened at the first report that needs it. */
  pthread_mutex_t mon_mu;
  loam_conn *mon;
  loam_pool *next;           /* the process's list of pools (pool_open.c) */
  /* Read replicas (replica.c). */
  loamP_replica *replicas;
  int nreplicas;
  int next_replica;          /* where the next read starts looking: replicas take turns */
  int rout;                  /* replica connections checked out through this pool */
  int64_t primary_reads;
  int64_t wal_block, wal_segment;   /* the primary's WAL page and segment sizes, once read */
};

/* A checked-out connection as a report shows it, copied under the lock. */
typedef struct loamP_holder {
  int out;                   /* checked out; else being opened, tried or handed back */
  int64_t held_ns;
  int pid;
  int abandoned;             /* a leak report: handed back by 'loam_pool_abandon' */
  char tag[LOAMP_TAG_MAX];
} loamP_holder;

/* The histogram bucket of a wait of 'ns' nanoseconds, and the smallest wait of bucket 'b'. */
LOAMI_FUNC int loamP_bucket (int64_t ns);
LOAMI_FUNC int64_t loamP_bucket_floor (int b);

/*
** Frees a pool that is closed with nothing checked out or waiting
** (pool_open.c): its idle connections, the monitoring one, the memory.
*/
LOAMI_FUNC void loamP_destroy (loam_pool *p);

/*
** Under the lock: the end of the lifetime of a connection opened at
** 'opened', a random point in the last tenth of it so that connections
** opened together are not all replaced together (pool.c).
*/
LOAMI_FUNC int64_t loamP_expiry (loam_pool *p, int64_t opened);

/* Copies 'tag' (NULL: "") into 'dst', cut to fit LOAMP_TAG_MAX. */
LOAMI_FUNC void loamP_copy_tag (char *dst, const char *tag);

/*
** Fills 'err' with LOAM_E_POOL_TIMEOUT for a wait of 'waited_ns' that
** found the pool exhausted: 'inuse' and 'waiting' (the others) at that
** moment, and the 'n' holders.  On PostgreSQL it reads each holder's
** server state on the monitoring connection (pool_report.c).  Called
** without the pool's lock.
*/
LOAMI_FUNC int loamP_timeout_error (loam_pool *p, int64_t waited_ns, int inuse, int waiting,
                                    const loamP_holder *h, int n, loam_error *err);

/* Writes the leak report of 'h' into 'b' (pool_report.c). */
LOAMI_FUNC void loamP_leak_message (loam_pool *p, const loamP_holder *h, loam__buf *b);

/* Calls the hook, or writes to stderr without one; 'fn' and 'ud' read under the lock. */
LOAMI_FUNC void loamP_notify (loam_pool_hook fn, void *ud, loam_pool_event ev, const char *msg);

/* {======================================================================
** Read replicas (replica.c)
** ======================================================================= */

/* Checks the replica options of '*o' for a pool over 'url' (LOAM_E_INVALID_URL, LOAM_E_MISUSE). */
LOAMI_FUNC int loamP_replicas_check (const char *url, const loam_pool_opts *o, loam_error *err);
/* Copies the replica URLs of '*o' into the new pool 'p' (no I/O). */
LOAMI_FUNC int loamP_replicas_init (loam_pool *p, const loam_pool_opts *o, loam_error *err);
/* Whether '*o' names the same replicas as 'p', in the same order. */
LOAMI_FUNC int loamP_replicas_same (const loam_pool *p, const loam_pool_opts *o);
/*
** The first check of every replica of a new pool, without any lock: one
** that is down is only skipped; the pool's options refused by a
** replica's pool are the error.
*/
LOAMI_FUNC int loamP_replicas_start (loam_pool *p, loam_error *err);
/*
** Under the lock, at the pool's last close: copies the replicas' pools
** into 'subs' (LOAMP_MAX_REPLICAS, NULL for one never reached) and
** returns how many, for the caller to close once it released the lock.
*/
LOAMI_FUNC int loamP_replicas_detach (loam_pool *p, loam_pool **subs);
/* Frees what 'loamP_replicas_init' made. */
LOAMI_FUNC void loamP_replicas_free (loam_pool *p);
/*
** Hands 'c' back to the replica pool it came from; LOAM_E_MISUSE (the
** message of 'slot_of', 'miss') when it is none of them.  Without the lock.
*/
LOAMI_FUNC int loamP_replica_release (loam_pool *p, loam_conn *c, int abandoned,
                                      const char *miss, loam_error *err);
/* Under the lock: the pool may be freed (closed, nothing out, nobody waiting). */
LOAMI_FUNC int loamP_last_out (loam_pool *p);
/* 'loam_pool_acquire_write' (pool.c). */
LOAMI_FUNC int loamP_acquire (loam_pool *p, loam_read_token *tok, const char *tag,
                              loam_conn **out, loam_error *err);

/* }====================================================================== */

/* Closes the monitoring connection (pool_report.c); the pool is being freed. */
LOAMI_FUNC void loamP_monitor_close (loam_pool *p);

#endif
