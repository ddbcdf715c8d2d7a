/*
** test_backfill.c: BACKFILL operations run by the migration runner
** (migrate/backfill.c, migrate.c) on both backends, from C alone: the plan
** of the first batch as rendered SQL, batches under the lease, a failed
** batch that leaves the batches before it committed and the migration
** unrecorded, a run killed between batches that the next run resumes from
** its journal, two processes at once, a lock held by another session on
** PostgreSQL, and the refusals of bad input.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"
#include "loam.h"


static int exec (loam_conn *c, const char *sql) {
  return loam_exec(c, sql, NULL, 0, NULL, NULL, NULL, NULL);
}


/*
** A fresh database for 'tag' with the table items: 6 rows, 'v' to copy
** into 'w', 'n' counting how often a row was changed, 'code' unique.
*/
static loam_conn *items (loam_backend be, const char *tag, char *url, size_t size) {
  const char *u = t_fresh_url(be, tag);
  loam_conn *c = NULL;
  if (u == NULL || loam_connect(u, NULL, &c, NULL) != LOAM_OK) {
    t_fail(__FILE__, __LINE__, "no database");
    return NULL;
  }
  snprintf(url, size, "%s", u);
  if (exec(c, "CREATE TABLE items (id INTEGER PRIMARY KEY, v INTEGER NOT NULL, w INTEGER "
           "CHECK (w < 100), n INTEGER NOT NULL DEFAULT 0, code TEXT UNIQUE, tag TEXT)") ||
      exec(c, "INSERT INTO items (id, v, code) VALUES (1, 10, 'a'), (2, 20, 'b'), (3, 30, 'c'), "
           "(4, 40, 'd'), (5, 50, 'e'), (6, 60, 'f')")) {
    t_fail(__FILE__, __LINE__, "cannot make the table items");
    loam_conn_close(c);
    return NULL;
  }
  return c;
}


/* The data migration: w = v where w IS NULL, then n = n + 1 for every row. */
typedef struct fill {
  loam_assign set[2], where[1];
  loam_value two;
  loam_op up[2];
  loam_migration m;
} fill;


static void fillmig (fill *f, int batch) {
  memset(f, 0, sizeof *f);
  f->two = loam_int(2);
  f->set[0].column = "w";
  f->set[0].sql = "v / 10 * ?";         /* bound: 2 */
  f->set[0].params = &f->two;
  f->set[0].nparams = 1;
  f->set[1].column = "tag";
  f->set[1].value = loam_text("done", 4);
  f->where[0].column = "w";
  f->where[0].value = loam_null();      /* IS NULL */
  f->up[0].kind = LOAM_OP_BACKFILL;
  f->up[0].table = "items";
  f->up[0].set = f->set;
  f->up[0].nset = 2;
  f->up[0].where = f->where;
  f->up[0].nwhere = 1;
  f->up[0].batch = batch;
  f->up[1].kind = LOAM_OP_EXECUTE;
  f->up[1].sql = "UPDATE items SET n = n + 1";
  f->m = (loam_migration){ .version = "20260101000000", .name = "fill_w", .source = "f",
                           .source_len = 1, .up = f->up, .nup = 2 };
}


/*
** A migration whose backfill counts each change of a row in "n" and whose
** predicate selects every row: a row changed twice shows.
*/
static void countmig (fill *f) {
  fillmig(f, 1);
  f->set[0].column = "n";
  f->set[0].sql = "n + 1";
  f->set[0].nparams = 0;
  f->where[0].column = NULL;
  f->where[0].sql = "1 = 1";
}


static int64_t history (loam_conn *c) {
  return t_scalar(c, "SELECT count(*) FROM " LOAM_MIGRATIONS_TABLE);
}


