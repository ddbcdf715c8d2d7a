/*
** sqlite_keys.c: key lists on SQLite, bound whole as one blob parameter.
**
** An IN list (or a list of tuples) is rendered as a subquery over the
** table-valued function 'loam_keys', whose one argument is a blob written
** here in loam's own binary form.  Every value keeps its exact type and
** bytes on the way: a 64-bit integer at either limit, a double bit for bit
** (infinities included), text of any bytes (NUL included) with its length.
** A list therefore matches exactly what equality with each of its values
** matches, which a text format parsed by SQLite (json_each) cannot promise,
** and the statement text depends only on the tuple width, so one cached
** statement serves every length of list.
**
** The blob: the bytes 'l' 'k', the format version, the tuple width; then
** the values row after row, each a tag byte followed by its payload:
**   'i'  int64, 8 bytes little-endian (booleans are the integers 0 and 1)
**   'f'  double, its 8 bytes as a little-endian 64-bit pattern
**   't'  text, a 4-byte little-endian length and the bytes
** The virtual table is eponymous (it exists on every connection where it
** is registered, without CREATE VIRTUAL TABLE) and reads its argument
** defensively: any blob a user passes by hand either decodes or fails
** with an error, never reads past its end.
*/
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "conn/conn_int.h"
#include "sql/builder_int.h"


#define VERSION   1
#define HEADER    4
/* The hidden column that takes the argument comes after the key columns. */
#define ARG_COL   LOAM__KEYS_MAXCOLS


/* {======================================================================
** Writing
** ======================================================================= */

static void put64 (loam__buf *b, char tag, uint64_t u) {
  unsigned char p[9];
  int i;
  p[0] = (unsigned char)tag;
  for (i = 0; i < 8; i++) p[1 + i] = (unsigned char)(u >> (8 * i));
  loam__buf_add(b, p, sizeof p);
}


int loam__sqlite_keys (loam__buf *b, const loam_value *v, int nrows, int ncols,
                       loam_error *err) {
  unsigned char h[HEADER] = { 'l', 'k', VERSION, 0 };
  size_t i, n = (size_t)nrows * (size_t)ncols;
  if (ncols < 1 || ncols > LOAM__KEYS_MAXCOLS)
    return loam__err(err, LOAM_E_MISUSE, "IN tuples: %d columns, more than the %d a list "
                     "can hold", ncols, LOAM__KEYS_MAXCOLS);
  h[3] = (unsigned char)ncols;
  loam__buf_add(b, h, sizeof h);
  for (i = 0; i < n; i++) {
    const loam_value *e = &v[i];
    uint64_t u;
    switch (e->type) {
      case LOAM_INT: put64(b, 'i', (uint64_t)e->u.i); break;
      case LOAM_BOOL: put64(b, 'i', e->u.b ? 1 : 0); break;
      case LOAM_DOUBLE:
        /* Equality refuses NaN on SQLite too (it would be stored as NULL). */
        if (isnan(e->u.d))
          return loam__err(err, LOAM_E_DATA_ERROR, "IN list: value %zu is NaN, which SQLite "
                           "cannot store", i + 1);
        memcpy(&u, &e->u.d, sizeof u);
        put64(b, 'f', u);
        break;
      case LOAM_TEXT: {
        unsigned char p[5];
        int k;
        if (e->u.s.len > UINT32_MAX)
          return loam__err(err, LOAM_E_DATA_ERROR, "IN list: value %zu is text of %zu bytes, "
                           "more than a list holds", i + 1, e->u.s.len);
        p[0] = 't';
        for (k = 0; k < 4; k++) p[1 + k] = (unsigned char)(e->u.s.len >> (8 * k));
        loam__buf_add(b, p, sizeof p);
        loam__buf_add(b, e->u.s.ptr, e->u.s.len);
        break;
      }
      default:
        /* The builder lets no other type into a list. */
        return loam__err(err, LOAM_E_MISUSE, "IN list: value %zu is of type %s, which a list "
                         "cannot hold", i + 1, loam_type_name(e->type));
    }
  }
  return LOAM_OK;
}

/* }====================================================================== */


/* {======================================================================
** The table-valued function
** ======================================================================= */

