/*
** url.c: parsing of connection URLs.
**
** One string names a database on every backend:
**   sqlite:path/to.db   sqlite:/abs/path.db   sqlite:///abs/path.db
**   sqlite::memory:     postgres[ql]://user:password@host:port/db?k=v&...
** Parsing happens here, before any driver runs, so a malformed URL is an
** 'invalid_url' error with a precise message instead of whatever the
** driver would make of it.  Messages never repeat the URL itself, since it
** may carry a password, and never show any part of the user name and
** password: the userinfo is split off first, by the last '@', and a URL
** whose '@' could belong to either side (an '@' after a '/' or '?') is
** refused rather than guessed at.  Options that follow a 'password'
** option in the query are never shown either, since an unencoded '&' in
** that password would have cut it into them.
*/
#include <stdlib.h>
#include <string.h>

#include "conn/conn_int.h"


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


int loam__url_is_secret_key (const char *key) {
  return strcmp(key, "password") == 0 || strcmp(key, "sslpassword") == 0;
}


/* The hint for options named by position only. */
static const char secret_hint[] =
  " (it follows a password option: write '&' inside a password as %26)";


int loam__url_opt_error (const loam__url *u, int i, const char *what, const char *why,
                         int showvalue, loam_error *err) {
  const loam__kv *kv = &u->opts[i];
  loam__buf b = LOAM__BUF_INIT;
  int rc;
  loam__buf_adds(&b, what);
  if (kv->secret) loam__buf_addf(&b, " #%d", i + 1);
  else loam__buf_addf(&b, " '%s'", kv->key);
  loam__buf_adds(&b, why);
  if (showvalue && !kv->secret) loam__buf_addf(&b, " (got '%s')", kv->value);
  if (kv->secret) loam__buf_adds(&b, secret_hint);
  if (loam__buf_cstr(&b) == NULL) rc = loam__err_nomem(err);
  else rc = loam__err_msg(err, LOAM_E_INVALID_URL, b.p, b.len);
  loam__buf_free(&b);
  return rc;
}


/* Parses 'k=v&k=v' into 'u->opts'. */
static int parse_query (const char *q, loam__url *u, loam_error *err) {
  int secret = 0;
  while (*q != '\0') {
    const char *amp = strchr(q, '&');
    size_t len = amp ? (size_t)(amp - q) : strlen(q);
    const char *eq = memchr(q, '=', len);
    loam__kv *kv;
    if (len == 0) { q += 1; continue; }
    if (eq == NULL || eq == q) {
      char *name = NULL;
      if (eq != NULL)
        return loam__err(err, LOAM_E_INVALID_URL, "URL option #%d has an empty name",
                         u->nopts + 1);
      if (secret)
        return loam__err(err, LOAM_E_INVALID_URL, "URL option #%d has no value%s",
                         u->nopts + 1, secret_hint);
      if (decode(q, len, &name, "options", err) != LOAM_OK) return LOAM_ERROR;
      loam__err(err, LOAM_E_INVALID_URL, "URL option '%s' has no value", name);
      free(name);
      return LOAM_ERROR;
    }
    kv = realloc(u->opts, sizeof *kv * (size_t)(u->nopts + 1));
    if (kv == NULL) return loam__err_nomem(err);
    u->opts = kv;
    kv = &u->opts[u->nopts];
    kv->key = kv->value = NULL;
    kv->secret = secret;
    u->nopts++;
    if (decode(q, (size_t)(eq - q), &kv->key, "options", err) != LOAM_OK) return LOAM_ERROR;
    if (decode(eq + 1, len - (size_t)(eq - q) - 1, &kv->value, "options", err) != LOAM_OK)
      return LOAM_ERROR;
    if (loam__url_is_secret_key(kv->key)) secret = 1;
    q += len + (amp ? 1 : 0);
  }
  return LOAM_OK;
}


/* True when 'v' is one of the NULL-terminated 'words'. */
static int one_of (const char *v, const char *const *words) {
  for (; *words != NULL; words++) if (strcmp(v, *words) == 0) return 1;
  return 0;
}


static const char *const sqlite_modes[] = { "ro", "rw", "rwc", NULL };
static const char *const journal_modes[] = {
  "wal", "delete", "truncate", "persist", "memory", "off", NULL
};
static const char *const booleans[] = { "1", "0", "true", "false", NULL };


