/*
** fuzz/url.c: the connection URL parser never shows a password.
**
** Half the inputs are parsed as they are (any URL: no crash, no leak, an
** error always with the 'invalid_url' code and a message).  The other half
** plant a known password in the password place of a PostgreSQL URL,
**   postgres[ql]://USER:PASSWORD@HOSTS/DB?OPTIONS
** with every other part made of fuzz bytes (USER and HOSTS without the
** delimiters that would move the password out of its place) and each byte
** of the password written as it is or percent-encoded, as the input says.
** Whether the URL parses or not, no four consecutive bytes of the password
** (as written or decoded) may appear in the error's message or any other
** error field, and when it parses, the password must come back whole.  An
** input whose own bytes already hold a piece of the password (so that a
** message could quote it from there) proves nothing and is passed over.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn/conn_int.h"
#include "sql/sql_int.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Letters, digits and the bytes that mean something in a URL, none repeated in a 4-gram. */
static const char PASSWORD[] = "Kq7:zW@x/9Jv?%Tg&=Rm#3";

#define GRAM 4


static void fail (const char *what, const char *url, const char *text) {
  fprintf(stderr, "url property failed: %s\n  url:  [%s]\n  text: [%s]\n", what, url,
          text ? text : "(null)");
  abort();
}


/* Whether 'hay' (length 'n') holds any GRAM consecutive bytes of 'needle'. */
static int holds_piece (const char *hay, size_t n, const char *needle) {
  size_t m = strlen(needle), i;
  if (hay == NULL || n < GRAM) return 0;
  for (i = 0; i + GRAM <= m; i++) {
    size_t j;
    for (j = 0; j + GRAM <= n; j++)
      if (memcmp(hay + j, needle + i, GRAM) == 0) return 1;
  }
  return 0;
}


/* 's' with every '%XX' decoded, loosely (whatever the parser might decode). */
static char *loose_decode (const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef0123456789ABCDEF";
  char *d = malloc(n + 1), *p = d;
  size_t i;
  if (d == NULL) abort();
  for (i = 0; i < n; i++) {
    const char *hi, *lo;
    if (s[i] == '%' && i + 2 < n && s[i + 1] != '\0' && s[i + 2] != '\0' &&
        (hi = strchr(hex, s[i + 1])) != NULL && (lo = strchr(hex, s[i + 2])) != NULL) {
      *p++ = (char)(((hi - hex) % 16) * 16 + (lo - hex) % 16);
      i += 2;
    }
    else *p++ = s[i];
  }
  *p = '\0';
  return d;
}


/* Whether 's[0..n)', as written or decoded, holds a piece of the password in either form. */
static int shows_piece (const char *s, size_t n, const char *pw_written) {
  char *decoded = loose_decode(s, n);
  int found = holds_piece(s, n, PASSWORD) || holds_piece(s, n, pw_written) ||
              holds_piece(decoded, strlen(decoded), PASSWORD) ||
              holds_piece(decoded, strlen(decoded), pw_written);
  free(decoded);
  return found;
}


/* Appends fuzz bytes 'p[0..n)', leaving out NULs and the bytes of 'banned'. */
static void add_part (loam__buf *b, const uint8_t *p, size_t n, const char *banned) {
  size_t i;
  for (i = 0; i < n; i++)
    if (p[i] != 0 && strchr(banned, p[i]) == NULL) loam__buf_addc(b, (char)p[i]);
}


static void check_error (const loam_error *err, const char *url, const char *pw_written) {
  const char *fields[5];
  int i;
  fields[0] = err->message;
  fields[1] = err->detail;
  fields[2] = err->constraint;
  fields[3] = err->table;
  fields[4] = err->column;
  for (i = 0; i < 5; i++) {
    const char *f = fields[i];
    if (f == NULL) continue;
    if (holds_piece(f, strlen(f), PASSWORD) || holds_piece(f, strlen(f), pw_written))
      fail("an error field shows part of the password", url, f);
  }
  if (holds_piece(err->sqlstate, strlen(err->sqlstate), PASSWORD))
    fail("the SQLSTATE shows part of the password", url, err->sqlstate);
}


