// The first member of a tar archive, read from its headers alone: what a member is (a regular or
// sparse file, a link, a device...), its name and the size it extracts to, known before anything
// is extracted. Reads ustar and GNU headers, the GNU sparse member's real size, and the pax
// extended header GNU tar and bsdtar write before a member (path, size, GNU.sparse.*):
// docs/platforms.md, Names, archives and exit statuses.

const BLOCK = 512;
/** A pax header larger than this is not about one disk.raw. */
export const MAX_PAX_BYTES = 64 * 1024;
/** How much of the decompressed archive `firstMember` may need: two pax headers and the member's. */
export const HEAD_BYTES = 3 * BLOCK + 2 * MAX_PAX_BYTES;

export interface TarMember {
  name: string;
  /** What the member is, in words: "regular file", "symbolic link", "character device"... */
  kind: string;
  /** The bytes it extracts to (a sparse file's real size). */
  size: number;
}

const KINDS: Record<string, string> = {
  "0": "regular file",
  "\0": "regular file",
  "7": "regular file", // contiguous file: a regular file to everyone but a few old systems
  S: "regular file", // GNU sparse file
  "1": "hard link",
  "2": "symbolic link",
  "3": "character device",
  "4": "block device",
  "5": "directory",
  "6": "FIFO",
};

/** The archive is not one we can read; the message says what is wrong with it. */
export class TarFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TarFormatError";
  }
}

/** A NUL-terminated string field. */
function text(block: Buffer, at: number, length: number): string {
  const field = block.subarray(at, at + length);
  const nul = field.indexOf(0);
  return field.subarray(0, nul === -1 ? length : nul).toString("utf8");
}

/** A numeric field: octal digits (space or NUL ended), or GNU's base-256 form (high bit set). */
function numeric(block: Buffer, at: number, length: number): number {
  if (block[at] & 0x80) {
    let value = BigInt(block[at] & 0x7f);
    for (let i = 1; i < length; i++) value = (value << 8n) | BigInt(block[at + i]);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new TarFormatError("a size out of range");
    return Number(value);
  }
  const digits = text(block, at, length).trim();
  if (!/^[0-7]*$/.test(digits)) throw new TarFormatError(`a numeric field reads "${digits}"`);
  return digits === "" ? 0 : Number.parseInt(digits, 8);
}

/** Whether the header's checksum (the sum of its bytes, the field counted as spaces) holds. */
function checksumHolds(block: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i];
  return numeric(block, 148, 8) === sum;
}

/** The records of a pax extended header: `LENGTH KEY=VALUE\n`, each. */
function paxRecords(data: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let at = 0;
  while (at < data.length && data[at] !== 0) {
    const space = data.indexOf(0x20, at);
    const length = Number(data.subarray(at, space).toString("ascii"));
    if (space === -1 || !Number.isInteger(length) || length <= 0 || at + length > data.length)
      throw new TarFormatError("a damaged pax header");
    const record = data.subarray(space + 1, at + length - 1).toString("utf8");
    const equals = record.indexOf("=");
    if (equals > 0) records.set(record.slice(0, equals), record.slice(equals + 1));
    at += length;
  }
  return records;
}

/**
 * The first member described by `head`, the start of a decompressed tar archive (HEAD_BYTES of
 * it, or all of a shorter one). Throws TarFormatError when it is not a tar archive we can read.
 */
export function firstMember(head: Buffer): TarMember {
  let at = 0;
  let pax = new Map<string, string>();
  for (;;) {
    const block = head.subarray(at, at + BLOCK);
    if (block.length < BLOCK || block.every((byte) => byte === 0))
      throw new TarFormatError("it holds no file");
    if (!checksumHolds(block)) throw new TarFormatError("it is not a tar archive");
    const type = String.fromCharCode(block[156]);
    const stored = numeric(block, 124, 12);
    if (type === "x" || type === "g") {
      // Extended headers apply to the member after them ('g': to all; its keys are not ours).
      if (stored > MAX_PAX_BYTES)
        throw new TarFormatError(`a pax header of ${stored} bytes, more than a file needs`);
      if (type === "x") pax = paxRecords(head.subarray(at + BLOCK, at + BLOCK + stored));
      at += BLOCK + Math.ceil(stored / BLOCK) * BLOCK;
      continue;
    }
    // ustar splits long names into a prefix and a name; GNU's header uses that space otherwise.
    const ustar = block.subarray(257, 263).toString("latin1") === "ustar\x0000";
    const prefix = ustar ? text(block, 345, 155) : "";
    const name =
      pax.get("GNU.sparse.name") ??
      pax.get("path") ??
      (prefix ? `${prefix}/${text(block, 0, 100)}` : text(block, 0, 100));
    const real = pax.get("GNU.sparse.realsize") ?? pax.get("GNU.sparse.size") ?? pax.get("size");
    const size =
      real !== undefined ? Number(real) : type === "S" ? numeric(block, 483, 12) : stored;
    if (!Number.isSafeInteger(size) || size < 0)
      throw new TarFormatError(`a member size that reads "${real}"`);
    return { name, kind: KINDS[type] ?? `member of tar type '${type}'`, size };
  }
}
