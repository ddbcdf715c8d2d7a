/*
** lua_bulk.c: 'conn:insert_rows(table, columns, rows)', many rows into one
** table through 'loam_insert_rows' (multi-row VALUES, or COPY on
** PostgreSQL).  The rows are read straight into one array of core values
** pointing into the Lua strings, which the rows table keeps alive for the
** call: no statement tree is built and no value is copied on the way.
*/
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#include "loam.h"
#include "lua_loam_int.h"


/* {======================================================================
** Bulk inserts
** ======================================================================= */

/* Whether the value at 'idx' binds: what 'loamL_tovalue' takes, without raising. */
static int bindable (lua_State *L, int idx) {
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER: case LUA_TBOOLEAN: case LUA_TSTRING: return 1;
    case LUA_TUSERDATA:
      return luaL_testudata(L, idx, NULL_T) != NULL || luaL_testudata(L, idx, BLOB_T) != NULL;
    default: return 0;
  }
}


/* The column names at 'arg' (a non-empty array of strings) into a userdata left on the stack. */
static const char **checkcolumns (lua_State *L, int arg, int *ncols) {
  lua_Unsigned n, i;
  const char **names;
  if (lua_type(L, arg) != LUA_TTABLE)
    loamL_typeerror(L, arg, "table");
  n = lua_rawlen(L, arg);
  if (n == 0 || n > INT_MAX)
    loamL_misuse(L, "insert_rows: the columns must be a non-empty array of names");
  names = (const char **)lua_newuserdatauv(L, (size_t)n * sizeof *names, 0);
  for (i = 0; i < n; i++) {
    size_t len;
    if (lua_rawgeti(L, arg, (lua_Integer)i + 1) != LUA_TSTRING)
      loamL_misuse(L, "insert_rows: column #%d must be a string, not a %s", (int)i + 1,
                   loamL_valuename(L, -1));
    names[i] = lua_tolstring(L, -1, &len);
    if (strlen(names[i]) != len)
      loamL_misuse(L, "insert_rows: column #%d holds a NUL byte", (int)i + 1);
    lua_pop(L, 1);   /* the array keeps the string alive */
  }
  *ncols = (int)n;
  return names;
}


/*
** conn:insert_rows(table, columns, rows) -> count: 'rows' is an array of
** arrays, each holding one value per column in order (loam.null for NULL,
** loam.blob for bytes); the count is the rows inserted.
*/
static int conn_insert_rows (lua_State *L) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *conn = loamL_checkconn(L);
  size_t tlen;
  const char *table = loamL_checkstring(L, 2, &tlen);
  int ncols, r, c;
  const char **names;
  lua_Unsigned nrows;
  loam_value *vals;
  int64_t inserted = 0;
  if (strlen(table) != tlen)
    loamL_misuse(L, "insert_rows: the table name holds a NUL byte");
  names = checkcolumns(L, 3, &ncols);
  if (lua_type(L, 4) != LUA_TTABLE)
    loamL_typeerror(L, 4, "table");
  nrows = lua_rawlen(L, 4);
  if (nrows > (lua_Unsigned)INT_MAX / (lua_Unsigned)ncols)
    loamL_misuse(L, "insert_rows: too many values in one call");
  vals = (loam_value *)lua_newuserdatauv(L, (size_t)nrows * (size_t)ncols * sizeof *vals, 0);
  for (r = 0; r < (int)nrows; r++) {
    loam_value *row = vals + (size_t)r * (size_t)ncols;
    if (lua_rawgeti(L, 4, r + 1) != LUA_TTABLE)
      loamL_misuse(L, "insert_rows: row %d must be an array of values, not a %s", r + 1,
                   loamL_valuename(L, -1));
    if (lua_rawlen(L, -1) != (lua_Unsigned)ncols)
      loamL_misuse(L, "insert_rows: row %d has %d values for %d columns (write loam.null "
                   "for NULL)", r + 1, (int)lua_rawlen(L, -1), ncols);
    for (c = 0; c < ncols; c++) {
      /* Strings and numbers first, without the checks of a general conversion. */
      switch (lua_rawgeti(L, -1, c + 1)) {
        case LUA_TSTRING: {
          size_t len;
          const char *p = lua_tolstring(L, -1, &len);
          row[c] = loam_text(p, len);   /* the row keeps the string alive for the call */
          break;
        }
        case LUA_TNUMBER:
          /* A float keeps its type, integral or not, as 'loamL_tovalue' keeps it. */
          row[c] = lua_isinteger(L, -1) ? loam_int((int64_t)lua_tointeger(L, -1))
                                        : loam_double((double)lua_tonumber(L, -1));
          break;
        default:
          if (!bindable(L, -1))
            loamL_misuse(L, "insert_rows: row %d, column %s: cannot bind a %s", r + 1,
                         names[c], loamL_valuename(L, -1));
          /* A blob's wrapper, which keeps its bytes alive, stays in the row for the call. */
          loamL_tovalue(L, -1, c + 1, &row[c]);
          break;
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  if (loam_insert_rows(conn, table, names, ncols, vals, (int)nrows, &inserted, &err)
      != LOAM_OK)
    return loamL_raise(L, &err, NULL);
  loamL_trace_flush(L);
  lua_pushinteger(L, (lua_Integer)inserted);
  return 1;
}


/*
** plain_rows(list, keys, n, from) -> i: the index of the first item of
** 'list', from 'from' on, that is not a table without a metatable whose
** keys are exactly 'n' keys of the set 'keys' (key -> true), or of the
** first nil.  'Model:insert_many' checks its later rows with one call,
** instead of a loop over each row's keys in Lua.
*/
static int l_plain_rows (lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 3), i = luaL_checkinteger(L, 4);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  for (;; i++) {
    lua_Integer count = 0;
    int plain = 1;
    if (lua_rawgeti(L, 1, i) != LUA_TTABLE || lua_getmetatable(L, 3))
      break;
    lua_pushnil(L);
    while (lua_next(L, 3) != 0) {  /* the key at 4, its value at 5 */
      lua_pop(L, 1);
      lua_pushvalue(L, 4);
      if (lua_rawget(L, 2) == LUA_TNIL || ++count > n) {
        plain = 0;
        break;
      }
      lua_pop(L, 1);
    }
    if (!plain || count != n)
      break;
    lua_settop(L, 2);
  }
  lua_pushinteger(L, i);
  return 1;
}


void loamL_open_bulk (lua_State *L) {
  lua_pushcfunction(L, l_plain_rows);
  lua_setfield(L, -2, "plain_rows");
  luaL_getmetatable(L, CONN_T);
  lua_getfield(L, -1, "__index");
  lua_pushcfunction(L, conn_insert_rows);
  lua_setfield(L, -2, "insert_rows");
  lua_pop(L, 2);
}

/* }====================================================================== */
