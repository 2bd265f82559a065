import type * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { parseInstance, serialCommand } from "../../provider/gcp/serial";
import { sha256 } from "../../provider/hash";
import { DiskImage } from "../disk-image";
import { gcpSdk } from "../peers";
import type { Unikernel } from "../unikernel";
import { GceSerialWait } from "./serial-wait";
import {
  checkLabels,
  checkMachineType,
  checkName,
  checkNetDevices,
  checkReplicas,
  checkSourceRanges,
  checkTarget,
  checkWaitFor,
  firewallAllows,
  kernelLabels,
  type Port,
} from "./validate";

/**
 * Arguments of `gcp.UnikernelService`. The ones the component checks before anything is created
 * (machine type, replicas, ports, source ranges, labels, waitFor) are plain values, so
 * `pulumi preview` reports a mistake in them.
 */
export interface UnikernelServiceArgs {
  /**
   * The unikernel to run: a virtio kernel declaring exactly one network device. The component
   * makes its GCE disk image (a `DiskImage` of format `gce`).
   */
  unikernel: Unikernel;
  /** Arguments the unikernel receives at boot, e.g. `["--port=8080"]`. Default: none. */
  bootArgs?: pulumi.Input<pulumi.Input<string>[]>;
  /** The project for every resource. Default: the gcp provider's project. */
  project?: pulumi.Input<string>;
  /** The zone of the instance (one replica). Default: the gcp provider's zone. */
  zone?: pulumi.Input<string>;
  /** The region of the instance group (several replicas). Default: the gcp provider's region. */
  region?: pulumi.Input<string>;
  /**
   * An existing Cloud Storage bucket to upload the image to. Default: a bucket the component
   * creates in `bucketLocation`.
   */
  bucket?: pulumi.Input<string>;
  /** Where the component's own bucket lives. Default: `region` if given, else `US`. */
  bucketLocation?: pulumi.Input<string>;
  /** An image family to put the image in, so `family/NAME` finds the newest. Default: none. */
  imageFamily?: pulumi.Input<string>;
  /**
   * The machine type. Solo5 drives virtio-net only, so gVNIC-only families (c3, c4, n4, t2a and
   * other third-generation types) are refused. Default: `e2-micro`.
   */
  machineType?: string;
  /**
   * How many VMs. One is a plain instance; more become a regional managed instance group, rolled
   * to each new image with new VMs up before old ones go. Default: 1.
   */
  replicas?: number;
  /**
   * An existing VPC network (name or selfLink). Default: a network created with MTU 1500 when
   * `createNetwork` is set, else `default`.
   */
  network?: pulumi.Input<string>;
  /** An existing subnetwork (required for custom-mode networks). Default: none. */
  subnetwork?: pulumi.Input<string>;
  /**
   * Create a network with MTU 1500 (auto-mode subnets): Solo5 assumes 1500 while GCE networks
   * default to 1460. Default: false.
   */
  createNetwork?: boolean;
  /** Give each VM an ephemeral public IP. Default: true. */
  publicIp?: boolean;
  /** Ports to open to the component's VMs; a number is a TCP port. Default: none. */
  ports?: Port[];
  /** Who may reach `ports`, as CIDR ranges. Default: `["0.0.0.0/0"]`. */
  sourceRanges?: string[];
  /**
   * A service account for the VMs; `scopes` default to `cloud-platform` (IAM decides). Default:
   * none (a unikernel calls no Google APIs).
   */
  serviceAccount?: { email: pulumi.Input<string>; scopes?: pulumi.Input<pulumi.Input<string>[]> };
  /**
   * Labels for the image and the VMs, beside the ones the component sets: `mirage-unikernel`,
   * `mirage-kernel-sha256` (its first 32 hex digits: a label value holds 63 characters) and
   * `mirage-version`. Default: none.
   */
  labels?: Record<string, string>;
  /**
   * Make `pulumi up` wait until each VM's serial console (port 1) matches `serial`, a regular
   * expression source, within `timeoutSeconds` (default 300); on failure the error shows the
   * console's last lines. Needs `GOOGLE_OAUTH_ACCESS_TOKEN` or a logged-in gcloud CLI.
   * Default: no wait.
   */
  waitFor?: { serial: string; timeoutSeconds?: number };
}

/**
 * A MirageOS unikernel served from Google Compute Engine: its disk image uploaded to Cloud
 * Storage, a Compute Engine image, one VM (or a regional managed instance group), and a firewall
 * opening the declared ports to these VMs only. A new kernel or new boot arguments give a new
 * image, and new VMs boot before the old ones go.
 */
export class UnikernelService extends pulumi.ComponentResource {
  /** The disk image built for GCE. */
  readonly diskImage: DiskImage;
  /** The Compute Engine image's selfLink. */
  readonly imageSelfLink: pulumi.Output<string>;
  /** The VMs' names. */
  readonly instanceNames: pulumi.Output<string[]>;
  /** The VMs' public IPs (empty when `publicIp` is false). */
  readonly externalIps: pulumi.Output<string[]>;
  /** For each VM, the command that prints its serial console. */
  readonly serialCommands: pulumi.Output<string[]>;
  /** The managed instance group's selfLink, when `replicas` > 1. */
  readonly instanceGroup: pulumi.Output<string> | undefined;
  /** The boot verification, when `waitFor` is set: depend on it to act once the VMs serve. */
  readonly bootCheck: GceSerialWait | undefined;

