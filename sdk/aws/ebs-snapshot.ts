import * as pulumi from "@pulumi/pulumi";
import type { DiskImage } from "../disk-image";
import { engineProvider } from "../engine";

export interface EbsSnapshotArgs {
  /** The raw disk image to write (a DiskImage of format `aws` or `raw`). */
  image: DiskImage;
  /** The snapshot's description. Default: `pulumi-mirage disk image OBJECT_NAME` (the image file's name). */
  description?: pulumi.Input<string>;
  /** Tags for the snapshot. Default: none. */
  tags?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** Encrypt the snapshot with this KMS key (its ARN). Default: the account's EBS default. */
  kmsKeyArn?: pulumi.Input<string>;
  /** The region. Default: the AWS SDK's (AWS_REGION, the profile's region, ...). */
  region?: pulumi.Input<string>;
}

/**
 * A disk image as an EBS snapshot, written in seconds through the EBS direct APIs: only its
 * non-zero 512 KiB blocks are sent, each checksummed, and EBS checks the whole against their
 * aggregate before it completes the snapshot. Credentials come from the AWS SDK's standard
 * chain. A new image writes a new snapshot; deleting the resource deletes the snapshot.
 */
export class EbsSnapshot extends pulumi.dynamic.Resource {
  declare readonly snapshotId: pulumi.Output<string>;
  /** The volume size in GiB. */
  declare readonly volumeSize: pulumi.Output<number>;
  /** Blocks sent (the non-zero ones) and blocks in the volume. */
  declare readonly blocksWritten: pulumi.Output<number>;
  declare readonly blockCount: pulumi.Output<number>;

  constructor(name: string, args: EbsSnapshotArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      engineProvider("ebs-snapshot"),
      name,
      {
        imagePath: args.image.path,
        imageSha256: args.image.sha256,
        description: args.description,
        tags: args.tags,
        kmsKeyArn: args.kmsKeyArn,
        region: args.region,
        resourceName: name,
        snapshotId: undefined,
        volumeSize: undefined,
        blocksWritten: undefined,
        blockCount: undefined,
        checksum: undefined,
        mapDigest: undefined,
      },
      opts,
      "pulumi-mirage",
      "EbsSnapshot",
    );
  }
}
