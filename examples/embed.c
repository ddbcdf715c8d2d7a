/*
** embed.c: a C program that uses libloam directly and also runs Lua with
** loam inside its own interpreter.
**
** Build against an installed loam (loam-lua adds the Lua binding to libloam):
**   cc embed.c $(pkg-config --cflags --libs loam-lua) -o embed
** Run:  ./embed sqlite:embed.db
*/
#include <stdio.h>
#include <stdlib.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "loam.h"
#include "loam_lua.h"


static int fail (const char *what, loam_error *err) {
  fprintf(stderr, "%s: %s: %s\n", what, loam_errcode_name(err->code), err->message);
  loam_error_clear(err);
  return EXIT_FAILURE;
}


/* The C side: bound parameters, typed columns, one error structure. */
static int use_c_api (const char *url) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *db = NULL;
  loam_stmt *st = NULL;
  loam_value params[2];
  int64_t id;
  int rc;
  if (loam_connect(url, NULL, &db, &err) != LOAM_OK) return fail("connect", &err);
  if (loam_exec(db, "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL,"
                    " pinned BOOLEAN NOT NULL DEFAULT FALSE)", NULL, 0, NULL, NULL, NULL,
                &err) != LOAM_OK)
    goto failed;
  params[0] = loam_text("written from C", 14);
  params[1] = loam_bool(1);
  if (loam_exec(db, "INSERT INTO notes (body, pinned) VALUES (?, ?) RETURNING id", params, 2,
                NULL, &id, NULL, &err) != LOAM_OK)
    goto failed;
  printf("C inserted note %lld\n", (long long)id);
  params[0] = loam_int(id);
  if (loam_query(db, "SELECT id, body, pinned FROM notes WHERE id = ?", params, 1, 0, &st,
                 &err) != LOAM_OK)
    goto failed;
  while ((rc = loam_step(st, &err)) == LOAM_ROW) {
    loam_value idv, body, pinned;
    loam_column(st, 0, &idv);
    loam_column(st, 1, &body);
    loam_column(st, 2, &pinned);
    printf("C read note %lld: %s (pinned: %s)\n", (long long)idv.u.i, body.u.s.ptr,
           pinned.u.b ? "yes" : "no");
  }
  loam_stmt_close(st);
  if (rc != LOAM_DONE) goto failed;
  loam_conn_close(db);
  return EXIT_SUCCESS;
failed:
  loam_conn_close(db);
  return fail("query", &err);
}


static const char script[] =
  "local loam = require 'loam.core'\n"
  "local db <close> = loam.connect(...)\n"
  "for row in db:each('SELECT id, body FROM notes ORDER BY id DESC LIMIT 3') do\n"
  "  print(('Lua read note %d: %s'):format(row.id, row.body))\n"
  "end\n";


/* The Lua side: the host's own interpreter, with loam preloaded. */
static int use_lua (const char *url) {
  lua_State *L = luaL_newstate();
  int ok;
  if (L == NULL) return EXIT_FAILURE;
  luaL_openlibs(L);
  loam_lua_open(L);
  ok = luaL_loadstring(L, script) == LUA_OK;
  if (ok) {
    lua_pushstring(L, url);
    ok = lua_pcall(L, 1, 0, 0) == LUA_OK;
  }
  if (!ok) fprintf(stderr, "lua: %s\n", luaL_tolstring(L, -1, NULL));
  lua_close(L);
  return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}


int main (int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "sqlite:embed.db";
  if (use_c_api(url) != EXIT_SUCCESS) return EXIT_FAILURE;
  return use_lua(url);
}
