/*
** pool.c: checking connections out of a pool and back in.
**
** The path a busy program takes on every request is one lock, a pop from
** the idle stack (the most recently used connection, whose cache is warm)
** and a clock read, then one lock more at the release; all that can take
** time (opening, a health check's round trip, the rollback of a
** transaction left open) happens with the lock released, on a slot the
** thread owns.  The pool has no thread of its own, so each call also
** does a little housekeeping, at most every SWEEP_NS: it closes the
** connection idle longest when it sat past the idle timeout, and finds
** the checkouts held past the leak threshold.  What it found is closed or
** reported once the lock is released.
*/
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool/pool_int.h"

#define SWEEP_NS INT64_C(10000000)
/* At most this many closings and leak reports per sweep; the rest wait for the next one. */
#define SWEEP_MAX 4
#define MS(ms) ((int64_t)(ms) * 1000000)


int loamP_bucket (int64_t ns) {
  int m;
  if (ns < 8) return ns < 0 ? 0 : (int)ns;
  m = 63 - __builtin_clzll((unsigned long long)ns);
  return (m - 2) * 8 + (int)((ns >> (m - 3)) & 7);
}


int64_t loamP_bucket_floor (int b) {
  int m;
  if (b < 8) return b;
  m = b / 8 + 2;
  return (int64_t)(8 + b % 8) << (m - 3);
}


void loamP_copy_tag (char *dst, const char *tag) {
  size_t n = tag ? strlen(tag) : 0;
  if (n >= LOAMP_TAG_MAX) n = LOAMP_TAG_MAX - 1;
  if (n > 0) memcpy(dst, tag, n);
  dst[n] = '\0';
}


/* What a sweep or a release leaves to be done once the lock is released. */
typedef struct work {
  loam_conn *close[SWEEP_MAX + 1];
  int nclose;
  loamP_holder leak[SWEEP_MAX];
  int nleak;
  loam_pool_hook hook;
  void *hook_ud;
} work;


/* Under the lock: the idle connection unused longest goes when past the idle timeout; leaks. */
static void sweep (loam_pool *p, int64_t now, work *w) {
  int i;
  if (now < p->next_sweep_ns) return;
  p->next_sweep_ns = now + SWEEP_NS;
  if (p->o.idle_timeout_ms != LOAM_FOREVER) {
    while (p->nidle > 0 && w->nclose < SWEEP_MAX &&
           now - p->slots[p->idle[0]].idle_since_ns >= MS(p->o.idle_timeout_ms)) {
      loamP_slot *s = &p->slots[p->idle[0]];
      w->close[w->nclose++] = s->conn;
      s->conn = NULL;
      s->state = LOAMP_S_EMPTY;
      p->nopen--;
      p->nidle--;
      memmove(p->idle, p->idle + 1, sizeof *p->idle * (size_t)p->nidle);
    }
  }
  if (p->o.leak_threshold_ms != LOAM_FOREVER) {
    for (i = 0; i < p->nslots && w->nleak < SWEEP_MAX; i++) {
      loamP_slot *s = &p->slots[i];
      if (s->out && !s->leaked && now - s->acquired_ns >= MS(p->o.leak_threshold_ms)) {
        loamP_holder *h = &w->leak[w->nleak++];
        s->leaked = 1;
        p->leaks++;
        h->held_ns = now - s->acquired_ns;
        h->pid = s->pid;
        h->out = 1;
        h->abandoned = 0;
        h->waiting = 0;
        memcpy(h->tag, s->tag, sizeof h->tag);
      }
    }
  }
  w->hook = p->hook;
  w->hook_ud = p->hook_ud;
}


/* Without the lock: closes and reports what a sweep or a release left. */
static void finish_work (loam_pool *p, work *w) {
  int i;
  for (i = 0; i < w->nclose; i++) loam_conn_close(w->close[i]);
  for (i = 0; i < w->nleak; i++) {
    loam__buf b = LOAM__BUF_INIT;
    loamP_leak_message(p, &w->leak[i], &b);
    if (loam__buf_cstr(&b) != NULL) loamP_notify(w->hook, w->hook_ud, LOAM_POOL_LEAK, b.p);
    loam__buf_free(&b);
  }
}


