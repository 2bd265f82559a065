// A disk image written straight into an EBS snapshot with the EBS direct APIs (docs/platforms.md, AWS EC2): only
// the non-zero 512 KiB blocks of the block map are sent, each with its sha256, and the snapshot is
// completed with the LINEAR aggregate checksum, so EBS itself checks that it holds exactly our
// data. No S3 object, no import role; seconds instead of the quarter hour of ImportSnapshot.
//
// Credentials and region come from the AWS SDK's standard chain (environment, shared config,
// SSO, instance roles...); AWS_ENDPOINT_URL_EBS / AWS_ENDPOINT_URL_EC2 point it elsewhere. The SDK
// retries throttling, 5xx answers and dropped connections with exponential backoff. The SDK
// packages are loaded when used, so the package loads without them.
import { open } from "node:fs/promises";
import type { EBSClient } from "@aws-sdk/client-ebs";
import type { EC2Client } from "@aws-sdk/client-ec2";
import {
  BLOCK_SIZE,
  blockMap,
  linearChecksum,
  type MappedBlock,
  mapDigest,
} from "../core/block-map";
import { sha256 } from "../core/hash";

const GIB = 1024 ** 3;
/** Blocks in flight at once: EBS allows more, but a few dozen saturate one uplink. */
export const DEFAULT_PARALLELISM = 16;
/** Attempts per request (the first included), with the SDK's exponential backoff between them. */
export const DEFAULT_ATTEMPTS = 8;

export interface AwsOptions {
  /** Default: the SDK's chain (AWS_REGION, the profile's region, ...). */
  region?: string;
  /** Attempts per request. Default: DEFAULT_ATTEMPTS. */
  maxAttempts?: number;
}

export interface UploadOptions extends AwsOptions {
  /** The raw disk image. */
  path: string;
  description: string;
  tags?: Record<string, string>;
  /** Encrypt the snapshot with this KMS key. Default: EBS's account default. */
  kmsKeyArn?: string;
  /** Blocks in flight at once. Default: DEFAULT_PARALLELISM. */
  parallelism?: number;
  /** Minutes EBS waits for the upload before it marks the snapshot `error`. Default: 60. */
  timeoutMinutes?: number;
  /** Between DescribeSnapshots calls while EBS finishes the snapshot. Default: 2000. */
  pollMs?: number;
  /** How long to wait for `completed` after CompleteSnapshot. Default: 30 minutes. */
  completeTimeoutMs?: number;
  onProgress?: (line: string) => void;
  signal?: AbortSignal;
}

export interface UploadedSnapshot {
  snapshotId: string;
  /** GiB. */
  volumeSize: number;
  /** Blocks sent: the non-zero ones. */
  blocksWritten: number;
  /** Blocks of the whole volume. */
  blockCount: number;
  /** The LINEAR aggregate checksum EBS verified (base64). */
  checksum: string;
  /** The image's block map digest: what the snapshot holds. */
  mapDigest: string;
}

async function ebsClient(options: AwsOptions): Promise<EBSClient> {
  const { EBSClient } = await import("@aws-sdk/client-ebs");
  return new EBSClient({
    region: options.region,
    maxAttempts: options.maxAttempts ?? DEFAULT_ATTEMPTS,
  });
}

async function ec2Client(options: AwsOptions): Promise<EC2Client> {
  const { EC2Client } = await import("@aws-sdk/client-ec2");
  return new EC2Client({
    region: options.region,
    maxAttempts: options.maxAttempts ?? DEFAULT_ATTEMPTS,
  });
}

/** An AWS error's name and message (and EBS's Reason), for our own messages. */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const reason = (error as { Reason?: string }).Reason;
  return `${error.name}: ${error.message}${reason ? ` (${reason})` : ""}`;
}

