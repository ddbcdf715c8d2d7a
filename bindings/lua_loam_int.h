/*
** lua_loam_int.h: what the files of the Lua binding share.
**
** The binding is one Lua module ('loam.core') written in several files,
** one per concept.  These functions are hidden from the module's symbol
** table; only 'luaopen_loam_core' and 'loam_lua_open' are exported.
*/
#ifndef LUA_LOAM_INT_H
#define LUA_LOAM_INT_H

#include <stddef.h>

#include "lua.h"
#include "lauxlib.h"

#include "loam.h"

/* The registry names of the module's metatables. */
#define CONN_T   "loam.Conn"
#define POOL_T   "loam.Pool"
#define REPLICAS_T "loam.Replicas"
#define STMT_T   "loam.Stmt"
#define PREPARED_T "loam.Prepared"
#define ERROR_T  "loam.Error"
#define NULL_T   "loam.Null"
#define BLOB_T   "loam.Blob"

/*
** A Database (lua/loam/database.lua) is a Lua table, not a metatable of
** the registry: the Lua layer hands its metatable over once through
** 'set_database'.  DATABASE_CONN is the field of the Database that holds
** the connection in use (nil once closed); database.lua documents the
** same name.
*/
#define DATABASE_T  "loam.Database"
#define DATABASE_CONN  "_c"

/* Parameter lists up to this length are converted on the C stack. */
#define NPARAMS_LOCAL  16

#if defined(__GNUC__)
#define LOAML_FUNC __attribute__((visibility("hidden"))) extern
#else
#define LOAML_FUNC extern
#endif

/*
** Creates the metatable 'tname' with the metamethods 'metameth' and, when
** 'meth' is not NULL, a method table as '__index'; keeps an existing one
** (lua_loam.c).
*/
LOAML_FUNC void loamL_createmeta (lua_State *L, const char *tname, const luaL_Reg *meth,
                                  const luaL_Reg *metameth);

/*
** The types every statement passes through mark their metatable with the
** address of one of these (a light-userdata key set to true, by
** 'loamL_keymeta'), so 'loamL_testud' tells them by one lookup in the
** userdata's own small metatable, where 'luaL_testudata' looks the
** metatable up by name in the registry and compares (lua_loam.c).
*/
LOAML_FUNC const char loamL_conn_key, loamL_stmt_key, loamL_prepared_key;
LOAML_FUNC void loamL_keymeta (lua_State *L, const char *tname, const char *key);

/* The userdata at 'idx' when its metatable is the one under 'key', else NULL. */
LOAML_FUNC void *loamL_testud (lua_State *L, int idx, const char *key);

/* Error objects and argument checks (lua_error.c). */

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

/*
** Writes into 'buf' (of 'size' bytes) the position "file:line" of the
** first frame at or above 'level' that runs the program's own Lua code, as
** errors name it ("" when there is none): where a pooled handle's
** checkout was made, for the pool's reports.
*/
LOAML_FUNC void loamL_wherebuf (lua_State *L, int level, char *buf, size_t size);
/* A buffer for 'loamL_wherebuf' as checkouts use it. */
#define LOAML_TAGSIZE 96


/*
** Pushes the position ("file:line: ") of the program's first frame at or
** above stack level 'level', past C functions and the Lua layer's files,
** and returns its level; "" and -1 when there is none (lua_error.c).
*/
LOAML_FUNC int loamL_pushwhere (lua_State *L, int level);

/* Raises a 'misuse' error object with a 'lua_pushfstring' message.  Never returns. */
LOAML_FUNC int loamL_misuse (lua_State *L, const char *fmt, ...);

/*
** The module's 'luaL_argerror' and 'luaL_typeerror': misuse error objects
** naming argument 'arg' of the running function.  Never return.
*/
LOAML_FUNC int loamL_argerror (lua_State *L, int arg, const char *extramsg);
LOAML_FUNC int loamL_typeerror (lua_State *L, int arg, const char *tname);

/*
** The type error of a method's 'self': "bad argument #1 to 'name' (tname
** expected, got ...)" however the method was called, as the Lua layer
** words it for its own methods.  Never returns.
*/
LOAML_FUNC int loamL_selferror (lua_State *L, const char *tname);

/* The name of the value at 'idx' for messages: its '__name', or its type. */
LOAML_FUNC const char *loamL_valuename (lua_State *L, int idx);

/* The string argument 'arg' (a number does not count); '*len', if not NULL, gets its length. */
LOAML_FUNC const char *loamL_checkstring (lua_State *L, int arg, size_t *len);

/* The string argument 'arg' read as SQL text ('loamL_sqltext'). */
LOAML_FUNC const char *loamL_checksql (lua_State *L, int arg);

