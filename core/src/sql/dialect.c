/*
** dialect.c: the SQL of each backend, described as data.
**
** One 'static const' description per backend holds every fact the
** renderers need (placeholders, parameter limits, transaction statements,
** what SQLite lacks or spells otherwise, the DDL type map and literals,
** which ALTERs need a table rebuild) and the few writers that are more
** than a string: the placeholder and the IN-list key set.  render.c,
** ddl.c, tx.c, sqltext.c and schema.c read the description of their backend through
** 'loam__dialect' and never branch on the backend themselves, so a
** difference between the backends is stated once, here, with its reason.
**
** An IN list is bound as one parameter (one per column of tuples on
** PostgreSQL) so that a query keeps one text whatever the length of its
** list.  On PostgreSQL that parameter is an array literal read by
** 'unnest($n::T[])' (or, against a column that leads an index,
** '= ANY($n::T[])'), written here in one pass with every string escaped,
** so no value can end its element early or change the list.  SQLite's
** lists are a binary blob (sqlite_keys.c).
*/
#include <limits.h>
#include <math.h>
#include <string.h>

#include "sql/dialect_int.h"
#include "sql/builder_int.h"


/*
** The PostgreSQL element type of an IN list of 'ltype' values ("int8"...),
** or of text values compared with a column of loam type 'coltype' (0 when
** unknown): "date", "timestamptz" or "numeric", since text does not
** compare with those types.
*/
static const char *pg_array_type (int ltype, int coltype) {
  if (ltype == LOAM_TEXT) {
    switch (coltype) {
      case LOAM_COL_DATE: return "date";
      case LOAM_COL_TIMESTAMP: return "timestamptz";
      case LOAM_COL_NUMERIC: return "numeric";
      default: return "text";
    }
  }
  switch (ltype) {
    case LOAM_INT: return "int8";
    case LOAM_DOUBLE: return "float8";
    case LOAM__LIST_MIXED_NUM: return "numeric";
    case LOAM_BOOL: return "bool";
    default: return "text";
  }
}


/*
** Appends 's' with each byte that 'special' marks escaped by 'esc',
** copying the runs between them whole.
*/
static void add_escaped (loam__buf *b, const char *s, size_t n, int (*special) (unsigned char),
                         void (*esc) (loam__buf *, unsigned char)) {
  size_t i, run = 0;
  for (i = 0; i < n; i++) {
    if (!special((unsigned char)s[i])) continue;
    loam__buf_add(b, s + run, i - run);
    esc(b, (unsigned char)s[i]);
    run = i + 1;
  }
  loam__buf_add(b, s + run, n - run);
}


/* {======================================================================
** Array literals for PostgreSQL
** ======================================================================= */

static int pg_special (unsigned char c) {
  return c == '"' || c == '\\';
}


static void pg_escape (loam__buf *b, unsigned char c) {
  loam__buf_addc(b, '\\');
  loam__buf_addc(b, (char)c);
}


/*
** Every text element is double-quoted, so no content (commas, braces,
** blanks, the word NULL, the empty string) is read as array syntax.
** 'stride' lets one column of tuples be written where the tuples lie
** ('v[0]', 'v[stride]'...: 1 for a list, the tuple width for one column
** of tuples).  Text holding a NUL byte is refused, as binding it alone
** would be.
*/
static int pg_array (loam__buf *b, const loam_value *v, int n, int stride, loam_error *err) {
  int i;
  loam__buf_addc(b, '{');
  for (i = 0; i < n; i++) {
    const loam_value *e = v + (size_t)i * (size_t)stride;
    if (i > 0) loam__buf_addc(b, ',');
    switch (e->type) {
      case LOAM_INT: loam__buf_int(b, e->u.i); break;
      case LOAM_BOOL: loam__buf_addc(b, e->u.b ? 't' : 'f'); break;
      case LOAM_DOUBLE:
        if (isnan(e->u.d)) loam__buf_adds(b, "NaN");
        else if (isinf(e->u.d)) loam__buf_adds(b, e->u.d > 0 ? "Infinity" : "-Infinity");
        else loam__buf_double(b, e->u.d, 0);
        break;
      default:
        if (e->u.s.len > 0 && memchr(e->u.s.ptr, '\0', e->u.s.len) != NULL)
          return loam__err(err, LOAM_E_DATA_ERROR, "IN list: value %d is text holding a NUL "
                           "byte, which PostgreSQL cannot store", i + 1);
        loam__buf_addc(b, '"');
        add_escaped(b, e->u.s.ptr, e->u.s.len, pg_special, pg_escape);
        loam__buf_addc(b, '"');
        break;
    }
  }
  loam__buf_addc(b, '}');
  return LOAM_OK;
}

