// The target → image format → platform table: which kernels go into which image format, where
// each format boots, and what a cloud demands of a kernel's devices. The one check DiskImage (at
// preview, also for the gcp and aws components' images) and `pulumi-mirage image` (before
// building) make. Each caller says how its users name the fields (a resource property, a
// command-line option), so every message names the field the user wrote and says what to write
// instead.
import type { Device } from "./targets";

export type ImageFormat = "raw" | "gce" | "aws";
/**
 * raw: a bare BIOS disk; gce: that disk in the tar.gz Compute Engine imports; aws: the raw disk,
 * for an EC2 snapshot.
 */
export const IMAGE_FORMATS: readonly ImageFormat[] = ["raw", "gce", "aws"];

/** Why `format` is not an image format, or undefined when it is one. */
export function imageFormatProblem(format: unknown): string | undefined {
  if (IMAGE_FORMATS.includes(format as ImageFormat)) return undefined;
  return `${JSON.stringify(format)} is not an image format: use one of ${IMAGE_FORMATS.join(", ")}`;
}

/** The formats each bootable target goes into: GCE boots virtio kernels, Xen HVM hosts xen ones. */
const FORMATS_FOR: Record<string, readonly ImageFormat[]> = {
  virtio: ["gce", "raw"],
  xen: ["aws", "raw"],
};

/** What a kernel of each target runs on instead of a BIOS disk. */
const RUNS_ON: Record<string, string> = {
  hvt: "it runs under the solo5-hvt tender (KVM, bhyve, OpenBSD vmm; local.Process in a Pulumi program)",
  spt: "it runs as a sandboxed Linux process under solo5-spt (local.Process in a Pulumi program)",
  unix: "it is a native program: run it as one (local.Process in a Pulumi program)",
  muen: "it runs as a Muen separation kernel subject",
  genode: "it runs as a Genode component",
};

/** How to get a kernel a disk image can boot. */
export const DISK_IMAGE_TARGETS =
  "for a disk image, build the unikernel with `mirage configure -t virtio` (gce, raw; QEMU) or `-t xen` (aws, raw; Xen)";

/** `word` with its article, as said aloud: "an hvt", "a xen". */
const withArticle = (word: string) =>
  `${["hvt", "spt", "aws"].includes(word) ? "an" : "a"} ${word}`;

/** Why a kernel of `target` cannot boot from a BIOS disk, and what to do. */
export function notBootable(target: string): string {
  const instead = RUNS_ON[target] ? `: ${RUNS_ON[target]}` : "";
  return `${withArticle(target)} kernel cannot boot from a disk image${instead}; ${DISK_IMAGE_TARGETS}`;
}

/** How a caller's users name the kernel and format fields and write a format value. */
export interface PlatformFields {
  /** e.g. `kernel` (a property) or `KERNEL` (an argument). */
  kernel: string;
  /** e.g. `format` or `--format`. */
  format: string;
  /** A format value as the user writes it: `"gce"` in a program, `gce` on a command line. */
  value(format: ImageFormat): string;
}

export interface PlatformProblem {
  /** fields.kernel or fields.format. */
  field: string;
  reason: string;
}

export interface PlatformCheck {
  problems: PlatformProblem[];
  /** Things that will not work on the platform but do not stop the image being made. */
  warnings: string[];
}

export interface KernelDescription {
  target: string;
  /** The devices the kernel declares; unknown before it is built. */
  manifest?: readonly Device[];
}

/** Whether `kernel` can go into a `format` image, and GCE's demands on its devices. */
export function checkPlatform(
  kernel: KernelDescription,
  format: ImageFormat,
  fields: PlatformFields,
): PlatformCheck {
  const { target, manifest } = kernel;
  const formats = FORMATS_FOR[target];
  if (!formats)
    return { problems: [{ field: fields.kernel, reason: notBootable(target) }], warnings: [] };
  if (!formats.includes(format)) {
    const [cloud, other] = target === "virtio" ? ["EC2", "xen"] : ["Compute Engine", "virtio"];
    const fits = formats.map(fields.value).join(" or ");
    const reason = `${withArticle(target)} kernel cannot go into ${withArticle(format)} image (${cloud} boots ${other} kernels): use ${fields.format} ${fits}, or build the unikernel for ${other}`;
    return { problems: [{ field: fields.format, reason }], warnings: [] };
  }
  if (format !== "gce" || manifest === undefined) return { problems: [], warnings: [] };
  return gceDevices(manifest, fields);
}

/**
 * Compute Engine always attaches one NIC and a Solo5 unikernel aborts on a device it did not
 * declare (docs/platforms.md): exactly one network device. Its disks are virtio-scsi, which Solo5
 * cannot drive, so a block device will not work there.
 */
function gceDevices(manifest: readonly Device[], fields: PlatformFields): PlatformCheck {
  const named = (type: Device["type"]) =>
    manifest.filter((d) => d.type === type).map((d) => d.name);
  const nets = named("net");
  const blocks = named("block");
  const problems: PlatformProblem[] = [];
  if (nets.length !== 1) {
    const declared = nets.length === 0 ? "none" : `${nets.length} (${nets.join(", ")})`;
    problems.push({
      field: fields.kernel,
      reason: `Compute Engine always attaches one network interface and Solo5 aborts on a device the unikernel did not declare, so a GCE unikernel must declare exactly one network device; this one declares ${declared}: use one network stack (netif/stackv4v6) in config.ml, or ${fields.format} ${fields.value("raw")} for a disk without that demand`,
    });
  }
  const warnings =
    blocks.length > 0
      ? [
          `warning: the unikernel declares block device${blocks.length > 1 ? "s" : ""} ${blocks.join(", ")}, which cannot work on Compute Engine: its disks are virtio-scsi, which Solo5 has no driver for`,
        ]
      : [];
  return { problems, warnings };
}
