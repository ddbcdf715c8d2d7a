/*
** test_query.h: what the query builder tests share (test_query.c defines
** it, test_query_db.c uses it too).
*/
#ifndef LOAM_TEST_QUERY_H
#define LOAM_TEST_QUERY_H

#include "loam.h"

/* The parameters of statement 'i' as "1, 'x', NULL, blob:3" (a static buffer). */
const char *qb_params (const loam_rendered *rs, int i);

/*
** Renders 'st' for 'd' and compares the one statement with 'sql' and
** 'params' (as 'qb_params' writes them); fails the test at file:line and
** returns 0 on any difference.
*/
int qb_expect (const char *file, int line, loam_qb *qb, const loam_qstmt *st, loam_backend d,
               const char *sql, const char *params);

/* Renders 'st' for 'd' and expects failure with 'code' and a message containing 'msg'. */
int qb_expect_err (const char *file, int line, loam_qb *qb, const loam_qstmt *st,
                   loam_backend d, loam_errcode code, const char *msg);

#define EXPECT(qb, st, d, sql, params) do { \
    if (!qb_expect(__FILE__, __LINE__, qb, st, d, sql, params)) return; } while (0)

#define EXPECT_ERR(qb, st, d, code, msg) do { \
    if (!qb_expect_err(__FILE__, __LINE__, qb, st, d, code, msg)) return; } while (0)

#endif
