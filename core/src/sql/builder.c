/*
** builder.c: the query builder's memory and the constructors of its tree.
**
** A builder is an arena: nodes, copied strings and values are carved out
** of a few large blocks and all freed at once, so building a statement
** costs no allocation per node and freeing it no walk.  Constructors check
** their input at once (identifiers, operators, IN lists, raw fragments)
** and store what the renderer needs ready-made; the first problem is kept
** in the builder and reported by 'loam_qb_render', so callers build a
** whole tree without checking each step.
*/
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/builder_int.h"


/* Blocks start at this size and double up to the maximum; larger requests get their own. */
#define BLOCK_MIN  2048
#define BLOCK_MAX  65536

/* Alignment of node and value allocations. */
#define ALIGN  (sizeof(void *) > sizeof(double) ? sizeof(void *) : sizeof(double))

typedef struct block {
  struct block *next;
  size_t size;             /* usable bytes after the header */
  size_t used;
} block;

/* The header rounded up to ALIGN, so the data after it is aligned. */
#define HEADER  ((sizeof(block) + ALIGN - 1) / ALIGN * ALIGN)

struct loam_qb {
  block *blocks;           /* the current block first */
  size_t next_size;
  loam_error err;          /* the first error; code LOAM_E_NONE while there is none */
  loam__buf scratch;       /* quoting identifiers, checking raw fragments */
};

const char *const loam__qops[LOAM__OP_COUNT] = {
  "=", "<>", "<", "<=", ">", ">=", "LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"
};

const char *const loam__qaggs[LOAM__AGG_N] = { "count", "sum", "avg", "min", "max" };


/* {======================================================================
** Memory and errors
** ======================================================================= */

loam_qb *loam_qb_new (void) {
  loam_qb *qb = calloc(1, sizeof *qb);
  if (qb != NULL) qb->next_size = BLOCK_MIN;
  return qb;
}


void loam_qb_free (loam_qb *qb) {
  block *b, *next;
  if (qb == NULL) return;
  for (b = qb->blocks; b != NULL; b = next) {
    next = b->next;
    free(b);
  }
  loam_error_clear(&qb->err);
  loam__buf_free(&qb->scratch);
  free(qb);
}


static int failed (const loam_qb *qb) {
  return qb == NULL || qb->err.code != LOAM_E_NONE;
}


/* Records the first error of 'qb'; later ones would only be consequences of it. */
static void fail (loam_qb *qb, loam_errcode code, const char *fmt, ...) LOAMI_PRINTF(3, 4);
static void fail (loam_qb *qb, loam_errcode code, const char *fmt, ...) {
  loam__buf m = LOAM__BUF_INIT;
  va_list ap;
  if (failed(qb)) return;
  va_start(ap, fmt);
  loam__buf_vaddf(&m, fmt, ap);
  va_end(ap);
  if (loam__buf_cstr(&m) == NULL) loam__err_nomem(&qb->err);
  else loam__err_msg(&qb->err, code, m.p, m.len);
  loam__buf_free(&m);
}


static void nomem (loam_qb *qb) {
  if (!failed(qb)) loam__err_nomem(&qb->err);
}


int loam__qb_error (const loam_qb *qb, loam_error *err) {
  if (qb == NULL) return loam__err_nomem(err);
  if (qb->err.code == LOAM_E_NONE) return LOAM_OK;
  if (qb->err.message == NULL) return loam__err_nomem(err);
  return loam__err_msg(err, qb->err.code, qb->err.message, strlen(qb->err.message));
}


/*
** Returns 'n' bytes aligned to ALIGN, or NULL (error recorded).  A request
** larger than half a block gets a block of its own, placed behind the
** current one so the space left there is not lost.
*/
static void *alloc (loam_qb *qb, size_t n) {
  block *b = qb->blocks;
  size_t size;
  n = (n + ALIGN - 1) / ALIGN * ALIGN;
  if (b != NULL && b->size - b->used >= n) {
    void *p = (char *)b + HEADER + b->used;
    b->used += n;
    return p;
  }
  if (n > SIZE_MAX / 2 - HEADER) { nomem(qb); return NULL; }
  size = n > qb->next_size / 2 ? n : qb->next_size;
  b = malloc(HEADER + size);
  if (b == NULL) { nomem(qb); return NULL; }
  b->size = size;
  b->used = n;
  if (size == n && qb->blocks != NULL) {
    b->next = qb->blocks->next;
    qb->blocks->next = b;
  }
  else {
    b->next = qb->blocks;
    qb->blocks = b;
    if (qb->next_size < BLOCK_MAX) qb->next_size *= 2;
  }
  return (char *)b + HEADER;
}


/* Copies 'n' bytes and a NUL into the arena. */
static const char *copy (loam_qb *qb, const char *s, size_t n) {
  char *p = alloc(qb, n + 1);
  if (p == NULL) return NULL;
  if (n > 0) memcpy(p, s, n);
  p[n] = '\0';
  return p;
}


