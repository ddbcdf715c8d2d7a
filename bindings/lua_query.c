/*
** lua_query.c: 'core.render(dialect, ast [, opts])' and 'conn:render(ast
** [, opts])', which turn the Lua query AST (select, insert, update,
** delete) into the core's query builder (lua_ast.c) and return the
** statements it renders, each as { sql = ..., params = {...}, n = N }; and
** 'conn:run(ast [, opts])', which runs those statements straight from the
** rendered values, so a parameter crosses between Lua and C once, not
** three times; and 'conn:prepare(ast [, opts])', which keeps one rendered
** statement in a 'loam.Prepared' to run again with new values.  The
** rendered result lives in the builder's to-be-closed userdata, so a raise
** anywhere frees it at once; 'prepare' takes it from there when done.
*/
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#include "loam.h"
#include "lua_loam_int.h"


/* {======================================================================
** Rendering and results
** ======================================================================= */

/* Pushes a rendered parameter; a blob keeps its wrapper, so it binds as a blob again. */
static void pushparam (lua_State *L, const loam_value *v, int nullidx) {
  if (v->type == LOAM_BLOB) {
    lua_pushlstring(L, v->u.s.ptr, v->u.s.len);
    loamL_pushblob(L, -1);
    lua_remove(L, -2);
  }
  else loamL_pushvalue(L, v, nullidx);
}


/* The Lua names of the kinds of 'loam_sql_kind', in its order. */
static const char *const kindnames[] = {
  "unknown", "select", "insert", "update", "delete", "ddl", "tx", "reset"
};


/*
** Pushes the statements as an array of { sql, params, n, kind }.  Chunks
** with one text share one Lua string.
*/
static void pushresult (lua_State *L, const loam_rendered *rs) {
  int n = loam_rendered_count(rs), i, nullidx, textidx;
  const char *last = NULL;
  loamL_pushnull(L);
  nullidx = lua_gettop(L);
  lua_pushnil(L);
  textidx = lua_gettop(L);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    size_t len;
    const char *text = loam_rendered_sql(rs, i, &len);
    int np, j;
    const loam_value *p = loam_rendered_params(rs, i, &np);
    int kind = (int)loam_rendered_kind(rs, i);
    lua_createtable(L, 0, 4);
    if (text != last) {
      lua_pushlstring(L, text, len);
      lua_replace(L, textidx);
      last = text;
    }
    lua_pushvalue(L, textidx);
    lua_setfield(L, -2, "sql");
    lua_createtable(L, np, 0);
    for (j = 0; j < np; j++) {
      pushparam(L, &p[j], nullidx);
      lua_rawseti(L, -2, j + 1);
    }
    lua_setfield(L, -2, "params");
    lua_pushinteger(L, np);
    lua_setfield(L, -2, "n");
    lua_pushstring(L, kindnames[kind >= 0 && kind < (int)(sizeof kindnames / sizeof kindnames[0])
                                ? kind : 0]);
    lua_setfield(L, -2, "kind");
    lua_rawseti(L, -2, i + 1);
  }
}


/* Reads 'opts' at 'arg' for function 'fname': only 'max_params', a positive integer. */
static int checkopts (lua_State *L, int arg, const char *fname) {
  int maxp = 0;
  if (lua_isnoneornil(L, arg)) return 0;
  if (lua_type(L, arg) != LUA_TTABLE)
    loamL_misuse(L, "%s: options must be a table, not a %s", fname, luaL_typename(L, arg));
  lua_pushnil(L);
  while (lua_next(L, arg) != 0) {
    lua_Integer v;
    int isint = 0;
    if (lua_type(L, -2) != LUA_TSTRING || strcmp(lua_tostring(L, -2), "max_params") != 0)
      loamL_misuse(L, "%s: unknown option '%s'", fname,
                   lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : luaL_typename(L, -2));
    v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < 1 || v > INT_MAX)
      loamL_misuse(L, "%s: option 'max_params' must be a positive integer", fname);
    maxp = (int)v;
    lua_pop(L, 1);
  }
  return maxp;
}


