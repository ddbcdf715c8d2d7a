/*
** fuzz/lua_ast.c: the binding's readers of statement tables on any table.
**
** The query AST that 'db:run' and 'render' take, and the DDL AST of
** 'render_ddl', are Lua tables read by C (bindings/lua_ast.c,
** bindings/lua_schema.c).  Here a small stack machine turns the input into
** Lua values: tables, strings from the vocabulary of the ASTs ("k",
** "select", "where", "op", "=", ...) or from the input, integers, floats
** (NaN, infinities and -0.0 among them), booleans, loam.null, blobs,
** fields and array items, and tables that hold themselves.  The first
** table built is run with 'db:run' on an in-memory SQLite database with
** tables "t" and "u", rendered for PostgreSQL (both with a 'max_params'
** from the input, so chunking runs), and rendered as DDL, each in a fresh
** Lua state closed afterwards.  An error object (misuse, or whatever
** SQLite reports) is an answer; a crash, a leak, undefined behaviour, a
** raise that is not an error object, or an error object without a code
** and a message is not.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#include "loam_lua.h"
#include "lua_loam_int.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static const char *const WORDS[] = {
  /* statement and expression kinds */
  "k", "select", "insert", "update", "delete", "col", "star", "val", "raw", "op", "and", "or",
  "not", "null", "between", "in", "agg", "alias", "excluded", "row_number",
  /* fields */
  "from", "name", "as", "table", "columns", "joins", "kind", "on", "where", "group", "having",
  "order", "expr", "desc", "nulls", "limit", "offset", "lock", "mode", "query", "into", "rows",
  "conflict", "action", "target", "set", "returning", "list", "exprs", "tuples", "negate", "lo",
  "hi", "fn", "distinct", "v", "sql", "params", "partition", "skip_locked", "nowait", "l", "r",
  /* choices */
  "inner", "left", "first", "last", "update", "share", "nothing", "=", "<>", "<", "LIKE", "+",
  "||", "count", "sum", "max", "avg",
  /* names and raw SQL */
  "t", "u", "id", "a", "b", "x = ?", "? + ?", "doc ?? ?", "'?' = ?", "a = ?; DROP TABLE t",
  "$1", "?1",
  /* DDL */
  "create_table", "create_index", "drop_table", "type", "integer", "bigint", "text", "float",
  "numeric", "boolean", "date", "timestamp", "json", "blob", "enum", "values", "primary_key",
  "unique", "uniques", "references", "column", "on_delete", "on_update", "cascade", "restrict",
  "default", "checks", "if_exists", "if_not_exists", "length", "precision", "scale",
  "statement",
};
#define NWORDS (sizeof WORDS / sizeof WORDS[0])

/* Bounds that keep one input cheap; the readers' own limits are far above. */
#define MAX_STACK 64
#define MAX_OPS   2048


typedef struct input {
  const uint8_t *p, *end;
} input;

static int more (const input *in) { return in->p < in->end; }
static unsigned byte (input *in) { return more(in) ? *in->p++ : 0; }


/* Builds values on the stack above 'base' from the input; the first table is at 'base' + 1. */
static void build (lua_State *L, input *in, int base) {
  int ops = 0;
  luaL_checkstack(L, MAX_STACK + 8, "fuzz stack");
  lua_newtable(L);  /* the root, so there is always a table to render */
  while (more(in) && ops++ < MAX_OPS) {
    unsigned op = byte(in), arg;
    int top = lua_gettop(L) - base;
    if (top >= MAX_STACK && op % 16 < 10) continue;
    switch (op % 16) {
      case 0: case 1: case 2:
        lua_pushstring(L, WORDS[byte(in) % NWORDS]);
        break;
      case 3:
        lua_newtable(L);
        break;
      case 4: {
        static const lua_Integer special[] = { 0, 1, -1, 2, 100, LUA_MININTEGER, LUA_MAXINTEGER,
                                               2147483647, 2147483648LL, 65536 };
        arg = byte(in);  /* -128 to -119 pick a special value, the others are themselves */
        if (arg >= 0x80 && arg < 0x8a) lua_pushinteger(L, special[arg - 0x80]);
        else lua_pushinteger(L, (lua_Integer)(int8_t)arg);
        break;
      }
      case 5: {
        static const double special[] = { 0.5, -0.0, 1e300, -2.5, 3.0, 1e-320 };
        arg = byte(in) % 9;
        if (arg < 6) lua_pushnumber(L, special[arg]);
        else if (arg == 6) lua_pushnumber(L, (double)NAN);
        else lua_pushnumber(L, arg == 7 ? (double)INFINITY : -(double)INFINITY);
        break;
      }
      case 6:
        lua_pushboolean(L, byte(in) & 1);
        break;
      case 7:
        loamL_pushnull(L);
        break;
      case 8: {  /* a string from the input, NUL bytes and all */
        size_t n = byte(in) % 24;
        if ((size_t)(in->end - in->p) < n) n = (size_t)(in->end - in->p);
        lua_pushlstring(L, (const char *)in->p, n);
        in->p += n;
        if (byte(in) & 1) {  /* as a blob */
          loamL_pushblob(L, -1);
          lua_remove(L, -2);
        }
        break;
      }
      case 9:  /* a copy of a value below (a table may so hold itself) */
        if (top > 0) lua_pushvalue(L, base + 1 + (int)(byte(in) % (unsigned)top));
        break;
      case 10: case 11: case 12:  /* t[k] = v with t, k, v on top */
        if (top >= 3 && lua_type(L, -3) == LUA_TTABLE && !lua_isnil(L, -2) &&
            !(lua_type(L, -2) == LUA_TNUMBER && lua_tonumber(L, -2) != lua_tonumber(L, -2)))
          lua_rawset(L, -3);
        else if (top >= 2) lua_pop(L, 2);
        break;
      case 13: case 14:  /* t[#t + 1] = v with t, v on top */
        if (top >= 2 && lua_type(L, -2) == LUA_TTABLE)
          lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        else if (top >= 1) lua_pop(L, 1);
        break;
      default:  /* a value set into the table below it, under a word: { k = v } */
        if (top >= 2 && lua_type(L, -2) == LUA_TTABLE) {
          lua_setfield(L, -2, WORDS[byte(in) % NWORDS]);
        }
        else if (top >= 1) lua_pop(L, 1);
        break;
    }
  }
}