/*
** Makes room for 'count' more items of 'size' bytes at the end of 'v' and
** returns the first; NULL on error (recorded).
*/
static void *vec_push (loam_qb *qb, loam__qvec *v, size_t size, int count) {
  if (count > INT_MAX - v->n) {
    fail(qb, LOAM_E_MISUSE, "too many items in one list");
    return NULL;
  }
  if (v->n + count > v->cap) {
    int cap = v->cap > 0 ? v->cap : 4;
    void *p;
    while (cap < v->n + count) cap = cap > INT_MAX / 2 ? v->n + count : cap * 2;
    if ((size_t)cap > SIZE_MAX / size) { nomem(qb); return NULL; }
    p = alloc(qb, (size_t)cap * size);
    if (p == NULL) return NULL;
    if (v->n > 0) memcpy(p, v->p, (size_t)v->n * size);
    v->p = p;
    v->cap = cap;
  }
  v->n += count;
  return (char *)v->p + (size_t)(v->n - count) * size;
}


/* A new node of 'kind'; NULL on error. */
static loam_expr *node (loam_qb *qb, int kind) {
  loam_expr *e;
  if (failed(qb)) return NULL;
  e = alloc(qb, sizeof *e);
  if (e == NULL) return NULL;
  memset(e, 0, sizeof *e);
  e->kind = (unsigned char)kind;
  return e;
}


/*
** True when every node argument is there.  A NULL comes from a failed
** constructor, whose error is already recorded; without one, the caller
** passed NULL itself, which is recorded here.
*/
static int have (loam_qb *qb, const char *what, const void *a, const void *b, const void *c) {
  if (failed(qb)) return 0;
  if (a != NULL && b != NULL && c != NULL) return 1;
  fail(qb, LOAM_E_MISUSE, "%s: an expression is missing (NULL)", what);
  return 0;
}

/* }====================================================================== */


/* {======================================================================
** Identifiers and values
** ======================================================================= */

/* Checks 'name' and appends it quoted to the scratch buffer. */
static int add_ident (loam_qb *qb, const char *name) {
  loam_error e = LOAM_ERROR_INIT;
  size_t n = name != NULL ? strlen(name) : 0;
  if (loam__ident_check(name, n, &e) != LOAM_OK) {
    fail(qb, e.code, "%s", e.message != NULL ? e.message : "invalid identifier");
    loam_error_clear(&e);
    return 0;
  }
  loam__buf_ident(&qb->scratch, name, n);
  return 1;
}


/* Moves the scratch buffer into the arena as a text; p NULL on error. */
static loam__text take_scratch (loam_qb *qb) {
  loam__text t = { NULL, 0 };
  if (qb->scratch.oom) nomem(qb);
  else if (!failed(qb)) {
    t.p = copy(qb, qb->scratch.p != NULL ? qb->scratch.p : "", qb->scratch.len);
    t.len = qb->scratch.len;
  }
  loam__buf_reset(&qb->scratch);
  return t;
}


/*
** The quoted form of [prefix.]name[sep suffix] ("t"."c", "t" AS "a"),
** made once here so rendering only copies it.  'prefix' and 'suffix' may
** be NULL; 'name' is required.
*/
static loam__text quoted (loam_qb *qb, const char *prefix, const char *name, const char *sep,
                          const char *suffix) {
  loam__text none = { NULL, 0 };
  if (failed(qb)) return none;
  loam__buf_reset(&qb->scratch);
  if (prefix != NULL) {
    if (!add_ident(qb, prefix)) return none;
    loam__buf_addc(&qb->scratch, '.');
  }
  if (!add_ident(qb, name)) return none;
  if (suffix != NULL) {
    loam__buf_adds(&qb->scratch, sep);
    if (!add_ident(qb, suffix)) return none;
  }
  return take_scratch(qb);
}


/* Copies 'n' values into 'out' and their bytes into the arena; 0 on error. */
static int fill_values (loam_qb *qb, loam_value *out, const loam_value *v, int n) {
  int i;
  for (i = 0; i < n; i++) {
    out[i] = v[i];
    if (v[i].type == LOAM_TEXT || v[i].type == LOAM_BLOB) {
      out[i].u.s.ptr = copy(qb, v[i].u.s.ptr != NULL ? v[i].u.s.ptr : "", v[i].u.s.len);
      if (out[i].u.s.ptr == NULL) return 0;
    }
    else if ((unsigned)v[i].type > LOAM_BLOB) {
      fail(qb, LOAM_E_MISUSE, "value %d has an unknown type %d", i + 1, (int)v[i].type);
      return 0;
    }
  }
  return 1;
}


/* A copy of 'n' values (n > 0) and their bytes in the arena; NULL on error. */
static loam_value *copy_values (loam_qb *qb, const loam_value *v, int n) {
  loam_value *out = alloc(qb, (size_t)n * sizeof *out);
  return out != NULL && fill_values(qb, out, v, n) ? out : NULL;
}

/* }====================================================================== */


/* {======================================================================
** Expressions
** ======================================================================= */

loam_expr *loam_qb_col (loam_qb *qb, const char *table, const char *name) {
  loam_expr *e = node(qb, LOAM__X_SQL);
  if (e == NULL) return NULL;
  e->u.sql = quoted(qb, table, name, NULL, NULL);
  return e->u.sql.p != NULL ? e : NULL;
}


