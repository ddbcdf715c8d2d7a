/*
** pool_open.c: opening and closing pools, one per process per URL.
**
** Options are checked and their defaults filled in first, so that two
** opens of one URL compare what they mean rather than how they were
** written.  The process's pools are a list under one mutex, never held
** while a new pool opens its first connection (a server that does not
** answer would hold up every open in the process): a thread that finds
** no pool for its URL opens one without the lock, then looks again, and
** when another thread's pool came first it takes that one and drops its
** own, so two threads opening the same URL at once end with one pool.  A pool lives
** while it has opens or anything checked out or waiting; whichever of
** 'loam_pool_close', a release and a waiter's exit comes last frees it.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool/pool_int.h"

#define DEFAULT_SIZE 5
#define DEFAULT_OVERFLOW 5
#define DEFAULT_ACQUIRE_MS 30000
#define DEFAULT_LIFETIME_MS 1800000
#define DEFAULT_IDLE_MS 600000
#define DEFAULT_HEALTH_MS 1000
#define DEFAULT_LEAK_MS 60000
#define MAX_CONNECTIONS 1000
#define MAX_PROCESSES 10000
#define DEFAULT_LAG_MS 1000
#define DEFAULT_CHECK_MS 1000
#define MAX_REPLICA_MS 86400000

static pthread_mutex_t pools_mu = PTHREAD_MUTEX_INITIALIZER;
static loam_pool *pools;


/* One option: its name, where it is, its default, its least value, whether LOAM_FOREVER is allowed. */
typedef struct optdesc {
  const char *name;
  size_t off;
  int def, min, max, forever;
} optdesc;

#define OPT(f) #f, offsetof(loam_pool_opts, f)
static const optdesc optdescs[] = {
  { OPT(size), DEFAULT_SIZE, 1, MAX_CONNECTIONS, 0 },
  { OPT(max_overflow), DEFAULT_OVERFLOW, 0, MAX_CONNECTIONS, 0 },
  { OPT(acquire_timeout_ms), DEFAULT_ACQUIRE_MS, 0, 0, 1 },
  { OPT(max_lifetime_ms), DEFAULT_LIFETIME_MS, 1, 0, 1 },
  { OPT(idle_timeout_ms), DEFAULT_IDLE_MS, 1, 0, 1 },
  { OPT(health_check_ms), DEFAULT_HEALTH_MS, 0, 0, 0 },
  { OPT(leak_threshold_ms), DEFAULT_LEAK_MS, 1, 0, 1 },
  { OPT(processes), 1, 1, MAX_PROCESSES, 0 },
  { OPT(max_lag_ms), DEFAULT_LAG_MS, 0, MAX_REPLICA_MS, 0 },
  { OPT(replica_check_ms), DEFAULT_CHECK_MS, 0, MAX_REPLICA_MS, 0 },
};
#undef OPT

#define FIELD(o, d) (*(int *)((char *)(o) + (d)->off))


/* Fills in the defaults of '*o' and checks every field (LOAM_E_MISUSE naming it). */
static int normalize (loam_pool_opts *o, loam_error *err) {
  size_t i;
  for (i = 0; i < sizeof optdescs / sizeof optdescs[0]; i++) {
    const optdesc *d = &optdescs[i];
    int v = FIELD(o, d);
    if (v == -1) FIELD(o, d) = v = d->def;
    if ((v == LOAM_FOREVER && d->forever) || (v >= d->min && (d->max == 0 || v <= d->max)))
      continue;
    if (d->max > 0)
      return loam__err(err, LOAM_E_MISUSE, "loam_pool_open: '%s' must be %d to %d, got %d",
                       d->name, d->min, d->max, v);
    return loam__err(err, LOAM_E_MISUSE, "loam_pool_open: '%s' must be at least %d%s, got %d",
                     d->name, d->min, d->forever ? " or LOAM_FOREVER" : "", v);
  }
  if (o->size + o->max_overflow > MAX_CONNECTIONS)
    return loam__err(err, LOAM_E_MISUSE, "loam_pool_open: 'size' + 'max_overflow' must be at "
                     "most %d, got %d", MAX_CONNECTIONS, o->size + o->max_overflow);
  return LOAM_OK;
}


/* The connection options as 'loam_connect' fills them: same meaning, same numbers. */
#define COPT(f) "conn." #f, offsetof(loam_conn_opts, f)
static const struct { const char *name; size_t off; } conndescs[] = {
  { COPT(statement_cache) }, { COPT(busy_timeout_ms) }, { COPT(connect_timeout_s) },
  { COPT(statement_timeout_ms) }, { COPT(idle_in_tx_timeout_ms) },
};
#undef COPT

