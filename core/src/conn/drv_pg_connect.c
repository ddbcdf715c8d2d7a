/*
** drv_pg_connect.c: opening a PostgreSQL connection.
**
** It turns a parsed URL into libpq connection keywords, runs the attempt
** under a deadline of its own, and when the attempt fails gives it a loam
** code from codes, not from libpq's wording: the server's SQLSTATE when
** it answered, libpq's own verdicts otherwise.  No message it writes shows
** a password of the URL, even where libpq's text would.  The session
** settings loam's SQL relies on travel in the startup packet and are
** checked once the server has answered.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <poll.h>

#include "conn/drv_pg_int.h"


/*
** A failed connection attempt has no PGresult to ask for its SQLSTATE, so
** the attempt runs with libpq's verbose error format, which writes the
** server's SQLSTATE after the severity ("FATAL:  28P01: password ...")
** and adds a location line.  This finds the last such SQLSTATE (the one
** of the last host tried) and writes the message as the default format
** would have it, without the SQLSTATE and location, into 'b'.
*/
static void connect_message (const char *msg, loam__buf *b, char state[6]) {
  static const char loc[] = "LOCATION:  ";
  static const char alnum[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  const char *p = msg;
  state[0] = '\0';
  while (*p != '\0') {
    if ((p == msg || p[-1] == '\n') && strncmp(p, loc, sizeof loc - 1) == 0) {
      p += strcspn(p, "\n");
      if (*p == '\n') p++;
      continue;
    }
    if (strncmp(p, ":  ", 3) == 0 && strspn(p + 3, alnum) == 5 && strncmp(p + 8, ": ", 2) == 0) {
      memcpy(state, p + 3, 5);
      state[5] = '\0';
      loam__buf_add(b, p, 3);
      p += 10;
      continue;
    }
    loam__buf_addc(b, *p++);
  }
}


/* Copies 'msg' into 'b' with every occurrence of a secret masked. */
static void mask_secrets (loam__buf *b, const char *msg, const char *const *secret, int n) {
  while (*msg != '\0') {
    int i, hit = 0;
    for (i = 0; i < n && !hit; i++) {
      size_t len = strlen(secret[i]);
      if (len > 0 && strncmp(msg, secret[i], len) == 0) {
        loam__buf_adds(b, "***");
        msg += len;
        hit = 1;
      }
    }
    if (!hit) loam__buf_addc(b, *msg++);
  }
}


/*
** Appends to 'b' what the attempt 'pg' reported, as 'connect_message'
** writes it, and for an attempt our deadline ended, the line saying so.
** 'state' receives the SQLSTATE it found ("" when none).
*/
static void attempt_text (PGconn *pg, int timed_out, loam__buf *b, char state[6]) {
  connect_message(PQerrorMessage(pg), b, state);
  if (timed_out) {
    while (b->len > 0 && b->p[b->len - 1] == '\n') b->len--;
    if (b->len > 0) loam__buf_addc(b, '\n');
    loam__buf_addf(b, "connection to server \"%s\" port %s failed: timeout expired\n",
                   PQhost(pg), PQport(pg));
  }
}


/*
** Fills 'err' for the failed connection 'pg', from codes only: the
** server's SQLSTATE when it sent one (class 28 is a refused login; a
** missing database (3D000), too many connections (53300), a server
** starting or stopping (57P0x) are connection failures), else libpq's
** own verdicts: a password the server asked for and did not get is an
** authentication failure, our deadline passing is a timeout, anything
** else (no server at that address, a refused connection, a TLS problem)
** a connection failure.  'before' holds what earlier attempts said.
** Every secret of the URL is masked in the text.
*/
static int connect_error (PGconn *pg, int timed_out, loam__buf *before,
                          const char *const *secret, int nsecret, loam_error *err) {
  loam__buf b = LOAM__BUF_INIT;
  char state[6];
  loam_errcode code;
  attempt_text(pg, timed_out, before, state);
  if (timed_out) code = LOAM_E_TIMEOUT;
  else if (state[0] != '\0') {
    code = loam__pg_code_of_sqlstate(state);
    if (code == LOAM_E_DATABASE_ERROR) code = LOAM_E_CONNECTION_FAILED;
  }
  else if (PQconnectionNeedsPassword(pg)) code = LOAM_E_AUTH_FAILED;
  else code = LOAM_E_CONNECTION_FAILED;
  if (loam__buf_cstr(before) != NULL) mask_secrets(&b, before->p, secret, nsecret);
  if (loam__buf_cstr(&b) == NULL) loam__err_nomem(err);
  else {
    loam__err_msg(err, code, b.p, b.len);
    if (err != NULL && err->code == code && !timed_out) memcpy(err->sqlstate, state, 6);
  }
  loam__buf_free(&b);
  return LOAM_ERROR;
}


/* Monotonic seconds. */
static double now_s (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}


/*
** Runs the connection attempt started in 'pg' to its end.  The attempt is
** driven here rather than by 'PQconnectdbParams' so that it can use the
** verbose error format (see 'connect_message').  libpq ignores
** 'connect_timeout' in this mode, so the deadline is kept here, per host as
** libpq keeps it: when libpq moves on to the next host of a list, the
** clock starts again.  '*timed_out' tells whether the deadline ended it.
*/
static void finish_connect (PGconn *pg, int timeout_s, int *timed_out) {
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  const char *host = PQhost(pg);
  double deadline = now_s() + timeout_s;
  *timed_out = 0;
  while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
    struct pollfd pfd;
    int wait_ms = -1, rc;
    pfd.fd = PQsocket(pg);
    pfd.events = (st == PGRES_POLLING_READING) ? POLLIN : POLLOUT;
    pfd.revents = 0;
    if (pfd.fd < 0) break;
    if (timeout_s > 0) {
      double left = deadline - now_s();
      if (left <= 0) { *timed_out = 1; return; }
      wait_ms = (int)(left * 1000) + 1;
    }
    rc = poll(&pfd, 1, wait_ms);
    if (rc < 0 && errno != EINTR) break;
    if (rc <= 0) continue;   /* a signal, or the deadline, which the check above ends */
    st = PQconnectPoll(pg);
    if (PQhost(pg) != host) {
      host = PQhost(pg);
      deadline = now_s() + timeout_s;
    }
  }
}