/** Reads block `index` of the open image (zeros past its end). */
async function readBlock(
  file: Awaited<ReturnType<typeof open>>,
  index: number,
  size: number,
): Promise<Buffer> {
  const data = Buffer.alloc(BLOCK_SIZE);
  const length = Math.min(BLOCK_SIZE, size - index * BLOCK_SIZE);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await file.read(data, done, length - done, index * BLOCK_SIZE + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return data;
}

/**
 * Runs `work` on every item with at most `limit` at once. The first failure stops the others
 * from starting new items (and aborts `stop`, which cancels their requests); it resolves or
 * rejects only once every worker has stopped, so nothing is still in flight afterwards.
 */
async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  stop: AbortController,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      const item = items[next++];
      try {
        await work(item);
      } catch (error) {
        failure ??= { error };
        stop.abort();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.error;
}

/** Every `everyMs` at most (and at the end): `blocks written N/M, S s`. */
function progressReporter(total: number, onProgress?: (line: string) => void, everyMs = 2000) {
  const started = Date.now();
  let last = 0;
  let written = 0;
  return {
    add(final = false) {
      if (!final) written++;
      const now = Date.now();
      if (!onProgress || (!final && now - last < everyMs)) return;
      last = now;
      onProgress(`blocks written ${written}/${total}, ${((now - started) / 1000).toFixed(1)} s`);
    },
  };
}

/**
 * Writes the image at `options.path` into a new EBS snapshot and waits until EBS reports it
 * `completed`. On any failure the snapshot is never completed (EBS marks an unfinished one `error`
 * after its timeout) and is deleted on the way out.
 */
export async function uploadSnapshot(options: UploadOptions): Promise<UploadedSnapshot> {
  const { signal } = options;
  const map = await blockMap(options.path, signal);
  const volumeSize = Math.max(1, Math.ceil(map.size / GIB));
  const blockCount = (volumeSize * GIB) / BLOCK_SIZE;
  const ebs = await ebsClient(options);
  const { StartSnapshotCommand, PutSnapshotBlockCommand, CompleteSnapshotCommand } = await import(
    "@aws-sdk/client-ebs"
  );
  const started = await ebs.send(
    new StartSnapshotCommand({
      VolumeSize: volumeSize,
      Description: options.description,
      Tags: Object.entries(options.tags ?? {}).map(([Key, Value]) => ({ Key, Value })),
      Timeout: options.timeoutMinutes ?? 60,
      ...(options.kmsKeyArn ? { Encrypted: true, KmsKeyArn: options.kmsKeyArn } : {}),
    }),
    { abortSignal: signal },
  );
  const snapshotId = started.SnapshotId;
  if (!snapshotId) throw new Error("EBS StartSnapshot answered without a SnapshotId");
  if (started.BlockSize !== undefined && started.BlockSize !== BLOCK_SIZE) {
    await deleteQuietly(snapshotId, options);
    throw new Error(
      `EBS snapshot ${snapshotId} has ${started.BlockSize}-byte blocks, not ${BLOCK_SIZE}`,
    );
  }
  options.onProgress?.(
    `snapshot ${snapshotId}: ${map.blocks.length} of ${blockCount} blocks hold data (${volumeSize} GiB volume)`,
  );
  try {
    await putBlocks(ebs, PutSnapshotBlockCommand, snapshotId, map.blocks, map.size, options);
    const checksum = linearChecksum(map.blocks);
    await ebs.send(
      new CompleteSnapshotCommand({
        SnapshotId: snapshotId,
        ChangedBlocksCount: map.blocks.length,
        Checksum: checksum,
        ChecksumAlgorithm: "SHA256",
        ChecksumAggregationMethod: "LINEAR",
      }),
      { abortSignal: signal },
    );
    await waitCompleted(snapshotId, options);
    return {
      snapshotId,
      volumeSize,
      blocksWritten: map.blocks.length,
      blockCount,
      checksum,
      mapDigest: mapDigest(map),
    };
  } catch (error) {
    const cleanup = await deleteQuietly(snapshotId, options);
    throw new Error(
      `uploading ${options.path} to EBS snapshot ${snapshotId} failed: ${describe(error)}; ${cleanup}`,
      { cause: error },
    );
  }
}

async function putBlocks(
  ebs: EBSClient,
  PutSnapshotBlockCommand: typeof import("@aws-sdk/client-ebs").PutSnapshotBlockCommand,
  snapshotId: string,
  blocks: readonly MappedBlock[],
  size: number,
  options: UploadOptions,
): Promise<void> {
  const stop = new AbortController();
  const abortOnSignal = () => stop.abort();
  options.signal?.addEventListener("abort", abortOnSignal, { once: true });
  const file = await open(options.path, "r");
  const progress = progressReporter(blocks.length, options.onProgress);
  try {
    await eachLimited(blocks, options.parallelism ?? DEFAULT_PARALLELISM, stop, async (block) => {
      stop.signal.throwIfAborted();
      const data = await readBlock(file, block.index, size);
      const checksum = sha256(data);
      // The file changed since it was mapped: sending it would mix two images.
      if (checksum !== block.sha256.toString("hex")) {
        throw new Error(
          `${options.path} changed while it was being uploaded (block ${block.index})`,
        );
      }
      await ebs.send(
        new PutSnapshotBlockCommand({
          SnapshotId: snapshotId,
          BlockIndex: block.index,
          BlockData: data,
          DataLength: BLOCK_SIZE,
          Checksum: block.sha256.toString("base64"),
          ChecksumAlgorithm: "SHA256",
        }),
        { abortSignal: stop.signal },
      );
      progress.add();
    });
    progress.add(true);
  } finally {
    options.signal?.removeEventListener("abort", abortOnSignal);
    await file.close();
  }
}

/** Polls DescribeSnapshots until the snapshot is `completed`; `error` or a timeout throws. */
async function waitCompleted(snapshotId: string, options: UploadOptions): Promise<void> {
  const ec2 = await ec2Client(options);
  const { DescribeSnapshotsCommand } = await import("@aws-sdk/client-ec2");
  const deadline = Date.now() + (options.completeTimeoutMs ?? 30 * 60_000);
  for (;;) {
    const answer = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }), {
      abortSignal: options.signal,
    });
    const snapshot = answer.Snapshots?.[0];
    if (snapshot?.State === "completed") return;
    if (snapshot?.State === "error") {
      throw new Error(
        `EBS marked the snapshot error: ${snapshot.StateMessage ?? "no reason given"}`,
      );
    }
    if (Date.now() > deadline) {
      throw new Error(`the snapshot is still ${snapshot?.State ?? "unlisted"} after the wait`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 2000));
    options.signal?.throwIfAborted();
  }
}