int64_t loamP_expiry (loam_pool *p, int64_t opened) {
  int64_t life, tenth;
  if (p->o.max_lifetime_ms == LOAM_FOREVER) return INT64_MAX;
  life = MS(p->o.max_lifetime_ms);
  tenth = life / 10;
  p->rng ^= p->rng << 13;
  p->rng ^= p->rng >> 7;
  p->rng ^= p->rng << 17;
  return opened + life - (tenth > 0 ? (int64_t)(p->rng % (uint64_t)tenth) : 0);
}


/* Under the lock: the acquire ends; its wait goes into the histogram. */
static void account_wait (loam_pool *p, int64_t waited) {
  p->hist[loamP_bucket(waited)]++;
  if (waited > p->wait_max_ns) p->wait_max_ns = waited;
}


/* Numbers every checkout of the process, so that no two pools share one. */
static _Atomic int64_t checkouts;


/* Under the lock: the slot is checked out from 'now' on. */
static void check_out (loam_pool *p, loamP_slot *s, loam_read_token *tok, const char *tag,
                       int64_t now, int64_t t0) {
  s->out = 1;
  s->tok = tok;
  s->via = NULL;
  s->writes = s->conn->writes;
  s->leaked = 0;
  s->acquired_ns = now;
  s->conn->pool_wait_ns = now - t0;
  loamP_copy_tag(s->tag, tag);
  p->acquires++;
  s->checkout = atomic_fetch_add(&checkouts, 1) + 1;
  account_wait(p, now - t0);
}


/* {======================================================================
** The pool self-deadlock: a thread that holds a connection inside a
** transaction and asks the same pool for another waits, when the pool is
** exhausted, for a connection only it can give back.  Each thread keeps
** its own checkouts (thread-local, so nothing is shared), and an acquire
** looks at them first; a checkout is told from a later one of the same
** slot by its number, so a connection another thread abandoned is never
** read.
** ======================================================================= */

#define HELD_MAX 8

typedef struct held {
  loam_pool *pool;
  int slot;
  int64_t checkout;
} held;

static _Thread_local held mine[HELD_MAX];
static _Thread_local int nmine;


/*
** Under the lock: the message naming a checkout of this thread from 'p'
** that is inside a transaction, into 'b'; returns whether there is one.
*/
static int nested (loam_pool *p, int64_t now, loam__buf *b) {
  int i;
  for (i = 0; i < nmine; i++) {
    loamP_slot *s;
    if (mine[i].pool != p || mine[i].slot >= p->nslots) continue;
    s = &p->slots[mine[i].slot];
    if (!s->out || s->checkout != mine[i].checkout) continue;
    if (s->conn->tx_depth == 0 && s->conn->drv->in_transaction(s->conn) == LOAM__TX_NONE)
      continue;
    loam__buf_addf(b, "this thread holds a connection of the pool inside a transaction "
                   "(acquired %lld ms ago at %s) and asks for another: when the pool is "
                   "exhausted it waits for itself (a pool self-deadlock); run the work on the "
                   "transaction's connection", (long long)((now - s->acquired_ns) / 1000000),
                   s->tag[0] ? s->tag : "an untagged caller");
    return 1;
  }
  return 0;
}


static void remember (loam_pool *p, loamP_slot *s) {
  if (nmine == HELD_MAX) return;   /* the report is a help, not a guarantee */
  mine[nmine].pool = p;
  mine[nmine].slot = (int)(s - p->slots);
  mine[nmine].checkout = s->checkout;
  nmine++;
}


static void forget (loam_pool *p, loam_conn *c) {
  int i;
  for (i = 0; i < nmine; i++) {
    if (mine[i].pool == p && mine[i].slot < p->nslots && p->slots[mine[i].slot].conn == c) {
      mine[i] = mine[--nmine];
      return;
    }
  }
}