/*
** Adds 'Error', 'where' and 'set_layer_source' to the module table on top
** and creates the 'loam.Error' metatable.
*/
LOAML_FUNC void loamL_open_error (lua_State *L);

/* Values (lua_value.c). */

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

/*
** Converts the parameter array at 'arg' (absent or nil: none) into core
** values in 'local' (NPARAMS_LOCAL of them) or, for a longer list, in a
** userdata left on the stack; '*nparams' gets the count.  'queryhint' is
** the hint added to the error of 'sql' run on 'conn' with 'np' values.
*/
LOAML_FUNC const loam_value *loamL_checkparams (lua_State *L, int arg, loam_value *local,
                                                int *nparams);
LOAML_FUNC const char *loamL_queryhint (loam_conn *conn, const char *sql, int np,
                                        const loam_error *err);

/*
** Adds 'null', 'blob' and 'isnull' to the module table on top and creates
** the metatables of 'loam.null' and 'loam.blob' and the one NULL sentinel.
*/
LOAML_FUNC void loamL_open_value (lua_State *L);

/* Pools (lua_pool.c): adds 'pool_open' and the 'loam.Pool' metatable. */
LOAML_FUNC void loamL_open_pool (lua_State *L);

/* Connections (lua_conn.c). */

/*
** A connection handle; 'conn' is NULL once closed (or before it opened).
** Shared since a statement's iterator (lua_stmt.c) checks its connection.
** A connection checked out of a pool (lua_pool.c) has 'pool' set, and
** keeps the pool's handle alive as its user value: closing it releases it.
**
** A pooled handle ('pool:handle()', what a Database over a pool runs on)
** has 'pooled' set: it holds no connection of its own, and each call that
** needs one checks one out for its duration ('leases' counts the calls,
** statements and holds that use it; the last to end hands it back), so
** one such handle serves many operations in turn and a pool's few
** connections serve many handles.  'trace' and 'trace_ud' are its query
** hook, set on each connection it checks out and cleared before release.
*/
typedef struct LConn {
  loam_conn *conn;
  loam_pool *pool;           /* a pooled handle: the pool of 'conn' while one is out */
  loam_pool *const *poolref; /* a pooled handle: its 'loam.Pool''s pointer (NULL once that
                                closes), or NULL once the handle closed */
  int pooled;
  int leases;
  int closing;               /* closed while a lease ran: the last lease hands back and closes */
  uint64_t writes;           /* a pooled handle: 'loam_conn_writes' of its ended leases, summed */
  uint64_t writes_base;      /* a pooled handle: 'loam_conn_writes' of 'conn' at the lease */
  loam_trace_fn trace;
  void *trace_ud;
} LConn;

/*
** The user values of a 'loam.Conn': the pool it came from (lua_pool.c),
** and a closed 'loam.Stmt' that 'loamL_pushstmt' opens for each 'query',
** 'exec' and 'run' instead of making a handle per call.
*/
#define CONN_UV_POOL  1
#define CONN_UV_STMT  2
#define CONN_NUV      2

/*
** Reads the options table at argument 'arg' (absent or nil: none): each
** value a non-negative integer or "forever" (LOAM_FOREVER), set with
** 'set(ud, name, value)', which returns 0 for a name it does not know.
*/
LOAML_FUNC void loamL_checkopts (lua_State *L, int arg,
                                 int (*set) (void *ud, const char *name, int v), void *ud);

/* A 'set' for 'loamL_checkopts': the options of a connection ('ud' a 'loam_conn_opts'). */
LOAML_FUNC int loamL_connopt (void *ud, const char *name, int v);

/*
** The open connection of the 'loam.Conn' at index 1, or of the Database
** there (which it replaces by its 'loam.Conn'); raises on a closed one.
** For a pooled handle with no connection checked out, it checks one out
** and makes index 1 a to-be-closed slot that hands it back when the
** calling C function returns or raises: every caller calls this before
** it marks any slot of its own to be closed, and never removes index 1.
*/
LOAML_FUNC loam_conn *loamL_checkconn (lua_State *L);

/*
** The handle at index 1 (a 'loam.Conn', or a Database's, which replaces
** it there) without checking a connection out; raises on a closed one.
*/
LOAML_FUNC LConn *loamL_checkhandle (lua_State *L);

/*
** For a pooled handle 'c' at stack index 'idx': checks a connection out
** unless it has one (the tag is the Lua code at 'level') and counts one
** more lease; 'loamL_unlease' ends one, and the last hands the connection
** back.  With 'toclose', the lease is the one of the running C function:
** the slot 'idx' is marked to be closed, and 'loamL_lease' returns 0 when
** a connection was out already, leaving nothing to close.  Raises the
** acquire's error (pool_timeout).
*/
LOAML_FUNC int loamL_lease (lua_State *L, LConn *c, int idx, int level, int toclose);
/* The same with the tag given ('tag', copied by the pool), for a caller that has it already. */
LOAML_FUNC int loamL_lease_as (lua_State *L, LConn *c, int idx, const char *tag, int toclose);
LOAML_FUNC void loamL_unlease (LConn *c);