/* }====================================================================== */


/* {======================================================================
** Writers
** ======================================================================= */

static void lite_placeholder (loam__buf *b, int n) {
  (void)n;
  loam__buf_addc(b, '?');
}


static void pg_placeholder (loam__buf *b, int n) {
  loam__buf_addc(b, '$');
  loam__buf_int(b, n);
}


/*
** The key set of an IN on SQLite, one blob for the whole list:
**   SELECT k1 FROM loam_keys(?)
**   SELECT k1, k2 FROM loam_keys(?)
*/
static int lite_keys_sql (loam__buf *b, int first, int ncols, const unsigned char *ltypes,
                          const unsigned char *coltypes) {
  int c;
  (void)ltypes;
  (void)coltypes;
  loam__buf_adds(b, "SELECT ");
  for (c = 0; c < ncols; c++) {
    if (c > 0) loam__buf_adds(b, ", ");
    loam__buf_addc(b, 'k');
    loam__buf_int(b, c + 1);
  }
  loam__buf_adds(b, " FROM loam_keys(");
  lite_placeholder(b, first);
  loam__buf_addc(b, ')');
  return 1;
}


static int lite_keys_param (loam__buf *b, const loam_value *v, int nrows, int ncols, int i,
                            loam_error *err) {
  (void)i;
  return loam__sqlite_keys(b, v, nrows, ncols, err);
}


/*
** The key set of an IN on PostgreSQL, one array per column:
**   SELECT * FROM unnest($1::T1[], $2::T2[])
** A subquery rather than '= ANY($1)': the planner hashes it (a semi-join
** for IN, a hashed subplan for NOT IN while it fits in work_mem), while
** '= ANY' compares each row with the whole array whenever it cannot hash
** it (an integer column against int8 keys, a generic plan): 100,000 keys
** over 100,000 unindexed rows took 14 s that way and 0.06 s this way.
*/
static int pg_keys_sql (loam__buf *b, int first, int ncols, const unsigned char *ltypes,
                        const unsigned char *coltypes) {
  int c;
  loam__buf_adds(b, "SELECT * FROM unnest(");
  for (c = 0; c < ncols; c++) {
    if (c > 0) loam__buf_adds(b, ", ");
    pg_placeholder(b, first + c);
    loam__buf_adds(b, "::");
    loam__buf_adds(b, pg_array_type(ltypes[c], coltypes != NULL ? coltypes[c] : 0));
    loam__buf_adds(b, "[]");
  }
  loam__buf_addc(b, ')');
  return ncols;
}


/*
** The key set of an IN on PostgreSQL compared with a column that leads an
** index: (e = ANY($1::T[])).  The planner turns it into index conditions,
** one probe per key (0.11-0.18 ms for 100 keys against 0.35-0.85 ms for
** the hashed unnest, bench/RESULTS.md); its weakness, a comparison of
** each row with the whole array, only shows where no index serves it,
** which the caller rules out.  Doubles and mixed numbers keep the
** subquery: float8[] or numeric[] against an integer column casts the
** column, and the cast column is no longer the index's.
*/
static int pg_keys_indexed (loam__buf *b, int first, int ltype, int coltype, int negate) {
  if (ltype == LOAM_DOUBLE || ltype == LOAM__LIST_MIXED_NUM) return 0;
  loam__buf_adds(b, negate ? " <> ALL(" : " = ANY(");
  pg_placeholder(b, first);
  loam__buf_adds(b, "::");
  loam__buf_adds(b, pg_array_type(ltype, coltype));
  loam__buf_adds(b, "[])");
  return 1;
}


static int pg_keys_param (loam__buf *b, const loam_value *v, int nrows, int ncols, int i,
                          loam_error *err) {
  return pg_array(b, v + i, nrows, ncols, err);
}

/* }====================================================================== */


/* {======================================================================
** The descriptions
** ======================================================================= */

