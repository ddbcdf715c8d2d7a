/*
** test_core.c: tests of the backend-independent parts of libloam: URL
** parsing, the PostgreSQL placeholder rewrite, the statement cache, the
** error structure and the buffer.
*/
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "loam.h"
#include "../../core/src/loam_int.h"


static int parse_fails (const char *url, loam_error *err) {
  loam__url u;
  int rc = loam__url_parse(url, &u, err);
  loam__url_free(&u);
  return rc == LOAM_ERROR;
}


TEST(url_sqlite_forms) {
  loam_error err = LOAM_ERROR_INIT;
  loam__url u;
  CHECK_OK(loam__url_parse("sqlite:path/to.db", &u, &err), &err);
  CHECK_INT(u.backend, LOAM_SQLITE);
  CHECK_STR(u.path, "path/to.db");
  loam__url_free(&u);
  CHECK_OK(loam__url_parse("sqlite::memory:", &u, &err), &err);
  CHECK_STR(u.path, ":memory:");
  loam__url_free(&u);
  CHECK_OK(loam__url_parse("sqlite:///abs/x%20y.db?mode=ro&busy_timeout=10", &u, &err), &err);
  CHECK_STR(u.path, "/abs/x y.db");
  CHECK_INT(u.nopts, 2);
  CHECK_STR(u.opts[0].key, "mode");
  CHECK_STR(u.opts[1].value, "10");
  loam__url_free(&u);
  loam__url_free(&u);   /* idempotent */
  loam_error_clear(&err);
}


TEST(url_postgres_forms) {
  loam_error err = LOAM_ERROR_INIT;
  loam__url u;
  CHECK_OK(loam__url_parse("postgres://bob:p%40ss@db.example:6432/shop?sslmode=disable", &u, &err),
           &err);
  CHECK_INT(u.backend, LOAM_POSTGRES);
  CHECK_STR(u.user, "bob");
  CHECK_STR(u.password, "p@ss");
  CHECK_STR(u.host, "db.example");
  CHECK_STR(u.port, "6432");
  CHECK_STR(u.dbname, "shop");
  CHECK_STR(u.opts[0].key, "sslmode");
  loam__url_free(&u);
  CHECK_OK(loam__url_parse("postgresql:///app?host=/run/sock", &u, &err), &err);
  CHECK(u.host == NULL && u.user == NULL && u.port == NULL);
  CHECK_STR(u.dbname, "app");
  CHECK_STR(u.opts[0].value, "/run/sock");
  loam__url_free(&u);
  CHECK_OK(loam__url_parse("postgresql://[::1]:5433,h2/db", &u, &err), &err);
  CHECK_STR(u.host, "::1,h2");
  CHECK_STR(u.port, "5433,");
  loam__url_free(&u);
  CHECK_OK(loam__url_parse("postgresql://u:a:b@h", &u, &err), &err);
  CHECK_STR(u.password, "a:b");
  CHECK(u.dbname == NULL);
  loam__url_free(&u);
  loam_error_clear(&err);
}


