/*
** ddl.c: renders schema definitions as CREATE TABLE, CREATE INDEX and
** DROP TABLE statements for SQLite and PostgreSQL.
**
** Tables normally come from model declarations, which a migration diff
** will later compare with a live schema, so this file is strict: a
** declaration either renders to DDL that gives both backends the same
** columns, keys, constraints and constraint names, or it is refused with a
** message naming the table and column.  Neither backend takes parameters
** in DDL, so defaults become SQL literals here, quoted or formatted so
** that no value can break out of its literal.  loam.h documents the type
** mapping and the naming rules; the spelling of each type and literal per
** backend is read from its description (dialect.c).  The result is the
** same rendered form as a query's ('loam_rendered', render.c), each
** statement of kind LOAM_SQL_DDL.
*/
#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/dialect_int.h"


/* The longest varchar PostgreSQL accepts; SQLite gets the same limit. */
#define MAX_LENGTH     10485760
/* The largest numeric precision PostgreSQL accepts. */
#define MAX_PRECISION  1000

/* State of one rendering. */
typedef struct R {
  loam__buf b;             /* the statement */
  loam__buf names;         /* constraint names so far, each followed by a NUL */
  loam__buf tmp;           /* scratch: a generated name */
  const loam__dialect_desc *d;
  const char *table;       /* the table name, for messages and generated names */
  loam_error *err;
} R;


static const char *const typenames[] = {
  "(none)", "id", "integer", "bigint", "text", "numeric", "boolean", "float",
  "date", "timestamp", "json", "blob", "enum"
};

static const char *const actions[] = {
  "NO ACTION", "RESTRICT", "CASCADE", "SET NULL", "SET DEFAULT"
};


static const char *typename (loam_col_type t) {
  return (t >= LOAM_COL_ID && t <= LOAM_COL_ENUM) ? typenames[t] : typenames[0];
}


/* A name for messages: never NULL. */
static const char *nm (const char *s) {
  return s != NULL ? s : "";
}


/* {======================================================================
** Errors
** ======================================================================= */

/*
** Sets a misuse error whose message is 'fmt' prefixed with the table
** ("table 'orders': ...").  Returns LOAM_ERROR.
*/
static int fail (R *r, const char *fmt, ...) LOAMI_PRINTF(2, 3);
static int fail (R *r, const char *fmt, ...) {
  loam__buf m = LOAM__BUF_INIT;
  va_list ap;
  const char *s;
  loam__buf_addf(&m, "table '%.80s': ", nm(r->table));
  va_start(ap, fmt);
  loam__buf_vaddf(&m, fmt, ap);
  va_end(ap);
  s = loam__buf_cstr(&m);
  if (s == NULL) loam__err_nomem(r->err);
  else loam__err_msg(r->err, LOAM_E_MISUSE, s, m.len);
  loam__buf_free(&m);
  return LOAM_ERROR;
}


/*
** Checks identifier 'name'; on failure the core's message is kept,
** prefixed with 'what' (say "column #3") so the user knows where to look.
*/
static int checkident (R *r, const char *name, const char *what) {
  loam_error e = LOAM_ERROR_INIT;
  if (loam__ident_check(name, name != NULL ? strlen(name) : 0, &e) == LOAM_OK)
    return LOAM_OK;
  if (e.code == LOAM_E_NOMEM || e.message == NULL) loam__err_nomem(r->err);
  else if (r->table != NULL) fail(r, "%s: %s", what, e.message);
  else loam__err(r->err, LOAM_E_MISUSE, "%s: %s", what, e.message);
  loam_error_clear(&e);
  return LOAM_ERROR;
}


/* Refuses the default of column 'c' with 'why' ("does not fit ..."). */
static int baddefault (R *r, const loam_column_def *c, const char *why) {
  loam__buf m = LOAM__BUF_INIT;
  int rc;
  loam__value_describe(&m, &c->defval.value);
  rc = loam__buf_cstr(&m) == NULL
         ? loam__err_nomem(r->err)
         : fail(r, "column '%s': default %s (%s) %s", c->name, m.p,
                loam_type_name(c->defval.value.type), why);
  loam__buf_free(&m);
  return rc;
}

/* }====================================================================== */


/* {======================================================================
** Constraint names
** ======================================================================= */

/* The longest prefix of 's' (of length 'len') within 'max' bytes that does
** not end inside a UTF-8 character. */
static size_t clip (const char *s, size_t len, size_t max) {
  if (len <= max) return len;
  while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
  return max;
}


/*
** Writes into 'out' the name PostgreSQL would choose by default for a
** constraint of 'table' over 'cols' (ncols may be 0) with suffix 'label':
** table_col1_col2_label.  When that exceeds 'max' bytes, the longer of
** the table part and the column part is shortened first, one byte at a
** time, so the two shares stay balanced and the label survives.  'max'
** leaves room for the label and its separators.
*/
static void defaultname (loam__buf *out, const char *table, const char *const *cols,
                         int ncols, const char *label, size_t max) {
  loam__buf c = LOAM__BUF_INIT;
  size_t avail, n1, n2;
  int i;
  for (i = 0; i < ncols; i++) {
    if (i > 0) loam__buf_addc(&c, '_');
    loam__buf_adds(&c, cols[i]);
  }
  avail = max - strlen(label) - 1 - (ncols > 0 ? 1 : 0);
  n1 = strlen(table);
  n2 = c.len;
  while (n1 + n2 > avail) {
    if (n1 > n2) n1--;
    else n2--;
  }
  n1 = clip(table, strlen(table), n1);
  n2 = clip(c.p, c.len, n2);
  loam__buf_reset(out);
  loam__buf_add(out, table, n1);
  if (ncols > 0) {
    loam__buf_addc(out, '_');
    loam__buf_add(out, c.p, n2);
  }
  loam__buf_addc(out, '_');
  loam__buf_adds(out, label);
  if (c.oom) out->oom = 1;
  loam__buf_free(&c);
}


