/*
** lua_migrate.c: migrations from Lua.  The op tables of migration files
** (lua/loam/migrate/ops.lua makes them; their fields mirror 'loam_op')
** become the core's operations, and the migrations read from files are
** handed to the core's runner:
**
**   core.migrate_up(conn, migs [, opts]) -> applied
**   core.migrate_down(conn, migs, steps [, opts]) -> reverted
**   core.migrate_status(conn, migs) -> { { version, name, state, ... }, ... }
**   core.migration_sql(conn, mig, "up" | "down" [, touched]) -> { sql | plan, ... }, outside_tx
**   core.op_irreversible(op) -> nil | why
**   core.migration_checksum(source) -> 16 hex digits
**
** 'opts' holds the fields of 'loam_migrate_opts' by name, and 'progress',
** a function called after each batch of a backfill as progress(version,
** step, table, rows, batches).
**
** 'migs' is an array of migrations as loam.migrate.file reads them:
** { version, name, parents, source, up = { ops }, down = { ops } | nil }.
** A migration without 'down' has it derived by the core ('loam_op_inverse'
** of each operation of 'up', last first); one whose operations cannot be
** undone is still applied, but reverting it is refused, naming the step
** and why, before anything runs.  A migration runs outside a transaction,
** step by step, when an operation of the direction it runs in needs it
** (CONCURRENTLY on PostgreSQL): up and down alike.
**
** The conversion reads the op tables as strictly as lua_schema.c reads DDL
** ASTs, with its readers; what it allocates lives in userdata anchored in
** one table on the stack, and the strings stay in the op tables, so an
** error raised anywhere leaks nothing.
*/
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#include "loam.h"
#include "lua_loam_int.h"


/* Operation names, in the order of 'loam_op_kind' from 1. */
static const char *const opkinds[] = {
  "create_table", "drop_table", "rename_table", "add_column", "drop_column", "rename_column",
  "alter_column", "add_index", "drop_index", "add_foreign_key", "validate_foreign_key",
  "drop_foreign_key", "add_check", "drop_check", "execute", "backfill", "add_unique",
  "drop_unique", NULL
};

static const char *const op_fields[] = {
  "op", "at", "table", "name", "new_name", "def", "column", "before", "alter", "index",
  "concurrently", "columns", "ref_table", "ref_columns", "on_delete", "on_update",
  "not_valid", "sql", "params", "down_sql", "set", "set_sql", "where", "where_sql", "key",
  "batch", "pause_ms", NULL
};


/* A migration as converted: the core's struct and why its down cannot be derived. */
typedef struct Mig {
  loam_migration m;
  const char *irreversible;    /* NULL, or "step N (kind): why" */
} Mig;


/* Pushes a new anchor table and sets up 'c' to keep allocations in it. */
static void newanchor (lua_State *L, loamL_AST *c) {
  luaL_checkstack(L, 16, "migrations");
  lua_newtable(L);
  c->L = L;
  c->anchor = lua_gettop(L);
  c->n = 0;
}


/*
** The column table at t[k] into '*col'; 0 when absent.  A column that
** only changes its nullness may come without a type, which is then not
** rendered: it is read as text.
*/
static int tocolumn (loamL_AST *c, int t, const char *k, int typeless, loam_column_def *col) {
  lua_State *L = c->L;
  int top = lua_gettop(L);
  int ty = loamL_field(L, t, k);
  if (ty == LUA_TNIL) { lua_settop(L, top); return 0; }
  if (ty == LUA_TTABLE && typeless && loamL_field(L, top + 1, "type") == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);            /* a copy with a type, kept by the anchor */
    lua_pushnil(L);
    while (lua_next(L, top + 1) != 0) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, top + 2);
    }
    lua_pushliteral(L, "text");
    lua_setfield(L, top + 2, "type");
    lua_pushvalue(L, top + 2);
    lua_rawseti(L, c->anchor, ++c->n);
  }
  else lua_settop(L, top + 1);
  loamL_astcolumn(c, 1, col);
  lua_settop(L, top);
  return 1;
}


static int bystring (const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}


