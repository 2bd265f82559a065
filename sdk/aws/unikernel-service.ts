import * as pulumi from "@pulumi/pulumi";
import { consoleCommand } from "../../provider/aws/console";
import type { Protocol } from "../../rules/ports";
import type { WaitFor } from "../../rules/wait";
import type { DiskImage } from "../disk-image";
import { awsSdk } from "../peers";
import type { Unikernel } from "../unikernel";
import { balancerOf } from "./balancer";
import { Ec2ConsoleWait } from "./console-wait";
import { groupOf } from "./group";
import { hostLaunch } from "./host-service";
import { networkOf } from "./network";
import { Ec2RefreshWait } from "./refresh-wait";
import { COMPONENT, resolveArgs } from "./resolve";
import { xenLaunch } from "./xen-ami";

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
  /**
   * How many instances the Auto Scaling group runs: its desired, minimum and maximum size, spread
   * over `subnetIds`. The group replaces an instance that fails its health check. Default: 1.
   */
  instanceCount?: number;
  /**
   * The ports to open to the instances (a number is a TCP port open to anyone); no other inbound
   * traffic is allowed, but the load balancer's health checks. With ports, a Network Load
   * Balancer forwards each of them to the group's healthy instances. Default: none.
   */
  ports?: (number | ServicePort)[];
  /**
   * How the group tells a serving instance, and replaces one that fails. With `ports`, the load
   * balancer connects to `port` over TCP (default: the first TCP port in `ports`; it must be one
   * of them): `pulumi up` waits until `instanceCount` instances pass, and a rolling refresh
   * terminates an old instance only once its replacement passes. Without ports, EC2's status
   * checks. No check counts during `initialDelaySec` after an instance starts (default 120); a
   * refresh moves on `minReadySec` after a replacement is in service (default 30). Both 0 to 3600.
   */
  healthCheck?: { port?: number; initialDelaySec?: number; minReadySec?: number };
  /**
   * Give the load balancer one Elastic IP per zone (through its subnet mappings), output in
   * `staticIps`: addresses that stay through every deploy, for clients that cannot use a DNS
   * name. Needs `ports`. Default: false (the balancer's DNS name, `address`, is stable anyway).
   */
  staticIp?: boolean;
  /**
   * The subnets to launch into, one per zone for the load balancer. Default: the default VPC's
   * default subnets, one in every zone of the region.
   */
  subnetIds?: pulumi.Input<pulumi.Input<string>[]>;
  /** @deprecated 0.1's single subnet: use `subnetIds`. Taken as `subnetIds: [subnetId]`. */
  subnetId?: pulumi.Input<string>;
  /**
   * The VPC of the security group and target groups; must contain `subnetIds`. Default: the VPC
   * of the first of `subnetIds`, else the default VPC.
   */
  vpcId?: pulumi.Input<string>;
  /** Give the instances public IP addresses. Default: true. */
  associatePublicIpAddress?: boolean;
  /** Tags for every AWS resource created. Default: none. */
  tags?: Record<string, pulumi.Input<string>>;
}

/**
 * How long `pulumi up` waits for a rollout. A refresh whose replacements fail their health checks
 * ends Failed (and rolls back) by itself; this bounds only a refresh that makes no progress.
 */
const ROLLOUT_TIMEOUT_SECONDS = 3600;

