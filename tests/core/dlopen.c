/* zcmem under dlopen, in both directions.
 *
 *   core_dlopen glibc <path of libzcmem.so>: this process runs on glibc's malloc (not linked with zcmem);
 *     it dlopens libzcmem.so late, finds zc_malloc/zc_realloc/zc_free/zc_usable_size with dlsym, uses them
 *     from two threads, and exits cleanly (exit handlers of both allocators run). glibc's malloc stays in
 *     charge of malloc(): no block of one allocator is ever given to the other.
 *   core_dlopen preload <path of helper library>: started with LD_PRELOAD=libzcmem.so; dlopens a plain
 *     library that allocates in its constructor and functions, exchanges blocks both ways, dlcloses it.
 */
#define _GNU_SOURCE
#include "zc_test.h"

#include <dlfcn.h>
#include <pthread.h>

typedef void *(*malloc_fn)(size_t);
typedef void *(*realloc_fn)(void *, size_t);
typedef void (*free_fn)(void *);
typedef size_t (*usable_fn)(const void *);

static malloc_fn zmalloc;
static realloc_fn zrealloc;
static free_fn zfree;
static usable_fn zusable;

static void *zc_thread(void *arg) {
  int *bad = arg;
  void *p[500];
  for (int i = 0; i < 500; i++) {
    p[i] = zmalloc((size_t)(i * 37 % 5000) + 1);
    if (!p[i]) (*bad)++;
    else memset(p[i], 0x3C, (size_t)(i * 37 % 5000) + 1);
  }
  for (int i = 0; i < 500; i++) zfree(p[i]);
  return NULL;
}

static int run_glibc(const char *lib) {
  CHECKF(strstr(malloc_owner(), "zcmem") == NULL, "malloc already resolves to %s", malloc_owner());
  char *before = malloc(100); /* glibc's, before zcmem is loaded */
  REQUIRE(before != NULL);
  strcpy(before, "glibc block");
  void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  CHECKF(h != NULL, "dlopen(%s): %s", lib, dlerror());
  if (!h) return check_exit("core_dlopen_glibc");
  zmalloc = (malloc_fn)dlsym(h, "zc_malloc");
  zrealloc = (realloc_fn)dlsym(h, "zc_realloc");
  zfree = (free_fn)dlsym(h, "zc_free");
  zusable = (usable_fn)dlsym(h, "zc_usable_size");
  REQUIRE(zmalloc && zrealloc && zfree && zusable);
  CHECKF(strstr(malloc_owner(), "zcmem") == NULL, "dlopen(RTLD_LOCAL) made malloc resolve to %s", malloc_owner());
  char *p = zmalloc(64);
  REQUIRE(p != NULL);
  strcpy(p, "zcmem block");
  CHECK(zusable(p) >= 64);
  p = zrealloc(p, 200000);
  REQUIRE(p != NULL);
  CHECK(strcmp(p, "zcmem block") == 0);
  zfree(p);
  int bad = 0;
  pthread_t t[2];
  for (int i = 0; i < 2; i++) REQUIRE(pthread_create(&t[i], NULL, zc_thread, &bad) == 0);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  CHECK(bad == 0);
  /* glibc keeps working beside it */
  char *after = malloc(300);
  REQUIRE(after != NULL);
  CHECK(strcmp(before, "glibc block") == 0);
  free(before);
  free(after);
  return check_exit("core_dlopen_glibc"); /* exit handlers of both allocators run after this */
}

static int run_preload(const char *helper) {
  CHECKF(strstr(malloc_owner(), "zcmem") != NULL, "malloc resolves to %s, not zcmem (LD_PRELOAD=%s)",
         malloc_owner(), getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "(unset)");
  for (int round = 0; round < 3; round++) {
    void *h = dlopen(helper, RTLD_NOW | (round == 1 ? RTLD_GLOBAL : RTLD_LOCAL));
    CHECKF(h != NULL, "dlopen(%s): %s", helper, dlerror());
    if (!h) break;
    const char *(*ctor_block)(void) = (const char *(*)(void))dlsym(h, "dl_ctor_block");
    char *(*make_string)(int) = (char *(*)(int))dlsym(h, "dl_make_string");
    int (*take_block)(void *) = (int (*)(void *))dlsym(h, "dl_take_block");
    int (*thread_alloc)(void) = (int (*)(void))dlsym(h, "dl_thread_alloc");
    REQUIRE(ctor_block && make_string && take_block && thread_alloc);
    CHECK(ctor_block() && strcmp(ctor_block(), "allocated in the constructor") == 0);
    for (int i = 0; i < 1000; i++) {
      char *s = make_string(i);
      REQUIRE(s != NULL);
      char want[64];
      snprintf(want, sizeof want, "dlopen-lib-string-%d", i);
      CHECK(strcmp(s, want) == 0);
      free(s); /* the library's block, freed here */
      unsigned char *b = malloc((size_t)i * 3 + 1);
      REQUIRE(b != NULL);
      b[0] = (unsigned char)i;
      CHECK(take_block(b) == (unsigned char)i); /* ours, freed by the library */
    }
    CHECK(thread_alloc() == 64);
    CHECK(dlclose(h) == 0);
  }
  return check_exit("core_dlopen_preload");
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "glibc") == 0) return run_glibc(argv[2]);
  if (argc == 3 && strcmp(argv[1], "preload") == 0) return run_preload(argv[2]);
  fprintf(stderr, "usage: %s glibc <libzcmem.so> | preload <helper.so>\n", argv[0]);
  return 2;
}
