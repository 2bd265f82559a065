import * as pulumi from "@pulumi/pulumi";
import { DiskImage } from "../disk-image";
import { awsSdk } from "../peers";
import type { Unikernel } from "../unikernel";
import { DEFAULT_INSTANCE_TYPE, instanceTypeProblem } from "./instance-types";

/** A port the unikernel serves, opened in its security group. */
export interface ServicePort {
  port: number;
  /** Default: `tcp`. */
  protocol?: "tcp" | "udp";
  /** Who may connect. Default: anyone, `["0.0.0.0/0"]`. */
  cidrBlocks?: string[];
}

export interface UnikernelServiceArgs {
  /**
   * The unikernel, built for `target: "xen"`; a raw disk image (DiskImage format `aws`) is made
   * from it with `bootArgs`. Give exactly one of `unikernel` and `image`.
   */
  unikernel?: Unikernel;
  /** Arguments the unikernel receives at boot (with `unikernel`). Default: none. */
  bootArgs?: pulumi.Input<pulumi.Input<string>[]>;
  /** A DiskImage of format `aws` to use instead of making one from `unikernel`. */
  image?: DiskImage;
  /** An existing S3 bucket to upload the disk into. Default: a bucket is created. */
  bucket?: pulumi.Input<string>;
  /**
   * The name of an existing VM Import service role. Default: a role is created, trusted only by
   * `vmie.amazonaws.com` (with `sts:ExternalId` `vmimport`) and allowed only to read the bucket
   * and register the imported snapshot.
   */
  vmimportRoleName?: pulumi.Input<string>;
  /**
   * The EC2 instance type: a Xen-based type (t2, m3, m4, c3, c4, r3, r4, x1, x1e, i2, i3, d2, h1,
   * g2, g3, g3s, p2, p3, f1), since Solo5 cannot drive Nitro's ENA and NVMe devices. Other types
   * are refused at preview. Default: `t2.micro`.
   */
  instanceType?: string;
  /** How many instances to run from the image. Default: 1. */
  instanceCount?: number;
  /**
   * The ports to open to the instances (a number is a TCP port open to anyone); no other inbound
   * traffic is allowed. Default: none.
   */
  ports?: (number | ServicePort)[];
  /** The subnet to launch into. Default: the default VPC's default subnet. */
  subnetId?: pulumi.Input<string>;
  /** The VPC of the security group; must contain `subnetId`. Default: the default VPC. */
  vpcId?: pulumi.Input<string>;
  /** Give the instances public IP addresses. Default: true. */
  associatePublicIpAddress?: boolean;
  /** The AMI's root device name. Default: `/dev/xvda`. */
  rootDeviceName?: string;
  /** Tags for every AWS resource created. Default: none. */
  tags?: Record<string, pulumi.Input<string>>;
}

/**
 * A MirageOS xen unikernel on EC2 (experimental): its raw disk (GRUB multiboot of the `.xen`
 * kernel) is uploaded to S3, imported as an EBS snapshot, registered as an HVM legacy-BIOS AMI and
 * launched on Xen-based instance types. EC2 boots HVM guests through the disk's own bootloader;
 * that a Solo5 xen kernel (PVH-only) boots this way inside a Xen HVM guest is unverified, so
 * prefer `xen.Domain` on your own Xen host.
 */
export class UnikernelService extends pulumi.ComponentResource {
  /** The disk image uploaded and imported. */
  declare readonly image: DiskImage;
  /** The S3 bucket holding the disk. */
  declare readonly bucketName: pulumi.Output<string>;
  /** The registered AMI's id. */
  declare readonly amiId: pulumi.Output<string>;
  declare readonly instanceIds: pulumi.Output<string[]>;
  declare readonly publicIps: pulumi.Output<string[]>;
  /** The AWS CLI commands that print each instance's console output. */
  declare readonly consoleOutputCommands: pulumi.Output<string[]>;

  constructor(name: string, args: UnikernelServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    const aws = awsSdk("aws.UnikernelService");
    super("pulumi-mirage:aws:UnikernelService", name, {}, opts);
    // Argument mistakes are found before anything is created, so preview shows them.
    if ((args.unikernel === undefined) === (args.image === undefined)) {
      throw new Error(
        `aws.UnikernelService ${name}: give exactly one of unikernel (a Unikernel built for target "xen") and image (a DiskImage of format "aws")`,
      );
    }
    const instanceType = args.instanceType ?? DEFAULT_INSTANCE_TYPE;
    const typeProblem = instanceTypeProblem(instanceType);
    if (typeProblem) throw new Error(`aws.UnikernelService ${name}: ${typeProblem}`);
    const instanceCount = args.instanceCount ?? 1;
    if (!Number.isInteger(instanceCount) || instanceCount < 1) {
      throw new Error(
        `aws.UnikernelService ${name}: instanceCount must be a whole number, at least 1, not ${instanceCount}`,
      );
    }
    const ports = (args.ports ?? []).map((p) => (typeof p === "number" ? { port: p } : p));
    for (const p of ports) {
      if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) {
        throw new Error(
          `aws.UnikernelService ${name}: ports: ${JSON.stringify(p.port)} is not a port number (1-65535)`,
        );
      }
    }
    const rootDeviceName = args.rootDeviceName ?? "/dev/xvda";
    const tags = args.tags ?? {};
    const child = { parent: this };

