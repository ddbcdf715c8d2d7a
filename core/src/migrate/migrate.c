/*
** migrate.c: the migration runner.
**
** Applies and reverts versioned migrations (lists of 'loam_op') and keeps
** their history, with the promises loam.h lists: a transaction per
** migration with its history row inside it, journaled steps for those
** that must run outside a transaction (up and down alike), one migrator at a time (lock.c),
** a short lock_timeout with retries for DDL on PostgreSQL, checksums of
** applied migrations, and a refusal of two heads, missing parents and
** migrations out of order.  The runner's own tables are created with
** loam's DDL, so they read alike on both backends; the statements that
** differ by backend (the lock_timeout, SQLite's foreign keys pragma) come
** from the dialect.
*/
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/migrate_int.h"
#include "sql/dialect_int.h"


/* An applied migration as the history table keeps it. */
typedef struct hist {
  char *version, *checksum, *applied_at;
  int64_t duration_ms;
} hist;

typedef struct Run {
  loam_conn *c;
  const loam__dialect_desc *d;
  loam_migrate_opts o;
  char owner[256];
  const loam_migration **m;      /* the migrations, by version */
  int n;
  hist *h;                       /* the history, by version */
  int nh;
  int clear;                     /* the transaction that records also clears the journal */
  loam_error *err;
} Run;


/* {======================================================================
** Messages
** ======================================================================= */

/*
** Puts "'fmt'...: " before the message of the error in 'err', keeping its
** code and the rest: the failure of an operation, told as the step of the
** migration it belongs to.
*/
static int prefix (loam_error *err, const char *fmt, ...) LOAMI_PRINTF(2, 3);
static int prefix (loam_error *err, const char *fmt, ...) {
  loam__buf b = LOAM__BUF_INIT;
  va_list ap;
  if (err == NULL) return LOAM_ERROR;
  va_start(ap, fmt);
  loam__buf_vaddf(&b, fmt, ap);
  va_end(ap);
  loam__buf_adds(&b, ": ");
  loam__buf_adds(&b, err->message != NULL ? err->message : "");
  if (loam__buf_cstr(&b) != NULL) {
    free(err->message);
    err->message = b.p;
  }
  else loam__buf_free(&b);
  return LOAM_ERROR;
}


static const char *nm (const char *s) {
  return s != NULL ? s : "";
}

/* }====================================================================== */


/* {======================================================================
** The list of migrations
** ======================================================================= */

static int by_version (const void *a, const void *b) {
  return strcmp((*(const loam_migration *const *)a)->version,
                (*(const loam_migration *const *)b)->version);
}


static const loam_migration *find (const Run *r, const char *version) {
  int i;
  for (i = 0; i < r->n; i++)
    if (strcmp(r->m[i]->version, version) == 0) return r->m[i];
  return NULL;
}


/* Whether some migration names 'version' as a parent. */
static int followed (const Run *r, const char *version) {
  int i, j;
  for (i = 0; i < r->n; i++)
    for (j = 0; j < r->m[i]->nparents; j++)
      if (strcmp(r->m[i]->parents[j], version) == 0) return 1;
  return 0;
}


/*
** Sorts the migrations and, with 'graph', checks that they form one line
** of history (up refuses to apply anything else; down and status work on
** whatever is given, to report and undo what is there): each
** names versions that exist as parents, exactly one names none, and one
** alone is followed by no other (two such are two heads, made by two
** branches that each added a migration: a merge migration names both).
*/
static int load (Run *r, const loam_migration *migs, int n, int graph) {
  const loam_migration *head = NULL, *root = NULL;
  int i, j;
  if (n < 0 || (n > 0 && migs == NULL))
    return loam__err(r->err, LOAM_E_MISUSE, "migrations: bad list");
  if (n > 0 && (r->m = malloc(sizeof *r->m * (size_t)n)) == NULL) return loam__err_nomem(r->err);
  for (i = 0; i < n; i++) {
    const loam_migration *g = &migs[i];
    if (g->version == NULL || g->version[0] == '\0' || g->name == NULL)
      return loam__err(r->err, LOAM_E_MISUSE, "migration #%d has no version or name", i + 1);
    if (g->nup < 0 || (g->nup > 0 && g->up == NULL) || g->ndown < 0 ||
        (g->ndown > 0 && g->down == NULL) || g->nparents < 0 ||
        (g->nparents > 0 && g->parents == NULL) || (g->source == NULL && g->source_len > 0))
      return loam__err(r->err, LOAM_E_MISUSE, "migration %s (%s): bad operation, parent or "
                       "source list", g->version, g->name);
    r->m[r->n++] = g;
  }
  if (r->n > 1) qsort(r->m, (size_t)r->n, sizeof *r->m, by_version);
  for (i = 1; i < r->n; i++)
    if (strcmp(r->m[i]->version, r->m[i - 1]->version) == 0)
      return loam__err(r->err, LOAM_E_MIGRATION_CONFLICT, "two migrations have version %s: "
                       "%s and %s", r->m[i]->version, r->m[i - 1]->name, r->m[i]->name);
  for (i = 0; graph && i < r->n; i++) {
    const loam_migration *g = r->m[i];
    for (j = 0; j < g->nparents; j++)
      if (g->parents[j] == NULL || find(r, g->parents[j]) == NULL)
        return loam__err(r->err, LOAM_E_MIGRATION_CONFLICT, "migration %s (%s) follows %s, "
                         "which is not among the migrations", g->version, g->name,
                         nm(g->parents[j]));
    if (g->nparents == 0) {
      if (root != NULL)
        return loam__err(r->err, LOAM_E_MIGRATION_CONFLICT, "two migrations follow none: "
                         "%s (%s) and %s (%s); each but the first names its parent",
                         root->version, root->name, g->version, g->name);
      root = g;
    }
    if (!followed(r, g->version)) {
      if (head != NULL)
        return loam__err(r->err, LOAM_E_MIGRATION_CONFLICT, "two heads: %s (%s) and %s (%s) "
                         "are both followed by no migration, as after a merge of two branches; "
                         "add a merge migration that follows both", head->version, head->name,
                         g->version, g->name);
      head = g;
    }
  }
  return LOAM_OK;
}


