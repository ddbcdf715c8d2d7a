/*
** replica.c: reads routed to the read replicas of a pool.
**
** A pool opened with replica URLs keeps, beside its own connections to
** the primary, one target per replica: the process's pool for its URL
** (opened with the primary pool's options, lazily, by the first check
** that reaches the server) and what the last check saw.  A read asks the
** replicas in turn, starting after the one that answered the last read,
** and takes the first that is usable and has replayed what the caller's
** token needs; a replica due for a check, or one behind the token, is
** checked first.  A check is one short query on a connection of the
** replica's pool, run without the pool's lock by the thread that claimed
** it ('checking'): the other threads go by the last check meanwhile, so
** a slow replica holds up one read, not every thread.
**
** Lag is measured by the checks, not by the age of the last replayed
** transaction (which grows while the primary is idle): WAL received and
** not yet replayed is remembered with the time a check first saw it
** waiting, and while the replica has not replayed past it, its lag is at
** least the time since.  So a replica that falls behind is seen at its
** second check, and one that merely replays what has just arrived never
** counts as lagging.
*/
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool/pool_int.h"

#define MAX_REPLICAS LOAMP_MAX_REPLICAS
#define MS(ms) ((int64_t)(ms) * 1000000)

/* What a replica answers about itself. */
static const char CHECK_SQL[] =
  "SELECT pg_is_in_recovery(), "
  "COALESCE(pg_last_wal_replay_lsn(), '0/0')::text, "
  "COALESCE(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), '0/0')::text";

/* The primary's insert position, with the page and segment sizes it is counted in. */
static const char LSN_SQL[] =
  "SELECT pg_current_wal_insert_lsn()::text, current_setting('wal_block_size')::bigint, "
  "pg_size_bytes(current_setting('wal_segment_size'))";


/* {======================================================================
** Options and the life of the targets
** ======================================================================= */

int loamP_replicas_check (const char *url, const loam_pool_opts *o, loam_error *err) {
  loam__url u;
  int i, rc;
  if (o->nreplicas == 0) return LOAM_OK;
  if (o->nreplicas < 0 || o->nreplicas > MAX_REPLICAS)
    return loam__err(err, LOAM_E_MISUSE, "loam_pool_open: 'nreplicas' must be 0 to %d, got %d",
                     MAX_REPLICAS, o->nreplicas);
  if (o->replicas == NULL)
    return loam__err(err, LOAM_E_MISUSE, "loam_pool_open: 'nreplicas' is %d and 'replicas' "
                     "is NULL", o->nreplicas);
  /* A primary URL that does not parse is left to its connection, which says why. */
  if (loam__url_parse(url, &u, NULL) == LOAM_OK && u.backend == LOAM_SQLITE) {
    loam__url_free(&u);
    return loam__err(err, LOAM_E_MISUSE, "loam_pool_open: replicas are PostgreSQL servers, "
                     "and this database is SQLite");
  }
  loam__url_free(&u);
  for (i = 0; i < o->nreplicas; i++) {
    if (o->replicas[i] == NULL)
      return loam__err(err, LOAM_E_MISUSE, "loam_pool_open: replica %d: the URL is NULL", i + 1);
    rc = loam__url_parse(o->replicas[i], &u, err);
    if (rc == LOAM_OK && u.backend == LOAM_SQLITE)
      rc = loam__err(err, LOAM_E_MISUSE, "loam_pool_open: replica %d is an SQLite URL: "
                     "replicas are PostgreSQL servers", i + 1);
    loam__url_free(&u);
    if (rc != LOAM_OK) return LOAM_ERROR;
  }
  return LOAM_OK;
}


int loamP_replicas_init (loam_pool *p, const loam_pool_opts *o, loam_error *err) {
  int i;
  p->o.replicas = NULL;   /* the caller's array: 'p->replicas' keeps copies */
  if (o->nreplicas == 0) return LOAM_OK;
  p->replicas = calloc((size_t)o->nreplicas, sizeof *p->replicas);
  if (p->replicas == NULL) return loam__err_nomem(err);
  p->nreplicas = o->nreplicas;
  for (i = 0; i < o->nreplicas; i++) {
    p->replicas[i].state = -1;
    if ((p->replicas[i].url = loam__strdup(o->replicas[i])) == NULL) return loam__err_nomem(err);
  }
  return LOAM_OK;
}


int loamP_replicas_same (const loam_pool *p, const loam_pool_opts *o) {
  int i;
  if (p->nreplicas != o->nreplicas) return 0;
  for (i = 0; i < p->nreplicas; i++)
    if (strcmp(p->replicas[i].url, o->replicas[i]) != 0) return 0;
  return 1;
}