/*
** Renders the AST at 'ast' for 'dialect' with the options at 'opts' of
** function 'fname'.  The result stays in the builder (pushed in a
** to-be-closed slot), which frees it with everything else.
*/
static loam_rendered *render (lua_State *L, loam_backend dialect, int ast, int opts,
                              const char *fname) {
  loam_error err = LOAM_ERROR_INIT;
  int maxp = checkopts(L, opts, fname);
  int builder = loamL_pushbuilder(L);
  loam_qstmt *st = loamL_tostatement(L, ast, builder);
  loam_rendered **rs = loamL_rendered(L, builder);
  if (loam_qb_render(loamL_builder(L, builder), st, dialect, maxp, rs, &err) != LOAM_OK)
    loamL_raise(L, &err, NULL);
  return *rs;
}


/* core.render(dialect, ast [, opts]) -> { { sql =, params =, n = }, ... } */
static int l_render (lua_State *L) {
  pushresult(L, render(L, loamL_checkdialect(L, 1, "render"), 2, 3, "render"));
  return 1;
}


/* conn:render(ast [, opts]), in the connection's dialect */
static int conn_render (lua_State *L) {
  pushresult(L, render(L, loamL_backend(L, loamL_checkhandle(L)), 2, 3, "render"));
  return 1;
}


/*
** Whether the statement at 'ast' (already converted, so well formed)
** returns rows: a SELECT, or a statement with a non-empty RETURNING.
*/
static int returnsrows (lua_State *L, int ast) {
  int top = lua_gettop(L), rows;
  loamL_field(L, ast, "k");
  rows = strcmp(lua_tostring(L, -1), "select") == 0;
  if (!rows && loamL_field(L, ast, "returning") == LUA_TTABLE)
    rows = lua_rawlen(L, -1) > 0;
  lua_settop(L, top);
  return rows;
}


/*
** conn:run(ast [, opts]): renders the statement and runs its chunks in
** order, each through 'loam_query' (so the statement cache and the query
** hooks see each one) with the rendered values bound as they are.  A
** statement that returns rows gives them all in one array, built as
** 'query' builds it; any other gives 'changes, id' as 'exec' does, the
** changes summed over the chunks and the id that of the last chunk.
** Several chunks run in one transaction level (a savepoint inside the
** caller's transaction), so a chunk that fails raises with the chunks
** before it rolled back: the statement applies whole or not at all.
*/
static int conn_run (lua_State *L) {
  loam_error err = LOAM_ERROR_INIT;
  loam_rendered *rs = render(L, loam_conn_backend(loamL_checkconn(L)), 2, 3, "run");
  int rows = returnsrows(L, 2), n = loam_rendered_count(rs), out, i, tx = 0;
  lua_Integer nrows = 0;
  int64_t changes = 0;
  LStmt *s;
  if (rows) lua_newtable(L);
  else lua_pushnil(L);  /* the id */
  out = lua_gettop(L);
  /* Below the statement's slot, so the statement is finalized before the rollback. */
  if (n > 1) tx = loamL_txbegin(L);
  s = loamL_pushstmt(L);
  for (i = 0; i < n; i++) {
    int rc;
    int64_t c = 0;
    /* Checked for each chunk: a query hook run after the one before may have closed it. */
    loam_conn *conn = loamL_checkconn(L);
    if (loam_query_rendered(conn, rs, i, 0, &s->stmt, &err) != LOAM_OK)
      return loamL_raise(L, &err, NULL);
    if (rows) rc = loamL_readrows(L, s->stmt, out, 0, &nrows, &err);
    else if ((rc = loamL_readexec(L, s->stmt, &c, &err)) == LOAM_DONE) {
      lua_replace(L, out);
      changes += c;
    }
    loamL_closestmt(s);
    if (rc != LOAM_DONE)
      return loamL_raise(L, &err, NULL);
    loamL_trace_flush(L);
  }
  if (tx != 0) loamL_txcommit(L, tx);
  if (rows) {
    lua_pushvalue(L, out);
    return 1;
  }
  lua_pushinteger(L, (lua_Integer)changes);
  lua_pushvalue(L, out);
  return 2;
}


