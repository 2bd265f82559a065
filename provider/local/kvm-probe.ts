// Whether QEMU can run a guest with KVM on this host, found by running one: our own firmware does
// what boot loaders do (real mode, protected mode through a far jump, an `iret` there, long mode
// with paging) and reports through isa-debug-exit. /dev/kvm opening proves nothing: a paravirtual
// kvm-pvm opens and runs real-mode code, then stops the guest at a boot loader's first
// protected-mode `iret` ("KVM internal error") while QEMU stays alive; on some hosts the guest
// just stops making progress, silently (docs/platforms.md, KVM on hosts).
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run, ToolError } from "../core/exec";
import { withScratch } from "../core/scratch";
import { KVM_FAILURE } from "./guest-state";

/** The probe's finding: whether QEMU ran a guest with KVM here, and if not, what QEMU said. */
export interface KvmProbe {
  usable: boolean;
  reason: string;
  /** QEMU's first lines when KVM failed (what a boot with a forced `kvm` will say too). */
  said: string[];
}

/**
 * The firmware, assembled from test/kernels/kvm-probe.S (kvm-probe.test.ts checks these bytes
 * against it). From the reset vector it copies the payload to 0000:7C00 and jumps there, as a
 * BIOS hands over to a boot loader; code run from the ROM itself stalls under kvm-pvm.
 */
const FIRMWARE = "fab800f08ed831c08ec0be0001bf007cb90001fcf3a5ea007c0000";
/** At 0xFFF0, where the CPU starts: `ljmp $0xf000, $0`. */
const RESET_VECTOR = "ea000000f0";
/**
 * The payload, linked at 0x7C00: lgdt, CR0.PE, a far jump into 32-bit code, an `iret` there, page
 * tables, CR4.PAE, EFER.LME, CR0.PG, a far jump into 64-bit code, then `out 0x501, 0x2A; hlt`.
 */
const PAYLOAD =
  "fa31c08ed88ed0bc007c660f0116c07c0f20c00c010f22c066ea207c0000080066b810008ed88ec08ed0bc007000" +
  "009c6a0868387c0000cfbf0010000031c0b9000c0000f3abc7050010000003200000c7050020000003300000c705" +
  "00300000830000000f20e083c8200f22e0b8001000000f22d8b9800000c00f320d000100000f300f20c00d000000" +
  "800f22c0ea957c0000180066ba0105b02aeef40f1f000000000000000000ffff0000009acf00ffff00000092cf00" +
  "ffff0000009aaf001f00a07c0000";
const PAYLOAD_OFFSET = 0x100;

/** The 64 KiB `-bios` image QEMU runs the probe from (QEMU takes firmware in 64 KiB units). */
export function probeFirmware(): Buffer {
  const image = Buffer.alloc(0x10000);
  Buffer.from(FIRMWARE, "hex").copy(image, 0);
  Buffer.from(PAYLOAD, "hex").copy(image, PAYLOAD_OFFSET);
  Buffer.from(RESET_VECTOR, "hex").copy(image, 0xfff0);
  return image;
}

/** The status QEMU exits with when the payload ran to its end: isa-debug-exit gives (N << 1) | 1. */
export const PROBE_STATUS = (0x2a << 1) | 1;
/**
 * A working KVM runs the probe in milliseconds (QEMU's own start-up is most of it); a guest that
 * has not reported by then is not making progress. Such a host is answered `tcg`, like one that
 * failed: TCG always works, only slower.
 */
const PROBE_TIMEOUT_MS = 5_000;

/** How long QEMU's report of a stopped guest must have been quiet before the probe ends it. */
const REPORT_QUIET_MS = 200;

/** Runs the probe firmware with `-accel kvm` and reports whether it ran, or what QEMU said. */
export async function probeKvm(qemu: string, env?: Record<string, string>): Promise<KvmProbe> {
  return withScratch({ name: "probe" }, (dir) => probeIn(dir, qemu, env));
}

/** probeKvm's work, in the scratch directory `dir`; its QEMU gets `env`. */
async function probeIn(dir: string, qemu: string, env?: Record<string, string>): Promise<KvmProbe> {
  const stop = new AbortController();
  let quiet: NodeJS.Timeout | undefined;
  try {
    const firmware = join(dir, "probe.rom");
    await writeFile(firmware, probeFirmware());
    // QEMU does not exit when KVM stops the guest: end the probe once it has said so. Its report
    // goes on after the first word (extra data, registers, code bytes), so QEMU is stopped only
    // when that has gone quiet: killed mid-report, it would leave a reason that differs from run
    // to run, and the reason is remembered and shown.
    let failure: string | undefined;
    const onLine = (line: string) => {
      if (failure === undefined && KVM_FAILURE.test(line)) failure = line;
      if (failure === undefined) return;
      clearTimeout(quiet);
      quiet = setTimeout(() => stop.abort(), REPORT_QUIET_MS);
    };
    try {
      await run(qemu, probeArgs(firmware), {
        timeoutMs: PROBE_TIMEOUT_MS,
        onLine,
        signal: stop.signal,
        env,
      });
      return {
        usable: false,
        reason: "QEMU with KVM exited with status 0 before the probe ran to its end",
        said: [],
      };
    } catch (error) {
      if (!(error instanceof ToolError)) throw error;
      const status = (error.cause as { exitCode?: number } | undefined)?.exitCode;
      // Only QEMU's own exit with the probe's status counts: not a status seen after we killed it.
      const exited = error.reason === `exited with status ${PROBE_STATUS}`;
      if (status === PROBE_STATUS && exited && failure === undefined)
        return {
          usable: true,
          reason: "QEMU ran a probe guest with KVM (real, protected and long mode)",
          said: [],
        };
      const said = error.tail.filter(isTelling).slice(0, 3);
      const what = failure
        ? "stopped the probe guest"
        : error.reason.includes("timed out")
          ? `made no progress with the probe guest in ${PROBE_TIMEOUT_MS / 1000} s`
          : error.reason;
      return {
        usable: false,
        reason: `QEMU with KVM ${what}${said.length > 0 ? `: ${said.join(" / ")}` : ""}`,
        said,
      };
    }
  } finally {
    clearTimeout(quiet);
    stop.abort();
  }
}

/**
 * QEMU's lines that say what happened: not its CPUID warnings, nor the raw `extra data` words
 * (how many, and whether QEMU's name lands before one, varies from run to run on a kvm-pvm host;
 * the reason is remembered and shown, so it must not), nor its word on being killed when the
 * probe ended.
 */
const isTelling = (line: string) =>
  line.trim() !== "" &&
  !/^qemu-system-\S+: (warning: |terminating on signal )|extra data\[/.test(line);

/** QEMU's arguments for the probe: `tcg` only to check the firmware itself (kvm-probe.test.ts). */
export function probeArgs(firmware: string, accel: "kvm" | "tcg" = "kvm"): string[] {
  return [
    "-accel",
    accel,
    "-display",
    "none",
    "-nodefaults",
    "-no-reboot",
    "-m",
    "16",
    "-bios",
    firmware,
    "-device",
    "isa-debug-exit,iobase=0x501",
  ];
}
