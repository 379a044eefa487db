/* Helper module of core_fork_join: a thread-local array too big for glibc's static TLS surplus, so each
 * thread that touches it gets it from malloc (a large block), freed with the thread's stack. */
__thread char zc_fork_join_tls[1 << 20];

void zc_fork_join_touch(void) {
  zc_fork_join_tls[0] = 1;
  zc_fork_join_tls[sizeof zc_fork_join_tls - 1] = 1;
}
