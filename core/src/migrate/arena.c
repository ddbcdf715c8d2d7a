/*
** arena.c: one owner for many small allocations.
**
** An introspected schema is a tree of hundreds of strings and short
** arrays that live and die together; allocating them from blocks that
** are freed at once keeps the free function trivial and the tree
** read-only (its pointers can be 'const': nothing walks it to free it).
*/
#include <stdlib.h>
#include <string.h>

#include "migrate/migrate_int.h"


#define BLOCK 4096

typedef struct loam__ablock {
  struct loam__ablock *prev;
  size_t used, size;
  max_align_t data[];
} ablock;


void *loam__arena_alloc (loam__arena *a, size_t n) {
  ablock *b = a->head;
  size_t need = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
  char *p;
  if (a->oom) return NULL;
  if (need == 0) need = sizeof(max_align_t);
  if (b == NULL || b->size - b->used < need) {
    size_t size = need > BLOCK ? need : BLOCK;
    b = malloc(sizeof *b + size);
    if (b == NULL) { a->oom = 1; return NULL; }
    b->prev = a->head;
    b->used = 0;
    b->size = size;
    a->head = b;
  }
  p = (char *)b->data + b->used;
  b->used += need;
  memset(p, 0, need);
  return p;
}


char *loam__arena_strndup (loam__arena *a, const char *s, size_t n) {
  char *p = loam__arena_alloc(a, n + 1);
  if (p != NULL) memcpy(p, s, n);
  return p;
}


char *loam__arena_strdup (loam__arena *a, const char *s) {
  return s != NULL ? loam__arena_strndup(a, s, strlen(s)) : NULL;
}


void loam__arena_free (loam__arena *a) {
  while (a->head != NULL) {
    ablock *b = a->head;
    a->head = b->prev;
    free(b);
  }
  a->oom = 0;
}
