/*
** lua_stmt.c: statement handles ('loam.Stmt') and reading their results.
**
** A handle exists before the core statement it holds, so a raise cannot
** leak it; it is finalized on '__close' and '__gc'.  Result rows are built
** here with column names pushed once per statement, so Lua code receives
** finished tables: all at once for 'query' and 'run', or one at a time by
** the iterator of 'conn:each'.
**
** A prepared statement of a model's own projection may be given the shape
** of the model's instances (loam.model, 'prepared:instances'): the rows it
** streams ('each') are then made instances here as they are read, each
** with its state array (loam.instance) filled from the values on the stack
** and the instance metatable set, so that no Lua function runs per row to
** do it.  Rows read all at once are loaded by a generated Lua loop
** (loam.model), which costs no more than this does.
*/
#include <stdint.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#include "loam.h"
#include "lua_loam_int.h"


/* {======================================================================
** Statements
** ======================================================================= */

/*
** Statement handles ('LStmt', declared in lua_loam_int.h for 'conn:run')
** carry three user values: 1 is the 'loam.Conn' the statement runs on,
** which keeps the connection alive while the statement is reachable; 2 is
** the array of column names of a streaming statement, made when the first
** row arrives; 3 is the instance shape of its rows (see 'rowshape'), or nil.
*/

/* Pushes column 'i' of the current row; 'nullidx' holds the NULL sentinel. */
static void pushcolumn (lua_State *L, loam_stmt *stmt, int i, int nullidx) {
  loam_value v;
  if (loam_column(stmt, i, &v) != LOAM_OK)
    v = loam_null();
  loamL_pushvalue(L, &v, nullidx);
}

static LStmt *tostmt (lua_State *L, int i) {
  LStmt *s = (LStmt *)loamL_testud(L, i, &loamL_stmt_key);
  if (s == NULL)
    loamL_typeerror(L, i, STMT_T);
  return s;
}


/* The statement's lease of a pooled handle ends after it: it ran on that connection. */
void loamL_closestmt (LStmt *s) {
  if (s->stmt != NULL) {
    loam_stmt *stmt = s->stmt;
    s->stmt = NULL;
    loam_stmt_close(stmt);
  }
  if (s->lease != NULL) {
    LConn *c = s->lease;
    s->lease = NULL;
    loamL_unlease(c);
  }
}


/*
** Pushes a closed statement that belongs to the connection at 'connidx';
** the caller then opens it with 'loam_query' into its 'stmt' field, so the
** handle exists before the resource and a raise in between cannot leak it.
*/
LStmt *loamL_newstmt (lua_State *L, int connidx) {
  LStmt *s = (LStmt *)lua_newuserdatauv(L, sizeof(LStmt), 3);
  s->stmt = NULL;
  s->lease = NULL;
  luaL_setmetatable(L, STMT_T);
  lua_pushvalue(L, connidx);
  lua_setiuservalue(L, -2, 1);
  return s;
}


/*
** '__gc' and '__close': finalizing twice, or after the connection, is
** fine.  Only '__close' (which gets two arguments: the value and the error
** being raised, or nil) runs the query hooks: a finalizer runs at an
** arbitrary point, where a hook must not.
*/
static int stmt_gc (lua_State *L) {
  loamL_closestmt(tostmt(L, 1));
  if (lua_gettop(L) >= 2 && lua_isnil(L, 2))
    loamL_trace_flush(L);
  else if (lua_gettop(L) >= 2)
    loamL_trace_flush_failing(L);
  return 0;
}


static int stmt_close (lua_State *L) {
  loamL_closestmt(tostmt(L, 1));
  loamL_trace_flush(L);
  lua_pushboolean(L, 1);
  return 1;
}


static int stmt_tostring (lua_State *L) {
  LStmt *s = tostmt(L, 1);
  lua_pushstring(L, s->stmt != NULL ? "loam.Stmt (open)" : "loam.Stmt (closed)");
  return 1;
}


/*
** Instance shapes.  A shape is a Lua table { metatable, size, fields, key }:
** the metatable of the model's instances, the length of their state array,
** the array of field names in position order, and the key the state sits
** under in the instance (instance.KEY).  It applies to a result whose
** columns are the fields, in order (checked by name, once per statement);
** any other result gives plain rows.
*/
typedef struct RowShape {
  int meta, key;  /* stack indices of the metatable and the state key */
  int size;       /* length of the state array; 0: plain rows */
} RowShape;

