// One pass over a finished disk: its sha256 and where its non-zero data lies. Only the part below
// `dataEnd` is read (the filesystem has nothing after it); the zero tail is hashed from memory, so
// a 1 GiB disk is never read whole nor held in memory.
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";

/** Granularity of the sparse map: the usual filesystem block, as GNU tar finds holes. */
export const BLOCK = 4096;
const CHUNK = 1 << 20;

export interface Region {
  offset: number;
  length: number;
}

export interface DiskScan {
  sha256: string;
  size: number;
  /** Non-zero BLOCK-sized blocks, merged into runs, in order. */
  regions: Region[];
}

export async function scanDisk(
  path: string,
  dataEnd: number,
  signal?: AbortSignal,
): Promise<DiskScan> {
  const file = await open(path, "r");
  try {
    const { size } = await file.stat();
    const end = Math.min(size, Math.ceil(dataEnd / BLOCK) * BLOCK);
    const hash = createHash("sha256");
    const regions: Region[] = [];
    const zero = Buffer.alloc(CHUNK);
    const buffer = Buffer.alloc(CHUNK);
    for (let position = 0; position < end; position += CHUNK) {
      const length = Math.min(CHUNK, end - position);
      const { bytesRead } = await file.read(buffer, 0, length, position);
      if (bytesRead !== length) throw new Error(`${path}: short read at byte ${position}`);
      const chunk = buffer.subarray(0, length);
      hash.update(chunk);
      for (let at = 0; at < length; at += BLOCK) {
        const block = chunk.subarray(at, at + BLOCK);
        if (block.equals(zero.subarray(0, block.length))) continue;
        const last = regions[regions.length - 1];
        if (last && last.offset + last.length === position + at) last.length += block.length;
        else regions.push({ offset: position + at, length: block.length });
      }
    }
    for (let position = end; position < size; position += CHUNK) {
      // Hashing a big disk's zeros takes seconds: stay cancellable.
      if (position % (64 * CHUNK) === 0) {
        signal?.throwIfAborted();
        await new Promise(setImmediate);
      }
      hash.update(zero.subarray(0, Math.min(CHUNK, size - position)));
    }
    return { sha256: hash.digest("hex"), size, regions };
  } finally {
    await file.close();
  }
}
