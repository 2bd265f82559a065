// Whether a guest can go on, from each source QEMU and the firmware offer: QEMU's KVM words on
// stderr, its run state over QMP, SeaBIOS's debug console, and a KVM guest whose firmware makes no
// progress. Pure: the sources are given as text.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { AccelChoice } from "../provider/local/accel";
import {
  FIRMWARE_DEADLINE_MS,
  type GuestSources,
  guestStopped,
  withKvmAdvice,
} from "../provider/local/guest-state";
import type { QmpSession } from "../provider/local/qmp";
import { stoppedBecause } from "../provider/local/qmp";

const kvm: AccelChoice = { accel: "kvm", mode: "auto", reason: "probe" };
const tcg: AccelChoice = { accel: "tcg", mode: "auto", reason: "probe" };

function sources(given: Partial<GuestSources> & { elapsedMs?: number }): GuestSources {
  return {
    accel: kvm,
    startedAt: 0,
    now: () => given.elapsedMs ?? 0,
    qemuOutput: () => "",
    seabiosOutput: () => "",
    ...given,
  };
}

const qmpSaying = (status: string) => ({ stopped: stoppedBecause(status) }) as QmpSession;

describe("guestStopped", () => {
  test("reads SeaBIOS's verdict only once its line is whole (SeaBIOS writes a byte at a time)", () => {
    const failed = "Boot failed: not a bootable disk\n\nNo bootable device.";
    assert.equal(guestStopped(sources({ seabiosOutput: () => failed })), undefined);
    assert.deepEqual(
      guestStopped(sources({ seabiosOutput: () => `${failed}  Retrying in 60 seconds.\n` })),
      {
        why: "SeaBIOS found nothing to boot: Boot failed: not a bootable disk / No bootable device.  Retrying in 60 seconds. (the disk has no boot loader: make a bootable image with a DiskImage or `pulumi-mirage image`)",
        kvm: false,
      },
    );
  });

  test("QEMU's KVM words on stderr are a KVM stop, quoted", () => {
    const stderr =
      "qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.01H:ECX.pni [bit 0]\nKVM internal error. Suberror: 1\nextra data[0]: 0x1\nemulation failure\n";
    assert.deepEqual(guestStopped(sources({ qemuOutput: () => stderr })), {
      why: "QEMU stopped the guest: KVM internal error. Suberror: 1",
      kvm: true,
    });
  });

  test("QEMU that could not start KVM at all is a KVM stop too (auto then uses TCG)", () => {
    const stderr =
      "kvm version too old\nqemu-system-x86_64: failed to initialize kvm: Inappropriate ioctl for device\n";
    assert.deepEqual(guestStopped(sources({ qemuOutput: () => stderr })), {
      why: "QEMU could not start KVM: failed to initialize kvm: Inappropriate ioctl for device",
      kvm: true,
    });
  });

  test("QMP's run state: internal-error under KVM is KVM's; a panic is the guest's", () => {
    assert.deepEqual(guestStopped(sources({ qmp: qmpSaying("internal-error") })), {
      why: "QEMU stopped the guest on an internal error (KVM could not run its code) (QMP run state internal-error)",
      kvm: true,
    });
    assert.equal(guestStopped(sources({ qmp: qmpSaying("guest-panicked") }))?.kvm, false);
    assert.equal(guestStopped(sources({ qmp: qmpSaying("running") })), undefined);
    assert.equal(guestStopped(sources({ qmp: qmpSaying("paused") })), undefined);
  });

  test("a KVM guest whose firmware has not reached the boot loader by the deadline made no progress", () => {
    const quiet = sources({ elapsedMs: FIRMWARE_DEADLINE_MS });
    assert.match(guestStopped(quiet)?.why ?? "", /made no progress with KVM/);
    assert.equal(guestStopped(quiet)?.kvm, true);
    // Before the deadline, once SeaBIOS booted the disk, with TCG, or with a forced kvm (no
    // fallback: the user's timeout decides): nothing to say.
    assert.equal(guestStopped(sources({ elapsedMs: FIRMWARE_DEADLINE_MS - 1 })), undefined);
    const booted = () => "SeaBIOS (version 1.16.2)\nBooting from Hard Disk...\n";
    assert.equal(
      guestStopped(sources({ elapsedMs: 10 * FIRMWARE_DEADLINE_MS, seabiosOutput: booted })),
      undefined,
    );
    assert.equal(
      guestStopped(sources({ elapsedMs: 10 * FIRMWARE_DEADLINE_MS, accel: tcg })),
      undefined,
    );
    const forced: AccelChoice = { accel: "kvm", mode: "kvm", reason: "kvm was asked for" };
    assert.equal(
      guestStopped(sources({ elapsedMs: 10 * FIRMWARE_DEADLINE_MS, accel: forced })),
      undefined,
    );
  });

  test("without a fallback, a KVM stop says how to do without KVM", () => {
    assert.match(
      withKvmAdvice({ why: "QEMU stopped the guest: KVM internal error. Suberror: 1", kvm: true }),
      /use the tcg accelerator, e\.g\. PULUMI_MIRAGE_ACCEL=tcg, or auto\)$/,
    );
    assert.equal(
      withKvmAdvice({ why: "SeaBIOS found nothing", kvm: false }),
      "SeaBIOS found nothing",
    );
  });
});
