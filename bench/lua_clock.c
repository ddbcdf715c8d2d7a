/*
** lua_clock.c: the Lua module 'bench_clock', a monotonic wall clock for
** the benchmark's Lua peers.
**
** Lua itself has only 'os.clock', the CPU time of the process, which does
** not count the time spent waiting for a server; the benchmark reports
** wall-clock time for every peer, C and Lua alike.
*/
#include <time.h>

#include <lua.h>
#include <lauxlib.h>

/* The build hides symbols by default; Lua must find this one. */
__attribute__((visibility("default"))) int luaopen_bench_clock (lua_State *L);


/* now_ms() -> milliseconds on the monotonic clock, as a float */
static int now_ms (lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec * 1e3 + (lua_Number)ts.tv_nsec / 1e6);
  return 1;
}


int luaopen_bench_clock (lua_State *L) {
  static const luaL_Reg funcs[] = { { "now_ms", now_ms }, { NULL, NULL } };
  luaL_newlib(L, funcs);
  return 1;
}