static const loam__dialect_desc sqlite_dialect = {
  .backend = LOAM_SQLITE,
  .name = "SQLite",
  .placeholder = lite_placeholder,
  /* '?n' rather than '$n', which SQLite reads as a named parameter
  ** numbered by its first appearance */
  .numbered = '?',
  /* SQLITE_MAX_VARIABLE_NUMBER's default since 3.32; a caller whose
  ** SQLite was built with more may ask for more */
  .max_params = 32766,
  .max_params_limit = INT_MAX,
  /* SQLite would store NaN as NULL; infinities it stores and compares
  ** like PostgreSQL's float8 */
  .stores_nan = 0,
  .literal_qmark = 0,
  /* ':name', '@name' and '$name' are SQLite's named parameters, which the
  ** driver refuses once SQLite counts them */
  .named_marks = ":@$",
  /* BEGIN stmt; stmt; END: one statement, as sqlite3_complete reads it */
  .trigger_bodies = 1,
  .keys_sql = lite_keys_sql,
  /* SQLite probes an index through the subquery's rows already */
  .keys_indexed = NULL,
  .keys_param = lite_keys_param,
  .keys_type = LOAM_BLOB,
  /* SQLite's LIKE ignores the case of ASCII letters, which is what ILIKE asks */
  .ilike = "LIKE",
  .not_ilike = "NOT LIKE",
  .excluded = "excluded.",
  /* SQLite has no OFFSET without LIMIT; -1 is no limit */
  .offset_alone = " LIMIT -1",
  .row_locks = 0,
  .no_row_locks = "FOR UPDATE/FOR SHARE is PostgreSQL only: SQLite locks the whole database "
                  "for a write transaction",
  .explain = "EXPLAIN QUERY PLAN ",
  .copy_in = NULL,
  /* a text value is bound with its length, NUL bytes and all */
  .text_nul = 1,
  /* IMMEDIATE: a deferred transaction that later upgrades its read lock
  ** to write fails at once with SQLITE_BUSY, bypassing busy_timeout */
  .begin = "BEGIN IMMEDIATE",
  .commit = "COMMIT",
  .rollback = "ROLLBACK",
  .savepoint = "SAVEPOINT",
  .release = "RELEASE SAVEPOINT",
  .rollback_to = "ROLLBACK TO SAVEPOINT",
  /* Every SQLite transaction is serializable; a reader takes no write lock. */
  .isolation = { "", NULL, NULL, "" },
  .read_only = NULL,
  .begin_read = "BEGIN DEFERRED",
  .query_only_on = "PRAGMA query_only = 1",
  .query_only_off = "PRAGMA query_only = 0",
  /* names that give SQLite's type affinities; an enum is text and a CHECK */
  .types = {
    [LOAM_COL_INTEGER] = "INTEGER", [LOAM_COL_BIGINT] = "INTEGER", [LOAM_COL_TEXT] = "TEXT",
    [LOAM_COL_NUMERIC] = "NUMERIC", [LOAM_COL_BOOLEAN] = "BOOLEAN", [LOAM_COL_FLOAT] = "REAL",
    [LOAM_COL_DATE] = "DATE", [LOAM_COL_TIMESTAMP] = "TIMESTAMP", [LOAM_COL_JSON] = "TEXT",
    [LOAM_COL_BLOB] = "BLOB", [LOAM_COL_ENUM] = "TEXT"
  },
  /* with PRIMARY KEY, the canonical alias of the rowid, which generates the values */
  .identity = "INTEGER",
  .varchar = NULL,
  .json_check = 1,
  .text_dates = 1,
  /* NUMERIC is an affinity: the value is stored as an INTEGER or a REAL,
  ** so a decimal past 15 significant digits is rounded to a double */
  .exact_numeric = 0,
  .true_literal = "1",
  .false_literal = "0",
  .blob_open = "X'",
  .blob_close = "'",
  /* the canonical text loam writes for such values (see loam.h): the
  ** timestamp from SQLite's clock in milliseconds, the fraction trimmed of
  ** its trailing zeros, and of its point when nothing is left, as
  ** PostgreSQL prints it */
  .now_date = "(date('now'))",
  .now_timestamp = "(rtrim(rtrim(strftime('%Y-%m-%d %H:%M:%f', 'now'), '0'), '.') || '+00')",
  /*
  ** SQLite's ALTER TABLE renames tables and columns, adds columns and
  ** (since 3.35) drops them; everything else takes the documented table
  ** rebuild.  ADD COLUMN needs the rebuild for a PRIMARY KEY or UNIQUE
  ** column or REFERENCES with a non-NULL default, and, once the table has
  ** rows, for NOT NULL without a non-NULL default or a default that is not
  ** constant (the 'now' defaults above).  DROP COLUMN needs it for a
  ** column in the primary key, a UNIQUE constraint, an index, a foreign
  ** key or a CHECK, or one that a view or trigger uses.
  */
  .alter = {
    [LOAM__ALTER_RENAME_TABLE] = LOAM__ALTER_IN_PLACE,
    [LOAM__ALTER_ADD_COLUMN] = LOAM__ALTER_LIMITED,
    [LOAM__ALTER_DROP_COLUMN] = LOAM__ALTER_LIMITED,
    [LOAM__ALTER_RENAME_COLUMN] = LOAM__ALTER_IN_PLACE,
    [LOAM__ALTER_COLUMN_TYPE] = LOAM__ALTER_REBUILD,
    [LOAM__ALTER_SET_NOT_NULL] = LOAM__ALTER_REBUILD,
    [LOAM__ALTER_DROP_NOT_NULL] = LOAM__ALTER_REBUILD,
    [LOAM__ALTER_SET_DEFAULT] = LOAM__ALTER_REBUILD,
    [LOAM__ALTER_DROP_DEFAULT] = LOAM__ALTER_REBUILD,
    [LOAM__ALTER_ADD_CONSTRAINT] = LOAM__ALTER_REBUILD,
    [LOAM__ALTER_DROP_CONSTRAINT] = LOAM__ALTER_REBUILD
  },
  /* 'main.sqlite_master' lists the main database alone, not attached
  ** ones or the temp schema, where unqualified CREATE TABLE writes */
  .table_exists = "SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name = ?",
  /* the pragmas as table-valued functions, each asked for the main
  ** database; SQLite's own tables ('sqlite_sequence', 'sqlite_stat1') are
  ** no part of the user's schema */
  .cat_tables = "SELECT name, sql FROM main.sqlite_schema WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
  /* hidden 0: ordinary columns (1 marks a virtual table's hidden ones) */
  .cat_columns = "SELECT name, type, \"notnull\", dflt_value, 0 "
                 "FROM pragma_table_xinfo(?1, 'main') WHERE hidden = 0 ORDER BY cid",
  .cat_keys = "SELECT 'p' AS kind, 0 AS grp, NULL, name, NULL, NULL, NULL, NULL, 1, pk AS ord "
              "FROM pragma_table_info(?1, 'main') WHERE pk > 0 "
              "UNION ALL SELECT 'u', l.seq, NULL, i.name, NULL, NULL, NULL, NULL, 1, i.seqno "
              "FROM pragma_index_list(?1, 'main') AS l, pragma_index_info(l.name, 'main') AS i "
              "WHERE l.origin = 'u' "
              "UNION ALL SELECT 'f', id, NULL, \"from\", \"table\", \"to\", on_update, "
              "on_delete, 1, seq FROM pragma_foreign_key_list(?1, 'main') "
              "ORDER BY kind, grp, ord",
  .cat_checks = NULL,
  /* key 1: the key parts, not the rowid every SQLite index ends with;
  ** origin 'c': made by CREATE INDEX, not for a constraint */
  .cat_indexes = "SELECT l.name, l.\"unique\", 1, NULL, x.name, NULL, s.sql "
                 "FROM pragma_index_list(?1, 'main') AS l, pragma_index_xinfo(l.name, 'main') AS x, "
                 "main.sqlite_schema AS s "
                 "WHERE l.origin = 'c' AND x.key = 1 AND s.type = 'index' AND s.name = l.name "
                 "ORDER BY l.name, x.seqno",
  .cat_triggers = "SELECT sql FROM main.sqlite_schema WHERE type = 'trigger' AND tbl_name = ?1 "
                  "ORDER BY name",
  .names_in_sql = 1,
  .rowid_alias = 1,
  /* SQLite builds an index under the write lock of its transaction */
  .concurrent_index = 0,
  /* a foreign key is checked as rows are written, never later: checking
  ** one is asking the pragma for the rows that break it */
  .validate_check = "SELECT * FROM pragma_foreign_key_check(",
  .fk_off_check = "PRAGMA foreign_keys",
  .fk_off = "PRAGMA foreign_keys = OFF",
  .fk_on = "PRAGMA foreign_keys = ON",
  /* one writer holds the database (BEGIN IMMEDIATE): DDL waits in
  ** busy_timeout at BEGIN, never on a table */
  .ddl_lock_timeout = NULL,
  /* what loam writes (INTEGER for both integer types: it reads as the
  ** smaller), then common spellings of other schemas */
  .read_types = (const struct loam__typename[]) {
    { "INTEGER", LOAM_COL_INTEGER }, { "INT", LOAM_COL_INTEGER },
    { "BIGINT", LOAM_COL_BIGINT }, { "TEXT", LOAM_COL_TEXT }, { "VARCHAR", LOAM_COL_TEXT },
    { "NUMERIC", LOAM_COL_NUMERIC }, { "DECIMAL", LOAM_COL_NUMERIC },
    { "BOOLEAN", LOAM_COL_BOOLEAN }, { "REAL", LOAM_COL_FLOAT }, { "DOUBLE", LOAM_COL_FLOAT },
    { "DATE", LOAM_COL_DATE }, { "TIMESTAMP", LOAM_COL_TIMESTAMP }, { "BLOB", LOAM_COL_BLOB },
    { NULL, 0 }
  }
};