void loam_migration_checksum (const char *source, size_t len, char out[17]) {
  static const char hex[] = "0123456789abcdef";
  uint64_t h = loam__fnv1a(LOAM__FNV_BASIS, source != NULL ? source : "", source ? len : 0);
  int i;
  for (i = 15; i >= 0; i--) {
    out[i] = hex[h & 15];
    h >>= 4;
  }
  out[16] = '\0';
}

/* }====================================================================== */


/* {======================================================================
** The runner's tables
** ======================================================================= */

static int ddl (Run *r, const loam_table_def *t) {
  loam_rendered *rs = NULL;
  int rc = loam_render_create_table(t, loam_conn_backend(r->c), &rs, r->err);
  if (rc == LOAM_OK) rc = loam_exec_rendered(r->c, rs, 0, NULL, NULL, NULL, r->err);
  loam_rendered_free(rs);
  return rc;
}


/*
** Creates the history, journal and lock tables where missing.  Two
** migrators may both find one missing: on PostgreSQL the second CREATE
** TABLE IF NOT EXISTS can still fail (the relation exists, or the
** catalog's own key refuses a second row type), and a failure is then no
** failure when the table is there.
*/
static int ensure (Run *r) {
  static const char *const pk_steps[] = { "version", "step" };
  static const loam_column_def hist_cols[] = {
    { .name = "version", .type = LOAM_COL_TEXT, .primary_key = 1 },
    { .name = "name", .type = LOAM_COL_TEXT, .not_null = 1 },
    { .name = "checksum", .type = LOAM_COL_TEXT, .not_null = 1 },
    { .name = "applied_at", .type = LOAM_COL_TIMESTAMP, .not_null = 1,
      .defval = { .kind = LOAM_DEFAULT_NOW } },
    { .name = "duration_ms", .type = LOAM_COL_BIGINT, .not_null = 1 },
  };
  static const loam_column_def step_cols[] = {
    { .name = "version", .type = LOAM_COL_TEXT },
    { .name = "step", .type = LOAM_COL_INTEGER },
  };
  static const loam_column_def progress_cols[] = {
    { .name = "version", .type = LOAM_COL_TEXT },
    { .name = "step", .type = LOAM_COL_INTEGER },
    { .name = "last_int", .type = LOAM_COL_BIGINT },
    { .name = "last_text", .type = LOAM_COL_TEXT },
  };
  static const loam_column_def lock_cols[] = {
    { .name = "id", .type = LOAM_COL_INTEGER, .primary_key = 1 },
    { .name = "owner", .type = LOAM_COL_TEXT, .not_null = 1 },
    { .name = "expires_at", .type = LOAM_COL_BIGINT, .not_null = 1 },
  };
  loam_table_def t[4];
  int i;
  memset(t, 0, sizeof t);
  t[0].name = LOAM_MIGRATIONS_TABLE;
  t[0].columns = hist_cols;
  t[0].ncolumns = 5;
  t[1].name = LOAM_MIGRATION_STEPS_TABLE;
  t[1].columns = step_cols;
  t[1].ncolumns = 2;
  t[1].primary_key = pk_steps;
  t[1].nprimary_key = 2;
  t[2].name = LOAM_MIGRATION_LOCK_TABLE;
  t[2].columns = lock_cols;
  t[2].ncolumns = 3;
  t[3].name = LOAM_MIGRATION_PROGRESS_TABLE;
  t[3].columns = progress_cols;
  t[3].ncolumns = 4;
  t[3].primary_key = pk_steps;
  t[3].nprimary_key = 2;
  for (i = 0; i < 4; i++) {
    int exists = 0;
    t[i].if_not_exists = 1;
    if (loam_table_exists(r->c, t[i].name, &exists, r->err) != LOAM_OK) return LOAM_ERROR;
    if (exists || ddl(r, &t[i]) == LOAM_OK) continue;
    if (loam_table_exists(r->c, t[i].name, &exists, NULL) != LOAM_OK || !exists)
      return LOAM_ERROR;              /* the error of the CREATE TABLE */
    loam_error_clear(r->err);
  }
  return LOAM_OK;
}


static void freehist (Run *r) {
  int i;
  for (i = 0; i < r->nh; i++) {
    free(r->h[i].version);
    free(r->h[i].checksum);
    free(r->h[i].applied_at);
  }
  free(r->h);
  r->h = NULL;
  r->nh = 0;
}