/* Records constraint name 'name'; a name used twice in one table is refused. */
static int addname (R *r, const char *name, size_t len) {
  size_t at = 0;
  while (at < r->names.len) {
    const char *p = r->names.p + at;
    size_t n = strlen(p);
    if (n == len && memcmp(p, name, len) == 0)
      return fail(r, "constraint name '%.*s' is used twice (rename one, or shorten the "
                  "table or column names that make it)", (int)len, name);
    at += n + 1;
  }
  loam__buf_add(&r->names, name, len);
  loam__buf_addc(&r->names, '\0');
  return LOAM_OK;
}


/* Appends 'CONSTRAINT "name" ' after recording the name. */
static int constraint (R *r, const char *name, size_t len) {
  if (addname(r, name, len) != LOAM_OK) return LOAM_ERROR;
  loam__buf_adds(&r->b, "CONSTRAINT ");
  loam__buf_ident(&r->b, name, len);
  loam__buf_addc(&r->b, ' ');
  return LOAM_OK;
}


/* Appends the constraint clause of a generated name (see 'defaultname'). */
static int genconstraint (R *r, const char *const *cols, int ncols, const char *label) {
  defaultname(&r->tmp, r->table, cols, ncols, label, LOAM_IDENT_MAX);
  if (r->tmp.oom) return loam__err_nomem(r->err);
  return constraint(r, r->tmp.p, r->tmp.len);
}

/* }====================================================================== */


/* {======================================================================
** Default values
** ======================================================================= */

/* Characters in UTF-8 text (what both backends count for a length limit). */
static size_t utf8len (const char *s, size_t len) {
  size_t i, n = 0;
  for (i = 0; i < len; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80) n++;
  return n;
}


/* Decimal digits of |i| (0 for zero, which fits any numeric). */
static int intdigits (int64_t i) {
  uint64_t u = i < 0 ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
  int n = 0;
  while (u > 0) { n++; u /= 10; }
  return n;
}


/*
** Checks that a plain decimal text ("-12.50", ".5") fits numeric(p,s):
** at most p - s digits before the point.  Returns 0 when the text is not
** such a number, -1 when it does not fit, 1 when it is fine.  Exponents
** are not accepted: the text is rendered as a bare SQL number.
*/
static int decimaltext (const char *s, size_t len, int p, int sc) {
  size_t i = 0;
  int intd = 0, fracd = 0, lead = 1;
  if (i < len && (s[i] == '+' || s[i] == '-')) i++;
  for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
    if (lead && s[i] == '0') continue;
    lead = 0;
    intd++;
  }
  if (i < len && s[i] == '.')
    for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) fracd++;
  if (i != len) return 0;
  if (intd == 0 && fracd == 0) {
    /* all zeros is a number; a lone sign or point is not */
    size_t k;
    for (k = 0; k < len; k++) if (s[k] == '0') break;
    if (k == len) return 0;
  }
  return (p > 0 && intd > p - sc) ? -1 : 1;
}


/* True when |d|, rounded to 'sc' decimals, stays below 10^(p - sc). */
static int doublefits (double d, int p, int sc) {
  double lim = 1.0, half = 0.5;
  int i;
  if (d < 0) d = -d;
  for (i = 0; i < p - sc && lim <= DBL_MAX / 10; i++) lim *= 10;
  if (i < p - sc) return 1;                  /* 10^(p-s) exceeds any double */
  for (i = 0; i < sc; i++) half /= 10;
  return d + half < lim;
}


static void addhex (loam__buf *b, const char *p, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t i;
  for (i = 0; i < len; i++) {
    loam__buf_addc(b, hex[((unsigned char)p[i]) >> 4]);
    loam__buf_addc(b, hex[((unsigned char)p[i]) & 15]);
  }
}