/* One decoded value: its tag and where its payload starts. */
typedef struct kval {
  char tag;
  uint32_t len;            /* text */
  const unsigned char *p;
} kval;

typedef struct kcursor {
  sqlite3_vtab_cursor base;
  unsigned char *blob;     /* a copy of the argument */
  size_t size, pos;        /* 'pos': the next row's first byte */
  int ncols;
  int eof;
  sqlite3_int64 row;
  kval cur[LOAM__KEYS_MAXCOLS];
} kcursor;


static int k_connect (sqlite3 *db, void *aux, int argc, const char *const *argv,
                      sqlite3_vtab **out, char **errmsg) {
  loam__buf ddl = LOAM__BUF_INIT;
  sqlite3_vtab *vt;
  int c, rc;
  (void)aux; (void)argc; (void)argv; (void)errmsg;
  loam__buf_adds(&ddl, "CREATE TABLE x(");
  for (c = 0; c < LOAM__KEYS_MAXCOLS; c++) loam__buf_addf(&ddl, "k%d, ", c + 1);
  loam__buf_adds(&ddl, "keys HIDDEN)");
  if (loam__buf_cstr(&ddl) == NULL) {
    loam__buf_free(&ddl);
    return SQLITE_NOMEM;
  }
  rc = sqlite3_declare_vtab(db, ddl.p);
  loam__buf_free(&ddl);
  if (rc != SQLITE_OK) return rc;
  if ((vt = sqlite3_malloc(sizeof *vt)) == NULL) return SQLITE_NOMEM;
  memset(vt, 0, sizeof *vt);
  /* It reads nothing but its argument, so it is safe in views and triggers. */
  sqlite3_vtab_config(db, SQLITE_VTAB_INNOCUOUS);
  *out = vt;
  return SQLITE_OK;
}


static int k_disconnect (sqlite3_vtab *vt) {
  sqlite3_free(vt);
  return SQLITE_OK;
}


/*
** Only one plan: the argument is given ('keys = ?').  Without a usable
** argument the function cannot produce rows; SQLITE_CONSTRAINT makes the
** planner try another order, and a call without any argument is refused.
*/
static int k_best_index (sqlite3_vtab *vt, sqlite3_index_info *info) {
  int i, found = -1;
  for (i = 0; i < info->nConstraint; i++) {
    const struct sqlite3_index_constraint *c = &info->aConstraint[i];
    if (c->iColumn != ARG_COL || c->op != SQLITE_INDEX_CONSTRAINT_EQ) continue;
    if (!c->usable) return SQLITE_CONSTRAINT;
    found = i;
  }
  if (found < 0) {
    sqlite3_free(vt->zErrMsg);
    vt->zErrMsg = sqlite3_mprintf("loam_keys takes one argument, a key list");
    return SQLITE_ERROR;
  }
  info->aConstraintUsage[found].argvIndex = 1;
  info->aConstraintUsage[found].omit = 1;
  info->estimatedCost = 10.0;
  info->estimatedRows = 100;
  info->idxNum = 1;
  return SQLITE_OK;
}


static int k_open (sqlite3_vtab *vt, sqlite3_vtab_cursor **out) {
  kcursor *k = sqlite3_malloc(sizeof *k);
  (void)vt;
  if (k == NULL) return SQLITE_NOMEM;
  memset(k, 0, sizeof *k);
  k->eof = 1;
  *out = &k->base;
  return SQLITE_OK;
}


static int k_close (sqlite3_vtab_cursor *cur) {
  kcursor *k = (kcursor *)cur;
  sqlite3_free(k->blob);
  sqlite3_free(k);
  return SQLITE_OK;
}


static int malformed (kcursor *k, const char *why) {
  sqlite3_free(k->base.pVtab->zErrMsg);
  k->base.pVtab->zErrMsg = sqlite3_mprintf("loam_keys: malformed key list (%s)", why);
  k->eof = 1;
  return SQLITE_ERROR;
}


static uint64_t get64 (const unsigned char *p) {
  uint64_t u = 0;
  int i;
  for (i = 7; i >= 0; i--) u = (u << 8) | p[i];
  return u;
}


