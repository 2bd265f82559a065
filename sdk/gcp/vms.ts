// The VMs of a gcp.UnikernelService: one instance, replaced new-first (delete-first when it
// holds a static address, which one VM at a time can have), or a regional managed instance
// group rolled only as its new VMs pass a health check.
import type * as gcp from "@pulumi/gcp";
import type * as pulumi from "@pulumi/pulumi";
import { gcpSdk } from "../peers";
import { namedPort } from "./address";
import type { GceSerialWaitArgs } from "./serial-wait";
import type { HealthCheckSpec } from "./validate";

/** Google's health-check probers and proxy load balancers send from these ranges. */
export const HEALTH_CHECK_RANGES = ["35.191.0.0/16", "130.211.0.0/22"];

/** What the VMs are made of, whether one instance or a group. */
export interface VmSpec {
  project: pulumi.Input<string> | undefined;
  machineType: pulumi.Input<string>;
  image: pulumi.Input<string>;
  /** The network of `networkInterface`. */
  network: pulumi.Input<string>;
  networkInterface: gcp.types.input.compute.InstanceNetworkInterface &
    gcp.types.input.compute.InstanceTemplateNetworkInterface;
  tag: string;
  labels: pulumi.Output<Record<string, string>>;
  serviceAccount:
    | { email: pulumi.Input<string>; scopes: pulumi.Input<pulumi.Input<string>[]> }
    | undefined;
  /** A host's startup-script (`startup-script` metadata): a new one is a new VM. */
  startupScript?: pulumi.Input<string>;
  /** Give the VMs KVM (a host of solo5-hvt). */
  nestedVirtualization?: pulumi.Input<boolean>;
}

/** What an instance and a template take alike of a VmSpec. */
function bootOf(vm: VmSpec) {
  return {
    metadataStartupScript: vm.startupScript,
    advancedMachineFeatures:
      vm.nestedVirtualization === undefined
        ? undefined
        : { enableNestedVirtualization: vm.nestedVirtualization },
  };
}

export interface SingleVm {
  instance: gcp.compute.Instance;
  /** What the boot wait watches. */
  waitTarget: Pick<GceSerialWaitArgs, "instances">;
}

export function singleVm(
  name: string,
  vm: VmSpec,
  zone: pulumi.Input<string> | undefined,
  /** A reserved address the VM holds, if any. */
  natIp: pulumi.Input<string> | undefined,
  opts: pulumi.CustomResourceOptions,
): SingleVm {
  const gcp = gcpSdk("gcp.UnikernelService");
  const nic =
    natIp === undefined
      ? vm.networkInterface
      : { ...vm.networkInterface, accessConfigs: [{ natIp }] };
  const instance = new gcp.compute.Instance(
    `${name}-vm`,
    {
      project: vm.project,
      zone,
      machineType: vm.machineType,
      bootDisk: { initializeParams: { image: vm.image } },
      networkInterfaces: [nic],
      tags: [vm.tag],
      labels: vm.labels,
      serviceAccount: vm.serviceAccount,
      ...bootOf(vm),
      // A unikernel keeps no state: a machine type change may stop and restart it.
      allowStoppingForUpdate: true,
    },
    {
      ...opts,
      // A new image or startup-script is a new VM (auto-named, so both exist for a moment): the
      // new one is created, and verified when `waitFor` is set, before the old one is deleted.
      // An address belongs to one VM at a time, so with one the old VM must go first.
      replaceOnChanges: ["bootDisk.initializeParams.image", "metadataStartupScript"],
      deleteBeforeReplace: natIp !== undefined,
    },
  );
  return { instance, waitTarget: { instances: instance.selfLink.apply((link) => [link]) } };
}

export interface GroupVms {
  manager: gcp.compute.RegionInstanceGroupManager;
  healthCheck: gcp.compute.HealthCheck;
  /** What the boot wait watches: the group's VMs of the current template. */
  waitTarget: Pick<GceSerialWaitArgs, "group">;
}