/*
** The items of a backfill's SET or WHERE into '*n' 'loam_assign's: the
** table t[k] of column = value pairs, by column name (so the SQL text is
** the same on every run), then the raw SQL at t[ksql] as one item without
** a column.  Strings stay in the op table.
*/
static const loam_assign *toassigns (loamL_AST *c, int t, const char *k, const char *ksql,
                                     const char *what, int *n) {
  lua_State *L = c->L;
  const char *raw = loamL_astsql(L, t, ksql, what, 0);
  const char **cols;
  loam_assign *a;
  int m = 0, i, pairs;
  *n = 0;
  if (loamL_field(L, t, k) == LUA_TNIL && raw == NULL) { lua_pop(L, 1); return NULL; }
  pairs = lua_gettop(L);
  if (lua_type(L, pairs) != LUA_TNIL && lua_type(L, pairs) != LUA_TTABLE)
    loamL_misuse(L, "%s: '%s' must be a table, not a %s", what, k, luaL_typename(L, pairs));
  if (lua_type(L, pairs) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, pairs) != 0) {
      m++;
      lua_pop(L, 1);
    }
  }
  if (m > INT_MAX / 4) loamL_misuse(L, "%s: too many items in '%s'", what, k);
  cols = (const char **)loamL_astalloc(c, (size_t)(m + 1) * sizeof *cols);
  a = (loam_assign *)loamL_astalloc(c, (size_t)(m + 1) * sizeof *a);
  m = 0;
  if (lua_type(L, pairs) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, pairs) != 0) {
      if (lua_type(L, -2) != LUA_TSTRING)
        loamL_misuse(L, "%s: '%s' takes column names as keys", what, k);
      cols[m++] = lua_tostring(L, -2);       /* kept by the table */
      lua_pop(L, 1);
    }
    qsort(cols, (size_t)m, sizeof *cols, bystring);
    for (i = 0; i < m; i++) {
      lua_getfield(L, pairs, cols[i]);
      a[i].column = cols[i];
      loamL_tovalue(L, -1, i + 1, &a[i].value);   /* strings stay in the table */
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  if (raw != NULL) a[m++].sql = raw;
  *n = m;
  return a;
}


/* t[k] as a non-negative int, 0 when absent. */
static int tocount (lua_State *L, int t, const char *k, const char *what) {
  lua_Integer v = 0;
  int isint = 0;
  if (loamL_field(L, t, k) != LUA_TNIL) {
    v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < 0 || v > INT_MAX)
      loamL_misuse(L, "%s: '%s' must be a non-negative integer", what, k);
  }
  lua_pop(L, 1);
  return (int)v;
}


