/*
** pool_report.c: what a pool says when it is exhausted or leaks.
**
** "The database is slow" is often a pool whose connections are all held:
** by a leak, or by a transaction waiting for something else.  So the
** acquire timeout names every holder, with how long it has held its
** connection and where it was acquired, and on PostgreSQL what the
** server says the session is doing (pg_stat_activity: active, idle in
** transaction, the lock it waits for, its statement).
**
** That last part needs a connection, and an exhausted pool has none to
** give: it is read on a monitoring connection of the pool's own, opened
** at the first report that needs it and kept, outside the pool's size,
** with a short connect and statement timeout so that a report never
** waits long on a server in trouble.  One thread reads it at a time; a
** report made meanwhile says the state is unavailable rather than wait.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool/pool_int.h"

#define MONITOR_CONNECT_S 2
#define MONITOR_STATEMENT_MS 2000


/* Appends 'ns' as seconds with three decimals. */
static void add_seconds (loam__buf *b, int64_t ns) {
  loam__buf_addf(b, "%lld.%03d s", (long long)(ns / 1000000000),
                 (int)(ns % 1000000000 / 1000000));
}


static void add_holder (loam__buf *b, const loamP_holder *h) {
  loam__buf_adds(b, "acquired at ");
  loam__buf_adds(b, h->tag[0] != '\0' ? h->tag : "(no tag)");
  loam__buf_adds(b, ", held ");
  add_seconds(b, h->held_ns);
}


void loamP_leak_message (loam_pool *p, const loamP_holder *h, loam__buf *b) {
  if (h->abandoned)
    loam__buf_adds(b, "a connection was lost without being released (it is back in the pool): ");
  else {
    loam__buf_adds(b, "a connection was held past the leak threshold (");
    loam__buf_int(b, p->o.leak_threshold_ms);
    loam__buf_adds(b, " ms): ");
  }
  add_holder(b, h);
}


void loamP_monitor_close (loam_pool *p) {
  loam_conn_close(p->mon);
  p->mon = NULL;
}


/* The pids of the 'n' holders as a PostgreSQL array literal, "{1,2}". */
static void pid_array (loam__buf *b, const loamP_holder *h, int n) {
  int i;
  loam__buf_addc(b, '{');
  for (i = 0; i < n; i++) {
    if (i > 0) loam__buf_addc(b, ',');
    loam__buf_int(b, h[i].pid);
  }
  loam__buf_addc(b, '}');
}


/* Appends column 'i' of the current row of 's' when it is text. */
static void add_text (loam__buf *b, loam_stmt *s, int i) {
  loam_value v;
  if (loam_column(s, i, &v) == LOAM_OK && v.type == LOAM_TEXT) loam__buf_add(b, v.u.s.ptr, v.u.s.len);
}


/*
** Writes into 'srv[i]' what the server says of holder i's session:
** "<state> for <time>[, waiting for <event>]: <statement>", or leaves it
** empty when the session is gone.  Runs the query on the monitoring
** connection, which is the caller's while it holds 'mon_mu'.
*/
static int server_states (loam_pool *p, const loamP_holder *h, int n, loam__buf *srv,
                          loam_error *err) {
  static const char sql[] =
    "SELECT pid, coalesce(state, ''), "
    "CASE WHEN state = 'active' THEN coalesce(wait_event_type || ' ' || wait_event, '') "
    "ELSE '' END, "
    "CAST(extract(epoch FROM clock_timestamp() - state_change) * 1000 AS bigint), "
    "translate(left(query, 80), chr(10) || chr(13) || chr(9), '   ') "
    "FROM pg_stat_activity WHERE pid = ANY(CAST(? AS integer[]))";
  loam__buf pids = LOAM__BUF_INIT;
  loam_stmt *s = NULL;
  loam_value arg;
  int i, rc;
  if (p->mon == NULL) {
    loam_conn_opts o = p->o.conn;
    o.connect_timeout_s = MONITOR_CONNECT_S;
    o.statement_timeout_ms = MONITOR_STATEMENT_MS;
    o.statement_cache = 0;
    if (loam_connect(p->url, &o, &p->mon, err) != LOAM_OK) return LOAM_ERROR;
  }
  pid_array(&pids, h, n);
  if (loam__buf_cstr(&pids) == NULL) return loam__err_nomem(err);
  arg = loam_text(pids.p, pids.len);
  rc = loam_query(p->mon, sql, &arg, 1, 0, &s, err);
  if (rc == LOAM_OK) rc = LOAM_ROW;
  while (rc == LOAM_ROW && (rc = loam_step(s, err)) == LOAM_ROW) {
    loam_value v;
    int64_t ms;
    if (loam_column(s, 0, &v) != LOAM_OK || v.type != LOAM_INT) continue;
    for (i = 0; i < n && h[i].pid != v.u.i; i++) {}
    if (i == n) continue;
    ms = (loam_column(s, 3, &v) == LOAM_OK && v.type == LOAM_INT) ? v.u.i : -1;
    add_text(&srv[i], s, 1);
    if (ms >= 0) {
      loam__buf_adds(&srv[i], " for ");
      add_seconds(&srv[i], ms * 1000000);
    }
    if (loam_column(s, 2, &v) == LOAM_OK && v.type == LOAM_TEXT && v.u.s.len > 0) {
      loam__buf_adds(&srv[i], ", waiting for ");
      add_text(&srv[i], s, 2);
    }
    loam__buf_adds(&srv[i], ": ");
    add_text(&srv[i], s, 4);
  }
  loam_stmt_close(s);
  loam__buf_free(&pids);
  if (rc == LOAM_DONE) return LOAM_OK;
  /* A connection that failed is opened anew by the next report. */
  if (err != NULL && err->code == LOAM_E_CONNECTION_FAILED) loamP_monitor_close(p);
  return LOAM_ERROR;
}


