/*
** drv_sqlite.c: the SQLite driver, the embedded default backend.
**
** Transport only: open with the settings every loam connection needs
** (foreign keys on, a busy timeout, WAL for writable files unless the URL
** names another journal mode), prepare through the statement cache, bind,
** step, and translate SQLite's result codes into loam's error codes and
** fields.  SQLite stores booleans as integers, so
** columns declared BOOLEAN are turned back into booleans here, which keeps
** results alike on both backends.  Likewise columns declared NUMERIC(p,s)
** (or NUMERIC, DECIMAL) come back as decimal text, the form PostgreSQL
** gives 'numeric' in: SQLite's NUMERIC affinity stores them as INTEGER or
** REAL, and the REAL of a decimal of at most 15 significant digits (all
** that loam's models write there) prints back to exactly those digits.
*/
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "conn/conn_int.h"
#include "sql/sql_int.h"


/*
** The statement timeout: each 'sq_step' sets 'deadline', which a progress
** handler checks every PROGRESS_OPS virtual machine instructions; past
** it, the handler interrupts the step and says so in 'timed_out', which
** tells a timeout apart from an interrupt that 'loam_conn_cancel' sent.
*/
typedef struct sq_conn {
  sqlite3 *db;
  loam__buf sql;             /* scratch: the text as SQLite prepares it */
  int64_t timeout_ns;        /* 0: no statement timeout */
  int timeout_ms;
  int64_t deadline;          /* INT64_MAX outside a step */
  int timed_out;
} sq_conn;

#define PROGRESS_OPS 1000

/*
** A prepared statement with what loam derives from it once: the columns
** declared BOOLEAN.  The cache holds these, so a
** cache hit costs no per-column work.
*/
typedef struct sq_prep {
  sqlite3_stmt *st;
  unsigned char *isbool;     /* per column, or NULL when no column is BOOLEAN */
  short *numscale;           /* per column: NUM_NO, NUM_FREE or the scale; NULL when none */
  int ncols;
  int nparams;               /* parameters the text takes, as loam reads it */
} sq_prep;

typedef struct sq_stmt {
  loam_stmt base;
  sq_prep *prep;
  sqlite3_stmt *st;          /* prep->st */
  loam__centry *ce;          /* cache entry when 'prep' is cached */
  sqlite3_int64 total_before;
  int is_insert;             /* of kind LOAM_SQL_INSERT: reports the rowid it made */
  loam__buf *numtext;        /* per column, the text of a numeric value read last */
} sq_stmt;

/* What 'numscale' says of a column besides a scale: not numeric, numeric without a scale. */
enum { NUM_NO = -1, NUM_FREE = -2 };


static sqlite3 *dbof (loam_conn *c) {
  return ((sq_conn *)c->impl)->db;
}


/*
** Splits "t.a" from a constraint message into table and column.  Only a
** single column is named: for a composite key the column list stays in
** the message.
*/
static void set_table_column (loam_error *err, const char *what) {
  const char *dot = strchr(what, '.');
  if (dot == NULL) return;
  loam__err_field(&err->table, what, (size_t)(dot - what));
  if (strchr(dot + 1, ',') == NULL) loam__err_field(&err->column, dot + 1, strlen(dot + 1));
}