/* The op table at 't' (absolute) into 'op'; 'what' names it in messages. */
static void toop (loamL_AST *c, int t, loam_op *op, const char *what) {
  lua_State *L = c->L;
  const char *s;
  int n;
  memset(op, 0, sizeof *op);
  if (lua_type(L, t) != LUA_TTABLE)
    loamL_misuse(L, "%s must be an operation table, not a %s", what, luaL_typename(L, t));
  s = loamL_astreqstring(L, t, "op", what);
  op->kind = (loam_op_kind)(loamL_astpick(L, s, opkinds, what, "operation") + 1);
  what = loamL_astkeep(c, "%s (%s)", what, s);
  loamL_astonly(L, t, op_fields, what);
  op->table = loamL_aststring(L, t, "table", what);
  op->name = loamL_aststring(L, t, "name", what);
  op->new_name = loamL_aststring(L, t, "new_name", what);
  if (loamL_field(L, t, "def") == LUA_TTABLE) {
    loam_table_def *def = (loam_table_def *)loamL_astalloc(c, sizeof *def);
    loamL_asttable(c, lua_gettop(L), def);
    op->def = def;
  }
  lua_pop(L, 1);
  if (loamL_field(L, t, "alter") == LUA_TTABLE) {
    static const char *const alter_fields[] = { "type", "null", "default", NULL };
    int a = lua_gettop(L);
    loamL_astonly(L, a, alter_fields, what);
    op->alter = (loamL_astbool(L, a, "type", what, 0) ? LOAM_ALTER_TYPE : 0)
              | (loamL_astbool(L, a, "null", what, 0) ? LOAM_ALTER_NULL : 0)
              | (loamL_astbool(L, a, "default", what, 0) ? LOAM_ALTER_DEFAULT : 0);
  }
  lua_pop(L, 1);
  tocolumn(c, t, "column", !(op->alter & LOAM_ALTER_TYPE), &op->column);
  tocolumn(c, t, "before", 0, &op->before);
  if (loamL_field(L, t, "index") == LUA_TTABLE) loamL_astindex(c, lua_gettop(L), &op->index);
  lua_pop(L, 1);
  op->concurrently = loamL_astbool(L, t, "concurrently", what, 0);
  op->not_valid = loamL_astbool(L, t, "not_valid", what, 0);
  op->columns = loamL_aststrings(c, t, "columns", what, 0, &op->ncolumns);
  op->ref_table = loamL_aststring(L, t, "ref_table", what);
  op->ref_columns = loamL_aststrings(c, t, "ref_columns", what, 0, &n);
  if (op->ref_columns != NULL && n != op->ncolumns)
    loamL_misuse(L, "%s: %d columns reference %d columns", what, op->ncolumns, n);
  if ((s = loamL_aststring(L, t, "on_delete", what)) != NULL)
    op->on_delete = (loam_fk_action)loamL_astpick(L, s, loamL_fkactions, what, "on_delete action");
  if ((s = loamL_aststring(L, t, "on_update", what)) != NULL)
    op->on_update = (loam_fk_action)loamL_astpick(L, s, loamL_fkactions, what, "on_update action");
  op->sql = loamL_astsql(L, t, "sql", what, 0);
  op->down_sql = loamL_astsql(L, t, "down_sql", what, 0);
  if (loamL_field(L, t, "params") == LUA_TTABLE) {
    lua_Unsigned i, np = lua_rawlen(L, -1);
    loam_value *v;
    if (np > INT_MAX / 2) loamL_misuse(L, "%s: too many parameters", what);
    v = (loam_value *)loamL_astalloc(c, (size_t)np * sizeof *v);
    for (i = 0; i < np; i++) {
      lua_rawgeti(L, -1, (lua_Integer)i + 1);
      loamL_tovalue(L, -1, (int)i + 1, &v[i]);   /* strings stay in the params table */
      lua_pop(L, 1);
    }
    op->params = v;
    op->nparams = (int)np;
  }
  else if (lua_type(L, -1) != LUA_TNIL)
    loamL_misuse(L, "%s: 'params' must be a table, not a %s", what, luaL_typename(L, -1));
  lua_pop(L, 1);
  op->set = toassigns(c, t, "set", "set_sql", what, &op->nset);
  op->where = toassigns(c, t, "where", "where_sql", what, &op->nwhere);
  op->key = loamL_aststring(L, t, "key", what);
  op->batch = tocount(L, t, "batch", what);
  op->pause_ms = tocount(L, t, "pause_ms", what);
}