/* }====================================================================== */


/* Under the lock: the slot goes back to the empty ones; a waiter may open it. */
static void empty_slot (loam_pool *p, loamP_slot *s) {
  s->conn = NULL;
  s->state = LOAMP_S_EMPTY;
  s->out = 0;
  p->nopen--;
  p->nbusy--;
  pthread_cond_signal(&p->cv);
}


static int64_t deadline_of (int64_t t0, int ms) {
  return ms == LOAM_FOREVER ? INT64_MAX : t0 + MS(ms);
}


static void to_timespec (int64_t ns, struct timespec *ts) {
  ts->tv_sec = (time_t)(ns / 1000000000);
  ts->tv_nsec = (long)(ns % 1000000000);
}


/*
** Under the lock, for a timeout: copies what the report needs of every
** busy slot; one that is not checked out is being opened, tried or
** handed back, and has no holder to name.
*/
static int holders (loam_pool *p, int64_t now, loamP_holder **out) {
  int i, n = 0;
  loamP_holder *h = malloc(sizeof *h * (size_t)p->nslots);
  *out = h;
  if (h == NULL) return 0;
  for (i = 0; i < p->nslots; i++) {
    loamP_slot *s = &p->slots[i];
    if (s->state != LOAMP_S_BUSY) continue;
    h[n].out = s->out;
    h[n].held_ns = s->out ? now - s->acquired_ns : 0;
    h[n].pid = s->out ? s->pid : 0;
    h[n].abandoned = 0;
    h[n].waiting = s->out && atomic_load_explicit(&s->conn->tx_waiting, memory_order_relaxed);
    memcpy(h[n].tag, s->tag, sizeof h[n].tag);
    n++;
  }
  return n;
}


/* A pool freed by the last waiter or release to leave it is no longer there: it is asked first. */
int loamP_last_out (loam_pool *p) {
  return p->closed && p->nbusy == 0 && p->nwaiting == 0 && p->rout == 0;
}