/*
** The plan renders the first batch as the runner runs it, with its bound
** values; the runner changes every row once, in batches, records the
** migration and leaves no journal.  A backfill has no derived inverse, and
** is no operation to render or run on its own.
*/
static void check_runs (loam_backend be) {
  loam_error err = LOAM_ERROR_INIT;
  loam_rendered *sel = NULL, *upd = NULL;
  char url[1024], key[LOAM_IDENT_MAX + 1], buf[LOAM_IDENT_MAX + 1];
  loam_conn *c = items(be, "fill_runs", url, sizeof url);
  const loam_value *p;
  loam_op inv;
  fill f;
  int n = -1, np = 0;
  if (c == NULL) return;
  fillmig(&f, 4);
  CHECK_OK(loam_backfill_plan(c, &f.up[0], &sel, &upd, key, &err), &err);
  CHECK_STR(key, "id");
  CHECK_STR(loam_rendered_sql(sel, 0, NULL), be == LOAM_POSTGRES
    ? "SELECT max(\"id\") AS \"hi\" FROM (SELECT \"id\" FROM \"items\" WHERE (\"w\" IS NULL) "
      "ORDER BY \"id\" ASC LIMIT $1) AS \"b\""
    : "SELECT max(\"id\") AS \"hi\" FROM (SELECT \"id\" FROM \"items\" WHERE (\"w\" IS NULL) "
      "ORDER BY \"id\" ASC LIMIT ?) AS \"b\"");
  CHECK_STR(loam_rendered_sql(upd, 0, NULL), be == LOAM_POSTGRES
    ? "UPDATE \"items\" SET \"w\" = v / 10 * $1, \"tag\" = $2 WHERE ((\"id\" <= $3) AND "
      "(\"w\" IS NULL))"
    : "UPDATE \"items\" SET \"w\" = v / 10 * ?, \"tag\" = ? WHERE ((\"id\" <= ?) AND "
      "(\"w\" IS NULL))");
  p = loam_rendered_params(upd, 0, &np);
  CHECK_INT(np, 3);
  CHECK_INT(p[0].u.i, 2);
  CHECK_INT(p[2].u.i, 4);                /* the first batch ends at the 4th key */
  loam_rendered_free(sel);
  loam_rendered_free(upd);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM items WHERE w IS NOT NULL"), 0);

  CHECK_INT(loam_render_op(&f.up[0], be, NULL, &sel, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_HAS(err.message, "backfill on table 'items': runs in batches");
  CHECK_INT(loam_op_inverse(&f.up[0], &inv, buf, &err), LOAM_ERROR);
  CHECK_HAS(err.message, "cannot be reversed: the values it overwrites are not kept");

  CHECK_OK(loam_migrate_up(c, &f.m, 1, NULL, &n, &err), &err);
  CHECK_INT(n, 1);
  CHECK_INT(history(c), 1);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM items WHERE w = v / 5 AND tag = 'done' AND n = 1"),
            6);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM " LOAM_MIGRATION_STEPS_TABLE), 0);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM " LOAM_MIGRATION_PROGRESS_TABLE), 0);
  /* applied: a second run does nothing */
  CHECK_OK(loam_migrate_up(c, &f.m, 1, NULL, &n, &err), &err);
  CHECK_INT(n, 0);
  CHECK_INT(t_scalar(c, "SELECT sum(n) FROM items"), 6);
  loam_conn_close(c);
  loam_error_clear(&err);
}

TEST(backfill_runs_sqlite) { check_runs(LOAM_SQLITE); }
TEST(backfill_runs_postgres) { check_runs(LOAM_POSTGRES); }


/* Runs 'f' up on 'c' expecting failure with 'code' and 'msg', nothing recorded or changed. */
static void refused (loam_conn *c, fill *f, loam_errcode code, const char *msg) {
  loam_error err = LOAM_ERROR_INIT;
  loam_rendered *sel = NULL, *upd = NULL;
  int n = -1;
  CHECK_INT(loam_migrate_up(c, &f->m, 1, NULL, &n, &err), LOAM_ERROR);
  CHECK_INT(err.code, code);
  CHECK_HAS(err.message, "migration 20260101000000 (fill_w), step 1 (backfill): ");
  CHECK_HAS(err.message, msg);
  CHECK_INT(n, 0);
  CHECK_INT(history(c), 0);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM items WHERE w IS NOT NULL OR n > 0"), 0);
  /* the plan refuses it the same way */
  CHECK_INT(loam_backfill_plan(c, &f->up[0], &sel, &upd, NULL, &err), LOAM_ERROR);
  CHECK_INT(err.code, code);
  CHECK_HAS(err.message, msg);
  CHECK(sel == NULL && upd == NULL);
  loam_error_clear(&err);
}


