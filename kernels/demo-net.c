/*
 * The demo unikernel's network side: on QEMU user networking's guest address, 10.0.2.15, it
 * answers
 *   - ARP requests for that address;
 *   - ICMP echo requests (ping);
 *   - HTTP on TCP port 8080, without connection state: SYN gets SYN-ACK; a segment carrying a
 *     whole request (up to its blank line) gets the response with FIN; a FIN gets its ACK; any
 *     other port gets a reset.
 * The protocols are RFC 826, 791, 792 and 9293. demo_main (called by demo-start.S) starts the
 * NIC (demo-virtio.c) and serves until the VM is stopped.
 */
#include "demo.h"

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
  u8 *out = nic_frame();
  memcpy(out, a + 8, 6);
  memcpy(out + 6, nic_mac, 6);
  put16(out + 12, 0x0806);
  u8 *r = out + ETH;
  memcpy(r, a, 6);
  put16(r + 6, 2); /* a reply */
  memcpy(r + 8, nic_mac, 6);
  memcpy(r + 14, address, 4);
  memcpy(r + 18, a + 8, 10); /* the asker's hardware and protocol addresses */
  nic_send(ETH + 28);
}

static u16 ip_id;

/* Starts an IPv4 packet back to the sender of `frame`; its payload goes at the pointer returned. */
static u8 *reply_ip(const u8 *frame, u8 protocol, u8 **ip) {
  u8 *out = nic_frame();
  memcpy(out, frame + 6, 6);
  memcpy(out + 6, nic_mac, 6);
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
  nic_send(ETH + 20 + payload);
}

static void icmp(const u8 *frame, const u8 *message, u32 length) {
  if (length < 8 || message[0] != 8 || message[1] != 0) return; /* an echo request */
  if (length > NIC_FRAME_ROOM - ETH - 20) return;
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

static void handle_frame(const u8 *frame, u32 length) {
  if (length >= ETH && get16(frame + 12) == 0x0806) arp(frame, length);
  if (length >= ETH && get16(frame + 12) == 0x0800) ipv4(frame, length);
}

/* ---------------------------------------------------------------- main */

void demo_main(void) {
  char line[208];
  if (!nic_start(line)) {
    print("demo: no virtio-net NIC, nothing to serve: halted (boot it with a NIC to reach it)\n");
    return;
  }
  struct text t = {line, line + 200};
  add(&t, "demo: serving on ");
  add_ip(&t, address);
  add(&t, ": ARP, ping, and HTTP on TCP port ");
  add_dec(&t, HTTP_PORT);
  print_line(&t, line);
  for (;;) {
    nic_receive(handle_frame);
    nic_sleep();
  }
}