/* Checks that the literal default of 'c' fits its type. */
static int checkvalue (R *r, const loam_column_def *c, int notnull) {
  const loam_value *v = &c->defval.value;
  loam_col_type t = c->type;
  switch (v->type) {
    case LOAM_NULL:
      if (notnull) return baddefault(r, c, "is not allowed on a NOT NULL column");
      return LOAM_OK;
    case LOAM_BOOL:
      if (t != LOAM_COL_BOOLEAN) break;
      return LOAM_OK;
    case LOAM_INT:
      if (t == LOAM_COL_INTEGER && (v->u.i < INT32_MIN || v->u.i > INT32_MAX))
        return baddefault(r, c, "is out of range for an integer (32-bit) column; use bigint");
      if (t == LOAM_COL_NUMERIC && c->precision > 0 &&
          intdigits(v->u.i) > c->precision - c->scale)
        return baddefault(r, c, "has too many digits for the column's precision and scale");
      if (t != LOAM_COL_INTEGER && t != LOAM_COL_BIGINT && t != LOAM_COL_NUMERIC &&
          t != LOAM_COL_FLOAT)
        break;
      return LOAM_OK;
    case LOAM_DOUBLE:
      if (v->u.d != v->u.d || v->u.d > DBL_MAX || v->u.d < -DBL_MAX)
        return baddefault(r, c, "is not a finite number");
      if (t == LOAM_COL_NUMERIC && c->precision > 0 &&
          !doublefits(v->u.d, c->precision, c->scale))
        return baddefault(r, c, "has too many digits for the column's precision and scale");
      if (t != LOAM_COL_NUMERIC && t != LOAM_COL_FLOAT) break;
      return LOAM_OK;
    case LOAM_TEXT:
      if (v->u.s.len > 0 && memchr(v->u.s.ptr, '\0', v->u.s.len) != NULL)
        return baddefault(r, c, "contains a NUL byte");
      if (t == LOAM_COL_TEXT) {
        if (c->length > 0 && utf8len(v->u.s.ptr, v->u.s.len) > (size_t)c->length)
          return baddefault(r, c, "is longer than the column's length");
        return LOAM_OK;
      }
      if (t == LOAM_COL_ENUM) {
        int i;
        for (i = 0; i < c->nenum_values; i++)
          if (strlen(c->enum_values[i]) == v->u.s.len &&
              memcmp(c->enum_values[i], v->u.s.ptr, v->u.s.len) == 0)
            return LOAM_OK;
        return baddefault(r, c, "is not one of the enum values");
      }
      if (t == LOAM_COL_NUMERIC) {
        int ok = decimaltext(v->u.s.ptr, v->u.s.len, c->precision, c->scale);
        if (ok == 0) return baddefault(r, c, "is not a decimal number");
        if (ok < 0)
          return baddefault(r, c, "has too many digits for the column's precision and scale");
        return LOAM_OK;
      }
      if (t != LOAM_COL_JSON && t != LOAM_COL_DATE && t != LOAM_COL_TIMESTAMP) break;
      return LOAM_OK;
    case LOAM_BLOB:
      if (t != LOAM_COL_BLOB) break;
      return LOAM_OK;
    default:
      return baddefault(r, c, "has an unknown value type");
  }
  {
    char why[64];
    snprintf(why, sizeof why, "does not fit the column type (%s)", typename(t));
    return baddefault(r, c, why);
  }
}


/*
** Appends "now" for a column of type 't' (DATE or TIMESTAMP), in the text
** loam writes for such values: canonical UTC text on SQLite, the native
** value on PostgreSQL.
*/
static void addnow (R *r, loam_col_type t) {
  loam__buf_adds(&r->b, t == LOAM_COL_DATE ? r->d->now_date : r->d->now_timestamp);
}


/* Appends ' DEFAULT ...' for column 'c' (already checked). */
static void adddefault (R *r, const loam_column_def *c) {
  const loam_value *v = &c->defval.value;
  loam__buf *b = &r->b;
  loam__buf_adds(b, " DEFAULT ");
  if (c->defval.kind == LOAM_DEFAULT_NOW) {
    addnow(r, c->type);
    return;
  }
  if (c->defval.kind == LOAM_DEFAULT_SQL) {
    /* parenthesised: SQLite takes a bare expression only when it is a literal */
    loam__buf_addc(b, '(');
    loam__buf_adds(b, c->defval.sql);
    loam__buf_addc(b, ')');
    return;
  }
  switch (v->type) {
    case LOAM_NULL: loam__buf_adds(b, "NULL"); break;
    case LOAM_BOOL:
      loam__buf_adds(b, v->u.b ? r->d->true_literal : r->d->false_literal);
      break;
    case LOAM_INT: loam__buf_int(b, v->u.i); break;
    case LOAM_DOUBLE: loam__buf_double(b, v->u.d, 1); break;
    case LOAM_TEXT:
      /* a numeric default given as text was checked to be a plain decimal */
      if (c->type == LOAM_COL_NUMERIC) loam__buf_add(b, v->u.s.ptr, v->u.s.len);
      else loam__buf_literal(b, v->u.s.ptr, v->u.s.len);
      break;
    default:
      loam__buf_adds(b, r->d->blob_open);
      addhex(b, v->u.s.ptr, v->u.s.len);
      loam__buf_adds(b, r->d->blob_close);
      break;
  }
}

/* }====================================================================== */


/* {======================================================================
** CREATE TABLE
** ======================================================================= */

static int colindex (const loam_table_def *t, const char *name) {
  int i;
  for (i = 0; i < t->ncolumns; i++)
    if (strcmp(t->columns[i].name, name) == 0) return i;
  return -1;
}


/*
** Checks a list of column names of table constraint 'what' ("primary
** key", "unique constraint #2"): valid, declared in the table, none twice.
*/
static int checkcols (R *r, const loam_table_def *t, const char *const *cols, int n,
                      const char *what) {
  int i, j;
  if (n <= 0 || cols == NULL) return fail(r, "%s has no columns", what);
  for (i = 0; i < n; i++) {
    if (checkident(r, cols[i], what) != LOAM_OK) return LOAM_ERROR;
    if (colindex(t, cols[i]) < 0)
      return fail(r, "%s names column '%s', which the table does not declare", what, cols[i]);
    for (j = 0; j < i; j++)
      if (strcmp(cols[i], cols[j]) == 0)
        return fail(r, "%s names column '%s' twice", what, cols[i]);
  }
  return LOAM_OK;
}


/* True when column 'name' is part of the composite primary key of 't'. */
static int incomposite (const loam_table_def *t, const char *name) {
  int i;
  for (i = 0; i < t->nprimary_key; i++)
    if (strcmp(t->primary_key[i], name) == 0) return 1;
  return 0;
}


