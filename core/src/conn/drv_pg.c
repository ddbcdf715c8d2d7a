/*
** drv_pg.c: the PostgreSQL driver, on top of libpq.
**
** It binds loam values as typed parameters, keeps server-side prepared
** statements in the connection's LRU cache, and reads results either
** whole or one row at a time (single-row mode) for streaming.  Server errors become loam codes
** through their SQLSTATE, so callers branch on the same codes as with
** SQLite.  With a statement cache of 0 only unnamed statements are used,
** which is what a transaction-pooling proxy such as PgBouncer requires.
** Connecting is drv_pg_connect.c's and pipelines, several statements in
** one round trip, drv_pg_pipe.c's; the structs and helpers these files
** share are declared in drv_pg_int.h.
*/
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn/drv_pg_int.h"

/* Type OIDs of the built-in types the driver binds or decodes. */
#define OID_BOOL    16
#define OID_BYTEA   17
#define OID_INT8    20
#define OID_INT2    21
#define OID_INT4    23
#define OID_OID     26
#define OID_FLOAT4  700
#define OID_FLOAT8  701

/* The protocol counts a statement's parameters in 16 bits. */
#define PG_MAX_PARAMS 65535


/* {======================================================================
** Errors
** ======================================================================= */

/*
** SQLSTATE classes and codes to loam codes, most specific first: an entry
** matches when the SQLSTATE starts with it.
*/
static const struct { const char *state; loam_errcode code; } sqlstates[] = {
  { "23505", LOAM_E_UNIQUE_VIOLATION },
  { "23503", LOAM_E_FOREIGN_KEY_VIOLATION },
  { "23502", LOAM_E_NOT_NULL_VIOLATION },
  { "23514", LOAM_E_CHECK_VIOLATION },
  { "23",    LOAM_E_CONSTRAINT_VIOLATION },
  { "42601", LOAM_E_SYNTAX_ERROR },
  { "42P01", LOAM_E_UNDEFINED_TABLE },
  { "42703", LOAM_E_UNDEFINED_COLUMN },
  { "42883", LOAM_E_UNDEFINED_FUNCTION },
  { "42501", LOAM_E_PERMISSION_DENIED },
  { "40001", LOAM_E_SERIALIZATION_FAILURE },
  { "40P01", LOAM_E_DEADLOCK },
  { "57014", LOAM_E_TIMEOUT },               /* statement_timeout, cancel */
  { "55P03", LOAM_E_TIMEOUT },               /* lock_timeout, NOWAIT */
  { "57P0",  LOAM_E_CONNECTION_FAILED },     /* shutdown, crash, terminated session */
  { "08",    LOAM_E_CONNECTION_FAILED },
  { "22",    LOAM_E_DATA_ERROR },
  { "25006", LOAM_E_READ_ONLY },
  { "25P02", LOAM_E_TRANSACTION_ABORTED },
  { "28",    LOAM_E_AUTH_FAILED },
  { "53100", LOAM_E_DISK_FULL },
  { "53200", LOAM_E_NOMEM },
  { "53300", LOAM_E_CONNECTION_FAILED },      /* too many connections */
  { "58030", LOAM_E_IO_ERROR },
  { "XX001", LOAM_E_CORRUPT },                /* data_corrupted */
  { "XX002", LOAM_E_CORRUPT },                /* index_corrupted */
};


loam_errcode loam__pg_code_of_sqlstate (const char *state) {
  size_t i;
  for (i = 0; i < sizeof sqlstates / sizeof sqlstates[0]; i++)
    if (strncmp(state, sqlstates[i].state, strlen(sqlstates[i].state)) == 0)
      return sqlstates[i].code;
  return LOAM_E_DATABASE_ERROR;
}


/*
** Fills 'err' from a failed result, or from the connection when libpq
** could not even produce a result ('r' NULL).  Whatever the SQLSTATE, a
** failure that left the connection bad (a FATAL error, a crash, a network
** loss) is reported as a lost connection, since that is what the caller
** must act on; the SQLSTATE itself is kept.
*/
loam_errcode loam__pg_code (pgconn *pc, const PGresult *r) {
  const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  if (pc->broken || PQstatus(pc->pg) == CONNECTION_BAD) return LOAM_E_CONNECTION_FAILED;
  if (state != NULL && strlen(state) == 5) return loam__pg_code_of_sqlstate(state);
  return r == NULL ? LOAM_E_NOMEM : LOAM_E_DATABASE_ERROR;
}