/*
** Fills 'sh' from the shape at 'shape' for the columns whose names are the
** 'ncols' strings of the array at 'names', pushing its metatable and key.
** A negative 'ncols' trusts the shape: its columns were checked before.
*/
static void rowshape (lua_State *L, int shape, int names, int ncols, RowShape *sh) {
  int i, same = shape != 0;
  sh->size = 0;
  if (!same) return;
  if (ncols >= 0) {
    same = lua_rawgeti(L, shape, 3) == LUA_TTABLE && lua_rawlen(L, -1) == (lua_Unsigned)ncols;
    for (i = 0; same && i < ncols; i++) {
      lua_rawgeti(L, -1, i + 1);
      lua_rawgeti(L, names, i + 1);
      same = lua_rawequal(L, -1, -2);
      lua_pop(L, 2);
    }
    lua_pop(L, 1);
    if (!same) return;
  }
  lua_rawgeti(L, shape, 1);
  sh->meta = lua_gettop(L);
  lua_rawgeti(L, shape, 4);
  sh->key = lua_gettop(L);
  lua_rawgeti(L, shape, 2);
  sh->size = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (sh->size < ncols || !lua_istable(L, sh->meta) || lua_type(L, sh->key) != LUA_TSTRING)
    sh->size = 0;  /* never so for the shapes loam.model makes */
}

/*
** Pushes the current row of 'stmt' ('ncols' columns named by the array at
** 'names'); with a shape, as an instance: the values go into the state
** array too, by position.
*/
static void pushrow (lua_State *L, loam_stmt *stmt, int ncols, int names, int nullidx,
                     const RowShape *sh) {
  int i, row, st = 0;
  lua_createtable(L, 0, ncols + (sh->size > 0));
  row = lua_gettop(L);
  if (sh->size > 0) {
    lua_pushvalue(L, sh->key);
    lua_createtable(L, sh->size, 0);
    st = row + 2;
  }
  for (i = 0; i < ncols; i++) {
    lua_rawgeti(L, names, i + 1);
    pushcolumn(L, stmt, i, nullidx);
    if (st != 0) {
      lua_pushvalue(L, -1);
      lua_rawseti(L, st, i + 1);
    }
    lua_rawset(L, row);
  }
  if (st != 0) {
    lua_rawset(L, row);  /* row[key] = the state */
    lua_pushvalue(L, sh->meta);
    lua_setmetatable(L, row);
  }
}


/*
** The iterator of 'conn:each'.  A row is built from the names array in
** user value 2, which is filled once, when the first row arrives.  The end
** of the rows finalizes the statement at once, so the connection is free
** before the loop ends.
*/
int loamL_stmtnext (lua_State *L) {
  LStmt *s = tostmt(L, 1);
  loam_error err = LOAM_ERROR_INIT;
  LConn *c;
  RowShape sh = { 0, 0, 0 };
  int rc, ncols, namesidx, i;
  if (s->stmt == NULL)
    return loamL_misuse(L, "attempt to use a closed statement");
  lua_getiuservalue(L, 1, 1);
  c = (LConn *)lua_touserdata(L, -1);
  if (c == NULL || c->conn == NULL) {
    loamL_closestmt(s);
    return loamL_misuse(L, "attempt to use a closed connection");
  }
  rc = loam_step(s->stmt, &err);
  if (rc == LOAM_DONE) {
    loamL_closestmt(s);
    loamL_trace_flush(L);
    lua_pushnil(L);
    return 1;
  }
  if (rc != LOAM_ROW) {
    loamL_closestmt(s);
    return loamL_raise(L, &err, NULL);
  }
  ncols = loam_column_count(s->stmt);
  if (lua_getiuservalue(L, 1, 2) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, ncols, 0);
    for (i = 0; i < ncols; i++) {
      const char *name = loam_column_name(s->stmt, i);
      lua_pushstring(L, name != NULL ? name : "?");
      lua_rawseti(L, -2, i + 1);
    }
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 2);
    /* a shape that does not fit the columns is dropped, once */
    namesidx = lua_gettop(L);
    if (lua_getiuservalue(L, 1, 3) == LUA_TTABLE) {
      rowshape(L, namesidx + 1, namesidx, ncols, &sh);
      if (sh.size == 0) {
        lua_pushnil(L);
        lua_setiuservalue(L, 1, 3);
      }
    }
    lua_settop(L, namesidx);
  }
  namesidx = lua_gettop(L);
  if (lua_getiuservalue(L, 1, 3) == LUA_TTABLE)
    rowshape(L, namesidx + 1, namesidx, -1, &sh);
  loamL_pushnull(L);
  pushrow(L, s->stmt, ncols, namesidx, lua_gettop(L), &sh);
  return 1;
}


/*
** The connection's kept handle, unless a statement running inside this
** one (a finalizer's, say) holds it open: that one then gets a handle of
** its own, as does a connection made without the user value.
*/
LStmt *loamL_pushstmt (lua_State *L) {
  LStmt *s;
  int t = lua_getiuservalue(L, 1, CONN_UV_STMT);
  if (t == LUA_TUSERDATA && (s = (LStmt *)lua_touserdata(L, -1))->stmt == NULL) {
    lua_toclose(L, -1);
    return s;
  }
  lua_pop(L, 1);
  s = loamL_newstmt(L, 1);
  if (t == LUA_TNIL) {
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, CONN_UV_STMT);
  }
  lua_toclose(L, -1);
  return s;
}

