// Kernel → bootable, deterministic BIOS disk image (and GCE archive). planImage checks what a
// build needs once, before anything is written; makeImage builds in a directory that is the
// caller's alone (a scratch directory: core/scratch.ts), so it takes no lock and leaves the files there
// for the caller to move into place (the cache, or an --out directory: publish.ts). virtio kernels
// get the syslinux layout, xen kernels the GRUB one (docs/platforms.md, Disk images).
//
// The disk is read once after it is laid out: its block map (core/block-map.ts) gives the regions the
// GCE archive carries and the disk's identity, a digest of its data that reading its data alone
// proves. No full-file sha256 of the disk is made: hashing 1 GiB of mostly zeros would take ten
// times as long as everything else, and nothing needs it (the archive's sha256 is made as it is
// written; a DiskImage of a bare disk hashes the stored file, see resources/disk-image.ts).
import { chmod, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { DISK_IMAGE_TARGETS, type ImageFormat, notBootable } from "../../rules/platform";
import { blockMap, mapDigest } from "../core/block-map";
import { explainFsError, lacksSpace, noSpace } from "../core/fs-errors";
import { inspectKernel, KernelFormatError, type KernelInfo } from "../kernel/inspect";
import { checkBootArgs } from "./bootargs";
import { buildDisk } from "./build-disk";
import { clusterBytes, diskSizeFor, GIB } from "./disk";
import { ImageError } from "./errors";
import { writeGceArchive } from "./gce-archive";
import { grubLayout } from "./grub";
import type { Layout, ToolOptions } from "./layout";
import { syslinuxLayout } from "./syslinux";

export const DISK_NAME = "disk.raw";
export const ARCHIVE_NAME = "image.tar.gz";
/** Less free space than this where a build failed means the build filled the file system. */
const NEARLY_FULL_BYTES = 1024 * 1024;

/**
 * Bump whenever this module changes the bytes it makes for the same kernel and arguments: image
 * names (DiskImage's objectName) include it, so a new layout is uploaded under a new name.
 */
export const IMAGE_LAYOUT_VERSION = 2;

/** What a build makes of one kernel, checked: see planImage. */
export interface ImagePlan {
  /** The kernel's absolute path. */
  kernel: string;
  kernelSize: number;
  target: "virtio" | "xen";
  /** gce adds the archive; raw and aws are the disk alone. */
  format: ImageFormat;
  bootArgs: readonly string[];
}

export interface DiskFile {
  path: string;
  size: number;
  /** The digest of its block map (core/block-map.ts): equal digests, equal bytes. */
  mapDigest: string;
}

export interface ArchiveFile {
  path: string;
  size: number;
  sha256: string;
}

export interface MadeImage {
  disk: DiskFile;
  archive?: ArchiveFile;
  target: "virtio" | "xen";
}

export interface MakeOptions {
  /** Tool output is appended here; failures show its path. */
  logFile?: string;
  onProgress?: (line: string) => void;
  /** Aborting stops the build. */
  signal?: AbortSignal;
  /** The directory a user would name for a file-system failure; default: the build's own. */
  place?: string;
}

/** The target we can boot from a BIOS disk, or an ImageError saying why not and what to do. */
function bootableTarget(info: KernelInfo, kernel: string): "virtio" | "xen" {
  const target = info.solo5.target;
  if (target !== "virtio" && target !== "xen")
    throw new ImageError(`${kernel} is a Solo5 ${target} kernel: ${notBootable(target)}.`);
  if (!info.multiboot)
    throw new ImageError(
      `${kernel} is a Solo5 ${target} kernel without a Multiboot1 header in its first 8 KiB, so no BIOS bootloader can start it; rebuild it with \`mirage configure -t ${target}\` (Solo5's own ${target} bindings carry the header) and check that nothing strips or relinks it afterwards.`,
    );
  return target;
}

const capitalized = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);

