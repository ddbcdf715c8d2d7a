/*
** txrun.c: a transaction run as a whole, retried when it lost to another.
**
** Serialization failures, deadlocks and SQLite's busy are the failures
** that running the same transaction again can cure: the other side has
** gone by then.  Only the whole transaction can be run again (on
** PostgreSQL the failure aborted it, and a savepoint would only repeat
** the conflict inside it), so 'loam_tx_run' owns the outermost level.
** Between attempts the thread sleeps a backoff that doubles up to a cap
** and loses a random part of up to half, so that two transactions that
** collided do not collide again at the same moment.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn/conn_int.h"

#define DEFAULT_BASE_MS 10
#define DEFAULT_MAX_MS 1000


static int retryable (loam_errcode code) {
  return code == LOAM_E_SERIALIZATION_FAILURE || code == LOAM_E_DEADLOCK || code == LOAM_E_BUSY;
}


static int check_retry (const loam_tx_opts *o, loam_error *err) {
  if (o->retry_attempts < 0 || o->retry_attempts > 1000)
    return loam__err(err, LOAM_E_MISUSE, "loam_tx_run: retry attempts must be 1..1000, got %d",
                     o->retry_attempts);
  if (o->retry_base_ms < -1 || o->retry_base_ms > 60000)
    return loam__err(err, LOAM_E_MISUSE, "loam_tx_run: retry base_ms must be 0..60000, got %d",
                     o->retry_base_ms);
  if (o->retry_max_ms < -1 || o->retry_max_ms > 600000)
    return loam__err(err, LOAM_E_MISUSE, "loam_tx_run: retry max_ms must be 0..600000, got %d",
                     o->retry_max_ms);
  return LOAM_OK;
}


/* One attempt: begin, the body, commit; anything that failed is rolled back. */
static int attempt (loam_conn *c, const loam_tx_opts *o, loam_tx_body body, void *ud,
                    loam_error *err) {
  loam_error ignored = LOAM_ERROR_INIT;
  int depth = c->tx_depth;
  int rc;
  if (loam__tx_begin(c, o, "loam_tx_run", err) != LOAM_OK) return LOAM_ERROR;
  rc = body(ud, c, err);
  if (c->tx_closed) {
    /* The body closed the connection, and the backend rolled back. */
    if (rc == LOAM_OK || err->code == LOAM_E_NONE)
      loam__err(err, LOAM_E_MISUSE, "the connection was closed inside the transaction; nothing "
                "was committed");
    return LOAM_ERROR;
  }
  if (rc == LOAM_OK) {
    if (c->tx_depth != depth + 1)
      loam__err(err, LOAM_E_MISUSE, "loam_tx_run: the body left %d level(s) open",
                c->tx_depth - depth - 1);
    else if (loam_tx_commit(c, err) == LOAM_OK) return LOAM_OK;
  }
  else if (err->code == LOAM_E_NONE)
    loam__err(err, LOAM_E_MISUSE, "loam_tx_run: the body failed without an error");
  while (!c->tx_closed && c->tx_depth > depth) loam_tx_rollback(c, &ignored);
  loam_error_clear(&ignored);
  return LOAM_ERROR;
}


static void sleep_ms (int64_t ms) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)(ms % 1000) * 1000000;
  while (nanosleep(&ts, &ts) != 0) {}
}


int loam_tx_run (loam_conn *c, const loam_tx_opts *o, loam_tx_body body, void *ud,
                 int *attempts, loam_error *err) {
  static const loam_tx_opts none = LOAM_TX_OPTS_INIT;
  loam_error local = LOAM_ERROR_INIT;
  int max, n = 0, rc;
  int64_t base, cap;
  uint64_t rng;
  if (attempts != NULL) *attempts = 0;
  if (o == NULL) o = &none;
  if (c == NULL) return loam__err(err, LOAM_E_MISUSE, "attempt to use a closed connection");
  if (body == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_tx_run: the body is NULL");
  if (check_retry(o, err) != LOAM_OK) return LOAM_ERROR;
  max = o->retry_attempts > 1 ? o->retry_attempts : 1;
  base = o->retry_base_ms >= 0 ? o->retry_base_ms : DEFAULT_BASE_MS;
  cap = o->retry_max_ms >= 0 ? o->retry_max_ms : DEFAULT_MAX_MS;
  if (cap < base)
    return loam__err(err, LOAM_E_MISUSE, "loam_tx_run: retry max_ms (%lld) is below base_ms "
                     "(%lld)", (long long)cap, (long long)base);
  if (max > 1 && (c->tx_depth > 0 || c->drv->in_transaction(c) != LOAM__TX_NONE))
    return loam__err(err, LOAM_E_MISUSE, "retry belongs to the outermost transaction, and one "
                     "is open: a savepoint cannot undo what made it fail");
  rng = (uint64_t)loam__clock_ns() ^ (uint64_t)(uintptr_t)c;
  /* Busy while it runs: a body or a hook that closes the connection leaves it to be freed here. */
  loam__tx_enter(c);
  for (;;) {
    int64_t wait;
    n++;
    loam_error_clear(&local);
    if ((rc = attempt(c, o, body, ud, &local)) == LOAM_OK) break;
    if (c->tx_closed || n >= max || !retryable(local.code)) break;
    wait = base << (n - 1 < 20 ? n - 1 : 20);
    if (wait > cap || wait < base) wait = cap;
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    wait -= (int64_t)(rng % (uint64_t)(wait / 2 + 1));
    sleep_ms(wait);
  }
  loam__tx_leave(c);
  if (attempts != NULL) *attempts = n;
  if (rc != LOAM_OK && n > 1 && local.message != NULL) {
    /* The last attempt's error, saying how many ran. */
    loam__buf b = LOAM__BUF_INIT;
    char *m;
    if (retryable(local.code)) loam__buf_addf(&b, "%s (gave up after %d attempts)", local.message, n);
    else loam__buf_addf(&b, "%s (at attempt %d)", local.message, n);
    if (loam__buf_cstr(&b) != NULL && (m = loam__strdup(b.p)) != NULL) {
      free(local.message);
      local.message = m;
    }
    loam__buf_free(&b);
  }
  if (err != NULL) {
    loam_error_clear(err);
    *err = local;
  }
  else loam_error_clear(&local);
  return rc;
}
