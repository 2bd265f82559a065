/*
 * The unix-target counterpart of kernel.S, written for pulumi-mirage's tests: a freestanding
 * x86_64 Linux executable (no libc) that prints what the test unikernels print, taking its
 * command line from argv[1..]. With `--serve` as its first argument it then sleeps until killed,
 * like a unikernel serving requests; otherwise it exits 0.
 */
typedef unsigned long size_t;

static long syscall3(long n, long a, long b, long c) {
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return ret;
}

enum { SYS_write = 1, SYS_pause = 34, SYS_exit = 60 };

static void out(const char *s) {
  size_t n = 0;
  while (s[n] != 0) n++;
  while (n > 0) {
    long w = syscall3(SYS_write, 1, (long)s, (long)n);
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

static int equal(const char *a, const char *b) {
  while (*a != 0 && *a == *b) a++, b++;
  return *a == *b;
}

/* Called from _start with the initial stack: argc, then argv[]. */
__attribute__((used)) static void start_c(long *stack) {
  long argc = stack[0];
  char **argv = (char **)(stack + 1);
  out("Solo5-like test unikernel (pulumi-mirage) target=unix\n");
  out("Hello, World\n");
  out("Command line is: '");
  for (long i = 1; i < argc; i++) {
    if (i > 1) out(" ");
    out(argv[i]);
  }
  out("'\n");
  if (argc > 1 && equal(argv[1], "--serve"))
    for (;;) syscall3(SYS_pause, 0, 0, 0);
  syscall3(SYS_exit, 0, 0, 0);
  for (;;) {
  }
}

__asm__(".globl _start\n"
        "_start:\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call start_c\n"
        "  hlt\n");
