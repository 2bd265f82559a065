// The engine side of `aws.EbsSnapshot` (sdk/aws/ebs-snapshot.ts): a raw disk image written into
// an EBS snapshot through the EBS direct APIs (provider/aws/ebs-snapshot.ts). Any input change
// writes a new snapshot (new before old: an AMI may still use the old one); delete removes it.
import { basename } from "node:path";
import type * as pulumi from "@pulumi/pulumi";
import { given, isKnown } from "../../rules/values";
import {
  deleteSnapshot,
  snapshotState,
  type UploadedSnapshot,
  uploadSnapshot,
} from "../aws/ebs-snapshot";
import { changedKeys } from "./inputs";

export interface EbsSnapshotInputs {
  /** The raw disk image (a DiskImage's path). */
  imagePath: string;
  /** The image's sha256: a new image is a new snapshot. */
  imageSha256: string;
  description?: string;
  tags?: Record<string, string>;
  kmsKeyArn?: string;
  region?: string;
  resourceName?: string;
}

export interface EbsSnapshotOutputs extends EbsSnapshotInputs, UploadedSnapshot {}

const INPUTS = ["imagePath", "imageSha256", "description", "tags", "kmsKeyArn", "region"] as const;

type Failure = pulumi.dynamic.CheckFailure;

function checkTags(tags: unknown, failures: Failure[]): void {
  if (tags === undefined || !isKnown(tags)) return;
  if (typeof tags !== "object" || tags === null || Array.isArray(tags)) {
    failures.push({ property: "tags", reason: "must be a map of tag names to strings" });
    return;
  }
  for (const [key, value] of Object.entries(tags)) {
    if (isKnown(value) && typeof value !== "string") {
      failures.push({ property: "tags", reason: `tag ${JSON.stringify(key)} must be a string` });
    }
  }
}

async function check(_olds: Record<string, unknown>, news: Record<string, unknown>) {
  const failures: Failure[] = [];
  for (const key of ["imagePath", "imageSha256"] as const) {
    if (!given(news[key])) {
      failures.push({
        property: key,
        reason: "is required: give the DiskImage (format aws or raw)",
      });
    }
  }
  const arn = news.kmsKeyArn;
  if (
    given(arn) &&
    isKnown(arn) &&
    !/^arn:aws[a-z-]*:kms:[^:]+:\d{12}:(key|alias)\/.+$/.test(String(arn))
  ) {
    failures.push({
      property: "kmsKeyArn",
      reason: `${JSON.stringify(arn)} is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)`,
    });
  }
  const region = news.region;
  if (given(region) && isKnown(region) && !/^[a-z]{2}(-[a-z]+)+-\d$/.test(String(region))) {
    failures.push({
      property: "region",
      reason: `${JSON.stringify(region)} is not an AWS region name (e.g. eu-west-1)`,
    });
  }
  checkTags(news.tags, failures);
  const inputs: Record<string, unknown> = {};
  for (const key of [...INPUTS, "resourceName"])
    if (news[key] !== undefined) inputs[key] = news[key];
  return { inputs, failures };
}

async function diff(
  _id: string,
  olds: EbsSnapshotOutputs,
  news: EbsSnapshotInputs,
): Promise<pulumi.dynamic.DiffResult> {
  const replaces = changedKeys(
    olds as unknown as Record<string, unknown>,
    news as unknown as Record<string, unknown>,
    INPUTS,
  );
  return { changes: replaces.length > 0, replaces, deleteBeforeReplace: false };
}

async function create(inputs: EbsSnapshotInputs): Promise<pulumi.dynamic.CreateResult> {
  const label = `[ebs-snapshot ${inputs.resourceName ?? basename(inputs.imagePath)}]`;
  const started = Date.now();
  const uploaded = await uploadSnapshot({
    path: inputs.imagePath,
    // The image's name, not its hash: a secret boot argument makes the hash secret.
    description: inputs.description ?? `pulumi-mirage disk image ${basename(inputs.imagePath)}`,
    tags: inputs.tags,
    kmsKeyArn: inputs.kmsKeyArn,
    region: inputs.region,
    onProgress: (line) => console.log(`${label} ${line}`),
  });
  console.log(
    `${label} ${uploaded.snapshotId} completed: ${uploaded.blocksWritten} blocks in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  const outs: EbsSnapshotOutputs = { ...inputs, ...uploaded };
  return { id: uploaded.snapshotId, outs };
}

export const provider = {
  check,
  diff,
  create,
  /** A snapshot deleted outside Pulumi reads as gone, so a refresh drops it. */
  read: async (id: string, props: EbsSnapshotOutputs): Promise<pulumi.dynamic.ReadResult> => {
    const state = await snapshotState(id, { region: props?.region });
    return state === undefined ? { id: "", props: {} } : { id, props };
  },
  // Every input change replaces (diff), so an update never happens; keep the state as it is.
  update: async (_id: string, olds: EbsSnapshotOutputs): Promise<pulumi.dynamic.UpdateResult> => ({
    outs: olds,
  }),
  delete: async (id: string, props: EbsSnapshotOutputs): Promise<void> => {
    await deleteSnapshot(id, { region: props.region });
  },
};