static loam_errcode code_of (int rc, const char *msg) {
  switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY: return LOAM_E_UNIQUE_VIOLATION;
    case SQLITE_CONSTRAINT_FOREIGNKEY: return LOAM_E_FOREIGN_KEY_VIOLATION;
    case SQLITE_CONSTRAINT_NOTNULL: return LOAM_E_NOT_NULL_VIOLATION;
    case SQLITE_CONSTRAINT_CHECK: return LOAM_E_CHECK_VIOLATION;
    default: break;
  }
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT: return LOAM_E_CONSTRAINT_VIOLATION;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return LOAM_E_BUSY;
    case SQLITE_READONLY: return LOAM_E_READ_ONLY;
    case SQLITE_CANTOPEN:
    case SQLITE_NOTADB: return LOAM_E_CONNECTION_FAILED;
    case SQLITE_NOMEM: return LOAM_E_NOMEM;
    case SQLITE_FULL: return LOAM_E_DISK_FULL;
    case SQLITE_CORRUPT: return LOAM_E_CORRUPT;
    case SQLITE_IOERR: return rc == SQLITE_IOERR_NOMEM ? LOAM_E_NOMEM : LOAM_E_IO_ERROR;
    case SQLITE_PROTOCOL: return LOAM_E_BUSY;   /* a WAL lock race that outlasted the retries */
    case SQLITE_TOOBIG:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE: return LOAM_E_DATA_ERROR;
    case SQLITE_INTERRUPT: return LOAM_E_TIMEOUT;
    case SQLITE_AUTH:
    case SQLITE_PERM: return LOAM_E_PERMISSION_DENIED;
    case SQLITE_MISUSE: return LOAM_E_MISUSE;
    /*
    ** SQLite gives these only as SQLITE_ERROR, with no extended code; the
    ** three kinds below are told apart by the fixed start of SQLite's
    ** message, and every other SQLITE_ERROR (a missing function, too many
    ** terms...) stays 'database_error'.
    */
    case SQLITE_ERROR:
      if (strstr(msg, "syntax error") || strstr(msg, "incomplete input") ||
          strstr(msg, "unrecognized token"))
        return LOAM_E_SYNTAX_ERROR;
      if (strncmp(msg, "no such table", 13) == 0) return LOAM_E_UNDEFINED_TABLE;
      if (strncmp(msg, "no such column", 14) == 0) return LOAM_E_UNDEFINED_COLUMN;
      return LOAM_E_DATABASE_ERROR;
    default: return LOAM_E_DATABASE_ERROR;
  }
}


static int sq_error (sqlite3 *db, int rc, loam_error *err) {
  const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  loam_errcode code = code_of(rc, msg);
  static const char failed[] = "constraint failed: ";
  const char *what;
  loam__err_msg(err, code, msg, strlen(msg));
  if (err == NULL || err->code == LOAM_E_NOMEM) return LOAM_ERROR;
  what = strstr(msg, failed);
  if (what != NULL) {
    what += sizeof failed - 1;
    if (code == LOAM_E_CHECK_VIOLATION) loam__err_field(&err->constraint, what, strlen(what));
    else if (code == LOAM_E_UNIQUE_VIOLATION || code == LOAM_E_NOT_NULL_VIOLATION)
      set_table_column(err, what);
  }
  return LOAM_ERROR;
}


static void free_prep (sq_prep *p) {
  if (p == NULL) return;
  sqlite3_finalize(p->st);
  free(p->isbool);
  free(p->numscale);
  free(p);
}


static void destroy_stmt (void *ud, void *handle) {
  (void)ud;
  free_prep(handle);
}


static int sq_pragma (sqlite3 *db, const char *sql, loam_error *err) {
  int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? LOAM_OK : sq_error(db, rc, err);
}


/*
** The file name SQLite opens: the path itself, or with 'immutable' a URI
** ("file:" and the path with '%', '?' and '#' escaped), the only way to
** pass that flag.  An absolute path gets an empty authority ("file:///x")
** so that one starting with "//" is not read as a host.
*/
static const char *open_name (const loam__url *u, int immutable, loam__buf *b) {
  const char *p;
  if (!immutable) return u->path;
  loam__buf_adds(b, u->path[0] == '/' ? "file://" : "file:");
  for (p = u->path; *p != '\0'; p++) {
    if (*p == '%' || *p == '?' || *p == '#') loam__buf_addf(b, "%%%02X", (unsigned char)*p);
    else loam__buf_addc(b, *p);
  }
  loam__buf_adds(b, "?immutable=1");
  return loam__buf_cstr(b);
}


/*
** Sets the journal mode 'mode' (lower case) and checks what SQLite
** answers: it keeps the old mode, without an error, when the new one
** cannot apply (WAL on a database in memory), which only matters when the
** URL asked for the mode explicitly.
*/
static int set_journal_mode (sqlite3 *db, const char *mode, int explicit, loam_error *err) {
  loam__buf sql = LOAM__BUF_INIT;
  sqlite3_stmt *st = NULL;
  int rc;
  loam__buf_addf(&sql, "PRAGMA journal_mode = %s", mode);
  if (loam__buf_cstr(&sql) == NULL) return loam__err_nomem(err);
  rc = sqlite3_prepare_v2(db, sql.p, -1, &st, NULL);
  loam__buf_free(&sql);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const char *got = (const char *)sqlite3_column_text(st, 0);
    if (explicit && (got == NULL || sqlite3_stricmp(got, mode) != 0)) {
      loam__err(err, LOAM_E_INVALID_URL, "SQLite URL option 'journal_mode': SQLite kept '%s' "
                "instead of '%s' (a database in memory takes only memory or off)",
                got ? got : "?", mode);
      sqlite3_finalize(st);
      return LOAM_ERROR;
    }
    rc = SQLITE_OK;
  }
  sqlite3_finalize(st);
  return rc == SQLITE_OK ? LOAM_OK : sq_error(db, rc, err);
}