/*
** The pointers stay: a replica connection still checked out goes back
** through them, and its pool lives until then.
*/
int loamP_replicas_detach (loam_pool *p, loam_pool **subs) {
  int i;
  for (i = 0; i < p->nreplicas; i++) subs[i] = p->replicas[i].sub;
  return p->nreplicas;
}


void loamP_replicas_free (loam_pool *p) {
  int i;
  for (i = 0; i < p->nreplicas; i++) free(p->replicas[i].url);
  free(p->replicas);
  p->replicas = NULL;
  p->nreplicas = 0;
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


/*
** Whether a replica that has replayed up to 'replay' has what the primary
** had written when its insert position was 'need'.  The insert position
** is where the next record will start: when the last record ended at a
** page boundary, that is past the page's header (24 bytes, or 40 at the
** start of a segment), while the replica's position is the record's end.
*/
static int caught_up (const loam_pool *p, uint64_t replay, uint64_t need) {
  uint64_t block = (uint64_t)p->wal_block, segment = (uint64_t)p->wal_segment;
  if (replay >= need) return 1;
  if (block == 0 || segment == 0) return 0;
  return (need % segment == 40 && replay == need - 40) ||
         (need % block == 24 && replay == need - 24);
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
  int standby;
  uint64_t replay, received;
  loam_pool *opened;         /* the replica's pool, opened by this check */
  char why[256];
} seen;


/* Asks replica 'r' (its pool 'sub', NULL when not yet opened) about itself. */
static int ask (loam_pool *p, const char *url, loam_pool *sub, seen *w, loam_error *fatal) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c;
  loam_value v[3];
  char text[128];
  memset(w, 0, sizeof *w);
  if (sub == NULL) {
    loam_pool_opts o = p->o;
    o.replicas = NULL;
    o.nreplicas = 0;
    o.max_lag_ms = o.replica_check_ms = -1;
    if (loam_pool_open(url, &o, &sub, &e) != LOAM_OK) {
      /* Other options for the same URL will never open: the caller's error, not a server down. */
      int rc = e.code == LOAM_E_MISUSE || e.code == LOAM_E_INVALID_URL;
      if (rc && fatal != NULL) {
        loam__err(fatal, e.code, "%s", e.message);
        loam_error_clear(&e);
        return LOAM_ERROR;
      }
      why_of(w->why, sizeof w->why, &e);
      loam_error_clear(&e);
      return LOAM_OK;
    }
    w->opened = sub;
  }
  if (loam_pool_acquire(sub, "loam: replica check", &c, &e) == LOAM_OK) {
    if (one_row(c, CHECK_SQL, v, 3, text, sizeof text, &e) == LOAM_OK && v[0].type == LOAM_BOOL) {
      w->ok = 1;
      w->standby = v[0].u.b;
      w->replay = lsn_of(&v[1]);
      w->received = lsn_of(&v[2]);
    }
    loam_pool_release(sub, c, NULL);
  }
  if (!w->ok) why_of(w->why, sizeof w->why, &e);
  loam_error_clear(&e);
  return LOAM_OK;
}


/*
** Under the lock: records what check 'w' (started at 'now', the one
** before at 'before') saw of replica 'i', and writes the report of a
** change into 'msg' ("" when none).
*/
static void record (loam_pool *p, int i, const seen *w, int64_t now, int64_t before,
                    char *msg, size_t size) {
  loamP_replica *r = &p->replicas[i];
  int was = r->state, now_ok;
  msg[0] = '\0';
  if (w->opened != NULL) r->sub = w->opened;
  if (!w->ok) {
    snprintf(r->error, sizeof r->error, "%s", w->why);
    r->wait_since_ns = 0;
    now_ok = 0;
  }
  else {
    r->replay = w->replay;
    r->error[0] = '\0';
    if (w->replay >= w->received) {
      r->wait_since_ns = 0;
      r->lag_ms = 0;
    }
    else if (r->wait_since_ns == 0) {
      r->wait_lsn = w->received;
      r->wait_since_ns = now;
      r->lag_ms = 0;
    }
    else if (w->replay < r->wait_lsn) r->lag_ms = (now - r->wait_since_ns) / 1000000;
    else {
      r->lag_ms = (before - r->wait_since_ns) / 1000000;
      r->wait_lsn = w->received;
      r->wait_since_ns = now;
    }
    if (!w->standby)
      snprintf(r->error, sizeof r->error, "it is not in recovery (a primary, not a replica)");
    else if (r->lag_ms > p->o.max_lag_ms)
      snprintf(r->error, sizeof r->error, "replay lag %" PRId64 " ms is over max_lag_ms %d",
               r->lag_ms, p->o.max_lag_ms);
    now_ok = r->error[0] == '\0';
  }
  r->state = now_ok;
  /* The first check reports only a failure. */
  if (was == now_ok || (was == -1 && now_ok)) return;
  if (now_ok)
    snprintf(msg, size, "replica %d is used again (lag %" PRId64 " ms)", i + 1, r->lag_ms);
  else
    snprintf(msg, size, "replica %d skipped: %s; reads go to %s", i + 1, r->error,
             p->nreplicas > 1 ? "the other replicas or the primary" : "the primary");
}