/* Table-wide checks: names, duplicates, and that there is one primary key at most. */
static int checktable (R *r, const loam_table_def *t) {
  const char *pk = NULL;    /* the column that holds the primary key so far */
  int i, j;
  if (t->ncolumns <= 0 || t->columns == NULL) return fail(r, "has no columns");
  for (i = 0; i < t->ncolumns; i++) {
    const loam_column_def *c = &t->columns[i];
    char what[32];
    snprintf(what, sizeof what, "column #%d", i + 1);
    if (checkident(r, c->name, what) != LOAM_OK) return LOAM_ERROR;
    for (j = 0; j < i; j++)
      if (strcmp(t->columns[j].name, c->name) == 0)
        return fail(r, "column '%s' is declared twice", c->name);
    if (c->type == LOAM_COL_ID || c->primary_key) {
      if (pk != NULL)
        return fail(r, "has two primary keys (columns '%s' and '%s'); declare a composite "
                    "primary key instead", pk, c->name);
      pk = c->name;
    }
  }
  if (t->nprimary_key < 0 || (t->nprimary_key > 0 && t->primary_key == NULL))
    return fail(r, "primary key has no columns");
  if (t->nprimary_key > 0) {
    if (pk != NULL)
      return fail(r, "has two primary keys (column '%s' and the composite primary key)", pk);
    if (checkcols(r, t, t->primary_key, t->nprimary_key, "primary key") != LOAM_OK)
      return LOAM_ERROR;
  }
  if (t->nchecks < 0 || (t->nchecks > 0 && t->checks == NULL))
    return fail(r, "bad check list");
  if (t->nuniques < 0 || (t->nuniques > 0 && t->uniques == NULL))
    return fail(r, "bad unique constraint list");
  if (t->nforeign_keys < 0 || (t->nforeign_keys > 0 && t->foreign_keys == NULL))
    return fail(r, "bad foreign key list");
  return LOAM_OK;
}


/* Checks the type options of column 'c': those of its own type only, in range. */
static int checkoptions (R *r, const loam_column_def *c) {
  loam_col_type t = c->type;
  int i, j;
  if (t < LOAM_COL_ID || t > LOAM_COL_ENUM)
    return fail(r, "column '%s' has an unknown type (%d)", c->name, (int)t);
  if (c->length != 0) {
    if (t != LOAM_COL_TEXT)
      return fail(r, "column '%s': 'length' applies to text columns only, not %s",
                  c->name, typename(t));
    if (c->length < 0 || c->length > MAX_LENGTH)
      return fail(r, "column '%s': length %d is out of range (1 to %d)",
                  c->name, c->length, MAX_LENGTH);
  }
  if (c->precision != 0 || c->scale != 0) {
    if (t != LOAM_COL_NUMERIC)
      return fail(r, "column '%s': precision and scale apply to numeric columns only, not %s",
                  c->name, typename(t));
    if (c->precision == 0)
      return fail(r, "column '%s': a scale needs a precision", c->name);
    if (c->precision < 0 || c->precision > MAX_PRECISION)
      return fail(r, "column '%s': precision %d is out of range (1 to %d)",
                  c->name, c->precision, MAX_PRECISION);
    if (c->scale < 0 || c->scale > c->precision)
      return fail(r, "column '%s': scale %d is out of range (0 to the precision, %d)",
                  c->name, c->scale, c->precision);
  }
  if (t != LOAM_COL_ENUM) {
    if (c->nenum_values != 0 || c->enum_values != NULL)
      return fail(r, "column '%s': enum values apply to enum columns only, not %s",
                  c->name, typename(t));
    return LOAM_OK;
  }
  if (c->nenum_values <= 0 || c->enum_values == NULL)
    return fail(r, "column '%s': an enum needs at least one value", c->name);
  for (i = 0; i < c->nenum_values; i++) {
    if (c->enum_values[i] == NULL)
      return fail(r, "column '%s': enum value #%d is missing", c->name, i + 1);
    for (j = 0; j < i; j++)
      if (strcmp(c->enum_values[i], c->enum_values[j]) == 0)
        return fail(r, "column '%s': enum value '%s' is listed twice", c->name,
                    c->enum_values[i]);
  }
  return LOAM_OK;
}


/* Checks the default of column 'c'. */
static int checkdefault (R *r, const loam_column_def *c, int notnull) {
  switch (c->defval.kind) {
    case LOAM_DEFAULT_NONE: return LOAM_OK;
    case LOAM_DEFAULT_VALUE: break;
    case LOAM_DEFAULT_SQL:
      if (c->defval.sql == NULL || c->defval.sql[0] == '\0')
        return fail(r, "column '%s': raw SQL default is empty", c->name);
      /* without a date type nothing says the expression writes the
         canonical text that loam compares with (see loam.h) */
      if (r->d->text_dates && (c->type == LOAM_COL_DATE || c->type == LOAM_COL_TIMESTAMP))
        return fail(r, "column '%s': a raw SQL default on a %s column cannot be known to "
                    "write the canonical %s text on %s; use the 'now' default "
                    "(loam.now) or a literal", c->name, typename(c->type), typename(c->type),
                    r->d->name);
      break;
    case LOAM_DEFAULT_NOW:
      if (c->type != LOAM_COL_DATE && c->type != LOAM_COL_TIMESTAMP)
        return fail(r, "column '%s': the 'now' default needs a date or timestamp column, "
                    "not %s", c->name, typename(c->type));
      return LOAM_OK;
    default:
      return fail(r, "column '%s': unknown default kind (%d)", c->name, (int)c->defval.kind);
  }
  if (c->type == LOAM_COL_ID)
    return fail(r, "column '%s': an id column takes its values from the database and "
                "cannot have a default", c->name);
  return c->defval.kind == LOAM_DEFAULT_VALUE ? checkvalue(r, c, notnull) : LOAM_OK;
}


