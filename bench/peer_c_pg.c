/*
** peer_c_pg.c: the benchmark's workloads hand-written on raw libpq, the
** limit the other peers are measured against on PostgreSQL.
**
**   peer_c_pg CONNINFO        W1-W4 once a round, rounds asked for on stdin
**   peer_c_pg CONNINFO M1     the stream, once, in this process alone
**
** What a careful C programmer writes: statements prepared once on the
** server, rows read into structs, key lists as one array parameter,
** COPY for the bulk insert and, for comparison, a row-by-row loop over
** one prepared statement.  W3 is run twice: sequentially (three round
** trips a page) and in pipeline mode, where a page's two child queries
** share one round trip.  M1 streams in single-row mode.
*/
#include <libpq-fe.h>

#include "peer_c.h"

#define ORDER_COLS "id, customer_id, status, total_cents, note"

static PGconn *db;


static void die_db (const char *what) { die(what, PQerrorMessage(db)); }


static void check_result (PGresult *res, ExecStatusType want, const char *what) {
  if (PQresultStatus(res) != want) die(what, PQresultErrorMessage(res));
}


static void exec (const char *sql) {
  PGresult *res = PQexec(db, sql);
  if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
    die(sql, PQresultErrorMessage(res));
  PQclear(res);
}


static void prepare (const char *name, const char *sql) {
  PGresult *res = PQprepare(db, name, sql, 0, NULL);
  check_result(res, PGRES_COMMAND_OK, sql);
  PQclear(res);
}


/* Runs a prepared statement with text parameters; the caller clears. */
static PGresult *run (const char *name, int n, const char *const *params) {
  PGresult *res = PQexecPrepared(db, name, n, params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
    die(name, PQresultErrorMessage(res));
  return res;
}


static int64_t int_at (const PGresult *res, int row, int col) {
  return strtoll(PQgetvalue(res, row, col), NULL, 10);
}


static size_t text (rows *r, const PGresult *res, int row, int col) {
  if (PQgetisnull(res, row, col)) return NO_TEXT;
  return arena_add(&r->text, PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col));
}


static void read_orders (rows *r, const PGresult *res) {
  int i, n = PQntuples(res);
  for (i = 0; i < n; i++) {
    order *o = add_order(r);
    o->id = int_at(res, i, 0);
    o->customer_id = int_at(res, i, 1);
    o->status = text(r, res, i, 2);
    o->total_cents = int_at(res, i, 3);
    o->note = text(r, res, i, 4);
  }
}



static void w1 (void *unused, char *check) {
  rows r = { 0 };
  PGresult *res = run("w1", 0, NULL);
  (void)unused;
  read_orders(&r, res);
  PQclear(res);
  fold_orders(&r, check);
  rows_free(&r);
}


static void w2 (void *unused, char *check) {
  rows r = { 0 };
  char key[24];
  const char *params[1] = { key };
  int64_t i;
  (void)unused;
  for (i = 0; i < N.lookups; i++) {
    PGresult *res;
    snprintf(key, sizeof key, "%" PRId64, lookup_key(i));
    res = run("w2", 1, params);
    read_orders(&r, res);
    PQclear(res);
  }
  fold_orders(&r, check);
  rows_free(&r);
}


/* {==================================================================
** W3: a page, its customers, its items
** =================================================================== */

/* The page's customer and order ids as array literals '{1,2,...}'. */
typedef struct page_keys {
  char customers[24 * PAGE_SIZE + 3], orders[24 * PAGE_SIZE + 3];
} page_keys;


static void array_literal (char *buf, const int64_t *keys, size_t n) {
  size_t i, at = 0;
  buf[at++] = '{';
  for (i = 0; i < n; i++) at += (size_t)sprintf(buf + at, i ? ",%" PRId64 : "%" PRId64, keys[i]);
  buf[at++] = '}';
  buf[at] = '\0';
}


static void page_read_orders (rows *r, PGresult *res, page_keys *k) {
  int64_t keys[PAGE_SIZE];
  size_t i, n;
  rows_clear(r);
  read_orders(r, res);
  n = page_customer_ids(r, keys);
  array_literal(k->customers, keys, n);
  for (i = 0; i < r->norders; i++) keys[i] = r->orders[i].id;
  array_literal(k->orders, keys, r->norders);
}


