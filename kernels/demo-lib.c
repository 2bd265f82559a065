/*
 * The demo unikernel's bits of a C library: copies, comparisons, the serial console, and text
 * built in a buffer (console lines, the HTTP response).
 */
#include "demo.h"

void *memcpy(void *to, const void *from, size_t n) {
  u8 *d = to;
  const u8 *s = from;
  while (n--) *d++ = *s++;
  return to;
}

void *memset(void *to, int value, size_t n) {
  u8 *d = to;
  while (n--) *d++ = (u8)value;
  return to;
}

int same(const u8 *a, const u8 *b, size_t n) {
  while (n--)
    if (*a++ != *b++) return 0;
  return 1;
}

#define COM1 0x3f8 /* kernel.S set it up: 115200 8N1 */

static void put_char(char c) {
  while (!(inb(COM1 + 5) & 0x20)) /* transmit holding register empty */
    ;
  outb(COM1, (u8)c);
}

void print(const char *s) {
  for (; *s; s++) {
    if (*s == '\n') put_char('\r');
    put_char(*s);
  }
}

void add(struct text *t, const char *s) {
  while (*s && t->at < t->end) *t->at++ = *s++;
}

void add_dec(struct text *t, u32 v) {
  char digits[11];
  int i = 10;
  digits[i] = 0;
  do {
    digits[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  add(t, digits + i);
}

void add_hex2(struct text *t, u8 v) {
  const char *hex = "0123456789abcdef";
  char s[3] = {hex[v >> 4], hex[v & 15], 0};
  add(t, s);
}

void add_ip(struct text *t, const u8 *ip) {
  for (int i = 0; i < 4; i++) {
    if (i) add(t, ".");
    add_dec(t, ip[i]);
  }
}

/* Ends the line in `line` (NUL-terminated, so it must have room) and prints it. */
void print_line(struct text *t, char *line) {
  *t->at = 0;
  print(line);
  print("\n");
}

