/*
** peer_c_w5.c: W5 hand-written on raw libpq, the limit that
** examples/host_threads.c (16 threads, each its own Lua state with loam's
** models, over one pool of 4 connections) is measured against.
**
**   peer_c_w5 CONNINFO [TRANSACTIONS_PER_THREAD [THREADS]]
**
** What a careful C programmer writes: 16 pthreads share 4 libpq
** connections through a mutex, a condition variable and a stack of free
** connections; each transaction checks one out, runs BEGIN, a prepared
** SELECT ... FOR UPDATE of one row by key, a prepared UPDATE of it and
** COMMIT, and hands it back.  The same table, keys and row count as the
** example, and the same line of output: "N transactions/s".
*/
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#define POOL_SIZE 4
#define ROWS 64

static PGconn *conns[POOL_SIZE];
static int free_stack[POOL_SIZE], nfree;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static const char *conninfo;
static int transactions;


static void die (const char *what, const char *msg) {
  fprintf(stderr, "peer_c_w5: %s: %s\n", what, msg);
  exit(EXIT_FAILURE);
}


static void check (PGconn *c, PGresult *res, const char *what) {
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) die(what, PQerrorMessage(c));
}


static void exec (PGconn *c, const char *sql) {
  PGresult *res = PQexec(c, sql);
  check(c, res, sql);
  PQclear(res);
}


static int acquire (void) {
  int i;
  pthread_mutex_lock(&mu);
  while (nfree == 0) pthread_cond_wait(&cv, &mu);
  i = free_stack[--nfree];
  pthread_mutex_unlock(&mu);
  return i;
}


static void release (int i) {
  pthread_mutex_lock(&mu);
  free_stack[nfree++] = i;
  pthread_cond_signal(&cv);
  pthread_mutex_unlock(&mu);
}


static void *worker (void *arg) {
  int thread = (int)(intptr_t)arg, i;
  for (i = 1; i <= transactions; i++) {
    char id[16], hits[24];
    const char *params[2];
    int k = acquire();
    PGconn *c = conns[k];
    PGresult *res;
    snprintf(id, sizeof id, "%d", (i * 7 + thread) % ROWS + 1);
    params[0] = id;
    exec(c, "BEGIN");
    res = PQexecPrepared(c, "read", 1, params, NULL, NULL, 0);
    check(c, res, "read");
    if (PQntuples(res) != 1) die("read", "no such row");
    snprintf(hits, sizeof hits, "%lld", strtoll(PQgetvalue(res, 0, 1), NULL, 10) + 1);
    PQclear(res);
    params[0] = hits;
    params[1] = id;
    res = PQexecPrepared(c, "update", 2, params, NULL, NULL, 0);
    check(c, res, "update");
    PQclear(res);
    exec(c, "COMMIT");
    release(k);
  }
  return NULL;
}


static double now_s (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}


int main (int argc, char **argv) {
  int nthreads, i;
  pthread_t *tids;
  PGresult *res;
  double t0, elapsed;
  char sql[256];
  if (argc < 2) die("usage", "peer_c_w5 CONNINFO [TRANSACTIONS_PER_THREAD [THREADS]]");
  conninfo = argv[1];
  transactions = argc > 2 ? atoi(argv[2]) : 2000;
  nthreads = argc > 3 ? atoi(argv[3]) : 16;
  if (transactions < 1 || nthreads < 1) die("usage", "counts must be positive");
  for (i = 0; i < POOL_SIZE; i++) {
    conns[i] = PQconnectdb(conninfo);
    if (PQstatus(conns[i]) != CONNECTION_OK) die("connect", PQerrorMessage(conns[i]));
    free_stack[nfree++] = i;
  }
  exec(conns[0], "SET client_min_messages TO warning");
  exec(conns[0], "DROP TABLE IF EXISTS host_counters");
  exec(conns[0], "CREATE TABLE host_counters (id INTEGER PRIMARY KEY, hits INTEGER NOT NULL)");
  snprintf(sql, sizeof sql, "INSERT INTO host_counters SELECT n, 0 FROM generate_series(1, %d) n",
           ROWS);
  exec(conns[0], sql);
  for (i = 0; i < POOL_SIZE; i++) {
    res = PQprepare(conns[i], "read", "SELECT id, hits FROM host_counters WHERE id = $1 "
                    "FOR UPDATE", 0, NULL);
    check(conns[i], res, "prepare read");
    PQclear(res);
    res = PQprepare(conns[i], "update", "UPDATE host_counters SET hits = $1 WHERE id = $2", 0,
                    NULL);
    check(conns[i], res, "prepare update");
    PQclear(res);
  }
  tids = calloc((size_t)nthreads, sizeof *tids);
  if (tids == NULL) die("threads", "no memory");
  t0 = now_s();
  for (i = 0; i < nthreads; i++)
    if (pthread_create(&tids[i], NULL, worker, (void *)(intptr_t)i) != 0)
      die("threads", "cannot start one");
  for (i = 0; i < nthreads; i++) pthread_join(tids[i], NULL);
  elapsed = now_s() - t0;
  free(tids);
  res = PQexec(conns[0], "SELECT sum(hits) FROM host_counters");
  check(conns[0], res, "check");
  if (strtoll(PQgetvalue(res, 0, 0), NULL, 10) != (long long)nthreads * transactions)
    die("check", "the hits do not add up to the transactions");
  PQclear(res);
  printf("%d threads x %d transactions over a pool of %d: %lld rows updated\n", nthreads,
         transactions, POOL_SIZE, (long long)nthreads * transactions);
  printf("%.0f transactions/s\n", (double)nthreads * transactions / elapsed);
  for (i = 0; i < POOL_SIZE; i++) PQfinish(conns[i]);
  return EXIT_SUCCESS;
}
