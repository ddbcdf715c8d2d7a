/*
** loam_main.c: the 'loam' command, a Lua 5.4 interpreter with loam built in.
**
** It runs Lua scripts the way the stand-alone 'lua' does (options '-e',
** '-l', '-v', '--', the global 'arg'), with 'loam.core' preloaded and
** loam's Lua files on 'package.path', so 'require "loam"' works without any
** setup and tools such as busted run under it unchanged.  The Lua files are
** those of the checkout when the program runs from its build tree, and the
** installed ones otherwise (see 'setpath').
**
** It is also the project's command line: a first argument that names a
** command (see 'is_command'), or any long option ('--help', '--version',
** '--db' ...), hands the whole command line to the Lua module 'loam.cli',
** which owns the commands, their help and their errors.  A bad interpreter
** option is handed over too, so every usage error reads the same.  The
** module 'loam.cli.host' gives the Lua side what plain Lua lacks: whether
** a descriptor is a terminal, the current directory, listing and making
** folders, line editing (GNU readline when the build found it), and the
** versions of the libraries this program runs with.
*/
#if !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#if !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700  /* 'realpath' */
#endif

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#if defined(LOAM_HAVE_READLINE)
#include <readline/history.h>
#include <readline/readline.h>
#endif

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#include "loam.h"
#include "loam_lua.h"


static const char *progname = "loam";

/* What the interpreter's options asked for, as found by 'collectargs'. */
#define HAS_E      1   /* -e */
#define HAS_L      2   /* -l */
#define HAS_V      4   /* -v */
#define BAD_ARGS  32


static void print_version (void) {
  printf("loam %s (Lua %s.%s)\n", LOAM_VERSION, LUA_VERSION_MAJOR, LUA_VERSION_MINOR);
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
** Scans the interpreter's options.  '*script' receives the index of the
** script in 'argv' ('argc' when there is none), or, on BAD_ARGS, of the
** option that is wrong.  Options are checked here, before anything runs,
** so a bad command line runs nothing at all.
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
      case '-':                   /* '--' ends the options; long ones are the CLI's */
        if (a[2] != '\0') return BAD_ARGS;
        *script = i + 1;
        return flags;
      case 'v':
        if (a[2] != '\0') return BAD_ARGS;
        flags |= HAS_V;
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


/* {==================================================================
** The command line: 'loam.cli' and what it needs from the host
** =================================================================== */

/*
** Whether the first argument 'a' goes to 'loam.cli' rather than to the
** interpreter: a long option ('--help', '--db=...'), '-h', or a word
** made of letters, digits, '-' and '_' that starts with a letter and is
** not the name of an existing file (a script called 'console' in the
** current directory still runs as a script; a folder is not a file, so
** 'loam models' in a project reaches the command).  A word that names no
** command is the CLI's to refuse, with a suggestion.
*/
static int is_command (const char *a) {
  const char *p;
  if (a[0] == '-')
    return (a[1] == '-' && a[2] != '\0') || strcmp(a, "-h") == 0;
  if (!((a[0] >= 'a' && a[0] <= 'z') || (a[0] >= 'A' && a[0] <= 'Z')))
    return 0;
  for (p = a; *p != '\0'; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '-' || *p == '_'))
      return 0;
  {
    struct stat st;
    return stat(a, &st) != 0 || S_ISDIR(st.st_mode);
  }
}


static int host_isatty (lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}


/* getcwd() -> the current directory, absolute. */
static int host_getcwd (lua_State *L) {
  char *dir = getcwd(NULL, 0);
  if (dir == NULL)
    return luaL_error(L, "cannot read the current directory: %s", strerror(errno));
  lua_pushstring(L, dir);
  free(dir);
  return 1;
}


/* dir(path) -> the names in directory 'path' ('.' and '..' left out), or nil, message. */
static int host_dir (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR *d = opendir(path);
  struct dirent *e;
  int n = 0;
  if (d == NULL) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  lua_newtable(L);
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    lua_pushstring(L, e->d_name);
    lua_rawseti(L, -2, ++n);
  }
  closedir(d);
  return 1;
}


