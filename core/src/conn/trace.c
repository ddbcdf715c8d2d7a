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
    ev.wait_ns = conn->pool_wait_ns;
    conn->trace(conn->trace_ud, &ev);
  }
  conn->pool_wait_ns = 0;
}


/* What 'loam__trace_begin' copies: the parameters, then the SQL after them. */
struct loam__tcopy {
  loam_value *params;        /* into this block; NULL when there are none */
  char *sql;                 /* into this block */
};


/*
** One block holds the copy, the values, the bytes of their text and blobs
** and the SQL, so one 'free' releases them.  NULL without memory.
*/
static struct loam__tcopy *copy_for_hook (const char *sql, const loam_value *params,
                                           int nparams) {
  size_t head = sizeof(struct loam__tcopy), bytes = 0, off, sqlen = strlen(sql);
  struct loam__tcopy *t;
  char *base;
  int i;
  if (params == NULL) nparams = 0;
  /* The values go right after the head, at an alignment that suits them. */
  head = (head + _Alignof(loam_value) - 1) / _Alignof(loam_value) * _Alignof(loam_value);
  for (i = 0; i < nparams; i++)
    if (params[i].type == LOAM_TEXT || params[i].type == LOAM_BLOB) bytes += params[i].u.s.len;
  off = head + sizeof(loam_value) * (size_t)nparams;
  if ((t = (struct loam__tcopy *)malloc(off + bytes + sqlen + 1)) == NULL) return NULL;
  base = (char *)t;
  t->params = nparams > 0 ? (loam_value *)(void *)(base + head) : NULL;
  for (i = 0; i < nparams; i++) {
    t->params[i] = params[i];
    if (params[i].type == LOAM_TEXT || params[i].type == LOAM_BLOB) {
      if (params[i].u.s.len > 0) memcpy(base + off, params[i].u.s.ptr, params[i].u.s.len);
      t->params[i].u.s.ptr = base + off;
      off += params[i].u.s.len;
    }
  }
  t->sql = base + off;
  memcpy(t->sql, sql, sqlen + 1);
  return t;
}


/*
** The copy is what lets the hook see the SQL and the parameters at the
** end of a statement read row by row, long after 'loam_query' returned
** and its caller may have freed them.  Without memory for it the
** statement is still counted, just not shown to the hook.
*/
void loam__trace_begin (loam_stmt *s, const char *sql, const loam_value *params, int nparams,
                        int64_t t0) {
  s->t0 = t0;
  s->rows = 0;
  s->tnparams = nparams;
  s->tcopy = (s->conn->trace != NULL) ? copy_for_hook(sql, params, nparams) : NULL;
}


void loam__trace_end (loam_stmt *s, int errcode) {
  struct loam__tcopy *t = s->tcopy;
  int64_t elapsed = loam__clock_ns() - s->t0;
  if (t == NULL) {
    loam__trace_done(s->conn, NULL, NULL, s->tnparams, s->rows, elapsed, errcode);
    return;
  }
  s->tcopy = NULL;
  loam__trace_done(s->conn, t->sql, t->params, s->tnparams, s->rows, elapsed, errcode);
  free(t);
}


void loam_conn_stats (const loam_conn *conn, loam_stats *out) {
  static const loam_stats zero = { 0, 0, 0, 0 };
  if (out == NULL) return;
  *out = (conn != NULL) ? conn->stats : zero;
}


uint64_t loam_conn_writes (const loam_conn *conn) {
  return conn != NULL ? conn->writes : 0;
}


void loam_conn_set_trace (loam_conn *conn, loam_trace_fn fn, void *ud) {
  if (conn == NULL) return;
  conn->trace = fn;
  conn->trace_ud = (fn != NULL) ? ud : NULL;
}

/* }====================================================================== */
