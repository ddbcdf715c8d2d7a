/*
** bench_pool.c: the cost of an uncontended checkout and release.
**
** One thread takes a connection from the pool and hands it back, over and
** over: no statement runs, so what is measured is the pool alone.  The
** "raw" side is what a careful C programmer writes by hand: a mutex, a
** condition variable and a stack of connections, popped and pushed.  The
** loam side is 'loam_pool_acquire' with a tag and 'loam_pool_release', on
** a SQLite file and, when LOAM_TEST_PG names one, on PostgreSQL.
*/
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "loam.h"

/* Only ratios measured in one run mean anything; nothing asserts on time. */
typedef struct bench_result {
  const char *workload;
  double raw_ms;    /* best over the runs */
  double loam_ms;
} bench_result;


static double bench_now_ms (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}


/* Runs to make: LOAM_BENCH_RUNS from the environment, else 'dflt'. */
static int bench_runs (int dflt) {
  const char *s = getenv("LOAM_BENCH_RUNS");
  int n = s ? atoi(s) : 0;
  return n > 0 ? n : dflt;
}


/* Keeps the smaller of '*best' (negative: none yet) and 'ms'. */
static void bench_keep (double *best, double ms) {
  if (*best < 0 || ms < *best) *best = ms;
}


static void bench_report (const char *title, const bench_result *r, int n) {
  int i;
  printf("\n%s\n", title);
  printf("  %-34s %10s %10s %10s\n", "workload", "raw ms", "loam ms", "loam/raw");
  for (i = 0; i < n; i++)
    printf("  %-34s %10.1f %10.1f %10.2f\n", r[i].workload, r[i].raw_ms, r[i].loam_ms,
           r[i].loam_ms / r[i].raw_ms);
}

#define ROUNDS 1000000


/* The hand-written pool: a stack of 'n' connections under a mutex. */
typedef struct rawpool {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  loam_conn *conns[4];
  int n;
} rawpool;

static loam_conn *raw_acquire (rawpool *p) {
  loam_conn *c;
  pthread_mutex_lock(&p->mu);
  while (p->n == 0) pthread_cond_wait(&p->cv, &p->mu);
  c = p->conns[--p->n];
  pthread_mutex_unlock(&p->mu);
  return c;
}

static void raw_release (rawpool *p, loam_conn *c) {
  pthread_mutex_lock(&p->mu);
  p->conns[p->n++] = c;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
}


static void die (const char *what, const loam_error *e) {
  fprintf(stderr, "bench_pool: %s: %s\n", what, e->message ? e->message : "");
  exit(1);
}


static void run (const char *url, const char *workload, bench_result *r) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  loam_pool *pool = NULL;
  rawpool raw;
  loam_conn *c;
  int runs = bench_runs(5), k, i;
  double best_raw = -1, best_loam = -1, t0;
  o.size = 4;
  if (loam_pool_open(url, &o, &pool, &e) != LOAM_OK) die("loam_pool_open", &e);
  pthread_mutex_init(&raw.mu, NULL);
  pthread_cond_init(&raw.cv, NULL);
  if (loam_connect(url, NULL, &raw.conns[0], &e) != LOAM_OK) die("loam_connect", &e);
  raw.n = 1;
  for (k = 0; k < runs; k++) {
    t0 = bench_now_ms();
    for (i = 0; i < ROUNDS; i++) raw_release(&raw, raw_acquire(&raw));
    bench_keep(&best_raw, bench_now_ms() - t0);
    t0 = bench_now_ms();
    for (i = 0; i < ROUNDS; i++) {
      if (loam_pool_acquire(pool, "bench_pool.c:run", &c, &e) != LOAM_OK)
        die("loam_pool_acquire", &e);
      if (loam_pool_release(pool, c, &e) != LOAM_OK) die("loam_pool_release", &e);
    }
    bench_keep(&best_loam, bench_now_ms() - t0);
  }
  r->workload = workload;
  r->raw_ms = best_raw;
  r->loam_ms = best_loam;
  printf("  %s: %.0f ns per acquire + release (hand-written pool: %.0f ns)\n", workload,
         best_loam * 1e6 / ROUNDS, best_raw * 1e6 / ROUNDS);
  loam_conn_close(raw.conns[0]);
  pthread_cond_destroy(&raw.cv);
  pthread_mutex_destroy(&raw.mu);
  loam_pool_close(pool);
  loam_error_clear(&e);
}


int main (void) {
  bench_result r[2];
  const char *pg = getenv("LOAM_TEST_PG");
  char url[] = "sqlite:/tmp/loam-bench-pool-XXXXXX";
  char path[64];
  int n = 0, fd;
  fd = mkstemp(url + 7);
  if (fd < 0) { perror("mkstemp"); return 1; }
  close(fd);
  printf("\npool: %d uncontended checkouts and releases, best of %d runs\n", ROUNDS,
         bench_runs(5));
  run(url, "1M acquire+release (sqlite)", &r[n++]);
  if (pg != NULL && *pg != '\0') run(pg, "1M acquire+release (postgres)", &r[n++]);
  bench_report("pool: hand-written mutex pool (raw) vs loam_pool", r, n);
  snprintf(path, sizeof path, "%s", url + 7);
  remove(path);
  snprintf(path, sizeof path, "%s-wal", url + 7);
  remove(path);
  snprintf(path, sizeof path, "%s-shm", url + 7);
  remove(path);
  return 0;
}
