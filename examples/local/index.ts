// The default pulumi-mirage program (the repository's Pulumi.yaml runs it): build examples/hello
// for Solo5 virtio, make its bootable disk image, boot it in QEMU on this machine, and export the
// first lines of its console. `pulumi config set kernel PATH` uses a prebuilt virtio kernel
// instead of building one (no OCaml toolchain needed).
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { DiskImage, local, Unikernel } from "pulumi-mirage";

const config = new pulumi.Config();
const prebuilt = config.get("kernel");

const hello = new Unikernel(
  "hello",
  prebuilt
    ? { kernel: prebuilt, target: "virtio" }
    : { source: path.join(__dirname, "..", "hello"), target: "virtio" },
);

const image = new DiskImage("hello", { kernel: hello, format: "raw" });

const vm = new local.Vm("hello", {
  image,
  // examples/hello logs its greeting four times, a second apart, then exits.
  waitFor: { console: "Hello, World", timeoutSeconds: 120 },
});

/** The first lines the unikernel printed on its serial console. */
export const consoleLines = vm.console;
/** The whole console, as it goes on. */
export const consoleLog = vm.consoleLog;
/** `kvm`, or `tcg` where QEMU cannot use KVM (see local.Vm's `accel`). */
export const accel = vm.accel;
