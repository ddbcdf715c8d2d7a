/*
** loam_lua.h: embedding the loam Lua module in a host program.
**
** A C program that runs its own Lua 5.4 state calls 'loam_lua_open' once,
** after 'luaL_openlibs'.  It registers the C module 'loam.core' in
** 'package.preload', so scripts can 'require "loam.core"', and 'require
** "loam"' finds the pure Lua layer (lua/loam/init.lua) through
** 'package.path' as usual.  The host needs no shared library on
** 'package.cpath'.
**
** Ownership: the module keeps no process-wide state but the core's pools
** (one per URL, 'loam_pool_open'), which every state of the process shares:
** a Database over a pool, in any state and thread, uses the same
** connections, each checked out by one thread at a time.  Everything it creates
** (metatables, the NULL sentinel, connections, statements) lives in the
** given 'lua_State' and belongs to its garbage collector; 'lua_close'
** finalizes every connection and statement still open.  A 'lua_State' and
** the connections opened from it must be used by one thread at a time.
*/
#ifndef LOAM_LUA_H
#define LOAM_LUA_H

#include "lua.h"

#if defined(__GNUC__)
#define LOAM_LUA_API __attribute__((visibility("default"))) extern
#else
#define LOAM_LUA_API extern
#endif

/*
** Preloads 'loam.core' into the state's 'package.preload'.  Like any Lua
** API call it may raise a memory error; call it from a protected function.
*/
LOAM_LUA_API void loam_lua_open (lua_State *L);

/* The module opener 'require' calls; returns the module table. */
LOAM_LUA_API int luaopen_loam_core (lua_State *L);

#endif
