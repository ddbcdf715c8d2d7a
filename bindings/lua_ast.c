/*
** lua_ast.c: the reader of statement tables, the Lua query AST (select,
** insert, update, delete), into the core's query builder, for 'render'
** and 'run' (lua_query.c) and the batch loader (lua_batch.c).
**
** The walk over the AST calls the builder's constructors directly; the
** builder itself checks names, operators and lists and keeps the first
** problem for 'loam_qb_render' to report.  The walk checks only the shape
** of the tables and raises a misuse error naming the node and its field.
** The builder, and the rendered result it keeps, live in a to-be-closed
** userdata, so a raise anywhere (a bad node, a memory error while
** building the result tables, a failed statement) frees them at once.
** Strings the builder receives are copied, so nothing it keeps points
** into the AST.
*/
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#include "loam.h"
#include "lua_loam_int.h"


#define BUILDER_T  "loam.QueryBuilder"

/* Expression and subquery nesting the walk follows before it refuses (the C stack is finite). */
#define MAX_DEPTH  200

/* And/or items converted on the C stack; longer lists get a userdata. */
#define ITEMS_LOCAL  16


/*
** The resources of one rendering.  'vals' is a scratch array for the
** values of one list (a row, an IN list, raw parameters), reused since
** the builder copies what it is given.
*/
typedef struct Builder {
  loam_qb *qb;
  loam_rendered *rs;
  loam_value *vals;
  size_t cap;
} Builder;

/* What the walk carries: the state, the builder and the AST nesting. */
typedef struct Walk {
  lua_State *L;
  Builder *b;
  int depth;
} Walk;


/* '__gc' and '__close': freeing twice is fine. */
static int builder_gc (lua_State *L) {
  Builder *b = (Builder *)luaL_checkudata(L, 1, BUILDER_T);
  loam_qb_free(b->qb);
  loam_rendered_free(b->rs);
  free(b->vals);
  b->qb = NULL;
  b->rs = NULL;
  b->vals = NULL;
  b->cap = 0;
  return 0;
}


/* {======================================================================
** Reading the AST
** ======================================================================= */

/*
** Raw access: an AST is plain data, and a metamethod answering for a
** missing field would let a typo pass unseen.
*/
const char *const loamL_coltypes[] = {
  "id", "integer", "bigint", "text", "numeric", "boolean", "float", "date",
  "timestamp", "json", "blob", "enum", NULL
};


int loamL_coltype (const char *name) {
  int k;
  for (k = 0; name != NULL && loamL_coltypes[k] != NULL; k++)
    if (strcmp(loamL_coltypes[k], name) == 0) return k + 1;
  return 0;
}


int loamL_field (lua_State *L, int t, const char *k) {
  lua_pushstring(L, k);
  return lua_rawget(L, t);
}


/* The string at 'idx', which must hold no NUL (it becomes a C string); 'what' names it. */
static const char *tostr (lua_State *L, int idx, const char *node, const char *what) {
  size_t len;
  const char *s;
  if (lua_type(L, idx) != LUA_TSTRING)
    loamL_misuse(L, "query AST: %s: '%s' must be a string, not a %s", node, what,
                 luaL_typename(L, idx));
  s = lua_tolstring(L, idx, &len);
  if (strlen(s) != len)
    loamL_misuse(L, "query AST: %s: '%s' holds a NUL byte", node, what);
  return s;
}


/* The string field 'k' of the table at 't'; NULL when absent and 'optional'. */
static const char *strfield (lua_State *L, int t, const char *k, const char *node, int optional) {
  const char *s = NULL;
  if (loamL_field(L, t, k) == LUA_TNIL) {
    if (!optional) loamL_misuse(L, "query AST: %s needs '%s'", node, k);
  }
  else s = tostr(L, -1, node, k);
  lua_pop(L, 1);  /* the AST keeps the string alive; the builder copies it anyway */
  return s;
}


/* The field 'k' of the table at 't' read as SQL text ('loamL_sqltext'). */
static const char *sqlfield (lua_State *L, int t, const char *k, const char *node) {
  const char *s, *what;
  if (loamL_field(L, t, k) != LUA_TSTRING) {
    if (lua_isnil(L, -1)) loamL_misuse(L, "query AST: %s needs '%s'", node, k);
    loamL_misuse(L, "query AST: %s: '%s' must be a string, not a %s", node, k,
                 luaL_typename(L, -1));
  }
  what = lua_pushfstring(L, "query AST: %s: '%s'", node, k);
  s = loamL_sqltext(L, -2, 0, what);
  lua_pop(L, 2);  /* the AST keeps the string alive; the builder copies it anyway */
  return s;
}