static int parse_sqlite (const char *rest, loam__url *u, loam_error *err) {
  const char *q = strchr(rest, '?');
  size_t n = q ? (size_t)(q - rest) : strlen(rest);
  int i;
  u->backend = LOAM_SQLITE;
  if (n >= 2 && rest[0] == '/' && rest[1] == '/') {
    rest += 2;
    n -= 2;
    /* 'sqlite://user:pw@...' would put the password into the file name, which messages show. */
    if (memchr(rest, '@', strcspn(rest, "/?")) != NULL)
      return loam__err(err, LOAM_E_INVALID_URL,
                       "SQLite URL takes no user name or password (write sqlite:path/to.db)");
  }
  if (n == 0)
    return loam__err(err, LOAM_E_INVALID_URL,
                     "SQLite URL has no path (write sqlite:path/to.db or sqlite::memory:)");
  if (decode(rest, n, &u->path, "path", err) != LOAM_OK) return LOAM_ERROR;
  if (q != NULL && parse_query(q + 1, u, err) != LOAM_OK) return LOAM_ERROR;
  for (i = 0; i < u->nopts; i++) {
    const char *k = u->opts[i].key, *v = u->opts[i].value;
    if (strcmp(k, "mode") == 0) {
      if (!one_of(v, sqlite_modes))
        return loam__url_opt_error(u, i, "SQLite URL option", " must be ro, rw or rwc", 1, err);
    }
    else if (strcmp(k, "busy_timeout") == 0) {
      char *end;
      long ms = strtol(v, &end, 10);
      if (*v == '\0' || *end != '\0' || ms < 0 || ms > 86400000L)
        return loam__url_opt_error(u, i, "SQLite URL option",
                                   " must be milliseconds (0 to 86400000)", 1, err);
    }
    else if (strcmp(k, "journal_mode") == 0) {
      if (!one_of(v, journal_modes))
        return loam__url_opt_error(u, i, "SQLite URL option",
                                   " must be wal, delete, truncate, persist, memory or off", 1,
                                   err);
    }
    else if (strcmp(k, "immutable") == 0) {
      if (!one_of(v, booleans))
        return loam__url_opt_error(u, i, "SQLite URL option", " must be 1, 0, true or false", 1,
                                   err);
    }
    else if (strcmp(k, "pgbouncer") == 0)
      return loam__url_opt_error(u, i, "SQLite URL option",
                                 " is for PostgreSQL only (PgBouncer pools PostgreSQL "
                                 "connections)", 0, err);
    else
      return loam__url_opt_error(u, i, "unknown SQLite URL option",
                                 " (known: mode, busy_timeout, journal_mode, immutable)", 0, err);
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


/*
** The values libpq checks itself before connecting, checked here so that a
** bad one is an 'invalid_url' error that never shows a password piece
** (libpq's own message would name the value).  Other values are libpq's to
** judge when it connects.
*/
static const struct { const char *key; const char *const values[8]; } pg_enums[] = {
  { "sslmode", { "disable", "allow", "prefer", "require", "verify-ca", "verify-full", NULL } },
  { "gssencmode", { "disable", "prefer", "require", NULL } },
  { "channel_binding", { "disable", "prefer", "require", NULL } },
  { "target_session_attrs",
    { "any", "read-write", "read-only", "primary", "standby", "prefer-standby", NULL } },
};

static const char *const pg_integers[] = {
  "connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
  "keepalives_count", "tcp_user_timeout", NULL
};


static int valid_ports (const char *v) {
  while (1) {
    size_t n = strcspn(v, ",");
    if (n > 0 && !valid_port(v, n)) return 0;
    if (v[n] == '\0') return 1;
    v += n + 1;
  }
}


int loam__url_pg_fixed_value (const char *key) {
  size_t e;
  for (e = 0; e < sizeof pg_enums / sizeof pg_enums[0]; e++)
    if (strcmp(key, pg_enums[e].key) == 0) return 1;
  return one_of(key, pg_integers) || strcmp(key, "port") == 0;
}


static int check_pg_options (const loam__url *u, loam_error *err) {
  int i;
  size_t e;
  for (i = 0; i < u->nopts; i++) {
    const char *k = u->opts[i].key, *v = u->opts[i].value;
    for (e = 0; e < sizeof pg_enums / sizeof pg_enums[0]; e++) {
      if (strcmp(k, pg_enums[e].key) == 0 && !one_of(v, pg_enums[e].values)) {
        loam__buf why = LOAM__BUF_INIT;
        const char *const *w;
        int rc;
        loam__buf_adds(&why, " must be one of");
        for (w = pg_enums[e].values; *w != NULL; w++)
          loam__buf_addf(&why, "%s %s", w == pg_enums[e].values ? "" : ",", *w);
        if (loam__buf_cstr(&why) == NULL) rc = loam__err_nomem(err);
        else rc = loam__url_opt_error(u, i, "PostgreSQL URL option", why.p, 1, err);
        loam__buf_free(&why);
        return rc;
      }
    }
    if (one_of(k, pg_integers)) {
      const char *d = v + (*v == '-');
      if (*d == '\0' || strspn(d, "0123456789") != strlen(d) || strlen(d) > 9)
        return loam__url_opt_error(u, i, "PostgreSQL URL option", " must be an integer", 1, err);
      /* libpq reads 0 and below as "wait forever"; loam never does that unasked. */
      if (strcmp(k, "connect_timeout") == 0 && *v != '\0' && atoi(v) <= 0)
        return loam__url_opt_error(u, i, "PostgreSQL URL option",
                                   " must be at least 1 (seconds): 0 would wait forever "
                                   "(LOAM_FOREVER in the connection options asks for that)",
                                   1, err);
    }
    if (strcmp(k, "port") == 0 && !valid_ports(v))
      return loam__url_opt_error(u, i, "PostgreSQL URL option",
                                 " must be a port (1 to 65535) or a comma-separated list of them",
                                 1, err);
  }
  return LOAM_OK;
}


/*
** Takes loam's own option 'pgbouncer' out of 'u->opts' (libpq does not
** know it) into 'u->pgbouncer'.  Only transaction pooling is a mode of its
** own: session pooling needs nothing, and statement pooling cannot run
** transactions at all.
*/
static int take_pgbouncer (loam__url *u, loam_error *err) {
  int i;
  for (i = 0; i < u->nopts; i++) {
    if (strcmp(u->opts[i].key, "pgbouncer") != 0) continue;
    if (strcmp(u->opts[i].value, "transaction") != 0)
      return loam__url_opt_error(u, i, "PostgreSQL URL option",
                                 " must be 'transaction' (session pooling needs no option; "
                                 "statement pooling cannot run transactions)", 1, err);
    u->pgbouncer = 1;
    free(u->opts[i].key);
    free(u->opts[i].value);
    memmove(&u->opts[i], &u->opts[i + 1], sizeof *u->opts * (size_t)(u->nopts - i - 1));
    u->nopts--;
    i--;
  }
  return LOAM_OK;
}


static int parse_pg (const char *rest, loam__url *u, loam_error *err) {
  const char *end = rest + strcspn(rest, "/?");
  const char *at = strrchr(rest, '@'), *p;
  loam__buf hosts = LOAM__BUF_INIT, ports = LOAM__BUF_INIT;
  int rc = LOAM_ERROR, first = 1, anyport = 0;
  u->backend = LOAM_POSTGRES;
  /*
  ** An '@' after the first '/' or '?' belongs either to a password holding
  ** '/' or '?' or to the database name or an option; guessing wrong would
  ** show a piece of the password as a host, port or database name.
  */
  if (at != NULL && at > end)
    return loam__err(err, LOAM_E_INVALID_URL,
                     "the URL has an '@' after a '/' or '?': percent-encode '@', '/' and '?' in "
                     "the user name and password (%%40, %%2F, %%3F) and '@' in the database name "
                     "and options (%%40)");
  if (at != NULL) {
    const char *colon = memchr(rest, ':', (size_t)(at - rest));
    size_t un = colon ? (size_t)(colon - rest) : (size_t)(at - rest);
    if (un > 0 && decode(rest, un, &u->user, "user name", err) != LOAM_OK) return LOAM_ERROR;
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
  if (*end == '?' &&
      (parse_query(end + 1, u, err) != LOAM_OK || take_pgbouncer(u, err) != LOAM_OK ||
       check_pg_options(u, err) != LOAM_OK))
    goto done;
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
  /*
  ** Without its scheme, 'bob:secret@host/db' reads as scheme 'bob': the
  ** text before ':' is shown only when it is followed by '://' or the URL
  ** has no userinfo, and looks like a scheme.
  */
  if (n <= 32 && (strncmp(url + n, "://", 3) == 0 || strchr(url, '@') == NULL) &&
      strspn(url, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-") == n)
    return loam__err(err, LOAM_E_INVALID_URL,
                     "unknown URL scheme '%.*s' (expected sqlite: or postgres://)", (int)n, url);
  return loam__err(err, LOAM_E_INVALID_URL,
                   "unknown URL scheme (expected sqlite: or postgres://)");
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
