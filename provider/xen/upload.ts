// Sending a file (a kernel) to a host over SSH in bounded memory, and sparse: only its data
// regions travel, each written into place on the host by `dd` at its offset, so the holes of a
// sparse file stay holes there and cost nothing to send. The file is hashed as it is sent (its
// holes as the zeros they read as); the host keeps the copy only if the sender, at the end, says
// the bytes hashed to the sha256 expected. The host needs a POSIX shell and a `dd` with
// iflag=fullblock,count_bytes and oflag=seek_bytes: GNU coreutils and busybox both have them
// (docs/platforms.md, Names, archives and exit statuses).
import { createHash } from "node:crypto";
import { open, stat } from "node:fs/promises";
import { Readable } from "node:stream";
import { dataSegments, type Segment } from "../core/block-map";
import { formatCommand } from "../core/exec";

/** Regions start and end on multiples of this (or the file's end). */
const GRAIN = 1 << 20;
/** Regions at most: one `dd` each in the host's script, a command line that must stay short. */
const MAX_REGIONS = 64;
const CHUNK = 1 << 20;
const ZEROS = Buffer.alloc(CHUNK);
/** The line the sender ends with when what it sent hashed as expected. */
const VERDICT_OK = "ok";

/**
 * The regions to send for a file of `size` bytes whose data lies in `segments`: on GRAIN
 * boundaries, neighbours merged, and the grain doubled until there are at most MAX_REGIONS.
 */
export function uploadRegions(segments: readonly Segment[], size: number): Segment[] {
  for (let grain = GRAIN; ; grain *= 2) {
    const regions: Segment[] = [];
    for (const { start, end } of segments) {
      const from = Math.floor(start / grain) * grain;
      const to = Math.min(size, Math.ceil(end / grain) * grain);
      const last = regions.at(-1);
      if (last && from <= last.end) last.end = Math.max(last.end, to);
      else regions.push({ start: from, end: to });
    }
    if (regions.length <= MAX_REGIONS) return regions;
  }
}

/** A sparse upload of one file: the host's commands, the data for their stdin, and the verdict. */
export interface SparseUpload {
  /**
   * Shell commands that write the file into `temp` on the host and succeed only when the sender
   * vouched for it (the caller renames `temp` into place, or removes it).
   */
  write: string;
  input: Readable;
  /** After the upload: whether the file no longer hashed to the sha256 expected. */
  changed(): boolean;
}

/** Prepares sending `file`, whose bytes must hash to `sha256`, into `temp` on the host. */
export async function sparseUpload(
  file: string,
  sha256: string,
  temp: string,
): Promise<SparseUpload> {
  const { size } = await stat(file);
  const regions = uploadRegions(await dataSegments(file, size), size);
  const write = [
    // Creates the file at its full size, all hole.
    formatCommand("dd", [`of=${temp}`, "bs=1", `seek=${size}`, "count=0"]),
    ...regions.map(({ start, end }) =>
      formatCommand("dd", [
        `of=${temp}`,
        "bs=65536",
        "iflag=fullblock,count_bytes",
        "oflag=seek_bytes",
        `seek=${start}`,
        `count=${end - start}`,
        "conv=notrunc",
      ]),
    ),
    `read -r verdict && [ "$verdict" = ${VERDICT_OK} ]`,
  ].join(" && ");
  let changed = false;
  async function* data() {
    const hash = createHash("sha256");
    const handle = await open(file, "r");
    try {
      let end = 0;
      // The file's end comes as a last, empty region. The hole before each region reads as
      // zeros: they are hashed, not sent.
      for (const region of [...regions, { start: size, end: size }]) {
        for (let at = end; at < region.start; at += CHUNK) {
          hash.update(ZEROS.subarray(0, Math.min(CHUNK, region.start - at)));
          // A big hole hashes for seconds: let the process answer meanwhile.
          if ((at - end) % (64 * CHUNK) === 0) await new Promise(setImmediate);
        }
        for (let at = region.start; at < region.end; at += CHUNK) {
          const length = Math.min(CHUNK, region.end - at);
          const chunk = Buffer.alloc(length);
          const { bytesRead } = await handle.read(chunk, 0, length, at);
          if (bytesRead !== length) throw new Error(`${file} shrank while it was being sent`);
          hash.update(chunk);
          yield chunk;
        }
        end = region.end;
      }
    } finally {
      await handle.close();
    }
    changed = hash.digest("hex") !== sha256;
    yield Buffer.from(`${changed ? "changed" : VERDICT_OK}\n`);
  }
  return { write, input: Readable.from(data()), changed: () => changed };
}
