// Which accelerator QEMU runs a guest with: KVM only where QEMU has been seen to run a guest with
// it. /dev/kvm opening is no proof: a paravirtual KVM (kvm-pvm, on some CI machines) opens fine,
// then QEMU stops the guest at SeaBIOS's first real-mode code with "KVM internal error" and waits
// forever. So `auto` boots a one-sector probe disk with KVM and remembers the answer per host boot
// (docs/platforms.md, KVM on hosts).
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type AccelMode, accelModeProblem } from "../rules/accel";
import { writeFileAtomic } from "./atomic";
import { cacheDir } from "./cache";
import { run, ToolError } from "./exec";
import { KVM_FAILURE, kvmUsable } from "./qemu";
import { withScratch } from "./scratch";

// `auto` probes; `kvm` and `tcg` force one (a forced `kvm` fails with QEMU's words where it cannot
// work). The modes are the rules' (rules/accel.ts), which local.Vm's check also applies.
export type { AccelMode } from "../rules/accel";
/** The environment variable that sets the mode when no `--accel` / `accel` input is given. */
export const ACCEL_ENV = "PULUMI_MIRAGE_ACCEL";

/** What a boot uses, and why. */
export interface AccelChoice {
  accel: "kvm" | "tcg";
  mode: AccelMode;
  reason: string;
}

/** The probe's finding: whether QEMU ran a guest with KVM here, and if not, what QEMU said. */
export interface KvmProbe {
  usable: boolean;
  reason: string;
  /** QEMU's first lines when KVM failed (what a boot with a forced `kvm` will say too). */
  said: string[];
}

/** A mode given as text; undefined when not given. The error names `what` and the valid modes. */
export function parseAccelMode(value: string | undefined, what: string): AccelMode | undefined {
  if (value === undefined || value === "") return undefined;
  const problem = accelModeProblem(value);
  if (problem) throw new Error(`${what} ${problem}`);
  return value as AccelMode;
}

/** The mode in force: the one given, else $PULUMI_MIRAGE_ACCEL, else `auto`. */
export function requestedMode(given?: string, env: NodeJS.ProcessEnv = process.env): AccelMode {
  return parseAccelMode(given, "accel") ?? parseAccelMode(env[ACCEL_ENV], ACCEL_ENV) ?? "auto";
}

/** The status QEMU exits with when the probe sector ran: isa-debug-exit gives (N << 1) | 1. */
const PROBE_VALUE = 0x2a;
const PROBE_STATUS = (PROBE_VALUE << 1) | 1;
/** KVM runs the probe in well under a second; the known failures show at once. A safety net. */
const PROBE_TIMEOUT_MS = 15_000;

/**
 * One boot sector of our own: `mov dx, 0x501; mov al, N; out dx, al; hlt`, then the 0x55AA
 * signature. SeaBIOS runs its real-mode code with KVM exactly as in a real boot, then jumps here.
 */
function probeSector(): Buffer {
  const sector = Buffer.alloc(512);
  Buffer.from([0xba, 0x01, 0x05, 0xb0, PROBE_VALUE, 0xee, 0xf4]).copy(sector);
  sector.writeUInt16LE(0xaa55, 510);
  return sector;
}

/** Boots the probe sector with `-accel kvm` and reports whether it ran, or what QEMU said. */
export async function probeKvm(qemu: string, env?: Record<string, string>): Promise<KvmProbe> {
  return withScratch({ name: "probe" }, (dir) => probeIn(dir, qemu, env));
}