/* }====================================================================== */


/* {======================================================================
** Prepared statements
** ======================================================================= */

/*
** A 'loam.Prepared' holds one rendered statement in C, so running it again
** binds new values into its slots and runs its text with no rendering and
** no parameter crossing to Lua and back.  It is created closed and filled
** once rendering succeeded, so a raise in between leaks nothing.  User
** value 1 is the 'loam.Conn' it runs on, kept alive while it is reachable;
** 2 the names of its result columns, made by its first run and reused as
** the keys of every row after; 3 the closed 'loam.Stmt' that 'run' opens
** and closes each time, instead of a new handle per run; 4 the instance
** shape of the rows it streams ('prepared:instances'), or nil.
*/
typedef struct LPrepared {
  loam_rendered *rs;
  int rows;            /* whether it returns rows (else 'changes, id') */
} LPrepared;


static LPrepared *toprepared (lua_State *L) {
  LPrepared *p = (LPrepared *)loamL_testud(L, 1, &loamL_prepared_key);
  if (p == NULL)
    loamL_typeerror(L, 1, PREPARED_T);
  return p;
}


/* '__gc', '__close' and 'close': freeing twice is fine. */
static int prepared_gc (lua_State *L) {
  LPrepared *p = toprepared(L);
  loam_rendered *rs = p->rs;
  p->rs = NULL;
  loam_rendered_free(rs);
  return 0;
}


static int prepared_close (lua_State *L) {
  prepared_gc(L);
  lua_pushboolean(L, 1);
  return 1;
}


/*
** conn:prepare(ast [, opts]): the statement rendered once, for 'run'.  A
** statement that renders as several (an INSERT split in chunks) is misuse:
** its chunks could not be bound one value list at a time.
*/
static int conn_prepare (lua_State *L) {
  loam_backend dialect = loamL_backend(L, loamL_checkhandle(L));
  LPrepared *p;
  loam_rendered **rs;
  int n;
  lua_settop(L, 3);
  p = (LPrepared *)lua_newuserdatauv(L, sizeof(LPrepared), 4);
  p->rs = NULL;
  luaL_setmetatable(L, PREPARED_T);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  render(L, dialect, 2, 3, "prepare");
  rs = loamL_rendered(L, 5);  /* the builder, pushed first by 'render' */
  n = loam_rendered_count(*rs);
  if (n != 1)
    return loamL_misuse(L, "prepare: the statement renders as %d statements; run it with db:run",
                        n);
  p->rs = *rs;
  *rs = NULL;  /* the prepared statement owns it now */
  p->rows = returnsrows(L, 2);
  lua_pushvalue(L, 4);
  return 1;
}