loam_expr *loam_qb_star (loam_qb *qb, const char *table) {
  loam_expr *e = node(qb, LOAM__X_SQL);
  if (e == NULL) return NULL;
  if (table == NULL) {
    e->u.sql.p = "*";
    e->u.sql.len = 1;
    return e;
  }
  loam__buf_reset(&qb->scratch);
  if (!add_ident(qb, table)) return NULL;
  loam__buf_adds(&qb->scratch, ".*");
  e->u.sql = take_scratch(qb);
  return e->u.sql.p != NULL ? e : NULL;
}


loam_expr *loam_qb_val (loam_qb *qb, loam_value v) {
  loam_expr *e = node(qb, LOAM__X_VAL);
  return e != NULL && fill_values(qb, &e->u.val, &v, 1) ? e : NULL;
}


/*
** The next placeholder of a raw fragment at or after 'p', or NULL.  Here
** a placeholder is any '?' not doubled; '??' sets '*literal_q'.
*/
static const char *next_placeholder (const char *p, int *literal_q) {
  for (; *p != '\0'; p++) {
    if (*p != '?') continue;
    if (p[1] != '?') return p;
    *literal_q = 1;
    p++;
  }
  return NULL;
}


/*
** Splits the fragment at its placeholders ('next_placeholder').  The
** lexer PostgreSQL's driver applies ('loam__sql_to_dollar') counts only
** the '?' outside literals, quoted names and comments.  The two counts
** agree exactly when no '?' sits inside those, the one form where the two
** readings could differ, so that form is refused instead of guessed at.
*/
loam_expr *loam_qb_raw (loam_qb *qb, const char *sql, const loam_value *params, int nparams) {
  loam_expr *e = node(qb, LOAM__X_RAW);
  loam_error le = LOAM_ERROR_INIT;
  loam__text *parts;
  const char *text, *p, *run;
  int n = 0, lexed = 0, literal_q = 0, i;
  if (e == NULL) return NULL;
  if (sql == NULL || nparams < 0 || (nparams > 0 && params == NULL)) {
    fail(qb, LOAM_E_MISUSE, "raw SQL fragment: missing text or parameters");
    return NULL;
  }
  for (p = next_placeholder(sql, &literal_q); p != NULL; p = next_placeholder(p + 1, &literal_q)) {
    if (p[1] >= '0' && p[1] <= '9') {
      fail(qb, LOAM_E_MISUSE, "raw SQL fragment: write placeholders as '?', not '?%c'", p[1]);
      return NULL;
    }
    n++;
  }
  loam__buf_reset(&qb->scratch);
  if (loam__sql_to_dollar(sql, &qb->scratch, &lexed, &le) != LOAM_OK) {
    fail(qb, le.code, "raw SQL fragment: %s", le.message != NULL ? le.message : "invalid");
    loam_error_clear(&le);
    return NULL;
  }
  if (n == 0 && lexed > 0) {
    fail(qb, LOAM_E_MISUSE, "raw SQL fragment: write placeholders as '?', not '$n'");
    return NULL;
  }
  if (n != lexed) {
    fail(qb, LOAM_E_MISUSE, "raw SQL fragment: a '?' inside a string literal, quoted name or "
         "comment is ambiguous; bind that value as a parameter");
    return NULL;
  }
  if (n != nparams) {
    fail(qb, LOAM_E_MISUSE, "raw SQL fragment takes %d parameter%s, %d given", n,
         n == 1 ? "" : "s", nparams);
    return NULL;
  }
  text = copy(qb, sql, strlen(sql));
  parts = alloc(qb, (size_t)(n + 1) * sizeof *parts);
  if (text == NULL || parts == NULL) return NULL;
  run = text;
  for (i = 0; i < n; i++) {
    p = next_placeholder(run, &literal_q);
    parts[i].p = run;
    parts[i].len = (size_t)(p - run);
    run = p + 1;
  }
  parts[n].p = run;
  parts[n].len = strlen(run);
  e->n = n;
  e->u.raw.parts = parts;
  e->u.raw.literal_q = literal_q;
  if (n == 0) return e;
  e->u.raw.params = copy_values(qb, params, n);
  return e->u.raw.params != NULL ? e : NULL;
}


loam_expr *loam_qb_op (loam_qb *qb, const char *op, loam_expr *l, loam_expr *r) {
  loam_expr *e;
  int i;
  if (!have(qb, "operator", l, r, "")) return NULL;
  for (i = 0; i < LOAM__OP_COUNT; i++)
    if (op != NULL && strcmp(op, loam__qops[i]) == 0) break;
  if (i == LOAM__OP_COUNT) {
    fail(qb, LOAM_E_MISUSE, "unknown operator '%.40s'", op != NULL ? op : "(null)");
    return NULL;
  }
  e = node(qb, LOAM__X_OP);
  if (e == NULL) return NULL;
  e->sub = (unsigned char)i;
  e->u.x.a = l;
  e->u.x.b = r;
  return e;
}


