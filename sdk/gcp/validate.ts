// What a Compute Engine deployment of a Solo5 unikernel demands of gcp.UnikernelService's
// arguments. Each check returns the Problems it finds, naming the argument, what was wrong and how
// to fix it; resolveArgs (resolve.ts) refuses them all at once, before anything is registered, so
// `pulumi preview` shows them. What the kernel must be (a virtio kernel with one network device)
// is the platform rule DiskImage's check applies to the component's `gce` image
// (rules/platform.ts); what a machine type must be, rules/gce-machines.ts.
import { isIP } from "node:net";
import { BOUNDS, outOfBounds } from "../../rules/bounds";
import type { Protocol } from "../../rules/ports";
import { servicePortProblems } from "../../rules/ports";
import { type Problem, problemIf } from "../../rules/problem";

/** A port to open: a number is a TCP port. */
export type Port = number | { port: number; protocol?: Protocol };

/** A port with its protocol. */
export interface ServicePort {
  port: number;
  protocol: Protocol;
}

/** The component's name is the stem of GCE resource names, which are lowercase RFC 1035 labels. */
export function nameProblems(name: string): Problem[] {
  if (/^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$/.test(name)) return [];
  const reason =
    `${JSON.stringify(name)} is not usable in Compute Engine resource names: use 1-40 lowercase ` +
    "letters, digits and hyphens, starting with a letter and not ending with a hyphen (e.g. web)";
  return [{ property: "name", reason }];
}

/** The ports with their protocols, and what is wrong with them. */
export function resolvePorts(ports: readonly Port[]): {
  ports: ServicePort[];
  problems: Problem[];
} {
  const problems: Problem[] = [];
  const resolved = ports.map((p, i): ServicePort => {
    const { port, protocol = "tcp" } = typeof p === "number" ? { port: p } : p;
    problems.push(...servicePortProblems(`ports[${i}]`, port, protocol));
    return { port, protocol };
  });
  return { ports: resolved, problems };
}

/** Firewall `allows` for `ports`, grouped by protocol. */
export function firewallAllows(ports: readonly ServicePort[]): {
  protocol: string;
  ports: string[];
}[] {
  return (["tcp", "udp"] as const)
    .map((protocol) => ({
      protocol,
      ports: [...new Set(ports.filter((p) => p.protocol === protocol).map((p) => String(p.port)))],
    }))
    .filter((allow) => allow.ports.length > 0);
}

/** The TCP ports among `ports`, in order. */
export function tcpPorts(ports: readonly ServicePort[]): number[] {
  return ports.filter((p) => p.protocol === "tcp").map((p) => p.port);
}

export function sourceRangesProblems(ranges: readonly string[]): Problem[] {
  if (ranges.length === 0) {
    const reason = "is empty: give at least one CIDR range, e.g. 0.0.0.0/0 for everyone";
    return [{ property: "sourceRanges", reason }];
  }
  return ranges.flatMap((range, i) => {
    const [address, bits, ...rest] = range.split("/");
    const family = isIP(address ?? "");
    const max = family === 4 ? 32 : 128;
    const cidr =
      family !== 0 &&
      rest.length === 0 &&
      bits !== undefined &&
      /^\d+$/.test(bits) &&
      Number(bits) <= max;
    if (cidr) return [];
    const reason = `${JSON.stringify(range)} is not a CIDR range: write an address and a prefix length, e.g. 203.0.113.0/24`;
    return [{ property: `sourceRanges[${i}]`, reason }];
  });
}

const LABEL_KEY = /^[a-z][a-z0-9_-]{0,62}$/;
const LABEL_VALUE = /^[a-z0-9_-]{0,63}$/;

/** Label values carry at most 63 characters: the kernel hash's first 128 bits. */
const SHA_LABEL_LENGTH = 32;

/**
 * The labels that say which kernel an image or VM runs; `mirage-version` when it is known (a
 * DiskImage given to the service does not say which toolchain built its kernel).
 */
export function kernelLabels(
  unikernel: string,
  kernelSha256: string,
  mirageVersion: string | undefined,
): Record<string, string> {
  return {
    "mirage-unikernel": labelValue(unikernel),
    "mirage-kernel-sha256": kernelSha256.slice(0, SHA_LABEL_LENGTH),
    ...(mirageVersion === undefined ? {} : { "mirage-version": labelValue(mirageVersion) }),
  };
}