/* Checks the option names against the keywords this libpq knows. */
static int check_keywords (const loam__url *u, loam_error *err) {
  PQconninfoOption *defs, *d;
  int i, rc = LOAM_OK;
  if (u->nopts == 0) return LOAM_OK;
  if ((defs = PQconndefaults()) == NULL) return loam__err_nomem(err);
  for (i = 0; i < u->nopts && rc == LOAM_OK; i++) {
    for (d = defs; d->keyword != NULL && strcmp(d->keyword, u->opts[i].key) != 0; d++) {}
    if (d->keyword == NULL)
      rc = loam__url_opt_error(u, i, "unknown PostgreSQL URL option", "", 0, err);
  }
  PQconninfoFree(defs);
  return rc;
}


/* The number of items of the comma-separated 'list'. */
static int list_count (const char *list) {
  int n = 1;
  for (; *list != '\0'; list++) if (*list == ',') n++;
  return n;
}


/* Points at item 'i' of the comma-separated 'list' and writes its length into '*len'. */
static const char *list_item (const char *list, int i, size_t *len) {
  for (; i > 0; i--) list += strcspn(list, ",") + 1;
  *len = strcspn(list, ",");
  return list;
}


/* The index of the first item of 'list' from 'from' on equal to 'item'; 'from' when none is. */
static int list_index (const char *list, const char *item, int from) {
  int i, n = list_count(list);
  size_t len;
  for (i = from; i < n; i++) {
    const char *p = list_item(list, i, &len);
    if (len == strlen(item) && strncmp(p, item, len) == 0) return i;
  }
  return from;
}


/* Writes the items of 'list' from 'from' on into 'b' and returns its text (NULL: no memory). */
static const char *list_tail (loam__buf *b, const char *list, int from) {
  size_t len;
  const char *p = list_item(list, from, &len);
  loam__buf_reset(b);
  loam__buf_adds(b, p);
  return loam__buf_cstr(b);
}


/*
** Runs attempts until one connects or none is left.  libpq moves on to
** the next host of a list by itself when one fails, but not when our
** deadline ends an attempt (its own 'connect_timeout' handling is not
** there in this mode), so then a new attempt starts with the hosts after
** the one that timed out, as libpq does with 'connect_timeout'.  Several
** addresses given as 'hostaddr' end at the first timeout.
*/
static PGconn *connect_hosts (const char **keys, const char **vals, int timeout_s,
                              const char *const *secret, int nsecret, loam_error *err) {
  int hi = -1, pi = -1, i, start = 0, nhosts = 1, timed_out, hostaddr = 0, reported = 0;
  const char *hosts = NULL, *ports = NULL;
  loam__buf said = LOAM__BUF_INIT, hb = LOAM__BUF_INIT, pb = LOAM__BUF_INIT;
  PGconn *pg;
  for (i = 0; keys[i] != NULL; i++) {
    if (strcmp(keys[i], "host") == 0) hi = i;
    else if (strcmp(keys[i], "port") == 0) pi = i;
    else if (strcmp(keys[i], "hostaddr") == 0) hostaddr = 1;
  }
  if (hi >= 0 && !hostaddr) { hosts = vals[hi]; nhosts = list_count(hosts); }
  if (pi >= 0) ports = vals[pi];
  for (;;) {
    char state[6];
    if (start > 0) {
      vals[hi] = list_tail(&hb, hosts, start);
      if (ports != NULL && list_count(ports) > 1) vals[pi] = list_tail(&pb, ports, start);
      if (vals[hi] == NULL || (pi >= 0 && vals[pi] == NULL)) { pg = NULL; break; }
    }
    pg = PQconnectStartParams(keys, vals, 0);
    if (pg == NULL) break;
    PQsetErrorVerbosity(pg, PQERRORS_VERBOSE);
    timed_out = 0;
    if (PQstatus(pg) != CONNECTION_BAD) finish_connect(pg, timeout_s, &timed_out);
    if (PQstatus(pg) == CONNECTION_OK) break;
    if (timed_out && hosts != NULL) {
      int at = list_index(hosts, PQhost(pg), start);
      if (at + 1 < nhosts) {
        attempt_text(pg, 1, &said, state);
        PQfinish(pg);
        start = at + 1;
        continue;
      }
    }
    connect_error(pg, timed_out, &said, secret, nsecret, err);
    reported = 1;
    PQfinish(pg);
    pg = NULL;
    break;
  }
  if (pg == NULL && !reported) loam__err_nomem(err);
  loam__buf_free(&said);
  loam__buf_free(&hb);
  loam__buf_free(&pb);
  return pg;
}


