/*
** builder_int.h: the query builder's tree, shared by the file that builds
** it (builder.c) and those that render it (render.c, dialect.c).
**
** Everything a node needs at render time is prepared when it is made:
** identifiers are validated and stored already quoted, raw fragments are
** split at their placeholders and IN lists know their element type.  So
** rendering is a single walk that appends ready pieces to one buffer and
** can fail only on what depends on the dialect.
*/
#ifndef LOAM_BUILDER_INT_H
#define LOAM_BUILDER_INT_H

#include "sql/sql_int.h"


/* A piece of text in the builder's memory (not necessarily NUL-terminated). */
typedef struct loam__text {
  const char *p;
  size_t len;
} loam__text;


/*
** A growable array in the builder's memory.  Growing copies it to a
** block twice the size; the old block stays in the arena until the
** builder is freed, which at most doubles the memory of the arrays.
*/
typedef struct loam__qvec {
  void *p;
  int n;
  int cap;
} loam__qvec;


/* {======================================================================
** Expressions
** ======================================================================= */

enum {
  LOAM__X_SQL,        /* ready text: a quoted column, a star */
  LOAM__X_VAL,
  LOAM__X_RAW,
  LOAM__X_OP,
  LOAM__X_AND,
  LOAM__X_OR,
  LOAM__X_NOT,
  LOAM__X_NULL,
  LOAM__X_BETWEEN,
  LOAM__X_INLIST,
  LOAM__X_INQUERY,
  LOAM__X_AGG,
  LOAM__X_ALIAS,
  LOAM__X_EXCLUDED,
  LOAM__X_ROWNUM,     /* row_number() OVER (...) */
  LOAM__X_INTUPLES    /* (a, b) IN (tuples bound as one list per dialect) */
};

/* Operators of 'loam_qb_op', in the order of 'loam__qops'. */
enum {
  LOAM__OP_EQ, LOAM__OP_NE, LOAM__OP_LT, LOAM__OP_LE, LOAM__OP_GT, LOAM__OP_GE,
  LOAM__OP_LIKE, LOAM__OP_ILIKE, LOAM__OP_NOT_LIKE, LOAM__OP_NOT_ILIKE,
  LOAM__OP_COUNT
};

/* Operator texts as given and as PostgreSQL takes them. */
LOAMI_FUNC const char *const loam__qops[LOAM__OP_COUNT];

/* Aggregate functions of 'loam_qb_agg', lower case as rendered. */
enum { LOAM__AGG_COUNT, LOAM__AGG_SUM, LOAM__AGG_AVG, LOAM__AGG_MIN, LOAM__AGG_MAX, LOAM__AGG_N };
LOAMI_FUNC const char *const loam__qaggs[LOAM__AGG_N];

struct loam_expr {
  unsigned char kind;      /* LOAM__X_* */
  unsigned char negate;    /* NULL, BETWEEN, INLIST, INQUERY */
  unsigned char sub;       /* OP: operator; AGG: function, and 'negate' means DISTINCT */
  unsigned char ltype;     /* INLIST: LOAM_INT, LOAM_DOUBLE, LOAM_TEXT or LOAM_BOOL */
  unsigned char coltype;   /* INLIST: the column's loam_col_type, or 0 (see 'loam_qb_in_coltype') */
  unsigned char indexed;   /* INLIST, INTUPLES: the expression leads an index ('loam_qb_in_indexed') */
  int n;                   /* AND/OR items, INLIST values, RAW parameters */
  union {
    loam__text sql;        /* SQL; EXCLUDED: the quoted column */
    loam_value val;        /* VAL */
    struct {               /* RAW: text pieces around the 'n' placeholders */
      const loam__text *parts;       /* n + 1 pieces */
      const loam_value *params;
      int literal_q;                 /* the text holds '??' */
    } raw;
    struct { loam_expr *a, *b, *c; } x;   /* OP: a OP b; NOT, NULL, AGG: a; BETWEEN: a, b, c */
    loam_expr *const *items;               /* AND, OR */
    struct { loam_expr *a; const loam_value *vals; } in;   /* INLIST */
    struct { loam_expr *a; const loam_qstmt *q; } inq;     /* INQUERY */
    struct { loam_expr *a; loam__text name; } alias;       /* ALIAS: quoted name */
    struct {               /* ROWNUM: 'n' PARTITION BY items, then ORDER BY items */
      loam_expr *const *part;
      const struct loam__qorder *order;
      int norder;
    } win;
    struct {               /* INTUPLES: 'n' expressions, 'ntuples' rows of 'n' values */
      loam_expr *const *exprs;
      const loam_value *vals;        /* row after row */
      const unsigned char *ltypes;   /* per expression, as 'ltype' of INLIST */
      const unsigned char *coltypes; /* per expression, as 'coltype' of INLIST; NULL: none */
      int ntuples;
    } tup;
  } u;
};