/* mkdir(path) -> true, or nil, message (an existing directory included). */
static int host_mkdir (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (mkdir(path, 0777) != 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}


#if defined(LOAM_HAVE_READLINE)
/* readline(prompt) -> the line without its newline, or nil at the end of input. */
static int host_readline (lua_State *L) {
  const char *prompt = luaL_checkstring(L, 1);
  char *line;
  fflush(stdout);
  line = readline(prompt);
  if (line == NULL)
    return 0;
  lua_pushstring(L, line);
  free(line);
  return 1;
}


static int host_add_history (lua_State *L) {
  add_history(luaL_checkstring(L, 1));
  return 0;
}
#endif


/*
** The module 'loam.cli.host': 'isatty(fd)', 'getcwd()', 'dir(path)',
** 'mkdir(path)', 'versions' (the libraries this program runs with; SQLite
** and libpq are asked at run time, since the shared libraries may be newer
** than the headers it was built with), and, when built with GNU readline,
** 'readline(prompt)' and 'add_history(line)'.
*/
static int open_host (lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"isatty", host_isatty},
    {"getcwd", host_getcwd},
    {"dir", host_dir},
    {"mkdir", host_mkdir},
    {NULL, NULL}
  };
  int pq = PQlibVersion();
  luaL_newlib(L, funcs);
  lua_pushfstring(L, "%s, SQLite %s, libpq %d.%d", LUA_RELEASE, sqlite3_libversion(),
                  pq / 10000, pq % 10000);
  lua_setfield(L, -2, "versions");
#if defined(LOAM_HAVE_READLINE)
  lua_pushcfunction(L, host_readline);
  lua_setfield(L, -2, "readline");
  lua_pushcfunction(L, host_add_history);
  lua_setfield(L, -2, "add_history");
#endif
  return 1;
}


/*
** Runs 'require("loam.cli").main' on the 'n' words at 'words' and leaves
** the exit status it returns on the stack.  The CLI reports its own
** errors; what reaches 'report' here is a CLI that cannot even load (a
** LUA_PATH that leads elsewhere, say).
*/
static int runcli (lua_State *L, int n, char **words) {
  int i;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "loam.cli");
  if (report(L, docall(L, 1, 1)) != LUA_OK)
    return EXIT_FAILURE;
  lua_getfield(L, -1, "main");
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    lua_pushstring(L, words[i]);
    lua_rawseti(L, -2, i + 1);
  }
  if (report(L, docall(L, 1, 1)) != LUA_OK)
    return EXIT_FAILURE;
  return (int)luaL_optinteger(L, -1, EXIT_SUCCESS);
}

/* }================================================================== */


/*
** The body of the program, run in protected mode; leaves the exit status
** on the stack.
*/
static int pmain (lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  int script = 0;
  int command = argc > 1 && is_command(argv[1]);
  int flags = command ? 0 : collectargs(argc, argv, &script);
  luaL_checkversion(L);
  luaL_openlibs(L);
  loam_lua_open(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, open_host);
  lua_setfield(L, -2, "loam.cli.host");
  lua_pop(L, 1);
  setpath(L);
  if (command) {
    lua_pushinteger(L, runcli(L, argc - 1, argv + 1));
    return 1;
  }
  if (flags == BAD_ARGS) {  /* the CLI names the option and prints the usage */
    lua_pushinteger(L, runcli(L, 1, argv + script));
    return 1;
  }
  lua_pushinteger(L, EXIT_FAILURE);  /* the status of every early return below */
  if (flags & HAS_V)
    print_version();
  createargtable(L, argv, argc, script);
  if (!runargs(L, argv, script))
    return 1;
  if (script < argc) {
    if (handle_script(L, argv + script) != LUA_OK)
      return 1;
  }
  else if (flags == 0) {  /* nothing to do but what stdin holds */
    if (isatty(STDIN_FILENO)) {  /* nobody typing a script: the usage */
      lua_pushinteger(L, runcli(L, 0, NULL));
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
