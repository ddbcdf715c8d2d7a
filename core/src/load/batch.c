/*
** batch.c: the batched ("select-in") relation loader.
**
** Loading a relation for N parents costs one statement, never N: the
** parent keys are deduplicated here and bound as one list through the
** query builder (one parameter on SQLite, one array per key column on
** PostgreSQL), so the statement keeps one text, and one prepared
** statement, for any number of parents; the rows that come back are
** sorted into one group per distinct key with a hash lookup on their key
** values.  The specs of one call share a round trip on PostgreSQL (the
** driver's pipeline) and run one after the other elsewhere.
**
** Matching is exact and typed: the integer 1 and the text '1' are
** different keys.  Numbers compare by value, so a double with an integral
** value is that integer, on the way in (1.0 is sent as 1) and on the way
** back (a float column reading 1.0 matches the key 1).  Booleans compare
** as 0 and 1, which is how SQLite returns them from columns it does not
** know as BOOLEAN, and PostgreSQL's numeric text is read as a number.
*/
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "conn/conn_int.h"
#include "sql/builder_int.h"


/* Hidden result columns: the key expressions, the row number of a per-key limit. */
#define KEY_ALIAS  "__loam_k"
#define RN_ALIAS   "__loam_rn"
#define SUB_ALIAS  "__loam_sub"

/* The result of one spec. */
typedef struct bspec {
  int nkeys;
  int *key_group;          /* per parent key: its group, or -1 (a NULL in the key) */
  int ngroups;
  int *goff;               /* ngroups + 1 offsets into 'grows' */
  int *grows;              /* row numbers, group after group */
  int ncols;
  char **names;            /* 'ncols' names and their bytes, one block */
  int nrows;
  loam_value *vals;        /* nrows * ncols; text and blobs point into 'bytes' */
  char *bytes;
} bspec;

struct loam_batch {
  int nspecs;
  int round_trips;
  bspec *s;
};


/* What one spec needs while it loads. */
typedef struct work {
  const loam_batch_spec *in;
  bspec *out;
  unsigned char *cls;      /* per key position */
  loam_value *dk;          /* distinct keys, 'nkey' values each, as sent */
  uint64_t *dhash;         /* per distinct key */
  int *slots;              /* open addressing: group + 1, 0 empty */
  size_t mask;
  int hidden;              /* result columns after the caller's: keys, row number */
  loam_rendered *rs;
  /* rows while they arrive */
  int *rowgroup;
  int *gsize;
  size_t rowcap;
  loam__buf bytes;
} work;


/* {======================================================================
** Keys
** ======================================================================= */

/* Whether key position 'c' is a numeric column. */
static int isnumeric (const work *w, int c) {
  return w->in->key_coltypes != NULL && w->in->key_coltypes[c] == LOAM_COL_NUMERIC;
}


/*
** The group of the key 'v' ('nkey' values, compared by 'canon'), or -1.
** '*h' receives its hash (0 when it can match nothing).
*/
static int lookup (const work *w, const loam_value *v, uint64_t *h) {
  int nkey = w->in->nkey, c;
  loam_value cv;
  size_t i;
  *h = LOAM__VALUE_HASH_INIT;
  for (c = 0; c < nkey; c++) {
    if (!loam__value_canon(&v[c], w->cls[c], isnumeric(w, c), &cv)) { *h = 0; return -1; }
    *h = loam__value_hash(*h, &cv);
  }
  if (w->slots == NULL) return -1;
  for (i = (size_t)*h & w->mask; w->slots[i] != 0; i = (i + 1) & w->mask) {
    int g = w->slots[i] - 1;
    const loam_value *k = &w->dk[(size_t)g * (size_t)nkey];
    if (w->dhash[g] != *h) continue;
    for (c = 0; c < nkey; c++) {
      loam_value a, b;
      loam__value_canon(&v[c], w->cls[c], isnumeric(w, c), &a);
      loam__value_canon(&k[c], w->cls[c], isnumeric(w, c), &b);
      if (!loam__value_same(&a, &b)) break;
    }
    if (c == nkey) return g;
  }
  return -1;
}