/* Parses 'url': an error has the 'invalid_url' code and a message; either way no leak. */
static int parse (const char *url, loam__url *u, loam_error *err) {
  int rc = loam__url_parse(url, u, err);
  if (rc != LOAM_OK && (err->code != LOAM_E_INVALID_URL || err->message == NULL ||
                        err->message[0] == '\0'))
    fail("a refused URL without the invalid_url code and a message", url, err->message);
  if (rc == LOAM_OK && err->code != LOAM_E_NONE)
    fail("a parsed URL left an error behind", url, err->message);
  return rc;
}


/*
** The planted form.  The input is read as: one byte of flags, one byte
** per password byte (bit 0: percent-encode it, bit 1: in lower-case hex),
** then the four parts USER, HOSTS, DB and OPTIONS separated by 0xFF bytes.
*/
static void planted (const uint8_t *data, size_t size) {
  static const char digits[] = "0123456789ABCDEF0123456789abcdef";
  size_t npw = sizeof PASSWORD - 1, i, k;
  const uint8_t *parts[4] = { NULL, NULL, NULL, NULL }, *p, *end = data + size;
  size_t lens[4] = { 0, 0, 0, 0 };
  loam__buf url = LOAM__BUF_INIT, pw = LOAM__BUF_INIT;
  loam__url u;
  loam_error err = LOAM_ERROR_INIT;
  unsigned flags;
  size_t pw_at, pw_end;
  if (size < 1 + npw) return;
  flags = data[0];
  for (i = 0; i < npw; i++) {
    unsigned char c = (unsigned char)PASSWORD[i], how = data[1 + i];
    /* The delimiters are always encoded: a user who wrote them raw wrote another URL. */
    if ((how & 1) || strchr(":@/?%#&=", c) != NULL) {
      const char *hx = digits + ((how & 2) ? 16 : 0);
      loam__buf_addc(&pw, '%');
      loam__buf_addc(&pw, hx[c >> 4]);
      loam__buf_addc(&pw, hx[c & 15]);
    }
    else loam__buf_addc(&pw, (char)c);
  }
  p = data + 1 + npw;
  for (k = 0; k < 4 && p <= end; k++) {
    const uint8_t *sep = memchr(p, 0xFF, (size_t)(end - p));
    parts[k] = p;
    lens[k] = (size_t)((sep ? sep : end) - p);
    p = (sep ? sep + 1 : end + 1);
  }

  loam__buf_adds(&url, (flags & 1) ? "postgresql://" : "postgres://");
  add_part(&url, parts[0], lens[0], ":@/?\xff");
  loam__buf_addc(&url, ':');
  pw_at = url.len;
  loam__buf_adds(&url, loam__buf_cstr(&pw));
  pw_end = url.len;
  loam__buf_addc(&url, '@');
  add_part(&url, parts[1], lens[1], "@/?\xff");
  if ((flags & 2) || lens[2] > 0) {
    loam__buf_addc(&url, '/');
    add_part(&url, parts[2], lens[2], "?\xff");
  }
  if ((flags & 4) || lens[3] > 0) {
    loam__buf_addc(&url, '?');
    add_part(&url, parts[3], lens[3], "\xff");
  }
  if (url.oom || pw.oom) abort();
  /*
  ** Everything but the password, as the URL holds it (the delimiters the
  ** parts lost can join bytes into new pieces), raw and decoded: pieces
  ** found there prove nothing.
  */
  if (shows_piece(url.p, pw_at, pw.p) || shows_piece(url.p + pw_end, url.len - pw_end, pw.p))
    goto done;

  if (parse(url.p, &u, &err) == LOAM_OK) {
    if (u.password == NULL || strcmp(u.password, PASSWORD) != 0)
      fail("the password did not come back whole", url.p, u.password);
    if (u.backend != LOAM_POSTGRES) fail("not a PostgreSQL URL", url.p, NULL);
    loam__url_free(&u);
  }
  else check_error(&err, url.p, pw.p);
  loam__url_free(&u);
  loam_error_clear(&err);
done:
  loam__buf_free(&url);
  loam__buf_free(&pw);
}


int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  if (data[0] & 0x80) {
    char *url = malloc(size);
    loam__url u;
    loam_error err = LOAM_ERROR_INIT;
    if (url == NULL) return 0;
    memcpy(url, data + 1, size - 1);
    url[size - 1] = '\0';
    parse(url, &u, &err);
    loam__url_free(&u);
    loam__url_free(&u);  /* freeing twice is fine */
    loam_error_clear(&err);
    free(url);
  }
  else planted(data + 1, size - 1);
  return 0;
}
