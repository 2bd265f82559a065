// Which accelerator QEMU runs a guest with: KVM only where QEMU has been seen to run a guest with
// it. /dev/kvm opening is no proof: a paravirtual KVM (kvm-pvm, on some CI machines) opens fine and
// runs real-mode code, then stops the guest at a boot loader's protected-mode code while QEMU
// waits forever. So `auto` runs a probe guest with KVM (kvm-probe.ts) and remembers the answer per
// host boot; and when a real boot with KVM stops anyway, boot.ts boots again with TCG and
// `rememberKvmFailure` makes the next boots start with TCG (docs/platforms.md, KVM on hosts).
import { mkdir, readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type AccelMode, accelModeProblem } from "../../rules/accel";
import { writeFileAtomic } from "../core/atomic";
import { cacheDir } from "../core/cache";
import { type KvmProbe, probeKvm } from "./kvm-probe";
import { kvmUsable } from "./qemu";

// `auto` probes; `kvm` and `tcg` force one (a forced `kvm` fails with QEMU's words where it cannot
// work). The modes are the rules' (rules/accel.ts), which local.Vm's check also applies.
export type { AccelMode } from "../../rules/accel";
/** The environment variable that sets the mode when no `--accel` / `accel` input is given. */
export const ACCEL_ENV = "PULUMI_MIRAGE_ACCEL";

/** What a boot uses, and why. */
export interface AccelChoice {
  accel: "kvm" | "tcg";
  mode: AccelMode;
  reason: string;
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

/** What a remembered probe answer is valid for: this host boot, this QEMU binary, this /dev/kvm. */
async function probeKey(qemu: string, device: string): Promise<string> {
  const bootId = (await readFile("/proc/sys/kernel/random/boot_id", "utf8")).trim();
  const binary = await stat(qemu);
  const kvm = await stat(device);
  return JSON.stringify([bootId, qemu, binary.size, binary.mtimeMs, kvm.rdev, kvm.ino]);
}

/** The file where `auto` remembers the probe's answer (see core/cache.ts for the cache directory). */
export function probeFile(explicitCache?: string): string {
  return join(cacheDir(explicitCache), "accel.json");
}

/** Where the answer for this QEMU and /dev/kvm is remembered, and under which key. */
interface Memory {
  file: string;
  key: string;
}

async function memoryFor(qemu: string, device: string, explicitCache?: string): Promise<Memory> {
  return { file: probeFile(explicitCache), key: await probeKey(qemu, device) };
}

async function recall(memory: Memory): Promise<KvmProbe | undefined> {
  const remembered = await readFile(memory.file, "utf8")
    .then((text) => JSON.parse(text) as { key?: unknown; probe?: KvmProbe })
    .catch(() => undefined);
  return remembered?.key === memory.key ? remembered.probe : undefined;
}

/** Remembering only saves the next boot a probe: a cache we cannot write costs nothing more. */
async function remember(memory: Memory, probe: KvmProbe): Promise<void> {
  await mkdir(dirname(memory.file), { recursive: true })
    .then(() => writeFileAtomic(memory.file, JSON.stringify({ key: memory.key, probe })))
    .catch(() => {});
}

export interface AccelOptions {
  mode?: AccelMode;
  /** The QEMU binary (a path). */
  qemu: string;
  cacheDir?: string;
  device?: string;
  /** Extra environment for the probe's QEMU. */
  env?: Record<string, string>;
}

/**
 * The accelerator for a boot with the QEMU binary `qemu`. `auto`: TCG when /dev/kvm does not open
 * read-write; else the probe's answer, or what a real boot found since, remembered in the cache
 * until the host reboots or QEMU or /dev/kvm changes.
 */
export async function chooseAccel(options: AccelOptions): Promise<AccelChoice> {
  const mode = options.mode ?? requestedMode();
  if (mode !== "auto") return { accel: mode, mode, reason: `${mode} was asked for` };
  const device = options.device ?? "/dev/kvm";
  if (!kvmUsable(device))
    return { accel: "tcg", mode, reason: `${device} is missing or does not open read-write` };
  const memory = await memoryFor(options.qemu, device, options.cacheDir);
  let probe = await recall(memory);
  if (!probe) {
    probe = await probeKvm(options.qemu, options.env);
    await remember(memory, probe);
  }
  return { accel: probe.usable ? "kvm" : "tcg", mode, reason: probe.reason };
}

/**
 * A boot that `auto` gave KVM stopped where TCG would not have (`why`, in QEMU's words): the choice
 * for the boot that replaces it, and, remembered, for every later one until the host reboots.
 */
export async function rememberKvmFailure(options: AccelOptions, why: string): Promise<AccelChoice> {
  const reason = `QEMU with KVM stopped a boot on this host (${why}): TCG from now on`;
  const device = options.device ?? "/dev/kvm";
  await remember(await memoryFor(options.qemu, device, options.cacheDir), {
    usable: false,
    reason,
    said: [],
  });
  return { accel: "tcg", mode: "auto", reason };
}
