/*
** loam_int.h: the base layer's internals, shared by every file of
** libloam: hashing, the buffer, values and errors.  Each layer above has
** its own header in its folder (sql/sql_int.h, conn/conn_int.h, ...).
**
** Nothing here is part of the public API.  Internal functions that cross
** files carry the 'loam__' prefix and hidden visibility, so the shared
** library exports only the 'loam_' names of loam.h.
*/
#ifndef LOAM_INT_H
#define LOAM_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "loam.h"

#if defined(__GNUC__)
#define LOAMI_FUNC __attribute__((visibility("hidden"))) extern
#define LOAMI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define LOAMI_FUNC extern
#define LOAMI_PRINTF(f, a)
#endif


/* {======================================================================
** Hashing (hash.c)
** ======================================================================= */

/* The 64-bit FNV-1a offset basis and prime; fingerprints depend on both. */
#define LOAM__FNV_BASIS UINT64_C(0xcbf29ce484222325)
#define LOAM__FNV_PRIME UINT64_C(0x100000001b3)

/*
** Continues the FNV-1a hash 'h' (LOAM__FNV_BASIS to start) over the 'n'
** bytes at 'p'.  Hashing two pieces one after the other gives the hash of
** their concatenation.
*/
LOAMI_FUNC uint64_t loam__fnv1a (uint64_t h, const void *p, size_t n);

/* }====================================================================== */


/* {======================================================================
** Growable byte buffer (buf.c)
**
** The one buffer type for SQL text and messages.  Appends never fail
** visibly: on allocation failure the buffer sets 'oom' and ignores further
** appends, so callers check once at the end.  'p' is always NUL-terminated
** once anything was appended (or after 'loam__buf_cstr').
** ======================================================================= */

typedef struct loam__buf {
  char *p;
  size_t len;
  size_t cap;
  int oom;
} loam__buf;

#define LOAM__BUF_INIT { NULL, 0, 0, 0 }

LOAMI_FUNC void loam__buf_add (loam__buf *b, const void *p, size_t n);
LOAMI_FUNC void loam__buf_adds (loam__buf *b, const char *s);
LOAMI_FUNC void loam__buf_addc (loam__buf *b, char c);
LOAMI_FUNC void loam__buf_addf (loam__buf *b, const char *fmt, ...) LOAMI_PRINTF(2, 3);
LOAMI_FUNC void loam__buf_vaddf (loam__buf *b, const char *fmt, va_list ap);
/* Appends 'i' in decimal, as "%" PRId64 would. */
LOAMI_FUNC void loam__buf_int (loam__buf *b, int64_t i);
/*
** Appends the finite double 'd' with '.' as the decimal point whatever the
** locale, in a form that reads back as exactly 'd': always 17 significant
** digits, or with 'shortest' the fewest (15 to 17) that do.  NaN and the
** infinities are each caller's to write or refuse.
*/
LOAMI_FUNC void loam__buf_double (loam__buf *b, double d, int shortest);
/* Appends 'name' as a quoted identifier ("a""b"). */
LOAMI_FUNC void loam__buf_ident (loam__buf *b, const char *name, size_t len);
/* Appends 's' as a quoted SQL string literal ('it''s'); DDL only, where no parameters exist. */
LOAMI_FUNC void loam__buf_literal (loam__buf *b, const char *s, size_t len);
/*
** Makes room for 'n' more bytes (and a NUL) and returns where they go;
** the caller writes at most 'n' bytes there and adds what it wrote to
** 'len' (the NUL is then its to write, or the next append's).  NULL after
** OOM.  For writers of many small pieces, which check the room once.
*/
LOAMI_FUNC char *loam__buf_reserve (loam__buf *b, size_t n);
/* Returns the NUL-terminated contents ("" when empty, NULL after OOM). */
LOAMI_FUNC const char *loam__buf_cstr (loam__buf *b);
LOAMI_FUNC void loam__buf_reset (loam__buf *b);   /* keeps the memory */
LOAMI_FUNC void loam__buf_free (loam__buf *b);

/* strdup/strndup that return NULL on allocation failure. */
LOAMI_FUNC char *loam__strdup (const char *s);
LOAMI_FUNC char *loam__strndup (const char *s, size_t n);

/* }====================================================================== */


/* {======================================================================
** Values (value.c)
**
** The canonical forms in which values match keys, whatever the backend
** returned: integers (booleans as 0 and 1, doubles with an integral
** value), other doubles, text.  The integer 1 and the text '1' never
** match.
** ======================================================================= */

/* Appends a short description of 'v' for a message: 'text', 42, true, ... */
LOAMI_FUNC void loam__value_describe (loam__buf *m, const loam_value *v);

/* The class of a key position; all keys of one position share one. */
enum { LOAM__VC_NONE, LOAM__VC_NUM, LOAM__VC_TEXT, LOAM__VC_BOOL };

/* The class of values of 'type' as keys: LOAM__VC_NONE for NULL and blobs. */
LOAMI_FUNC int loam__value_class (int type);

/* A double with an integral value in range becomes that integer; other values are kept. */
LOAMI_FUNC loam_value loam__value_integral (loam_value v);

/*
** The form in which values of class 'cls' compare: integers (booleans as
** 0 and 1), other doubles, text; the text of a numeric position
** ('numeric') as a decimal, without trailing zeros.  Returns 0 when 'v'
** cannot equal any key of that class.  Text in '*out' points into 'v'.
*/
LOAMI_FUNC int loam__value_canon (const loam_value *v, int cls, int numeric,
                                  loam_value *out /* OUT */);

/* The starting value of a hash over canonical values. */
#define LOAM__VALUE_HASH_INIT LOAM__FNV_BASIS

/* Adds the canonical value 'c' to the hash 'h'. */
LOAMI_FUNC uint64_t loam__value_hash (uint64_t h, const loam_value *c);

/* Whether the canonical values 'a' and 'b' are equal. */
LOAMI_FUNC int loam__value_same (const loam_value *a, const loam_value *b);

/* }====================================================================== */


/* {======================================================================
** Errors (error.c)
** ======================================================================= */

/*
** Clears 'err' and sets code and a formatted message.  Returns LOAM_ERROR
** so callers can 'return loam__err(...)'.  'err' may be NULL.
*/
LOAMI_FUNC int loam__err (loam_error *err, loam_errcode code, const char *fmt, ...)
  LOAMI_PRINTF(3, 4);
/* Copies 'msg' (first 'n' bytes, trailing whitespace and newlines dropped). */
LOAMI_FUNC int loam__err_msg (loam_error *err, loam_errcode code, const char *msg, size_t n);
/* Sets an owned field ('detail', 'constraint', 'table', 'column') from 'v' (NULL clears). */
LOAMI_FUNC void loam__err_field (char **field, const char *v, size_t n);
LOAMI_FUNC int loam__err_nomem (loam_error *err);

/* }====================================================================== */

#endif
