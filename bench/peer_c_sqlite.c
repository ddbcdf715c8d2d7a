/*
** peer_c_sqlite.c: the benchmark's workloads hand-written on the raw sqlite3
** API, the limit the other peers are measured against on SQLite.
**
**   peer_c_sqlite FILE        W1-W4 once a round, rounds asked for on stdin
**   peer_c_sqlite FILE M1     the stream, once, in this process alone
**
** What a careful C programmer writes: statements prepared once and reset,
** rows read into structs, IN lists of fixed length (padded with a key
** already in the list), inserts as multi-row VALUES of INSERT_CHUNK rows,
** and, for comparison, a row-by-row loop over one prepared statement.
** The connection is set up as every peer's is: WAL, synchronous=NORMAL,
** foreign keys on.
*/
#include <sqlite3.h>

#include "peer_c.h"

#define ORDER_COLS "id, customer_id, status, total_cents, note"
#define INSERT_COLS "INSERT INTO orders (customer_id, status, total_cents, note) VALUES "

static sqlite3 *db;


static void die_db (const char *what) { die(what, sqlite3_errmsg(db)); }


static sqlite3_stmt *prepare (const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) die_db(sql);
  return st;
}


static void exec (const char *sql) {
  if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) die_db(sql);
}


static size_t text (rows *r, sqlite3_stmt *st, int col) {
  const unsigned char *s = sqlite3_column_text(st, col);
  if (!s) return NO_TEXT;
  return arena_add(&r->text, (const char *)s, (size_t)sqlite3_column_bytes(st, col));
}


static void read_order (rows *r, sqlite3_stmt *st) {
  order *o = add_order(r);
  o->id = sqlite3_column_int64(st, 0);
  o->customer_id = sqlite3_column_int64(st, 1);
  o->status = text(r, st, 2);
  o->total_cents = sqlite3_column_int64(st, 3);
  o->note = text(r, st, 4);
}


/* Steps 'st' to its end, reading every row as an order. */
static void read_orders (rows *r, sqlite3_stmt *st) {
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) read_order(r, st);
  if (rc != SQLITE_DONE) die_db("reading orders");
  sqlite3_reset(st);
}



static void w1 (void *unused, char *check) {
  rows r = { 0 };
  sqlite3_stmt *st = prepare("SELECT " ORDER_COLS " FROM orders");
  (void)unused;
  read_orders(&r, st);
  sqlite3_finalize(st);
  fold_orders(&r, check);
  rows_free(&r);
}


static void w2 (void *unused, char *check) {
  rows r = { 0 };
  sqlite3_stmt *st = prepare("SELECT " ORDER_COLS " FROM orders WHERE id = ?");
  int64_t i;
  (void)unused;
  for (i = 0; i < N.lookups; i++) {
    sqlite3_bind_int64(st, 1, lookup_key(i));
    read_orders(&r, st);
  }
  sqlite3_finalize(st);
  fold_orders(&r, check);
  rows_free(&r);
}


/* "?, ?, ... ?" with 'n' placeholders, into 'buf'. */
static const char *placeholders (char *buf, int n) {
  int i;
  buf[0] = '\0';
  for (i = 0; i < n; i++) strcat(buf, i ? ", ?" : "?");
  return buf;
}


/* Binds 'n' keys to a statement of PAGE_SIZE placeholders, padding it. */
static void bind_keys (sqlite3_stmt *st, const int64_t *keys, size_t n) {
  size_t i;
  for (i = 0; i < PAGE_SIZE; i++) sqlite3_bind_int64(st, (int)i + 1, keys[i < n ? i : 0]);
}


static void w3 (void *unused, char *check) {
  char ph[4 * PAGE_SIZE], sql[6 * PAGE_SIZE];
  sqlite3_stmt *page, *customers, *items;
  rows r = { 0 };
  int64_t keys[PAGE_SIZE], p, count = 0, sum = 0;
  size_t i, n;
  int rc;
  (void)unused;
  page = prepare("SELECT " ORDER_COLS " FROM orders WHERE id > ? ORDER BY id LIMIT ?");
  placeholders(ph, PAGE_SIZE);
  snprintf(sql, sizeof sql, "SELECT id, name, email FROM customers WHERE id IN (%s)", ph);
  customers = prepare(sql);
  snprintf(sql, sizeof sql, "SELECT id, order_id, sku, qty, price_cents FROM line_items"
           " WHERE order_id IN (%s)", ph);
  items = prepare(sql);
  for (p = 0; p < N.pages; p++) {
    rows_clear(&r);
    sqlite3_bind_int64(page, 1, page_after(p));
    sqlite3_bind_int64(page, 2, PAGE_SIZE);
    read_orders(&r, page);

    n = page_customer_ids(&r, keys);
    bind_keys(customers, keys, n);
    while ((rc = sqlite3_step(customers)) == SQLITE_ROW) {
      customer *c = add_customer(&r);
      c->id = sqlite3_column_int64(customers, 0);
      c->name = text(&r, customers, 1);
      c->email = text(&r, customers, 2);
    }
    if (rc != SQLITE_DONE) die_db("reading customers");
    sqlite3_reset(customers);
    page_join_customers(&r);

    for (i = 0; i < r.norders; i++) keys[i] = r.orders[i].id;
    bind_keys(items, keys, r.norders);
    while ((rc = sqlite3_step(items)) == SQLITE_ROW) {
      text(&r, items, 2);
      page_add_item(&r, sqlite3_column_int64(items, 1), sqlite3_column_int64(items, 3));
    }
    if (rc != SQLITE_DONE) die_db("reading line items");
    sqlite3_reset(items);
    page_fold(&r, &count, &sum);
  }
  sqlite3_finalize(page);
  sqlite3_finalize(customers);
  sqlite3_finalize(items);
  rows_free(&r);
  snprintf(check, CHECK_LEN, "%" PRId64 ":%" PRId64, count, sum);
}