export interface GroupOptions {
  replicas: number;
  region: pulumi.Input<string> | undefined;
  health: HealthCheckSpec;
  /** TCP ports a proxy load balancer forwards to the VMs (named ports), if any. */
  balancedPorts: number[];
  /**
   * A boot wait follows: the group then returns as soon as the update is under way, and the
   * wait finds the new VMs and reads their consoles (failing with the console of the one that
   * does not boot) instead of the group waiting out its own timeout on an unhealthy VM.
   */
  bootWait: boolean;
}

export function groupOfVms(
  name: string,
  vm: VmSpec,
  group: GroupOptions,
  opts: pulumi.CustomResourceOptions,
): GroupVms {
  const gcp = gcpSdk("gcp.UnikernelService");
  const parent = { parent: opts.parent };
  const { health } = group;
  // Global, so the load balancer of `staticIp` can use the very check autohealing uses.
  const healthCheck = new gcp.compute.HealthCheck(
    `${name}-health`,
    {
      project: vm.project,
      checkIntervalSec: 5,
      timeoutSec: 5,
      healthyThreshold: 2,
      unhealthyThreshold: 3,
      ...(health.httpPath === undefined
        ? { tcpHealthCheck: { port: health.port } }
        : { httpHealthCheck: { port: health.port, requestPath: health.httpPath } }),
    },
    parent,
  );
  // Without this the probes never arrive, every VM counts as unhealthy and is recreated forever;
  // the load balancer's proxies connect from the same ranges.
  const probedPorts = [...new Set([health.port, ...group.balancedPorts])].map(String);
  const probes = new gcp.compute.Firewall(
    `${name}-probes`,
    {
      project: vm.project,
      network: vm.network,
      direction: "INGRESS",
      allows: [{ protocol: "tcp", ports: probedPorts }],
      targetTags: [vm.tag],
      sourceRanges: HEALTH_CHECK_RANGES,
    },
    parent,
  );
  const template = new gcp.compute.InstanceTemplate(
    `${name}-template`,
    {
      project: vm.project,
      machineType: vm.machineType,
      disks: [{ sourceImage: vm.image, boot: true, autoDelete: true }],
      networkInterfaces: [vm.networkInterface],
      tags: [vm.tag],
      labels: vm.labels,
      serviceAccount: vm.serviceAccount,
      ...bootOf(vm),
    },
    // Templates are immutable: a new image is a new template, made before the old one goes.
    { ...parent, deleteBeforeReplace: false },
  );
  const dependsOn = [...((opts.dependsOn as pulumi.Resource[] | undefined) ?? []), probes];
  const manager = new gcp.compute.RegionInstanceGroupManager(
    `${name}-group`,
    {
      project: vm.project,
      region: group.region,
      baseInstanceName: name,
      versions: [{ name: "primary", instanceTemplate: template.selfLinkUnique }],
      targetSize: group.replicas,
      ...(group.balancedPorts.length > 0 ? { namedPorts: group.balancedPorts.map(namedPort) } : {}),
      // A VM that stops answering is recreated; a new one gets initialDelaySec to boot first.
      autoHealingPolicies: {
        healthCheck: healthCheck.selfLink,
        initialDelaySec: health.initialDelaySec,
      },
      // Roll new VMs in first (a regional group surges by at least its 3 zones) and remove no
      // old VM until a new one has passed the health check for minReadySec: a kernel that does
      // not serve stops the rollout with every old VM still serving.
      updatePolicy: {
        type: "PROACTIVE",
        minimalAction: "REPLACE",
        replacementMethod: "SUBSTITUTE",
        maxSurgeFixed: Math.max(3, group.replicas),
        maxUnavailableFixed: 0,
        minReadySec: health.minReadySec,
      },
      waitForInstances: !group.bootWait,
      ...(group.bootWait ? {} : { waitForInstancesStatus: "UPDATED" }),
    },
    { ...opts, dependsOn },
  );
  return {
    manager,
    healthCheck,
    waitTarget: {
      group: {
        manager: manager.selfLink,
        template: template.selfLinkUnique,
        size: group.replicas,
      },
    },
  };
}