static loam_expr *junction (loam_qb *qb, int kind, loam_expr *const *items, int n) {
  loam_expr *e;
  loam_expr **copyv;
  int i;
  if (failed(qb)) return NULL;
  if (n < 0 || (n > 0 && items == NULL)) {
    fail(qb, LOAM_E_MISUSE, "%s: bad item list", kind == LOAM__X_AND ? "AND" : "OR");
    return NULL;
  }
  for (i = 0; i < n; i++)
    if (!have(qb, kind == LOAM__X_AND ? "AND" : "OR", items[i], "", "")) return NULL;
  if (n == 1) return items[0];
  e = node(qb, kind);
  if (e == NULL) return NULL;
  if (n > 0) {
    copyv = alloc(qb, (size_t)n * sizeof *copyv);
    if (copyv == NULL) return NULL;
    memcpy(copyv, items, (size_t)n * sizeof *copyv);
    e->u.items = copyv;
  }
  e->n = n;
  return e;
}


loam_expr *loam_qb_and (loam_qb *qb, loam_expr *const *items, int n) {
  return junction(qb, LOAM__X_AND, items, n);
}


loam_expr *loam_qb_or (loam_qb *qb, loam_expr *const *items, int n) {
  return junction(qb, LOAM__X_OR, items, n);
}


/* A node of 'kind' over 'a' (and, for BETWEEN, 'b' and 'c'). */
static loam_expr *over (loam_qb *qb, const char *what, int kind, int negate, loam_expr *a,
                        loam_expr *b, loam_expr *c) {
  loam_expr *e;
  int three = kind == LOAM__X_BETWEEN;
  if (!have(qb, what, a, three ? (const void *)b : "", three ? (const void *)c : ""))
    return NULL;
  e = node(qb, kind);
  if (e == NULL) return NULL;
  e->negate = negate != 0;
  e->u.x.a = a;
  e->u.x.b = b;
  e->u.x.c = c;
  return e;
}


loam_expr *loam_qb_not (loam_qb *qb, loam_expr *e) {
  return over(qb, "NOT", LOAM__X_NOT, 0, e, NULL, NULL);
}


loam_expr *loam_qb_is_null (loam_qb *qb, loam_expr *e, int negate) {
  return over(qb, "IS NULL", LOAM__X_NULL, negate, e, NULL, NULL);
}


loam_expr *loam_qb_between (loam_qb *qb, loam_expr *e, loam_expr *lo, loam_expr *hi,
                            int negate) {
  return over(qb, "BETWEEN", LOAM__X_BETWEEN, negate, e, lo, hi);
}


/*
** The element type of one list of an IN: the 'n' values 'vals[0]',
** 'vals[stride]'... (position 'col' of tuples, or a plain list when 'col'
** is negative).  It is fixed
** when the node is made, so the text (with its PostgreSQL cast) depends
** only on the shape, and a bad list fails at once, naming the value: by
** its place in the list, or by tuple and position for tuples.  Returns
** LOAM_NULL after an error (recorded), and for an empty list.
*/
static int list_type (loam_qb *qb, const loam_value *vals, int n, int stride, int col) {
  int i, t = LOAM_NULL;
  for (i = 0; i < n; i++) {
    int vt = vals[(size_t)i * (size_t)stride].type;
    char where[48];
    if (col >= 0) snprintf(where, sizeof where, "tuple %d value %d", i + 1, col + 1);
    else snprintf(where, sizeof where, "value %d", i + 1);
    if (vt == LOAM_NULL) {
      fail(qb, LOAM_E_MISUSE, "IN list: %s is NULL, which never matches IN "
           "(test for NULL with IS NULL)", where);
      return LOAM_NULL;
    }
    if (vt == LOAM_BLOB || (unsigned)vt > LOAM_BLOB) {
      fail(qb, LOAM_E_MISUSE, "IN list: %s is of type %s, which a list cannot hold",
           where, loam_type_name(vt));
      return LOAM_NULL;
    }
    if (t == LOAM_NULL || t == vt) t = vt;
    else if ((t == LOAM_INT || t == LOAM_DOUBLE || t == LOAM__LIST_MIXED_NUM) &&
             (vt == LOAM_INT || vt == LOAM_DOUBLE))
      t = LOAM__LIST_MIXED_NUM;
    else {
      fail(qb, LOAM_E_MISUSE, "IN list: %s is of type %s after values of type %s; "
           "a list holds one type", where, loam_type_name(vt),
           t == LOAM__LIST_MIXED_NUM ? "integer and float" : loam_type_name(t));
      return LOAM_NULL;
    }
  }
  return t;
}


loam_expr *loam_qb_in_list (loam_qb *qb, loam_expr *e, const loam_value *vals, int n,
                            int negate) {
  loam_expr *x;
  int t;
  if (!have(qb, "IN", e, "", "")) return NULL;
  if (n < 0 || (n > 0 && vals == NULL)) {
    fail(qb, LOAM_E_MISUSE, "IN list: bad value list");
    return NULL;
  }
  t = list_type(qb, vals, n, 1, -1);
  if (failed(qb)) return NULL;
  x = node(qb, LOAM__X_INLIST);
  if (x == NULL) return NULL;
  x->negate = negate != 0;
  x->ltype = (unsigned char)t;
  x->n = n;
  x->u.in.a = e;
  if (n == 0) return x;
  x->u.in.vals = copy_values(qb, vals, n);
  return x->u.in.vals != NULL ? x : NULL;
}


