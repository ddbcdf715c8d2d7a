/*
** drv_pg_types.c: the types of integer parameters on PostgreSQL.
**
** A Lua integer may stand where the server wants int2, int4, int8,
** numeric or oid (pg_terminate_backend(?), a smallint column, WHERE oid
** = ?).  Bound as int8 it fails in calls that have no bigint version;
** bound untyped (OID 0) it takes the type the server infers from the
** context, except where the context says nothing ('SELECT ?',
** 'coalesce(?, ?)'): there the server infers text, and the integer would
** come back as a string.  So a statement with integer parameters is first
** parsed with those untyped and described (the probe); an integer
** parameter the server left as text or unknown is then typed int8, the
** others keep the type the server inferred, unless the value does not
** fit it: a value past int4 where the server inferred int4 ('? + 1',
** 'int4col = ?') is typed int8, so it compares or adds as it would on
** SQLite instead of failing as out of range.  (The statement's key tells
** the range of each integer, so a value of another range gets its own
** statement.)  When the server cannot
** decide at all ('? IS NULL', 'generate_series(?, ?)'), every integer
** parameter is typed int8, the binding loam always had.
**
** What a probe learned is kept per connection in a cache keyed like the
** statement cache (SQL text and parameter kinds), so each statement shape
** is probed once: with the statement cache on, a cached statement needs no
** types at all, and with it off (behind a transaction-pooling proxy) the
** learned types serve every execution.  The probe goes out as one
** pipeline (Parse, Describe, Sync) on the unnamed statement: one round
** trip, and one server connection behind a proxy.  Inside a transaction
** it runs under a savepoint, since a refused Parse would abort the
** transaction.
*/
#include <stdlib.h>
#include <string.h>

#include "conn/drv_pg_int.h"

#define OID_INT8     20
#define OID_INT2     21
#define OID_INT4     23
#define OID_TEXT     25
#define OID_UNKNOWN  705

/* SQLSTATEs of a server that could not choose a type for a parameter. */
#define INDETERMINATE_DATATYPE "42P18"
#define AMBIGUOUS_FUNCTION     "42725"

/*
** The most parameters a probe describes.  libpq takes a ParameterDescription
** message of at most 30000 bytes (4 per parameter) and drops the connection
** on a longer one, so statements with more parameters (large multi-row
** inserts) bind their integers as int8 without a probe.
*/
#define PROBE_MAX 7000

/* Learned types of at least this many statement shapes are kept. */
#define MEMO_MIN 64


/* A learned list of parameter types (the memo cache's handle). */
typedef struct learned {
  int n;
  Oid types[1];               /* 'n' of them */
} learned;


static void destroy_learned (void *ud, void *handle) {
  (void)ud;
  free(handle);
}


void loam__pg_types_init (pgconn *pc, int statement_cache) {
  loam__cache_init(&pc->memo, statement_cache > MEMO_MIN ? statement_cache : MEMO_MIN,
                   destroy_learned, NULL);
}


void loam__pg_types_free (pgconn *pc) {
  loam__cache_clear(&pc->memo);
}


int loam__pg_int_class (int64_t v) {
  if (v >= -32768 && v <= 32767) return 0;
  if (v >= -2147483647 - 1 && v <= 2147483647) return 1;
  return 2;
}


/* The type for integer 'v' where the server inferred 'inferred'. */
static Oid int_type (Oid inferred, int64_t v) {
  int cls = loam__pg_int_class(v);
  if (inferred == OID_TEXT || inferred == OID_UNKNOWN) return OID_INT8;
  if (inferred == OID_INT2 && cls > 0) return cls == 1 ? OID_INT4 : OID_INT8;
  if (inferred == OID_INT4 && cls > 1) return OID_INT8;
  return inferred;
}


int loam__pg_has_int (const loam_value *params, int n) {
  int i;
  for (i = 0; i < n; i++)
    if (params[i].type == LOAM_INT) return 1;
  return 0;
}


