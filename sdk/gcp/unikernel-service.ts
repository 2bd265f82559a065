import type * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { parseInstance, serialCommand } from "../../provider/gcp/serial";
import type { WaitFor } from "../../rules/wait";
import type { DiskImage } from "../disk-image";
import { gcpSdk } from "../peers";
import type { Unikernel } from "../unikernel";
import {
  bootWaitOf,
  imageGraph,
  networkGraph,
  oneVm,
  serviceLabels,
  stackUnique,
  vmGroup,
} from "./graph";
import { hostLaunch } from "./host-service";
import { COMPONENT, type HostSpec, resolveArgs, type ServiceSpec } from "./resolve";
import type { GceSerialWait } from "./serial-wait";
import type { HealthCheckArgs, Port } from "./validate";
import type { VmSpec } from "./vms";

/** The host path's options: an spt or hvt unikernel under its Solo5 tender on a Linux VM. */
export interface HostArgs {
  /**
   * The path of the unikernel's tender, `solo5-spt` or `solo5-hvt` (your opam switch's, e.g.
   * `$(opam var bin)/solo5-spt`), built for the machine type's architecture; uploaded with the
   * kernel.
   */
  tender: pulumi.Input<string>;
  /**
   * The VMs' boot image. Default: `debian-cloud/debian-12` (`debian-cloud/debian-12-arm64` on Arm
   * machine types), resolved by Compute Engine when a VM is made.
   */
  image?: pulumi.Input<string>;
}

/**
 * Arguments of `gcp.UnikernelService`. The ones the component checks before anything is created
 * (machine type, replicas, ports, source ranges, labels, waitFor) are plain values, so
 * `pulumi preview` reports a mistake in them.
 */
export interface UnikernelServiceArgs {
  /**
   * The unikernel to run: a virtio kernel declaring exactly one network device, whose GCE disk
   * image the component makes (a `DiskImage` of format `gce`), or that `DiskImage` itself, made
   * by the program (with its own boot arguments: give no `bootArgs` then); or, with `host`, an spt
   * or hvt `Unikernel` (no block devices) run under its tender.
   */
  unikernel: Unikernel | DiskImage;
  /**
   * Run the unikernel (spt or hvt) under its Solo5 tender on a stock Debian 12 VM, which any
   * machine family can be (gVNIC-only ones too), instead of booting a virtio kernel's own image.
   * The kernel and the tender go into a private bucket that only the VMs' own service account may
   * read; each VM's startup-script fetches and checks them, forwards `ports` to the unikernel and
   * runs the tender as a systemd service, at every boot. Default: none (the virtio path).
   */
  host?: HostArgs;
  /** Arguments the unikernel receives at boot, e.g. `["--port=8080"]`. Default: none. */
  bootArgs?: pulumi.Input<pulumi.Input<string>[]>;
  /** The project for every resource. Default: the gcp provider's project. */
  project?: pulumi.Input<string>;
  /** The zone of the instance (one replica). Default: the gcp provider's zone. */
  zone?: pulumi.Input<string>;
  /** The region of the instance group (several replicas). Default: the gcp provider's region. */
  region?: pulumi.Input<string>;
  /**
   * An existing Cloud Storage bucket to upload the image to (virtio only). Default: a bucket the
   * component creates in `bucketLocation`.
   */
  bucket?: pulumi.Input<string>;
  /**
   * Where the component's own bucket (the image's, or a host's) lives. Default: `region` if
   * given, else `US`.
   */
  bucketLocation?: pulumi.Input<string>;
  /**
   * An image family to put the image in, so `family/NAME` finds the newest (virtio only).
   * Default: none.
   */
  imageFamily?: pulumi.Input<string>;
  /**
   * The machine type. A virtio kernel: Solo5 drives virtio-net only, so gVNIC-only families (c3,
   * c4, n4, t2a and other third-generation types) are refused; default `e2-micro`. With `host`:
   * any family for spt (default `e2-micro`); for hvt, which needs KVM, an Intel family offering
   * nested virtualization (n1, n2, c2, m1, m2, c3, c4, n4, m3; default `n2-standard-2`). The
   * kernel and the tender must be built for its architecture (Arm families: t2a, c4a, n4a). What
   * is refused is refused at preview.
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
   * A service account for the VMs (virtio only: a host runs as one of its own); `scopes` default
   * to `cloud-platform` (IAM decides). Default: none (a unikernel calls no Google APIs).
   */
  serviceAccount?: { email: pulumi.Input<string>; scopes?: pulumi.Input<pulumi.Input<string>[]> };
  /**
   * Labels for the image and the VMs, beside the ones the component sets: `mirage-unikernel`,
   * `mirage-kernel-sha256` (its first 32 hex digits: a label value holds 63 characters) and
   * `mirage-version`. Default: none.
   */
  labels?: Record<string, string>;
  /**
   * Make `pulumi up` wait until each VM's serial console (port 1) matches `console`, a regular
   * expression or its source (as for every boot wait), within `timeoutSeconds` (default 300; at
   * most 2147483, the longest a Node timer waits); on failure the error shows the console's last
   * lines. The former `{ serial }` is still taken (deprecated: rename it `console`). It calls the Compute Engine API with the gcp provider's credentials
   * (an explicit provider's `accessToken`/`credentials`, or `gcp:accessToken`/`gcp:credentials`),
   * else GOOGLE_OAUTH_ACCESS_TOKEN, GOOGLE_CREDENTIALS, then Application Default Credentials.
   * Default: no wait.
   */
  waitFor?: WaitFor | SerialWaitFor;
}

