// local.Process with the devices an hvt/spt kernel declares, and local.Tap, through the real
// dynamic-provider process, in a network namespace this file makes (named with our pid: others
// run tests here too) and removes whatever happens. The tenders are the stand-ins, which refuse
// what the real Solo5 tenders refuse (docs/platforms.md, "Solo5 tenders").
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { isRunning, type ProcessIdentity } from "../provider/core/background";
import { kvmUsable } from "../provider/local/qemu";
import * as local from "../sdk/local";
import { Unikernel } from "../sdk/unikernel";
import { type DynamicProvider, type Props, startDynamicProvider } from "./support/dynamic-provider";
import { testKernel, testTapEcho } from "./support/kernels";

const STANDINS = resolve(__dirname, "..", "..", "test", "standins");
const NETNS = `mirage-lp-${process.pid}`;
const ip = (...args: string[]) => execFileSync("ip", ["-n", NETNS, ...args], { encoding: "utf8" });
/** The interface in our namespace as iproute2 shows it, or undefined. */
function link(
  name: string,
): { flags: string[]; addr_info: { local: string; prefixlen: number }[] } | undefined {
  const shown = spawnSync("ip", ["-n", NETNS, "-j", "address", "show", "dev", name], {
    encoding: "utf8",
  });
  return shown.status === 0 ? JSON.parse(shown.stdout)[0] : undefined;
}

let dir: string;
let provider: DynamicProvider;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "local-process-test-"));
  execFileSync("ip", ["netns", "add", NETNS]);
  ip("link", "set", "dev", "lo", "up");
  // The stand-in tenders start tap-echo behind a unikernel's tap when it is given an address.
  provider = await startDynamicProvider({ env: { MIRAGE_STANDIN_TAP_ECHO: await testTapEcho() } });
});
after(async () => {
  await provider?.stop();
  // Nothing we started is left: every process was given a path under `dir`, or ran in NETNS.
  const left =
    spawnSync("pgrep", ["-af", dir], { encoding: "utf8" }).stdout +
    spawnSync("ip", ["netns", "pids", NETNS], { encoding: "utf8" }).stdout;
  spawnSync("ip", ["netns", "del", NETNS]);
  await rm(dir, { recursive: true, force: true });
  assert.equal(left, "");
});

/** check then create, failing on any check failure. */
async function made(module: "local-tap" | "local-process", news: Props) {
  const { inputs, failures } = await provider.check(module, {}, news);
  assert.deepEqual(failures, [], module);
  return provider.create(module, inputs);
}

const tender = (target: "hvt" | "spt") => join(STANDINS, `solo5-${target}`);

async function processInputs(target: "hvt" | "spt", extra: Props): Promise<Props> {
  return {
    kernel: await testKernel(`${target}-devices`),
    target,
    tender: tender(target),
    args: [],
    netns: NETNS,
    cacheDir: join(dir, "cache"),
    ...extra,
  };
}

/** The tender's argv as the running process has it (the stand-in runs as `node TENDER ...`). */
const tenderArgv = (pid: number) =>
  readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").slice(1, -1);

/** Sends `text` by UDP to ADDRESS:7 from inside our namespace; the answer and who sent it. */
function udpEcho(address: string, text: string): string {
  const script = `
    const socket = require("node:dgram").createSocket("udp4");
    const timer = setTimeout(() => { console.log("no answer"); process.exit(1); }, 20000);
    socket.on("message", (message, from) => {
      console.log(message + " from " + from.address + ":" + from.port);
      clearTimeout(timer);
      socket.close();
    });
    socket.send(process.argv[2], 7, process.argv[1]);`;
  return execFileSync(
    "ip",
    ["netns", "exec", NETNS, process.execPath, "-e", script, address, text],
    {
      encoding: "utf8",
    },
  ).trim();
}