/** Whether AWS says the snapshot does not exist. */
function isNotFound(error: unknown): boolean {
  return error instanceof Error && error.name === "InvalidSnapshot.NotFound";
}

/** Deletes a snapshot; one that is already gone is fine. */
export async function deleteSnapshot(snapshotId: string, options: AwsOptions = {}): Promise<void> {
  const ec2 = await ec2Client(options);
  const { DeleteSnapshotCommand } = await import("@aws-sdk/client-ec2");
  try {
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
}

/** Deletes a failed upload's snapshot; says what happened, for the error message. */
async function deleteQuietly(snapshotId: string, options: AwsOptions): Promise<string> {
  try {
    await deleteSnapshot(snapshotId, options);
    return "the unfinished snapshot was deleted";
  } catch (error) {
    return `deleting the unfinished snapshot failed too (${describe(error)}): it was never completed, and EBS marks it error when its timeout passes; delete ${snapshotId} by hand`;
  }
}

/** The snapshot's state (`pending`, `completed`, `error`), or undefined when it does not exist. */
export async function snapshotState(
  snapshotId: string,
  options: AwsOptions = {},
): Promise<string | undefined> {
  const ec2 = await ec2Client(options);
  const { DescribeSnapshotsCommand } = await import("@aws-sdk/client-ec2");
  try {
    const answer = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }));
    return answer.Snapshots?.[0]?.State;
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}
