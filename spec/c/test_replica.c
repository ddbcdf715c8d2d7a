/*
** test_replica.c: read-replica routing of the pool against the real
** streaming replica of the test cluster (spec/support/pg-replica, whose
** URL the harness exports as LOAM_TEST_PG_REPLICA), and the count of
** statements that may have written, on which read-your-writes stands.
*/
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "loam.h"
#include "pool/pool_int.h"
#include "t.h"


static int exec (loam_conn *c, const char *sql, loam_error *e) {
  return loam_exec(c, sql, NULL, 0, NULL, NULL, NULL, e);
}


/* {======================================================================
** The count of statements that may have written
** ======================================================================= */

static void writes_counted (int pg) {
  loam_error e = LOAM_ERROR_INIT;
  loam_conn *c;
  const char *url = t_url(pg, "writes_counted");
  if (url == NULL) return;
  CHECK(loam_connect(url, NULL, &c, &e) == LOAM_OK);
  CHECK_INT(loam_conn_writes(NULL), 0);
  CHECK_INT(loam_conn_writes(c), 0);
  CHECK_INT(t_scalar(c, "SELECT 1"), 1);
  CHECK_INT(loam_conn_writes(c), 0);
  CHECK(exec(c, "DROP TABLE IF EXISTS writes_counted", &e) == LOAM_OK);
  CHECK(exec(c, "CREATE TABLE writes_counted (n integer)", &e) == LOAM_OK);
  CHECK_INT(loam_conn_writes(c), 2);
  CHECK(exec(c, "INSERT INTO writes_counted VALUES (1)", &e) == LOAM_OK);
  CHECK(exec(c, "UPDATE writes_counted SET n = 2", &e) == LOAM_OK);
  CHECK(exec(c, "DELETE FROM writes_counted WHERE n = 3", &e) == LOAM_OK);
  CHECK_INT(loam_conn_writes(c), 5);
  /* Text of no known kind may write ('WITH ... DELETE'). */
  CHECK(exec(c, "WITH x AS (SELECT 1) SELECT * FROM x", &e) == LOAM_OK);
  CHECK_INT(loam_conn_writes(c), 6);
  /* A transaction: its BEGIN and COMMIT and what ran inside. */
  CHECK(loam_tx_begin(c, &e) == LOAM_OK);
  CHECK(exec(c, "INSERT INTO writes_counted VALUES (4)", &e) == LOAM_OK);
  CHECK(loam_tx_commit(c, &e) == LOAM_OK);
  CHECK_INT(loam_conn_writes(c), 9);
  /* A statement that failed before it ran wrote nothing. */
  CHECK(exec(c, "INSERT INTO no_such_table VALUES (1)", &e) == LOAM_ERROR);
  CHECK_INT(loam_conn_writes(c), 9);
  /* Bulk rows: multi-row INSERTs on SQLite, one COPY on PostgreSQL; counted either way. */
  {
    static const char *const cols[] = { "n" };
    loam_value vals[100];
    int64_t n = 0;
    int i;
    for (i = 0; i < 100; i++) vals[i] = loam_int(100 + i);
    CHECK(loam_insert_rows(c, "writes_counted", cols, 1, vals, 100, &n, &e) == LOAM_OK);
    CHECK_INT(n, 100);
    CHECK(loam_conn_writes(c) >= 10);
    CHECK(exec(c, "DELETE FROM writes_counted WHERE n >= 100", &e) == LOAM_OK);
  }
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM writes_counted"), 2);
  /* A SELECT that names INTO only in a string or an identifier reads. */
  {
    uint64_t w = loam_conn_writes(c);
    CHECK_INT(t_scalar(c, "SELECT count(*) FROM (SELECT 'into' AS \"into\", 1 AS into_x) x"), 1);
    CHECK_INT(loam_conn_writes(c), w);
    /* PostgreSQL's SELECT ... INTO creates a table: a write. */
    if (pg) {
      CHECK(exec(c, "SELECT n INTO TEMP writes_counted_into FROM writes_counted", &e) == LOAM_OK);
      CHECK_INT(loam_conn_writes(c), w + 1);
      CHECK_INT(t_scalar(c, "SELECT count(*) FROM writes_counted_into"), 2);
      CHECK(exec(c, "select n into temp writes_counted_lower from writes_counted", &e) == LOAM_OK);
      CHECK_INT(loam_conn_writes(c), w + 2);
    }
  }
  CHECK(exec(c, "DROP TABLE writes_counted", &e) == LOAM_OK);
  loam_conn_close(c);
  loam_error_clear(&e);
}

TEST(replica_writes_counted) { T_ON_BOTH(writes_counted); }

/* }====================================================================== */


/* {======================================================================
** Routing against the real replica
** ======================================================================= */

/* What the pool hook heard: the reports about replicas, in order. */
typedef struct heard {
  pthread_mutex_t mu;
  int n;
  char msg[8][512];
} heard;

static void hear (void *ud, loam_pool_event ev, const char *msg) {
  heard *h = ud;
  if (ev != LOAM_POOL_REPLICA) return;
  pthread_mutex_lock(&h->mu);
  if (h->n < 8) snprintf(h->msg[h->n++], sizeof h->msg[0], "%s", msg);
  pthread_mutex_unlock(&h->mu);
}

/* The replica's URL for test 'name' (a pool of its own), or NULL failing the test. */
static const char *replica_url (const char *name) {
  static char buf[512];
  const char *u = getenv("LOAM_TEST_PG_REPLICA");
  if (u == NULL || *u == '\0') {
    t_fail(__FILE__, __LINE__, "LOAM_TEST_PG_REPLICA is not set; the replica tests need one");
    return NULL;
  }
  snprintf(buf, sizeof buf, "%s&application_name=%s", u, name);
  return buf;
}

/* Runs spec/support/pg-replica 'action' on the harness's replica; 1 on success. */
static int replica_script (const char *action) {
  char cmd[600];
  const char *dir = getenv("LOAM_TEST_PG_REPLICA_DIR");
  if (dir == NULL) return 0;
  snprintf(cmd, sizeof cmd, "bash spec/support/pg-replica %s '%s'", action, dir);
  return system(cmd) == 0;
}

/* Whether a read of 'p' with 'tok' reached the replica (1), the primary (0); -1 on failure. */
static int read_where (loam_pool *p, loam_read_token *tok) {
  loam_conn *c;
  int64_t r;
  if (loam_pool_acquire_read(p, tok, "test_replica", &c, NULL) != LOAM_OK) return -1;
  r = t_scalar(c, "SELECT pg_is_in_recovery()");
  if (loam_pool_release(p, c, NULL) != LOAM_OK) return -1;
  return (int)r;
}