static char *dupcol (loam_stmt *st, int i) {
  loam_value v;
  if (loam_column(st, i, &v) != LOAM_OK || v.type != LOAM_TEXT) return loam__strdup("");
  return loam__strndup(v.u.s.ptr, v.u.s.len);
}


/* Reads the history, oldest version first; none when there is no history table. */
static int readhist (Run *r) {
  loam_stmt *st = NULL;
  int exists = 0, rc, cap = 0;
  freehist(r);
  if (loam_table_exists(r->c, LOAM_MIGRATIONS_TABLE, &exists, r->err) != LOAM_OK) return LOAM_ERROR;
  if (!exists) return LOAM_OK;
  if (loam_query(r->c, "SELECT version, checksum, applied_at, duration_ms FROM "
                 LOAM_MIGRATIONS_TABLE " ORDER BY version", NULL, 0, 0, &st, r->err) != LOAM_OK)
    return LOAM_ERROR;
  while ((rc = loam_step(st, r->err)) == LOAM_ROW) {
    loam_value v;
    hist *h;
    if (r->nh == cap) {
      hist *nh = realloc(r->h, sizeof *nh * (size_t)(cap = cap ? cap * 2 : 16));
      if (nh == NULL) { rc = loam__err_nomem(r->err); break; }
      r->h = nh;
    }
    h = &r->h[r->nh++];
    memset(h, 0, sizeof *h);
    h->version = dupcol(st, 0);
    h->checksum = dupcol(st, 1);
    h->applied_at = dupcol(st, 2);
    if (loam_column(st, 3, &v) == LOAM_OK && v.type == LOAM_INT) h->duration_ms = v.u.i;
    if (h->version == NULL || h->checksum == NULL || h->applied_at == NULL) {
      rc = loam__err_nomem(r->err);
      break;
    }
  }
  loam_stmt_close(st);
  return rc == LOAM_DONE ? LOAM_OK : LOAM_ERROR;
}


static const hist *applied (const Run *r, const char *version) {
  int i;
  for (i = 0; i < r->nh; i++)
    if (strcmp(r->h[i].version, version) == 0) return &r->h[i];
  return NULL;
}


/*
** The steps of 'version' journaled as done (they are done in order) in
** direction 'down' (0: up): into '*n'.  Steps of up are journaled as 0,
** 1, ...; steps of down as -1, -2, ... (journal() says why).
*/
static int stepsdone (Run *r, const char *version, int down, int *n) {
  loam_value p = loam_text(version, strlen(version)), v;
  loam_stmt *st = NULL;
  int exists = 0, rc;
  *n = 0;
  if (loam_table_exists(r->c, LOAM_MIGRATION_STEPS_TABLE, &exists, r->err) != LOAM_OK)
    return LOAM_ERROR;
  if (!exists) return LOAM_OK;
  if (loam_query(r->c, down ? "SELECT count(*) FROM " LOAM_MIGRATION_STEPS_TABLE
                 " WHERE version = ? AND step < 0" : "SELECT count(*) FROM "
                 LOAM_MIGRATION_STEPS_TABLE " WHERE version = ? AND step >= 0",
                 &p, 1, 0, &st, r->err) != LOAM_OK)
    return LOAM_ERROR;
  rc = loam_step(st, r->err);
  if (rc == LOAM_ROW && loam_column(st, 0, &v) == LOAM_OK && v.type == LOAM_INT) *n = (int)v.u.i;
  loam_stmt_close(st);
  return rc == LOAM_ERROR ? LOAM_ERROR : LOAM_OK;
}

/* }====================================================================== */


/* {======================================================================
** Running one migration
** ======================================================================= */

/* Whether any of the 'n' operations 'ops' rebuilds a table on this backend. */
static int anyrebuild (const Run *r, const loam_op *ops, int n) {
  int i;
  for (i = 0; i < n; i++)
    if (loam_op_rebuilds(&ops[i], loam_conn_backend(r->c))) return 1;
  return 0;
}


static int exec0 (Run *r, const char *sql) {
  return loam_exec(r->c, sql, NULL, 0, NULL, NULL, NULL, r->err);
}


/* SET LOCAL lock_timeout, on a backend that has it; inside a transaction. */
static int locktimeout (Run *r) {
  loam__buf b = LOAM__BUF_INIT;
  int rc;
  if (r->d->ddl_lock_timeout == NULL) return LOAM_OK;
  loam__buf_addf(&b, "%s%d", r->d->ddl_lock_timeout, r->o.lock_timeout_ms);
  rc = loam__buf_cstr(&b) != NULL ? exec0(r, b.p) : loam__err_nomem(r->err);
  loam__buf_free(&b);
  return rc;
}


static int ops (Run *r, const loam_migration *g, const loam_op *list, int n, int first) {
  int i;
  for (i = first; i < n; i++)
    if (loam_op_run(r->c, &list[i], r->err) != LOAM_OK)
      return prefix(r->err, "migration %s (%s), step %d (%s)", g->version, g->name, i + 1,
                    loam__op_name(list[i].kind));
  return LOAM_OK;
}


