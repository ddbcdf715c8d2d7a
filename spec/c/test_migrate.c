/*
** test_migrate.c: the migration runner (migrate.c, lock.c) on both
** backends: history, failures that leave everything as it was, checksums,
** two heads and merges, migrations out of order, journaled steps that
** resume, down, status, and two processes migrating at once.
**
** SQLite runs on a file (two processes must share it); PostgreSQL in a
** schema of its own, which forked children reach through the URL's
** search_path.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "t.h"
#include "loam.h"


static int exec (loam_conn *c, const char *sql, loam_error *err) {
  return loam_exec(c, sql, NULL, 0, NULL, NULL, NULL, err);
}


static void sleep_ms (int ms) {
  struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
  nanosleep(&ts, NULL);
}


/*
** A connection to 'url'; through PgBouncer (its URL names port 6432) in
** loam's transaction-pooling mode, which uses only unnamed statements and
** keeps nothing in the server session.
*/
static loam_conn *open_url (const char *url) {
  char bouncer[1024];
  loam_conn *c = NULL;
  if (url != NULL && strstr(url, "port=6432") != NULL) {
    snprintf(bouncer, sizeof bouncer, "%s&pgbouncer=transaction", url);
    url = bouncer;
  }
  if (url == NULL || loam_connect(url, NULL, &c, NULL) != LOAM_OK) return NULL;
  return c;
}


/* {======================================================================
** A small history: create a table, add a column and an index, and a merge
** ======================================================================= */

static const loam_column_def notes_cols[] = {
  { .name = "id", .type = LOAM_COL_ID },
  { .name = "body", .type = LOAM_COL_TEXT },
};
static const loam_table_def notes = { .name = "notes", .columns = notes_cols, .ncolumns = 2 };
static const char *const body_col[] = { "body" };

static const char *const p1[] = { "20260101000000" };
static const char *const p2[] = { "20260102000000" };

typedef struct hist3 {
  loam_op up1[1], down1[1], up2[2], down2[2];
  loam_migration m[3];
} hist3;


static void history (hist3 *h) {
  char buf[LOAM_IDENT_MAX + 1];
  memset(h, 0, sizeof *h);
  h->up1[0].kind = LOAM_OP_CREATE_TABLE;
  h->up1[0].def = &notes;
  h->down1[0].kind = LOAM_OP_DROP_TABLE;
  h->down1[0].table = "notes";
  h->up2[0].kind = LOAM_OP_ADD_COLUMN;
  h->up2[0].table = "notes";
  h->up2[0].column.name = "rank";
  h->up2[0].column.type = LOAM_COL_INTEGER;
  h->up2[1].kind = LOAM_OP_ADD_INDEX;
  h->up2[1].index.name = "notes_body_idx";
  h->up2[1].index.table = "notes";
  h->up2[1].index.columns = body_col;
  h->up2[1].index.ncolumns = 1;
  /* the derived down: the inverses, last first */
  loam_op_inverse(&h->up2[1], &h->down2[0], buf, NULL);
  loam_op_inverse(&h->up2[0], &h->down2[1], buf, NULL);
  h->m[0] = (loam_migration){ .version = "20260101000000", .name = "create_notes",
                              .source = "v1", .source_len = 2,
                              .up = h->up1, .nup = 1, .down = h->down1, .ndown = 1 };
  h->m[1] = (loam_migration){ .version = "20260102000000", .name = "add_rank",
                              .parents = p1, .nparents = 1, .source = "v2", .source_len = 2,
                              .up = h->up2, .nup = 2, .down = h->down2, .ndown = 2 };
  h->m[2] = (loam_migration){ .version = "20260103000000", .name = "backfill",
                              .parents = p2, .nparents = 1, .source = "v3", .source_len = 2 };
}


static int64_t count_history (loam_conn *c) {
  return t_scalar(c, "SELECT count(*) FROM " LOAM_MIGRATIONS_TABLE);
}

/* }====================================================================== */


