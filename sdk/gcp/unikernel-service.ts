import type * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { parseInstance, serialCommand } from "../../provider/gcp/serial";
import { sha256 } from "../../provider/hash";
import { DiskImage } from "../disk-image";
import { gcpSdk } from "../peers";
import type { Unikernel } from "../unikernel";
import { groupBalancer, regionOfZone, vmAddress } from "./address";
import { GceSerialWait, type GceSerialWaitArgs } from "./serial-wait";
import {
  checkLabels,
  checkMachineType,
  checkName,
  checkNetDevices,
  checkReplicas,
  checkSourceRanges,
  checkStaticIp,
  checkTarget,
  checkWaitFor,
  firewallAllows,
  type HealthCheckArgs,
  healthCheckSpec,
  kernelLabels,
  type Port,
  tcpPorts,
} from "./validate";
import { groupOfVms, singleVm, type VmSpec } from "./vms";

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
   * to each new image with new VMs up, and healthy (see `healthCheck`), before old ones go.
   * Default: 1.
   */
  replicas?: number;
  /**
   * How a group (`replicas` > 1) tells a serving VM: a TCP connect to `port`, or an HTTP GET of
   * `httpPath` on it answering 200, from Google's probers (a firewall rule lets them in). The
   * group recreates a VM failing it (`initialDelaySec` after it starts), and a rolling update
   * removes no old VM until a new one has passed it for `minReadySec`. One VM has no health
   * check: its boot wait gates its replacement. Default: TCP on the first TCP port in `ports`
   * (a group with none is refused), `initialDelaySec` 120, `minReadySec` 30.
   */
  healthCheck?: HealthCheckArgs;
  /**
   * An existing VPC network (name or selfLink), used as it is. Solo5 sends 1500-byte frames,
   * so a network with a smaller MTU (`default` and other networks made with GCE's default of
   * 1460) drops full-size packets: preview warns about `default`. Default: a network the
   * component creates, with MTU 1500 and auto-mode subnets.
   */
  network?: pulumi.Input<string>;
  /** An existing subnetwork of `network` (required for custom-mode networks). Default: none. */
  subnetwork?: pulumi.Input<string>;
  /** Give each VM an ephemeral public IP. Default: true. */
  publicIp?: boolean;
  /**
   * Reserve an external address that survives replacements, output as `address`. One VM holds
   * it itself; as a VM can hold it only once the previous one has let it go, a new image then
   * replaces the VM delete-first (a short outage, and no old VM to fall back on). A group gets
   * one global address in front of it: a proxy load balancer forwarding each TCP port in
   * `ports` to VMs passing the health check, new VMs first, without an outage; its VMs may then
   * go without public IPs (`publicIp: false`). Default: false.
   */
  staticIp?: boolean;
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
   * console's last lines. It calls the Compute Engine API with the gcp provider's credentials
   * (an explicit provider's `accessToken`/`credentials`, or `gcp:accessToken`/`gcp:credentials`),
   * else GOOGLE_OAUTH_ACCESS_TOKEN, GOOGLE_CREDENTIALS, then Application Default Credentials.
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
  /**
   * The address clients use: with `staticIp`, the reserved one (the VM's, or the group's load
   * balancer's, which forwards the TCP `ports`); else the first VM's public IP, which changes
   * when the VM is replaced. Undefined when there is none.
   */
  readonly address: pulumi.Output<string | undefined>;
  /** For each VM, the command that prints its serial console. */
  readonly serialCommands: pulumi.Output<string[]>;
  /** The managed instance group's selfLink, when `replicas` > 1. */
  readonly instanceGroup: pulumi.Output<string> | undefined;
  /**
   * The boot verification, when `waitFor` is set: depend on it to act once the VMs serve. For a
   * group it waits for each VM of the new template.
   */
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
    if (args.staticIp) checkStaticIp(replicas, args.publicIp ?? true, args.ports ?? []);
    // A group needs a health check; one VM is gated by its boot wait alone.
    const health =
      replicas > 1 ? healthCheckSpec(args.healthCheck, args.ports ?? [], replicas) : undefined;
    if (args.subnetwork !== undefined && args.network === undefined) {
      throw new Error(
        "gcp.UnikernelService: subnetwork is given without network: give the network the subnetwork belongs to",
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

    const network =
      args.network ??
      // Solo5 assumes MTU 1500; GCE networks default to 1460 (docs/platforms.md, Google Compute Engine).
      new gcp.compute.Network(
        `${name}-net`,
        { project: args.project, autoCreateSubnetworks: true, mtu: 1500 },
        parent,
      ).selfLink;
    if (isDefaultNetwork(args.network)) {
      pulumi.log.warn(
        `network "${args.network}" has MTU 1460 while Solo5 sends 1500-byte frames: full-size ` +
          "packets are dropped and large responses stall. Leave network unset (the component " +
          "creates an MTU 1500 network), or give a network created with mtu: 1500.",
        this,
      );
    }
    const networkInterface = {
      network,
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
      network: networkInterface.network,
      networkInterface,
      tag,
      labels,
      serviceAccount,
    };
    const vmOpts = { parent: this, dependsOn: firewall ? [firewall] : [] };
    const waitFor = args.waitFor;
    const bootWait = (
      target: Pick<GceSerialWaitArgs, "instances" | "group">,
      vms: pulumi.Resource,
    ): GceSerialWait | undefined =>
      waitFor === undefined
        ? undefined
        : new GceSerialWait(
            `${name}-boot`,
            {
              ...target,
              pattern: waitFor.serial,
              timeoutSeconds: waitFor.timeoutSeconds ?? 300,
              ...providerCredentials(this),
            },
            { parent: this, dependsOn: [vms] },
          );

    let instanceLinks: pulumi.Output<string[]>;
    if (health === undefined) {
      const region =
        args.region ?? (typeof args.zone === "string" ? regionOfZone(args.zone) : undefined);
      const reserved = args.staticIp ? vmAddress(name, args.project, region, parent) : undefined;
      const single = singleVm(name, vm, args.zone, reserved?.address, vmOpts);
      this.bootCheck = bootWait(single.waitTarget, single.instance);
      instanceLinks = single.instance.selfLink.apply((link) => [link]);
      this.externalIps = single.instance.networkInterfaces.apply((nics) =>
        (nics[0]?.accessConfigs ?? []).map((a) => a.natIp).filter((ip) => !!ip),
      );
      this.instanceGroup = undefined;
      this.address = reserved
        ? reserved.address
        : this.externalIps.apply((ips): string | undefined => ips[0]);
    } else {
      const balancedPorts = args.staticIp ? tcpPorts(args.ports ?? []) : [];
      const group = groupOfVms(
        name,
        vm,
        {
          replicas,
          region: args.region,
          health,
          balancedPorts,
          bootWait: args.waitFor !== undefined,
        },
        vmOpts,
      );
      this.bootCheck = bootWait(group.waitTarget, group.manager);
      // The VMs that booted, when awaited; else the group's members once it is stable.
      instanceLinks = this.bootCheck?.waited ?? groupMembers(group.manager, this);
      this.externalIps = natIps(instanceLinks, this);
      this.instanceGroup = group.manager.instanceGroup;
      this.address = args.staticIp
        ? groupBalancer(
            name,
            {
              project: args.project,
              instanceGroup: group.manager.instanceGroup,
              healthCheck: group.healthCheck,
              ports: balancedPorts,
            },
            parent,
          )
        : this.externalIps.apply((ips): string | undefined => ips[0]);
    }
    this.instanceNames = instanceLinks.apply((links) => links.map((l) => parseInstance(l).name));
    this.serialCommands = instanceLinks.apply((links) =>
      links.map((l) => serialCommand(parseInstance(l))),
    );

    this.registerOutputs({
      imageSelfLink: this.imageSelfLink,
      instanceNames: this.instanceNames,
      externalIps: this.externalIps,
      address: this.address,
      serialCommands: this.serialCommands,
      instanceGroup: this.instanceGroup,
    });
  }
}

/**
 * The gcp provider's own credentials, for the boot wait's API calls: those of an explicit
 * provider given to the component, else the stack's `gcp:accessToken` / `gcp:credentials`.
 */
function providerCredentials(component: pulumi.ComponentResource): {
  accessToken?: pulumi.Input<string>;
  credentials?: pulumi.Input<string>;
} {
  const provider = component.getProvider("gcp:compute/instance:Instance") as
    | Partial<Pick<gcp.Provider, "accessToken" | "credentials">>
    | undefined;
  if (provider?.accessToken !== undefined || provider?.credentials !== undefined) {
    return {
      accessToken: provider.accessToken as pulumi.Output<string> | undefined,
      credentials: provider.credentials as pulumi.Output<string> | undefined,
    };
  }
  const config = new pulumi.Config("gcp");
  return {
    accessToken: config.getSecret("accessToken"),
    credentials: config.getSecret("credentials"),
  };
}

/** A group's VMs, as the gcp provider lists them. */
function groupMembers(
  manager: gcp.compute.RegionInstanceGroupManager,
  parent: pulumi.Resource,
): pulumi.Output<string[]> {
  const gcp = gcpSdk("gcp.UnikernelService");
  return gcp.compute
    .getRegionInstanceGroupOutput({ selfLink: manager.instanceGroup }, { parent })
    .instances.apply((members) => members.map((m) => m.instance).sort());
}

/** The public IPs of instances given by selfLink; those without one are left out. */
function natIps(links: pulumi.Output<string[]>, parent: pulumi.Resource): pulumi.Output<string[]> {
  const gcp = gcpSdk("gcp.UnikernelService");
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

/** The `default` network, by name or selfLink: GCE always gives it MTU 1460. */
function isDefaultNetwork(network: pulumi.Input<string> | undefined): boolean {
  return typeof network === "string" && /(^|\/networks\/)default$/.test(network);
}
