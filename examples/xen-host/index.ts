// examples/hello as a PVH domain on a Xen host (dom0 reachable over SSH, `xl` on its PATH).
//
//   pulumi config set host xen1.example.org
//   pulumi config set --secret sshKey < ~/.ssh/id_ed25519       # the key's contents
//   pulumi config set hostKey "$(ssh-keyscan -t ed25519 xen1.example.org 2>/dev/null | cut -d' ' -f2-)"
//                                # optional: without it the key seen first is recorded and pinned
//   pulumi config set kernel dist/hello.xen                      # optional: a prebuilt xen kernel
//   pulumi up
//
// Then, on the host, `xl console hello` shows what the unikernel prints.
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { Unikernel, xen } from "pulumi-mirage";

const config = new pulumi.Config();
const prebuilt = config.get("kernel");

const hello = new Unikernel(
  "hello",
  prebuilt
    ? { kernel: prebuilt, target: "xen" }
    : { source: path.join(__dirname, "..", "hello"), target: "xen" },
);

const domain = new xen.Domain("hello", {
  connection: {
    host: config.require("host"),
    port: config.getNumber("port"),
    user: config.get("user"),
    privateKey: config.requireSecret("sshKey"),
    hostKey: config.get("hostKey"),
  },
  kernel: hello,
  memory: 32,
  bridge: config.get("bridge") ?? "xenbr0",
  bootArgs: ["-l", "*:info"],
});

export const domainName = domain.name;
export const domainId = domain.domainId;
/** The host key every later connection requires. */
export const hostKey = domain.hostKey;
export const configPath = domain.configPath;