/* The progress handler: non-zero interrupts the running step. */
static int past_deadline (void *ud) {
  sq_conn *sc = ud;
  if (loam__clock_ns() < sc->deadline) return 0;
  sc->timed_out = 1;
  return 1;
}


static int sq_open (loam_conn *c, const loam__url *u, const loam_conn_opts *o, loam_error *err) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  int busy = o->busy_timeout_ms, memory, immutable = 0, readonly, i, rc;
  const char *journal = NULL, *name;
  loam__buf uri = LOAM__BUF_INIT;
  sq_conn *sc;
  for (i = 0; i < u->nopts; i++) {
    const char *k = u->opts[i].key, *v = u->opts[i].value;
    if (strcmp(k, "mode") == 0) {
      flags &= ~(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_READONLY);
      if (strcmp(v, "ro") == 0) flags |= SQLITE_OPEN_READONLY;
      else if (strcmp(v, "rw") == 0) flags |= SQLITE_OPEN_READWRITE;
      else flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    }
    else if (strcmp(k, "busy_timeout") == 0) busy = atoi(v);
    else if (strcmp(k, "journal_mode") == 0) journal = v;
    else if (strcmp(k, "immutable") == 0) immutable = strcmp(v, "1") == 0 || strcmp(v, "true") == 0;
  }
  memory = strcmp(u->path, ":memory:") == 0;
  if (immutable && memory)
    return loam__err(err, LOAM_E_INVALID_URL, "SQLite URL option 'immutable' needs a file");
  /* A file that never changes is read, never written. */
  if (immutable) {
    flags &= ~(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    flags |= SQLITE_OPEN_READONLY | SQLITE_OPEN_URI;
  }
  if ((flags & SQLITE_OPEN_READONLY) && journal != NULL)
    return loam__err(err, LOAM_E_INVALID_URL, "SQLite URL option 'journal_mode' needs a "
                     "writable connection (not mode=ro or immutable=1)");
  if ((name = open_name(u, immutable, &uri)) == NULL) return loam__err_nomem(err);
  sc = calloc(1, sizeof *sc);
  if (sc == NULL) {
    loam__buf_free(&uri);
    return loam__err_nomem(err);
  }
  rc = sqlite3_open_v2(name, &sc->db, flags, NULL);
  loam__buf_free(&uri);
  if (rc != SQLITE_OK) {
    const char *m = sc->db ? sqlite3_errmsg(sc->db) : sqlite3_errstr(rc);
    loam_errcode code = code_of(sc->db ? sqlite3_extended_errcode(sc->db) : rc, m);
    /* A file that cannot be opened is 'connection_failed'; the I/O errors and the like stay. */
    if (code == LOAM_E_DATABASE_ERROR) code = LOAM_E_CONNECTION_FAILED;
    loam__err(err, code, "cannot open SQLite database '%s': %s", u->path, m);
    sqlite3_close_v2(sc->db);
    free(sc);
    return LOAM_ERROR;
  }
  sqlite3_extended_result_codes(sc->db, 1);
  sqlite3_busy_timeout(sc->db, busy);
  /*
  ** Without this, SQLite reads a double-quoted name it cannot resolve as a
  ** string literal, so a misspelt quoted column silently compares against
  ** its own name instead of failing.  loam quotes every identifier.
  */
  sqlite3_db_config(sc->db, SQLITE_DBCONFIG_DQS_DML, 0, (int *)NULL);
  sqlite3_db_config(sc->db, SQLITE_DBCONFIG_DQS_DDL, 0, (int *)NULL);
  /* Key lists are bound as one blob that this table-valued function reads. */
  if ((rc = loam__sqlite_keys_register(sc->db)) != SQLITE_OK) {
    sq_error(sc->db, rc, err);
    sqlite3_close_v2(sc->db);
    free(sc);
    return LOAM_ERROR;
  }
  /*
  ** The journal mode is left alone on a read-only connection: switching it
  ** writes the file.  That includes a file the process may not write, which
  ** SQLite opens read-only even without mode=ro.  A file that is not a
  ** database opens fine; the first read (the pragma) says so.
  */
  readonly = sqlite3_db_readonly(sc->db, "main") != 0;
  if (sq_pragma(sc->db, "PRAGMA foreign_keys = ON", err) != LOAM_OK ||
      (readonly && sq_pragma(sc->db, "PRAGMA schema_version", err) != LOAM_OK) ||
      (!readonly && (journal != NULL || !memory) &&
       set_journal_mode(sc->db, journal ? journal : "wal", journal != NULL, err) != LOAM_OK)) {
    /* The code stays (busy, read_only, corrupt...), but the message says it was the open. */
    if (err && err->code != LOAM_E_NOMEM && err->code != LOAM_E_INVALID_URL) {
      char *m = err->message;
      loam_errcode code = err->code == LOAM_E_DATABASE_ERROR ? LOAM_E_CONNECTION_FAILED
                                                             : err->code;
      int xrc = sqlite3_extended_errcode(sc->db);
      int cantinit = (xrc == SQLITE_READONLY_CANTINIT || xrc == SQLITE_READONLY_DIRECTORY);
      err->message = NULL;
      loam__err(err, code, "cannot open SQLite database '%s': %s%s", u->path, m ? m : "error",
                cantinit ? " (a WAL database read-only needs its -shm file or a writable "
                           "directory; immutable=1 reads a file that never changes)" : "");
      free(m);
    }
    sqlite3_close_v2(sc->db);
    free(sc);
    return LOAM_ERROR;
  }
  c->impl = sc;
  sc->deadline = INT64_MAX;
  if (o->statement_timeout_ms > 0) {
    sc->timeout_ms = o->statement_timeout_ms;
    sc->timeout_ns = (int64_t)o->statement_timeout_ms * 1000000;
    sqlite3_progress_handler(sc->db, PROGRESS_OPS, past_deadline, sc);
  }
  loam__cache_init(&c->cache, o->statement_cache, destroy_stmt, NULL);
  return LOAM_OK;
}