/* The backend of the handle 'c', which need not hold a connection (pooled). */
LOAML_FUNC loam_backend loamL_backend (lua_State *L, LConn *c);

/* The connection of the 'loam.Conn' at 'idx'; NULL once closed or for any other value. */
LOAML_FUNC loam_conn *loamL_toconn (lua_State *L, int idx);

/* Adds 'connect' and 'Conn' to the module table on top and creates the 'loam.Conn' metatable. */
LOAML_FUNC void loamL_open_conn (lua_State *L);

/* Statements (lua_stmt.c). */

/*
** A 'loam.Stmt' handle; 'stmt' is NULL once finalized (or before it
** opened).  A statement read row by row on a pooled handle holds a lease
** of it ('lease', kept alive as user value 1) until it is finalized.
*/
typedef struct LStmt {
  loam_stmt *stmt;
  LConn *lease;
} LStmt;

/*
** Running statements for the Lua API (lua_stmt.c), shared by 'query',
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
** index 'rows', whose last item is '*n' (updated); the column names come
** from the array at absolute index 'names' when it is not 0, which is
** kept up to date (a prepared statement keeps one, so its runs make no
** key strings).  'readfirst' reads as 'readrows' does, but the first
** row only, which replaces the value at absolute index 'slot' (left as
** it is when there is none).  'readexec' steps
** 'stmt' to its end, stores the rows changed in '*changes' and pushes the
** id of 'exec': the first column of the first row when the statement
** returned rows, else the SQLite rowid of an INSERT, else nil.  Both
** return the last status of 'loam_step': LOAM_DONE, or LOAM_ERROR with
** 'err' filled in, in which case 'readexec' pushes nothing.
*/
LOAML_FUNC LStmt *loamL_pushstmt (lua_State *L);
LOAML_FUNC void loamL_closestmt (LStmt *s);
LOAML_FUNC int loamL_readrows (lua_State *L, loam_stmt *stmt, int rows, int names,
                               lua_Integer *n, loam_error *err);
LOAML_FUNC int loamL_readfirst (lua_State *L, loam_stmt *stmt, int slot, int names,
                                loam_error *err);
LOAML_FUNC int loamL_readexec (lua_State *L, loam_stmt *stmt, int64_t *changes,
                               loam_error *err);

/*
** 'newstmt' pushes a closed 'loam.Stmt' of the connection at 'connidx'
** (not to be closed), for 'conn:each'; 'stmtnext' is its iterator.
*/
LOAML_FUNC LStmt *loamL_newstmt (lua_State *L, int connidx);
LOAML_FUNC int loamL_stmtnext (lua_State *L);

/* Creates the 'loam.Stmt' metatable. */
LOAML_FUNC void loamL_open_stmt (lua_State *L);

/*
** Pushes t[k] for the table at absolute index 't', without metamethods,
** and returns its type (lua_ast.c).
*/
LOAML_FUNC int loamL_field (lua_State *L, int t, const char *k);

/* Column type names of the ASTs, in the order of 'loam_col_type' from 1, NULL-ended. */
LOAML_FUNC const char *const loamL_coltypes[];

/* The 'loam_col_type' named 'name', or 0 when it names none. */
LOAML_FUNC int loamL_coltype (const char *name);

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
** Reading schema ASTs into the core's structs (lua_schema.c), shared with
** the migration operations (lua_migrate.c), whose tables carry columns,
** tables and indexes.  Every reader is strict: an unknown field or a value
** of the wrong type raises misuse naming it ("DDL AST: column 'a': ...").
** What a conversion allocates is userdata kept in the table at 'anchor'
** (the caller pushes a new table and sets 'L', 'anchor' and 'n' = 0);
** strings point into the AST, which must stay alive as long as the
** structs, and everything is freed by the garbage collector, also after
** an error.
*/
typedef struct loamL_AST {
  lua_State *L;
  int anchor;       /* stack index of the table that keeps the userdata alive */
  lua_Integer n;    /* userdata in it */
} loamL_AST;

/* Zeroed memory that lives as long as the anchor table. */
LOAML_FUNC void *loamL_astalloc (loamL_AST *c, size_t size);
/* A formatted string that lives as long as the anchor table: a context for messages. */
LOAML_FUNC const char *loamL_astkeep (loamL_AST *c, const char *fmt, ...);
/* Refuses any key of the table at 't' that is not in 'known' (NULL-terminated). */
LOAML_FUNC void loamL_astonly (lua_State *L, int t, const char *const *known, const char *what);
/* t[k] as a string without NUL bytes, or NULL when absent (or raises when required). */
LOAML_FUNC const char *loamL_aststring (lua_State *L, int t, const char *k, const char *what);
LOAML_FUNC const char *loamL_astreqstring (lua_State *L, int t, const char *k, const char *what);
/* t[k] as SQL text; NULL when absent and not 'required'. */
LOAML_FUNC const char *loamL_astsql (lua_State *L, int t, const char *k, const char *what,
                                     int required);