/*
** Checks replica 'i', which the caller claimed ('checking') under the
** lock; called and returning without it.  'fatal' (may be NULL) receives
** an error that no later check can mend, and makes it return LOAM_ERROR.
*/
static int check (loam_pool *p, int i, loam_error *fatal) {
  loamP_replica *r = &p->replicas[i];
  loam_pool_hook hook;
  void *hook_ud;
  loam_pool *sub, *drop = NULL;
  int64_t now = loam__clock_ns(), before;
  char msg[400];
  seen w;
  pthread_mutex_lock(&p->mu);
  sub = r->sub;
  before = r->checked_ns;
  r->checked_ns = now;
  pthread_mutex_unlock(&p->mu);
  if (ask(p, r->url, sub, &w, fatal) != LOAM_OK) {
    pthread_mutex_lock(&p->mu);
    r->checking = 0;
    pthread_mutex_unlock(&p->mu);
    return LOAM_ERROR;
  }
  pthread_mutex_lock(&p->mu);
  if (w.opened != NULL && p->closed) {   /* the pool closed meanwhile: its pool goes too */
    drop = w.opened;
    w.opened = NULL;
  }
  record(p, i, &w, now, before, msg, sizeof msg);
  r->checking = 0;
  hook = p->hook;
  hook_ud = p->hook_ud;
  pthread_mutex_unlock(&p->mu);
  loam_pool_close(drop);
  if (msg[0] != '\0') loamP_notify(hook, hook_ud, LOAM_POOL_REPLICA, msg);
  return LOAM_OK;
}


int loamP_replicas_start (loam_pool *p, loam_error *err) {
  int i;
  for (i = 0; i < p->nreplicas; i++) {
    pthread_mutex_lock(&p->mu);
    if (p->replicas[i].checking) {   /* another open of the URL got there first */
      pthread_mutex_unlock(&p->mu);
      continue;
    }
    p->replicas[i].checking = 1;
    pthread_mutex_unlock(&p->mu);
    if (check(p, i, err) != LOAM_OK) return LOAM_ERROR;
  }
  return LOAM_OK;
}

/* }====================================================================== */


/* {======================================================================
** Reads
** ======================================================================= */

/*
** The primary's insert position for 'tok', read on 'c' (a checkout of
** the primary), with the sizes it is compared by.
*/
static int read_position (loam_pool *p, loam_conn *c, loam_read_token *tok, loam_error *err) {
  loam_value v[3];
  char text[64];
  uint64_t lsn;
  if (one_row(c, LSN_SQL, v, 3, text, sizeof text, err) != LOAM_OK) return LOAM_ERROR;
  if ((lsn = lsn_of(&v[0])) == 0 || v[1].type != LOAM_INT || v[2].type != LOAM_INT)
    return loam__err(err, LOAM_E_DATABASE_ERROR, "the primary gave no WAL position");
  pthread_mutex_lock(&p->mu);
  p->wal_block = v[1].u.i;
  p->wal_segment = v[2].u.i;
  pthread_mutex_unlock(&p->mu);
  tok->lsn = lsn;
  tok->wrote = 0;
  return LOAM_OK;
}


/*
** The replica a read takes now (-1: the primary): the next usable one in
** turn that has replayed 'need' (0: nothing to wait for), checking first
** one that is due, or behind 'need' (its position may have moved since).
*/
static int pick (loam_pool *p, uint64_t need, loam_pool **sub) {
  int k, n = p->nreplicas;
  pthread_mutex_lock(&p->mu);
  for (k = 0; k < n && !p->closed; k++) {
    int i = (p->next_replica + k) % n;
    loamP_replica *r = &p->replicas[i];
    int64_t now = loam__clock_ns();
    int due = now - r->checked_ns >= MS(p->o.replica_check_ms) ||
              (r->state == 1 && need != 0 && !caught_up(p, r->replay, need));
    if (due && !r->checking) {
      r->checking = 1;
      pthread_mutex_unlock(&p->mu);
      check(p, i, NULL);
      pthread_mutex_lock(&p->mu);
    }
    if (r->state == 1 && r->sub != NULL && (need == 0 || caught_up(p, r->replay, need))) {
      p->next_replica = (i + 1) % n;
      r->reads++;
      r->out++;
      p->rout++;
      *sub = r->sub;
      pthread_mutex_unlock(&p->mu);
      return i;
    }
  }
  p->primary_reads++;
  pthread_mutex_unlock(&p->mu);
  return -1;
}


