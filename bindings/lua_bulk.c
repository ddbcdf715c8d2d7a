/*
** lua_bulk.c: 'conn:insert_rows(table, columns, rows)', many rows into one
** table through 'loam_insert_rows' (multi-row VALUES, or COPY on
** PostgreSQL), and 'insert_records', the same for rows keyed by field
** name that 'Model:insert_many' gives with its row shape.  The rows are
** read straight into one array of core values pointing into the Lua
** strings, which the rows table keeps alive for the call: no statement
** tree is built and no value is copied on the way.
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


/* The value at the top into 'v' (row 'r', column 'col' for the message); the stack keeps it. */
static void bulk_value (lua_State *L, int r, const char *col, loam_value *v) {
  /* Strings and numbers first, without the checks of a general conversion. */
  switch (lua_type(L, -1)) {
    case LUA_TSTRING: {
      size_t len;
      const char *p = lua_tolstring(L, -1, &len);
      *v = loam_text(p, len);   /* the caller keeps the string alive for the call */
      break;
    }
    case LUA_TNUMBER:
      /* A float keeps its type, integral or not, as 'loamL_tovalue' keeps it. */
      *v = lua_isinteger(L, -1) ? loam_int((int64_t)lua_tointeger(L, -1))
                                : loam_double((double)lua_tonumber(L, -1));
      break;
    default:
      if (!bindable(L, -1))
        loamL_misuse(L, "insert_rows: row %d, column %s: cannot bind a %s", r, col,
                     loamL_valuename(L, -1));
      /* A blob's wrapper, which keeps its bytes alive, is kept by the caller. */
      loamL_tovalue(L, -1, 0, v);
      break;
  }
}


/* Row 'r', the array of values at the top, into 'row'; the caller keeps the array alive. */
static void read_array (lua_State *L, int r, const char *const *names, int ncols,
                        loam_value *row) {
  int c;
  if (lua_type(L, -1) != LUA_TTABLE)
    loamL_misuse(L, "insert_rows: row %d must be an array of values, not a %s", r,
                 loamL_valuename(L, -1));
  if (lua_rawlen(L, -1) != (lua_Unsigned)ncols)
    loamL_misuse(L, "insert_rows: row %d has %d values for %d columns (write loam.null "
                 "for NULL)", r, (int)lua_rawlen(L, -1), ncols);
  for (c = 0; c < ncols; c++) {
    lua_rawgeti(L, -1, c + 1);
    bulk_value(L, r, names[c], &row[c]);
    lua_pop(L, 1);
  }
}


/* The rows read, into the table: pushes the count inserted. */
static int insert (lua_State *L, loam_conn *conn, const char *table, const char *const *names,
                   int ncols, const loam_value *vals, int nrows) {
  loam_error err = LOAM_ERROR_INIT;
  int64_t inserted = 0;
  if (loam_insert_rows(conn, table, names, ncols, vals, nrows, &inserted, &err) != LOAM_OK)
    return loamL_raise(L, &err, NULL);
  loamL_trace_flush(L);
  lua_pushinteger(L, (lua_Integer)inserted);
  return 1;
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
  loam_conn *conn = loamL_checkconn(L);
  size_t tlen;
  const char *table = loamL_checkstring(L, 2, &tlen);
  int ncols, r;
  const char **names;
  lua_Unsigned nrows;
  loam_value *vals;
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
    lua_rawgeti(L, 4, r + 1);
    read_array(L, r + 1, names, ncols, row);
    lua_pop(L, 1);
  }
  return insert(L, conn, table, names, ncols, vals, (int)nrows);
}


/* What a column takes without its coercer: the quick tests of types.quick_shape. */
enum { QUICK_NONE, QUICK_INTEGER, QUICK_TEXT };

typedef struct Shaped {
  const char *field;       /* the key of the column's value in a row */
  size_t flen;
  const void *key;         /* that key as lua_topointer gives it */
  int quick;               /* QUICK_* */
  lua_Integer min, max;    /* QUICK_INTEGER: the range taken */
  lua_Integer length;      /* QUICK_TEXT: at most this many characters, or -1 */
} Shaped;


/*
** The number of characters of 's' when it is valid UTF-8 (no overlong
** forms, no surrogates, nothing above U+10FFFF) without a NUL byte, else
** -1: text that passes is what the text coercer returns unchanged.
*/
static lua_Integer text_chars (const unsigned char *s, size_t len) {
  const unsigned char *e = s + len;
  lua_Integer n = 0;
  while (s < e) {
    unsigned c = *s;
    if (c >= 0x01 && c < 0x80) { s++; n++; continue; }
    if (c >= 0xC2 && c <= 0xDF) {
      if (e - s < 2 || (s[1] & 0xC0) != 0x80) return -1;
      s += 2;
    }
    else if (c >= 0xE0 && c <= 0xEF) {
      unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
      if (e - s < 3 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80) return -1;
      s += 3;
    }
    else if (c >= 0xF0 && c <= 0xF4) {
      unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
      if (e - s < 4 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 ||
          (s[3] & 0xC0) != 0x80) return -1;
      s += 4;
    }
    else return -1;   /* NUL, a continuation byte, or a lead byte UTF-8 has no use for */
    n++;
  }
  return n;
}