/* Checks the foreign key of column 'c' ('notnull': the column can never be NULL). */
static int checkfk (R *r, const loam_column_def *c, int notnull) {
  const loam_fk_def *f = &c->references;
  char what[100];
  if (f->table == NULL) {
    if (f->column != NULL || f->on_delete != LOAM_FK_NO_ACTION ||
        f->on_update != LOAM_FK_NO_ACTION)
      return fail(r, "column '%s': foreign key has no referenced table", c->name);
    return LOAM_OK;
  }
  snprintf(what, sizeof what, "column '%.63s': referenced table", c->name);
  if (checkident(r, f->table, what) != LOAM_OK) return LOAM_ERROR;
  snprintf(what, sizeof what, "column '%.63s': referenced column", c->name);
  if (f->column != NULL && checkident(r, f->column, what) != LOAM_OK) return LOAM_ERROR;
  if ((unsigned)f->on_delete > LOAM_FK_SET_DEFAULT || (unsigned)f->on_update > LOAM_FK_SET_DEFAULT)
    return fail(r, "column '%s': unknown foreign key action (%d)", c->name,
                (unsigned)f->on_delete > LOAM_FK_SET_DEFAULT ? (int)f->on_delete
                                                             : (int)f->on_update);
  if (notnull && (f->on_delete == LOAM_FK_SET_NULL || f->on_update == LOAM_FK_SET_NULL))
    return fail(r, "column '%s': foreign key action SET NULL on a NOT NULL column",
                c->name);
  return LOAM_OK;
}


static void addtype (R *r, const loam_column_def *c) {
  loam__buf *b = &r->b;
  if (c->type == LOAM_COL_ID) loam__buf_adds(b, r->d->identity);
  else if (c->type == LOAM_COL_TEXT && c->length > 0 && r->d->varchar != NULL) {
    loam__buf_adds(b, r->d->varchar);
    loam__buf_addf(b, "(%d)", c->length);
  }
  else {
    loam__buf_adds(b, r->d->types[c->type]);
    if (c->type == LOAM_COL_NUMERIC && c->precision > 0)
      loam__buf_addf(b, "(%d,%d)", c->precision, c->scale);
  }
}


/*
** Appends the CHECK that a type needs on this backend, if any: enum
** values on both, text length and json validity where the types do not
** enforce them (SQLite; PostgreSQL's varchar and jsonb do).
*/
static int addtypecheck (R *r, const loam_column_def *c) {
  loam__buf *b = &r->b;
  size_t namelen = strlen(c->name);
  int i;
  if (c->type == LOAM_COL_ENUM) {
    loam__buf_addc(b, ' ');
    if (genconstraint(r, &c->name, 1, "check") != LOAM_OK) return LOAM_ERROR;
    loam__buf_adds(b, "CHECK (");
    loam__buf_ident(b, c->name, namelen);
    loam__buf_adds(b, " IN (");
    for (i = 0; i < c->nenum_values; i++) {
      if (i > 0) loam__buf_adds(b, ", ");
      loam__buf_literal(b, c->enum_values[i], strlen(c->enum_values[i]));
    }
    loam__buf_adds(b, "))");
  }
  else if (r->d->varchar == NULL && c->type == LOAM_COL_TEXT && c->length > 0) {
    loam__buf_addc(b, ' ');
    if (genconstraint(r, &c->name, 1, "check") != LOAM_OK) return LOAM_ERROR;
    loam__buf_adds(b, "CHECK (length(");
    loam__buf_ident(b, c->name, namelen);
    loam__buf_addf(b, ") <= %d)", c->length);
  }
  else if (r->d->json_check && c->type == LOAM_COL_JSON) {
    /* json_valid(NULL) is 0 before SQLite 3.46 (NULL since), so NULL is let
       through explicitly: a nullable json column must accept it everywhere */
    loam__buf_addc(b, ' ');
    if (genconstraint(r, &c->name, 1, "check") != LOAM_OK) return LOAM_ERROR;
    loam__buf_adds(b, "CHECK (");
    loam__buf_ident(b, c->name, namelen);
    loam__buf_adds(b, " IS NULL OR json_valid(");
    loam__buf_ident(b, c->name, namelen);
    loam__buf_adds(b, "))");
  }
  return LOAM_OK;
}


static void addaction (loam__buf *b, const char *on, loam_fk_action a) {
  if (a == LOAM_FK_NO_ACTION) return;
  loam__buf_addf(b, " ON %s %s", on, actions[a]);
}


/*
** Appends column 'c': name, type, NOT NULL, DEFAULT, then its own
** constraints (primary key, unique, type check, foreign key), each named.
*/
static int addcolumn (R *r, const loam_table_def *t, const loam_column_def *c) {
  loam__buf *b = &r->b;
  int colpk = (c->type == LOAM_COL_ID || c->primary_key);
  int notnull = c->not_null || colpk || incomposite(t, c->name);
  if (checkoptions(r, c) != LOAM_OK || checkdefault(r, c, notnull) != LOAM_OK ||
      checkfk(r, c, notnull) != LOAM_OK)
    return LOAM_ERROR;
  loam__buf_ident(b, c->name, strlen(c->name));
  loam__buf_addc(b, ' ');
  addtype(r, c);
  /* an id column is NOT NULL through its key on both backends; the text
     keeps the canonical 'INTEGER PRIMARY KEY' form of SQLite's rowid alias */
  if (notnull && c->type != LOAM_COL_ID) loam__buf_adds(b, " NOT NULL");
  if (c->defval.kind != LOAM_DEFAULT_NONE) adddefault(r, c);
  if (colpk) {
    loam__buf_addc(b, ' ');
    if (genconstraint(r, NULL, 0, "pkey") != LOAM_OK) return LOAM_ERROR;
    loam__buf_adds(b, "PRIMARY KEY");
  }
  if (c->unique) {
    loam__buf_addc(b, ' ');
    if (genconstraint(r, &c->name, 1, "key") != LOAM_OK) return LOAM_ERROR;
    loam__buf_adds(b, "UNIQUE");
  }
  if (addtypecheck(r, c) != LOAM_OK) return LOAM_ERROR;
  if (c->references.table != NULL) {
    const loam_fk_def *f = &c->references;
    loam__buf_addc(b, ' ');
    if (genconstraint(r, &c->name, 1, "fkey") != LOAM_OK) return LOAM_ERROR;
    loam__buf_adds(b, "REFERENCES ");
    loam__buf_ident(b, f->table, strlen(f->table));
    if (f->column != NULL) {
      loam__buf_adds(b, " (");
      loam__buf_ident(b, f->column, strlen(f->column));
      loam__buf_addc(b, ')');
    }
    addaction(b, "DELETE", f->on_delete);
    addaction(b, "UPDATE", f->on_update);
  }
  return LOAM_OK;
}