/** inspectKernel, with the advice for a file that is no Solo5 kernel at all narrowed to images. */
export async function inspectImageKernel(kernel: string): Promise<KernelInfo> {
  try {
    return await inspectKernel(kernel);
  } catch (error) {
    if (!(error instanceof KernelFormatError)) throw error;
    throw new ImageError(`${error.message}. ${capitalized(DISK_IMAGE_TARGETS)}.`);
  }
}

/**
 * The plan for an image of `kernel`, or an ImageError saying what is wrong: the boot arguments
 * (they go into a bootloader configuration: checkBootArgs is what keeps them from changing it),
 * the kernel's target and Multiboot header, its size. `info` is the kernel's inspection when the
 * caller has made it already. The format is the caller's to check: a typed value here.
 */
export async function planImage(
  kernel: string,
  format: ImageFormat,
  bootArgs: readonly string[],
  info?: KernelInfo,
): Promise<ImagePlan> {
  checkBootArgs(bootArgs);
  const path = resolve(kernel);
  const target = bootableTarget(info ?? (await inspectImageKernel(path)), path);
  const kernelSize = (await stat(path)).size;
  // inspectKernel refused a kernel too big for FAT32 (4 GiB) already.
  return { kernel: path, kernelSize, target, format, bootArgs };
}

/** Builds `plan` in `dir` (empty, and the caller's alone): DISK_NAME, and ARCHIVE_NAME for gce. */
export async function makeImage(
  plan: ImagePlan,
  dir: string,
  options: MakeOptions = {},
): Promise<MadeImage> {
  const place = options.place ?? dir;
  try {
    return await makeIn(plan, dir, options);
  } catch (error) {
    // A tool that ran out of space may say only that it failed (mkfs.fat: "failed whilst
    // writing FAT"); the partial build still fills the disk now, so this tells.
    const asked = `writing the image into ${place}`;
    const explained = await explainFsError(error, place, asked);
    if (explained !== error) throw explained;
    if (!options.signal?.aborted && (await lacksSpace(dir, NEARLY_FULL_BYTES)))
      throw noSpace(place, asked, error);
    throw error;
  }
}

async function makeIn(plan: ImagePlan, dir: string, options: MakeOptions): Promise<MadeImage> {
  const { kernel, kernelSize, target, format, bootArgs } = plan;
  const { onProgress, signal } = options;
  const tools: ToolOptions = { logFile: options.logFile, signal };
  onProgress?.(`image: ${target} kernel ${kernel}, ${format} format`);
  const layout: Layout =
    target === "virtio"
      ? await syslinuxLayout(kernel, bootArgs, dir, tools)
      : await grubLayout(kernel, bootArgs, dir, tools);
  const sizes = await Promise.all(
    layout.files.map(async (f) => (f.source === kernel ? kernelSize : (await stat(f.source)).size)),
  );
  const size = diskSizeFor(clusterBytes(sizes, layout.directories.length) + layout.installedBytes);
  signal?.throwIfAborted();
  onProgress?.(`image: laying out a ${size / GIB} GiB disk`);
  const diskPath = join(dir, DISK_NAME);
  await buildDisk({ layout, disk: diskPath, size, scratch: dir, tools });
  signal?.throwIfAborted();
  onProgress?.(`image: mapping the data of ${DISK_NAME}`);
  const map = await blockMap(diskPath, signal);
  const disk: DiskFile = { path: diskPath, size: map.size, mapDigest: mapDigest(map) };
  // Boot arguments may be secrets (a token, a key): the files holding them are their owner's.
  const owners = async (path: string) => {
    if (bootArgs.length > 0) await chmod(path, 0o600);
  };
  await owners(diskPath);
  if (format !== "gce") return { disk, target };
  onProgress?.("image: writing the GCE archive");
  const archivePath = join(dir, ARCHIVE_NAME);
  const written = await writeGceArchive(diskPath, map.regions, map.size, archivePath, signal);
  await owners(archivePath);
  return { disk, archive: { path: archivePath, ...written }, target };
}