/* Whether the value at the top passes the quick test of 'sc'; then it is 'v'. */
static int quick (lua_State *L, const Shaped *sc, loam_value *v) {
  switch (sc->quick) {
    case QUICK_INTEGER:
      if (lua_isinteger(L, -1)) {
        lua_Integer i = lua_tointeger(L, -1);
        if (i < sc->min || i > sc->max) return 0;
        *v = loam_int((int64_t)i);
        return 1;
      }
      return 0;
    case QUICK_TEXT:
      if (lua_type(L, -1) == LUA_TSTRING) {
        size_t len;
        const char *p = lua_tolstring(L, -1, &len);
        lua_Integer n = text_chars((const unsigned char *)p, len);
        if (n < 0 || (sc->length >= 0 && n > sc->length)) return 0;
        *v = loam_text(p, len);   /* the row keeps the string alive for the call */
        return 1;
      }
      return 0;
    default:
      return 0;
  }
}


/* The column whose field is the key at 'idx', or -1. */
static int field_of (lua_State *L, int idx, const Shaped *cols, int ncols) {
  const void *same = lua_topointer(L, idx);
  size_t len;
  const char *k;
  int j;
  /*
  ** Short strings are interned: the key is most often the shape's own
  ** string object.  A string first: a light userdata may hold any address.
  */
  if (lua_type(L, idx) != LUA_TSTRING) return -1;
  for (j = 0; j < ncols; j++)
    if (cols[j].key == same) return j;
  k = lua_tolstring(L, idx, &len);
  for (j = 0; j < ncols; j++)
    if (cols[j].flen == len && memcmp(cols[j].field, k, len) == 0) return j;
  return -1;
}


/*
** Row 'r', the table at the top, into 'row' when it is a table without a
** metatable that sets exactly the shape's fields, each to a value its
** column's quick test or its coercer (at 'coerce', an array) takes; the
** coercer's results are kept in the table at 'keep'.  Else 0, with the
** stack as it was: the row goes the full way.
*/
static int record_row (lua_State *L, int top, const Shaped *cols, const char *const *names,
                       int ncols, int coerce, int keep, lua_Integer *nkept, loam_value *row,
                       int r) {
  int count = 0;
  if (lua_type(L, top) != LUA_TTABLE) return 0;
  if (lua_getmetatable(L, top)) {
    lua_settop(L, top);
    return 0;
  }
  lua_pushnil(L);
  while (lua_next(L, top) != 0) {   /* the key at top + 1, its value at top + 2 */
    int j = field_of(L, top + 1, cols, ncols);
    if (j < 0) {   /* a key that is no field */
      lua_settop(L, top);
      return 0;
    }
    count++;
    if (!quick(L, &cols[j], &row[j])) {
      lua_rawgeti(L, coerce, j + 1);
      lua_pushvalue(L, top + 2);
      lua_call(L, 1, 1);
      if (lua_isnil(L, -1)) {   /* refused: the full way raises the error */
        lua_settop(L, top);
        return 0;
      }
      lua_pushvalue(L, -1);
      lua_rawseti(L, keep, ++*nkept);   /* what the coercer made lives as long as the call */
      bulk_value(L, r, names[j], &row[j]);
    }
    lua_settop(L, top + 1);
  }
  return count == ncols;   /* the keys are distinct, each one of the fields */
}


