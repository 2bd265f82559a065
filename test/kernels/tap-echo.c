/*
 * A stand-in for a networked unikernel's stack, written for pulumi-mirage's tests: attached to a
 * tap interface as a Solo5 tender attaches one (TUNSETIFF, IFF_TAP | IFF_NO_PI), it answers ARP
 * requests for its IPv4 address and echoes UDP datagrams sent to it, so a test can exchange
 * packets with "the unikernel" behind a tap. The stand-in tenders start it.
 *
 *   tap-echo IFACE IPV4 MAC
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: tap-echo IFACE IPV4 MAC\n");
        return 2;
    }
    uint8_t mac[6];
    struct in_addr ip;
    if (inet_pton(AF_INET, argv[2], &ip) != 1 ||
        sscanf(argv[3], "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3],
               &mac[4], &mac[5]) != 6) {
        fprintf(stderr, "tap-echo: bad address %s or MAC %s\n", argv[2], argv[3]);
        return 2;
    }
    int fd = open("/dev/net/tun", O_RDWR);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
    if (fd == -1 || ioctl(fd, TUNSETIFF, &ifr) == -1) {
        perror("tap-echo: attaching the tap");
        return 1;
    }
    uint8_t frame[2048];
    for (;;) {
        ssize_t n = read(fd, frame, sizeof frame);
        if (n < 14)
            continue;
        uint16_t type = (uint16_t)(frame[12] << 8 | frame[13]);
        if (type == 0x0806 && n >= 42 && frame[21] == 1 && memcmp(frame + 38, &ip, 4) == 0) {
            /* ARP request for our address: reply from our MAC. */
            uint8_t reply[42];
            memcpy(reply, frame + 6, 6);
            memcpy(reply + 6, mac, 6);
            memcpy(reply + 12, frame + 12, 8); /* type, htype, ptype, hlen, plen */
            reply[20] = 0;
            reply[21] = 2;
            memcpy(reply + 22, mac, 6);
            memcpy(reply + 28, &ip, 4);
            memcpy(reply + 32, frame + 22, 10); /* the asker's MAC and address */
            if (write(fd, reply, sizeof reply) == -1)
                perror("tap-echo: write");
        } else if (type == 0x0800 && n >= 42) {
            uint8_t *iph = frame + 14;
            size_t ihl = (size_t)(iph[0] & 15) * 4;
            if (iph[9] != 17 || memcmp(iph + 16, &ip, 4) != 0 || 14 + ihl + 8 > (size_t)n)
                continue;
            /* UDP to us: send it back, addresses and ports swapped (the IP header checksum is
             * unchanged by the swap; UDP checksum 0 means none). */
            uint8_t tmp[6];
            memcpy(frame, frame + 6, 6);
            memcpy(frame + 6, mac, 6);
            memcpy(tmp, iph + 12, 4);
            memcpy(iph + 12, iph + 16, 4);
            memcpy(iph + 16, tmp, 4);
            uint8_t *udp = iph + ihl;
            memcpy(tmp, udp, 2);
            memcpy(udp, udp + 2, 2);
            memcpy(udp + 2, tmp, 2);
            udp[6] = udp[7] = 0;
            if (write(fd, frame, (size_t)n) == -1)
                perror("tap-echo: write");
        }
    }
}