static void check_bad_input (loam_backend be) {
  char url[1024];
  loam_conn *c = items(be, "fill_bad", url, sizeof url);
  fill f;
  if (c == NULL) return;
  fillmig(&f, 2);
  f.up[0].table = "no_items";
  refused(c, &f, LOAM_E_UNDEFINED_TABLE, "backfill of table 'no_items': no such table");
  fillmig(&f, 2);
  f.set[1].column = "colour";
  refused(c, &f, LOAM_E_UNDEFINED_COLUMN, "backfill of table 'items': the SET column 'colour' "
          "does not exist");
  fillmig(&f, 2);
  f.where[0].column = "wx";
  refused(c, &f, LOAM_E_UNDEFINED_COLUMN, "the WHERE column 'wx' does not exist");
  fillmig(&f, 2);
  f.up[0].key = "nothere";
  refused(c, &f, LOAM_E_UNDEFINED_COLUMN, "the key column 'nothere' does not exist");
  fillmig(&f, 2);
  f.up[0].key = "v";
  refused(c, &f, LOAM_E_MISUSE, "the key column 'v' is not unique");
  fillmig(&f, LOAM_BACKFILL_BATCH_MAX + 1);
  refused(c, &f, LOAM_E_MISUSE, "batch size 1000001 is out of range (1 to 1000000)");
  fillmig(&f, -1);
  refused(c, &f, LOAM_E_MISUSE, "batch size -1 is out of range");
  fillmig(&f, 2);
  f.up[0].pause_ms = -5;
  refused(c, &f, LOAM_E_MISUSE, "pause of -5 ms is out of range");
  fillmig(&f, 2);
  f.up[0].nwhere = 0;
  refused(c, &f, LOAM_E_MISUSE, "no predicate");
  fillmig(&f, 2);
  f.set[0].sql = "v; DROP TABLE items";
  f.set[0].nparams = 0;
  refused(c, &f, LOAM_E_MISUSE, "raw SQL fragment");
  /* a unique key other than the primary key is fine */
  {
    loam_error err = LOAM_ERROR_INIT;
    int n = -1;
    fillmig(&f, 2);
    f.up[0].key = "code";
    CHECK_OK(loam_migrate_up(c, &f.m, 1, NULL, &n, &err), &err);
    CHECK_INT(t_scalar(c, "SELECT count(*) FROM items WHERE w = v / 5 AND n = 1"), 6);
    loam_error_clear(&err);
  }
  /* a backfill after an execute */
  {
    loam_error err = LOAM_ERROR_INIT;
    loam_op swapped[2];
    int n = -1;
    fillmig(&f, 2);
    swapped[0] = f.up[1];
    swapped[1] = f.up[0];
    f.m.up = swapped;
    f.m.version = "20260102000000";
    CHECK_INT(loam_migrate_up(c, &f.m, 1, NULL, &n, &err), LOAM_ERROR);
    CHECK_INT(err.code, LOAM_E_MISUSE);
    CHECK_HAS(err.message, "step 2 (backfill): the backfills of a migration come before");
    loam_error_clear(&err);
  }
  loam_conn_close(c);
}

TEST(backfill_bad_input_sqlite) { check_bad_input(LOAM_SQLITE); }
TEST(backfill_bad_input_postgres) { check_bad_input(LOAM_POSTGRES); }


