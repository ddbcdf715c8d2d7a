/*
** loam_main.c: the 'loam' command, a Lua 5.4 interpreter with loam built in.
**
** It runs Lua scripts the way the stand-alone 'lua' does (options '-e',
** '-l', '-v', '-h', '--', the global 'arg'), with 'loam.core' preloaded and
** loam's Lua files on 'package.path', so 'require "loam"' works without any
** setup and tools such as busted run under it unchanged.  The Lua files are
** those of the checkout when the program runs from its build tree, and the
** installed ones otherwise (see 'setpath').  Long options ('--help',
** '--version') are the command's own; anything else starting with '--' is
** refused with exit status 2, which leaves room for subcommands later.
** There is no interactive mode: without a script and with a terminal on
** stdin it prints its usage.
*/
#if !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#if !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700  /* 'realpath' */
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#include "loam.h"
#include "loam_lua.h"


static const char *progname = "loam";

/* What the options asked for, as found by 'collectargs'. */
#define HAS_E      1   /* -e */
#define HAS_L      2   /* -l */
#define HAS_V      4   /* -v */
#define HAS_H      8   /* -h, --help */
#define HAS_VER   16   /* --version */
#define BAD_ARGS  32

/* Exit statuses: a usage error is told apart from a failed script. */
#define EXIT_USAGE 2


/* The long options: each sets a flag of 'collectargs'. */
static const struct {
  const char *name;
  int flag;
} longopts[] = {
  {"--help", HAS_H},
  {"--version", HAS_VER},
  {NULL, 0}
};


static void print_usage (FILE *f, const char *badoption) {
  if (badoption != NULL) {
    if (badoption[1] == 'e' || badoption[1] == 'l')
      fprintf(f, "%s: '%s' needs argument\n", progname, badoption);
    else
      fprintf(f, "%s: unrecognized option '%s'\n", progname, badoption);
  }
  fprintf(f,
    "usage: %s [options] [script [args]]\n"
    "Runs a Lua %s.%s script with loam built in (require \"loam\").\n"
    "Available options are:\n"
    "  -e stat      execute string 'stat'\n"
    "  -l mod       require library 'mod' into global 'mod'\n"
    "  -l g=mod     require library 'mod' into global 'g'\n"
    "  -v           show version information\n"
    "  -h, --help   show this help\n"
    "  --version    show the versions of loam, Lua, SQLite and libpq\n"
    "  --           stop handling options\n"
    "  -            execute stdin and stop handling options\n",
    progname, LUA_VERSION_MAJOR, LUA_VERSION_MINOR);
  fflush(f);
}


static void print_version (void) {
  printf("loam %s (Lua %s.%s)\n", LOAM_VERSION, LUA_VERSION_MAJOR, LUA_VERSION_MINOR);
  fflush(stdout);
}


/*
** '--version': loam's version, then those of the libraries this program
** runs with.  SQLite and libpq are asked at run time, since the shared
** libraries may be newer than the headers the program was built with.
*/
static void print_versions (void) {
  int pq = PQlibVersion();
  printf("loam %s\n", LOAM_VERSION);
  printf("%s, SQLite %s, libpq %d.%d\n", LUA_RELEASE, sqlite3_libversion(), pq / 10000,
         pq % 10000);
  fflush(stdout);
}


static void l_message (const char *msg) {
  fprintf(stderr, "%s: %s\n", progname, msg);
  fflush(stderr);
}


/* Prints the error on top of the stack, if 'status' says there is one. */
static int report (lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    l_message(msg != NULL ? msg : "(error object is not a string)");
    lua_pop(L, 1);
  }
  return status;
}


/*
** The message handler of every call: turns the error into a string (error
** objects such as loam's through their '__tostring') and appends a
** traceback, which is what a script's author needs to find the line.
*/
static int msghandler (lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}


/* Calls the function below 'narg' arguments with the message handler. */
static int docall (lua_State *L, int narg, int nres) {
  int status;
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  status = lua_pcall(L, narg, nres, base);
  lua_remove(L, base);
  return status;
}


static int dochunk (lua_State *L, int status) {
  if (status == LUA_OK)
    status = docall(L, 0, 0);
  return report(L, status);
}