/* What W4 inserted, then the table as it was: the check is the same for
** every way of inserting. */
static void w4_check_and_undo (char *check) {
  sqlite3_stmt *st = prepare("SELECT CAST(count(*) AS TEXT), CAST(sum(total_cents) AS TEXT),"
                             " CAST(sum(customer_id) AS TEXT) FROM orders WHERE id > ?");
  sqlite3_bind_int64(st, 1, N.orders);
  if (sqlite3_step(st) != SQLITE_ROW) die_db("checking W4");
  snprintf(check, CHECK_LEN, "%" PRId64 ":%" PRId64 ":%" PRId64,
           (int64_t)sqlite3_column_int64(st, 0), (int64_t)sqlite3_column_int64(st, 1),
           (int64_t)sqlite3_column_int64(st, 2));
  sqlite3_finalize(st);
  st = prepare("DELETE FROM orders WHERE id > ?");
  sqlite3_bind_int64(st, 1, N.orders);
  if (sqlite3_step(st) != SQLITE_DONE) die_db("undoing W4");
  sqlite3_finalize(st);
}


static void bind_row (sqlite3_stmt *st, int at, int64_t r) {
  char note[32];
  int64_t customer_id, total_cents;
  insert_row(r, &customer_id, &total_cents, note, sizeof note);
  sqlite3_bind_int64(st, at + 1, customer_id);
  sqlite3_bind_text(st, at + 2, "new", 3, SQLITE_STATIC);
  sqlite3_bind_int64(st, at + 3, total_cents);
  sqlite3_bind_text(st, at + 4, note, -1, SQLITE_TRANSIENT);
}


static sqlite3_stmt *prepare_insert (int64_t nrows) {
  size_t size = sizeof INSERT_COLS + (size_t)nrows * 16;
  char *sql = malloc(size);
  sqlite3_stmt *st;
  int64_t i;
  if (!sql) die("W4", "out of memory");
  strcpy(sql, INSERT_COLS);
  for (i = 0; i < nrows; i++) strcat(sql, i ? ", (?, ?, ?, ?)" : "(?, ?, ?, ?)");
  st = prepare(sql);
  free(sql);
  return st;
}


static void w4 (void *unused, char *check) {
  (void)check;  /* written by w4_check_and_undo */
  int64_t r = 1, left, n, i;
  sqlite3_stmt *chunk = prepare_insert(INSERT_CHUNK), *st;
  (void)unused;
  exec("BEGIN");
  while ((left = N.inserts - r + 1) > 0) {
    n = left < INSERT_CHUNK ? left : INSERT_CHUNK;
    st = n == INSERT_CHUNK ? chunk : prepare_insert(n);
    for (i = 0; i < n; i++) bind_row(st, (int)(4 * i), r++);
    if (sqlite3_step(st) != SQLITE_DONE) die_db("W4 insert");
    sqlite3_reset(st);
    if (st != chunk) sqlite3_finalize(st);
  }
  exec("COMMIT");
  sqlite3_finalize(chunk);
}


static void w4_loop (void *unused, char *check) {
  (void)check;  /* written by w4_check_and_undo */
  sqlite3_stmt *st = prepare_insert(1);
  int64_t r;
  (void)unused;
  exec("BEGIN");
  for (r = 1; r <= N.inserts; r++) {
    bind_row(st, 0, r);
    if (sqlite3_step(st) != SQLITE_DONE) die_db("W4 insert");
    sqlite3_reset(st);
  }
  exec("COMMIT");
  sqlite3_finalize(st);
}


static void m1 (void *unused, char *check) {
  sqlite3_stmt *st = prepare("SELECT id, label, n FROM m1_rows");
  int64_t count = 0, sum = 0;
  int rc;
  (void)unused;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    count++;
    sum += sqlite3_column_int64(st, 2) + sqlite3_column_bytes(st, 1);
  }
  if (rc != SQLITE_DONE) die_db("M1");
  sqlite3_finalize(st);
  snprintf(check, CHECK_LEN, "%" PRId64 ":%" PRId64, count, sum);
}


int main (int argc, char **argv) {
  static const workload all[] = {
    { "W1", w1, NULL }, { "W2", w2, NULL }, { "W3", w3, NULL },
    { "W4", w4, w4_check_and_undo }, { "W4loop", w4_loop, w4_check_and_undo },
  };
  prog = "peer_c_sqlite";
  if (argc < 2) die("usage", "peer_c_sqlite FILE [M1]");
  read_sizes();
  if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) die_db(argv[1]);
  exec("PRAGMA journal_mode = WAL");
  exec("PRAGMA synchronous = NORMAL");
  exec("PRAGMA foreign_keys = ON");
  if (argc > 2 && strcmp(argv[2], "M1") == 0) run_stream("sqlite", NULL, m1);
  else run_all("sqlite", NULL, all, sizeof all / sizeof all[0]);
  sqlite3_close(db);
  return 0;
}
