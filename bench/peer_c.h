/*
** peer_c.h: what the two hand-written C peers share, apart from the driver.
**
** The benchmark's sizes come from the environment (bench/run sets them),
** so every peer, C or Lua, works on the same numbers.  Each workload is a
** function that does its work once and writes what it read, folded into a
** check string, which must be the same in every run and in every peer;
** the wall-clock time of each timed round is reported on one tab-separated
** RESULT line per workload (bench/report.lua reads them).
** The page assembly of W3 lives here too: rows are read by each driver,
** joined to their parents the same way.
*/
#ifndef LOAM_BENCH_PEER_C_H
#define LOAM_BENCH_PEER_C_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE_SIZE 100      /* orders on a W3 page */
#define INSERT_CHUNK 1000  /* rows per multi-row INSERT in W4 */
#define CHECK_LEN 64       /* room for a workload's check string */

typedef struct sizes {
  int64_t customers, orders, lookups, pages, inserts, stream;
} sizes;

static sizes N;

/* The program name for messages; each main sets it first. */
static const char *prog = "peer_c";


static void die (const char *what, const char *why) {
  fprintf(stderr, "%s: %s: %s\n", prog, what, why ? why : "");
  exit(1);
}


static int64_t env_size (const char *name) {
  const char *s = getenv(name);
  long long v = s ? atoll(s) : 0;
  if (v <= 0) die(name, "missing or not a positive integer in the environment");
  return (int64_t)v;
}


static void read_sizes (void) {
  N.customers = env_size("BENCH_CUSTOMERS");
  N.orders = env_size("BENCH_ORDERS");
  N.lookups = env_size("BENCH_LOOKUPS");
  N.pages = env_size("BENCH_PAGES");
  N.inserts = env_size("BENCH_INSERTS");
  N.stream = env_size("BENCH_STREAM");
}


static double now_ms (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}


/* The peak resident set of this process so far, in kB ('VmHWM'). */
static long peak_rss_kb (void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0) kb = atol(line + 6);
  fclose(f);
  return kb;
}


/* The order id of the 'i'th W2 lookup: scattered, each at most once. */
static int64_t lookup_key (int64_t i) { return (i * 7919) % N.orders + 1; }

/* The W3 pages are spread over the table: page 'p' starts after this id. */
static int64_t page_after (int64_t p) { return p * (N.orders / N.pages); }


/* {==================================================================
** Rows as a C program keeps them: structs, their text in one arena.
** =================================================================== */

typedef struct arena {
  char *p;
  size_t len, cap;
} arena;


/* Copies 's' into the arena; returns its offset (the block may move). */
static size_t arena_add (arena *a, const char *s, size_t len) {
  size_t at = a->len;
  if (a->len + len + 1 > a->cap) {
    size_t cap = a->cap ? a->cap : 4096;
    while (cap < a->len + len + 1) cap *= 2;
    if (!(a->p = realloc(a->p, cap))) die("arena", "out of memory");
    a->cap = cap;
  }
  memcpy(a->p + at, s, len);
  a->p[at + len] = '\0';
  a->len += len + 1;
  return at;
}

#define NO_TEXT ((size_t)-1)  /* an SQL NULL where text was expected */

typedef struct order {
  int64_t id, customer_id, total_cents;
  size_t status, note;        /* arena offsets; 'note' may be NO_TEXT */
  int64_t customer;           /* W3: the customer's id, found in its batch */
  int64_t item_qty;           /* W3: the quantities of its items, summed */
} order;

typedef struct customer {
  int64_t id;
  size_t name, email;         /* arena offsets */
} customer;

typedef struct rows {
  order *orders;
  size_t norders, cap_orders;
  customer *customers;
  size_t ncustomers, cap_customers;
  arena text;
} rows;


static order *add_order (rows *r) {
  if (r->norders == r->cap_orders) {
    r->cap_orders = r->cap_orders ? 2 * r->cap_orders : 128;
    if (!(r->orders = realloc(r->orders, r->cap_orders * sizeof *r->orders)))
      die("rows", "out of memory");
  }
  memset(&r->orders[r->norders], 0, sizeof *r->orders);
  return &r->orders[r->norders++];
}


static customer *add_customer (rows *r) {
  if (r->ncustomers == r->cap_customers) {
    r->cap_customers = r->cap_customers ? 2 * r->cap_customers : 128;
    if (!(r->customers = realloc(r->customers, r->cap_customers * sizeof *r->customers)))
      die("rows", "out of memory");
  }
  return &r->customers[r->ncustomers++];
}


static void rows_clear (rows *r) {
  r->norders = r->ncustomers = 0;
  r->text.len = 0;
}


static void rows_free (rows *r) {
  free(r->orders);
  free(r->customers);
  free(r->text.p);
  memset(r, 0, sizeof *r);
}


/* W1 and W2: the orders read, as 'count:sum(total_cents):sum(customer_id)'. */
static void fold_orders (const rows *r, char *check) {
  int64_t sum = 0, cust = 0;
  size_t i;
  for (i = 0; i < r->norders; i++) {
    sum += r->orders[i].total_cents;
    cust += r->orders[i].customer_id;
  }
  snprintf(check, CHECK_LEN, "%zu:%" PRId64 ":%" PRId64, r->norders, sum, cust);
}