static int record (Run *r, const loam_migration *g, int64_t t0) {
  char sum[17];
  loam_value p[4];
  loam_migration_checksum(g->source, g->source_len, sum);
  p[0] = loam_text(g->version, strlen(g->version));
  p[1] = loam_text(g->name, strlen(g->name));
  p[2] = loam_text(sum, 16);
  p[3] = loam_int((loam__clock_ns() - t0) / 1000000);
  return loam_exec(r->c, "INSERT INTO " LOAM_MIGRATIONS_TABLE
                   " (version, name, checksum, duration_ms) VALUES (?, ?, ?, ?)",
                   p, 4, NULL, NULL, NULL, r->err);
}


static int unrecord (Run *r, const char *version) {
  loam_value p = loam_text(version, strlen(version));
  return loam_exec(r->c, "DELETE FROM " LOAM_MIGRATIONS_TABLE " WHERE version = ?", &p, 1,
                   NULL, NULL, NULL, r->err);
}


/* Whether 'version' is in the history now (read inside the migration's transaction). */
static int isapplied (Run *r, const char *version, int *yes) {
  loam_value p = loam_text(version, strlen(version)), v;
  loam_stmt *st = NULL;
  int rc;
  *yes = 0;
  if (loam_query(r->c, "SELECT count(*) FROM " LOAM_MIGRATIONS_TABLE " WHERE version = ?",
                 &p, 1, 0, &st, r->err) != LOAM_OK)
    return LOAM_ERROR;
  rc = loam_step(st, r->err);
  if (rc == LOAM_ROW && loam_column(st, 0, &v) == LOAM_OK && v.type == LOAM_INT) *yes = v.u.i > 0;
  loam_stmt_close(st);
  return rc == LOAM_ERROR ? LOAM_ERROR : LOAM_OK;
}


/* Removes the journal of 'version': its steps done and the progress of its backfills. */
static int clearjournal (Run *r, const char *version) {
  loam_value p = loam_text(version, strlen(version));
  int rc = loam_exec(r->c, "DELETE FROM " LOAM_MIGRATION_STEPS_TABLE " WHERE version = ?", &p,
                     1, NULL, NULL, NULL, r->err);
  if (rc == LOAM_OK)
    rc = loam_exec(r->c, "DELETE FROM " LOAM_MIGRATION_PROGRESS_TABLE " WHERE version = ?", &p,
                   1, NULL, NULL, NULL, r->err);
  return rc;
}


/* What a transaction of the runner changes beside the schema. */
enum { RECORD, UNRECORD, JOURNAL, JOURNAL_DOWN };

static int journal (Run *r, const loam_migration *g, int i, int down);


/*
** Runs operations 'first' .. 'last' - 1 of 'list' (of migration 'g') in
** one transaction with the change 'what' makes to the runner's tables
** (record the migration, remove it, or journal step 'first').  On
** PostgreSQL a lock timeout rolls everything back and the transaction is
** tried again after a pause that doubles each time.
*/
static int intx (Run *r, const loam_migration *g, const loam_op *list, int first, int last,
                 int what) {
  int attempt, backoff = 200, rc = LOAM_OK;
  for (attempt = 0;; attempt++) {
    int64_t t0 = loam__clock_ns();
    int fkoff = r->d->fk_off != NULL && anyrebuild(r, list + first, last - first), done = 0;
    if (fkoff && exec0(r, r->d->fk_off) != LOAM_OK) return LOAM_ERROR;
    rc = loam_tx_begin(r->c, r->err);
    if (rc == LOAM_OK) {
      rc = locktimeout(r);
      /* renewed in the transaction: its row stays locked until the commit */
      if (rc == LOAM_OK) rc = loam__lock_renew(r->c, r->owner, r->o.lock_ttl_ms, r->err);
      /* the history again, under the lock: nothing is applied twice */
      if (rc == LOAM_OK && what < JOURNAL) rc = isapplied(r, g->version, &done);
      if (rc == LOAM_OK && (what >= JOURNAL || done == (what == UNRECORD))) {
        rc = ops(r, g, list, last, first);
        if (rc == LOAM_OK)
          rc = what == RECORD ? record(r, g, t0)
             : what == UNRECORD ? unrecord(r, g->version)
             : journal(r, g, first, what == JOURNAL_DOWN);
        if (rc == LOAM_OK && r->clear) rc = clearjournal(r, g->version);
      }
      if (rc == LOAM_OK) rc = loam_tx_commit(r->c, r->err);
      if (rc != LOAM_OK) loam_tx_rollback(r->c, NULL);
    }
    if (fkoff) exec0(r, r->d->fk_on);
    if (rc == LOAM_OK || r->err == NULL || r->err->code != LOAM_E_TIMEOUT ||
        r->d->ddl_lock_timeout == NULL || attempt >= r->o.ddl_retries)
      return rc;
    loam__sleep_ms(backoff);
    backoff *= 2;
  }
}


/*
** Journals step 'i' of 'g''s up (or, with 'down', of its down) as done.
** The steps of a down are kept as -1 - i: a down that stopped half-way
** leaves its migration in the history, and its journal must not read as
** steps of up done.
*/
static int journal (Run *r, const loam_migration *g, int i, int down) {
  loam_value p[2];
  p[0] = loam_text(g->version, strlen(g->version));
  p[1] = loam_int(down ? -1 - i : i);
  return loam_exec(r->c, "INSERT INTO " LOAM_MIGRATION_STEPS_TABLE " (version, step) "
                   "VALUES (?, ?)", p, 2, NULL, NULL, NULL, r->err);
}


