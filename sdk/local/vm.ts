import * as pulumi from "@pulumi/pulumi";
import type { AccelMode } from "../../rules/accel";
import type { LegacyPortForward, PortForward, VmPort } from "../../rules/local";
import type { WaitFor } from "../../rules/wait";
import { DiskImage } from "../disk-image";
import { engineProvider } from "../engine";
import { waitForInput } from "../wait";

export type { AccelMode } from "../../rules/accel";
export type { LegacyPortForward, PortForward, VmPort } from "../../rules/local";
export type { WaitFor } from "../../rules/wait";

export interface VmArgs {
  /**
   * The image to boot: a `DiskImage` of a virtio unikernel, or the path of a disk.raw or a GCE
   * image.tar.gz. It is never modified (QEMU runs with `-snapshot`).
   */
  image: DiskImage | pulumi.Input<string>;
  /**
   * The guest's ports to reach from the host, in the shape every resource's `ports` take: a
   * number is a TCP port forwarded from the same port of the host's 127.0.0.1; an object names
   * the guest's `port`, and optionally its `protocol` (`tcp` or `udp`), the `host` port
   * (default: `port`) and the `hostAddress` (default: 127.0.0.1). E.g. `[8080, { port: 80,
   * host: 8081 }]`. 0.1's `{ host, guest }` is still taken (deprecated). Default: none.
   */
  ports?: pulumi.Input<pulumi.Input<VmPort | LegacyPortForward>[]>;
  /** Guest memory, from 16 to 1048576 MiB. Default: 128. */
  memoryMiB?: pulumi.Input<number>;
  /**
   * Attach one virtio-net NIC (QEMU user-mode network). Default: when the unikernel declares a
   * network device (known from a `DiskImage`), or when `ports` are given.
   */
  net?: pulumi.Input<boolean>;
  /**
   * Create finishes only once the console matches (`timeoutSeconds` default: 60). Default: once
   * QEMU has stayed up a second.
   */
  waitFor?: pulumi.Input<WaitFor>;
  /** Where the VM's files (console log) are kept. Default: the same cache as `Unikernel`, under `run/`. */
  cacheDir?: pulumi.Input<string>;
  /**
   * The accelerator: `auto` uses KVM where QEMU has been seen to run a guest with it on this host
   * (a probe boot, remembered until the host reboots), else TCG; `kvm` and `tcg` force one.
   * Default: the PULUMI_MIRAGE_ACCEL environment variable, else `auto`.
   */
  accel?: pulumi.Input<AccelMode>;
}

/**
 * A unikernel disk image booted locally in QEMU (KVM where QEMU can use it, otherwise TCG: see `accel`),
 * as a background process that keeps running after `pulumi up` returns. Its serial console goes
 * to a log file. A VM that died is reported gone by `pulumi refresh`; `pulumi destroy` stops it
 * and removes its files. Changing anything but `waitFor` replaces the VM.
 */
export class Vm extends pulumi.dynamic.Resource {
  /** QEMU's process id. */
  declare readonly pid: pulumi.Output<number>;
  /** QEMU's start time (/proc clock ticks), which tells it apart from a later process with the same pid. */
  declare readonly startTime: pulumi.Output<number>;
  /** The serial console's log file. */
  declare readonly consoleLog: pulumi.Output<string>;
  /**
   * The first lines of the console, read when the VM had started (and matched `waitFor`); secret
   * when the DiskImage's boot arguments are, since a unikernel may print its command line.
   */
  declare readonly console: pulumi.Output<string[]>;
  /** The accelerator QEMU runs with: `kvm` or `tcg`. */
  declare readonly accel: pulumi.Output<string>;
  /** Why that accelerator (in `auto`, what the probe found). */
  declare readonly accelReason: pulumi.Output<string>;
  /** The forwards QEMU makes, host to guest (a TCP one as 0.1 recorded it). */
  declare readonly ports: pulumi.Output<PortForward[]>;
  /** The directory holding the VM's files. */
  declare readonly stateDir: pulumi.Output<string>;

  constructor(name: string, args: VmArgs, opts?: pulumi.CustomResourceOptions) {
    const image = args.image;
    const fromResource = image instanceof DiskImage;
    super(
      engineProvider("local-vm"),
      name,
      {
        image: fromResource ? image.path : image,
        imageSha256: fromResource ? image.sha256 : undefined,
        target: fromResource ? image.target : undefined,
        manifest: fromResource ? image.manifest : undefined,
        ports: args.ports ?? [],
        memoryMiB: args.memoryMiB,
        net: args.net,
        waitFor: waitForInput("local.Vm", name, args.waitFor),
        cacheDir: args.cacheDir,
        accel: args.accel,
        accelReason: undefined,
        pid: undefined,
        startTime: undefined,
        consoleLog: undefined,
        stateDir: undefined,
        // The console shows the kernel's command line, so it is as secret as the boot arguments:
        // the engine keeps an output secret when an input of the same name was (docs/platforms.md,
        // Pulumi dynamic providers).
        console: fromResource ? image.bootArgs.apply((): string[] => []) : undefined,
      },
      opts,
      "pulumi-mirage",
      "LocalVm",
    );
  }
}
