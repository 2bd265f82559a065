// File-system errors in the user's words: which path, what they asked for, what went wrong and
// what to do, instead of Node's `ENOSPC: no space left on device, write` without a path. The one
// place where errno codes become sentences (the CLI and the resources both call it).
import { constants } from "node:fs";
import { access, mkdir, stat, statfs } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";

/** A file-system failure explained: the message names the path and the user's request. */
export class FsError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly path: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "FsError";
  }
}

const SENTENCES: Record<string, (path: string) => string> = {
  ENOSPC: (path) =>
    `no space left on the device holding ${path}: free some space there or use another directory`,
  EROFS: (path) => `${path} is on a read-only file system: choose a writable directory`,
  EACCES: (path) =>
    `permission denied on ${path}: choose a directory you can write to, or change its permissions`,
  EPERM: (path) => `the operation is not permitted on ${path}: choose a directory you own`,
  EEXIST: (path) =>
    `${path} already exists and is not a directory: remove it or choose another path`,
  EISDIR: (path) => `${path} is a directory, not a file: give a file`,
  ENOTDIR: (path) =>
    `${path} is not a directory (a file stands where a directory is needed): choose another path`,
};

const codeOf = (error: unknown) => (error as NodeJS.ErrnoException | undefined)?.code;

/** The nearest existing ancestor of `path` (or `path` itself), with what it is. */
async function nearestExisting(path: string) {
  let current = resolve(path);
  for (;;) {
    const info = await stat(current).catch(() => undefined);
    if (info) return { path: current, info };
    const parent = dirname(current);
    if (parent === current) return undefined;
    current = parent;
  }
}

/**
 * The real cause of an ENOENT while creating `path`: Node's recursive mkdir reports ENOENT when
 * a parent cannot be made on a read-only file system (or without permission, or under a file).
 * Checks the nearest existing ancestor; undefined when the path really is missing.
 */
async function causeOfMissing(path: string): Promise<{ code: string; path: string } | undefined> {
  const found = await nearestExisting(path);
  if (!found) return undefined;
  if (!found.info.isDirectory()) return { code: "ENOTDIR", path: found.path };
  const denied = await access(found.path, constants.W_OK).then(
    () => undefined,
    (error: unknown) => codeOf(error),
  );
  return denied && denied in SENTENCES ? { code: denied, path: found.path } : undefined;
}

/**
 * `error` as an FsError saying what happened to `path` while doing `asked` (e.g. "writing the
 * image into --out /x"), when it is a file-system error we recognise; else `error` unchanged.
 * `creating`: the path was being created, so an ENOENT may hide a read-only or unwritable parent.
 */
export async function explainFsError(
  error: unknown,
  path: string,
  asked: string,
  options: { creating?: boolean } = {},
): Promise<unknown> {
  if (error instanceof FsError) return error;
  let code = codeOf(error);
  let where = (error as NodeJS.ErrnoException | undefined)?.path ?? path;
  // ENOTDIR names the path asked for; the user needs the file standing in its way.
  if ((code === "ENOENT" && options.creating) || code === "ENOTDIR") {
    const cause = await causeOfMissing(path);
    if (cause) ({ code, path: where } = cause);
  }
  if (code === undefined || !(code in SENTENCES)) return error;
  return new FsError(`${asked}: ${SENTENCES[code](where)}`, code, where, { cause: error });
}

/** Runs `work`; a file-system error it throws comes out explained (see explainFsError). */
export async function withFsErrors<T>(
  path: string,
  asked: string,
  work: () => Promise<T>,
  options: { creating?: boolean } = {},
): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw await explainFsError(error, path, asked, options);
  }
}

/**
 * Whether the file system holding `path` has less than `bytes` free: a tool that failed while
 * writing there (mkfs.fat's "failed whilst writing FAT") may have run out of space without
 * saying so. Then the failure is reported as the ENOSPC it is.
 */
export async function lacksSpace(path: string, bytes: number): Promise<boolean> {
  const found = await nearestExisting(path);
  if (!found) return false;
  const fs = await statfs(found.info.isDirectory() ? found.path : dirname(found.path)).catch(
    () => undefined,
  );
  return fs !== undefined && fs.bavail * fs.bsize < bytes;
}

/** An FsError for a tool's failure caused by a full disk under `path`. */
export function noSpace(path: string, asked: string, cause: unknown): FsError {
  return new FsError(`${asked}: ${SENTENCES.ENOSPC(path)}`, "ENOSPC", path, { cause });
}

/**
 * Kernel file systems, by statfs type: they hold no files of ours, and on procfs Node's recursive
 * mkdir never returns (docs/platforms.md, Names, archives and exit statuses).
 */
const KERNEL_FILE_SYSTEMS = new Map<number, string>([
  [0x9fa0, "procfs"],
  [0x62656572, "sysfs"],
  [0x1cd1, "devpts"],
  [0x63677270, "cgroup2"],
  [0x27e0eb, "cgroup"],
  [0x64626720, "debugfs"],
  [0x74726163, "tracefs"],
  [0x73636673, "securityfs"],
  [0xcafe4a11, "bpf"],
  [0x6165676c, "pstore"],
  [0x62656570, "configfs"],
  [0xde5e81e4, "efivarfs"],
]);

/**
 * Makes directory `path` and its missing parents, one at a time, for `asked` (e.g. "writing the
 * image into /x"). Refused at once, in words, when the nearest existing directory is on a kernel
 * file system (procfs, sysfs...) or a read-only one.
 */
export async function makeDirectory(path: string, asked: string): Promise<void> {
  const target = resolve(path);
  const found = await nearestExisting(target);
  const fs = found && (await statfs(found.path).catch(() => undefined));
  const kind = fs && KERNEL_FILE_SYSTEMS.get(fs.type);
  if (found && kind)
    throw new FsError(
      `${asked}: ${found.path} is on ${kind}, a kernel file system that cannot hold files: choose a directory on a disk`,
      "EKERNELFS",
      found.path,
    );
  if (!found?.info.isDirectory()) {
    // A file in the way (or nothing up to the root): mkdir says which, withFsErrors in words.
    await withFsErrors(target, asked, () => mkdir(target), { creating: true });
    return;
  }
  if (found.path === target) return;
  const denied = await access(found.path, constants.W_OK).then(() => undefined, codeOf);
  if (denied === "EROFS")
    throw new FsError(`${asked}: ${SENTENCES.EROFS(found.path)}`, denied, found.path);
  let current = found.path;
  for (const part of relative(found.path, target).split(sep)) {
    current = join(current, part);
    await withFsErrors(target, asked, () => mkdir(current), { creating: true });
  }
}