int loamP_timeout_error (loam_pool *p, int64_t waited_ns, int inuse, int waiting,
                         const loamP_holder *h, int n, loam_error *err) {
  loam__buf msg = LOAM__BUF_INIT, *srv = calloc((size_t)(n > 0 ? n : 1), sizeof *srv);
  loam_error serr = LOAM_ERROR_INIT;
  const char *unavailable = NULL;
  int i, states = 0;
  if (srv == NULL) return loam__err_nomem(err);
  for (i = 0; i < n && h[i].pid == 0; i++) {}
  /*
  ** Only PostgreSQL sessions have a server state to read, and not behind
  ** PgBouncer, whose clients have no server session of their own (the
  ** process ids it gives them are its own inventions).
  */
  if (i < n && p->pgbouncer)
    unavailable = "behind PgBouncer a client has no server session of its own";
  else if (i < n) {
    if (pthread_mutex_trylock(&p->mon_mu) != 0)
      unavailable = "another report is reading it";
    else {
      if (server_states(p, h, n, srv, &serr) != LOAM_OK)
        unavailable = serr.message != NULL ? serr.message : "the query failed";
      else states = 1;
      pthread_mutex_unlock(&p->mon_mu);
    }
  }
  loam__buf_adds(&msg, "pool exhausted: no connection free after ");
  add_seconds(&msg, waited_ns);
  loam__buf_addf(&msg, " (size %d, max_overflow %d: %d in use, %d more waiting)",
                 p->o.size, p->o.max_overflow, inuse, waiting);
  if (n > 0) loam__buf_adds(&msg, "; checked out:");
  for (i = 0; i < n; i++) {
    loam__buf_adds(&msg, "\n  ");
    if (!h[i].out)
      loam__buf_adds(&msg, "(a connection being opened, tried or handed back)");
    else add_holder(&msg, &h[i]);
    if (states && h[i].out) {
      loam__buf_adds(&msg, "; server: ");
      if (srv[i].len == 0) loam__buf_adds(&msg, "no session (it ended)");
      else if (loam__buf_cstr(&srv[i]) != NULL) loam__buf_add(&msg, srv[i].p, srv[i].len);
    }
    /* The server cannot know of a BEGIN that waits for its transaction's first statement. */
    if (h[i].out && h[i].waiting)
      loam__buf_adds(&msg, "; in a transaction (its BEGIN goes with its first statement, "
                     "not run yet)");
    loam__buf_free(&srv[i]);
  }
  if (unavailable != NULL) {
    loam__buf_adds(&msg, "\n  (server state unavailable: ");
    loam__buf_adds(&msg, unavailable);
    loam__buf_addc(&msg, ')');
  }
  free(srv);
  if (loam__buf_cstr(&msg) == NULL) loam__err_nomem(err);
  else loam__err_msg(err, LOAM_E_POOL_TIMEOUT, msg.p, msg.len);
  loam__buf_free(&msg);
  loam_error_clear(&serr);
  return LOAM_ERROR;
}