/**
 * A MirageOS unikernel on EC2, as an Auto Scaling group of `instanceCount` instances launched
 * from one launch template, behind a Network Load Balancer when it declares ports. With `host`,
 * an spt or hvt unikernel runs under its Solo5 tender on a Linux instance that fetches the kernel
 * and the tender from a private bucket. With `ami` (experimental), a xen unikernel's raw disk
 * (GRUB multiboot of the `.xen` kernel) becomes an EBS snapshot (written directly, or imported
 * from S3), registered as an HVM legacy-BIOS AMI and launched on Xen-based instance types, whose
 * HVM guests boot the disk's own bootloader. A new kernel, tender or boot arguments is a new
 * version of the launch template, rolled out by an instance refresh: each replacement is up and
 * healthy before an old instance goes, and a failed refresh rolls back.
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
  /** The launch template the group's instances come from. */
  declare readonly launchTemplateId: pulumi.Output<string>;
  /** The Auto Scaling group's name. */
  declare readonly groupName: pulumi.Output<string>;
  /**
   * What clients use: with `ports`, the load balancer's DNS name (stable; with `staticIp` it
   * resolves to `staticIps`); without, the first instance's public IP, which changes when the
   * group replaces the instance. Undefined when there is none.
   */
  declare readonly address: pulumi.Output<string | undefined>;
  /** The load balancer's Elastic IPs, one per zone, with `staticIp`; else empty. */
  declare readonly staticIps: pulumi.Output<string[]>;
  /** The instances found in the group once it (and the boot check) is done. */
  declare readonly instanceIds: pulumi.Output<string[]>;
  /** Their public IPs, in the same order (empty where one has none). */
  declare readonly publicIps: pulumi.Output<string[]>;
  /**
   * The boot check, when `host.waitFor` is set: it waits for the instances of the group's
   * current launch template version; depend on it to act once the unikernels run.
   */
  declare readonly bootCheck: Ec2ConsoleWait | undefined;
  /**
   * The rollout: done once the group runs the current launch template version on every instance
   * (a new version's instance refresh succeeded). `pulumi up` waits for it.
   */
  declare readonly rollout: Ec2RefreshWait;
  /** The AWS CLI commands that print each instance's console output. */
  declare readonly consoleOutputCommands: pulumi.Output<string[]>;

  constructor(name: string, args: UnikernelServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    const aws = awsSdk(COMPONENT);
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
    const network = networkOf(spec, this);
    const balancer = balancerOf(spec, network, this);
    const group = groupOf(spec, launch, network, balancer, this);
    const region = aws.getRegionOutput({}, { parent: this }).region;
    const waitFor = path.kind === "host" ? path.waitFor : undefined;
    this.bootCheck =
      waitFor &&
      new Ec2ConsoleWait(
        `${name}-boot`,
        {
          group: {
            name: group.groupName,
            launchTemplateId: group.launchTemplateId,
            version: group.launchTemplateVersion,
            size: spec.instanceCount,
          },
          ...waitFor,
          region,
        },
        { parent: this, dependsOn: [group.group] },
      );
    this.rollout = new Ec2RefreshWait(
      `${name}-rollout`,
      {
        group: {
          name: group.groupName,
          launchTemplateId: group.launchTemplateId,
          version: group.launchTemplateVersion,
        },
        timeoutSeconds: ROLLOUT_TIMEOUT_SECONDS,
        region,
      },
      { parent: this, dependsOn: [group.group] },
    );
    // Read once the rollout (and the boot check) is done: what runs behind the group now.
    const found = aws.ec2.getInstancesOutput(
      {
        filters: [{ name: "tag:aws:autoscaling:groupName", values: [group.groupName] }],
        instanceStateNames: ["pending", "running"],
      },
      { parent: this, dependsOn: [this.rollout, ...(this.bootCheck ? [this.bootCheck] : [])] },
    );

    this.image = launch.kind === "xen" ? launch.image : undefined;
    this.snapshotId = launch.kind === "xen" ? launch.snapshotId : pulumi.output(undefined);
    this.bucketName = launch.bucketName;
    this.amiId = launch.ami;
    this.launchTemplateId = group.launchTemplateId;
    this.groupName = group.groupName;
    this.instanceIds = found.ids;
    this.publicIps = found.publicIps;
    this.staticIps = balancer ? balancer.staticIps : pulumi.output([]);
    this.address = balancer
      ? balancer.dnsName
      : found.publicIps.apply((ips): string | undefined => ips[0]);
    this.consoleOutputCommands = pulumi
      .all([found.ids, region])
      .apply(([ids, r]) => ids.map((id) => consoleCommand(id, r)));
    this.registerOutputs({
      snapshotId: this.snapshotId,
      bucketName: this.bucketName,
      amiId: this.amiId,
      launchTemplateId: this.launchTemplateId,
      groupName: this.groupName,
      address: this.address,
      staticIps: this.staticIps,
      instanceIds: this.instanceIds,
      publicIps: this.publicIps,
      consoleOutputCommands: this.consoleOutputCommands,
    });
  }
}