static void sq_close (loam_conn *c) {
  sq_conn *sc = c->impl;
  if (sc == NULL) return;
  sqlite3_close_v2(sc->db);
  loam__buf_free(&sc->sql);
  free(sc);
  c->impl = NULL;
}


/* True when 'tail' (what follows the first statement) holds another statement. */
static int has_second_statement (sqlite3 *db, const char *tail) {
  sqlite3_stmt *st = NULL;
  const char *p = tail;
  while (isspace((unsigned char)*p) || *p == ';') p++;
  if (*p == '\0') return 0;
  if (sqlite3_prepare_v2(db, p, -1, &st, NULL) != SQLITE_OK) return 1;
  if (st == NULL) return 0;   /* only comments */
  sqlite3_finalize(st);
  return 1;
}


static int is_bool_decl (const char *t) {
  return t != NULL && (sqlite3_stricmp(t, "BOOLEAN") == 0 || sqlite3_stricmp(t, "BOOL") == 0);
}


/*
** The scale of a column declared NUMERIC, NUMERIC(p) or NUMERIC(p,s)
** (DECIMAL alike): NUM_FREE without one, 0 for NUMERIC(p), as in
** PostgreSQL; NUM_NO for any other declaration.
*/
static int numeric_decl (const char *t) {
  long p, s = 0;
  char *end;
  if (t == NULL) return NUM_NO;
  if (sqlite3_strnicmp(t, "NUMERIC", 7) == 0) t += 7;
  else if (sqlite3_strnicmp(t, "DECIMAL", 7) == 0) t += 7;
  else return NUM_NO;
  while (*t == ' ') t++;
  if (*t == '\0') return NUM_FREE;
  if (*t++ != '(') return NUM_NO;
  p = strtol(t, &end, 10);
  if (end == t || p < 1 || p > 1000) return NUM_NO;
  t = end;
  while (*t == ' ') t++;
  if (*t == ',') {
    t++;
    s = strtol(t, &end, 10);
    if (end == t || s < 0 || s > p) return NUM_NO;
    t = end;
    while (*t == ' ') t++;
  }
  return *t == ')' && t[1] == '\0' ? (int)s : NUM_NO;
}


