// gcp.UnikernelService's arguments, normalised and defaulted once: every later step reads the
// spec, never the raw arguments. What is wrong with them is refused here, all at once. The service
// has two paths: a virtio kernel's own image, or, with `host`, an spt or hvt kernel under its
// tender on a stock Linux VM; what depends on the kernel's target (hvt's machine families) is
// refused at preview, once the target is known (host-service.ts).
import type * as pulumi from "@pulumi/pulumi";
import { BOUNDS, outOfBounds } from "../../rules/bounds";
import {
  DEFAULT_MACHINE_TYPE,
  hostMachineTypeProblem,
  virtioMachineTypeProblem,
} from "../../rules/gce-machines";
import { type Problem, problemIf } from "../../rules/problem";
import { type ConsolePattern, patternSource, waitProblems } from "../../rules/wait";
import { DiskImage } from "../disk-image";
import { refuse } from "../refuse";
import type { Unikernel } from "../unikernel";
import type { UnikernelServiceArgs } from "./unikernel-service";
import {
  type HealthCheckSpec,
  labelsProblems,
  nameProblems,
  resolveHealthCheck,
  resolvePorts,
  type ServicePort,
  sourceRangesProblems,
  staticIpProblems,
} from "./validate";

export const COMPONENT = "gcp.UnikernelService";

/** The host path: the kernel under its tender on a Linux VM. */
export interface HostSpec {
  tender: pulumi.Input<string>;
  /** Undefined: Debian 12 of the machine type's architecture. */
  image: pulumi.Input<string> | undefined;
}

/** A gcp.UnikernelService's arguments with every default resolved. */
export interface ServiceSpec {
  name: string;
  /** A Unikernel, or (the virtio path only) its gce DiskImage, made by the program. */
  unikernel: Unikernel | DiskImage;
  bootArgs: pulumi.Input<pulumi.Input<string>[]> | undefined;
  project: pulumi.Input<string> | undefined;
  zone: pulumi.Input<string> | undefined;
  region: pulumi.Input<string> | undefined;
  /** An existing bucket, or where the component's own bucket lives. */
  bucket: { name: pulumi.Input<string> } | { location: pulumi.Input<string> };
  imageFamily: pulumi.Input<string> | undefined;
  /** Undefined only on the host path: by the kernel's target, known only once it is. */
  machineType: string | undefined;
  /** The host path, or undefined: the virtio path. */
  host: HostSpec | undefined;
  replicas: number;
  /** A group's health check (replicas > 1); one VM has none. */
  health: HealthCheckSpec | undefined;
  network: pulumi.Input<string> | undefined;
  subnetwork: pulumi.Input<string> | undefined;
  publicIp: boolean;
  staticIp: boolean;
  ports: ServicePort[];
  sourceRanges: string[];
  serviceAccount:
    | { email: pulumi.Input<string>; scopes: pulumi.Input<pulumi.Input<string>[]> }
    | undefined;
  labels: Record<string, string>;
  waitFor: { pattern: string; timeoutSeconds: number } | undefined;
}

