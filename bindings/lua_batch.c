/*
** lua_batch.c: 'conn:load_batch(specs)', the batched relation loader of
** the core ('loam_batch_load') for the Lua layer.
**
** Each spec's query and key expressions go through the query AST
** converter (lua_ast.c) into one builder for the whole call, and the
** parent keys become one array of core values.  The rows come back as Lua
** tables built here, with each spec's column names pushed once, and each
** group table is made once and shared by every parent key equal to it.
** The builder and the core's result live in to-be-closed userdata, so a
** raise anywhere (a malformed spec, a database error, a memory error while
** building the tables) frees them at once.
*/
#include <limits.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#include "loam.h"
#include "lua_loam_int.h"


#define RESULT_T  "loam.BatchResult"

/* The core's result while its rows become Lua tables. */
typedef struct LBatch {
  loam_batch *b;
} LBatch;


/* '__gc' and '__close': freeing twice is fine. */
static int result_gc (lua_State *L) {
  LBatch *r = (LBatch *)luaL_checkudata(L, 1, RESULT_T);
  loam_batch_free(r->b);
  r->b = NULL;
  return 0;
}


/* {======================================================================
** Reading the specs
** ======================================================================= */

/* Refuses unknown fields by name: a misspelt 'limit_per_key' would load every row. */
static void checkfields (lua_State *L, int t, lua_Integer i) {
  static const char *const fields[] = { "query", "key", "keys", "limit_per_key", "one",
                                        "key_types", "key_indexed", NULL };
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    int f = 0;
    if (lua_type(L, -2) == LUA_TSTRING)
      for (; fields[f] != NULL && strcmp(lua_tostring(L, -2), fields[f]) != 0; f++)
        ;
    if (lua_type(L, -2) != LUA_TSTRING || fields[f] == NULL)
      loamL_misuse(L, "load_batch: spec %I: unknown field '%s' (expected query, key, keys, "
                   "limit_per_key, one, key_types, key_indexed)", i, lua_type(L, -2) == LUA_TSTRING
                   ? lua_tostring(L, -2) : luaL_typename(L, -2));
    lua_pop(L, 1);
  }
}


