/*
 * The demo unikernel's network side, in freestanding C: 64-bit long mode, the first GiB
 * identity-mapped (demo-start.S), no libc. It finds a legacy virtio-net PCI device (what QEMU's
 * `-device virtio-net-pci` offers on its I/O BAR), sets up its receive and transmit queues, and
 * answers on QEMU user networking's guest address, 10.0.2.15:
 *   - ARP requests for that address;
 *   - ICMP echo requests (ping);
 *   - HTTP on TCP port 8080, without connection state: SYN gets SYN-ACK; a segment carrying a
 *     whole request (up to its blank line) gets the response with FIN; a FIN gets its ACK; any
 *     other port gets a reset.
 * Between packets the CPU sleeps (hlt) until the NIC's interrupt, a legacy PCI INTx line through
 * the 8259 PIC, which the BIOS routed and left in the PCI interrupt-line register.
 *
 * The virtio constants are the legacy interface of the virtio specification (1.x, 4.1.4.8
 * "Legacy Interfaces: A Note on PCI Device Layout", 2.7 "Split Virtqueues", 5.1 "Network
 * Device"); the PIC's are the Intel 8259A's; the protocols are RFC 826, 791, 792 and 9293.
 */

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef unsigned long size_t;

/* The compiler may call these for copies and zeroing, even freestanding. */
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

static int same(const u8 *a, const u8 *b, size_t n) {
  while (n--)
    if (*a++ != *b++) return 0;
  return 1;
}

/* ---------------------------------------------------------------- ports, console */

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

#define COM1 0x3f8 /* kernel.S set it up: 115200 8N1 */

static void put_char(char c) {
  while (!(inb(COM1 + 5) & 0x20)) /* transmit holding register empty */
    ;
  outb(COM1, (u8)c);
}

static void print(const char *s) {
  for (; *s; s++) {
    if (*s == '\n') put_char('\r');
    put_char(*s);
  }
}

/* A small text buffer: the console lines and the HTTP response are built in one. */
struct text {
  char *at;
  char *end;
};

static void add(struct text *t, const char *s) {
  while (*s && t->at < t->end) *t->at++ = *s++;
}