void loam__ddl_collist (loam__buf *b, const char *const *cols, int n) {
  int i;
  loam__buf_addc(b, '(');
  for (i = 0; i < n; i++) {
    if (i > 0) loam__buf_adds(b, ", ");
    loam__buf_ident(b, cols[i], strlen(cols[i]));
  }
  loam__buf_addc(b, ')');
}


/*
** Checks foreign key #'i' of 't': its columns, the referenced table and
** columns, the actions, and SET NULL against a NOT NULL column.
*/
static int checktablefk (R *r, const loam_table_def *t, int i) {
  const loam_foreign_key_def *f = &t->foreign_keys[i];
  char what[48], ref[64];
  int j;
  snprintf(what, sizeof what, "foreign key #%d", i + 1);
  snprintf(ref, sizeof ref, "foreign key #%d: referenced table", i + 1);
  if (checkcols(r, t, f->columns, f->ncolumns, what) != LOAM_OK ||
      checkident(r, f->ref_table, ref) != LOAM_OK)
    return LOAM_ERROR;
  snprintf(ref, sizeof ref, "foreign key #%d: referenced column", i + 1);
  for (j = 0; f->ref_columns != NULL && j < f->ncolumns; j++)
    if (checkident(r, f->ref_columns[j], ref) != LOAM_OK) return LOAM_ERROR;
  if ((unsigned)f->on_delete > LOAM_FK_SET_DEFAULT || (unsigned)f->on_update > LOAM_FK_SET_DEFAULT)
    return fail(r, "%s: unknown foreign key action (%d)", what,
                (unsigned)f->on_delete > LOAM_FK_SET_DEFAULT ? (int)f->on_delete
                                                             : (int)f->on_update);
  if (f->on_delete == LOAM_FK_SET_NULL || f->on_update == LOAM_FK_SET_NULL)
    for (j = 0; j < f->ncolumns; j++) {
      const loam_column_def *c = &t->columns[colindex(t, f->columns[j])];
      if (c->not_null || c->primary_key || c->type == LOAM_COL_ID || incomposite(t, c->name))
        return fail(r, "%s: foreign key action SET NULL on NOT NULL column '%s'", what,
                    c->name);
    }
  return LOAM_OK;
}


/* Appends the table constraints: composite primary key, uniques, checks, foreign keys. */
static int addtableconstraints (R *r, const loam_table_def *t) {
  loam__buf *b = &r->b;
  char what[48];
  int i;
  if (t->nprimary_key > 0) {
    loam__buf_adds(b, ", ");
    if (genconstraint(r, NULL, 0, "pkey") != LOAM_OK) return LOAM_ERROR;
    loam__buf_adds(b, "PRIMARY KEY ");
    loam__ddl_collist(b, t->primary_key, t->nprimary_key);
  }
  for (i = 0; i < t->nuniques; i++) {
    const loam_unique_def *u = &t->uniques[i];
    snprintf(what, sizeof what, "unique constraint #%d", i + 1);
    if (checkcols(r, t, u->columns, u->ncolumns, what) != LOAM_OK) return LOAM_ERROR;
    loam__buf_adds(b, ", ");
    if (u->name != NULL) {
      if (checkident(r, u->name, what) != LOAM_OK ||
          constraint(r, u->name, strlen(u->name)) != LOAM_OK)
        return LOAM_ERROR;
    }
    else if (genconstraint(r, u->columns, u->ncolumns, "key") != LOAM_OK)
      return LOAM_ERROR;
    loam__buf_adds(b, "UNIQUE ");
    loam__ddl_collist(b, u->columns, u->ncolumns);
  }
  for (i = 0; i < t->nchecks; i++) {
    const loam_check_def *k = &t->checks[i];
    snprintf(what, sizeof what, "check #%d", i + 1);
    if (k->name == NULL)
      return fail(r, "%s has no name (a schema diff matches checks by name)", what);
    if (checkident(r, k->name, what) != LOAM_OK) return LOAM_ERROR;
    if (k->sql == NULL || k->sql[0] == '\0')
      return fail(r, "check '%s' has no SQL", k->name);
    loam__buf_adds(b, ", ");
    if (constraint(r, k->name, strlen(k->name)) != LOAM_OK) return LOAM_ERROR;
    loam__buf_adds(b, "CHECK (");
    loam__buf_adds(b, k->sql);
    loam__buf_addc(b, ')');
  }
  for (i = 0; i < t->nforeign_keys; i++) {
    const loam_foreign_key_def *f = &t->foreign_keys[i];
    if (checktablefk(r, t, i) != LOAM_OK) return LOAM_ERROR;
    loam__buf_adds(b, ", ");
    if (f->name != NULL) {
      snprintf(what, sizeof what, "foreign key #%d", i + 1);
      if (checkident(r, f->name, what) != LOAM_OK ||
          constraint(r, f->name, strlen(f->name)) != LOAM_OK)
        return LOAM_ERROR;
    }
    else if (genconstraint(r, f->columns, f->ncolumns, "fkey") != LOAM_OK)
      return LOAM_ERROR;
    loam__ddl_fk_clause(b, f->columns, f->ref_table, f->ref_columns, f->ncolumns, f->on_delete,
                        f->on_update);
  }
  return LOAM_OK;
}

