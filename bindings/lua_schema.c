/*
** lua_schema.c: 'core.render_ddl(dialect, ast)' and 'conn:render_ddl(ast)',
** which turn the Lua DDL AST (create_table, create_index, drop_table) into
** the core's schema structs and return the one statement the core renders.
**
** The AST comes from model declarations, and a field that is silently
** ignored is a constraint silently lost, so the conversion is strict:
** every table is read with raw access, an unknown field or a value of the
** wrong type is a misuse error naming the field ("DDL AST: column #3 has
** no 'name'").  The structs and arrays live in userdata anchored in one
** table on the stack, and the strings they point to stay in the AST, so an
** error raised anywhere frees everything through the garbage collector.
** The readers of fields and of whole columns, tables and indexes are
** shared with lua_migrate.c (lua_loam_int.h), whose operations carry them.
*/
#include <limits.h>
#include <stdarg.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#include "loam.h"
#include "lua_loam_int.h"




/* Zeroed memory that lives as long as the anchor table. */
void *loamL_astalloc (loamL_AST *c, size_t size) {
  void *p = lua_newuserdatauv(c->L, size > 0 ? size : 1, 0);
  memset(p, 0, size > 0 ? size : 1);
  lua_rawseti(c->L, c->anchor, ++c->n);
  return p;
}


/* A formatted string that lives as long as the anchor table: a context for messages. */
const char *loamL_astkeep (loamL_AST *c, const char *fmt, ...) {
  const char *s;
  va_list ap;
  va_start(ap, fmt);
  s = lua_pushvfstring(c->L, fmt, ap);
  va_end(ap);
  lua_rawseti(c->L, c->anchor, ++c->n);
  return s;
}


/*
** Refuses any key of the table at 't' that is not in 'known': a typo such
** as 'lenght' must not drop a constraint without a word.
*/
void loamL_astonly (lua_State *L, int t, const char *const *known, const char *what) {
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    int i, ok = 0;
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -1);
      for (i = 0; known[i] != NULL && !ok; i++) ok = (strcmp(k, known[i]) == 0);
      if (!ok) loamL_misuse(L, "DDL AST: %s has an unknown field '%s'", what, k);
    }
    else loamL_misuse(L, "DDL AST: %s has an unexpected %s key", what, luaL_typename(L, -1));
  }
}


/* Checks that the value on top is a table; 'what' names it. */
static int istable (lua_State *L, const char *what, const char *k) {
  int t = lua_type(L, -1);
  if (t == LUA_TNIL) return 0;
  if (t != LUA_TTABLE)
    loamL_misuse(L, "DDL AST: %s: '%s' must be a table, not a %s", what, k, luaL_typename(L, -1));
  return 1;
}


/*
** t[k] as a string without NUL bytes, or NULL when absent.  The Lua
** string stays referenced by the AST, so the pointer outlives the pop.
*/
const char *loamL_aststring (lua_State *L, int t, const char *k, const char *what) {
  const char *s = NULL;
  size_t len;
  int ty = loamL_field(L, t, k);
  if (ty == LUA_TSTRING) {
    s = lua_tolstring(L, -1, &len);
    if (strlen(s) != len) loamL_misuse(L, "DDL AST: %s: '%s' contains a NUL byte", what, k);
  }
  else if (ty != LUA_TNIL)
    loamL_misuse(L, "DDL AST: %s: '%s' must be a string, not a %s", what, k, luaL_typename(L, -1));
  lua_pop(L, 1);
  return s;
}


/*
** t[k] read as SQL text ('loamL_sqltext'): raw predicates and defaults.
** NULL when absent and not 'required'.
*/
const char *loamL_astsql (lua_State *L, int t, const char *k, const char *what, int required) {
  const char *s, *name;
  int ty = loamL_field(L, t, k);
  if (ty == LUA_TNIL && !required) {
    lua_pop(L, 1);
    return NULL;
  }
  if (ty == LUA_TNIL) loamL_misuse(L, "DDL AST: %s has no '%s'", what, k);
  if (ty != LUA_TSTRING)
    loamL_misuse(L, "DDL AST: %s: '%s' must be a string, not a %s", what, k, luaL_typename(L, -1));
  name = lua_pushfstring(L, "DDL AST: %s: '%s'", what, k);
  s = loamL_sqltext(L, -2, 0, name);
  lua_pop(L, 2);
  return s;
}


