// examples/web on any Compute Engine machine family, gVNIC-only ones (c3, c4, n4, ...) included:
// built for Solo5 spt, it runs as a seccomp-sandboxed process under solo5-spt on a stock Debian 12
// VM. The kernel and your tender go to a private bucket that only the VM's own service account
// may read; the VM's startup-script fetches and checks them, puts the unikernel behind a tap,
// forwards port 8080 to it and runs the tender as a systemd service, at every boot. `pulumi up`
// returns once the serial console shows it serving.
//
//   pulumi config set project MY-PROJECT                 # region and zone default to europe-west1(-b)
//   pulumi config set tender "$(opam var bin)/solo5-spt"  # your switch's tender (solo5 package)
//   pulumi config set kernel dist/web.spt                 # optional: a prebuilt spt kernel (*)
//   pulumi config set machineType c3-standard-4           # optional: any family (default e2-micro)
//   pulumi up
//   curl "$(pulumi stack output url)"
//
// (*) A relative path is taken from this directory, where Pulumi runs the program.
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { Unikernel } from "pulumi-mirage";
import * as gcp from "pulumi-mirage/gcp";

const config = new pulumi.Config();
const prebuilt = config.get("kernel");

const web = new Unikernel(
  "web",
  prebuilt
    ? { kernel: prebuilt, target: "spt" }
    : { source: path.join(__dirname, "..", "web"), target: "spt" },
);

const service = new gcp.UnikernelService("web", {
  unikernel: web,
  // The host path: a Debian 12 VM running the unikernel under this tender.
  host: { tender: config.require("tender") },
  project: config.require("project"),
  region: config.require("region"),
  zone: config.require("zone"),
  // Any family runs spt; hvt would need an Intel one with nested virtualization (n2, c3, c4...),
  // an Arm one (t2a, c4a) an aarch64 kernel and tender.
  machineType: config.get("machineType") ?? "e2-micro",
  ports: [8080],
  waitFor: { console: "serving HTTP on port 8080", timeoutSeconds: 600 },
});

export const instances = service.instanceNames;
/** The VM's ephemeral address (set staticIp for one that survives new kernels). */
export const url = service.address.apply((address) => `http://${address}:8080/`);
/** What the VM printed that proved it serves. */
export const booted = service.bootCheck?.matched;
/** Run one to read a VM's serial console. */
export const serialConsole = service.serialCommands;