/* Under the lock: a replica checkout of 'i' ended (or never began). */
static void replica_done (loam_pool *p, int i) {
  p->replicas[i].out--;
  p->rout--;
}


int loam_pool_acquire_read (loam_pool *p, loam_read_token *tok, const char *tag,
                            loam_conn **out, loam_error *err) {
  loam_conn *prim = NULL;
  loam_pool *sub = NULL;
  int i, freep;
  if (out == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_pool_acquire_read: 'out' is NULL");
  *out = NULL;
  if (p == NULL) return loam__err(err, LOAM_E_MISUSE, "attempt to use a closed pool");
  if (p->nreplicas == 0) return loamP_acquire(p, tok, tag, out, err);
  /* After a write, the primary's position, on the connection a read may then use. */
  if (tok != NULL && tok->wrote) {
    if (loamP_acquire(p, tok, tag, &prim, err) != LOAM_OK) return LOAM_ERROR;
    if (read_position(p, prim, tok, err) != LOAM_OK) {
      loam_pool_release(p, prim, NULL);
      return LOAM_ERROR;
    }
  }
  i = pick(p, tok != NULL ? tok->lsn : 0, &sub);
  if (i >= 0) {
    if (loam_pool_acquire(sub, tag, out, NULL) == LOAM_OK) {
      if (prim != NULL) loam_pool_release(p, prim, NULL);
      return LOAM_OK;
    }
    /* A replica that fails here is checked again at its turn; this read takes the primary. */
    pthread_mutex_lock(&p->mu);
    replica_done(p, i);
    p->replicas[i].reads--;
    p->primary_reads++;
    freep = loamP_last_out(p);
    pthread_mutex_unlock(&p->mu);
    if (freep) {   /* closed under this read: nothing more to hand out */
      if (prim != NULL) loam_pool_release(p, prim, NULL);
      loamP_destroy(p);
      return loam__err(err, LOAM_E_MISUSE, "attempt to use a closed pool");
    }
  }
  if (prim != NULL) {
    *out = prim;
    return LOAM_OK;
  }
  return loamP_acquire(p, tok, tag, out, err);
}


int loamP_replica_release (loam_pool *p, loam_conn *c, int abandoned, const char *miss,
                           loam_error *err) {
  int i, freep;
  for (i = 0; i < p->nreplicas; i++) {
    loam_pool *sub;
    int rc;
    pthread_mutex_lock(&p->mu);
    sub = p->replicas[i].out > 0 ? p->replicas[i].sub : NULL;
    pthread_mutex_unlock(&p->mu);
    if (sub == NULL) continue;
    rc = abandoned ? loam_pool_abandon(sub, c, NULL) : loam_pool_release(sub, c, NULL);
    if (rc != LOAM_OK) continue;   /* another replica's, or none */
    pthread_mutex_lock(&p->mu);
    replica_done(p, i);
    freep = loamP_last_out(p);
    pthread_mutex_unlock(&p->mu);
    if (freep) loamP_destroy(p);
    return LOAM_OK;
  }
  return loam__err(err, LOAM_E_MISUSE, "%s", miss);
}


int loam_pool_replica_stats (loam_pool *p, int i, loam_replica_metrics *out, loam_error *err) {
  loamP_replica *r;
  loam_pool *sub;
  if (out == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_pool_replica_stats: 'out' is NULL");
  memset(out, 0, sizeof *out);
  if (p == NULL) return loam__err(err, LOAM_E_MISUSE, "attempt to use a closed pool");
  pthread_mutex_lock(&p->mu);
  if (i < 0 || i >= p->nreplicas) {
    int n = p->nreplicas;
    pthread_mutex_unlock(&p->mu);
    return loam__err(err, LOAM_E_MISUSE, "loam_pool_replica_stats: no replica %d (the pool "
                     "has %d)", i, n);
  }
  r = &p->replicas[i];
  out->healthy = r->state == 1;
  out->lag_ms = r->lag_ms;
  out->reads = r->reads;
  snprintf(out->error, sizeof out->error, "%s", r->error);
  sub = r->sub;
  pthread_mutex_unlock(&p->mu);
  /* 'sub' stays open while 'p' is: only the last close of 'p' closes it. */
  loam_pool_stats(sub, &out->pool);
  return LOAM_OK;
}

/* }====================================================================== */