int loam__pg_report (pgconn *pc, const PGresult *r, loam_error *err) {
  const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  loam_errcode code;
  const char *f;
  if (err == NULL) return LOAM_ERROR;
  code = loam__pg_code(pc, r);
  if (msg == NULL && r != NULL) msg = PQresultErrorMessage(r);
  if (msg == NULL || *msg == '\0') msg = PQerrorMessage(pc->pg);
  if (*msg == '\0') msg = (code == LOAM_E_NOMEM) ? "out of memory" : "unknown error";
  /* 57014 is also a statement_timeout: only a cancel asked for here is 'canceled'. */
  if (state != NULL && strcmp(state, "57014") == 0 && code != LOAM_E_CONNECTION_FAILED &&
      atomic_exchange(&pc->canceled, 0))
    code = LOAM_E_CANCELED;
  loam__err_msg(err, code, msg, strlen(msg));
  if (state != NULL && strlen(state) == 5) memcpy(err->sqlstate, state, 6);
  if (r != NULL) {
    if ((f = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL)) != NULL)
      loam__err_field(&err->detail, f, strlen(f));
    if ((f = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME)) != NULL)
      loam__err_field(&err->constraint, f, strlen(f));
    if ((f = PQresultErrorField(r, PG_DIAG_TABLE_NAME)) != NULL)
      loam__err_field(&err->table, f, strlen(f));
    if ((f = PQresultErrorField(r, PG_DIAG_COLUMN_NAME)) != NULL)
      loam__err_field(&err->column, f, strlen(f));
  }
  return LOAM_ERROR;
}


/* }====================================================================== */


/* {======================================================================
** Prepared statements
** ======================================================================= */

/*
** The cache's destroy callback.  Eviction happens while a statement is
** being released, possibly in a failed transaction or at connection close,
** when a DEALLOCATE would fail or be wasted; so the name is only queued
** here and 'loam__pg_flush_dead' drops the queue before the next prepare.
*/
void loam__pg_destroy_prep (void *ud, void *handle) {
  pgconn *pc = ud;
  pgprep *p = handle;
  if (!pc->forget) {
    if (pc->ndead == pc->capdead) {
      int n = pc->capdead ? pc->capdead * 2 : 8;
      unsigned long *d = realloc(pc->dead, sizeof *d * (size_t)n);
      /* Without memory the statement lives on until the session ends; harmless. */
      if (d != NULL) { pc->dead = d; pc->capdead = n; }
    }
    if (pc->ndead < pc->capdead) pc->dead[pc->ndead++] = p->id;
  }
  free(p);
}


/*
** Deallocates the queued statements in one round trip.  Only outside a
** failed transaction (it would fail there) and when the wire is free;
** prepared statements are not transactional, so a later ROLLBACK does not
** bring them back.
*/
void loam__pg_flush_dead (pgconn *pc) {
  PGTransactionStatusType ts = PQtransactionStatus(pc->pg);
  loam__buf b = LOAM__BUF_INIT;
  int i;
  if (pc->ndead == 0 || (ts != PQTRANS_IDLE && ts != PQTRANS_INTRANS)) return;
  for (i = 0; i < pc->ndead; i++) loam__buf_addf(&b, "DEALLOCATE loam_%lu;", pc->dead[i]);
  if (loam__buf_cstr(&b) != NULL) {
    PQclear(PQexec(pc->pg, b.p));
    pc->ndead = 0;
  }
  loam__buf_free(&b);
}


/*
** Called after a successful DISCARD or DEALLOCATE from the user: the
** server may have dropped our statements, so every cached name is
** forgotten without a DEALLOCATE of its own (at worst one of them outlives
** its use until the session ends, which is better than an error).
*/
void loam__pg_forget_all (pgconn *pc) {
  pc->forget = 1;
  loam__cache_clear(&pc->conn->cache);
  pc->forget = 0;
  pc->ndead = 0;
}


/* }====================================================================== */


/* {======================================================================
** Parameters
** ======================================================================= */

int loam__pg_grow_params (pgconn *pc, int n) {
  int cap = pc->cappar ? pc->cappar : 8;
  void *p;
  if (n <= pc->cappar) return 1;
  while (cap < n) cap *= 2;
#define GROW(field) \
  if ((p = realloc((void *)pc->field, sizeof *pc->field * (size_t)cap)) == NULL) return 0; \
  pc->field = p;
  GROW(vals) GROW(lens) GROW(fmts) GROW(types) GROW(offs)
#undef GROW
  pc->cappar = cap;
  return 1;
}


/*
** Writes a double in the form PostgreSQL reads: float8 takes NaN and the
** infinities as words, which the shared number writer leaves to callers.
*/
void loam__pg_add_double (loam__buf *b, double d, int shortest) {
  if (isnan(d)) loam__buf_adds(b, "NaN");
  else if (isinf(d)) loam__buf_adds(b, d > 0 ? "Infinity" : "-Infinity");
  else loam__buf_double(b, d, shortest);
}


