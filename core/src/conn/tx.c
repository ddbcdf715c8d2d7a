/*
** tx.c: nested transactions over savepoints, the options of the outermost
** one, the hooks that run when it ends, and the watch kept on it.
**
** The connection keeps a stack of levels ('tx_depth', with one bit of
** 'tx_began' per level) so that the statement ending a level matches the
** one that opened it: only a level that sent BEGIN may send COMMIT or
** ROLLBACK, every other level owns a savepoint named after its depth.
** Whether BEGIN is possible is asked of the driver each time rather than
** remembered, since the caller may have opened or ended a transaction
** with raw SQL in between; for the same reason every statement run while
** a level is open asks the driver whether the transaction is still there
** ('loam__tx_before', 'loam__tx_after'), so that a raw COMMIT cannot leave
** the statements after it in autocommit.  The statements themselves are
** the dialect's (dialect.c).
**
** On a driver that 'defers_begin' (PostgreSQL) the outermost BEGIN is only
** recorded ('tx_pending') and goes out with the transaction's first
** statement, in the same round trip; the driver counts it as an open
** transaction meanwhile, so every check above reads the same, and a
** transaction that ran nothing commits or rolls back without a word to
** the server.
**
** Hooks ('loam_tx_on_end') are kept in registration order with the depth
** they belong to.  Since a hook can only be registered at the innermost
** level, which is the deepest, depths never decrease along the list: the
** hooks of a level and of those inside it are always its tail.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn/conn_int.h"
#include "sql/dialect_int.h"


_Static_assert(LOAM_TX_MAX_DEPTH <= 32, "one bit of 'tx_began' per level");

typedef struct loam__txhook {
  loam_tx_end_fn fn;
  void *ud;
  int depth;
} loam__txhook;

static const char *const level_names[] = {
  "the default", "read committed", "repeatable read", "serializable"
};


static int check (loam_conn *c, int needlevel, const char *fname, loam_error *err) {
  if (c == NULL || c->tx_closed)
    return loam__err(err, LOAM_E_MISUSE, "attempt to use a closed connection");
  if (needlevel && c->tx_depth == 0)
    return loam__err(err, LOAM_E_MISUSE, "%s: no transaction open (call loam_tx_begin first)",
                     fname);
  return LOAM_OK;
}


/* Whether the innermost level sent BEGIN. */
static int top_began (const loam_conn *c) {
  return (int)((c->tx_began >> (c->tx_depth - 1)) & 1u);
}


/* Whether levels are open on a connection no longer inside a transaction. */
static int lost (loam_conn *c) {
  return c->tx_depth > 0 && c->drv->in_transaction(c) == LOAM__TX_NONE;
}


/* " (started at TAG)", or nothing without a tag. */
static const char *started_at (loam_conn *c, char *buf, size_t size) {
  if (c->tx_tag[0] == '\0') return "";
  snprintf(buf, size, " (started at %s)", c->tx_tag);
  return buf;
}


static int lost_error (loam_conn *c, int this_one, loam_error *err) {
  char at[120];
  if (this_one)
    return loam__err(err, LOAM_E_MISUSE,
                     "this statement ended the transaction that db:transaction (loam_tx_begin) "
                     "opened%s: what ran in it before was committed or rolled back with it, and "
                     "every statement after it is refused until the level is rolled back; end "
                     "the transaction by returning from the function (loam_tx_commit), not with "
                     "raw COMMIT or ROLLBACK", started_at(c, at, sizeof at));
  return loam__err(err, LOAM_E_MISUSE,
                   "the transaction that db:transaction (loam_tx_begin) opened%s has ended under "
                   "it (a raw COMMIT or ROLLBACK, or the backend rolled it back): this statement "
                   "would run in autocommit; roll the level back first",
                   started_at(c, at, sizeof at));
}


/*
** Runs one of tx.c's own statements, which the checks on statements leave
** alone: as the driver's simple query when it has one (a prepared
** statement costs the statement cache, a statement object and its
** result's description, three times what BEGIN itself costs libpq).
*/
static int run (loam_conn *c, const char *sql, loam_error *err) {
  int rc;
  c->tx_internal++;
  if (c->drv->exec_tx != NULL) rc = c->drv->exec_tx(c, sql, err);
  else rc = loam__exec(c, sql, LOAM_SQL_TX, NULL, 0, NULL, NULL, NULL, err);
  c->tx_internal--;
  return rc;
}


/* Runs "<verb> loam_sp_<depth>": the savepoint of the level at that depth. */
static int savepoint (loam_conn *c, const char *verb, int depth, loam_error *err) {
  loam__buf sql = LOAM__BUF_INIT;
  int rc;
  loam__buf_adds(&sql, verb);
  loam__buf_adds(&sql, " loam_sp_");
  loam__buf_int(&sql, depth);
  if (loam__buf_cstr(&sql) == NULL) rc = loam__err_nomem(err);
  else rc = run(c, sql.p, err);
  loam__buf_free(&sql);
  return rc;
}