/*
** Deduplicates the parent keys: each distinct key becomes a group, in the
** order of first appearance, and each parent key position learns its
** group.  Fails (misuse) on a blob or on classes that differ within a key
** position, naming the key.
*/
static int dedup (work *w, loam_error *err) {
  const loam_batch_spec *in = w->in;
  bspec *b = w->out;
  int nkey = in->nkey, k, c;
  size_t cap = 16;
  while (cap < (size_t)in->nkeys * 2) cap *= 2;
  b->nkeys = in->nkeys;
  w->cls = calloc((size_t)nkey, 1);
  b->key_group = malloc(((size_t)in->nkeys + 1) * sizeof *b->key_group);
  w->dk = malloc(((size_t)in->nkeys * (size_t)nkey + 1) * sizeof *w->dk);
  w->dhash = malloc(((size_t)in->nkeys + 1) * sizeof *w->dhash);
  w->slots = calloc(cap, sizeof *w->slots);
  if (w->cls == NULL || b->key_group == NULL || w->dk == NULL || w->dhash == NULL ||
      w->slots == NULL)
    return loam__err_nomem(err);
  w->mask = cap - 1;
  for (k = 0; k < in->nkeys; k++) {
    const loam_value *v = &in->keys[(size_t)k * (size_t)nkey];
    loam_value *d = &w->dk[(size_t)b->ngroups * (size_t)nkey];
    uint64_t h;
    int g;
    b->key_group[k] = -1;
    for (c = 0; c < nkey && v[c].type != LOAM_NULL; c++) {
      int cls = loam__value_class(v[c].type);
      if (cls == LOAM__VC_NONE)
        return loam__err(err, LOAM_E_MISUSE, "batch key %d: value %d is of type %s, which "
                         "cannot be a key", k + 1, c + 1, loam_type_name(v[c].type));
      if (w->cls[c] != LOAM__VC_NONE && w->cls[c] != cls)
        return loam__err(err, LOAM_E_MISUSE, "batch key %d: value %d is of type %s after keys "
                         "of another type; the keys of one position share one type",
                         k + 1, c + 1, loam_type_name(v[c].type));
      w->cls[c] = (unsigned char)cls;
      d[c] = loam__value_integral(v[c]);
    }
    if (c < nkey) continue;   /* a NULL never matches: an empty group, nothing sent */
    if ((g = lookup(w, d, &h)) < 0) {
      size_t i = (size_t)h & w->mask;
      g = b->ngroups++;
      w->dhash[g] = h;
      while (w->slots[i] != 0) i = (i + 1) & w->mask;
      w->slots[i] = g + 1;
    }
    b->key_group[k] = g;
  }
  return LOAM_OK;
}

/* }====================================================================== */


/* {======================================================================
** The statement
** ======================================================================= */

/* Key expression 'c' under its hidden name. */
static loam_expr *hidden_key (loam_qb *qb, loam_expr *e, int c) {
  loam__buf name = LOAM__BUF_INIT;
  loam_expr *x;
  loam__buf_addf(&name, KEY_ALIAS "%d", c + 1);
  x = loam_qb_alias(qb, e, loam__buf_cstr(&name));
  loam__buf_free(&name);
  return x;
}


/*
** Adds the hidden columns and the key predicate to the spec's statement,
** wraps it for a per-key limit, and renders it for 'dialect'.
*/
static int build (work *w, loam_backend dialect, loam_error *err) {
  const loam_batch_spec *in = w->in;
  loam_qb *qb = in->qb;
  loam_qstmt *st = in->query;
  int c;
  if (loam__qb_error(qb, err) != LOAM_OK) return LOAM_ERROR;
  if (st == NULL || st->qb != qb || st->kind != LOAM__Q_SELECT)
    return loam__err(err, LOAM_E_MISUSE, "batch: the query must be a SELECT of the spec's builder");
  if (st->has_limit || st->has_offset)
    return loam__err(err, LOAM_E_MISUSE, "batch: the query must have no LIMIT or OFFSET "
                     "(limit_per_key limits each key)");
  if (st->columns.n == 0) loam_qb_column(st, loam_qb_star(qb, NULL));
  for (c = 0; c < in->nkey; c++) loam_qb_column(st, hidden_key(qb, in->key[c], c));
  /* Tuples for one key as for several: one key renders as an IN list does. */
  {
    loam_expr *keys = loam_qb_in_tuples(qb, in->key, in->nkey, w->dk, w->out->ngroups, 0);
    if (in->key_coltypes != NULL) keys = loam_qb_in_coltypes(qb, keys, in->key_coltypes, in->nkey);
    if (in->key_indexed) keys = loam_qb_in_indexed(qb, keys);
    loam_qb_where(st, keys);
  }
  w->hidden = in->nkey;
  if (in->limit_per_key > 0) {
    /* The window orders each key's rows; the subquery's own ORDER BY would be a wasted sort. */
    const loam__qorder *o = st->order.p;
    int n = st->order.n, i;
    loam_expr **oe = malloc(((size_t)n + 1) * sizeof *oe);
    int *of = malloc(((size_t)n + 1) * sizeof *of);
    loam_qstmt *outer;
    if (oe == NULL || of == NULL) {
      free(oe);
      free(of);
      return loam__err_nomem(err);
    }
    for (i = 0; i < n; i++) {
      oe[i] = (loam_expr *)o[i].e;
      of[i] = o[i].flags;
    }
    loam_qb_column(st, loam_qb_alias(qb, loam_qb_row_number(qb, in->key, in->nkey, oe, of, n),
                                     RN_ALIAS));
    free(oe);
    free(of);
    st->order.n = 0;
    outer = loam_qb_select_from(qb, st, SUB_ALIAS);
    loam_qb_where(outer, loam_qb_op(qb, "<=", loam_qb_col(qb, NULL, RN_ALIAS),
                                    loam_qb_val(qb, loam_int(in->limit_per_key))));
    loam_qb_order(outer, loam_qb_col(qb, NULL, RN_ALIAS), 0);
    st = outer;
    w->hidden++;
  }
  return loam_qb_render(qb, st, dialect, 0, &w->rs, err);
}