/*
** Writes the REAL 'd' as plain decimal text (no exponent) with the fewest
** significant digits that read back as 'd', rounded half away from zero
** to 'scale' fraction digits and padded with zeros to them (NUM_FREE: as
** it is), as PostgreSQL prints a numeric of that scale.  A REAL with more
** fraction digits than the scale comes from SQL arithmetic or raw SQL
** ('price * 1.1'); loam's own writes are rounded already.
*/
/*
** The common case of 'decimal_text' without printing and reading back:
** when 'd' is the double nearest to q / 10^scale for an integer 'q' of at
** most 15 digits, that decimal is the one the search below finds (a
** decimal of at most 15 significant digits reads back through the double
** nearest to it: DBL_DIG), already rounded to the scale.  Returns 0 when
** 'd' is not such a double.
*/
static int decimal_fast (loam__buf *b, double d, int scale) {
  static const double p10[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                1e12, 1e13, 1e14, 1e15 };
  char out[24];
  int64_t q;
  uint64_t u;
  double m;
  int n = 0, i;
  if (scale < 0 || scale > 15) return 0;
  m = d * p10[scale];
  if (!(m > -1e15 && m < 1e15)) return 0;
  q = (int64_t)(m < 0 ? m - 0.5 : m + 0.5);
  if ((double)q / p10[scale] != d) return 0;
  u = q < 0 ? (uint64_t)-q : (uint64_t)q;
  /* Digits from the right, then at least one before the point. */
  for (i = 0; u > 0 || i <= scale; i++) {
    if (i == scale && scale > 0) out[n++] = '.';
    out[n++] = (char)('0' + (int)(u % 10));
    u /= 10;
  }
  if (q < 0) out[n++] = '-';
  for (i = 0; i < n / 2; i++) {
    char t = out[i];
    out[i] = out[n - 1 - i];
    out[n - 1 - i] = t;
  }
  loam__buf_add(b, out, (size_t)n);
  return 1;
}


static void decimal_text (loam__buf *b, double d, int scale) {
  char s[40], digits[26];
  int prec, exp, n = 0, i, frac = 0, neg;
  const char *p;
  if (decimal_fast(b, d, scale)) return;
  if (isnan(d)) { loam__buf_adds(b, "NaN"); return; }
  if (isinf(d)) { loam__buf_adds(b, d > 0 ? "Infinity" : "-Infinity"); return; }
  for (prec = 15; prec <= 17; prec++) {
    snprintf(s, sizeof s, "%.*e", prec - 1, d);
    if (strtod(s, NULL) == d) break;
  }
  /* 's' is [-]d.ddde[+-]x: the digits are 0.d1d2... times 10^(exp + 1). */
  p = s;
  neg = *p == '-';
  if (neg) p++;
  for (; *p != 'e'; p++)
    if (*p >= '0' && *p <= '9') digits[n++] = *p;
  exp = atoi(p + 1);
  if (scale != NUM_FREE && n > exp + 1 + scale) {
    int keep = exp + 1 + scale, up = keep >= 0 && digits[keep] >= '5';
    n = keep < 0 ? 0 : keep;
    for (i = n - 1; up && i >= 0; i--) {
      if (digits[i] == '9') digits[i] = '0';
      else { digits[i]++; up = 0; }
    }
    if (up) {   /* carried past the first digit: one more digit in front */
      memmove(digits + 1, digits, (size_t)n);
      digits[0] = '1';
      n++;
      exp++;
    }
  }
  while (n > 0 && digits[n - 1] == '0') n--;
  if (n == 0) { exp = 0; neg = 0; }   /* numeric has no negative zero */
  if (neg) loam__buf_addc(b, '-');
  if (n == 0) loam__buf_addc(b, '0');
  else if (exp < 0) {
    loam__buf_adds(b, "0.");
    for (i = 0; i < -exp - 1; i++) loam__buf_addc(b, '0');
    loam__buf_add(b, digits, (size_t)n);
    frac = n - exp - 1;
  }
  else {
    for (i = 0; i <= exp; i++) loam__buf_addc(b, i < n ? digits[i] : '0');
    if (n > exp + 1) {
      loam__buf_addc(b, '.');
      loam__buf_add(b, digits + exp + 1, (size_t)(n - exp - 1));
      frac = n - exp - 1;
    }
  }
  if (scale > frac) {
    if (frac == 0) loam__buf_addc(b, '.');
    for (; frac < scale; frac++) loam__buf_addc(b, '0');
  }
}


/* The misuse error for 'n' parameters over the connection's limit. */
static int too_many_params (sqlite3 *db, int n, loam_error *err) {
  return loam__err(err, LOAM_E_MISUSE,
                   "statement has %d parameters; SQLite takes at most %d "
                   "(SQLITE_LIMIT_VARIABLE_NUMBER)", n,
                   sqlite3_limit(db, SQLITE_LIMIT_VARIABLE_NUMBER, -1));
}


