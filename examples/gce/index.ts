// Serve examples/web from Google Compute Engine: build it for Solo5 virtio, make its GCE disk
// image, upload it, and run it on an e2-micro VM with TCP 8080 open. `pulumi up` ends once the
// unikernel's serial console says it serves.
//
//   pulumi config set project MY-PROJECT   # region and zone default to europe-west1(-b)
//   pulumi config set kernel PATH          # optional: a prebuilt web.virtio, no OCaml needed
//   pulumi up
//   curl "$(pulumi stack output url)"
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
  // GCE networks default to MTU 1460; Solo5 assumes 1500.
  createNetwork: true,
  ports: [8080],
  labels: { example: "web" },
  waitFor: { serial: "serving HTTP on port 8080", timeoutSeconds: 300 },
});

export const image = service.imageSelfLink;
export const instances = service.instanceNames;
export const ips = service.externalIps;
export const url = service.externalIps.apply((addresses) => `http://${addresses[0]}:8080/`);
/** What each VM printed that proved it serves. */
export const booted = service.bootCheck?.matched;
/** Run one to read a VM's serial console. */
export const serialConsole = service.serialCommands;