/* }====================================================================== */


/* {======================================================================
** Rows
** ======================================================================= */

/*
** Reads statement 's' into the spec's result.  Statements of a pipeline
** are read through the driver ('direct'), the others through 'loam_step',
** which reports them to the instrumentation when they finish.
*/
static int collect (work *w, loam_stmt *s, int direct, loam_error *err) {
  const loam__driver *drv = s->conn->drv;
  bspec *b = w->out;
  int ncols = s->ncols - w->hidden, nkey = w->in->nkey, c, rc;
  size_t bytes = 0;
  loam_value local[8], *kv = local;
  if (ncols < 0)
    return loam__err(err, LOAM_E_MISUSE, "batch: the statement lost its key columns");
  b->ncols = ncols;
  for (c = 0; c < ncols; c++) bytes += strlen(drv->column_name(s, c)) + 1;
  if ((b->names = malloc((size_t)ncols * sizeof(char *) + bytes + 1)) == NULL ||
      (w->gsize = calloc((size_t)b->ngroups + 1, sizeof *w->gsize)) == NULL ||
      (nkey > 8 && (kv = malloc((size_t)nkey * sizeof *kv)) == NULL))
    return loam__err_nomem(err);
  bytes = (size_t)ncols * sizeof(char *);
  for (c = 0; c < ncols; c++) {
    const char *name = drv->column_name(s, c);
    size_t len = strlen(name) + 1;
    b->names[c] = (char *)b->names + bytes;
    memcpy(b->names[c], name, len);
    bytes += len;
  }
  while ((rc = direct ? drv->step(s, err) : loam_step(s, err)) == LOAM_ROW) {
    uint64_t h;
    int g;
    loam_value *row;
    for (c = 0; c < nkey; c++) drv->column(s, ncols + c, &kv[c]);
    if ((g = lookup(w, kv, &h)) < 0 || (w->in->one && w->gsize[g] > 0)) continue;
    if ((size_t)b->nrows == w->rowcap) {
      size_t cap = w->rowcap ? w->rowcap * 2 : 64;
      loam_value *v = cap <= INT_MAX ? realloc(b->vals, cap * ((size_t)ncols + 1) * sizeof *v)
                                     : NULL;
      int *rg;
      if (v != NULL) b->vals = v;
      rg = v != NULL ? realloc(w->rowgroup, cap * sizeof *rg) : NULL;
      if (rg == NULL) {
        rc = loam__err_nomem(err);
        break;
      }
      w->rowgroup = rg;
      w->rowcap = cap;
    }
    row = &b->vals[(size_t)b->nrows * (size_t)ncols];
    for (c = 0; c < ncols; c++) {
      drv->column(s, c, &row[c]);
      if (row[c].type == LOAM_TEXT || row[c].type == LOAM_BLOB) {
        /* Bytes are laid out in value order; 'finish' points the values at them. */
        loam__buf_add(&w->bytes, row[c].u.s.ptr, row[c].u.s.len);
        loam__buf_addc(&w->bytes, '\0');
        row[c].u.s.ptr = NULL;
      }
    }
    w->rowgroup[b->nrows++] = g;
    w->gsize[g]++;
  }
  if (kv != local) free(kv);
  if (rc == LOAM_DONE && w->bytes.oom) return loam__err_nomem(err);
  return rc == LOAM_DONE ? LOAM_OK : LOAM_ERROR;
}


