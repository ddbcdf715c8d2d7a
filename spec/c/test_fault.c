/*
** test_fault.c: the core when a PostgreSQL session is ended by the server.
**
** A second connection ends the session under test with
** pg_terminate_backend (waiting until it is gone), in the middle of a
** streamed result and inside a transaction before COMMIT.  The core must
** report LOAM_E_CONNECTION_FAILED at the step or the commit that meets
** the dead session, nothing the transaction wrote may remain, every later
** use must fail the same way, and closing must free everything (the
** sanitizer build checks that).  The Lua-level counterparts, a server
** restart and the SQLite faults are in spec/fault_spec.lua.
*/
#include <stdio.h>
#include <string.h>

#include "loam.h"
#include "t.h"


/* Opens 'c' on the test cluster or fails the test: PostgreSQL tests never skip. */
#define OPEN(c, e) \
  loam_conn *c = NULL; \
  do { \
    const char *url_ = t_pg_url(); \
    if (url_ == NULL) { \
      t_fail(__FILE__, __LINE__, "LOAM_TEST_PG is not set; the PostgreSQL tests need a server"); \
      return; \
    } \
    CHECK_OK(loam_connect(url_, NULL, &c, (e)), (e)); \
  } while (0)


TEST(fault_pg_terminated_mid_stream) {
  loam_error e = LOAM_ERROR_INIT;
  loam_stmt *s = NULL;
  int64_t pid;
  int n = 0, rc;
  OPEN(admin, &e);
  OPEN(c, &e);
  pid = t_scalar(c, "SELECT pg_backend_pid()");
  CHECK(pid > 0);
  CHECK_OK(loam_query(c, "SELECT g FROM generate_series(1, 2000000) g", NULL, 0, LOAM_STREAM,
                      &s, &e), &e);
  CHECK_INT(loam_step(s, &e), LOAM_ROW);
  CHECK(t_pg_terminate(admin, pid));
  while ((rc = loam_step(s, &e)) == LOAM_ROW) n++;
  CHECK_INT(rc, LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_CONNECTION_FAILED);
  CHECK(n < 2000000 - 1);
  loam_stmt_close(s);
  CHECK(loam_query(c, "SELECT 1", NULL, 0, 0, &s, &e) == LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_CONNECTION_FAILED);
  CHECK_HAS(e.message, "connection to the server was lost");
  loam_conn_close(c);
  loam_conn_close(admin);
  loam_error_clear(&e);
}


TEST(fault_pg_terminated_before_commit) {
  loam_error e = LOAM_ERROR_INIT;
  int64_t pid;
  OPEN(admin, &e);
  OPEN(c, &e);
  CHECK_OK(loam_exec(admin, "DROP TABLE IF EXISTS fault_c_items", NULL, 0, NULL, NULL, NULL,
                     &e), &e);
  CHECK_OK(loam_exec(admin, "CREATE TABLE fault_c_items (id integer PRIMARY KEY)", NULL, 0,
                     NULL, NULL, NULL, &e), &e);
  pid = t_scalar(c, "SELECT pg_backend_pid()");
  CHECK(pid > 0);
  CHECK_OK(loam_tx_begin(c, &e), &e);
  CHECK_OK(loam_exec(c, "INSERT INTO fault_c_items VALUES (1), (2)", NULL, 0, NULL, NULL, NULL,
                     &e), &e);
  CHECK(t_pg_terminate(admin, pid));
  CHECK_INT(loam_tx_commit(c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_CONNECTION_FAILED);
  /* The level stays open for the caller to end, and ending it ends it, whatever it reports. */
  if (loam_tx_rollback(c, &e) != LOAM_OK) CHECK_INT(e.code, LOAM_E_CONNECTION_FAILED);
  CHECK_INT(loam_tx_rollback(c, &e), LOAM_ERROR);
  CHECK_INT(e.code, LOAM_E_MISUSE);
  CHECK_INT(t_scalar(admin, "SELECT count(*) FROM fault_c_items"), 0);
  CHECK_OK(loam_exec(admin, "DROP TABLE fault_c_items", NULL, 0, NULL, NULL, NULL, &e), &e);
  loam_conn_close(c);
  loam_conn_close(admin);
  loam_error_clear(&e);
}
