// The default pulumi-mirage program (the repository's Pulumi.yaml runs it): a unikernel booted in
// QEMU on this machine, with its first console lines exported. Which unikernel, by stack config:
//   - none: the demo kernel this package ships (no MirageOS toolchain needed). Host port 8080
//     (`pulumi config set port N` for another) is forwarded to its HTTP port: see the `url` output.
//   - `pulumi config set kernel PATH`: a prebuilt virtio kernel (e.g. dist/hello.virtio).
//   - `pulumi config set source DIR`: a MirageOS source built for virtio with the MirageOS
//     toolchain, e.g. `pulumi config set source examples/hello`.
// Relative paths are taken from the directory `pulumi` runs in.
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { DiskImage, demoKernel, demoKernelPort, local, Unikernel } from "pulumi-mirage";

const config = new pulumi.Config();
const kernel = config.get("kernel");
const source = config.get("source");
if (kernel !== undefined && source !== undefined)
  throw new Error(
    "the stack config sets both `kernel` and `source`: keep one (`pulumi config rm source`)",
  );
const demo = kernel === undefined && source === undefined;
const port = config.getNumber("port") ?? 8080;

const hello = new Unikernel(
  "hello",
  source !== undefined
    ? { source: path.resolve(source), target: "virtio" }
    : { kernel: path.resolve(kernel ?? demoKernel), target: "virtio" },
);

const image = new DiskImage("hello", { kernel: hello, format: "raw" });

const vm = new local.Vm("hello", {
  image,
  ports: demo ? [{ port: demoKernelPort, host: port }] : [],
  waitFor: demo
    ? // The demo kernel prints this once it answers on its NIC.
      { console: "^demo: serving on ", timeoutSeconds: 120 }
    : // examples/hello logs its greeting four times, a second apart, then exits.
      { console: "Hello, World", timeoutSeconds: 120 },
});

/** The first lines the unikernel printed on its serial console. */
export const consoleLines = vm.console;
/** The whole console, as it goes on. */
export const consoleLog = vm.consoleLog;
/** `kvm`, or `tcg` where QEMU cannot use KVM (see local.Vm's `accel`). */
export const accel = vm.accel;
/** The demo kernel's HTTP reply, from this machine: `curl $(pulumi stack output url)`. */
export const url = demo ? `http://127.0.0.1:${port}/` : undefined;
