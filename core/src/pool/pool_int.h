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
  const loam_pool *via;      /* a replica's: the pool it was checked out through, else NULL */
  char tag[LOAMP_TAG_MAX];
} loamP_slot;



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
  int own;                   /* a routing's own, in no list: no other open finds it */
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
  char **rurls;              /* the replica URLs it was opened with, for a second open */
  int nrurls;
  loam_replicas *rs;         /* their routing, NULL until the first checks ran */
  int rout;                  /* replica connections checked out through this pool */
};

/* A checked-out connection as a report shows it, copied under the lock. */
typedef struct loamP_holder {
  int out;                   /* checked out; else being opened, tried or handed back */
  int64_t held_ns;
  int pid;
  int abandoned;             /* a leak report: handed back by 'loam_pool_abandon' */
  int waiting;               /* in a transaction whose BEGIN waits for its first statement */
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

/*
** Checks 'n' replica URLs for a database at 'url' (NULL: not known);
** 'fname' names the caller in the messages.
*/
LOAMI_FUNC int loamP_replicas_check (const char *fname, const char *url,
                                     const char *const *urls, int n, loam_error *err);
/*
** A pool's replicas: its copies of the URLs ('loamP_replicas_init', no
** I/O, at its creation), whether a second open names the same, and their
** routing, opened once the process's list of pools is free again
** ('loamP_replicas_start': a replica that is down is only skipped).
*/
LOAMI_FUNC int loamP_replicas_init (loam_pool *p, const loam_pool_opts *o, loam_error *err);
LOAMI_FUNC int loamP_replicas_same (const loam_pool *p, const loam_pool_opts *o);
LOAMI_FUNC int loamP_replicas_start (loam_pool *p, loam_error *err);
/* Frees them, with their routing (the pool is being freed: nothing of a replica is out). */
LOAMI_FUNC void loamP_replicas_free (loam_pool *p);
/* The hook of the routing follows the pool's. */
LOAMI_FUNC void loamP_replicas_set_hook (loam_replicas *rs, loam_pool_hook fn, void *ud);
/*
** Hands 'c' back to the replica pool it came from through 'p'; LOAM_E_MISUSE
** ('miss') when it is none of them.  Without the lock.
*/
LOAMI_FUNC int loamP_replica_release (loam_pool *p, loam_conn *c, int abandoned,
                                      const char *miss, loam_error *err);
/*
** Whether a replica that replayed up to 'replay' has what was written
** before the primary's insert position 'need', with the primary's WAL
** page and segment sizes.
*/
LOAMI_FUNC int loamP_caught_up (uint64_t replay, uint64_t need, uint64_t block,
                                uint64_t segment);
/*
** 'loam_pool_open'; with 'own', a pool of the caller's own, which the
** process's list does not hold, so that no other open finds it (the
** replicas of a routing with 'own_pools').
*/
LOAMI_FUNC int loamP_open (const char *url, const loam_pool_opts *opts, int own,
                           loam_pool **out, loam_error *err);
/* Under the lock: the pool may be freed (closed, nothing out, nobody waiting). */
LOAMI_FUNC int loamP_last_out (loam_pool *p);
/*
** 'loam_pool_acquire_write' (pool.c); with 'nowait', a pool with every
** connection in use fails at once (LOAM_E_POOL_TIMEOUT, nothing counted)
** instead of waiting: a replica's check does not queue behind its reads.
*/
LOAMI_FUNC int loamP_acquire (loam_pool *p, loam_read_token *tok, int nowait, const char *tag,
                              loam_conn **out, loam_error *err);

/*
** Marks 'tok' when a checkout made with it and still held has run a
** statement that may have written since it was checked out (pool.c):
** a read with the token sees them before the write checkout goes back.
*/
LOAMI_FUNC void loamP_held_writes (loam_pool *p, loam_read_token *tok);
/*
** Whether 'c' is checked out of replica pool 'sub' through pool 'via'
** (pool.c); with 'set', records first that it was.  Takes 'sub''s lock.
*/
LOAMI_FUNC int loamP_via (loam_pool *sub, loam_conn *c, const loam_pool *via, int set);

/* }====================================================================== */

/* Closes the monitoring connection (pool_report.c); the pool is being freed. */
LOAMI_FUNC void loamP_monitor_close (loam_pool *p);

#endif
