// `pulumi-mirage run IMAGE|KERNEL`: runs a unikernel in the foreground, its console on stdout,
// until it ends or Ctrl-C (SIGINT), SIGTERM or SIGHUP stops it. A disk image (or a virtio kernel,
// imaged on the fly) boots in QEMU, as local.Vm's does; an hvt or spt kernel runs under its Solo5
// tender and a unix build as a program, as local.Process's do: the same start (local/boot.ts
// watchVm, local/process.ts startProcess) and the same checks. What it starts ends with it
// (endsWithUs), and its files are in a scratch directory, gone at the end.
import { stat } from "node:fs/promises";
import { constants } from "node:os";
import { BOUNDS, outOfBounds } from "../../rules/bounds";
import { type PortForward, resolveForwards } from "../../rules/local";
import type { Problem } from "../../rules/problem";
import type { Device } from "../../rules/targets";
import { stopBackground, watchLog } from "../core/background";
import { withScratch } from "../core/scratch";
import { makeImage, planImage } from "../image/make";
import { readPrefix } from "../kernel/elf";
import { inspectKernel, KernelFormatError, type KernelInfo } from "../kernel/inspect";
import { type AccelMode, requestedMode } from "../local/accel";
import { isRunning, type VmOptions, watchVm } from "../local/boot";
import { diskImageFormat } from "../local/disk-check";
import {
  checkSolo5Run,
  checkTender,
  type ProcessSpec,
  processCommand,
  startProcess,
} from "../local/process";
import type { Spelling } from "../local/solo5-devices";
import { exitMeaning } from "./boot";
import { type CommandLine, type CommandSpec, flagValue, UsageError } from "./usage";

export const RUN_COMMAND: CommandSpec = {
  args: "IMAGE|KERNEL",
  summary:
    "Run a unikernel in the foreground, its console on stdout, until it exits or Ctrl-C " +
    "stops it (SIGINT, SIGTERM and SIGHUP stop it cleanly: nothing is left running or on disk). " +
    "A disk.raw or image.tar.gz boots in QEMU, as local.Vm's does; a Solo5 virtio kernel is " +
    "made into a disk first (ARGS are its boot arguments). An hvt or spt kernel runs under its " +
    "Solo5 tender (solo5-hvt, solo5-spt), each network device it declares on a tap (--net), " +
    "each block device on a file (--block); a unix build runs as a program. Exits with the " +
    "unikernel's status (the tender's, or QEMU's: 83 whenever a Solo5 virtio kernel exits), " +
    "or 128 + the signal's number when stopped.",
  rest: "ARGS...",
  flags: [
    {
      name: "port",
      short: "p",
      value: "[ADDR:]HOST:GUEST[/udp]",
      repeatable: true,
      help: "QEMU only: forward TCP (or UDP) port HOST of the host (on ADDR, an IPv4 address; default 127.0.0.1) to port GUEST of the guest, as local.Vm's ports do; attaches the NIC.",
    },
    {
      name: "net",
      value: "[NAME=]TAP",
      repeatable: true,
      help: "hvt/spt only: attach network device NAME (default: the one the kernel declares) to the tap interface TAP, which must exist and be up.",
    },
    {
      name: "block",
      value: "NAME=FILE",
      repeatable: true,
      help: "hvt/spt only: attach block device NAME to FILE (an existing file of whole 512-byte sectors).",
    },
    {
      name: "netns",
      value: "NS",
      help: "hvt/spt only: run the tender in network namespace NS (`ip netns add NS`), where its taps are.",
    },
    {
      name: "tender",
      value: "PATH",
      help: "hvt/spt only: the Solo5 tender to run (default: solo5-hvt or solo5-spt on PATH).",
    },
    {
      name: "mem",
      value: "MIB",
      help: "guest memory in MiB (default: 128 in QEMU, the tender's own for hvt/spt).",
    },
    {
      name: "accel",
      value: "MODE",
      help: "QEMU only: auto, kvm or tcg (default: $PULUMI_MIRAGE_ACCEL, else auto: KVM where it has been seen to run a guest here, else TCG).",
    },
  ],
  examples: [
    "pulumi-mirage run out/disk.raw -p 8080:80",
    "pulumi-mirage run dist/hello.virtio -- --hello=Hi",
    "sudo ip tuntap add dev tap0 mode tap user $USER",
    "sudo ip address add 10.0.0.1/24 dev tap0 && sudo ip link set dev tap0 up",
    "pulumi-mirage run dist/www.hvt --net service=tap0 -- --ipv4=10.0.0.2/24",
  ],
};