/*
** Before a concurrent index build is tried again: the index that a failed
** build left behind is INVALID (it slows writes and answers no query),
** and is dropped; a valid one means the build succeeded before its
** journal entry was written, and the step is done.
*/
static int invalidindex (Run *r, const loam_op *op, int *built) {
  char gen[LOAM_IDENT_MAX + 1];
  loam_op drop;
  loam_db_schema *s = NULL;
  const char *table = op->index.table;
  int i, rc;
  *built = 0;
  if (loam_op_inverse(op, &drop, gen, r->err) != LOAM_OK) return LOAM_ERROR;
  if (loam_introspect(r->c, &table, 1, &s, r->err) != LOAM_OK) return LOAM_ERROR;
  rc = LOAM_OK;
  for (i = 0; i < s->tables[0].nindexes; i++) {
    const loam_db_index *x = &s->tables[0].indexes[i];
    if (strcmp(x->name, drop.name) != 0) continue;
    if (x->valid) *built = 1;
    else rc = loam_op_run(r->c, &drop, r->err);
  }
  loam_db_schema_free(s);
  return rc;
}


/*
** Before a concurrent DROP INDEX is tried again: an index already gone
** means the drop succeeded before its journal entry was written, and the
** step is done.
*/
static int indexgone (Run *r, const loam_op *op, int *gone) {
  loam_db_schema *s = NULL;
  const char *table = op->table;
  int i;
  *gone = 1;
  if (loam_introspect(r->c, &table, 1, &s, r->err) != LOAM_OK) return LOAM_ERROR;
  for (i = 0; i < s->tables[0].nindexes; i++)
    if (strcmp(s->tables[0].indexes[i].name, op->name) == 0) *gone = 0;
  loam_db_schema_free(s);
  return LOAM_OK;
}


/*
** A migration that runs outside a transaction, its up or ('down') its
** down: step by step from the first not journaled, each step and its
** journal entry in one transaction where the step allows one, then the
** history row (written by up, removed by down) and the end of the journal
** together.
*/
static int stepwise (Run *r, const loam_migration *g, int down) {
  const loam_op *list = down ? g->down : g->up;
  int64_t t0 = loam__clock_ns();
  int i, done, rc = LOAM_OK, n = down ? g->ndown : g->nup;
  if (stepsdone(r, g->version, down, &done) != LOAM_OK) return LOAM_ERROR;
  for (i = done; i < n && rc == LOAM_OK; i++) {
    const loam_op *op = &list[i];
    if (loam__lock_renew(r->c, r->owner, r->o.lock_ttl_ms, r->err) != LOAM_OK) return LOAM_ERROR;
    if (loam_op_needs_autocommit(op, loam_conn_backend(r->c))) {
      int skip = 0;
      if ((op->kind == LOAM_OP_ADD_INDEX && invalidindex(r, op, &skip) != LOAM_OK) ||
          (op->kind == LOAM_OP_DROP_INDEX && indexgone(r, op, &skip) != LOAM_OK))
        return prefix(r->err, "migration %s (%s), step %d (%s)", g->version, g->name, i + 1,
                      loam__op_name(op->kind));
      if (!skip && ops(r, g, list, i + 1, i) != LOAM_OK) return LOAM_ERROR;
      rc = journal(r, g, i, down);
      continue;
    }
    rc = intx(r, g, list, i, i + 1, down ? JOURNAL_DOWN : JOURNAL);
  }
  if (rc != LOAM_OK) return rc;
  rc = loam_tx_begin(r->c, r->err);
  if (rc == LOAM_OK) {
    rc = down ? unrecord(r, g->version) : record(r, g, t0);
    if (rc == LOAM_OK) rc = clearjournal(r, g->version);
    if (rc == LOAM_OK) rc = loam_tx_commit(r->c, r->err);
    if (rc != LOAM_OK) loam_tx_rollback(r->c, NULL);
  }
  return rc;
}

/* }====================================================================== */


/* {======================================================================
** Backfills
** ======================================================================= */

/*
** The journaled progress of step 'js' of 'version' (the key of 'journal'):
** 'f' continues after the last key kept, if any.
*/
static int progress_read (Run *r, const char *version, int js, loam__fill *f) {
  loam_value p[2], v;
  loam_stmt *st = NULL;
  int rc;
  p[0] = loam_text(version, strlen(version));
  p[1] = loam_int(js);
  if (loam_query(r->c, "SELECT last_int, last_text FROM " LOAM_MIGRATION_PROGRESS_TABLE
                 " WHERE version = ? AND step = ?", p, 2, 0, &st, r->err) != LOAM_OK)
    return LOAM_ERROR;
  rc = loam_step(st, r->err);
  if (rc == LOAM_ROW) {
    rc = loam_column(st, 0, &v);
    if (rc == LOAM_OK && v.type == LOAM_NULL) rc = loam_column(st, 1, &v);
    if (rc == LOAM_OK && v.type != LOAM_NULL) rc = loam__fill_resume(f, &v, r->err);
  }
  loam_stmt_close(st);
  return rc == LOAM_ERROR ? LOAM_ERROR : LOAM_OK;
}


