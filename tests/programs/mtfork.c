/* A multithreaded program that forks: worker threads build and drop heap structures while the main
 * thread and a worker fork children that allocate heavily and report checksums through pipes, and
 * popen() runs sort(1). Its output depends only on the computation, so a run on the system malloc and a
 * run with LD_PRELOAD=libzcmem.so must print the same bytes (mtfork.sh compares them).
 * Not linked with zcmem: the allocator is chosen at run time by LD_PRELOAD.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct node {
  struct node *next;
  size_t len;
  unsigned char data[];
} node_t;

/* Build a list of n nodes of varied sizes, drop every third on the way, return a checksum. */
static uint64_t churn(uint64_t seed, int n) {
  node_t *head = NULL;
  uint64_t x = seed * 2654435761u + 1, sum = 0;
  for (int i = 0; i < n; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    size_t len = (x >> 33) % 2000 + 1;
    if ((x >> 20) % 500 == 0) len = 100000 + (x >> 40) % 300000;
    node_t *nd = malloc(sizeof *nd + len);
    if (!nd) {
      fprintf(stderr, "malloc failed\n");
      exit(3);
    }
    nd->len = len;
    for (size_t k = 0; k < len; k += 97) nd->data[k] = (unsigned char)(x >> (k % 56));
    nd->next = head;
    head = nd;
    if (i % 3 == 2) {
      node_t *drop = head->next;
      head->next = drop->next;
      sum += drop->len + drop->data[0];
      free(drop);
    }
  }
  while (head) {
    node_t *nx = head->next;
    for (size_t k = 0; k < head->len; k += 97) sum = sum * 31 + head->data[k];
    free(head);
    head = nx;
  }
  return sum;
}

static uint64_t results[4];

/* Fork a child that churns and writes its checksum into a pipe; returns the checksum read back. */
static uint64_t fork_child(uint64_t seed) {
  int fds[2];
  if (pipe(fds) != 0) exit(4);
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) exit(5);
  if (pid == 0) {
    close(fds[0]);
    uint64_t v = churn(seed, 20000);
    char *msg = NULL;
    int len = asprintf(&msg, "%llu", (unsigned long long)v);
    if (len < 0 || write(fds[1], msg, (size_t)len) != len) _exit(6);
    free(msg);
    _exit(0);
  }
  close(fds[1]);
  char buf[64] = {0};
  ssize_t got = read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  int st;
  waitpid(pid, &st, 0);
  if (got <= 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "child %llu failed (status 0x%x)\n", (unsigned long long)seed, st);
    exit(7);
  }
  return strtoull(buf, NULL, 10);
}

static void *worker(void *arg) {
  int k = (int)(intptr_t)arg;
  uint64_t acc = 0;
  for (int r = 0; r < 6; r++) acc ^= churn((uint64_t)(k * 100 + r), 30000);
  if (k == 3)
    for (int i = 0; i < 5; i++) acc += fork_child(1000 + (uint64_t)i); /* fork from a thread */
  results[k] = acc;
  return NULL;
}

int main(void) {
  pthread_t th[4];
  for (intptr_t k = 0; k < 4; k++)
    if (pthread_create(&th[k], NULL, worker, (void *)k) != 0) return 2;
  for (int i = 0; i < 10; i++) printf("child %d: %llu\n", i, (unsigned long long)fork_child((uint64_t)i));
  FILE *p = popen("sort -n | tail -n 3", "w");
  if (!p) return 8;
  for (int i = 0; i < 20000; i++) fprintf(p, "%d\n", (i * 7919) % 100003);
  fflush(stdout);
  if (pclose(p) != 0) return 9;
  for (int k = 0; k < 4; k++) pthread_join(th[k], NULL);
  for (int k = 0; k < 4; k++) printf("thread %d: %llu\n", k, (unsigned long long)results[k]);
  return 0;
}
