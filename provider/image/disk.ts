// The disk around the filesystem: its size, and the MBR with one bootable FAT32 partition from
// 1 MiB to the end. The MBR is written here rather than by sfdisk: it is 66 bytes of fixed layout,
// and sfdisk spends ~0.3 s probing a 1 GiB file, most of the time budget of a whole build.

export const SECTOR = 512;
export const GIB = 1024 ** 3;
/** The partition starts at 1 MiB, as fdisk aligns it; GRUB's core.img lives in the gap before. */
export const PARTITION_OFFSET = 1024 * 1024;
/** Fixed disk identifier (MBR bytes 440..443), "MIRA" in little-endian ASCII. */
export const DISK_ID = 0x4152494d;
/** FAT32 clusters of 4 KiB, given to mkfs.fat so the sizing below does not depend on its defaults. */
export const SECTORS_PER_CLUSTER = 8;
const CLUSTER = SECTORS_PER_CLUSTER * SECTOR;
/** The disk geometry written into the MBR's CHS fields and the FAT boot sector. */
export const HEADS = 255;
export const SECTORS_PER_TRACK = 63;
/** mkfs.fat's FAT32 reserved area (sectors) and number of FATs. */
const RESERVED_SECTORS = 32;
const FATS = 2;

const roundUp = (n: number, to: number) => Math.ceil(n / to) * to;

/** Bytes the files take in the filesystem: whole clusters each, plus one per directory. */
export function clusterBytes(fileSizes: readonly number[], directories: number): number {
  return fileSizes.reduce((sum, size) => sum + roundUp(size, CLUSTER), 0) + directories * CLUSTER;
}

/** Bytes of file data a FAT32 partition of `partitionBytes` can hold (erring low). */
export function fat32Capacity(partitionBytes: number): number {
  // mkfs.fat rounds the filesystem down to whole tracks.
  const sectors = Math.floor(partitionBytes / SECTOR / SECTORS_PER_TRACK) * SECTORS_PER_TRACK;
  const clustersAtMost = Math.floor(sectors / SECTORS_PER_CLUSTER);
  const fatSectors = Math.ceil(((clustersAtMost + 2) * 4) / SECTOR);
  const dataSectors = sectors - RESERVED_SECTORS - FATS * fatSectors;
  // The root directory takes one cluster.
  return (Math.floor(dataSectors / SECTORS_PER_CLUSTER) - 1) * CLUSTER;
}

/** The smallest multiple of 1 GiB whose partition holds `bytes` of clusters. */
export function diskSizeFor(bytes: number): number {
  let size = GIB;
  while (fat32Capacity(size - PARTITION_OFFSET) < bytes) size += GIB;
  return size;
}

/** Cylinder/head/sector address of `lba` in our geometry, capped as usual past cylinder 1023. */
function chs(lba: number): [number, number, number] {
  const cylinder = Math.floor(lba / (HEADS * SECTORS_PER_TRACK));
  if (cylinder > 1023) return [0xfe, 0xff, 0xff];
  const head = Math.floor(lba / SECTORS_PER_TRACK) % HEADS;
  const sector = (lba % SECTORS_PER_TRACK) + 1;
  return [head, sector | ((cylinder >> 2) & 0xc0), cylinder & 0xff];
}

/**
 * Sector 0: the bootloader's 440 bytes of boot code, the fixed disk id, and one active FAT32 (LBA)
 * partition from 1 MiB to the end of a disk of `diskBytes`.
 */
export function masterBootRecord(bootCode: Buffer, diskBytes: number): Buffer {
  const mbr = Buffer.alloc(SECTOR);
  bootCode.copy(mbr, 0, 0, 440);
  mbr.writeUInt32LE(DISK_ID, 440);
  const first = PARTITION_OFFSET / SECTOR;
  const count = diskBytes / SECTOR - first;
  const entry = 446;
  mbr[entry] = 0x80; // active: the BIOS boot code chains to it
  mbr.set(chs(first), entry + 1);
  mbr[entry + 4] = 0x0c; // FAT32 with LBA
  mbr.set(chs(first + count - 1), entry + 5);
  mbr.writeUInt32LE(first, entry + 8);
  mbr.writeUInt32LE(count, entry + 12);
  mbr.writeUInt16LE(0xaa55, 510);
  return mbr;
}
