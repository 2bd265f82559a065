// Whether a file given as a disk image is one, so that booting something else (a kernel, a text
// file, a directory) fails at once with what it is, instead of QEMU waiting in the BIOS.
import { stat } from "node:fs/promises";
import { readPrefix } from "./elf";
import { inspectKernel } from "./inspect";

const MAKE_ONE = "make a disk image with a DiskImage or `pulumi-mirage image KERNEL --out DIR`";

/** What to do with a Solo5 kernel of each target instead of booting it as a disk. */
const KERNEL_ADVICE: Record<string, string> = {
  virtio: `${MAKE_ONE}, then boot DIR/disk.raw`,
  xen: "a xen kernel needs a Xen host: run it with xen.Domain (or image it for a Xen cloud)",
  hvt: "run it with the Solo5 tender solo5-hvt, e.g. with local.Process",
  spt: "run it with the Solo5 tender solo5-spt, e.g. with local.Process",
  muen: "it runs only on the Muen separation kernel",
  genode: "it runs only on Genode",
};

/** The file given as a disk image is something else; the message says what, and what to do. */
export class NotADiskImage extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NotADiskImage";
  }
}

/**
 * What QEMU can boot from `path`: a raw disk (a boot sector signature 0x55AA at byte 510) or a
 * gzip'd archive (a GCE image.tar.gz). Throws NotADiskImage for anything else.
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
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head.length === 512 && head.readUInt16LE(510) === 0xaa55) return "raw";
  throw wrong(await whatItIs(path, head));
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