/** How `run`'s user attaches devices: its flags. */
const CLI_SPELLING: Spelling = {
  tender: "--tender PATH",
  device: (kind, name) => `--${kind} ${name}`,
  attach: (kind, name) =>
    kind === "net"
      ? `add --net ${name}=TAP (a tap interface that is up)`
      : `add --block ${name}=FILE (a file of whole 512-byte sectors)`,
  makeTap: "create it:",
  makeBlock: "create it (e.g. `truncate -s 64M FILE`)",
};

/** What the file given is, and so how it runs. */
type Runnable =
  | { kind: "disk" }
  | { kind: "virtio"; info: KernelInfo }
  | { kind: "process"; target: "hvt" | "spt"; info: KernelInfo }
  | { kind: "unix" };

const say = (line: string) => process.stderr.write(`pulumi-mirage run: ${line}\n`);

/** Reads what `path` is; throws, saying what to do instead, for what cannot run here. */
async function runnable(path: string): Promise<Runnable> {
  const info = await stat(path).catch(() => undefined);
  if (!info) throw new Error(`${path} does not exist: give a disk image or a unikernel`);
  if (!info.isFile()) throw new Error(`${path} is not a file: give a disk image or a unikernel`);
  const head = await readPrefix(path, 4);
  if (head.toString("latin1") !== "\x7fELF") {
    await diskImageFormat(path); // throws, saying what the file is
    return { kind: "disk" };
  }
  let kernel: KernelInfo;
  try {
    kernel = await inspectKernel(path);
  } catch (error) {
    // An ELF executable without Solo5's notes: a unix build (`mirage configure -t unix`).
    if (!(error instanceof KernelFormatError && error.notSolo5)) throw error;
    if (info.mode & 0o111) return { kind: "unix" };
    throw new Error(`${error.message} (a unix build runs too, but ${path} is not executable)`);
  }
  const target = kernel.solo5.target;
  if (target === "virtio") return { kind: "virtio", info: kernel };
  if (target === "hvt" || target === "spt") return { kind: "process", target, info: kernel };
  if (target === "xen")
    throw new Error(
      `${path} is a Solo5 xen kernel, which prints only to the Xen console and does not run here: run it on a Xen host with xen.Domain (\`pulumi-mirage image\` --format raw or aws makes its disk), or build the unikernel for virtio, hvt or spt`,
    );
  throw new Error(
    `${path} is a Solo5 ${target} kernel, which runs only on ${target === "muen" ? "the Muen separation kernel" : "Genode"}: build the unikernel for virtio, hvt or spt to run it here`,
  );
}

/** What each property resolveForwards names is, in `-p`'s words. */
const PORT_PARTS: Record<string, string> = {
  "": "the guest port",
  ".host": "the host port",
  ".guest": "the guest port",
  ".hostAddress": "the host address",
  ".protocol": "the protocol",
};

/**
 * `-p [ADDR:]HOST:GUEST[/udp]` as local.Vm's ports, checked by the rule local.Vm's are
 * (rules/local.ts resolveForwards), so a wrong one is refused in the same words.
 */
