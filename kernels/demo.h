/*
 * The demo unikernel's C side (demo-lib.c, demo-virtio.c, demo-net.c), in freestanding C: 64-bit
 * long mode, the first GiB identity-mapped (demo-start.S), no libc. What the files share.
 */
#ifndef DEMO_H
#define DEMO_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef unsigned long size_t;

/* I/O ports: the serial console, PCI configuration, the virtio registers, the PICs. */
static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) {
  u8 v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline u16 inw(u16 port) {
  u16 v;
  __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline u32 inl(u16 port) {
  u32 v;
  __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
/* The device reads and writes the rings in memory: order our accesses around theirs. */
static inline void fence(void) { __asm__ volatile("mfence" : : : "memory"); }

/* Copies and comparisons (demo-lib.c): the compiler may call memcpy and memset, even freestanding. */
void *memcpy(void *to, const void *from, size_t n);
void *memset(void *to, int value, size_t n);
int same(const u8 *a, const u8 *b, size_t n);

/* The console (COM1, which kernel.S set up), and lines built in a buffer. */
struct text {
  char *at;
  char *end;
};
void print(const char *s);
void add(struct text *t, const char *s);
void add_dec(struct text *t, u32 v);
void add_hex2(struct text *t, u8 v);
void add_ip(struct text *t, const u8 *ip);
void print_line(struct text *t, char *line);

/* The NIC (demo-virtio.c). */
extern u8 nic_mac[6];
/* Finds and starts the virtio-net device and its interrupt, printing a line about it (built in
 * `line`, 208 bytes); 0 when there is none. */
int nic_start(char *line);
/* Where the next frame to send is built (zeroed up to the minimum frame, NIC_FRAME_ROOM bytes
 * long), then sent. */
#define NIC_FRAME_ROOM (2048 - 10)
u8 *nic_frame(void);
void nic_send(u32 length);
/* Hands each frame received since the last call to `handle`, then gives its buffer back. */
void nic_receive(void (*handle)(const u8 *frame, u32 length));
/* Sleeps until the NIC's interrupt, unless a frame came in meanwhile. */
void nic_sleep(void);

#endif