/*
** A batch that fails (a check violation at the 4th row, one row a batch)
** leaves the three batches before it committed, the migration unrecorded
** and the last key journaled; once the row is fixed, the next run goes on
** from the 4th row and records it.
*/
static void check_failed_batch (loam_backend be) {
  loam_error err = LOAM_ERROR_INIT;
  char url[1024];
  loam_conn *c = items(be, "fill_fail", url, sizeof url);
  fill f;
  int n = -1;
  if (c == NULL) return;
  fillmig(&f, 1);
  CHECK_INT(exec(c, "UPDATE items SET v = 500 WHERE id = 4"), LOAM_OK);
  CHECK_INT(loam_migrate_up(c, &f.m, 1, NULL, &n, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_CHECK_VIOLATION);
  CHECK_HAS(err.message, "migration 20260101000000 (fill_w), step 1 (backfill), batch 4: ");
  CHECK_INT(n, 0);
  CHECK_INT(history(c), 0);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM items WHERE w IS NOT NULL"), 3);
  CHECK_INT(t_scalar(c, "SELECT max(id) FROM items WHERE w IS NOT NULL"), 3);
  CHECK_INT(t_scalar(c, "SELECT sum(n) FROM items"), 0);
  CHECK_INT(t_scalar(c, "SELECT last_int FROM " LOAM_MIGRATION_PROGRESS_TABLE), 3);
  CHECK_INT(exec(c, "UPDATE items SET v = 40 WHERE id = 4"), LOAM_OK);
  CHECK_OK(loam_migrate_up(c, &f.m, 1, NULL, &n, &err), &err);
  CHECK_INT(n, 1);
  CHECK_INT(history(c), 1);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM items WHERE w = v / 5 AND n = 1"), 6);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM " LOAM_MIGRATION_PROGRESS_TABLE), 0);
  loam_conn_close(c);
  loam_error_clear(&err);
}

TEST(backfill_failed_batch_sqlite) { check_failed_batch(LOAM_SQLITE); }
TEST(backfill_failed_batch_postgres) { check_failed_batch(LOAM_POSTGRES); }


/* A progress callback that kills its process after the second batch. */
static void killer (void *ud, const char *version, int step, const char *table, int64_t rows,
                    int64_t batches) {
  (void)ud; (void)version; (void)step; (void)table; (void)rows;
  if (batches == 2) _exit(0);
}


static void counter (void *ud, const char *version, int step, const char *table, int64_t rows,
                     int64_t batches) {
  (void)version; (void)step; (void)table; (void)batches;
  *(int64_t *)ud = rows;
}


/*
** A run killed between batches (its lease left behind, held for 300 ms)
** is resumed by the next run once the lease ends: from the journaled key,
** not from the start.  The predicate here selects every row ("n" counts
** the changes), so a run that started over would change rows 1 and 2
** twice.
*/
static void check_killed (loam_backend be) {
  loam_error err = LOAM_ERROR_INIT;
  loam_migrate_opts o = LOAM_MIGRATE_OPTS_INIT;
  char url[1024];
  loam_conn *c = items(be, "fill_killed", url, sizeof url);
  int64_t rows = -1;
  pid_t pid;
  fill f;
  int n = -1, status = 0;
  if (c == NULL) return;
  countmig(&f);
  f.up[1].sql = "UPDATE items SET w = 1";
  pid = fork();
  if (pid == 0) {
    loam_conn *k = NULL;
    loam_migrate_opts ko = LOAM_MIGRATE_OPTS_INIT;
    ko.lock_ttl_ms = 300;
    ko.progress = killer;
    if (loam_connect(url, NULL, &k, NULL) != LOAM_OK) _exit(3);
    loam_migrate_up(k, &f.m, 1, &ko, NULL, NULL);
    _exit(4);                            /* not killed: the test fails */
  }
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK_INT(history(c), 0);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM items WHERE n = 1"), 2);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM " LOAM_MIGRATION_LOCK_TABLE), 1);
  o.lock_wait_ms = 30000;
  o.progress = counter;
  o.progress_ud = &rows;
  CHECK_OK(loam_migrate_up(c, &f.m, 1, &o, &n, &err), &err);
  CHECK_INT(n, 1);
  CHECK_INT(rows, 4);                    /* rows 3 to 6 */
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM items WHERE n = 1 AND w = 1"), 6);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM " LOAM_MIGRATION_LOCK_TABLE), 0);
  loam_conn_close(c);
  loam_error_clear(&err);
}

