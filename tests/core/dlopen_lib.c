/* Helper library for core_dlopen: a plain library that allocates with malloc in its constructor and in
 * its functions, and frees blocks its caller allocated. Loaded with dlopen() into a process that runs on
 * libzcmem.so through LD_PRELOAD, so every block it touches must be zcmem's. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *ctor_block;
static void *thread_blocks[64];

__attribute__((constructor)) static void lib_init(void) {
  ctor_block = malloc(1000);
  if (ctor_block) strcpy(ctor_block, "allocated in the constructor");
}

__attribute__((destructor)) static void lib_fini(void) { free(ctor_block); }

const char *dl_ctor_block(void) { return ctor_block; }

/* A string the caller frees. */
char *dl_make_string(int i) {
  char *s = NULL;
  if (asprintf(&s, "dlopen-lib-string-%d", i) < 0) return NULL;
  return s;
}

/* Frees a block the caller allocated; returns its first byte. */
int dl_take_block(void *p) {
  int c = p ? ((unsigned char *)p)[0] : -1;
  free(p);
  return c;
}

static void *lib_thread(void *arg) {
  (void)arg;
  for (int i = 0; i < 64; i++) thread_blocks[i] = malloc((size_t)(i + 1) * 100);
  return NULL;
}

/* A thread of the library allocates; the caller's thread frees them after. */
int dl_thread_alloc(void) {
  pthread_t t;
  if (pthread_create(&t, NULL, lib_thread, NULL) != 0) return -1;
  pthread_join(t, NULL);
  int n = 0;
  for (int i = 0; i < 64; i++) {
    if (thread_blocks[i]) n++;
    free(thread_blocks[i]);
    thread_blocks[i] = NULL;
  }
  return n;
}