/*
** Prepares 'sql' into a new 'sq_prep' in '*out'.  The text goes through
** loam's placeholder scanner first ('loam__sql_params'), so that '$n'
** means the n-th parameter as on PostgreSQL (SQLite alone would number
** '$2' by its first appearance) and the parameter count is read the same
** way on both backends.  A placeholder form loam does not read (':name',
** '@name', '$name', or a '?' that SQLite reads outside what PostgreSQL
** takes for a literal) shows as a count SQLite disagrees with.
*/
static int prepare_new (sq_conn *sc, const char *sql, int persistent, sq_prep **out,
                        loam_error *err) {
  const char *tail = NULL;
  sq_prep *p;
  int rc, i, nparams, scale;
  loam__buf_reset(&sc->sql);
  if (loam__sql_params(sql, LOAM_SQLITE, &sc->sql, &nparams, err) != LOAM_OK) return LOAM_ERROR;
  if (nparams > sqlite3_limit(sc->db, SQLITE_LIMIT_VARIABLE_NUMBER, -1))
    return too_many_params(sc->db, nparams, err);
  if ((p = calloc(1, sizeof *p)) == NULL) return loam__err_nomem(err);
  rc = sqlite3_prepare_v3(sc->db, sc->sql.p, (int)sc->sql.len + 1,
                          persistent ? SQLITE_PREPARE_PERSISTENT : 0, &p->st, &tail);
  if (rc != SQLITE_OK) {
    free_prep(p);
    return sq_error(sc->db, rc, err);
  }
  if (p->st == NULL) {
    free_prep(p);
    return loam__err(err, LOAM_E_MISUSE, "SQL holds no statement");
  }
  if (tail != NULL && has_second_statement(sc->db, tail)) {
    free_prep(p);
    return loam__err(err, LOAM_E_MISUSE, "SQL holds more than one statement; run them one at a time");
  }
  if (sqlite3_bind_parameter_count(p->st) != nparams) {
    free_prep(p);
    return loam__err(err, LOAM_E_MISUSE, "SQL holds placeholders loam does not read: write "
                     "them as '?' or '$n' (not ':name', '@name' or '$name'), outside literals, "
                     "quoted names and comments");
  }
  p->nparams = nparams;
  p->ncols = sqlite3_column_count(p->st);
  for (i = 0; i < p->ncols; i++) {
    if (is_bool_decl(sqlite3_column_decltype(p->st, i))) {
      if (p->isbool == NULL && (p->isbool = calloc((size_t)p->ncols, 1)) == NULL) {
        free_prep(p);
        return loam__err_nomem(err);
      }
      p->isbool[i] = 1;
    }
    else if ((scale = numeric_decl(sqlite3_column_decltype(p->st, i))) != NUM_NO) {
      if (p->numscale == NULL) {
        int j;
        if ((p->numscale = malloc((size_t)p->ncols * sizeof *p->numscale)) == NULL) {
          free_prep(p);
          return loam__err_nomem(err);
        }
        for (j = 0; j < p->ncols; j++) p->numscale[j] = NUM_NO;
      }
      p->numscale[i] = (short)scale;
    }
  }
  *out = p;
  return LOAM_OK;
}


static int prepare (loam_conn *c, const char *sql, sq_stmt *s, loam_error *err) {
  size_t len = strlen(sql);
  s->ce = loam__cache_get(&c->cache, sql, len);
  if (s->ce != NULL) s->prep = loam__cache_handle(s->ce);
  else {
    if (prepare_new(c->impl, sql, c->cache.capacity > 0, &s->prep, err) != LOAM_OK)
      return LOAM_ERROR;
    s->ce = loam__cache_put(&c->cache, sql, len, s->prep);
  }
  s->st = s->prep->st;
  return LOAM_OK;
}