/* }====================================================================== */


/* {======================================================================
** Entry points
** ======================================================================= */

/* Starts a rendering: checks the output pointer and the backend. */
static int start (R *r, loam_backend backend, loam_rendered **out, loam_error *err) {
  memset(r, 0, sizeof *r);
  r->d = loam__dialect(backend);
  r->err = err;
  if (out == NULL) return loam__err(err, LOAM_E_MISUSE, "DDL: no output pointer");
  *out = NULL;
  if (r->d == NULL)
    return loam__err(err, LOAM_E_MISUSE, "DDL: unknown backend (%d)", (int)backend);
  return LOAM_OK;
}


/* Ends a rendering: hands the statement over on success, frees everything. */
static int finish (R *r, int rc, loam_rendered **out) {
  const char *sql = rc == LOAM_OK ? loam__buf_cstr(&r->b) : NULL;
  if (rc == LOAM_OK &&
      (sql == NULL || (*out = loam__rendered_text(sql, r->b.len, LOAM_SQL_DDL)) == NULL))
    rc = loam__err_nomem(r->err);
  loam__buf_free(&r->b);
  loam__buf_free(&r->names);
  loam__buf_free(&r->tmp);
  return rc;
}


static int createtable (R *r, const loam_table_def *t) {
  int i;
  if (t == NULL) return loam__err(r->err, LOAM_E_MISUSE, "DDL: no table definition");
  if (checkident(r, t->name, "table name") != LOAM_OK) return LOAM_ERROR;
  r->table = t->name;
  if (checktable(r, t) != LOAM_OK) return LOAM_ERROR;
  loam__buf_adds(&r->b, "CREATE TABLE ");
  if (t->if_not_exists) loam__buf_adds(&r->b, "IF NOT EXISTS ");
  loam__buf_ident(&r->b, t->name, strlen(t->name));
  loam__buf_adds(&r->b, " (");
  for (i = 0; i < t->ncolumns; i++) {
    if (i > 0) loam__buf_adds(&r->b, ", ");
    if (addcolumn(r, t, &t->columns[i]) != LOAM_OK) return LOAM_ERROR;
  }
  if (addtableconstraints(r, t) != LOAM_OK) return LOAM_ERROR;
  loam__buf_addc(&r->b, ')');
  return LOAM_OK;
}


int loam_render_create_table (const loam_table_def *def, loam_backend backend,
                              loam_rendered **out, loam_error *err) {
  R r;
  int rc = start(&r, backend, out, err);
  if (rc == LOAM_OK) rc = createtable(&r, def);
  return finish(&r, rc, out);
}


static int createindex (R *r, const loam_index_def *x, int concurrently) {
  loam__buf *b = &r->b;
  const char *name;
  size_t namelen;
  char what[32];
  int i, j;
  if (x == NULL) return loam__err(r->err, LOAM_E_MISUSE, "DDL: no index definition");
  if (checkident(r, x->table, "index table") != LOAM_OK) return LOAM_ERROR;
  r->table = x->table;
  if (x->ncolumns <= 0 || x->columns == NULL)
    return fail(r, "index '%s' has no columns", nm(x->name));
  for (i = 0; i < x->ncolumns; i++) {
    snprintf(what, sizeof what, "index column #%d", i + 1);
    if (checkident(r, x->columns[i], what) != LOAM_OK) return LOAM_ERROR;
    for (j = 0; j < i; j++)
      if (strcmp(x->columns[i], x->columns[j]) == 0)
        return fail(r, "index '%s' names column '%s' twice", nm(x->name), x->columns[i]);
  }
  if (x->name != NULL) {
    if (checkident(r, x->name, "index name") != LOAM_OK) return LOAM_ERROR;
    name = x->name;
    namelen = strlen(name);
  }
  else {
    defaultname(&r->tmp, x->table, x->columns, x->ncolumns, "idx", LOAM_IDENT_MAX);
    if (r->tmp.oom) return loam__err_nomem(r->err);
    name = r->tmp.p;
    namelen = r->tmp.len;
  }
  if (x->where != NULL && x->where[0] == '\0')
    return fail(r, "index '%.*s' has an empty WHERE predicate", (int)namelen, name);
  loam__buf_adds(b, x->unique ? "CREATE UNIQUE INDEX " : "CREATE INDEX ");
  if (concurrently) loam__buf_adds(b, "CONCURRENTLY ");
  if (x->if_not_exists) loam__buf_adds(b, "IF NOT EXISTS ");
  loam__buf_ident(b, name, namelen);
  loam__buf_adds(b, " ON ");
  loam__buf_ident(b, x->table, strlen(x->table));
  loam__buf_addc(b, ' ');
  loam__ddl_collist(b, x->columns, x->ncolumns);
  if (x->where != NULL) {
    loam__buf_adds(b, " WHERE (");
    loam__buf_adds(b, x->where);
    loam__buf_addc(b, ')');
  }
  return LOAM_OK;
}