static void pop (loam_conn *c) {
  c->tx_depth--;
  c->tx_began &= ~((uint32_t)1 << c->tx_depth);
}


/* {======================================================================
** Reports and hooks
** ======================================================================= */

static void report (loam_conn *c, const char *msg) {
  if (c->tx_log != NULL) c->tx_log(c->tx_log_ud, msg);
  else fprintf(stderr, "loam: %s\n", msg);
}


/* Reports the transaction once it is older than its threshold; 'how' says how it ended. */
static void watch (loam_conn *c, int64_t now, const char *how) {
  char msg[256], at[120];
  int64_t age = now - c->tx_started_ns;
  if (c->tx_warn_ns <= 0 || c->tx_warned || age < c->tx_warn_ns) return;
  c->tx_warned = 1;
  if (how == NULL)
    snprintf(msg, sizeof msg, "a transaction has been open for %lld ms%s and is still running "
             "statements", (long long)(age / 1000000), started_at(c, at, sizeof at));
  else
    snprintf(msg, sizeof msg, "a transaction was open for %lld ms%s before it %s",
             (long long)(age / 1000000), started_at(c, at, sizeof at), how);
  report(c, msg);
}


void loam__tx_enter (loam_conn *c) {
  c->tx_busy++;
}


int loam__tx_leave (loam_conn *c) {
  if (!c->tx_closed) {
    c->tx_busy--;
    return 0;
  }
  if (--c->tx_busy == 0) free(c);
  return 1;
}


/*
** Calls, in order, the hooks of levels 'depth' and deeper with 'outcome',
** each taken off the list before its call, so that a hook may run
** statements and register hooks of a new transaction.  Returns 1 when a
** hook closed the connection: the caller must not touch it any more.
*/
static int fire (loam_conn *c, int depth, loam_tx_outcome outcome) {
  for (;;) {
    loam__txhook h;
    int i;
    for (i = 0; i < c->tx_nhooks && c->tx_hooks[i].depth < depth; i++) {}
    if (i == c->tx_nhooks) return 0;
    h = c->tx_hooks[i];
    memmove(&c->tx_hooks[i], &c->tx_hooks[i + 1], sizeof h * (size_t)(c->tx_nhooks - i - 1));
    c->tx_nhooks--;
    loam__tx_enter(c);
    h.fn(h.ud, c, outcome);
    if (loam__tx_leave(c)) return 1;
  }
}


/* SQLite: turns 'query_only' off again after a read-only transaction. */
static void writable (loam_conn *c) {
  loam_error ignored = LOAM_ERROR_INIT;
  if (!c->tx_query_only) return;
  c->tx_query_only = 0;
  run(c, loam__dialect(c->backend)->query_only_off, &ignored);
  loam_error_clear(&ignored);
}


/* The outermost level ended: what was set for it goes, the report and the hooks run. */
static void ended (loam_conn *c, loam_tx_outcome outcome) {
  writable(c);
  watch(c, loam__clock_ns(), outcome == LOAM_TX_COMMITTED ? "committed" : "rolled back");
  c->tx_warn_ns = 0;
  fire(c, 1, outcome);
}


int loam__tx_before (loam_conn *c, int64_t now, loam_error *err) {
  if (c->tx_internal) return LOAM_OK;
  if (lost(c)) return lost_error(c, 0, err);
  watch(c, now, NULL);
  return LOAM_OK;
}


int loam__tx_after (loam_conn *c, loam_error *err) {
  if (c->tx_internal || !lost(c)) return LOAM_OK;
  return lost_error(c, 1, err);
}


void loam__tx_end_all (loam_conn *c, int closing) {
  if (closing) c->tx_query_only = 0;
  else writable(c);
  c->tx_warn_ns = 0;
  if (fire(c, 0, LOAM_TX_ROLLED_BACK)) return;   /* a hook closed it: the hooks went with it */
  free(c->tx_hooks);
  c->tx_hooks = NULL;
  c->tx_nhooks = c->tx_caphooks = 0;
}