/** probeKvm's work, in the scratch directory `dir`; its QEMU gets `env`. */
async function probeIn(dir: string, qemu: string, env?: Record<string, string>): Promise<KvmProbe> {
  const stop = new AbortController();
  try {
    const disk = join(dir, "probe.raw");
    await writeFile(disk, probeSector());
    // QEMU does not exit when KVM stops the guest: end the probe on its first word of it.
    let failure: string | undefined;
    const onLine = (line: string) => {
      if (failure === undefined && KVM_FAILURE.test(line)) {
        failure = line;
        stop.abort();
      }
    };
    try {
      await run(qemu, probeArgs(disk), {
        timeoutMs: PROBE_TIMEOUT_MS,
        onLine,
        signal: stop.signal,
        env,
      });
      return {
        usable: false,
        reason: "QEMU exited with status 0 before the probe sector ran",
        said: [],
      };
    } catch (error) {
      if (!(error instanceof ToolError)) throw error;
      const status = (error.cause as { exitCode?: number } | undefined)?.exitCode;
      if (status === PROBE_STATUS && failure === undefined)
        return { usable: true, reason: "QEMU ran a probe guest with KVM", said: [] };
      const said = error.tail.filter((line) => line.trim() !== "").slice(0, 3);
      const what = failure ? "stopped the probe guest" : error.reason;
      return {
        usable: false,
        reason: `QEMU with KVM ${what}${said.length > 0 ? `: ${said.join(" / ")}` : ""}`,
        said,
      };
    }
  } finally {
    stop.abort();
  }
}

function probeArgs(disk: string): string[] {
  return [
    "-accel",
    "kvm",
    "-display",
    "none",
    "-nodefaults",
    "-no-reboot",
    "-m",
    "16",
    "-drive",
    `file=${disk.replaceAll(",", ",,")},format=raw,if=ide`,
    "-device",
    "isa-debug-exit,iobase=0x501",
  ];
}

/** What a remembered probe answer is valid for: this host boot, this QEMU binary, this /dev/kvm. */
async function probeKey(qemu: string, device: string): Promise<string> {
  const bootId = (await readFile("/proc/sys/kernel/random/boot_id", "utf8")).trim();
  const binary = await stat(qemu);
  const kvm = await stat(device);
  return JSON.stringify([bootId, qemu, binary.size, binary.mtimeMs, kvm.rdev, kvm.ino]);
}

/** The file where `auto` remembers the probe's answer (see cache.ts for the cache directory). */
export function probeFile(explicitCache?: string): string {
  return join(cacheDir(explicitCache), "accel.json");
}

/**
 * The accelerator for a boot with the QEMU binary `qemu` (a path). `auto`: TCG when /dev/kvm does
 * not open read-write; else the probe's answer, remembered in the cache until the host reboots or
 * QEMU or /dev/kvm changes (a probe that timed out is not remembered: the host may just be busy).
 */
export async function chooseAccel(options: {
  mode?: AccelMode;
  qemu: string;
  cacheDir?: string;
  device?: string;
  /** Extra environment for the probe's QEMU. */
  env?: Record<string, string>;
}): Promise<AccelChoice> {
  const mode = options.mode ?? requestedMode();
  if (mode !== "auto") return { accel: mode, mode, reason: `${mode} was asked for` };
  const device = options.device ?? "/dev/kvm";
  if (!kvmUsable(device))
    return { accel: "tcg", mode, reason: `${device} is missing or does not open read-write` };
  const file = probeFile(options.cacheDir);
  const key = await probeKey(options.qemu, device);
  const remembered = await readFile(file, "utf8")
    .then((text) => JSON.parse(text) as { key?: unknown; probe?: KvmProbe })
    .catch(() => undefined);
  let probe = remembered?.key === key ? remembered.probe : undefined;
  if (!probe) {
    probe = await probeKvm(options.qemu, options.env);
    if (!probe.reason.includes("timed out")) {
      // Remembering only saves the next boot a probe: a cache we cannot write costs nothing more.
      await mkdir(dirname(file), { recursive: true })
        .then(() => writeFileAtomic(file, JSON.stringify({ key, probe })))
        .catch(() => {});
    }
  }
  return { accel: probe.usable ? "kvm" : "tcg", mode, reason: probe.reason };
}
