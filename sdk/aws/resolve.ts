// aws.UnikernelService's arguments, normalised and defaulted once. The service has two paths,
// chosen by which group of options is given: `host` (an spt or hvt unikernel under its tender on
// a Linux instance) or `ami` (a xen unikernel's disk as an AMI). What is wrong is refused here,
// all at once, before anything is registered.
import type * as pulumi from "@pulumi/pulumi";
import { BOUNDS, outOfBounds } from "../../rules/bounds";
import { type Protocol, servicePortProblems } from "../../rules/ports";
import { type Problem, problemIf } from "../../rules/problem";
import { patternSource, waitProblems } from "../../rules/wait";
import type { DiskImage } from "../disk-image";
import { refuse } from "../refuse";
import type { Unikernel } from "../unikernel";
import { DEFAULT_INSTANCE_TYPE, instanceTypeProblem } from "./instance-types";
import type { UnikernelServiceArgs } from "./unikernel-service";

export const COMPONENT = "aws.UnikernelService";

/** A port with its protocol and sources. */
export interface PortSpec {
  port: number;
  protocol: Protocol;
  cidrBlocks: string[];
}

/** The host path: the unikernel and its tender on a Linux instance. */
export interface HostSpec {
  kind: "host";
  unikernel: Unikernel;
  tender: pulumi.Input<string>;
  /** Undefined: the latest official Debian 12 AMI. */
  amiId: pulumi.Input<string> | undefined;
  /** Undefined: by the unikernel's target, known only once it is (hvt needs nested virtualization). */
  instanceType: string | undefined;
  waitFor: { pattern: string; timeoutSeconds: number } | undefined;
}

/** The AMI path: a xen unikernel's disk (made here, or given) as an AMI. */
export interface AmiSpec {
  kind: "ami";
  /** The disk to make, or the one given. */
  disk: { unikernel: Unikernel } | { image: DiskImage };
  snapshot: SnapshotSpec;
  rootDeviceName: string;
  instanceType: string;
}

/** How the snapshot is made, `via` resolved. */
export type SnapshotSpec =
  | { via: "ebs"; kmsKeyArn?: pulumi.Input<string> }
  | { via: "s3"; bucket?: pulumi.Input<string>; vmimportRoleName?: pulumi.Input<string> };

/** An aws.UnikernelService's arguments with every default resolved. */
export interface ServiceSpec {
  name: string;
  path: HostSpec | AmiSpec;
  bootArgs: pulumi.Input<pulumi.Input<string>[]>;
  instanceCount: number;
  ports: PortSpec[];
  subnetId: pulumi.Input<string> | undefined;
  vpcId: pulumi.Input<string> | undefined;
  associatePublicIpAddress: boolean;
  tags: Record<string, pulumi.Input<string>>;
}

/** The options each way of making the snapshot takes. */
const SNAPSHOT_OPTIONS: Record<string, string[]> = {
  ebs: ["via", "kmsKeyArn"],
  s3: ["via", "bucket", "vmimportRoleName"],
};

/** The spec of `args`, or an error listing every problem in them. */
export function resolveArgs(name: string, args: UnikernelServiceArgs): ServiceSpec {
  const problems: Problem[] = [];
  const ports = (args.ports ?? []).map((p, i): PortSpec => {
    const {
      port,
      protocol = "tcp",
      cidrBlocks = ["0.0.0.0/0"],
    } = typeof p === "number" ? { port: p } : p;
    problems.push(...servicePortProblems(`ports[${i}]`, port, protocol));
    return { port, protocol, cidrBlocks };
  });
  const instanceCount = args.instanceCount ?? 1;
  problems.push(...problemIf("instanceCount", outOfBounds(instanceCount, BOUNDS.count)));
  const path = resolvePath(args, problems);
  refuse(COMPONENT, name, problems);
  return {
    name,
    // Resolved: without a path there was a problem, and refuse threw.
    path: path as HostSpec | AmiSpec,
    bootArgs: args.bootArgs ?? [],
    instanceCount,
    ports,
    subnetId: args.subnetId,
    vpcId: args.vpcId,
    associatePublicIpAddress: args.associatePublicIpAddress ?? true,
    tags: args.tags ?? {},
  };
}

/** The path `args` choose, adding what is wrong with it to `problems`. */
function resolvePath(
  args: UnikernelServiceArgs,
  problems: Problem[],
): HostSpec | AmiSpec | undefined {
  const { host, ami } = args;
  if ((host === undefined) === (ami === undefined)) {
    problems.push({
      property: "host",
      reason:
        host === undefined
          ? "and ami are both missing: give host: { tender } to run an spt or hvt unikernel under its Solo5 tender on a Linux instance, or ami: {} to boot a xen unikernel's disk as an AMI"
          : "and ami are both given: give one of them (host for an spt or hvt unikernel, ami for a xen one)",
    });
    return undefined;
  }
  if (host !== undefined) {
    if (args.unikernel === undefined)
      problems.push({
        property: "unikernel",
        reason: "is required with host: the spt or hvt unikernel to run",
      });
    if (host.tender === undefined)
      problems.push({
        property: "host.tender",
        reason: "is required: the path of your opam switch's solo5-spt or solo5-hvt",
      });
    const waitFor = host.waitFor && {
      pattern: host.waitFor.console,
      timeoutSeconds: host.waitFor.timeoutSeconds ?? 600,
    };
    if (waitFor)
      problems.push(
        ...waitProblems(waitFor, {
          pattern: "host.waitFor.console",
          timeoutSeconds: "host.waitFor.timeoutSeconds",
        }),
      );
    return {
      kind: "host",
      unikernel: args.unikernel as Unikernel,
      tender: host.tender,
      amiId: host.amiId,
      instanceType: args.instanceType,
      waitFor: waitFor && { ...waitFor, pattern: patternSource(waitFor.pattern) },
    };
  }
  const image = ami?.image;
  if ((args.unikernel === undefined) === (image === undefined))
    problems.push({
      property: "unikernel",
      reason:
        "and ami.image: give exactly one, a Unikernel built for target xen or a DiskImage of format aws",
    });
  if (image !== undefined && args.bootArgs !== undefined)
    problems.push({
      property: "bootArgs",
      reason: "are the image's own with ami.image: give them to its DiskImage instead",
    });
  const snapshot = { via: "ebs", ...ami?.snapshot } as SnapshotSpec;
  const options = SNAPSHOT_OPTIONS[snapshot.via];
  if (options === undefined)
    problems.push({
      property: "ami.snapshot.via",
      reason: `must be "ebs" or "s3", not ${JSON.stringify(snapshot.via)}`,
    });
  for (const key of Object.keys(snapshot).filter((k) => options && !options.includes(k)))
    problems.push({
      property: `ami.snapshot.${key}`,
      reason: `is not an option of via ${JSON.stringify(snapshot.via)}, which takes ${options.slice(1).join(" and ")}`,
    });
  const instanceType = args.instanceType ?? DEFAULT_INSTANCE_TYPE;
  problems.push(...problemIf("instanceType", instanceTypeProblem(instanceType)));
  return {
    kind: "ami",
    disk: image === undefined ? { unikernel: args.unikernel as Unikernel } : { image },
    snapshot,
    rootDeviceName: ami?.rootDeviceName ?? "/dev/xvda",
    instanceType,
  };
}