int loam_tx_on_end (loam_conn *c, loam_tx_end_fn fn, void *ud, loam_error *err) {
  if (check(c, 1, "after_commit / after_rollback (loam_tx_on_end)", err) != LOAM_OK)
    return LOAM_ERROR;
  if (fn == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_tx_on_end: the hook is NULL");
  if (lost(c)) return lost_error(c, 0, err);
  if (!(c->tx_began & 1u))
    return loam__err(err, LOAM_E_MISUSE, "after_commit / after_rollback: the transaction was "
                     "begun with raw SQL, so loam cannot tell when it commits; begin it with "
                     "db:transaction (loam_tx_begin)");
  if (c->tx_nhooks == c->tx_caphooks) {
    int cap = c->tx_caphooks ? c->tx_caphooks * 2 : 8;
    loam__txhook *h = realloc(c->tx_hooks, sizeof *h * (size_t)cap);
    if (h == NULL) return loam__err_nomem(err);
    c->tx_hooks = h;
    c->tx_caphooks = cap;
  }
  c->tx_hooks[c->tx_nhooks].fn = fn;
  c->tx_hooks[c->tx_nhooks].ud = ud;
  c->tx_hooks[c->tx_nhooks].depth = c->tx_depth;
  c->tx_nhooks++;
  return LOAM_OK;
}

/* }====================================================================== */


/* {======================================================================
** Levels
** ======================================================================= */

/* Checks the options of a level that 'began' or not; 'fname' names the caller. */
static int check_opts (loam_conn *c, const loam_tx_opts *o, int began, const char *fname,
                       loam_error *err) {
  if (o->isolation < 0 || o->isolation > LOAM_SERIALIZABLE)
    return loam__err(err, LOAM_E_MISUSE, "%s: unknown isolation level %d", fname, o->isolation);
  if (o->warn_after_ms < 0)
    return loam__err(err, LOAM_E_MISUSE, "%s: warn_after_ms must be 0 (never) or milliseconds, "
                     "got %d", fname, o->warn_after_ms);
  if (!began && (o->isolation != LOAM_ISOLATION_DEFAULT || o->read_only ||
                 o->warn_after_ms > 0 || o->log != NULL))
    return loam__err(err, LOAM_E_MISUSE, "isolation, read_only, warn_after_ms and log belong to "
                     "the outermost transaction, and this one would be a savepoint inside an open "
                     "transaction");
  if (loam__dialect(c->backend)->isolation[o->isolation] == NULL)
    return loam__err(err, LOAM_E_MISUSE, "SQLite runs every transaction serializable and "
                     "cannot give %s isolation; ask for serializable or leave it out",
                     level_names[o->isolation]);
  return LOAM_OK;
}


/*
** The BEGIN of a driver that sends it with the first statement, recorded
** in 'tx_pending'.  The server takes a transaction's snapshot at its
** first statement, not at BEGIN, so waiting changes nothing it sees; the
** dialect's texts fit 'tx_begin_sql' (checked, so a longer one is sent at
** once instead).
*/
static int defer (loam_conn *c, const char *sql) {
  size_t n = strlen(sql);
  if (n >= sizeof c->tx_begin_sql) return 0;
  memcpy(c->tx_begin_sql, sql, n + 1);
  loam__tx_pend(c, c->tx_begin_sql);
  return 1;
}


/* BEGIN with the options, and SQLite's 'query_only' for a read-only transaction. */
static int begin (loam_conn *c, const loam_tx_opts *o, loam_error *err) {
  const loam__dialect_desc *d = loam__dialect(c->backend);
  loam__buf sql = LOAM__BUF_INIT;
  int rc;
  /* The plain BEGIN, most transactions' own, as the dialect writes it. */
  if (!o->read_only && d->isolation[o->isolation][0] == '\0') {
    if (!c->drv->defers_begin) return run(c, d->begin, err);
    loam__tx_pend(c, d->begin);
    return LOAM_OK;
  }
  loam__buf_adds(&sql, o->read_only && d->read_only == NULL ? d->begin_read : d->begin);
  loam__buf_adds(&sql, d->isolation[o->isolation]);
  if (o->read_only && d->read_only != NULL) loam__buf_adds(&sql, d->read_only);
  if (loam__buf_cstr(&sql) == NULL) rc = loam__err_nomem(err);
  else if (c->drv->defers_begin && d->read_only != NULL && defer(c, sql.p)) rc = LOAM_OK;
  else rc = run(c, sql.p, err);
  loam__buf_free(&sql);
  if (rc == LOAM_OK && o->read_only && d->read_only == NULL) {
    if ((rc = run(c, d->query_only_on, err)) == LOAM_OK) c->tx_query_only = 1;
    else {
      loam_error ignored = LOAM_ERROR_INIT;
      run(c, d->rollback, &ignored);
      loam_error_clear(&ignored);
    }
  }
  return rc;
}


int loam__tx_begin (loam_conn *c, const loam_tx_opts *o, const char *fname, loam_error *err) {
  int began;
  if (check(c, 0, fname, err) != LOAM_OK) return LOAM_ERROR;
  if (c->tx_depth >= LOAM_TX_MAX_DEPTH)
    return loam__err(err, LOAM_E_MISUSE, "%s: transactions nested deeper than %d levels",
                     fname, LOAM_TX_MAX_DEPTH);
  if (lost(c)) return lost_error(c, 0, err);
  began = c->drv->in_transaction(c) == LOAM__TX_NONE;
  if (check_opts(c, o, began, fname, err) != LOAM_OK) return LOAM_ERROR;
  if (began) {
    if (begin(c, o, err) != LOAM_OK) return LOAM_ERROR;
    c->tx_began |= (uint32_t)1 << c->tx_depth;
  }
  else if (savepoint(c, loam__dialect(c->backend)->savepoint, c->tx_depth + 1, err) != LOAM_OK)
    return LOAM_ERROR;
  if (c->tx_depth == 0) {
    /* The outermost level: what it is watched by and named with. */
    c->tx_started_ns = loam__clock_ns();
    c->tx_warned = 0;
    c->tx_warn_ns = (int64_t)o->warn_after_ms * 1000000;
    c->tx_log = o->log;
    c->tx_log_ud = o->log_ud;
    /* By hand: snprintf would cost a tenth of the statement BEGIN is. */
    size_t n = o->tag != NULL ? strlen(o->tag) : 0;
    if (n >= sizeof c->tx_tag) n = sizeof c->tx_tag - 1;
    if (n > 0) memcpy(c->tx_tag, o->tag, n);
    c->tx_tag[n] = '\0';
  }
  c->tx_depth++;
  return LOAM_OK;
}


int loam_tx_begin (loam_conn *c, loam_error *err) {
  static const loam_tx_opts none = LOAM_TX_OPTS_INIT;
  return loam__tx_begin(c, &none, "loam_tx_begin", err);
}


int loam_tx_begin_with (loam_conn *c, const loam_tx_opts *o, loam_error *err) {
  static const loam_tx_opts none = LOAM_TX_OPTS_INIT;
  if (o == NULL) o = &none;
  if (o->retry_attempts > 1)
    return loam__err(err, LOAM_E_MISUSE, "loam_tx_begin_with: retrying re-runs the whole "
                     "transaction: use loam_tx_run");
  return loam__tx_begin(c, o, "loam_tx_begin_with", err);
}


int loam_tx_commit (loam_conn *c, loam_error *err) {
  int state, rc;
  if (check(c, 1, "loam_tx_commit", err) != LOAM_OK) return LOAM_ERROR;
  state = c->drv->in_transaction(c);
  if (state == LOAM__TX_NONE)
    return loam__err(err, LOAM_E_MISUSE,
                     "loam_tx_commit: the transaction already ended (a COMMIT or ROLLBACK "
                     "in raw SQL?); roll this level back");
  /* PostgreSQL answers COMMIT in a failed transaction by rolling back and
  ** reporting success: the caller would believe its work was kept. */
  if (state == LOAM__TX_FAILED)
    return loam__err(err, LOAM_E_TRANSACTION_ABORTED,
                     "loam_tx_commit: a statement failed in this transaction; roll it back");
  if (top_began(c) && c->tx_pending != NULL) {
    /* Nothing reached the server: there is nothing to commit. */
    loam__tx_pend(c, NULL);
    rc = LOAM_OK;
  }
  else if (top_began(c))
    rc = run(c, loam__dialect(c->backend)->commit, err);
  else
    rc = savepoint(c, loam__dialect(c->backend)->release, c->tx_depth, err);
  if (rc != LOAM_OK) return LOAM_ERROR;
  pop(c);
  if (c->tx_depth == 0) ended(c, LOAM_TX_COMMITTED);
  else {
    /* The released savepoint's hooks now wait for the level around it. */
    int i;
    for (i = 0; i < c->tx_nhooks; i++)
      if (c->tx_hooks[i].depth > c->tx_depth) c->tx_hooks[i].depth = c->tx_depth;
  }
  return LOAM_OK;
}


int loam_tx_rollback (loam_conn *c, loam_error *err) {
  int rc = LOAM_OK, depth;
  if (check(c, 1, "loam_tx_rollback", err) != LOAM_OK) return LOAM_ERROR;
  /* Without a transaction the level's work ended with it: nothing to undo here. */
  if (c->drv->in_transaction(c) != LOAM__TX_NONE) {
    const loam__dialect_desc *d = loam__dialect(c->backend);
    if (top_began(c) && c->tx_pending != NULL)
      loam__tx_pend(c, NULL);   /* nothing reached the server: nothing to undo */
    else if (top_began(c))
      rc = run(c, d->rollback, err);
    else if ((rc = savepoint(c, d->rollback_to, c->tx_depth, err)) == LOAM_OK)
      /* ROLLBACK TO keeps the savepoint; releasing it ends the level for good. */
      rc = savepoint(c, d->release, c->tx_depth, err);
  }
  depth = c->tx_depth;
  pop(c);
  if (c->tx_depth == 0) ended(c, LOAM_TX_ROLLED_BACK);
  else fire(c, depth, LOAM_TX_ROLLED_BACK);
  return rc;
}

/* }====================================================================== */
