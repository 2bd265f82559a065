// The smallest file our ELF reader takes for a program of a machine: a 64-byte ELF64 file header
// and no tables. What a component reads of a tender is this header alone.

/** An ELF64 executable's file header for `machine` (62 x86_64, 183 aarch64), with no tables. */
export function elfHeader(machine: number): Buffer {
  const header = Buffer.alloc(64);
  header.write("\x7fELF", 0, "latin1");
  header.set([2, 1, 1], 4); // ELF64, little-endian, version 1
  header.writeUInt16LE(2, 16); // an executable
  header.writeUInt16LE(machine, 18);
  header.writeUInt32LE(1, 20);
  header.writeUInt16LE(64, 52);
  header.writeUInt16LE(56, 54); // program header size
  header.writeUInt16LE(64, 58); // section header size
  return header;
}
