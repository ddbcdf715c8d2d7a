/*
** t.h: the tiny test harness of the C test suite.
**
** Each TEST(name) registers itself at load time (a constructor), so a test
** file needs no list to keep in sync.  Checks record the first failure of a
** test with file:line and go on to the next test.  The runner (main.c)
** prints one line per test and closes with "N passed, N failed".
*/
#ifndef LOAM_T_H
#define LOAM_T_H

#include <stdio.h>
#include <string.h>
#include <stdint.h>

#include "loam.h"

typedef struct t_case {
  const char *name;
  const char *file;
  void (*fn) (void);
  struct t_case *next;
} t_case;

void t_register (t_case *c);
void t_fail (const char *file, int line, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));
int t_failed (void);
/* The PostgreSQL URL of the test cluster; a test calling it fails when
** there is none (PostgreSQL tests never skip silently). */
const char *t_pg_url (void);
/* A fresh temporary directory path for this process (created once). */
const char *t_tmpdir (void);

/*
** The URL for test 'name' on one backend ('pg' 0: SQLite, 1: PostgreSQL):
** an SQLite file of its own in 't_tmpdir', or the test cluster with
** application_name 'name', a URL of its own too.  PostgreSQL without a
** cluster fails the test and returns NULL.  The string lasts until the
** fourth call after.
*/
const char *t_url (int pg, const char *name);

/*
** The URL of a fresh database for test 'tag' on 'be': an SQLite file
** removed first, or on PostgreSQL a schema of its own, dropped and made
** again, named by the URL's search_path (so forked children reach it
** too).  NULL without a PostgreSQL cluster.  A static buffer.
*/
const char *t_fresh_url (loam_backend be, const char *tag);

void t_sleep_ms (int ms);

/* Runs 'fn(0)' (SQLite), then, unless it failed, 'fn(1)' (PostgreSQL). */
#define T_ON_BOTH(fn) do { fn(0); if (!t_failed()) fn(1); } while (0)

/* PostgreSQL: ends the session 'pid' from 'admin' and waits until it is gone; 1 on success. */
int t_pg_terminate (loam_conn *admin, int64_t pid);

/* The single integer (or boolean, as 0 or 1) that 'sql' returns on 'c', or -1. */
int64_t t_scalar (loam_conn *c, const char *sql);

#define TEST(name) \
  static void name (void); \
  static t_case name##_case = { #name, __FILE__, name, NULL }; \
  __attribute__((constructor)) static void name##_reg (void) { t_register(&name##_case); } \
  static void name (void)

#define CHECK(cond) do { if (!(cond)) { \
  t_fail(__FILE__, __LINE__, "check failed: %s", #cond); return; } } while (0)

#define CHECK_INT(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
  if (a_ != b_) { t_fail(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", \
                         #a, a_, #b, b_); return; } } while (0)

#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b); \
  if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) { \
    t_fail(__FILE__, __LINE__, "%s is \"%s\", expected \"%s\"", #a, \
           a_ ? a_ : "(null)", b_ ? b_ : "(null)"); return; } } while (0)

/* Checks that 'a' contains 'b'. */
#define CHECK_HAS(a, b) do { const char *a_ = (a), *b_ = (b); \
  if (a_ == NULL || strstr(a_, b_) == NULL) { \
    t_fail(__FILE__, __LINE__, "%s is \"%s\", expected it to contain \"%s\"", #a, \
           a_ ? a_ : "(null)", b_); return; } } while (0)

/* Checks a status is LOAM_OK, printing the error otherwise. */
#define CHECK_OK(call, errp) do { int rc_ = (call); if (rc_ != 0) { \
  t_fail(__FILE__, __LINE__, "%s returned %d: %s: %s", #call, rc_, \
         loam_errcode_name((errp)->code), (errp)->message ? (errp)->message : ""); \
  return; } } while (0)

#endif