  constructor(name: string, args: UnikernelServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    const gcp = gcpSdk("gcp.UnikernelService");
    // Everything that can be checked without outputs fails here, before anything is registered,
    // so preview reports it.
    checkName(name);
    const machineType = args.machineType ?? "e2-micro";
    checkMachineType(machineType);
    const replicas = args.replicas ?? 1;
    checkReplicas(replicas);
    const allows = firewallAllows(args.ports ?? []);
    const sourceRanges = args.sourceRanges ?? ["0.0.0.0/0"];
    checkSourceRanges(sourceRanges);
    checkLabels(args.labels ?? {});
    if (args.waitFor) checkWaitFor(args.waitFor);
    if (args.createNetwork && args.network !== undefined) {
      throw new Error(
        "gcp.UnikernelService: network and createNetwork exclude each other: give an existing network, or let the component create one",
      );
    }
    super("pulumi-mirage:gcp:UnikernelService", name, {}, opts);
    const parent = { parent: this };
    const serviceAccount = args.serviceAccount && {
      email: args.serviceAccount.email,
      scopes: args.serviceAccount.scopes ?? ["https://www.googleapis.com/auth/cloud-platform"],
    };
    const uk = args.unikernel;

    // Facts about the kernel, checked apart so each fails as soon as it is known: the target at
    // preview, the devices once the kernel is built. A wrong kernel stops before any upload.
    const kernelChecked = pulumi.all([
      uk.target.apply(checkTarget),
      uk.manifest.apply(checkNetDevices),
    ]);

    this.diskImage = new DiskImage(
      `${name}-disk`,
      { kernel: uk, format: "gce", bootArgs: args.bootArgs },
      parent,
    );

    const bucket =
      args.bucket ??
      new gcp.storage.Bucket(
        `${name}-images`,
        {
          project: args.project,
          location: args.bucketLocation ?? args.region ?? "US",
          uniformBucketLevelAccess: true,
        },
        parent,
      ).name;
    const upload = new gcp.storage.BucketObject(
      `${name}-upload`,
      {
        bucket,
        // Content-addressed: an unchanged image is never uploaded again.
        name: pulumi
          .all([kernelChecked, this.diskImage.objectName])
          .apply(([, objectName]) => objectName),
        source: this.diskImage.path.apply((path) => new pulumi.asset.FileAsset(path)),
        contentType: "application/gzip",
      },
      parent,
    );

    const labels = pulumi
      .all([uk.name, uk.sha256, uk.mirageVersion])
      .apply(([ukName, kernelSha, mirageVersion]) => ({
        ...args.labels,
        ...kernelLabels(ukName, kernelSha, mirageVersion),
      }));
    const image = new gcp.compute.Image(
      `${name}-image`,
      {
        project: args.project,
        // The API accepts only this URL form, not gs:// (docs/platforms.md, Google Compute Engine).
        rawDisk: {
          source: pulumi.interpolate`https://storage.googleapis.com/${upload.bucket}/${upload.name}`,
        },
        family: args.imageFamily,
        description: pulumi.interpolate`MirageOS unikernel ${uk.name}, kernel sha256 ${uk.sha256}`,
        labels,
        // No guestOsFeatures: a BIOS disk, no UEFI, no gVNIC.
      },
      parent,
    );
    this.imageSelfLink = image.selfLink;

    let network = args.network;
    if (args.createNetwork) {
      network = new gcp.compute.Network(
        `${name}-net`,
        { project: args.project, autoCreateSubnetworks: true, mtu: 1500 },
        parent,
      ).selfLink;
    }
    const networkInterface = {
      network: network ?? "default",
      subnetwork: args.subnetwork,
      nicType: "VIRTIO_NET",
      accessConfigs: args.publicIp === false ? [] : [{}],
    };
    // Tags scope the firewall to this component's VMs; the hash keeps two stacks apart.
    const tag = `${name}-${sha256(`${pulumi.getProject()}/${pulumi.getStack()}/${name}`).slice(0, 8)}`;

    let firewall: gcp.compute.Firewall | undefined;
    if (allows.length > 0) {
      firewall = new gcp.compute.Firewall(
        `${name}-fw`,
        {
          project: args.project,
          network: networkInterface.network,
          direction: "INGRESS",
          allows,
          targetTags: [tag],
          sourceRanges,
        },
        parent,
      );
    }

    const vm: VmSpec = {
      project: args.project,
      machineType,
      image: image.selfLink,
      networkInterface,
      tag,
      labels,
      serviceAccount,
    };
    const vmOpts = { parent: this, dependsOn: firewall ? [firewall] : [] };
    const vms =
      replicas === 1
        ? singleVm(name, vm, args.zone, vmOpts)
        : groupOfVms(name, vm, replicas, args.region, vmOpts);
    const instanceLinks = vms.links;
    this.instanceGroup = vms.group;
    this.externalIps = vms.externalIps;
    this.instanceNames = instanceLinks.apply((links) => links.map((l) => parseInstance(l).name));
    this.serialCommands = instanceLinks.apply((links) =>
      links.map((l) => serialCommand(parseInstance(l))),
    );

    this.bootCheck = args.waitFor
      ? new GceSerialWait(
          `${name}-boot`,
          {
            instances: instanceLinks,
            pattern: args.waitFor.serial,
            timeoutSeconds: args.waitFor.timeoutSeconds ?? 300,
          },
          { parent: this, dependsOn: [vms.resource] },
        )
      : undefined;

    this.registerOutputs({
      imageSelfLink: this.imageSelfLink,
      instanceNames: this.instanceNames,
      externalIps: this.externalIps,
      serialCommands: this.serialCommands,
      instanceGroup: this.instanceGroup,
    });
  }
}