/* Lays the rows out group by group and points text values at their bytes. */
static int finish (work *w, loam_error *err) {
  bspec *b = w->out;
  size_t i, n = (size_t)b->nrows * (size_t)b->ncols, off = 0;
  int g, *fill;
  b->goff = malloc(((size_t)b->ngroups + 1) * sizeof *b->goff);
  b->grows = malloc(((size_t)b->nrows + 1) * sizeof *b->grows);
  fill = malloc(((size_t)b->ngroups + 1) * sizeof *fill);
  if (b->goff == NULL || b->grows == NULL || fill == NULL) {
    free(fill);
    return loam__err_nomem(err);
  }
  b->goff[0] = 0;
  for (g = 0; g < b->ngroups; g++) {
    fill[g] = b->goff[g];
    b->goff[g + 1] = b->goff[g] + (w->gsize != NULL ? w->gsize[g] : 0);
  }
  for (i = 0; i < (size_t)b->nrows; i++) b->grows[fill[w->rowgroup[i]]++] = (int)i;
  free(fill);
  b->bytes = w->bytes.p;   /* taken over: 'work_free' must not free it */
  w->bytes.p = NULL;
  for (i = 0; i < n; i++) {
    loam_value *v = &b->vals[i];
    if (v->type != LOAM_TEXT && v->type != LOAM_BLOB) continue;
    v->u.s.ptr = b->bytes + off;
    off += v->u.s.len + 1;
  }
  return LOAM_OK;
}

/* }====================================================================== */


/* {======================================================================
** Loading
** ======================================================================= */

static void work_free (work *w) {
  free(w->cls);
  free(w->dk);
  free(w->dhash);
  free(w->slots);
  loam_rendered_free(w->rs);
  free(w->rowgroup);
  free(w->gsize);
  loam__buf_free(&w->bytes);
}


static int check_spec (const loam_batch_spec *in, int i, loam_error *err) {
  if (in->qb == NULL || in->query == NULL || in->key == NULL || in->nkey < 1 ||
      in->nkeys < 0 || (in->nkeys > 0 && in->keys == NULL) || in->limit_per_key < 0 ||
      (in->nkeys > 0 && in->nkey > INT_MAX / in->nkeys))
    return loam__err(err, LOAM_E_MISUSE, "batch spec %d: needs a builder, a query, at least "
                     "one key expression and a key list (limit_per_key not negative)", i + 1);
  return LOAM_OK;
}


/* Runs the statements of 'w' (those with keys): in one pipeline, or one by one. */
static int run (loam_conn *conn, work *w, int n, int *round_trips, loam_error *err) {
  loam__pipe *q;
  int i, m = 0, rc = LOAM_OK;
  for (i = 0; i < n; i++) m += w[i].rs != NULL;
  if (m > 1 && conn->drv->pipeline != NULL) {
    if ((q = calloc((size_t)m, sizeof *q)) == NULL) return loam__err_nomem(err);
    for (i = 0, m = 0; i < n; i++) {
      if (w[i].rs == NULL) continue;
      q[m].sql = loam_rendered_sql(w[i].rs, 0, NULL);
      q[m].kind = loam_rendered_kind(w[i].rs, 0);
      q[m].params = loam_rendered_params(w[i].rs, 0, &q[m].nparams);
      m++;
    }
    rc = conn->drv->pipeline(conn, q, m, err);
    *round_trips = rc == LOAM_OK;
    for (i = 0, m = 0; i < n; i++) {
      loam_stmt *s;
      if (w[i].rs == NULL) continue;
      s = q[m++].stmt;
      if (rc == LOAM_OK) rc = collect(&w[i], s, 1, err);
      if (s != NULL) {
        conn->drv->finish(s);
        free(s);
      }
    }
    free(q);
    return rc;
  }
  for (i = 0; i < n && rc == LOAM_OK; i++) {
    loam_stmt *s;
    if (w[i].rs == NULL) continue;
    rc = loam_query_rendered(conn, w[i].rs, 0, 0, &s, err);
    if (rc != LOAM_OK) break;
    ++*round_trips;
    rc = collect(&w[i], s, 0, err);
    loam_stmt_close(s);
  }
  return rc;
}