static void page_read_customers (rows *r, const PGresult *res) {
  int i, n = PQntuples(res);
  for (i = 0; i < n; i++) {
    customer *c = add_customer(r);
    c->id = int_at(res, i, 0);
    c->name = text(r, res, i, 1);
    c->email = text(r, res, i, 2);
  }
  page_join_customers(r);
}


static void page_read_items (rows *r, const PGresult *res) {
  int i, n = PQntuples(res);
  for (i = 0; i < n; i++) {
    text(r, res, i, 2);
    page_add_item(r, int_at(res, i, 1), int_at(res, i, 3));
  }
}


static void page_params (int64_t p, char *after, char *limit) {
  sprintf(after, "%" PRId64, page_after(p));
  sprintf(limit, "%d", PAGE_SIZE);
}


static void send (const char *name, int n, const char *const *params) {
  if (!PQsendQueryPrepared(db, name, n, params, NULL, NULL, 0)) die_db(name);
}


/* The next result of the pipeline, which must be a row set; then the
** NULL that ends that query's results. */
static PGresult *receive (const char *what) {
  PGresult *res = PQgetResult(db);
  if (!res) die_db(what);
  check_result(res, PGRES_TUPLES_OK, what);
  if (PQgetResult(db) != NULL) die(what, "more than one result");
  return res;
}


static void sync (void) {
  if (!PQpipelineSync(db)) die_db("pipeline sync");
}


static void receive_sync (void) {
  PGresult *res = PQgetResult(db);
  if (!res || PQresultStatus(res) != PGRES_PIPELINE_SYNC) die("pipeline", "no sync where due");
  PQclear(res);
}


/* The pages, sequentially (three round trips a page) or in pipeline mode,
** where the page's two child queries share one round trip. */
static void w3 (int pipeline, char *check) {
  rows r = { 0 };
  page_keys k;
  char after[24], limit[24];
  const char *pp[2] = { after, limit }, *cp[1] = { k.customers }, *ip[1] = { k.orders };
  int64_t p, count = 0, sum = 0;
  PGresult *res, *customers, *items;
  if (pipeline && !PQenterPipelineMode(db)) die_db("pipeline mode");
  for (p = 0; p < N.pages; p++) {
    page_params(p, after, limit);
    if (pipeline) {
      send("w3_page", 2, pp);
      sync();
      res = receive("w3 page");
      receive_sync();
    } else res = run("w3_page", 2, pp);
    page_read_orders(&r, res, &k);
    PQclear(res);
    if (pipeline) {
      send("w3_customers", 1, cp);
      send("w3_items", 1, ip);
      sync();
      customers = receive("w3 customers");
      items = receive("w3 items");
      receive_sync();
    } else {
      customers = run("w3_customers", 1, cp);
      items = run("w3_items", 1, ip);
    }
    page_read_customers(&r, customers);
    page_read_items(&r, items);
    PQclear(customers);
    PQclear(items);
    page_fold(&r, &count, &sum);
  }
  if (pipeline && !PQexitPipelineMode(db)) die_db("pipeline mode");
  rows_free(&r);
  snprintf(check, CHECK_LEN, "%" PRId64 ":%" PRId64, count, sum);
}


static void w3_pipeline (void *unused, char *check) { (void)unused; w3(1, check); }

static void w3_sequential (void *unused, char *check) { (void)unused; w3(0, check); }

/* }================================================================== */


/* What W4 inserted, then the table as it was. */
static void w4_check_and_undo (char *check) {
  char key[24];
  const char *params[1] = { key };
  PGresult *res;
  snprintf(key, sizeof key, "%" PRId64, N.orders);
  res = run("w4_check", 1, params);
  snprintf(check, CHECK_LEN, "%s:%s:%s", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
           PQgetvalue(res, 0, 2));
  PQclear(res);
  PQclear(run("w4_undo", 1, params));
}