/*
** The values to bind for 'run' and 'each': the arguments from index 2 on,
** converted into 'local' (or a userdata left on the stack for a long list),
** or the values the statement was rendered with when there are none.
** Pushes the connection and returns it in '*conn'.
*/
static const loam_value *bindargs (lua_State *L, LPrepared *p, loam_value *local, int *np,
                                   const char *fname, loam_conn **conn) {
  int nargs = lua_gettop(L) - 1, i;
  LConn *c;
  const loam_value *params;
  if (p->rs == NULL)
    loamL_misuse(L, "attempt to use a closed prepared statement");
  params = loam_rendered_params(p->rs, 0, np);
  if (nargs > 0) {
    loam_value *v = local;
    if (nargs != *np)
      loamL_misuse(L, "%s: the statement takes %d parameter(s), got %d", fname, *np, nargs);
    if (*np > NPARAMS_LOCAL)
      v = (loam_value *)lua_newuserdatauv(L, (size_t)*np * sizeof *v, 0);
    for (i = 0; i < *np; i++)
      loamL_tovalue(L, i + 2, i + 1, &v[i]);
    params = v;
  }
  lua_getiuservalue(L, 1, 1);
  c = (LConn *)loamL_testud(L, -1, &loamL_conn_key);
  if (c != NULL && c->conn == NULL && c->pooled && c->poolref != NULL && !c->closing)
    loamL_lease(L, c, lua_gettop(L), 2, 1);   /* for this call: the slot is to be closed */
  *conn = c != NULL && !c->closing ? c->conn : NULL;
  if (*conn == NULL)
    loamL_misuse(L, "attempt to use a closed connection");
  return params;
}


/*
** prepared:run([v1, ...]): runs the statement with the values given, bound
** in placeholder order, or with those it was rendered with when none are
** given.  Rows come as 'db:run' gives them: all rows in an array, or
** 'changes, id'.  prepared:first([v1, ...]) runs a statement that returns
** rows the same way and gives its first row, or nil: a lookup by key
** makes no array for its one row.
*/
static int runprepared (lua_State *L, LPrepared *p, int first) {
  loam_value local[NPARAMS_LOCAL];
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *conn;
  int np, out, rc;
  const loam_value *params = bindargs(L, p, local, &np, first ? "first" : "run", &conn);
  int connidx = lua_gettop(L), names;
  LStmt *s;
  lua_Integer nrows = 0;
  int64_t changes = 0;
  if (lua_getiuservalue(L, 1, 2) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 2);
  }
  names = lua_gettop(L);
  /*
  ** The kept handle, unless a run of this statement inside this one (a
  ** finalizer, say) holds it open: that one then gets a handle of its own.
  */
  if (lua_getiuservalue(L, 1, 3) != LUA_TUSERDATA ||
      ((LStmt *)lua_touserdata(L, -1))->stmt != NULL) {
    int keep = lua_isnil(L, -1);
    lua_pop(L, 1);
    loamL_newstmt(L, connidx);
    if (keep) {
      lua_pushvalue(L, -1);
      lua_setiuservalue(L, 1, 3);
    }
  }
  s = (LStmt *)lua_touserdata(L, -1);
  lua_toclose(L, -1);
  if (p->rows && !first) lua_newtable(L);
  else lua_pushnil(L);  /* the id, or the first row */
  out = lua_gettop(L);
  if (loam_query_rendered_with(conn, p->rs, 0, params, np, 0, &s->stmt, &err) != LOAM_OK)
    return loamL_raise(L, &err, NULL);
  if (first) rc = loamL_readfirst(L, s->stmt, out, names, &err);
  else if (p->rows) rc = loamL_readrows(L, s->stmt, out, names, &nrows, &err);
  else if ((rc = loamL_readexec(L, s->stmt, &changes, &err)) == LOAM_DONE)
    lua_replace(L, out);
  loamL_closestmt(s);
  if (rc != LOAM_DONE)
    return loamL_raise(L, &err, NULL);
  loamL_trace_flush(L);
  if (p->rows || first) {
    lua_pushvalue(L, out);
    return 1;
  }
  lua_pushinteger(L, (lua_Integer)changes);
  lua_pushvalue(L, out);
  return 2;
}


static int prepared_run (lua_State *L) {
  return runprepared(L, toprepared(L), 0);
}


static int prepared_first (lua_State *L) {
  LPrepared *p = toprepared(L);
  if (!p->rows)
    return loamL_misuse(L, "first: the statement returns no rows; use run");
  return runprepared(L, p, 1);
}


