// The content-addressed store of built kernels and disk images, shared by every stack on the
// machine. Layout under the cache directory:
//
//   kernels/SHA256/NAME.EXT        a kernel, stored by its content hash (read-only)
//   images/SHA256/OBJECT_NAME      a disk image, likewise (images/OBJECT_NAME/OBJECT_NAME when a
//                                  boot argument is secret: see store)
//   index/kernels/KEY.json         fingerprint → the kernel it built ({file, sha256, size, meta})
//   index/images/KEY.json          objectName → the image
//   locks/, work/, logs/           build locks, scratch build directories, build logs
//
// An index entry is written last, atomically, once its file is complete and in place: a build
// that is interrupted leaves no entry, so nothing half-built is ever served. Every hit is verified
// before it is served and a bad entry is discarded, so the caller rebuilds it.
import { chmod, copyFile, mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { tempPathFor, writeFileAtomic } from "./atomic";
import { blockMap, mapDigest } from "./block-map";
import { sha256File } from "./hash";
import { withLock } from "./lock";

export type Kind = "kernel" | "image";

/** Extra facts stored with an entry (plain JSON). */
export type Meta = Record<string, unknown>;

export interface Entry {
  /** The stored file. */
  path: string;
  sha256: string;
  size: number;
  meta: Meta;
}

/** What an index file holds. */
interface IndexRecord {
  /** The stored file, relative to the cache directory. */
  file: string;
  sha256: string;
  size: number;
  /** An image's block map digest (see `verified`); kernels have none. */
  blockMap?: string;
  meta: Meta;
}

/**
 * The cache directory: `explicit` if given, else `$PULUMI_MIRAGE_CACHE`, else
 * `$XDG_CACHE_HOME/pulumi-mirage`, else `~/.cache/pulumi-mirage`.
 */
export function cacheDir(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit) return resolve(explicit);
  if (env.PULUMI_MIRAGE_CACHE) return resolve(env.PULUMI_MIRAGE_CACHE);
  if (env.XDG_CACHE_HOME) return join(resolve(env.XDG_CACHE_HOME), "pulumi-mirage");
  return join(homedir(), ".cache", "pulumi-mirage");
}

/**
 * `dir/...names`, made if missing, and private (0700), as every directory of the cache is: images
 * may hold secret boot arguments, logs and run directories what tools and guests print. A
 * directory an older version made 0755 is made private on its next use.
 */
export async function privateDir(dir: string, ...names: string[]): Promise<string> {
  const path = join(dir, ...names);
  await mkdir(path, { recursive: true, mode: 0o700 });
  await chmod(path, 0o700);
  return path;
}

/** Keys and file names end up in paths: keep them to one harmless path component. */
function checkName(what: string, value: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(value)) {
    throw new Error(`cache ${what} ${JSON.stringify(value)} is not a plain file name`);
  }
  return value;
}

function indexPath(dir: string, kind: Kind, key: string): string {
  return join(dir, "index", `${kind}s`, `${checkName("key", key)}.json`);
}

/**
 * Where builds keep their scratch directories: `work/`, in the cache so a result moves into the
 * store by rename. Each process has its own area there (scratch.ts), removed when it exits and
 * swept once it is gone (a build killed with -9 cannot clean up; a real build tree is hundreds of
 * MB).
 */
export async function workDir(dir: string): Promise<string> {
  return privateDir(dir, "work");
}

export async function logsDir(dir: string): Promise<string> {
  return privateDir(dir, "logs");
}

/** What a stored file must hold: its sha256, and for an image its block map digest. */
type Expected = Pick<IndexRecord, "sha256" | "blockMap">;

/**
 * Whether the file at `path` holds what is expected. Kernels (a few MB) are hashed. Disk images
 * are raw disks of 1 GiB or more, mostly zeros: they are checked by their block map
 * (block-map.ts), which reads only their data, so this costs milliseconds and still proves every
 * byte.
 */
async function holds(kind: Kind, path: string, expected: Expected): Promise<boolean> {
  // An image entry from before block maps has none: it is rebuilt once.
  if (kind === "image") return mapDigest(await blockMap(path)) === expected.blockMap;
  return (await sha256File(path)) === expected.sha256;
}

/** Whether a stored file is intact: there, of its recorded size, holding what it held. */
async function verified(dir: string, kind: Kind, record: IndexRecord): Promise<boolean> {
  const path = join(dir, record.file);
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile() || info.size !== record.size) return false;
  return holds(kind, path, record);
}