loam_expr *loam_qb_in_coltype (loam_qb *qb, loam_expr *in, int coltype) {
  if (failed(qb) || in == NULL) return NULL;
  if (in->kind != LOAM__X_INLIST || coltype < 0 || coltype > LOAM_COL_ENUM) {
    fail(qb, LOAM_E_MISUSE, "IN list column type: needs an IN list and a column type");
    return NULL;
  }
  in->coltype = (unsigned char)coltype;
  return in;
}


loam_expr *loam_qb_in_coltypes (loam_qb *qb, loam_expr *in, const int *coltypes, int n) {
  unsigned char *ct;
  int i;
  if (failed(qb) || in == NULL) return NULL;
  if (in->kind == LOAM__X_INLIST && coltypes != NULL && n == 1)
    return loam_qb_in_coltype(qb, in, coltypes[0]);
  if (in->kind != LOAM__X_INTUPLES || coltypes == NULL || n != in->n) {
    fail(qb, LOAM_E_MISUSE, "IN column types: needs an IN list or tuples and one column type "
         "per expression");
    return NULL;
  }
  for (i = 0; i < n; i++)
    if (coltypes[i] < 0 || coltypes[i] > LOAM_COL_ENUM) {
      fail(qb, LOAM_E_MISUSE, "IN column types: column type %d of expression %d is unknown",
           coltypes[i], i + 1);
      return NULL;
    }
  ct = alloc(qb, (size_t)n);
  if (ct == NULL) return NULL;
  for (i = 0; i < n; i++) ct[i] = (unsigned char)coltypes[i];
  in->u.tup.coltypes = ct;
  return in;
}


loam_expr *loam_qb_in_indexed (loam_qb *qb, loam_expr *in) {
  if (failed(qb) || in == NULL) return NULL;
  if (in->kind != LOAM__X_INLIST && in->kind != LOAM__X_INTUPLES) {
    fail(qb, LOAM_E_MISUSE, "IN indexed: needs an IN list or tuples");
    return NULL;
  }
  in->indexed = 1;
  return in;
}


/*
** Every column of the tuples gets its own element type, as an IN list
** does; the values are kept row after row, as given.
*/
loam_expr *loam_qb_in_tuples (loam_qb *qb, loam_expr *const *exprs, int nexprs,
                              const loam_value *vals, int ntuples, int negate) {
  loam_expr *x;
  loam_expr **ev;
  unsigned char *types;
  int i;
  if (failed(qb)) return NULL;
  if (nexprs < 1 || exprs == NULL || ntuples < 0 || (ntuples > 0 && vals == NULL) ||
      (ntuples > 0 && nexprs > INT_MAX / ntuples)) {
    fail(qb, LOAM_E_MISUSE, "IN tuples: bad expression or tuple list");
    return NULL;
  }
  if (nexprs > LOAM__KEYS_MAXCOLS) {
    fail(qb, LOAM_E_MISUSE, "IN tuples: %d columns, more than the %d a tuple may have", nexprs,
         LOAM__KEYS_MAXCOLS);
    return NULL;
  }
  for (i = 0; i < nexprs; i++)
    if (!have(qb, "IN tuples", exprs[i], "", "")) return NULL;
  ev = alloc(qb, (size_t)nexprs * sizeof *ev);
  types = alloc(qb, (size_t)nexprs);
  x = node(qb, LOAM__X_INTUPLES);
  if (ev == NULL || types == NULL || x == NULL) return NULL;
  for (i = 0; i < nexprs; i++) {
    /* No tuples may come with 'vals' NULL, which takes no offset. */
    types[i] = (unsigned char)list_type(qb, ntuples > 0 ? vals + i : vals, ntuples, nexprs, i);
    if (failed(qb)) return NULL;
  }
  memcpy(ev, exprs, (size_t)nexprs * sizeof *ev);
  x->negate = negate != 0;
  x->n = nexprs;
  x->u.tup.exprs = ev;
  x->u.tup.ltypes = types;
  x->u.tup.ntuples = ntuples;
  if (ntuples == 0) return x;
  x->u.tup.vals = copy_values(qb, vals, ntuples * nexprs);
  return x->u.tup.vals != NULL ? x : NULL;
}


loam_expr *loam_qb_in_query (loam_qb *qb, loam_expr *e, loam_qstmt *sub, int negate) {
  loam_expr *x;
  if (!have(qb, "IN", e, sub, "")) return NULL;
  if (sub->qb != qb || sub->kind != LOAM__Q_SELECT) {
    fail(qb, LOAM_E_MISUSE, "IN: the subquery must be a SELECT of the same builder");
    return NULL;
  }
  x = node(qb, LOAM__X_INQUERY);
  if (x == NULL) return NULL;
  x->negate = negate != 0;
  x->u.inq.a = e;
  x->u.inq.q = sub;
  return x;
}