int loam__render_index (const loam_index_def *def, loam_backend backend, int concurrently,
                        loam_rendered **out, loam_error *err) {
  R r;
  int rc = start(&r, backend, out, err);
  if (rc == LOAM_OK) rc = createindex(&r, def, concurrently);
  return finish(&r, rc, out);
}


int loam_render_create_index (const loam_index_def *def, loam_backend backend,
                              loam_rendered **out, loam_error *err) {
  return loam__render_index(def, backend, 0, out, err);
}


/*
** One column of 'table' outside a CREATE TABLE (ALTER TABLE ADD COLUMN,
** ALTER COLUMN): checked as the table's own columns are.  With 'whole'
** the full definition goes to 'def'; otherwise 'type' receives the type
** and 'def' the default expression ('def' stays empty without one).
*/
static int column (const char *table, const loam_column_def *c, loam_backend backend,
                   int whole, loam__buf *type, loam__buf *def, loam_error *err) {
  R r;
  loam_table_def t;
  int rc;
  memset(&t, 0, sizeof t);
  if (start(&r, backend, &(loam_rendered *){ NULL }, err) != LOAM_OK) return LOAM_ERROR;
  rc = checkident(&r, table, "table name");
  r.table = table;
  t.name = table;
  t.columns = c;
  t.ncolumns = 1;
  if (rc == LOAM_OK) rc = checkident(&r, c->name, "column name");
  if (rc == LOAM_OK && whole) rc = addcolumn(&r, &t, c);
  else if (rc == LOAM_OK) {
    rc = checkoptions(&r, c);
    if (rc == LOAM_OK) rc = checkdefault(&r, c, c->not_null);
    if (rc == LOAM_OK) {
      addtype(&r, c);
      loam__buf_add(type, r.b.p, r.b.len);
      loam__buf_reset(&r.b);
      if (c->defval.kind != LOAM_DEFAULT_NONE) {
        adddefault(&r, c);
        /* without the leading " DEFAULT " */
        loam__buf_add(def, r.b.p + 9, r.b.len - 9);
      }
      loam__buf_reset(&r.b);
    }
  }
  if (rc == LOAM_OK && whole) loam__buf_add(def, r.b.p, r.b.len);
  if (rc == LOAM_OK && (r.b.oom || (type != NULL && type->oom) || def->oom))
    rc = loam__err_nomem(err);
  loam__buf_free(&r.b);
  loam__buf_free(&r.names);
  loam__buf_free(&r.tmp);
  return rc;
}


int loam__ddl_column (const char *table, const loam_column_def *c, loam_backend backend,
                      loam__buf *out, loam_error *err) {
  return column(table, c, backend, 1, NULL, out, err);
}


int loam__ddl_column_parts (const char *table, const loam_column_def *c, loam_backend backend,
                            loam__buf *type, loam__buf *def, loam_error *err) {
  return column(table, c, backend, 0, type, def, err);
}


void loam__ddl_fk_clause (loam__buf *b, const char *const *cols, const char *ref_table,
                          const char *const *ref_cols, int n, loam_fk_action on_delete,
                          loam_fk_action on_update) {
  loam__buf_adds(b, "FOREIGN KEY ");
  loam__ddl_collist(b, cols, n);
  loam__buf_adds(b, " REFERENCES ");
  loam__buf_ident(b, ref_table, strlen(ref_table));
  if (ref_cols != NULL) {    /* NULL: the referenced table's primary key */
    loam__buf_addc(b, ' ');
    loam__ddl_collist(b, ref_cols, n);
  }
  addaction(b, "DELETE", on_delete);
  addaction(b, "UPDATE", on_update);
}


const char *loam__fk_action_sql (loam_fk_action a) {
  return (unsigned)a <= LOAM_FK_SET_DEFAULT ? actions[a] : NULL;
}


int loam_render_drop_table (const char *table, int if_exists, loam_backend backend,
                            loam_rendered **out, loam_error *err) {
  R r;
  int rc = start(&r, backend, out, err);
  if (rc == LOAM_OK) rc = checkident(&r, table, "table name");
  if (rc == LOAM_OK) {
    loam__buf_adds(&r.b, if_exists ? "DROP TABLE IF EXISTS " : "DROP TABLE ");
    loam__buf_ident(&r.b, table, strlen(table));
  }
  return finish(&r, rc, out);
}


void loam_name_free (char *name) {
  free(name);
}


int loam_constraint_name (const char *table, const char *const *cols, int ncols,
                          const char *suffix, int shorten, char **name_out, loam_error *err) {
  loam__buf b = LOAM__BUF_INIT;
  int i;
  if (name_out == NULL) return loam__err(err, LOAM_E_MISUSE, "constraint name: no output pointer");
  *name_out = NULL;
  if (table == NULL || suffix == NULL || ncols < 0 || (ncols > 0 && cols == NULL))
    return loam__err(err, LOAM_E_MISUSE, "constraint name: NULL table, columns or suffix");
  for (i = 0; i < ncols; i++)
    if (cols[i] == NULL)
      return loam__err(err, LOAM_E_MISUSE, "constraint name: column %d is NULL", i + 1);
  if (strlen(suffix) + 2 + (ncols > 0 ? 1 : 0) > LOAM_IDENT_MAX)
    return loam__err(err, LOAM_E_MISUSE, "constraint name: suffix '%.20s' is too long", suffix);
  defaultname(&b, table, cols, ncols, suffix, shorten ? LOAM_IDENT_MAX : SIZE_MAX);
  if (loam__buf_cstr(&b) == NULL) {
    loam__buf_free(&b);
    return loam__err_nomem(err);
  }
  *name_out = b.p;
  return LOAM_OK;
}

/* }====================================================================== */