/*
** Journals the last key of the batch just run ('f->hi') as the progress
** of step 'js', in the batch's transaction.  An integer key is kept as
** one; any other as text, which both backends compare with the key
** column's own type when it is bound again.
*/
static int progress_write (Run *r, const char *version, int js, const loam__fill *f) {
  loam__buf num = LOAM__BUF_INIT;
  loam_value p[4];
  int rc;
  p[0] = loam_text(version, strlen(version));
  p[1] = loam_int(js);
  p[2] = f->hi.type == LOAM_INT ? f->hi : loam_null();
  p[3] = f->hi.type == LOAM_TEXT ? f->hi : loam_null();
  if (f->hi.type == LOAM_DOUBLE) {
    loam__buf_double(&num, f->hi.u.d, 1);
    if (loam__buf_cstr(&num) == NULL) return loam__err_nomem(r->err);
    p[3] = loam_text(num.p, num.len);
  }
  rc = loam_exec(r->c, "DELETE FROM " LOAM_MIGRATION_PROGRESS_TABLE " WHERE version = ? AND "
                 "step = ?", p, 2, NULL, NULL, NULL, r->err);
  if (rc == LOAM_OK)
    rc = loam_exec(r->c, "INSERT INTO " LOAM_MIGRATION_PROGRESS_TABLE " (version, step, "
                   "last_int, last_text) VALUES (?, ?, ?, ?)", p, 4, NULL, NULL, NULL, r->err);
  loam__buf_free(&num);
  return rc;
}


/*
** Runs backfill step 'i' of 'g' (of its down, with 'down') batch by batch,
** from where its journal says it stopped.  Each batch is a transaction of
** its own that renews the lease (whose row then stays locked until the
** commit), runs under the lock_timeout, and journals the batch's last
** key; the last, which finds no row left, journals the step as done.  A
** lock timeout rolls the batch back and tries it again after a pause that
** doubles each time, as 'intx' does.
*/
static int fillstep (Run *r, const loam_migration *g, const loam_op *op, int i, int down) {
  loam__fill f;
  int64_t rows = 0, batches = 0;
  int js = down ? -1 - i : i, more = 1, rc;
  rc = loam__fill_start(r->c, op, &f, r->err);
  if (rc == LOAM_OK) rc = progress_read(r, g->version, js, &f);
  if (rc != LOAM_OK)
    prefix(r->err, "migration %s (%s), step %d (backfill)", g->version, g->name, i + 1);
  while (rc == LOAM_OK && more) {
    int attempt, backoff = 200;
    int64_t n = 0;
    for (attempt = 0;; attempt++) {
      rc = loam_tx_begin(r->c, r->err);
      if (rc == LOAM_OK) {
        rc = locktimeout(r);
        if (rc == LOAM_OK) rc = loam__lock_renew(r->c, r->owner, r->o.lock_ttl_ms, r->err);
        if (rc == LOAM_OK) rc = loam__fill_batch(r->c, &f, &more, &n, r->err);
        if (rc == LOAM_OK)
          rc = more ? progress_write(r, g->version, js, &f) : journal(r, g, i, down);
        if (rc == LOAM_OK) rc = loam_tx_commit(r->c, r->err);
        if (rc != LOAM_OK) loam_tx_rollback(r->c, NULL);
      }
      if (rc == LOAM_OK || r->err == NULL || r->err->code != LOAM_E_TIMEOUT ||
          r->d->ddl_lock_timeout == NULL || attempt >= r->o.ddl_retries)
        break;
      loam__sleep_ms(backoff);
      backoff *= 2;
    }
    if (rc != LOAM_OK) {
      prefix(r->err, "migration %s (%s), step %d (backfill), batch %lld", g->version, g->name,
             i + 1, (long long)batches + 1);
      break;
    }
    if (!more) break;
    loam__fill_advance(&f);
    rows += n;
    batches++;
    if (r->o.progress != NULL)
      r->o.progress(r->o.progress_ud, g->version, i + 1, op->table, rows, batches);
    if (op->pause_ms > 0) loam__sleep_ms(op->pause_ms);
  }
  loam__fill_free(&f);
  return rc;
}


/*
** The number of BACKFILL operations that open 'list' ('n' operations of
** 'g') into '*nfill'; a backfill after another kind of operation is
** refused, since the rest runs in one transaction after the batches.
*/
static int leadingfills (Run *r, const loam_migration *g, const loam_op *list, int n,
                         int *nfill) {
  int i;
  *nfill = 0;
  while (*nfill < n && list[*nfill].kind == LOAM_OP_BACKFILL) (*nfill)++;
  for (i = *nfill; i < n; i++)
    if (list[i].kind == LOAM_OP_BACKFILL)
      return loam__err(r->err, LOAM_E_MISUSE, "migration %s (%s), step %d (backfill): the "
                       "backfills of a migration come before its other operations, which run "
                       "in one transaction with the history row once every batch is done",
                       g->version, g->name, i + 1);
  if (*nfill > 0 && g->non_transactional)
    return loam__err(r->err, LOAM_E_MISUSE, "migration %s (%s): a migration with backfills "
                     "cannot also run its operations one by one outside a transaction",
                     g->version, g->name);
  return LOAM_OK;
}