/** What the VMs are made of, whether one instance or a group. */
interface VmSpec {
  project: pulumi.Input<string> | undefined;
  machineType: string;
  image: pulumi.Output<string>;
  networkInterface: gcp.types.input.compute.InstanceNetworkInterface &
    gcp.types.input.compute.InstanceTemplateNetworkInterface;
  tag: string;
  labels: pulumi.Output<Record<string, string>>;
  serviceAccount:
    | { email: pulumi.Input<string>; scopes: pulumi.Input<pulumi.Input<string>[]> }
    | undefined;
}

interface Vms {
  resource: pulumi.Resource;
  /** The instances' selfLinks. */
  links: pulumi.Output<string[]>;
  externalIps: pulumi.Output<string[]>;
  group: pulumi.Output<string> | undefined;
}

function singleVm(
  name: string,
  vm: VmSpec,
  zone: pulumi.Input<string> | undefined,
  opts: pulumi.CustomResourceOptions,
): Vms {
  const gcp = gcpSdk("gcp.UnikernelService");
  const instance = new gcp.compute.Instance(
    `${name}-vm`,
    {
      project: vm.project,
      zone,
      machineType: vm.machineType,
      bootDisk: { initializeParams: { image: vm.image } },
      networkInterfaces: [vm.networkInterface],
      tags: [vm.tag],
      labels: vm.labels,
      serviceAccount: vm.serviceAccount,
      // A unikernel keeps no state: a machine type change may stop and restart it.
      allowStoppingForUpdate: true,
    },
    {
      ...opts,
      // A new image is a new VM (auto-named, so both exist for a moment): the new one is
      // created, and verified when `waitFor` is set, before the old one is deleted.
      replaceOnChanges: ["bootDisk.initializeParams.image"],
      deleteBeforeReplace: false,
    },
  );
  return {
    resource: instance,
    links: instance.selfLink.apply((link) => [link]),
    externalIps: instance.networkInterfaces.apply((nics) =>
      (nics[0]?.accessConfigs ?? []).map((a) => a.natIp).filter((ip) => !!ip),
    ),
    group: undefined,
  };
}

function groupOfVms(
  name: string,
  vm: VmSpec,
  replicas: number,
  region: pulumi.Input<string> | undefined,
  opts: pulumi.CustomResourceOptions,
): Vms {
  const gcp = gcpSdk("gcp.UnikernelService");
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
    },
    // Templates are immutable: a new image is a new template, made before the old one goes.
    { parent: opts.parent, deleteBeforeReplace: false },
  );
  const group = new gcp.compute.RegionInstanceGroupManager(
    `${name}-group`,
    {
      project: vm.project,
      region,
      baseInstanceName: name,
      versions: [{ name: "primary", instanceTemplate: template.selfLinkUnique }],
      targetSize: replicas,
      // Roll to a new template at once, new VMs first: no VM goes before its successor runs.
      // A regional group surges by at least its number of zones (3).
      updatePolicy: {
        type: "PROACTIVE",
        minimalAction: "REPLACE",
        maxSurgeFixed: Math.max(3, replicas),
        maxUnavailableFixed: 0,
      },
      waitForInstances: true,
      waitForInstancesStatus: "UPDATED",
    },
    opts,
  );
  const invokeOpts = { parent: opts.parent };
  const links = gcp.compute
    .getRegionInstanceGroupOutput({ selfLink: group.instanceGroup }, invokeOpts)
    .instances.apply((members) => members.map((m) => m.instance).sort());
  const externalIps = links.apply((selfLinks) =>
    pulumi.all(
      selfLinks.map((selfLink) =>
        gcp.compute
          .getInstanceOutput({ selfLink }, invokeOpts)
          .networkInterfaces.apply((nics) => nics[0]?.accessConfigs?.[0]?.natIp ?? ""),
      ),
    ),
  );
  return {
    resource: group,
    links,
    externalIps: externalIps.apply((ips) => ips.filter((ip) => ip !== "")),
    group: group.instanceGroup,
  };
}
