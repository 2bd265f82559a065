// A unikernel run as a process on this machine: hvt and spt kernels under their Solo5 tender
// (`solo5-hvt`, `solo5-spt`), unix builds as plain programs. What local.Process and
// `pulumi-mirage run` share: the checks of the tender, of /dev/kvm and of the kernel's devices,
// the command line, and the start. `Spelling` says how the caller's user names each setting (a
// resource input, a command-line flag), so a refusal names what they write.
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { ProcessTarget } from "../../rules/local";
import type { Problem } from "../../rules/problem";
import type { Device } from "../../rules/targets";
import { isKnown } from "../../rules/values";
import { type ProcessIdentity, type StartOptions, startBackground } from "../core/background";
import { findExecutable } from "../core/exec";
import { inspectKernel } from "../kernel/inspect";
import { netnsProblem } from "./netif";
import { kvmUsable } from "./qemu";
import {
  type Attachments,
  type BlockAttachment,
  checkAttachments,
  createBlockFiles,
  type NetAttachment,
  type Spelling,
  tenderDeviceArgs,
} from "./solo5-devices";

/** What runs: the kernel, its target, its arguments, and for hvt/spt the tender and its devices. */
export interface ProcessSpec {
  /** The kernel binary (a unix build is an ordinary executable). */
  kernel: string;
  target: ProcessTarget;
  /** Arguments the unikernel receives. */
  args: string[];
  /** The Solo5 tender for hvt/spt; default: solo5-TARGET on PATH. */
  tender?: string;
  /** Guest memory for hvt/spt (the tender's --mem); default: the tender's own. */
  memoryMiB?: number;
  net?: Record<string, NetAttachment>;
  block?: Record<string, BlockAttachment>;
  /** The network namespace the tender runs in, where its taps are (`ip netns`); default: ours. */
  netns?: string;
}

/**
 * The tender for `target` (`tender`, else solo5-TARGET on PATH), resolved to its path; a problem
 * on property `tender` when it cannot be found. A unix build takes none.
 */
export function checkTender(
  target: ProcessTarget,
  tender: unknown,
  spelling: Spelling,
  failures: Problem[],
): string | undefined {
  if (target === "unix") {
    if (tender !== undefined && tender !== null)
      failures.push({
        property: "tender",
        reason: `${spelling.tender} is for hvt and spt kernels; a unix build runs as a plain program: drop ${spelling.tender}`,
      });
    return undefined;
  }
  if (!isKnown(tender)) return tender as string;
  const wanted = typeof tender === "string" && tender !== "" ? tender : `solo5-${target}`;
  const found = findExecutable(wanted);
  if (!found)
    failures.push({
      property: "tender",
      reason:
        `${target} kernels run under the Solo5 tender solo5-${target}, and ${wanted} is not ` +
        `${wanted.includes("/") ? "an executable file" : "on PATH"}: install Solo5 ` +
        `(\`opam install solo5\` puts solo5-hvt and solo5-spt in the opam switch's bin/), ` +
        `or give the tender's path as ${spelling.tender}`,
    });
  return found;
}

/**
 * hvt kernels run on KVM: refused (property `target`) when /dev/kvm cannot be opened read-write,
 * which the tender does first thing (spt needs only seccomp).
 */
export function checkKvm(failures: Problem[]): void {
  if (kvmUsable()) return;
  const why = existsSync("/dev/kvm")
    ? "/dev/kvm cannot be opened read-write by this user (add it to the kvm group)"
    : "this machine has no /dev/kvm (no KVM, or nested virtualization is off)";
  failures.push({
    property: "target",
    reason:
      `hvt kernels run on KVM, and ${why}: build the unikernel for spt ` +
      "(`mirage configure -t spt`), which runs as a seccomp-sandboxed process and needs no KVM",
  });
}

