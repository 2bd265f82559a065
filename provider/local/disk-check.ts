// Whether a file given as a disk image is one, so that booting something else (a kernel, a text
// file, a directory) fails at once with what it is, instead of QEMU waiting in the BIOS. A GCE
// archive is judged by its tar header before anything is extracted: its disk.raw must be a
// regular file (a link or a device would hand the guest a host file) of whole GiB, and not so big
// that extracting it fills the disk.
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createGunzip } from "node:zlib";
import { GIB } from "../image/disk";
import { readPrefix } from "../kernel/elf";
import { inspectKernel } from "../kernel/inspect";
import { firstMember, HEAD_BYTES, TarFormatError, type TarMember } from "./tar-header";

const MAKE_ONE = "make a disk image with a DiskImage or `pulumi-mirage image KERNEL --out DIR`";

const MAKE_ARCHIVE =
  "a GCE image.tar.gz holds one file, disk.raw, of whole GiB (make one with `pulumi-mirage image KERNEL --out DIR --format gce`)";

/**
 * The largest disk.raw taken from an archive: `image` makes at most 3 GiB (for a kernel at the
 * 2 GiB limit); more is no unikernel's disk, and extracting it could fill TMPDIR or the cache.
 */
export const MAX_ARCHIVED_DISK_BYTES = 4 * GIB;

/** What to do with a Solo5 kernel of each target instead of booting it as a disk. */
const KERNEL_ADVICE: Record<string, string> = {
  virtio: `${MAKE_ONE}, then boot DIR/disk.raw`,
  xen: "a xen kernel needs a Xen host: run it with xen.Domain (or image it for a Xen cloud)",
  hvt: "run it with the Solo5 tender solo5-hvt, e.g. with local.Process",
  spt: "run it with the Solo5 tender solo5-spt, e.g. with local.Process",
  muen: "it runs only on the Muen separation kernel",
  genode: "it runs only on Genode",
};

/** Why a disk holding a xen kernel (a xen or aws image) is not run here, and what runs it. */
export function xenDisk(path: string): string {
  return (
    `${path} holds a Solo5 xen kernel (a xen or aws image), which prints only to the Xen ` +
    "console and does not run in QEMU: run it on a Xen host with xen.Domain, or on EC2 with " +
    "aws.UnikernelService; to run it here, build the unikernel for virtio (`mirage configure " +
    "-t virtio`) and make a raw or gce image of it"
  );
}

/** The file given as a disk image is something else; the message says what, and what to do. */
export class NotADiskImage extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NotADiskImage";
  }
}

/**
 * What QEMU can boot from `path`: a raw disk (a boot sector signature 0x55AA at byte 510) or a
 * gzip'd archive (a GCE image.tar.gz) whose first member is a disk.raw we may extract. Throws
 * NotADiskImage for anything else.
 */
export async function diskImageFormat(path: string): Promise<"raw" | "gzip"> {
  const wrong = (message: string) => new NotADiskImage(message);
  const info = await stat(path).catch(() => undefined);
  if (!info) throw wrong(`${path} does not exist: give a disk.raw or image.tar.gz (${MAKE_ONE})`);
  if (info.isDirectory())
    throw wrong(
      `${path} is a directory, not a disk image: give the disk.raw or image.tar.gz in it (${MAKE_ONE})`,
    );
  const head = await readPrefix(path, 512);
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
    await checkArchivedDisk(path);
    return "gzip";
  }
  if (head.length === 512 && head.readUInt16LE(510) === 0xaa55) return "raw";
  throw wrong(await whatItIs(path, head));
}

/**
 * Why an archive's disk.raw, a `kind` (tar-header.ts's words) of `size` bytes, is not one to
 * boot; undefined when it is. Checked from the tar header, and again on the extracted file.
 */
export function archivedDiskProblem(kind: string, size: number): string | undefined {
  if (kind !== "regular file") return `is a ${kind}, not a regular file`;
  if (size === 0 || size % GIB !== 0)
    return `is ${size} bytes, not a whole number of GiB (Compute Engine's rule)`;
  if (size > MAX_ARCHIVED_DISK_BYTES)
    return `is ${size / GIB} GiB, more than the ${MAX_ARCHIVED_DISK_BYTES / GIB} GiB a unikernel's disk may be here`;
  return undefined;
}

/** The start of the archive's decompressed bytes: as much as its first tar member's headers need. */
async function archiveHead(path: string): Promise<Buffer> {
  const source = createReadStream(path);
  const gunzip = source.pipe(createGunzip());
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of gunzip) {
      chunks.push(chunk as Buffer);
      length += (chunk as Buffer).length;
      if (length >= HEAD_BYTES) break;
    }
  } catch (error) {
    throw new NotADiskImage(
      `${path} starts like a gzip file but cannot be read as one (${(error as Error).message}): ${MAKE_ARCHIVE}`,
    );
  } finally {
    source.destroy();
    gunzip.destroy();
  }
  return Buffer.concat(chunks).subarray(0, HEAD_BYTES);
}

/** Refuses a gzip'd archive whose first member is not a disk.raw we may extract and boot. */
async function checkArchivedDisk(path: string): Promise<void> {
  let member: TarMember;
  try {
    member = firstMember(await archiveHead(path));
  } catch (error) {
    if (!(error instanceof TarFormatError)) throw error;
    throw new NotADiskImage(`${path} is gzip'd but ${error.message}: ${MAKE_ARCHIVE}`);
  }
  if (member.name !== "disk.raw")
    throw new NotADiskImage(
      `${path}: its first file is ${JSON.stringify(member.name)}, not disk.raw: ${MAKE_ARCHIVE}`,
    );
  const problem = archivedDiskProblem(member.kind, member.size);
  if (problem) throw new NotADiskImage(`${path}: its disk.raw ${problem}: ${MAKE_ARCHIVE}`);
}

async function whatItIs(path: string, head: Buffer): Promise<string> {
  if (head.subarray(0, 4).toString("latin1") === "\x7fELF") {
    const target = await inspectKernel(path).then(
      (kernel) => kernel.solo5.target,
      () => undefined,
    );
    if (target)
      return `${path} is a Solo5 ${target} kernel, not a disk image: ${KERNEL_ADVICE[target]}`;
    return `${path} is an ELF executable, not a disk image: ${MAKE_ONE} from a Solo5 virtio kernel`;
  }
  const what = isText(head) ? "a text file, not a disk image" : "not a disk image";
  return `${path} is ${what} (no boot sector signature 0x55AA at byte 510, no gzip header): ${MAKE_ONE}`;
}

function isText(bytes: Buffer): boolean {
  if (bytes.length === 0) return false;
  return bytes.every((byte) => byte === 9 || byte === 10 || byte === 13 || byte >= 32);
}
