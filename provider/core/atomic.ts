// Atomic writes: a file appears under its final name complete or not at all. Everything is
// written to a temporary name in the same directory (so rename is atomic) and renamed at the end.
import { randomBytes } from "node:crypto";
import { rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** A fresh temporary path beside `path`, hidden and marked so it is never mistaken for a result. */
export function tempPathFor(path: string): string {
  return join(
    dirname(path),
    `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`,
  );
}

export async function writeFileAtomic(path: string, data: string | Buffer): Promise<void> {
  const temp = tempPathFor(path);
  try {
    await writeFile(temp, data);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/**
 * Runs `produce` with a temporary path beside `path`, then renames it into place. If `produce`
 * throws, the temporary file (or directory) is removed and `path` is left as it was.
 */
export async function produceAtomically<T>(
  path: string,
  produce: (temp: string) => Promise<T>,
): Promise<T> {
  const temp = tempPathFor(path);
  try {
    const result = await produce(temp);
    await rename(temp, path);
    return result;
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
}
