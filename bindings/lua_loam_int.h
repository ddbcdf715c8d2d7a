/*
** lua_loam_int.h: what the files of the Lua binding share.
**
** The binding is one Lua module ('loam.core') written in several files,
** one per concept.  These functions are hidden from the module's symbol
** table; only 'luaopen_loam_core' and 'loam_lua_open' are exported.
*/
#ifndef LUA_LOAM_INT_H
#define LUA_LOAM_INT_H

#include "lua.h"

#include "loam.h"

/* The registry names of the metatables of 'loam.null' and 'loam.blob' values. */
#define NULL_T  "loam.Null"
#define BLOB_T  "loam.Blob"

#if defined(__GNUC__)
#define LOAML_FUNC __attribute__((visibility("hidden"))) extern
#else
#define LOAML_FUNC extern
#endif

/*
** Raises the error object for 'err' (freeing the strings of 'err' first);
** 'hint', if not NULL, is appended to the message.  Never returns.
*/
LOAML_FUNC int loamL_raise (lua_State *L, loam_error *err, const char *hint);

/*
** The string at 'idx' (already known to be a string) read as SQL text:
** raises misuse when it holds a NUL byte, which would end the text early
** in C.  The message names the byte's position; with 'arg' > 0 it is an
** argument error ("bad argument #arg to ..."), otherwise it starts with
** 'what'.
*/
LOAML_FUNC const char *loamL_sqltext (lua_State *L, int idx, int arg, const char *what);

/* Raises a 'misuse' error object with a 'lua_pushfstring' message.  Never returns. */
LOAML_FUNC int loamL_misuse (lua_State *L, const char *fmt, ...);

/*
** Converts the Lua value at 'idx' into '*v' (text and blob point into Lua
** strings the value keeps alive); raises misuse naming parameter 'pos'
** for a value that cannot be bound.
*/
LOAML_FUNC void loamL_tovalue (lua_State *L, int idx, int pos, loam_value *v);

/* Pushes 'v' as a Lua value; NULL as the sentinel at 'nullidx' (0: from the registry). */
LOAML_FUNC void loamL_pushvalue (lua_State *L, const loam_value *v, int nullidx);

/* Pushes the SQL NULL sentinel 'loam.null'. */
LOAML_FUNC void loamL_pushnull (lua_State *L);

/* Pushes a 'loam.blob' wrapping the string at 'idx' (which it keeps alive). */
LOAML_FUNC void loamL_pushblob (lua_State *L, int idx);

/* The open connection of the 'loam.Conn' at index 1; raises on a closed one. */
LOAML_FUNC loam_conn *loamL_checkconn (lua_State *L);

/* The connection of the 'loam.Conn' at 'idx'; NULL once closed or for any other value. */
LOAML_FUNC loam_conn *loamL_toconn (lua_State *L, int idx);

/* A 'loam.Stmt' handle; 'stmt' is NULL once finalized (or before it opened). */
typedef struct LStmt {
  loam_stmt *stmt;
} LStmt;

/*
** Running statements for the Lua API (lua_loam.c), shared by 'query',
** 'exec' and 'run' so that their results are built one way.
**
** 'pushstmt' pushes a closed 'loam.Stmt' of the connection at index 1 in a
** to-be-closed slot of the calling C function; the caller opens it with
** 'loam_query' into its 'stmt' field and may close it with 'closestmt'
** and open it again.  Whether the caller returns or raises, the statement
** is finalized and the query hooks run.
**
** 'readrows' steps 'stmt' to its end and appends its rows, each a table
** keyed by column name (NULL as 'loam.null'), to the array at absolute
** index 'rows', whose last item is '*n' (updated).  'readexec' steps
** 'stmt' to its end, stores the rows changed in '*changes' and pushes the
** id of 'exec': the first column of the first row when the statement
** returned rows, else the SQLite rowid of an INSERT, else nil.  Both
** return the last status of 'loam_step': LOAM_DONE, or LOAM_ERROR with
** 'err' filled in, in which case 'readexec' pushes nothing.
*/
LOAML_FUNC LStmt *loamL_pushstmt (lua_State *L);
LOAML_FUNC void loamL_closestmt (LStmt *s);
LOAML_FUNC int loamL_readrows (lua_State *L, loam_stmt *stmt, int rows, lua_Integer *n,
                               loam_error *err);
