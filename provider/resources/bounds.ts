// The bounds of every numeric input, in one place, checked at `check` (preview) so that a value
// the code cannot honour is refused before anything runs. The SDK's doc comments cite them.
import { isIPv4 } from "node:net";

/** The longest delay a Node timer holds (2^31 - 1 ms, about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface Bound {
  min: number;
  max: number;
  /** Whole numbers only. */
  integer: boolean;
  /** What the number counts, for messages: "minutes", "MiB". */
  unit: string;
  /** `min` itself is refused (a positive duration). */
  minExclusive?: boolean;
}

const duration = (unit: string, perUnitMs: number): Bound => ({
  min: 0,
  minExclusive: true,
  max: Math.floor(MAX_TIMER_MS / perUnitMs),
  integer: false,
  unit,
});

/** Bounds by input, shared by the resources that take one of that meaning. */
export const BOUNDS = {
  /** Unikernel: 35791 minutes is the longest a timer can wait. */
  buildTimeoutMinutes: duration("minutes", 60_000),
  /** local.Vm, local.Process `waitFor.timeoutSeconds`, gcp serial waits. */
  timeoutSeconds: duration("seconds", 1000),
  /** local.Vm guest memory: SeaBIOS and Solo5 need 16 MiB; 1 TiB is beyond any local host. */
  vmMemoryMiB: { min: 16, max: 1024 * 1024, integer: true, unit: "MiB" },
  /** local.Process (the tender's --mem). */
  tenderMemoryMiB: { min: 2, max: 1024 * 1024, integer: true, unit: "MiB" },
  /** xen.Domain memory. */
  xenMemoryMiB: { min: 8, max: 1024 * 1024, integer: true, unit: "MiB" },
  /** xen.Domain vcpus. */
  vcpus: { min: 1, max: 128, integer: true, unit: "vcpus" },
} satisfies Record<string, Bound>;

/** Why `value` is outside `bound` (a sentence for a CheckFailure), or undefined when it fits. */
export function outOfBounds(value: unknown, bound: Bound): string | undefined {
  const fits =
    typeof value === "number" &&
    Number.isFinite(value) &&
    (!bound.integer || Number.isInteger(value)) &&
    (bound.minExclusive ? value > bound.min : value >= bound.min) &&
    value <= bound.max;
  if (fits) return undefined;
  const kind = bound.integer ? "a whole number of" : "a number of";
  const range = bound.minExclusive
    ? `above ${bound.min} and at most ${bound.max}`
    : `from ${bound.min} to ${bound.max}`;
  const positive = bound.minExclusive && bound.min === 0 ? "a positive number of" : kind;
  return `must be ${positive} ${bound.unit} ${range}, not ${JSON.stringify(value)}`;
}

/**
 * Why `value` cannot be the host address a port is forwarded from, or undefined when it can.
 * QEMU's user network forwards IPv4 only, and the address goes into a QEMU option, where a comma
 * or a colon would start options of the user's choosing (docs/platforms.md, Names, archives and
 * exit statuses): only a plain dotted IPv4 address passes.
 */
export function checkHostAddress(value: unknown): string | undefined {
  if (typeof value === "string" && isIPv4(value)) return undefined;
  return `${JSON.stringify(value)} is not an IPv4 address: give one such as 127.0.0.1 (the default) or 0.0.0.0 (every interface); QEMU's user network forwards IPv4 only`;
}
