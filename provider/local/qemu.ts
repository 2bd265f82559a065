// The QEMU command line for booting a unikernel disk image, as a pure function so every choice
// in it (disk bus, accelerator, network, console) is visible and unit-tested.
import { closeSync, constants, openSync } from "node:fs";
import { isAbsolute } from "node:path";
import { BOUNDS, type Bound, outOfBounds } from "../../rules/bounds";
import { DEFAULT_VM_MEMORY_MIB, hostAddressProblem, type PortForward } from "../../rules/local";
import { qmpArgs } from "./qmp";

/** The QEMU binary used unless a caller names another one. */
export const QEMU = "qemu-system-x86_64";

/**
 * The boot disk's bus. Never virtio-blk: a Solo5 virtio unikernel aborts at boot when the VM has a
 * virtio block device it did not declare (docs/platforms.md, Solo5 binaries). SeaBIOS boots from both of these.
 */
export type DiskBus = "ide" | "virtio-scsi";

export type { PortForward };

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
  /** Default: DEFAULT_VM_MEMORY_MIB (rules/local.ts). */
  memoryMiB?: number;
  /** Attach one virtio-net NIC on QEMU's user-mode network. Default: no NIC at all. */
  net?: boolean;
  /** Host→guest forwards (TCP unless `protocol` says udp) on that NIC; giving any implies `net`. */
  forwards?: readonly PortForward[];
  /** Open a QMP monitor (qmp.ts) in QEMU's working directory. */
  qmp?: boolean;
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

/** QEMU's option syntax splits on commas; a comma inside a value is written twice. */
function optionValue(value: string): string {
  return value.replaceAll(",", ",,");
}

/** The rules' bound on `value`, as an error naming `what`: the engine's check refused it already. */
function checkBound(value: number, bound: Bound, what: string): void {
  const problem = outOfBounds(value, bound);
  if (problem) throw new Error(`${what} ${problem}`);
}

/** The arguments for `qemu-system-x86_64` (the binary itself not included). */
export function qemuArgs(options: QemuOptions): string[] {
  const memory = options.memoryMiB ?? DEFAULT_VM_MEMORY_MIB;
  checkBound(memory, BOUNDS.vmMemoryMiB, "memoryMiB");
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
  if (options.qmp) args.push(...qmpArgs());
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
      checkBound(forward.host, BOUNDS.port, "host port");
      checkBound(forward.guest, BOUNDS.port, "guest port");
      const address = forward.hostAddress ?? "127.0.0.1";
      const problem = hostAddressProblem(address);
      if (problem) throw new Error(`hostAddress ${problem}`);
      netdev.push(
        `hostfwd=${forward.protocol ?? "tcp"}:${address}:${forward.host}-:${forward.guest}`,
      );
    }
    // No iPXE option ROM: a disk that does not boot must not fall through to a network boot.
    args.push("-netdev", netdev.join(","), "-device", "virtio-net-pci,netdev=n0,romfile=");
  } else {
    // QEMU otherwise adds a default NIC; a unikernel must see only the devices it declared.
    args.push("-nic", "none");
  }
  return args;
}