/*
** Fills the connection's parameter arrays from 'p'.  Text goes untyped
** (OID 0) so the server infers dates, JSON and the like from the context;
** integers too, until drv_pg_types.c sets their types for a Parse; blobs
** go in binary format so they need no escaping.
*/
static int bind_params (pgconn *pc, const loam_value *p, int n, loam_error *err) {
  static const char empty[] = "";
  int i;
  if (!loam__pg_grow_params(pc, n)) return loam__err_nomem(err);
  loam__buf_reset(&pc->text);
  for (i = 0; i < n; i++) {
    pc->vals[i] = NULL;
    pc->lens[i] = 0;
    pc->fmts[i] = 0;
    pc->types[i] = 0;
    pc->offs[i] = (size_t)-1;
    switch (p[i].type) {
      case LOAM_NULL:
        break;
      case LOAM_BOOL:
        pc->vals[i] = p[i].u.b ? "t" : "f";
        pc->types[i] = OID_BOOL;
        break;
      case LOAM_INT:
        /* Untyped for now: 'loam__pg_learn_types' decides at Parse time. */
        pc->offs[i] = pc->text.len;
        loam__buf_int(&pc->text, p[i].u.i);
        loam__buf_addc(&pc->text, '\0');
        break;
      case LOAM_DOUBLE:
        pc->offs[i] = pc->text.len;
        loam__pg_add_double(&pc->text, p[i].u.d, 0);
        loam__buf_addc(&pc->text, '\0');
        pc->types[i] = OID_FLOAT8;
        break;
      case LOAM_TEXT:
        /* libpq takes text parameters as C strings and would cut at the NUL. */
        if (p[i].u.s.len > 0 && memchr(p[i].u.s.ptr, '\0', p[i].u.s.len) != NULL)
          return loam__err(err, LOAM_E_DATA_ERROR,
                           "parameter %d: text contains a NUL byte; bind it as a blob", i + 1);
        pc->offs[i] = pc->text.len;
        if (p[i].u.s.len > 0) loam__buf_add(&pc->text, p[i].u.s.ptr, p[i].u.s.len);
        loam__buf_addc(&pc->text, '\0');
        break;
      case LOAM_BLOB:
        if (p[i].u.s.len > (size_t)INT_MAX)
          return loam__err(err, LOAM_E_DATA_ERROR, "parameter %d: blob is too large", i + 1);
        /* A NULL pointer would mean SQL NULL to libpq, not an empty blob. */
        pc->vals[i] = p[i].u.s.ptr ? p[i].u.s.ptr : empty;
        pc->lens[i] = (int)p[i].u.s.len;
        pc->fmts[i] = 1;
        pc->types[i] = OID_BYTEA;
        break;
    }
  }
  if (pc->text.oom) return loam__err_nomem(err);
  /* The text buffer may have moved while growing, so pointers are taken last. */
  for (i = 0; i < n; i++)
    if (pc->offs[i] != (size_t)-1) pc->vals[i] = pc->text.p + pc->offs[i];
  return LOAM_OK;
}


/*
** The cache key: the SQL text, a NUL, then one character per parameter
** type.  An integer's character also tells the smallest integer type its
** value fits ('loam__pg_int_class'), since its parameter type may depend
** on that.
*/
static int make_key (pgconn *pc, const char *sql, const loam_value *p, int n) {
  int i;
  loam__buf_reset(&pc->key);
  loam__buf_add(&pc->key, sql, strlen(sql) + 1);
  for (i = 0; i < n; i++)
    loam__buf_addc(&pc->key, p[i].type == LOAM_INT ? (char)('a' + loam__pg_int_class(p[i].u.i))
                                                  : (char)('0' + (int)p[i].type));
  return !pc->key.oom;
}

/* }====================================================================== */


/* {======================================================================
** Results
** ======================================================================= */

/* Reads and discards results until libpq says the command is over. */
static void drain (PGconn *pg) {
  PGresult *r;
  while ((r = PQgetResult(pg)) != NULL) PQclear(r);
}


/*
** COPY would leave the connection waiting for data loam never sends or
** reads, so it is ended at once (an error for COPY FROM STDIN, a skipped
** stream for COPY TO STDOUT) and reported as misuse.
*/
static int refuse_copy (pgconn *pc, PGresult *r, loam_error *err) {
  ExecStatusType st = PQresultStatus(r);
  PQclear(r);
  if (st == PGRES_COPY_OUT) {
    char *buf;
    while (PQgetCopyData(pc->pg, &buf, 0) > 0) PQfreemem(buf);
  }
  else PQputCopyEnd(pc->pg, "COPY is not supported through loam_query");
  drain(pc->pg);
  return loam__err(err, LOAM_E_MISUSE,
                   "COPY FROM STDIN and COPY TO STDOUT are not supported by loam_query");
}


static int is_copy (ExecStatusType st) {
  return st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH;
}