const char *loamL_astreqstring (lua_State *L, int t, const char *k, const char *what) {
  const char *s = loamL_aststring(L, t, k, what);
  if (s == NULL) loamL_misuse(L, "DDL AST: %s has no '%s'", what, k);
  return s;
}


int loamL_astbool (lua_State *L, int t, const char *k, const char *what, int dflt) {
  int ty = loamL_field(L, t, k), b = dflt;
  if (ty == LUA_TBOOLEAN) b = lua_toboolean(L, -1);
  else if (ty != LUA_TNIL)
    loamL_misuse(L, "DDL AST: %s: '%s' must be a boolean, not a %s", what, k, luaL_typename(L, -1));
  lua_pop(L, 1);
  return b;
}


/* t[k] as an integer of at least 'min' (0 when absent). */
static int optint (lua_State *L, int t, const char *k, const char *what, int min) {
  lua_Integer v = 0;
  int isint = 0;
  if (loamL_field(L, t, k) == LUA_TNIL) { lua_pop(L, 1); return 0; }
  if (lua_type(L, -1) == LUA_TNUMBER) v = lua_tointegerx(L, -1, &isint);
  if (!isint || v < min || v > INT_MAX)
    loamL_misuse(L, "DDL AST: %s: '%s' must be an integer of at least %d", what, k, min);
  lua_pop(L, 1);
  return (int)v;
}