static int dostring (lua_State *L, const char *s, const char *name) {
  return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}


/* -l mod or -l g=mod: 'require' the module and store it in a global. */
static int dolibrary (lua_State *L, const char *spec) {
  const char *eq = strchr(spec, '=');
  const char *modname = (eq != NULL) ? eq + 1 : spec;
  size_t globlen = (eq != NULL) ? (size_t)(eq - spec) : strlen(spec);
  int status;
  lua_getglobal(L, "require");
  lua_pushstring(L, modname);
  status = docall(L, 1, 1);
  if (status == LUA_OK) {
    lua_pushlstring(L, spec, globlen);
    lua_insert(L, -2);
    lua_setglobal(L, lua_tostring(L, -2));
    lua_pop(L, 1);
  }
  return report(L, status);
}


/*
** Scans the options.  '*script' receives the index of the script in
** 'argv' ('argc' when there is none).  Options are checked here, before
** anything runs, so a bad command line runs nothing at all.
*/
static int collectargs (int argc, char **argv, int *script /* OUT */) {
  int flags = 0, i;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    *script = i;
    if (a[0] != '-')              /* not an option: the script */
      return flags;
    switch (a[1]) {
      case '\0':                  /* '-': stdin is the script */
        return flags;
      case '-': {                 /* '--' ends the options, or a long option */
        int k;
        if (a[2] == '\0') {
          *script = i + 1;
          return flags;
        }
        for (k = 0; longopts[k].name != NULL; k++)
          if (strcmp(a, longopts[k].name) == 0) break;
        if (longopts[k].name == NULL) return BAD_ARGS;
        flags |= longopts[k].flag;
        break;
      }
      case 'v':
      case 'h':
        if (a[2] != '\0') return BAD_ARGS;
        flags |= (a[1] == 'v') ? HAS_V : HAS_H;
        break;
      case 'e':
      case 'l':
        flags |= (a[1] == 'e') ? HAS_E : HAS_L;
        if (a[2] == '\0') {       /* argument in the next word */
          i++;
          if (i >= argc || argv[i][0] == '-') {
            *script = i - 1;
            return BAD_ARGS;
          }
        }
        break;
      default:
        return BAD_ARGS;
    }
  }
  *script = argc;
  return flags;
}


/* Runs '-e' and '-l' in command-line order; returns 0 at the first failure. */
static int runargs (lua_State *L, char **argv, int n) {
  int i;
  for (i = 1; i < n; i++) {
    int opt = argv[i][1];
    if (opt == 'e' || opt == 'l') {
      const char *extra = argv[i] + 2;
      int status;
      if (*extra == '\0')
        extra = argv[++i];
      status = (opt == 'e') ? dostring(L, extra, "=(command line)") : dolibrary(L, extra);
      if (status != LUA_OK)
        return 0;
    }
  }
  return 1;
}


/*
** Builds the global 'arg' as 'lua' does: the script at index 0, its
** arguments at 1..n, the interpreter and its options at negative indices.
** Without a script the interpreter is at 0.
*/
static void createargtable (lua_State *L, char **argv, int argc, int script) {
  int i, narg;
  if (script == argc)
    script = 0;
  narg = argc - (script + 1);
  lua_createtable(L, narg > 0 ? narg : 0, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}


/* Runs the script at 'argv[0]' with the positive entries of 'arg' as arguments. */
static int handle_script (lua_State *L, char **argv) {
  const char *fname = argv[0];
  int status;
  if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0)
    fname = NULL;  /* stdin */
  status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    int n, i;
    if (lua_getglobal(L, "arg") != LUA_TTABLE)
      luaL_error(L, "'arg' is not a table");
    n = (int)luaL_len(L, -1);
    luaL_checkstack(L, n + 3, "too many arguments to script");
    for (i = 1; i <= n; i++)
      lua_rawgeti(L, -i, i);
    lua_remove(L, -i);
    status = docall(L, n, LUA_MULTRET);
  }
  return report(L, status);
}


/* Whether 'path' names a file this process can read. */
static int readable (const char *path) {
  return access(path, R_OK) == 0;
}


