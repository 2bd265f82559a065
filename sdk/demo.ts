// The demo unikernel this package ships: a first boot with no MirageOS toolchain.
import { join } from "node:path";

/**
 * The path of the demo unikernel shipped in this package (a few KB, built from the package's
 * kernels/ folder by its build): a Solo5 virtio kernel of our own. Booted, it prints a banner,
 * `Hello, World` and its boot arguments on its serial console; then, on its virtio-net NIC, it
 * answers ARP, ping and HTTP on TCP port `demoKernelPort` at 10.0.2.15 (the guest address of
 * QEMU's user network, which `local.Vm` uses), printing `demo: serving on ...` once it does.
 * Without a NIC it says so and halts. Use it as a prebuilt kernel:
 * `new Unikernel("demo", { kernel: demoKernel, target: "virtio" })`.
 */
export const demoKernel: string = join(__dirname, "..", "kernels", "demo.virtio");

/** The TCP port the demo kernel answers HTTP on, inside the VM: forward a host port to it. */
export const demoKernelPort = 8080;
