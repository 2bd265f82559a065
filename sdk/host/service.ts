// What a host service needs of its unikernel on every cloud, checked by the host's rules: the
// target (spt or hvt, and whatever the cloud asks of it), the network devices (no block device
// yet), the boot arguments (DiskImage's rules and the host's own: at construction when they are
// plain values, at preview once they are known, in the same words), whether they are secret, the
// tender's sha256, and the names kernel and tender get in the cloud's store (by content, so an
// unchanged file is never uploaded again). Each cloud then makes its own resources.
import * as pulumi from "@pulumi/pulumi";
import { sha256File } from "../../provider/core/hash";
import { checkBootArgs } from "../../provider/image/bootargs";
import { hostDevicesProblem, hostTargetProblem } from "../../rules/host";
import { type Problem, problemIf } from "../../rules/problem";
import type { Target } from "../../rules/targets";
import { refuse } from "../refuse";
import type { Unikernel } from "../unikernel";
import { checkHostBootArgs } from "./script";

export type HostTarget = "spt" | "hvt";

export interface HostServiceArgs {
  unikernel: Unikernel;
  bootArgs: pulumi.Input<pulumi.Input<string>[]>;
  /** The path of the tender to upload. */
  tender: pulumi.Input<string>;
  /** What the cloud offers a kernel of a target a host cannot run, for the refusal. */
  instead(target: Target): string | undefined;
  /** The cloud's own problems with an spt or hvt kernel (hvt on a type without KVM...). */
  targetProblems(target: HostTarget): Problem[];
}

export interface HostUnikernel {
  target: pulumi.Output<HostTarget>;
  /** The network devices the kernel declares, in manifest order. */
  networks: pulumi.Output<string[]>;
  /** The boot arguments, checked (secret if they were). */
  bootArgs: pulumi.Output<string[]>;
  /** Whether the boot arguments are secret: known at preview, whatever their values. */
  secret: pulumi.Output<boolean>;
  /** The kernel's file name on the host, `NAME.TARGET`. */
  kernelName: pulumi.Output<string>;
  /** The kernel's and the tender's names in the cloud's store. */
  kernelObject: pulumi.Output<string>;
  tenderObject: pulumi.Output<string>;
  tenderPath: pulumi.Output<string>;
  tenderSha256: pulumi.Output<string>;
}

/**
 * The boot arguments' rules (DiskImage's, and the host's own once the devices are known), in the
 * same words at construction and at preview.
 */
function checkArgs(
  component: string,
  service: string,
  args: readonly string[],
  networks?: readonly string[],
): void {
  try {
    if (networks) checkHostBootArgs(args, networks);
    else checkBootArgs(args);
  } catch (error) {
    throw new Error(`${component} ${service}: bootArgs: ${(error as Error).message}`);
  }
}

export function hostUnikernel(
  component: string,
  name: string,
  args: HostServiceArgs,
): HostUnikernel {
  const { unikernel } = args;
  const given = args.bootArgs;
  if (Array.isArray(given) && given.every((a) => typeof a === "string"))
    checkArgs(component, name, given);
  const bootArgs = pulumi.output(given);
  const networks = unikernel.manifest.apply((manifest) => {
    refuse(component, name, problemIf("unikernel", hostDevicesProblem(manifest ?? [])));
    return (manifest ?? []).filter((d) => d.type === "net").map((d) => d.name);
  });
  const target = unikernel.target.apply((t): HostTarget => {
    refuse(component, name, problemIf("host", hostTargetProblem(t, args.instead(t))));
    refuse(component, name, args.targetProblems(t as HostTarget));
    return t as HostTarget;
  });
  const tenderPath = pulumi.output(args.tender);
  const tenderSha256 = tenderPath.apply(sha256File);
  const kernelName = pulumi.interpolate`${unikernel.name}.${target}`;
  return {
    target,
    networks,
    bootArgs: pulumi.all([bootArgs, networks]).apply(([a, n]) => {
      checkArgs(component, name, a, n);
      return a;
    }),
    secret: pulumi.output(pulumi.isSecret(bootArgs)),
    kernelName,
    kernelObject: pulumi.interpolate`kernels/${unikernel.sha256}/${kernelName}`,
    tenderObject: pulumi.interpolate`tenders/${tenderSha256}/solo5-${target}`,
    tenderPath,
    tenderSha256,
  };
}
