/*
** url.c: parsing of connection URLs.
**
** One string names a database on every backend:
**   sqlite:path/to.db   sqlite:/abs/path.db   sqlite:///abs/path.db
**   sqlite::memory:     postgres[ql]://user:password@host:port/db?k=v&...
** Parsing happens here, before any driver runs, so a malformed URL is an
** 'invalid_url' error with a precise message instead of whatever the
** driver would make of it.  Messages never repeat the URL itself, since it
** may carry a password.
*/
#include <stdlib.h>
#include <string.h>

#include "loam_int.h"


static int hexval (int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}


/*
** Percent-decodes 's[0..n)' into a new string in '*out'.  A decoded NUL
** byte is refused: no driver can take it inside a name or a path.
*/
static int decode (const char *s, size_t n, char **out, const char *what, loam_error *err) {
  char *d = malloc(n + 1), *p = d;
  size_t i;
  if (d == NULL) return loam__err_nomem(err);
  for (i = 0; i < n; i++) {
    if (s[i] == '%') {
      int hi = (i + 2 < n) ? hexval((unsigned char)s[i + 1]) : -1;
      int lo = (i + 2 < n) ? hexval((unsigned char)s[i + 2]) : -1;
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
        free(d);
        return loam__err(err, LOAM_E_INVALID_URL, "bad percent-encoding in the %s of the URL", what);
      }
      *p++ = (char)(hi * 16 + lo);
      i += 2;
    }
    else *p++ = s[i];
  }
  *p = '\0';
  *out = d;
  return LOAM_OK;
}


/* Parses 'k=v&k=v' into 'u->opts'. */
static int parse_query (const char *q, loam__url *u, loam_error *err) {
  while (*q != '\0') {
    const char *amp = strchr(q, '&');
    size_t len = amp ? (size_t)(amp - q) : strlen(q);
    const char *eq = memchr(q, '=', len);
    loam__kv *kv;
    if (len == 0) { q += 1; continue; }
    if (eq == NULL || eq == q) {
      char *name = NULL;
      if (decode(q, eq ? 0 : len, &name, "options", err) != LOAM_OK) return LOAM_ERROR;
      loam__err(err, LOAM_E_INVALID_URL, eq ? "URL option with an empty name"
                                            : "URL option '%s' has no value", name);
      free(name);
      return LOAM_ERROR;
    }
    kv = realloc(u->opts, sizeof *kv * (size_t)(u->nopts + 1));
    if (kv == NULL) return loam__err_nomem(err);
    u->opts = kv;
    kv = &u->opts[u->nopts];
    kv->key = kv->value = NULL;
    u->nopts++;
    if (decode(q, (size_t)(eq - q), &kv->key, "options", err) != LOAM_OK) return LOAM_ERROR;
    if (decode(eq + 1, len - (size_t)(eq - q) - 1, &kv->value, "options", err) != LOAM_OK)
      return LOAM_ERROR;
    q += len + (amp ? 1 : 0);
  }
  return LOAM_OK;
}


static int parse_sqlite (const char *rest, loam__url *u, loam_error *err) {
  const char *q = strchr(rest, '?');
  size_t n = q ? (size_t)(q - rest) : strlen(rest);
  int i;
  u->backend = LOAM_SQLITE;
  if (n >= 2 && rest[0] == '/' && rest[1] == '/') { rest += 2; n -= 2; }
  if (n == 0)
    return loam__err(err, LOAM_E_INVALID_URL,
                     "SQLite URL has no path (write sqlite:path/to.db or sqlite::memory:)");
  if (decode(rest, n, &u->path, "path", err) != LOAM_OK) return LOAM_ERROR;
  if (q != NULL && parse_query(q + 1, u, err) != LOAM_OK) return LOAM_ERROR;
  for (i = 0; i < u->nopts; i++) {
    const char *k = u->opts[i].key, *v = u->opts[i].value;
    if (strcmp(k, "mode") == 0) {
      if (strcmp(v, "ro") != 0 && strcmp(v, "rw") != 0 && strcmp(v, "rwc") != 0)
        return loam__err(err, LOAM_E_INVALID_URL,
                         "SQLite URL option 'mode' must be ro, rw or rwc, not '%s'", v);
    }
    else if (strcmp(k, "busy_timeout") == 0) {
      char *end;
      long ms = strtol(v, &end, 10);
      if (*v == '\0' || *end != '\0' || ms < 0 || ms > 86400000L)
        return loam__err(err, LOAM_E_INVALID_URL,
                         "SQLite URL option 'busy_timeout' must be milliseconds, not '%s'", v);
    }
    else
      return loam__err(err, LOAM_E_INVALID_URL,
                       "unknown SQLite URL option '%s' (known: mode, busy_timeout)", k);
  }
  return LOAM_OK;
}


static int valid_port (const char *p, size_t n) {
  size_t i;
  long v = 0;
  if (n == 0 || n > 5) return 0;
  for (i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return 0;
    v = v * 10 + (p[i] - '0');
  }
  return v >= 1 && v <= 65535;
}