loam_expr *loam_qb_agg (loam_qb *qb, const char *fn, loam_expr *e, int distinct) {
  loam_expr *x;
  int i;
  if (failed(qb)) return NULL;
  for (i = 0; i < LOAM__AGG_N; i++)
    if (fn != NULL && strcmp(fn, loam__qaggs[i]) == 0) break;
  if (i == LOAM__AGG_N) {
    fail(qb, LOAM_E_MISUSE, "unknown aggregate function '%.40s'", fn != NULL ? fn : "(null)");
    return NULL;
  }
  if (e == NULL && (i != LOAM__AGG_COUNT || distinct)) {
    fail(qb, LOAM_E_MISUSE, "aggregate %s(%s*) needs an expression", loam__qaggs[i],
         distinct ? "DISTINCT " : "");
    return NULL;
  }
  x = node(qb, LOAM__X_AGG);
  if (x == NULL) return NULL;
  x->sub = (unsigned char)i;
  x->negate = distinct != 0;
  x->u.x.a = e;
  return x;
}


loam_expr *loam_qb_alias (loam_qb *qb, loam_expr *e, const char *name) {
  loam_expr *x;
  if (!have(qb, "AS", e, "", "")) return NULL;
  x = node(qb, LOAM__X_ALIAS);
  if (x == NULL) return NULL;
  x->u.alias.a = e;
  x->u.alias.name = quoted(qb, NULL, name, NULL, NULL);
  return x->u.alias.name.p != NULL ? x : NULL;
}


loam_expr *loam_qb_excluded (loam_qb *qb, const char *name) {
  loam_expr *x = node(qb, LOAM__X_EXCLUDED);
  if (x == NULL) return NULL;
  x->u.sql = quoted(qb, NULL, name, NULL, NULL);
  return x->u.sql.p != NULL ? x : NULL;
}


/* True when 'flags' are those of an ORDER BY item ('loam_qb_order', windows). */
static int order_flags (loam_qb *qb, int flags) {
  if ((flags & ~(LOAM_DESC | LOAM_NULLS_FIRST | LOAM_NULLS_LAST)) == 0 &&
      !(flags & LOAM_NULLS_FIRST && flags & LOAM_NULLS_LAST))
    return 1;
  fail(qb, LOAM_E_MISUSE, "ORDER BY: bad flags %d", flags);
  return 0;
}


loam_expr *loam_qb_row_number (loam_qb *qb, loam_expr *const *partition, int npartition,
                               loam_expr *const *order, const int *flags, int norder) {
  loam_expr *x;
  loam_expr **part = NULL;
  loam__qorder *o = NULL;
  int i;
  if (failed(qb)) return NULL;
  if (npartition < 0 || (npartition > 0 && partition == NULL) || norder < 0 ||
      (norder > 0 && order == NULL)) {
    fail(qb, LOAM_E_MISUSE, "row_number: bad PARTITION BY or ORDER BY list");
    return NULL;
  }
  for (i = 0; i < npartition; i++)
    if (!have(qb, "row_number PARTITION BY", partition[i], "", "")) return NULL;
  for (i = 0; i < norder; i++)
    if (!have(qb, "row_number ORDER BY", order[i], "", "") ||
        !order_flags(qb, flags != NULL ? flags[i] : 0))
      return NULL;
  if ((npartition > 0 && (part = alloc(qb, (size_t)npartition * sizeof *part)) == NULL) ||
      (norder > 0 && (o = alloc(qb, (size_t)norder * sizeof *o)) == NULL) ||
      (x = node(qb, LOAM__X_ROWNUM)) == NULL)
    return NULL;
  if (npartition > 0) memcpy(part, partition, (size_t)npartition * sizeof *part);
  for (i = 0; i < norder; i++) {
    o[i].e = order[i];
    o[i].flags = flags != NULL ? flags[i] : 0;
  }
  x->n = npartition;
  x->u.win.part = part;
  x->u.win.order = o;
  x->u.win.norder = norder;
  return x;
}

/* }====================================================================== */


/* {======================================================================
** Statements
** ======================================================================= */

static loam_qstmt *statement (loam_qb *qb, int kind, const char *table, const char *alias) {
  loam_qstmt *st;
  if (failed(qb)) return NULL;
  st = alloc(qb, sizeof *st);
  if (st == NULL) return NULL;
  memset(st, 0, sizeof *st);
  st->qb = qb;
  st->kind = kind;
  if (table != NULL || kind != LOAM__Q_SELECT) {
    st->table = quoted(qb, NULL, table, " AS ", alias);
    if (st->table.p == NULL) return NULL;
  }
  else if (alias != NULL) {
    fail(qb, LOAM_E_MISUSE, "SELECT: an alias without a table");
    return NULL;
  }
  return st;
}


loam_qstmt *loam_qb_select (loam_qb *qb, const char *table, const char *alias) {
  return statement(qb, LOAM__Q_SELECT, table, alias);
}


