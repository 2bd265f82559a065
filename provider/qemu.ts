// The QEMU command line for booting a unikernel disk image, as a pure function so every choice
// in it (disk bus, accelerator, network, console) is visible and unit-tested.
import { closeSync, constants, openSync } from "node:fs";
import { isAbsolute } from "node:path";
import { checkHostAddress } from "./resources/bounds";

/** The QEMU binary used unless a caller names another one. */
export const QEMU = "qemu-system-x86_64";

/**
 * The boot disk's bus. Never virtio-blk: a Solo5 virtio unikernel aborts at boot when the VM has a
 * virtio block device it did not declare (docs/platforms.md, Solo5 binaries). SeaBIOS boots from both of these.
 */
export type DiskBus = "ide" | "virtio-scsi";

/** A TCP port forwarded from the host (on `hostAddress`, default 127.0.0.1) into the guest. */
export interface PortForward {
  host: number;
  guest: number;
  hostAddress?: string;
}

export interface QemuOptions {
  /** A raw disk image, by absolute path. It is never modified: QEMU runs with `-snapshot`. */
  disk: string;
  /** Where the serial console goes (QEMU writes it, truncating the file first). */
  consoleFile: string;
  /** Use KVM; otherwise QEMU emulates the CPU (TCG). accel.ts decides. */
  kvm: boolean;
  /** Where SeaBIOS's debug console goes (its "No bootable device" and "Boot failed" lines). */
  debugLog?: string;
  /** Default: ide. */
  bus?: DiskBus;
  /** Default: 128. */
  memoryMiB?: number;
  /** Attach one virtio-net NIC on QEMU's user-mode network. Default: no NIC at all. */
  net?: boolean;
  /** Host→guest TCP forwards on that NIC; giving any implies `net`. */
  forwards?: readonly PortForward[];
}

/**
 * True when /dev/kvm opens read-write: what Solo5's hvt tender needs. It is no proof that QEMU
 * can run a guest with KVM (a paravirtual kvm-pvm opens, then QEMU stops the guest): for QEMU,
 * accel.ts's probe decides.
 */
export function kvmUsable(device = "/dev/kvm"): boolean {
  try {
    closeSync(openSync(device, constants.O_RDWR));
    return true;
  } catch {
    return false;
  }
}

/**
 * The first line QEMU prints on stderr when KVM stopped the guest (accel/kvm/kvm-all.c,
 * target/i386/kvm/kvm.c in QEMU 7.2). QEMU then keeps running with the guest stopped.
 */
export const KVM_FAILURE =
  /^(KVM internal error\b.*|KVM: entry failed\b.*|KVM: unknown exit\b.*|error: kvm run failed\b.*)$/m;

/** SeaBIOS's lines on its debug console when it found nothing to boot (it retries only after 60 s). */
const SEABIOS_FAILURE = /^(Boot failed: .*|No bootable device\..*)$/gm;

/**
 * Why the guest cannot go on, in QEMU's or SeaBIOS's words, from what QEMU printed and from
 * SeaBIOS's debug console; undefined while nothing says so.
 */
export function guestStopped(qemuOutput: string, seabiosOutput: string): string | undefined {
  const kvm = KVM_FAILURE.exec(qemuOutput);
  if (kvm)
    return `QEMU stopped the guest: ${kvm[1]} (KVM cannot run this guest here: use the tcg accelerator, e.g. PULUMI_MIRAGE_ACCEL=tcg)`;
  // SeaBIOS writes its debug console a byte at a time: wait for the whole line.
  if (!/^No bootable device\..*\n/m.test(seabiosOutput)) return undefined;
  const lines = [...seabiosOutput.matchAll(SEABIOS_FAILURE)].map((match) => match[1].trim());
  return `SeaBIOS found nothing to boot: ${lines.join(" / ")} (the disk has no boot loader: make a bootable image with a DiskImage or \`pulumi-mirage image\`)`;
}

/** QEMU's option syntax splits on commas; a comma inside a value is written twice. */
function optionValue(value: string): string {
  return value.replaceAll(",", ",,");
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new Error(`${what} ${port} is not a TCP port: use an integer from 1 to 65535`);
}

/** The arguments for `qemu-system-x86_64` (the binary itself not included). */
export function qemuArgs(options: QemuOptions): string[] {
  const memory = options.memoryMiB ?? 128;
  if (!Number.isInteger(memory) || memory < 16)
    throw new Error(`memoryMiB ${memory} is too small or not an integer: give at least 16`);
  const args = [
    "-display",
    "none",
    "-m",
    String(memory),
    "-machine",
    options.kvm ? "accel=kvm" : "accel=tcg",
    // A guest that crashes or reboots ends the run instead of looping through the BIOS.
    "-no-reboot",
    // The image stays untouched; writes go to a temporary overlay.
    "-snapshot",
    "-serial",
    `file:${options.consoleFile}`,
    // Lets the guest power QEMU off with an exit status (Solo5's virtio halt does).
    "-device",
    "isa-debug-exit,iobase=0x501",
  ];
  if (options.debugLog) {
    args.push(
      "-chardev",
      `file,id=seabios,path=${optionValue(options.debugLog)}`,
      "-device",
      "isa-debugcon,iobase=0x402,chardev=seabios",
    );
  }
  // The file driver with its filename given as such: QEMU reads no protocol (nbd:, json:...)
  // into it, and a relative path cannot start with one either (docs/platforms.md, Names, archives and exit statuses).
  if (!isAbsolute(options.disk))
    throw new Error(`the disk ${options.disk} is not an absolute path`);
  const disk = `file.driver=file,file.filename=${optionValue(options.disk)},format=raw`;
  if ((options.bus ?? "ide") === "ide") {
    args.push("-drive", `${disk},if=ide`);
  } else {
    args.push(
      "-device",
      "virtio-scsi-pci,id=scsi0",
      "-drive",
      `${disk},if=none,id=disk0`,
      "-device",
      "scsi-hd,drive=disk0,bus=scsi0.0",
    );
  }
  const forwards = options.forwards ?? [];
  if (options.net || forwards.length > 0) {
    const netdev = ["user", "id=n0"];
    for (const forward of forwards) {
      checkPort(forward.host, "host port");
      checkPort(forward.guest, "guest port");
      const address = forward.hostAddress ?? "127.0.0.1";
      const problem = checkHostAddress(address);
      if (problem) throw new Error(`hostAddress ${problem}`);
      netdev.push(`hostfwd=tcp:${address}:${forward.host}-:${forward.guest}`);
    }
    // No iPXE option ROM: a disk that does not boot must not fall through to a network boot.
    args.push("-netdev", netdev.join(","), "-device", "virtio-net-pci,netdev=n0,romfile=");
  } else {
    // QEMU otherwise adds a default NIC; a unikernel must see only the devices it declared.
    args.push("-nic", "none");
  }
  return args;
}
