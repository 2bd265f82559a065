// The resources of a gcp.UnikernelService, built from its resolved spec in three steps: what the
// VMs boot (a virtio kernel's image here: DiskImage → bucket object → Compute Engine image; a
// host's Linux and startup-script in host-service.ts), the network (network, firewall, the tag
// that scopes it), and the VMs that serve (one instance, or a group; vms.ts) with their boot wait
// and address.
import type * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { sha256 } from "../../provider/core/hash";
import { DiskImage } from "../disk-image";
import { gcpSdk } from "../peers";
import { refusal } from "../refuse";
import type { Unikernel } from "../unikernel";
import { groupBalancer, regionOfZone, vmAddress } from "./address";
import { COMPONENT, type ServiceSpec } from "./resolve";
import { GceSerialWait, type GceSerialWaitArgs } from "./serial-wait";
import { firewallAllows, kernelLabels, tcpPorts } from "./validate";
import { groupOfVms, singleVm, type VmSpec } from "./vms";

export interface ImageGraph {
  diskImage: DiskImage;
  image: gcp.compute.Image;
}

/** A suffix unique to this stack and service, for names that must be unique in the project. */
export function stackUnique(name: string): string {
  return sha256(`${pulumi.getProject()}/${pulumi.getStack()}/${name}`).slice(0, 8);
}

/** The unikernel's name and kernel hash, and the toolchain's version when it is known. */
function kernelFacts(uk: Unikernel | DiskImage) {
  return uk instanceof DiskImage
    ? { name: uk.name, sha256: uk.kernelSha256, mirageVersion: undefined }
    : { name: uk.name, sha256: uk.sha256, mirageVersion: uk.mirageVersion };
}

/** The labels of the image and the VMs: the user's and the kernel's. */
export function serviceLabels(spec: ServiceSpec): pulumi.Output<Record<string, string>> {
  const { name, sha256, mirageVersion } = kernelFacts(spec.unikernel);
  return pulumi.all([name, sha256, mirageVersion]).apply(([ukName, kernelSha, version]) => ({
    ...spec.labels,
    ...kernelLabels(ukName, kernelSha, version),
  }));
}

/**
 * The kernel's `gce` disk image (whose check refuses a kernel Compute Engine cannot boot, before
 * anything is uploaded), uploaded under its content-addressed name, and registered as an image.
 */
export function imageGraph(spec: ServiceSpec, parent: pulumi.Resource): ImageGraph {
  const gcp = gcpSdk(COMPONENT);
  const { name, unikernel: uk } = spec;
  const kernel = kernelFacts(uk);
  const child = { parent };
  const diskImage =
    uk instanceof DiskImage
      ? uk
      : new DiskImage(
          `${name}-disk`,
          { kernel: uk, format: "gce", bootArgs: spec.bootArgs },
          child,
        );
  // A DiskImage given is refused at preview, once its format is known, unless it is for GCE.
  const objectName = pulumi
    .all([diskImage.format, diskImage.objectName])
    .apply(([format, objectName]) => {
      if (format !== "gce") {
        const reason = `must be a DiskImage of format "gce", not "${format}": make it with format: "gce", or give its Unikernel`;
        throw refusal(COMPONENT, name, [{ property: "unikernel", reason }]);
      }
      return objectName;
    });
  const bucket =
    "name" in spec.bucket
      ? spec.bucket.name
      : new gcp.storage.Bucket(
          `${name}-images`,
          { project: spec.project, location: spec.bucket.location, uniformBucketLevelAccess: true },
          child,
        ).name;
  const upload = new gcp.storage.BucketObject(
    `${name}-upload`,
    {
      bucket,
      // Content-addressed: an unchanged image is never uploaded again.
      name: objectName,
      source: diskImage.path.apply((path) => new pulumi.asset.FileAsset(path)),
      contentType: "application/gzip",
    },
    child,
  );
  const image = new gcp.compute.Image(
    `${name}-image`,
    {
      project: spec.project,
      // The API accepts only this URL form, not gs:// (docs/platforms.md, Google Compute Engine).
      rawDisk: {
        source: pulumi.interpolate`https://storage.googleapis.com/${upload.bucket}/${upload.name}`,
      },
      family: spec.imageFamily,
      description: pulumi.interpolate`MirageOS unikernel ${kernel.name}, kernel sha256 ${kernel.sha256}`,
      labels: serviceLabels(spec),
      // No guestOsFeatures: a BIOS disk, no UEFI, no gVNIC.
    },
    child,
  );
  return { diskImage, image };
}

export interface NetworkGraph {
  network: pulumi.Input<string>;
  /** The VMs' interface, but for its type (what they boot decides it). */
  networkInterface: Omit<VmSpec["networkInterface"], "nicType">;
  /** Scopes the firewall to this component's VMs. */
  tag: string;
  firewall: gcp.compute.Firewall | undefined;
}

/** The network (given, or an MTU 1500 one), the VMs' interface, and a firewall for `ports`. */
export function networkGraph(spec: ServiceSpec, parent: pulumi.Resource): NetworkGraph {
  const gcp = gcpSdk(COMPONENT);
  const { name } = spec;
  const network =
    spec.network ??
    // Solo5 assumes MTU 1500; GCE networks default to 1460 (docs/platforms.md, Google Compute Engine).
    new gcp.compute.Network(
      `${name}-net`,
      { project: spec.project, autoCreateSubnetworks: true, mtu: 1500 },
      { parent },
    ).selfLink;
  if (isDefaultNetwork(spec.network)) {
    pulumi.log.warn(
      `network "${spec.network}" has MTU 1460 while Solo5 sends 1500-byte frames: full-size ` +
        "packets are dropped and large responses stall. Leave network unset (the component " +
        "creates an MTU 1500 network), or give a network created with mtu: 1500.",
      parent,
    );
  }
  const networkInterface = {
    network,
    subnetwork: spec.subnetwork,
    accessConfigs: spec.publicIp ? [{}] : [],
  };
  // The hash keeps two stacks' tags apart.
  const tag = `${name}-${stackUnique(name)}`;
  const allows = firewallAllows(spec.ports);
  const firewall =
    allows.length === 0
      ? undefined
      : new gcp.compute.Firewall(
          `${name}-fw`,
          {
            project: spec.project,
            network,
            direction: "INGRESS",
            allows,
            targetTags: [tag],
            sourceRanges: spec.sourceRanges,
          },
          { parent },
        );
  return { network, networkInterface, tag, firewall };
}

