// What a Compute Engine deployment of a Solo5 unikernel must satisfy. Each check throws an error
// naming the argument, what was wrong and how to fix it; the component runs them at
// construction (so `pulumi preview` shows them) or, for facts only known after the build, on
// the unikernel's outputs.
import { isIP } from "node:net";
import type { Device, Target } from "../unikernel";

/** A port to open: a number is a TCP port. */
export type Port = number | { port: number; protocol?: "tcp" | "udp" };

/**
 * Machine families with a virtio-net NIC, the only NIC Solo5 drives (docs/platforms.md, Google
 * Compute Engine).
 */
const VIRTIO_FAMILIES = ["e2", "n1", "n2", "n2d", "c2", "c2d", "t2d", "m1", "m2", "f1", "g1"];

/** Third-generation and later families (and Arm T2A) offer only gVNIC. */
const GVNIC_ONLY = [
  "c3",
  "c3d",
  "c4",
  "c4a",
  "c4d",
  "n4",
  "n4a",
  "n4d",
  "t2a",
  "h3",
  "h4d",
  "z3",
  "m3",
  "m4",
  "x4",
  "a3",
  "a4",
  "g4",
];

function fail(property: string, message: string): never {
  throw new Error(`gcp.UnikernelService: ${property} ${message}`);
}

/** The component's name is the stem of GCE resource names, which are lowercase RFC 1035 labels. */
export function checkName(name: string): void {
  if (!/^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$/.test(name)) {
    fail(
      `name "${name}"`,
      "is not usable in Compute Engine resource names: use 1-40 lowercase letters, digits and " +
        "hyphens, starting with a letter and not ending with a hyphen (e.g. web)",
    );
  }
}

/** Accepts `e2-micro`, custom types (`n2-custom-2-4096`) and machine type URLs. */
export function checkMachineType(machineType: string): void {
  const type = machineType.split("/").at(-1) ?? "";
  const family = type.split("-")[0].toLowerCase();
  if (VIRTIO_FAMILIES.includes(family)) return;
  const why = GVNIC_ONLY.includes(family)
    ? `is a ${family} machine, which offers only gVNIC network interfaces; Solo5 unikernels drive virtio-net only`
    : `is not a machine family known to offer virtio-net, the only network interface Solo5 drives`;
  fail(
    `machineType "${machineType}"`,
    `${why}. Use one of the families ${VIRTIO_FAMILIES.join(", ")} (e.g. e2-micro, n2-standard-2).`,
  );
}

export function checkReplicas(replicas: number): void {
  if (!Number.isInteger(replicas) || replicas < 1) {
    fail(`replicas`, `must be a whole number of at least 1, got ${replicas}`);
  }
}

/** Normalizes `ports` into firewall `allows`, grouped by protocol. */
export function firewallAllows(ports: readonly Port[]): { protocol: string; ports: string[] }[] {
  const byProtocol = new Map<string, Set<string>>();
  ports.forEach((p, i) => {
    const { port, protocol = "tcp" } = typeof p === "number" ? { port: p } : p;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      fail(`ports[${i}]`, `must be a port number from 1 to 65535, got ${JSON.stringify(port)}`);
    }
    if (protocol !== "tcp" && protocol !== "udp") {
      fail(`ports[${i}].protocol`, `must be "tcp" or "udp", got ${JSON.stringify(protocol)}`);
    }
    const set = byProtocol.get(protocol) ?? new Set<string>();
    set.add(String(port));
    byProtocol.set(protocol, set);
  });
  return ["tcp", "udp"]
    .filter((protocol) => byProtocol.has(protocol))
    .map((protocol) => ({ protocol, ports: [...(byProtocol.get(protocol) ?? [])] }));
}

export function checkSourceRanges(ranges: readonly string[]): void {
  if (ranges.length === 0) {
    fail("sourceRanges", "is empty: give at least one CIDR range, e.g. 0.0.0.0/0 for everyone");
  }
  ranges.forEach((range, i) => {
    const [address, bits, ...rest] = range.split("/");
    const family = isIP(address ?? "");
    const max = family === 4 ? 32 : 128;
    const prefix = Number(bits);
    if (
      family === 0 ||
      rest.length > 0 ||
      bits === undefined ||
      !/^\d+$/.test(bits) ||
      prefix > max
    ) {
      fail(
        `sourceRanges[${i}] "${range}"`,
        "is not a CIDR range: write an address and a prefix length, e.g. 203.0.113.0/24",
      );
    }
  });
}

const LABEL_KEY = /^[a-z][a-z0-9_-]{0,62}$/;
const LABEL_VALUE = /^[a-z0-9_-]{0,63}$/;

/** Label values carry at most 63 characters: the kernel hash's first 128 bits. */
const SHA_LABEL_LENGTH = 32;

/** The labels that say which kernel an image or VM runs. */
export function kernelLabels(
  unikernel: string,
  kernelSha256: string,
  mirageVersion: string,
): Record<string, string> {
  return {
    "mirage-unikernel": labelValue(unikernel),
    "mirage-kernel-sha256": kernelSha256.slice(0, SHA_LABEL_LENGTH),
    "mirage-version": labelValue(mirageVersion),
  };
}

