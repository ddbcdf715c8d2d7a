/*
** replica.c: reads routed to read replicas ('loam_replicas'), and the
** pools that route through one ('loam_pool_acquire_read').
**
** The routing keeps one target per replica: the process's pool for its
** URL (opened lazily, by the first check that reaches the server) and
** what the last check saw.  A read asks the
** replicas in turn, starting after the one that answered the last read,
** and takes the first that is usable and has replayed what the caller's
** token needs; a replica due for a check, or one behind the token, is
** checked first.  A check is one short query on a connection of the
** replica's pool, run without the pool's lock by the thread that claimed
** it ('checking'): the other threads go by the last check meanwhile, so
** a slow replica holds up one read, not every thread.  The routing has a
** mutex of its own; a pool's lock is never held while it is taken.
**
** Lag is measured on the replica, as PostgreSQL's own tools do: while
** it has WAL received and not yet replayed, its lag is the age of the
** last transaction it replayed (by its clock; the primary stamped the
** transaction, so the two clocks are taken to agree, as for any use of
** 'pg_last_xact_replay_timestamp'); WAL waiting and no transaction
** replayed since the replica started is a lag not known, and counts as
** over the limit.  With nothing waiting the lag is 0, but only while
** its WAL receiver streams from the primary: a standby cut off from it
** has replayed all it has and falls further behind all the same, so it
** is skipped until it streams again.  A primary idle for a while then
** writing makes a replica look that old for the moment the WAL waits:
** it is skipped until its next check, which errs on the safe side.
*/
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool/pool_int.h"

#define MAX_REPLICAS LOAMP_MAX_REPLICAS
#define MAX_MS 86400000
#define MS(ms) ((int64_t)(ms) * 1000000)

/*
** What a replica answers about itself: whether it is a standby, its
** replay and receive positions, whether its WAL receiver streams (a role
** without pg_read_all_stats sees no status, only that a receiver runs)
** and the age in ms of the last transaction it replayed (NULL: none).
*/
static const char CHECK_SQL[] =
  "SELECT pg_is_in_recovery(), "
  "COALESCE(pg_last_wal_replay_lsn(), '0/0')::text, "
  "COALESCE(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), '0/0')::text, "
  "COALESCE((SELECT COALESCE(status = 'streaming', true) FROM pg_stat_wal_receiver), false), "
  "(extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000)::bigint";

/* The primary's insert position, with the page and segment sizes it is counted in. */
static const char LSN_SQL[] =
  "SELECT pg_current_wal_insert_lsn()::text, current_setting('wal_block_size')::bigint, "
  "pg_size_bytes(current_setting('wal_segment_size'))";



/* One replica: guarded by the routing's lock, but for what 'checking' gives its checker. */
typedef struct target {
  char *url;
  loam_pool *sub;            /* its pool, NULL until a check first reached it */
  int state;                 /* -1 never checked, 0 skipped, 1 usable */
  int checking;
  int64_t checked_ns;        /* when the last check started */
  uint64_t replay;           /* its replay position at the last check */
  int64_t caught_ns;         /* when the last check that found no WAL waiting ended; 0: none */
  int64_t lag_ms;            /* -1: not known */
  int64_t reads;
  int out;                   /* connections checked out through a pool ('loam_pool_acquire_read') */
  char error[256];
} target;

struct loam_replicas {
  pthread_mutex_t mu;
  loam_pool_opts popts;      /* the replicas' pools' options */
  int max_lag_ms, check_ms;
  int own_pools;             /* replica pools of its own, not the process's */
  loam_pool_hook hook;
  void *hook_ud;
  int n;
  int next;                  /* where the next read starts looking: replicas take turns */
  int64_t primary_reads;
  int64_t wal_block, wal_segment;   /* the primary's WAL page and segment sizes, once read */
  target t[LOAMP_MAX_REPLICAS];
};


/* {======================================================================
** Options and the life of the routing
** ======================================================================= */

