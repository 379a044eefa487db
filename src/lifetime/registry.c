/* Layer 8: the chunk registry of the lifetime allocators (see lifetime.h). A two-level radix table over the
 * 48-bit user address space in 4 MiB steps: 8192 root pointers in .bss (64 KiB of address space, one
 * resident page per 512 TiB-region actually used) and 8 KiB leaves of one byte per chunk, mapped on first
 * use and never unmapped (a leaf covers 32 GiB, so there are few).
 *
 * Invariant: a leaf pointer, once published with release, never changes; a byte is written only under
 * registry_lock, and read with relaxed loads (the chunk header it vouches for was initialised before the
 * chunk's first object was handed out, which the caller's own hand-over ordered before its free).
 */
#include "lifetime.h"

#define REG_BITS (48u - ZC_LT_CHUNK_SHIFT) /* 26 bits of chunk index */
#define LEAF_BITS 13u
#define ROOT_BITS (REG_BITS - LEAF_BITS)
#define LEAF_SIZE ((size_t)1 << LEAF_BITS)

static _Atomic(uint8_t *) registry_root[(size_t)1 << ROOT_BITS];
static zc_lock_t registry_lock = ZC_LOCK_INIT; /* protects leaf creation and every byte store */

bool zc_lt_registry_set(const void *base, uint8_t kind) {
  uintptr_t u = (uintptr_t)base;
  if (u >> 48) return false;
  size_t idx = u >> ZC_LT_CHUNK_SHIFT;
  size_t r = idx >> LEAF_BITS, l = idx & (LEAF_SIZE - 1);
  zc_lock(&registry_lock);
  uint8_t *leaf = atomic_load_explicit(&registry_root[r], memory_order_relaxed);
  if (leaf == NULL) {
    if (kind == ZC_LT_REG_NONE) {
      zc_unlock(&registry_lock);
      return true;
    }
    leaf = zc_os_alloc_aligned(zc_lt_os_round(LEAF_SIZE), zc_os_page_size());
    if (leaf == NULL) {
      zc_unlock(&registry_lock);
      return false;
    }
    atomic_store_explicit(&registry_root[r], leaf, memory_order_release);
  }
  __atomic_store_n(&leaf[l], kind, __ATOMIC_RELEASE);
  zc_unlock(&registry_lock);
  return true;
}

uint8_t zc_lt_registry_get(const void *p) {
  uintptr_t u = (uintptr_t)p;
  if (u >> 48) return ZC_LT_REG_NONE;
  size_t idx = u >> ZC_LT_CHUNK_SHIFT;
  uint8_t *leaf = atomic_load_explicit(&registry_root[idx >> LEAF_BITS], memory_order_acquire);
  if (leaf == NULL) return ZC_LT_REG_NONE;
  return __atomic_load_n(&leaf[idx & (LEAF_SIZE - 1)], __ATOMIC_ACQUIRE);
}