/*
** t[k] as an array of strings (absent: NULL and 0); 'req' makes an absent
** or empty array an error.
*/
const char *const *loamL_aststrings (loamL_AST *c, int t, const char *k, const char *what,
                                    int req, int *n) {
  lua_State *L = c->L;
  const char **v;
  lua_Unsigned len, i;
  *n = 0;
  loamL_field(L, t, k);
  if (!istable(L, what, k)) {
    if (req) loamL_misuse(L, "DDL AST: %s has no '%s'", what, k);
    lua_pop(L, 1);
    return NULL;
  }
  len = lua_rawlen(L, -1);
  if (len == 0 && req) loamL_misuse(L, "DDL AST: %s: '%s' is empty", what, k);
  if (len > INT_MAX / 2) loamL_misuse(L, "DDL AST: %s: '%s' is too long", what, k);
  v = (const char **)loamL_astalloc(c, (size_t)len * sizeof *v);
  for (i = 0; i < len; i++) {
    size_t sl;
    if (lua_rawgeti(L, -1, (lua_Integer)i + 1) != LUA_TSTRING)
      loamL_misuse(L, "DDL AST: %s: '%s' #%d must be a string, not a %s", what, k,
                   (int)i + 1, luaL_typename(L, -1));
    v[i] = lua_tolstring(L, -1, &sl);
    if (strlen(v[i]) != sl)
      loamL_misuse(L, "DDL AST: %s: '%s' #%d contains a NUL byte", what, k, (int)i + 1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  *n = (int)len;
  return v;
}


/* The index in 'names' of 's', or raises naming 'what' and the field. */
int loamL_astpick (lua_State *L, const char *s, const char *const *names, const char *what,
                 const char *k) {
  int i;
  for (i = 0; names[i] != NULL; i++)
    if (strcmp(s, names[i]) == 0) return i;
  return loamL_misuse(L, "DDL AST: %s: unknown %s '%s'", what, k, s);
}


/* {======================================================================
** create_table
** ======================================================================= */

/* Referential actions by AST name, in the order of 'loam_fk_action'. */
const char *const loamL_fkactions[] = {
  "no action", "restrict", "cascade", "set null", "set default", NULL
};

static const char *const column_fields[] = {
  "name", "type", "length", "precision", "scale", "null", "unique", "primary_key",
  "default", "values", "references", NULL
};

static const char *const ref_fields[] = { "table", "column", "on_delete", "on_update", NULL };


/* The default at t.default (the column table at 't') into 'd'. */
static void todefault (loamL_AST *c, int t, const char *what, loam_default *d) {
  lua_State *L = c->L;
  int ty = loamL_field(L, t, "default");
  if (ty == LUA_TNIL) {
    d->kind = LOAM_DEFAULT_NONE;
  }
  else if (ty == LUA_TTABLE) {
    static const char *const raw_fields[] = { "sql", "now", NULL };
    int top = lua_gettop(L);
    const char *rwhat = loamL_astkeep(c, "%s: raw default", what);
    loamL_astonly(L, top, raw_fields, rwhat);
    /* { now = true }: the current date or time, in the canonical text */
    if (loamL_field(L, top, "now") == LUA_TBOOLEAN && lua_toboolean(L, -1)) {
      if (loamL_field(L, top, "sql") != LUA_TNIL)
        loamL_misuse(L, "DDL AST: %s: a default is 'now' or 'sql', not both", what);
      lua_pop(L, 1);
      d->kind = LOAM_DEFAULT_NOW;
    }
    else {
      d->kind = LOAM_DEFAULT_SQL;
      d->sql = loamL_astsql(L, top, "sql", rwhat, 1);
    }
    lua_pop(L, 1);
  }
  else if (ty == LUA_TNUMBER || ty == LUA_TBOOLEAN || ty == LUA_TSTRING ||
           luaL_testudata(L, -1, NULL_T) != NULL || luaL_testudata(L, -1, BLOB_T) != NULL) {
    d->kind = LOAM_DEFAULT_VALUE;
    loamL_tovalue(L, -1, 1, &d->value);   /* strings stay referenced by the AST */
  }
  else
    loamL_misuse(L, "DDL AST: %s: 'default' cannot be a %s (write { sql = \"...\" } for "
                 "an SQL expression)", what, luaL_typename(L, -1));
  lua_pop(L, 1);
}


static void toreferences (loamL_AST *c, int t, const char *what, loam_fk_def *f) {
  lua_State *L = c->L;
  const char *s, *rwhat;
  int r;
  loamL_field(L, t, "references");
  if (!istable(L, what, "references")) { lua_pop(L, 1); return; }
  r = lua_gettop(L);
  rwhat = loamL_astkeep(c, "%s: references", what);
  loamL_astonly(L, r, ref_fields, rwhat);
  f->table = loamL_astreqstring(L, r, "table", rwhat);
  f->column = loamL_aststring(L, r, "column", rwhat);
  if ((s = loamL_aststring(L, r, "on_delete", rwhat)) != NULL)
    f->on_delete = (loam_fk_action)loamL_astpick(L, s, loamL_fkactions, what, "on_delete action");
  if ((s = loamL_aststring(L, r, "on_update", rwhat)) != NULL)
    f->on_update = (loam_fk_action)loamL_astpick(L, s, loamL_fkactions, what, "on_update action");
  lua_pop(L, 1);
}


/* Converts column #i (the table on top of the stack) into 'col'. */
void loamL_astcolumn (loamL_AST *c, int i, loam_column_def *col) {
  lua_State *L = c->L;
  int t = lua_gettop(L);
  const char *what = loamL_astkeep(c, "column #%d", i), *type;
  if (lua_type(L, t) != LUA_TTABLE)
    loamL_misuse(L, "DDL AST: %s must be a table, not a %s", what, luaL_typename(L, t));
  col->name = loamL_astreqstring(L, t, "name", what);
  what = loamL_astkeep(c, "column '%s'", col->name);
  loamL_astonly(L, t, column_fields, what);
  type = loamL_astreqstring(L, t, "type", what);
  col->type = (loam_col_type)(loamL_astpick(L, type, loamL_coltypes, what, "type") + 1);
  col->length = optint(L, t, "length", what, 1);
  col->precision = optint(L, t, "precision", what, 1);
  col->scale = optint(L, t, "scale", what, 0);
  col->not_null = !loamL_astbool(L, t, "null", what, 1);
  col->unique = loamL_astbool(L, t, "unique", what, 0);
  col->primary_key = loamL_astbool(L, t, "primary_key", what, 0);
  todefault(c, t, what, &col->defval);
  col->enum_values = loamL_aststrings(c, t, "values", what, 0, &col->nenum_values);
  toreferences(c, t, what, &col->references);
}


static const char *const table_fields[] = {
  "k", "name", "if_not_exists", "columns", "primary_key", "checks", "uniques", "foreign_keys",
  NULL
};


/* Converts the array t.checks into 'def'. */
static void tochecks (loamL_AST *c, int t, loam_table_def *def) {
  static const char *const check_fields[] = { "name", "sql", NULL };
  lua_State *L = c->L;
  loam_check_def *v;
  lua_Unsigned n, i;
  loamL_field(L, t, "checks");
  if (!istable(L, "create_table", "checks")) { lua_pop(L, 1); return; }
  n = lua_rawlen(L, -1);
  if (n > INT_MAX / 2) loamL_misuse(L, "DDL AST: too many checks");
  v = (loam_check_def *)loamL_astalloc(c, (size_t)n * sizeof *v);
  for (i = 0; i < n; i++) {
    const char *what = loamL_astkeep(c, "check #%d", (int)i + 1);
    if (lua_rawgeti(L, -1, (lua_Integer)i + 1) != LUA_TTABLE)
      loamL_misuse(L, "DDL AST: %s must be a table, not a %s", what, luaL_typename(L, -1));
    loamL_astonly(L, lua_gettop(L), check_fields, what);
    v[i].name = loamL_astreqstring(L, lua_gettop(L), "name", what);
    v[i].sql = loamL_astsql(L, lua_gettop(L), "sql", what, 1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  def->checks = v;
  def->nchecks = (int)n;
}


/* Converts the array t.uniques into 'def'. */
static void touniques (loamL_AST *c, int t, loam_table_def *def) {
  static const char *const unique_fields[] = { "name", "columns", NULL };
  lua_State *L = c->L;
  loam_unique_def *v;
  lua_Unsigned n, i;
  loamL_field(L, t, "uniques");
  if (!istable(L, "create_table", "uniques")) { lua_pop(L, 1); return; }
  n = lua_rawlen(L, -1);
  if (n > INT_MAX / 2) loamL_misuse(L, "DDL AST: too many unique constraints");
  v = (loam_unique_def *)loamL_astalloc(c, (size_t)n * sizeof *v);
  for (i = 0; i < n; i++) {
    const char *what = loamL_astkeep(c, "unique #%d", (int)i + 1);
    int u;
    if (lua_rawgeti(L, -1, (lua_Integer)i + 1) != LUA_TTABLE)
      loamL_misuse(L, "DDL AST: %s must be a table, not a %s", what, luaL_typename(L, -1));
    u = lua_gettop(L);
    loamL_astonly(L, u, unique_fields, what);
    v[i].name = loamL_aststring(L, u, "name", what);
    v[i].columns = loamL_aststrings(c, u, "columns", what, 1, &v[i].ncolumns);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  def->uniques = v;
  def->nuniques = (int)n;
}


/*
** Converts the array t.foreign_keys into 'def': { name =, columns = {...},
** ref_table =, ref_columns = {...} (as many; absent: the primary key),
** on_delete =, on_update = }.
*/
static void toforeignkeys (loamL_AST *c, int t, loam_table_def *def) {
  static const char *const fk_fields[] = {
    "name", "columns", "ref_table", "ref_columns", "on_delete", "on_update", NULL
  };
  lua_State *L = c->L;
  loam_foreign_key_def *v;
  lua_Unsigned n, i;
  loamL_field(L, t, "foreign_keys");
  if (!istable(L, "create_table", "foreign_keys")) { lua_pop(L, 1); return; }
  n = lua_rawlen(L, -1);
  if (n > INT_MAX / 2) loamL_misuse(L, "DDL AST: too many foreign keys");
  v = (loam_foreign_key_def *)loamL_astalloc(c, (size_t)n * sizeof *v);
  for (i = 0; i < n; i++) {
    const char *what = loamL_astkeep(c, "foreign key #%d", (int)i + 1), *s;
    int f, nref = 0;
    if (lua_rawgeti(L, -1, (lua_Integer)i + 1) != LUA_TTABLE)
      loamL_misuse(L, "DDL AST: %s must be a table, not a %s", what, luaL_typename(L, -1));
    f = lua_gettop(L);
    loamL_astonly(L, f, fk_fields, what);
    v[i].name = loamL_aststring(L, f, "name", what);
    v[i].columns = loamL_aststrings(c, f, "columns", what, 1, &v[i].ncolumns);
    v[i].ref_table = loamL_astreqstring(L, f, "ref_table", what);
    v[i].ref_columns = loamL_aststrings(c, f, "ref_columns", what, 0, &nref);
    if (v[i].ref_columns != NULL && nref != v[i].ncolumns)
      loamL_misuse(L, "DDL AST: %s has %d columns and %d referenced columns", what,
                   v[i].ncolumns, nref);
    if ((s = loamL_aststring(L, f, "on_delete", what)) != NULL)
      v[i].on_delete = (loam_fk_action)loamL_astpick(L, s, loamL_fkactions, what,
                                                     "on_delete action");
    if ((s = loamL_aststring(L, f, "on_update", what)) != NULL)
      v[i].on_update = (loam_fk_action)loamL_astpick(L, s, loamL_fkactions, what,
                                                     "on_update action");
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  def->foreign_keys = v;
  def->nforeign_keys = (int)n;
}


void loamL_asttable (loamL_AST *c, int ast, loam_table_def *def) {
  lua_State *L = c->L;
  loam_column_def *cols;
  lua_Unsigned n, i;
  memset(def, 0, sizeof *def);
  loamL_astonly(L, ast, table_fields, "create_table");
  def->name = loamL_astreqstring(L, ast, "name", "create_table");
  def->if_not_exists = loamL_astbool(L, ast, "if_not_exists", "create_table", 0);
  loamL_field(L, ast, "columns");
  if (!istable(L, "create_table", "columns"))
    loamL_misuse(L, "DDL AST: create_table has no 'columns'");
  n = lua_rawlen(L, -1);
  if (n > INT_MAX / 2) loamL_misuse(L, "DDL AST: too many columns");
  cols = (loam_column_def *)loamL_astalloc(c, (size_t)n * sizeof *cols);
  for (i = 0; i < n; i++) {
    int top = lua_gettop(L);
    lua_rawgeti(L, -1, (lua_Integer)i + 1);
    loamL_astcolumn(c, (int)i + 1, &cols[i]);
    lua_settop(L, top);
  }
  lua_pop(L, 1);
  def->columns = cols;
  def->ncolumns = (int)n;
  def->primary_key = loamL_aststrings(c, ast, "primary_key", "create_table", 0, &def->nprimary_key);
  tochecks(c, ast, def);
  touniques(c, ast, def);
  toforeignkeys(c, ast, def);
  }


static int create_table (loamL_AST *c, int ast, loam_backend be, loam_rendered **rs, loam_error *err) {
  loam_table_def def;
  loamL_asttable(c, ast, &def);
  return loam_render_create_table(&def, be, rs, err);
}

/* }====================================================================== */


void loamL_astindex (loamL_AST *c, int ast, loam_index_def *def) {
  static const char *const index_fields[] = {
    "k", "name", "table", "columns", "unique", "where", "if_not_exists", NULL
  };
  lua_State *L = c->L;
  memset(def, 0, sizeof *def);
  loamL_astonly(L, ast, index_fields, "create_index");
  def->name = loamL_aststring(L, ast, "name", "create_index");
  def->table = loamL_astreqstring(L, ast, "table", "create_index");
  def->columns = loamL_aststrings(c, ast, "columns", "create_index", 1, &def->ncolumns);
  def->unique = loamL_astbool(L, ast, "unique", "create_index", 0);
  def->where = loamL_astsql(L, ast, "where", "create_index", 0);
  def->if_not_exists = loamL_astbool(L, ast, "if_not_exists", "create_index", 0);
}


static int create_index (loamL_AST *c, int ast, loam_backend be, loam_rendered **rs, loam_error *err) {
  loam_index_def def;
  loamL_astindex(c, ast, &def);
  return loam_render_create_index(&def, be, rs, err);
}


static int drop_table (loamL_AST *c, int ast, loam_backend be, loam_rendered **rs, loam_error *err) {
  static const char *const drop_fields[] = { "k", "name", "if_exists", NULL };
  lua_State *L = c->L;
  const char *name;
  int if_exists;
  loamL_astonly(L, ast, drop_fields, "drop_table");
  name = loamL_astreqstring(L, ast, "name", "drop_table");
  if_exists = loamL_astbool(L, ast, "if_exists", "drop_table", 0);
  return loam_render_drop_table(name, if_exists, be, rs, err);
}


/* Pushes a C string; run protected so the caller can free it on a memory error. */
static int pushsql (lua_State *L) {
  lua_pushstring(L, (const char *)lua_touserdata(L, 1));
  return 1;
}


/* Pushes the text of the one statement of a DDL rendering; protected as 'pushsql'. */
static int pushddl (lua_State *L) {
  size_t len;
  const char *sql = loam_rendered_sql((const loam_rendered *)lua_touserdata(L, 1), 0, &len);
  lua_pushlstring(L, sql, len);
  return 1;
}


/*
** Renders the AST at 'ast' for 'be' and pushes the statement's text.
** Each statement kind here renders as exactly one statement.
*/
static int render (lua_State *L, int ast, loam_backend be) {
  static const char *const kinds[] = { "create_table", "create_index", "drop_table", NULL };
  loam_error err = LOAM_ERROR_INIT;
  loam_rendered *rs = NULL;
  const char *k;
  int rc = LOAM_OK, status;
  loamL_AST c;
  if (lua_type(L, ast) != LUA_TTABLE)
    return loamL_misuse(L, "DDL AST: expected a table, got a %s", luaL_typename(L, ast));
  luaL_checkstack(L, 12, "DDL AST");
  lua_newtable(L);
  c.L = L;
  c.anchor = lua_gettop(L);
  c.n = 0;
  k = loamL_aststring(L, ast, "k", "statement");
  if (k == NULL) return loamL_misuse(L, "DDL AST: statement has no 'k'");
  switch (loamL_astpick(L, k, kinds, "statement", "kind")) {
    case 0: rc = create_table(&c, ast, be, &rs, &err); break;
    case 1: rc = create_index(&c, ast, be, &rs, &err); break;
    default: rc = drop_table(&c, ast, be, &rs, &err); break;
  }
  if (rc != LOAM_OK) return loamL_raise(L, &err, NULL);
  lua_pushcfunction(L, pushddl);
  lua_pushlightuserdata(L, rs);
  status = lua_pcall(L, 1, 1, 0);
  loam_rendered_free(rs);
  if (status != LUA_OK) return lua_error(L);
  return 1;
}


/* core.render_ddl(dialect, ast) -> sql */
static int l_render_ddl (lua_State *L) {
  return render(L, 2, loamL_checkdialect(L, 1, "render_ddl"));
}


/* conn:render_ddl(ast) -> sql, in the connection's dialect */
static int conn_render_ddl (lua_State *L) {
  loam_conn *conn = loamL_checkconn(L);
  return render(L, 2, loam_conn_backend(conn));
}


/* Pushes the name 'name' made by the core and frees it, even when pushing fails. */
static void pushname (lua_State *L, char *name) {
  int status;
  lua_pushcfunction(L, pushsql);
  lua_pushlightuserdata(L, name);
  status = lua_pcall(L, 1, 1, 0);
  loam_name_free(name);
  if (status != LUA_OK) lua_error(L);
}


/* The string argument 'arg' of 'constraint_name', which names it 'what'. */
static const char *namearg (lua_State *L, int arg, const char *what) {
  size_t len;
  const char *s;
  if (lua_type(L, arg) != LUA_TSTRING)
    loamL_misuse(L, "constraint_name: %s must be a string, not a %s", what, luaL_typename(L, arg));
  s = lua_tolstring(L, arg, &len);
  if (strlen(s) != len) loamL_misuse(L, "constraint_name: %s contains a NUL byte", what);
  return s;
}


/*
** core.constraint_name(table, cols, suffix) -> name, whole: the name the
** core gives a constraint or index without one ('loam_constraint_name'),
** and the same name before shortening (equal to it when it fits).
*/
static int l_constraint_name (lua_State *L) {
  loam_error err = LOAM_ERROR_INIT;
  const char *table = namearg(L, 1, "the table");
  const char *suffix = namearg(L, 3, "the suffix");
  const char **cols;
  char *name = NULL;
  lua_Integer i, n;
  if (lua_type(L, 2) != LUA_TTABLE)
    return loamL_misuse(L, "constraint_name: the columns must be a table, not a %s",
                        luaL_typename(L, 2));
  n = (lua_Integer)lua_rawlen(L, 2);
  if (n > INT_MAX / 2) return loamL_misuse(L, "constraint_name: too many columns");
  cols = lua_newuserdatauv(L, ((size_t)n + 1) * sizeof *cols, 0);
  for (i = 1; i <= n; i++) {
    /* The strings stay alive in the table at 2, which nothing changes meanwhile. */
    lua_rawgeti(L, 2, i);
    if (lua_type(L, -1) != LUA_TSTRING)
      return loamL_misuse(L, "constraint_name: column %d must be a string, not a %s", (int)i,
                          luaL_typename(L, -1));
    cols[i - 1] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  if (loam_constraint_name(table, cols, (int)n, suffix, 1, &name, &err) != LOAM_OK)
    return loamL_raise(L, &err, NULL);
  pushname(L, name);
  if (loam_constraint_name(table, cols, (int)n, suffix, 0, &name, &err) != LOAM_OK)
    return loamL_raise(L, &err, NULL);
  pushname(L, name);
  return 2;
}


void loamL_open_schema (lua_State *L) {
  loamL_addfunc(L, "render_ddl", l_render_ddl, conn_render_ddl);
  lua_pushcfunction(L, l_constraint_name);
  lua_setfield(L, -2, "constraint_name");
  lua_pushinteger(L, LOAM_IDENT_MAX);
  lua_setfield(L, -2, "IDENT_MAX");
}
