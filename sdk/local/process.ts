import * as pulumi from "@pulumi/pulumi";
import { engineProvider } from "../engine";
import { Unikernel } from "../unikernel";
import type { WaitFor } from "./vm";

/** The targets that run as a local process. */
export type ProcessTarget = "hvt" | "spt" | "unix";

export interface ProcessArgs {
  /** The unikernel: a `Unikernel` resource, or the path of a kernel binary. */
  kernel: Unikernel | pulumi.Input<string>;
  /**
   * `hvt` and `spt` kernels run under the Solo5 tender (`solo5-hvt`, `solo5-spt`); `unix` builds
   * run as plain programs. Required with a kernel path; a `Unikernel` gives its own.
   */
  target?: pulumi.Input<ProcessTarget>;
  /** Arguments the unikernel receives, e.g. `["--hello=Hi"]`. Default: none. */
  args?: pulumi.Input<pulumi.Input<string>[]>;
  /** The tender's path, for hvt/spt. Default: `solo5-hvt` / `solo5-spt` on PATH. */
  tender?: pulumi.Input<string>;
  /** Guest memory for hvt/spt (the tender's `--mem`). Default: the tender's. */
  memoryMiB?: pulumi.Input<number>;
  /** Create finishes only once the output matches. Default: once the process has stayed up a second. */
  waitFor?: pulumi.Input<WaitFor>;
  /** Where the process's files (its output log) are kept. Default: the same cache as `Unikernel`, under `run/`. */
  cacheDir?: pulumi.Input<string>;
}

/**
 * A unikernel run locally as a background process: hvt and spt kernels under their Solo5 tender,
 * unix builds directly. It keeps running after `pulumi up` returns; its output goes to a log file.
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
        waitFor: args.waitFor,
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
