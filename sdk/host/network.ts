// The host's side of a unikernel's network: a tap interface per network device the kernel
// declares (the unikernel at 10.81.N.2, the host at 10.81.N.1), IP forwarding, and an nftables
// table that forwards the declared ports from the host's own addresses to the first device's
// unikernel (DNAT) and masquerades the unikernel's traffic. Taps and rules do not survive a
// reboot, so `setup-network` is run before every start of the tender.

export interface HostPort {
  port: number;
  protocol: "tcp" | "udp";
}

/** The host side of network device `n` and the unikernel's address on it. */
export function tapAddresses(n: number): { host: string; unikernel: string; prefix: number } {
  return { host: `10.81.${n}.1`, unikernel: `10.81.${n}.2`, prefix: 24 };
}

/** The tender's name for the tap of network device `n`. */
export function tapName(n: number): string {
  return `mtap${n}`;
}

/** The nftables table (`nft -f` input): DNAT of `ports` to the first device, masquerading. */
export function nftRules(ports: readonly HostPort[]): string {
  const target = tapAddresses(0).unikernel;
  const forwards = (["tcp", "udp"] as const)
    .map((protocol) => {
      const numbers = ports.filter((p) => p.protocol === protocol).map((p) => p.port);
      return numbers.length === 0
        ? ""
        : `    iifname != "mtap*" ${protocol} dport { ${numbers.join(", ")} } dnat to ${target}\n`;
    })
    .join("");
  return `table ip pulumi_mirage {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
${forwards}  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 10.81.0.0/16 oifname != "mtap*" masquerade
  }
}
`;
}

/**
 * The `setup-network` script: the taps of `networks` (device names, in manifest order) and the
 * rules in the file `rules` (quoted by the caller). Rerunnable: it replaces what it finds.
 */
export function setupNetworkScript(networks: readonly string[], rules: string): string {
  const taps = networks.map((net, n) => {
    const { host, prefix } = tapAddresses(n);
    const tap = tapName(n);
    return [
      `# ${net}`,
      `ip link show ${tap} >/dev/null 2>&1 || ip tuntap add dev ${tap} mode tap`,
      `ip addr replace ${host}/${prefix} dev ${tap}`,
      `ip link set ${tap} up`,
    ].join("\n");
  });
  return `#!/bin/sh
# The unikernel's taps and forwarding; run before every start.
set -eu
${taps.join("\n")}
echo 1 > /proc/sys/net/ipv4/ip_forward
if nft list table ip pulumi_mirage >/dev/null 2>&1; then nft delete table ip pulumi_mirage; fi
nft -f ${rules}
`;
}
