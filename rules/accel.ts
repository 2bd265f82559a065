// How QEMU accelerates a local VM, as asked for: the `accel` input of local.Vm, the `--accel`
// option and the PULUMI_MIRAGE_ACCEL environment variable all take these modes.

export const ACCEL_MODES = ["auto", "kvm", "tcg"] as const;
/**
 * `auto` uses KVM where QEMU has been seen to run a guest with it on this host, else TCG; `kvm`
 * and `tcg` force one.
 */
export type AccelMode = (typeof ACCEL_MODES)[number];

export function isAccelMode(value: unknown): value is AccelMode {
  return (ACCEL_MODES as readonly unknown[]).includes(value);
}

/** Why `value` is not an accelerator mode, or undefined when it is one. */
export function accelModeProblem(value: unknown): string | undefined {
  return isAccelMode(value) ? undefined : `is ${JSON.stringify(value)}: give auto, kvm or tcg`;
}