loam_qstmt *loam_qb_select_from (loam_qb *qb, loam_qstmt *sub, const char *alias) {
  loam_qstmt *st;
  if (!have(qb, "FROM (subquery)", sub, "", "")) return NULL;
  if (sub->qb != qb || sub->kind != LOAM__Q_SELECT) {
    fail(qb, LOAM_E_MISUSE, "FROM: the subquery must be a SELECT of the same builder");
    return NULL;
  }
  if (alias == NULL) {
    fail(qb, LOAM_E_MISUSE, "FROM (subquery): an alias is required");
    return NULL;
  }
  st = statement(qb, LOAM__Q_SELECT, NULL, NULL);
  if (st == NULL) return NULL;
  st->table = quoted(qb, NULL, alias, NULL, NULL);
  st->fromq = sub;
  return st->table.p != NULL ? st : NULL;
}


loam_qstmt *loam_qb_insert (loam_qb *qb, const char *table) {
  return statement(qb, LOAM__Q_INSERT, table, NULL);
}


loam_qstmt *loam_qb_update (loam_qb *qb, const char *table) {
  return statement(qb, LOAM__Q_UPDATE, table, NULL);
}


loam_qstmt *loam_qb_delete (loam_qb *qb, const char *table) {
  return statement(qb, LOAM__Q_DELETE, table, NULL);
}


static const char *const kindnames[] = { "?", "SELECT", "INSERT", "UPDATE", "DELETE" };

/*
** True when a setter may go on: 'st' is there, nothing failed, it is of
** a kind in 'kinds' (bit 1 << kind) and the expression 'e' is there.
*/
static int fits (loam_qstmt *st, unsigned kinds, const char *what, const void *e) {
  if (st == NULL || failed(st->qb)) return 0;
  if (!(kinds & (1u << st->kind))) {
    fail(st->qb, LOAM_E_MISUSE, "%s does not apply to %s", what, kindnames[st->kind]);
    return 0;
  }
  return have(st->qb, what, e, "", "");
}

#define SEL  (1u << LOAM__Q_SELECT)
#define INS  (1u << LOAM__Q_INSERT)
#define UPD  (1u << LOAM__Q_UPDATE)
#define DEL  (1u << LOAM__Q_DELETE)


/* Appends a pointer to a vector of pointers. */
static void push_ptr (loam_qstmt *st, loam__qvec *v, const void *p) {
  const void **slot = vec_push(st->qb, v, sizeof *slot, 1);
  if (slot != NULL) *slot = p;
}


/* Sets '*slot' to 'e', or to (previous AND e). */
static void conjoin (loam_qstmt *st, loam_expr **slot, loam_expr *e) {
  loam_expr *both[2];
  if (*slot == NULL) { *slot = e; return; }
  both[0] = *slot;
  both[1] = e;
  *slot = loam_qb_and(st->qb, both, 2);
}


void loam_qb_distinct (loam_qstmt *st, int on) {
  if (fits(st, SEL, "DISTINCT", "")) st->distinct = on != 0;
}


void loam_qb_explain (loam_qstmt *st, int on) {
  if (fits(st, SEL, "EXPLAIN", "")) st->explain = on != 0;
}


void loam_qb_column (loam_qstmt *st, loam_expr *e) {
  if (fits(st, SEL, "a result column", e)) push_ptr(st, &st->columns, e);
}


void loam_qb_join (loam_qstmt *st, loam_join kind, const char *table, const char *alias,
                   loam_expr *on) {
  loam__qjoin *j;
  loam__text t;
  if (!fits(st, SEL, "JOIN ... ON", on)) return;
  if (kind != LOAM_JOIN_INNER && kind != LOAM_JOIN_LEFT) {
    fail(st->qb, LOAM_E_MISUSE, "JOIN: unknown kind %d", (int)kind);
    return;
  }
  t = quoted(st->qb, NULL, table, " AS ", alias);
  if (t.p == NULL) return;
  j = vec_push(st->qb, &st->joins, sizeof *j, 1);
  if (j == NULL) return;
  j->kind = kind;
  j->table = t;
  j->on = on;
}


void loam_qb_where (loam_qstmt *st, loam_expr *e) {
  if (fits(st, SEL | INS | UPD | DEL, "WHERE", e)) conjoin(st, &st->where, e);
}


void loam_qb_group (loam_qstmt *st, loam_expr *e) {
  if (fits(st, SEL, "GROUP BY", e)) push_ptr(st, &st->group, e);
}


void loam_qb_having (loam_qstmt *st, loam_expr *e) {
  if (fits(st, SEL, "HAVING", e)) conjoin(st, &st->having, e);
}


void loam_qb_order (loam_qstmt *st, loam_expr *e, int flags) {
  loam__qorder *o;
  if (!fits(st, SEL, "ORDER BY", e) || !order_flags(st->qb, flags)) return;
  o = vec_push(st->qb, &st->order, sizeof *o, 1);
  if (o == NULL) return;
  o->e = e;
  o->flags = flags;
}


static void bound (loam_qstmt *st, const char *what, int64_t n, int *has, int64_t *slot) {
  if (!fits(st, SEL, what, "")) return;
  if (n < 0) {
    fail(st->qb, LOAM_E_MISUSE, "%s must not be negative", what);
    return;
  }
  *has = 1;
  *slot = n;
}