/*
** Runs migration 'g' up (or, with 'down', down): its backfills first,
** batch by batch, skipping the steps journaled as done; then the rest in
** one transaction with the history row, which clears the journal.
*/
static int one (Run *r, const loam_migration *g, int down) {
  const loam_op *list = down ? g->down : g->up;
  int i, n = down ? g->ndown : g->nup, nfill, done, rc;
  if (leadingfills(r, g, list, n, &nfill) != LOAM_OK) return LOAM_ERROR;
  if (nfill == 0)
    return g->non_transactional ? stepwise(r, g, down)
                                : intx(r, g, list, 0, n, down ? UNRECORD : RECORD);
  if (stepsdone(r, g->version, down, &done) != LOAM_OK) return LOAM_ERROR;
  for (i = done; i < nfill; i++)
    if (fillstep(r, g, &list[i], i, down) != LOAM_OK) return LOAM_ERROR;
  r->clear = 1;
  rc = intx(r, g, list, nfill, n, down ? UNRECORD : RECORD);
  r->clear = 0;
  return rc;
}

/* }====================================================================== */


/* {======================================================================
** Entry points
** ======================================================================= */

static int start (Run *r, loam_conn *conn, const loam_migration *migs, int n,
                  const loam_migrate_opts *opts, int graph, loam_error *err) {
  static const loam_migrate_opts defaults = LOAM_MIGRATE_OPTS_INIT;
  memset(r, 0, sizeof *r);
  r->err = err;
  r->o = opts != NULL ? *opts : defaults;
  if (r->o.lock_wait_ms < 0) r->o.lock_wait_ms = 60000;
  if (r->o.lock_ttl_ms <= 0) r->o.lock_ttl_ms = 600000;
  if (r->o.lock_timeout_ms <= 0) r->o.lock_timeout_ms = 2000;
  if (r->o.ddl_retries < 0) r->o.ddl_retries = 5;
  if (conn == NULL) return loam__err(err, LOAM_E_MISUSE, "attempt to use a closed connection");
  r->c = conn;
  r->d = loam__dialect(loam_conn_backend(conn));
  loam__lock_owner(r->owner, sizeof r->owner, r->o.owner);
  return load(r, migs, n, graph);
}


static void finish (Run *r) {
  freehist(r);
  free(r->m);
}


/* Checks the history against the migrations: an applied one whose source changed. */
static int checksums (Run *r) {
  int i;
  for (i = 0; i < r->nh; i++) {
    const loam_migration *g = find(r, r->h[i].version);
    char sum[17];
    if (g == NULL) continue;
    loam_migration_checksum(g->source, g->source_len, sum);
    if (strcmp(sum, r->h[i].checksum) != 0)
      return loam__err(r->err, LOAM_E_CHECKSUM_MISMATCH, "migration %s (%s) was changed after "
                       "it was applied: its checksum is %s, the history has %s; write a new "
                       "migration instead of editing an applied one", g->version, g->name, sum,
                       r->h[i].checksum);
  }
  return LOAM_OK;
}


/*
** What up and down start with: the runner's tables, the lock, and the
** history read under it and checked.  LOAM_ERROR before the lock is
** taken; otherwise the lock is held, whatever it returns.
*/
static int begin (Run *r, int *rc) {
  if (ensure(r) != LOAM_OK) return LOAM_ERROR;
  if (loam__lock_take(r->c, r->owner, r->o.lock_ttl_ms, r->o.lock_wait_ms, r->err) != LOAM_OK)
    return LOAM_ERROR;
  *rc = readhist(r);
  if (*rc == LOAM_OK) *rc = checksums(r);
  return LOAM_OK;
}


static int up (Run *r, int *count) {
  const char *newest;
  int i, rc;
  if (begin(r, &rc) != LOAM_OK) return LOAM_ERROR;
  newest = r->nh > 0 ? r->h[r->nh - 1].version : NULL;
  for (i = 0; rc == LOAM_OK && i < r->n; i++) {
    const loam_migration *g = r->m[i];
    if (applied(r, g->version) != NULL) continue;
    if (r->o.to != NULL && strcmp(g->version, r->o.to) > 0) break;
    if (newest != NULL && strcmp(g->version, newest) < 0 && !r->o.out_of_order) {
      rc = loam__err(r->err, LOAM_E_MIGRATION_CONFLICT, "migration %s (%s) is older than %s, "
                     "the newest applied, and was not applied: it is out of order (a branch "
                     "merged late?); apply it with out_of_order, after checking that it does "
                     "not depend on what came later", g->version, g->name, newest);
      break;
    }
    rc = one(r, g, 0);
    if (rc == LOAM_OK) (*count)++;
  }
  loam__lock_release(r->c, r->owner);
  return rc;
}


int loam_migrate_up (loam_conn *conn, const loam_migration *migs, int n,
                     const loam_migrate_opts *opts, int *applied_out, loam_error *err) {
  Run r;
  int count = 0, rc = start(&r, conn, migs, n, opts, 1, err);
  if (rc == LOAM_OK) rc = up(&r, &count);
  if (applied_out != NULL) *applied_out = count;
  finish(&r);
  return rc;
}


static int down (Run *r, int steps, int *count) {
  int i, rc;
  if (begin(r, &rc) != LOAM_OK) return LOAM_ERROR;
  for (i = r->nh - 1; rc == LOAM_OK && i >= 0 && *count < steps; i--) {
    const loam_migration *g = find(r, r->h[i].version);
    if (g == NULL) {
      rc = loam__err(r->err, LOAM_E_MIGRATION_CONFLICT, "migration %s is applied but not "
                     "among the migrations: it cannot be reverted without its 'down'",
                     r->h[i].version);
      break;
    }
    rc = one(r, g, 1);
    if (rc == LOAM_OK) (*count)++;
  }
  loam__lock_release(r->c, r->owner);
  return rc;
}