export function parsePorts(given: readonly string[]): PortForward[] {
  const number = (text: string) => (/^\d+$/.test(text) ? Number(text) : text);
  const ports = given.map((text) => {
    const [spec, protocol, ...more] = text.split("/");
    const parts = spec.split(":");
    if (more.length > 0 || parts.length < 2 || parts.length > 3)
      throw new UsageError(
        `-p ${text}: give HOST:GUEST, ADDR:HOST:GUEST, or either with /udp, e.g. -p 8080:80`,
      );
    const [hostAddress, host, guest] = parts.length === 3 ? parts : [undefined, ...parts];
    return {
      port: number(guest as string),
      host: number(host as string),
      ...(hostAddress === undefined ? {} : { hostAddress }),
      ...(protocol === undefined ? {} : { protocol }),
    };
  });
  const { forwards, problems } = resolveForwards(ports);
  const [first] = problems;
  if (first) {
    const [, index, part] = /^ports\[(\d+)\](.*)$/.exec(first.property) ?? [];
    const what = PORT_PARTS[part ?? ""] ?? first.property;
    throw new UsageError(`-p ${given[Number(index)]}: ${what} ${first.reason}`);
  }
  return forwards;
}

/** `--mem MIB` within `bound`, or undefined. */
function memory(line: CommandLine, bound: typeof BOUNDS.vmMemoryMiB): number | undefined {
  const given = flagValue(line, "mem");
  if (given === undefined) return undefined;
  const value = /^\d+$/.test(given) ? Number(given) : given;
  const problem = outOfBounds(value, bound);
  if (problem) throw new UsageError(`--mem ${given}: ${problem}`);
  return value as number;
}

/** Refuses flags that do not apply to what runs. */
function refuseFlags(line: CommandLine, names: string[], why: string): void {
  for (const name of names)
    if (line.values.has(name)) throw new UsageError(`--${name} ${why}: drop --${name}`);
}

/** Why the run ended, and what the command exits with. */
interface Ending {
  status: number;
  /** A line for stderr, when there is something to say. */
  report?: string;
}

/**
 * The foreground part both kinds share: streams `consoleLog` to stdout until the process ends,
 * `failed` says it cannot go on, or a signal stops it (then it is stopped: SIGTERM, then SIGKILL).
 */
async function follow(
  what: { pid: number; startTime: number; consoleLog: string },
  stopped: () => NodeJS.Signals | undefined,
  ended: () => { status: number | null; signal: NodeJS.Signals | null } | undefined,
  failed: () => string | undefined = () => undefined,
): Promise<Ending> {
  const watched = await watchLog(what.consoleLog, {
    timeoutMs: Number.POSITIVE_INFINITY,
    alive: () => isRunning(what),
    onOutput: (text) => process.stdout.write(text),
    failed: () => (stopped() ? "stopped" : failed()),
  });
  const signal = stopped();
  await stopBackground(what);
  if (signal !== undefined)
    return { status: 128 + constants.signals[signal], report: `stopped by ${signal}` };
  if (watched.outcome === "failed") return { status: 1, report: watched.failure };
  // The exit event may follow the process's end by a moment.
  for (let i = 0; i < 100 && ended() === undefined; i++)
    await new Promise((resolve) => setTimeout(resolve, 10));
  const end = ended();
  if (end?.signal) return { status: 128 + constants.signals[end.signal] };
  return { status: end?.status ?? 1 };
}

/**
 * Listens for SIGINT, SIGTERM and SIGHUP while `work` runs: `stopped()` says which came, and
 * `abort` is aborted then (it stops an image being made).
 */
async function stoppable(
  work: (stopped: () => NodeJS.Signals | undefined, abort: AbortSignal) => Promise<number>,
): Promise<number> {
  let signal: NodeJS.Signals | undefined;
  const controller = new AbortController();
  const onSignal = (received: NodeJS.Signals) => {
    signal ??= received;
    controller.abort(new Error(`stopped by ${received}`));
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const s of signals) process.on(s, onSignal);
  try {
    return await work(() => signal, controller.signal);
  } catch (error) {
    // What the signal cut short (an image being made) ends as a stop, not as its own failure.
    if (signal === undefined) throw error;
    say(`stopped by ${signal}`);
    return 128 + constants.signals[signal];
  } finally {
    for (const s of signals) process.off(s, onSignal);
  }
}

