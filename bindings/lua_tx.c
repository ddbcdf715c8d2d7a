/*
** lua_tx.c: 'conn:transaction(fn, ...)', and the transaction guard that
** it and 'conn:run' share.
**
** A guard is a to-be-closed userdata holding one level of the core's
** transactions ('loam_tx_begin').  Whatever raises while the level is open
** (the caller's function, a failed statement, a query hook, a memory
** error) unwinds through the guard's '__close', which rolls the level
** back, so no path leaves it open.  The guard keeps its 'loam.Conn' as a
** user value, not the core handle, since the connection may be closed
** under it; the level then ended with the connection.
*/
#include "lua.h"
#include "lauxlib.h"

#include "loam.h"
#include "lua_loam_int.h"


#define TX_T  "loam.Tx"

typedef struct Tx {
  int open;   /* the level is open: '__close' rolls it back */
} Tx;


/*
** Rolls the level of the guard at 'idx' back, if still open.  Only on
** paths that raise an error already, so an error of its own is dropped:
** the caller sees the error that made it roll back.
*/
static void rollback (lua_State *L, int idx) {
  Tx *tx = (Tx *)luaL_checkudata(L, idx, TX_T);
  loam_conn *conn;
  loam_error err = LOAM_ERROR_INIT;
  if (!tx->open) return;
  tx->open = 0;
  lua_getiuservalue(L, idx, 1);
  conn = loamL_toconn(L, -1);
  lua_pop(L, 1);
  if (conn == NULL) return;
  loam_tx_rollback(conn, &err);
  loam_error_clear(&err);
  loamL_trace_flush_failing(L);
}


static int tx_close (lua_State *L) {
  rollback(L, 1);
  return 0;
}


int loamL_txbegin (lua_State *L) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *conn = loamL_checkconn(L);
  /* The guard exists before the level, so no raise can come between them. */
  Tx *tx = (Tx *)lua_newuserdatauv(L, sizeof(Tx), 1);
  int idx = lua_gettop(L);
  tx->open = 0;
  luaL_setmetatable(L, TX_T);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, idx, 1);
  lua_toclose(L, idx);
  if (loam_tx_begin(conn, &err) != LOAM_OK)
    return loamL_raise(L, &err, NULL);
  tx->open = 1;
  loamL_trace_flush(L);
  return idx;
}


void loamL_txcommit (lua_State *L, int idx) {
  Tx *tx = (Tx *)luaL_checkudata(L, idx, TX_T);
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *conn;
  lua_getiuservalue(L, idx, 1);
  conn = loamL_toconn(L, -1);
  lua_pop(L, 1);
  if (conn == NULL) {
    tx->open = 0;
    loamL_misuse(L, "the connection was closed inside the transaction; nothing was committed");
  }
  if (loam_tx_commit(conn, &err) != LOAM_OK) {
    loam_error rberr = LOAM_ERROR_INIT;
    /* The level stays open after a failed commit: end it before raising. */
    tx->open = 0;
    loam_tx_rollback(conn, &rberr);
    loam_error_clear(&rberr);
    loamL_raise(L, &err, NULL);
  }
  tx->open = 0;
  loamL_trace_flush(L);
}


/*
** conn:transaction(fn, ...): calls 'fn(...)' inside a transaction (a
** savepoint when one is open already) and returns what it returns, once
** committed.  When 'fn' raises, the level is rolled back and the same
** error value is raised again, unchanged; should the rollback itself fail,
** its error is dropped (the first error is the one that explains what
** happened, and the level is closed either way).  'fn' runs under a C
** 'pcall', so it cannot yield.
*/
static int conn_transaction (lua_State *L) {
  int nargs = lua_gettop(L) - 2, guard, i;
  loamL_checkconn(L);
  if (lua_type(L, 2) != LUA_TFUNCTION)
    loamL_misuse(L, "transaction: expects a function, got a %s", luaL_typename(L, 2));
  guard = loamL_txbegin(L);
  luaL_checkstack(L, nargs + LUA_MINSTACK, "too many arguments");
  for (i = 2; i <= nargs + 2; i++) lua_pushvalue(L, i);
  if (lua_pcall(L, nargs, LUA_MULTRET, 0) != LUA_OK) {
    rollback(L, guard);
    return lua_error(L);
  }
  loamL_txcommit(L, guard);
  return lua_gettop(L) - guard;
}


void loamL_open_tx (lua_State *L) {
  static const luaL_Reg metameth[] = {
    {"__close", tx_close},
    {NULL, NULL}
  };
  if (luaL_newmetatable(L, TX_T)) luaL_setfuncs(L, metameth, 0);
  lua_pop(L, 1);
  lua_getfield(L, -1, "Conn");  /* a transaction needs a connection: a method only */
  lua_pushcfunction(L, conn_transaction);
  lua_setfield(L, -2, "transaction");
  lua_pop(L, 1);
}
