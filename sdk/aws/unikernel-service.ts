import * as pulumi from "@pulumi/pulumi";
import type { Protocol } from "../../rules/ports";
import type { WaitFor } from "../../rules/wait";
import type { DiskImage } from "../disk-image";
import { awsSdk } from "../peers";
import type { Unikernel } from "../unikernel";
import { Ec2ConsoleWait } from "./console-wait";
import { type HostLaunch, hostLaunch } from "./host-service";
import { COMPONENT, resolveArgs, type ServiceSpec } from "./resolve";
import { type XenLaunch, xenLaunch } from "./xen-ami";

/** A port the unikernel serves, opened in its security group. */
export interface ServicePort {
  port: number;
  /** Default: `tcp`. */
  protocol?: Protocol;
  /** Who may connect. Default: anyone, `["0.0.0.0/0"]`. */
  cidrBlocks?: string[];
}

/** The host path's options: an spt or hvt unikernel under its Solo5 tender on a Linux instance. */
export interface HostArgs {
  /**
   * The path of the unikernel's tender, `solo5-spt` or `solo5-hvt` (your opam switch's, e.g.
   * `$(opam var bin)/solo5-spt`), uploaded with the kernel.
   */
  tender: pulumi.Input<string>;
  /** The host instance's AMI. Default: the latest official Debian 12 AMI. */
  amiId?: pulumi.Input<string>;
  /**
   * Wait, during `pulumi up`, until each instance's console output (EC2 GetConsoleOutput)
   * matches `console`, a regular expression such as the unikernel's `serving on port 8080` line;
   * fails after `timeoutSeconds` (default 600, at most 2147483) with the console's last lines.
   * Default: no wait.
   */
  waitFor?: WaitFor;
}

/**
 * How the disk becomes an EBS snapshot. `ebs`: written directly with the EBS direct APIs, only its
 * non-zero blocks, in seconds, with no bucket and no role (an `EbsSnapshot`), encrypted with
 * `kmsKeyArn` (default: the account's EBS default). `s3`: uploaded whole to S3 and imported by VM
 * Import (ImportSnapshot; slow), into `bucket` (default: one is created) through the VM Import
 * service role `vmimportRoleName` (default: a role is created, trusted only by
 * `vmie.amazonaws.com` with `sts:ExternalId` `vmimport`, allowed only to read the bucket and
 * register the imported snapshot).
 */
export type SnapshotArgs =
  | { via?: "ebs"; kmsKeyArn?: pulumi.Input<string> }
  | { via: "s3"; bucket?: pulumi.Input<string>; vmimportRoleName?: pulumi.Input<string> };

/** The AMI path's options: a xen unikernel's raw disk as an AMI (experimental). */
export interface AmiArgs {
  /**
   * A DiskImage of format `aws` to use instead of making one from `unikernel` (give no
   * `unikernel` or `bootArgs` then). Default: one is made from `unikernel` and `bootArgs`.
   */
  image?: DiskImage;
  /** How the disk becomes an EBS snapshot. Default: `{ via: "ebs" }`. */
  snapshot?: SnapshotArgs;
  /** The AMI's root device name. Default: `/dev/xvda`. */
  rootDeviceName?: string;
}

export interface UnikernelServiceArgs {
  /**
   * The unikernel: built for `spt` or `hvt` with `host`, for `xen` with `ami` (or give
   * `ami.image` instead).
   */
  unikernel?: Unikernel;
  /** Arguments the unikernel receives at boot. Default: none. */
  bootArgs?: pulumi.Input<pulumi.Input<string>[]>;
  /**
   * Run the unikernel (spt or hvt) under its Solo5 tender on a Linux host instance of a current
   * type. Give exactly one of `host` and `ami`.
   */
  host?: HostArgs;
  /**
   * Boot the unikernel's (xen) raw disk as an HVM legacy-BIOS AMI on Xen-based types
   * (experimental); `ami: {}` takes every default. Give exactly one of `host` and `ami`.
   */
  ami?: AmiArgs;
  /**
   * The EC2 instance type. With `ami`, a Xen-based type (t2, m3, m4, c3, c4, r3, r4, x1, x1e, i2,
   * i3, d2, h1, g2, g3, g3s, p2, p3, f1), since Solo5 cannot drive Nitro's ENA and NVMe devices;
   * with `host`, any type for spt, and for hvt one with nested virtualization (c8i, m8i, r8i and
   * their flex variants). Other types are refused at preview. Default: `t2.micro` (ami),
   * `t3.micro` (spt host), `c8i.large` (hvt host).
   */
  instanceType?: string;
  /** How many instances to run. Default: 1. */
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
  /** Tags for every AWS resource created. Default: none. */
  tags?: Record<string, pulumi.Input<string>>;
}

