// `pulumi-mirage run`, as a user runs it: disk images and virtio kernels booted in QEMU with the
// accelerator the probe chose, hvt/spt kernels under the stand-in tenders with a tap in a network
// namespace this file makes (named with our pid: others run tests here too), the refusals, and
// that Ctrl-C or SIGTERM leaves no process, tap user or temporary file behind. Every run gets a
// TMPDIR of its own, which must be empty once it has ended.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { buildImage } from "../provider/image";
import { kvmUsable } from "../provider/local/qemu";
import { demoKernel, demoKernelPort } from "../sdk/demo";
import { bootSectorDisk } from "./support/boot-sector";
import { CLI, type CliRun, type Ended, startCli } from "./support/cli";
import { testKernel, testTapEcho, testUnixProgram } from "./support/kernels";
import { freePort } from "./support/net";
import { processesMentioning, waitFor } from "./support/process";

const STANDINS = resolve(__dirname, "..", "..", "test", "standins");
const NETNS = `mirage-run-${process.pid}`;

let dir: string;
let cache: string;
let tapEcho: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "cli-run-test-"));
  // The probe's answer goes to this file's cache, never the user's.
  cache = join(dir, "cache");
  execFileSync("ip", ["netns", "add", NETNS]);
  execFileSync("ip", ["-n", NETNS, "link", "set", "dev", "lo", "up"]);
  tapEcho = await testTapEcho();
});
/** Every run started, killed by the after-hook if a failing test left it running. */
const started: CliRun[] = [];
after(async () => {
  for (const { child } of started)
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await Promise.all(started.map((run) => run.ended));
  // Nothing we started is left: every process was given a path under `dir`, or ran in NETNS.
  const left = [
    ...processesMentioning(dir),
    ...spawnSync("ip", ["netns", "pids", NETNS], { encoding: "utf8" }).stdout.split("\n"),
  ].filter((line) => line !== "");
  for (const entry of left) {
    try {
      process.kill(Number(entry.split(":")[0]), "SIGKILL");
    } catch {
      // Gone meanwhile.
    }
  }
  spawnSync("ip", ["netns", "del", NETNS]);
  await rm(dir, { recursive: true, force: true });
  assert.deepEqual(left, []);
});

let runs = 0;
/** Starts `pulumi-mirage run ARGS...` with a TMPDIR of its own; `tmp` is that directory. */
async function start(args: string[], env: NodeJS.ProcessEnv = {}, given?: string) {
  const tmp = given ?? join(dir, `tmp-${++runs}`);
  await mkdir(tmp, { recursive: true });
  const cli = startCli([CLI, "run", ...args], {
    TMPDIR: tmp,
    PULUMI_MIRAGE_CACHE: cache,
    ...env,
  });
  started.push(cli);
  return { cli, tmp };
}

