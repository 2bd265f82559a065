// The GCE image archive: a gzip'd tar holding one member, `disk.raw`, as a GNU (oldgnu) sparse
// entry, so a 1 GiB disk of a few MiB of data stays small and extracts (GNU tar -xS) as the same
// sparse file. Written here because npm tar cannot write sparse entries (docs/platforms.md, Google
// Compute Engine). Streamed: the header and sparse map, then only the data regions, read from the
// disk in chunks. Every header field is fixed (mtime 0, uid/gid 0, no user names, mode 0644) and
// the gzip header has no name, mtime 0 and the Unix OS byte, so the same disk gives the same bytes.
// The archive's sha256 and size are taken as it is written: it is not read again.
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { open } from "node:fs/promises";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { constants, createGzip } from "node:zlib";
import type { Region } from "../core/block-map";

const TAR_BLOCK = 512;
/** GNU tar's default record: 20 blocks; archives end padded to it. */
const RECORD = 20 * TAR_BLOCK;
const MEMBER_NAME = "disk.raw";
const HEADER_SPARSE_SLOTS = 4;
const EXTENSION_SPARSE_SLOTS = 21;
const READ_CHUNK = 1 << 20;
/** Byte 9 of a gzip header: the OS that wrote it. zlib fills in its build platform; fix it. */
const GZIP_OS_OFFSET = 9;
const GZIP_OS_UNIX = 3;

/** A numeric field: octal digits and NUL, or GNU's base-256 form when the value is too large. */
function writeNumber(block: Buffer, offset: number, width: number, value: number): void {
  const octal = value.toString(8);
  if (octal.length < width) {
    block.write(`${octal.padStart(width - 1, "0")}\0`, offset, "ascii");
    return;
  }
  let rest = BigInt(value);
  for (let i = width - 1; i > 0; i--) {
    block[offset + i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  block[offset] = 0x80;
}

/** The sparse map: the data regions, and a zero-length entry at the end when the file ends in a hole. */
function sparseMap(regions: readonly Region[], size: number): Region[] {
  const last = regions[regions.length - 1];
  if (last && last.offset + last.length === size) return [...regions];
  return [...regions, { offset: size, length: 0 }];
}

function writeEntries(block: Buffer, at: number, entries: readonly Region[]): void {
  entries.forEach((entry, i) => {
    writeNumber(block, at + i * 24, 12, entry.offset);
    writeNumber(block, at + i * 24 + 12, 12, entry.length);
  });
}

/** The member's header block and the extension blocks carrying the rest of its sparse map. */
function sparseHeaders(regions: readonly Region[], size: number): Buffer[] {
  const map = sparseMap(regions, size);
  const stored = regions.reduce((sum, r) => sum + r.length, 0);
  const header = Buffer.alloc(TAR_BLOCK);
  header.write(MEMBER_NAME, 0, "ascii");
  writeNumber(header, 100, 8, 0o644);
  writeNumber(header, 108, 8, 0); // uid
  writeNumber(header, 116, 8, 0); // gid
  writeNumber(header, 124, 12, stored);
  writeNumber(header, 136, 12, 0); // mtime
  header.write("S", 156, "ascii"); // GNU sparse file
  header.write("ustar  \0", 257, "ascii"); // the old GNU magic and version
  writeEntries(header, 386, map.slice(0, HEADER_SPARSE_SLOTS));
  const extensions: Buffer[] = [];
  for (let i = HEADER_SPARSE_SLOTS; i < map.length; i += EXTENSION_SPARSE_SLOTS) {
    const extension = Buffer.alloc(TAR_BLOCK);
    writeEntries(extension, 0, map.slice(i, i + EXTENSION_SPARSE_SLOTS));
    extensions.push(extension);
  }
  extensions.forEach((extension, i) => {
    if (i < extensions.length - 1) extension[504] = 1; // another extension block follows
  });
  if (extensions.length > 0) header[482] = 1;
  writeNumber(header, 483, 12, size); // the real size
  // Checksum: the sum of the header's bytes, with the checksum field counted as spaces.
  header.fill(" ", 148, 156);
  const sum = header.reduce((total, byte) => total + byte, 0);
  header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
  return [header, ...extensions];
}

async function* tarStream(disk: string, regions: readonly Region[], size: number) {
  let written = 0;
  for (const block of sparseHeaders(regions, size)) {
    yield block;
    written += block.length;
  }
  const file = await open(disk, "r");
  try {
    for (const region of regions) {
      for (let done = 0; done < region.length; done += READ_CHUNK) {
        const length = Math.min(READ_CHUNK, region.length - done);
        const buffer = Buffer.alloc(length);
        const { bytesRead } = await file.read(buffer, 0, length, region.offset + done);
        if (bytesRead !== length)
          throw new Error(`${disk}: short read at byte ${region.offset + done}`);
        yield buffer;
        written += length;
      }
    }
  } finally {
    await file.close();
  }
  // Data padding to a whole block, the two zero blocks that end an archive, then a whole record.
  const end =
    Math.ceil((Math.ceil(written / TAR_BLOCK) * TAR_BLOCK + 2 * TAR_BLOCK) / RECORD) * RECORD;
  yield Buffer.alloc(end - written);
}

/**
 * The gzip stream's last step: sets the header's OS byte, and hashes and counts what passes, so
 * `result` holds the archive's sha256 and size once the stream ends.
 */
function fixingAndHashing(result: { sha256: string; size: number }): Transform {
  const hash = createHash("sha256");
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      let out = chunk;
      if (size <= GZIP_OS_OFFSET && size + chunk.length > GZIP_OS_OFFSET) {
        out = Buffer.from(chunk);
        out[GZIP_OS_OFFSET - size] = GZIP_OS_UNIX;
      }
      hash.update(out);
      size += out.length;
      done(null, out);
    },
    flush(done) {
      Object.assign(result, { sha256: hash.digest("hex"), size });
      done();
    },
  });
}

/**
 * Writes `archive` (a new file) from `disk`, whose non-zero data lies in `regions`; returns the
 * archive's sha256 and size.
 */
export async function writeGceArchive(
  disk: string,
  regions: readonly Region[],
  size: number,
  archive: string,
  signal?: AbortSignal,
): Promise<{ sha256: string; size: number }> {
  const written = { sha256: "", size: 0 };
  await pipeline(
    Readable.from(tarStream(disk, regions, size)),
    createGzip({ level: constants.Z_BEST_COMPRESSION }),
    fixingAndHashing(written),
    createWriteStream(archive, { flags: "wx" }),
    { signal },
  );
  return written;
}