static void check_up_down_status (loam_backend be) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = open_url(t_fresh_url(be, "basic"));
  loam_migration_status *st = NULL;
  loam_migrate_opts o = LOAM_MIGRATE_OPTS_INIT;
  hist3 h;
  int n = -1, ns = 0;
  if (c == NULL) { t_fail(__FILE__, __LINE__, "no database"); return; }
  history(&h);
  /* before anything: all pending, nothing created */
  CHECK_OK(loam_migrate_status(c, h.m, 3, &st, &ns, &err), &err);
  CHECK_INT(ns, 3);
  CHECK_INT(st[0].state, LOAM_MIG_PENDING);
  CHECK_STR(st[1].name, "add_rank");
  loam_migration_status_free(st);
  o.to = "20260102000000";
  CHECK_OK(loam_migrate_up(c, h.m, 3, &o, &n, &err), &err);
  CHECK_INT(n, 2);
  CHECK_INT(count_history(c), 2);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM notes"), 0);
  CHECK_INT(t_scalar(c, "SELECT duration_ms >= 0 FROM " LOAM_MIGRATIONS_TABLE
                     " WHERE version = '20260101000000'"), 1);
  CHECK_OK(loam_migrate_up(c, h.m, 3, NULL, &n, &err), &err);
  CHECK_INT(n, 1);
  CHECK_OK(loam_migrate_up(c, h.m, 3, NULL, &n, &err), &err);
  CHECK_INT(n, 0);
  /* the lock is free again after each run */
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM " LOAM_MIGRATION_LOCK_TABLE), 0);
  CHECK_OK(loam_migrate_status(c, h.m, 3, &st, &ns, &err), &err);
  CHECK_INT(ns, 3);
  CHECK_INT(st[2].state, LOAM_MIG_APPLIED);
  CHECK(st[2].applied_at != NULL);
  loam_migration_status_free(st);
  /* down two: the index and column go, then nothing (backfill has no ops) */
  CHECK_OK(loam_migrate_down(c, h.m, 3, 2, NULL, &n, &err), &err);
  CHECK_INT(n, 2);
  CHECK_INT(count_history(c), 1);
  CHECK_INT(exec(c, "SELECT rank FROM notes", &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_UNDEFINED_COLUMN);
  CHECK_OK(loam_migrate_down(c, h.m, 3, 5, NULL, &n, &err), &err);
  CHECK_INT(n, 1);
  CHECK_INT(count_history(c), 0);
  {
    int exists = 1;
    CHECK_OK(loam_table_exists(c, "notes", &exists, &err), &err);
    CHECK_INT(exists, 0);
  }
  CHECK_INT(loam_migrate_down(c, h.m, 3, -1, NULL, &n, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  loam_conn_close(c);
  loam_error_clear(&err);
}

TEST(migrate_up_down_status_sqlite) { check_up_down_status(LOAM_SQLITE); }
TEST(migrate_up_down_status_postgres) { check_up_down_status(LOAM_POSTGRES); }


/* A migration that fails in its third step leaves schema and history as they were. */
static void check_failure (loam_backend be) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = open_url(t_fresh_url(be, "fail"));
  loam_op bad[3];
  loam_migration m[3];
  hist3 h;
  int n = -1, exists = 1;
  if (c == NULL) { t_fail(__FILE__, __LINE__, "no database"); return; }
  history(&h);
  CHECK_OK(loam_migrate_up(c, h.m, 1, NULL, &n, &err), &err);
  memset(bad, 0, sizeof bad);
  bad[0].kind = LOAM_OP_ADD_COLUMN;
  bad[0].table = "notes";
  bad[0].column.name = "extra";
  bad[0].column.type = LOAM_COL_TEXT;
  bad[1].kind = LOAM_OP_CREATE_TABLE;
  bad[1].def = &(loam_table_def){ .name = "other", .columns = notes_cols, .ncolumns = 2 };
  bad[2].kind = LOAM_OP_EXECUTE;
  bad[2].sql = "INSERT INTO no_such_table VALUES (1)";
  m[0] = h.m[0];
  m[1] = (loam_migration){ .version = "20260102000000", .name = "broken", .parents = p1,
                           .nparents = 1, .source = "x", .source_len = 1, .up = bad, .nup = 3 };
  CHECK_INT(loam_migrate_up(c, m, 2, NULL, &n, &err), LOAM_ERROR);
  CHECK_INT(n, 0);
  CHECK_INT(err.code, LOAM_E_UNDEFINED_TABLE);
  CHECK_HAS(err.message, "migration 20260102000000 (broken), step 3 (execute): ");
  CHECK_INT(count_history(c), 1);
  CHECK_OK(loam_table_exists(c, "other", &exists, &err), &err);
  CHECK_INT(exists, 0);
  CHECK_INT(exec(c, "SELECT extra FROM notes", &err), LOAM_ERROR);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM " LOAM_MIGRATION_LOCK_TABLE), 0);
  (void)m[2];
  loam_conn_close(c);
  loam_error_clear(&err);
}

TEST(migrate_failure_changes_nothing_sqlite) { check_failure(LOAM_SQLITE); }
TEST(migrate_failure_changes_nothing_postgres) { check_failure(LOAM_POSTGRES); }


/* Checksums, heads, merges, missing parents, out of order: refused with their codes. */
static void check_refusals (loam_backend be) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = open_url(t_fresh_url(be, "refuse"));
  loam_migration m[5];
  loam_migration_status *st = NULL;
  loam_migrate_opts o = LOAM_MIGRATE_OPTS_INIT;
  static const char *const both[] = { "20260103000000", "20260104000000" };
  static const char *const nowhere[] = { "20250101000000" };
  hist3 h;
  int n = -1, ns = 0;
  if (c == NULL) { t_fail(__FILE__, __LINE__, "no database"); return; }
  history(&h);
  memcpy(m, h.m, sizeof h.m);
  CHECK_OK(loam_migrate_up(c, m, 2, NULL, &n, &err), &err);
  /* an applied migration edited afterwards */
  m[1].source = "v2 edited";
  m[1].source_len = 9;
  CHECK_INT(loam_migrate_up(c, m, 3, NULL, &n, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_CHECKSUM_MISMATCH);
  CHECK_HAS(err.message, "migration 20260102000000 (add_rank) was changed after it was applied");
  CHECK_STR(loam_errcode_name(err.code), "checksum_mismatch");
  CHECK_INT(count_history(c), 2);
  CHECK_OK(loam_migrate_status(c, m, 3, &st, &ns, &err), &err);
  CHECK_INT(st[1].state, LOAM_MIG_CHANGED);
  CHECK_INT(st[2].state, LOAM_MIG_PENDING);
  loam_migration_status_free(st);
  m[1] = h.m[1];
  /* two branches both follow 20260102000000: two heads */
  m[3] = (loam_migration){ .version = "20260104000000", .name = "other_branch",
                           .parents = p2, .nparents = 1, .source = "v4", .source_len = 2 };
  CHECK_INT(loam_migrate_up(c, m, 4, NULL, &n, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_MIGRATION_CONFLICT);
  CHECK_HAS(err.message, "two heads: 20260103000000 (backfill) and 20260104000000 (other_branch)");
  CHECK_STR(loam_errcode_name(err.code), "migration_conflict");
  CHECK_INT(count_history(c), 2);
  /* the merge migration follows both */
  m[4] = (loam_migration){ .version = "20260105000000", .name = "merge", .parents = both,
                           .nparents = 2, .source = "v5", .source_len = 2 };
  CHECK_OK(loam_migrate_up(c, m, 5, NULL, &n, &err), &err);
  CHECK_INT(n, 3);
  /* a parent that is not there */
  m[3].parents = nowhere;
  CHECK_INT(loam_migrate_up(c, m, 5, NULL, &n, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_MIGRATION_CONFLICT);
  CHECK_STR(err.message, "migration 20260104000000 (other_branch) follows 20250101000000, which "
            "is not among the migrations");
  m[3].parents = p2;
  /* out of order: a pending migration older than the newest applied */
  CHECK_OK(loam_migrate_down(c, m, 5, 2, NULL, &n, &err), &err);
  CHECK_INT(n, 2);      /* the merge and other_branch: 20260103 stays applied */
  CHECK_INT(count_history(c), 3);
  m[3].version = "20260102120000";
  m[4].parents = (const char *const[]){ "20260103000000", "20260102120000" };
  CHECK_OK(loam_migrate_status(c, m, 5, &st, &ns, &err), &err);
  CHECK_INT(ns, 5);
  CHECK_STR(st[2].version, "20260102120000");
  CHECK_INT(st[2].state, LOAM_MIG_OUT_OF_ORDER);
  loam_migration_status_free(st);
  CHECK_INT(loam_migrate_up(c, m, 5, NULL, &n, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_MIGRATION_CONFLICT);
  CHECK_HAS(err.message, "migration 20260102120000 (other_branch) is older than 20260103000000");
  CHECK_INT(count_history(c), 3);
  o.out_of_order = 1;
  CHECK_OK(loam_migrate_up(c, m, 5, &o, &n, &err), &err);
  CHECK_INT(n, 2);
  CHECK_INT(count_history(c), 5);
  /* an applied migration no longer given: missing, and down refuses it */
  CHECK_OK(loam_migrate_status(c, m, 4, &st, &ns, &err), &err);
  CHECK_INT(ns, 5);
  CHECK_INT(st[4].state, LOAM_MIG_MISSING);
  CHECK(st[4].name == NULL);
  loam_migration_status_free(st);
  CHECK_INT(loam_migrate_down(c, m, 4, 1, NULL, &n, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_MIGRATION_CONFLICT);
  CHECK_HAS(err.message, "migration 20260105000000 is applied but not among the migrations");
  /* two with one version */
  m[1].version = m[0].version;
  CHECK_INT(loam_migrate_up(c, m, 2, NULL, &n, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_MIGRATION_CONFLICT);
  CHECK_HAS(err.message, "two migrations have version 20260101000000");
  loam_conn_close(c);
  loam_error_clear(&err);
}

TEST(migrate_refusals_sqlite) { check_refusals(LOAM_SQLITE); }
TEST(migrate_refusals_postgres) { check_refusals(LOAM_POSTGRES); }


/* The lock: held by another, a run waits its time and fails naming the holder. */
static void check_locked (loam_backend be) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = open_url(t_fresh_url(be, "locked"));
  loam_migrate_opts o = LOAM_MIGRATE_OPTS_INIT;
  hist3 h;
  int n = -1;
  if (c == NULL) { t_fail(__FILE__, __LINE__, "no database"); return; }
  history(&h);
  CHECK_OK(loam_migrate_up(c, h.m, 1, NULL, &n, &err), &err);
  /* a live lease of someone else */
  CHECK_OK(exec(c, "INSERT INTO " LOAM_MIGRATION_LOCK_TABLE " (id, owner, expires_at) VALUES "
                "(1, 'deploy@elsewhere', 99999999999999)", &err), &err);
  o.lock_wait_ms = 100;
  CHECK_INT(loam_migrate_up(c, h.m, 3, &o, &n, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_LOCKED);
  CHECK_HAS(err.message, "another migrator holds the migration lock: 'deploy@elsewhere'");
  CHECK_STR(loam_errcode_name(err.code), "locked");
  CHECK_INT(count_history(c), 1);
  /* an ended lease is taken over */
  CHECK_OK(exec(c, "UPDATE " LOAM_MIGRATION_LOCK_TABLE " SET expires_at = 0", &err), &err);
  o.owner = "ci job 7";
  CHECK_OK(loam_migrate_up(c, h.m, 3, &o, &n, &err), &err);
  CHECK_INT(n, 2);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM " LOAM_MIGRATION_LOCK_TABLE), 0);
  loam_conn_close(c);
  loam_error_clear(&err);
}

TEST(migrate_lock_held_sqlite) { check_locked(LOAM_SQLITE); }
TEST(migrate_lock_held_postgres) { check_locked(LOAM_POSTGRES); }


/*
** SQLite: the holder keeps the database's write lock for as long as its
** migration runs, which may outlast busy_timeout; a migrator waits that out
** as it waits for the lease, then fails as locked, never as busy.
*/
TEST(migrate_lock_waits_out_a_locked_sqlite_file) {
  loam_error err = LOAM_ERROR_INIT;
  loam_migrate_opts o = LOAM_MIGRATE_OPTS_INIT;
  char url[1100];
  loam_conn *c, *holder;
  hist3 h;
  int n = -1, fds[2], status = 0;
  pid_t pid;
  char ch = 0;
  snprintf(url, sizeof url, "%s?busy_timeout=20", t_fresh_url(LOAM_SQLITE, "busywait"));
  c = open_url(url);
  holder = open_url(url);
  if (c == NULL || holder == NULL) { t_fail(__FILE__, __LINE__, "no database"); return; }
  history(&h);
  CHECK_OK(loam_migrate_up(c, h.m, 1, NULL, &n, &err), &err);
  CHECK_OK(exec(holder, "CREATE TABLE held (x integer)", &err), &err);
  CHECK_OK(exec(holder, "BEGIN IMMEDIATE", &err), &err);
  CHECK_OK(exec(holder, "INSERT INTO held VALUES (1)", &err), &err);
  o.lock_wait_ms = 150;
  CHECK_INT(loam_migrate_up(c, h.m, 3, &o, &n, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_LOCKED);
  CHECK_HAS(err.message, "the database stayed locked by its migration (waited 150 ms)");
  CHECK_OK(exec(holder, "ROLLBACK", &err), &err);
  CHECK_INT(count_history(c), 1);
  /* the lock is let go while the migrator waits: it goes on */
  if (pipe(fds) != 0) { t_fail(__FILE__, __LINE__, "pipe"); return; }
  pid = fork();
  if (pid == 0) {
    loam_error e = LOAM_ERROR_INIT;
    loam_conn *k = open_url(url);
    int ok = k != NULL && exec(k, "BEGIN IMMEDIATE", &e) == LOAM_OK;
    if (write(fds[1], ok ? "y" : "n", 1) != 1) ok = 0;
    sleep_ms(300);
    if (ok) ok = exec(k, "COMMIT", &e) == LOAM_OK;
    loam_conn_close(k);
    _exit(ok ? 0 : 1);
  }
  close(fds[1]);
  CHECK_INT(read(fds[0], &ch, 1), 1);
  CHECK_INT(ch, 'y');
  o.lock_wait_ms = 20000;
  CHECK_OK(loam_migrate_up(c, h.m, 3, &o, &n, &err), &err);
  CHECK_INT(n, 2);
  CHECK_INT(count_history(c), 3);
  waitpid(pid, &status, 0);
  CHECK_INT(WIFEXITED(status) && WEXITSTATUS(status) == 0, 1);
  close(fds[0]);
  loam_conn_close(holder);
  loam_conn_close(c);
  loam_error_clear(&err);
}


/*
** Two processes migrate at once: each waits for the other's lock, one
** applies each migration, nothing is applied twice, and both succeed.  The
** second migration sleeps, so the runs overlap.
*/
static int child_up (const char *url, const loam_migration *m, int n) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = open_url(url);
  loam_migrate_opts o = LOAM_MIGRATE_OPTS_INIT;
  int applied = 0, rc;
  if (c == NULL) return 100;
  o.lock_wait_ms = 30000;
  rc = loam_migrate_up(c, m, n, &o, &applied, &err);
  if (rc != LOAM_OK) fprintf(stderr, "child: %s: %s\n", loam_errcode_name(err.code), err.message);
  loam_error_clear(&err);
  loam_conn_close(c);
  return rc == LOAM_OK ? applied : 101;
}


/* Runs up in two processes at once; the sum of what they applied, or -1. */
static int race (const char *url, const loam_migration *m, int n) {
  pid_t pid[2];
  int i, total = 0;
  for (i = 0; i < 2; i++) {
    pid[i] = fork();
    if (pid[i] == 0) _exit(child_up(url, m, n));
  }
  for (i = 0; i < 2; i++) {
    int status = 0;
    waitpid(pid[i], &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) > n) total = -1000;
    total += WEXITSTATUS(status);
  }
  return total < 0 ? -1 : total;
}


static void check_two_processes (loam_backend be) {
  const char *u = t_fresh_url(be, "race");
  char url[1024];
  loam_op slow[2];
  loam_migration m[3];
  loam_conn *c;
  hist3 h;
  if (u == NULL) { t_fail(__FILE__, __LINE__, "no database"); return; }
  snprintf(url, sizeof url, "%s", u);
  history(&h);
  memcpy(m, h.m, sizeof m);
  memset(slow, 0, sizeof slow);
  slow[0] = h.up2[0];
  slow[1].kind = LOAM_OP_EXECUTE;
  slow[1].sql = be == LOAM_POSTGRES ? "SELECT pg_sleep(0.3)"
                : "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                  "WHERE i < 300000) SELECT count(*) FROM n";
  m[1].up = slow;
  m[1].nup = 2;
  CHECK_INT(race(url, m, 3), 3);
  c = open_url(url);
  CHECK(c != NULL);
  CHECK_INT(count_history(c), 3);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM notes WHERE rank IS NULL"), 0);
  loam_conn_close(c);
}

TEST(migrate_two_processes_sqlite) { check_two_processes(LOAM_SQLITE); }
TEST(migrate_two_processes_postgres) { check_two_processes(LOAM_POSTGRES); }


/*
** A migration outside a transaction: its second step (a unique index,
** built concurrently on PostgreSQL) fails on duplicates.  The first step
** stays done and journaled, history is unchanged, status says partial; once
** the data is fixed, a new run skips the first step (running it again would
** fail: the column exists), drops the INVALID index the failed concurrent
** build left (PostgreSQL), builds it, and records the migration.
*/
static void check_resume (loam_backend be) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = open_url(t_fresh_url(be, "resume"));
  static const char *const code_col[] = { "code" };
  loam_migration_status *st = NULL;
  loam_op steps[3];
  loam_migration m[2];
  loam_db_schema *s = NULL;
  hist3 h;
  int n = -1, ns = 0;
  if (c == NULL) { t_fail(__FILE__, __LINE__, "no database"); return; }
  history(&h);
  CHECK_OK(loam_migrate_up(c, h.m, 1, NULL, &n, &err), &err);
  CHECK_OK(exec(c, "INSERT INTO notes (body) VALUES ('a'), ('b')", &err), &err);
  memset(steps, 0, sizeof steps);
  steps[0].kind = LOAM_OP_ADD_COLUMN;
  steps[0].table = "notes";
  steps[0].column.name = "code";
  steps[0].column.type = LOAM_COL_TEXT;
  steps[0].column.defval.kind = LOAM_DEFAULT_VALUE;
  steps[0].column.defval.value = loam_text("x", 1);
  steps[1].kind = LOAM_OP_ADD_INDEX;
  steps[1].index.table = "notes";
  steps[1].index.columns = code_col;
  steps[1].index.ncolumns = 1;
  steps[1].index.unique = 1;
  steps[1].concurrently = 1;
  steps[2].kind = LOAM_OP_EXECUTE;
  steps[2].sql = "INSERT INTO notes (body, code) VALUES ('c', 'c')";
  m[0] = h.m[0];
  m[1] = (loam_migration){ .version = "20260102000000", .name = "unique_codes", .parents = p1,
                           .nparents = 1, .source = "u", .source_len = 1, .up = steps, .nup = 3,
                           .non_transactional = 1 };
  CHECK_INT(loam_migrate_up(c, m, 2, NULL, &n, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_UNIQUE_VIOLATION);
  CHECK_HAS(err.message, "migration 20260102000000 (unique_codes), step 2 (add_index): ");
  CHECK_INT(count_history(c), 1);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM notes WHERE code = 'x'"), 2);
  CHECK_OK(loam_migrate_status(c, m, 2, &st, &ns, &err), &err);
  CHECK_INT(st[1].state, LOAM_MIG_PARTIAL);
  CHECK_INT(st[1].steps_done, 1);
  loam_migration_status_free(st);
  {
    const char *const one[] = { "notes" };
    CHECK_OK(loam_introspect(c, one, 1, &s, &err), &err);
    CHECK_INT(s->tables[0].nindexes, be == LOAM_POSTGRES ? 1 : 0);
    if (be == LOAM_POSTGRES) CHECK_INT(s->tables[0].indexes[0].valid, 0);
    loam_db_schema_free(s);
    s = NULL;
    CHECK_OK(exec(c, "UPDATE notes SET code = body", &err), &err);
    CHECK_OK(loam_migrate_up(c, m, 2, NULL, &n, &err), &err);
    CHECK_INT(n, 1);
    CHECK_OK(loam_introspect(c, one, 1, &s, &err), &err);
    CHECK_INT(s->tables[0].nindexes, 1);
    CHECK_STR(s->tables[0].indexes[0].name, "notes_code_idx");
    CHECK_INT(s->tables[0].indexes[0].valid, 1);
    CHECK_INT(s->tables[0].indexes[0].unique, 1);
    loam_db_schema_free(s);
  }
  CHECK_INT(count_history(c), 2);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM notes"), 3);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM " LOAM_MIGRATION_STEPS_TABLE), 0);
  loam_conn_close(c);
  loam_error_clear(&err);
}

TEST(migrate_resume_sqlite) { check_resume(LOAM_SQLITE); }
TEST(migrate_resume_postgres) { check_resume(LOAM_POSTGRES); }


/*
** The down of a migration outside a transaction runs as its up does: step
** by step, journaled.  On PostgreSQL its DROP INDEX CONCURRENTLY runs as
** written (inside a transaction it could not).  A down that fails at its
** third step keeps the first two done and journaled as steps of down (the
** migration stays applied, not partial); the next down skips them (the
** INSERT of step 2 is not run twice), runs the third, and removes the
** history row and the journal.
*/
static void check_down_stepwise (loam_backend be) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = open_url(t_fresh_url(be, "downstep"));
  loam_migration_status *st = NULL;
  loam_op up[1], down[3];
  loam_migration m[2];
  hist3 h;
  int n = -1, ns = 0;
  if (c == NULL) { t_fail(__FILE__, __LINE__, "no database"); return; }
  history(&h);
  memset(up, 0, sizeof up);
  memset(down, 0, sizeof down);
  up[0].kind = LOAM_OP_ADD_INDEX;
  up[0].index.table = "notes";
  up[0].index.columns = body_col;
  up[0].index.ncolumns = 1;
  up[0].concurrently = 1;
  down[0].kind = LOAM_OP_DROP_INDEX;
  down[0].table = "notes";
  down[0].name = "notes_body_idx";
  down[0].concurrently = 1;
  down[1].kind = LOAM_OP_EXECUTE;
  down[1].sql = "INSERT INTO notes (body) VALUES ('down')";
  down[2].kind = LOAM_OP_EXECUTE;
  down[2].sql = "UPDATE no_such_table SET x = 1";
  m[0] = h.m[0];
  m[1] = (loam_migration){ .version = "20260102000000", .name = "body_index", .parents = p1,
                           .nparents = 1, .source = "b", .source_len = 1, .up = up, .nup = 1,
                           .down = down, .ndown = 3, .non_transactional = 1 };
  CHECK_OK(loam_migrate_up(c, m, 2, NULL, &n, &err), &err);
  CHECK_INT(n, 2);
  CHECK_INT(loam_migrate_down(c, m, 2, 1, NULL, &n, &err), LOAM_ERROR);
  CHECK_INT(n, 0);
  CHECK_INT(err.code, LOAM_E_UNDEFINED_TABLE);
  CHECK_HAS(err.message, "migration 20260102000000 (body_index), step 3 (execute): ");
  loam_error_clear(&err);
  CHECK_INT(count_history(c), 2);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM notes WHERE body = 'down'"), 1);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM " LOAM_MIGRATION_STEPS_TABLE), 2);
  CHECK_OK(loam_migrate_status(c, m, 2, &st, &ns, &err), &err);
  CHECK_INT(st[1].state, LOAM_MIG_APPLIED);
  loam_migration_status_free(st);
  {
    loam_db_schema *s = NULL;
    const char *const one[] = { "notes" };
    CHECK_OK(loam_introspect(c, one, 1, &s, &err), &err);
    CHECK_INT(s->tables[0].nindexes, 0);
    loam_db_schema_free(s);
  }
  down[2].sql = "UPDATE notes SET body = 'reverted' WHERE body = 'down'";
  CHECK_OK(loam_migrate_down(c, m, 2, 1, NULL, &n, &err), &err);
  CHECK_INT(n, 1);
  CHECK_INT(count_history(c), 1);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM notes WHERE body = 'reverted'"), 1);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM notes"), 1);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM " LOAM_MIGRATION_STEPS_TABLE), 0);
  /* applied again and reverted in one go, the index dropped concurrently */
  CHECK_OK(loam_migrate_up(c, m, 2, NULL, &n, &err), &err);
  CHECK_INT(n, 1);
  CHECK_OK(loam_migrate_down(c, m, 2, 1, NULL, &n, &err), &err);
  CHECK_INT(n, 1);
  CHECK_INT(count_history(c), 1);
  loam_conn_close(c);
  loam_error_clear(&err);
}