/** Runs it to its end; also checks that it left nothing in its TMPDIR. */
async function runToEnd(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Ended> {
  const { cli, tmp } = await start(args, env);
  const ended = await cli.ended;
  assert.deepEqual(readdirSync(tmp), [], `${args.join(" ")} left files in its TMPDIR`);
  return ended;
}

/** Waits until the run's stdout (the console) shows `text`. */
const consoleShows = (cli: CliRun, text: string) =>
  waitFor(
    `the console to show ${JSON.stringify(text)}`,
    () => cli.output().stdout.includes(text),
    120_000,
  );

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

describe("pulumi-mirage run in QEMU", () => {
  test("a virtio disk image boots, its console on stdout, and the run ends with QEMU", async () => {
    const image = await buildImage({
      kernel: await testKernel("virtio-net"),
      outDir: join(dir, "virtio-net"),
      format: "gce",
      bootArgs: ["--ipv4=10.0.0.2/24"],
    });
    assert.ok(image.archive);
    for (const path of [image.disk.path, image.archive.path]) {
      const ended = await runToEnd([path]);
      // The test kernel powers off through isa-debug-exit writing 0: QEMU exits with 1.
      assert.equal(ended.status, 1, ended.stderr);
      assert.match(ended.stdout, /Hello, World\r?\nCommand line is: '--ipv4=10\.0\.0\.2\/24'/);
      assert.match(ended.stderr, /QEMU exited with status 1 \(the guest powered off\)/);
    }
  });

  test("a virtio kernel is made into a disk on the fly, with ARGS as its boot arguments", async () => {
    const ended = await runToEnd([await testKernel("virtio"), "--", "--hello=Hi", "-l", "*:debug"]);
    assert.equal(ended.status, 1, ended.stderr);
    assert.match(ended.stdout, /Command line is: '--hello=Hi -l \*:debug'/);
  });

  test("-p forwards a host port to the guest, where the demo kernel answers HTTP; Ctrl-C stops it, leaving nothing", async () => {
    const port = await freePort();
    const { cli, tmp } = await start([demoKernel, "-p", `${port}:${demoKernelPort}`]);
    await consoleShows(cli, "demo: serving on");
    const [qemu] = processesMentioning(tmp);
    assert.ok(qemu, "QEMU runs");
    // The forward, on 127.0.0.1 by default, goes to the guest's port; the NIC came with -p.
    assert.match(qemu, new RegExp(`hostfwd=tcp:127\\.0\\.0\\.1:${port}-:${demoKernelPort}\\b`));
    const response = await fetch(`http://127.0.0.1:${port}/hello`);
    assert.equal(response.status, 200);
    assert.match(await response.text(), /the pulumi-mirage demo unikernel served request 1/);
    await consoleShows(cli, "demo: HTTP request 1 from 10.0.2.2: GET /hello");
    cli.child.kill("SIGINT");
    const ended = await cli.ended;
    assert.equal(ended.status, 130, ended.stderr);
    assert.match(ended.stderr, /stopped by SIGINT/);
    assert.deepEqual(processesMentioning(tmp), []);
    assert.equal(await accepts(port), false);
    assert.deepEqual(readdirSync(tmp), []);
  });
});

describe("pulumi-mirage run killed with SIGKILL", () => {
  test("takes QEMU with it, and the next run removes the files it left", async () => {
    const forever = await bootSectorDisk(dir, "killed", "up until killed\n", "run");
    const { cli, tmp } = await start([forever]);
    await consoleShows(cli, "up until killed");
    assert.equal(processesMentioning(forever).length, 1, "QEMU runs");
    cli.child.kill("SIGKILL");
    await cli.ended;
    // QEMU gets the parent-death signal the moment `run` dies.
    await waitFor("QEMU to go", () => processesMentioning(forever).length === 0, 10_000);
    assert.notDeepEqual(readdirSync(tmp), [], "the killed run could not remove its scratch");
    const next = await start([await testKernel("virtio")], {}, tmp);
    assert.equal((await next.cli.ended).status, 1);
    assert.deepEqual(readdirSync(tmp), []);
  });
});

describe("pulumi-mirage run of hvt and spt kernels under their tender", () => {
  const tender = (target: "hvt" | "spt") => join(STANDINS, `solo5-${target}`);
  const ip = (...args: string[]) => execFileSync("ip", ["-n", NETNS, ...args]);
  /** A tap in our namespace, up, with the host's address. */
  function makeTap(name: string, address: string) {
    ip("tuntap", "add", "dev", name, "mode", "tap");
    ip("address", "add", address, "dev", name);
    ip("link", "set", "dev", name, "up");
  }
  /** Sends `text` by UDP to ADDRESS:7 from inside our namespace; the answer and who sent it. */
  function udpEcho(address: string, text: string): string {
    const script = `
      const socket = require("node:dgram").createSocket("udp4");
      const timer = setTimeout(() => { console.log("no answer"); process.exit(1); }, 20000);
      socket.on("message", (message, from) => {
        console.log(message + " from " + from.address);
        clearTimeout(timer);
        socket.close();
      });
      socket.send(process.argv[2], 7, process.argv[1]);`;
    return execFileSync(
      "ip",
      ["netns", "exec", NETNS, process.execPath, "-e", script, address, text],
      { encoding: "utf8" },
    ).trim();
  }

  test("spt: the declared devices on a tap and a file; the unikernel answers behind the tap; SIGTERM stops it", async () => {
    makeTap("runtap1", "10.10.5.1/24");
    const disk = join(dir, "storage.img");
    await writeFile(disk, Buffer.alloc(1024 * 1024));
    const kernel = await testKernel("spt-devices");
    const { cli, tmp } = await start(
      [
        kernel,
        ...["--tender", tender("spt"), "--netns", NETNS, "--mem", "32"],
        ...["--net", "runtap1", "--block", `storage=${disk}`, "--", "--ipv4=10.10.5.2/24"],
      ],
      { MIRAGE_STANDIN_TAP_ECHO: tapEcho },
    );
    await consoleShows(cli, "answers ARP");
    assert.deepEqual(cli.output().stdout.trim().split("\n"), [
      `solo5-spt stand-in: would run ${kernel} with --mem=32 and arguments '--ipv4=10.10.5.2/24'`,
      "solo5-spt stand-in: net 'service' on tap runtap1",
      `solo5-spt stand-in: block 'storage' on ${disk} (1048576 bytes, sector size 512)`,
      "solo5-spt stand-in: answers ARP and UDP echo on 10.10.5.2 (tap-echo)",
    ]);
    assert.equal(udpEcho("10.10.5.2", "hello, run"), "hello, run from 10.10.5.2");
    cli.child.kill("SIGTERM");
    const ended = await cli.ended;
    assert.equal(ended.status, 143, ended.stderr);
    assert.match(ended.stderr, /stopped by SIGTERM/);
    assert.equal(spawnSync("ip", ["netns", "pids", NETNS], { encoding: "utf8" }).stdout, "");
    assert.deepEqual(readdirSync(tmp), []);
  });

  test("hvt runs the same way where /dev/kvm is usable, and is refused naming spt where not", async () => {
    makeTap("runtap2", "10.10.6.1/24");
    const disk = join(dir, "hvt.img");
    await writeFile(disk, Buffer.alloc(4096));
    const args = [
      await testKernel("hvt-devices"),
      ...["--tender", tender("hvt"), "--netns", NETNS],
      ...["--net", "service=runtap2", "--block", `storage=${disk}`],
    ];
    if (!kvmUsable()) {
      const ended = await runToEnd(args);
      assert.equal(ended.status, 1);
      assert.match(ended.stderr, /hvt kernels run on KVM, and .*build the unikernel for spt/);
      return;
    }
    const { cli } = await start(args);
    await consoleShows(cli, "block 'storage'");
    cli.child.kill("SIGINT");
    assert.equal((await cli.ended).status, 130);
  });

  test("a tap that is down is refused before the tender runs, in run's words", async () => {
    ip("tuntap", "add", "dev", "runtap3", "mode", "tap");
    const ended = await runToEnd([
      await testKernel("spt-net"),
      ...["--tender", tender("spt"), "--netns", NETNS, "--net", "runtap3"],
    ]);
    assert.equal(ended.status, 1);
    assert.match(
      ended.stderr,
      /--net service: tap interface runtap3 is down, and the tender refuses it: `ip -n mirage-run-\d+ link set dev runtap3 up`/,
    );
    assert.equal(ended.stdout, "");
  });

  test("a unix build runs as a program with ARGS; the run ends with its status", async () => {
    const ended = await runToEnd([await testUnixProgram(), "--", "--hello=Hi"]);
    assert.equal(ended.status, 0, ended.stderr);
    assert.match(ended.stdout, /Hello, World\nCommand line is: '--hello=Hi'/);
    assert.match(ended.stderr, /exited with status 0/);
  });

  test("devices are checked against the kernel's manifest, in run's words", async () => {
    const kernel = await testKernel("spt-devices");
    const common = ["--tender", tender("spt"), "--netns", NETNS];
    const unattached = await runToEnd([kernel, ...common]);
    assert.equal(unattached.status, 1);
    assert.match(
      unattached.stderr,
      /declares network device service, which is not attached, and the tender refuses to start it: add --net service=TAP/,
    );
    assert.match(unattached.stderr, /declares block device storage, .*add --block storage=FILE/);
    const missing = await runToEnd([kernel, ...common, "--net", "service=nosuchtap"]);
    assert.match(
      missing.stderr,
      /--net service: tap interface nosuchtap does not exist in network namespace mirage-run-\d+: create it: `ip -n mirage-run-\d+ tuntap add dev nosuchtap mode tap/,
    );
    const undeclared = await runToEnd([kernel, ...common, "--net", "other=runtap1"]);
    assert.match(
      undeclared.stderr,
      /--net other: the kernel declares no network device named other/,
    );
  });
});

describe("pulumi-mirage run refuses", () => {
  test("xen and aws images and xen kernels, at once, saying what runs them", async () => {
    const xen = await buildImage({
      kernel: await testKernel("xen-net"),
      outDir: join(dir, "xen"),
      format: "aws",
      bootArgs: [],
    });
    const disk = await runToEnd([xen.disk.path]);
    assert.equal(disk.status, 1);
    assert.match(
      disk.stderr,
      /holds a Solo5 xen kernel \(a xen or aws image\), which prints only to the Xen console .*xen\.Domain.*aws\.UnikernelService.*mirage configure -t virtio/,
    );
    assert.equal(disk.stdout, "", "QEMU never ran");
    const kernel = await runToEnd([await testKernel("xen")]);
    assert.match(kernel.stderr, /is a Solo5 xen kernel, .*run it on a Xen host with xen\.Domain/);
  });

  test("what is neither a disk image nor a unikernel, and kernels of other platforms", async () => {
    const notes = join(dir, "notes.txt");
    await writeFile(notes, "not a unikernel\n");
    // A damaged kernel, executable as kernels are, is never taken for a unix build and run.
    const damaged = join(dir, "damaged.hvt");
    await writeFile(damaged, readFileSync(await testKernel("hvt")).subarray(0, 200), {
      mode: 0o755,
    });
    const cases: [string, RegExp][] = [
      [damaged, /damaged\.hvt.*the file is incomplete/],
      [notes, /notes\.txt is a text file, not a disk image/],
      [join(dir, "nothing-here"), /nothing-here does not exist: give a disk image or a unikernel/],
      [dir, /is not a file: give a disk image or a unikernel/],
      [
        await testKernel("muen"),
        /is a Solo5 muen kernel, which runs only on the Muen separation kernel/,
      ],
    ];
    for (const [path, message] of cases) {
      const ended = await runToEnd([path]);
      assert.equal(ended.status, 1, path);
      assert.match(ended.stderr, message);
    }
  });

  test("a missing tender, naming --tender", async () => {
    const ended = await runToEnd([await testKernel("spt")], { PATH: "/usr/bin:/bin" });
    assert.equal(ended.status, 1);
    assert.match(
      ended.stderr,
      /spt kernels run under the Solo5 tender solo5-spt, and solo5-spt is not on PATH: install Solo5 .*or give the tender's path as --tender PATH/,
    );
  });

  test("wrong ports and flags that do not apply, with status 2, in local.Vm's words", async () => {
    const disk = join(dir, "virtio-net", "disk.raw");
    const spt = await testKernel("spt");
    const cases: [string[], RegExp][] = [
      [
        [disk, "-p", "70000:80"],
        /-p 70000:80: the host port must be a port number from 1 to 65535/,
      ],
      [[disk, "-p", "8080"], /-p 8080: give HOST:GUEST, ADDR:HOST:GUEST, or either with \/udp/],
      [
        [disk, "-p", "8080:80/sctp"],
        /-p 8080:80\/sctp: the protocol must be "tcp" or "udp", not "sctp"/,
      ],
      [
        [disk, "-p", "1.2.3:8080:80"],
        /-p 1\.2\.3:8080:80: the host address "1\.2\.3" is not an IPv4 address/,
      ],
      [
        [disk, "-p", "8080:80", "-p", "8080:81"],
        /-p 8080:81: the host port 8080 is forwarded twice: each host port can go to one guest port/,
      ],
      [[disk, "--", "--hello=Hi"], /boot arguments are part of a disk image/],
      [[disk, "--net", "tap0"], /--net attaches Solo5 devices to hvt and spt kernels/],
      [[spt, "-p", "8080:80"], /--port forwards ports to a QEMU guest/],
      [[disk, "--json"], /unknown option --json/],
      [[disk, disk], /give one IMAGE\|KERNEL/],
    ];
    for (const [args, message] of cases) {
      const ended = await runToEnd(args);
      assert.equal(ended.status, 2, args.join(" "));
      assert.match(ended.stderr, message);
    }
    const noNet = await runToEnd([await testKernel("virtio"), "-p", "8080:80"]);
    assert.equal(noNet.status, 1);
    assert.match(noNet.stderr, /the unikernel in .* declares none: declare a network stack/);
  });
});