/*
** Rows changed by the command of 'r'.  PostgreSQL counts the rows a SELECT
** returned or a FETCH moved; those changed nothing.
*/
static int64_t changes_of (PGresult *r) {
  const char *st = PQcmdStatus(r), *n = PQcmdTuples(r);
  if ((PQresultStatus(r) == PGRES_TUPLES_OK && strncmp(st, "SELECT", 6) == 0) ||
      strncmp(st, "FETCH", 5) == 0 || strncmp(st, "MOVE", 4) == 0 || *n == '\0')
    return 0;
  return (int64_t)strtoll(n, NULL, 10);
}


/*
** Copies the column names of 'r' into one block (in single-row mode every
** row is a new PGresult, so they cannot point into one) and notes whether
** any column needs bytea decoding.
*/
static int describe (pgstmt *s, PGresult *r, loam_error *err) {
  int n = PQnfields(r), i;
  size_t size = (sizeof(char *) + sizeof(Oid)) * (size_t)n;
  char *p;
  s->base.ncols = n;
  if (n == 0) return LOAM_OK;
  for (i = 0; i < n; i++) size += strlen(PQfname(r, i)) + 1;
  s->names = malloc(size);
  if (s->names == NULL) return loam__err_nomem(err);
  s->ftypes = (Oid *)(s->names + n);
  p = (char *)(s->ftypes + n);
  for (i = 0; i < n; i++) {
    size_t len = strlen(PQfname(r, i)) + 1;
    memcpy(p, PQfname(r, i), len);
    s->names[i] = p;
    p += len;
    s->ftypes[i] = PQftype(r, i);
    if (s->ftypes[i] == OID_BYTEA) s->hasbytea = 1;
  }
  if (s->hasbytea) {
    s->blobs = calloc((size_t)n, sizeof *s->blobs);
    s->bloblens = calloc((size_t)n, sizeof *s->bloblens);
    if (s->blobs == NULL || s->bloblens == NULL) return loam__err_nomem(err);
  }
  return LOAM_OK;
}


static void free_blobs (pgstmt *s) {
  int i;
  if (s->blobs == NULL) return;
  for (i = 0; i < s->base.ncols; i++) {
    if (s->blobs[i] != NULL) PQfreemem(s->blobs[i]);
    s->blobs[i] = NULL;
  }
}


/*
** Makes row 's->row' of 's->res' current.  bytea values are decoded here
** rather than in the column reader, which cannot report running out of
** memory.
*/
static int enter_row (pgstmt *s, loam_error *err) {
  int i;
  if (!s->hasbytea) return LOAM_ROW;
  for (i = 0; i < s->base.ncols; i++) {
    if (s->ftypes[i] != OID_BYTEA || PQgetisnull(s->res, s->row, i)) continue;
    s->blobs[i] = PQunescapeBytea((const unsigned char *)PQgetvalue(s->res, s->row, i),
                                  &s->bloblens[i]);
    if (s->blobs[i] == NULL) return loam__err_nomem(err);
  }
  return LOAM_ROW;
}


/*
** Parses an integer in the server's text form (an optional '-', then
** digits, always within 64 bits): strtoll's locale and error handling
** cost more than the rest of reading the value.
*/
static int64_t parse_int (const char *v) {
  uint64_t u = 0;
  int neg = *v == '-';
  if (neg) v++;
  for (; *v >= '0' && *v <= '9'; v++) u = u * 10 + (uint64_t)(*v - '0');
  return neg ? (int64_t)(0 - u) : (int64_t)u;
}


/* Parses a float4/float8 in PostgreSQL's text form, independent of the locale. */
static double parse_double (const char *v) {
  const char *dp = localeconv()->decimal_point;
  char tmp[64];
  size_t n, i;
  if (strcmp(v, "NaN") == 0) return NAN;
  if (strcmp(v, "Infinity") == 0) return HUGE_VAL;
  if (strcmp(v, "-Infinity") == 0) return -HUGE_VAL;
  n = strlen(v);
  if (dp == NULL || dp[0] == '.' || dp[0] == '\0' || dp[1] != '\0' || n >= sizeof tmp)
    return strtod(v, NULL);
  for (i = 0; i <= n; i++) tmp[i] = (v[i] == '.') ? dp[0] : v[i];
  return strtod(tmp, NULL);
}

/* }====================================================================== */


/* {======================================================================
** Driver entry points
** ======================================================================= */

static void quiet_notice (void *arg, const char *message) {
  /* A library must not write to stderr; notices are not errors. */
  (void)arg;
  (void)message;
}