describe("local.Tap", () => {
  test("makes a tap in the namespace, up, with the host address; delete removes it", async () => {
    const { id, outs } = await made("local-tap", {
      name: "lptap0",
      address: "10.10.0.1/24",
      netns: NETNS,
    });
    assert.equal(outs.interface, "lptap0");
    const made_ = link("lptap0");
    assert.ok(made_);
    assert.ok(made_.flags.includes("UP"), made_.flags.join(","));
    assert.deepEqual(
      made_.addr_info
        .filter((a) => a.local.startsWith("10."))
        .map((a) => `${a.local}/${a.prefixlen}`),
      ["10.10.0.1/24"],
    );
    assert.match(ip("-d", "link", "show", "dev", "lptap0"), /tun type tap/);
    // The same name again is refused at check: an existing interface is not ours to take.
    const again = await provider.check("local-tap", {}, { name: "lptap0", netns: NETNS });
    assert.equal(again.failures[0]?.property, "name");
    assert.match(again.failures[0].reason, /already exists in network namespace/);
    assert.equal((await provider.read("local-tap", id, outs)).id, id);
    await provider.delete("local-tap", id, outs);
    assert.equal(link("lptap0"), undefined);
    assert.equal((await provider.read("local-tap", id, outs)).id, "");
  });

  test("check names a bad name, address or namespace", async () => {
    const { failures } = await provider.check(
      "local-tap",
      {},
      { name: "this-name-is-too-long", address: "10.0.0.1", netns: `${NETNS}-missing` },
    );
    assert.deepEqual(failures.map((f) => f.property).sort(), ["address", "name", "netns"]);
    assert.match(failures.find((f) => f.property === "netns")?.reason ?? "", /ip netns add/);
  });

  test("without CAP_NET_ADMIN it fails with a message saying what it needs", async () => {
    const unprivileged = await startDynamicProvider({
      wrapper: ["setpriv", "--bounding-set", "-net_admin", "--inh-caps", "-net_admin", "--"],
    });
    try {
      const news = { name: "lptap1", netns: NETNS };
      const { failures } = await unprivileged.check("local-tap", {}, news);
      assert.equal(failures[0]?.property, "name");
      assert.match(failures[0].reason, /needs root or the CAP_NET_ADMIN capability/);
      // create says the same, before trying anything.
      await assert.rejects(
        unprivileged.create("local-tap", news),
        /needs root or the CAP_NET_ADMIN capability/,
      );
      assert.equal(link("lptap1"), undefined);
    } finally {
      await unprivileged.stop();
    }
  });
});

