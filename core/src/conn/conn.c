/*
** conn.c: connections and statements, independent of the backend.
**
** This is the public face of 'loam_conn' and 'loam_stmt'.  It parses the
** URL, picks the driver, checks every argument and every state transition
** (closed handles, stepping past the end, reading a column with no current
** row), and keeps the list of open statements so that closing a connection
** finalizes them instead of leaving dangling pointers.  Drivers therefore
** only see valid calls.
**
** It is also the one place where raw SQL text is read for what it does:
** 'loam_query' and 'loam_exec' classify it once, by its first keyword
** ('loam__sql_classify'), and hand the drivers that kind, exactly as a rendered
** statement ('loam_query_rendered') hands them its own.  A driver never
** looks at the text to decide, so rendered SQL is never read twice and
** two drivers cannot disagree about one text.
*/
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "conn/conn_int.h"
#include "sql/dialect_int.h"

#define DEFAULT_STATEMENT_CACHE 64
#define DEFAULT_BUSY_TIMEOUT_MS 5000
#define DEFAULT_CONNECT_TIMEOUT_S 10


/*
** Behind PgBouncer in transaction mode ('?pgbouncer=transaction') a client
** has a server connection for one transaction only, so nothing may live in
** the server session: no prepared statement (the statement cache is off,
** every statement is unnamed), and no per-connection timeout, which would
** be a session setting (the role's settings, ALTER ROLE ... SET
** statement_timeout, or PgBouncer's own query_timeout hold instead).
** Asking for either is an error rather than something silently dropped.
*/
static int check_pgbouncer (const loam_conn_opts *asked, loam_conn_opts *o, loam_error *err) {
  if (asked != NULL && asked->statement_cache > 0)
    return loam__err(err, LOAM_E_MISUSE, "loam_connect: statement_cache %d cannot be used with "
                     "pgbouncer=transaction (PgBouncer hands each transaction any server "
                     "connection, where a prepared statement does not exist); leave it unset or 0",
                     asked->statement_cache);
  if (o->statement_timeout_ms >= 0 || o->idle_in_tx_timeout_ms >= 0)
    return loam__err(err, LOAM_E_MISUSE, "loam_connect: %s cannot be used with "
                     "pgbouncer=transaction (it is a session setting, and PgBouncer shares "
                     "server sessions): set it on the role (ALTER ROLE ... SET) instead",
                     o->statement_timeout_ms >= 0 ? "statement_timeout_ms"
                                                  : "idle_in_tx_timeout_ms");
  o->statement_cache = 0;
  return LOAM_OK;
}