int loamP_replicas_check (const char *fname, const char *url, const char *const *urls, int n,
                          loam_error *err) {
  loam__url u;
  int i, rc;
  /* The fields as the caller's struct names them: 'loam_pool_opts' or 'loam_replicas_opts'. */
  const char *nf = url != NULL ? "nreplicas" : "n", *uf = url != NULL ? "replicas" : "urls";
  if (n < 1 || n > MAX_REPLICAS)
    return loam__err(err, LOAM_E_MISUSE, "%s: '%s' must be %s to %d, got %d", fname, nf,
                     url != NULL ? "0" : "1", MAX_REPLICAS, n);
  if (urls == NULL)
    return loam__err(err, LOAM_E_MISUSE, "%s: '%s' is %d and '%s' is NULL", fname, nf, n, uf);
  /* A primary URL that does not parse is left to its connection, which says why. */
  if (url != NULL && loam__url_parse(url, &u, NULL) == LOAM_OK && u.backend == LOAM_SQLITE) {
    loam__url_free(&u);
    return loam__err(err, LOAM_E_MISUSE, "%s: replicas are PostgreSQL servers, and this database "
                     "is SQLite", fname);
  }
  if (url != NULL) loam__url_free(&u);
  for (i = 0; i < n; i++) {
    if (urls[i] == NULL)
      return loam__err(err, LOAM_E_MISUSE, "%s: replica %d: the URL is NULL", fname, i + 1);
    rc = loam__url_parse(urls[i], &u, err);
    if (rc == LOAM_OK && u.backend == LOAM_SQLITE)
      rc = loam__err(err, LOAM_E_MISUSE, "%s: replica %d is an SQLite URL: replicas are "
                     "PostgreSQL servers", fname, i + 1);
    loam__url_free(&u);
    if (rc != LOAM_OK) return LOAM_ERROR;
  }
  return LOAM_OK;
}


static int check (loam_replicas *rs, int i, loam_error *fatal);


