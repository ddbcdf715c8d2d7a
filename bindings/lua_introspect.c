/*
** lua_introspect.c: 'conn:introspect([tables])', what a live database
** holds ('loam_introspect') as plain Lua tables, for the Lua side of
** migrations: pulling models from a database, diffing models against it,
** drawing it.
**
** The result mirrors 'loam_db_schema' field for field, so Lua never reads
** a catalog itself:
**
**   { backend = "sqlite" | "postgres",
**     tables = { <table>, ... },          -- sorted by name
**     by_name = { [name] = <table> } }
**   <table> = { name =, sql =?, columns = { <column>... }, by_name = {...},
**               primary_key = { name =?, columns = {...} } | nil,
**               uniques = { { name =?, columns = {...} } ... },
**               checks = { { name =?, sql =, validated = } ... },
**               fks = { { name =?, columns =, ref_table =, ref_columns =,
**                         on_delete =, on_update =, validated = } ... },
**               indexes = { { name =, unique =, columns = {...}, exprs = {...},
**                             where =?, valid =, sql =? } ... },
**               triggers = { sql... } }
**   <column> = { name =, type =, loam_type = "text" | ... | nil, length =?,
**                precision =?, scale =?, not_null =, default =?, generated = }
**
** Key parts of an index are in 'columns[i]' or, for an expression,
** 'exprs[i]' (the other is false, so both arrays keep their length).
** Referential actions read as the DDL AST spells them ("no action",
** "cascade" ...), and column types as the model DSL names them.  The C
** tree is freed before anything is returned: the Lua tables own copies.
*/
#include <limits.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#include "loam.h"
#include "lua_loam_int.h"


/* The model DSL's names of 'loam_col_type', by value. */
static const char *const coltypes[] = {
  NULL, "id", "integer", "bigint", "text", "numeric", "boolean", "float", "date",
  "timestamp", "json", "blob", "enum"
};

/* The DDL AST's names of 'loam_fk_action', by value. */
static const char *const fkactions[] = {
  "no action", "restrict", "cascade", "set null", "set default"
};


static void setstr (lua_State *L, const char *k, const char *v) {
  if (v == NULL) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

static void setint (lua_State *L, const char *k, int v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void setbool (lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v != 0);
  lua_setfield(L, -2, k);
}


/* An array of 'n' names; a NULL name is 'false', so the length holds. */
static void pushnames (lua_State *L, const char *const *names, int n) {
  int i;
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    if (names != NULL && names[i] != NULL) lua_pushstring(L, names[i]);
    else lua_pushboolean(L, 0);
    lua_rawseti(L, -2, i + 1);
  }
}


static void pushkey (lua_State *L, const loam_db_key *k) {
  lua_createtable(L, 0, 2);
  setstr(L, "name", k->name);
  pushnames(L, k->columns, k->ncolumns);
  lua_setfield(L, -2, "columns");
}


static void pushcolumn (lua_State *L, const loam_db_column *c) {
  lua_createtable(L, 0, 9);
  setstr(L, "name", c->name);
  setstr(L, "type", c->type);
  if (c->loam_type > 0 && c->loam_type <= LOAM_COL_ENUM)
    setstr(L, "loam_type", coltypes[c->loam_type]);
  if (c->length > 0) setint(L, "length", c->length);
  if (c->precision > 0) {
    setint(L, "precision", c->precision);
    setint(L, "scale", c->scale);
  }
  setbool(L, "not_null", c->not_null);
  setstr(L, "default", c->default_sql);
  setbool(L, "generated", c->generated);
}


static const char *fkaction (loam_fk_action a) {
  return (a >= LOAM_FK_NO_ACTION && a <= LOAM_FK_SET_DEFAULT) ? fkactions[a] : "no action";
}