static void w4_copy (void *unused, char *check) {
  (void)check;  /* written by w4_check_and_undo */
  char buf[65536], note[32];
  size_t at = 0;
  int64_t r, customer_id, total_cents;
  PGresult *res;
  (void)unused;
  exec("BEGIN");
  res = PQexec(db, "COPY orders (customer_id, status, total_cents, note) FROM STDIN");
  check_result(res, PGRES_COPY_IN, "COPY");
  PQclear(res);
  for (r = 1; r <= N.inserts; r++) {
    insert_row(r, &customer_id, &total_cents, note, sizeof note);
    if (sizeof buf - at < 128) {
      if (PQputCopyData(db, buf, (int)at) != 1) die_db("COPY data");
      at = 0;
    }
    at += (size_t)sprintf(buf + at, "%" PRId64 "\tnew\t%" PRId64 "\t%s\n", customer_id,
                          total_cents, note);
  }
  if ((at && PQputCopyData(db, buf, (int)at) != 1) || PQputCopyEnd(db, NULL) != 1)
    die_db("COPY data");
  res = PQgetResult(db);
  check_result(res, PGRES_COMMAND_OK, "COPY");
  PQclear(res);
  while ((res = PQgetResult(db)) != NULL) PQclear(res);
  exec("COMMIT");
}


static void w4_loop (void *unused, char *check) {
  (void)check;  /* written by w4_check_and_undo */
  char cust[24], total[24], note[32];
  const char *params[4] = { cust, "new", total, note };
  int64_t r, customer_id, total_cents;
  (void)unused;
  exec("BEGIN");
  for (r = 1; r <= N.inserts; r++) {
    insert_row(r, &customer_id, &total_cents, note, sizeof note);
    sprintf(cust, "%" PRId64, customer_id);
    sprintf(total, "%" PRId64, total_cents);
    PQclear(run("w4_row", 4, params));
  }
  exec("COMMIT");
}


static void m1 (void *unused, char *check) {
  int64_t count = 0, sum = 0;
  PGresult *res;
  (void)unused;
  if (!PQsendQuery(db, "SELECT id, label, n FROM m1_rows") || !PQsetSingleRowMode(db))
    die_db("M1");
  while ((res = PQgetResult(db)) != NULL) {
    if (PQresultStatus(res) == PGRES_SINGLE_TUPLE) {
      count++;
      sum += int_at(res, 0, 2) + PQgetlength(res, 0, 1);
    } else check_result(res, PGRES_TUPLES_OK, "M1");
    PQclear(res);
  }
  snprintf(check, CHECK_LEN, "%" PRId64 ":%" PRId64, count, sum);
}


int main (int argc, char **argv) {
  static const workload all[] = {
    { "W1", w1, NULL }, { "W2", w2, NULL },
    { "W3", w3_pipeline, NULL }, { "W3seq", w3_sequential, NULL },
    { "W4", w4_copy, w4_check_and_undo }, { "W4loop", w4_loop, w4_check_and_undo },
  };
  prog = "peer_c_pg";
  if (argc < 2) die("usage", "peer_c_pg CONNINFO [M1]");
  read_sizes();
  db = PQconnectdb(argv[1]);
  if (PQstatus(db) != CONNECTION_OK) die_db("connect");
  if (argc > 2 && strcmp(argv[2], "M1") == 0) run_stream("postgres", NULL, m1);
  else {
    prepare("w1", "SELECT " ORDER_COLS " FROM orders");
    prepare("w2", "SELECT " ORDER_COLS " FROM orders WHERE id = $1");
    prepare("w3_page", "SELECT " ORDER_COLS " FROM orders WHERE id > $1 ORDER BY id LIMIT $2");
    prepare("w3_customers", "SELECT id, name, email FROM customers WHERE id = ANY ($1::int8[])");
    prepare("w3_items", "SELECT id, order_id, sku, qty, price_cents FROM line_items"
                        " WHERE order_id = ANY ($1::int8[])");
    prepare("w4_row", "INSERT INTO orders (customer_id, status, total_cents, note)"
                      " VALUES ($1, $2, $3, $4)");
    prepare("w4_check", "SELECT CAST(count(*) AS TEXT), CAST(sum(total_cents) AS TEXT),"
                        " CAST(sum(customer_id) AS TEXT) FROM orders WHERE id > $1");
    prepare("w4_undo", "DELETE FROM orders WHERE id > $1");
    run_all("postgres", NULL, all, sizeof all / sizeof all[0]);
  }
  PQfinish(db);
  return 0;
}