/*
** Reads the optional 'key_types' of spec 'i' (the table at 't'): one
** column type name per key expression, into the 'nkey' integers at 'ct'
** ('loam_col_type').  Returns 0 when the spec has none.
*/
static int readtypes (lua_State *L, int t, lua_Integer i, int nkey, int *ct) {
  int j;
  if (loamL_field(L, t, "key_types") == LUA_TNIL) { lua_pop(L, 1); return 0; }
  if (lua_type(L, -1) != LUA_TTABLE || lua_rawlen(L, -1) != (lua_Unsigned)nkey)
    loamL_misuse(L, "load_batch: spec %I: 'key_types' must be an array of %d column type "
                 "names, one per key expression", i, nkey);
  for (j = 0; j < nkey; j++) {
    int k;
    lua_rawgeti(L, -1, j + 1);
    k = lua_type(L, -1) == LUA_TSTRING ? loamL_coltype(lua_tostring(L, -1)) : 0;
    if (k == 0)
      loamL_misuse(L, "load_batch: spec %I: key_types[%d] is not a column type (id, integer, "
                   "bigint, text, numeric, boolean, float, date, timestamp, json, blob, enum)",
                   i, j + 1);
    ct[j] = k;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 1;
}


/* Converts the key value at 'idx'; nil is a hole in a Lua array, never a NULL. */
static void keyvalue (lua_State *L, int idx, loam_value *v, lua_Integer spec, lua_Integer k) {
  int t = lua_type(L, idx);
  if (t == LUA_TNIL)
    loamL_misuse(L, "load_batch: spec %I: keys[%I] is nil (write loam.null for NULL)", spec, k);
  if (t != LUA_TNUMBER && t != LUA_TSTRING && t != LUA_TBOOLEAN && t != LUA_TUSERDATA)
    loamL_misuse(L, "load_batch: spec %I: keys[%I] holds a %s, which cannot be a key", spec, k,
                 luaL_typename(L, idx));
  loamL_tovalue(L, idx, (int)k, v);
}


/* Key 'k' of the keys table at 'kt': one value, or an array of 'nkey' values. */
static void readkey (lua_State *L, int kt, lua_Integer k, int nkey, loam_value *v,
                     lua_Integer spec) {
  int j;
  if (lua_rawgeti(L, kt, k) == LUA_TTABLE) {
    if (lua_rawlen(L, -1) != (lua_Unsigned)nkey)
      loamL_misuse(L, "load_batch: spec %I: keys[%I] holds %I values for %d key expressions",
                   spec, k, (lua_Integer)lua_rawlen(L, -1), nkey);
    for (j = 1; j <= nkey; j++) {
      lua_rawgeti(L, -1, j);
      keyvalue(L, -1, &v[j - 1], spec, k);
      lua_pop(L, 1);
    }
  }
  else if (nkey == 1) keyvalue(L, -1, v, spec, k);
  else {
    int isnull;
    loamL_pushnull(L);
    isnull = lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
    if (!isnull)
      loamL_misuse(L, "load_batch: spec %I: keys[%I] must be an array of %d values (a "
                   "composite key)", spec, k, nkey);
    for (j = 0; j < nkey; j++) v[j] = loam_null();
  }
  lua_pop(L, 1);
}


/*
** Reads spec 'i' (the table at 't') into '*sp'.  Its key expressions and
** key values are arrays in two userdata it leaves on the stack, which keep
** them alive for the call; strings point into the spec's own tables.
*/
static void readspec (lua_State *L, int t, lua_Integer i, int builder, loam_batch_spec *sp) {
  lua_Integer n = 0, k;
  loam_expr **ev;
  loam_value *v;
  int kt, isint;
  checkfields(L, t, i);
  sp->qb = loamL_builder(L, builder);
  if (loamL_field(L, t, "query") != LUA_TTABLE)
    loamL_misuse(L, "load_batch: spec %I: 'query' must be a select AST, not a %s", i,
                 luaL_typename(L, -1));
  sp->query = loamL_toselect(L, -1, builder);
  lua_pop(L, 1);
  if (loamL_field(L, t, "key") != LUA_TTABLE || (n = (lua_Integer)lua_rawlen(L, -1)) < 1)
    loamL_misuse(L, "load_batch: spec %I: 'key' must be a non-empty array of expressions", i);
  kt = lua_gettop(L);
  if (n > INT_MAX / (lua_Integer)sizeof *ev) loamL_misuse(L, "load_batch: too many key expressions");
  /* the key column types follow the expressions in the same block */
  ev = (loam_expr **)lua_newuserdatauv(L, (size_t)n * (sizeof *ev + sizeof(int)), 0);
  for (k = 1; k <= n; k++) {
    lua_rawgeti(L, kt, k);
    ev[k - 1] = loamL_toexpr(L, -1, builder, "load_batch spec", "key");
    lua_pop(L, 1);
  }
  lua_remove(L, kt);
  sp->key = ev;
  sp->nkey = (int)n;
  {
    int *ct = (int *)(void *)(ev + n);
    if (readtypes(L, t, i, sp->nkey, ct)) sp->key_coltypes = ct;
  }
  if (loamL_field(L, t, "keys") != LUA_TTABLE)
    loamL_misuse(L, "load_batch: spec %I: 'keys' must be an array of parent keys, not a %s", i,
                 luaL_typename(L, -1));
  kt = lua_gettop(L);
  n = (lua_Integer)lua_rawlen(L, kt);
  if (n > INT_MAX / sp->nkey / (lua_Integer)sizeof *v)
    loamL_misuse(L, "load_batch: spec %I: too many keys", i);
  v = (loam_value *)lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * (size_t)sp->nkey * sizeof *v, 0);
  for (k = 1; k <= n; k++) readkey(L, kt, k, sp->nkey, &v[(k - 1) * sp->nkey], i);
  lua_remove(L, kt);
  sp->keys = v;
  sp->nkeys = (int)n;
  if (loamL_field(L, t, "limit_per_key") != LUA_TNIL) {
    sp->limit_per_key = (int64_t)lua_tointegerx(L, -1, &isint);
    if (!isint || sp->limit_per_key < 1)
      loamL_misuse(L, "load_batch: spec %I: 'limit_per_key' must be a positive integer", i);
  }
  lua_pop(L, 1);
  if (loamL_field(L, t, "one") != LUA_TNIL && lua_type(L, -1) != LUA_TBOOLEAN)
    loamL_misuse(L, "load_batch: spec %I: 'one' must be a boolean", i);
  sp->one = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (loamL_field(L, t, "key_indexed") != LUA_TNIL && lua_type(L, -1) != LUA_TBOOLEAN)
    loamL_misuse(L, "load_batch: spec %I: 'key_indexed' must be a boolean", i);
  sp->key_indexed = lua_toboolean(L, -1);
  lua_pop(L, 1);
}

/* }====================================================================== */


/* {======================================================================
** Building the result
** ======================================================================= */

/* Pushes row 'row' of spec 's'; the names start at 'names', the NULL sentinel is at 'nullidx'. */
static void pushrow (lua_State *L, const loam_batch *b, int s, int row, int names, int nullidx) {
  int ncols = loam_batch_column_count(b, s), c;
  lua_createtable(L, 0, ncols);
  for (c = 0; c < ncols; c++) {
    loam_value v;
    loam_batch_column(b, s, row, c, &v);
    lua_pushvalue(L, names + c);
    loamL_pushvalue(L, &v, nullidx);
    lua_rawset(L, -3);
  }
}