/* prepared:each([v1, ...]): 'db:each' for the statement, values bound as 'run' binds them. */
static int prepared_each (lua_State *L) {
  loam_value local[NPARAMS_LOCAL];
  loam_error err = LOAM_ERROR_INIT;
  LPrepared *p = toprepared(L);
  loam_conn *conn;
  int np, sidx;
  const loam_value *params = bindargs(L, p, local, &np, "each", &conn);
  LConn *c = (LConn *)lua_touserdata(L, -1);
  LStmt *s = loamL_newstmt(L, lua_gettop(L));
  sidx = lua_gettop(L);
  if (lua_getiuservalue(L, 1, 4) == LUA_TTABLE) lua_setiuservalue(L, sidx, 3);
  else lua_pop(L, 1);
  if (c->pooled) {  /* the statement keeps the connection until it is finalized */
    loamL_lease(L, c, 0, 2, 0);
    s->lease = c;
  }
  if (loam_query_rendered_with(conn, p->rs, 0, params, np, LOAM_STREAM, &s->stmt, &err)
      != LOAM_OK)
    return loamL_raise(L, &err, NULL);
  lua_pushcfunction(L, loamL_stmtnext);
  lua_pushvalue(L, sidx);
  lua_pushnil(L);
  lua_pushvalue(L, sidx);
  return 4;
}


/*
** prepared:instances(shape): the rows of every later 'each' come as
** instances of 'shape' (see lua_stmt.c) when the statement's columns are
** its fields; nil goes back to plain rows.
*/
static int prepared_instances (lua_State *L) {
  toprepared(L);
  if (!lua_isnoneornil(L, 2) && !lua_istable(L, 2))
    return loamL_misuse(L, "instances: the shape must be a table or nil, not a %s",
                        luaL_typename(L, 2));
  lua_settop(L, 2);
  lua_setiuservalue(L, 1, 4);
  return 0;
}


/* prepared:sql() -> the text it runs and the values it was rendered with, as 'render' gives them. */
static int prepared_sql (lua_State *L) {
  LPrepared *p = toprepared(L);
  size_t len;
  int np, j, nullidx;
  const char *text;
  const loam_value *v;
  if (p->rs == NULL)
    return loamL_misuse(L, "attempt to use a closed prepared statement");
  text = loam_rendered_sql(p->rs, 0, &len);
  v = loam_rendered_params(p->rs, 0, &np);
  loamL_pushnull(L);
  nullidx = lua_gettop(L);
  lua_pushlstring(L, text, len);
  lua_createtable(L, np, 0);
  for (j = 0; j < np; j++) {
    pushparam(L, &v[j], nullidx);
    lua_rawseti(L, -2, j + 1);
  }
  return 2;
}


static int prepared_tostring (lua_State *L) {
  LPrepared *p = toprepared(L);
  lua_pushstring(L, p->rs != NULL ? "loam.Prepared (open)" : "loam.Prepared (closed)");
  return 1;
}


void loamL_open_query (lua_State *L) {
  static const luaL_Reg meth[] = {
    {"run", prepared_run},
    {"first", prepared_first},
    {"each", prepared_each},
    {"sql", prepared_sql},
    {"instances", prepared_instances},
    {"close", prepared_close},
    {NULL, NULL}
  };
  static const luaL_Reg metameth[] = {
    {"__gc", prepared_gc},
    {"__close", prepared_gc},
    {"__tostring", prepared_tostring},
    {NULL, NULL}
  };
  loamL_createmeta(L, PREPARED_T, meth, metameth);
  loamL_keymeta(L, PREPARED_T, &loamL_prepared_key);
  loamL_addfunc(L, "render", l_render, conn_render);
  lua_getfield(L, -1, "Conn");  /* 'run' and 'prepare' need a connection: methods only */
  lua_pushcfunction(L, conn_run);
  lua_setfield(L, -2, "run");
  lua_pushcfunction(L, conn_prepare);
  lua_setfield(L, -2, "prepare");
  lua_pop(L, 1);
}

/* }====================================================================== */
