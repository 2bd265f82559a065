// The S3 + ImportSnapshot chain (UnikernelService's `ami.snapshot.via: "s3"`): the raw disk
// is uploaded whole to S3 and VM Import turns it into a snapshot, through a `vmimport` service
// role. Slow (15+ minutes are reported) and it sends the whole disk; kept for accounts where the
// EBS direct APIs are not allowed.
import * as pulumi from "@pulumi/pulumi";
import { awsSdk } from "../peers";
import { COMPONENT } from "./resolve";

export interface S3ImportArgs {
  /** The image's content-addressed name: the object key. */
  key: pulumi.Output<string>;
  /** The raw disk. */
  path: pulumi.Output<string>;
  /** An existing bucket. Default: one is created. */
  bucket?: pulumi.Input<string>;
  /** An existing VM Import role. Default: one is created, scoped to the bucket. */
  vmimportRoleName?: pulumi.Input<string>;
  tags: Record<string, pulumi.Input<string>>;
}

/** The snapshot id and bucket of an S3 import made under `parent`. */
export function importViaS3(
  name: string,
  args: S3ImportArgs,
  parent: pulumi.Resource,
): { snapshotId: pulumi.Output<string>; bucketName: pulumi.Output<string> } {
  const aws = awsSdk(COMPONENT);
  const child = { parent };
  const { key, tags } = args;
  const bucketName =
    args.bucket !== undefined
      ? pulumi.output(args.bucket)
      : new aws.s3.Bucket(`${name}-images`, { tags }, child).bucket;
  // The object key is the image's content-addressed name: a new image is a new object, and an
  // unchanged one uploads nothing.
  const object = new aws.s3.BucketObject(
    `${name}-disk`,
    {
      bucket: bucketName,
      key,
      source: args.path.apply((path) => new pulumi.asset.FileAsset(path)),
      contentType: "application/octet-stream",
      tags,
    },
    child,
  );
  const roleName = args.vmimportRoleName ?? vmimportRole(name, bucketName, tags, parent);
  const snapshot = new aws.ebs.SnapshotImport(
    `${name}-snapshot`,
    {
      diskContainer: {
        format: "RAW",
        userBucket: { s3Bucket: object.bucket, s3Key: object.key },
      },
      roleName,
      description: pulumi.interpolate`pulumi-mirage ${key}`,
      tags,
    },
    child,
  );
  return { snapshotId: snapshot.id, bucketName };
}

/** The VM Import service role, allowed only to read `bucket` and register what it imports. */
function vmimportRole(
  name: string,
  bucket: pulumi.Output<string>,
  tags: Record<string, pulumi.Input<string>>,
  parent: pulumi.Resource,
): pulumi.Output<string> {
  const aws = awsSdk(COMPONENT);
  const child = { parent };
  const role = new aws.iam.Role(
    `${name}-vmimport`,
    {
      description: "pulumi-mirage: lets VM Import/Export read the unikernel disk from S3",
      assumeRolePolicy: pulumi.jsonStringify({
        Version: "2012-10-17",
        Statement: [
          {
            Effect: "Allow",
            Principal: { Service: "vmie.amazonaws.com" },
            Action: "sts:AssumeRole",
            Condition: { StringEquals: { "sts:ExternalId": "vmimport" } },
          },
        ],
      }),
      tags,
    },
    child,
  );
  const partition = aws.getPartitionOutput({}, child).partition;
  const policy = new aws.iam.RolePolicy(
    `${name}-vmimport`,
    {
      role: role.id,
      policy: pulumi.jsonStringify({
        Version: "2012-10-17",
        Statement: [
          {
            Effect: "Allow",
            Action: ["s3:GetBucketLocation", "s3:ListBucket"],
            Resource: pulumi.interpolate`arn:${partition}:s3:::${bucket}`,
          },
          {
            Effect: "Allow",
            Action: ["s3:GetObject"],
            Resource: pulumi.interpolate`arn:${partition}:s3:::${bucket}/*`,
          },
          {
            Effect: "Allow",
            Action: [
              "ec2:ModifySnapshotAttribute",
              "ec2:CopySnapshot",
              "ec2:RegisterImage",
              "ec2:Describe*",
            ],
            Resource: "*",
          },
        ],
      }),
    },
    child,
  );
  // The import may start only once the role may read the bucket.
  return pulumi.all([role.name, policy.id]).apply(([roleName]) => roleName);
}