/* }====================================================================== */


/* {======================================================================
** Statements
** ======================================================================= */

enum { LOAM__Q_SELECT = 1, LOAM__Q_INSERT, LOAM__Q_UPDATE, LOAM__Q_DELETE };

typedef struct loam__qjoin {
  loam_join kind;
  loam__text table;        /* "t" or "t" AS "a" */
  const loam_expr *on;
} loam__qjoin;

typedef struct loam__qorder {
  const loam_expr *e;
  int flags;               /* LOAM_DESC, LOAM_NULLS_* */
} loam__qorder;

typedef struct loam__qset {
  loam__text col;          /* quoted */
  const loam_expr *e;
} loam__qset;

struct loam_qstmt {
  loam_qb *qb;
  int kind;                /* LOAM__Q_* */
  loam__text table;        /* quoted; SELECT: with AS "alias"; p NULL: no FROM */
  const loam_qstmt *fromq; /* SELECT FROM (fromq) AS table, where 'table' is the quoted alias */
  int distinct;
  int explain;             /* render the dialect's EXPLAIN before it (outermost only) */
  int lock;                /* LOAM_FOR_* | modifier, or 0 */
  int has_limit, has_offset;
  int64_t limit, offset;
  loam_expr *where;        /* INSERT: of DO UPDATE */
  loam_expr *having;
  loam__qvec columns;      /* SELECT list: const loam_expr * */
  loam__qvec joins;        /* loam__qjoin */
  loam__qvec group;        /* const loam_expr * */
  loam__qvec order;        /* loam__qorder */
  loam__qvec names;        /* INSERT columns: loam__text, quoted */
  loam__qvec values;       /* INSERT rows, row after row: loam_value */
  int nrows;
  int conflict;            /* 0, LOAM_DO_NOTHING or LOAM_DO_UPDATE */
  loam__qvec target;       /* conflict columns: loam__text, quoted */
  loam__qvec set;          /* loam__qset */
  loam__qvec returning;    /* const loam_expr * */
};

/* }====================================================================== */


/* {======================================================================
** Shared between the builder and the renderer
** ======================================================================= */

/*
** The first error recorded in 'qb' (code LOAM_E_NONE when there is none),
** and, with 'qb' NULL, the out-of-memory of 'loam_qb_new'.  Copies it into
** 'err' and returns LOAM_ERROR when there is one, else LOAM_OK.
*/
LOAMI_FUNC int loam__qb_error (const loam_qb *qb, loam_error *err);

/* Deepest nesting of expressions and subqueries that renders (cycles end here too). */
#define LOAM__QB_DEPTH  200

/*
** Writes the blob that SQLite's 'loam_keys' table-valued function reads
** (sqlite_keys.c): 'nrows' tuples of 'ncols' values, row after row, every
** value exact.  Fails (LOAM_E_DATA_ERROR) on NaN, which SQLite cannot
** take, as binding the value alone would.  dialect.c writes the key sets
** of both backends.
*/
LOAMI_FUNC int loam__sqlite_keys (loam__buf *b, const loam_value *v, int nrows, int ncols,
                                  loam_error *err);
/* The widest tuple an IN list of tuples may have (the columns of 'loam_keys'). */
#define LOAM__KEYS_MAXCOLS  32

/*
** The element type of an IN list that mixes integers and floats: each
** value keeps its own type, and a backend that types the whole list picks
** one that holds both exactly (PostgreSQL: numeric), since widening the
** integers to float would let 2^53 + 1 match 2^53.
*/
#define LOAM__LIST_MIXED_NUM  0x40

/* }====================================================================== */

#endif