#define CFIELD(o, d) (*(const int *)((const char *)(o) + (d)->off))


/* Appends option value 'v': -1 is left as "default" by the connection options only. */
static void add_value (loam__buf *b, int v) {
  if (v == -1) loam__buf_adds(b, "default");
  else if (v == LOAM_FOREVER) loam__buf_adds(b, "forever");
  else loam__buf_int(b, v);
}


/* Appends "name A (this open asks for B)" to 'b' for one difference; 'n' counts them. */
static void add_difference (loam__buf *b, int *n, const char *name, int have, int want) {
  loam__buf_adds(b, (*n)++ > 0 ? ", " : "");
  loam__buf_adds(b, name);
  loam__buf_addc(b, ' ');
  add_value(b, have);
  loam__buf_adds(b, " (this open asks for ");
  add_value(b, want);
  loam__buf_addc(b, ')');
}


/*
** LOAM_E_MISUSE naming every option in which 'want' differs from the open
** pool 'p', with both values: the caller sees all it must change at once.
*/
static int compare (const loam_pool *p, const loam_pool_opts *want, loam_error *err) {
  loam__buf b = LOAM__BUF_INIT;
  size_t i;
  int n = 0;
  for (i = 0; i < sizeof optdescs / sizeof optdescs[0]; i++) {
    const optdesc *d = &optdescs[i];
    if (FIELD(&p->o, d) != FIELD(want, d))
      add_difference(&b, &n, d->name, FIELD(&p->o, d), FIELD(want, d));
  }
  for (i = 0; i < sizeof conndescs / sizeof conndescs[0]; i++) {
    if (CFIELD(&p->o.conn, &conndescs[i]) != CFIELD(&want->conn, &conndescs[i]))
      add_difference(&b, &n, conndescs[i].name, CFIELD(&p->o.conn, &conndescs[i]),
                     CFIELD(&want->conn, &conndescs[i]));
  }
  if (!loamP_replicas_same(p, want)) {
    loam__buf_adds(&b, n++ > 0 ? ", " : "");
    loam__buf_adds(&b, "replicas (this open names others)");
  }
  if (n == 0) return LOAM_OK;
  if (loam__buf_cstr(&b) == NULL) return loam__err_nomem(err);
  loam__err(err, LOAM_E_MISUSE, "loam_pool_open: this process already has a pool for that URL "
            "with other options: %s (one pool per URL: open it with the same options)", b.p);
  loam__buf_free(&b);
  return LOAM_ERROR;
}


void loamP_notify (loam_pool_hook fn, void *ud, loam_pool_event ev, const char *msg) {
  if (fn != NULL) fn(ud, ev, msg);
  else if (ev == LOAM_POOL_REPLICA) fprintf(stderr, "loam: %s\n", msg);
  else fprintf(stderr, "loam: pool %s: %s\n", ev == LOAM_POOL_LEAK ? "leak" : "warning", msg);
}


/*
** The integer the one-row, one-column 'sql' returns on 'c', or -1.
** Server settings are read with their own statement: the pool must work
** whatever the connection's cache holds.
*/
static int64_t setting (loam_conn *c, const char *sql) {
  loam_stmt *s;
  loam_value v;
  int64_t r = -1;
  if (loam_query(c, sql, NULL, 0, 0, &s, NULL) != LOAM_OK) return -1;
  if (loam_step(s, NULL) == LOAM_ROW && loam_column(s, 0, &v) == LOAM_OK && v.type == LOAM_INT)
    r = v.u.i;
  loam_stmt_close(s);
  return r;
}


/* PostgreSQL: warns when the pool could take more connections than the server accepts. */
static void check_max_connections (loam_pool *p, loam_conn *c) {
  int64_t max = setting(c, "SELECT CAST(current_setting('max_connections') AS integer)");
  int64_t reserved = setting(c, "SELECT CAST(current_setting('superuser_reserved_connections') "
                                "AS integer)");
  int64_t want = (int64_t)p->o.processes * (p->o.size + p->o.max_overflow);
  loam__buf b = LOAM__BUF_INIT;
  if (max < 0 || reserved < 0 || want <= max - reserved) return;
  if (p->o.processes == 1)
    loam__buf_addf(&b, "size %d + max_overflow %d = %d connections would pass the %d the server "
                   "accepts (max_connections %d - superuser_reserved_connections %d); "
                   "every process with such a pool may take as many",
                   p->o.size, p->o.max_overflow, (int)want, (int)(max - reserved), (int)max,
                   (int)reserved);
  else
    loam__buf_addf(&b, "processes %d x (size %d + max_overflow %d) = %lld connections would "
                   "pass the %d the server accepts (max_connections %d - "
                   "superuser_reserved_connections %d)", p->o.processes, p->o.size,
                   p->o.max_overflow, (long long)want, (int)(max - reserved), (int)max,
                   (int)reserved);
  if (loam__buf_cstr(&b) != NULL) loamP_notify(p->hook, p->hook_ud, LOAM_POOL_WARNING, b.p);
  loam__buf_free(&b);
}