/*
** The session settings loam's SQL and value parsing rely on, sent as
** '-c' switches in the startup packet's 'options'.  Settings from the
** client outrank those of the role and the database (ALTER ROLE ... SET),
** so no server configuration can turn them back:
**   standard_conforming_strings  the placeholder scanner and the DDL
**                                literals read '\' as an ordinary character;
**   DateStyle, IntervalStyle     dates, timestamps and intervals come back
**                                in the ISO / postgres text forms;
**   TimeZone                     timestamptz values come back in UTC;
**   extra_float_digits           floats come back with every digit, so
**                                they round-trip exactly.
** client_encoding goes as its own keyword, last, so it wins as well.
** The values have no blanks, which 'options' would take as separators.
*/
static const struct { const char *name, *value; } session[] = {
  { "standard_conforming_strings", "on" },
  { "DateStyle", "ISO,MDY" },
  { "IntervalStyle", "postgres" },
  { "TimeZone", "UTC" },
  { "extra_float_digits", "3" },
};


/*
** Builds the 'options' keyword: the user's own switches, then loam's,
** which win, then the timeouts of 'o' that are set (-1 leaves the
** server's; milliseconds need no unit).
*/
static void session_options (loam__buf *b, const char *user, const loam_conn_opts *o) {
  size_t i;
  if (user != NULL && *user != '\0') {
    loam__buf_adds(b, user);
    loam__buf_addc(b, ' ');
  }
  for (i = 0; i < sizeof session / sizeof session[0]; i++)
    loam__buf_addf(b, "%s-c %s=%s", i ? " " : "", session[i].name, session[i].value);
  if (o->statement_timeout_ms >= 0)
    loam__buf_addf(b, " -c statement_timeout=%d", o->statement_timeout_ms);
  if (o->idle_in_tx_timeout_ms >= 0)
    loam__buf_addf(b, " -c idle_in_transaction_session_timeout=%d", o->idle_in_tx_timeout_ms);
}


/*
** A setting the server reports back (all but extra_float_digits) has the
** value loam asked for.  DateStyle is reported as "ISO, MDY".
*/
static int setting_ok (PGconn *pg, const char *name, const char *want) {
  const char *v = PQparameterStatus(pg, name);
  if (v == NULL) return 1;   /* not reported: nothing to check */
  if (strcmp(name, "DateStyle") == 0) return strncmp(v, "ISO,", 4) == 0;
  return strcmp(v, want) == 0;
}


/*
** Checks the settings the server reports back.  Against a plain server
** they always hold; a proxy in front of it that drops the startup
** 'options' would
** leave them unset, and the connection fails then, naming the setting,
** rather than misreading literals and values later.
*/
static int check_session (PGconn *pg, loam_error *err) {
  size_t i;
  if (!setting_ok(pg, "client_encoding", "UTF8"))
    return loam__err(err, LOAM_E_CONNECTION_FAILED,
                     "the session has client_encoding '%s'; loam needs UTF8",
                     PQparameterStatus(pg, "client_encoding"));
  for (i = 0; i < sizeof session / sizeof session[0]; i++)
    if (!setting_ok(pg, session[i].name, session[i].value))
      return loam__err(err, LOAM_E_CONNECTION_FAILED,
                       "the session has %s '%s'; loam needs %s (the startup options were dropped)",
                       session[i].name, PQparameterStatus(pg, session[i].name), session[i].value);
  return LOAM_OK;
}