static void pushtable (lua_State *L, const loam_db_table *t) {
  int i;
  lua_createtable(L, 0, 12);
  setstr(L, "name", t->name);
  setstr(L, "sql", t->sql);
  lua_createtable(L, t->ncolumns, 0);     /* columns */
  lua_createtable(L, 0, t->ncolumns);     /* by_name */
  for (i = 0; i < t->ncolumns; i++) {
    pushcolumn(L, &t->columns[i]);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, t->columns[i].name);
    lua_rawseti(L, -3, i + 1);
  }
  lua_setfield(L, -3, "by_name");
  lua_setfield(L, -2, "columns");
  if (t->primary_key.ncolumns > 0) {
    pushkey(L, &t->primary_key);
    lua_setfield(L, -2, "primary_key");
  }
  lua_createtable(L, t->nuniques, 0);
  for (i = 0; i < t->nuniques; i++) {
    pushkey(L, &t->uniques[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "uniques");
  lua_createtable(L, t->nchecks, 0);
  for (i = 0; i < t->nchecks; i++) {
    lua_createtable(L, 0, 3);
    setstr(L, "name", t->checks[i].name);
    setstr(L, "sql", t->checks[i].sql);
    setbool(L, "validated", t->checks[i].validated);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "checks");
  lua_createtable(L, t->nfks, 0);
  for (i = 0; i < t->nfks; i++) {
    const loam_db_fk *fk = &t->fks[i];
    lua_createtable(L, 0, 7);
    setstr(L, "name", fk->name);
    pushnames(L, fk->columns, fk->ncolumns);
    lua_setfield(L, -2, "columns");
    setstr(L, "ref_table", fk->ref_table);
    pushnames(L, fk->ref_columns, fk->ncolumns);
    lua_setfield(L, -2, "ref_columns");
    setstr(L, "on_delete", fkaction(fk->on_delete));
    setstr(L, "on_update", fkaction(fk->on_update));
    setbool(L, "validated", fk->validated);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "fks");
  lua_createtable(L, t->nindexes, 0);
  for (i = 0; i < t->nindexes; i++) {
    const loam_db_index *ix = &t->indexes[i];
    lua_createtable(L, 0, 8);
    setstr(L, "name", ix->name);
    setbool(L, "unique", ix->unique);
    pushnames(L, ix->columns, ix->ncolumns);
    lua_setfield(L, -2, "columns");
    pushnames(L, ix->exprs, ix->ncolumns);
    lua_setfield(L, -2, "exprs");
    setstr(L, "where", ix->where);
    setbool(L, "valid", ix->valid);
    setstr(L, "sql", ix->sql);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "indexes");
  pushnames(L, t->triggers, t->ntriggers);
  lua_setfield(L, -2, "triggers");
}


/*
** Builds the Lua tree of 's' on the stack.  Called through 'lua_pcall' so
** that a memory error while building it still lets the caller free 's'.
*/
static int buildschema (lua_State *L) {
  const loam_db_schema *s = (const loam_db_schema *)lua_touserdata(L, 1);
  int i;
  lua_createtable(L, 0, 3);
  setstr(L, "backend", s->backend == LOAM_POSTGRES ? "postgres" : "sqlite");
  lua_createtable(L, s->ntables, 0);
  lua_createtable(L, 0, s->ntables);
  for (i = 0; i < s->ntables; i++) {
    pushtable(L, &s->tables[i]);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, s->tables[i].name);
    lua_rawseti(L, -3, i + 1);
  }
  lua_setfield(L, -3, "by_name");
  lua_setfield(L, -2, "tables");
  return 1;
}


/*
** conn:introspect([tables]): every table, or those named in the array
** 'tables' (strings; an unknown one is undefined_table naming it).  The
** names go to the core as C strings, so one holding a NUL byte is refused.
*/
static int conn_introspect (lua_State *L) {
  loam_error err = LOAM_ERROR_INIT;
  loam_conn *conn = loamL_checkconn(L);
  loam_db_schema *s = NULL;
  const char **names = NULL;
  lua_Integer n = 0, i;
  int rc;
  if (!lua_isnoneornil(L, 2)) {
    if (lua_type(L, 2) != LUA_TTABLE)
      return loamL_misuse(L, "introspect: tables must be an array of table names, got %s",
                          luaL_typename(L, 2));
    n = (lua_Integer)lua_rawlen(L, 2);
    if (n > INT_MAX)
      return loamL_misuse(L, "introspect: too many table names (%I)", n);
    /* The array lives in a userdata, so an error below frees it. */
    names = (const char **)lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *names, 0);
    for (i = 1; i <= n; i++) {
      size_t len;
      const char *name;
      if (lua_rawgeti(L, 2, i) != LUA_TSTRING)
        return loamL_misuse(L, "introspect: table name #%I must be a string, got %s", i,
                            luaL_typename(L, -1));
      name = lua_tolstring(L, -1, &len);
      if (memchr(name, '\0', len) != NULL)
        return loamL_misuse(L, "introspect: table name #%I contains a NUL byte", i);
      names[i - 1] = name;   /* the string stays in the argument table */
      lua_pop(L, 1);
    }
  }
  if (loam_introspect(conn, names, (int)n, &s, &err) != LOAM_OK)
    return loamL_raise(L, &err, NULL);
  lua_pushcfunction(L, buildschema);
  lua_pushlightuserdata(L, s);
  rc = lua_pcall(L, 1, 1, 0);
  loam_db_schema_free(s);
  if (rc != LUA_OK) return lua_error(L);
  return 1;
}


void loamL_open_introspect (lua_State *L) {
  luaL_getmetatable(L, CONN_T);
  lua_getfield(L, -1, "__index");
  lua_pushcfunction(L, conn_introspect);
  lua_setfield(L, -2, "introspect");
  lua_pop(L, 2);
}
