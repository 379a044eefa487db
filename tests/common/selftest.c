/* The helpers test themselves: each must be able to say no. A flipped byte fails verify_pattern, an
 * unknown case name makes the dispatcher return 2, a child past its deadline is killed and reported, a
 * child's stderr and exit code come back, WAIT_UNTIL gives up at its deadline, resident_bytes sees a page
 * come and go, REQUIREF stops a child with status 1, spawn flushes its child's output, spawn_closefds closes
 * the inherited descriptors, capture_stderr gets what this process printed.
 * Run as `common_selftest <case>` and `common_selftest bogus` (which must fail: WILL_FAIL).
 */
#include "zc_test.h"

static int case_pattern(int argc, char **argv) {
  unsigned char b[1000];
  fill_pattern(b, sizeof b, 42);
  CHECK(verify_pattern(b, sizeof b, 42) == -1);
  CHECK(verify_pattern(b, sizeof b, 43) != -1);
  b[777] ^= 1;
  CHECK_EQ(verify_pattern(b, sizeof b, 42), 777);
  CHECK(verify_pattern(b + 8, 100, 42) != -1); /* position matters */
  static unsigned char big[1 << 16];
  fill_sparse(big, sizeof big, 7, 4096);
  CHECK_EQ(verify_sparse(big, sizeof big, 7, 4096), -1);
  CHECK(verify_sparse(big, sizeof big, 8, 4096) != -1);
  big[3 * 4096] ^= 1;
  CHECK_EQ(verify_sparse(big, sizeof big, 7, 4096), 3 * 4096);
  big[3 * 4096] ^= 1;
  big[sizeof big - 1] ^= 1;
  CHECK_EQ(verify_sparse(big, sizeof big, 7, 4096), sizeof big - 1);
  rng_t r;
  rng_seed(&r, 1);
  for (int i = 0; i < 1000; i++) {
    uint64_t v = rng_range(&r, 5, 9);
    CHECK(v >= 5 && v <= 9);
  }
  CHECK_DONE("common_selftest pattern");
}

static int sleeper(void *arg) {
  (void)arg;
  fprintf(stderr, "sleeping\n");
  for (int i = 0; i < 600; i++) pause();
  return 0;
}
static int talker(void *arg) {
  printf("out %d\n", *(int *)arg);
  fprintf(stderr, "err line\n");
  return 7;
}

static int requirer(void *arg) {
  REQUIREF(*(int *)arg == 0, "value %d", *(int *)arg);
  return 0;
}
static int buffered_printer(void *arg) {
  printf("from the spawned child\n"); /* stdout is a pipe here: fully buffered until spawn flushes it */
  return 0;
}
static int spawner(void *arg) { return reap(spawn(buffered_printer, NULL)); }
static int fd_prober(void *arg) {
  const int *fds = arg; /* fds[0] kept, fds[1] must be closed */
  return (fcntl(fds[0], F_GETFD) >= 0 ? 0 : 1) | (fcntl(fds[1], F_GETFD) < 0 ? 0 : 2);
}

static int case_child(int argc, char **argv) {
  int v = 5;
  char s[64];
  child_result_t r = run_child(talker, &v, 10);
  CHECKF(child_exited(&r, 7), "%s", child_str(&r, s, sizeof s));
  CHECK(strcmp(r.out, "out 5\n") == 0);
  CHECK(strcmp(r.err, "err line\n") == 0);
  child_result_free(&r);
  uint64_t t0 = now_ms();
  r = run_child(sleeper, NULL, 1);
  CHECK(r.timed_out || WIFSIGNALED(r.status));
  CHECK(!child_exited(&r, 0));
  CHECK(strcmp(r.err, "sleeping\n") == 0);
  CHECKF(now_ms() - t0 < 10000, "the deadline of 1 s took %llu ms", (unsigned long long)(now_ms() - t0));
  child_result_free(&r);
  char *argv2[] = {"sh", "-c", "echo $ZC_SELFTEST_VAR; exit 3", NULL};
  const char *env[] = {"ZC_SELFTEST_VAR=hello", NULL};
  r = run_exec(argv2, env, 10);
  CHECK(child_exited(&r, 3));
  CHECK(strcmp(r.out, "hello\n") == 0);
  child_result_free(&r);
  /* REQUIREF stops the process with status 1 and names the values and the process */
  v = 3;
  r = run_child(requirer, &v, 10);
  CHECKF(child_exited(&r, 1), "%s", child_str(&r, s, sizeof s));
  CHECKF(strstr(r.err, "REQUIRE failed: *(int *)arg == 0: value 3") && strstr(r.err, "[pid "), "%s", r.err);
  child_result_free(&r);
  /* spawn flushes what its child printed before the child exits */
  r = run_child(spawner, NULL, 10);
  CHECKF(child_exited(&r, 0) && strcmp(r.out, "from the spawned child\n") == 0, "out: \"%s\"", r.out);
  child_result_free(&r);
  /* spawn_closefds keeps the named descriptors only */
  int pa[2], pb[2];
  REQUIRE(pipe(pa) == 0 && pipe(pb) == 0);
  int fds[2] = {pa[0], pb[0]};
  CHECK_EQ(reap(spawn_closefds(fd_prober, fds, pa[0], -1)), 0);
  CHECK_EQ(reap(spawn(fd_prober, fds)), 2); /* plain spawn inherits both */
  close(pa[0]), close(pa[1]), close(pb[0]), close(pb[1]);
  /* capture_stderr: this process's own stderr around a call */
  char buf[64];
  stderr_capture_t c = capture_stderr();
  fprintf(stderr, "captured %d\n", 42);
  capture_end(c, buf, sizeof buf);
  CHECKF(strcmp(buf, "captured 42\n") == 0, "captured \"%s\"", buf);
  CHECK_DONE("common_selftest child");
}

static int case_clock(int argc, char **argv) {
  uint64_t t0 = now_ms();
  CHECK(WAIT_UNTIL(0, 50) == 0);
  CHECK(now_ms() - t0 >= 50);
  CHECK(WAIT_UNTIL(now_ms() >= t0 + 80, 5000) == 1);
  CHECK_DONE("common_selftest clock");
}

static int case_rss(int argc, char **argv) {
  size_t len = MIB(4);
  char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(p != MAP_FAILED);
  CHECK_EQ(resident_bytes(p, len), 0);
  memset(p, 1, len);
  CHECK_EQ(resident_bytes(p, len), len);
  madvise(p, len / 2, MADV_DONTNEED);
  CHECK_EQ(resident_bytes(p, len), len / 2);
  munmap(p, len / 2);
  CHECK_EQ(resident_bytes(p, len), len / 2); /* the unmapped half counts 0 */
  munmap(p + len / 2, len / 2);
  CHECK(rss_bytes() > 0);
  CHECK_DONE("common_selftest rss");
}

int main(int argc, char **argv) {
  static const zc_case_t cases[] = {
      {"pattern", case_pattern}, {"child", case_child}, {"clock", case_clock}, {"rss", case_rss}, {NULL, NULL}};
  return zc_run_case(argc, argv, cases);
}
