/*
 * tapwire: an Ethernet cable between two tap interfaces in two network namespaces, written for
 * pulumi-mirage's tests. It stands where a unikernel would be: attached to the tap a host made
 * for it, it relays every frame to a tap in another namespace whose kernel network stack (with
 * the unikernel's address) answers instead.
 *
 *   tapwire TAP NETNS_PATH OTHER_TAP
 *
 * TAP is opened in the current namespace, OTHER_TAP in the one at NETNS_PATH (both must exist).
 * It prints "wired" once both are open, then relays until killed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int open_tap(const char *name) {
  int fd = open("/dev/net/tun", O_RDWR);
  if (fd < 0) {
    perror("/dev/net/tun");
    exit(1);
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    perror(name);
    exit(1);
  }
  return fd;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: tapwire TAP NETNS_PATH OTHER_TAP\n");
    return 2;
  }
  int a = open_tap(argv[1]);
  int ns = open(argv[2], O_RDONLY);
  if (ns < 0 || setns(ns, CLONE_NEWNET) < 0) {
    perror(argv[2]);
    return 1;
  }
  int b = open_tap(argv[3]);
  printf("wired\n");
  fflush(stdout);
  struct pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
  static char frame[65536];
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      perror("poll");
      return 1;
    }
    for (int i = 0; i < 2; i++) {
      if (!(fds[i].revents & POLLIN)) continue;
      ssize_t n = read(fds[i].fd, frame, sizeof frame);
      if (n <= 0) return 1;
      /* A frame the other side cannot take is dropped, as on a real link. */
      if (write(fds[1 - i].fd, frame, (size_t)n) < 0) continue;
    }
  }
}