int loam_replicas_open (const loam_replicas_opts *o, loam_replicas **out, loam_error *err) {
  loam_pool_opts popts = LOAM_POOL_OPTS_INIT;
  loam_replicas *rs;
  int i, lag, every;
  if (out == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_replicas_open: 'out' is NULL");
  *out = NULL;
  if (o == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_replicas_open: 'opts' is NULL");
  if (loamP_replicas_check("loam_replicas_open", NULL, o->urls, o->n, err) != LOAM_OK)
    return LOAM_ERROR;
  lag = o->max_lag_ms == -1 ? 1000 : o->max_lag_ms;
  every = o->check_ms == -1 ? 1000 : o->check_ms;
  if (lag < 0 || lag > MAX_MS || every < 0 || every > MAX_MS)
    return loam__err(err, LOAM_E_MISUSE, "loam_replicas_open: '%s' must be 0 to %d, got %d",
                     lag < 0 || lag > MAX_MS ? "max_lag_ms" : "check_ms", MAX_MS,
                     lag < 0 || lag > MAX_MS ? lag : every);
  if ((rs = calloc(1, sizeof *rs)) == NULL) return loam__err_nomem(err);
  if (o->pool != NULL) popts = *o->pool;
  popts.replicas = NULL;
  popts.nreplicas = 0;
  popts.max_lag_ms = popts.replica_check_ms = -1;
  rs->popts = popts;
  rs->max_lag_ms = lag;
  rs->check_ms = every;
  rs->own_pools = o->own_pools;
  rs->hook = o->hook;
  rs->hook_ud = o->hook_ud;
  pthread_mutex_init(&rs->mu, NULL);
  for (i = 0; i < o->n; i++) {
    rs->t[i].state = -1;
    if ((rs->t[i].url = loam__strdup(o->urls[i])) == NULL) {
      loam_replicas_close(rs);
      return loam__err_nomem(err);
    }
    rs->n = i + 1;
  }
  for (i = 0; i < rs->n; i++) {
    rs->t[i].checking = 1;
    if (check(rs, i, err) != LOAM_OK) {
      loam_replicas_close(rs);
      return LOAM_ERROR;
    }
  }
  *out = rs;
  return LOAM_OK;
}


void loam_replicas_close (loam_replicas *rs) {
  int i;
  if (rs == NULL) return;
  for (i = 0; i < rs->n; i++) {
    loam_pool_close(rs->t[i].sub);
    free(rs->t[i].url);
  }
  pthread_mutex_destroy(&rs->mu);
  free(rs);
}


/*
** A replica pool 'sub' that reports to 'old' ('old_ud'), the hook its
** routing opened it with, reports to 'fn' ('ud') from now on; one that
** another open gave a hook of its own keeps it.  Takes the pool's lock.
*/
static void follow_hook (loam_pool *sub, loam_pool_hook old, void *old_ud, loam_pool_hook fn,
                         void *ud) {
  pthread_mutex_lock(&sub->mu);
  if (sub->hook == old && sub->hook_ud == old_ud) {
    sub->hook = fn;
    sub->hook_ud = ud;
  }
  pthread_mutex_unlock(&sub->mu);
}


void loamP_replicas_set_hook (loam_replicas *rs, loam_pool_hook fn, void *ud) {
  int i;
  pthread_mutex_lock(&rs->mu);
  rs->hook = fn;
  rs->hook_ud = ud;
  /* The replicas' pools too: the caller may free the old 'ud' once this returns. */
  for (i = 0; i < rs->n; i++)
    if (rs->t[i].sub != NULL) follow_hook(rs->t[i].sub, rs->popts.hook, rs->popts.hook_ud, fn, ud);
  rs->popts.hook = fn;
  rs->popts.hook_ud = ud;
  pthread_mutex_unlock(&rs->mu);
}

/* }====================================================================== */


/* {======================================================================
** Checks
** ======================================================================= */

/* "X/Y", PostgreSQL's text of a WAL position, as one number; 0 when it is none. */
static uint64_t lsn_of (const loam_value *v) {
  unsigned long long hi, lo;
  if (v->type != LOAM_TEXT || sscanf(v->u.s.ptr, "%llX/%llX", &hi, &lo) != 2) return 0;
  return ((uint64_t)hi << 32) | (uint64_t)lo;
}


/* An error as "code: message" on one line, into 'dst' (libpq's messages run over several). */
static void why_of (char *dst, size_t size, const loam_error *e) {
  size_t n = 0;
  const char *m = e->message ? e->message : "";
  int gap = 0;
  n = (size_t)snprintf(dst, size, "%s: ", loam_errcode_name(e->code));
  for (; *m && n + 1 < size; m++) {
    if (*m == '\n' || *m == ' ' || *m == '\t') { gap = 1; continue; }
    if (gap && n + 2 < size && dst[n - 1] != ' ') dst[n++] = ' ';
    gap = 0;
    dst[n++] = *m;
  }
  dst[n < size ? n : size - 1] = '\0';
}


/* The row of a one-row statement 'sql' on 'c': 'n' values into 'v'. */
static int one_row (loam_conn *c, const char *sql, loam_value *v, int n, char *text,
                    size_t size, loam_error *err) {
  loam_stmt *s;
  int i, rc;
  size_t used = 0;
  if (loam_query(c, sql, NULL, 0, 0, &s, err) != LOAM_OK) return LOAM_ERROR;
  rc = loam_step(s, err);
  if (rc == LOAM_ROW) {
    for (i = 0; i < n; i++) {
      loam_column(s, i, &v[i]);
      /* Text lives until the next step: copied into 'text'. */
      if (v[i].type == LOAM_TEXT && used + v[i].u.s.len + 1 <= size) {
        memcpy(text + used, v[i].u.s.ptr, v[i].u.s.len + 1);
        v[i].u.s.ptr = text + used;
        used += v[i].u.s.len + 1;
      }
      else if (v[i].type == LOAM_TEXT) v[i] = loam_null();
    }
    rc = LOAM_OK;
  }
  else if (rc == LOAM_DONE) rc = loam__err(err, LOAM_E_DATABASE_ERROR, "no row");
  loam_stmt_close(s);
  return rc;
}



/* What one check saw, made without the lock. */
typedef struct seen {
  int ok;                    /* the server answered */
  int busy;                  /* its pool had every connection in use: nothing was asked */
  int standby;
  int streaming;             /* its WAL receiver streams from the primary */
  uint64_t replay, received;
  int64_t age_ms;            /* of the last transaction it replayed; -1: none */
  int64_t at_ns;             /* when it answered */
  loam_pool *opened;         /* the replica's pool, opened by this check ... */
  loam_pool_hook hook;       /* ... with this hook */
  void *hook_ud;
  char why[256];
} seen;


/*
** Asks replica 'i' (its pool 'sub', NULL when not yet opened with
** options 'popts', a copy made under the lock) about itself.
*/
static int ask (loam_replicas *rs, int i, const loam_pool_opts *popts, loam_pool *sub, seen *w,
                loam_error *fatal) {
  const char *url = rs->t[i].url;   /* set at the open, read-only after */
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c;
  loam_value v[5];
  char text[128];
  memset(w, 0, sizeof *w);
  if (sub == NULL) {
    if (loamP_open(url, popts, rs->own_pools, &sub, &e) != LOAM_OK) {
      /* Other options for the same URL will never open: the caller's error, not a server down. */
      if (fatal != NULL && (e.code == LOAM_E_MISUSE || e.code == LOAM_E_INVALID_URL)) {
        loam__err(fatal, e.code, "%s (the URL of replica %d)", e.message, i + 1);
        loam_error_clear(&e);
        return LOAM_ERROR;
      }
      why_of(w->why, sizeof w->why, &e);
      loam_error_clear(&e);
      return LOAM_OK;
    }
    w->opened = sub;
    w->hook = popts->hook;
    w->hook_ud = popts->hook_ud;
  }
  if (loamP_acquire(sub, NULL, 1, "loam: replica check", &c, &e) == LOAM_OK) {
    if (one_row(c, CHECK_SQL, v, 5, text, sizeof text, &e) == LOAM_OK && v[0].type == LOAM_BOOL &&
        v[3].type == LOAM_BOOL) {
      w->ok = 1;
      w->standby = v[0].u.b;
      w->replay = lsn_of(&v[1]);
      w->received = lsn_of(&v[2]);
      w->streaming = v[3].u.b;
      /* A clock a little behind the primary's makes a fresh transaction look younger than 0. */
      w->age_ms = v[4].type != LOAM_INT ? -1 : v[4].u.i < 0 ? 0 : v[4].u.i;
      w->at_ns = loam__clock_ns();
    }
    loam_pool_release(sub, c, NULL);
  }
  /* Every connection out serving reads: the replica is no worse than its last check said. */
  if (!w->ok && e.code == LOAM_E_POOL_TIMEOUT) w->busy = 1;
  else if (!w->ok) why_of(w->why, sizeof w->why, &e);
  loam_error_clear(&e);
  return LOAM_OK;
}


/*
** Under the lock: records what check 'w' saw of replica 'i', and writes
** the report of a change into 'msg' ("" when none).
*/
static void record (loam_replicas *rs, int i, const seen *w, char *msg, size_t size) {
  target *r = &rs->t[i];
  int was = r->state, now_ok;
  msg[0] = '\0';
  if (w->opened != NULL) {
    r->sub = w->opened;
    /* The hook changed while the pool was being opened. */
    if (w->hook != rs->popts.hook || w->hook_ud != rs->popts.hook_ud)
      follow_hook(r->sub, w->hook, w->hook_ud, rs->popts.hook, rs->popts.hook_ud);
  }
  if (w->busy) return;
  if (!w->ok) {
    snprintf(r->error, sizeof r->error, "%s", w->why);
    now_ok = 0;
  }
  else {
    r->replay = w->replay;
    r->error[0] = '\0';
    /*
    ** Nothing waiting: up to date.  WAL waiting: as old as the last
    ** transaction replayed, but no older than the time since a check
    ** found nothing waiting, since what waits came after that check:
    ** after a quiet spell the last transaction replayed is as old as the
    ** spell, while the replica misses only what the primary wrote since.
    */
    if (w->replay >= w->received) {
      r->lag_ms = 0;
      r->caught_ns = w->at_ns;
    }
    else {
      int64_t since = r->caught_ns != 0 ? (w->at_ns - r->caught_ns) / 1000000 : -1;
      r->lag_ms = w->age_ms;
      if (since >= 0 && (r->lag_ms < 0 || r->lag_ms > since)) r->lag_ms = since;
    }
    if (!w->standby)
      snprintf(r->error, sizeof r->error, "it is not in recovery (a primary, not a replica)");
    else if (r->lag_ms < 0)
      snprintf(r->error, sizeof r->error, "replay lag not known (WAL waits, and no transaction "
               "was replayed since the replica started)");
    else if (r->lag_ms > rs->max_lag_ms)
      snprintf(r->error, sizeof r->error, "replay lag %" PRId64 " ms is over max_lag_ms %d",
               r->lag_ms, rs->max_lag_ms);
    else if (w->replay >= w->received && !w->streaming)
      snprintf(r->error, sizeof r->error, "it is not streaming from the primary");
    now_ok = r->error[0] == '\0';
  }
  r->state = now_ok;
  /* The first check reports only a failure. */
  if (was == now_ok || (was == -1 && now_ok)) return;
  if (now_ok)
    snprintf(msg, size, "replica %d is used again (lag %" PRId64 " ms)", i + 1, r->lag_ms);
  else
    snprintf(msg, size, "replica %d skipped: %s; reads go to %s", i + 1, r->error,
             rs->n > 1 ? "the other replicas or the primary" : "the primary");
}


/*
** Checks replica 'i', which the caller claimed ('checking') under the
** lock; called and returning without it.  'fatal' (may be NULL) receives
** an error that no later check can mend, and makes it return LOAM_ERROR.
*/
static int check (loam_replicas *rs, int i, loam_error *fatal) {
  target *r = &rs->t[i];
  loam_pool_hook hook;
  void *hook_ud;
  loam_pool *sub;
  loam_pool_opts popts;
  int64_t now = loam__clock_ns();
  char msg[400];
  seen w;
  pthread_mutex_lock(&rs->mu);
  sub = r->sub;
  popts = rs->popts;
  r->checked_ns = now;
  pthread_mutex_unlock(&rs->mu);
  if (ask(rs, i, &popts, sub, &w, fatal) != LOAM_OK) {
    pthread_mutex_lock(&rs->mu);
    r->checking = 0;
    pthread_mutex_unlock(&rs->mu);
    return LOAM_ERROR;
  }
  pthread_mutex_lock(&rs->mu);
  record(rs, i, &w, msg, sizeof msg);
  r->checking = 0;
  hook = rs->hook;
  hook_ud = rs->hook_ud;
  pthread_mutex_unlock(&rs->mu);
  if (msg[0] != '\0') loamP_notify(hook, hook_ud, LOAM_POOL_REPLICA, msg);
  return LOAM_OK;
}

/* }====================================================================== */


/* {======================================================================
** Reads
** ======================================================================= */

/*
** Whether a replica that has replayed up to 'replay' has what the primary
** had written when its insert position was 'need'.  The insert position
** is where the next record will start: when the last record ended at a
** page boundary, that is past the page's header (24 bytes, or 40 at the
** start of a segment), while the replica's position is the record's end.
** 'block' and 'segment' are the primary's own sizes (wal_block_size,
** wal_segment_size), read with the position; 0 when not yet read.
*/
int loamP_caught_up (uint64_t replay, uint64_t need, uint64_t block, uint64_t segment) {
  if (replay >= need) return 1;
  if (block == 0 || segment == 0) return 0;
  return (need % segment == 40 && replay == need - 40) ||
         (need % block == 24 && replay == need - 24);
}


static int caught_up (const loam_replicas *rs, uint64_t replay, uint64_t need) {
  return loamP_caught_up(replay, need, (uint64_t)rs->wal_block, (uint64_t)rs->wal_segment);
}


/*
** The primary's insert position for 'tok', read on 'c', with the sizes it
** is compared by; the statement is the routing's, not the caller's, so
** the connection's trace hook is set aside for it.
*/
static int read_position (loam_replicas *rs, loam_conn *c, loam_read_token *tok,
                          loam_error *err) {
  loam_trace_fn trace = c->trace;
  loam_value v[3];
  char text[64];
  uint64_t lsn;
  int rc;
  c->trace = NULL;
  rc = one_row(c, LSN_SQL, v, 3, text, sizeof text, err);
  c->trace = trace;
  if (rc != LOAM_OK) return LOAM_ERROR;
  if ((lsn = lsn_of(&v[0])) == 0 || v[1].type != LOAM_INT || v[2].type != LOAM_INT)
    return loam__err(err, LOAM_E_DATABASE_ERROR, "the primary gave no WAL position");
  pthread_mutex_lock(&rs->mu);
  rs->wal_block = v[1].u.i;
  rs->wal_segment = v[2].u.i;
  pthread_mutex_unlock(&rs->mu);
  tok->lsn = lsn;
  tok->wrote = 0;
  return LOAM_OK;
}


/*
** The replica a read takes now (-1: the primary): the next usable one in
** turn that has replayed 'need' (0: nothing to wait for) and is not in
** 'tried' (a bit per replica), checking first one that is due, or behind
** 'need' (its position may have moved since).  With 'sub', the read
** checks a connection out of the replica's pool, which is counted and
** written there.
*/
static int pick (loam_replicas *rs, uint64_t need, unsigned tried, loam_pool **sub) {
  int k, n = rs->n;
  pthread_mutex_lock(&rs->mu);
  for (k = 0; k < n; k++) {
    int i = (rs->next + k) % n;
    target *r = &rs->t[i];
    int64_t now = loam__clock_ns();
    int due;
    if (tried & (1u << i)) continue;
    due = now - r->checked_ns >= MS(rs->check_ms) ||
          (r->state == 1 && need != 0 && !caught_up(rs, r->replay, need));
    if (due && !r->checking) {
      r->checking = 1;
      pthread_mutex_unlock(&rs->mu);
      check(rs, i, NULL);
      pthread_mutex_lock(&rs->mu);
    }
    if (r->state == 1 && r->sub != NULL && (need == 0 || caught_up(rs, r->replay, need))) {
      rs->next = (i + 1) % n;
      r->reads++;
      if (sub != NULL) {
        r->out++;
        *sub = r->sub;
      }
      pthread_mutex_unlock(&rs->mu);
      return i;
    }
  }
  rs->primary_reads++;
  pthread_mutex_unlock(&rs->mu);
  return -1;
}


int loam_replicas_route (loam_replicas *rs, loam_conn *primary, loam_read_token *tok,
                         int *replica, loam_error *err) {
  if (replica == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_replicas_route: 'replica' is NULL");
  *replica = -1;
  if (rs == NULL) return loam__err(err, LOAM_E_MISUSE, "attempt to use closed replicas");
  if (tok != NULL && tok->wrote) {
    if (primary == NULL)
      return loam__err(err, LOAM_E_MISUSE, "loam_replicas_route: the token wrote, and the "
                       "primary's position needs a connection to it ('primary' is NULL)");
    if (read_position(rs, primary, tok, err) != LOAM_OK) return LOAM_ERROR;
  }
  *replica = pick(rs, tok != NULL ? tok->lsn : 0, 0, NULL);
  return LOAM_OK;
}


loam_pool *loam_replicas_pool (loam_replicas *rs, int i) {
  loam_pool *sub;
  if (rs == NULL || i < 0 || i >= rs->n) return NULL;
  pthread_mutex_lock(&rs->mu);
  sub = rs->t[i].sub;
  pthread_mutex_unlock(&rs->mu);
  return sub;
}


int loam_replicas_stats (loam_replicas *rs, int i, loam_replica_metrics *out, loam_error *err) {
  target *r;
  loam_pool *sub;
  if (out == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_replicas_stats: 'out' is NULL");
  memset(out, 0, sizeof *out);
  if (rs == NULL || i < 0 || i >= rs->n)
    return loam__err(err, LOAM_E_MISUSE, "loam_replicas_stats: no replica %d (there are %d)", i,
                     rs != NULL ? rs->n : 0);
  pthread_mutex_lock(&rs->mu);
  r = &rs->t[i];
  out->healthy = r->state == 1;
  out->lag_ms = r->lag_ms;
  out->reads = r->reads;
  snprintf(out->error, sizeof out->error, "%s", r->error);
  sub = r->sub;
  pthread_mutex_unlock(&rs->mu);
  /* 'sub' stays open while 'rs' is. */
  loam_pool_stats(sub, &out->pool);
  return LOAM_OK;
}


int64_t loam_replicas_primary_reads (loam_replicas *rs) {
  int64_t n;
  if (rs == NULL) return 0;
  pthread_mutex_lock(&rs->mu);
  n = rs->primary_reads;
  pthread_mutex_unlock(&rs->mu);
  return n;
}

/* }====================================================================== */


/* {======================================================================
** A pool's replicas
** ======================================================================= */

int loamP_replicas_init (loam_pool *p, const loam_pool_opts *o, loam_error *err) {
  int i;
  p->o.replicas = NULL;   /* the caller's array: 'p->rurls' keeps copies */
  if (o->nreplicas == 0) return LOAM_OK;
  if ((p->rurls = calloc((size_t)o->nreplicas, sizeof *p->rurls)) == NULL)
    return loam__err_nomem(err);
  p->nrurls = o->nreplicas;
  for (i = 0; i < o->nreplicas; i++)
    if ((p->rurls[i] = loam__strdup(o->replicas[i])) == NULL) return loam__err_nomem(err);
  return LOAM_OK;
}


int loamP_replicas_same (const loam_pool *p, const loam_pool_opts *o) {
  int i;
  if (p->nrurls != o->nreplicas) return 0;
  for (i = 0; i < p->nrurls; i++)
    if (strcmp(p->rurls[i], o->replicas[i]) != 0) return 0;
  return 1;
}


int loamP_replicas_start (loam_pool *p, loam_error *err) {
  loam_replicas_opts o = LOAM_REPLICAS_OPTS_INIT;
  loam_pool_opts po;
  loam_replicas *rs;
  loam_pool_hook fn;
  void *ud;
  o.urls = (const char *const *)p->rurls;
  o.n = p->nrurls;
  o.max_lag_ms = p->o.max_lag_ms;
  o.check_ms = p->o.replica_check_ms;
  /* The replicas' pools report where the pool does now, not where it did when opened. */
  pthread_mutex_lock(&p->mu);
  po = p->o;
  po.hook = o.hook = p->hook;
  po.hook_ud = o.hook_ud = p->hook_ud;
  pthread_mutex_unlock(&p->mu);
  o.pool = &po;
  if (loam_replicas_open(&o, &rs, err) != LOAM_OK) return LOAM_ERROR;
  pthread_mutex_lock(&p->mu);
  p->rs = rs;
  fn = p->hook;
  ud = p->hook_ud;
  pthread_mutex_unlock(&p->mu);
  /* 'loam_pool_set_hook' ran meanwhile, and found no routing to pass it to. */
  if (fn != o.hook || ud != o.hook_ud) loamP_replicas_set_hook(rs, fn, ud);
  return LOAM_OK;
}


void loamP_replicas_free (loam_pool *p) {
  int i;
  loam_replicas_close(p->rs);
  p->rs = NULL;
  for (i = 0; i < p->nrurls; i++) free(p->rurls[i]);
  free(p->rurls);
  p->rurls = NULL;
  p->nrurls = 0;
}


/* A replica checkout of 'i' through 'p' ended (or never began). */
static void checked_in (loam_pool *p, loam_replicas *rs, int i, int *freep) {
  pthread_mutex_lock(&rs->mu);
  rs->t[i].out--;
  pthread_mutex_unlock(&rs->mu);
  pthread_mutex_lock(&p->mu);
  p->rout--;
  *freep = loamP_last_out(p);
  pthread_mutex_unlock(&p->mu);
}


int loam_pool_acquire_read (loam_pool *p, loam_read_token *tok, const char *tag,
                            loam_conn **out, loam_error *err) {
  loam_conn *prim = NULL;
  loam_replicas *rs;
  loam_pool *sub = NULL;
  unsigned tried = 0;
  int i, freep;
  if (out == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_pool_acquire_read: 'out' is NULL");
  *out = NULL;
  if (p == NULL) return loam__err(err, LOAM_E_MISUSE, "attempt to use a closed pool");
  pthread_mutex_lock(&p->mu);
  rs = p->closed ? NULL : p->rs;
  if (rs != NULL) p->rout++;   /* keeps the pool while this read may take a replica */
  pthread_mutex_unlock(&p->mu);
  if (rs == NULL) return loamP_acquire(p, tok, 0, tag, out, err);
  if (tok != NULL) loamP_held_writes(p, tok);
  /* After a write, the primary's position, on the connection a read may then use. */
  if (tok != NULL && tok->wrote) {
    if (loamP_acquire(p, tok, 0, tag, &prim, err) != LOAM_OK ||
        read_position(rs, prim, tok, err) != LOAM_OK) {
      if (prim != NULL) loam_pool_release(p, prim, NULL);
      pthread_mutex_lock(&p->mu);
      p->rout--;
      freep = loamP_last_out(p);
      pthread_mutex_unlock(&p->mu);
      if (freep) loamP_destroy(p);
      return LOAM_ERROR;
    }
  }
  /*
  ** A replica whose pool has every connection out, or that fails here, is
  ** passed over without waiting (and checked again at its turn): the read
  ** tries the next one, then takes the primary.
  */
  while ((i = pick(rs, tok != NULL ? tok->lsn : 0, tried, &sub)) >= 0) {
    if (loamP_acquire(sub, NULL, 1, tag, out, NULL) == LOAM_OK) {
      loamP_via(sub, *out, p, 1);
      if (prim != NULL) loam_pool_release(p, prim, NULL);
      return LOAM_OK;
    }
    tried |= 1u << i;
    pthread_mutex_lock(&rs->mu);
    rs->t[i].reads--;
    rs->t[i].out--;
    pthread_mutex_unlock(&rs->mu);
  }
  pthread_mutex_lock(&p->mu);
  p->rout--;
  freep = loamP_last_out(p);
  pthread_mutex_unlock(&p->mu);
  if (freep) {   /* closed under this read: nothing more to hand out */
    loamP_destroy(p);
    return loam__err(err, LOAM_E_MISUSE, "attempt to use a closed pool");
  }
  if (prim != NULL) {
    *out = prim;
    return LOAM_OK;
  }
  return loamP_acquire(p, tok, 0, tag, out, err);
}


int loamP_replica_release (loam_pool *p, loam_conn *c, int abandoned, const char *miss,
                           loam_error *err) {
  loam_replicas *rs;
  int i, freep;
  pthread_mutex_lock(&p->mu);
  rs = p->rs;
  pthread_mutex_unlock(&p->mu);
  for (i = 0; rs != NULL && i < rs->n; i++) {
    loam_pool *sub;
    int rc;
    pthread_mutex_lock(&rs->mu);
    sub = rs->t[i].out > 0 ? rs->t[i].sub : NULL;
    pthread_mutex_unlock(&rs->mu);
    /* A replica pool may be the process's: another of its connections is not this pool's. */
    if (sub == NULL || !loamP_via(sub, c, p, 0)) continue;
    rc = abandoned ? loam_pool_abandon(sub, c, NULL) : loam_pool_release(sub, c, NULL);
    if (rc != LOAM_OK) continue;   /* another replica's, or none */
    checked_in(p, rs, i, &freep);
    if (freep) loamP_destroy(p);
    return LOAM_OK;
  }
  return loam__err(err, LOAM_E_MISUSE, "%s", miss);
}


int loam_pool_replica_stats (loam_pool *p, int i, loam_replica_metrics *out, loam_error *err) {
  loam_replicas *rs = NULL;
  if (p != NULL) {
    pthread_mutex_lock(&p->mu);
    rs = p->rs;
    pthread_mutex_unlock(&p->mu);
  }
  if (out != NULL && rs == NULL) {
    memset(out, 0, sizeof *out);
    return loam__err(err, LOAM_E_MISUSE, "loam_pool_replica_stats: no replica %d (the pool has "
                     "none)", i);
  }
  return loam_replicas_stats(rs, i, out, err);
}

/* }====================================================================== */
