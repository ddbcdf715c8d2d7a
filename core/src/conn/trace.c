/*
** trace.c: instrumentation of connections: counters and the trace hook.
**
** Every statement is reported here once, when it ends (conn.c decides
** when; the batch loader and pipelines call 'loam__trace_done' directly).
** The report always updates the counters of its connection; only when a
** hook is set does it cost more: the SQL text and the parameters are
** copied at the start of the statement and the text fingerprinted at its
** end (the fingerprints themselves are sql/redact.c's).
*/
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn/conn_int.h"
#include "sql/sql_int.h"


int64_t loam__clock_ns (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
}


/* {======================================================================
** Counters and the hook
** ======================================================================= */

void loam__trace_done (loam_conn *conn, const char *sql, const loam_value *params, int nparams,
                       int64_t rows, int64_t elapsed_ns, int errcode) {
  conn->stats.queries++;
  conn->stats.rows += rows;
  conn->stats.elapsed_ns += elapsed_ns;
  if (errcode != LOAM_E_NONE) conn->stats.errors++;
  if (conn->trace != NULL && sql != NULL) {
    loam_trace_event ev;
    ev.conn = conn;
    ev.sql = sql;
    ev.nparams = nparams;
    ev.fingerprint = loam_fingerprint(sql);
    ev.rows = rows;
    ev.elapsed_ns = elapsed_ns;
    ev.errcode = (loam_errcode)errcode;
    ev.params = nparams > 0 ? params : NULL;
    ev.pool_wait_ns = conn->pool_wait_ns;
    conn->trace(conn->trace_ud, &ev);
  }
}


/*
** The values and the bytes of their text and blobs in one block, so one
** 'free' releases them.  NULL when there are none or no memory.
*/
static loam_value *copy_params (const loam_value *params, int nparams) {
  size_t bytes = 0, off;
  loam_value *v;
  int i;
  if (params == NULL || nparams <= 0) return NULL;
  for (i = 0; i < nparams; i++)
    if (params[i].type == LOAM_TEXT || params[i].type == LOAM_BLOB) bytes += params[i].u.s.len;
  off = sizeof(loam_value) * (size_t)nparams;
  if ((v = (loam_value *)malloc(off + bytes + 1)) == NULL) return NULL;
  for (i = 0; i < nparams; i++) {
    v[i] = params[i];
    if (v[i].type == LOAM_TEXT || v[i].type == LOAM_BLOB) {
      char *to = (char *)v + off;
      if (v[i].u.s.len > 0) memcpy(to, params[i].u.s.ptr, v[i].u.s.len);
      v[i].u.s.ptr = to;
      off += v[i].u.s.len;
    }
  }
  return v;
}


/*
** The copies are what let the hook see the SQL and the parameters at the
** end of a statement read row by row, long after 'loam_query' returned
** and its caller may have freed them.  Without memory for the SQL the
** statement is still counted, just not shown to the hook; without memory
** for the parameters it is shown without them.
*/
void loam__trace_begin (loam_stmt *s, const char *sql, const loam_value *params, int nparams,
                        int64_t t0) {
  s->t0 = t0;
  s->rows = 0;
  s->tnparams = nparams;
  s->tsql = NULL;
  s->tparams = NULL;
  if (s->conn->trace != NULL) {
    s->tsql = loam__strdup(sql);
    s->tparams = copy_params(params, nparams);
  }
}


/* Without a hook there is nothing to free: the common path stays two calls short. */
void loam__trace_end (loam_stmt *s, int errcode) {
  char *sql = s->tsql;
  loam_value *params = s->tparams;
  int64_t elapsed = loam__clock_ns() - s->t0;
  if (sql == NULL && params == NULL) {
    loam__trace_done(s->conn, NULL, NULL, s->tnparams, s->rows, elapsed, errcode);
    return;
  }
  s->tsql = NULL;
  s->tparams = NULL;
  loam__trace_done(s->conn, sql, params, s->tnparams, s->rows, elapsed, errcode);
  free(sql);
  free(params);
}


void loam_conn_stats (const loam_conn *conn, loam_stats *out) {
  static const loam_stats zero = { 0, 0, 0, 0 };
  if (out == NULL) return;
  *out = (conn != NULL) ? conn->stats : zero;
}


void loam_conn_set_trace (loam_conn *conn, loam_trace_fn fn, void *ud) {
  if (conn == NULL) return;
  conn->trace = fn;
  conn->trace_ud = (fn != NULL) ? ud : NULL;
}

/* }====================================================================== */