/*
** Splits one 'host[:port]' item (an IPv6 address in brackets) and appends
** host and port to the comma-separated lists libpq takes for several hosts.
*/
static int add_hostport (const char *s, size_t n, loam__buf *hosts, loam__buf *ports,
                         int first, loam_error *err) {
  const char *h = s, *port = NULL;
  size_t hn = n, pn = 0;
  if (n > 0 && s[0] == '[') {
    const char *close = memchr(s, ']', n);
    if (close == NULL)
      return loam__err(err, LOAM_E_INVALID_URL, "unterminated '[' in the host of the URL");
    h = s + 1;
    hn = (size_t)(close - h);
    if (close + 1 < s + n) {
      if (close[1] != ':')
        return loam__err(err, LOAM_E_INVALID_URL, "unexpected text after ']' in the host of the URL");
      port = close + 2;
      pn = (size_t)(s + n - port);
    }
  }
  else {
    const char *colon = memchr(s, ':', n);
    if (colon != NULL) {
      hn = (size_t)(colon - s);
      port = colon + 1;
      pn = (size_t)(s + n - port);
    }
  }
  if (port != NULL && !valid_port(port, pn)) {
    char *bad = loam__strndup(port, pn);
    if (bad == NULL) return loam__err_nomem(err);
    loam__err(err, LOAM_E_INVALID_URL, "invalid port '%s' in the URL (expected 1 to 65535)", bad);
    free(bad);
    return LOAM_ERROR;
  }
  if (!first) { loam__buf_addc(hosts, ','); loam__buf_addc(ports, ','); }
  loam__buf_add(hosts, h, hn);
  loam__buf_add(ports, port ? port : "", pn);
  return LOAM_OK;
}


static int parse_pg (const char *rest, loam__url *u, loam_error *err) {
  const char *end = rest + strcspn(rest, "/?");
  const char *at = NULL, *p;
  loam__buf hosts = LOAM__BUF_INIT, ports = LOAM__BUF_INIT;
  int rc = LOAM_ERROR, first = 1, anyport = 0;
  u->backend = LOAM_POSTGRES;
  for (p = rest; p < end; p++) if (*p == '@') at = p;
  if (at != NULL) {
    const char *colon = memchr(rest, ':', (size_t)(at - rest));
    size_t un = colon ? (size_t)(colon - rest) : (size_t)(at - rest);
    if (un > 0 && decode(rest, un, &u->user, "user", err) != LOAM_OK) return LOAM_ERROR;
    if (colon != NULL && decode(colon + 1, (size_t)(at - colon - 1), &u->password,
                                "password", err) != LOAM_OK)
      return LOAM_ERROR;
    rest = at + 1;
  }
  if (rest < end) {
    const char *item = rest;
    while (item <= end) {
      const char *comma = memchr(item, ',', (size_t)(end - item));
      const char *stop = comma ? comma : end;
      if (stop == item)
        { loam__err(err, LOAM_E_INVALID_URL, "empty host in the URL"); goto done; }
      if (add_hostport(item, (size_t)(stop - item), &hosts, &ports, first, err) != LOAM_OK)
        goto done;
      first = 0;
      item = stop + 1;
    }
    for (p = loam__buf_cstr(&ports); p && *p; p++) if (*p != ',') anyport = 1;
    if (loam__buf_cstr(&hosts) == NULL || loam__buf_cstr(&ports) == NULL)
      { loam__err_nomem(err); goto done; }
    if (hosts.len > 0 && decode(hosts.p, hosts.len, &u->host, "host", err) != LOAM_OK) goto done;
    if (anyport && (u->port = loam__strdup(ports.p)) == NULL) { loam__err_nomem(err); goto done; }
  }
  if (*end == '/') {
    const char *db = end + 1;
    size_t n = strcspn(db, "?");
    if (n > 0 && decode(db, n, &u->dbname, "database name", err) != LOAM_OK) goto done;
    end = db + n;
  }
  if (*end == '?' && parse_query(end + 1, u, err) != LOAM_OK) goto done;
  rc = LOAM_OK;
done:
  loam__buf_free(&hosts);
  loam__buf_free(&ports);
  return rc;
}


int loam__url_parse (const char *url, loam__url *u, loam_error *err) {
  size_t n;
  memset(u, 0, sizeof *u);
  if (url == NULL || *url == '\0')
    return loam__err(err, LOAM_E_INVALID_URL, "empty database URL");
  n = strcspn(url, ":");
  if (url[n] != ':' || n == 0)
    return loam__err(err, LOAM_E_INVALID_URL,
                     "not a database URL: no scheme (expected sqlite: or postgres://)");
  if (n == 6 && strncmp(url, "sqlite", 6) == 0)
    return parse_sqlite(url + 7, u, err);
  if ((n == 8 && strncmp(url, "postgres", 8) == 0) ||
      (n == 10 && strncmp(url, "postgresql", 10) == 0)) {
    if (strncmp(url + n, "://", 3) != 0)
      return loam__err(err, LOAM_E_INVALID_URL, "PostgreSQL URL must start with %.*s://",
                       (int)n, url);
    return parse_pg(url + n + 3, u, err);
  }
  {
    size_t shown = n > 32 ? 32 : n;
    return loam__err(err, LOAM_E_INVALID_URL,
                     "unknown URL scheme '%.*s' (expected sqlite: or postgres://)",
                     (int)shown, url);
  }
}


void loam__url_free (loam__url *u) {
  int i;
  if (u == NULL) return;
  free(u->path);
  free(u->user);
  if (u->password) memset(u->password, 0, strlen(u->password));
  free(u->password);
  free(u->host);
  free(u->port);
  free(u->dbname);
  for (i = 0; i < u->nopts; i++) {
    free(u->opts[i].key);
    free(u->opts[i].value);
  }
  free(u->opts);
  memset(u, 0, sizeof *u);
}