/* Types every integer parameter of 'params' as int8. */
static void all_int8 (pgconn *pc, const loam_value *params, int n) {
  int i;
  for (i = 0; i < n; i++)
    if (params[i].type == LOAM_INT) pc->types[i] = OID_INT8;
}


/* Keeps the types now in 'pc->types' for the shape whose key is in 'pc->key'. */
static void remember (pgconn *pc, int n) {
  learned *l = malloc(sizeof *l + sizeof(Oid) * (size_t)(n > 0 ? n - 1 : 0));
  loam__centry *e;
  if (l == NULL) return;   /* without memory the next execution probes again */
  l->n = n;
  memcpy(l->types, pc->types, sizeof(Oid) * (size_t)n);
  e = loam__cache_put(&pc->memo, pc->key.p, pc->key.len, l);
  if (e != NULL) loam__cache_release(&pc->memo, e);
  else free(l);
}


/* Reads the results of one pipelined command: its first result, the rest discarded. */
static PGresult *next_result (PGconn *pg) {
  PGresult *r = PQgetResult(pg), *more;
  if (r != NULL && PQresultStatus(r) != PGRES_PIPELINE_SYNC)
    while ((more = PQgetResult(pg)) != NULL) PQclear(more);
  return r;
}


/*
** Sends the probe of 'pc->sql' (with 'pc->types') and reads it back.
** OUT: '*desc' the Describe result when the Parse succeeded (the caller
** clears it), '*state' the SQLSTATE of a refused Parse ("" otherwise).
** Returns LOAM_ERROR only when the connection failed.
*/
static int probe (pgconn *pc, int n, PGresult **desc, char state[6], loam_error *err) {
  PGconn *pg = pc->pg;
  int intx = PQtransactionStatus(pg) == PQTRANS_INTRANS, alive = 1, rc = LOAM_OK;
  PGresult *r;
  *desc = NULL;
  state[0] = '\0';
  if (!PQenterPipelineMode(pg)) return loam__pg_report(pc, NULL, err);
  if ((intx && !PQsendQueryParams(pg, "SAVEPOINT loam_probe", 0, NULL, NULL, NULL, NULL, 0)) ||
      !PQsendPrepare(pg, "", pc->sql.p, n, pc->types) || !PQsendDescribePrepared(pg, "") ||
      (intx && !PQsendQueryParams(pg, "RELEASE SAVEPOINT loam_probe", 0, NULL, NULL, NULL,
                                  NULL, 0)) ||
      !PQpipelineSync(pg)) {
    loam__pg_report(pc, NULL, err);
    loam__pg_leave_pipeline(pc);
    return LOAM_ERROR;
  }
  if (intx) {
    r = next_result(pg);
    alive = r != NULL && PQresultStatus(r) != PGRES_PIPELINE_SYNC;
    PQclear(r);
  }
  if (alive) {
    r = next_result(pg);
    alive = r != NULL && PQresultStatus(r) != PGRES_PIPELINE_SYNC;
    if (alive && PQresultStatus(r) != PGRES_COMMAND_OK) {
      const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      memcpy(state, s != NULL && strlen(s) == 5 ? s : "XX000", 6);
    }
    PQclear(r);
  }
  if (alive) {
    r = next_result(pg);
    alive = r != NULL && PQresultStatus(r) != PGRES_PIPELINE_SYNC;
    if (alive && PQresultStatus(r) == PGRES_COMMAND_OK) *desc = r;
    else PQclear(r);
  }
  if (alive && intx) {
    r = next_result(pg);
    alive = r != NULL && PQresultStatus(r) != PGRES_PIPELINE_SYNC;
    PQclear(r);
  }
  if (alive) {
    r = PQgetResult(pg);
    alive = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
    PQclear(r);
  }
  loam__pg_leave_pipeline(pc);
  if (!alive) {
    PQclear(*desc);
    *desc = NULL;
    return loam__pg_report(pc, NULL, err);
  }
  /* A refused Parse aborted the transaction back to the savepoint only. */
  if (intx && state[0] != '\0') {
    r = PQexec(pg, "ROLLBACK TO SAVEPOINT loam_probe; RELEASE SAVEPOINT loam_probe");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) rc = loam__pg_report(pc, r, err);
    PQclear(r);
  }
  return rc;
}