/*
** Behind PgBouncer in transaction mode the startup 'options' never reach
** the server (PgBouncer refuses or drops them), and a plain SET would stay
** on a server connection that the next transaction may not get.  But
** PgBouncer keeps a few settings per client itself: client_encoding,
** DateStyle, TimeZone and standard_conforming_strings.  It records what
** the client SETs and, each time it hands the client a server connection,
** sets them again there when they differ, whatever another client did to
** that connection.  So those are SET here, once, and hold for every later
** transaction.  The others are the server's: IntervalStyle is checked by
** check_session like the rest (a server configured otherwise is refused);
** extra_float_digits needs nothing from PostgreSQL 12 on, where any value
** above 0 already sends floats in their shortest exact form.
*/
static int bouncer_session (PGconn *pg, loam_error *err) {
  size_t i;
  for (i = 0; i < sizeof session / sizeof session[0]; i++) {
    char sql[96];
    PGresult *r;
    const char *name = session[i].name;
    int ok;
    if (strcmp(name, "IntervalStyle") == 0 || strcmp(name, "extra_float_digits") == 0 ||
        setting_ok(pg, name, session[i].value))
      continue;
    snprintf(sql, sizeof sql, "SET %s TO '%s'", name, session[i].value);
    r = PQexec(pg, sql);
    ok = r != NULL && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok)
      return loam__err(err, LOAM_E_CONNECTION_FAILED, "setting %s through PgBouncer failed: %s",
                       name, PQerrorMessage(pg));
  }
  return LOAM_OK;
}


PGconn *loam__pg_connect (const loam__url *u, const loam_conn_opts *o, loam_error *err) {
  const char **keys, **vals, **secret, *useropts = NULL;
  char timeout[24];
  loam__buf options = LOAM__BUF_INIT;
  int n = 0, nsecret = 0, i, timeout_s = o->connect_timeout_s;
  PGconn *pg;
  if (check_keywords(u, err) != LOAM_OK) return NULL;
  keys = malloc(sizeof *keys * (size_t)(u->nopts + 10));
  vals = malloc(sizeof *vals * (size_t)(u->nopts + 10));
  secret = malloc(sizeof *secret * (size_t)(u->nopts + 1));
  if (keys == NULL || vals == NULL || secret == NULL) {
    free(keys);
    free(vals);
    free(secret);
    loam__err_nomem(err);
    return NULL;
  }
#define KW(k, v) do { if ((v) != NULL) { keys[n] = (k); vals[n] = (v); n++; } } while (0)
  KW("user", u->user);
  KW("password", u->password);
  KW("host", u->host);
  KW("port", u->port);
  KW("dbname", u->dbname);
  KW("fallback_application_name", "loam");
  if (u->password != NULL) secret[nsecret++] = u->password;
  for (i = 0; i < u->nopts; i++) {
    const loam__kv *kv = &u->opts[i];
    if (strcmp(kv->key, "options") == 0) { useropts = kv->value; continue; }
    KW(kv->key, kv->value);
    /* The URL parser checked it is an integer. */
    if (strcmp(kv->key, "connect_timeout") == 0) timeout_s = atoi(kv->value);
    /*
    ** A value after a password option may be a piece of that password,
    ** unless it is a checked number or keyword ('connect_timeout=10' must
    ** not mask every "10" of a message).
    */
    if (loam__url_is_secret_key(kv->key) ||
        (kv->secret && !loam__url_pg_fixed_value(kv->key)))
      secret[nsecret++] = kv->value;
  }
  snprintf(timeout, sizeof timeout, "%d", timeout_s);
  KW("connect_timeout", timeout);
  /* libpq reads PGOPTIONS only when no 'options' keyword is given, as here. */
  if (useropts == NULL) useropts = getenv("PGOPTIONS");
  if (!u->pgbouncer) session_options(&options, useropts, o);
  else if (useropts != NULL) loam__buf_adds(&options, useropts);
  if (loam__buf_cstr(&options) == NULL) {
    free(keys);
    free(vals);
    free(secret);
    loam__buf_free(&options);
    loam__err_nomem(err);
    return NULL;
  }
  if (options.len > 0) KW("options", options.p);
  /* Last, so it wins: result text is promised to be UTF-8. */
  KW("client_encoding", "UTF8");
#undef KW
  keys[n] = vals[n] = NULL;
  pg = connect_hosts(keys, vals, timeout_s, secret, nsecret, err);
  free(keys);
  free(vals);
  free(secret);
  loam__buf_free(&options);
  if (pg == NULL) return NULL;
  PQsetErrorVerbosity(pg, PQERRORS_DEFAULT);
  if ((u->pgbouncer && bouncer_session(pg, err) != LOAM_OK) || check_session(pg, err) != LOAM_OK) {
    PQfinish(pg);
    return NULL;
  }
  return pg;
}