describe("local.Process with devices", () => {
  test("attaches a tap and a block file: the tender's command line is the documented one; delete keeps the file", async () => {
    const tap = await made("local-tap", { name: "lptap2", address: "10.10.2.1/24", netns: NETNS });
    const disk = join(dir, "storage.img");
    const news = await processInputs("spt", {
      memoryMiB: 32,
      args: ["--ipv4=10.10.2.2/24"],
      net: { service: { iface: tap.outs.interface, mac: "02:00:00:00:00:2a" } },
      block: { storage: { path: disk, sizeMiB: 4, sectorSize: 4096 } },
      waitFor: { console: "answers ARP", timeoutSeconds: 60 },
    });
    const { id, outs } = await made("local-process", news);
    const identity = outs as unknown as ProcessIdentity;
    try {
      assert.deepEqual(tenderArgv(identity.pid), [
        tender("spt"),
        "--mem=32",
        "--net:service=lptap2",
        "--net-mac:service=02:00:00:00:00:2a",
        `--block:storage=${disk}`,
        "--block-sector-size:storage=4096",
        "--",
        news.kernel,
        "--ipv4=10.10.2.2/24",
      ]);
      assert.deepEqual(outs.console, [
        `solo5-spt stand-in: would run ${news.kernel} with --mem=32 and arguments '--ipv4=10.10.2.2/24'`,
        "solo5-spt stand-in: net 'service' on tap lptap2 mac 02:00:00:00:00:2a",
        `solo5-spt stand-in: block 'storage' on ${disk} (4194304 bytes, sector size 4096)`,
        "solo5-spt stand-in: answers ARP and UDP echo on 10.10.2.2 (tap-echo)",
      ]);
      // A datagram from the host side of the tap comes back from the unikernel's address.
      assert.equal(
        udpEcho("10.10.2.2", "hello through the tap"),
        "hello through the tap from 10.10.2.2:7",
      );
      // Created sparse, at the size asked.
      const info = statSync(disk);
      assert.deepEqual([info.size, info.blocks], [4 * 1024 * 1024, 0]);
    } finally {
      await provider.delete("local-process", id, outs);
      await provider.delete("local-tap", tap.id, tap.outs);
    }
    assert.equal(isRunning(identity), false);
    assert.equal(existsSync(outs.stateDir as string), false);
    assert.equal(link("lptap2"), undefined);
    assert.equal(statSync(disk).size, 4 * 1024 * 1024);
  });

  test("an existing block file is used as it is, never truncated", async () => {
    const tap = await made("local-tap", { name: "lptap3", netns: NETNS });
    const disk = join(dir, "existing.img");
    await writeFile(disk, Buffer.alloc(8192, 7));
    try {
      const { id, outs } = await made(
        "local-process",
        await processInputs("spt", {
          net: { service: "lptap3" },
          block: { storage: { path: disk, sizeMiB: 1 } },
          waitFor: { console: "block 'storage'", timeoutSeconds: 60 },
        }),
      );
      await provider.delete("local-process", id, outs);
      assert.deepEqual(readFileSync(disk), Buffer.alloc(8192, 7));
    } finally {
      await provider.delete("local-tap", tap.id, tap.outs);
    }
  });

  test("hvt runs the same way where /dev/kvm is usable, and is refused naming spt where it is not", async () => {
    const tap = await made("local-tap", { name: "lptap4", netns: NETNS });
    const disk = join(dir, "hvt.img");
    try {
      const news = await processInputs("hvt", {
        net: { service: "lptap4" },
        block: { storage: { path: disk, sizeMiB: 1 } },
        waitFor: { console: "block 'storage'", timeoutSeconds: 60 },
      });
      const { inputs, failures } = await provider.check("local-process", {}, news);
      if (!kvmUsable()) {
        assert.deepEqual(
          failures.map((f) => f.property),
          ["target"],
        );
        assert.match(failures[0].reason, /hvt kernels run on KVM[\s\S]*spt/);
        return;
      }
      assert.deepEqual(failures, []);
      const { id, outs } = await provider.create("local-process", inputs);
      assert.deepEqual(tenderArgv(outs.pid as number), [
        tender("hvt"),
        "--net:service=lptap4",
        `--block:storage=${disk}`,
        "--",
        news.kernel,
      ]);
      await provider.delete("local-process", id, outs);
    } finally {
      await provider.delete("local-tap", tap.id, tap.outs);
    }
  });

  test("hvt is refused when /dev/kvm cannot be opened, even where it exists", async (t) => {
    if (!existsSync("/dev/kvm")) return t.skip("no /dev/kvm here: the test above saw the refusal");
    // A private mount namespace in which /dev/kvm cannot be opened (docs/platforms.md, KVM on hosts).
    const noKvm = await startDynamicProvider({
      wrapper: [
        "unshare",
        "-m",
        "sh",
        "-c",
        'mount --bind /dev/null /dev/kvm && mount -o remount,bind,nodev /dev/kvm && exec "$@"',
        "sh",
      ],
    });
    try {
      const { failures } = await noKvm.check("local-process", {}, await processInputs("hvt", {}));
      assert.equal(failures[0]?.property, "target");
      assert.match(failures[0].reason, /cannot be opened read-write[\s\S]*spt/);
    } finally {
      await noKvm.stop();
    }
  });

  test("check refuses each bad attachment, naming the device", async () => {
    ip("tuntap", "add", "dev", "lpdown", "mode", "tap"); // a tap left down
    const disk = join(dir, "check.img");
    const refusals = async (extra: Props) =>
      (await provider.check("local-process", {}, await processInputs("spt", extra))).failures;
    const cases: [Props, string, RegExp][] = [
      [
        { block: { storage: { path: disk, sizeMiB: 1 } } },
        "net",
        /network device service, which is not attached/,
      ],
      [{ net: { service: "lpdown" } }, "block", /block device storage, which is not attached/],
      [
        { net: { service: "lpnone" } },
        "net.service",
        new RegExp(`lpnone does not exist in network namespace ${NETNS}`),
      ],
      [{ net: { service: "lpdown" } }, "net.service", /lpdown is down/],
      [{ net: { service: "lo" } }, "net.service", /lo is not a tap/],
      [
        { net: { service: "lpdown", other: "lpdown" } },
        "net.other",
        /declares no network device named other/,
      ],
      [
        { block: { storage: join(dir, "no-such-dir", "disk.img") } },
        "block.storage",
        /directory of .* does not exist/,
      ],
      [{ block: { storage: disk } }, "block.storage", /does not exist: give sizeMiB/],
      [
        { block: { storage: { path: disk, sizeMiB: 1, sectorSize: 1000 } } },
        "block.storage.sectorSize",
        /must be a power of two from 512 to 32768, not 1000/,
      ],
      [{ net: { service: { iface: "lpdown", mac: "02:00" } } }, "net.service", /not a MAC address/],
      [{ netns: `${NETNS}-missing` }, "netns", /does not exist: create it with `ip netns add/],
      [{ kernel: await testKernel("hvt-devices") }, "kernel", /hvt kernel, not spt/],
    ];
    for (const [extra, property, reason] of cases) {
      const failures = await refusals(extra);
      const found = failures.find((f) => f.property === property);
      assert.ok(
        found,
        `${JSON.stringify(extra)}: no failure for ${property} in ${JSON.stringify(failures)}`,
      );
      assert.match(found.reason, reason);
    }
    // A Unikernel's outputs give the manifest: a kernel declaring nothing is held to it.
    const fromOutputs = await provider.check(
      "local-process",
      {},
      {
        ...(await processInputs("spt", {})),
        kernel: await testKernel("spt"),
        manifest: [{ name: "service", type: "net" }],
      },
    );
    assert.deepEqual(
      fromOutputs.failures.map((f) => f.property),
      ["net"],
    );
    // A tap name unknown at preview (a local.Tap not made yet) is checked once it is known.
    const preview = await refusals({
      net: { service: "04da6b54-80e4-46f7-96ec-b56ff0331ba9" },
      block: { storage: { path: disk, sizeMiB: 1 } },
    });
    assert.deepEqual(preview, []);
  });

  test("create shows the tender's own refusal when a declared device is left unattached", async () => {
    // What check refuses never reaches create through the engine; called directly, the tender says.
    await assert.rejects(
      provider.create("local-process", await processInputs("spt", {})),
      (error: Error) => {
        assert.match(error.message, /exited at once/);
        assert.match(
          error.message,
          /solo5-spt: Device 'service' of type NET_BASIC declared but not attached\.\nsolo5-spt: Device 'storage' of type BLOCK_BASIC declared but not attached\.\nsolo5-spt: All declared devices must be attached\. See --help for syntax\./,
        );
        return true;
      },
    );
  });
});

describe("the stand-in tenders", () => {
  const runTender = (target: "hvt" | "spt", args: string[]) =>
    spawnSync("ip", ["netns", "exec", NETNS, tender(target), ...args], { encoding: "utf8" });

  test("refuse a missing tap and a missing block file as the real ones do, with status 1", async () => {
    const kernel = await testKernel("spt-devices");
    const missingTap = runTender("spt", ["--net:service=lpnone", kernel]);
    assert.equal(missingTap.status, 1);
    assert.deepEqual(missingTap.stderr.split("\n").slice(0, 3), [
      "solo5-spt: Could not attach interface: lpnone: No such file or directory",
      "solo5-spt: Invalid option: `--net:service=lpnone'",
      "usage: solo5-spt [ CORE OPTIONS ] [ -- ] KERNEL [ ARGS ]",
    ]);
    const missingFile = join(dir, "none.img");
    const noFile = runTender("spt", [`--block:storage=${missingFile}`, kernel]);
    assert.equal(noFile.status, 1);
    assert.equal(
      noFile.stderr,
      `solo5-spt: Could not open block device: ${missingFile}: No such file or directory\n`,
    );
    const version = runTender("hvt", ["--version"]);
    assert.deepEqual(
      [version.status, version.stderr],
      [0, "solo5-hvt tender, version v0.12.1\nABI version 2\n"],
    );
  });
});