/* t[k] as a boolean, 'dflt' when absent. */
LOAML_FUNC int loamL_astbool (lua_State *L, int t, const char *k, const char *what, int dflt);
/* t[k] as an array of strings into '*n'; 'req' makes an absent or empty one an error. */
LOAML_FUNC const char *const *loamL_aststrings (loamL_AST *c, int t, const char *k,
                                                const char *what, int req, int *n);
/* The index of 's' in the NULL-terminated 'names', or raises naming 'what' and 'k'. */
LOAML_FUNC int loamL_astpick (lua_State *L, const char *s, const char *const *names,
                              const char *what, const char *k);
/* Referential actions by AST name, in the order of 'loam_fk_action'. */
LOAML_FUNC const char *const loamL_fkactions[];
/* Column #i of a create_table (the table on top of the stack) into '*col'. */
LOAML_FUNC void loamL_astcolumn (loamL_AST *c, int i, loam_column_def *col);
/* A create_table AST (at 'ast') into '*def'. */
LOAML_FUNC void loamL_asttable (loamL_AST *c, int ast, loam_table_def *def);
/* A create_index AST (at 'ast') into '*def'. */
LOAML_FUNC void loamL_astindex (loamL_AST *c, int ast, loam_index_def *def);

/*
** Adds 'migrate_up', 'migrate_down', 'migrate_status', 'migration_sql',
** 'op_irreversible' and 'migration_checksum' to the module table on top
** (lua_migrate.c).
*/
LOAML_FUNC void loamL_open_migrate (lua_State *L);

/*
** Adds 'table_exists' and 'exact_numeric' to the 'loam.Conn' methods and
** 'MIGRATIONS_TABLE' to the module table on top (lua_catalog.c).
*/
LOAML_FUNC void loamL_open_catalog (lua_State *L);

/* Adds 'introspect' to the 'loam.Conn' methods (lua_introspect.c). */
LOAML_FUNC void loamL_open_introspect (lua_State *L);

/*
** Adds 'render' to the module table on top, and 'render' and 'run' to the
** 'loam.Conn' methods (lua_query.c).
*/
LOAML_FUNC void loamL_open_query (lua_State *L);

/*
** The query AST reader (lua_ast.c).  'pushbuilder' pushes a query builder
** in a to-be-closed slot of the calling C function (freed with it, whether
** it returns or raises) and returns its stack index; 'builder' gives its
** 'loam_qb' (NULL when memory ran out, which rendering reports) and
** 'rendered' the place where it keeps a rendered result (freed with it).
** 'tostatement', 'toselect' and 'toexpr' convert the AST node at 'idx'
** (a statement; a subquery, which must be a SELECT; an expression) into
** that builder, raising misuse for a malformed node; 'node' and 'what'
** name where an expression was found, for the message.  'open_ast'
** creates the builder's metatable.
*/
LOAML_FUNC int loamL_pushbuilder (lua_State *L);
LOAML_FUNC loam_qb *loamL_builder (lua_State *L, int builder);
LOAML_FUNC loam_rendered **loamL_rendered (lua_State *L, int builder);
LOAML_FUNC loam_qstmt *loamL_tostatement (lua_State *L, int idx, int builder);
LOAML_FUNC loam_qstmt *loamL_toselect (lua_State *L, int idx, int builder);
LOAML_FUNC loam_expr *loamL_toexpr (lua_State *L, int idx, int builder, const char *node,
                                    const char *what);
LOAML_FUNC void loamL_open_ast (lua_State *L);

/* Adds 'insert_rows' to the 'loam.Conn' methods (lua_bulk.c). */
LOAML_FUNC void loamL_open_bulk (lua_State *L);

/* Adds 'load_batch' to the module table on top and to the 'loam.Conn' methods (lua_batch.c). */
LOAML_FUNC void loamL_open_batch (lua_State *L);

/*
** Transactions (lua_tx.c).  'txbegin' opens a level of the connection at
** index 1 ('loam_tx_begin') and pushes its guard in a to-be-closed slot
** of the calling C function, returning its stack index: should the caller
** raise before 'txcommit', the guard rolls the level back.  'txcommit'
** commits the level of the guard at 'idx', or rolls it back and raises
** the commit's error.  'open_tx' adds 'transaction', 'after_commit' and
** 'after_rollback' to the 'loam.Conn' methods.
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