static int pg_open (loam_conn *conn, const loam__url *u, const loam_conn_opts *o,
                    loam_error *err) {
  PGconn *pg = loam__pg_connect(u, o, err);
  pgconn *pc;
  if (pg == NULL) return LOAM_ERROR;
  pc = calloc(1, sizeof *pc);
  if (pc == NULL) {
    PQfinish(pg);
    return loam__err_nomem(err);
  }
  PQsetNoticeProcessor(pg, quiet_notice, NULL);
  if ((pc->cancel = PQgetCancel(pg)) == NULL) {
    PQfinish(pg);
    free(pc);
    return loam__err_nomem(err);
  }
  atomic_init(&pc->canceled, 0);
  pc->pg = pg;
  pc->conn = conn;
  conn->impl = pc;
  loam__cache_init(&conn->cache, o->statement_cache, loam__pg_destroy_prep, pc);
  loam__pg_types_init(pc, o->statement_cache);
  return LOAM_OK;
}


static void pg_close (loam_conn *conn) {
  pgconn *pc = conn->impl;
  if (pc == NULL) return;
  PQfinish(pc->pg);
  PQfreeCancel(pc->cancel);
  loam__pg_types_free(pc);
  free(pc->dead);
  loam__buf_free(&pc->key);
  loam__buf_free(&pc->sql);
  loam__buf_free(&pc->text);
  free((void *)pc->vals);
  free(pc->lens);
  free(pc->fmts);
  free(pc->types);
  free(pc->offs);
  free(pc);
  conn->impl = NULL;
}


static void free_stmt (pgstmt *s) {
  free_blobs(s);
  PQclear(s->res);
  s->res = NULL;
  free(s->names);
  s->ftypes = NULL;
  free(s->blobs);
  free(s->bloblens);
  s->names = NULL;
  s->blobs = NULL;
  s->bloblens = NULL;
}


/*
** Looks up or creates the prepared statement for 'sql'.  '*prep' is NULL
** when caching is off (the caller then runs 'pc->sql' unnamed); '*entry'
** is the pinned cache entry, or NULL when the statement could not be
** cached and the caller owns '*prep'.  With 'fresh' NULL a new statement
** is prepared at once; in a pipeline ('fresh' not NULL) its Parse is only
** queued, and '*fresh' tells whether one was, since its result comes
** later and may be a failure.
*/
int loam__pg_prepare (pgconn *pc, const char *sql, loam_sql_kind kind, const loam_value *params,
                      int nparams, int *fresh, pgprep **prep, loam__centry **entry,
                      loam_error *err) {
  loam__cache *cache = &pc->conn->cache;
  /* DISCARD and DEALLOCATE run unnamed: they may drop what the cache holds. */
  int cached = cache->capacity > 0 && kind != LOAM_SQL_RESET;
  int want = 0;
  *prep = NULL;
  *entry = NULL;
  if (fresh != NULL) *fresh = 0;
  /* libpq would refuse to send it, with no result to report from. */
  if (nparams > PG_MAX_PARAMS)
    return loam__err(err, LOAM_E_MISUSE,
                     "statement has %d parameters; PostgreSQL takes at most %d", nparams,
                     PG_MAX_PARAMS);
  if (cached) {
    if (!make_key(pc, sql, params, nparams)) return loam__err_nomem(err);
    if ((*entry = loam__cache_get(cache, pc->key.p, pc->key.len)) != NULL) {
      /* A key with the same types implies the same, already checked, count. */
      if (bind_params(pc, params, nparams, err) != LOAM_OK) {
        loam__cache_release(cache, *entry);
        *entry = NULL;
        return LOAM_ERROR;
      }
      *prep = loam__cache_handle(*entry);
      return LOAM_OK;
    }
  }
  loam__buf_reset(&pc->sql);
  if (loam__sql_to_dollar(sql, &pc->sql, &want, err) != LOAM_OK) return LOAM_ERROR;
  if (want != nparams)
    return loam__err(err, LOAM_E_MISUSE, "statement takes %d parameter%s, got %d",
                     want, want == 1 ? "" : "s", nparams);
  if (bind_params(pc, params, nparams, err) != LOAM_OK) return LOAM_ERROR;
  /* A BEGIN waiting goes first, alone: what follows is a round trip of its own. */
  if (fresh == NULL && pc->conn->tx_pending != NULL && loam__pg_begin_now(pc, err) != LOAM_OK)
    return LOAM_ERROR;
  if (loam__pg_has_int(params, nparams)) {
    if (!cached && !make_key(pc, sql, params, nparams)) return loam__err_nomem(err);
    if (loam__pg_learn_types(pc, params, nparams, fresh == NULL, err) != LOAM_OK)
      return LOAM_ERROR;
  }
  if (cached) {
    PGresult *r;
    pgprep *p = malloc(sizeof *p);
    if (p == NULL) return loam__err_nomem(err);
    p->id = ++pc->lastid;
    snprintf(p->name, sizeof p->name, "loam_%lu", p->id);
    if (fresh != NULL) {
      /* The pipeline flushed the queue before it started: no PQexec inside one. */
      if (!PQsendPrepare(pc->pg, p->name, pc->sql.p, nparams, pc->types)) {
        free(p);
        return loam__pg_report(pc, NULL, err);
      }
      *fresh = 1;
      *prep = p;
      *entry = loam__cache_put(cache, pc->key.p, pc->key.len, p);
      return LOAM_OK;
    }
    loam__pg_flush_dead(pc);
    r = PQprepare(pc->pg, p->name, pc->sql.p, nparams, pc->types);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      loam__pg_report(pc, r, err);
      PQclear(r);
      free(p);
      return LOAM_ERROR;
    }
    PQclear(r);
    *prep = p;
    *entry = loam__cache_put(cache, pc->key.p, pc->key.len, p);
  }
  return LOAM_OK;
}


