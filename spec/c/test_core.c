/*
** test_core.c: tests of the backend-independent parts of libloam: URL
** parsing, the PostgreSQL placeholder rewrite, the statement cache, the
** error structure, the buffer and the hash that fingerprints, the
** statement cache and the batch loader share.
*/
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "loam.h"
#include "conn/conn_int.h"
#include "sql/sql_int.h"


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
  CHECK_STR(err.message, "SQLite URL option 'mode' must be ro, rw or rwc (got 'rx')");
  CHECK(parse_fails("sqlite:x.db?busy_timeout=soon", &err));
  CHECK_HAS(err.message, "busy_timeout");
  CHECK(parse_fails("sqlite:x.db?journal=wal", &err));
  CHECK_STR(err.message, "unknown SQLite URL option 'journal' "
                         "(known: mode, busy_timeout, journal_mode, immutable)");
  CHECK(parse_fails("sqlite:x.db?journal_mode=fast", &err));
  CHECK_STR(err.message, "SQLite URL option 'journal_mode' must be wal, delete, truncate, "
                         "persist, memory or off (got 'fast')");
  CHECK(parse_fails("sqlite:x.db?immutable=yes", &err));
  CHECK_STR(err.message, "SQLite URL option 'immutable' must be 1, 0, true or false (got 'yes')");
  CHECK(parse_fails("postgres://h/db?sslmode=sometimes", &err));
  CHECK_STR(err.message, "PostgreSQL URL option 'sslmode' must be one of disable, allow, prefer, "
                         "require, verify-ca, verify-full (got 'sometimes')");
  CHECK(parse_fails("postgres://h/db?connect_timeout=soon", &err));
  CHECK_STR(err.message, "PostgreSQL URL option 'connect_timeout' must be an integer (got 'soon')");
  CHECK(parse_fails("postgres://h/db?port=5432,x", &err));
  CHECK_HAS(err.message, "option 'port' must be a port");
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


/*
** URLs whose user name and password hold the characters that delimit the
** other parts ('/', '?', '@', ':', '&', '#', ',', '[') unencoded, or that
** break in every branch of the parser.  Every piece of every user name and
** password contains "SECRET": whether a URL parses or fails, no other part
** and no message may contain it.
*/
static const char *const hostile[] = {
  "postgres://u:SECRET1/SECRET2@db.example/app",
  "postgres://u:SECRET1?SECRET2@db.example/app",
  "postgres://u:SECRET1?SECRET2=x@db.example/app?sslmode=disable",
  "postgres://u:SECRET1/SECRET2@db.example:5432/app?x=@",
  "postgres://u:SECRET1@SECRET2@db.example/app",
  "postgres://u:SECRET1@SECRET2/SECRET3@db.example/app",
  "postgres://u:SECRET1:SECRET2@db.example/app",
  "postgres://SECRETU1:SECRET2:SECRET3@h:5432/db",
  "postgres://u:SECRET1&SECRET2=SECRET3@h/db",
  "postgres://u:SECRET1#SECRET2@h/db",
  "postgres://u:SECRET1,SECRET2@h1,h2/db",
  "postgres://u:SECRET1[SECRET2@[::1]:5432/db",
  "postgres://u:SECRET1]:SECRET2@[::1]/db",
  "postgres://u:SECRET1%zzSECRET2@h/db",
  "postgres://u:SECRET1%00SECRET2@h/db",
  "postgres://SECRETU%zz:SECRET1@h/db",
  "postgres://:SECRET1@h/db",
  "postgres://SECRETU:@h/db",
  "postgres://SECRETU@/db?host=/run/sock",
  "postgres://u:SECRET1@h1,,h2/db",
  "postgres://u:SECRET1@[::1/db",
  "postgres://u:SECRET1@[::1]x/db",
  "postgres://u:SECRET1@h:99999/db",
  "postgres://u:SECRET1@h:/db",
  "postgres://u:SECRET1@h/d%zzb",
  "postgres://u:SECRET1@/db?host=%zz",
  "postgres://u:SECRET1@h/db?flag",
  "postgres://u:SECRET1@h/db?=v",
  "postgres://u:SECRET1@h/db?sslmode=nope",
  "postgres://u:SECRET1@h/db?%zz=1",
  "postgres://h/db?password=SECRET1&SECRET2",
  "postgres://h/db?password=SECRET1&=SECRET2",
  "postgres://h/db?password=SECRET1&sslmode=SECRET2",
  "postgres://h/db?password=SECRET1&port=SECRET2",
  "postgres://h/db?password=SECRET1&connect_timeout=SECRET2",
  "postgres://h/db?sslpassword=SECRET1&target_session_attrs=SECRET2",
  "postgres://h/db?password=SECRET1%zz",
  "postgresql://SECRETU:SECRET1@[SECRET2",
  "postgres:SECRETU:SECRET1@h/db",
  "mysql://SECRETU:SECRET1@h/db",
  "SECRETU:SECRET1@h/db",
  "//SECRETU:SECRET1@h/db",
  "sqlite://SECRETU:SECRET1@/tmp/x.db",
  "sqlite://SECRETU:SECRET1@h/x.db?mode=ro",
  NULL
};