int loam_migrate_down (loam_conn *conn, const loam_migration *migs, int n, int steps,
                       const loam_migrate_opts *opts, int *reverted, loam_error *err) {
  Run r;
  int count = 0, rc = start(&r, conn, migs, n, opts, 0, err);
  if (rc == LOAM_OK && steps < 0)
    rc = loam__err(err, LOAM_E_MISUSE, "loam_migrate_down: steps is negative (%d)", steps);
  if (rc == LOAM_OK) rc = down(&r, steps, &count);
  if (reverted != NULL) *reverted = count;
  finish(&r);
  return rc;
}


/* The strings of a status list live after its entries, in the same block. */
static int status (Run *r, loam_migration_status **out, int *nout) {
  loam__buf strs = LOAM__BUF_INIT;
  loam_migration_status *s;
  size_t *off;
  const char *newest = r->nh > 0 ? r->h[r->nh - 1].version : NULL;
  int n = 0, i, j, k, total = r->n + r->nh;
  s = calloc((size_t)(total > 0 ? total : 1), sizeof *s);
  off = calloc((size_t)(total > 0 ? total : 1) * 4, sizeof *off);
  if (s == NULL || off == NULL) {
    free(s);
    free(off);
    return loam__err_nomem(r->err);
  }
#define KEEP(slot, str) do { off[(slot)] = (str) != NULL ? strs.len + 1 : 0; \
    if ((str) != NULL) { loam__buf_adds(&strs, (str)); loam__buf_addc(&strs, '\0'); } } while (0)
  loam__buf_addc(&strs, '\0');
  /* both lists are sorted by version: merge them */
  for (i = j = 0; i < r->n || j < r->nh;) {
    int c = i >= r->n ? 1 : j >= r->nh ? -1 : strcmp(r->m[i]->version, r->h[j].version);
    loam_migration_status *e = &s[n];
    if (c <= 0) {
      const loam_migration *g = r->m[i++];
      KEEP(n * 4, g->version);
      KEEP(n * 4 + 1, g->name);
      if (c == 0) {
        char sum[17];
        const hist *h = &r->h[j++];
        loam_migration_checksum(g->source, g->source_len, sum);
        e->state = strcmp(sum, h->checksum) == 0 ? LOAM_MIG_APPLIED : LOAM_MIG_CHANGED;
        KEEP(n * 4 + 2, h->applied_at);
        e->duration_ms = h->duration_ms;
      }
      else {
        if (stepsdone(r, g->version, 0, &k) != LOAM_OK) {
          free(s);
          free(off);
          loam__buf_free(&strs);
          return LOAM_ERROR;
        }
        e->steps_done = k;
        e->state = k > 0 ? LOAM_MIG_PARTIAL
                 : (newest != NULL && strcmp(g->version, newest) < 0) ? LOAM_MIG_OUT_OF_ORDER
                 : LOAM_MIG_PENDING;
      }
    }
    else {
      const hist *h = &r->h[j++];
      KEEP(n * 4, h->version);
      KEEP(n * 4 + 2, h->applied_at);
      e->state = LOAM_MIG_MISSING;
      e->duration_ms = h->duration_ms;
    }
    n++;
  }
#undef KEEP
  if (loam__buf_cstr(&strs) == NULL) {
    free(s);
    free(off);
    return loam__err_nomem(r->err);
  }
  {
    /* one block: the entries, then the strings */
    loam_migration_status *b = malloc(sizeof *b * (size_t)(n > 0 ? n : 1) + strs.len);
    char *text;
    if (b == NULL) {
      free(s);
      free(off);
      loam__buf_free(&strs);
      return loam__err_nomem(r->err);
    }
    text = (char *)(b + (n > 0 ? n : 1));
    memcpy(text, strs.p, strs.len);
    for (i = 0; i < n; i++) {
      b[i] = s[i];
      b[i].version = off[i * 4] ? text + off[i * 4] - 1 : NULL;
      b[i].name = off[i * 4 + 1] ? text + off[i * 4 + 1] - 1 : NULL;
      b[i].applied_at = off[i * 4 + 2] ? text + off[i * 4 + 2] - 1 : NULL;
    }
    *out = b;
    *nout = n;
  }
  free(s);
  free(off);
  loam__buf_free(&strs);
  return LOAM_OK;
}


int loam_migrate_status (loam_conn *conn, const loam_migration *migs, int n,
                         loam_migration_status **out, int *nout, loam_error *err) {
  Run r;
  int rc;
  if (out == NULL || nout == NULL)
    return loam__err(err, LOAM_E_MISUSE, "loam_migrate_status: NULL output");
  *out = NULL;
  *nout = 0;
  rc = start(&r, conn, migs, n, NULL, 0, err);
  if (rc == LOAM_OK) rc = readhist(&r);
  if (rc == LOAM_OK) rc = status(&r, out, nout);
  finish(&r);
  return rc;
}


void loam_migration_status_free (loam_migration_status *s) {
  free(s);
}

/* }====================================================================== */