/**
 * A MirageOS unikernel on EC2. With `host`, an spt or hvt unikernel runs under its Solo5 tender
 * on a Linux instance that fetches the kernel and the tender from a private bucket. With `ami`
 * (experimental), a xen unikernel's raw disk (GRUB multiboot of the `.xen` kernel) becomes an EBS
 * snapshot (written directly, or imported from S3), registered as an HVM legacy-BIOS AMI and
 * launched on Xen-based instance types, whose HVM guests boot the disk's own bootloader.
 */
export class UnikernelService extends pulumi.ComponentResource {
  /** The AMI path's disk image. */
  declare readonly image: DiskImage | undefined;
  /** The AMI path's EBS snapshot, which the AMI is made of. */
  declare readonly snapshotId: pulumi.Output<string | undefined>;
  /** The S3 bucket: the host path's (kernel and tender), or the AMI path's with `via: "s3"`. */
  declare readonly bucketName: pulumi.Output<string | undefined>;
  /** The AMI the instances run: the registered xen AMI, or the host's Linux AMI. */
  declare readonly amiId: pulumi.Output<string>;
  declare readonly instanceIds: pulumi.Output<string[]>;
  declare readonly publicIps: pulumi.Output<string[]>;
  /** The boot check, when `host.waitFor` is set: depend on it to act once the unikernels run. */
  declare readonly bootCheck: Ec2ConsoleWait | undefined;
  /** The AWS CLI commands that print each instance's console output. */
  declare readonly consoleOutputCommands: pulumi.Output<string[]>;

  constructor(name: string, args: UnikernelServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    awsSdk(COMPONENT);
    // Argument mistakes are found before anything is created, so preview shows them.
    const spec = resolveArgs(name, args);
    super("pulumi-mirage:aws:UnikernelService", name, {}, opts);
    const { path } = spec;
    const launch =
      path.kind === "host"
        ? hostLaunch(
            name,
            { ...path, bootArgs: spec.bootArgs, ports: spec.ports, tags: spec.tags },
            this,
          )
        : xenLaunch(name, { ...path, bootArgs: spec.bootArgs, tags: spec.tags }, this);
    const instances = instancesOf(spec, launch, this);

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
    const waitFor = path.kind === "host" ? path.waitFor : undefined;
    this.bootCheck =
      waitFor &&
      new Ec2ConsoleWait(
        `${name}-boot`,
        { instances: this.instanceIds, ...waitFor, region: instances[0].region },
        { parent: this },
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

/** The instances, from the launch's AMI, behind a security group opening only `ports`. */
function instancesOf(spec: ServiceSpec, launch: HostLaunch | XenLaunch, parent: pulumi.Resource) {
  const aws = awsSdk(COMPONENT);
  const { name, tags, instanceCount } = spec;
  const securityGroup = new aws.ec2.SecurityGroup(
    `${name}-ports`,
    {
      description: "pulumi-mirage: the unikernel's declared ports",
      vpcId: spec.vpcId,
      ingress: spec.ports.map((p) => ({
        protocol: p.protocol,
        fromPort: p.port,
        toPort: p.port,
        cidrBlocks: p.cidrBlocks,
      })),
      egress: [{ protocol: "-1", fromPort: 0, toPort: 0, cidrBlocks: ["0.0.0.0/0"] }],
      tags,
    },
    { parent },
  );
  const launched =
    launch.kind === "host"
      ? {
          instanceType: launch.instanceType,
          userData: launch.userData,
          // New user data (a new kernel or tender) is a new instance, made before the old goes.
          userDataReplaceOnChange: true,
          iamInstanceProfile: launch.iamInstanceProfile,
          cpuOptions: { nestedVirtualization: launch.nestedVirtualization },
          metadataOptions: { httpTokens: "required", httpEndpoint: "enabled" },
        }
      : { instanceType: launch.instanceType };
  return Array.from(
    { length: instanceCount },
    (_, i) =>
      new aws.ec2.Instance(
        instanceCount === 1 ? `${name}-instance` : `${name}-instance-${i}`,
        {
          ami: launch.ami,
          ...launched,
          subnetId: spec.subnetId,
          vpcSecurityGroupIds: [securityGroup.id],
          associatePublicIpAddress: spec.associatePublicIpAddress,
          tags: { Name: instanceCount === 1 ? name : `${name}-${i}`, ...tags },
        },
        { parent },
      ),
  );
}