/*
** Pushes the groups of spec 's', aligned with its 'nkeys' parent keys:
** each an array of rows, or with 'one' a row or nil.  Each group is
** built once and shared by the equal keys; a NULL key gets an empty
** array of its own (or nil).
*/
static void pushgroups (lua_State *L, const loam_batch *b, int s, int nkeys, int one) {
  int ncols = loam_batch_column_count(b, s), ng = loam_batch_group_count(b, s);
  int nullidx, names, gtab, g, j, k;
  luaL_checkstack(L, ncols + LUA_MINSTACK, "too many result columns");
  loamL_pushnull(L);
  nullidx = lua_gettop(L);
  names = nullidx + 1;
  for (j = 0; j < ncols; j++) lua_pushstring(L, loam_batch_column_name(b, s, j));
  lua_createtable(L, ng, 0);
  gtab = lua_gettop(L);
  for (g = 0; g < ng; g++) {
    int size = loam_batch_group_size(b, s, g);
    if (one) {
      if (size == 0) continue;
      pushrow(L, b, s, loam_batch_group_row(b, s, g, 0), names, nullidx);
    }
    else {
      lua_createtable(L, size, 0);
      for (j = 0; j < size; j++) {
        pushrow(L, b, s, loam_batch_group_row(b, s, g, j), names, nullidx);
        lua_rawseti(L, -2, j + 1);
      }
    }
    lua_rawseti(L, gtab, g + 1);
  }
  lua_createtable(L, nkeys, 0);
  for (k = 0; k < nkeys; k++) {
    g = loam_batch_key_group(b, s, k);
    if (g >= 0) lua_rawgeti(L, gtab, g + 1);
    else lua_pushnil(L);
    if (lua_isnil(L, -1) && !one) {
      lua_pop(L, 1);
      lua_newtable(L);
    }
    lua_rawseti(L, -2, k + 1);
  }
  lua_replace(L, nullidx);
  lua_settop(L, nullidx);
}


/*
** conn:load_batch(specs) -> { groups, ... }, one per spec (see the
** contract in loam.h, 'loam_batch_load').
*/
static int conn_load_batch (lua_State *L) {
  loam_conn *conn = loamL_checkconn(L);
  loam_error err = LOAM_ERROR_INIT;
  loam_batch_spec *specs;
  lua_Integer n, i;
  int builder;
  LBatch *r;
  if (lua_type(L, 2) != LUA_TTABLE)
    loamL_misuse(L, "load_batch: specs must be an array of tables, not a %s",
                 luaL_typename(L, 2));
  lua_settop(L, 2);
  n = (lua_Integer)lua_rawlen(L, 2);
  if (n > INT_MAX / (lua_Integer)sizeof *specs) loamL_misuse(L, "load_batch: too many specs");
  builder = loamL_pushbuilder(L);
  if (loamL_builder(L, builder) == NULL) {
    err.code = LOAM_E_NOMEM;
    return loamL_raise(L, &err, NULL);
  }
  specs = (loam_batch_spec *)lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *specs, 0);
  for (i = 1; i <= n; i++) {
    static const loam_batch_spec init = LOAM_BATCH_SPEC_INIT;
    luaL_checkstack(L, 8, "too many specs");
    if (lua_rawgeti(L, 2, i) != LUA_TTABLE)
      loamL_misuse(L, "load_batch: spec %I must be a table, not a %s", i, luaL_typename(L, -1));
    specs[i - 1] = init;
    readspec(L, lua_gettop(L), i, builder, &specs[i - 1]);
    lua_remove(L, -3);  /* the spec table; its arrays stay above */
  }
  r = (LBatch *)lua_newuserdatauv(L, sizeof(LBatch), 0);
  r->b = NULL;
  luaL_setmetatable(L, RESULT_T);
  lua_toclose(L, -1);
  if (loam_batch_load(conn, specs, (int)n, &r->b, &err) != LOAM_OK)
    return loamL_raise(L, &err, NULL);
  loamL_trace_flush(L);
  lua_createtable(L, (int)n, 0);
  for (i = 1; i <= n; i++) {
    pushgroups(L, r->b, (int)i - 1, specs[i - 1].nkeys, specs[i - 1].one);
    lua_rawseti(L, -2, i);
  }
  return 1;
}


void loamL_open_batch (lua_State *L) {
  static const luaL_Reg metameth[] = {
    {"__gc", result_gc},
    {"__close", result_gc},
    {NULL, NULL}
  };
  if (luaL_newmetatable(L, RESULT_T)) luaL_setfuncs(L, metameth, 0);
  lua_pop(L, 1);
  loamL_addfunc(L, "load_batch", conn_load_batch, conn_load_batch);
}

/* }====================================================================== */