export function labelsProblems(labels: Record<string, string>): Problem[] {
  const problems: Problem[] = [];
  const count = Object.keys(labels).length;
  const own = Object.keys(kernelLabels("", "", "")).length;
  if (count > 64 - own)
    problems.push({
      property: "labels",
      reason: `has ${count} labels; GCE allows 64, ${own} of which this component sets`,
    });
  for (const [key, value] of Object.entries(labels)) {
    if (!LABEL_KEY.test(key))
      problems.push({
        property: "labels",
        reason: `key ${JSON.stringify(key)} is not a valid label key: start with a lowercase letter, then up to 62 lowercase letters, digits, _ or -`,
      });
    if (typeof value !== "string" || !LABEL_VALUE.test(value))
      problems.push({
        property: `labels[${JSON.stringify(key)}]`,
        reason: `${JSON.stringify(value)} is not a valid label value: up to 63 lowercase letters, digits, _ or -`,
      });
  }
  return problems;
}

/** Any text as a label value: lowercase, other characters as `-`, at most 63 characters. */
function labelValue(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, "-")
    .slice(0, 63);
}

/** How a group's VMs are health-checked, with every default resolved. */
export interface HealthCheckSpec {
  port: number;
  /** An HTTP path to GET; absent: a TCP connect. */
  httpPath?: string;
  initialDelaySec: number;
  minReadySec: number;
}

export interface HealthCheckArgs {
  port?: number;
  httpPath?: string;
  initialDelaySec?: number;
  minReadySec?: number;
}

/**
 * A group rolls to new VMs only as they pass a health check, so one needs a port to check: the
 * given one, else the first TCP port declared.
 */
export function resolveHealthCheck(
  args: HealthCheckArgs | undefined,
  ports: readonly ServicePort[],
  replicas: number,
): { health: HealthCheckSpec; problems: Problem[] } {
  const health: HealthCheckSpec = {
    port: args?.port ?? tcpPorts(ports)[0],
    ...(args?.httpPath === undefined ? {} : { httpPath: args.httpPath }),
    initialDelaySec: args?.initialDelaySec ?? 120,
    minReadySec: args?.minReadySec ?? 30,
  };
  const problems: Problem[] = [];
  if (health.port === undefined)
    problems.push({
      property: "healthCheck",
      reason:
        `is needed for a group of ${replicas} VMs, and no TCP port is declared to check: declare the ` +
        "service's TCP port in ports (e.g. ports: [8080]), or give healthCheck.port",
    });
  else problems.push(...problemIf("healthCheck.port", outOfBounds(health.port, BOUNDS.port)));
  if (health.httpPath !== undefined && !/^\/[\x21-\x7e]*$/.test(health.httpPath))
    problems.push({
      property: "healthCheck.httpPath",
      reason: `${JSON.stringify(health.httpPath)} must be a URL path starting with "/", without spaces (e.g. /healthz)`,
    });
  for (const delay of ["initialDelaySec", "minReadySec"] as const)
    problems.push(
      ...problemIf(`healthCheck.${delay}`, outOfBounds(health[delay], BOUNDS.healthCheckSeconds)),
    );
  return { health, problems };
}

/**
 * One VM's static address is its public IP; a group's sits on a proxy load balancer, which
 * forwards TCP only.
 */
export function staticIpProblems(
  replicas: number,
  publicIp: boolean,
  ports: readonly ServicePort[],
): Problem[] {
  if (replicas === 1)
    return publicIp
      ? []
      : [
          {
            property: "staticIp",
            reason:
              "is the VM's public address, and publicIp is false: drop one of them (a group, replicas > 1, can have both: its address is a load balancer's)",
          },
        ];
  const udp = ports.filter((p) => p.protocol === "udp").map((p) => p.port);
  if (udp.length === 0 && tcpPorts(ports).length > 0) return [];
  const unreachable =
    udp.length > 0
      ? ` (UDP port ${udp.join(", ")} would not be reachable there)`
      : ", and no TCP port is declared";
  return [
    {
      property: "staticIp",
      reason:
        `for a group is a proxy load balancer, which forwards TCP ports only${unreachable}: ` +
        "a passthrough balancer cannot be used, as it delivers packets addressed to its own IP, which a MirageOS network stack drops. Declare TCP ports only, or use replicas: 1",
    },
  ];
}