int loam_connect (const char *url, const loam_conn_opts *opts, loam_conn **out,
                  loam_error *err) {
  loam_conn_opts o = LOAM_CONN_OPTS_INIT;
  loam__url u;
  loam_conn *c;
  int rc;
  if (out == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_connect: 'out' is NULL");
  *out = NULL;
  if (opts != NULL) o = *opts;
  if (o.statement_cache < 0) o.statement_cache = DEFAULT_STATEMENT_CACHE;
  if (o.busy_timeout_ms < 0) o.busy_timeout_ms = DEFAULT_BUSY_TIMEOUT_MS;
  /* 0 is libpq's "forever"; asking for that takes LOAM_FOREVER, which becomes 0 here. */
  if (o.connect_timeout_s == 0)
    return loam__err(err, LOAM_E_MISUSE, "loam_connect: a connect timeout of 0 would wait "
                     "forever; give seconds, or LOAM_FOREVER to mean that");
  if (o.connect_timeout_s == LOAM_FOREVER) o.connect_timeout_s = 0;
  else if (o.connect_timeout_s < 0) o.connect_timeout_s = DEFAULT_CONNECT_TIMEOUT_S;
  if (o.statement_timeout_ms < -1 || o.idle_in_tx_timeout_ms < -1)
    return loam__err(err, LOAM_E_MISUSE, "loam_connect: %s must be milliseconds, 0 (none) or "
                     "-1 (the default), got %d",
                     o.statement_timeout_ms < -1 ? "statement_timeout_ms" : "idle_in_tx_timeout_ms",
                     o.statement_timeout_ms < -1 ? o.statement_timeout_ms
                                                 : o.idle_in_tx_timeout_ms);
  if (loam__url_parse(url, &u, err) != LOAM_OK) {
    loam__url_free(&u);
    return LOAM_ERROR;
  }
  if (u.pgbouncer && check_pgbouncer(opts, &o, err) != LOAM_OK) {
    loam__url_free(&u);
    return LOAM_ERROR;
  }
  c = calloc(1, sizeof *c);
  if (c == NULL) {
    loam__url_free(&u);
    return loam__err_nomem(err);
  }
  c->backend = u.backend;
  c->drv = (u.backend == LOAM_SQLITE) ? &loam__sqlite_driver : &loam__pg_driver;
  rc = c->drv->open(c, &u, &o, err);
  loam__url_free(&u);
  if (rc != LOAM_OK) {
    free(c);
    return LOAM_ERROR;
  }
  *out = c;
  return LOAM_OK;
}


static void unlink_stmt (loam_stmt *s) {
  loam_conn *c = s->conn;
  if (s->prev) s->prev->next = s->next; else c->stmts = s->next;
  if (s->next) s->next->prev = s->prev;
  s->next = s->prev = NULL;
}


/*
** Releases the backend side of 's' and detaches it from its connection.
** A statement that had not ended yet ends here, and is reported.
*/
static void finish_stmt (loam_stmt *s) {
  loam_conn *c = s->conn;
  if (c == NULL) return;
  c->drv->finish(s);
  if (c->streaming == s) c->streaming = NULL;
  if (s->state == LOAM__ST_READY || s->state == LOAM__ST_ROW) loam__trace_end(s, LOAM_E_NONE);
  unlink_stmt(s);
  s->conn = NULL;
}


void loam_conn_close (loam_conn *c) {
  if (c == NULL || c->tx_closed) return;
  loam__tx_end_all(c, 1);
  c->tx_depth = 0;
  while (c->stmts != NULL) {
    loam_stmt *s = c->stmts;
    finish_stmt(s);
    s->state = LOAM__ST_DEAD;
  }
  loam__cache_clear(&c->cache);
  c->drv->close(c);
  /* Closed from inside a callback of tx.c, which frees it once that returned. */
  if (c->tx_busy > 0) c->tx_closed = 1;
  else free(c);
}


int loam_conn_cancel (loam_conn *c, loam_error *err) {
  if (c == NULL) return loam__err(err, LOAM_E_MISUSE, "attempt to use a closed connection");
  return c->drv->cancel(c, err);
}


int loam__conn_reset (loam_conn *c, loam_error *err) {
  while (c->stmts != NULL) {
    loam_stmt *s = c->stmts;
    finish_stmt(s);
    s->state = LOAM__ST_DEAD;
  }
  c->tx_depth = 0;
  c->tx_began = 0;
  loam__tx_pend(c, NULL);   /* a BEGIN never sent needs no ROLLBACK */
  if (!c->drv->alive(c, 0)) {
    loam__tx_end_all(c, 1);
    return loam__err(err, LOAM_E_CONNECTION_FAILED, "the connection was lost");
  }
  if (c->drv->in_transaction(c) != LOAM__TX_NONE &&
      loam__exec(c, loam__dialect(c->backend)->rollback, LOAM_SQL_TX, NULL, 0, NULL, NULL, NULL, err) != LOAM_OK) {
    loam__tx_end_all(c, 1);
    return LOAM_ERROR;
  }
  /* The hooks of the transaction just rolled back run with the connection idle. */
  loam__tx_end_all(c, 0);
  return c->drv->alive(c, 0) ? LOAM_OK
         : loam__err(err, LOAM_E_CONNECTION_FAILED, "the connection was lost");
}


int loam__conn_clean (loam_conn *c) {
  return c->stmts == NULL && c->tx_depth == 0 && c->tx_pending == NULL && c->tx_nhooks == 0 &&
         !c->tx_query_only && c->drv->alive(c, 0) && c->drv->in_transaction(c) == LOAM__TX_NONE;
}


loam_tx_status loam_conn_tx_status (loam_conn *c) {
  if (c == NULL) return LOAM_TX_IDLE;
  switch (c->drv->in_transaction(c)) {
    case LOAM__TX_OPEN: return LOAM_TX_OPEN;
    case LOAM__TX_FAILED: return LOAM_TX_FAILED;
    default: return LOAM_TX_IDLE;
  }
}


loam_backend loam_conn_backend (const loam_conn *c) {
  return c ? c->backend : (loam_backend)0;
}


int loam_conn_cached_statements (const loam_conn *c) {
  return c ? c->cache.count : 0;
}


/* The checks of 'loam_query' that need a connection and SQL text. */
static int checkquery (loam_conn *c, const loam_value *params, int nparams, loam_error *err) {
  int i;
  if (nparams < 0 || (nparams > 0 && params == NULL))
    return loam__err(err, LOAM_E_MISUSE, "loam_query: bad parameter array");
  for (i = 0; i < nparams; i++) {
    loam_type t = params[i].type;
    if ((int)t < (int)LOAM_NULL || t > LOAM_BLOB)
      return loam__err(err, LOAM_E_MISUSE, "parameter %d has an unknown type (%d)", i + 1, (int)t);
    if ((t == LOAM_TEXT || t == LOAM_BLOB) && params[i].u.s.ptr == NULL && params[i].u.s.len > 0)
      return loam__err(err, LOAM_E_MISUSE, "parameter %d: NULL pointer with a length", i + 1);
  }
  if (c->streaming != NULL)
    return loam__err(err, LOAM_E_MISUSE,
                     "connection is busy streaming another result; "
                     "finish or close that iteration first");
  return LOAM_OK;
}


/* First keywords and the kind they make; the first match wins. */
static const struct { const char *kw; loam_sql_kind kind; } keywords[] = {
  { "SELECT", LOAM_SQL_SELECT },
  { "INSERT", LOAM_SQL_INSERT }, { "REPLACE", LOAM_SQL_INSERT },
  { "UPDATE", LOAM_SQL_UPDATE },
  { "DELETE", LOAM_SQL_DELETE },
  { "CREATE", LOAM_SQL_DDL }, { "DROP", LOAM_SQL_DDL }, { "ALTER", LOAM_SQL_DDL },
  { "BEGIN", LOAM_SQL_TX }, { "START", LOAM_SQL_TX }, { "COMMIT", LOAM_SQL_TX },
  { "END", LOAM_SQL_TX }, { "ROLLBACK", LOAM_SQL_TX }, { "SAVEPOINT", LOAM_SQL_TX },
  { "RELEASE", LOAM_SQL_TX },
  { "DISCARD", LOAM_SQL_RESET }, { "DEALLOCATE", LOAM_SQL_RESET },
};


/*
** Whether SELECT text 'sql' has the word INTO outside quotes: PostgreSQL's
** 'SELECT ... INTO t' creates a table.  An INTO inside a comment counts
** too, which only makes a read after it ask where the primary is.
*/
#define WORDCH(ch) (isalnum((unsigned char)(ch)) || (ch) == '_')

static int selects_into (const char *sql) {
  const char *p;
  char q = 0;
  for (p = sql; *p; p++) {
    if (q != 0) { if (*p == q) q = 0; continue; }
    if (*p == '\'' || *p == '"') { q = *p; continue; }
    if (toupper((unsigned char)p[0]) == 'I' && (p == sql || !WORDCH(p[-1])) &&
        toupper((unsigned char)p[1]) == 'N' && toupper((unsigned char)p[2]) == 'T' &&
        toupper((unsigned char)p[3]) == 'O' && !WORDCH(p[4]))
      return 1;
  }
  return 0;
}

#undef WORDCH


/*
** The kind of raw SQL, from its first keyword only: a statement that
** starts otherwise ('WITH', 'PRAGMA', ...) is LOAM_SQL_UNKNOWN, which the
** drivers treat as a plain statement (no rowid, cached), and so is NULL.
** So is a SELECT with INTO, which writes ('loam_conn_writes'); rendered
** text never has one, so only raw text is read for it, once a call.
*/
loam_sql_kind loam__sql_classify (const char *sql) {
  size_t i;
  if (sql == NULL) return LOAM_SQL_UNKNOWN;
  for (i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
    if (loam__sql_starts_with(sql, keywords[i].kw))
      return keywords[i].kind == LOAM_SQL_SELECT && selects_into(sql) ? LOAM_SQL_UNKNOWN
                                                                       : keywords[i].kind;
  return LOAM_SQL_UNKNOWN;
}


/*
** The flags a caller of the public API may give: the internal ones (such
** as LOAM__PARAMS_HELD, which binds without copying and so is safe only
** for a statement run to its end inside one call) are never theirs.
*/
#define PUBLIC(flags) ((flags) & ~LOAM__PARAMS_HELD)


int loam_query (loam_conn *c, const char *sql, const loam_value *params, int nparams,
                int flags, loam_stmt **out, loam_error *err) {
  return loam__query(c, sql, loam__sql_classify(sql), params, nparams, PUBLIC(flags), out, err);
}


int loam_query_rendered (loam_conn *c, const loam_rendered *rs, int i, int flags,
                         loam_stmt **out, loam_error *err) {
  int np;
  const loam_value *p = loam_rendered_params(rs, i, &np);
  const char *sql = loam_rendered_sql(rs, i, NULL);
  if (out != NULL) *out = NULL;
  if (sql == NULL)
    return loam__err(err, LOAM_E_MISUSE, "loam_query_rendered: no statement %d", i);
  return loam__query(c, sql, loam_rendered_kind(rs, i), p, np, PUBLIC(flags), out, err);
}



int loam_query_rendered_with (loam_conn *c, const loam_rendered *rs, int i,
                              const loam_value *params, int nparams, int flags,
                              loam_stmt **out, loam_error *err) {
  int np;
  const char *sql = loam_rendered_sql(rs, i, NULL);
  if (out != NULL) *out = NULL;
  if (sql == NULL)
    return loam__err(err, LOAM_E_MISUSE, "loam_query_rendered_with: no statement %d", i);
  loam_rendered_params(rs, i, &np);
  if (nparams != np || (np > 0 && params == NULL))
    return loam__err(err, LOAM_E_MISUSE, "the statement takes %d parameter(s), got %d",
                     np, nparams);
  return loam__query(c, sql, loam_rendered_kind(rs, i), params, nparams, PUBLIC(flags), out,
                     err);
}

/*
** A failure here is a statement that ended at once, and is reported as
** one; its code comes from a local error when the caller passed none.
*/
int loam__query (loam_conn *c, const char *sql, loam_sql_kind kind, const loam_value *params,
                 int nparams, int flags, loam_stmt **out, loam_error *err) {
  loam_error local = LOAM_ERROR_INIT;
  loam_stmt *s = NULL;
  int64_t t0;
  if (out == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_query: 'out' is NULL");
  *out = NULL;
  if (c == NULL) return loam__err(err, LOAM_E_MISUSE, "attempt to use a closed connection");
  if (sql == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_query: SQL text is NULL");
  t0 = loam__clock_ns();
  if (err == NULL) err = &local;
  if (checkquery(c, params, nparams, err) != LOAM_OK ||
      (c->tx_depth > 0 && loam__tx_before(c, t0, err) != LOAM_OK) ||
      c->drv->query(c, sql, kind, params, nparams, flags, &s, err) != LOAM_OK) {
    loam__trace_done(c, sql, params, nparams, 0, loam__clock_ns() - t0, err->code);
    loam_error_clear(&local);
    return LOAM_ERROR;
  }
  if (kind != LOAM_SQL_SELECT) c->writes++;  /* see 'loam_conn_writes' */
  s->conn = c;
  s->state = LOAM__ST_READY;
  s->prev = NULL;
  s->next = c->stmts;
  if (c->stmts) c->stmts->prev = s;
  c->stmts = s;
  loam__trace_begin(s, sql, params, nparams, t0);
  *out = s;
  return LOAM_OK;
}


int loam_step (loam_stmt *s, loam_error *err) {
  loam_error local = LOAM_ERROR_INIT;
  int rc;
  if (s == NULL) return loam__err(err, LOAM_E_MISUSE, "attempt to use a closed statement");
  switch (s->state) {
    case LOAM__ST_DONE: return LOAM_DONE;
    case LOAM__ST_DEAD:
      return loam__err(err, LOAM_E_MISUSE, "the statement's connection was closed");
    case LOAM__ST_FAILED:
      return loam__err(err, LOAM_E_MISUSE, "the statement failed earlier; run it again");
    default: break;
  }
  rc = s->conn->drv->step(s, err != NULL ? err : &local);
  if (rc != LOAM_ROW && s->conn->streaming == s) s->conn->streaming = NULL;
  if (rc == LOAM_DONE && s->conn->tx_depth > 0 &&
      loam__tx_after(s->conn, err != NULL ? err : &local) != LOAM_OK)
    rc = LOAM_ERROR;
  if (rc == LOAM_ROW) {
    s->state = LOAM__ST_ROW;
    s->rows++;
  }
  else if (rc == LOAM_DONE) {
    s->state = LOAM__ST_DONE;
    loam__trace_end(s, LOAM_E_NONE);
  }
  else {
    s->state = LOAM__ST_FAILED;
    loam__trace_end(s, (err != NULL ? err : &local)->code);
    loam_error_clear(&local);
  }
  return rc;
}


int loam_column_count (const loam_stmt *s) {
  return s ? s->ncols : 0;
}


const char *loam_column_name (const loam_stmt *s, int i) {
  if (s == NULL || s->conn == NULL || i < 0 || i >= s->ncols) return NULL;
  return s->conn->drv->column_name(s, i);
}


int loam_column (loam_stmt *s, int i, loam_value *out) {
  if (out == NULL) return LOAM_ERROR;
  *out = loam_null();
  if (s == NULL || s->state != LOAM__ST_ROW || i < 0 || i >= s->ncols) return LOAM_ERROR;
  s->conn->drv->column(s, i, out);
  return LOAM_OK;
}


int64_t loam_stmt_changes (const loam_stmt *s) {
  return s ? s->changes : 0;
}


int loam_stmt_insert_id (const loam_stmt *s, int64_t *id) {
  if (s == NULL || !s->has_insert_id) return 0;
  if (id) *id = s->insert_id;
  return 1;
}


void loam_stmt_close (loam_stmt *s) {
  if (s == NULL) return;
  finish_stmt(s);
  free(s);
}


int loam_exec (loam_conn *c, const char *sql, const loam_value *params, int nparams,
               int64_t *changes, int64_t *id, int *has_id, loam_error *err) {
  return loam__exec(c, sql, loam__sql_classify(sql), params, nparams, changes, id, has_id, err);
}


int loam_exec_rendered (loam_conn *c, const loam_rendered *rs, int i, int64_t *changes,
                        int64_t *id, int *has_id, loam_error *err) {
  int np;
  const loam_value *p = loam_rendered_params(rs, i, &np);
  const char *sql = loam_rendered_sql(rs, i, NULL);
  if (sql == NULL)
    return loam__err(err, LOAM_E_MISUSE, "loam_exec_rendered: no statement %d", i);
  return loam__exec(c, sql, loam_rendered_kind(rs, i), p, np, changes, id, has_id, err);
}


int loam__exec (loam_conn *c, const char *sql, loam_sql_kind kind, const loam_value *params,
                int nparams, int64_t *changes, int64_t *id, int *has_id, loam_error *err) {
  loam_stmt *s;
  int rc, got_id = 0, first = 1;
  int64_t the_id = 0;
  if (loam__query(c, sql, kind, params, nparams, LOAM__PARAMS_HELD, &s, err) != LOAM_OK)
    return LOAM_ERROR;
  while ((rc = loam_step(s, err)) == LOAM_ROW) {
    loam_value v;
    if (first && s->ncols > 0 && loam_column(s, 0, &v) == LOAM_OK && v.type == LOAM_INT) {
      the_id = v.u.i;
      got_id = 1;
    }
    first = 0;
  }
  if (rc == LOAM_DONE) {
    if (!got_id) got_id = loam_stmt_insert_id(s, &the_id);
    if (changes) *changes = s->changes;
    if (id) *id = got_id ? the_id : 0;
    if (has_id) *has_id = got_id;
  }
  loam_stmt_close(s);
  return rc == LOAM_DONE ? LOAM_OK : LOAM_ERROR;
}
