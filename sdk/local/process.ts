import * as pulumi from "@pulumi/pulumi";
import type { ProcessTarget } from "../../rules/local";
import type { WaitFor } from "../../rules/wait";
import { engineProvider } from "../engine";
import { Unikernel } from "../unikernel";
import { waitForInput } from "../wait";
import { Tap } from "./tap";

export type { ProcessTarget } from "../../rules/local";

/** A network device's tap: a `Tap`, an existing tap's name, or either with the MAC address to use. */
export type NetDevice =
  | Tap
  | pulumi.Input<string>
  | {
      iface: Tap | pulumi.Input<string>;
      /** e.g. `02:00:00:00:00:01`. Default: the tender picks a random one. */
      mac?: pulumi.Input<string>;
    };

/** A block device's file: its path, or the path with the size to create it at and its sector size. */
export type BlockDevice =
  | pulumi.Input<string>
  | {
      /** The file; an existing one is used as it is, never truncated, and kept by destroy. */
      path: pulumi.Input<string>;
      /** Create the file, sparse, at this size when it does not exist. Default: it must exist. */
      sizeMiB?: pulumi.Input<number>;
      /** A power of two from 512. Default: the tender's 512. */
      sectorSize?: pulumi.Input<number>;
    };

const tapName = (tap: Tap | pulumi.Input<string>) => (tap instanceof Tap ? tap.interface : tap);

/** `{ iface, mac }`, told apart from a Tap and from an Output (whose proxy has every property). */
const isNetObject = (device: NetDevice): device is Extract<NetDevice, { iface: unknown }> =>
  typeof device === "object" &&
  !(device instanceof Tap) &&
  !pulumi.Output.isInstance(device) &&
  !(device instanceof Promise);

function netInputs(net: Record<string, NetDevice> | undefined) {
  if (net === undefined) return undefined;
  return Object.fromEntries(
    Object.entries(net).map(([name, device]) => [
      name,
      isNetObject(device) ? { iface: tapName(device.iface), mac: device.mac } : tapName(device),
    ]),
  );
}

export interface ProcessArgs {
  /** The unikernel: a `Unikernel` resource, or the path of a kernel binary. */
  kernel: Unikernel | pulumi.Input<string>;
  /**
   * `hvt` and `spt` kernels run under the Solo5 tender (`solo5-hvt`, `solo5-spt`); `unix` builds
   * run as plain programs. Default: the `Unikernel`'s, or for a kernel path the target its Solo5
   * ABI1 note names (a unix build carries none: give `"unix"`).
   */
  target?: pulumi.Input<ProcessTarget>;
  /** Arguments the unikernel receives, e.g. `["--hello=Hi"]`. Default: none. */
  args?: pulumi.Input<pulumi.Input<string>[]>;
  /** The tender's path, for hvt/spt. Default: `solo5-hvt` / `solo5-spt` on PATH. */
  tender?: pulumi.Input<string>;
  /** Guest memory for hvt/spt (the tender's `--mem`). Default: the tender's. */
  memoryMiB?: pulumi.Input<number>;
  /**
   * A tap for each network device the kernel declares, by device name, e.g.
   * `{ service: tap }`: the tender refuses a kernel with a declared device left unattached, and
   * so does `pulumi preview`. Default: none.
   */
  net?: Record<string, NetDevice>;
  /**
   * A file for each block device the kernel declares, by device name, e.g.
   * `{ storage: { path: "/var/lib/app/storage.img", sizeMiB: 64 } }`. Default: none.
   */
  block?: Record<string, pulumi.Input<BlockDevice>>;
  /**
   * The network namespace the tender runs in (`ip netns add NAME`), where its taps are. Default:
   * the namespace the program runs in.
   */
  netns?: pulumi.Input<string>;
  /** Create finishes only once the output matches. Default: once the process has stayed up a second. */
  waitFor?: pulumi.Input<WaitFor>;
  /** Where the process's files (its output log) are kept. Default: the same cache as `Unikernel`, under `run/`. */
  cacheDir?: pulumi.Input<string>;
}

/**
 * A unikernel run locally as a background process: hvt and spt kernels under their Solo5 tender
 * (`solo5-hvt`, which needs KVM, or `solo5-spt`), with the devices they declare attached; unix
 * builds directly. It keeps running after `pulumi up` returns; its output goes to a log file.
 * A process that died is reported gone by `pulumi refresh`; `pulumi destroy` stops it and removes
 * its files. Changing anything but `waitFor` replaces it.
 */
export class Process extends pulumi.dynamic.Resource {
  declare readonly pid: pulumi.Output<number>;
  /** The process's start time (/proc clock ticks), which tells it apart from a later process with the same pid. */
  declare readonly startTime: pulumi.Output<number>;
  /** The log of its stdout and stderr. */
  declare readonly consoleLog: pulumi.Output<string>;
  /** The first lines of its output, read when it had started (and matched `waitFor`). */
  declare readonly console: pulumi.Output<string[]>;
  /** The directory holding its files. */
  declare readonly stateDir: pulumi.Output<string>;

  constructor(name: string, args: ProcessArgs, opts?: pulumi.CustomResourceOptions) {
    const kernel = args.kernel;
    const fromResource = kernel instanceof Unikernel;
    super(
      engineProvider("local-process"),
      name,
      {
        kernel: fromResource ? kernel.kernelPath : kernel,
        kernelSha256: fromResource ? kernel.sha256 : undefined,
        target: args.target ?? (fromResource ? kernel.target : undefined),
        args: args.args ?? [],
        tender: args.tender,
        memoryMiB: args.memoryMiB,
        // The devices the kernel declares: from its Unikernel, else check reads the file.
        manifest: fromResource ? kernel.manifest : undefined,
        net: netInputs(args.net),
        block: args.block,
        netns: args.netns,
        waitFor: waitForInput("local.Process", name, args.waitFor),
        cacheDir: args.cacheDir,
        pid: undefined,
        startTime: undefined,
        consoleLog: undefined,
        console: undefined,
        stateDir: undefined,
      },
      opts,
      "pulumi-mirage",
      "LocalProcess",
    );
  }
}