/* The array of op tables at t[k] into '*n' operations; 'what' names the migration. */
static loam_op *tooplist (loamL_AST *c, int t, const char *k, const char *what, int *n) {
  lua_State *L = c->L;
  lua_Unsigned len, i;
  loam_op *ops;
  *n = 0;
  if (loamL_field(L, t, k) != LUA_TTABLE)
    loamL_misuse(L, "%s: '%s' must be an array of operations, not a %s", what, k,
                 luaL_typename(L, -1));
  len = lua_rawlen(L, -1);
  if (len > INT_MAX / 2) loamL_misuse(L, "%s: too many operations", what);
  ops = (loam_op *)loamL_astalloc(c, (size_t)len * sizeof *ops);
  for (i = 0; i < len; i++) {
    lua_rawgeti(L, -1, (lua_Integer)i + 1);
    toop(c, lua_gettop(L), &ops[i], loamL_astkeep(c, "%s: %s step %d", what, k, (int)i + 1));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  *n = (int)len;
  return ops;
}


/* The message of an inverse that failed, kept by the anchor; 'err' is cleared. */
static const char *keeperr (loamL_AST *c, loam_error *err, int step, loam_op_kind kind) {
  const char *s = loamL_astkeep(c, "step %d (%s): %s", step, opkinds[kind - 1],
                                err->message != NULL ? err->message : "cannot be reversed");
  loam_error_clear(err);
  return s;
}


/*
** The down of 'g' derived from its up: the inverse of each operation,
** last first, leaving out those with nothing to undo.  When one cannot be
** undone, returns its reason and leaves 'down' empty.
*/
static const char *derive (loamL_AST *c, loam_migration *g) {
  loam_op *inv = (loam_op *)loamL_astalloc(c, (size_t)g->nup * sizeof *inv);
  int i, n = 0;
  for (i = g->nup - 1; i >= 0; i--) {
    loam_error err = LOAM_ERROR_INIT;
    char *buf = (char *)loamL_astalloc(c, LOAM_IDENT_MAX + 1);
    if (loam_op_inverse(&g->up[i], &inv[n], buf, &err) != LOAM_OK)
      return keeperr(c, &err, i + 1, g->up[i].kind);
    if (inv[n].kind != 0) n++;
  }
  g->down = inv;
  g->ndown = n;
  return NULL;
}


/* Whether an operation of 'ops' runs outside a transaction on 'be'. */
static int outside (const loam_op *ops, int n, loam_backend be) {
  int i;
  for (i = 0; i < n; i++)
    if (loam_op_needs_autocommit(&ops[i], be)) return 1;
  return 0;
}


/* The migration table at 't' into 'mg', for running up ('down' 0) or down on 'be'. */
static void tomig (loamL_AST *c, int t, Mig *mg, int down, loam_backend be) {
  lua_State *L = c->L;
  loam_migration *g = &mg->m;
  const char *what;
  memset(mg, 0, sizeof *mg);
  if (lua_type(L, t) != LUA_TTABLE)
    loamL_misuse(L, "a migration must be a table, not a %s", luaL_typename(L, t));
  g->version = loamL_astreqstring(L, t, "version", "migration");
  g->name = loamL_astreqstring(L, t, "name", "migration");
  what = loamL_astkeep(c, "migration %s (%s)", g->version, g->name);
  g->parents = loamL_aststrings(c, t, "parents", what, 0, &g->nparents);
  if (loamL_field(L, t, "source") != LUA_TSTRING)
    loamL_misuse(L, "%s: 'source' must be a string, not a %s", what, luaL_typename(L, -1));
  g->source = lua_tolstring(L, -1, &g->source_len);
  lua_pop(L, 1);
  g->up = tooplist(c, t, "up", what, &g->nup);
  if (loamL_field(L, t, "down") != LUA_TNIL) {
    lua_pop(L, 1);
    g->down = tooplist(c, t, "down", what, &g->ndown);
  }
  else {
    lua_pop(L, 1);
    mg->irreversible = derive(c, g);
  }
  /* the direction run decides: a down of DROP INDEX CONCURRENTLY runs step by step too */
  g->non_transactional = down ? outside(g->down, g->ndown, be) : outside(g->up, g->nup, be);
}


/* The array of migrations at 'arg' into a Mig array of '*n'. */
static Mig *tomigs (loamL_AST *c, int arg, int down, loam_backend be, int *n) {
  lua_State *L = c->L;
  lua_Unsigned len, i;
  Mig *v;
  luaL_checktype(L, arg, LUA_TTABLE);
  len = lua_rawlen(L, arg);
  if (len > INT_MAX / 2) loamL_misuse(L, "too many migrations");
  v = (Mig *)loamL_astalloc(c, (size_t)len * sizeof *v);
  for (i = 0; i < len; i++) {
    lua_rawgeti(L, arg, (lua_Integer)i + 1);
    tomig(c, lua_gettop(L), &v[i], down, be);
    lua_pop(L, 1);
  }
  *n = (int)len;
  return v;
}


/* The core's migrations of 'v', packed into an array kept by the anchor; 'skip' leaves out
   the irreversible ones. */
static loam_migration *pack (loamL_AST *c, const Mig *v, int n, int skip, int *nout) {
  loam_migration *m = (loam_migration *)loamL_astalloc(c, (size_t)n * sizeof *m);
  int i, k = 0;
  for (i = 0; i < n; i++)
    if (!skip || v[i].irreversible == NULL) m[k++] = v[i].m;
  *nout = k;
  return m;
}


/* A 'set' for 'loamL_checkopts' of the integer options of a run. */
static int setopt (void *ud, const char *name, int v) {
  loam_migrate_opts *o = (loam_migrate_opts *)ud;
  if (strcmp(name, "lock_wait_ms") == 0) o->lock_wait_ms = v;
  else if (strcmp(name, "lock_ttl_ms") == 0) o->lock_ttl_ms = v;
  else if (strcmp(name, "lock_timeout_ms") == 0) o->lock_timeout_ms = v;
  else if (strcmp(name, "ddl_retries") == 0) o->ddl_retries = v;
  else return 0;
  return 1;
}


/*
** The 'progress' option: called after each batch of a backfill as
** progress(version, step, table, rows, batches), with the options table at
** the stack index 'ud' points to.  It runs in the middle of the core's
** run, so an error in it is not raised through the core: it is dropped,
** and the run goes on (a progress display must not stop a migration).
*/
typedef struct Progress {
  lua_State *L;
  int opts;                    /* absolute index of the options table */
} Progress;

static void progress (void *ud, const char *version, int step, const char *table,
                      int64_t rows, int64_t batches) {
  Progress *p = (Progress *)ud;
  lua_State *L = p->L;
  if (!lua_checkstack(L, 8)) return;
  lua_getfield(L, p->opts, "progress");
  lua_pushstring(L, version);
  lua_pushinteger(L, step);
  lua_pushstring(L, table);
  lua_pushinteger(L, (lua_Integer)rows);
  lua_pushinteger(L, (lua_Integer)batches);
  if (lua_pcall(L, 5, 0, 0) != LUA_OK) lua_pop(L, 1);
}


/*
** The options table at 'arg' into 'o': the strings 'to' and 'owner',
** the boolean 'out_of_order' and the function 'progress' (given 'pr', which
** the caller keeps until the run ends) are taken out, the integers are left in a
** copy that takes the place of the argument (so a message names it) and
** are read by 'loamL_checkopts'.  The original stays on the stack, which
** keeps the strings alive.
*/
static void toopts (lua_State *L, int arg, loam_migrate_opts *o, Progress *pr) {
  static const loam_migrate_opts init = LOAM_MIGRATE_OPTS_INIT;
  int copy;
  *o = init;
  if (lua_isnoneornil(L, arg)) return;
  if (lua_type(L, arg) != LUA_TTABLE) loamL_typeerror(L, arg, "table");
  pr->L = L;
  o->progress_ud = pr;
  lua_newtable(L);
  copy = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, arg) != 0) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    if (strcmp(k, "to") == 0 || strcmp(k, "owner") == 0) {
      if (lua_type(L, -1) != LUA_TSTRING)
        loamL_misuse(L, "migration option '%s' must be a string, not a %s", k,
                     luaL_typename(L, -1));
      if (k[0] == 't') o->to = lua_tostring(L, -1);      /* kept alive by the options table */
      else o->owner = lua_tostring(L, -1);
      lua_pop(L, 1);
    }
    else if (strcmp(k, "out_of_order") == 0) {
      o->out_of_order = lua_toboolean(L, -1);
      lua_pop(L, 1);
    }
    else if (strcmp(k, "progress") == 0) {
      if (lua_type(L, -1) != LUA_TFUNCTION)
        loamL_misuse(L, "migration option 'progress' must be a function, not a %s",
                     luaL_typename(L, -1));
      lua_pop(L, 1);
      o->progress = progress;
    }
    else {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, copy);
    }
  }
  lua_pushvalue(L, arg);
  lua_pushvalue(L, copy);
  lua_replace(L, arg);
  pr->opts = lua_gettop(L);
  loamL_checkopts(L, arg, setopt, o);
}


