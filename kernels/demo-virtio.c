/*
 * The demo unikernel's NIC: a legacy virtio-net PCI device (what QEMU's `-device virtio-net-pci`
 * offers on its I/O BAR), its receive and transmit queues, and its interrupt, a legacy PCI INTx
 * line through the 8259 PIC, which the BIOS routed and left in the PCI interrupt-line register.
 *
 * The virtio constants are the legacy interface of the virtio specification (1.x, 4.1.4.8
 * "Legacy Interfaces: A Note on PCI Device Layout", 2.7 "Split Virtqueues", 5.1 "Network
 * Device"); the PIC's are the Intel 8259A's.
 */
#include "demo.h"

static void interrupts_start(void);

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
_Static_assert(BUFFER - NET_HDR == NIC_FRAME_ROOM, "demo.h says how long a frame may be");

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

u8 nic_mac[6];

/* The first legacy virtio-net device on PCI bus 0. */
int nic_start(char *line) {
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
      nic_mac[i] = (features & NET_F_MAC) ? inb(io + NET_CONFIG + i) : (u8[]){0x52, 0x54, 0, 0x12, 0x34, 0x56}[i];
    if (!queue_setup(RX) || !queue_setup(TX)) {
      print("demo: the virtio-net device's queues are not usable\n");
      return 0;
    }
    outb(io + DEVICE_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK);
    outw(io + QUEUE_NOTIFY, RX);
    interrupts_start();
    struct text t = {line, line + 200};
    add(&t, "demo: virtio-net NIC at PCI 00:");
    add_hex2(&t, (u8)slot);
    add(&t, ".0, MAC ");
    for (int i = 0; i < 6; i++) {
      if (i) add(&t, ":");
      add_hex2(&t, nic_mac[i]);
    }
    add(&t, ", IRQ ");
    add_dec(&t, irq);
    print_line(&t, line);
    return 1;
  }
  return 0;
}

/* Waits while every transmit buffer is in flight. */
u8 *nic_frame(void) {
  struct queue *q = &queues[TX];
  while ((u16)(q->avail->idx - q->used->idx) >= tx_buffers) __asm__ volatile("pause");
  u8 *buffer = buffers[TX][q->avail->idx % tx_buffers];
  memset(buffer, 0, NET_HDR + MIN_FRAME);
  return buffer + NET_HDR;
}

/* Sends the frame nic_frame gave, `length` bytes long. The device completes frames in order,
 * so the buffer a frame used is free again once `tx_buffers` later ones were handed over. */
void nic_send(u32 length) {
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

void nic_receive(void (*handle)(const u8 *frame, u32 length)) {
  struct queue *q = &queues[RX];
  while (q->last_used != q->used->idx) {
    fence();
    volatile struct used_elem *e = &q->used->ring[q->last_used % q->size];
    u32 id = e->id;
    u32 length = e->len;
    if (id < rx_buffers && length > NET_HDR) handle(buffers[RX][id] + NET_HDR, length - NET_HDR);
    u16 idx = q->avail->idx;
    q->avail->ring[idx % q->size] = (u16)id;
    fence();
    q->avail->idx = idx + 1;
    q->last_used++;
    fence();
    outw(io + QUEUE_NOTIFY, RX);
  }
}


void nic_sleep(void) {
  /* `sti; hlt` takes no interrupt in between: one that came after the check wakes the hlt. */
  __asm__ volatile("cli");
  if (queues[RX].last_used == queues[RX].used->idx)
    __asm__ volatile("sti; hlt" : : : "memory");
  else
    __asm__ volatile("sti");
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