/* The boolean field 'k' of the table at 't' (absent: false). */
static int flagfield (lua_State *L, int t, const char *k, const char *node) {
  int tp = loamL_field(L, t, k), v = lua_toboolean(L, -1);
  if (tp != LUA_TNIL && tp != LUA_TBOOLEAN)
    loamL_misuse(L, "query AST: %s: '%s' must be a boolean, not a %s", node, k,
                 luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}


/*
** Pushes the table field 'k' of 't' and returns its length, or returns -1
** (pushing nothing) when it is absent.
*/
static lua_Integer listfield (lua_State *L, int t, const char *k, const char *node) {
  int tp = loamL_field(L, t, k);
  if (tp == LUA_TNIL) {
    lua_pop(L, 1);
    return -1;
  }
  if (tp != LUA_TTABLE)
    loamL_misuse(L, "query AST: %s: '%s' must be a table, not a %s", node, k,
                 luaL_typename(L, -1));
  return (lua_Integer)lua_rawlen(L, -1);
}


/* Picks 's' among 'opts' (NULL-terminated) and returns its index; 'what' names the field. */
static int choice (lua_State *L, const char *s, const char *const *opts, const char *node,
                   const char *what) {
  int i;
  for (i = 0; opts[i] != NULL; i++)
    if (strcmp(s, opts[i]) == 0) return i;
  return loamL_misuse(L, "query AST: %s: unknown %s '%s'", node, what, s);
}


/* Room for 'n' scratch values. */
static loam_value *scratch (Walk *w, lua_Integer n) {
  Builder *b = w->b;
  if ((size_t)n > b->cap) {
    size_t cap = b->cap > 0 ? b->cap : 16;
    loam_value *p;
    while (cap < (size_t)n) cap *= 2;
    if (cap > (size_t)-1 / sizeof *p || (p = realloc(b->vals, cap * sizeof *p)) == NULL) {
      loam_error err = LOAM_ERROR_INIT;
      err.code = LOAM_E_NOMEM;
      loamL_raise(w->L, &err, NULL);
    }
    b->vals = p;
    b->cap = cap;
  }
  return b->vals;
}


/*
** Converts the value at 'idx'.  'what' and 'i', 'j' place it in the
** message: a nil is a hole in a Lua table, never a NULL.
*/
static void value (lua_State *L, int idx, loam_value *v, const char *what, lua_Integer i,
                   lua_Integer j) {
  int t = lua_type(L, idx);
  idx = lua_absindex(L, idx);
  if (t == LUA_TNIL || t == LUA_TTABLE || t == LUA_TFUNCTION || t == LUA_TTHREAD ||
      t == LUA_TLIGHTUSERDATA) {
    const char *where = lua_pushfstring(L, what, i, j);
    loamL_misuse(L, "query AST: %s is %s%s", where, t == LUA_TNIL ? "nil" : "a ",
                 t == LUA_TNIL ? " (write loam.null for NULL)" : luaL_typename(L, idx));
  }
  loamL_tovalue(L, idx, (int)(j > 0 ? j : i), v);
}


/* Converts the array on top ('n' items) into scratch values; 'what' formats item 'i'. */
static loam_value *values (Walk *w, lua_Integer n, const char *what, lua_Integer row) {
  lua_State *L = w->L;
  loam_value *v;
  lua_Integer i;
  if (n > INT_MAX) loamL_misuse(L, "query AST: too many values in one list");
  v = scratch(w, n);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    value(L, -1, &v[i - 1], what, row > 0 ? row : i, row > 0 ? i : 0);
    lua_pop(L, 1);
  }
  return v;
}

/* }====================================================================== */


/* {======================================================================
** Expressions
** ======================================================================= */

static loam_qstmt *statement (Walk *w, int idx, int sub);
static loam_expr *expr (Walk *w, int idx, const char *node, const char *what);

/* The expression field 'k' of the node at 't'; NULL when absent and 'optional'. */
static loam_expr *exprfield (Walk *w, int t, const char *k, const char *node, int optional) {
  loam_expr *e = NULL;
  if (loamL_field(w->L, t, k) == LUA_TNIL) {
    if (!optional) loamL_misuse(w->L, "query AST: %s needs '%s'", node, k);
  }
  else e = expr(w, lua_gettop(w->L), node, k);
  lua_pop(w->L, 1);
  return e;
}