int loam__pg_learn_types (pgconn *pc, const loam_value *params, int n, int can_probe,
                          loam_error *err) {
  loam__centry *e = loam__cache_get(&pc->memo, pc->key.p, pc->key.len);
  PGresult *desc;
  char state[6];
  int i;
  if (e != NULL) {
    const learned *l = loam__cache_handle(e);
    memcpy(pc->types, l->types, sizeof(Oid) * (size_t)l->n);
    loam__cache_release(&pc->memo, e);
    return LOAM_OK;
  }
  /* In a pipeline, past what libpq can describe, or where the Parse would fail anyway. */
  if (!can_probe || n > PROBE_MAX || PQtransactionStatus(pc->pg) == PQTRANS_INERROR) {
    all_int8(pc, params, n);
    return LOAM_OK;
  }
  if (probe(pc, n, &desc, state, err) != LOAM_OK) return LOAM_ERROR;
  if (desc == NULL) {
    all_int8(pc, params, n);
    /* Kept only when the refusal was about the types: other errors may go away. */
    if (strcmp(state, INDETERMINATE_DATATYPE) == 0 || strcmp(state, AMBIGUOUS_FUNCTION) == 0)
      remember(pc, n);
    return LOAM_OK;
  }
  for (i = 0; i < n; i++) {
    if (params[i].type != LOAM_INT) continue;
    pc->types[i] = int_type(i < PQnparams(desc) ? PQparamtype(desc, i) : OID_UNKNOWN,
                            params[i].u.i);
  }
  PQclear(desc);
  remember(pc, n);
  return LOAM_OK;
}


/*
** The key of the shape is the text and one '#' per parameter, which no
** key of 'loam__pg_learn_types' has, so the two never share an entry.
*/
int loam__pg_param_types (pgconn *pc, const char *sql, int n, int *known, loam_error *err) {
  loam__centry *e;
  PGresult *desc;
  char state[6];
  int want, i;
  *known = 0;
  if (!loam__pg_grow_params(pc, n)) return loam__err_nomem(err);
  loam__buf_reset(&pc->key);
  loam__buf_add(&pc->key, sql, strlen(sql) + 1);
  for (i = 0; i < n; i++) loam__buf_addc(&pc->key, '#');
  if (pc->key.oom) return loam__err_nomem(err);
  if ((e = loam__cache_get(&pc->memo, pc->key.p, pc->key.len)) != NULL) {
    const learned *l = loam__cache_handle(e);
    memcpy(pc->types, l->types, sizeof(Oid) * (size_t)l->n);
    loam__cache_release(&pc->memo, e);
    *known = 1;
    return LOAM_OK;
  }
  if (n > PROBE_MAX || PQtransactionStatus(pc->pg) == PQTRANS_INERROR) return LOAM_OK;
  loam__buf_reset(&pc->sql);
  if (loam__sql_to_dollar(sql, &pc->sql, &want, err) != LOAM_OK) return LOAM_ERROR;
  if (want != n) return LOAM_OK;
  memset(pc->types, 0, sizeof(Oid) * (size_t)n);
  if (probe(pc, n, &desc, state, err) != LOAM_OK) return LOAM_ERROR;
  if (desc == NULL) return LOAM_OK;
  for (i = 0; i < n; i++) pc->types[i] = i < PQnparams(desc) ? PQparamtype(desc, i) : 0;
  PQclear(desc);
  remember(pc, n);
  *known = 1;
  return LOAM_OK;
}