TEST(url_errors) {
  loam_error err = LOAM_ERROR_INIT;
  CHECK(parse_fails("", &err));
  CHECK_INT(err.code, LOAM_E_INVALID_URL);
  CHECK(parse_fails("just-a-path.db", &err));
  CHECK_HAS(err.message, "no scheme");
  CHECK(parse_fails("mysql://root:hunter2@x/db", &err));
  CHECK_STR(err.message, "unknown URL scheme 'mysql' (expected sqlite: or postgres://)");
  CHECK(strstr(err.message, "hunter2") == NULL);
  CHECK(parse_fails("sqlite:", &err));
  CHECK_HAS(err.message, "no path");
  CHECK(parse_fails("sqlite:x.db?mode=rx", &err));
  CHECK_HAS(err.message, "'mode' must be ro, rw or rwc");
  CHECK(parse_fails("sqlite:x.db?busy_timeout=soon", &err));
  CHECK_HAS(err.message, "busy_timeout");
  CHECK(parse_fails("sqlite:x.db?journal=wal", &err));
  CHECK_STR(err.message, "unknown SQLite URL option 'journal' (known: mode, busy_timeout)");
  CHECK(parse_fails("sqlite:x.db?flag", &err));
  CHECK_STR(err.message, "URL option 'flag' has no value");
  CHECK(parse_fails("postgres:db", &err));
  CHECK_HAS(err.message, "must start with postgres://");
  CHECK(parse_fails("postgres://u:secret@h:99999/db", &err));
  CHECK_STR(err.message, "invalid port '99999' in the URL (expected 1 to 65535)");
  CHECK(parse_fails("postgres://h:port/db", &err));
  CHECK_HAS(err.message, "invalid port 'port'");
  CHECK(parse_fails("postgres://u:sec%zzret@h/db", &err));
  CHECK_STR(err.message, "bad percent-encoding in the password of the URL");
  CHECK(strstr(err.message, "sec") == NULL);
  CHECK(parse_fails("postgres://h/d%00b", &err));
  CHECK_HAS(err.message, "percent-encoding");
  CHECK(parse_fails("postgres://[::1/db", &err));
  CHECK_HAS(err.message, "unterminated '['");
  CHECK(parse_fails("postgres://a,,b/db", &err));
  CHECK_HAS(err.message, "empty host");
  loam_error_clear(&err);
  loam_error_clear(&err);
  loam_error_clear(NULL);
}


static const char *dollar (const char *sql, int *n, loam_error *err) {
  static loam__buf b = LOAM__BUF_INIT;
  loam__buf_reset(&b);
  if (loam__sql_to_dollar(sql, &b, n, err) != LOAM_OK) return NULL;
  return b.p;
}


TEST(sql_to_dollar) {
  loam_error err = LOAM_ERROR_INIT;
  int n = -1;
  CHECK_STR(dollar("SELECT ?, ?", &n, &err), "SELECT $1, $2");
  CHECK_INT(n, 2);
  CHECK_STR(dollar("SELECT 1", &n, &err), "SELECT 1");
  CHECK_INT(n, 0);
  CHECK_STR(dollar("SELECT '?', \"a?\", ? -- ?\n/* ? /* ? */ ? */ , ?", &n, &err),
            "SELECT '?', \"a?\", $1 -- ?\n/* ? /* ? */ ? */ , $2");
  CHECK_INT(n, 2);
  CHECK_STR(dollar("SELECT 'it''s ?', E'\\' ?', ?", &n, &err),
            "SELECT 'it''s ?', E'\\' ?', $1");
  CHECK_STR(dollar("SELECT $$ ? $$, $tag$ a?$ $tag$, ?", &n, &err),
            "SELECT $$ ? $$, $tag$ a?$ $tag$, $1");
  CHECK_INT(n, 1);
  CHECK_STR(dollar("SELECT doc ?? 'k' FROM t WHERE id = ?", &n, &err),
            "SELECT doc ? 'k' FROM t WHERE id = $1");
  CHECK_INT(n, 1);
  CHECK_STR(dollar("SELECT $2, $1, $2", &n, &err), "SELECT $2, $1, $2");
  CHECK_INT(n, 2);
  CHECK_STR(dollar("SELECT a$1 FROM t;  ", &n, &err), "SELECT a$1 FROM t;  ");
  CHECK_INT(n, 0);
  CHECK_STR(dollar("SELECT 1; -- done\n", &n, &err), "SELECT 1; -- done\n");
  CHECK(dollar("SELECT ?, $1", &n, &err) == NULL);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_HAS(err.message, "mixes '?' and '$n'");
  CHECK(dollar("SELECT 1; DROP TABLE x", &n, &err) == NULL);
  CHECK_HAS(err.message, "more than one statement");
  CHECK(dollar("SELECT ';'; ", &n, &err) != NULL);
  loam_error_clear(&err);
}


