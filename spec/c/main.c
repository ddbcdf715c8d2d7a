/*
** main.c: the runner of the C test suite.
**
** Runs every registered test, or those whose name contains argv[1], prints
** one line per test and closes with "N passed, N failed".  Exit status is
** non-zero when any test failed.
*/
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "t.h"

static t_case *cases, **lastcase = &cases;
static int current_failed;
static char tmpdir[256];

void t_register (t_case *c) {
  *lastcase = c;
  lastcase = &c->next;
}

void t_fail (const char *file, int line, const char *fmt, ...) {
  va_list ap;
  if (current_failed) return;
  current_failed = 1;
  printf("    %s:%d: ", file, line);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
}

int t_failed (void) {
  return current_failed;
}

const char *t_pg_url (void) {
  const char *u = getenv("LOAM_TEST_PG");
  if (u == NULL || *u == '\0') return NULL;
  return u;
}

const char *t_tmpdir (void) {
  if (tmpdir[0] == '\0') {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/loam-ctest.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) { perror("mkdtemp"); exit(2); }
  }
  return tmpdir;
}

int64_t t_scalar (loam_conn *c, const char *sql) {
  loam_stmt *s;
  loam_value v;
  int64_t r = -1;
  if (loam_query(c, sql, NULL, 0, 0, &s, NULL) != LOAM_OK) return -1;
  if (loam_step(s, NULL) == LOAM_ROW && loam_column(s, 0, &v) == LOAM_OK) {
    if (v.type == LOAM_INT) r = v.u.i;
    else if (v.type == LOAM_BOOL) r = v.u.b;
  }
  loam_stmt_close(s);
  return r;
}


const char *t_url (int pg, const char *name) {
  static char buf[4][512];
  static int next;
  char *b = buf[next++ % 4];
  if (pg) {
    const char *u = t_pg_url();
    if (u == NULL) {
      t_fail(__FILE__, __LINE__, "LOAM_TEST_PG is not set; the PostgreSQL tests need a server");
      return NULL;
    }
    snprintf(b, sizeof buf[0], "%s&application_name=%s", u, name);
  }
  else snprintf(b, sizeof buf[0], "sqlite:%s/%s.db", t_tmpdir(), name);
  return b;
}


const char *t_fresh_url (loam_backend be, const char *tag) {
  static char url[1024];
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *c = NULL;
  char sql[200];
  if (be == LOAM_SQLITE) {
    snprintf(url, sizeof url, "%s/%s.db", t_tmpdir(), tag);
    unlink(url);
    snprintf(url, sizeof url, "sqlite:%s/%s.db", t_tmpdir(), tag);
    return url;
  }
  if (t_pg_url() == NULL) return NULL;
  if (loam_connect(t_pg_url(), NULL, &c, &err) != LOAM_OK) return NULL;
  snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS loam_mig_%s CASCADE", tag);
  loam_exec(c, sql, NULL, 0, NULL, NULL, NULL, &err);
  snprintf(sql, sizeof sql, "CREATE SCHEMA loam_mig_%s", tag);
  loam_exec(c, sql, NULL, 0, NULL, NULL, NULL, &err);
  loam_conn_close(c);
  loam_error_clear(&err);
  snprintf(url, sizeof url, "%s%soptions=-csearch_path%%3Dloam_mig_%s", t_pg_url(),
           strchr(t_pg_url(), '?') != NULL ? "&" : "?", tag);
  return url;
}


void t_sleep_ms (int ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000;
  nanosleep(&ts, NULL);
}


int t_pg_terminate (loam_conn *admin, int64_t pid) {
  loam_value p = loam_int(pid);
  loam_stmt *s;
  loam_value v;
  int ok = 0;
  if (loam_query(admin, "SELECT pg_terminate_backend(CAST($1 AS integer), 10000)", &p, 1, 0,
                 &s, NULL) != LOAM_OK)
    return 0;
  if (loam_step(s, NULL) == LOAM_ROW && loam_column(s, 0, &v) == LOAM_OK &&
      v.type == LOAM_BOOL)
    ok = v.u.b;
  loam_stmt_close(s);
  return ok;
}


int main (int argc, char **argv) {
  int passed = 0, failed = 0;
  t_case *c;
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (c = cases; c != NULL; c = c->next) {
    if (argc > 1 && strstr(c->name, argv[1]) == NULL) continue;
    current_failed = 0;
    c->fn();
    if (current_failed) { failed++; printf("FAIL %s (%s)\n", c->name, c->file); }
    else { passed++; printf("ok   %s\n", c->name); }
  }
  if (tmpdir[0] != '\0') {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