/* The oid of the table named by parameter 1 in the current schema. */
#define PG_REL "(SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace " \
               "WHERE n.nspname = current_schema() AND c.relname = $1 AND c.relkind IN ('r', 'p'))"

/* A referential action of pg_constraint, spelled as in SQL. */
#define PG_ACTION(col) "CASE k." col " WHEN 'r' THEN 'RESTRICT' WHEN 'c' THEN 'CASCADE' " \
                       "WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT' ELSE 'NO ACTION' END"

static const loam__dialect_desc pg_dialect = {
  .backend = LOAM_POSTGRES,
  .name = "PostgreSQL",
  .placeholder = pg_placeholder,
  .numbered = '$',
  /* the protocol counts parameters in 16 bits */
  .max_params = 65535,
  .max_params_limit = 65535,
  .stores_nan = 1,
  .literal_qmark = 1,
  .named_marks = NULL,
  /* a trigger runs a function: its body is elsewhere */
  .trigger_bodies = 0,
  .keys_sql = pg_keys_sql,
  .keys_indexed = pg_keys_indexed,
  .keys_param = pg_keys_param,
  .keys_type = LOAM_TEXT,
  .ilike = "ILIKE",
  .not_ilike = "NOT ILIKE",
  .excluded = "EXCLUDED.",
  .offset_alone = NULL,
  .row_locks = 1,
  .no_row_locks = NULL,
  .explain = "EXPLAIN ",
  /* text format: the server reads each field with its column's input function, as it reads
  ** an untyped parameter */
  .copy_in = " FROM STDIN",
  /* libpq takes text parameters as C strings */
  .text_nul = 0,
  .begin = "BEGIN",
  .commit = "COMMIT",
  .rollback = "ROLLBACK",
  .savepoint = "SAVEPOINT",
  .release = "RELEASE SAVEPOINT",
  .rollback_to = "ROLLBACK TO SAVEPOINT",
  .isolation = { "", " ISOLATION LEVEL READ COMMITTED", " ISOLATION LEVEL REPEATABLE READ",
                 " ISOLATION LEVEL SERIALIZABLE" },
  .read_only = " READ ONLY",
  .types = {
    [LOAM_COL_INTEGER] = "integer", [LOAM_COL_BIGINT] = "bigint", [LOAM_COL_TEXT] = "text",
    [LOAM_COL_NUMERIC] = "numeric", [LOAM_COL_BOOLEAN] = "boolean",
    [LOAM_COL_FLOAT] = "double precision", [LOAM_COL_DATE] = "date",
    [LOAM_COL_TIMESTAMP] = "timestamptz", [LOAM_COL_JSON] = "jsonb", [LOAM_COL_BLOB] = "bytea",
    [LOAM_COL_ENUM] = "text"
  },
  .identity = "bigint GENERATED BY DEFAULT AS IDENTITY",
  /* varchar(n) and jsonb enforce what SQLite needs a CHECK for */
  .varchar = "varchar",
  .json_check = 0,
  .text_dates = 0,
  /* numeric is an arbitrary-precision decimal */
  .exact_numeric = 1,
  .true_literal = "true",
  .false_literal = "false",
  /* decode() rather than '\x..': it does not depend on standard_conforming_strings */
  .blob_open = "decode('",
  .blob_close = "', 'hex')",
  .now_date = "CURRENT_DATE",
  .now_timestamp = "CURRENT_TIMESTAMP",
  /* every operation has its ALTER TABLE form (zero is LOAM__ALTER_IN_PLACE) */
  .alter = { LOAM__ALTER_IN_PLACE },
  /* information_schema rather than pg_class: it is the standard's view
  ** and lists only tables the current user may see; 'current_schema()' is
  ** where an unqualified CREATE TABLE writes, so the answer follows the
  ** connection's search_path; views are left out, as SQLite's are */
  .table_exists = "SELECT count(*) FROM information_schema.tables "
                  "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' "
                  "AND table_name = ?",
  /* pg_catalog rather than information_schema: only it has index
  ** expressions and predicates, NOT VALID, identity and the referential
  ** actions of every constraint, whoever owns the table */
  .cat_tables = "SELECT c.relname, NULL FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')",
  .cat_columns = "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
                 "pg_get_expr(d.adbin, d.adrelid), a.attidentity <> '' "
                 "FROM pg_attribute a LEFT JOIN pg_attrdef d "
                 "ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                 "WHERE a.attrelid = " PG_REL " AND a.attnum > 0 AND NOT a.attisdropped "
                 "ORDER BY a.attnum",
  .cat_keys = "SELECT k.contype::text, k.oid::int8, k.conname, a.attname, fc.relname, fa.attname, "
              PG_ACTION("confupdtype") ", " PG_ACTION("confdeltype") ", k.convalidated "
              "FROM pg_constraint k "
              "CROSS JOIN LATERAL unnest(k.conkey, k.confkey) WITH ORDINALITY AS u(att, fatt, ord) "
              "JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.att "
              "LEFT JOIN pg_class fc ON fc.oid = k.confrelid "
              "LEFT JOIN pg_attribute fa ON fa.attrelid = k.confrelid AND fa.attnum = u.fatt "
              "WHERE k.conrelid = " PG_REL " AND k.contype IN ('p', 'u', 'f') "
              "ORDER BY k.contype, k.oid, u.ord",
  .cat_checks = "SELECT conname, pg_get_expr(conbin, conrelid), convalidated FROM pg_constraint "
                "WHERE conrelid = " PG_REL " AND contype = 'c'",
  /* indnkeyatts: the key parts, not the INCLUDE columns; an expression's
  ** attnum is 0 and pg_get_indexdef gives its text */
  .cat_indexes = "SELECT ic.relname, i.indisunique, i.indisvalid, pg_get_expr(i.indpred, i.indrelid), "
                 "a.attname, CASE WHEN u.att = 0 "
                 "THEN pg_get_indexdef(i.indexrelid, u.ord::int, true) END, NULL "
                 "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
                 "CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS u(att, ord) "
                 "LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.att "
                 "WHERE i.indrelid = " PG_REL " AND u.ord <= i.indnkeyatts "
                 "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid "
                 "AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x')) "
                 "ORDER BY ic.relname, u.ord",
  /* a rebuild never happens, so triggers are never recreated */
  .cat_triggers = NULL,
  .names_in_sql = 0,
  .rowid_alias = 0,
  /* a concurrent build takes no lock that blocks writes to the table */
  .concurrent_index = 1,
  .validate_check = NULL,
  .fk_off_check = NULL,
  .fk_off = NULL,
  .fk_on = NULL,
  /* an ALTER waiting for a busy table's lock queues every later query of
  ** that table behind it; failing fast and retrying keeps the table
  ** usable.  SET LOCAL: it ends with the transaction, which is all a
  ** transaction-pooling proxy allows */
  .ddl_lock_timeout = "SET LOCAL lock_timeout = ",
  /* format_type's spellings */
  .read_types = (const struct loam__typename[]) {
    { "integer", LOAM_COL_INTEGER }, { "bigint", LOAM_COL_BIGINT }, { "text", LOAM_COL_TEXT },
    { "character varying", LOAM_COL_TEXT }, { "numeric", LOAM_COL_NUMERIC },
    { "boolean", LOAM_COL_BOOLEAN }, { "double precision", LOAM_COL_FLOAT },
    { "date", LOAM_COL_DATE }, { "timestamp with time zone", LOAM_COL_TIMESTAMP },
    { "jsonb", LOAM_COL_JSON }, { "bytea", LOAM_COL_BLOB },
    { NULL, 0 }
  }
};


int loam_exact_numeric (loam_backend backend) {
  const loam__dialect_desc *d = loam__dialect(backend);
  return d != NULL && d->exact_numeric;
}


const loam__dialect_desc *loam__dialect (loam_backend backend) {
  switch (backend) {
    case LOAM_SQLITE: return &sqlite_dialect;
    case LOAM_POSTGRES: return &pg_dialect;
    default: return NULL;
  }
}

/* }====================================================================== */
