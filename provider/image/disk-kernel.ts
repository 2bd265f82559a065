// The kernel inside a disk image of ours, read back from its FAT32 partition where each layout
// puts it (syslinux.ts: /unikernel.bin, grub.ts: /boot/unikernel.bin), so that a run knows what it
// boots before it boots it: a xen kernel is refused at once, and a declared network is known. A
// disk made by other tools has no such file: the caller then boots it as it is.
import { type FileHandle, open, rm } from "node:fs/promises";
import { join } from "node:path";
import { MAX_KERNEL_BYTES } from "../kernel/inspect";
import {
  ATTR_DIRECTORY,
  ATTR_LFN,
  chain,
  clusterOffset,
  ENTRY,
  type Fat32,
  readAt,
  readFat32,
} from "./fat";
import { KERNEL_NAME } from "./syslinux";

/** Where the layouts put the kernel, as directory names from the root. */
const KERNEL_PLACES = [[KERNEL_NAME], ["boot", KERNEL_NAME]];
/** The partition table's first entry, and its start LBA within it. */
const PARTITION_ENTRY = 446;
const START_LBA = 8;
const SECTOR = 512;
/** A long file name entry holds 13 UTF-16 characters, at these offsets. */
const LFN_PARTS: [number, number][] = [
  [1, 11],
  [14, 26],
  [28, 32],
];

interface Entry {
  name: string;
  directory: boolean;
  cluster: number;
  size: number;
}

/** A directory's entries, with their long names when they have one (lower-cased). */
async function entries(file: FileHandle, fs: Fat32, first: number): Promise<Entry[]> {
  const found: Entry[] = [];
  let long: string[] = [];
  for (const cluster of chain(fs, first)) {
    const data = await readAt(file, clusterOffset(fs, cluster), fs.clusterBytes);
    for (let at = 0; at < data.length; at += ENTRY) {
      const lead = data[at];
      if (lead === 0x00) return found;
      if (lead === 0xe5) {
        long = [];
      } else if (data[at + 11] === ATTR_LFN) {
        const part = LFN_PARTS.map(([from, to]) => data.subarray(at + from, at + to))
          .map((bytes) => bytes.toString("utf16le"))
          .join("");
        long.unshift(part.split("\0")[0]);
      } else {
        const base = data.toString("latin1", at, at + 8).trimEnd();
        const ext = data.toString("latin1", at + 8, at + 11).trimEnd();
        const short = ext === "" ? base : `${base}.${ext}`;
        found.push({
          name: (long.length > 0 ? long.join("") : short).toLowerCase(),
          directory: (data[at + 11] & ATTR_DIRECTORY) !== 0,
          cluster: (data.readUInt16LE(at + 20) << 16) | data.readUInt16LE(at + 26),
          size: data.readUInt32LE(at + 28),
        });
        long = [];
      }
    }
  }
  return found;
}

/** The entry at `path` (names from the root), or undefined. */
async function lookup(file: FileHandle, fs: Fat32, path: string[]): Promise<Entry | undefined> {
  let cluster = fs.rootCluster;
  let entry: Entry | undefined;
  for (const [index, name] of path.entries()) {
    entry = (await entries(file, fs, cluster)).find((e) => e.name === name);
    const last = index === path.length - 1;
    if (!entry || entry.directory === last) return undefined;
    cluster = entry.cluster;
  }
  return entry;
}

/**
 * Copies the kernel of the raw disk `disk` into `dir` and returns its path; undefined when the
 * disk is not one of our layouts (no FAT32 first partition, no kernel where they put it).
 */
export async function extractDiskKernel(disk: string, dir: string): Promise<string | undefined> {
  const file = await open(disk, "r");
  try {
    const mbr = await readAt(file, 0, SECTOR);
    const start = mbr.readUInt32LE(PARTITION_ENTRY + START_LBA);
    if (mbr.readUInt16LE(510) !== 0xaa55 || start === 0) return undefined;
    const fs = await readFat32(file, start * SECTOR).catch(() => undefined);
    if (!fs) return undefined;
    for (const place of KERNEL_PLACES) {
      const entry = await lookup(file, fs, place).catch(() => undefined);
      if (!entry) continue;
      if (entry.size > MAX_KERNEL_BYTES) return undefined; // no kernel of ours: inspect refuses it
      let clusters: number[];
      try {
        clusters = chain(fs, entry.cluster);
      } catch {
        return undefined; // a looping chain: not ours
      }
      const kernel = join(dir, KERNEL_NAME);
      // Cluster by cluster: a disk's claims cost no more memory than one cluster.
      const out = await open(kernel, "wx", 0o600);
      let left = entry.size;
      try {
        for (const cluster of clusters) {
          if (left <= 0) break;
          const length = Math.min(left, fs.clusterBytes);
          await out.write(await readAt(file, clusterOffset(fs, cluster), length));
          left -= length;
        }
      } finally {
        await out.close();
      }
      if (left === 0) return kernel;
      await rm(kernel, { force: true }); // a chain shorter than the file: not ours
      return undefined;
    }
    return undefined;
  } finally {
    await file.close();
  }
}