/*
** Pushes the directory that holds this program, found through
** '/proc/self/exe' with every symbolic link resolved (a link to the
** program in another directory must find the same files), or nil where
** that cannot be known.
*/
static void pushexedir (lua_State *L) {
  char *exe = realpath("/proc/self/exe", NULL);
  char *slash = (exe != NULL) ? strrchr(exe, '/') : NULL;
  if (slash == NULL)
    lua_pushnil(L);
  else
    lua_pushlstring(L, exe, (size_t)(slash - exe));
  free(exe);
}


/*
** Pushes the directory of loam's Lua files for this program:
**  - run from a build tree, the checkout's 'lua/' ('LOAM_BUILD_TO_SRC' is
**    the way from the build's 'bin/' to the checkout, recognised by its
**    own sources), so a fresh checkout works without installing;
**  - installed, 'LOAM_BIN_TO_LUADIR' from the program's directory, so an
**    installation moved as a whole (a DESTDIR staging tree) still finds
**    its files;
**  - otherwise the LUADIR the program was built for.
*/
static void pushluadir (lua_State *L) {
  int top = lua_gettop(L);
  const char *dir;
  pushexedir(L);
  dir = lua_tostring(L, -1);
  if (dir != NULL) {
    const char *src = lua_pushfstring(L, "%s/%s", dir, LOAM_BUILD_TO_SRC);
    const char *inst = lua_pushfstring(L, "%s/%s", dir, LOAM_BIN_TO_LUADIR);
    if (readable(lua_pushfstring(L, "%s/bindings/loam_main.c", src)) &&
        readable(lua_pushfstring(L, "%s/lua/loam/init.lua", src)))
      lua_pushfstring(L, "%s/lua", src);
    else if (readable(lua_pushfstring(L, "%s/loam/init.lua", inst)))
      lua_pushstring(L, inst);
    else
      lua_pushstring(L, LOAM_LUADIR);
  }
  else
    lua_pushstring(L, LOAM_LUADIR);
  lua_replace(L, top + 1);  /* the answer takes the place of the program's directory */
  lua_settop(L, top + 1);
}


/*
** Puts loam's Lua directory in front of the default path.  A path set
** through LUA_PATH_5_4 or LUA_PATH is the user's choice and is left alone.
*/
static void setpath (lua_State *L) {
  const char *dir;
  if (getenv("LUA_PATH" LUA_VERSUFFIX) != NULL || getenv("LUA_PATH") != NULL)
    return;
  pushluadir(L);
  dir = lua_tostring(L, -1);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir, lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 3);
}


/*
** The body of the program, run in protected mode; leaves the exit status
** on the stack.
*/
static int pmain (lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  int script;
  int flags = collectargs(argc, argv, &script);
  luaL_checkversion(L);
  if (flags == BAD_ARGS) {
    print_usage(stderr, argv[script]);
    lua_pushinteger(L, EXIT_USAGE);
    return 1;
  }
  if (flags & (HAS_H | HAS_VER)) {
    if (flags & HAS_H)
      print_usage(stdout, NULL);
    else
      print_versions();
    lua_pushinteger(L, EXIT_SUCCESS);
    return 1;
  }
  lua_pushinteger(L, EXIT_FAILURE);  /* the status of every early return below */
  if (flags & HAS_V)
    print_version();
  luaL_openlibs(L);
  loam_lua_open(L);
  setpath(L);
  createargtable(L, argv, argc, script);
  if (!runargs(L, argv, script))
    return 1;
  if (script < argc) {
    if (handle_script(L, argv + script) != LUA_OK)
      return 1;
  }
  else if (flags == 0) {  /* nothing to do but what stdin holds */
    if (isatty(STDIN_FILENO)) {
      print_usage(stderr, NULL);
      lua_pushinteger(L, EXIT_USAGE);
      return 1;
    }
    if (dochunk(L, luaL_loadfile(L, NULL)) != LUA_OK)
      return 1;
  }
  lua_pushinteger(L, EXIT_SUCCESS);
  return 1;
}


int main (int argc, char **argv) {
  int status, result;
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    l_message("cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  status = lua_pcall(L, 2, 1, 0);
  result = (status == LUA_OK) ? (int)lua_tointeger(L, -1) : EXIT_FAILURE;
  report(L, status);
  lua_close(L);
  return result;
}