/* core.migrate_up(conn, migs [, opts]) -> applied */
static int l_migrate_up (lua_State *L) {
  loam_conn *conn = loamL_checkconn(L);
  loam_error err = LOAM_ERROR_INIT;
  loam_migrate_opts o;
  loam_migration *m;
  Progress pr;
  loamL_AST c;
  Mig *v;
  int n, nm, applied = 0;
  toopts(L, 3, &o, &pr);
  newanchor(L, &c);
  v = tomigs(&c, 2, 0, loam_conn_backend(conn), &n);
  m = pack(&c, v, n, 0, &nm);
  if (loam_migrate_up(conn, m, nm, &o, &applied, &err) != LOAM_OK)
    return loamL_raise(L, &err, NULL);
  lua_pushinteger(L, applied);
  return 1;
}


static const char *const states[] = {
  NULL, "pending", "applied", "changed", "missing", "out_of_order", "partial"
};


/* Pushes the status list 's' of 'n' entries as an array of tables; protected. */
static int pushstatus (lua_State *L) {
  const loam_migration_status *s = (const loam_migration_status *)lua_touserdata(L, 1);
  int i, n = (int)lua_tointeger(L, 2);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    lua_createtable(L, 0, 6);
    lua_pushstring(L, s[i].version);
    lua_setfield(L, -2, "version");
    if (s[i].name != NULL) {
      lua_pushstring(L, s[i].name);
      lua_setfield(L, -2, "name");
    }
    lua_pushstring(L, states[s[i].state]);
    lua_setfield(L, -2, "state");
    if (s[i].applied_at != NULL) {
      lua_pushstring(L, s[i].applied_at);
      lua_setfield(L, -2, "applied_at");
      lua_pushinteger(L, (lua_Integer)s[i].duration_ms);
      lua_setfield(L, -2, "duration_ms");
    }
    if (s[i].state == LOAM_MIG_PARTIAL) {
      lua_pushinteger(L, s[i].steps_done);
      lua_setfield(L, -2, "steps_done");
    }
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}


