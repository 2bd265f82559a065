// Whether a guest QEMU runs can still go on, from everything QEMU and the firmware tell: QEMU's run
// state over QMP (qmp.ts), QEMU's stderr, and SeaBIOS's debug console. When it cannot, why, in
// their words, and whether KVM is why (then `auto` boots again with TCG: boot.ts).
import type { AccelChoice } from "./accel";
import type { QmpSession } from "./qmp";

/**
 * The first line QEMU prints on stderr when KVM stopped the guest (accel/kvm/kvm-all.c,
 * target/i386/kvm/kvm.c in QEMU 7.2; QEMU then keeps running with the guest stopped), or when KVM
 * would not even start (a /dev/kvm whose ioctls fail: QEMU then exits with status 1).
 */
export const KVM_FAILURE =
  /^(KVM internal error\b.*|KVM: entry failed\b.*|KVM: unknown exit\b.*|error: kvm run failed\b.*|qemu-system-\S+: failed to initialize kvm\b.*)$/m;

/** SeaBIOS's lines on its debug console when it found nothing to boot (it retries only after 60 s). */
const SEABIOS_FAILURE = /^(Boot failed: .*|No bootable device\..*)$/gm;

/** SeaBIOS's line when it hands over to the disk's boot loader. */
const SEABIOS_BOOTING = /^Booting from /m;

/**
 * How long a KVM guest's firmware may take to reach the boot loader before `auto` gives up on KVM.
 * SeaBIOS does it in well under a second with a working KVM (and with TCG); some paravirtual KVMs
 * stop a guest without a word, or crawl through SeaBIOS for many seconds.
 */
export const FIRMWARE_DEADLINE_MS = 10_000;

/** Why a guest cannot go on. */
export interface GuestStop {
  why: string;
  /** KVM stopped it, or it made no progress under KVM: TCG would have run it. */
  kvm: boolean;
}

/** What a guest's state is read from. */
export interface GuestSources {
  /** The accelerator QEMU runs with. */
  accel: AccelChoice;
  /** When QEMU was started (ms since the epoch). */
  startedAt: number;
  /** What QEMU printed so far. */
  qemuOutput: () => string;
  /** What SeaBIOS printed on its debug console so far. */
  seabiosOutput: () => string;
  /** QEMU's monitor, when it could be opened. */
  qmp?: QmpSession;
  /** Now (ms since the epoch); a parameter for the tests. */
  now?: () => number;
}

/** Why the guest cannot go on, or undefined while nothing says so. */
export function guestStopped(sources: GuestSources): GuestStop | undefined {
  const kvmWords = KVM_FAILURE.exec(sources.qemuOutput());
  if (kvmWords) {
    const start = /^qemu-system-\S+: (failed to initialize kvm\b.*)/.exec(kvmWords[1]);
    const why = start
      ? `QEMU could not start KVM: ${start[1]}`
      : `QEMU stopped the guest: ${kvmWords[1]}`;
    return { why, kvm: true };
  }
  if (sources.qmp?.stopped) {
    const kvm = sources.accel.accel === "kvm" && sources.qmp.stopped.includes("internal-error");
    return { why: sources.qmp.stopped, kvm };
  }
  const seabios = sources.seabiosOutput();
  // SeaBIOS writes its debug console a byte at a time: wait for the whole line.
  if (/^No bootable device\..*\n/m.test(seabios)) {
    const lines = [...seabios.matchAll(SEABIOS_FAILURE)].map((match) => match[1].trim());
    return {
      why: `SeaBIOS found nothing to boot: ${lines.join(" / ")} (the disk has no boot loader: make a bootable image with a DiskImage or \`pulumi-mirage image\`)`,
      kvm: false,
    };
  }
  // Only where `auto` chose KVM, and so can fall back to TCG: a forced `kvm` is given its time.
  const { accel, mode } = sources.accel;
  const elapsed = (sources.now ?? Date.now)() - sources.startedAt;
  const fallback = accel === "kvm" && mode === "auto";
  if (fallback && elapsed >= FIRMWARE_DEADLINE_MS && !SEABIOS_BOOTING.test(seabios))
    return {
      why: `the guest made no progress with KVM: its firmware did not reach the boot loader in ${FIRMWARE_DEADLINE_MS / 1000} s (it takes well under 1 s)`,
      kvm: true,
    };
  return undefined;
}

/** The words for a KVM stop when nothing falls back to TCG (a forced `kvm`). */
export function withKvmAdvice(stop: GuestStop): string {
  return stop.kvm
    ? `${stop.why} (KVM cannot run this guest here: use the tcg accelerator, e.g. PULUMI_MIRAGE_ACCEL=tcg, or auto)`
    : stop.why;
}
