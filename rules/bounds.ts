// The bounds of every numeric input, in one place: the SDK refuses with them what must fail
// before anything is registered, the engine's `check` (preview) everything else, so a value the
// code cannot honour is refused before anything runs, in the same words wherever it is checked.
// The SDK's doc comments cite them.

/** The longest delay a Node timer holds (2^31 - 1 ms, about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

const MIB = 1024 * 1024;

export interface Bound {
  min: number;
  /** Infinity: no upper bound. */
  max: number;
  /** Whole numbers only. */
  integer: boolean;
  /** What the number counts, for messages: "minutes", "MiB". */
  unit?: string;
  /** What the number is, for messages, instead of "a whole number of UNIT": "a port number". */
  noun?: string;
  /** `min` itself is refused (a positive duration). */
  minExclusive?: boolean;
  /** Powers of two only. */
  powerOfTwo?: boolean;
}

const duration = (unit: string, perUnitMs: number): Bound => ({
  min: 0,
  minExclusive: true,
  max: Math.floor(MAX_TIMER_MS / perUnitMs),
  integer: false,
  unit,
});

/** Bounds by input, shared by every resource and component that takes one of that meaning. */
export const BOUNDS = {
  /** Unikernel: 35791 minutes is the longest a timer can wait. */
  buildTimeoutMinutes: duration("minutes", 60_000),
  /** Every wait for a console: local.Vm, local.Process, gcp and aws boot waits. */
  timeoutSeconds: duration("seconds", 1000),
  /** TCP and UDP ports: forwards, firewalls, security groups, health checks, SSH. */
  port: { min: 1, max: 65535, integer: true, noun: "a port number" },
  /** How many VMs or instances (gcp replicas, aws instanceCount, a boot wait's group). */
  count: { min: 1, max: Number.POSITIVE_INFINITY, integer: true },
  /** local.Vm guest memory: SeaBIOS and Solo5 need 16 MiB; 1 TiB is beyond any local host. */
  vmMemoryMiB: { min: 16, max: 1024 * 1024, integer: true, unit: "MiB" },
  /** local.Process (the tender's --mem). */
  tenderMemoryMiB: { min: 2, max: 1024 * 1024, integer: true, unit: "MiB" },
  /** xen.Domain memory. */
  xenMemoryMiB: { min: 8, max: 1024 * 1024, integer: true, unit: "MiB" },
  /** xen.Domain vcpus. */
  vcpus: { min: 1, max: 128, integer: true, unit: "vcpus" },
  /**
   * A health check's delays (initialDelaySec, minReadySec): GCE's API takes 0 to 3600; aws (the
   * group's grace period, a refresh's instance warmup) takes the same words and bounds.
   */
  healthCheckSeconds: { min: 0, max: 3600, integer: true, unit: "seconds" },
  /** A block file made for a Solo5 tender: its size in bytes must stay an exact number. */
  blockSizeMiB: {
    min: 1,
    max: Math.floor(Number.MAX_SAFE_INTEGER / MIB),
    integer: true,
    unit: "MiB",
  },
  /** A Solo5 block device's sector size (the tender's --block-sector-size). */
  sectorSize: { min: 512, max: 32768, integer: true, noun: "a power of two", powerOfTwo: true },
} satisfies Record<string, Bound>;

function fits(value: unknown, bound: Bound): boolean {
  return (
    typeof value === "number" &&
    Number.isFinite(value) &&
    (!bound.integer || Number.isInteger(value)) &&
    (!bound.powerOfTwo || Number.isInteger(Math.log2(value))) &&
    (bound.minExclusive ? value > bound.min : value >= bound.min) &&
    value <= bound.max
  );
}

/** What a bound accepts, as said after "must be": "a whole number of MiB from 16 to 1048576". */
export function describeBound(bound: Bound): string {
  const counted = bound.unit ? ` of ${bound.unit}` : "";
  const positive = bound.minExclusive && bound.min === 0;
  const what =
    bound.noun ??
    `${positive ? "a positive number" : bound.integer ? "a whole number" : "a number"}${counted}`;
  const unbounded = bound.max === Number.POSITIVE_INFINITY;
  if (positive) return unbounded ? what : `${what}, at most ${bound.max}`;
  if (bound.minExclusive) return `${what} above ${bound.min} and at most ${bound.max}`;
  return unbounded ? `${what}, at least ${bound.min}` : `${what} from ${bound.min} to ${bound.max}`;
}

/** Why `value` is outside `bound` (a reason for a Problem), or undefined when it fits. */
export function outOfBounds(value: unknown, bound: Bound): string | undefined {
  if (fits(value, bound)) return undefined;
  return `must be ${describeBound(bound)}, not ${JSON.stringify(value)}`;
}