TEST(migrate_down_stepwise_sqlite) { check_down_stepwise(LOAM_SQLITE); }
TEST(migrate_down_stepwise_postgres) { check_down_stepwise(LOAM_POSTGRES); }


/*
** PostgreSQL: DDL waits at most lock_timeout for a busy table, then the
** migration is rolled back and tried again after a pause.  With the table
** held throughout, the run fails with 'timeout' and changes nothing; when
** the holder lets go during the pauses, it succeeds.  (SQLite has no table
** locks: a migration takes the database's write lock at BEGIN IMMEDIATE and
** waits there, in busy_timeout.)
*/
TEST(migrate_lock_timeout_retries_postgres) {
  loam_error err = LOAM_ERROR_INIT;
  const char *u = t_fresh_url(LOAM_POSTGRES, "ltimeout");
  char url[1024];
  loam_migrate_opts o = LOAM_MIGRATE_OPTS_INIT;
  loam_conn *c, *holder;
  hist3 h;
  pid_t pid;
  int n = -1, status = 0;
  if (u == NULL) { t_fail(__FILE__, __LINE__, "no database"); return; }
  snprintf(url, sizeof url, "%s", u);
  c = open_url(url);
  holder = open_url(url);
  CHECK(c != NULL && holder != NULL);
  history(&h);
  CHECK_OK(loam_migrate_up(c, h.m, 1, NULL, &n, &err), &err);
  CHECK_OK(exec(holder, "BEGIN", &err), &err);
  CHECK_OK(exec(holder, "SELECT * FROM notes", &err), &err);
  o.lock_timeout_ms = 50;
  o.ddl_retries = 1;
  CHECK_INT(loam_migrate_up(c, h.m, 2, &o, &n, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_TIMEOUT);
  CHECK_HAS(err.message, "migration 20260102000000 (add_rank), step 1 (add_column): ");
  CHECK_INT(count_history(c), 1);
  CHECK_OK(exec(holder, "ROLLBACK", &err), &err);
  loam_conn_close(holder);
  /* a holder that lets go after 300 ms, while the runner retries */
  pid = fork();
  if (pid == 0) {
    loam_conn *hc = open_url(url);
    if (hc == NULL || exec(hc, "BEGIN", NULL) != LOAM_OK ||
        exec(hc, "SELECT * FROM notes", NULL) != LOAM_OK)
      _exit(1);
    sleep_ms(300);
    exec(hc, "ROLLBACK", NULL);
    loam_conn_close(hc);
    _exit(0);
  }
  sleep_ms(100);
  o.ddl_retries = 5;
  CHECK_OK(loam_migrate_up(c, h.m, 2, &o, &n, &err), &err);
  CHECK_INT(n, 1);
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK_INT(count_history(c), 2);
  loam_conn_close(c);
  loam_error_clear(&err);
}


/*
** Through PgBouncer in transaction mode.  First why a session lock cannot
** serve: an advisory lock that one client takes stays with the server
** connection, which PgBouncer hands to the next client, who then "gets"
** the same lock too.  Then the runner's lease: two processes migrating at
** once through PgBouncer apply each migration once, and a lease held by
** another is refused as it is on a direct connection.
*/
TEST(migrate_through_pgbouncer) {
  loam_error err = LOAM_ERROR_INIT;
  const char *bouncer = getenv("LOAM_TEST_PGBOUNCER");
  loam_conn *direct = NULL, *a = NULL, *b = NULL;
  loam_migrate_opts o = LOAM_MIGRATE_OPTS_INIT;
  loam_op slow[2];
  loam_migration m[3];
  hist3 h;
  int n = -1;
  if (bouncer == NULL || t_pg_url() == NULL) {
    t_fail(__FILE__, __LINE__, "LOAM_TEST_PGBOUNCER is not set; the test harness starts one");
    return;
  }
  CHECK_OK(loam_connect(t_pg_url(), NULL, &direct, &err), &err);
  CHECK_OK(exec(direct, "DROP SCHEMA IF EXISTS loam_bouncer CASCADE", &err), &err);
  CHECK_OK(exec(direct, "CREATE SCHEMA loam_bouncer", &err), &err);
  a = open_url(bouncer);
  b = open_url(bouncer);
  CHECK(a != NULL && b != NULL);
  CHECK_INT(t_scalar(a, "SELECT pg_try_advisory_lock(4242)"), 1);
  CHECK_INT(t_scalar(b, "SELECT pg_try_advisory_lock(4242)"), 1);   /* not kept out */
  CHECK_OK(exec(b, "SELECT pg_advisory_unlock_all()", &err), &err);
  CHECK_OK(exec(a, "SELECT pg_advisory_unlock_all()", &err), &err);
  CHECK_INT(t_scalar(a, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"), 0);

  history(&h);
  memcpy(m, h.m, sizeof m);
  memset(slow, 0, sizeof slow);
  slow[0] = h.up2[0];
  slow[1].kind = LOAM_OP_EXECUTE;
  slow[1].sql = "SELECT pg_sleep(0.3)";
  m[1].up = slow;
  m[1].nup = 2;
  CHECK_INT(race(bouncer, m, 3), 3);
  CHECK_INT(t_scalar(direct, "SELECT count(*) FROM loam_bouncer." LOAM_MIGRATIONS_TABLE), 3);
  CHECK_INT(t_scalar(direct, "SELECT count(*) FROM loam_bouncer." LOAM_MIGRATION_LOCK_TABLE), 0);
  /* a lease held by another is refused through PgBouncer too */
  CHECK_OK(exec(direct, "INSERT INTO loam_bouncer." LOAM_MIGRATION_LOCK_TABLE
                " (id, owner, expires_at) VALUES (1, 'other', 99999999999999)", &err), &err);
  o.lock_wait_ms = 50;
  CHECK_INT(loam_migrate_down(a, m, 3, 1, &o, &n, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_LOCKED);
  CHECK_INT(n, 0);
  CHECK_INT(t_scalar(direct, "SELECT count(*) FROM loam_bouncer." LOAM_MIGRATIONS_TABLE), 3);
  loam_conn_close(a);
  loam_conn_close(b);
  CHECK_OK(exec(direct, "DROP SCHEMA loam_bouncer CASCADE", &err), &err);
  loam_conn_close(direct);
  loam_error_clear(&err);
}
