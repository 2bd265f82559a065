// local.Vm and local.Process: the shapes of their inputs and their defaults, shared by the SDK
// classes and the engine.

/** A TCP port of the host (on 127.0.0.1 unless `hostAddress` says otherwise) forwarded to a port of the guest. */
export interface PortForward {
  host: number;
  guest: number;
  /**
   * The host address to listen on: an IPv4 address (QEMU's user network forwards IPv4 only),
   * e.g. 0.0.0.0 for every interface. Default: 127.0.0.1.
   */
  hostAddress?: string;
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