describe("sdk local.Tap and local.Process under mocks", () => {
  test("a Process takes its Unikernel's manifest and each Tap's interface, which waits for the tap", async () => {
    const registered = new Map<string, Record<string, unknown>>();
    pulumi.runtime.setMocks(
      {
        newResource: (args) => {
          registered.set(args.type.split(":").pop() as string, args.inputs);
          const extra: Record<string, Record<string, unknown>> = {
            Unikernel: {
              kernelPath: "/cache/web.hvt",
              target: "hvt",
              manifest: [{ name: "service", type: "net" }],
            },
            LocalTap: { interface: args.inputs.name },
            LocalProcess: { pid: 42 },
          };
          return {
            id: `${args.name}-id`,
            state: { ...args.inputs, ...extra[args.type.split(":").pop() as string] },
          };
        },
        call: () => ({}),
      },
      "project",
      "stack",
      false,
    );
    const web = new Unikernel("web", { kernel: "/prebuilt/web.hvt", target: "hvt" });
    const tap = new local.Tap("web", { name: "tap100", address: "10.0.0.1/24", netns: "lab" });
    const server = new local.Process("web", {
      kernel: web,
      net: { service: { iface: tap, mac: "02:00:00:00:00:01" } },
      block: { storage: { path: "/var/lib/web/storage.img", sizeMiB: 64 } },
      netns: "lab",
    });
    await new Promise((done) => server.pid.apply(done));
    const inputs = registered.get("LocalProcess");
    assert.ok(inputs);
    assert.deepEqual(
      [inputs.kernel, inputs.target, inputs.manifest, inputs.net, inputs.block, inputs.netns],
      [
        "/cache/web.hvt",
        "hvt",
        [{ name: "service", type: "net" }],
        { service: { iface: "tap100", mac: "02:00:00:00:00:01" } },
        { storage: { path: "/var/lib/web/storage.img", sizeMiB: 64 } },
        "lab",
      ],
    );
    const tapInputs = registered.get("LocalTap") ?? {};
    assert.deepEqual(
      [tapInputs.name, tapInputs.address, tapInputs.netns],
      ["tap100", "10.0.0.1/24", "lab"],
    );
  });
});