/*
** Parameters are borrowed for the call only, and rows are stepped later:
** SQLite copies them ('copy' SQLITE_TRANSIENT), unless the caller holds
** them until the statement is closed (LOAM__PARAMS_HELD: SQLITE_STATIC),
** which 'release' does before it returns, clearing the bindings.
*/
static int bind (sq_stmt *s, const loam_value *params, int nparams,
                 void (*copy) (void *), loam_error *err) {
  sqlite3 *db = sqlite3_db_handle(s->st);
  int expected = s->prep->nparams, i, rc = SQLITE_OK;
  if (expected != nparams)
    return loam__err(err, LOAM_E_MISUSE, "statement takes %d parameter%s, got %d", expected,
                     expected == 1 ? "" : "s", nparams);
  for (i = 0; i < nparams && rc == SQLITE_OK; i++) {
    const loam_value *v = &params[i];
    switch (v->type) {
      case LOAM_NULL: rc = sqlite3_bind_null(s->st, i + 1); break;
      case LOAM_BOOL: rc = sqlite3_bind_int(s->st, i + 1, v->u.b != 0); break;
      case LOAM_INT: rc = sqlite3_bind_int64(s->st, i + 1, v->u.i); break;
      case LOAM_DOUBLE:
        /* SQLite would silently store NaN as NULL. */
        if (isnan(v->u.d))
          return loam__err(err, LOAM_E_DATA_ERROR, "parameter %d: SQLite cannot store NaN", i + 1);
        rc = sqlite3_bind_double(s->st, i + 1, v->u.d);
        break;
      case LOAM_TEXT:
        rc = sqlite3_bind_text64(s->st, i + 1, v->u.s.ptr ? v->u.s.ptr : "", v->u.s.len,
                                 copy, SQLITE_UTF8);
        break;
      case LOAM_BLOB:
        rc = sqlite3_bind_blob64(s->st, i + 1, v->u.s.ptr ? v->u.s.ptr : "", v->u.s.len,
                                 copy);
        break;
    }
  }
  return rc == SQLITE_OK ? LOAM_OK : sq_error(db, rc, err);
}


static void release (loam_conn *c, sq_stmt *s) {
  if (s->numtext != NULL) {
    int i;
    for (i = 0; i < s->prep->ncols; i++) loam__buf_free(&s->numtext[i]);
    free(s->numtext);
    s->numtext = NULL;
  }
  if (s->prep == NULL) return;
  if (s->ce != NULL) {
    sqlite3_reset(s->st);
    sqlite3_clear_bindings(s->st);
    loam__cache_release(&c->cache, s->ce);
  }
  else free_prep(s->prep);
  s->st = NULL;
  s->prep = NULL;
  s->ce = NULL;
}


static int sq_query (loam_conn *c, const char *sql, loam_sql_kind kind, const loam_value *params,
                     int nparams, int flags, loam_stmt **out, loam_error *err) {
  sq_stmt *s;
  /* SQLite always steps lazily: LOAM_STREAM changes nothing. */
  /* Checked first: SQLite would only say "too many SQL variables", as a generic error. */
  if (nparams > sqlite3_limit(dbof(c), SQLITE_LIMIT_VARIABLE_NUMBER, -1))
    return too_many_params(dbof(c), nparams, err);
  s = calloc(1, sizeof *s);
  if (s == NULL) return loam__err_nomem(err);
  if (prepare(c, sql, s, err) != LOAM_OK ||
      bind(s, params, nparams, (flags & LOAM__PARAMS_HELD) ? SQLITE_STATIC : SQLITE_TRANSIENT,
           err) != LOAM_OK) {
    release(c, s);
    free(s);
    return LOAM_ERROR;
  }
  s->base.ncols = s->prep->ncols;
  s->is_insert = kind == LOAM_SQL_INSERT;
  s->total_before = sqlite3_total_changes64(dbof(c));
  *out = &s->base;
  return LOAM_OK;
}


static int sq_step (loam_stmt *base, loam_error *err) {
  sq_stmt *s = (sq_stmt *)base;
  sqlite3 *db = sqlite3_db_handle(s->st);
  sq_conn *sc = base->conn->impl;
  int rc;
  if (sc->timeout_ns > 0) {
    sc->timed_out = 0;
    sc->deadline = loam__clock_ns() + sc->timeout_ns;
    rc = sqlite3_step(s->st);
    sc->deadline = INT64_MAX;
  }
  else rc = sqlite3_step(s->st);
  if (rc == SQLITE_ROW) return LOAM_ROW;
  if (rc == SQLITE_DONE) {
    /* 'sqlite3_changes' keeps the count of the last write, even across a SELECT. */
    if (sqlite3_total_changes64(db) != s->total_before) {
      base->changes = sqlite3_changes64(db);
      if (s->is_insert) {
        base->has_insert_id = 1;
        base->insert_id = sqlite3_last_insert_rowid(db);
      }
    }
    sqlite3_reset(s->st);
    return LOAM_DONE;
  }
  if ((rc & 0xff) == SQLITE_INTERRUPT) {
    if (sc->timed_out)
      loam__err(err, LOAM_E_TIMEOUT, "canceling statement due to statement timeout (%d ms)",
                sc->timeout_ms);
    else loam__err(err, LOAM_E_CANCELED, "canceling statement due to user request");
  }
  else sq_error(db, rc, err);
  sqlite3_reset(s->st);
  return LOAM_ERROR;
}


