/*
** sql_int.h: what the sql layer offers the layers above it, apart from the
** dialects (dialect_int.h) and the builder's nodes (builder_int.h): the
** one SQL lexer and placeholder scanner, identifier checks, and the
** rendered form built from text.
**
** Internal to libloam, like everything under core/src.
*/
#ifndef LOAM_SQL_INT_H
#define LOAM_SQL_INT_H

#include "base/loam_int.h"


/* {======================================================================
** SQL text (sqltext.c)
** ======================================================================= */

/*
** Scans 'sql' as PostgreSQL reads it (string literals, E'' strings,
** dollar quotes, quoted identifiers, nested block comments, line comments)
** and writes into 'out' the text 'backend' prepares: positional '?' become
** '$1'..'$n' on PostgreSQL and stay on SQLite; numbered placeholders ('$n'
** or '?n', the n-th parameter on both) become '$n' on PostgreSQL and '?n'
** on SQLite; '??' becomes '?' on PostgreSQL and is refused on SQLite.
** A '$n' is written with a blank before it where it would glue onto the
** token before it.  '*nparams' receives the number of parameters the statement takes.
** LOAM_E_MISUSE: mixed positional and numbered placeholders, a numbered
** one out of 1..65535, numbers with a gap, a second statement after ';'.
*/
LOAMI_FUNC int loam__sql_params (const char *sql, loam_backend backend, loam__buf *out,
                                 int *nparams, loam_error *err);

/* 'loam__sql_params' for PostgreSQL. */
LOAMI_FUNC int loam__sql_to_dollar (const char *sql, loam__buf *out, int *nparams,
                                   loam_error *err);

/* Token kinds of 'loam__sql_token'. */
enum {
  LOAM__TK_END = 0,   /* the terminating NUL */
  LOAM__TK_SPACE,     /* a run of blanks and comments */
  LOAM__TK_STRING,    /* '...', E'...' (backslash escapes), X'', B'', N'', $tag$...$tag$ */
  LOAM__TK_QIDENT,    /* "..." */
  LOAM__TK_NUMBER,    /* 42, 1.5e-3, .5, 0x1F */
  LOAM__TK_PARAM,     /* '?' (or SQLite's '?NNN'), or '$n' */
  LOAM__TK_WORD,      /* keyword or bare identifier ('$' allowed after the first byte) */
  LOAM__TK_PUNCT      /* any other byte, or '??' (the literal '?' operator) */
};

/*
** The one SQL lexer of libloam, reading as PostgreSQL does (string
** literals, E'' strings, dollar quotes, quoted identifiers, nested block
** comments, line comments).  Returns the end of the token that starts at
** 'p' and writes its kind into '*kind'.  An unterminated quote or comment
** runs to the end of the text.
*/
LOAMI_FUNC const char *loam__sql_token (const char *p, int *kind /* OUT */);

/* True when 'sql' starts (after blanks and comments) with keyword 'kw' (upper-case). */
LOAMI_FUNC int loam__sql_starts_with (const char *sql, const char *kw);

/* A result of one statement with no parameters (render.c); NULL when out of memory. */
LOAMI_FUNC loam_rendered *loam__rendered_text (const char *sql, size_t len, loam_sql_kind kind);

/*
** The text of a bulk insert into the INSERT 'st' of 'qb', which has its
** columns and nothing else (render.c): the INSERT of 'rows' rows of
** placeholders, or with 'rows' 0 the dialect's COPY of those columns from
** the client (LOAM_E_MISUSE where it has none).  On success '*out' holds
** the NUL-terminated text; the caller frees it with 'loam__buf_free'.
*/
LOAMI_FUNC int loam__insert_text (loam_qb *qb, const loam_qstmt *st, loam_backend dialect,
                                  int rows, loam__buf *out, loam_error *err);

/*
** A result of 'n' statements (render.c): the texts 'texts' with the kinds
** 'kinds', the 'nparams' values 'params' bound to the first one; all
** copied.  NULL when out of memory or 'n' < 1.
*/
LOAMI_FUNC loam_rendered *loam__rendered_list (int n, const char *const *texts,
                                               const loam_sql_kind *kinds,
                                               const loam_value *params, int nparams);

/* Checks an identifier: non-empty, no NUL, at most LOAM_IDENT_MAX bytes (LOAM_E_MISUSE). */
LOAMI_FUNC int loam__ident_check (const char *name, size_t len, loam_error *err);

/* }====================================================================== */

#endif