export function checkLabels(labels: Record<string, string>): void {
  const count = Object.keys(labels).length;
  const own = Object.keys(kernelLabels("", "", "")).length;
  if (count > 64 - own) {
    fail("labels", `has ${count} labels; GCE allows 64, ${own} of which this component sets`);
  }
  for (const [key, value] of Object.entries(labels)) {
    if (!LABEL_KEY.test(key)) {
      fail(
        `labels key "${key}"`,
        "is not a valid label key: start with a lowercase letter, then up to 62 lowercase letters, digits, _ or -",
      );
    }
    if (typeof value !== "string" || !LABEL_VALUE.test(value)) {
      fail(
        `labels["${key}"] ${JSON.stringify(value)}`,
        "is not a valid label value: up to 63 lowercase letters, digits, _ or -",
      );
    }
  }
}

/** Any text as a label value: lowercase, other characters as `-`, at most 63 characters. */
function labelValue(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, "-")
    .slice(0, 63);
}

export function checkWaitFor(waitFor: { serial: string; timeoutSeconds?: number }): void {
  try {
    new RegExp(waitFor.serial, "m");
  } catch (error) {
    fail("waitFor.serial", `is not a valid regular expression: ${(error as Error).message}`);
  }
  const timeout = waitFor.timeoutSeconds;
  if (timeout !== undefined && !(Number.isInteger(timeout) && timeout > 0)) {
    fail("waitFor.timeoutSeconds", `must be a whole number of seconds above 0, got ${timeout}`);
  }
}

/**
 * GCE boots a BIOS disk and offers virtio devices: only a virtio kernel runs (docs/platforms.md,
 * Google Compute Engine).
 */
export function checkTarget(target: Target): void {
  if (target !== "virtio") {
    fail(
      "unikernel",
      `is built for the ${target} target; Compute Engine needs a virtio kernel: build it with \`mirage configure -t virtio\` (target: "virtio")`,
    );
  }
}

/**
 * GCE always attaches exactly one NIC, and a Solo5 unikernel aborts on a device it did not
 * declare (docs/platforms.md, Solo5 binaries): the kernel must declare exactly one network device.
 */
export function checkNetDevices(manifest: readonly Device[]): void {
  const nets = manifest.filter((d) => d.type === "net");
  if (nets.length !== 1) {
    fail(
      "unikernel",
      `declares ${nets.length} network devices (${nets.map((d) => d.name).join(", ") || "none"}); ` +
        "a Compute Engine VM has exactly one NIC and Solo5 refuses devices it did not declare: " +
        "declare exactly one network device in config.ml",
    );
  }
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

function checkSeconds(property: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0 || value > 3600) {
    fail(property, `must be a whole number of seconds from 0 to 3600, got ${value}`);
  }
  return value;
}

/**
 * A group rolls to new VMs only as they pass a health check, so one needs a port to check: the
 * given one, else the first TCP port declared.
 */
export function healthCheckSpec(
  args: HealthCheckArgs | undefined,
  ports: readonly Port[],
  replicas: number,
): HealthCheckSpec {
  const port = args?.port ?? tcpPorts(ports)[0];
  if (port === undefined) {
    fail(
      "healthCheck",
      `is needed for a group of ${replicas} VMs, and no TCP port is declared to check: declare the ` +
        "service's TCP port in ports (e.g. ports: [8080]), or give healthCheck.port",
    );
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    fail("healthCheck.port", `must be a port number from 1 to 65535, got ${port}`);
  }
  const httpPath = args?.httpPath;
  if (httpPath !== undefined && !/^\/[\x21-\x7e]*$/.test(httpPath)) {
    fail(
      `healthCheck.httpPath ${JSON.stringify(httpPath)}`,
      'must be a URL path starting with "/", without spaces (e.g. /healthz)',
    );
  }
  return {
    port,
    ...(httpPath === undefined ? {} : { httpPath }),
    initialDelaySec: checkSeconds("healthCheck.initialDelaySec", args?.initialDelaySec, 120),
    minReadySec: checkSeconds("healthCheck.minReadySec", args?.minReadySec, 30),
  };
}

/** The TCP ports among `ports`, in order. */
export function tcpPorts(ports: readonly Port[]): number[] {
  return ports
    .map((p) => (typeof p === "number" ? { port: p, protocol: "tcp" } : p))
    .filter((p) => (p.protocol ?? "tcp") === "tcp")
    .map((p) => p.port);
}

/**
 * One VM's static address is its public IP; a group's sits on a proxy load balancer, which
 * forwards TCP only.
 */
export function checkStaticIp(replicas: number, publicIp: boolean, ports: readonly Port[]): void {
  if (replicas === 1 && !publicIp) {
    fail(
      "staticIp",
      "is the VM's public address, and publicIp is false: drop one of them (a group, replicas > 1, can have both: its address is a load balancer's)",
    );
  }
  if (replicas === 1) return;
  const udp = ports.filter((p) => typeof p !== "number" && p.protocol === "udp");
  if (udp.length > 0 || tcpPorts(ports).length === 0) {
    fail(
      "staticIp",
      `for a group is a proxy load balancer, which forwards TCP ports only${udp.length > 0 ? ` (UDP port ${udp.map((p) => (typeof p === "number" ? p : p.port)).join(", ")} would not be reachable there)` : ", and no TCP port is declared"}: ` +
        "a passthrough balancer cannot be used, as it delivers packets addressed to its own IP, which a MirageOS network stack drops. Declare TCP ports only, or use replicas: 1",
    );
  }
}
