/*
** error.c: the one error structure of libloam and its stable code names.
**
** Every failing call clears the caller's 'loam_error' and fills it; the
** strings it holds are owned by the structure.  The code names are the
** vocabulary the Lua layer and users branch on, so they never change once
** published.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/loam_int.h"


static const char *const codenames[LOAM_E__COUNT] = {
  "ok",
  "misuse",
  "nomem",
  "invalid_url",
  "connection_failed",
  "auth_failed",
  "timeout",
  "busy",
  "syntax_error",
  "undefined_table",
  "undefined_column",
  "unique_violation",
  "foreign_key_violation",
  "not_null_violation",
  "check_violation",
  "constraint_violation",
  "serialization_failure",
  "deadlock",
  "data_error",
  "read_only",
  "transaction_aborted",
  "permission_denied",
  "database_error",
  "disk_full",
  "corrupt",
  "io_error",
  "undefined_function",
  "canceled",
  "pool_timeout",
  "locked",
  "checksum_mismatch",
  "migration_conflict",
};


const char *loam_errcode_name (int code) {
  if (code < 0 || code >= LOAM_E__COUNT) return "unknown";
  return codenames[code];
}


void loam_error_clear (loam_error *err) {
  if (err == NULL) return;
  free(err->message);
  free(err->detail);
  free(err->constraint);
  free(err->table);
  free(err->column);
  memset(err, 0, sizeof *err);
}


void loam__err_field (char **field, const char *v, size_t n) {
  free(*field);
  *field = (v != NULL) ? loam__strndup(v, n) : NULL;
}


/*
** A message that could not be allocated still needs to be non-NULL, so
** out-of-memory falls back to a static text the clear function must not
** free: it is copied lazily instead, and if that fails too the code alone
** tells the story through 'loam_errcode_name'.
*/
int loam__err_msg (loam_error *err, loam_errcode code, const char *msg, size_t n) {
  if (err == NULL) return LOAM_ERROR;
  loam_error_clear(err);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == ' '))
    n--;
  err->code = code;
  err->message = loam__strndup(msg, n);
  if (err->message == NULL) {
    err->code = LOAM_E_NOMEM;
    err->message = loam__strdup("out of memory");
  }
  return LOAM_ERROR;
}


int loam__err (loam_error *err, loam_errcode code, const char *fmt, ...) {
  loam__buf b = LOAM__BUF_INIT;
  va_list ap;
  const char *s;
  if (err == NULL) return LOAM_ERROR;
  va_start(ap, fmt);
  loam__buf_vaddf(&b, fmt, ap);
  va_end(ap);
  s = loam__buf_cstr(&b);
  if (s == NULL) loam__err_nomem(err);
  else loam__err_msg(err, code, s, b.len);
  loam__buf_free(&b);
  return LOAM_ERROR;
}


int loam__err_nomem (loam_error *err) {
  static const char m[] = "out of memory";
  return loam__err_msg(err, LOAM_E_NOMEM, m, sizeof m - 1);
}

