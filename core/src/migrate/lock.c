/*
** lock.c: one migrator at a time.
**
** The lock is a lease: one row of LOAM_MIGRATION_LOCK_TABLE naming its
** owner and when the lease ends, taken and renewed by short statements
** and released by deleting the row.  Why a row and not PostgreSQL's
** advisory locks: pg_advisory_lock belongs to a server session, and
** PgBouncer in transaction mode gives a client a server connection for one
** transaction only, so a session lock would stay with a connection that
** serves other clients (and be released, or held forever, behind our
** back); pg_advisory_xact_lock holds only until the end of one
** transaction, while a run spans many (non-transactional steps run
** outside any).  A row is plain data: it means the same through any proxy
** and on SQLite.  The lease ends by itself when a migrator dies, after
** 'lock_ttl_ms'; a live one renews it inside each migration's own
** transaction, which also holds the row's write lock until that commits,
** so no other migrator can take over a lease in the middle of a migration.
** The history table's key on version is the last line: a migration can
** never be recorded twice, and the runner checks the history again inside
** each migration's transaction.
**
** Lease times are the migrator's wall clock in milliseconds; migrators on
** hosts whose clocks disagree by more than the lease would misjudge it,
** which a lease of minutes makes unlikely.
*/
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "migrate/migrate_int.h"


static int64_t now_ms (void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


void loam__sleep_ms (int ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}


/* Takes the lease when it is free or has ended; '*got' says whether we hold it now. */
static int try_take (loam_conn *c, const char *owner, int ttl, int *got, char *holder,
                     size_t hsize, int64_t *until, loam_error *err) {
  int64_t t = now_ms();
  loam_value p[3];
  loam_stmt *st = NULL;
  loam_value v;
  int rc;
  p[0] = loam_text(owner, strlen(owner));
  p[1] = loam_int(t + ttl);
  p[2] = loam_int(t);
  rc = loam_exec(c, "INSERT INTO " LOAM_MIGRATION_LOCK_TABLE " (id, owner, expires_at) "
                 "VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, "
                 "expires_at = excluded.expires_at WHERE "
                 LOAM_MIGRATION_LOCK_TABLE ".expires_at < ?", p, 3, NULL, NULL, NULL, err);
  if (rc != LOAM_OK) return rc;
  rc = loam_query(c, "SELECT owner, expires_at FROM " LOAM_MIGRATION_LOCK_TABLE " WHERE id = 1",
                  NULL, 0, 0, &st, err);
  if (rc != LOAM_OK) return rc;
  *got = 0;
  if ((rc = loam_step(st, err)) == LOAM_ROW) {
    if (loam_column(st, 0, &v) == LOAM_OK && v.type == LOAM_TEXT) {
      *got = strcmp(v.u.s.ptr, owner) == 0;
      snprintf(holder, hsize, "%s", v.u.s.ptr);
    }
    if (loam_column(st, 1, &v) == LOAM_OK && v.type == LOAM_INT) *until = v.u.i;
    rc = LOAM_OK;
  }
  else if (rc == LOAM_DONE) rc = LOAM_OK;
  loam_stmt_close(st);
  return rc;
}


int loam__lock_take (loam_conn *c, const char *owner, int ttl_ms, int wait_ms, loam_error *err) {
  int64_t deadline = now_ms() + wait_ms, until = 0;
  int backoff = 20, got = 0;
  char holder[200] = "";
  for (;;) {
    if (try_take(c, owner, ttl_ms, &got, holder, sizeof holder, &until, err) != LOAM_OK) {
      /* On SQLite the holder keeps the database's write lock for as long as
      ** a migration's transaction runs, which may outlast busy_timeout:
      ** that is the lock being held, to be waited for like the lease. */
      if (err == NULL || err->code != LOAM_E_BUSY) return LOAM_ERROR;
      if (now_ms() >= deadline)
        return loam__err(err, LOAM_E_LOCKED, "another migrator holds the migration lock: the "
                         "database stayed locked by its migration (waited %d ms)", wait_ms);
      loam_error_clear(err);
      loam__sleep_ms(backoff);
      if (backoff < 500) backoff *= 2;
      continue;
    }
    if (got) return LOAM_OK;
    if (now_ms() >= deadline) break;
    loam__sleep_ms(backoff);
    if (backoff < 500) backoff *= 2;
  }
  return loam__err(err, LOAM_E_LOCKED, "another migrator holds the migration lock: '%.150s', "
                   "whose lease ends in %lld ms (waited %d ms)", holder,
                   (long long)(until - now_ms()), wait_ms);
}


int loam__lock_renew (loam_conn *c, const char *owner, int ttl_ms, loam_error *err) {
  loam_value p[2];
  int64_t changes = 0;
  p[0] = loam_int(now_ms() + ttl_ms);
  p[1] = loam_text(owner, strlen(owner));
  if (loam_exec(c, "UPDATE " LOAM_MIGRATION_LOCK_TABLE " SET expires_at = ? WHERE id = 1 "
                "AND owner = ?", p, 2, &changes, NULL, NULL, err) != LOAM_OK)
    return LOAM_ERROR;
  if (changes != 1)
    return loam__err(err, LOAM_E_LOCKED, "the migration lock was lost: its lease ended and "
                     "another migrator took it");
  return LOAM_OK;
}


void loam__lock_release (loam_conn *c, const char *owner) {
  loam_value p = loam_text(owner, strlen(owner));
  loam_exec(c, "DELETE FROM " LOAM_MIGRATION_LOCK_TABLE " WHERE id = 1 AND owner = ?", &p, 1,
            NULL, NULL, NULL, NULL);
}


/* A name for this migrator, unique among those running: 'who', the pid and the clock. */
void loam__lock_owner (char *buf, size_t size, const char *who) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  if (who != NULL)
    snprintf(buf, size, "%.150s (pid %ld, #%lx%lx)", who, (long)getpid(), (long)ts.tv_sec,
             (long)ts.tv_nsec);
  else
    snprintf(buf, size, "pid %ld (#%lx%lx)", (long)getpid(), (long)ts.tv_sec, (long)ts.tv_nsec);
}