/* True when any field of 'err' contains 's'. */
static int error_has (const loam_error *err, const char *s) {
  const char *f[5];
  int i;
  f[0] = err->message; f[1] = err->detail; f[2] = err->constraint;
  f[3] = err->table; f[4] = err->column;
  for (i = 0; i < 5; i++) if (f[i] != NULL && strstr(f[i], s) != NULL) return 1;
  return strstr(err->sqlstate, s) != NULL;
}


static int has (const char *field, const char *s) {
  return field != NULL && strstr(field, s) != NULL;
}


TEST(url_never_shows_userinfo) {
  int i, j;
  for (i = 0; hostile[i] != NULL; i++) {
    loam_error err = LOAM_ERROR_INIT;
    loam__url u;
    int rc = loam__url_parse(hostile[i], &u, &err);
    if (rc == LOAM_OK) {
      int bad = has(u.host, "SECRET") || has(u.port, "SECRET") || has(u.dbname, "SECRET") ||
                has(u.path, "SECRET");
      for (j = 0; j < u.nopts; j++)
        if (!u.opts[j].secret && !loam__url_is_secret_key(u.opts[j].key) &&
            (has(u.opts[j].key, "SECRET") || has(u.opts[j].value, "SECRET")))
          bad = 1;
      if (bad) t_fail(__FILE__, __LINE__, "a secret left the userinfo parsing '%s'", hostile[i]);
    }
    else {
      if (err.code != LOAM_E_INVALID_URL || err.message == NULL)
        t_fail(__FILE__, __LINE__, "'%s' failed with code %d", hostile[i], (int)err.code);
      if (error_has(&err, "SECRET"))
        t_fail(__FILE__, __LINE__, "'%s' gave the message '%s'", hostile[i], err.message);
    }
    loam__url_free(&u);
    loam_error_clear(&err);
    if (t_failed()) return;
  }
}


/* Each part of the userinfo lands whole in its field. */
TEST(url_userinfo_split) {
  loam_error err = LOAM_ERROR_INIT;
  loam__url u;
  CHECK_OK(loam__url_parse("postgres://u:a@b:c#d,e[f]@h/db", &u, &err), &err);
  CHECK_STR(u.user, "u");
  CHECK_STR(u.password, "a@b:c#d,e[f]");
  CHECK_STR(u.host, "h");
  CHECK_STR(u.dbname, "db");
  loam__url_free(&u);
  CHECK_OK(loam__url_parse("postgres://u:p%2Fq%3Fr@h/db?application_name=a%40b", &u, &err),
           &err);
  CHECK_STR(u.password, "p/q?r");
  CHECK_STR(u.opts[0].value, "a@b");
  loam__url_free(&u);
  CHECK(parse_fails("postgres://u:p/q@h/db", &err));
  CHECK_STR(err.message, "the URL has an '@' after a '/' or '?': percent-encode '@', '/' and '?' "
                         "in the user name and password (%40, %2F, %3F) and '@' in the database "
                         "name and options (%40)");
  CHECK(parse_fails("postgres://h/db?application_name=a@b", &err));
  CHECK_HAS(err.message, "'@' after a '/' or '?'");
  CHECK(parse_fails("postgres://h/db?password=x&bogus", &err));
  CHECK_STR(err.message, "URL option #2 has no value (it follows a password option: "
                         "write '&' inside a password as %26)");
  CHECK(parse_fails("postgres://h/db?password=x&sslmode=nope", &err));
  CHECK_STR(err.message, "PostgreSQL URL option #2 must be one of disable, allow, prefer, "
                         "require, verify-ca, verify-full (it follows a password option: "
                         "write '&' inside a password as %26)");
  CHECK(parse_fails("bob:pw@h/db", &err));
  CHECK_STR(err.message, "unknown URL scheme (expected sqlite: or postgres://)");
  CHECK(parse_fails("sqlite://bob:pw@/tmp/x.db", &err));
  CHECK_STR(err.message, "SQLite URL takes no user name or password (write sqlite:path/to.db)");
  loam_error_clear(&err);
}