/** The spec of `args`, or an error listing every problem in them. */
export function resolveArgs(name: string, args: UnikernelServiceArgs): ServiceSpec {
  const { ports, problems: portProblems } = resolvePorts(args.ports ?? []);
  const replicas = args.replicas ?? 1;
  const publicIp = args.publicIp ?? true;
  const staticIp = args.staticIp ?? false;
  // A group needs a health check; one VM is gated by its boot wait alone.
  const group = replicas > 1 ? resolveHealthCheck(args.healthCheck, ports, replicas) : undefined;
  const wait = args.waitFor && waitPattern(args.waitFor);
  const spec: ServiceSpec = {
    name,
    unikernel: args.unikernel,
    bootArgs: args.bootArgs,
    project: args.project,
    zone: args.zone,
    region: args.region,
    bucket:
      args.bucket !== undefined
        ? { name: args.bucket }
        : { location: args.bucketLocation ?? args.region ?? "US" },
    imageFamily: args.imageFamily,
    machineType: args.machineType ?? (args.host ? undefined : DEFAULT_MACHINE_TYPE),
    host: args.host && { tender: args.host.tender, image: args.host.image },
    replicas,
    health: group?.health,
    network: args.network,
    subnetwork: args.subnetwork,
    publicIp,
    staticIp,
    ports,
    sourceRanges: args.sourceRanges ?? ["0.0.0.0/0"],
    serviceAccount: args.serviceAccount && {
      email: args.serviceAccount.email,
      scopes: args.serviceAccount.scopes ?? ["https://www.googleapis.com/auth/cloud-platform"],
    },
    labels: args.labels ?? {},
    waitFor: wait && {
      pattern: patternSource(wait.pattern),
      timeoutSeconds: args.waitFor?.timeoutSeconds ?? 300,
    },
  };
  const problems: Problem[] = [
    ...nameProblems(name),
    ...pathProblems(args, spec),
    ...problemIf("replicas", outOfBounds(replicas, BOUNDS.count)),
    ...portProblems,
    ...sourceRangesProblems(spec.sourceRanges),
    ...labelsProblems(spec.labels),
    // The boot wait's own check (GceSerialWait) applies the same rule, under its own names.
    ...(wait && spec.waitFor
      ? waitProblems(
          { pattern: wait.pattern, timeoutSeconds: spec.waitFor.timeoutSeconds },
          { pattern: wait.property, timeoutSeconds: "waitFor.timeoutSeconds" },
        )
      : []),
    ...(wait?.problems ?? []),
    ...(staticIp ? staticIpProblems(replicas, publicIp, ports) : []),
    ...(group?.problems ?? []),
    ...(args.subnetwork !== undefined && args.network === undefined
      ? [
          {
            property: "subnetwork",
            reason: "is given without network: give the network the subnetwork belongs to",
          },
        ]
      : []),
  ];
  refuse(COMPONENT, name, problems);
  return spec;
}

/** What the path `args` choose (virtio, or host) refuses of them. */
function pathProblems(args: UnikernelServiceArgs, spec: ServiceSpec): Problem[] {
  const image = args.unikernel instanceof DiskImage;
  if (args.host === undefined) {
    return [
      ...problemIf("machineType", virtioMachineTypeProblem(spec.machineType as string)),
      ...(image && args.bootArgs !== undefined
        ? [
            {
              property: "bootArgs",
              reason:
                "are the image's own with a DiskImage as unikernel: give them to its DiskImage instead",
            },
          ]
        : []),
    ];
  }
  const problems: Problem[] = [];
  if (image)
    problems.push({
      property: "unikernel",
      reason:
        "is a DiskImage, and a host runs a kernel under its tender: give the spt or hvt Unikernel itself",
    });
  if (args.host.tender === undefined)
    problems.push({
      property: "host.tender",
      reason: "is required: the path of your opam switch's solo5-spt or solo5-hvt",
    });
  // The target, known at preview, decides the rest (hvt needs nested virtualization).
  if (spec.machineType !== undefined)
    problems.push(...problemIf("machineType", hostMachineTypeProblem(spec.machineType, "spt")));
  const virtioOnly: [keyof UnikernelServiceArgs, string][] = [
    [
      "bucket",
      "a host's kernel and tender go into a bucket of its own, which only its service account may read",
    ],
    ["imageFamily", "a host runs a stock Linux image (host.image), the component makes none"],
    [
      "serviceAccount",
      "a host runs as a service account of its own, which may read only its kernel, tender and secret",
    ],
  ];
  for (const [property, why] of virtioOnly)
    if (args[property] !== undefined)
      problems.push({ property, reason: `is not taken with host: ${why}; leave it out` });
  return problems;
}

/**
 * `waitFor`'s pattern and the property it was given as: `console`, or `serial`, its name in
 * 0.1, still taken. Both at once is refused.
 */
function waitPattern(waitFor: NonNullable<UnikernelServiceArgs["waitFor"]>): {
  pattern: ConsolePattern;
  property: string;
  problems: Problem[];
} {
  const given = waitFor as { console?: ConsolePattern; serial?: ConsolePattern };
  if (given.console === undefined && given.serial !== undefined)
    return { pattern: given.serial, property: "waitFor.serial", problems: [] };
  const problems =
    given.serial === undefined
      ? []
      : [
          {
            property: "waitFor.serial",
            reason: "is console's former name, and console is given too: keep console only",
          },
        ];
  return { pattern: given.console as ConsolePattern, property: "waitFor.console", problems };
}