/* The distinct customer ids of a page's orders, into 'ids' (PAGE_SIZE). */
static size_t page_customer_ids (const rows *r, int64_t *ids) {
  size_t i, j, n = 0;
  for (i = 0; i < r->norders; i++) {
    for (j = 0; j < n && ids[j] != r->orders[i].customer_id; j++) {}
    if (j == n) ids[n++] = r->orders[i].customer_id;
  }
  return n;
}


static int cmp_customer (const void *a, const void *b) {
  int64_t x = ((const customer *)a)->id, y = ((const customer *)b)->id;
  return (x > y) - (x < y);
}


/* Sets each order's customer from the batch read into 'r->customers'. */
static void page_join_customers (rows *r) {
  size_t i;
  qsort(r->customers, r->ncustomers, sizeof *r->customers, cmp_customer);
  for (i = 0; i < r->norders; i++) {
    customer key, *c;
    key.id = r->orders[i].customer_id;
    c = bsearch(&key, r->customers, r->ncustomers, sizeof key, cmp_customer);
    if (!c) die("W3", "an order's customer is missing from its batch");
    r->orders[i].customer = c->id;
  }
}


/* Adds an item to its order; the page's orders are sorted by id. */
static void page_add_item (rows *r, int64_t order_id, int64_t qty) {
  size_t lo = 0, hi = r->norders;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (r->orders[mid].id < order_id) lo = mid + 1;
    else hi = mid;
  }
  if (lo == r->norders || r->orders[lo].id != order_id)
    die("W3", "an item of no order on the page");
  r->orders[lo].item_qty += qty;
}


/* What a W3 page read: its orders, their customers and items. */
static void page_fold (const rows *r, int64_t *count, int64_t *sum) {
  size_t i;
  for (i = 0; i < r->norders; i++) {
    *count += 1;
    *sum += r->orders[i].total_cents + r->orders[i].customer + r->orders[i].item_qty;
  }
}

/* }================================================================== */


/* The W4 row 'r' (1-based), the same in every peer. */
static void insert_row (int64_t r, int64_t *customer_id, int64_t *total_cents, char *note,
                        size_t size) {
  *customer_id = r % N.customers + 1;
  *total_cents = r;
  snprintf(note, size, "bulk %" PRId64, r);
}


/* {==================================================================
** Running and reporting
** =================================================================== */

/* A workload runs once on 'db' and writes its check string to 'check',
** unless it has an 'after', which does that, and undoes the work before
** the next run, outside the timing. */
typedef void (*workload_fn) (void *db, char *check);

typedef struct workload {
  const char *name;  /* as bench/report.lua knows it: W1, W3seq, W4loop... */
  workload_fn fn;
  void (*after) (char *check);  /* or NULL */
} workload;


static void report (const char *peer, const char *backend, const char *name, double ms,
                    const char *check, long rss_kb) {
  printf("RESULT\t%s\t%s\t%s\t%.3f\t%s\t%ld\n", peer, backend, name, ms, check, rss_kb);
  fflush(stdout);
}


#define MAX_WORKLOADS 8

/* Runs the rounds bench/run asks for, one line on stdin each: "warm" runs
** every workload once untimed, "run" once timed, with a RESULT line each;
** "DONE" ends a round's output.  The rounds of all peers are interleaved by
** bench/run, so a peer keeps its connection and prepared statements, and
** the time of each round stands alone.  Every round must read what the
** first did. */
static void run_all (const char *backend, void *db, const workload *w, size_t n) {
  char first[MAX_WORKLOADS][CHECK_LEN], check[CHECK_LEN], line[32];
  int round = 0;
  size_t i;
  if (n > MAX_WORKLOADS) die("run_all", "too many workloads");
  while (fgets(line, sizeof line, stdin)) {
    int timed = strcmp(line, "run\n") == 0;
    if (!timed && strcmp(line, "warm\n") != 0) die("stdin", "expected 'warm' or 'run'");
    for (i = 0; i < n; i++) {
      double t0 = now_ms(), ms;
      w[i].fn(db, check);
      ms = now_ms() - t0;
      if (w[i].after) w[i].after(check);
      if (round == 0) memcpy(first[i], check, CHECK_LEN);
      else if (strcmp(first[i], check) != 0) die(w[i].name, "rounds read different data");
      if (timed) report("c", backend, w[i].name, ms, check, -1);
    }
    printf("DONE\n");
    fflush(stdout);
    round++;
  }
}


/* M1 in a process of its own: the growth of its peak RSS is the answer. */
static void run_stream (const char *backend, void *db, workload_fn fn) {
  char check[CHECK_LEN];
  long before = peak_rss_kb();
  double t0 = now_ms(), ms;
  fn(db, check);
  ms = now_ms() - t0;
  report("c", backend, "M1", ms, check, peak_rss_kb() - before);
}

/* }================================================================== */

#endif