static const char *scanned (const char *sql, loam_backend be, int *n, loam_error *err) {
  static loam__buf b = LOAM__BUF_INIT;
  loam__buf_reset(&b);
  if (loam__sql_params(sql, be, &b, n, err) != LOAM_OK) return NULL;
  return b.p;
}

static const char *dollar (const char *sql, int *n, loam_error *err) {
  return scanned(sql, LOAM_POSTGRES, n, err);
}

static const char *qmark (const char *sql, int *n, loam_error *err) {
  return scanned(sql, LOAM_SQLITE, n, err);
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
  CHECK_STR(err.message, "SQL mixes '?' and numbered placeholders ('$1'); use one style");
  CHECK(dollar("SELECT 1; DROP TABLE x", &n, &err) == NULL);
  CHECK_HAS(err.message, "more than one statement");
  CHECK(dollar("SELECT ';'; ", &n, &err) != NULL);
  loam_error_clear(&err);
}


/*
** Comments glued to a placeholder: the token after '?' starts at once,
** with no blank to swallow first, so the comment branches of the scanner
** are what keeps the '?' inside them.
*/
TEST(sql_params_glued_comments) {
  loam_error err = LOAM_ERROR_INIT;
  int n = -1;
  CHECK_STR(dollar("SELECT ?--?", &n, &err), "SELECT $1--?");
  CHECK_INT(n, 1);
  CHECK_STR(dollar("SELECT ?--?\n,?", &n, &err), "SELECT $1--?\n,$2");
  CHECK_INT(n, 2);
  CHECK_STR(dollar("SELECT ?/*?*/", &n, &err), "SELECT $1/*?*/");
  CHECK_INT(n, 1);
  CHECK_STR(dollar("SELECT ?/*?/*?*/?*/,?", &n, &err), "SELECT $1/*?/*?*/?*/,$2");
  CHECK_INT(n, 2);
  CHECK_STR(dollar("SELECT ?'?',?\"?\"", &n, &err), "SELECT $1'?',$2\"?\"");
  CHECK_INT(n, 2);
  CHECK_STR(dollar("SELECT ?$$?$$", &n, &err), "SELECT $1$$?$$");
  CHECK_INT(n, 1);
  CHECK_STR(dollar("SELECT $1--$2", &n, &err), "SELECT $1--$2");
  CHECK_INT(n, 1);
  CHECK_STR(qmark("SELECT ?--?", &n, &err), "SELECT ?--?");
  CHECK_INT(n, 1);
  CHECK_STR(qmark("SELECT ?/*?*/", &n, &err), "SELECT ?/*?*/");
  CHECK_INT(n, 1);
  CHECK_STR(qmark("SELECT $1--$2\n", &n, &err), "SELECT ?1--$2\n");
  CHECK_INT(n, 1);
  loam_error_clear(&err);
}