static void add_dec(struct text *t, u32 v) {
  char digits[11];
  int i = 10;
  digits[i] = 0;
  do {
    digits[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  add(t, digits + i);
}

static void add_hex2(struct text *t, u8 v) {
  const char *hex = "0123456789abcdef";
  char s[3] = {hex[v >> 4], hex[v & 15], 0};
  add(t, s);
}

static void add_ip(struct text *t, const u8 *ip) {
  for (int i = 0; i < 4; i++) {
    if (i) add(t, ".");
    add_dec(t, ip[i]);
  }
}

/* Ends the line in `line` (NUL-terminated, so it must have room) and prints it. */
static void print_line(struct text *t, char *line) {
  *t->at = 0;
  print(line);
  print("\n");
}

/* ---------------------------------------------------------------- PCI, virtio-net */

static u32 pci_read(u32 slot, u8 offset) {
  outl(0xcf8, 0x80000000u | slot << 11 | offset); /* bus 0, function 0 */
  return inl(0xcfc);
}

static void pci_write(u32 slot, u8 offset, u32 value) {
  outl(0xcf8, 0x80000000u | slot << 11 | offset);
  outl(0xcfc, value);
}

/* Legacy virtio registers, as offsets into the device's I/O BAR (MSI-X off). */
enum {
  HOST_FEATURES = 0,
  GUEST_FEATURES = 4,
  QUEUE_PFN = 8,
  QUEUE_SIZE = 12,
  QUEUE_SELECT = 14,
  QUEUE_NOTIFY = 16,
  DEVICE_STATUS = 18,
  ISR_STATUS = 19,
  NET_CONFIG = 20, /* struct virtio_net_config: u8 mac[6], ... */
};
enum { STATUS_ACKNOWLEDGE = 1, STATUS_DRIVER = 2, STATUS_DRIVER_OK = 4 };
#define NET_F_MAC (1u << 5)
#define DESC_F_WRITE 2
#define AVAIL_F_NO_INTERRUPT 1
#define RX 0
#define TX 1

struct desc {
  u64 addr;
  u32 len;
  u16 flags;
  u16 next;
};
struct avail {
  u16 flags;
  u16 idx;
  u16 ring[];
};
struct used_elem {
  u32 id;
  u32 len;
};
struct used {
  u16 flags;
  u16 idx;
  struct used_elem ring[];
};

/* A split virtqueue in the legacy layout: descriptors, available ring, then at the next page
 * the used ring. QUEUE_MAX entries fit in QUEUE_BYTES. */
#define QUEUE_MAX 1024
#define QUEUE_BYTES 32768
#define PAGE 4096

struct queue {
  u16 size;
  u16 last_used;
  volatile struct desc *desc;
  volatile struct avail *avail;
  volatile struct used *used;
};

/* A virtio-net legacy header (10 bytes, no mergeable buffers) precedes every frame. */
#define NET_HDR 10
#define BUFFER 2048
#define BUFFERS 64
#define MIN_FRAME 60

static u8 ring_memory[2][QUEUE_BYTES] __attribute__((aligned(PAGE)));
static u8 buffers[2][BUFFERS][BUFFER] __attribute__((aligned(16)));
static struct queue queues[2];
static u16 io;
static u8 irq;
static u16 rx_buffers; /* how many receive buffers the queue holds: min(BUFFERS, its size) */
static u16 tx_buffers;

static int queue_setup(u16 index) {
  struct queue *q = &queues[index];
  outw(io + QUEUE_SELECT, index);
  u16 size = inw(io + QUEUE_SIZE);
  if (size == 0 || size > QUEUE_MAX) return 0;
  u8 *memory = ring_memory[index];
  q->size = size;
  q->desc = (volatile struct desc *)memory;
  q->avail = (volatile struct avail *)(memory + 16 * size);
  u32 used_at = (16 * size + 6 + 2 * size + PAGE - 1) & ~(PAGE - 1);
  q->used = (volatile struct used *)(memory + used_at);
  u16 count = size < BUFFERS ? size : BUFFERS;
  for (u16 i = 0; i < count; i++) {
    q->desc[i].addr = (u64)buffers[index][i];
    q->desc[i].len = BUFFER;
    q->desc[i].flags = index == RX ? DESC_F_WRITE : 0;
    q->desc[i].next = 0;
  }
  /* Sent frames need no interrupt; received ones wake the CPU. */
  q->avail->flags = index == TX ? AVAIL_F_NO_INTERRUPT : 0;
  if (index == RX) {
    for (u16 i = 0; i < count; i++) q->avail->ring[i] = i;
    fence();
    q->avail->idx = count;
    rx_buffers = count;
  } else {
    tx_buffers = count;
  }
  outl(io + QUEUE_PFN, (u32)((u64)memory / PAGE));
  return 1;
}

static u8 mac[6];

/* Finds the first legacy virtio-net device on PCI bus 0 and starts it; 0 when there is none. */
static int nic_start(char *line) {
  for (u32 slot = 0; slot < 32; slot++) {
    u32 id = pci_read(slot, 0);
    if (id != (0x1000u << 16 | 0x1af4)) continue; /* device 0x1000 (legacy net), vendor */
    u32 bar = pci_read(slot, 0x10);
    if (!(bar & 1)) continue; /* no I/O BAR: a modern-only device */
    io = (u16)(bar & ~3u);
    irq = (u8)pci_read(slot, 0x3c);
    pci_write(slot, 0x04, (pci_read(slot, 0x04) & 0xffff) | 0x5); /* I/O space, bus master */
    outb(io + DEVICE_STATUS, 0);                                  /* reset */
    outb(io + DEVICE_STATUS, STATUS_ACKNOWLEDGE);
    outb(io + DEVICE_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    u32 features = inl(io + HOST_FEATURES);
    outl(io + GUEST_FEATURES, features & NET_F_MAC);
    for (int i = 0; i < 6; i++)
      mac[i] = (features & NET_F_MAC) ? inb(io + NET_CONFIG + i) : (u8[]){0x52, 0x54, 0, 0x12, 0x34, 0x56}[i];
    if (!queue_setup(RX) || !queue_setup(TX)) {
      print("demo: the virtio-net device's queues are not usable\n");
      return 0;
    }
    outb(io + DEVICE_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK);
    outw(io + QUEUE_NOTIFY, RX);
    struct text t = {line, line + 200};
    add(&t, "demo: virtio-net NIC at PCI 00:");
    add_hex2(&t, (u8)slot);
    add(&t, ".0, MAC ");
    for (int i = 0; i < 6; i++) {
      if (i) add(&t, ":");
      add_hex2(&t, mac[i]);
    }
    add(&t, ", IRQ ");
    add_dec(&t, irq);
    print_line(&t, line);
    return 1;
  }
  return 0;
}

/* Where the next frame to send is built; waits while every transmit buffer is in flight. */
static u8 *tx_frame(void) {
  struct queue *q = &queues[TX];
  while ((u16)(q->avail->idx - q->used->idx) >= tx_buffers) __asm__ volatile("pause");
  u8 *buffer = buffers[TX][q->avail->idx % tx_buffers];
  memset(buffer, 0, NET_HDR + MIN_FRAME);
  return buffer + NET_HDR;
}

/* Sends the frame tx_frame gave, `length` bytes long. The device completes frames in order,
 * so the buffer a frame used is free again once `tx_buffers` later ones were handed over. */
static void tx_send(u32 length) {
  struct queue *q = &queues[TX];
  if (length < MIN_FRAME) length = MIN_FRAME;
  u16 idx = q->avail->idx;
  u16 slot = idx % tx_buffers;
  q->desc[slot].len = NET_HDR + length;
  q->avail->ring[idx % q->size] = slot;
  fence();
  q->avail->idx = idx + 1;
  fence();
  outw(io + QUEUE_NOTIFY, TX);
}

/* ---------------------------------------------------------------- IPv4: ARP, ICMP, TCP */

static const u8 address[4] = {10, 0, 2, 15}; /* QEMU user networking's guest */
#define HTTP_PORT 8080
#define ETH 14

static u16 get16(const u8 *p) { return (u16)(p[0] << 8 | p[1]); }
static u32 get32(const u8 *p) { return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3]; }
static void put16(u8 *p, u16 v) {
  p[0] = (u8)(v >> 8);
  p[1] = (u8)v;
}
static void put32(u8 *p, u32 v) {
  put16(p, (u16)(v >> 16));
  put16(p + 2, (u16)v);
}

/* The Internet checksum (RFC 1071): a one's complement sum, folded and inverted. */
static u32 sum(const u8 *p, u32 length, u32 acc) {
  for (; length > 1; p += 2, length -= 2) acc += get16(p);
  if (length) acc += (u32)p[0] << 8;
  return acc;
}
static u16 fold(u32 acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return (u16)~acc;
}

static void arp(const u8 *frame, u32 length) {
  const u8 *a = frame + ETH;
  if (length < ETH + 28) return;
  /* Ethernet, IPv4, 6- and 4-byte addresses, a request, for our address. */
  if (get16(a) != 1 || get16(a + 2) != 0x0800 || a[4] != 6 || a[5] != 4 || get16(a + 6) != 1)
    return;
  if (!same(a + 24, address, 4)) return;
  u8 *out = tx_frame();
  memcpy(out, a + 8, 6);
  memcpy(out + 6, mac, 6);
  put16(out + 12, 0x0806);
  u8 *r = out + ETH;
  memcpy(r, a, 6);
  put16(r + 6, 2); /* a reply */
  memcpy(r + 8, mac, 6);
  memcpy(r + 14, address, 4);
  memcpy(r + 18, a + 8, 10); /* the asker's hardware and protocol addresses */
  tx_send(ETH + 28);
}

static u16 ip_id;

/* Starts an IPv4 packet back to the sender of `frame`; its payload goes at the pointer returned. */
static u8 *reply_ip(const u8 *frame, u8 protocol, u8 **ip) {
  u8 *out = tx_frame();
  memcpy(out, frame + 6, 6);
  memcpy(out + 6, mac, 6);
  put16(out + 12, 0x0800);
  u8 *h = out + ETH;
  h[0] = 0x45; /* version 4, 20-byte header */
  put16(h + 4, ip_id++);
  put16(h + 6, 0x4000); /* don't fragment */
  h[8] = 64;           /* TTL */
  h[9] = protocol;
  memcpy(h + 12, address, 4);
  memcpy(h + 16, frame + ETH + 12, 4);
  *ip = h;
  return h + 20;
}

static void send_ip(u8 *ip, u32 payload) {
  put16(ip + 2, (u16)(20 + payload));
  put16(ip + 10, fold(sum(ip, 20, 0)));
  tx_send(ETH + 20 + payload);
}

static void icmp(const u8 *frame, const u8 *message, u32 length) {
  if (length < 8 || message[0] != 8 || message[1] != 0) return; /* an echo request */
  if (length > BUFFER - NET_HDR - ETH - 20) return;
  u8 *ip;
  u8 *out = reply_ip(frame, 1, &ip);
  memcpy(out, message, length);
  out[0] = 0; /* echo reply */
  put16(out + 2, 0);
  put16(out + 2, fold(sum(out, length, 0)));
  send_ip(ip, length);
}

enum { FIN = 1, SYN = 2, RST = 4, PSH = 8, ACK = 16 };

static void tcp_send(const u8 *frame, const u8 *segment, u32 seq, u32 ack, u8 flags,
                     const char *data, u32 length) {
  u8 *ip;
  u8 *out = reply_ip(frame, 6, &ip);
  put16(out, get16(segment + 2));
  put16(out + 2, get16(segment));
  put32(out + 4, seq);
  put32(out + 8, ack);
  out[12] = 5 << 4; /* 20-byte header */
  out[13] = flags;
  put16(out + 14, 65535); /* window */
  memcpy(out + 20, data, length);
  u32 n = 20 + length;
  put16(out + 16, fold(sum(out, n, sum(ip + 12, 8, 0) + 6 + n))); /* with the pseudo-header */
  send_ip(ip, n);
}

static u32 requests;

/* The response to HTTP request number `requests`, in `out`; its length. */
static u32 http_response(char *out, u32 room) {
  char body[160];
  struct text b = {body, body + sizeof body};
  add(&b, "Hello, World: the pulumi-mirage demo unikernel served request ");
  add_dec(&b, requests);
  add(&b, "\n");
  struct text t = {out, out + room};
  add(&t, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ");
  add_dec(&t, (u32)(b.at - body));
  add(&t, "\r\nConnection: close\r\n\r\n");
  *b.at = 0;
  add(&t, body);
  return (u32)(t.at - out);
}

static int has_blank_line(const u8 *p, u32 n) {
  for (u32 i = 0; i + 4 <= n; i++)
    if (same(p + i, (const u8 *)"\r\n\r\n", 4)) return 1;
  return 0;
}

static void tcp(const u8 *frame, const u8 *ip, const u8 *segment, u32 length) {
  if (length < 20) return;
  u32 offset = (u32)(segment[12] >> 4) * 4;
  if (offset < 20 || offset > length) return;
  if (fold(sum(segment, length, sum(ip + 12, 8, 0) + 6 + length)) != 0) return;
  u8 flags = segment[13];
  u32 seq = get32(segment + 4);
  u32 ack = get32(segment + 8);
  const u8 *data = segment + offset;
  u32 n = length - offset;
  if (flags & RST) return;
  if (get16(segment + 2) != HTTP_PORT) {
    if (flags & ACK)
      tcp_send(frame, segment, ack, 0, RST, 0, 0);
    else
      tcp_send(frame, segment, 0, seq + n + !!(flags & SYN) + !!(flags & FIN), RST | ACK, 0, 0);
    return;
  }
  if (flags & SYN) {
    /* No state is kept: the peer's acknowledgement tells every later reply its sequence number. */
    tcp_send(frame, segment, seq * 2654435761u, seq + 1, SYN | ACK, 0, 0);
    return;
  }
  if (!(flags & ACK)) return;
  if (n > 0 && has_blank_line(data, n)) {
    requests++;
    char response[512];
    u32 size = http_response(response, sizeof response);
    tcp_send(frame, segment, ack, seq + n + !!(flags & FIN), ACK | PSH | FIN, response, size);
    char line[200];
    struct text t = {line, line + sizeof line - 1};
    add(&t, "demo: HTTP request ");
    add_dec(&t, requests);
    add(&t, " from ");
    add_ip(&t, ip + 12);
    add(&t, ": ");
    for (u32 i = 0; i < n && i < 80 && data[i] >= ' ' && data[i] < 127; i++) {
      char c[2] = {(char)data[i], 0};
      add(&t, c);
    }
    print_line(&t, line);
  } else if (n > 0) {
    tcp_send(frame, segment, ack, seq + n, ACK, 0, 0); /* part of a request: acknowledged */
  } else if (flags & FIN) {
    tcp_send(frame, segment, ack, seq + 1, ACK, 0, 0);
  }
}

static void ipv4(const u8 *frame, u32 length) {
  const u8 *ip = frame + ETH;
  if (length < ETH + 20 || ip[0] >> 4 != 4) return;
  u32 header = (u32)(ip[0] & 15) * 4;
  u32 total = get16(ip + 2);
  if (header < 20 || total < header || ETH + total > length) return;
  if (!same(ip + 16, address, 4) || (get16(ip + 6) & 0x3fff)) return; /* ours, no fragment */
  if (fold(sum(ip, header, 0)) != 0) return;
  if (ip[9] == 1) icmp(frame, ip + header, total - header);
  if (ip[9] == 6) tcp(frame, ip, ip + header, total - header);
}

/* Handles every frame received so far and gives its buffer back to the device. */
static void receive(void) {
  struct queue *q = &queues[RX];
  while (q->last_used != q->used->idx) {
    fence();
    volatile struct used_elem *e = &q->used->ring[q->last_used % q->size];
    u32 id = e->id;
    u32 length = e->len;
    if (id < rx_buffers && length > NET_HDR) {
      const u8 *frame = buffers[RX][id] + NET_HDR;
      length -= NET_HDR;
      if (length >= ETH && get16(frame + 12) == 0x0806) arp(frame, length);
      if (length >= ETH && get16(frame + 12) == 0x0800) ipv4(frame, length);
    }
    u16 idx = q->avail->idx;
    q->avail->ring[idx % q->size] = (u16)id;
    fence();
    q->avail->idx = idx + 1;
    q->last_used++;
    fence();
    outw(io + QUEUE_NOTIFY, RX);
  }
}

/* ---------------------------------------------------------------- interrupts */

struct idt_entry {
  u16 offset_low;
  u16 selector;
  u8 ist;
  u8 type;
  u16 offset_middle;
  u32 offset_high;
  u32 reserved;
} __attribute__((packed));

static struct idt_entry idt[256] __attribute__((aligned(16)));
extern char demo_irq_entry[], demo_fault_entry[]; /* demo-start.S */

static void idt_set(int vector, char *handler) {
  u64 at = (u64)handler;
  idt[vector] = (struct idt_entry){(u16)at, 0x08, 0, 0x8e, (u16)(at >> 16), (u32)(at >> 32), 0};
}

/* The NIC's interrupt (and a spurious one of the PIC's): reading the ISR status lowers the
 * line; then end of interrupt at the PIC(s). The main loop does the work. */
void demo_irq(void) {
  inb(io + ISR_STATUS);
  if (irq >= 8) outb(0xa0, 0x20);
  outb(0x20, 0x20);
}

void demo_fault(void) {
  print("demo: CPU exception; halting\n");
  for (;;) __asm__ volatile("cli; hlt");
}

/* The PICs remapped to vectors 32-47, every line masked but the NIC's (and the cascade). */
static void interrupts_start(void) {
  for (int v = 0; v < 32; v++) idt_set(v, demo_fault_entry);
  for (int v = 32; v < 48; v++) idt_set(v, demo_irq_entry);
  struct {
    u16 limit;
    u64 base;
  } __attribute__((packed)) pointer = {sizeof idt - 1, (u64)idt};
  __asm__ volatile("lidt %0" : : "m"(pointer));
  outb(0x20, 0x11); /* ICW1: initialise, ICW4 follows */
  outb(0xa0, 0x11);
  outb(0x21, 32); /* ICW2: vector bases */
  outb(0xa1, 40);
  outb(0x21, 4); /* ICW3: slave on line 2 */
  outb(0xa1, 2);
  outb(0x21, 1); /* ICW4: 8086 mode */
  outb(0xa1, 1);
  u16 mask = (u16)~(1u << (irq & 15));
  if (irq >= 8) mask &= (u16)~(1u << 2);
  outb(0x21, (u8)mask);
  outb(0xa1, (u8)(mask >> 8));
}

/* ---------------------------------------------------------------- main */

void demo_main(void) {
  char line[208];
  if (!nic_start(line)) {
    print("demo: no virtio-net NIC, nothing to serve: halted (boot it with a NIC to reach it)\n");
    return;
  }
  interrupts_start();
  struct text t = {line, line + 200};
  add(&t, "demo: serving on ");
  add_ip(&t, address);
  add(&t, ": ARP, ping, and HTTP on TCP port ");
  add_dec(&t, HTTP_PORT);
  print_line(&t, line);
  for (;;) {
    receive();
    /* Sleep unless a frame came in meanwhile: `sti; hlt` takes no interrupt in between. */
    __asm__ volatile("cli");
    if (queues[RX].last_used == queues[RX].used->idx)
      __asm__ volatile("sti; hlt" : : : "memory");
    else
      __asm__ volatile("sti");
  }
}