/* Whether 'c' holds the key in 'pc->key' (which then counts as just used). */
static int holds (pgconn *pc, loam__cache *c) {
  loam__centry *e = loam__cache_get(c, pc->key.p, pc->key.len);
  if (e != NULL) loam__cache_release(c, e);
  return e != NULL;
}


/*
** Cheap when nothing is to learn: a statement already prepared needs no
** types, and one whose types are known needs no probe.
*/
void loam__pg_warm_types (pgconn *pc, const char *sql, const loam_value *params, int nparams) {
  loam_error ignored = LOAM_ERROR_INIT;
  int want;
  if (!loam__pg_has_int(params, nparams) || !make_key(pc, sql, params, nparams) ||
      holds(pc, &pc->conn->cache) || holds(pc, &pc->memo))
    return;
  loam__buf_reset(&pc->sql);
  if (loam__sql_to_dollar(sql, &pc->sql, &want, &ignored) == LOAM_OK && want == nparams &&
      bind_params(pc, params, nparams, &ignored) == LOAM_OK)
    loam__pg_learn_types(pc, params, nparams, 1, &ignored);
  loam_error_clear(&ignored);
}


/* Gives the prepared statement back to the cache, or disposes of an uncached one. */
static void unprepare (pgconn *pc, pgprep *prep, loam__centry *entry) {
  if (entry != NULL) loam__cache_release(&pc->conn->cache, entry);
  else if (prep != NULL) loam__pg_destroy_prep(pc, prep);
}


/* A new statement over the result 'r' (which it owns from now on, even on failure). */
pgstmt *loam__pg_wrap (PGresult *r, loam_error *err) {
  pgstmt *s = calloc(1, sizeof *s);
  if (s == NULL) {
    PQclear(r);
    loam__err_nomem(err);
    return NULL;
  }
  s->res = r;
  s->row = -1;
  s->nrows = PQntuples(r);
  if (describe(s, r, err) != LOAM_OK) {
    free_stmt(s);
    free(s);
    return NULL;
  }
  return s;
}


/*
** The statement is sent whole and its first result read here, in both
** modes, so that errors surface from 'loam_query' and the column count is
** known.  The prepared statement is released as soon as it was sent: the
** server keeps what the running command needs, and an eviction meanwhile
** only queues a DEALLOCATE.
*/
static int pg_query (loam_conn *conn, const char *sql, loam_sql_kind kind,
                     const loam_value *params, int nparams, int flags, loam_stmt **out,
                     loam_error *err) {
  pgconn *pc = conn->impl;
  PGconn *pg = pc->pg;
  pgprep *prep;
  loam__centry *entry;
  PGresult *r;
  ExecStatusType st;
  pgstmt *s;
  const char *name = NULL;
  int stream = (flags & LOAM_STREAM) != 0, sent = 1;
  *out = NULL;
  /* A cancel that reached no statement is not kept for this one. */
  atomic_store_explicit(&pc->canceled, 0, memory_order_relaxed);
  if (conn->streaming != NULL)
    return loam__err(err, LOAM_E_MISUSE, "connection is busy streaming another result; "
                                         "finish or close that iteration first");
  if (PQstatus(pg) != CONNECTION_OK)
    return loam__err(err, LOAM_E_CONNECTION_FAILED, "the connection to the server was lost");
  /*
  ** A stream reads its rows one by one, which a pipeline cannot; raw SQL
  ** of no known kind may be a COPY, which would leave the pipeline waiting.
  */
  if ((stream || kind == LOAM_SQL_UNKNOWN) && conn->tx_pending != NULL &&
      loam__pg_begin_now(pc, err) != LOAM_OK)
    return LOAM_ERROR;
  /*
  ** A BEGIN still waiting after this found the statement prepared (every
  ** other way sends it first): the two go together.
  */
  if (loam__pg_prepare(pc, sql, kind, params, nparams, NULL, &prep, &entry, err) != LOAM_OK)
    return LOAM_ERROR;
  if (prep != NULL) name = prep->name;
  if (conn->tx_pending != NULL)
    r = loam__pg_begin_with(pc, name, nparams);
  else if (!stream) {
    if (prep != NULL)
      r = PQexecPrepared(pg, name, nparams, pc->vals, pc->lens, pc->fmts, 0);
    else
      r = PQexecParams(pg, pc->sql.p, nparams, pc->types, pc->vals, pc->lens, pc->fmts, 0);
  }
  else {
    if (prep != NULL)
      sent = PQsendQueryPrepared(pg, name, nparams, pc->vals, pc->lens, pc->fmts, 0);
    else
      sent = PQsendQueryParams(pg, pc->sql.p, nparams, pc->types, pc->vals, pc->lens,
                               pc->fmts, 0);
    if (sent) PQsetSingleRowMode(pg);
    r = sent ? PQgetResult(pg) : NULL;
  }
  unprepare(pc, prep, entry);
  st = PQresultStatus(r);
  if (r != NULL && is_copy(st)) return refuse_copy(pc, r, err);
  if (r == NULL || (st != PGRES_TUPLES_OK && st != PGRES_SINGLE_TUPLE &&
                    st != PGRES_COMMAND_OK && st != PGRES_EMPTY_QUERY)) {
    loam__pg_report(pc, r, err);
    PQclear(r);
    if (stream && sent) drain(pg);
    return LOAM_ERROR;
  }
  if (st == PGRES_COMMAND_OK && kind == LOAM_SQL_RESET) loam__pg_forget_all(pc);
  if ((s = loam__pg_wrap(r, err)) == NULL) {
    if (stream) drain(pg);
    return LOAM_ERROR;
  }
  s->stream = stream;
  if (stream) {
    if (st == PGRES_SINGLE_TUPLE) {
      s->primed = 1;
      s->row = 0;
      conn->streaming = &s->base;
    }
    else {
      /* The whole result is already here (no rows, or a command): read it as such. */
      s->stream = 0;
      drain(pg);
    }
  }
  *out = &s->base;
  return LOAM_OK;
}


