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
#include <time.h>

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

#endif