/* The error a render raised: a loam error object with a code and a message. */
static void check_error (lua_State *L, int status) {
  const char *code, *msg;
  if (status == LUA_ERRMEM) return;
  if (status != LUA_ERRRUN || lua_type(L, -1) != LUA_TTABLE) {
    fprintf(stderr, "lua_ast: a raise that is not an error object: %s\n",
            luaL_tolstring(L, -1, NULL));
    abort();
  }
  lua_getfield(L, -1, "code");
  lua_getfield(L, -2, "message");
  code = lua_tostring(L, -2);
  msg = lua_tostring(L, -1);
  if (code == NULL || msg == NULL || msg[0] == '\0') {
    fprintf(stderr, "lua_ast: an error object without a code or a message\n");
    abort();
  }
  lua_pop(L, 2);
}


/* Calls the function below its 'nargs' arguments on top; a failure here is the harness's. */
static void must (lua_State *L, int nargs, int nresults) {
  if (lua_pcall(L, nargs, nresults, 0) != LUA_OK) {
    fprintf(stderr, "lua_ast: setup failed: %s\n", luaL_tolstring(L, -1, NULL));
    abort();
  }
}


/* Runs a SQL statement on the connection at 'conn'. */
static void exec (lua_State *L, int conn, const char *sql) {
  lua_getfield(L, conn, "exec");
  lua_pushvalue(L, conn);
  lua_pushstring(L, sql);
  must(L, 2, 0);
}


/*
** Runs one function on the AST built from 'data': 'render' or
** 'render_ddl' of the module for 'dialect', or with 'dialect' NULL
** 'db:run' on an in-memory SQLite database that has the tables the
** vocabulary names, so statements that render also run.
*/
static void run (const uint8_t *data, size_t size, const char *fn, const char *dialect,
                 int maxp) {
  lua_State *L = luaL_newstate();
  input in;
  int base, status;
  if (L == NULL) return;
  luaL_openlibs(L);
  luaL_requiref(L, "loam.core", luaopen_loam_core, 0);
  if (dialect == NULL) {
    int conn;
    lua_getfield(L, -1, "connect");
    lua_pushliteral(L, "sqlite::memory:");
    must(L, 1, 1);
    conn = lua_gettop(L);
    /* A statement may ask for much (a huge blob); SQLite then says 'nomem'. */
    exec(L, conn, "PRAGMA hard_heap_limit = 268435456");
    exec(L, conn, "CREATE TABLE t (id INTEGER PRIMARY KEY, a, b, name, note)");
    exec(L, conn, "CREATE TABLE u (id INTEGER PRIMARY KEY, a, b, t INTEGER REFERENCES t)");
    lua_getfield(L, conn, fn);
    lua_pushvalue(L, conn);
  }
  else {
    lua_getfield(L, -1, fn);
    lua_pushstring(L, dialect);
  }
  base = lua_gettop(L);
  in.p = data;
  in.end = data + size;
  build(L, &in, base);
  lua_settop(L, base + 1);  /* the first table built */
  if (maxp > 0) {
    lua_createtable(L, 0, 1);
    lua_pushinteger(L, maxp);
    lua_setfield(L, -2, "max_params");
  }
  status = lua_pcall(L, maxp > 0 ? 3 : 2, 1, 0);
  if (status != LUA_OK) check_error(L, status);
  else if (lua_type(L, -1) != LUA_TTABLE && lua_type(L, -1) != LUA_TSTRING &&
           lua_type(L, -1) != LUA_TNUMBER) {
    fprintf(stderr, "lua_ast: %s returned a %s\n", fn, luaL_typename(L, -1));
    abort();
  }
  lua_close(L);
}


int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  int maxp;
  if (size < 1) return 0;
  maxp = data[0] & 7;  /* 0: no option; else small limits that split rows into chunks */
  run(data + 1, size - 1, "run", NULL, maxp);
  run(data + 1, size - 1, "render", "postgres", maxp);
  run(data + 1, size - 1, "render_ddl", (data[0] & 8) ? "postgres" : "sqlite", 0);
  return 0;
}