/* {k="and"|"or", E1, E2, ...} */
static loam_expr *junction (Walk *w, int t, int isand) {
  lua_State *L = w->L;
  loam_expr *local[ITEMS_LOCAL], **items = local;
  lua_Integer n = (lua_Integer)lua_rawlen(L, t), i;
  if (n > INT_MAX) loamL_misuse(L, "query AST: too many items");
  if (n > ITEMS_LOCAL)
    items = (loam_expr **)lua_newuserdatauv(L, (size_t)n * sizeof *items, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, t, i);
    items[i - 1] = expr(w, lua_gettop(L), isand ? "'and' node" : "'or' node", "item");
    lua_pop(L, 1);
  }
  return isand ? loam_qb_and(w->b->qb, items, (int)n) : loam_qb_or(w->b->qb, items, (int)n);
}


static loam_expr **exprarray (Walk *w, int t, const char *k, const char *node, int *n);

/*
** {k="in", exprs={E1, E2, ...}, tuples={{a, b}, ...}, negate=bool}: each
** tuple holds one value per expression, row after row in the scratch array.
*/
static loam_expr *in_tuples (Walk *w, int t, int negate) {
  lua_State *L = w->L;
  int ne, top = lua_gettop(L);
  loam_expr **ev = exprarray(w, t, "exprs", "'in' node", &ne), *x;
  lua_Integer n = listfield(L, t, "tuples", "'in' node"), i, j;
  loam_value *v;
  if (n < 0) loamL_misuse(L, "query AST: 'in' node with 'exprs' needs 'tuples'");
  if (ne < 1) loamL_misuse(L, "query AST: 'in' node: 'exprs' must not be empty");
  if (n > INT_MAX / ne) loamL_misuse(L, "query AST: too many values in one list");
  v = scratch(w, n * ne);
  for (i = 1; i <= n; i++) {
    if (lua_rawgeti(L, -1, i) != LUA_TTABLE || (lua_Integer)lua_rawlen(L, -1) != ne)
      loamL_misuse(L, "query AST: 'in' node: tuple %I must be an array of %d values", i, ne);
    for (j = 1; j <= ne; j++) {
      lua_rawgeti(L, -1, j);
      value(L, -1, &v[(i - 1) * ne + j - 1], "tuple %I value %I", i, j);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  x = loam_qb_in_tuples(w->b->qb, ev, ne, v, (int)n, negate);
  lua_settop(L, top);  /* the builder copied the arrays */
  return x;
}


/* {k="in", expr=E, list={...} | query=SELECT, negate=bool}, or tuples */
static loam_expr *in (Walk *w, int t) {
  lua_State *L = w->L;
  loam_qb *qb = w->b->qb;
  int negate = flagfield(L, t, "negate", "'in' node");
  loam_expr *e, *x;
  lua_Integer n;
  if (loamL_field(L, t, "exprs") != LUA_TNIL) {
    lua_pop(L, 1);
    return in_tuples(w, t, negate);
  }
  lua_pop(L, 1);
  e = exprfield(w, t, "expr", "'in' node", 0);
  n = listfield(L, t, "list", "'in' node");
  if (n >= 0) {
    const loam_value *v = values(w, n, "IN list value %I", 0);
    x = loam_qb_in_list(qb, e, v, (int)n, negate);
    lua_pop(L, 1);
    /* The declared type of the column, which PostgreSQL needs to compare text lists. */
    if (loamL_field(L, t, "coltype") == LUA_TSTRING) {
      const char *name = lua_tostring(L, -1);
      int c = loamL_coltype(name);
      if (c != LOAM_COL_DATE && c != LOAM_COL_TIMESTAMP && c != LOAM_COL_NUMERIC)
        loamL_misuse(L, "query AST: 'in' node: coltype must be date, timestamp or numeric, "
                     "not '%s'", name);
      x = loam_qb_in_coltype(qb, x, c);
    }
  }
  else {
    if (loamL_field(L, t, "query") != LUA_TTABLE)
      loamL_misuse(L, "query AST: 'in' node needs 'list' or 'query' (a table)");
    x = loam_qb_in_query(qb, e, statement(w, lua_gettop(L), 1), negate);
  }
  lua_pop(L, 1);
  return x;
}


/* {k="raw", sql="...", params={...}} */
static loam_expr *raw (Walk *w, int t) {
  const char *sql = sqlfield(w->L, t, "sql", "'raw' node");
  lua_Integer n = listfield(w->L, t, "params", "'raw' node");
  const loam_value *v = NULL;
  loam_expr *e;
  if (n >= 0) v = values(w, n, "raw SQL parameter %I", 0);
  e = loam_qb_raw(w->b->qb, sql, v, n > 0 ? (int)n : 0);
  if (n >= 0) lua_pop(w->L, 1);
  return e;
}


/* Expression kinds, in the order of 'kinds'. */
enum { K_COL, K_STAR, K_VAL, K_RAW, K_OP, K_AND, K_OR, K_NOT, K_NULL, K_BETWEEN, K_IN, K_AGG,
       K_ALIAS, K_EXCLUDED, K_ROW_NUMBER };

static const char *const kinds[] = {
  "col", "star", "val", "raw", "op", "and", "or", "not", "null", "between", "in", "agg",
  "alias", "excluded", "row_number", NULL
};

static loam_expr *row_number (Walk *w, int t);

/*
** Converts the expression node at 'idx'.  'node' and 'what' name the
** place it was found, for a message when it is not a node at all.
*/
static loam_expr *expr (Walk *w, int idx, const char *node, const char *what) {
  lua_State *L = w->L;
  loam_qb *qb = w->b->qb;
  loam_expr *e = NULL;
  const char *k;
  int i, top = lua_gettop(L);
  if (lua_type(L, idx) != LUA_TTABLE)
    loamL_misuse(L, "query AST: %s: '%s' must be an expression (a table with 'k'), not a %s",
                 node, what, luaL_typename(L, idx));
  if (loamL_field(L, idx, "k") != LUA_TSTRING)
    loamL_misuse(L, "query AST: %s: '%s' has no kind 'k'", node, what);
  k = lua_tostring(L, -1);
  lua_pop(L, 1);  /* the AST keeps the string alive */
  for (i = 0; kinds[i] != NULL && strcmp(k, kinds[i]) != 0; i++)
    ;
  if (kinds[i] == NULL) loamL_misuse(L, "query AST: unknown expression kind '%s'", k);
  if (++w->depth > MAX_DEPTH)
    loamL_misuse(L, "query AST: nested deeper than %d levels", MAX_DEPTH);
  luaL_checkstack(L, 8, "query AST too deep");
  switch (i) {
    case K_COL:
      e = loam_qb_col(qb, strfield(L, idx, "table", "'col' node", 1),
                      strfield(L, idx, "name", "'col' node", 0));
      break;
    case K_STAR:
      e = loam_qb_star(qb, strfield(L, idx, "table", "'star' node", 1));
      break;
    case K_VAL: {
      loam_value v;
      loamL_field(L, idx, "v");
      value(L, -1, &v, "the 'v' of a 'val' node", 0, 0);
      e = loam_qb_val(qb, v);
      lua_pop(L, 1);
      break;
    }
    case K_RAW:
      e = raw(w, idx);
      break;
    case K_OP: {
      const char *op = strfield(L, idx, "op", "'op' node", 0);
      int missing = loamL_field(L, idx, "l") == LUA_TNIL;
      missing |= loamL_field(L, idx, "r") == LUA_TNIL;
      if (missing) loamL_misuse(L, "query AST: 'op' node needs 'l' and 'r'");
      e = loam_qb_op(qb, op, expr(w, top + 1, "'op' node", "l"),
                     expr(w, top + 2, "'op' node", "r"));
      break;
    }
    case K_AND: case K_OR:
      e = junction(w, idx, i == K_AND);
      break;
    case K_NOT:
      lua_rawgeti(L, idx, 1);
      if (lua_isnil(L, -1)) loamL_misuse(L, "query AST: 'not' node needs its expression at [1]");
      e = loam_qb_not(qb, expr(w, lua_gettop(L), "'not' node", "[1]"));
      lua_pop(L, 1);
      break;
    case K_NULL:
      e = loam_qb_is_null(qb, exprfield(w, idx, "expr", "'null' node", 0),
                          flagfield(L, idx, "negate", "'null' node"));
      break;
    case K_BETWEEN: {
      loam_expr *a = exprfield(w, idx, "expr", "'between' node", 0);
      loam_expr *lo = exprfield(w, idx, "lo", "'between' node", 0);
      loam_expr *hi = exprfield(w, idx, "hi", "'between' node", 0);
      e = loam_qb_between(qb, a, lo, hi, flagfield(L, idx, "negate", "'between' node"));
      break;
    }
    case K_IN:
      e = in(w, idx);
      break;
    case K_AGG: {
      const char *fn = strfield(L, idx, "fn", "'agg' node", 0);
      e = loam_qb_agg(qb, fn, exprfield(w, idx, "expr", "'agg' node", 1),
                      flagfield(L, idx, "distinct", "'agg' node"));
      break;
    }
    case K_ALIAS: {
      loam_expr *a = exprfield(w, idx, "expr", "'alias' node", 0);
      e = loam_qb_alias(qb, a, strfield(L, idx, "as", "'alias' node", 0));
      break;
    }
    case K_EXCLUDED:
      e = loam_qb_excluded(qb, strfield(L, idx, "name", "'excluded' node", 0));
      break;
    default:  /* K_ROW_NUMBER */
      e = row_number(w, idx);
      break;
  }
  w->depth--;
  lua_settop(L, top);  /* lists and arrays of items pushed above */
  return e;
}


/* Calls 'set' with the expression field 'k' of 't' (WHERE, HAVING), when there is one. */
static void clause (Walk *w, int t, const char *k, const char *node, loam_qstmt *st,
                    void (*set) (loam_qstmt *, loam_expr *)) {
  if (loamL_field(w->L, t, k) != LUA_TNIL) set(st, expr(w, lua_gettop(w->L), node, k));
  lua_pop(w->L, 1);
}


/*
** Calls 'add' for each expression of the array field 'k' of 't'.  With
** 'names' set, a string item is a column name (RETURNING "id").
*/
static void exprlist (Walk *w, int t, const char *k, const char *node, loam_qstmt *st,
                      void (*add) (loam_qstmt *, loam_expr *), int names) {
  lua_State *L = w->L;
  lua_Integer n = listfield(L, t, k, node), i;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    if (names && lua_type(L, -1) == LUA_TSTRING)
      add(st, loam_qb_col(w->b->qb, NULL, tostr(L, -1, node, k)));
    else add(st, expr(w, lua_gettop(L), node, k));
    lua_pop(L, 1);
  }
  if (n >= 0) lua_pop(L, 1);
}

/*
** The expressions of the array field 'k' of 't', in a userdata left on
** the stack (absent: none); '*n' receives their count.
*/
static loam_expr **exprarray (Walk *w, int t, const char *k, const char *node, int *n) {
  lua_State *L = w->L;
  lua_Integer len = listfield(L, t, k, node), i;
  int list = lua_gettop(L);
  loam_expr **ev;
  *n = 0;
  if (len < 0) return NULL;
  if (len > INT_MAX / (lua_Integer)sizeof *ev) loamL_misuse(L, "query AST: too many items");
  ev = (loam_expr **)lua_newuserdatauv(L, (size_t)(len > 0 ? len : 1) * sizeof *ev, 0);
  for (i = 1; i <= len; i++) {
    lua_rawgeti(L, list, i);
    ev[i - 1] = expr(w, lua_gettop(L), node, k);
    lua_pop(L, 1);
  }
  *n = (int)len;
  return ev;
}

/* }====================================================================== */


/* {======================================================================
** Statements
** ======================================================================= */

/* Reads a table reference { name = "t", as = "a" } at the top. */
static void tableref (lua_State *L, const char *node, const char **name, const char **as) {
  int t = lua_gettop(L);
  if (lua_type(L, t) != LUA_TTABLE)
    loamL_misuse(L, "query AST: %s must be a table { name = ..., as = ... }, not a %s", node,
                 luaL_typename(L, t));
  *name = strfield(L, t, "name", node, 0);
  *as = strfield(L, t, "as", node, 1);
}


/* The integer field 'k' (LIMIT, OFFSET) into '*out'; returns 0 when absent. */
static int intfield (lua_State *L, int t, const char *k, lua_Integer *out) {
  int isint = 0;
  if (loamL_field(L, t, k) == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  *out = lua_tointegerx(L, -1, &isint);
  if (!isint)
    loamL_misuse(L, "query AST: 'select' node: '%s' must be an integer", k);
  lua_pop(L, 1);
  return 1;
}


static void select_joins (Walk *w, int t, loam_qstmt *st) {
  static const char *const jkinds[] = { "inner", "left", NULL };
  lua_State *L = w->L;
  lua_Integer n = listfield(L, t, "joins", "'select' node"), i;
  for (i = 1; i <= n; i++) {
    const char *name, *as, *kind;
    int j;
    lua_rawgeti(L, -1, i);
    j = lua_gettop(L);
    if (lua_type(L, j) != LUA_TTABLE) loamL_misuse(L, "query AST: join %I is not a table", i);
    kind = strfield(L, j, "kind", "join", 1);
    if (loamL_field(L, j, "table") == LUA_TNIL)
      loamL_misuse(L, "query AST: join %I needs 'table'", i);
    tableref(L, "join 'table'", &name, &as);
    lua_pop(L, 1);
    loam_qb_join(st, kind == NULL || choice(L, kind, jkinds, "join", "kind") == 0
                     ? LOAM_JOIN_INNER : LOAM_JOIN_LEFT,
                 name, as, exprfield(w, j, "on", "join", 0));
    lua_pop(L, 1);
  }
  if (n >= 0) lua_pop(L, 1);
}


/*
** Item 'i' of the order list on top ({ expr = E, desc = bool, nulls =
** "first" | "last" }) into '*e' and '*flags'.
*/
static void order_item (Walk *w, lua_Integer i, loam_expr **e, int *flags) {
  static const char *const nulls[] = { "first", "last", NULL };
  lua_State *L = w->L;
  const char *nl;
  int o;
  lua_rawgeti(L, -1, i);
  o = lua_gettop(L);
  if (lua_type(L, o) != LUA_TTABLE)
    loamL_misuse(L, "query AST: order item %I is not a table { expr = ..., desc = ... }", i);
  *flags = flagfield(L, o, "desc", "order item") ? LOAM_DESC : 0;
  nl = strfield(L, o, "nulls", "order item", 1);
  if (nl != NULL)
    *flags |= choice(L, nl, nulls, "order item", "'nulls'") == 0 ? LOAM_NULLS_FIRST
                                                                 : LOAM_NULLS_LAST;
  *e = exprfield(w, o, "expr", "order item", 0);
  lua_pop(L, 1);
}


static void select_order (Walk *w, int t, loam_qstmt *st) {
  lua_State *L = w->L;
  lua_Integer n = listfield(L, t, "order", "'select' node"), i;
  for (i = 1; i <= n; i++) {
    loam_expr *e;
    int flags;
    order_item(w, i, &e, &flags);
    loam_qb_order(st, e, flags);
  }
  if (n >= 0) lua_pop(L, 1);
}


/* {k="row_number", partition={E, ...}, order={{expr=E, desc=bool, nulls=...}, ...}} */
static loam_expr *row_number (Walk *w, int t) {
  lua_State *L = w->L;
  int np, top = lua_gettop(L);
  loam_expr **part = exprarray(w, t, "partition", "'row_number' node", &np), **oe = NULL, *e;
  lua_Integer n = listfield(L, t, "order", "'row_number' node"), i;
  int *of = NULL;
  if (n > INT_MAX / (lua_Integer)sizeof *oe) loamL_misuse(L, "query AST: too many items");
  if (n > 0) {
    oe = (loam_expr **)lua_newuserdatauv(L, (size_t)n * sizeof *oe, 0);
    of = (int *)lua_newuserdatauv(L, (size_t)n * sizeof *of, 0);
    lua_rotate(L, -3, 2);   /* the order list back on top */
  }
  for (i = 1; i <= n; i++) order_item(w, i, &oe[i - 1], &of[i - 1]);
  e = loam_qb_row_number(w->b->qb, part, np, oe, of, n > 0 ? (int)n : 0);
  lua_settop(L, top);  /* the builder copied the arrays */
  return e;
}


static void select_lock (lua_State *L, int t, loam_qstmt *st) {
  static const char *const modes[] = { "update", "share", NULL };
  const char *mode;
  int flags, l;
  if (loamL_field(L, t, "lock") == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  l = lua_gettop(L);
  if (lua_type(L, l) != LUA_TTABLE)
    loamL_misuse(L, "query AST: 'select' node: 'lock' must be a table { mode = \"update\" }");
  mode = strfield(L, l, "mode", "'lock'", 1);
  flags = mode == NULL || choice(L, mode, modes, "'lock'", "mode") == 0 ? LOAM_FOR_UPDATE
                                                                       : LOAM_FOR_SHARE;
  if (flagfield(L, l, "skip_locked", "'lock'")) flags |= LOAM_SKIP_LOCKED;
  if (flagfield(L, l, "nowait", "'lock'")) flags |= LOAM_NOWAIT;
  loam_qb_lock(st, flags);
  lua_pop(L, 1);
}


/*
** The FROM of a select: { name = "t", as = "a" }, or a subquery { query =
** SELECT, as = "a" }.
*/
static loam_qstmt *select_from (Walk *w, int t) {
  lua_State *L = w->L;
  const char *name = NULL, *as = NULL;
  loam_qstmt *st;
  int top = lua_gettop(L), f = top + 1;
  if (loamL_field(L, t, "from") == LUA_TNIL) st = loam_qb_select(w->b->qb, NULL, NULL);
  else if (lua_type(L, f) == LUA_TTABLE && loamL_field(L, f, "query") != LUA_TNIL) {
    loam_qstmt *sub = statement(w, f + 1, 1);
    st = loam_qb_select_from(w->b->qb, sub, strfield(L, f, "as", "'select' node: 'from'", 0));
  }
  else {
    lua_settop(L, f);
    tableref(L, "'select' node: 'from'", &name, &as);
    st = loam_qb_select(w->b->qb, name, as);
  }
  lua_settop(L, top);
  return st;
}


static loam_qstmt *select_stmt (Walk *w, int t) {
  lua_State *L = w->L;
  lua_Integer n;
  loam_qstmt *st = select_from(w, t);
  loam_qb_distinct(st, flagfield(L, t, "distinct", "'select' node"));
  loam_qb_explain(st, flagfield(L, t, "explain", "'select' node"));
  exprlist(w, t, "columns", "'select' node", st, loam_qb_column, 0);
  select_joins(w, t, st);
  clause(w, t, "where", "'select' node", st, loam_qb_where);
  exprlist(w, t, "group", "'select' node", st, loam_qb_group, 0);
  clause(w, t, "having", "'select' node", st, loam_qb_having);
  select_order(w, t, st);
  if (intfield(L, t, "limit", &n)) loam_qb_limit(st, (int64_t)n);
  if (intfield(L, t, "offset", &n)) loam_qb_offset(st, (int64_t)n);
  select_lock(L, t, st);
  return st;
}


/* The SET items { col = ..., expr = E } of the table field 'set' of 't'. */
static void set_items (Walk *w, int t, const char *node, loam_qstmt *st) {
  lua_State *L = w->L;
  lua_Integer n = listfield(L, t, "set", node), i;
  for (i = 1; i <= n; i++) {
    int s;
    lua_rawgeti(L, -1, i);
    s = lua_gettop(L);
    if (lua_type(L, s) != LUA_TTABLE)
      loamL_misuse(L, "query AST: %s: 'set' item %I is not a table { col = ..., expr = ... }",
                   node, i);
    loam_qb_set(st, strfield(L, s, "col", "'set' item", 0),
                exprfield(w, s, "expr", "'set' item", 0));
    lua_pop(L, 1);
  }
  if (n >= 0) lua_pop(L, 1);
}


static void insert_rows (Walk *w, int t, loam_qstmt *st) {
  lua_State *L = w->L;
  lua_Integer n = listfield(L, t, "rows", "'insert' node"), i;
  if (n < 0) loamL_misuse(L, "query AST: 'insert' node needs 'rows'");
  for (i = 1; i <= n; i++) {
    lua_Integer len;
    const loam_value *v;
    if (lua_rawgeti(L, -1, i) != LUA_TTABLE)
      loamL_misuse(L, "query AST: 'insert' node: row %I is not a table", i);
    len = (lua_Integer)lua_rawlen(L, -1);
    v = values(w, len, "row %I value %I", i);
    loam_qb_insert_row(st, v, (int)len);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}


static void insert_conflict (Walk *w, int t, loam_qstmt *st) {
  static const char *const actions[] = { "nothing", "update", NULL };
  lua_State *L = w->L;
  const char *local[ITEMS_LOCAL], **target = local;
  lua_Integer n, i;
  int c, action;
  if (loamL_field(L, t, "conflict") == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  c = lua_gettop(L);
  if (lua_type(L, c) != LUA_TTABLE)
    loamL_misuse(L, "query AST: 'insert' node: 'conflict' must be a table");
  action = choice(L, strfield(L, c, "action", "'conflict'", 0), actions, "'conflict'",
                  "action");
  n = listfield(L, c, "target", "'conflict'");
  if (n > ITEMS_LOCAL) target = (const char **)lua_newuserdatauv(L, (size_t)n * sizeof *target, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, c + 1, i);
    target[i - 1] = tostr(L, -1, "'conflict'", "target");
    lua_pop(L, 1);  /* the AST keeps the string */
  }
  loam_qb_on_conflict(st, action == 0 ? LOAM_DO_NOTHING : LOAM_DO_UPDATE, target,
                      n > 0 ? (int)n : 0);
  lua_settop(L, c);
  set_items(w, c, "'conflict'", st);
  clause(w, c, "where", "'conflict'", st, loam_qb_where);
  lua_settop(L, c - 1);
}


static loam_qstmt *insert_stmt (Walk *w, int t) {
  lua_State *L = w->L;
  loam_qstmt *st = loam_qb_insert(w->b->qb, strfield(L, t, "into", "'insert' node", 0));
  lua_Integer n = listfield(L, t, "columns", "'insert' node"), i;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    loam_qb_insert_column(st, tostr(L, -1, "'insert' node", "columns"));
    lua_pop(L, 1);
  }
  if (n >= 0) lua_pop(L, 1);
  insert_rows(w, t, st);
  insert_conflict(w, t, st);
  exprlist(w, t, "returning", "'insert' node", st, loam_qb_returning, 1);
  return st;
}


/* UPDATE and DELETE: the table field 'tk', SET for UPDATE, WHERE, RETURNING. */
static loam_qstmt *write_stmt (Walk *w, int t, int isupdate) {
  lua_State *L = w->L;
  const char *node = isupdate ? "'update' node" : "'delete' node";
  const char *table = strfield(L, t, isupdate ? "table" : "from", node, 0);
  loam_qstmt *st = isupdate ? loam_qb_update(w->b->qb, table) : loam_qb_delete(w->b->qb, table);
  if (isupdate) set_items(w, t, node, st);
  clause(w, t, "where", node, st, loam_qb_where);
  exprlist(w, t, "returning", node, st, loam_qb_returning, 1);
  return st;
}


/* The statement at 'idx'; 'sub' set: a subquery, which must be a SELECT. */
static loam_qstmt *statement (Walk *w, int idx, int sub) {
  static const char *const skinds[] = { "select", "insert", "update", "delete", NULL };
  lua_State *L = w->L;
  loam_qstmt *st;
  const char *k;
  int i, top = lua_gettop(L);
  if (lua_type(L, idx) != LUA_TTABLE)
    loamL_misuse(L, "query AST: expected a statement table, got a %s", luaL_typename(L, idx));
  if (loamL_field(L, idx, "k") != LUA_TSTRING)
    loamL_misuse(L, "query AST: statement has no kind 'k'");
  k = lua_tostring(L, -1);
  for (i = 0; skinds[i] != NULL && strcmp(k, skinds[i]) != 0; i++)
    ;
  if (skinds[i] == NULL) {
    if (strncmp(k, "create_", 7) == 0 || strncmp(k, "drop_", 5) == 0)
      loamL_misuse(L, "query AST: '%s' is DDL; render it with render_ddl", k);
    loamL_misuse(L, "query AST: unknown statement kind '%s'", k);
  }
  lua_pop(L, 1);
  if (sub && i != 0) loamL_misuse(L, "query AST: a subquery must be a 'select', not '%s'", k);
  if (++w->depth > MAX_DEPTH) loamL_misuse(L, "query AST: nested deeper than %d levels", MAX_DEPTH);
  luaL_checkstack(L, 8, "query AST too deep");
  switch (i) {
    case 0: st = select_stmt(w, idx); break;
    case 1: st = insert_stmt(w, idx); break;
    default: st = write_stmt(w, idx, i == 2); break;
  }
  w->depth--;
  lua_settop(L, top);
  return st;
}

/* }====================================================================== */


/* {======================================================================
** The builder
** ======================================================================= */

/*
** Pushes a new builder in a to-be-closed slot of the running C function
** and returns its stack index.  Its 'qb' is NULL when memory ran out,
** which 'loam_qb_render' (or the batch loader) reports.
*/
int loamL_pushbuilder (lua_State *L) {
  Builder *b = (Builder *)lua_newuserdatauv(L, sizeof(Builder), 0);
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, BUILDER_T);
  lua_toclose(L, -1);
  b->qb = loam_qb_new();
  return lua_gettop(L);
}


loam_qb *loamL_builder (lua_State *L, int builder) {
  return ((Builder *)luaL_checkudata(L, builder, BUILDER_T))->qb;
}


/* A walk over the builder at index 'builder'. */
static Walk walk (lua_State *L, int builder) {
  Walk w;
  w.L = L;
  w.depth = 0;
  w.b = (Builder *)luaL_checkudata(L, builder, BUILDER_T);
  return w;
}


loam_qstmt *loamL_toselect (lua_State *L, int idx, int builder) {
  Walk w = walk(L, builder);
  return statement(&w, lua_absindex(L, idx), 1);
}


loam_expr *loamL_toexpr (lua_State *L, int idx, int builder, const char *node, const char *what) {
  Walk w = walk(L, builder);
  return expr(&w, lua_absindex(L, idx), node, what);
}


loam_qstmt *loamL_tostatement (lua_State *L, int idx, int builder) {
  Walk w = walk(L, builder);
  return statement(&w, lua_absindex(L, idx), 0);
}


loam_rendered **loamL_rendered (lua_State *L, int builder) {
  return &((Builder *)luaL_checkudata(L, builder, BUILDER_T))->rs;
}


void loamL_open_ast (lua_State *L) {
  static const luaL_Reg metameth[] = {
    {"__gc", builder_gc},
    {"__close", builder_gc},
    {NULL, NULL}
  };
  loamL_createmeta(L, BUILDER_T, NULL, metameth);
}

/* }====================================================================== */