/**
 * What an hvt or spt kernel needs to run here, asked alike by local.Process's check and by `run`:
 * a usable /dev/kvm for hvt, an existing network namespace (`netns`), and each device the kernel
 * declares attached as solo5-devices.ts says. Problems go to `failures`; the attachments return.
 */
export async function checkSolo5Run(
  target: "hvt" | "spt",
  devices: { net: unknown; block: unknown; manifest: Device[] | undefined; netns?: string },
  spelling: Spelling,
  failures: Problem[],
): Promise<Partial<Attachments>> {
  if (target === "hvt") checkKvm(failures);
  const netnsFailure = netnsProblem(devices.netns);
  if (netnsFailure) failures.push({ property: "netns", reason: netnsFailure });
  const { net, block, manifest } = devices;
  const netns = netnsFailure ? undefined : devices.netns;
  const { attachments, problems } = await checkAttachments(net, block, manifest, netns, spelling);
  failures.push(...problems);
  return attachments;
}

/**
 * The devices an hvt/spt kernel file declares, read from it; it must be a Solo5 kernel for
 * `target` (a problem on property `kernel` otherwise). Undefined when it cannot be read.
 */
export async function kernelDevices(
  kernel: string,
  target: "hvt" | "spt",
  failures: Problem[],
): Promise<Device[] | undefined> {
  try {
    const info = await inspectKernel(kernel);
    if (info.solo5.target !== target) {
      failures.push({
        property: "kernel",
        reason: `kernel ${kernel} is a Solo5 ${info.solo5.target} kernel, not ${target}: give target ${JSON.stringify(info.solo5.target)} or a kernel built with \`mirage configure -t ${target}\``,
      });
    }
    return info.manifest.devices;
  } catch (error) {
    failures.push({
      property: "kernel",
      reason: error instanceof Error ? error.message : String(error),
    });
    return undefined;
  }
}

/**
 * The program to run and its arguments; the tender's CLI (docs/platforms.md, Solo5 tenders) is
 * `TENDER [--mem=MB] [--net:NAME=IFACE [--net-mac:NAME=HWADDR]]... [--block:NAME=PATH
 * [--block-sector-size:NAME=N]]... -- KERNEL ARGS...`.
 */
export function processCommand(spec: ProcessSpec): string[] {
  if (spec.target === "unix") return [spec.kernel, ...spec.args];
  const memory = spec.memoryMiB === undefined ? [] : [`--mem=${spec.memoryMiB}`];
  // `ip netns exec` enters the namespace and execs the tender: the pid stays the tender's.
  const netns = spec.netns === undefined ? [] : ["ip", "netns", "exec", spec.netns];
  return [
    ...netns,
    spec.tender ?? `solo5-${spec.target}`,
    ...memory,
    ...tenderDeviceArgs(spec),
    "--",
    spec.kernel,
    ...spec.args,
  ];
}

/** Where a started process's files go and what it carries (see run.ts NewRun). */
export interface ProcessPlace {
  /** Its working directory, where its console log goes. */
  stateDir: string;
  env?: Record<string, string>;
  /** Killed when we end, however we end (a foreground run); default: it outlives us. */
  endsWithUs?: boolean;
  /** Called with its exit status (or the signal that killed it) when it exits while we run. */
  onEnd?: StartOptions["onEnd"];
}

/** A started process, and the file its output (stdout and stderr) goes to. */
export interface StartedProcess extends ProcessIdentity {
  consoleLog: string;
}

/** Creates the missing block files, then starts the unikernel (run.ts awaitStarted waits for it). */
export async function startProcess(
  spec: ProcessSpec,
  place: ProcessPlace,
): Promise<StartedProcess> {
  const command = processCommand(spec);
  const consoleLog = join(place.stateDir, "console.log");
  await createBlockFiles(spec.block);
  const started = await startBackground(command[0], command.slice(1), {
    logFile: consoleLog,
    cwd: place.stateDir,
    env: place.env,
    endsWithUs: place.endsWithUs,
    onEnd: place.onEnd,
  });
  return { ...started, consoleLog };
}