int loam_batch_load (loam_conn *conn, const loam_batch_spec *specs, int nspecs,
                     loam_batch **out, loam_error *err) {
  loam_batch *b;
  work *w;
  int i, rc = LOAM_OK;
  if (out == NULL) return loam__err(err, LOAM_E_MISUSE, "loam_batch_load: 'out' is NULL");
  *out = NULL;
  if (conn == NULL) return loam__err(err, LOAM_E_MISUSE, "attempt to use a closed connection");
  if (nspecs < 0 || (nspecs > 0 && specs == NULL))
    return loam__err(err, LOAM_E_MISUSE, "loam_batch_load: bad spec list");
  for (i = 0; i < nspecs; i++)
    if (check_spec(&specs[i], i, err) != LOAM_OK) return LOAM_ERROR;
  b = calloc(1, sizeof *b);
  w = calloc((size_t)nspecs + 1, sizeof *w);
  if (b == NULL || w == NULL || (b->s = calloc((size_t)nspecs + 1, sizeof *b->s)) == NULL) {
    free(w);
    free(b);
    return loam__err_nomem(err);
  }
  b->nspecs = nspecs;
  for (i = 0; i < nspecs && rc == LOAM_OK; i++) {
    w[i].in = &specs[i];
    w[i].out = &b->s[i];
    rc = dedup(&w[i], err);
    if (rc == LOAM_OK && b->s[i].ngroups > 0) rc = build(&w[i], loam_conn_backend(conn), err);
  }
  if (rc == LOAM_OK) rc = run(conn, w, nspecs, &b->round_trips, err);
  for (i = 0; i < nspecs && rc == LOAM_OK; i++) rc = finish(&w[i], err);
  for (i = 0; i < nspecs; i++) work_free(&w[i]);
  free(w);
  if (rc != LOAM_OK) {
    loam_batch_free(b);
    return LOAM_ERROR;
  }
  *out = b;
  return LOAM_OK;
}


void loam_batch_free (loam_batch *b) {
  int i;
  if (b == NULL) return;
  for (i = 0; i < b->nspecs; i++) {
    bspec *s = &b->s[i];
    free(s->key_group);
    free(s->goff);
    free(s->grows);
    free(s->names);
    free(s->vals);
    free(s->bytes);
  }
  free(b->s);
  free(b);
}

/* }====================================================================== */


/* {======================================================================
** Reading results
** ======================================================================= */

static const bspec *spec_of (const loam_batch *b, int s) {
  return b != NULL && s >= 0 && s < b->nspecs ? &b->s[s] : NULL;
}


int loam_batch_round_trips (const loam_batch *b) {
  return b != NULL ? b->round_trips : 0;
}


int loam_batch_key_group (const loam_batch *b, int s, int k) {
  const bspec *p = spec_of(b, s);
  return p != NULL && k >= 0 && k < p->nkeys ? p->key_group[k] : -1;
}


int loam_batch_group_count (const loam_batch *b, int s) {
  const bspec *p = spec_of(b, s);
  return p != NULL ? p->ngroups : 0;
}


int loam_batch_group_size (const loam_batch *b, int s, int g) {
  const bspec *p = spec_of(b, s);
  return p != NULL && g >= 0 && g < p->ngroups ? p->goff[g + 1] - p->goff[g] : 0;
}


int loam_batch_group_row (const loam_batch *b, int s, int g, int j) {
  const bspec *p = spec_of(b, s);
  if (p == NULL || g < 0 || g >= p->ngroups || j < 0 || j >= p->goff[g + 1] - p->goff[g])
    return -1;
  return p->grows[p->goff[g] + j];
}


int loam_batch_row_count (const loam_batch *b, int s) {
  const bspec *p = spec_of(b, s);
  return p != NULL ? p->nrows : 0;
}


int loam_batch_column_count (const loam_batch *b, int s) {
  const bspec *p = spec_of(b, s);
  return p != NULL ? p->ncols : 0;
}


const char *loam_batch_column_name (const loam_batch *b, int s, int col) {
  const bspec *p = spec_of(b, s);
  return p != NULL && col >= 0 && col < p->ncols ? p->names[col] : NULL;
}


int loam_batch_column (const loam_batch *b, int s, int row, int col, loam_value *out) {
  const bspec *p = spec_of(b, s);
  if (out == NULL) return LOAM_ERROR;
  *out = loam_null();
  if (p == NULL || row < 0 || row >= p->nrows || col < 0 || col >= p->ncols) return LOAM_ERROR;
  *out = p->vals[(size_t)row * (size_t)p->ncols + (size_t)col];
  return LOAM_OK;
}

/* }====================================================================== */
