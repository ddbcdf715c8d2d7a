/*
** bench_sqlite.c: libloam against the raw sqlite3 API.
**
** Three workloads, each on its own in-memory database so that only the
** library overhead differs: (a) insert BENCH_ROWS rows in one transaction
** with bound parameters, (b) select them all reading every column,
** (c) BENCH_ROWS point selects by primary key.  The raw side keeps one
** prepared statement per workload, as a careful C programmer would; the
** loam side uses the public API only (its statement cache does the rest).
** Both sides fold what they read into a checksum, which must agree.
*/
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "loam.h"
#include "bench.h"

#define SCHEMA "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL," \
               " qty INTEGER NOT NULL, price REAL NOT NULL)"
#define INSERT "INSERT INTO items (name, qty, price) VALUES (?, ?, ?)"
#define SELECT_ALL "SELECT id, name, qty, price FROM items ORDER BY id"
#define SELECT_ONE "SELECT id, name, qty, price FROM items WHERE id = ?"

/* The same statements on both sides: SQLite takes '?' natively. */
static const loam_sql_set loam_sql = { INSERT, SELECT_ALL, SELECT_ONE };


static void die_sqlite (sqlite3 *db, const char *what) {
  fprintf(stderr, "bench_sqlite: %s: %s\n", what, sqlite3_errmsg(db));
  exit(1);
}


/* {==================================================================
** Raw sqlite3
** =================================================================== */

static sqlite3_stmt *raw_prepare (sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) die_sqlite(db, sql);
  return st;
}


static void raw_exec (sqlite3 *db, const char *sql) {
  if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) die_sqlite(db, sql);
}


static void raw_read (sqlite3_stmt *st, checksum *sum) {
  sum->ints += sqlite3_column_int64(st, 0);
  sum->bytes += (size_t)sqlite3_column_bytes(st, 1) + (sqlite3_column_text(st, 1) != NULL);
  sum->ints += sqlite3_column_int64(st, 2);
  sum->reals += sqlite3_column_double(st, 3);
}


static double raw_insert (sqlite3 *db) {
  double t0 = bench_now_ms();
  sqlite3_stmt *st;
  char name[32];
  int i;
  raw_exec(db, "BEGIN");
  st = raw_prepare(db, INSERT);
  for (i = 0; i < BENCH_ROWS; i++) {
    item_name(i, name, sizeof name);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, i % 100);
    sqlite3_bind_double(st, 3, i * 0.25);
    if (sqlite3_step(st) != SQLITE_DONE) die_sqlite(db, INSERT);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  raw_exec(db, "COMMIT");
  return bench_now_ms() - t0;
}


static double raw_select_all (sqlite3 *db, checksum *sum) {
  double t0 = bench_now_ms();
  sqlite3_stmt *st = raw_prepare(db, SELECT_ALL);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) raw_read(st, sum);
  if (rc != SQLITE_DONE) die_sqlite(db, SELECT_ALL);
  sqlite3_finalize(st);
  return bench_now_ms() - t0;
}


static double raw_point_selects (sqlite3 *db, checksum *sum) {
  double t0 = bench_now_ms();
  sqlite3_stmt *st = raw_prepare(db, SELECT_ONE);
  int i;
  for (i = 0; i < BENCH_ROWS; i++) {
    sqlite3_bind_int64(st, 1, KEY(i));
    if (sqlite3_step(st) != SQLITE_ROW) die_sqlite(db, SELECT_ONE);
    raw_read(st, sum);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  return bench_now_ms() - t0;
}

/* }================================================================== */


int main (void) {
  bench_result r[3] = {
    { "insert 10000 rows, one transaction", -1, -1 },
    { "select 10000 rows, every column", -1, -1 },
    { "10000 point selects by key", -1, -1 },
  };
  int runs = bench_runs(5), run;
  char title[128];
  bench_prog = "bench_sqlite";
  for (run = 0; run < runs; run++) {
    sqlite3 *raw = NULL;
    loam_conn *db = NULL;
    loam_error err = LOAM_ERROR_INIT;
    checksum rs = { 0, 0, 0 }, ls = { 0, 0, 0 };
    if (sqlite3_open(":memory:", &raw) != SQLITE_OK) die_sqlite(raw, "open");
    if (loam_connect("sqlite::memory:", NULL, &db, &err) != LOAM_OK) die_loam("connect", &err);
    raw_exec(raw, SCHEMA);
    loam_run(db, SCHEMA);

    bench_keep(&r[0].raw_ms, raw_insert(raw));
    bench_keep(&r[0].loam_ms, loam_insert(db, &loam_sql));
    bench_keep(&r[1].raw_ms, raw_select_all(raw, &rs));
    bench_keep(&r[1].loam_ms, loam_select_all(db, &loam_sql, &ls));
    check_same(r[1].workload, &rs, &ls);
    bench_keep(&r[2].raw_ms, raw_point_selects(raw, &rs));
    bench_keep(&r[2].loam_ms, loam_point_selects(db, &loam_sql, &ls));
    check_same(r[2].workload, &rs, &ls);

    loam_conn_close(db);
    sqlite3_close(raw);
  }
  snprintf(title, sizeof title, "SQLite %s, in-memory databases, best of %d runs",
           sqlite3_libversion(), runs);
  bench_report(title, r, 3);
  return 0;
}