/** Runs a disk image (made from `kernel` first when given one) in QEMU. */
async function runVm(
  image: string,
  line: CommandLine,
  kernel: KernelInfo | undefined,
): Promise<number> {
  refuseFlags(
    line,
    ["net", "block", "netns", "tender"],
    "attaches Solo5 devices to hvt and spt kernels; QEMU gives the guest one NIC (-p forwards ports to it)",
  );
  const forwards = parsePorts(line.values.get("port") ?? []);
  const memoryMiB = memory(line, BOUNDS.vmMemoryMiB);
  let accel: AccelMode;
  try {
    accel = requestedMode(flagValue(line, "accel"));
  } catch (error) {
    throw new UsageError(`--${(error as Error).message}`);
  }
  if (kernel === undefined && line.rest.length > 0)
    throw new UsageError(
      "boot arguments are part of a disk image: make it again with `pulumi-mirage image KERNEL --out DIR -- ARGS`, or run the virtio kernel itself: `pulumi-mirage run KERNEL -- ARGS`",
    );
  if (kernel && forwards.length > 0 && !kernel.manifest.devices.some(isNet))
    throw new Error(noNetwork(image));
  return stoppable((stopped, abort) =>
    withScratch({ name: "run" }, async (dir) => {
      let disk = image;
      if (kernel) {
        say(`making a disk image of ${image}`);
        const plan = await planImage(image, "raw", line.rest, kernel);
        disk = (await makeImage(plan, dir, { logFile: `${dir}/image.log`, signal: abort })).disk
          .path;
      }
      let end: { status: number | null; signal: NodeJS.Signals | null } | undefined;
      const options: VmOptions = {
        image: disk,
        stateDir: `${dir}/vm`,
        accel,
        memoryMiB,
        forwards,
        virtioOnly: true,
        endsWithUs: true,
        onEnd: (status, signal) => {
          end = { status, signal };
        },
        onProgress: say,
      };
      const ending = await watchVm(options, image, async (vm, failed) => {
        end = undefined;
        if (forwards.length > 0 && vm.kernel && !vm.kernel.manifest.devices.some(isNet))
          throw new Error(noNetwork(image));
        say(`QEMU (pid ${vm.pid}) is running ${image}`);
        say(`accelerator: ${vm.accel.accel} (${vm.accel.reason})`);
        for (const f of forwards)
          say(
            `${f.protocol ?? "tcp"} port ${f.hostAddress ?? "127.0.0.1"}:${f.host} goes to the guest's port ${f.guest}`,
          );
        return follow(vm, stopped, () => end, failed);
      });
      say(ending.report ?? `QEMU exited with status ${ending.status}${exitMeaning(ending.status)}`);
      return ending.status;
    }),
  );
}

const isNet = (device: Device) => device.type === "net";

const noNetwork = (image: string) =>
  `-p forwards ports to the guest's network device, but the unikernel in ${image} declares none: declare a network stack in its config.ml (e.g. generic_stackv4v6 default_network), or drop -p`;

/** `--net [NAME=]TAP` as a name → tap map: a bare TAP goes to the one network device declared. */
function netAttachments(given: readonly string[], declared: Device[]): Record<string, string> {
  const nets = declared.filter(isNet).map((d) => d.name);
  const result: Record<string, string> = {};
  for (const text of given) {
    const match = /^(?:([^=]*)=)?(.*)$/s.exec(text) as RegExpExecArray;
    let name = match[1];
    if (name === undefined) {
      if (nets.length !== 1)
        throw new UsageError(
          `--net ${text}: say which network device, as --net NAME=${text} (the kernel declares ${nets.join(", ") || "none"})`,
        );
      name = nets[0];
    }
    if (Object.hasOwn(result, name)) throw new UsageError(`--net ${name} is given twice`);
    result[name] = match[2];
  }
  return result;
}

