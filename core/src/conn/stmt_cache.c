/*
** stmt_cache.c: the per-connection prepared-statement cache.
**
** Preparing is the expensive half of running a statement (parsing and
** planning on the server, a round trip for PostgreSQL), and an ORM runs
** the same few shapes of SQL again and again.  The cache keeps the most
** recently used statements, keyed by their text, and evicts the least
** recently used one beyond its capacity.  A statement being stepped is
** pinned: it is never evicted or handed to a second user, so a nested
** iteration over the same SQL gets a fresh statement instead.
*/
#include <stdlib.h>
#include <string.h>

#include "conn/conn_int.h"


struct loam__centry {
  char *key;
  size_t keylen;
  uint64_t hash;
  void *handle;
  int pinned;
  loam__centry *chain;        /* next in the hash bucket */
  loam__centry *newer, *older;
};


/*
** Eight bytes a step (FNV-1a's byte a step cost a statement more than its
** bind): every statement's key, its whole SQL text, is hashed on each run.
** The key is compared in full on a hit, so the hash only has to spread.
*/
static uint64_t hashkey (const char *k, size_t n) {
  uint64_t h = LOAM__FNV_BASIS ^ (uint64_t)n, w;
  size_t i;
  for (i = 0; i + 8 <= n; i += 8) {
    memcpy(&w, k + i, 8);
    h = (h ^ w) * 0x9e3779b97f4a7c15u;
    h ^= h >> 29;
  }
  if (i < n) {
    w = 0;
    memcpy(&w, k + i, n - i);
    h = (h ^ w) * 0x9e3779b97f4a7c15u;
  }
  /* A finisher, so that the last word's high bytes (where keys of one SQL
  ** text but other parameter classes differ) reach the low bits too. */
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdu;
  h ^= h >> 33;
  return h;
}


void loam__cache_init (loam__cache *c, int capacity,
                       void (*destroy) (void *ud, void *handle), void *ud) {
  memset(c, 0, sizeof *c);
  c->capacity = capacity < 0 ? 0 : capacity;
  c->destroy = destroy;
  c->ud = ud;
}


static void lru_unlink (loam__cache *c, loam__centry *e) {
  if (e->newer) e->newer->older = e->older; else c->head = e->older;
  if (e->older) e->older->newer = e->newer; else c->tail = e->newer;
  e->newer = e->older = NULL;
}


static void lru_push_front (loam__cache *c, loam__centry *e) {
  e->newer = NULL;
  e->older = c->head;
  if (c->head) c->head->newer = e;
  c->head = e;
  if (c->tail == NULL) c->tail = e;
}


static loam__centry **bucket_of (loam__cache *c, uint64_t h) {
  return &c->buckets[h & (c->nbuckets - 1)];
}


/* Removes 'e' from its bucket and the LRU list, destroys its handle and frees it. */
static void remove_entry (loam__cache *c, loam__centry *e) {
  loam__centry **pp = bucket_of(c, e->hash);
  while (*pp != e) pp = &(*pp)->chain;
  *pp = e->chain;
  lru_unlink(c, e);
  c->count--;
  if (c->destroy) c->destroy(c->ud, e->handle);
  free(e->key);
  free(e);
}


static void evict (loam__cache *c) {
  loam__centry *e = c->tail;
  while (c->count > c->capacity && e != NULL) {
    loam__centry *newer = e->newer;
    if (!e->pinned) remove_entry(c, e);
    e = newer;
  }
}


static loam__centry *find (loam__cache *c, const char *key, size_t keylen, uint64_t h) {
  loam__centry *e;
  if (c->nbuckets == 0) return NULL;
  for (e = *bucket_of(c, h); e != NULL; e = e->chain)
    if (e->hash == h && e->keylen == keylen && memcmp(e->key, key, keylen) == 0) return e;
  return NULL;
}


loam__centry *loam__cache_get (loam__cache *c, const char *key, size_t keylen) {
  loam__centry *e = find(c, key, keylen, hashkey(key, keylen));
  if (e == NULL || e->pinned) return NULL;
  e->pinned = 1;
  lru_unlink(c, e);
  lru_push_front(c, e);
  return e;
}


/* Keeps the load factor at most one entry per bucket. */
static int ensure_buckets (loam__cache *c) {
  size_t n, i;
  loam__centry **nb, *e;
  if ((size_t)c->count < c->nbuckets) return 1;
  n = c->nbuckets ? c->nbuckets * 2 : 16;
  nb = calloc(n, sizeof *nb);
  if (nb == NULL) return 0;
  for (i = 0; i < c->nbuckets; i++) {
    while ((e = c->buckets[i]) != NULL) {
      c->buckets[i] = e->chain;
      e->chain = nb[e->hash & (n - 1)];
      nb[e->hash & (n - 1)] = e;
    }
  }
  free(c->buckets);
  c->buckets = nb;
  c->nbuckets = n;
  return 1;
}


loam__centry *loam__cache_put (loam__cache *c, const char *key, size_t keylen, void *handle) {
  loam__centry *e, **b;
  /* A pinned statement of the same text is in use: the newcomer stays uncached. */
  if (c->capacity == 0 || find(c, key, keylen, hashkey(key, keylen)) != NULL) return NULL;
  if (!ensure_buckets(c)) return NULL;
  e = calloc(1, sizeof *e);
  if (e == NULL) return NULL;
  e->key = malloc(keylen ? keylen : 1);
  if (e->key == NULL) { free(e); return NULL; }
  memcpy(e->key, key, keylen);
  e->keylen = keylen;
  e->hash = hashkey(key, keylen);
  e->handle = handle;
  e->pinned = 1;
  b = bucket_of(c, e->hash);
  e->chain = *b;
  *b = e;
  lru_push_front(c, e);
  c->count++;
  evict(c);
  return e;
}


void *loam__cache_handle (const loam__centry *e) {
  return e->handle;
}


void loam__cache_release (loam__cache *c, loam__centry *e) {
  e->pinned = 0;
  evict(c);
}


void loam__cache_drop (loam__cache *c, loam__centry *e) {
  remove_entry(c, e);
}


void loam__cache_clear (loam__cache *c) {
  while (c->tail != NULL) remove_entry(c, c->tail);
  free(c->buckets);
  c->buckets = NULL;
  c->nbuckets = 0;
  c->count = 0;
}