/* '$n' and '?n' are the n-th parameter on both backends, each in its own form. */
TEST(sql_params_numbered) {
  loam_error err = LOAM_ERROR_INIT;
  int n = -1;
  CHECK_STR(qmark("UPDATE t SET c = $2 WHERE id = $1", &n, &err),
            "UPDATE t SET c = ?2 WHERE id = ?1");
  CHECK_INT(n, 2);
  CHECK_STR(dollar("UPDATE t SET c = ?2 WHERE id = ?1", &n, &err),
            "UPDATE t SET c = $2 WHERE id = $1");
  CHECK_INT(n, 2);
  CHECK_STR(dollar("SELECT ?12, $003", &n, &err) == NULL ? "refused" : "kept", "refused");
  CHECK_STR(err.message, "SQL uses placeholder 12 but not 1: every parameter must appear in "
                         "the text");
  CHECK_STR(qmark("SELECT $2, ?1, $2", &n, &err), "SELECT ?2, ?1, ?2");
  CHECK_INT(n, 2);
  CHECK_STR(qmark("SELECT ?, ?", &n, &err), "SELECT ?, ?");
  CHECK_INT(n, 2);
  CHECK_STR(qmark("SELECT '$1', \"?\", ? -- $1", &n, &err), "SELECT '$1', \"?\", ? -- $1");
  CHECK_INT(n, 1);
  CHECK(qmark("SELECT ?, $1", &n, &err) == NULL);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_STR(err.message, "SQL mixes '?' and numbered placeholders ('$1'); use one style");
  CHECK(qmark("SELECT ?1, ?", &n, &err) == NULL);
  CHECK_STR(err.message, "SQL mixes '?' and numbered placeholders ('?1'); use one style");
  CHECK(dollar("SELECT $1, $3", &n, &err) == NULL);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_STR(err.message, "SQL uses placeholder 3 but not 2: every parameter must appear in "
                         "the text");
  CHECK(qmark("SELECT $1, $3", &n, &err) == NULL);
  CHECK_HAS(err.message, "uses placeholder 3 but not 2");
  CHECK(qmark("SELECT $0", &n, &err) == NULL);
  CHECK_STR(err.message, "placeholder '$0' is out of range (1 to 65535)");
  CHECK(dollar("SELECT ?65536", &n, &err) == NULL);
  CHECK_STR(err.message, "placeholder '?65536' is out of range (1 to 65535)");
  CHECK(dollar("SELECT $99999999999999999999", &n, &err) == NULL);
  CHECK_STR(err.message, "placeholder '$99999999999' is out of range (1 to 65535)");
  CHECK(qmark("SELECT doc ?? 'k'", &n, &err) == NULL);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_HAS(err.message, "PostgreSQL only");
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
  CHECK_STR(dollar("SELECT a FROM t LIMIT?", &n, &err), "SELECT a FROM t LIMIT $1");
  CHECK_INT(n, 1);
  CHECK_STR(dollar("SELECT a FROM t LIMIT?1", &n, &err), "SELECT a FROM t LIMIT $1");
  CHECK_INT(n, 1);
  CHECK_STR(qmark("SELECT a FROM t LIMIT?", &n, &err), "SELECT a FROM t LIMIT?");
  CHECK_INT(n, 1);
  CHECK_STR(dollar("SELECT x=?,f(?)", &n, &err), "SELECT x=$1,f($2)");
  CHECK_INT(n, 2);
  CHECK_STR(dollar("SELECT 2.?", &n, &err), "SELECT 2. $1");
  CHECK_INT(n, 1);
  CHECK_STR(dollar("SELECT $?", &n, &err), "SELECT $ $1");
  CHECK_INT(n, 1);
  CHECK(dollar("SELECT ?, ?2", &n, &err) == NULL);
  CHECK_INT(err.code, LOAM_E_MISUSE);
  CHECK_HAS(err.message, "mixes '?' and numbered placeholders");
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
  /* Codes are append-only: the older ones keep their numbers. */
  CHECK_INT(LOAM_E_DATABASE_ERROR, 22);
  CHECK_STR(loam_errcode_name(LOAM_E_DISK_FULL), "disk_full");
  CHECK_STR(loam_errcode_name(LOAM_E_CORRUPT), "corrupt");
  CHECK_STR(loam_errcode_name(LOAM_E_IO_ERROR), "io_error");
  CHECK_STR(loam_errcode_name(LOAM_E_UNDEFINED_FUNCTION), "undefined_function");
  for (i = 0; i < LOAM_E__COUNT; i++) CHECK(strcmp(loam_errcode_name(i), "unknown") != 0);
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


/*
** The one FNV-1a of libloam: the published 64-bit test vectors, pieces
** that chain into the hash of their concatenation, and the fingerprints
** computed before the three copies of the hash became one (they are
** documented and may be stored by users, so they must never change).
*/
TEST(fnv1a_vectors_and_fingerprints) {
  CHECK(loam__fnv1a(LOAM__FNV_BASIS, "", 0) == UINT64_C(0xcbf29ce484222325));
  CHECK(loam__fnv1a(LOAM__FNV_BASIS, "a", 1) == UINT64_C(0xaf63dc4c8601ec8c));
  CHECK(loam__fnv1a(LOAM__FNV_BASIS, "foobar", 6) == UINT64_C(0x85944171f73967e8));
  CHECK(loam__fnv1a(loam__fnv1a(LOAM__FNV_BASIS, "foo", 3), "bar", 3)
        == UINT64_C(0x85944171f73967e8));
  CHECK(LOAM__VALUE_HASH_INIT == UINT64_C(0xcbf29ce484222325));
  CHECK(loam_fingerprint("") == UINT64_C(0xcbf29ce484222325));
  CHECK(loam_fingerprint("SELECT 1") == UINT64_C(0x199e7dca63ea8858));
  CHECK(loam_fingerprint("select  *  from t where id = 42 and name = 'x' -- c")
        == UINT64_C(0x0fffaf7143d0a035));
  CHECK(loam_fingerprint("SELECT \"id\", \"email\" FROM \"customers\" WHERE (\"id\" = ?)")
        == UINT64_C(0xcbf29f1bf13e7924));
  CHECK(loam_fingerprint("SELECT * FROM t WHERE id IN (1, 2, 3)")
        == UINT64_C(0x1981c03d883f566a));
}


/* A byte-wise FNV-1a written out here, apart from the library's. */
static uint64_t fnv_bytes (uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  while (n-- > 0) h = (h ^ *b++) * UINT64_C(0x100000001b3);
  return h;
}


/* The batch loader's key hash is FNV-1a over the type tag and the value's bytes. */
TEST(value_hash_is_fnv1a) {
  loam_value i = loam_int(42), d = loam_double(1.5), s = loam_text("abc", 3);
  unsigned char tag;
  uint64_t want;
  tag = (unsigned char)LOAM_INT;
  want = fnv_bytes(fnv_bytes(UINT64_C(0xcbf29ce484222325), &tag, 1), &i.u.i, sizeof i.u.i);
  CHECK(loam__value_hash(LOAM__VALUE_HASH_INIT, &i) == want);
  tag = (unsigned char)LOAM_DOUBLE;
  want = fnv_bytes(fnv_bytes(want, &tag, 1), &d.u.d, sizeof d.u.d);
  CHECK(loam__value_hash(loam__value_hash(LOAM__VALUE_HASH_INIT, &i), &d) == want);
  tag = (unsigned char)LOAM_TEXT;
  want = fnv_bytes(fnv_bytes(UINT64_C(0xcbf29ce484222325), &tag, 1), &s.u.s.len,
                   sizeof s.u.s.len);
  want = fnv_bytes(want, "abc", 3);
  CHECK(loam__value_hash(LOAM__VALUE_HASH_INIT, &s) == want);
}


/*
** Numeric text past 64 bits is the double it is, not the clamped
** INT64_MAX that strtoll gives, so a numeric key of 1e20 still equals the
** key 1e20 and not 9223372036854775807.
*/
TEST(value_canon_numeric_text_past_64_bits) {
  loam_value t = loam_text("100000000000000000000", 21), out;
  loam_value big = loam_int(INT64_MAX);
  CHECK(loam__value_canon(&t, LOAM__VC_NUM, 0, &out));
  CHECK_INT(out.type, LOAM_DOUBLE);
  CHECK(out.u.d == 1e20);
  t = loam_text("-9223372036854775808", 20);
  CHECK(loam__value_canon(&t, LOAM__VC_NUM, 0, &out));
  CHECK_INT(out.type, LOAM_INT);
  CHECK(out.u.i == INT64_MIN);
  CHECK(loam__value_canon(&big, LOAM__VC_NUM, 0, &out));
  CHECK(out.u.i == INT64_MAX);
}