/*
** insert_records(conn, table, shape, rows, first, full) -> count: the rows
** of the array 'rows' (up to its first nil), each a table keyed by field
** name, into 'table'.  'shape' describes the columns, in order: arrays
** 'columns' (their SQL names), 'fields' (the rows' keys), 'coerce' (each
** column's coercer: the value to bind, or nil when it refuses), and
** 'quick' (what types.quick_shape gives, or false).  'first' is row 1's
** values, coerced, as an array.  A later row that is not a plain table of
** exactly those fields, or holds a value its coercer refuses, is given to
** 'full(i)', which returns its values as an array or raises the error a
** row-by-row check raises.  'conn' is a connection or a Database, as the
** methods take it.  'Model:insert_many' calls it, a function of the
** module rather than a method: it is no part of a connection's API.
*/
static int l_insert_records (lua_State *L) {
  loam_conn *conn = loamL_checkconn(L);
  size_t tlen;
  const char *table = loamL_checkstring(L, 2, &tlen);
  const char **names;
  Shaped *cols;
  loam_value *vals;
  lua_Integer nrows, r, nkept = 0;
  int ncols, j, coerce, keep;
  if (strlen(table) != tlen)
    loamL_misuse(L, "insert_records: the table name holds a NUL byte");
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TTABLE);
  luaL_checktype(L, 5, LUA_TTABLE);
  luaL_checktype(L, 6, LUA_TFUNCTION);
  lua_settop(L, 6);
  lua_getfield(L, 3, "columns");
  names = checkcolumns(L, 7, &ncols);   /* at 8 */
  cols = (Shaped *)lua_newuserdatauv(L, (size_t)ncols * sizeof *cols, 0);   /* at 9 */
  lua_getfield(L, 3, "fields");    /* at 10 */
  lua_getfield(L, 3, "quick");     /* at 11 */
  lua_getfield(L, 3, "coerce");    /* at 12 */
  coerce = 12;
  if (lua_type(L, 10) != LUA_TTABLE || lua_type(L, 11) != LUA_TTABLE ||
      lua_type(L, coerce) != LUA_TTABLE)
    loamL_misuse(L, "insert_records: the shape needs arrays 'fields', 'quick' and 'coerce'");
  for (j = 0; j < ncols; j++) {
    Shaped *sc = &cols[j];
    if (lua_rawgeti(L, 10, j + 1) != LUA_TSTRING)
      loamL_misuse(L, "insert_records: field #%d must be a string, not a %s", j + 1,
                   loamL_valuename(L, -1));
    sc->field = lua_tolstring(L, -1, &sc->flen);   /* the shape keeps it alive */
    sc->key = lua_topointer(L, -1);
    lua_pop(L, 1);
    if (lua_rawgeti(L, coerce, j + 1) != LUA_TFUNCTION)
      loamL_misuse(L, "insert_records: coercer #%d must be a function, not a %s", j + 1,
                   loamL_valuename(L, -1));
    lua_pop(L, 1);
    sc->quick = QUICK_NONE;
    sc->min = LUA_MININTEGER;
    sc->max = LUA_MAXINTEGER;
    sc->length = -1;
    if (lua_rawgeti(L, 11, j + 1) == LUA_TTABLE) {
      const char *kind;
      lua_getfield(L, -1, "kind");
      kind = lua_tostring(L, -1);
      if (kind != NULL && strcmp(kind, "integer") == 0) sc->quick = QUICK_INTEGER;
      else if (kind != NULL && strcmp(kind, "text") == 0) sc->quick = QUICK_TEXT;
      else loamL_misuse(L, "insert_records: quick test #%d has an unknown kind", j + 1);
      if (lua_getfield(L, -2, "min") == LUA_TNUMBER) sc->min = lua_tointeger(L, -1);
      if (lua_getfield(L, -3, "max") == LUA_TNUMBER) sc->max = lua_tointeger(L, -1);
      if (lua_getfield(L, -4, "length") == LUA_TNUMBER) sc->length = lua_tointeger(L, -1);
      lua_pop(L, 4);
    }
    lua_pop(L, 1);
  }
  /* Up to the first nil, as ipairs goes. */
  for (nrows = 1; lua_rawgeti(L, 4, nrows + 1) != LUA_TNIL; nrows++) lua_pop(L, 1);
  lua_pop(L, 1);
  if (nrows > (lua_Integer)(INT_MAX / ncols))
    loamL_misuse(L, "insert_rows: too many values in one call");
  vals = (loam_value *)lua_newuserdatauv(L, (size_t)nrows * (size_t)ncols * sizeof *vals, 0);
  lua_newtable(L);   /* what the coercers and 'full' made, kept for the call */
  keep = lua_gettop(L);
  luaL_checkstack(L, 8, "insert_records");
  lua_pushvalue(L, 5);
  read_array(L, 1, names, ncols, vals);
  lua_pop(L, 1);
  for (r = 2; r <= nrows; r++) {
    loam_value *row = vals + (size_t)(r - 1) * (size_t)ncols;
    lua_rawgeti(L, 4, r);
    if (!record_row(L, lua_gettop(L), cols, names, ncols, coerce, keep, &nkept, row, (int)r)) {
      lua_pop(L, 1);
      lua_pushvalue(L, 6);
      lua_pushinteger(L, r);
      lua_call(L, 1, 1);
      lua_pushvalue(L, -1);
      lua_rawseti(L, keep, ++nkept);
      read_array(L, (int)r, names, ncols, row);
    }
    lua_pop(L, 1);
  }
  return insert(L, conn, table, names, ncols, vals, (int)nrows);
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
  lua_pushcfunction(L, l_insert_records);
  lua_setfield(L, -2, "insert_records");
  luaL_getmetatable(L, CONN_T);
  lua_getfield(L, -1, "__index");
  lua_pushcfunction(L, conn_insert_rows);
  lua_setfield(L, -2, "insert_rows");

  lua_pop(L, 2);
}

/* }====================================================================== */
