/*
** hash.c: the one hash function of libloam, 64-bit FNV-1a.
**
** Three things hash bytes: the statement cache (its keys), the batch
** loader (canonical key values) and the SQL fingerprints of tracing.  The
** fingerprints are documented as FNV-1a (loam.h, 'loam_fingerprint') and
** users may store them, so the offset basis and prime below must never
** change; one function keeps the three from drifting apart.
*/
#include "base/loam_int.h"


uint64_t loam__fnv1a (uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  size_t i;
  for (i = 0; i < n; i++) h = (h ^ b[i]) * LOAM__FNV_PRIME;
  return h;
}
