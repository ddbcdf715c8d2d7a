/*
** trace.c: instrumentation of connections: counters, the trace hook and
** statement fingerprints.
**
** Every statement is reported here once, when it ends (conn.c decides
** when; the batch loader and pipelines call 'loam__trace_done' directly).
** The report always updates the counters of its connection; only when a
** hook is set does it cost more: the SQL text is copied at the start of
** the statement and fingerprinted at its end.
**
** A fingerprint identifies the shape of a statement whatever its values:
** the hash of the text with literals and placeholders made '?', so an N+1
** loop shows up as one fingerprint run many times.  The text is read with
** the lexer of sqltext.c, so a '1' inside a comment or a quoted name is
** never taken for a literal.
*/
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn/conn_int.h"
#include "sql/sql_int.h"


int64_t loam__clock_ns (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
}


/* {======================================================================
** Counters and the hook
** ======================================================================= */

void loam__trace_done (loam_conn *conn, const char *sql, int nparams, int64_t rows,
                       int64_t elapsed_ns, int errcode) {
  conn->stats.queries++;
  conn->stats.rows += rows;
  conn->stats.elapsed_ns += elapsed_ns;
  if (errcode != LOAM_E_NONE) conn->stats.errors++;
  if (conn->trace != NULL && sql != NULL) {
    loam_trace_event ev;
    ev.conn = conn;
    ev.sql = sql;
    ev.nparams = nparams;
    ev.fingerprint = loam_fingerprint(sql);
    ev.rows = rows;
    ev.elapsed_ns = elapsed_ns;
    ev.errcode = (loam_errcode)errcode;
    ev.wait_ns = conn->pool_wait_ns;
    conn->trace(conn->trace_ud, &ev);
  }
  conn->pool_wait_ns = 0;
}


/*
** The copy is what lets the hook see the SQL at the end of a statement
** read row by row, long after 'loam_query' returned and its caller may
** have freed the text.  Without memory for it the statement is still
** counted, just not shown to the hook.
*/
void loam__trace_begin (loam_stmt *s, const char *sql, int nparams, int64_t t0) {
  s->t0 = t0;
  s->rows = 0;
  s->tnparams = nparams;
  s->tsql = (s->conn->trace != NULL) ? loam__strdup(sql) : NULL;
}


void loam__trace_end (loam_stmt *s, int errcode) {
  char *sql = s->tsql;
  s->tsql = NULL;
  loam__trace_done(s->conn, sql, s->tnparams, s->rows, loam__clock_ns() - s->t0, errcode);
  free(sql);
}


void loam_conn_stats (const loam_conn *conn, loam_stats *out) {
  static const loam_stats zero = { 0, 0, 0, 0 };
  if (out == NULL) return;
  *out = (conn != NULL) ? conn->stats : zero;
}


void loam_conn_set_trace (loam_conn *conn, loam_trace_fn fn, void *ud) {
  if (conn == NULL) return;
  conn->trace = fn;
  conn->trace_ud = (fn != NULL) ? ud : NULL;
}

/* }====================================================================== */


/* {======================================================================
** Fingerprints
** ======================================================================= */

/*
** Where normalised text goes: into the hash always, into 'buf' while it
** has room.  'len' counts every byte, written or not.
*/
typedef struct sink {
  char *buf;
  size_t size;
  size_t len;
  uint64_t hash;
} sink;


static void emit (sink *k, const char *p, size_t n) {
  size_t i;
  k->hash = loam__fnv1a(k->hash, p, n);
  for (i = 0; i < n && k->len + i + 1 < k->size; i++) k->buf[k->len + i] = p[i];
  k->len += n;
}


/* True when the token [p, e) of kind 'kind' is the word 'w' (upper-case), in any case. */
static int isword (const char *p, const char *e, int kind, const char *w) {
  if (kind != LOAM__TK_WORD || (size_t)(e - p) != strlen(w)) return 0;
  for (; p < e; p++, w++)
    if (toupper((unsigned char)*p) != *w) return 0;
  return 1;
}


/* Values that normalise to '?'. */
static int isvalue (const char *p, const char *e, int kind) {
  return kind == LOAM__TK_STRING || kind == LOAM__TK_NUMBER || kind == LOAM__TK_PARAM ||
         isword(p, e, kind, "TRUE") || isword(p, e, kind, "FALSE");
}


/* The next token at 'p' that is not blank; its kind into '*kind', its end returned. */
static const char *nextsolid (const char **p, int *kind) {
  const char *e = loam__sql_token(*p, kind);
  if (*kind == LOAM__TK_SPACE) {
    *p = e;
    e = loam__sql_token(e, kind);
  }
  return e;
}


/*
** If 'p' (just after a word IN) starts '(' value, value, ... ')' with
** only values and commas inside (a value may carry a sign), returns the
** end of the ')', else NULL.  Blanks before the '(' are the caller's.
*/
static const char *valuelist (const char *p) {
  const char *e;
  int kind;
  e = nextsolid(&p, &kind);
  if (kind != LOAM__TK_PUNCT || *p != '(') return NULL;
  p = e;
  for (;;) {
    e = nextsolid(&p, &kind);
    if (kind == LOAM__TK_PUNCT && (*p == '-' || *p == '+')) {
      p = e;
      e = nextsolid(&p, &kind);
    }
    if (!isvalue(p, e, kind)) return NULL;
    p = e;
    e = nextsolid(&p, &kind);
    if (kind != LOAM__TK_PUNCT) return NULL;
    if (*p == ')') return e;
    if (*p != ',') return NULL;
    p = e;
  }
}


/*
** The normaliser.  A blank run is emitted lazily, as one space before the
** next solid token, so blanks at either end vanish; ';' are held back the
** same way and vanish, however many, when nothing follows them.
*/
static void normalize (const char *sql, sink *k) {
  const char *p = sql, *e;
  int kind, space = 0, semi = 0;
  if (p == NULL) return;
  for (; (e = loam__sql_token(p, &kind)), kind != LOAM__TK_END; p = e) {
    if (kind == LOAM__TK_SPACE) {
      space = 1;
      continue;
    }
    if (kind == LOAM__TK_PUNCT && *p == ';' && e == p + 1) {
      semi++;
      space = 0;
      continue;
    }
    for (; semi > 0; semi--) emit(k, ";", 1);
    if (space && k->len > 0) emit(k, " ", 1);
    semi = space = 0;
    if (isvalue(p, e, kind))
      emit(k, "?", 1);
    else if (isword(p, e, kind, "IN")) {
      const char *end = valuelist(e);
      emit(k, p, (size_t)(e - p));
      if (end != NULL) {
        const char *q = e;
        int k2;
        loam__sql_token(q, &k2);
        if (k2 == LOAM__TK_SPACE) emit(k, " ", 1);
        emit(k, "(?)", 3);
        e = end;
      }
    }
    else
      emit(k, p, (size_t)(e - p));
  }
}


uint64_t loam_fingerprint (const char *sql) {
  sink k = { NULL, 0, 0, LOAM__FNV_BASIS };
  normalize(sql, &k);
  return k.hash;
}


size_t loam_sql_normalize (const char *sql, char *buf, size_t size) {
  sink k = { buf, size, 0, LOAM__FNV_BASIS };
  if (buf == NULL) k.size = 0;
  normalize(sql, &k);
  if (k.size > 0) buf[k.len < k.size ? k.len : k.size - 1] = '\0';
  return k.len;
}

/* }====================================================================== */
