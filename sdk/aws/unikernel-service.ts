import { createHash } from "node:crypto";
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { DiskImage } from "../disk-image";
import type { Unikernel } from "../unikernel";
import { EbsSnapshot } from "./ebs-snapshot";
import { DEFAULT_INSTANCE_TYPE, instanceTypeProblem } from "./instance-types";
import { importViaS3 } from "./s3-import";

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
  /**
   * How the disk becomes an EBS snapshot. `ebs`: written directly with the EBS direct APIs, only
   * its non-zero blocks, in seconds, with no bucket and no role (an `EbsSnapshot`). `s3`: uploaded
   * whole to S3 and imported by VM Import (ImportSnapshot; slow, needs a `vmimport` role).
   * Default: `ebs`.
   */
  snapshotVia?: "ebs" | "s3";
  /** Encrypt the `ebs` snapshot with this KMS key (its ARN). Default: the account's EBS default. */
  kmsKeyArn?: pulumi.Input<string>;
  /** With `snapshotVia: "s3"`: an existing S3 bucket to upload the disk into. Default: one is created. */
  bucket?: pulumi.Input<string>;
  /**
   * With `snapshotVia: "s3"`: the name of an existing VM Import service role. Default: a role is
   * created, trusted only by `vmie.amazonaws.com` (with `sts:ExternalId` `vmimport`) and allowed
   * only to read the bucket and register the imported snapshot.
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
 * The AMI's name: unique per snapshot and AMI settings, since AMI names are unique per region and
 * a replacement creates the new AMI before it deletes the old one. Readable: the service and the
 * image's content-addressed name come first.
 */
export function amiName(
  service: string,
  objectName: string,
  snapshotId: string,
  rootDeviceName: string,
): string {
  const hash = createHash("sha256")
    .update(JSON.stringify([snapshotId, rootDeviceName]))
    .digest("hex")
    .slice(0, 12);
  const readable = `${service}-${objectName.replace(/\.raw$/, "")}`.replace(
    /[^A-Za-z0-9()[\]./'@_-]/g,
    "-",
  );
  return `${readable.slice(0, 128 - 13)}-${hash}`;
}

/**
 * A MirageOS xen unikernel on EC2 (experimental): its raw disk (GRUB multiboot of the `.xen`
 * kernel) becomes an EBS snapshot (written directly, or imported from S3), registered as an HVM
 * legacy-BIOS AMI and launched on Xen-based instance types, whose HVM guests boot the disk's own
 * bootloader.
 */
export class UnikernelService extends pulumi.ComponentResource {
  /** The disk image uploaded and imported. */
  declare readonly image: DiskImage;
  /** The EBS snapshot the AMI is made of. */
  declare readonly snapshotId: pulumi.Output<string>;
  /** With `snapshotVia: "s3"`: the S3 bucket holding the disk. */
  declare readonly bucketName: pulumi.Output<string | undefined>;
  /** The registered AMI's id. */
  declare readonly amiId: pulumi.Output<string>;
  declare readonly instanceIds: pulumi.Output<string[]>;
  declare readonly publicIps: pulumi.Output<string[]>;
  /** The AWS CLI commands that print each instance's console output. */
  declare readonly consoleOutputCommands: pulumi.Output<string[]>;

  constructor(name: string, args: UnikernelServiceArgs, opts?: pulumi.ComponentResourceOptions) {
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
    const via = args.snapshotVia ?? "ebs";
    if (via !== "ebs" && via !== "s3") {
      throw new Error(
        `aws.UnikernelService ${name}: snapshotVia must be "ebs" or "s3", not ${JSON.stringify(via)}`,
      );
    }
    for (const s3Only of ["bucket", "vmimportRoleName"] as const) {
      if (via === "ebs" && args[s3Only] !== undefined) {
        throw new Error(
          `aws.UnikernelService ${name}: ${s3Only} is used only with snapshotVia: "s3" (the default, "ebs", writes the snapshot directly, with no bucket or role); set snapshotVia: "s3" or remove ${s3Only}`,
        );
      }
    }
    if (via === "s3" && args.kmsKeyArn !== undefined) {
      throw new Error(
        `aws.UnikernelService ${name}: kmsKeyArn is used only with snapshotVia: "ebs"; remove it or use the default`,
      );
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
    const key = pulumi.all([image.format, image.objectName]).apply(([format, objectName]) => {
      if (format !== "aws") {
        throw new Error(
          `aws.UnikernelService ${name}: image must be a DiskImage of format "aws", not "${format}"`,
        );
      }
      return objectName;
    });
    const { snapshotId, bucketName } =
      via === "s3"
        ? importViaS3(
            name,
            {
              key,
              path: image.path,
              bucket: args.bucket,
              vmimportRoleName: args.vmimportRoleName,
              tags,
            },
            this,
          )
        : {
            snapshotId: new EbsSnapshot(
              `${name}-snapshot`,
              {
                image,
                description: pulumi.interpolate`pulumi-mirage ${key}`,
                tags,
                kmsKeyArn: args.kmsKeyArn,
                // The region the AMI is registered in (the aws provider's), not only the SDK's.
                region: aws.getRegionOutput({}, child).region,
              },
              child,
            ).snapshotId,
            bucketName: pulumi.output(undefined),
          };

    const ami = new aws.ec2.Ami(
      `${name}-ami`,
      {
        name: pulumi
          .all([key, snapshotId])
          .apply(([objectName, id]) => amiName(name, objectName, id, rootDeviceName)),
        description: pulumi.interpolate`pulumi-mirage: MirageOS xen unikernel ${key}`,
        // The default, paravirtual, would ignore the disk's bootloader.
        virtualizationType: "hvm",
        bootMode: "legacy-bios",
        architecture: "x86_64",
        rootDeviceName,
        ebsBlockDevices: [
          {
            deviceName: rootDeviceName,
            snapshotId,
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
    this.snapshotId = snapshotId;
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
      snapshotId: this.snapshotId,
      bucketName: this.bucketName,
      amiId: this.amiId,
      instanceIds: this.instanceIds,
      publicIps: this.publicIps,
      consoleOutputCommands: this.consoleOutputCommands,
    });
  }
}