/* Decodes the row at 'pos' into 'cur', or sets 'eof' at the end of the blob. */
static int k_next (sqlite3_vtab_cursor *cur) {
  kcursor *k = (kcursor *)cur;
  int c;
  if (k->pos == k->size) {
    k->eof = 1;
    return SQLITE_OK;
  }
  for (c = 0; c < k->ncols; c++) {
    kval *v = &k->cur[c];
    size_t left = k->size - k->pos;
    if (left < 1) return malformed(k, "a tuple is cut short");
    v->tag = (char)k->blob[k->pos];
    v->p = k->blob + k->pos + 1;
    left--;
    if (v->tag == 'i' || v->tag == 'f') {
      if (left < 8) return malformed(k, "a number is cut short");
      k->pos += 9;
    }
    else if (v->tag == 't') {
      if (left < 4) return malformed(k, "a text length is cut short");
      v->len = (uint32_t)(v->p[0] | (uint32_t)v->p[1] << 8 | (uint32_t)v->p[2] << 16 |
                          (uint32_t)v->p[3] << 24);
      if (left - 4 < v->len) return malformed(k, "a text is cut short");
      v->p += 4;
      k->pos += 5 + (size_t)v->len;
    }
    else return malformed(k, "unknown value tag");
  }
  k->row++;
  k->eof = 0;
  return SQLITE_OK;
}


static int k_filter (sqlite3_vtab_cursor *cur, int idxnum, const char *idxstr, int argc,
                     sqlite3_value **argv) {
  kcursor *k = (kcursor *)cur;
  const unsigned char *p;
  int n;
  (void)idxnum; (void)idxstr;
  sqlite3_free(k->blob);
  k->blob = NULL;
  k->size = k->pos = 0;
  k->row = 0;
  k->eof = 1;
  if (argc != 1 || sqlite3_value_type(argv[0]) != SQLITE_BLOB)
    return malformed(k, "the argument is not a blob");
  p = sqlite3_value_blob(argv[0]);
  n = sqlite3_value_bytes(argv[0]);
  if (n < HEADER || p[0] != 'l' || p[1] != 'k' || p[2] != VERSION || p[3] < 1 ||
      p[3] > LOAM__KEYS_MAXCOLS)
    return malformed(k, "bad header");
  /* A copy: the argument's bytes are not promised to outlive this call. */
  if ((k->blob = sqlite3_malloc(n)) == NULL) return SQLITE_NOMEM;
  memcpy(k->blob, p, (size_t)n);
  k->size = (size_t)n;
  k->pos = HEADER;
  k->ncols = p[3];
  return k_next(cur);
}


static int k_eof (sqlite3_vtab_cursor *cur) {
  return ((kcursor *)cur)->eof;
}


static int k_column (sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col) {
  kcursor *k = (kcursor *)cur;
  const kval *v;
  uint64_t u;
  double d;
  if (col >= k->ncols) {
    sqlite3_result_null(ctx);
    return SQLITE_OK;
  }
  v = &k->cur[col];
  switch (v->tag) {
    case 'i':
      sqlite3_result_int64(ctx, (sqlite3_int64)get64(v->p));
      break;
    case 'f':
      u = get64(v->p);
      memcpy(&d, &u, sizeof d);
      sqlite3_result_double(ctx, d);
      break;
    default:
      sqlite3_result_text64(ctx, (const char *)v->p, v->len, SQLITE_TRANSIENT, SQLITE_UTF8);
      break;
  }
  return SQLITE_OK;
}


static int k_rowid (sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid) {
  *rowid = ((kcursor *)cur)->row;
  return SQLITE_OK;
}


/* Designated fields: the members after 'xRowid' vary with SQLite's version. */
static const sqlite3_module keys_module = {
  .iVersion = 0,
  .xCreate = NULL,         /* eponymous only: no CREATE VIRTUAL TABLE */
  .xConnect = k_connect,
  .xBestIndex = k_best_index,
  .xDisconnect = k_disconnect,
  .xOpen = k_open,
  .xClose = k_close,
  .xFilter = k_filter,
  .xNext = k_next,
  .xEof = k_eof,
  .xColumn = k_column,
  .xRowid = k_rowid,
};


int loam__sqlite_keys_register (sqlite3 *db) {
  return sqlite3_create_module_v2(db, "loam_keys", &keys_module, NULL, NULL);
}

/* }====================================================================== */
