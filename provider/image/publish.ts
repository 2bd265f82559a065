// An image built into an output directory a user names (`pulumi-mirage image --out DIR`, and the
// tests): the build runs in a scratch directory inside it (core/scratch.ts) and its files are renamed
// into place at the end, so the final names only ever hold complete files. Other runs may use
// the same directory at the same time, so publishing takes the directory's lock.
import { constants } from "node:fs";
import { access, rename, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { ImageFormat } from "../../rules/platform";
import { makeDirectory, withFsErrors } from "../core/fs-errors";
import { type LockOptions, withLock } from "../core/lock";
import { withScratch } from "../core/scratch";
import {
  ARCHIVE_NAME,
  type ArchiveFile,
  DISK_NAME,
  type DiskFile,
  type ImagePlan,
  makeImage,
  planImage,
} from "./make";

/** Held while results are removed or renamed into an output directory (see `replaceResults`). */
const PUBLISH_LOCK = ".publish.lock";

export interface PublishOptions {
  /** Tool output is appended here; failures show its path. */
  logFile?: string;
  /** Progress lines, and what the build waits for (another run publishing into the directory). */
  onProgress?: (line: string) => void;
  /** Aborting stops the build; the output directory is left without results or scratch files. */
  signal?: AbortSignal;
}

export interface BuildImageOptions extends PublishOptions {
  kernel: string;
  outDir: string;
  format: ImageFormat;
  bootArgs: string[];
}

export interface BuildImageResult {
  disk: DiskFile;
  archive?: ArchiveFile;
  seconds: number;
  target: "virtio" | "xen";
}

/** planImage, then publishImage: the image of `kernel` in `outDir`. */
export async function buildImage(options: BuildImageOptions): Promise<BuildImageResult> {
  const { kernel, outDir, format, bootArgs, ...rest } = options;
  return publishImage(await planImage(kernel, format, bootArgs), outDir, rest);
}

/** Builds `plan` and puts DISK_NAME (and ARCHIVE_NAME, for gce) into `outDir`. */
export async function publishImage(
  plan: ImagePlan,
  outDir: string,
  options: PublishOptions = {},
): Promise<BuildImageResult> {
  const started = performance.now();
  const dir = resolve(outDir);
  const asked = `writing the image into ${dir}`;
  await makeDirectory(dir, asked);
  // An existing directory we may not write to: say so of it, not of the first file we would make.
  await withFsErrors(dir, asked, () => access(dir, constants.W_OK));
  // Another run publishing into the directory holds its lock: say what we wait for.
  const { signal, onProgress } = options;
  const lock: LockOptions = { signal, onWait: (message) => onProgress?.(`image: ${message}`) };
  // A failed build must not leave an older result that looks like this one's.
  await withFsErrors(dir, asked, () => replaceResults(dir, lock));
  return withFsErrors(dir, asked, () =>
    withScratch({ name: "image", parent: dir }, async (scratch) => {
      const made = await makeImage(plan, scratch, { ...options, place: dir });
      options.signal?.throwIfAborted();
      // The archive first: disk.raw, the primary result, appears last, and the archive goes
      // again if that fails.
      await replaceResults(dir, lock, async () => {
        try {
          if (made.archive) await rename(made.archive.path, join(dir, ARCHIVE_NAME));
          await rename(made.disk.path, join(dir, DISK_NAME));
        } catch (error) {
          await rm(join(dir, ARCHIVE_NAME), { force: true });
          throw error;
        }
      });
      return {
        disk: { ...made.disk, path: join(dir, DISK_NAME) },
        ...(made.archive ? { archive: { ...made.archive, path: join(dir, ARCHIVE_NAME) } } : {}),
        seconds: Math.round(performance.now() - started) / 1000,
        target: made.target,
      };
    }),
  );
}

/**
 * Removes the results in `outDir`, then runs `putNew` (renaming this run's results in), holding
 * `outDir`'s publish lock. Two runs into one directory (other arguments, other formats) take
 * turns, and each withdraws everything the previous one published before putting its own in, so
 * a disk.raw and an image.tar.gz side by side are always one run's: a raw run removes a gce run's
 * archive. disk.raw goes first and comes last: whoever sees it sees its own archive or none.
 * (Two renames cannot be one atomic step; a reader may see no disk.raw while a run publishes.)
 */
async function replaceResults(
  outDir: string,
  lock: LockOptions,
  putNew = async () => {},
): Promise<void> {
  await withLock(
    join(outDir, PUBLISH_LOCK),
    async () => {
      await rm(join(outDir, DISK_NAME), { force: true });
      await rm(join(outDir, ARCHIVE_NAME), { force: true });
      await putNew();
    },
    lock,
  );
}