/*
** Pushes the names of the 'ncols' columns of 'stmt', one stack slot each.
** With a names table at 'names' (not 0), the strings it holds are pushed
** instead of new ones, after a check that each is still the column's
** name (a schema change may rename a column under the same SQL); the
** table is brought up to date where it is not.  A string compared is
** cheaper than a string made, which Lua hashes and interns.
*/
static void pushnames (lua_State *L, loam_stmt *stmt, int ncols, int names) {
  int i;
  for (i = 0; i < ncols; i++) {
    const char *name = loam_column_name(stmt, i);
    if (name == NULL) name = "?";
    if (names != 0) {
      if (lua_rawgeti(L, names, i + 1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), name) == 0)
        continue;
      lua_pop(L, 1);
      lua_pushstring(L, name);
      lua_pushvalue(L, -1);
      lua_rawseti(L, names, i + 1);
    }
    else lua_pushstring(L, name);
  }
  if (names != 0 && lua_rawlen(L, names) > (lua_Unsigned)ncols) {
    lua_pushnil(L);
    lua_rawseti(L, names, ncols + 1);   /* the array ends at 'ncols' again */
  }
}


/*
** The rows of 'query' (and of 'conn:run').  The column names are pushed
** once per statement, when its first row arrives, and every row is a
** table pre-sized for them; NULL columns hold the sentinel so no key is
** missing.  With 'first' set, the first row replaces the value at 'rows'
** and the others are stepped over unread.
*/
static int readrows (lua_State *L, loam_stmt *stmt, int rows, int names, lua_Integer *n,
                     loam_error *err, int first) {
  int top = lua_gettop(L), nullidx, namesidx = 0, ncols = 0, rc, i;
  loamL_pushnull(L);
  nullidx = top + 1;
  while ((rc = loam_step(stmt, err)) == LOAM_ROW) {
    if (first && *n > 0) continue;
    if (namesidx == 0) {
      ncols = loam_column_count(stmt);
      luaL_checkstack(L, ncols + LUA_MINSTACK, "too many result columns");
      namesidx = lua_gettop(L) + 1;
      pushnames(L, stmt, ncols, names);
    }
    lua_createtable(L, 0, ncols);
    for (i = 0; i < ncols; i++) {
      lua_pushvalue(L, namesidx + i);
      pushcolumn(L, stmt, i, nullidx);
      lua_rawset(L, -3);
    }
    if (first) {
      lua_replace(L, rows);
      ++*n;
    }
    else lua_rawseti(L, rows, ++*n);
  }
  lua_settop(L, top);
  return rc;
}


int loamL_readrows (lua_State *L, loam_stmt *stmt, int rows, int names, lua_Integer *n,
                    loam_error *err) {
  return readrows(L, stmt, rows, names, n, err, 0);
}


int loamL_readfirst (lua_State *L, loam_stmt *stmt, int slot, int names, loam_error *err) {
  lua_Integer n = 0;
  return readrows(L, stmt, slot, names, &n, err, 1);
}


/*
** The outcome of 'exec' (and of 'conn:run'): any value type may serve as
** id (a uuid, say), so the first column is pushed as it comes.
*/
int loamL_readexec (lua_State *L, loam_stmt *stmt, int64_t *changes, loam_error *err) {
  int rc, hasid = 0;
  int64_t id;
  lua_pushnil(L);
  while ((rc = loam_step(stmt, err)) == LOAM_ROW) {
    if (!hasid && loam_column_count(stmt) > 0) {
      pushcolumn(L, stmt, 0, 0);
      lua_replace(L, -2);
      hasid = 1;
    }
  }
  if (rc != LOAM_DONE) {
    lua_pop(L, 1);
    return rc;
  }
  *changes = loam_stmt_changes(stmt);
  if (!hasid && loam_stmt_insert_id(stmt, &id)) {
    lua_pushinteger(L, (lua_Integer)id);
    lua_replace(L, -2);
  }
  return rc;
}

static const luaL_Reg stmt_meth[] = {
  {"close", stmt_close},
  {NULL, NULL}
};

static const luaL_Reg stmt_metameth[] = {
  {"__index", NULL},
  {"__gc", stmt_gc},
  {"__close", stmt_gc},
  {"__tostring", stmt_tostring},
  {NULL, NULL}
};


void loamL_open_stmt (lua_State *L) {
  loamL_createmeta(L, STMT_T, stmt_meth, stmt_metameth);
  loamL_keymeta(L, STMT_T, &loamL_stmt_key);
}

/* }====================================================================== */
