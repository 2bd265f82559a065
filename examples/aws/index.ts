// examples/hello on AWS EC2 (experimental: see the README's "AWS EC2" section for why). Builds the
// unikernel for Solo5 xen, makes its raw BIOS disk, writes it into an EBS snapshot (EBS direct
// APIs: only its non-zero blocks), registers an HVM legacy-BIOS AMI and runs it on a t2.micro.
//
//   pulumi config set aws:region eu-west-1
//   pulumi config set kernel dist/hello.xen    # optional: a prebuilt xen kernel, no OCaml needed (*)
//   pulumi up
//   $(pulumi stack output consoleOutputCommands | jq -r '.[0]')
//
// (*) A relative path is taken from this directory, where Pulumi runs the program.
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { Unikernel } from "pulumi-mirage";
import * as aws from "pulumi-mirage/aws";

const config = new pulumi.Config();
const prebuilt = config.get("kernel");

const hello = new Unikernel(
  "hello",
  prebuilt
    ? { kernel: prebuilt, target: "xen" }
    : { source: path.join(__dirname, "..", "hello"), target: "xen" },
);

const service = new aws.UnikernelService("hello", {
  unikernel: hello,
  // The AMI path, with its defaults: the disk written into an EBS snapshot, root /dev/xvda.
  ami: {},
  // A Xen-based type; Nitro types (t3, m5, ...) are refused at preview.
  instanceType: config.get("instanceType") ?? "t2.micro",
  // examples/hello serves nothing: open no ports.
  ports: [],
});

export const amiId = service.amiId;
export const instanceIds = service.instanceIds;
export const publicIps = service.publicIps;
/** Run one to read what the unikernel printed (it may be empty: Solo5 xen prints to the PV console). */
export const consoleOutputCommands = service.consoleOutputCommands;
