import * as pulumi from "@pulumi/pulumi";
import type { DiskImage } from "../disk-image";
import { awsSdk } from "../peers";
import type { Unikernel } from "../unikernel";
import { Ec2ConsoleWait } from "./console-wait";
import { hostLaunch } from "./host-service";
import { DEFAULT_INSTANCE_TYPE, instanceTypeProblem } from "./instance-types";
import { xenLaunch } from "./xen-ami";

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
   * The unikernel. Built for `target: "xen"`: a raw disk image (DiskImage format `aws`) is made
   * from it with `bootArgs` and becomes an AMI for Xen-based types. Built for `spt` or `hvt`
   * (give `tender`): it runs under its Solo5 tender on a Linux host instance of a current type.
   * Give exactly one of `unikernel` and `image`.
   */
  unikernel?: Unikernel;
  /**
   * For an spt or hvt unikernel: the path of its tender, `solo5-spt` or `solo5-hvt` (your opam
   * switch's, e.g. `$(opam var bin)/solo5-spt`), uploaded with the kernel. Giving it selects the
   * host path. Default: none (the xen AMI path).
   */
  tender?: pulumi.Input<string>;
  /**
   * With `tender`: wait, during `pulumi up`, until each instance's console output (EC2
   * GetConsoleOutput) matches `console`, a regular expression such as the unikernel's
   * `serving on port 8080` line; fails after `timeoutSeconds` (default 600) with the console's
   * last lines. Default: no wait.
   */
  waitFor?: { console: string; timeoutSeconds?: number };
  /** With `tender`: the host instance's AMI. Default: the latest official Debian 12 AMI. */
  hostAmi?: pulumi.Input<string>;
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
   * The EC2 instance type. A xen unikernel needs a Xen-based type (t2, m3, m4, c3, c4, r3, r4, x1,
   * x1e, i2, i3, d2, h1, g2, g3, g3s, p2, p3, f1), since Solo5 cannot drive Nitro's ENA and NVMe
   * devices; an spt host runs on any type; an hvt host needs nested virtualization (c8i, m8i,
   * r8i and their flex variants). Other types are refused at preview. Default: `t2.micro` (xen),
   * `t3.micro` (spt), `c8i.large` (hvt).
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
 * kernel) becomes an EBS snapshot (written directly, or imported from S3), registered as an HVM
 * legacy-BIOS AMI and launched on Xen-based instance types, whose HVM guests boot the disk's own
 * bootloader.
 */
export class UnikernelService extends pulumi.ComponentResource {
  /** The xen path's disk image. */
  declare readonly image: DiskImage | undefined;
  /** The xen path's EBS snapshot, which the AMI is made of. */
  declare readonly snapshotId: pulumi.Output<string | undefined>;
  /** The S3 bucket: the host path's (kernel and tender), or the xen path's with `snapshotVia: "s3"`. */
  declare readonly bucketName: pulumi.Output<string | undefined>;
  /** The AMI the instances run: the registered xen AMI, or the host's Linux AMI. */
  declare readonly amiId: pulumi.Output<string>;
  declare readonly instanceIds: pulumi.Output<string[]>;
  declare readonly publicIps: pulumi.Output<string[]>;
  /** The boot check, when `waitFor` is set: depend on it to act once the unikernels run. */
  declare readonly bootCheck: Ec2ConsoleWait | undefined;
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
    const host = args.tender !== undefined;
    if (host && args.unikernel === undefined) {
      throw new Error(
        `aws.UnikernelService ${name}: tender runs a unikernel (spt or hvt) on a host instance; give unikernel, not image`,
      );
    }
    if (args.waitFor && !host) {
      throw new Error(
        `aws.UnikernelService ${name}: waitFor needs a host service (tender): Solo5 xen prints nothing on EC2's console`,
      );
    }
    const typeProblem = host
      ? undefined
      : instanceTypeProblem(args.instanceType ?? DEFAULT_INSTANCE_TYPE);
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

    const launch = host
      ? hostLaunch(
          name,
          {
            unikernel: args.unikernel as Unikernel,
            tender: args.tender as pulumi.Input<string>,
            bootArgs: args.bootArgs ?? [],
            ports,
            instanceType: args.instanceType,
            hostAmi: args.hostAmi,
            tags,
          },
          this,
        )
      : xenLaunch(name, { ...args, via, rootDeviceName, tags }, this);

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
            ami: launch.ami,
            ...(launch.kind === "host"
              ? {
                  instanceType: launch.instanceType,
                  userData: launch.userData,
                  // New user data (a new kernel or tender) is a new instance, made before the old goes.
                  userDataReplaceOnChange: true,
                  iamInstanceProfile: launch.iamInstanceProfile,
                  cpuOptions: { nestedVirtualization: launch.nestedVirtualization },
                  metadataOptions: { httpTokens: "required", httpEndpoint: "enabled" },
                }
              : { instanceType: args.instanceType ?? DEFAULT_INSTANCE_TYPE }),
            subnetId: args.subnetId,
            vpcSecurityGroupIds: [securityGroup.id],
            associatePublicIpAddress: args.associatePublicIpAddress ?? true,
            tags: { Name: instanceCount === 1 ? name : `${name}-${i}`, ...tags },
          },
          child,
        ),
    );

    this.image = launch.kind === "xen" ? launch.image : undefined;
    this.snapshotId = launch.kind === "xen" ? launch.snapshotId : pulumi.output(undefined);
    this.bucketName = launch.bucketName;
    this.amiId = launch.ami;
    this.instanceIds = pulumi.all(instances.map((i) => i.id));
    this.publicIps = pulumi.all(instances.map((i) => i.publicIp));
    this.consoleOutputCommands = pulumi.all(
      instances.map(
        (i) =>
          pulumi.interpolate`aws ec2 get-console-output --region ${i.region} --instance-id ${i.id} --latest --output text`,
      ),
    );
    this.bootCheck = args.waitFor
      ? new Ec2ConsoleWait(
          `${name}-boot`,
          {
            instances: this.instanceIds,
            pattern: args.waitFor.console,
            timeoutSeconds: args.waitFor.timeoutSeconds ?? 600,
            region: instances[0].region,
          },
          child,
        )
      : undefined;
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
