// The everyday MirageOS loop on Linux, as a Pulumi program: build examples/web for Solo5 hvt, make
// a tap interface with the host's address on it, run the unikernel under solo5-hvt attached to
// that tap, and wait for it to serve. Then `curl http://10.0.0.2:8080/` from the host.
//
// Config (all optional):
//   kernel   a prebuilt web.hvt: no OCaml toolchain needed (a relative path is taken from
//            this directory, where Pulumi runs the program)
//   target   hvt (default; needs /dev/kvm) or spt (a seccomp-sandboxed process, any Linux)
//   netns    a network namespace made with `ip netns add NAME` to keep the tap in
// Creating the tap needs root or CAP_NET_ADMIN (`sudo pulumi up`).
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { local, Unikernel } from "pulumi-mirage";

const config = new pulumi.Config();
const target = (config.get("target") ?? "hvt") as "hvt" | "spt";
const prebuilt = config.get("kernel");
const netns = config.get("netns");

const web = new Unikernel(
  "web",
  prebuilt ? { kernel: prebuilt, target } : { source: path.join(__dirname, "..", "web"), target },
);

// The host is 10.0.0.1 on the tap's network; the unikernel takes 10.0.0.2.
const tap = new local.Tap("web", { name: "tap100", address: "10.0.0.1/24", netns });

const server = new local.Process("web", {
  kernel: web,
  // examples/web declares one network device, `service`: the tender needs it attached.
  net: { service: tap },
  netns,
  args: ["--ipv4=10.0.0.2/24", "--ipv4-gateway=10.0.0.1"],
  waitFor: { console: "serving HTTP on port 8080", timeoutSeconds: 60 },
});

/** Where the unikernel answers, from the host (inside `netns` when one is given). */
export const url = "http://10.0.0.2:8080/";
/** The first lines the unikernel printed. */
export const consoleLines = server.console;
/** Its whole output, as it goes on. */
export const consoleLog = server.consoleLog;