LOAML_FUNC int loamL_readexec (lua_State *L, loam_stmt *stmt, int64_t *changes,
                               loam_error *err);

/* Pushes t[k] for the table at absolute index 't', without metamethods, and returns its type. */
LOAML_FUNC int loamL_field (lua_State *L, int t, const char *k);

/*
** The backend named by the string at 'arg' ("sqlite" or "postgres");
** raises misuse, naming the function 'fname', for anything else.
*/
LOAML_FUNC loam_backend loamL_checkdialect (lua_State *L, int arg, const char *fname);

/*
** Sets 'f' as field 'name' of the module table on top of the stack and
** 'method' as the 'loam.Conn' method of the same name.
*/
LOAML_FUNC void loamL_addfunc (lua_State *L, const char *name, lua_CFunction f,
                               lua_CFunction method);

/*
** Adds 'render_ddl' to the module table on top and to the 'loam.Conn'
** methods, and 'constraint_name' and 'IDENT_MAX' to the module table
** (lua_schema.c).
*/
LOAML_FUNC void loamL_open_schema (lua_State *L);

/*
** Adds 'table_exists' and 'exact_numeric' to the 'loam.Conn' methods and
** 'MIGRATIONS_TABLE' to the module table on top (lua_catalog.c).
*/
LOAML_FUNC void loamL_open_catalog (lua_State *L);

/*
** Adds 'render' to the module table on top, and 'render' and 'run' to the
** 'loam.Conn' methods (lua_query.c).
*/
LOAML_FUNC void loamL_open_query (lua_State *L);

/*
** The query AST converter (lua_query.c) for other files.  'pushbuilder'
** pushes a query builder in a to-be-closed slot of the calling C function
** (freed with it, whether it returns or raises) and returns its stack
** index; 'builder' gives its 'loam_qb' (NULL when memory ran out, which
** rendering reports).  'toselect' and 'toexpr' convert the AST node at
** 'idx' into that builder, raising misuse for a malformed node; 'node' and
** 'what' name where an expression was found, for the message.
*/
LOAML_FUNC int loamL_pushbuilder (lua_State *L);
LOAML_FUNC loam_qb *loamL_builder (lua_State *L, int builder);
LOAML_FUNC loam_qstmt *loamL_toselect (lua_State *L, int idx, int builder);
LOAML_FUNC loam_expr *loamL_toexpr (lua_State *L, int idx, int builder, const char *node,
                                    const char *what);

/* Adds 'load_batch' to the module table on top and to the 'loam.Conn' methods (lua_batch.c). */
LOAML_FUNC void loamL_open_batch (lua_State *L);

/*
** Transactions (lua_tx.c).  'txbegin' opens a level of the connection at
** index 1 ('loam_tx_begin') and pushes its guard in a to-be-closed slot
** of the calling C function, returning its stack index: should the caller
** raise before 'txcommit', the guard rolls the level back.  'txcommit'
** commits the level of the guard at 'idx', or rolls it back and raises
** the commit's error.  'open_tx' adds 'transaction' to the 'loam.Conn'
** methods.
*/
LOAML_FUNC int loamL_txbegin (lua_State *L);
LOAML_FUNC void loamL_txcommit (lua_State *L, int idx);
LOAML_FUNC void loamL_open_tx (lua_State *L);

/*
** Adds 'fingerprint' to the module table on top and 'on_query' and 'stats'
** to the 'loam.Conn' methods (lua_trace.c).
*/
LOAML_FUNC void loamL_open_trace (lua_State *L);

/*
** Calls the 'db:on_query' hooks for the statements that ended since the
** last call (lua_trace.c).  Every binding function that runs statements
** calls it right after the core returned, with nothing of its own left
** open, since a hook may raise; it leaves the stack as it found it.
** Without queued events it costs one atomic load.
*/
LOAML_FUNC void loamL_trace_flush (lua_State *L);

/*
** The same while an error is on its way out (about to be raised, or
** unwinding through a '__close'): the hooks run, but an error they raise
** becomes a warning, so the first error is the one the caller sees.
*/
LOAML_FUNC void loamL_trace_flush_failing (lua_State *L);

#endif
