// What a host service (an spt or hvt unikernel under its Solo5 tender on a cloud's Linux VM, on
// any cloud) takes of a unikernel.
import type { Device } from "./targets";

/**
 * Why a kernel of `target` cannot run on a host, or undefined when it can; `instead` says what the
 * cloud offers a kernel of that target (default: build it for spt or hvt).
 */
export function hostTargetProblem(target: string, instead?: string): string | undefined {
  if (target === "spt" || target === "hvt") return undefined;
  return `is for spt and hvt unikernels, and this one is ${target}: ${instead ?? "build it for spt or hvt"}`;
}

/** Why a host cannot run a kernel declaring `manifest`'s devices, or undefined when it can. */
export function hostDevicesProblem(manifest: readonly Device[]): string | undefined {
  const blocks = manifest.filter((d) => d.type === "block").map((d) => d.name);
  if (blocks.length === 0) return undefined;
  return `declares block device(s) ${blocks.join(", ")}, which a host service cannot attach yet: remove them from config.ml`;
}
