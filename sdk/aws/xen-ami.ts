// The AMI graph of UnikernelService for xen unikernels: the raw disk becomes an EBS snapshot
// (written directly through the EBS direct APIs by default, or uploaded to S3 and imported), then
// an HVM legacy-BIOS AMI that Xen-based instance types boot through the disk's own GRUB.
import * as pulumi from "@pulumi/pulumi";
import { sha256 } from "../../provider/core/hash";
import { DiskImage } from "../disk-image";
import { awsSdk } from "../peers";
import { refusal } from "../refuse";
import { EbsSnapshot } from "./ebs-snapshot";
import type { AmiSpec } from "./resolve";
import { COMPONENT } from "./resolve";
import { importViaS3 } from "./s3-import";

export interface XenArgs extends AmiSpec {
  bootArgs: pulumi.Input<pulumi.Input<string>[]>;
  tags: Record<string, pulumi.Input<string>>;
}

export interface XenLaunch {
  kind: "xen";
  instanceType: string;
  image: DiskImage;
  snapshotId: pulumi.Output<string>;
  bucketName: pulumi.Output<string | undefined>;
  ami: pulumi.Output<string>;
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
  const hash = sha256(JSON.stringify([snapshotId, rootDeviceName])).slice(0, 12);
  const readable = `${service}-${objectName.replace(/\.raw$/, "")}`.replace(
    /[^A-Za-z0-9()[\]./'@_-]/g,
    "-",
  );
  return `${readable.slice(0, 128 - 13)}-${hash}`;
}

export function xenLaunch(name: string, args: XenArgs, parent: pulumi.Resource): XenLaunch {
  const aws = awsSdk(COMPONENT);
  const child = { parent };
  const { snapshot, rootDeviceName, tags } = args;
  const image =
    "image" in args.disk
      ? args.disk.image
      : new DiskImage(
          `${name}-image`,
          { kernel: args.disk.unikernel, format: "aws", bootArgs: args.bootArgs },
          child,
        );
  const key = pulumi.all([image.format, image.objectName]).apply(([format, objectName]) => {
    if (format !== "aws") {
      const reason = `must be a DiskImage of format "aws", not "${format}"`;
      throw refusal(COMPONENT, name, [{ property: "ami.image", reason }]);
    }
    return objectName;
  });
  const { snapshotId, bucketName } =
    snapshot.via === "s3"
      ? importViaS3(
          name,
          {
            key,
            path: image.path,
            bucket: snapshot.bucket,
            vmimportRoleName: snapshot.vmimportRoleName,
            tags,
          },
          parent,
        )
      : {
          snapshotId: new EbsSnapshot(
            `${name}-snapshot`,
            {
              image,
              description: pulumi.interpolate`pulumi-mirage ${key}`,
              tags,
              kmsKeyArn: snapshot.kmsKeyArn,
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

  return {
    kind: "xen",
    instanceType: args.instanceType,
    image,
    snapshotId,
    bucketName,
    ami: ami.id,
  };
}