/* Pushes the status of 'm' on 'conn' (see pushstatus). */
static void status (lua_State *L, loam_conn *conn, const loam_migration *m, int n) {
  loam_error err = LOAM_ERROR_INIT;
  loam_migration_status *s = NULL;
  int ns = 0, rc;
  if (loam_migrate_status(conn, m, n, &s, &ns, &err) != LOAM_OK) loamL_raise(L, &err, NULL);
  lua_pushcfunction(L, pushstatus);
  lua_pushlightuserdata(L, s);
  lua_pushinteger(L, ns);
  rc = lua_pcall(L, 2, 1, 0);
  loam_migration_status_free(s);
  if (rc != LUA_OK) lua_error(L);
}


/* core.migrate_status(conn, migs) -> array of { version, name, state, applied_at, ... } */
static int l_migrate_status (lua_State *L) {
  loam_conn *conn = loamL_checkconn(L);
  loam_migration *m;
  loamL_AST c;
  Mig *v;
  int n, nm;
  newanchor(L, &c);
  v = tomigs(&c, 2, 0, loam_conn_backend(conn), &n);
  m = pack(&c, v, n, 0, &nm);
  status(L, conn, m, nm);
  return 1;
}


/* The migration of 'v' with version 'version', or NULL. */
static const Mig *findmig (const Mig *v, int n, const char *version) {
  int i;
  for (i = 0; i < n; i++)
    if (strcmp(v[i].m.version, version) == 0) return &v[i];
  return NULL;
}


/*
** core.migrate_down(conn, migs, steps [, opts]) -> reverted
** The migrations that would be reverted are looked at first: one whose
** down cannot be derived is refused with its reason before anything runs.
** It is also left out of what the core gets, so that even a history that
** changed meanwhile can never have it reverted without a down.
*/
static int l_migrate_down (lua_State *L) {
  loam_conn *conn = loamL_checkconn(L);
  loam_error err = LOAM_ERROR_INIT;
  lua_Integer steps = luaL_checkinteger(L, 3);
  loam_migrate_opts o;
  loam_migration *m;
  Progress pr;
  loamL_AST c;
  Mig *v;
  int n, nm, i, left, reverted = 0;
  if (steps < 0 || steps > INT_MAX)
    return loamL_misuse(L, "migrate_down: steps must be a non-negative integer, got %I", steps);
  toopts(L, 4, &o, &pr);
  newanchor(L, &c);
  v = tomigs(&c, 2, 1, loam_conn_backend(conn), &n);
  m = pack(&c, v, n, 0, &nm);
  status(L, conn, m, nm);
  left = (int)steps;
  for (i = (int)lua_rawlen(L, -1); i >= 1 && left > 0; i--) {
    const char *state, *version;
    const Mig *g;
    lua_rawgeti(L, -1, i);
    loamL_field(L, lua_gettop(L), "state");
    loamL_field(L, lua_gettop(L) - 1, "version");
    state = lua_tostring(L, -2);
    version = lua_tostring(L, -1);
    if (strcmp(state, "applied") == 0 || strcmp(state, "changed") == 0 ||
        strcmp(state, "missing") == 0) {
      left--;
      g = findmig(v, n, version);
      if (g != NULL && g->irreversible != NULL)
        return loamL_misuse(L, "migration %s (%s) cannot be reverted: its down is derived "
                            "from its operations, and %s", g->m.version, g->m.name,
                            g->irreversible);
    }
    lua_pop(L, 3);
  }
  lua_pop(L, 1);
  m = pack(&c, v, n, 1, &nm);
  if (loam_migrate_down(conn, m, nm, (int)steps, &o, &reverted, &err) != LOAM_OK)
    return loamL_raise(L, &err, NULL);
  lua_pushinteger(L, reverted);
  return 1;
}


/* Pushes statement 'i' of the rendered 'rs'; protected. */
static int pushstmt (lua_State *L) {
  size_t len;
  const char *sql = loam_rendered_sql((const loam_rendered *)lua_touserdata(L, 1),
                                      (int)lua_tointeger(L, 2), &len);
  lua_pushlstring(L, sql, len);
  return 1;
}