/** `waitFor` as it was in 0.1: `serial` is `console`'s former name. */
export interface SerialWaitFor {
  /** @deprecated Renamed `console`, as on every other boot wait; still taken. */
  serial: string;
  timeoutSeconds?: number;
}

/**
 * A MirageOS unikernel served from Google Compute Engine: one VM (or a regional managed instance
 * group) and a firewall opening the declared ports to these VMs only. A virtio kernel boots from
 * its own disk image, uploaded to Cloud Storage and registered as a Compute Engine image; with
 * `host`, an spt or hvt kernel runs under its tender on a stock Debian 12 VM of any machine
 * family. A new kernel or new boot arguments give new VMs, which boot before the old ones go.
 */
export class UnikernelService extends pulumi.ComponentResource {
  /** The disk image for GCE, made by the component or given (virtio; none with `host`). */
  readonly diskImage: DiskImage | undefined;
  /** The Compute Engine image's selfLink (virtio), or the host VMs' boot image as given. */
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
    gcpSdk(COMPONENT);
    // Everything that can be checked without outputs fails here, before anything is registered,
    // so preview reports it.
    const spec = resolveArgs(name, args);
    super("pulumi-mirage:gcp:UnikernelService", name, {}, opts);
    const net = networkGraph(spec, this);
    const boots = spec.host
      ? hostBoots({ ...spec, host: spec.host }, this)
      : virtioBoots(spec, this);
    const vm: VmSpec = {
      project: spec.project,
      network: net.network,
      networkInterface: { ...net.networkInterface, nicType: boots.nicType },
      tag: net.tag,
      labels: serviceLabels(spec),
      ...boots.vm,
    };
    const vmOpts = { parent: this, dependsOn: net.firewall ? [net.firewall] : [] };
    const bootWait = bootWaitOf(spec, providerCredentials(this), this);
    const { health } = spec;
    const serving =
      health === undefined
        ? oneVm(spec, vm, bootWait, vmOpts)
        : vmGroup({ ...spec, health }, vm, bootWait, vmOpts);

    this.diskImage = boots.diskImage;
    this.imageSelfLink = pulumi.output(boots.vm.image);
    this.bootCheck = serving.bootCheck;
    this.externalIps = serving.externalIps;
    this.address = serving.address;
    this.instanceGroup = serving.instanceGroup;
    const links = serving.instanceLinks;
    this.instanceNames = links.apply((all) => all.map((l) => parseInstance(l).name));
    this.serialCommands = links.apply((all) => all.map((l) => serialCommand(parseInstance(l))));
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

/** What the VMs boot, and how: the parts of a VmSpec that differ between the two paths. */
interface Boots {
  vm: Pick<
    VmSpec,
    "machineType" | "image" | "serviceAccount" | "startupScript" | "nestedVirtualization"
  >;
  nicType: pulumi.Input<string | undefined>;
  diskImage: DiskImage | undefined;
}

/** A virtio kernel's own image, on a family offering virtio-net. */
function virtioBoots(spec: ServiceSpec, parent: pulumi.Resource): Boots {
  const { diskImage, image } = imageGraph(spec, parent);
  return {
    vm: {
      machineType: spec.machineType as string,
      image: image.selfLink,
      serviceAccount: spec.serviceAccount,
    },
    nicType: "VIRTIO_NET",
    diskImage,
  };
}

/** A Linux VM running the kernel under its tender (host-service.ts). */
function hostBoots(spec: ServiceSpec & { host: HostSpec }, parent: pulumi.Resource): Boots {
  const host = hostLaunch(spec, stackUnique(spec.name), parent);
  return {
    vm: {
      machineType: host.machineType,
      image: host.image,
      serviceAccount: host.serviceAccount,
      startupScript: host.startupScript,
      nestedVirtualization: host.nestedVirtualization,
    },
    nicType: host.nicType,
    diskImage: undefined,
  };
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