/** The entry stored under `key`, verified; a bad entry is discarded and undefined returned. */
export async function lookup(dir: string, kind: Kind, key: string): Promise<Entry | undefined> {
  const index = indexPath(dir, kind, key);
  let record: IndexRecord;
  try {
    record = JSON.parse(await readFile(index, "utf8")) as IndexRecord;
  } catch {
    // Missing, or unreadable (truncated by hand?): either way not an entry to serve.
    await rm(index, { force: true });
    return undefined;
  }
  if (!(await verified(dir, kind, record))) {
    await discard(dir, kind, key, record);
    return undefined;
  }
  return {
    path: join(dir, record.file),
    sha256: record.sha256,
    size: record.size,
    meta: record.meta,
  };
}

/** Removes a bad entry: its index first (so it stops serving), then its file. */
async function discard(dir: string, kind: Kind, key: string, record: IndexRecord): Promise<void> {
  await rm(indexPath(dir, kind, key), { force: true });
  if (typeof record.file === "string" && record.file.startsWith(`${kind}s/`)) {
    await rm(join(dir, record.file), { force: true });
  }
}

/**
 * Stores `file` under `key` as `fileName`: the file goes to `KINDs/SHA256/fileName`, moved when
 * `move` is set (it must then be on the cache's file system), else copied; then the index entry
 * is written. Returns the stored entry.
 */
export async function store(
  dir: string,
  kind: Kind,
  key: string,
  file: string,
  options: {
    fileName: string;
    meta: Meta;
    move?: boolean;
    /** The file's sha256 when the caller has just computed it (a raw disk takes seconds). */
    sha256?: string;
    /** An image's block map digest when the caller has just mapped the file (block-map.ts). */
    mapDigest?: string;
    /**
     * The folder under `KINDs/` instead of the sha256, for a file whose hash must not be public:
     * its path is an output, and an image's hash lets a guess of a secret boot argument be
     * checked by rebuilding. Such a file is shared with no other entry.
     */
    folder?: string;
  },
): Promise<Entry> {
  const index = indexPath(dir, kind, key);
  const sha = options.sha256 ?? (await sha256File(file));
  const expected: Expected = {
    sha256: sha,
    blockMap: kind === "image" ? (options.mapDigest ?? mapDigest(await blockMap(file))) : undefined,
  };
  const { size, mode } = await stat(file);
  const folder = options.folder === undefined ? sha : checkName("folder", options.folder);
  const relative = `${kind}s/${folder}/${checkName("file name", options.fileName)}`;
  const path = join(dir, relative);
  await privateDir(dir, `${kind}s`);
  await privateDir(dir, `${kind}s`, folder);
  const present = await stat(path).then(
    (s) => s.size === size,
    () => false,
  );
  // Another entry may already hold the same bytes under the same name: share it if it is intact.
  if (!present || !(await holds(kind, path, expected))) {
    const temp = tempPathFor(path);
    try {
      if (options.move) await rename(file, temp);
      else await copyFile(file, temp);
      // Read-only, so nothing writes through a path handed out to users by mistake; a unix
      // target's kernel is a program, and stays executable; a private file (an image holding
      // boot arguments) stays its owner's alone.
      const readable = mode & 0o111 ? 0o555 : 0o444;
      await chmod(temp, mode & 0o077 ? readable : readable & 0o700);
      await rename(temp, path);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }
  await privateDir(dir, "index");
  await privateDir(dir, "index", `${kind}s`);
  const record: IndexRecord = {
    file: relative,
    sha256: sha,
    size,
    ...(expected.blockMap === undefined ? {} : { blockMap: expected.blockMap }),
    meta: options.meta,
  };
  await writeFileAtomic(index, JSON.stringify(record));
  return { path, sha256: sha, size, meta: options.meta };
}

/**
 * Runs `work` holding the lock of one entry: concurrent builders of the same entry (two resources,
 * two stacks) take turns, and the second finds the first one's result.
 */
export async function withEntryLock<T>(
  dir: string,
  kind: Kind,
  key: string,
  work: () => Promise<T>,
  timeoutMs?: number,
): Promise<T> {
  return withCacheLock(dir, `${kind}-${checkName("key", key)}`, work, timeoutMs);
}

/** Runs `work` holding the cache's lock `name` (locks/NAME.lock), shared by every process. */
export async function withCacheLock<T>(
  dir: string,
  name: string,
  work: () => Promise<T>,
  timeoutMs?: number,
): Promise<T> {
  const locks = await privateDir(dir, "locks");
  return withLock(join(locks, `${checkName("lock", name)}.lock`), work, { timeoutMs });
}