/* Polls 'read_where' until it says 'want'; bounded, and no timing is asserted. */
static int eventually_reads (loam_pool *p, loam_read_token *tok, int want) {
  int i;
  for (i = 0; i < 1200; i++) {
    if (read_where(p, tok) == want) return 1;
    t_sleep_ms(50);
  }
  return 0;
}

static loam_pool_opts replica_opts (const char **urls, int n, heard *h) {
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  o.size = 2;
  o.replicas = urls;
  o.nreplicas = n;
  o.hook = hear;
  o.hook_ud = h;
  return o;
}


TEST(replica_options_refused) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool *p = (loam_pool *)&e;
  const char *pg = t_url(1, "replica_options_refused");
  const char *rep = replica_url("replica_options_refused");
  const char *urls[17];
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  int i;
  if (pg == NULL || rep == NULL) return;
  for (i = 0; i < 17; i++) urls[i] = rep;
  o.replicas = urls;
  o.nreplicas = 17;
  CHECK(loam_pool_open(pg, &o, &p, &e) == LOAM_ERROR);
  CHECK(p == NULL);
  CHECK_STR(e.message, "loam_pool_open: 'nreplicas' must be 0 to 16, got 17");
  o.nreplicas = 1;
  o.max_lag_ms = -5;
  CHECK(loam_pool_open(pg, &o, &p, &e) == LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_STR(e.message, "loam_pool_open: 'max_lag_ms' must be 0 to 86400000, got -5");
  o.max_lag_ms = -1;
  o.replica_check_ms = 86400001;
  CHECK(loam_pool_open(pg, &o, &p, &e) == LOAM_ERROR);
  CHECK_STR(e.message, "loam_pool_open: 'replica_check_ms' must be 0 to 86400000, got 86400001");
  o.replica_check_ms = -1;
  CHECK(loam_pool_open("sqlite::memory:", &o, &p, &e) == LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_STR(e.message, "loam_pool_open: replicas are PostgreSQL servers, and this database is "
                       "SQLite");
  urls[0] = "sqlite::memory:";
  CHECK(loam_pool_open(pg, &o, &p, &e) == LOAM_ERROR);
  CHECK_STR(e.message, "loam_pool_open: replica 1 is an SQLite URL: replicas are PostgreSQL "
                       "servers");
  urls[0] = "postgresql://[nonsense";
  CHECK(loam_pool_open(pg, &o, &p, &e) == LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_INVALID_URL);
  urls[0] = NULL;
  CHECK(loam_pool_open(pg, &o, &p, &e) == LOAM_ERROR);
  CHECK_STR(e.message, "loam_pool_open: replica 1: the URL is NULL");
  o.replicas = NULL;
  CHECK(loam_pool_open(pg, &o, &p, &e) == LOAM_ERROR);
  CHECK_STR(e.message, "loam_pool_open: 'nreplicas' is 1 and 'replicas' is NULL");
  /* Nothing was left open: the same URL opens with other options. */
  o.nreplicas = 0;
  o.size = 1;
  CHECK(loam_pool_open(pg, &o, &p, &e) == LOAM_OK);
  /* The replica list is one of the options a second open must repeat. */
  {
    loam_pool *q = NULL;
    urls[0] = rep;
    o.replicas = urls;
    o.nreplicas = 1;
    CHECK(loam_pool_open(pg, &o, &q, &e) == LOAM_ERROR);
    CHECK(strstr(e.message, "replicas (this open names others)") != NULL);
  }
  CHECK(loam_pool_replica_stats(p, 0, &(loam_replica_metrics){0}, &e) == LOAM_ERROR);
  CHECK_STR(e.message, "loam_pool_replica_stats: no replica 0 (the pool has none)");
  loam_pool_close(p);
  /* A replica's pool is the process's pool for its URL: other options are the error. */
  o = (loam_pool_opts)LOAM_POOL_OPTS_INIT;
  o.size = 1;
  CHECK(loam_pool_open(rep, &o, &p, &e) == LOAM_OK);
  {
    loam_pool *q = NULL;
    o.size = 2;
    o.replicas = urls;
    o.nreplicas = 1;
    CHECK(loam_pool_open(pg, &o, &q, &e) == LOAM_ERROR);
    CHECK_INT(e.code, LOAM_E_MISUSE);
    CHECK(strstr(e.message, "size 1 (this open asks for 2)") != NULL);
    CHECK(strstr(e.message, "(the URL of replica 1)") != NULL);
    CHECK(q == NULL);
  }
  loam_pool_close(p);
  o = (loam_pool_opts)LOAM_POOL_OPTS_INIT;
  o.size = 3;
  CHECK(loam_pool_open(pg, &o, &p, &e) == LOAM_OK);   /* the failed open left nothing */
  loam_pool_close(p);
  /* The routing alone names its own fields. */
  {
    loam_replicas_opts ro = LOAM_REPLICAS_OPTS_INIT;
    loam_replicas *rs = (loam_replicas *)&e;
    ro.n = 0;
    CHECK(loam_replicas_open(&ro, &rs, &e) == LOAM_ERROR);
    CHECK(rs == NULL);
    CHECK_STR(e.message, "loam_replicas_open: 'n' must be 1 to 16, got 0");
    ro.n = 1;
    CHECK(loam_replicas_open(&ro, &rs, &e) == LOAM_ERROR);
    CHECK_STR(e.message, "loam_replicas_open: 'n' is 1 and 'urls' is NULL");
  }
  loam_error_clear(&e);
}


/*
** A replica's pool may be the process's for its URL: a connection taken
** from it directly is not one of the routing pool's, and handing it back
** there is the misuse error, with nothing counted.
*/
TEST(replica_release_through_the_wrong_pool) {
  loam_error e = LOAM_ERROR_INIT;
  heard h = { PTHREAD_MUTEX_INITIALIZER, 0, {{0}} };
  loam_pool_opts o, so = LOAM_POOL_OPTS_INIT;
  loam_pool_metrics pm;
  loam_pool *p, *shared;
  loam_conn *c, *r;
  const char *pg = t_url(1, "replica_release_through_the_wrong_pool");
  const char *urls[1];
  if (pg == NULL || (urls[0] = replica_url("replica_release_through_the_wrong_pool")) == NULL)
    return;
  so.size = 2;
  CHECK(loam_pool_open(urls[0], &so, &shared, &e) == LOAM_OK);
  o = replica_opts(urls, 1, &h);
  o.max_lag_ms = 600000;
  CHECK(loam_pool_open(pg, &o, &p, &e) == LOAM_OK);
  CHECK(eventually_reads(p, NULL, 1));
  CHECK(loam_pool_acquire_read(p, NULL, NULL, &r, &e) == LOAM_OK);
  CHECK(loam_pool_acquire(shared, NULL, &c, &e) == LOAM_OK);
  CHECK(loam_pool_release(p, c, &e) == LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK(strstr(e.message, "not one of this pool's") != NULL);
  CHECK(loam_pool_release(shared, c, &e) == LOAM_OK);
  CHECK(loam_pool_release(p, r, &e) == LOAM_OK);
  loam_pool_stats(shared, &pm);
  CHECK_INT(pm.in_use, 0);
  loam_pool_close(p);
  loam_pool_close(shared);
  loam_error_clear(&e);
}


TEST(replica_reads_and_own_writes) {
  loam_error e = LOAM_ERROR_INIT;
  heard h = { PTHREAD_MUTEX_INITIALIZER, 0, {{0}} };
  loam_read_token tok = LOAM_READ_TOKEN_INIT;
  loam_replica_metrics rm;
  loam_pool_metrics pm;
  loam_conn *c, *direct, *standby;
  loam_pool *p;
  const char *pg = t_url(1, "replica_reads_and_own_writes");
  const char *urls[1];
  loam_pool_opts o;
  int ok;
  if (pg == NULL || (urls[0] = replica_url("replica_reads_and_own_writes")) == NULL) return;
  o = replica_opts(urls, 1, &h);
  o.max_lag_ms = 600000;
  CHECK(loam_connect(pg, NULL, &direct, &e) == LOAM_OK);
  CHECK(loam_connect(urls[0], NULL, &standby, &e) == LOAM_OK);
  CHECK(exec(direct, "DROP TABLE IF EXISTS rep_c", &e) == LOAM_OK);
  CHECK(exec(direct, "CREATE TABLE rep_c (id integer PRIMARY KEY, v text)", &e) == LOAM_OK);
  CHECK(loam_pool_open(pg, &o, &p, &e) == LOAM_OK);
  /* Reads go to the replica once it has the table; writes to the primary. */
  CHECK(eventually_reads(p, NULL, 1));
  CHECK(loam_pool_acquire_write(p, &tok, "test_replica", &c, &e) == LOAM_OK);
  CHECK_INT(t_scalar(c, "SELECT pg_is_in_recovery()"), 0);
  CHECK(exec(c, "INSERT INTO rep_c VALUES (1, 'v1')", &e) == LOAM_OK);
  CHECK_INT(tok.wrote, 0);
  CHECK(loam_pool_release(p, c, &e) == LOAM_OK);
  CHECK_INT(tok.wrote, 1);
  /* The token's reads wait for the replica to replay the insert; then it serves them. */
  CHECK(eventually_reads(p, &tok, 1));
  CHECK_INT(tok.wrote, 0);
  CHECK(tok.lsn > 0);
  CHECK(loam_pool_acquire_read(p, &tok, NULL, &c, &e) == LOAM_OK);
  CHECK_INT(t_scalar(c, "SELECT count(*) FROM rep_c WHERE v = 'v1'"), 1);
  CHECK(loam_pool_release(p, c, &e) == LOAM_OK);
  /* With its replay paused, the replica cannot have a write: the writer reads the primary. */
  CHECK(exec(standby, "SELECT pg_wal_replay_pause()", &e) == LOAM_OK);
  ok = loam_pool_acquire_write(p, &tok, NULL, &c, &e) == LOAM_OK &&
       exec(c, "UPDATE rep_c SET v = 'v2'", &e) == LOAM_OK &&
       loam_pool_release(p, c, &e) == LOAM_OK &&
       loam_pool_acquire_read(p, &tok, NULL, &c, &e) == LOAM_OK;
  if (ok) {
    ok = t_scalar(c, "SELECT pg_is_in_recovery()") == 0 &&
         t_scalar(c, "SELECT count(*) FROM rep_c WHERE v = 'v2'") == 1;
    loam_pool_release(p, c, NULL);
  }
  /* Another caller, with no writes of its own, still reads the replica. */
  ok = ok && read_where(p, NULL) == 1 &&
       t_scalar(standby, "SELECT count(*) FROM rep_c WHERE v = 'v1'") == 1;
  exec(standby, "SELECT pg_wal_replay_resume()", NULL);
  CHECK(ok);
  CHECK(eventually_reads(p, &tok, 1));
  CHECK(loam_pool_replica_stats(p, 0, &rm, &e) == LOAM_OK);
  CHECK(rm.healthy);
  CHECK(rm.reads >= 4);
  CHECK_STR(rm.error, "");
  CHECK_INT(rm.pool.size, 2);
  loam_pool_stats(p, &pm);
  CHECK_INT(pm.replicas, 1);
  CHECK(pm.primary_reads >= 1);
  CHECK_INT(h.n, 0);
  /* A replica's connection goes back through the pool it was asked of, once. */
  CHECK(loam_pool_acquire_read(p, NULL, NULL, &c, &e) == LOAM_OK);
  CHECK(loam_pool_release(p, c, &e) == LOAM_OK);
  CHECK(loam_pool_release(p, c, &e) == LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  loam_pool_close(p);
  exec(direct, "DROP TABLE rep_c", NULL);
  loam_conn_close(standby);
  loam_conn_close(direct);
  loam_error_clear(&e);
}


TEST(replica_down_skipped_and_back) {
  loam_error e = LOAM_ERROR_INIT;
  heard h = { PTHREAD_MUTEX_INITIALIZER, 0, {{0}} };
  loam_replica_metrics rm;
  loam_pool *p, *q;
  const char *pg = t_url(1, "replica_down_skipped_and_back");
  const char *urls[2], *gone = "postgresql:///loam_test?host=/tmp/loam-no-such-replica&user=postgres";
  loam_pool_opts o;
  int ok;
  if (pg == NULL || (urls[0] = replica_url("replica_down_skipped_and_back")) == NULL) return;
  /* A replica that cannot be reached at open is skipped, reported once. */
  urls[1] = gone;
  o = replica_opts(urls, 2, &h);
  o.replica_check_ms = 0;
  CHECK(loam_pool_open(pg, &o, &p, &e) == LOAM_OK);
  CHECK_INT(h.n, 1);
  CHECK(strncmp(h.msg[0], "replica 2 skipped: connection_failed: ", 38) == 0);
  CHECK(strstr(h.msg[0], "; reads go to the other replicas or the primary") != NULL);
  CHECK(loam_pool_replica_stats(p, 1, &rm, &e) == LOAM_OK);
  CHECK(!rm.healthy);
  CHECK(strncmp(rm.error, "connection_failed: ", 19) == 0);
  CHECK_INT(rm.pool.size, 0);
  CHECK(eventually_reads(p, NULL, 1));
  /* The replica stopped mid-run: reads go to the primary, and back once it is up. */
  CHECK(replica_script("halt"));
  ok = read_where(p, NULL) == 0 && read_where(p, NULL) == 0;
  CHECK(replica_script("resume"));
  CHECK(ok);
  CHECK(eventually_reads(p, NULL, 1));
  CHECK(h.n >= 3);
  CHECK(strncmp(h.msg[1], "replica 1 skipped: connection_failed: ", 38) == 0);
  CHECK(strncmp(h.msg[2], "replica 1 is used again (lag ", 29) == 0);
  /* A primary named as a replica is no standby. */
  urls[1] = t_url(1, "replica_primary_itself");
  o = replica_opts(urls + 1, 1, &h);
  h.n = 0;
  CHECK(loam_pool_open(t_url(1, "replica_primary_as_replica"), &o, &q, &e) == LOAM_OK);
  CHECK_INT(h.n, 1);
  CHECK_STR(h.msg[0], "replica 1 skipped: it is not in recovery (a primary, not a replica); "
                      "reads go to the primary");
  CHECK_INT(read_where(q, NULL), 0);
  loam_pool_close(q);
  loam_pool_close(p);
  loam_error_clear(&e);
}

/*
** A read with a token whose write checkout is still held sees that
** checkout's writes: with the replica's replay paused, it reads the
** primary, before and after the write checkout goes back.
*/
TEST(replica_token_sees_held_writes) {
  loam_error e = LOAM_ERROR_INIT;
  heard h = { PTHREAD_MUTEX_INITIALIZER, 0, {{0}} };
  loam_read_token tok = LOAM_READ_TOKEN_INIT;
  loam_conn *w, *r, *direct, *standby;
  loam_pool *p;
  const char *pg = t_url(1, "replica_token_sees_held_writes");
  const char *urls[1];
  loam_pool_opts o;
  int ok, where = -1, seen = -1, after = -1;
  if (pg == NULL || (urls[0] = replica_url("replica_token_sees_held_writes")) == NULL) return;
  o = replica_opts(urls, 1, &h);
  o.max_lag_ms = 600000;
  CHECK(loam_connect(pg, NULL, &direct, &e) == LOAM_OK);
  CHECK(loam_connect(urls[0], NULL, &standby, &e) == LOAM_OK);
  CHECK(exec(direct, "DROP TABLE IF EXISTS rep_held", &e) == LOAM_OK);
  CHECK(exec(direct, "CREATE TABLE rep_held (n integer)", &e) == LOAM_OK);
  CHECK(loam_pool_open(pg, &o, &p, &e) == LOAM_OK);
  CHECK(eventually_reads(p, NULL, 1));
  CHECK(exec(standby, "SELECT pg_wal_replay_pause()", &e) == LOAM_OK);
  ok = loam_pool_acquire_write(p, &tok, NULL, &w, &e) == LOAM_OK;
  if (ok) {
    ok = exec(w, "INSERT INTO rep_held VALUES (1)", &e) == LOAM_OK &&
         loam_pool_acquire_read(p, &tok, NULL, &r, &e) == LOAM_OK;
    if (ok) {
      where = (int)t_scalar(r, "SELECT pg_is_in_recovery()");
      seen = (int)t_scalar(r, "SELECT count(*) FROM rep_held");
      loam_pool_release(p, r, NULL);
    }
    loam_pool_release(p, w, NULL);
    /* The release marks nothing more: the read after it still goes by the primary's position. */
    after = read_where(p, &tok);
  }
  exec(standby, "SELECT pg_wal_replay_resume()", NULL);
  CHECK(ok);
  CHECK_INT(where, 0);
  CHECK_INT(seen, 1);
  CHECK_INT(after, 0);
  CHECK(eventually_reads(p, &tok, 1));
  CHECK_INT(h.n, 0);
  loam_pool_close(p);
  exec(direct, "DROP TABLE rep_held", NULL);
  loam_conn_close(standby);
  loam_conn_close(direct);
  loam_error_clear(&e);
}


/* Counts every report of the pool hook, whatever its kind. */
static void count_reports (void *ud, loam_pool_event ev, const char *msg) {
  (void)ev;
  (void)msg;
  (*(int *)ud)++;
}


/*
** 'loam_pool_set_hook' reaches the replicas' pools: a replica connection
** abandoned after it is reported to the new hook, never to the old one,
** whose 'ud' the caller may have freed.
*/
TEST(replica_pools_follow_set_hook) {
  loam_error e = LOAM_ERROR_INIT;
  loam_pool *p;
  loam_conn *c;
  const char *pg = t_url(1, "replica_pools_follow_set_hook");
  const char *urls[1];
  loam_pool_opts o = LOAM_POOL_OPTS_INIT;
  int before = 0, after = 0;
  if (pg == NULL || (urls[0] = replica_url("replica_pools_follow_set_hook")) == NULL) return;
  o.size = 2;
  o.replicas = urls;
  o.nreplicas = 1;
  o.max_lag_ms = 600000;
  o.hook = count_reports;
  o.hook_ud = &before;
  CHECK(loam_pool_open(pg, &o, &p, &e) == LOAM_OK);
  CHECK(eventually_reads(p, NULL, 1));
  loam_pool_set_hook(p, count_reports, &after);
  CHECK(loam_pool_acquire_read(p, NULL, NULL, &c, &e) == LOAM_OK);
  CHECK_INT(t_scalar(c, "SELECT pg_is_in_recovery()"), 1);
  CHECK(loam_pool_abandon(p, c, &e) == LOAM_OK);
  CHECK_INT(before, 0);
  CHECK_INT(after, 1);
  loam_pool_close(p);
  loam_error_clear(&e);
}


/*
** A read never waits for a replica's pool: with both of its connections
** out, the third read takes the primary, and the replica's pool counts
** no timeout (a wait would have ended in one).
*/
TEST(replica_full_pool_passed_over) {
  loam_error e = LOAM_ERROR_INIT;
  heard h = { PTHREAD_MUTEX_INITIALIZER, 0, {{0}} };
  loam_replica_metrics rm;
  loam_pool_metrics pm;
  loam_conn *a = NULL, *b = NULL, *c = NULL;
  loam_pool *p;
  const char *pg = t_url(1, "replica_full_pool_passed_over");
  const char *urls[1];
  loam_pool_opts o;
  if (pg == NULL || (urls[0] = replica_url("replica_full_pool_passed_over")) == NULL) return;
  o = replica_opts(urls, 1, &h);
  o.max_overflow = 0;
  o.max_lag_ms = 600000;
  o.acquire_timeout_ms = 20000;
  CHECK(loam_pool_open(pg, &o, &p, &e) == LOAM_OK);
  CHECK(eventually_reads(p, NULL, 1));
  CHECK(loam_pool_acquire_read(p, NULL, NULL, &a, &e) == LOAM_OK);
  CHECK(loam_pool_acquire_read(p, NULL, NULL, &b, &e) == LOAM_OK);
  CHECK(a != NULL && b != NULL && t_scalar(a, "SELECT pg_is_in_recovery()") == 1 &&
        t_scalar(b, "SELECT pg_is_in_recovery()") == 1);
  CHECK(loam_pool_acquire_read(p, NULL, NULL, &c, &e) == LOAM_OK);
  CHECK(c != NULL && t_scalar(c, "SELECT pg_is_in_recovery()") == 0);
  CHECK(loam_pool_replica_stats(p, 0, &rm, &e) == LOAM_OK);
  CHECK_INT(rm.pool.timeouts, 0);
  CHECK_INT(rm.pool.in_use, 2);
  CHECK(rm.healthy);
  loam_pool_stats(p, &pm);
  CHECK(pm.primary_reads >= 1);
  /* Each goes back through the pool it was asked of. */
  CHECK(loam_pool_release(p, c, &e) == LOAM_OK);
  CHECK(loam_pool_release(p, b, &e) == LOAM_OK);
  CHECK(loam_pool_release(p, a, &e) == LOAM_OK);
  CHECK_INT(read_where(p, NULL), 1);
  CHECK_INT(h.n, 0);
  loam_pool_close(p);
  loam_error_clear(&e);
}


/* A pool opened in a thread of its own, and whether that open has returned. */
typedef struct opener {
  pthread_mutex_t mu;
  const char *url;
  int done, rc;
} opener;

static void *open_in_thread (void *ud) {
  opener *o = ud;
  loam_error e = LOAM_ERROR_INIT;
  loam_pool_opts po = LOAM_POOL_OPTS_INIT;
  loam_pool *p = NULL;
  int rc;
  po.conn.connect_timeout_s = 30;
  rc = loam_pool_open(o->url, &po, &p, &e);
  loam_pool_close(p);
  loam_error_clear(&e);
  pthread_mutex_lock(&o->mu);
  o->done = 1;
  o->rc = rc;
  pthread_mutex_unlock(&o->mu);
  return NULL;
}


/*
** A server that takes the connection and never answers (a socket that
** listens and never accepts) holds up the pool open that connects to it,
** and no other: another URL opens meanwhile.  Closing the socket ends the
** first open with an error.
*/
TEST(replica_open_connects_outside_the_list_lock) {
  loam_error e = LOAM_ERROR_INIT;
  opener o = { PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0 };
  struct sockaddr_un sa;
  char dir[] = "/tmp/loam-silent-XXXXXX", url[256];
  loam_pool_opts po = LOAM_POOL_OPTS_INIT;
  loam_pool *p;
  pthread_t th;
  int fd, done;
  CHECK(mkdtemp(dir) != NULL);
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s/.s.PGSQL.5432", dir);
  fd = socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 8) == 0);
  snprintf(url, sizeof url, "postgresql:///loam_test?host=%s&user=postgres", dir);
  o.url = url;
  CHECK(pthread_create(&th, NULL, open_in_thread, &o) == 0);
  t_sleep_ms(300);   /* lets the thread reach its connect; sooner, the check below proves less */
  po.size = 1;
  po.max_overflow = 0;
  CHECK(loam_pool_open("sqlite::memory:", &po, &p, &e) == LOAM_OK);
  pthread_mutex_lock(&o.mu);
  done = o.done;
  pthread_mutex_unlock(&o.mu);
  CHECK_INT(done, 0);
  loam_pool_close(p);
  close(fd);
  pthread_join(th, NULL);
  CHECK_INT(o.done, 1);
  CHECK_INT(o.rc, LOAM_ERROR);
  unlink(sa.sun_path);
  rmdir(dir);
  loam_error_clear(&e);
}


/* Polls 'sql' (one boolean) on 'c' until it is true; bounded, and no timing is asserted. */
static int eventually_true (loam_conn *c, const char *sql) {
  int i;
  for (i = 0; i < 1200; i++) {
    if (t_scalar(c, sql) == 1) return 1;
    t_sleep_ms(50);
  }
  return 0;
}


/*
** Lag is the age of the last replayed transaction while WAL waits, seen
** by the very first check: a pool opened while the replica's replay is
** paused behind a write skips it at once, and uses it again once it has
** replayed.
*/
TEST(replica_lag_on_the_first_check) {
  loam_error e = LOAM_ERROR_INIT;
  heard h = { PTHREAD_MUTEX_INITIALIZER, 0, {{0}} };
  loam_replica_metrics rm;
  loam_conn *direct, *standby;
  loam_pool *p;
  const char *pg = t_url(1, "replica_lag_on_the_first_check");
  const char *urls[1];
  loam_pool_opts o;
  int ok;
  if (pg == NULL || (urls[0] = replica_url("replica_lag_on_the_first_check")) == NULL) return;
  o = replica_opts(urls, 1, &h);
  o.max_lag_ms = 200;
  o.replica_check_ms = 0;
  CHECK(loam_connect(pg, NULL, &direct, &e) == LOAM_OK);
  CHECK(loam_connect(urls[0], NULL, &standby, &e) == LOAM_OK);
  CHECK(exec(direct, "DROP TABLE IF EXISTS rep_lag", &e) == LOAM_OK);
  CHECK(exec(direct, "CREATE TABLE rep_lag (n integer)", &e) == LOAM_OK);
  CHECK(exec(standby, "SELECT pg_wal_replay_pause()", &e) == LOAM_OK);
  /* WAL waits, and what the replica replayed last is older than max_lag_ms. */
  ok = exec(direct, "INSERT INTO rep_lag VALUES (1)", &e) == LOAM_OK &&
       eventually_true(standby, "SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()") &&
       eventually_true(standby, "SELECT clock_timestamp() - pg_last_xact_replay_timestamp() > "
                                "interval '300 ms'") &&
       loam_pool_open(pg, &o, &p, &e) == LOAM_OK;
  if (ok) {
    ok = read_where(p, NULL) == 0;
    CHECK(ok);
    CHECK_INT(h.n, 1);
    CHECK(strncmp(h.msg[0], "replica 1 skipped: replay lag ", 30) == 0);
    CHECK(strstr(h.msg[0], " ms is over max_lag_ms 200; reads go to the primary") != NULL);
    CHECK(loam_pool_replica_stats(p, 0, &rm, &e) == LOAM_OK);
    CHECK(!rm.healthy);
    CHECK(rm.lag_ms > 200);
  }
  exec(standby, "SELECT pg_wal_replay_resume()", NULL);
  CHECK(ok);
  if (ok) {
    CHECK(eventually_reads(p, NULL, 1));
    CHECK(h.n >= 2);
    CHECK(strncmp(h.msg[1], "replica 1 is used again (lag ", 29) == 0);
    loam_pool_close(p);
  }
  exec(direct, "DROP TABLE rep_lag", NULL);
  loam_conn_close(standby);
  loam_conn_close(direct);
  loam_error_clear(&e);
}


/*
** After a quiet spell the last replayed transaction is as old as the
** spell, but WAL that arrives then came after the last check that found
** nothing waiting: the lag counts from that check, so a replica is not
** skipped for the primary's silence.  What the test measures around the
** two checks bounds the lag; the spell alone would exceed it.
*/
TEST(replica_lag_counts_from_the_last_caught_up_check) {
  loam_error e = LOAM_ERROR_INIT;
  heard h = { PTHREAD_MUTEX_INITIALIZER, 0, {{0}} };
  loam_replica_metrics rm;
  loam_conn *direct, *standby;
  loam_pool *p = NULL;
  const char *pg = t_url(1, "replica_lag_counts_from_the_last_caught_up_check");
  const char *urls[1];
  loam_pool_opts o;
  int64_t t1 = 0, t3;
  int ok, i;
  if (pg == NULL ||
      (urls[0] = replica_url("replica_lag_counts_from_the_last_caught_up_check")) == NULL)
    return;
  o = replica_opts(urls, 1, &h);
  o.max_lag_ms = 60000;
  o.replica_check_ms = 0;
  CHECK(loam_connect(pg, NULL, &direct, &e) == LOAM_OK);
  CHECK(loam_connect(urls[0], NULL, &standby, &e) == LOAM_OK);
  CHECK(exec(direct, "DROP TABLE IF EXISTS rep_quiet", &e) == LOAM_OK);
  CHECK(exec(direct, "CREATE TABLE rep_quiet (n integer)", &e) == LOAM_OK);
  CHECK(exec(direct, "INSERT INTO rep_quiet VALUES (0)", &e) == LOAM_OK);
  ok = loam_pool_open(pg, &o, &p, &e) == LOAM_OK &&
       eventually_true(standby, "SELECT clock_timestamp() - pg_last_xact_replay_timestamp() > "
                                "interval '3 s' AND pg_last_wal_receive_lsn() <= "
                                "pg_last_wal_replay_lsn()");
  /* A check that finds nothing waiting (every read checks: replica_check_ms 0). */
  for (i = 0; ok && i < 100; i++) {
    t1 = loam__clock_ns();
    ok = read_where(p, NULL) == 1 && loam_pool_replica_stats(p, 0, &rm, &e) == LOAM_OK;
    if (ok && rm.lag_ms == 0) break;
  }
  CHECK(ok && rm.lag_ms == 0);
  ok = ok && exec(standby, "SELECT pg_wal_replay_pause()", &e) == LOAM_OK;
  if (ok) {
    ok = exec(direct, "INSERT INTO rep_quiet VALUES (1)", &e) == LOAM_OK &&
         eventually_true(standby, "SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()");
    CHECK(ok);
    CHECK(ok && read_where(p, NULL) == 1);
    t3 = loam__clock_ns();
    CHECK(loam_pool_replica_stats(p, 0, &rm, &e) == LOAM_OK);
    CHECK(rm.healthy);
    CHECK(rm.lag_ms >= 0 && rm.lag_ms <= (t3 - t1) / 1000000);
    CHECK_INT(h.n, 0);
    exec(standby, "SELECT pg_wal_replay_resume()", NULL);
  }
  CHECK(ok);
  loam_pool_close(p);
  exec(direct, "DROP TABLE rep_quiet", NULL);
  loam_conn_close(standby);
  loam_conn_close(direct);
  loam_error_clear(&e);
}


/* Sets the replica's primary_conninfo to 'v' and reloads its configuration. */
static int set_conninfo (loam_conn *standby, const char *v) {
  loam__buf b = LOAM__BUF_INIT;
  int ok;
  loam__buf_adds(&b, "ALTER SYSTEM SET primary_conninfo = ");
  loam__buf_literal(&b, v, strlen(v));
  ok = !b.oom && exec(standby, loam__buf_cstr(&b), NULL) == LOAM_OK &&
       exec(standby, "SELECT pg_reload_conf()", NULL) == LOAM_OK;
  loam__buf_free(&b);
  return ok;
}


/*
** A standby cut off from its primary has replayed all it received, and
** falls behind all the same: it is skipped while its WAL receiver does not
** stream, and used again once it does.  Its primary_conninfo is restored
** whatever happened.
*/
TEST(replica_not_streaming_skipped) {
  loam_error e = LOAM_ERROR_INIT;
  heard h = { PTHREAD_MUTEX_INITIALIZER, 0, {{0}} };
  loam_conn *standby;
  loam_stmt *s;
  loam_pool *p = NULL;
  const char *pg = t_url(1, "replica_not_streaming_skipped");
  const char *urls[1];
  char saved[1024] = "";
  loam_pool_opts o;
  int ok;
  if (pg == NULL || (urls[0] = replica_url("replica_not_streaming_skipped")) == NULL) return;
  o = replica_opts(urls, 1, &h);
  o.max_lag_ms = 600000;
  o.replica_check_ms = 0;
  CHECK(loam_connect(urls[0], NULL, &standby, &e) == LOAM_OK);
  CHECK(loam_query(standby, "SHOW primary_conninfo", NULL, 0, 0, &s, &e) == LOAM_OK);
  if (loam_step(s, &e) == LOAM_ROW) {
    loam_value v;
    loam_column(s, 0, &v);
    if (v.type == LOAM_TEXT) snprintf(saved, sizeof saved, "%s", v.u.s.ptr);
  }
  loam_stmt_close(s);
  CHECK(saved[0] != '\0');
  if (saved[0] == '\0') { loam_conn_close(standby); return; }
  ok = set_conninfo(standby, "host=/tmp/loam-no-such-primary user=postgres") &&
       eventually_true(standby, "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_wal_receiver "
                                "WHERE status = 'streaming')") &&
       loam_pool_open(pg, &o, &p, &e) == LOAM_OK;
  if (ok) {
    ok = read_where(p, NULL) == 0;
    CHECK_INT(h.n, 1);
    CHECK_STR(h.msg[0], "replica 1 skipped: it is not streaming from the primary; reads go to "
                        "the primary");
  }
  CHECK(set_conninfo(standby, saved));
  CHECK(ok);
  if (p != NULL) {
    CHECK(eventually_reads(p, NULL, 1));
    CHECK(h.n >= 2);
    CHECK(strncmp(h.msg[1], "replica 1 is used again (lag ", 29) == 0);
    loam_pool_close(p);
  }
  loam_conn_close(standby);
  loam_error_clear(&e);
}

/* }====================================================================== */


/* {======================================================================
** The routing alone, beside a connection of the host's own
** ======================================================================= */

TEST(replica_routing_beside_own_primary) {
  loam_error e = LOAM_ERROR_INIT;
  heard h = { PTHREAD_MUTEX_INITIALIZER, 0, {{0}} };
  loam_read_token tok = LOAM_READ_TOKEN_INIT;
  loam_replicas_opts o = LOAM_REPLICAS_OPTS_INIT;
  loam_replica_metrics rm;
  loam_replicas *rs = (loam_replicas *)&e;
  loam_conn *primary, *c;
  loam_pool *sub;
  const char *urls[2];
  int i = 7, k, ok = 0;
  if ((urls[0] = replica_url("replica_routing_beside_own_primary")) == NULL) return;
  urls[1] = urls[0];
  CHECK(loam_replicas_open(NULL, &rs, &e) == LOAM_ERROR);
  CHECK(rs == NULL);
  o.urls = urls;
  CHECK(loam_replicas_open(&o, &rs, &e) == LOAM_ERROR);
  CHECK_STR(e.message, "loam_replicas_open: 'n' must be 1 to 16, got 0");
  o.n = 2;
  o.check_ms = -3;
  CHECK(loam_replicas_open(&o, &rs, &e) == LOAM_ERROR);
  CHECK_STR(e.message, "loam_replicas_open: 'check_ms' must be 0 to 86400000, got -3");
  o.check_ms = -1;
  o.hook = hear;
  o.hook_ud = &h;
  CHECK(loam_replicas_open(&o, &rs, &e) == LOAM_OK);
  CHECK_INT(h.n, 0);
  CHECK(loam_connect(t_url(1, "replica_routing_beside_own_primary"), NULL, &primary, &e) ==
        LOAM_OK);
  /* Two replicas (the same server twice) take turns; each answer is one read. */
  for (k = 0; k < 4; k++) {
    CHECK(loam_replicas_route(rs, NULL, &tok, &i, &e) == LOAM_OK);
    CHECK_INT(i, k % 2);
  }
  CHECK(loam_replicas_stats(rs, 1, &rm, &e) == LOAM_OK);
  CHECK_INT(rm.reads, 2);
  CHECK(loam_replicas_stats(rs, 2, &rm, &e) == LOAM_ERROR);
  CHECK_STR(e.message, "loam_replicas_stats: no replica 2 (there are 2)");
  /* A token that wrote needs the primary for its position, read there. */
  tok.wrote = 1;
  CHECK(loam_replicas_route(rs, NULL, &tok, &i, &e) == LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK(exec(primary, "CREATE TEMP TABLE t (n integer)", &e) == LOAM_OK);
  CHECK(loam_replicas_route(rs, primary, &tok, &i, &e) == LOAM_OK);
  CHECK_INT(tok.wrote, 0);
  CHECK(tok.lsn > 0);
  /* The replica's pool is the process's: the host reads there with its own checkout. */
  for (k = 0; k < 1200 && !ok; k++) {
    CHECK(loam_replicas_route(rs, primary, &tok, &i, &e) == LOAM_OK);
    ok = i >= 0;
    if (!ok) t_sleep_ms(50);
  }
  CHECK(ok);
  CHECK((sub = loam_replicas_pool(rs, i)) != NULL);
  CHECK(loam_replicas_pool(rs, 5) == NULL);
  CHECK(loam_pool_acquire(sub, NULL, &c, &e) == LOAM_OK);
  CHECK_INT(t_scalar(c, "SELECT pg_is_in_recovery()"), 1);
  CHECK(loam_pool_release(sub, c, &e) == LOAM_OK);
  CHECK(loam_replicas_primary_reads(rs) >= 1);
  CHECK_INT(loam_replicas_primary_reads(NULL), 0);
  loam_conn_close(primary);
  loam_replicas_close(rs);
  loam_replicas_close(NULL);
  loam_error_clear(&e);
}

/* }====================================================================== */


/* {======================================================================
** WAL positions, by the primary's own page and segment sizes
** ======================================================================= */

/*
** An insert position just past a page header is where the replica's last
** record ended, at the page boundary: 24 bytes back, or 40 at the start
** of a segment.  With 4 kB pages and 1 MB segments (a server built
** --with-wal-blocksize=4, initialised --wal-segsize=1), positions that
** PostgreSQL's default 8 kB and 16 MB would never call caught up; with
** 32 kB pages, a position 24 bytes into an 8 kB stretch is mid-page,
** where 24 bytes are a record of someone else's, not a header.
*/
TEST(replica_positions_by_server_sizes) {
  const uint64_t kb4 = 4096, mb1 = 1048576, kb32 = 32768, mb16 = 16777216;
  const uint64_t page = 3 * kb4, seg = 5 * mb1;
  CHECK(loamP_caught_up(page, page + 24, kb4, mb1));
  CHECK(loamP_caught_up(seg, seg + 40, kb4, mb1));
  CHECK(!loamP_caught_up(page, page + 24, 8192, mb16));
  CHECK(!loamP_caught_up(seg, seg + 40, 8192, mb16));
  CHECK(!loamP_caught_up(page - 1, page + 24, kb4, mb1));
  CHECK(!loamP_caught_up(page + 8, page + 32, kb4, mb1));
  CHECK(!loamP_caught_up(kb32 + 8192, kb32 + 8192 + 24, kb32, mb16));
  CHECK(loamP_caught_up(kb32, kb32 + 24, kb32, mb16));
  CHECK(loamP_caught_up(100, 100, kb32, mb16));
  CHECK(loamP_caught_up(200, 100, kb32, mb16));
  /* Sizes not read yet: only a position at or past the need. */
  CHECK(!loamP_caught_up(page, page + 24, 0, 0));
}

/* }====================================================================== */


/* {======================================================================
** Threads sharing one routed pool
** ======================================================================= */

#define RT_THREADS 4
#define RT_ROUNDS 15

typedef struct rt_arg {
  loam_pool *p;
  int id;
  int stale;                 /* reads that missed the thread's own write */
  int failed;                /* calls that failed */
  int replica_reads;
} rt_arg;

/*
** Each thread writes a row of its own through the primary, then reads it
** back with its token: from the replica once it has replayed it, else
** from the primary, never missing it.
*/
static void *rt_worker (void *ud) {
  rt_arg *a = ud;
  loam_read_token tok = LOAM_READ_TOKEN_INIT;
  int k;
  for (k = 0; k < RT_ROUNDS; k++) {
    loam_value key = loam_int(a->id * 1000 + k);
    loam_conn *c;
    loam_stmt *s;
    loam_value v;
    if (loam_pool_acquire_write(a->p, &tok, "rt_worker", &c, NULL) != LOAM_OK) {
      a->failed++;
      continue;
    }
    if (loam_exec(c, "INSERT INTO rep_threads VALUES (?)", &key, 1, NULL, NULL, NULL, NULL) !=
        LOAM_OK)
      a->failed++;
    loam_pool_release(a->p, c, NULL);
    if (loam_pool_acquire_read(a->p, &tok, "rt_worker", &c, NULL) != LOAM_OK) {
      a->failed++;
      continue;
    }
    if (loam_query(c, "SELECT count(*), pg_is_in_recovery() FROM rep_threads WHERE id = ?",
                   &key, 1, 0, &s, NULL) == LOAM_OK) {
      if (loam_step(s, NULL) == LOAM_ROW && loam_column(s, 0, &v) == LOAM_OK) {
        if (v.u.i != 1) a->stale++;
        if (loam_column(s, 1, &v) == LOAM_OK && v.u.b) a->replica_reads++;
      }
      else a->failed++;
      loam_stmt_close(s);
    }
    else a->failed++;
    loam_pool_release(a->p, c, NULL);
  }
  return NULL;
}


TEST(replica_threads_read_their_writes) {
  loam_error e = LOAM_ERROR_INIT;
  heard h = { PTHREAD_MUTEX_INITIALIZER, 0, {{0}} };
  pthread_t th[RT_THREADS];
  rt_arg args[RT_THREADS];
  loam_pool_metrics pm;
  loam_replica_metrics rm;
  loam_conn *direct;
  loam_pool *p;
  const char *pg = t_url(1, "replica_threads_read_their_writes");
  const char *urls[2];
  loam_pool_opts o;
  int i, stale = 0, failed = 0;
  int64_t replica_reads = 0;
  if (pg == NULL || (urls[0] = replica_url("replica_threads_read_their_writes")) == NULL) return;
  urls[1] = urls[0];
  CHECK(loam_connect(pg, NULL, &direct, &e) == LOAM_OK);
  CHECK(exec(direct, "DROP TABLE IF EXISTS rep_threads", &e) == LOAM_OK);
  CHECK(exec(direct, "CREATE TABLE rep_threads (id integer PRIMARY KEY)", &e) == LOAM_OK);
  o = replica_opts(urls, 2, &h);
  o.replica_check_ms = 0;   /* every read checks: the checks race each other */
  o.max_lag_ms = 600000;
  CHECK(loam_pool_open(pg, &o, &p, &e) == LOAM_OK);
  for (i = 0; i < RT_THREADS; i++) {
    memset(&args[i], 0, sizeof args[i]);
    args[i].p = p;
    args[i].id = i + 1;
    CHECK(pthread_create(&th[i], NULL, rt_worker, &args[i]) == 0);
  }
  for (i = 0; i < RT_THREADS; i++) {
    pthread_join(th[i], NULL);
    stale += args[i].stale;
    failed += args[i].failed;
    replica_reads += args[i].replica_reads;
  }
  CHECK_INT(failed, 0);
  CHECK_INT(stale, 0);
  loam_pool_stats(p, &pm);
  CHECK_INT(pm.in_use, 0);
  CHECK(loam_pool_replica_stats(p, 0, &rm, &e) == LOAM_OK);
  CHECK_INT(rm.pool.in_use, 0);
  /* Every read was counted once, on a replica or on the primary. */
  {
    loam_replica_metrics r2;
    CHECK(loam_pool_replica_stats(p, 1, &r2, &e) == LOAM_OK);
    CHECK_INT(rm.reads + r2.reads, replica_reads);
    CHECK_INT(rm.reads + r2.reads + pm.primary_reads, RT_THREADS * RT_ROUNDS);
  }
  CHECK_INT(h.n, 0);
  loam_pool_close(p);
  exec(direct, "DROP TABLE rep_threads", NULL);
  loam_conn_close(direct);
  loam_error_clear(&e);
}

/* }====================================================================== */


/*
** A check does not queue behind the reads: with every connection of the
** replica's pool out (and an acquire that would wait forever), a read
** that finds the replica due goes by its last check instead of waiting.
*/
TEST(replica_check_skips_a_busy_pool) {
  loam_error e = LOAM_ERROR_INIT;
  loam_replicas_opts o = LOAM_REPLICAS_OPTS_INIT;
  loam_pool_opts po = LOAM_POOL_OPTS_INIT;
  loam_replica_metrics rm;
  loam_replicas *rs;
  loam_conn *held;
  const char *urls[1];
  int i = -2;
  if ((urls[0] = replica_url("replica_check_skips_a_busy_pool")) == NULL) return;
  po.size = 1;
  po.max_overflow = 0;
  po.acquire_timeout_ms = LOAM_FOREVER;
  o.urls = urls;
  o.n = 1;
  o.check_ms = 0;
  o.pool = &po;
  CHECK(loam_replicas_open(&o, &rs, &e) == LOAM_OK);
  CHECK(loam_pool_acquire(loam_replicas_pool(rs, 0), NULL, &held, &e) == LOAM_OK);
  CHECK(loam_replicas_route(rs, NULL, NULL, &i, &e) == LOAM_OK);
  CHECK_INT(i, 0);
  CHECK(loam_replicas_stats(rs, 0, &rm, &e) == LOAM_OK);
  CHECK(rm.healthy);
  CHECK_INT(rm.pool.timeouts, 0);
  CHECK(loam_pool_release(loam_replicas_pool(rs, 0), held, &e) == LOAM_OK);
  loam_replicas_close(rs);
  loam_error_clear(&e);
}


/*
** Routings with pools of their own: two over one replica URL with other
** pool options, and a pool of the process for that URL beside them.
*/
TEST(replica_routing_own_pools) {
  loam_error e = LOAM_ERROR_INIT;
  loam_replicas_opts o = LOAM_REPLICAS_OPTS_INIT;
  loam_pool_opts po = LOAM_POOL_OPTS_INIT;
  loam_replicas *a, *b;
  loam_pool *shared, *kept;
  loam_conn *c;
  const char *urls[1];
  if ((urls[0] = replica_url("replica_routing_own_pools")) == NULL) return;
  po.size = 3;
  CHECK(loam_pool_open(urls[0], &po, &shared, &e) == LOAM_OK);
  o.urls = urls;
  o.n = 1;
  o.own_pools = 1;
  CHECK(loam_replicas_open(&o, &a, &e) == LOAM_OK);   /* the defaults: size 5 */
  po.size = 1;
  o.pool = &po;
  CHECK(loam_replicas_open(&o, &b, &e) == LOAM_OK);
  CHECK(loam_replicas_pool(a, 0) != shared);
  CHECK(loam_replicas_pool(b, 0) != loam_replicas_pool(a, 0));
  /* A pool kept past its routing: one open more, closed by its holder. */
  kept = loam_replicas_pool(b, 0);
  loam_pool_retain(kept);
  loam_pool_retain(NULL);
  loam_replicas_close(b);
  CHECK(loam_pool_acquire(kept, NULL, &c, &e) == LOAM_OK);
  CHECK_INT(t_scalar(c, "SELECT pg_is_in_recovery()"), 1);
  CHECK(loam_pool_release(kept, c, &e) == LOAM_OK);
  loam_pool_close(kept);
  loam_replicas_close(a);
  loam_pool_close(shared);
  loam_error_clear(&e);
}