/* Ends a stream: its result is complete and the connection is free again. */
static int stream_done (pgstmt *s, PGresult *r) {
  loam_conn *conn = s->base.conn;
  s->res = r;
  s->base.changes = changes_of(r);
  drain(((pgconn *)conn->impl)->pg);
  if (conn->streaming == &s->base) conn->streaming = NULL;
  return LOAM_DONE;
}


static int pg_step (loam_stmt *base, loam_error *err) {
  pgstmt *s = (pgstmt *)base;
  pgconn *pc = base->conn->impl;
  PGresult *r;
  free_blobs(s);
  if (!s->stream) {
    if (++s->row < s->nrows) return enter_row(s, err);
    s->base.changes = changes_of(s->res);
    return LOAM_DONE;
  }
  if (s->primed) {
    s->primed = 0;
    return enter_row(s, err);
  }
  PQclear(s->res);
  s->res = NULL;
  r = PQgetResult(pc->pg);
  switch (PQresultStatus(r)) {
    case PGRES_SINGLE_TUPLE:
      s->res = r;
      return enter_row(s, err);
    case PGRES_TUPLES_OK: case PGRES_COMMAND_OK:
      return stream_done(s, r);
    default:
      if (r == NULL)
        loam__err(err, PQstatus(pc->pg) == CONNECTION_BAD ? LOAM_E_CONNECTION_FAILED
                                                          : LOAM_E_DATABASE_ERROR,
                  "the result ended without completing");
      else loam__pg_report(pc, r, err);
      PQclear(r);
      drain(pc->pg);
      if (base->conn->streaming == base) base->conn->streaming = NULL;
      return LOAM_ERROR;
  }
}


static const char *pg_column_name (const loam_stmt *base, int i) {
  return ((const pgstmt *)base)->names[i];
}


static void pg_column (loam_stmt *base, int i, loam_value *out) {
  pgstmt *s = (pgstmt *)base;
  const char *v;
  if (PQgetisnull(s->res, s->row, i)) { *out = loam_null(); return; }
  v = PQgetvalue(s->res, s->row, i);
  switch (s->ftypes[i]) {
    case OID_BOOL:
      *out = loam_bool(v[0] == 't');
      break;
    case OID_INT8: case OID_INT2: case OID_INT4: case OID_OID:
      *out = loam_int(parse_int(v));
      break;
    case OID_FLOAT4: case OID_FLOAT8:
      *out = loam_double(parse_double(v));
      break;
    case OID_BYTEA:
      *out = loam_blob(s->blobs[i], s->bloblens[i]);
      break;
    default:
      *out = loam_text(v, (size_t)PQgetlength(s->res, s->row, i));
      break;
  }
}


