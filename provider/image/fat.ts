// Reading back the FAT32 filesystem the tools wrote, for what they cannot do themselves: fixed
// file times. mcopy stamps files with the current time, and so does syslinux --install for
// ldlinux.sys and ldlinux.c32 (it copies them with mtools); there is no option to stop either, so
// every directory entry's times are set to a fixed value afterwards.
import type { FileHandle } from "node:fs/promises";

export interface Fat32 {
  /** Byte offset of the filesystem in the disk. */
  offset: number;
  bytesPerSector: number;
  clusterBytes: number;
  /** Byte offset (in the disk) of cluster 2, the first data cluster. */
  dataOffset: number;
  rootCluster: number;
  /** The first FAT, one 28-bit entry per cluster. */
  fat: Uint32Array;
}

/** FAT date 1980-01-01 (the FAT epoch), time 00:00:00: what every entry gets. */
const FIXED_DATE = (1 << 5) | 1;
const FIXED_TIME = 0;
export const ENTRY = 32;
export const ATTR_LFN = 0x0f;
export const ATTR_DIRECTORY = 0x10;
const END_OF_CHAIN = 0x0ffffff8;

export async function readAt(file: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await file.read(buffer, 0, length, position);
  if (bytesRead !== length) throw new Error(`short read at ${position}: ${bytesRead} of ${length}`);
  return buffer;
}

export async function readFat32(file: FileHandle, offset: number): Promise<Fat32> {
  const boot = await readAt(file, offset, 512);
  const bytesPerSector = boot.readUInt16LE(11);
  const sectorsPerCluster = boot[13];
  const reserved = boot.readUInt16LE(14);
  const fats = boot[16];
  const fatSectors = boot.readUInt32LE(36);
  if (boot.readUInt16LE(510) !== 0xaa55 || fatSectors === 0 || sectorsPerCluster === 0)
    throw new Error(`no FAT32 filesystem at byte ${offset} of the disk`);
  const fatBytes = await readAt(
    file,
    offset + reserved * bytesPerSector,
    fatSectors * bytesPerSector,
  );
  return {
    offset,
    bytesPerSector,
    clusterBytes: sectorsPerCluster * bytesPerSector,
    dataOffset: offset + (reserved + fats * fatSectors) * bytesPerSector,
    rootCluster: boot.readUInt32LE(44),
    fat: new Uint32Array(fatBytes.buffer, fatBytes.byteOffset, fatBytes.length / 4),
  };
}

/** Where cluster `cluster` starts in the disk. */
export function clusterOffset(fs: Fat32, cluster: number): number {
  return fs.dataOffset + (cluster - 2) * fs.clusterBytes;
}

/** The clusters of a chain starting at `first`. */
export function chain(fs: Fat32, first: number): number[] {
  const clusters: number[] = [];
  for (let c = first; c >= 2 && c < END_OF_CHAIN; c = fs.fat[c] & 0x0fffffff) {
    if (clusters.length >= fs.fat.length) throw new Error("FAT cluster chain loops");
    clusters.push(c);
  }
  return clusters;
}

/** Sets the creation, access and modification times of every file and directory to FIXED_*. */
export async function fixTimes(file: FileHandle, fs: Fat32): Promise<void> {
  const pending = [fs.rootCluster];
  while (pending.length > 0) {
    const first = pending.pop() as number;
    for (const cluster of chain(fs, first)) {
      const position = clusterOffset(fs, cluster);
      const data = await readAt(file, position, fs.clusterBytes);
      let end = false;
      for (let at = 0; at < data.length && !end; at += ENTRY) {
        const lead = data[at];
        if (lead === 0x00) end = true;
        else if (lead !== 0xe5 && data[at + 11] !== ATTR_LFN) {
          data[at + 13] = 0; // creation time, tenths of a second
          data.writeUInt16LE(FIXED_TIME, at + 14);
          data.writeUInt16LE(FIXED_DATE, at + 16);
          data.writeUInt16LE(FIXED_DATE, at + 18); // access date
          data.writeUInt16LE(FIXED_TIME, at + 22);
          data.writeUInt16LE(FIXED_DATE, at + 24);
          const child = (data.readUInt16LE(at + 20) << 16) | data.readUInt16LE(at + 26);
          const isDot = lead === 0x2e; // "." and "..": the directory itself and its parent
          if (data[at + 11] & ATTR_DIRECTORY && !isDot && child >= 2) pending.push(child);
        }
      }
      await file.write(data, 0, data.length, position);
    }
  }
}
