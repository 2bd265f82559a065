// The block map of a disk image: which 512 KiB blocks hold anything but zeros, each with its
// sha256, and, finer, which 4 KiB blocks do (the sparse map of a GNU tar archive, as GNU tar finds
// holes). 512 KiB is the EBS snapshot block (docs/platforms.md, AWS EC2), so the map is what an
// upload sends, what a GCE archive carries, and a fingerprint of the data alone: two files with
// the same bytes have the same map however their zeros are stored (holes or written), and reading
// it never touches a hole. One pass gives all of it.
//
// Node has no lseek(SEEK_DATA): a few lines of Perl (perl-base is part of every Debian and Ubuntu
// system) list the file's data segments; we then read only the blocks those segments touch. Where
// that cannot work (no perl, not Linux, whose SEEK_DATA/SEEK_HOLE values we use) the whole file is
// read instead, with the same result. bench/ measures both.
import { createHash } from "node:crypto";
import { type FileHandle, open } from "node:fs/promises";
import { run } from "./exec";

/** The EBS snapshot block size. */
export const BLOCK_SIZE = 512 * 1024;
/** Granularity of the regions: the usual file system block, as GNU tar finds holes. */
export const REGION_BLOCK = 4096;
/** Blocks read at once when they follow each other. */
const BLOCKS_PER_READ = 16;
const ZERO = Buffer.alloc(BLOCK_SIZE);

export interface MappedBlock {
  /** Block number: the block starts at byte index × BLOCK_SIZE. */
  index: number;
  /** sha256 of the block's BLOCK_SIZE bytes (the tail of a short last block reads as zeros). */
  sha256: Buffer;
}

/** A run of bytes: `length` bytes from `offset`. */
export interface Region {
  offset: number;
  length: number;
}

export interface BlockMap {
  /** The file's size in bytes. */
  size: number;
  /** The blocks that are not all zero, in ascending order. */
  blocks: MappedBlock[];
  /** The REGION_BLOCK-sized blocks that are not all zero, merged into runs, in order. */
  regions: Region[];
  /** Bytes actually read: the cost of the pass. */
  bytesRead: number;
}

export interface Segment {
  start: number;
  end: number;
}

/**
 * Prints `START END` for each data segment of the file open as STDIN, by SEEK_DATA (3) and
 * SEEK_HOLE (4): Linux's values. ENXIO from SEEK_DATA means no data after that offset.
 */
const SEGMENTS_SCRIPT = `
use strict;
my $size = -s STDIN;
my $at = 0;
while ($at < $size) {
  my $data = sysseek(STDIN, $at, 3);
  if (!defined $data) { last if $!{ENXIO}; die "SEEK_DATA at $at: $!\\n"; }
  my $hole = sysseek(STDIN, $data, 4);
  defined $hole or die "SEEK_HOLE at $data: $!\\n";
  print 0 + $data, " ", 0 + $hole, "\\n";
  $at = $hole;
}
`;

/** Parses and checks the helper's output: ascending, non-overlapping segments within the file. */
export function parseSegments(text: string, size: number): Segment[] {
  const segments: Segment[] = [];
  let previous = 0;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const match = /^(\d+) (\d+)$/.exec(line);
    const start = Number(match?.[1]);
    const end = Math.min(Number(match?.[2]), size);
    if (!match || start < previous || end <= start) {
      throw new Error(`unexpected data segment ${JSON.stringify(line)} (file of ${size} bytes)`);
    }
    segments.push({ start, end });
    previous = end;
  }
  return segments;
}

/**
 * The data segments of the file at `path` (of `size` bytes): everything outside them reads as
 * zeros. The whole file when the system cannot say (see the top of this file).
 */
export async function dataSegments(path: string, size: number): Promise<Segment[]> {
  const whole = size > 0 ? [{ start: 0, end: size }] : [];
  if (process.platform !== "linux") return whole;
  const file = await open(path, "r");
  try {
    // The helper seeks on our own open file (its stdin), so it sees the very file we read.
    const { stdout } = await run("perl", ["-e", SEGMENTS_SCRIPT], {
      stdin: file.fd,
      timeoutMs: 60_000,
    });
    return parseSegments(stdout, size);
  } catch (error) {
    if (isMissingPerl(error)) return whole;
    throw error;
  } finally {
    await file.close();
  }
}

