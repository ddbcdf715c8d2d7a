/*
** bench.h: timing and reporting shared by the benchmark programs.
**
** Each program runs the same workloads through a raw driver API and
** through libloam, in the same process and on the same data, several
** times, and reports the best time of each.  Only ratios measured in one
** run mean anything; nothing here asserts on time.
*/
#ifndef LOAM_BENCH_H
#define LOAM_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "loam.h"

#define BENCH_ROWS 10000

typedef struct bench_result {
  const char *workload;
  double raw_ms;    /* best over the runs */
  double loam_ms;
} bench_result;


static inline double bench_now_ms (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}


/* Runs to make: LOAM_BENCH_RUNS from the environment, else 'dflt'. */
static inline int bench_runs (int dflt) {
  const char *s = getenv("LOAM_BENCH_RUNS");
  int n = s ? atoi(s) : 0;
  return n > 0 ? n : dflt;
}


/* Keeps the smaller of '*best' (negative: none yet) and 'ms'. */
static inline void bench_keep (double *best, double ms) {
  if (*best < 0 || ms < *best) *best = ms;
}


static inline void bench_report (const char *title, const bench_result *r, int n) {
  int i;
  printf("\n%s\n", title);
  printf("  %-34s %10s %10s %10s\n", "workload", "raw ms", "loam ms", "loam/raw");
  printf("  %-34s %10s %10s %10s\n", "----------------------------------",
         "------", "-------", "--------");
  for (i = 0; i < n; i++)
    printf("  %-34s %10.1f %10.1f %10.2f\n", r[i].workload, r[i].raw_ms, r[i].loam_ms,
           r[i].loam_ms / r[i].raw_ms);
}

/* The key of the 'i'th point select: every row once, in a scattered order. */
#define KEY(i) ((int64_t)(((i) * 7919) % BENCH_ROWS) + 1)

/* What a workload read, folded; the raw and the loam side must agree. */
typedef struct checksum {
  int64_t ints;
  size_t bytes;
  double reals;
} checksum;

/* The program name for messages; each main sets it first. */
static const char *bench_prog = "bench";


static inline void item_name (int i, char *buf, size_t size) {
  snprintf(buf, size, "item-%05d", i);
}


static inline void check_same (const char *workload, const checksum *a, const checksum *b) {
  if (a->ints != b->ints || a->bytes != b->bytes || a->reals != b->reals) {
    fprintf(stderr, "%s: %s: raw and loam read different data\n", bench_prog, workload);
    exit(1);
  }
}


/* {==================================================================
** The libloam side, the same on every backend: the public API only,
** with '?' placeholders; the statement cache does the rest.
** =================================================================== */

typedef struct loam_sql_set {
  const char *insert;       /* (name, qty, price) */
  const char *select_all;   /* id, name, qty, price of every row, by id */
  const char *select_one;   /* the same columns for one id */
} loam_sql_set;


static inline void die_loam (const char *what, loam_error *err) {
  fprintf(stderr, "%s: %s: %s: %s\n", bench_prog, what, loam_errcode_name(err->code),
          err->message ? err->message : "");
  exit(1);
}


static inline void loam_run (loam_conn *db, const char *sql) {
  loam_error err = LOAM_ERROR_INIT;
  if (loam_exec(db, sql, NULL, 0, NULL, NULL, NULL, &err) != LOAM_OK) die_loam(sql, &err);
}


static inline void loam_read (loam_stmt *st, checksum *sum) {
  loam_value v[4];
  int i;
  for (i = 0; i < 4; i++) loam_column(st, i, &v[i]);
  sum->ints += v[0].u.i;
  sum->bytes += v[1].u.s.len + 1;
  sum->ints += v[2].u.i;
  sum->reals += v[3].u.d;
}


static inline double loam_insert (loam_conn *db, const loam_sql_set *q) {
  double t0 = bench_now_ms();
  loam_error err = LOAM_ERROR_INIT;
  loam_value params[3];
  char name[32];
  int i;
  loam_run(db, "BEGIN");
  for (i = 0; i < BENCH_ROWS; i++) {
    item_name(i, name, sizeof name);
    params[0] = loam_text(name, strlen(name));
    params[1] = loam_int(i % 100);
    params[2] = loam_double(i * 0.25);
    if (loam_exec(db, q->insert, params, 3, NULL, NULL, NULL, &err) != LOAM_OK)
      die_loam(q->insert, &err);
  }
  loam_run(db, "COMMIT");
  return bench_now_ms() - t0;
}


static inline double loam_select_all (loam_conn *db, const loam_sql_set *q, checksum *sum) {
  double t0 = bench_now_ms();
  loam_error err = LOAM_ERROR_INIT;
  loam_stmt *st;
  int rc;
  if (loam_query(db, q->select_all, NULL, 0, 0, &st, &err) != LOAM_OK)
    die_loam(q->select_all, &err);
  while ((rc = loam_step(st, &err)) == LOAM_ROW) loam_read(st, sum);
  if (rc != LOAM_DONE) die_loam(q->select_all, &err);
  loam_stmt_close(st);
  return bench_now_ms() - t0;
}


static inline double loam_point_selects (loam_conn *db, const loam_sql_set *q, checksum *sum) {
  double t0 = bench_now_ms();
  loam_error err = LOAM_ERROR_INIT;
  loam_value key;
  loam_stmt *st;
  int i;
  for (i = 0; i < BENCH_ROWS; i++) {
    key = loam_int(KEY(i));
    if (loam_query(db, q->select_one, &key, 1, 0, &st, &err) != LOAM_OK)
      die_loam(q->select_one, &err);
    if (loam_step(st, &err) != LOAM_ROW) die_loam(q->select_one, &err);
    loam_read(st, sum);
    loam_stmt_close(st);
  }
  return bench_now_ms() - t0;
}

/* }================================================================== */

#endif
