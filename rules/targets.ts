// What a unikernel is, as every part of the package names it: its MirageOS target and the devices
// it declares in its Solo5 manifest.

/** The targets `mirage configure -t` accepts that this package builds for. */
export const TARGETS = ["unix", "hvt", "spt", "virtio", "muen", "genode", "xen"] as const;
/** A MirageOS target (`mirage configure -t TARGET`). */
export type Target = (typeof TARGETS)[number];

export function isTarget(value: unknown): value is Target {
  return typeof value === "string" && (TARGETS as readonly string[]).includes(value);
}

/** A device the unikernel declares in its Solo5 manifest. */
export interface Device {
  /** The device name the unikernel uses, e.g. `service`. */
  name: string;
  type: "net" | "block";
}