/** `--block NAME=FILE` as a name → file map. */
function blockAttachments(given: readonly string[]): Record<string, string> {
  const result: Record<string, string> = {};
  for (const text of given) {
    const match = /^([^=]+)=(.+)$/s.exec(text);
    if (!match)
      throw new UsageError(`--block ${text}: give NAME=FILE, e.g. --block storage=disk.img`);
    if (Object.hasOwn(result, match[1])) throw new UsageError(`--block ${match[1]} is given twice`);
    result[match[1]] = match[2];
  }
  return result;
}

/** Runs an hvt/spt kernel under its tender, or a unix build, checked as local.Process checks. */
async function runProcess(path: string, line: CommandLine, found: Runnable): Promise<number> {
  const target = found.kind === "process" ? found.target : "unix";
  refuseFlags(
    line,
    ["port"],
    "forwards ports to a QEMU guest; an hvt or spt kernel is reached on its tap, a unix build on the host's own network",
  );
  refuseFlags(
    line,
    ["accel"],
    "chooses QEMU's accelerator; hvt runs on KVM under its tender, spt and unix need none",
  );
  const failures: Problem[] = [];
  const tender = checkTender(target, flagValue(line, "tender"), CLI_SPELLING, failures);
  const spec: ProcessSpec = { kernel: path, target, args: line.rest, tender };
  if (found.kind === "process") {
    spec.memoryMiB = memory(line, BOUNDS.tenderMemoryMiB);
    const netns = flagValue(line, "netns");
    const manifest = found.info.manifest.devices;
    const net = netAttachments(line.values.get("net") ?? [], manifest);
    const block = blockAttachments(line.values.get("block") ?? []);
    const attachments = await checkSolo5Run(
      found.target,
      {
        net: Object.keys(net).length > 0 ? net : undefined,
        block: Object.keys(block).length > 0 ? block : undefined,
        manifest,
        netns,
      },
      CLI_SPELLING,
      failures,
    );
    Object.assign(spec, attachments, { netns });
  } else {
    refuseFlags(
      line,
      ["net", "block", "netns", "mem"],
      "is for hvt and spt kernels; a unix build uses the host's own network, files and memory",
    );
  }
  if (failures.length > 0)
    throw new Error(
      `${path} (${target}) cannot run:\n${failures.map((f) => `  ${f.reason}`).join("\n")}`,
    );
  return stoppable((stopped) =>
    withScratch({ name: "run" }, async (dir) => {
      let end: { status: number | null; signal: NodeJS.Signals | null } | undefined;
      const started = await startProcess(spec, {
        stateDir: dir,
        endsWithUs: true,
        onEnd: (status, signal) => {
          end = { status, signal };
        },
      });
      say(`${processCommand(spec).join(" ")} (pid ${started.pid})`);
      const ending = await follow(started, stopped, () => end);
      say(
        ending.report ??
          `${target === "unix" ? path : "the tender"} exited with status ${ending.status}`,
      );
      return ending.status;
    }),
  );
}

/** Runs `run` with its command line read (main.ts); resolves with the exit status. */
export async function runCommand(line: CommandLine): Promise<number> {
  if (line.positionals.length !== 1)
    throw new UsageError(
      line.positionals.length === 0
        ? "IMAGE|KERNEL is missing"
        : `give one IMAGE|KERNEL (arguments for the unikernel go after --: -- ${line.positionals.slice(1).join(" ")})`,
    );
  const path = line.positionals[0];
  const found = await runnable(path);
  if (found.kind === "disk") return runVm(path, line, undefined);
  if (found.kind === "virtio") return runVm(path, line, found.info);
  return runProcess(path, line, found);
}
