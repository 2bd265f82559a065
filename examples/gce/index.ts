// Serve examples/web from Google Compute Engine: build it for Solo5 virtio, make its GCE disk
// image, upload it, and run it on an e2-micro VM with TCP 8080 open. `pulumi up` ends once the
// unikernel's serial console says it serves.
//
//   pulumi config set project MY-PROJECT   # region and zone default to europe-west1(-b)
//   pulumi config set kernel PATH          # optional: a prebuilt web.virtio, no OCaml needed (*)
//   pulumi config set staticIp true        # optional: an address that survives new images
//   pulumi up
//   curl "$(pulumi stack output url)"
//
// (*) A relative path is taken from this directory, where Pulumi runs the program.
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { Unikernel } from "pulumi-mirage";
import * as gcp from "pulumi-mirage/gcp";

const config = new pulumi.Config();
const project = config.require("project");
const region = config.require("region"); // defaults in Pulumi.yaml
const zone = config.require("zone");
const replicas = config.requireNumber("replicas");
const prebuilt = config.get("kernel");
const staticIp = config.requireBoolean("staticIp");

const web = new Unikernel(
  "web",
  prebuilt
    ? { kernel: prebuilt, target: "virtio" }
    : { source: path.join(__dirname, "..", "web"), target: "virtio" },
);

const service = new gcp.UnikernelService("web", {
  unikernel: web,
  project,
  region,
  zone,
  replicas,
  staticIp,
  // No network given: the component creates one with MTU 1500, the frame size Solo5 uses.
  ports: [8080],
  labels: { example: "web" },
  waitFor: { console: "serving HTTP on port 8080", timeoutSeconds: 300 },
});

export const image = service.imageSelfLink;
export const instances = service.instanceNames;
export const ips = service.externalIps;
/** The address to use: the reserved one with staticIp, else the VM's ephemeral IP. */
export const url = service.address.apply((address) => `http://${address}:8080/`);
/** What each VM printed that proved it serves. */
export const booted = service.bootCheck?.matched;
/** Run one to read a VM's serial console. */
export const serialConsole = service.serialCommands;