/*
** Waits for a slot (with 'nowait', not at all); returns it taken (busy,
** not yet 'out'), or NULL with 'err' set.  Under the lock on entry and on
** return.
*/
static loamP_slot *take_slot (loam_pool *p, int64_t t0, int nowait, int *fresh, int *waited,
                              int *freep, loam_error *err) {
  int64_t deadline = deadline_of(t0, p->o.acquire_timeout_ms);
  for (;;) {
    int64_t now;
    int i;
    if (p->closed) {
      *freep = loamP_last_out(p);
      loam__err(err, LOAM_E_MISUSE, "attempt to use a closed pool");
      return NULL;
    }
    if (p->nidle > 0) {
      loamP_slot *s = &p->slots[p->idle[--p->nidle]];
      s->state = LOAMP_S_BUSY;
      p->nbusy++;
      *fresh = 0;
      return s;
    }
    if (p->nopen < p->nslots) {
      for (i = 0; p->slots[i].state != LOAMP_S_EMPTY; i++) {}
      p->slots[i].state = LOAMP_S_BUSY;
      p->nopen++;
      p->nbusy++;
      *fresh = 1;
      return &p->slots[i];
    }
    if (nowait) {
      *freep = loamP_last_out(p);
      loam__err(err, LOAM_E_POOL_TIMEOUT, "every connection of the pool is in use");
      return NULL;
    }
    now = loam__clock_ns();
    if (now >= deadline) {
      loamP_holder *h;
      int n = holders(p, now, &h), inuse = p->nbusy, waiting = p->nwaiting;
      p->timeouts++;
      account_wait(p, now - t0);
      /* Still counted as waiting while the report is made, so a close cannot free the pool. */
      p->nwaiting++;
      pthread_mutex_unlock(&p->mu);
      loamP_timeout_error(p, now - t0, inuse, waiting, h, n, err);
      free(h);
      pthread_mutex_lock(&p->mu);
      p->nwaiting--;
      *freep = loamP_last_out(p);
      return NULL;
    }
    p->nwaiting++;
    *waited = 1;
    if (deadline == INT64_MAX) pthread_cond_wait(&p->cv, &p->mu);
    else {
      struct timespec ts;
      to_timespec(deadline, &ts);
      pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    p->nwaiting--;
  }
}


/*
** Without the lock, on a slot the caller took: replaces a connection
** past its lifetime, tries one that sat idle too long (or since a dead
** one was met) and replaces it when dead, opens one for an empty slot.
** The slot's fields change under the lock only, since a release scans
** them ('slot_of').
*/
static int ready_slot (loam_pool *p, loamP_slot *s, int check, loam_error *err) {
  loam_conn *c = s->conn;
  int64_t now = loam__clock_ns();
  int dead = 0, made = 0;
  if (c != NULL && now >= s->expires_ns) {
    loam_conn_close(c);
    c = NULL;
  }
  else if (c != NULL && check && !c->drv->alive(c, 1)) {
    loam_conn_close(c);
    c = NULL;
    dead = 1;
  }
  if (c == NULL) made = loam_connect(p->url, &p->o.conn, &c, err) == LOAM_OK;
  pthread_mutex_lock(&p->mu);
  if (dead) {
    p->discarded++;
    p->dead_ns = now;
  }
  s->conn = c;
  if (made) {
    now = loam__clock_ns();
    s->pid = c->drv->server_pid(c);
    s->opened_ns = now;
    s->expires_ns = loamP_expiry(p, now);
    p->opened++;
  }
  pthread_mutex_unlock(&p->mu);
  return c != NULL ? LOAM_OK : LOAM_ERROR;
}


int loam_pool_acquire (loam_pool *p, const char *tag, loam_conn **out, loam_error *err) {
  return loamP_acquire(p, NULL, 0, tag, out, err);
}


int loam_pool_acquire_write (loam_pool *p, loam_read_token *tok, const char *tag,
                             loam_conn **out, loam_error *err) {
  return loamP_acquire(p, tok, 0, tag, out, err);
}


int loamP_acquire (loam_pool *p, loam_read_token *tok, int nowait, const char *tag,
                   loam_conn **out, loam_error *err) {
  work w;
  loamP_slot *s;
  int64_t t0, now;
  int fresh = 0, waited = 0, freep = 0, check;
  if (out == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_pool_acquire: 'out' is NULL");
  *out = NULL;
  if (p == NULL) return loam__err(err, LOAM_E_MISUSE, "attempt to use a closed pool");
  w.nclose = w.nleak = 0;
  t0 = loam__clock_ns();
  pthread_mutex_lock(&p->mu);
  sweep(p, t0, &w);
  if (nmine > 0) {
    loam__buf b = LOAM__BUF_INIT;
    if (nested(p, t0, &b)) {
      loam_pool_hook hook = p->hook;
      void *hook_ud = p->hook_ud;
      /* Reported before any wait, with the lock released; the pool cannot go while held. */
      pthread_mutex_unlock(&p->mu);
      if (loam__buf_cstr(&b) != NULL) loamP_notify(hook, hook_ud, LOAM_POOL_NESTED, b.p);
      pthread_mutex_lock(&p->mu);
    }
    loam__buf_free(&b);
  }
  s = take_slot(p, t0, nowait, &fresh, &waited, &freep, err);
  if (s == NULL) {
    pthread_mutex_unlock(&p->mu);
    finish_work(p, &w);
    if (freep) loamP_destroy(p);
    return LOAM_ERROR;
  }
  now = waited ? loam__clock_ns() : t0;
  check = !fresh && (p->o.health_check_ms == 0 || s->idle_since_ns <= p->dead_ns ||
                     now - s->idle_since_ns >= MS(p->o.health_check_ms));
  /* The path of nearly every call: an idle connection that needs nothing. */
  if (!fresh && !check && now < s->expires_ns) {
    check_out(p, s, tok, tag, now, t0);
    pthread_mutex_unlock(&p->mu);
    remember(p, s);
    if (w.nclose + w.nleak > 0) finish_work(p, &w);
    *out = s->conn;
    return LOAM_OK;
  }
  pthread_mutex_unlock(&p->mu);
  finish_work(p, &w);
  if (ready_slot(p, s, check, err) != LOAM_OK) {
    pthread_mutex_lock(&p->mu);
    empty_slot(p, s);
    freep = loamP_last_out(p);
    pthread_mutex_unlock(&p->mu);
    if (freep) loamP_destroy(p);
    return LOAM_ERROR;
  }
  pthread_mutex_lock(&p->mu);
  check_out(p, s, tok, tag, loam__clock_ns(), t0);
  pthread_mutex_unlock(&p->mu);
  remember(p, s);
  *out = s->conn;
  return LOAM_OK;
}


/* Under the lock: the slot of 'c' if it is checked out of 'p', else NULL and 'err'. */
#define NOT_OURS "loam_pool_release: the connection is not one of this pool's " \
                 "(released twice, to another pool, or never acquired)"

static loamP_slot *slot_of (loam_pool *p, loam_conn *c, int *none, loam_error *err) {
  int i;
  *none = 0;
  for (i = 0; i < p->nslots; i++) {
    loamP_slot *s = &p->slots[i];
    if (s->conn != c || c == NULL) continue;
    if (s->out) return s;
    loam__err(err, LOAM_E_MISUSE, "loam_pool_release: the connection is not checked out "
              "(released twice?)");
    return NULL;
  }
  *none = 1;
  if (p->rs == NULL) loam__err(err, LOAM_E_MISUSE, NOT_OURS);
  return NULL;
}


void loamP_held_writes (loam_pool *p, loam_read_token *tok) {
  int i;
  pthread_mutex_lock(&p->mu);
  for (i = 0; i < p->nslots; i++) {
    loamP_slot *s = &p->slots[i];
    /* The token's holder is the caller, so its connection's count is the caller's own. */
    if (s->out && s->tok == tok && s->conn->writes != s->writes) {
      tok->wrote = 1;
      s->writes = s->conn->writes;   /* the release marks only what comes after */
    }
  }
  pthread_mutex_unlock(&p->mu);
}


int loamP_via (loam_pool *sub, loam_conn *c, const loam_pool *via, int set) {
  int i, yes = 0;
  pthread_mutex_lock(&sub->mu);
  for (i = 0; i < sub->nslots; i++) {
    loamP_slot *s = &sub->slots[i];
    if (c == NULL || s->conn != c || !s->out) continue;
    if (set) s->via = via;
    yes = s->via == via;
    break;
  }
  pthread_mutex_unlock(&sub->mu);
  return yes;
}


/*
** Hands 'c' back; with 'abandoned', the holder lost it, and it is
** reported as a leak unless the sweep already did.
*/
static int release (loam_pool *p, loam_conn *c, int abandoned, loam_error *err) {
  loam_error local = LOAM_ERROR_INIT;
  loamP_slot *s;
  work w;
  int64_t now;
  int ok, keep, freep, none, routed;
  if (p == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_pool_release: the pool is NULL");
  w.nclose = w.nleak = 0;
  pthread_mutex_lock(&p->mu);
  s = slot_of(p, c, &none, err);
  routed = p->rs != NULL;
  if (s != NULL) {
    forget(p, c);
    s->out = 0;
    /* Before the reset, whose ROLLBACK is no write of the holder's. */
    if (s->tok != NULL && c->writes != s->writes) s->tok->wrote = 1;
    s->tok = NULL;
    if (abandoned && !s->leaked) {
      loamP_holder *h = &w.leak[w.nleak++];
      p->leaks++;
      h->held_ns = loam__clock_ns() - s->acquired_ns;
      h->pid = s->pid;
      h->out = 1;
      h->abandoned = 1;
      h->waiting = 0;
      memcpy(h->tag, s->tag, sizeof h->tag);
      w.hook = p->hook;
      w.hook_ud = p->hook_ud;
    }
  }
  /*
  ** A connection handed back with nothing open, the usual case, needs no
  ** reset: it goes back to the idle ones in this same hold of the lock.
  */
  ok = s != NULL && loam__conn_clean(c);
  if (!ok) {
    pthread_mutex_unlock(&p->mu);
    if (s == NULL && none && routed)
      return loamP_replica_release(p, c, abandoned, NOT_OURS, err);
    if (s == NULL) return LOAM_ERROR;
    ok = loam__conn_reset(c, &local) == LOAM_OK;
    loam_error_clear(&local);
    pthread_mutex_lock(&p->mu);
  }
  now = loam__clock_ns();
  keep = ok && !p->closed && now < s->expires_ns && !(p->nopen > p->o.size && p->nwaiting == 0);
  if (keep) {
    s->state = LOAMP_S_IDLE;
    s->idle_since_ns = now;
    p->idle[p->nidle++] = (int)(s - p->slots);
    p->nbusy--;
    if (p->nwaiting > 0) pthread_cond_signal(&p->cv);
  }
  else {
    if (!ok) {
      p->discarded++;
      p->dead_ns = now;
    }
    w.close[w.nclose++] = c;
    empty_slot(p, s);
  }
  if (w.nleak == 0) sweep(p, now, &w);
  freep = loamP_last_out(p);
  pthread_mutex_unlock(&p->mu);
  if (w.nclose + w.nleak > 0) finish_work(p, &w);
  if (freep) loamP_destroy(p);
  return LOAM_OK;
}


int loam_pool_release (loam_pool *p, loam_conn *c, loam_error *err) {
  return release(p, c, 0, err);
}


int loam_pool_abandon (loam_pool *p, loam_conn *c, loam_error *err) {
  return release(p, c, 1, err);
}


loam_backend loam_pool_backend (const loam_pool *p) {
  return p != NULL ? p->backend : (loam_backend)0;
}


/* The smallest wait that at least 'q' of the 'total' waits reached or passed. */
static int64_t percentile (const int64_t *hist, int64_t total, double q, int64_t max) {
  int64_t want = (int64_t)((double)total * q + 0.5), seen = 0;
  int b;
  if (total == 0) return 0;
  if (want < 1) want = 1;
  for (b = 0; b < LOAMP_NBUCKETS; b++) {
    seen += hist[b];
    if (seen >= want) {
      int64_t v = loamP_bucket_floor(b);
      return v < max ? v : max;
    }
  }
  return max;
}


void loam_pool_stats (loam_pool *p, loam_pool_metrics *out) {
  loam_replicas *rs;
  int64_t total = 0;
  int b;
  if (out == NULL) return;
  memset(out, 0, sizeof *out);
  if (p == NULL) return;
  pthread_mutex_lock(&p->mu);
  out->size = p->o.size;
  out->max_overflow = p->o.max_overflow;
  out->open = p->nopen;
  out->in_use = p->nbusy;
  out->idle = p->nidle;
  out->waiting = p->nwaiting;
  out->acquires = p->acquires;
  out->timeouts = p->timeouts;
  out->leaks = p->leaks;
  out->opened = p->opened;
  out->discarded = p->discarded;
  out->wait_max_ns = p->wait_max_ns;
  for (b = 0; b < LOAMP_NBUCKETS; b++) total += p->hist[b];
  out->wait_p50_ns = percentile(p->hist, total, 0.50, p->wait_max_ns);
  out->wait_p90_ns = percentile(p->hist, total, 0.90, p->wait_max_ns);
  out->wait_p99_ns = percentile(p->hist, total, 0.99, p->wait_max_ns);
  out->replicas = p->nrurls;
  rs = p->rs;
  pthread_mutex_unlock(&p->mu);
  out->primary_reads = loam_replicas_primary_reads(rs);
}
