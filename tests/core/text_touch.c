/* What of libzcmem.so's own file a process that mallocs keeps resident (docs/design.md, "What a process pays
 * before it holds data"). The kernel maps up to 64 KiB of a file's cached pages around each page fault
 * (fault-around), so what counts is which 64 KiB of the library a process runs or reads anything of.
 *
 *   core_text_touch LIB   drops LIB's pages from the page cache (so that no earlier use of the file decides
 *                         what is mapped), then runs itself with LIB preloaded: 3 threads (the purger starts
 *                         with the second heap) malloc and free blocks of every small and medium class
 *                         (16 B to 64 KiB, also handed to another thread to free: remote frees), calloc,
 *                         realloc and malloc_usable_size them, and once the purger has swept (4 MiB of
 *                         blocks freed and their pages purged), the child reads its own /proc/self/smaps:
 *                         (a) at most 64 KiB of the library's text is resident: the files every such process
 *                         runs are linked first, beside _init, which the loader always runs (with large.c's
 *                         and the channel's files first, 112 KiB: src/CMakeLists.txt);
 *                         (b) nothing of its read-only data segment (.rodata, the unwind tables) is resident:
 *                         the option names and the size-class tables are not read from .rodata
 *                         (src/options.c, src/sizeclass.c; 40 KiB when they were);
 *                         (c) the library has no DT_FINI, which the loader calls at exit (the startup files'
 *                         _fini, after all the code), and does not contain glibc's pthread_atfork stub, which
 *                         the linker also puts after all the code (read from the library's dynamic section and
 *                         symbol table by the parent).
 * Built for the release library only (no debug checks, no sanitizer): the layout is that build's.
 */
#define _GNU_SOURCE
#include "zc_test.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#define WINDOW ((size_t)64 << 10)

/* ---- the child: the workload, then its own smaps ---- */

static void *volatile handed[64];
static _Atomic int handed_n;

static void use_sizes(unsigned seed) {
  void *keep[64];
  unsigned n = 0;
  for (size_t sz = 16; sz <= 65536; sz += sz / 4 > 16 ? sz / 4 : 16) {
    for (int k = 0; k < 4; k++) {
      unsigned char *p = (k & 1) ? calloc(1, sz) : malloc(sz);
      REQUIRE(p != NULL);
      memset(p, (int)(seed + sz), sz);
      REQUIRE(malloc_usable_size(p) >= sz);
      p = realloc(p, sz + 8);
      REQUIRE(p != NULL && p[0] == (unsigned char)(seed + sz));
      if (n < 64) keep[n++] = p;
      else free(p);
    }
  }
  for (unsigned i = 0; i < n; i++) {
    int slot = __atomic_fetch_add(&handed_n, 1, __ATOMIC_RELAXED);
    if (slot < 64) handed[slot] = keep[i]; /* freed by the main thread: remote frees */
    else free(keep[i]);
  }
}

static void *worker(void *arg) {
  use_sizes((unsigned)(uintptr_t)arg);
  return NULL;
}

typedef struct {
  size_t text_rss, rodata_rss, text_size;
  int found;
} lib_rss_t;

/* The Rss of the library's executable mapping and of its read-only mapping right after it (.rodata,
 * .eh_frame). */
static lib_rss_t read_smaps(const char *lib) {
  lib_rss_t r = {0, 0, 0, 0};
  FILE *f = fopen("/proc/self/smaps", "r");
  REQUIRE(f != NULL);
  char line[512];
  int cur = 0; /* 1: in the text mapping, 2: in the read-only mapping after it */
  int after_text = 0;
  const char *base = strrchr(lib, '/') ? strrchr(lib, '/') + 1 : lib;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long lo, hi;
    char perms[8];
    if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && strchr(line, '/') != NULL) {
      const char *path = strchr(line, '/');
      bool ours = strstr(path, base) != NULL;
      cur = 0;
      if (ours && strcmp(perms, "r-xp") == 0) {
        cur = 1;
        r.text_size = hi - lo;
        r.found++;
        after_text = 1;
      } else if (ours && strcmp(perms, "r--p") == 0 && after_text == 1) {
        cur = 2;
        after_text = 2;
      }
      continue;
    }
    if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3) { /* an anonymous mapping */
      cur = 0;
      continue;
    }
    size_t kb;
    if (cur != 0 && sscanf(line, "Rss: %zu kB", &kb) == 1) {
      if (cur == 1) r.text_rss = kb << 10;
      else r.rodata_rss = kb << 10;
    }
  }
  fclose(f);
  return r;
}