    const image =
      args.image ??
      new DiskImage(
        `${name}-image`,
        { kernel: args.unikernel as Unikernel, format: "aws", bootArgs: args.bootArgs },
        child,
      );
    // The object key is the image's content-addressed name: a new image is a new object, and an
    // unchanged one uploads nothing.
    const key = pulumi.all([image.format, image.objectName]).apply(([format, objectName]) => {
      if (format !== "aws") {
        throw new Error(
          `aws.UnikernelService ${name}: image must be a DiskImage of format "aws", not "${format}"`,
        );
      }
      return objectName;
    });

    const bucketName =
      args.bucket !== undefined
        ? pulumi.output(args.bucket)
        : new aws.s3.Bucket(`${name}-images`, { tags }, child).bucket;
    const object = new aws.s3.BucketObject(
      `${name}-disk`,
      {
        bucket: bucketName,
        key,
        source: image.path.apply((path) => new pulumi.asset.FileAsset(path)),
        contentType: "application/octet-stream",
        tags,
      },
      child,
    );

    const roleName = args.vmimportRoleName ?? this.vmimportRole(name, bucketName, tags);
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

    const ami = new aws.ec2.Ami(
      `${name}-ami`,
      {
        name: pulumi.interpolate`${name}-${key}`,
        description: pulumi.interpolate`pulumi-mirage: MirageOS xen unikernel ${key}`,
        // The default, paravirtual, would ignore the disk's bootloader.
        virtualizationType: "hvm",
        bootMode: "legacy-bios",
        architecture: "x86_64",
        rootDeviceName,
        ebsBlockDevices: [
          {
            deviceName: rootDeviceName,
            snapshotId: snapshot.id,
            volumeType: "gp3",
            deleteOnTermination: true,
          },
        ],
        // Solo5 has no ENA driver.
        enaSupport: false,
        tags,
      },
      child,
    );

    const securityGroup = new aws.ec2.SecurityGroup(
      `${name}-ports`,
      {
        description: "pulumi-mirage: the unikernel's declared ports",
        vpcId: args.vpcId,
        ingress: ports.map((p) => ({
          protocol: p.protocol ?? "tcp",
          fromPort: p.port,
          toPort: p.port,
          cidrBlocks: p.cidrBlocks ?? ["0.0.0.0/0"],
        })),
        egress: [{ protocol: "-1", fromPort: 0, toPort: 0, cidrBlocks: ["0.0.0.0/0"] }],
        tags,
      },
      child,
    );

    const instances = Array.from(
      { length: instanceCount },
      (_, i) =>
        new aws.ec2.Instance(
          instanceCount === 1 ? `${name}-instance` : `${name}-instance-${i}`,
          {
            ami: ami.id,
            instanceType,
            subnetId: args.subnetId,
            vpcSecurityGroupIds: [securityGroup.id],
            associatePublicIpAddress: args.associatePublicIpAddress ?? true,
            tags: { Name: instanceCount === 1 ? name : `${name}-${i}`, ...tags },
          },
          child,
        ),
    );

    this.image = image;
    this.bucketName = bucketName;
    this.amiId = ami.id;
    this.instanceIds = pulumi.all(instances.map((i) => i.id));
    this.publicIps = pulumi.all(instances.map((i) => i.publicIp));
    this.consoleOutputCommands = pulumi.all(
      instances.map(
        (i) =>
          pulumi.interpolate`aws ec2 get-console-output --region ${i.region} --instance-id ${i.id} --latest --output text`,
      ),
    );
    this.registerOutputs({
      bucketName: this.bucketName,
      amiId: this.amiId,
      instanceIds: this.instanceIds,
      publicIps: this.publicIps,
      consoleOutputCommands: this.consoleOutputCommands,
    });
  }

  /** The VM Import service role, allowed only to read `bucket` and register what it imports. */
  private vmimportRole(
    name: string,
    bucket: pulumi.Output<string>,
    tags: Record<string, pulumi.Input<string>>,
  ): pulumi.Output<string> {
    const aws = awsSdk("aws.UnikernelService");
    const child = { parent: this };
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
}