/*
** Found by fuzzing: '?NNN' became '$1NNN' (its digits kept after the new
** number), and a '?' glued to a name or a number became part of it
** ('LIMIT?' gave the identifier 'LIMIT$1'), so PostgreSQL saw other
** parameters than were counted.
*/
TEST(sql_to_dollar_numbered_and_glued) {
  loam_error err = LOAM_ERROR_INIT;
  int n = -1;
  CHECK_STR(dollar("INSERT INTO t VALUES (?1, ?2, ?1)", &n, &err),
            "INSERT INTO t VALUES ($1, $2, $1)");
  CHECK_INT(n, 2);
  CHECK_STR(dollar("SELECT ?12", &n, &err), "SELECT $12");
  CHECK_INT(n, 12);
  CHECK_STR(dollar("SELECT a FROM t LIMIT?", &n, &err), "SELECT a FROM t LIMIT $1");
  CHECK_INT(n, 1);
  CHECK_STR(dollar("SELECT x=?,f(?)", &n, &err), "SELECT x=$1,f($2)");
  CHECK_INT(n, 2);
  CHECK_STR(dollar("SELECT 2.?", &n, &err), "SELECT 2. $1");
  CHECK_INT(n, 1);
  CHECK_STR(dollar("SELECT $?", &n, &err), "SELECT $ $1");
  CHECK_INT(n, 1);
  CHECK(dollar("SELECT ?, ?2", &n, &err) == NULL);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_HAS(err.message, "mixes '?' and '$n'");
  loam_error_clear(&err);
}


TEST(sql_starts_with) {
  CHECK(loam__sql_starts_with("  -- c\n /* x */ insert into t", "INSERT"));
  CHECK(!loam__sql_starts_with("INSERTX", "INSERT"));
  CHECK(!loam__sql_starts_with("select 1", "INSERT"));
}


static int destroyed;
static void count_destroy (void *ud, void *h) { (void)ud; (void)h; destroyed++; }

TEST(cache_lru_and_pinning) {
  loam__cache c;
  loam__centry *a, *b, *d, *e;
  int i;
  char key[32];
  destroyed = 0;
  loam__cache_init(&c, 2, count_destroy, NULL);
  a = loam__cache_put(&c, "a", 1, (void *)1);
  CHECK(a != NULL);
  CHECK(loam__cache_put(&c, "a", 1, (void *)9) == NULL);   /* same key pinned */
  CHECK(loam__cache_get(&c, "a", 1) == NULL);                /* pinned: not shared */
  loam__cache_release(&c, a);
  b = loam__cache_put(&c, "b", 1, (void *)2);
  loam__cache_release(&c, b);
  a = loam__cache_get(&c, "a", 1);                           /* 'a' most recent now */
  CHECK(a != NULL && loam__cache_handle(a) == (void *)1);
  loam__cache_release(&c, a);
  d = loam__cache_put(&c, "d", 1, (void *)3);                /* evicts 'b' */
  loam__cache_release(&c, d);
  CHECK_INT(destroyed, 1);
  CHECK(loam__cache_get(&c, "b", 1) == NULL);
  CHECK_INT(c.count, 2);
  /* Pinned entries survive eviction; the cache overflows until release. */
  a = loam__cache_get(&c, "a", 1);
  d = loam__cache_get(&c, "d", 1);
  e = loam__cache_put(&c, "e", 1, (void *)4);
  CHECK_INT(c.count, 3);
  loam__cache_release(&c, a);
  CHECK_INT(c.count, 2);
  loam__cache_release(&c, d);
  loam__cache_drop(&c, e);
  CHECK_INT(c.count, 1);
  /* Growth of the hash table keeps every key reachable. */
  loam__cache_clear(&c);
  loam__cache_init(&c, 1000, count_destroy, NULL);
  for (i = 0; i < 500; i++) {
    snprintf(key, sizeof key, "k%d", i);
    loam__cache_release(&c, loam__cache_put(&c, key, strlen(key), (void *)(intptr_t)(i + 1)));
  }
  for (i = 0; i < 500; i++) {
    snprintf(key, sizeof key, "k%d", i);
    e = loam__cache_get(&c, key, strlen(key));
    CHECK(e != NULL && loam__cache_handle(e) == (void *)(intptr_t)(i + 1));
    loam__cache_release(&c, e);
  }
  destroyed = 0;
  loam__cache_clear(&c);
  CHECK_INT(destroyed, 500);
  /* Capacity 0 caches nothing. */
  loam__cache_init(&c, 0, count_destroy, NULL);
  CHECK(loam__cache_put(&c, "x", 1, (void *)1) == NULL);
  loam__cache_clear(&c);
}