/* A new pool with its first connection, or NULL with 'err' set. */
static loam_pool *create (const char *url, const loam_pool_opts *o, int bouncer,
                          loam_error *err) {
  loam_pool *p = calloc(1, sizeof *p);
  pthread_condattr_t ca;
  loam_conn *c;
  int64_t now;
  if (p == NULL) { loam__err_nomem(err); return NULL; }
  p->o = *o;
  p->nslots = o->size + o->max_overflow;
  p->url = loam__strdup(url);
  p->slots = calloc((size_t)p->nslots, sizeof *p->slots);
  p->idle = calloc((size_t)p->nslots, sizeof *p->idle);
  if (p->url == NULL || p->slots == NULL || p->idle == NULL) {
    free(p->url);
    free(p->slots);
    free(p->idle);
    free(p);
    loam__err_nomem(err);
    return NULL;
  }
  p->hook = o->hook;
  p->hook_ud = o->hook_ud;
  p->refs = 1;
  p->pgbouncer = bouncer;
  now = loam__clock_ns();
  p->rng = (uint64_t)now ^ (uint64_t)(uintptr_t)p ^ UINT64_C(0x9e3779b97f4a7c15);
  p->dead_ns = INT64_MIN;
  pthread_mutex_init(&p->mu, NULL);
  pthread_mutex_init(&p->mon_mu, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (loamP_replicas_init(p, o, err) != LOAM_OK || loam_connect(url, &o->conn, &c, err) != LOAM_OK) {
    loamP_destroy(p);
    return NULL;
  }
  p->backend = c->backend;
  if (p->backend == LOAM_SQLITE && strcmp(url, "sqlite::memory:") == 0 && p->nslots > 1) {
    loam_conn_close(c);
    loamP_destroy(p);
    loam__err(err, LOAM_E_MISUSE, "loam_pool_open: an in-memory SQLite database belongs to one "
              "connection; a pool over it needs size 1 and max_overflow 0");
    return NULL;
  }
  /* Behind PgBouncer the server's max_connections is PgBouncer's to respect. */
  if (p->backend == LOAM_POSTGRES && !p->pgbouncer) check_max_connections(p, c);
  now = loam__clock_ns();
  p->slots[0].conn = c;
  p->slots[0].state = LOAMP_S_IDLE;
  p->slots[0].pid = c->drv->server_pid(c);
  p->slots[0].opened_ns = now;
  p->slots[0].idle_since_ns = now;
  p->slots[0].expires_ns = loamP_expiry(p, now);
  p->idle[0] = 0;
  p->nidle = 1;
  p->nopen = 1;
  p->opened = 1;
  return p;
}


/*
** Whether 'url' asks for PgBouncer's transaction mode ('?pgbouncer=...').
** Its connections then default to no statement cache (the mode refuses
** any other).  A URL that does not parse says no: opening its first
** connection reports what is wrong with it.
*/
static int behind_pgbouncer (const char *url) {
  loam__url u;
  int yes = loam__url_parse(url, &u, NULL) == LOAM_OK && u.pgbouncer;
  loam__url_free(&u);
  return yes;
}


/* Under 'pools_mu': the process's open pool for 'url', or NULL. */
static loam_pool *find (const char *url) {
  loam_pool *p;
  for (p = pools; p != NULL && strcmp(p->url, url) != 0; p = p->next) {}
  return p;
}


int loam_pool_open (const char *url, const loam_pool_opts *opts, loam_pool **out,
                    loam_error *err) {
  return loamP_open(url, opts, 0, out, err);
}


int loamP_open (const char *url, const loam_pool_opts *opts, int own, loam_pool **out,
                loam_error *err) {
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_pool *p;
  int rc = LOAM_OK, bouncer, created = 0;
  if (out == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_pool_open: 'out' is NULL");
  *out = NULL;
  if (url == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_pool_open: the URL is NULL");
  if (opts != NULL) o = *opts;
  if (normalize(&o, err) != LOAM_OK ||
      (o.nreplicas != 0 &&
       loamP_replicas_check("loam_pool_open", url, o.replicas, o.nreplicas, err) != LOAM_OK))
    return LOAM_ERROR;
  /* 'loam_connect' fills these the same way; compared filled, '-1' and '64' are one. */
  bouncer = behind_pgbouncer(url);
  if (o.conn.statement_cache < 0) o.conn.statement_cache = bouncer ? 0 : 64;
  if (o.conn.busy_timeout_ms < 0) o.conn.busy_timeout_ms = 5000;
  if (o.conn.connect_timeout_s == -1) o.conn.connect_timeout_s = 10;
  if (own) {
    if ((p = create(url, &o, bouncer, err)) == NULL) return LOAM_ERROR;
    p->own = 1;
    *out = p;
    created = 1;
  }
  else {
    loam_pool *mine = NULL;
    pthread_mutex_lock(&pools_mu);
    p = find(url);
    if (p == NULL) {
      pthread_mutex_unlock(&pools_mu);
      if ((mine = create(url, &o, bouncer, err)) == NULL) return LOAM_ERROR;
      pthread_mutex_lock(&pools_mu);
      p = find(url);
    }
    if (p != NULL) {
      if ((rc = compare(p, &o, err)) == LOAM_OK) {
        pthread_mutex_lock(&p->mu);
        p->refs++;
        pthread_mutex_unlock(&p->mu);
        *out = p;
      }
    }
    else {
      p = mine;
      mine = NULL;
      p->next = pools;
      pools = p;
      *out = p;
      created = 1;
    }
    pthread_mutex_unlock(&pools_mu);
    if (mine != NULL) loamP_destroy(mine);   /* another thread's pool came first */
  }
  /*
  ** The replicas are checked once the list is free again, since their
  ** pools are the process's too; until then a read finds them unchecked
  ** and goes to the primary.
  */
  if (created && p->nrurls > 0 && loamP_replicas_start(p, err) != LOAM_OK) {
    loam_pool_close(p);
    *out = NULL;
    rc = LOAM_ERROR;
  }
  return rc;
}


void loam_pool_close (loam_pool *p) {
  loam_conn **idle;
  int i, n = 0, freep;
  if (p == NULL) return;
  pthread_mutex_lock(&pools_mu);
  pthread_mutex_lock(&p->mu);
  if (p->closed || --p->refs > 0) {
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&pools_mu);
    return;
  }
  if (!p->own) {
    loam_pool **pp;
    for (pp = &pools; *pp != p; pp = &(*pp)->next) {}
    *pp = p->next;
  }
  pthread_mutex_unlock(&pools_mu);
  p->closed = 1;
  /* The idle connections go now, closed once the lock is released. */
  idle = malloc(sizeof *idle * (size_t)(p->nidle > 0 ? p->nidle : 1));
  for (i = 0; i < p->nidle; i++) {
    loamP_slot *s = &p->slots[p->idle[i]];
    if (idle != NULL) idle[n++] = s->conn;
    else loam_conn_close(s->conn);
    s->conn = NULL;
    s->state = LOAMP_S_EMPTY;
    p->nopen--;
  }
  p->nidle = 0;
  pthread_cond_broadcast(&p->cv);
  freep = loamP_last_out(p);
  pthread_mutex_unlock(&p->mu);
  for (i = 0; i < n; i++) loam_conn_close(idle[i]);
  free(idle);
  if (freep) loamP_destroy(p);
}


void loamP_destroy (loam_pool *p) {
  int i;
  for (i = 0; i < p->nslots; i++) loam_conn_close(p->slots[i].conn);
  loamP_monitor_close(p);
  loamP_replicas_free(p);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  pthread_mutex_destroy(&p->mon_mu);
  free(p->slots);
  free(p->idle);
  free(p->url);
  free(p);
}


void loam_pool_retain (loam_pool *p) {
  if (p == NULL) return;
  pthread_mutex_lock(&p->mu);
  if (!p->closed) p->refs++;
  pthread_mutex_unlock(&p->mu);
}


void loam_pool_set_hook (loam_pool *p, loam_pool_hook fn, void *ud) {
  loam_replicas *rs;
  if (p == NULL) return;
  pthread_mutex_lock(&p->mu);
  p->hook = fn;
  p->hook_ud = ud;
  rs = p->rs;
  pthread_mutex_unlock(&p->mu);
  if (rs != NULL) loamP_replicas_set_hook(rs, fn, ud);
}