/*
** Renders 'op' on 'conn''s backend and appends its statements to the
** array on top of the stack (whose length is '*k').  A SQLite rebuild is
** written from the table as it is now, introspected.
*/
static void renderop (lua_State *L, loam_conn *conn, const loam_op *op, int *k) {
  loam_backend be = loam_conn_backend(conn);
  loam_error err = LOAM_ERROR_INIT;
  loam_db_schema *schema = NULL;
  const loam_db_table *t = NULL;
  loam_rendered *rs = NULL;
  int i, rc = LOAM_OK;
  if (loam_op_rebuilds(op, be)) {
    rc = loam_introspect(conn, &op->table, 1, &schema, &err);
    if (rc == LOAM_OK) t = loam_db_schema_table(schema, op->table);
  }
  if (rc == LOAM_OK) rc = loam_render_op(op, be, t, &rs, &err);
  loam_db_schema_free(schema);
  if (rc != LOAM_OK) loamL_raise(L, &err, NULL);
  for (i = 0; i < loam_rendered_count(rs); i++) {
    int status;
    lua_pushcfunction(L, pushstmt);
    lua_pushlightuserdata(L, rs);
    lua_pushinteger(L, i);
    status = lua_pcall(L, 2, 1, 0);
    if (status != LUA_OK) {
      loam_rendered_free(rs);
      lua_error(L);
    }
    lua_rawseti(L, -2, ++*k);
  }
  loam_rendered_free(rs);
}


/* Pushes the parameters of statement 0 of 'rs' as an array; protected. */
static int pushparams (lua_State *L) {
  int i, n = 0;
  const loam_value *v = loam_rendered_params((const loam_rendered *)lua_touserdata(L, 1), 0,
                                             &n);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    loamL_pushvalue(L, &v[i], 0);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}


/* Sets field 'k' of the table on top to the text of 'rs' and 'k'_params to its parameters. */
static int setstmt (lua_State *L, const loam_rendered *rs, const char *k) {
  int status;
  lua_pushcfunction(L, pushstmt);
  lua_pushlightuserdata(L, (void *)rs);
  lua_pushinteger(L, 0);
  if ((status = lua_pcall(L, 2, 1, 0)) != LUA_OK) return status;
  lua_setfield(L, -2, k);
  lua_pushcfunction(L, pushparams);
  lua_pushlightuserdata(L, (void *)rs);
  if ((status = lua_pcall(L, 1, 1, 0)) != LUA_OK) return status;
  lua_pushfstring(L, "%s_params", k);
  lua_insert(L, -2);
  lua_settable(L, -3);
  return LUA_OK;
}


/*
** Appends the plan of BACKFILL 'op' to the array on top of the stack (whose
** length is '*k'): a table { backfill = table, key =, batch =, select =,
** select_params =, update =, update_params = }, the statements of its
** first batch (no update when no row is left to change).
*/
static void planop (lua_State *L, loam_conn *conn, const loam_op *op, int *k) {
  loam_error err = LOAM_ERROR_INIT;
  loam_rendered *sel = NULL, *upd = NULL;
  char key[LOAM_IDENT_MAX + 1];
  int status;
  if (loam_backfill_plan(conn, op, &sel, &upd, key, &err) != LOAM_OK)
    loamL_raise(L, &err, NULL);
  lua_createtable(L, 0, 8);
  lua_pushstring(L, op->table);
  lua_setfield(L, -2, "backfill");
  lua_pushstring(L, key);
  lua_setfield(L, -2, "key");
  lua_pushinteger(L, op->batch > 0 ? op->batch : 1000);
  lua_setfield(L, -2, "batch");
  status = setstmt(L, sel, "select");
  if (status == LUA_OK && upd != NULL) status = setstmt(L, upd, "update");
  loam_rendered_free(sel);
  loam_rendered_free(upd);
  if (status != LUA_OK) lua_error(L);
  lua_rawseti(L, -2, ++*k);
}


/* Whether table 'name' is a key of the table at 'touched' (0: none given). */
static int istouched (lua_State *L, int touched, const char *name) {
  int yes;
  if (touched == 0 || name == NULL) return 0;
  yes = lua_getfield(L, touched, name) != LUA_TNIL;
  lua_pop(L, 1);
  return yes;
}


/* Adds the tables 'op' changes to the table at 'touched'. */
static void touch (lua_State *L, int touched, const loam_op *op) {
  const char *names[3];
  int i;
  if (touched == 0) return;
  names[0] = op->table;
  names[1] = op->kind == LOAM_OP_RENAME_TABLE ? op->new_name : NULL;
  names[2] = op->kind == LOAM_OP_CREATE_TABLE && op->def != NULL ? op->def->name
           : op->kind == LOAM_OP_ADD_FOREIGN_KEY ? op->ref_table : NULL;
  for (i = 0; i < 3; i++)
    if (names[i] != NULL) {
      lua_pushboolean(L, 1);
      lua_setfield(L, touched, names[i]);
    }
}


