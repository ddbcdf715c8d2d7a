/*
** drv_pg_pipe.c: pipelines, the PostgreSQL driver's 'pipeline' operation.
**
** Several statements go out back to back with one Sync, and their results
** come back in order, so a batch of relation loads costs one round trip.
** libpq in blocking mode reads incoming results while it waits to send,
** so a large pipeline cannot deadlock against a server busy writing.  Up
** to the Sync, the statements share one implicit transaction when none is
** open.  After an error the server skips the rest (PGRES_PIPELINE_ABORTED)
** up to the Sync, which the collection always reads, so the connection
** leaves pipeline mode clean whatever happened.  Binding, the statement
** cache and result wrapping are drv_pg.c's (through drv_pg_int.h).
*/
#include <stdlib.h>
#include <string.h>

#include "conn/drv_pg_int.h"


/* What the pipeline keeps of one statement until its results are in. */
typedef struct pipeslot {
  unsigned long id;          /* the prepared statement whose Parse went out here, or 0 */
  pgprep *own;               /* that statement when the cache did not take it */
  size_t key, keylen;        /* its cache key in the pipeline's key buffer */
  int parsed;                /* its Parse succeeded */
  int sent;                  /* the statement itself went out */
  PGresult *res;             /* its result, until wrapped */
} pipeslot;


/* Sends statement 'q' (and its Parse when it is new to the cache). */
static int pipe_send (pgconn *pc, const loam__pipe *q, pipeslot *sl, loam__buf *keys,
                      loam_error *err) {
  loam__centry *entry;
  pgprep *prep;
  int fresh;
  if (loam__pg_prepare(pc, q->sql, q->kind, q->params, q->nparams, &fresh, &prep, &entry, err) != LOAM_OK)
    return LOAM_ERROR;
  if (fresh) {
    sl->id = prep->id;
    sl->own = entry == NULL ? prep : NULL;
    sl->key = keys->len;
    sl->keylen = pc->key.len;
    loam__buf_add(keys, pc->key.p, pc->key.len);
  }
  if (prep != NULL)
    sl->sent = PQsendQueryPrepared(pc->pg, prep->name, q->nparams,
                                   pc->vals, pc->lens, pc->fmts, 0);
  else
    sl->sent = PQsendQueryParams(pc->pg, pc->sql.p, q->nparams, pc->types, pc->vals, pc->lens,
                                 pc->fmts, 0);
  /* Released at once, so a later statement of the same text finds it. */
  if (entry != NULL) loam__cache_release(&pc->conn->cache, entry);
  return sl->sent ? LOAM_OK : loam__pg_report(pc, NULL, err);
}


/* The next result of the pipeline, with the NULL that ends its command read too. */
static PGresult *pipe_result (PGconn *pg) {
  PGresult *r = PQgetResult(pg), *end;
  if (r != NULL && PQresultStatus(r) != PGRES_PIPELINE_SYNC)
    while ((end = PQgetResult(pg)) != NULL) PQclear(end);
  return r;
}


/*
** Reads the result of one command: the Parse of 'sl' ('parse' set) or
** its statement.  The first failure goes into 'first'; each failure is
** reported to the instrumentation, the skipped commands are not (they
** never ran).  Returns 0 when the connection was lost.
*/
static int pipe_read (pgconn *pc, const loam__pipe *q, pipeslot *sl, int parse, int64_t t0,
                      loam_error *first) {
  PGresult *r = pipe_result(pc->pg);
  ExecStatusType st = PQresultStatus(r);
  int64_t elapsed = loam__clock_ns() - t0;
  if (r == NULL || st == PGRES_PIPELINE_SYNC) {
    if (first->code == LOAM_E_NONE) loam__pg_report(pc, NULL, first);
    PQclear(r);
    return 0;
  }
  if (parse) sl->parsed = st == PGRES_COMMAND_OK;
  else if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
    sl->res = r;
    loam__trace_done(pc->conn, q->sql, q->params, q->nparams, PQntuples(r), elapsed, LOAM_E_NONE);
    return 1;
  }
  if (st != PGRES_PIPELINE_ABORTED && !(parse && st == PGRES_COMMAND_OK)) {
    loam_error e = LOAM_ERROR_INIT;
    loam__pg_report(pc, r, &e);
    loam__trace_done(pc->conn, q->sql, q->params, q->nparams, 0, elapsed, e.code);
    if (first->code == LOAM_E_NONE) *first = e;
    else loam_error_clear(&e);
  }
  PQclear(r);
  return 1;
}