/** The `default` network, by name or selfLink: GCE always gives it MTU 1460. */
function isDefaultNetwork(network: pulumi.Input<string> | undefined): boolean {
  return typeof network === "string" && /(^|\/networks\/)default$/.test(network);
}

/** What serves: the VMs (by selfLink), their addresses, and the boot check. */
export interface Serving {
  instanceLinks: pulumi.Output<string[]>;
  externalIps: pulumi.Output<string[]>;
  address: pulumi.Output<string | undefined>;
  instanceGroup: pulumi.Output<string> | undefined;
  bootCheck: GceSerialWait | undefined;
}

/** Makes the boot wait for VMs, when the spec asks for one. */
type BootWait = (
  target: Pick<GceSerialWaitArgs, "instances" | "group">,
  vms: pulumi.Resource,
) => GceSerialWait | undefined;

/** The boot wait of `spec` (none without `waitFor`), calling the API with `credentials`. */
export function bootWaitOf(
  spec: ServiceSpec,
  credentials: Pick<GceSerialWaitArgs, "accessToken" | "credentials">,
  parent: pulumi.Resource,
): BootWait {
  const { waitFor } = spec;
  return (target, vms) =>
    waitFor &&
    new GceSerialWait(
      `${spec.name}-boot`,
      { ...target, ...waitFor, ...credentials },
      { parent, dependsOn: [vms] },
    );
}

/** One VM, holding a reserved address with `staticIp`. */
export function oneVm(
  spec: ServiceSpec,
  vm: VmSpec,
  bootWait: BootWait,
  opts: pulumi.CustomResourceOptions & { parent: pulumi.Resource },
): Serving {
  const region =
    spec.region ?? (typeof spec.zone === "string" ? regionOfZone(spec.zone) : undefined);
  const reserved = spec.staticIp
    ? vmAddress(spec.name, spec.project, region, { parent: opts.parent })
    : undefined;
  const single = singleVm(spec.name, vm, spec.zone, reserved?.address, opts);
  const externalIps = single.instance.networkInterfaces.apply((nics) =>
    (nics[0]?.accessConfigs ?? []).map((a) => a.natIp).filter((ip) => !!ip),
  );
  return {
    bootCheck: bootWait(single.waitTarget, single.instance),
    instanceLinks: single.instance.selfLink.apply((link) => [link]),
    externalIps,
    instanceGroup: undefined,
    address: reserved ? reserved.address : externalIps.apply((ips): string | undefined => ips[0]),
  };
}

/** A regional group, behind a proxy load balancer with `staticIp`. */
export function vmGroup(
  spec: ServiceSpec & { health: NonNullable<ServiceSpec["health"]> },
  vm: VmSpec,
  bootWait: BootWait,
  opts: pulumi.CustomResourceOptions & { parent: pulumi.Resource },
): Serving {
  const { name, health, replicas } = spec;
  const balancedPorts = spec.staticIp ? tcpPorts(spec.ports) : [];
  const group = groupOfVms(
    name,
    vm,
    { replicas, region: spec.region, health, balancedPorts, bootWait: spec.waitFor !== undefined },
    opts,
  );
  const bootCheck = bootWait(group.waitTarget, group.manager);
  // The VMs that booted, when awaited; else the group's members once it is stable.
  const instanceLinks = bootCheck?.waited ?? groupMembers(group.manager, opts.parent);
  const externalIps = natIps(instanceLinks, opts.parent);
  const address = spec.staticIp
    ? groupBalancer(
        name,
        {
          project: spec.project,
          instanceGroup: group.manager.instanceGroup,
          healthCheck: group.healthCheck,
          ports: balancedPorts,
        },
        { parent: opts.parent },
      )
    : externalIps.apply((ips): string | undefined => ips[0]);
  return {
    bootCheck,
    instanceLinks,
    externalIps,
    instanceGroup: group.manager.instanceGroup,
    address,
  };
}

/** A group's VMs, as the gcp provider lists them. */
function groupMembers(
  manager: gcp.compute.RegionInstanceGroupManager,
  parent: pulumi.Resource,
): pulumi.Output<string[]> {
  const gcp = gcpSdk(COMPONENT);
  return gcp.compute
    .getRegionInstanceGroupOutput({ selfLink: manager.instanceGroup }, { parent })
    .instances.apply((members) => members.map((m) => m.instance).sort());
}

/** The public IPs of instances given by selfLink; those without one are left out. */
function natIps(links: pulumi.Output<string[]>, parent: pulumi.Resource): pulumi.Output<string[]> {
  const gcp = gcpSdk(COMPONENT);
  return links
    .apply((selfLinks) =>
      pulumi.all(
        selfLinks.map((selfLink) =>
          gcp.compute
            .getInstanceOutput({ selfLink }, { parent })
            .networkInterfaces.apply((nics) => nics[0]?.accessConfigs?.[0]?.natIp ?? ""),
        ),
      ),
    )
    .apply((ips) => ips.filter((ip) => ip !== ""));
}