/*
** core.migration_sql(conn, mig, "up" | "down" [, touched]) -> { sql, ... }, outside_tx
** The statements migration 'mig' runs, in order, without running them (a
** backfill as the plan of its first batch: see planop);
** 'outside_tx' is true when they run one by one outside a transaction.
** 'touched', a set of table names changed by the migrations rendered
** before this one, is updated; a SQLite rebuild of such a table is
** refused, since it is written from the table as it will be then.
*/
static int l_migration_sql (lua_State *L) {
  loam_conn *conn = loamL_checkconn(L);
  const char *dir = lua_type(L, 3) == LUA_TSTRING ? lua_tostring(L, 3) : "";
  int down = strcmp(dir, "down") == 0;
  int touched = lua_istable(L, 4) ? 4 : 0;
  loam_backend be = loam_conn_backend(conn);
  const loam_op *list;
  loamL_AST c;
  Mig mg;
  int i, n, k = 0;
  if (!down && strcmp(dir, "up") != 0) loamL_argerror(L, 3, "\"up\" or \"down\" expected");
  newanchor(L, &c);
  tomig(&c, 2, &mg, down, be);
  if (down && mg.irreversible != NULL)
    return loamL_misuse(L, "migration %s (%s) cannot be reverted: its down is derived from its "
                        "operations, and %s", mg.m.version, mg.m.name, mg.irreversible);
  list = down ? mg.m.down : mg.m.up;
  n = down ? mg.m.ndown : mg.m.nup;
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    if (loam_op_rebuilds(&list[i], be) && istouched(L, touched, list[i].table))
      return loamL_misuse(L, "migration %s (%s), step %d (%s): SQLite rebuilds table '%s', "
                          "which an earlier step changes, and its statements are written from "
                          "the table as it will be then: a dry run cannot show them (apply the "
                          "steps before it first)", mg.m.version, mg.m.name, i + 1,
                          opkinds[list[i].kind - 1], list[i].table);
    if (list[i].kind == LOAM_OP_BACKFILL && istouched(L, touched, list[i].table))
      return loamL_misuse(L, "migration %s (%s), step %d (backfill): table '%s' is changed by "
                          "a migration before it, and the plan of a backfill is read from the "
                          "table as it is: a dry run cannot show it (apply the migrations "
                          "before it first)", mg.m.version, mg.m.name, i + 1, list[i].table);
    if (list[i].kind == LOAM_OP_BACKFILL) planop(L, conn, &list[i], &k);   /* rows only */
    else {
      renderop(L, conn, &list[i], &k);
      touch(L, touched, &list[i]);
    }
  }
  lua_pushboolean(L, mg.m.non_transactional);
  return 2;
}


/* core.op_irreversible(op) -> nil, or why the core cannot undo it */
static int l_op_irreversible (lua_State *L) {
  loam_error err = LOAM_ERROR_INIT;
  char buf[LOAM_IDENT_MAX + 1];
  loam_op op, inv;
  loamL_AST c;
  newanchor(L, &c);
  toop(&c, 1, &op, "operation");
  if (loam_op_inverse(&op, &inv, buf, &err) == LOAM_OK) {
    lua_pushnil(L);
    return 1;
  }
  if (err.code != LOAM_E_MISUSE) return loamL_raise(L, &err, NULL);
  lua_pushstring(L, err.message != NULL ? err.message : "cannot be reversed");
  loam_error_clear(&err);
  return 1;
}


/* core.migration_checksum(source) -> the checksum the history keeps */
static int l_migration_checksum (lua_State *L) {
  size_t len;
  const char *s = loamL_checkstring(L, 1, &len);
  char sum[17];
  loam_migration_checksum(s, len, sum);
  lua_pushstring(L, sum);
  return 1;
}


void loamL_open_migrate (lua_State *L) {
  static const luaL_Reg funcs[] = {
    { "migrate_up", l_migrate_up },
    { "migrate_down", l_migrate_down },
    { "migrate_status", l_migrate_status },
    { "migration_sql", l_migration_sql },
    { "op_irreversible", l_op_irreversible },
    { "migration_checksum", l_migration_checksum },
    { NULL, NULL }
  };
  luaL_setfuncs(L, funcs, 0);
}