static int child(const char *lib) {
  CHECKF(is_zcmem_malloc(), "malloc is %s, not zcmem's (LD_PRELOAD of %s)", malloc_owner(), lib);
  pthread_t t[3];
  for (unsigned i = 0; i < 3; i++) REQUIRE(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1)) == 0);
  use_sizes(0);
  for (unsigned i = 0; i < 3; i++) REQUIRE(pthread_join(t[i], NULL) == 0);
  int n = __atomic_load_n(&handed_n, __ATOMIC_RELAXED);
  for (int i = 0; i < n && i < 64; i++) free(handed[i]);
  /* The purger's sweeps run too (its code and what it calls must be in the first 64 KiB as well): 4 MiB of
   * blocks are freed, and their empty pages are purged after ZCMEM_PURGE_DELAY (20 ms, set by the parent)
   * by the purger (no malloc follows the frees here), which the process's resident size shows (read from
   * /proc: a call into zcmem's stats would run code of its own). */
  enum { FILL = 4096 };
  static void *fill[FILL];
  for (int i = 0; i < FILL; i++) {
    fill[i] = malloc(1024);
    REQUIRE(fill[i] != NULL);
    memset(fill[i], 0x33, 1024);
  }
  size_t rss_live = rss_bytes();
  for (int i = 0; i < FILL; i++) free(fill[i]);
  CHECKF(WAIT_UNTIL(rss_bytes() + ((size_t)2 << 20) <= rss_live, 30000),
         "resident size %zu KiB not 2 MiB under %zu KiB in 30 s: the purger did not purge", rss_bytes() >> 10,
         rss_live >> 10);
  lib_rss_t r = read_smaps(lib);
  printf("child: libzcmem text %zu KiB mapped, %zu KiB resident; read-only data %zu KiB resident\n",
         r.text_size >> 10, r.text_rss >> 10, r.rodata_rss >> 10);
  CHECKF(r.found == 1, "the library's text mapping was found %d times in /proc/self/smaps", r.found);
  CHECKF(r.text_size > WINDOW, "the text is %zu KiB: the check below would prove nothing", r.text_size >> 10);
  CHECKF(r.text_rss <= WINDOW, "(a) %zu KiB of the library's text resident, at most 64 KiB expected",
         r.text_rss >> 10);
  CHECKF(r.rodata_rss == 0, "(b) %zu KiB of the library's read-only data resident, none expected",
         r.rodata_rss >> 10);
  CHECK_DONE("core_text_touch (child)");
}

/* ---- the parent: the library's dynamic section, the page cache, the child ---- */

static void *map_file(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY);
  REQUIREF(fd >= 0, "cannot open %s", path);
  struct stat st;
  REQUIRE(fstat(fd, &st) == 0);
  void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  REQUIRE(m != MAP_FAILED);
  close(fd);
  *len = (size_t)st.st_size;
  return m;
}

/* (c): no DT_FINI in the dynamic section; no symbol named pthread_atfork defined in the library. */
static void check_elf(const char *lib) {
  size_t len;
  const unsigned char *m = map_file(lib, &len);
  const Elf64_Ehdr *eh = (const Elf64_Ehdr *)m;
  REQUIRE(len > sizeof *eh && memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_ident[EI_CLASS] == ELFCLASS64);
  const Elf64_Shdr *sh = (const Elf64_Shdr *)(m + eh->e_shoff);
  int dynamic = 0, fini = 0, atfork = 0, symbols = 0;
  for (unsigned i = 0; i < eh->e_shnum; i++) {
    if (sh[i].sh_type == SHT_DYNAMIC) {
      dynamic = 1;
      for (const Elf64_Dyn *d = (const Elf64_Dyn *)(m + sh[i].sh_offset); d->d_tag != DT_NULL; d++)
        if (d->d_tag == DT_FINI) fini = 1;
    }
    if (sh[i].sh_type == SHT_SYMTAB || sh[i].sh_type == SHT_DYNSYM) {
      const char *names = (const char *)(m + sh[sh[i].sh_link].sh_offset);
      const Elf64_Sym *s = (const Elf64_Sym *)(m + sh[i].sh_offset);
      for (size_t k = 0; k < sh[i].sh_size / sizeof *s; k++) {
        symbols++;
        if (s[k].st_shndx != SHN_UNDEF && strcmp(names + s[k].st_name, "pthread_atfork") == 0) atfork = 1;
      }
    }
  }
  CHECKF(dynamic && symbols > 100, "no dynamic section or symbols read from %s", lib);
  CHECKF(!fini, "(c) %s has a DT_FINI entry (the loader calls it at exit: the end of the text)", lib);
  CHECKF(!atfork, "(c) %s contains pthread_atfork (glibc's stub, linked after all the code)", lib);
  munmap((void *)m, len);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--child") == 0) return child(argv[2]);
  REQUIREF(argc == 2, "usage: %s LIBZCMEM.so", argv[0]);
  const char *lib = argv[1];
  CHECKF(sysconf(_SC_PAGESIZE) == 4096, "the bounds assume 4 KiB OS pages");
  check_elf(lib);
  /* No earlier use of the file decides what is mapped: its clean pages leave the page cache (written back
   * first, as a fresh build's are dirty), and the loader reads them again. */
  int fd = open(lib, O_RDONLY);
  REQUIRE(fd >= 0);
  REQUIRE(fdatasync(fd) == 0);
  REQUIRE(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0);
  close(fd);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    setenv("LD_PRELOAD", lib, 1);
    setenv("ZCMEM_PURGE_DELAY", "20", 1);
    execl("/proc/self/exe", argv[0], "--child", lib, (char *)NULL);
    _exit(127);
  }
  int st;
  REQUIRE(waitpid(pid, &st, 0) == pid);
  CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child (LD_PRELOAD=%s) ended with status 0x%x", lib, st);
  CHECK_DONE(argv[0]);
}