/*
** A stream closed before its end is drained rather than cancelled: a
** cancel request travels on a separate connection and may arrive after
** the command ended, hitting the next one, and a cancelled command aborts
** the enclosing transaction.  Draining discards each row as it arrives,
** so memory stays constant; the cost is reading the rest of the result.
*/
void loam__pg_finish (loam_stmt *base) {
  pgstmt *s = (pgstmt *)base;
  loam_conn *conn = base->conn;
  if (s->stream && conn != NULL && conn->streaming == base) {
    PQclear(s->res);
    s->res = NULL;
    drain(((pgconn *)conn->impl)->pg);
    conn->streaming = NULL;
  }
  free_stmt(s);
}


/* ACTIVE (a command running) and UNKNOWN (a broken link) count as inside: no BEGIN could run. */
static int pg_in_transaction (loam_conn *conn) {
  PGTransactionStatusType ts = PQtransactionStatus(((pgconn *)conn->impl)->pg);
  if (ts == PQTRANS_IDLE) return conn->tx_pending != NULL ? LOAM__TX_OPEN : LOAM__TX_NONE;
  return ts == PQTRANS_INERROR ? LOAM__TX_FAILED : LOAM__TX_OPEN;
}


/*
** libpq marks the connection bad only when a call meets the broken link,
** so a session the server ended while the connection sat unused looks
** fine until the round trip of 'ping' (an empty query) tries it.
*/
static int pg_alive (loam_conn *conn, int ping) {
  pgconn *pc = conn->impl;
  PGconn *pg = pc->pg;
  if (pc->broken) return 0;
  if (ping && PQstatus(pg) == CONNECTION_OK && conn->streaming == NULL) {
    PGresult *r = PQexec(pg, "");
    PQclear(r);
  }
  return PQstatus(pg) == CONNECTION_OK;
}


/*
** 'PQcancel' is thread-safe and works on its own socket; the flag is set
** first so that the statement's failure, which may come at once, finds it.
*/
static int pg_cancel (loam_conn *conn, loam_error *err) {
  pgconn *pc = conn->impl;
  char msg[256];
  atomic_store(&pc->canceled, 1);
  if (PQcancel(pc->cancel, msg, (int)sizeof msg)) return LOAM_OK;
  atomic_store(&pc->canceled, 0);
  return loam__err(err, LOAM_E_CONNECTION_FAILED, "the cancel request failed: %s", msg);
}


static int pg_server_pid (loam_conn *conn) {
  return PQbackendPID(((pgconn *)conn->impl)->pg);
}


/*
** Runs 'sql' (no parameters, no rows) as a simple query and reports it
** as a statement: BEGIN, COMMIT, ROLLBACK and savepoints, for which a
** prepared statement would cost more than the statement itself.
*/
static int simple (pgconn *pc, const char *sql, loam_error *err) {
  loam_error local = LOAM_ERROR_INIT;
  int64_t t0 = loam__clock_ns();
  int rc = LOAM_OK;
  PGresult *r;
  if (err == NULL) err = &local;
  atomic_store_explicit(&pc->canceled, 0, memory_order_relaxed);
  if (PQstatus(pc->pg) != CONNECTION_OK)
    rc = loam__err(err, LOAM_E_CONNECTION_FAILED, "the connection to the server was lost");
  else {
    r = PQexec(pc->pg, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) rc = loam__pg_report(pc, r, err);
    else pc->conn->writes++;   /* no SELECT: counted as 'loam__query' counts ('loam_conn_writes') */
    PQclear(r);
  }
  loam__trace_done(pc->conn, sql, NULL, 0, 0, loam__clock_ns() - t0,
                   rc == LOAM_OK ? LOAM_E_NONE : err->code);
  loam_error_clear(&local);
  return rc;
}


int loam__pg_begin_now (pgconn *pc, loam_error *err) {
  const char *sql = pc->conn->tx_pending;
  loam__tx_pend(pc->conn, NULL);
  return simple(pc, sql, err);
}


static int pg_exec_tx (loam_conn *conn, const char *sql, loam_error *err) {
  pgconn *pc = conn->impl;
  if (conn->streaming != NULL)
    return loam__err(err, LOAM_E_MISUSE, "connection is busy streaming another result; "
                                         "finish or close that iteration first");
  if (conn->tx_pending != NULL && loam__pg_begin_now(pc, err) != LOAM_OK) return LOAM_ERROR;
  return simple(pc, sql, err);
}


const loam__driver loam__pg_driver = {
  "postgresql",
  pg_open,
  pg_close,
  pg_query,
  pg_step,
  pg_column_name,
  pg_column,
  loam__pg_finish,
  loam__pg_pipeline,
  pg_in_transaction,
  loam__pg_copy_rows,
  pg_alive,
  pg_cancel,
  pg_server_pid,
  pg_exec_tx,
  1            /* BEGIN goes out with the transaction's first statement */
};

/* }====================================================================== */