TEST(buf_and_error_names) {
  loam__buf b = LOAM__BUF_INIT;
  int i;
  CHECK_STR(loam__buf_cstr(&b), "");
  for (i = 0; i < 1000; i++) loam__buf_addf(&b, "%d,", i % 10);
  CHECK_INT(b.len, 2000);
  loam__buf_reset(&b);
  loam__buf_adds(&b, "x");
  CHECK_STR(loam__buf_cstr(&b), "x");
  loam__buf_free(&b);
  loam__buf_free(&b);
  CHECK_STR(loam_errcode_name(LOAM_E_UNIQUE_VIOLATION), "unique_violation");
  CHECK_STR(loam_errcode_name(LOAM_E_DATABASE_ERROR), "database_error");
  CHECK_STR(loam_errcode_name(-1), "unknown");
  CHECK_STR(loam_errcode_name(LOAM_E__COUNT), "unknown");
  CHECK_STR(loam_type_name(LOAM_BLOB), "blob");
}


TEST(api_null_handles) {
  loam_error err = LOAM_ERROR_INIT;
  loam_stmt *s = (loam_stmt *)1;
  loam_value v;
  loam_conn_close(NULL);
  loam_stmt_close(NULL);
  CHECK_INT(loam_query(NULL, "SELECT 1", NULL, 0, 0, &s, &err), LOAM_ERROR);
  CHECK(s == NULL);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_STR(err.message, "attempt to use a closed connection");
  CHECK_INT(loam_step(NULL, &err), LOAM_ERROR);
  CHECK_INT(loam_column(NULL, 0, &v), LOAM_ERROR);
  CHECK_INT(loam_column_count(NULL), 0);
  CHECK(loam_column_name(NULL, 0) == NULL);
  CHECK_INT(loam_connect("sqlite::memory:", NULL, NULL, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  loam_error_clear(&err);
}


TEST(identifiers_and_literals) {
  loam_error err = LOAM_ERROR_INIT;
  loam__buf b = LOAM__BUF_INIT;
  char longname[80];
  loam__buf_ident(&b, "we\"ird", 6);
  loam__buf_addc(&b, ' ');
  loam__buf_literal(&b, "it's", 4);
  CHECK_STR(loam__buf_cstr(&b), "\"we\"\"ird\" 'it''s'");
  loam__buf_free(&b);
  CHECK_OK(loam__ident_check("orders", 6, &err), &err);
  CHECK_INT(loam__ident_check("", 0, &err), LOAM_ERROR);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_STR(err.message, "invalid identifier: empty name");
  CHECK_INT(loam__ident_check("a\0b", 3, &err), LOAM_ERROR);
  CHECK_HAS(err.message, "NUL");
  memset(longname, 'x', 64);
  CHECK_INT(loam__ident_check(longname, 64, &err), LOAM_ERROR);
  CHECK_HAS(err.message, "longer than 63 bytes");
  CHECK_OK(loam__ident_check(longname, 63, &err), &err);
  loam_error_clear(&err);
}