/*
** libpq refuses to leave pipeline mode while results are pending, which
** only a send that failed halfway leaves behind (commands queued with no
** Sync): they are synced and read away.  A connection that still cannot
** leave would refuse every later call while looking healthy, so it is
** marked broken: reported lost, and discarded by a pool.
*/
void loam__pg_leave_pipeline (pgconn *pc) {
  PGconn *pg = pc->pg;
  int idle = 0;
  if (PQexitPipelineMode(pg)) return;
  if (PQstatus(pg) == CONNECTION_OK && PQpipelineSync(pg)) {
    while (idle < 2 && PQstatus(pg) == CONNECTION_OK) {
      PGresult *r = PQgetResult(pg);
      ExecStatusType st = PQresultStatus(r);
      if (r == NULL) {
        idle++;
        continue;
      }
      idle = 0;
      PQclear(r);
      /* An earlier Sync may answer first: leave at the first that lets go. */
      if (st == PGRES_PIPELINE_SYNC && PQexitPipelineMode(pg)) return;
    }
  }
  pc->broken = 1;
}


/*
** BEGIN and the first statement of a transaction, with one Sync: a
** failure of the statement aborts the transaction BEGIN opened, exactly
** as when the two went one after the other, and one of BEGIN (a lost
** connection, or a BEGIN the server refuses, such as SERIALIZABLE on a
** hot standby) skips the statement and is the caller's error.  Both
** answers come back together, so BEGIN's trace event has no time of its
** own: the round trip is the statement's.
*/
PGresult *loam__pg_begin_with (pgconn *pc, const char *name, int nparams) {
  loam_conn *conn = pc->conn;
  PGconn *pg = pc->pg;
  const char *begin = conn->tx_pending;
  loam_errcode code = LOAM_E_NONE;
  PGresult *rb = NULL, *rs = NULL, *sync;
  loam__tx_pend(conn, NULL);
  if (!PQenterPipelineMode(pg)) return NULL;
  if (PQsendQueryParams(pg, begin, 0, NULL, NULL, NULL, NULL, 0) &&
      PQsendQueryPrepared(pg, name, nparams, pc->vals, pc->lens, pc->fmts, 0) &&
      PQpipelineSync(pg) && (rb = pipe_result(pg)) != NULL &&
      PQresultStatus(rb) != PGRES_PIPELINE_SYNC && (rs = pipe_result(pg)) != NULL &&
      PQresultStatus(rs) != PGRES_PIPELINE_SYNC) {
    sync = PQgetResult(pg);
    PQclear(sync);
  }
  loam__pg_leave_pipeline(pc);
  if (PQresultStatus(rb) != PGRES_COMMAND_OK) {
    code = loam__pg_code(pc, rb);
    PQclear(rs);
    rs = PQresultStatus(rb) == PGRES_PIPELINE_SYNC ? NULL : rb;
    if (rs == NULL) PQclear(rb);
  }
  else {
    PQclear(rb);
    conn->writes++;   /* BEGIN ran: counted as any statement but a SELECT ('loam_conn_writes') */
    if (PQresultStatus(rs) == PGRES_PIPELINE_SYNC) {
      PQclear(rs);
      rs = NULL;
    }
  }
  loam__trace_done(conn, begin, NULL, 0, 0, 0, code);
  return rs;
}


/* Drops 'id' from the queue of statements awaiting DEALLOCATE. */
static void unqueue (pgconn *pc, unsigned long id) {
  int i;
  for (i = 0; i < pc->ndead; i++)
    if (pc->dead[i] == id) {
      pc->dead[i] = pc->dead[--pc->ndead];
      return;
    }
}


/*
** Settles the prepared statement whose Parse went out with 'sl'.  One
** that the server refused or skipped does not exist there, so it leaves
** the cache without a DEALLOCATE (which would fail, and abort an open
** transaction); one that exists and that the cache did not take is
** queued for DEALLOCATE like any other.  'keys' NULL: they were lost to
** a failed allocation, and the caller forgets every name instead.
*/
static void pipe_settle (pgconn *pc, const pipeslot *sl, const char *keys) {
  loam__cache *cache = &pc->conn->cache;
  loam__centry *e;
  if (sl->id == 0) return;
  if (sl->own != NULL) {
    if (sl->parsed) loam__pg_destroy_prep(pc, sl->own);
    else free(sl->own);
    return;
  }
  if (sl->parsed || keys == NULL) return;
  e = loam__cache_get(cache, keys + sl->key, sl->keylen);
  if (e != NULL && ((pgprep *)loam__cache_handle(e))->id == sl->id) {
    pc->forget = 1;
    loam__cache_drop(cache, e);
    pc->forget = 0;
    return;
  }
  if (e != NULL) loam__cache_release(cache, e);
  unqueue(pc, sl->id);   /* evicted meanwhile by a later statement of the pipeline */
}


