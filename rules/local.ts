// local.Vm and local.Process: the shapes of their inputs and their defaults, shared by the SDK
// classes and the engine.
import { BOUNDS, outOfBounds } from "./bounds";
import { type Protocol, servicePortProblems } from "./ports";
import { type Problem, problemIf } from "./problem";
import { isKnown } from "./values";

/**
 * A port of the guest reachable from the host, in the shape every resource's ports take: a number
 * (a TCP port, forwarded from the same port of the host's 127.0.0.1), or an object.
 */
export type VmPort =
  | number
  | {
      /** The guest's port. */
      port: number;
      /** Default: tcp. */
      protocol?: Protocol;
      /** The host's port forwarded to it. Default: `port`. */
      host?: number;
      /**
       * The host address to listen on: an IPv4 address (QEMU's user network forwards IPv4 only),
       * e.g. 0.0.0.0 for every interface. Default: 127.0.0.1.
       */
      hostAddress?: string;
    };

/** A forward as 0.1 wrote it, still taken: `{ host: 8080, guest: 80 }` is `{ port: 80, host: 8080 }`. */
export interface LegacyPortForward {
  host: number;
  /** @deprecated Write `{ port: GUEST, host: HOST }`, the shape every resource's ports take. */
  guest: number;
  hostAddress?: string;
}

/**
 * A forward as the engine keeps it in a stack's state and QEMU makes it: a port of the host (on
 * 127.0.0.1 unless `hostAddress` says otherwise) to a port of the guest. `protocol` is present
 * for udp only, so a TCP forward is recorded as 0.1 recorded it.
 */
export interface PortForward {
  host: number;
  guest: number;
  hostAddress?: string;
  /** Absent: tcp. */
  protocol?: Protocol;
}

/** One dotted-decimal IPv4 address and nothing else. */
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/**
 * Why `value` cannot be the host address a port is forwarded from, or undefined when it can. It
 * goes into a QEMU option, where a comma or a colon would start options of the user's choosing
 * (docs/platforms.md, Names, archives and exit statuses): only a plain IPv4 address passes.
 */
export function hostAddressProblem(value: unknown): string | undefined {
  if (typeof value === "string" && IPV4.test(value)) return undefined;
  return `${JSON.stringify(value)} is not an IPv4 address: give one such as 127.0.0.1 (the default) or 0.0.0.0 (every interface); QEMU's user network forwards IPv4 only`;
}

/** local.Vm's guest memory when none is given (BOUNDS.vmMemoryMiB bounds it). */
export const DEFAULT_VM_MEMORY_MIB = 128;

/** The targets local.Process runs: hvt and spt under their Solo5 tender, unix as a program. */
export const PROCESS_TARGETS = ["hvt", "spt", "unix"] as const;
export type ProcessTarget = (typeof PROCESS_TARGETS)[number];

/** The bound problem of `value` at `property`, once it is known. */
const portProblems = (property: string, value: unknown): Problem[] =>
  isKnown(value) ? problemIf(property, outOfBounds(value, BOUNDS.port)) : [];

/** One entry of `ports` (at `at`, e.g. `ports[1]`) as a forward, and what is wrong with it. */
function forwardOf(entry: unknown, at: string): { forward: PortForward; problems: Problem[] } {
  const given = (typeof entry === "object" && entry !== null ? entry : { port: entry }) as Record<
    string,
    unknown
  >;
  const problems: Problem[] = [];
  const address = given.hostAddress;
  if (address !== undefined && isKnown(address))
    problems.push(...problemIf(`${at}.hostAddress`, hostAddressProblem(address)));
  const extra = address === undefined ? {} : { hostAddress: address as string };
  if (given.guest !== undefined) {
    // 0.1's shape: TCP, both ends named.
    if (given.port !== undefined)
      problems.push({
        property: `${at}.guest`,
        reason: "is port's former name, and port is given too: keep port (the guest's) only",
      });
    problems.push(
      ...portProblems(`${at}.host`, given.host),
      ...portProblems(`${at}.guest`, given.guest),
    );
    return {
      forward: { host: given.host as number, guest: given.guest as number, ...extra },
      problems,
    };
  }
  const protocol = given.protocol ?? "tcp";
  if (isKnown(given.port) && isKnown(protocol))
    problems.push(...servicePortProblems(at, given.port, protocol));
  if (given.host !== undefined) problems.push(...portProblems(`${at}.host`, given.host));
  const forward: PortForward = {
    host: (given.host ?? given.port) as number,
    guest: given.port as number,
    ...extra,
    ...(protocol === "udp" || !isKnown(protocol) ? { protocol: protocol as Protocol } : {}),
  };
  return { forward, problems };
}

/**
 * local.Vm's `ports` as forwards, and what is wrong with them: each port in the shape every
 * resource's ports take (`VmPort`), or 0.1's `{ host, guest }`; each host port forwarded once per
 * protocol. A forward of either shape is kept as 0.1 kept it, so a program moving to the new shape
 * changes nothing in its stack. Entries not known yet (preview) are left as they are.
 */
export function resolveForwards(ports: readonly unknown[]): {
  forwards: PortForward[];
  problems: Problem[];
} {
  const problems: Problem[] = [];
  const taken = new Set<string>();
  const forwards = ports.map((entry, index): PortForward => {
    if (!isKnown(entry)) return entry as PortForward;
    const at = `ports[${index}]`;
    const { forward, problems: own } = forwardOf(entry, at);
    problems.push(...own);
    const hostAt =
      typeof entry === "object" && entry !== null && "host" in entry ? `${at}.host` : at;
    if (own.length > 0 || !isKnown(forward.host)) return forward;
    const key = `${forward.protocol ?? "tcp"}/${forward.host}`;
    if (taken.has(key))
      problems.push({
        property: hostAt,
        reason: `${forward.host} is forwarded twice: each host port can go to one guest port`,
      });
    taken.add(key);
    return forward;
  });
  return { forwards, problems };
}