TEST(backfill_killed_resumes_sqlite) { check_killed(LOAM_SQLITE); }
TEST(backfill_killed_resumes_postgres) { check_killed(LOAM_POSTGRES); }


/*
** Two processes apply the same data migration at once: one runs the
** backfill and the rest, the other waits for the lease and then finds it
** applied.  Every row is changed once (the predicate selects them all, so
** a second backfill would count twice), and the migration recorded once.
*/
static void check_two_processes (loam_backend be) {
  char url[1024];
  loam_conn *c = items(be, "fill_race", url, sizeof url);
  pid_t pid[2];
  fill f;
  int i, total = 0;
  if (c == NULL) return;
  countmig(&f);
  f.up[0].pause_ms = 30;                 /* so the runs overlap */
  f.up[1].sql = "UPDATE items SET w = coalesce(w, 0) + 1";
  for (i = 0; i < 2; i++) {
    pid[i] = fork();
    if (pid[i] == 0) {
      loam_conn *k = NULL;
      loam_migrate_opts o = LOAM_MIGRATE_OPTS_INIT;
      int applied = 0;
      o.lock_wait_ms = 30000;
      if (loam_connect(url, NULL, &k, NULL) != LOAM_OK) _exit(100);
      if (loam_migrate_up(k, &f.m, 1, &o, &applied, NULL) != LOAM_OK) _exit(101);
      loam_conn_close(k);
      _exit(applied);
    }
  }
  for (i = 0; i < 2; i++) {
    int status = 0;
    waitpid(pid[i], &status, 0);
    total += WIFEXITED(status) ? WEXITSTATUS(status) : 1000;
  }
  CHECK_INT(total, 1);
  CHECK_INT(history(c), 1);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM items WHERE n = 1 AND w = 1"), 6);
  loam_conn_close(c);
}

TEST(backfill_two_processes_sqlite) { check_two_processes(LOAM_SQLITE); }
TEST(backfill_two_processes_postgres) { check_two_processes(LOAM_POSTGRES); }


/*
** PostgreSQL: a row locked by another session stops a batch at the
** lock_timeout; the batch is rolled back and tried again, then the run
** fails with 'timeout' naming the batch, instead of waiting for ever.  The
** batch before it stays committed; once the lock is gone, the next run
** finishes.
*/
TEST(backfill_lock_timeout_postgres) {
  loam_error err = LOAM_ERROR_INIT;
  loam_migrate_opts o = LOAM_MIGRATE_OPTS_INIT;
  char url[1024];
  loam_conn *c = items(LOAM_POSTGRES, "fill_locked", url, sizeof url), *holder = NULL;
  fill f;
  int n = -1;
  if (c == NULL) return;
  CHECK_OK(loam_connect(url, NULL, &holder, &err), &err);
  CHECK_INT(exec(holder, "BEGIN"), LOAM_OK);
  CHECK_INT(exec(holder, "SELECT * FROM items WHERE id = 3 FOR UPDATE"), LOAM_OK);
  fillmig(&f, 2);
  o.lock_timeout_ms = 50;
  o.ddl_retries = 2;
  CHECK_INT(loam_migrate_up(c, &f.m, 1, &o, &n, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_TIMEOUT);
  CHECK_HAS(err.message, "migration 20260101000000 (fill_w), step 1 (backfill), batch 2: ");
  CHECK_INT(history(c), 0);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM items WHERE w IS NOT NULL"), 2);
  CHECK_INT(exec(holder, "ROLLBACK"), LOAM_OK);
  loam_conn_close(holder);
  CHECK_OK(loam_migrate_up(c, &f.m, 1, &o, &n, &err), &err);
  CHECK_INT(n, 1);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM items WHERE w = v / 5 AND n = 1"), 6);
  loam_conn_close(c);
  loam_error_clear(&err);
}