/* Moves the error in 'from' (its strings too) into 'to', leaving 'from' empty. */
static void move_error (loam_error *to, loam_error *from) {
  loam_error_clear(to);
  *to = *from;
  memset(from, 0, sizeof *from);
}


int loam__pg_pipeline (loam_conn *conn, loam__pipe *q, int n, loam_error *err) {
  pgconn *pc = conn->impl;
  PGconn *pg = pc->pg;
  loam_error first = LOAM_ERROR_INIT, local = LOAM_ERROR_INIT;
  loam__buf keys = LOAM__BUF_INIT;
  pipeslot *sl;
  int64_t t0;
  int i, nslots = 0, alive = 1;
  if (conn->streaming != NULL)
    return loam__err(err, LOAM_E_MISUSE, "connection is busy streaming another result; "
                                         "finish or close that iteration first");
  if (PQstatus(pg) != CONNECTION_OK)
    return loam__err(err, LOAM_E_CONNECTION_FAILED, "the connection to the server was lost");
  if (n <= 0) return LOAM_OK;   /* nothing to send */
  for (i = 0; i < n; i++) q[i].stmt = NULL;
  if (conn->tx_pending != NULL && loam__pg_begin_now(pc, err) != LOAM_OK) return LOAM_ERROR;
  if ((sl = calloc((size_t)n, sizeof *sl)) == NULL) return loam__err_nomem(err);
  /* Integer parameter types are learned outside the pipeline, which cannot wait for them. */
  for (i = 0; i < n; i++) loam__pg_warm_types(pc, q[i].sql, q[i].params, q[i].nparams);
  loam__pg_flush_dead(pc);
  if (!PQenterPipelineMode(pg)) {
    free(sl);
    return loam__pg_report(pc, NULL, err);
  }
  t0 = loam__clock_ns();
  while (nslots < n && pipe_send(pc, &q[nslots], &sl[nslots], &keys, &local) == LOAM_OK)
    nslots++;
  if (nslots < n) nslots++;   /* the failed one may have sent its Parse */
  if (!PQpipelineSync(pg)) {
    loam__pg_report(pc, NULL, &first);
    alive = 0;
  }
  for (i = 0; i < nslots && alive; i++) {
    if (sl[i].id != 0) alive = pipe_read(pc, &q[i], &sl[i], 1, t0, &first);
    if (alive && sl[i].sent) alive = pipe_read(pc, &q[i], &sl[i], 0, t0, &first);
  }
  if (alive) {
    PGresult *r = PQgetResult(pg);
    if (PQresultStatus(r) != PGRES_PIPELINE_SYNC && first.code == LOAM_E_NONE)
      loam__pg_report(pc, r, &first);
    PQclear(r);
  }
  loam__pg_leave_pipeline(pc);
  for (i = 0; i < nslots; i++) pipe_settle(pc, &sl[i], keys.oom ? NULL : keys.p);
  if (keys.oom) loam__pg_forget_all(pc);
  if (first.code == LOAM_E_NONE) move_error(&first, &local);
  for (i = 0; i < n && first.code == LOAM_E_NONE; i++) {
    pgstmt *s = loam__pg_wrap(sl[i].res, &first);   /* owns the result from here on */
    sl[i].res = NULL;
    if (s == NULL) break;
    s->base.conn = conn;
    s->base.state = LOAM__ST_READY;
    q[i].stmt = &s->base;
  }
  for (i = 0; i < n && first.code != LOAM_E_NONE; i++) {
    PQclear(sl[i].res);
    if (q[i].stmt != NULL) {
      loam__pg_finish(q[i].stmt);
      free(q[i].stmt);
      q[i].stmt = NULL;
    }
  }
  loam__buf_free(&keys);
  loam_error_clear(&local);
  free(sl);
  if (first.code == LOAM_E_NONE) return LOAM_OK;
  if (err != NULL) move_error(err, &first);
  else loam_error_clear(&first);
  return LOAM_ERROR;
}