static const char *sq_column_name (const loam_stmt *base, int i) {
  return sqlite3_column_name(((const sq_stmt *)base)->st, i);
}


/*
** A number of a NUMERIC column as decimal text (see the top of the file),
** in a buffer of the statement that stays valid until the next row.
** Returns 0, leaving the number as it is, when memory runs out.
*/
static int numeric_column (sq_stmt *s, int i, int scale, loam_value *out) {
  loam__buf *b;
  if (s->numtext == NULL &&
      (s->numtext = calloc((size_t)s->prep->ncols, sizeof *s->numtext)) == NULL)
    return 0;
  b = &s->numtext[i];
  loam__buf_reset(b);
  if (sqlite3_column_type(s->st, i) == SQLITE_INTEGER) {
    loam__buf_int(b, sqlite3_column_int64(s->st, i));
    if (scale > 0) loam__buf_addc(b, '.');
    for (; scale > 0; scale--) loam__buf_addc(b, '0');
  }
  else decimal_text(b, sqlite3_column_double(s->st, i), scale);
  if (loam__buf_cstr(b) == NULL) return 0;
  *out = loam_text(b->p, b->len);
  return 1;
}


static void sq_column (loam_stmt *base, int i, loam_value *out) {
  sq_stmt *s = (sq_stmt *)base;
  int t = sqlite3_column_type(s->st, i);
  if (s->prep->numscale != NULL && s->prep->numscale[i] != NUM_NO &&
      (t == SQLITE_INTEGER || t == SQLITE_FLOAT) && numeric_column(s, i, s->prep->numscale[i], out))
    return;
  switch (t) {
    case SQLITE_INTEGER:
      if (s->prep->isbool && s->prep->isbool[i]) *out = loam_bool(sqlite3_column_int64(s->st, i) != 0);
      else *out = loam_int(sqlite3_column_int64(s->st, i));
      break;
    case SQLITE_FLOAT: *out = loam_double(sqlite3_column_double(s->st, i)); break;
    case SQLITE_TEXT: {
      const char *p = (const char *)sqlite3_column_text(s->st, i);
      *out = loam_text(p ? p : "", (size_t)sqlite3_column_bytes(s->st, i));
      break;
    }
    case SQLITE_BLOB: {
      const void *p = sqlite3_column_blob(s->st, i);
      *out = loam_blob(p ? p : "", (size_t)sqlite3_column_bytes(s->st, i));
      break;
    }
    default: *out = loam_null(); break;
  }
}


static void sq_finish (loam_stmt *base) {
  sq_stmt *s = (sq_stmt *)base;
  release(base->conn, s);
}


static int sq_in_transaction (loam_conn *c) {
  return sqlite3_get_autocommit(dbof(c)) ? LOAM__TX_NONE : LOAM__TX_OPEN;
}


/* An in-process database has no link to lose. */
static int sq_alive (loam_conn *c, int ping) {
  (void)c;
  (void)ping;
  return 1;
}


/* 'sqlite3_interrupt' is safe from any thread while the connection is open. */
static int sq_cancel (loam_conn *c, loam_error *err) {
  (void)err;
  sqlite3_interrupt(dbof(c));
  return LOAM_OK;
}


static int sq_server_pid (loam_conn *c) {
  (void)c;
  return 0;
}


const loam__driver loam__sqlite_driver = {
  "sqlite",
  sq_open,
  sq_close,
  sq_query,
  sq_step,
  sq_column_name,
  sq_column,
  sq_finish,
  NULL,        /* no pipeline: one connection runs one statement at a time in-process */
  sq_in_transaction,
  NULL,        /* no COPY: multi-row INSERTs are SQLite's fastest way in */
  sq_alive,
  sq_cancel,
  sq_server_pid,
  NULL,        /* tx.c's statements go through the statement cache like any other */
  0            /* BEGIN IMMEDIATE takes the write lock: it is sent when asked for */
};