function isMissingPerl(error: unknown): boolean {
  return error instanceof Error && /could not be started/.test(error.message);
}

/** The block indexes the segments touch, ascending, each once. */
function touchedBlocks(segments: readonly Segment[]): number[] {
  const indexes: number[] = [];
  for (const { start, end } of segments) {
    const first = Math.floor(start / BLOCK_SIZE);
    const last = Math.ceil(end / BLOCK_SIZE) - 1;
    for (let i = Math.max(first, (indexes.at(-1) ?? -1) + 1); i <= last; i++) indexes.push(i);
  }
  return indexes;
}

/** Runs of consecutive indexes, at most BLOCKS_PER_READ long: one read each. */
function readRuns(indexes: readonly number[]): number[][] {
  const runs: number[][] = [];
  for (const index of indexes) {
    const last = runs.at(-1);
    if (last && last.at(-1) === index - 1 && last.length < BLOCKS_PER_READ) last.push(index);
    else runs.push([index]);
  }
  return runs;
}

/** Reads `run` of consecutive blocks into `buffer`; bytes past the end of the file are zeros. */
async function readBlocks(
  file: FileHandle,
  run: readonly number[],
  size: number,
  buffer: Buffer,
): Promise<{ data: Buffer; bytesRead: number }> {
  const position = run[0] * BLOCK_SIZE;
  const length = Math.min(run.length * BLOCK_SIZE, size - position);
  const data = buffer.subarray(0, run.length * BLOCK_SIZE);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await file.read(data, done, length - done, position + done);
    if (bytesRead === 0) throw new Error(`short read at byte ${position + done}`);
    done += bytesRead;
  }
  data.fill(0, length);
  return { data, bytesRead: length };
}

/** Adds the non-zero REGION_BLOCKs of `block` (at `offset`, in a file of `size`) to `regions`. */
function addRegions(regions: Region[], block: Buffer, offset: number, size: number): void {
  const zero = ZERO.subarray(0, REGION_BLOCK);
  for (let at = 0; at < block.length && offset + at < size; at += REGION_BLOCK) {
    if (block.subarray(at, at + REGION_BLOCK).equals(zero)) continue;
    const start = offset + at;
    const length = Math.min(REGION_BLOCK, size - start);
    const last = regions.at(-1);
    if (last && last.offset + last.length === start) last.length += length;
    else regions.push({ offset: start, length });
  }
}

/** One streamed pass over the data segments of `path`: its block map. */
export async function blockMap(path: string, signal?: AbortSignal): Promise<BlockMap> {
  const file = await open(path, "r");
  try {
    const { size } = await file.stat();
    const segments = await dataSegments(path, size);
    const buffer = Buffer.alloc(BLOCKS_PER_READ * BLOCK_SIZE);
    const blocks: MappedBlock[] = [];
    const regions: Region[] = [];
    let bytesRead = 0;
    for (const run of readRuns(touchedBlocks(segments))) {
      signal?.throwIfAborted();
      const read = await readBlocks(file, run, size, buffer);
      bytesRead += read.bytesRead;
      run.forEach((index, i) => {
        const block = read.data.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE);
        if (block.equals(ZERO)) return;
        blocks.push({ index, sha256: createHash("sha256").update(block).digest() });
        addRegions(regions, block, index * BLOCK_SIZE, size);
      });
    }
    return { size, blocks, regions, bytesRead };
  } finally {
    await file.close();
  }
}

/**
 * A digest of the data alone: the size and every non-zero block with its hash. Equal digests mean
 * equal bytes, so a stored image is verified by this instead of hashing all of it.
 */
export function mapDigest(map: Pick<BlockMap, "size" | "blocks">): string {
  const hash = createHash("sha256").update(`pulumi-mirage block map ${BLOCK_SIZE} ${map.size}\n`);
  for (const block of map.blocks) hash.update(`${block.index} ${block.sha256.toString("hex")}\n`);
  return hash.digest("hex");
}

/** EBS's LINEAR aggregate checksum: the block checksums in index order, concatenated, hashed. */
export function linearChecksum(blocks: readonly MappedBlock[]): string {
  const hash = createHash("sha256");
  for (const block of blocks) hash.update(block.sha256);
  return hash.digest("base64");
}