void loam_qb_limit (loam_qstmt *st, int64_t n) {
  if (st != NULL) bound(st, "LIMIT", n, &st->has_limit, &st->limit);
}


void loam_qb_offset (loam_qstmt *st, int64_t n) {
  if (st != NULL) bound(st, "OFFSET", n, &st->has_offset, &st->offset);
}


void loam_qb_lock (loam_qstmt *st, int flags) {
  int mode = flags & (LOAM_FOR_UPDATE | LOAM_FOR_SHARE);
  int mod = flags & (LOAM_SKIP_LOCKED | LOAM_NOWAIT);
  if (!fits(st, SEL, "FOR UPDATE", "")) return;
  if (flags != 0 && (mode == (LOAM_FOR_UPDATE | LOAM_FOR_SHARE) || mode == 0 ||
                     mod == (LOAM_SKIP_LOCKED | LOAM_NOWAIT) || (flags & ~(mode | mod)))) {
    fail(st->qb, LOAM_E_MISUSE, "lock: bad flags %d (one of FOR UPDATE and FOR SHARE, "
         "with at most one of SKIP LOCKED and NOWAIT)", flags);
    return;
  }
  st->lock = flags;
}


void loam_qb_insert_column (loam_qstmt *st, const char *name) {
  loam__text t, *slot;
  if (!fits(st, INS, "a column list", "")) return;
  if (st->nrows > 0) {
    fail(st->qb, LOAM_E_MISUSE, "INSERT: columns must come before the rows");
    return;
  }
  t = quoted(st->qb, NULL, name, NULL, NULL);
  if (t.p != NULL && (slot = vec_push(st->qb, &st->names, sizeof *slot, 1)) != NULL)
    *slot = t;
}


void loam_qb_insert_row (loam_qstmt *st, const loam_value *vals, int n) {
  loam_value *slot;
  if (!fits(st, INS, "a row of values", "")) return;
  if (n != st->names.n || (n > 0 && vals == NULL)) {
    fail(st->qb, LOAM_E_MISUSE, "INSERT: row %d has %d value%s for %d column%s",
         st->nrows + 1, n, n == 1 ? "" : "s", st->names.n, st->names.n == 1 ? "" : "s");
    return;
  }
  if (st->nrows == INT_MAX) {
    fail(st->qb, LOAM_E_MISUSE, "INSERT: too many rows");
    return;
  }
  if (n > 0 && ((slot = vec_push(st->qb, &st->values, sizeof *slot, n)) == NULL ||
                !fill_values(st->qb, slot, vals, n)))
    return;
  st->nrows++;
}


void loam_qb_on_conflict (loam_qstmt *st, loam_conflict action, const char *const *target,
                          int ntarget) {
  int i;
  if (!fits(st, INS, "ON CONFLICT", "")) return;
  if (action != LOAM_DO_NOTHING && action != LOAM_DO_UPDATE) {
    fail(st->qb, LOAM_E_MISUSE, "ON CONFLICT: unknown action %d", (int)action);
    return;
  }
  if (ntarget < 0 || (ntarget > 0 && target == NULL)) {
    fail(st->qb, LOAM_E_MISUSE, "ON CONFLICT: bad target column list");
    return;
  }
  if (action == LOAM_DO_UPDATE && ntarget == 0) {
    fail(st->qb, LOAM_E_MISUSE, "ON CONFLICT DO UPDATE needs the conflict target columns");
    return;
  }
  st->conflict = action;
  st->target.n = 0;
  for (i = 0; i < ntarget; i++) {
    loam__text t = quoted(st->qb, NULL, target[i], NULL, NULL), *slot;
    if (t.p == NULL || (slot = vec_push(st->qb, &st->target, sizeof *slot, 1)) == NULL) return;
    *slot = t;
  }
}


void loam_qb_set (loam_qstmt *st, const char *col, loam_expr *e) {
  loam__qset *s;
  loam__text t;
  if (!fits(st, INS | UPD, "SET", e)) return;
  t = quoted(st->qb, NULL, col, NULL, NULL);
  if (t.p == NULL || (s = vec_push(st->qb, &st->set, sizeof *s, 1)) == NULL) return;
  s->col = t;
  s->e = e;
}


void loam_qb_set_raw (loam_qstmt *st, loam_expr *e) {
  loam__qset *s;
  if (!fits(st, INS | UPD, "SET", e)) return;
  if (e->kind != LOAM__X_RAW) {
    fail(st->qb, LOAM_E_MISUSE, "SET: an item without a column must be a raw SQL fragment "
         "(loam_qb_raw) of assignments");
    return;
  }
  if ((s = vec_push(st->qb, &st->set, sizeof *s, 1)) == NULL) return;
  s->col.p = NULL;           /* no column: the fragment is the assignments */
  s->col.len = 0;
  s->e = e;
}


void loam_qb_returning (loam_qstmt *st, loam_expr *e) {
  if (fits(st, INS | UPD | DEL, "RETURNING", e)) push_ptr(st, &st->returning, e);
}

/* }====================================================================== */
