// examples/web on a current EC2 type: built for Solo5 spt, it runs as a seccomp-sandboxed
// process under solo5-spt on a stock Debian 12 instance (any type: no Xen, no nested
// virtualization needed). The kernel and your tender go to a private bucket; the instance
// fetches and checks them, puts the unikernel behind a tap, forwards port 8080 to it and runs
// the tender as a systemd service. `pulumi up` returns once the console shows it serving.
//
//   pulumi config set aws:region eu-west-1
//   pulumi config set tender "$(opam var bin)/solo5-spt"   # your switch's tender (solo5 package)
//   pulumi config set kernel dist/web.spt                   # optional: a prebuilt spt kernel (*)
//   pulumi up
//   curl http://$(pulumi stack output publicIps | jq -r '.[0]'):8080/
//
// (*) A relative path is taken from this directory, where Pulumi runs the program.
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { Unikernel } from "pulumi-mirage";
import * as aws from "pulumi-mirage/aws";

const config = new pulumi.Config();
const prebuilt = config.get("kernel");

const web = new Unikernel(
  "web",
  prebuilt
    ? { kernel: prebuilt, target: "spt" }
    : { source: path.join(__dirname, "..", "web"), target: "spt" },
);

const service = new aws.UnikernelService("web", {
  unikernel: web,
  // The host path: a Debian 12 instance running the unikernel under this tender.
  host: {
    tender: config.require("tender"),
    waitFor: { console: "serving HTTP on port 8080", timeoutSeconds: 600 },
  },
  // Any type runs spt; hvt would need c8i, m8i or r8i (nested virtualization).
  instanceType: config.get("instanceType") ?? "t3.micro",
  ports: [8080],
});

export const instanceIds = service.instanceIds;
export const publicIps = service.publicIps;
export const consoleOutputCommands = service.consoleOutputCommands;
