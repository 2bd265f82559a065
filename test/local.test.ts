// local.Vm and local.Process engine modules: check's errors, and the lifecycle of real background
// processes (QEMU with the accelerator the probe chose, a unix program): create waits for the
// console, read sees a death, delete leaves nothing behind.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { type AddressInfo, connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import * as pulumi from "@pulumi/pulumi";
import { isRunning, type ProcessIdentity } from "../provider/core/background";
import { findExecutable } from "../provider/core/exec";
import { buildImage } from "../provider/image";
import { type AccelChoice, chooseAccel } from "../provider/local/accel";
import { type KvmProbe, probeKvm } from "../provider/local/kvm-probe";
import { QEMU } from "../provider/local/qemu";
import {
  type ProcessInputs,
  provider as processProvider,
} from "../provider/resources/local-process";
import { type VmInputs, provider as vmProvider } from "../provider/resources/local-vm";
import { DiskImage, unikernelInputs } from "../sdk/disk-image";
import * as local from "../sdk/local";
import { bootSectorDisk } from "./support/boot-sector";
import { type Props, startDynamicProvider } from "./support/dynamic-provider";
import { testKernel, testUnixProgram } from "./support/kernels";
import { freePort } from "./support/net";
import { processesMentioning } from "./support/process";
import { STANDIN, Standin } from "./support/standin";

/** Processes whose command line mentions `text` (every process we start is given our paths). */
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

let dir: string;
let forever: string;
/** What `auto` chose on this host, and what the probe found: every VM below must follow them. */
let expected: AccelChoice;
let probe: KvmProbe;
/** Every process a test created, killed by the after-hook if a failing test left it running. */
const started: ProcessIdentity[] = [];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "local-test-"));
  forever = await bootSectorDisk(dir, "forever", "Hello from a VM that keeps running\n", "run");
  const qemu = findExecutable(QEMU) ?? QEMU;
  expected = await chooseAccel({ qemu, cacheDir: join(dir, "cache-probe") });
  probe = await probeKvm(qemu);
});
after(async () => {
  for (const id of started) if (isRunning(id)) process.kill(id.pid, "SIGKILL");
  const left = processesMentioning(dir);
  await rm(dir, { recursive: true, force: true });
  assert.deepEqual(left, []);
});

/** create, with what it started recorded for the after-hook. */
async function createVm(inputs: VmInputs) {
  const created = await vmProvider.create(inputs);
  if (created.outs) started.push(created.outs);
  return created;
}

interface Checked<T> {
  inputs: T;
  failures: { property: string; reason: string }[];
}

const checkVm = async (news: Record<string, unknown>) =>
  (await vmProvider.check({}, news)) as unknown as Checked<VmInputs>;
const checkProcess = async (news: Record<string, unknown>) =>
  (await processProvider.check({}, news)) as unknown as Checked<ProcessInputs>;

describe("local.Vm", () => {
  test("check names the input that is wrong and how to fix it", async () => {
    const missing = await checkVm({ image: join(dir, "missing.raw") });
    assert.equal(missing.failures[0].property, "image");
    assert.match(missing.failures[0].reason, /missing\.raw does not exist/);
    const bad = await checkVm({
      image: forever,
      ports: [
        { host: 8080, guest: 80 },
        { host: 8080, guest: 81 },
        { host: 0, guest: 22 },
      ],
      memoryMiB: 4,
      waitFor: { console: "(unclosed" },
    });
    assert.deepEqual(bad.failures.map((failure) => failure.property).sort(), [
      "memoryMiB",
      "ports[1].host",
      "ports[2].host",
      "waitFor.console",
    ]);
    const xen = await checkVm({ image: forever, imageSha256: "x", target: "xen" });
    assert.match(xen.failures[0].reason, /Xen console/);
    const noNet = await checkVm({
      image: forever,
      imageSha256: "x",
      manifest: [],
      ports: [{ host: 8080, guest: 80 }],
    });
    assert.match(noNet.failures[0].reason, /declares none/);
    const accel = await checkVm({ image: forever, accel: "fast" });
    assert.deepEqual(accel.failures, [
      {
        property: "accel",
        reason: 'is "fast": give auto, kvm or tcg',
      },
    ]);
  });

  test("check refuses a file that is not a disk image, saying what it is", async () => {
    const kernel = await checkVm({ image: await testKernel("virtio") });
    assert.equal(kernel.failures[0].property, "image");
    assert.match(kernel.failures[0].reason, /is a Solo5 virtio kernel, not a disk image/);
    const text = join(dir, "notes.txt");
    await writeFile(text, "hello\n");
    const notes = await checkVm({ image: text });
    assert.equal(notes.failures[0].property, "image");
    assert.match(notes.failures[0].reason, /notes\.txt is a text file, not a disk image/);
  });

  test("diff replaces the VM when the accel input changes, not for the accelerator it used", async () => {
    const { inputs } = await checkVm({ image: forever });
    // The state holds the accelerator used under `accel` and the mode asked for under accelMode.
    const state = { ...inputs, accel: "tcg", accelMode: undefined } as unknown as VmInputs;
    assert.equal((await vmProvider.diff("id", state, inputs)).changes, false);
    const forced = await vmProvider.diff("id", state, { ...inputs, accel: "tcg" });
    assert.deepEqual([forced.changes, forced.replaces], [true, ["accel"]]);
  });

  test("a forced kvm where QEMU cannot use it fails create at once with QEMU's words", async (t) => {
    if (probe.usable) {
      t.skip("QEMU runs guests with KVM on this host");
      return;
    }
    const cacheDir = join(dir, "cache-forced");
    // A real boot loader's protected-mode code, which is where such KVMs stop (real-mode code may run).
    const image = await buildImage({
      kernel: await testKernel("virtio"),
      outDir: join(dir, "image-forced"),
      format: "raw",
      bootArgs: [],
    });
    const { inputs, failures } = await checkVm({
      image: image.disk.path,
      accel: "kvm",
      waitFor: { console: "Hello, World", timeoutSeconds: 600 },
      cacheDir,
    });
    assert.deepEqual(failures, []);
    await assert.rejects(createVm(inputs), (error: Error) => {
      assert.doesNotMatch(error.message, /within 600 s/);
      assert.ok(error.message.includes(probe.said[0]), `${error.message}\nlacks ${probe.said[0]}`);
      return true;
    });
    assert.deepEqual(processesMentioning(cacheDir), []);
  });

  test("check takes ports in the shape every resource's take, and 0.1's { host, guest }, as forwards", async () => {
    const { inputs, failures } = await checkVm({
      image: forever,
      ports: [
        8080,
        { port: 80, host: 8081 },
        { port: 53, protocol: "udp", host: 5353, hostAddress: "0.0.0.0" },
        { port: 53, protocol: "udp", host: 8080 },
        { host: 2222, guest: 22, hostAddress: "0.0.0.0" },
      ],
    });
    assert.deepEqual(failures, []);
    assert.deepEqual(inputs.ports, [
      { host: 8080, guest: 8080 },
      { host: 8081, guest: 80 },
      { host: 5353, guest: 53, hostAddress: "0.0.0.0", protocol: "udp" },
      { host: 8080, guest: 53, protocol: "udp" },
      { host: 2222, guest: 22, hostAddress: "0.0.0.0" },
    ]);
    // A 0.1 stack's state holds the forwards as given, keys in whatever order the engine keeps.
    const recorded = {
      ...inputs,
      ports: [
        { guest: 8080, host: 8080 },
        { host: 8081, guest: 80 },
        { guest: 53, hostAddress: "0.0.0.0", host: 5353, protocol: "udp" },
        { protocol: "udp", host: 8080, guest: 53 },
        { hostAddress: "0.0.0.0", guest: 22, host: 2222 },
      ],
    } as VmInputs;
    assert.equal((await vmProvider.diff("id", recorded, inputs)).changes, false);
    const bad = await checkVm({
      image: forever,
      ports: [8080, { port: 80, host: 8080 }, { port: 80, guest: 80, host: 9090 }, "8080:80"],
    });
    assert.deepEqual(bad.failures, [
      {
        property: "ports[1].host",
        reason: "8080 is forwarded twice: each host port can go to one guest port",
      },
      {
        property: "ports[2].guest",
        reason: "is port's former name, and port is given too: keep port (the guest's) only",
      },
      {
        property: "ports[3]",
        reason: 'must be a port number from 1 to 65535, not "8080:80"',
      },
    ]);
  });

  test("check fills in defaults and the image's hash; diff replaces on image or port changes", async () => {
    const { inputs, failures } = await checkVm({ image: forever });
    assert.deepEqual(failures, []);
    assert.equal(inputs.memoryMiB, 128);
    assert.match(inputs.imageSha256 ?? "", /^[0-9a-f]{64}$/);
    const same = await vmProvider.diff("id", inputs, inputs);
    assert.equal(same.changes, false);
    const moved = await vmProvider.diff("id", inputs, {
      ...inputs,
      ports: [{ host: 8080, guest: 80 }],
    });
    assert.deepEqual([moved.changes, moved.replaces], [true, ["ports"]]);
    const waiting = await vmProvider.diff("id", inputs, {
      ...inputs,
      waitFor: { console: "x", timeoutSeconds: 5 },
    });
    assert.deepEqual([waiting.changes, waiting.replaces], [true, []]);
  });

  test("create boots a test kernel's disk image and sees its banner and arguments", async () => {
    const image = await buildImage({
      kernel: await testKernel("virtio"),
      outDir: join(dir, "image"),
      format: "raw",
      bootArgs: ["--hello=Hi"],
    });
    const { inputs } = await checkVm({
      image: image.disk.path,
      waitFor: { console: "^Command line is: ", timeoutSeconds: 120 },
      cacheDir: join(dir, "cache-kernel"),
    });
    const { id, outs } = await createVm(inputs);
    assert.ok(outs);
    assert.deepEqual(outs.console.slice(-3), [
      "Solo5-like test unikernel (pulumi-mirage) target=virtio",
      "Hello, World",
      "Command line is: '--hello=Hi'",
    ]);
    await vmProvider.delete(id, outs);
    assert.equal(existsSync(outs.stateDir), false);
  });

  test("create boots the image and waits for its console; read sees it die and cleans up", async () => {
    const cacheDir = join(dir, "cache-lifecycle");
    const { inputs } = await checkVm({
      image: forever,
      waitFor: { console: "keeps running", timeoutSeconds: 120 },
      cacheDir,
    });
    const { id, outs } = await createVm(inputs);
    assert.ok(outs);
    assert.deepEqual(outs.console, ["Hello from a VM that keeps running"]);
    assert.equal(outs.accel, expected.accel);
    assert.equal(outs.accelReason, expected.reason);
    assert.equal(isRunning(outs), true);
    assert.equal((await vmProvider.read(id, outs)).id, id);

    process.kill(outs.pid, "SIGKILL");
    while (isRunning(outs)) await sleep(20);
    assert.equal((await vmProvider.read(id, outs)).id, "");
    // The engine drops a gone resource without calling delete: read removed its files.
    assert.equal(existsSync(outs.stateDir), false);

    await vmProvider.delete(id, outs);
    assert.deepEqual(processesMentioning(cacheDir), []);
  });

  test("two VMs run at once, each forwarding its own host port", async () => {
    const cacheDir = join(dir, "cache-two");
    const ports = [await freePort(), await freePort()];
    while (ports[1] === ports[0]) ports[1] = await freePort();
    const vms = await Promise.all(
      ports.map(async (port) => {
        const { inputs } = await checkVm({
          image: forever,
          ports: [{ host: port, guest: 80 }],
          waitFor: { console: "Hello", timeoutSeconds: 120 },
          cacheDir,
        });
        return createVm(inputs);
      }),
    );
    try {
      assert.notEqual(vms[0].outs?.pid, vms[1].outs?.pid);
      for (const port of ports) assert.equal(await accepts(port), true, `port ${port}`);
    } finally {
      for (const vm of vms) await vmProvider.delete(vm.id, vm.outs as never);
    }
    for (const port of ports) assert.equal(await accepts(port), false, `port ${port} after delete`);
    assert.deepEqual(processesMentioning(cacheDir), []);
  });

  test("a host port already in use fails create with QEMU's own message", async () => {
    const server = createServer();
    await new Promise<void>((resolvePromise) => server.listen(0, "127.0.0.1", resolvePromise));
    const { port } = server.address() as AddressInfo;
    try {
      const { inputs } = await checkVm({
        image: forever,
        ports: [{ host: port, guest: 80 }],
        cacheDir: join(dir, "cache-busy"),
      });
      await assert.rejects(
        vmProvider.create(inputs),
        new RegExp(
          `exited at once[\\s\\S]*QEMU said:[\\s\\S]*Could not set up host forwarding rule 'tcp:127.0.0.1:${port}-:80'`,
        ),
      );
      // Nothing will ever delete a resource that was not created: its files go with the failure.
      assert.deepEqual(await readdir(join(dir, "cache-busy", "run")), []);
    } finally {
      server.close();
    }
  });

  test("a console that never matches fails create with its tail, and stops the VM", async () => {
    const cacheDir = join(dir, "cache-timeout");
    const { inputs } = await checkVm({
      image: forever,
      // The banner comes from a boot sector, well under a second after start even under TCG.
      waitFor: { console: "never printed", timeoutSeconds: 10 },
      cacheDir,
    });
    await assert.rejects(createVm(inputs), (error: Error) => {
      assert.match(error.message, /did not match \/never printed\/ within 10 s/);
      assert.match(error.message, /Hello from a VM that keeps running/);
      return true;
    });
    assert.deepEqual(processesMentioning(cacheDir), []);
  });
});

describe("local.Process", () => {
  test("an hvt kernel without its tender is refused by name", async () => {
    const { failures } = await checkProcess({
      kernel: forever,
      target: "hvt",
      tender: join(dir, "no-such-solo5-hvt"),
    });
    assert.equal(failures[0].property, "tender");
    assert.match(failures[0].reason, /solo5-hvt/);
    const virtio = await checkProcess({ kernel: forever, target: "virtio" });
    assert.match(virtio.failures[0].reason, /local\.Vm/);
  });

  test("a kernel path's target is read from its Solo5 note; a program without one needs target", async () => {
    const tender = resolve(__dirname, "..", "..", "test", "standins", "solo5-spt");
    const spt = await checkProcess({ kernel: await testKernel("spt"), tender });
    assert.deepEqual(spt.failures, []);
    assert.equal(spt.inputs.target, "spt");
    const virtio = await checkProcess({ kernel: await testKernel("virtio") });
    assert.equal(virtio.failures[0].property, "target");
    assert.match(virtio.failures[0].reason, /"virtio" cannot run as a local process: .*local\.Vm/);
    const program = await testUnixProgram();
    const unix = await checkProcess({ kernel: program });
    assert.deepEqual(
      unix.failures.map((f) => f.property),
      ["kernel"],
    );
    assert.match(unix.failures[0].reason, /; for a unix build, give target: "unix"$/);
    assert.deepEqual((await checkProcess({ kernel: program, target: "unix" })).failures, []);
  });

  test("runs an spt kernel under its tender (the stand-in), with memory and arguments", async () => {
    const tender = resolve(__dirname, "..", "..", "test", "standins", "solo5-spt");
    const kernel = await testKernel("spt");
    const { inputs, failures } = await checkProcess({
      kernel,
      target: "spt",
      tender,
      memoryMiB: 64,
      args: ["--hello=Hi"],
      waitFor: { console: "would run", timeoutSeconds: 60 },
      cacheDir: join(dir, "cache-hvt"),
    });
    assert.deepEqual(failures, []);
    const { id, outs } = await processProvider.create(inputs);
    assert.ok(outs);
    // The tender's command line, as the running process has it (the stand-in is a node script).
    const argv = readFileSync(`/proc/${outs.pid}/cmdline`, "utf8").split("\0").slice(1, -1);
    assert.deepEqual(argv, [tender, "--mem=64", "--", kernel, "--hello=Hi"]);
    assert.deepEqual(outs.console, [
      `solo5-spt stand-in: would run ${kernel} with --mem=64 and arguments '--hello=Hi'`,
    ]);
    await processProvider.delete(id, outs);
    assert.equal(isRunning(outs), false);
  });

  test("finds the tender on PATH when none is given", async () => {
    const saved = process.env.PATH;
    process.env.PATH = `${resolve(__dirname, "..", "..", "test", "standins")}:${saved}`;
    try {
      const { inputs, failures } = await checkProcess({
        kernel: await testKernel("spt"),
        target: "spt",
      });
      assert.deepEqual(failures, []);
      assert.match(inputs.tender ?? "", /test\/standins\/solo5-spt$/);
    } finally {
      process.env.PATH = saved;
    }
  });

  test("runs a unix build in the background until deleted", async () => {
    const cacheDir = join(dir, "cache-unix");
    const program = await testUnixProgram();
    const { inputs, failures } = await checkProcess({
      kernel: program,
      target: "unix",
      args: ["--serve", "--hello=Hi"],
      // The whole line: the program may write it in pieces.
      waitFor: { console: "Command line is: '.*'", timeoutSeconds: 60 },
      cacheDir,
    });
    assert.deepEqual(failures, []);
    const { id, outs } = await processProvider.create(inputs);
    assert.ok(outs);
    assert.deepEqual(outs.console, [
      "Solo5-like test unikernel (pulumi-mirage) target=unix",
      "Hello, World",
      "Command line is: '--serve --hello=Hi'",
    ]);
    assert.equal((await processProvider.read(id, outs)).id, id);
    await processProvider.delete(id, outs);
    assert.equal(isRunning(outs), false);
    assert.equal((await processProvider.read(id, outs)).id, "");
    assert.equal(existsSync(outs.stateDir), false);
  });

  test("a program that exits before its console matches fails create", async () => {
    const program = await testUnixProgram();
    const { inputs } = await checkProcess({
      kernel: program,
      target: "unix",
      args: ["once"],
      waitFor: { console: "never printed", timeoutSeconds: 60 },
      cacheDir: join(dir, "cache-exit"),
    });
    await assert.rejects(
      processProvider.create(inputs),
      /exited before its console matched[\s\S]*Command line is: 'once'/,
    );
  });
});

describe("sdk local.Vm and local.Process under mocks", () => {
  interface Registration {
    type: string;
    name: string;
    inputs: Record<string, unknown>;
  }
  const registered: Registration[] = [];
  const image = { path: "/cache/images/ab/disk.raw", sha256: "ab".repeat(32), target: "virtio" };
  const manifest = [{ name: "service", type: "net" }];

  before(() => {
    pulumi.runtime.setMocks(
      {
        newResource: (args) => {
          registered.push({ type: args.type, name: args.name, inputs: args.inputs });
          const extra = args.type.endsWith(":DiskImage") ? { ...image, manifest } : { pid: 42 };
          return { id: `${args.name}-id`, state: { ...args.inputs, ...extra } };
        },
        call: () => ({}),
      },
      "project",
      "stack",
      false,
    );
  });

  /** Resolves an output, failing instead of hanging when the provider cannot be serialized. */
  function settled<T>(output: pulumi.Output<T>): Promise<T> {
    return new Promise<T>((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new Error("output did not resolve")), 20_000);
      output.apply((value) => {
        clearTimeout(timer);
        resolvePromise(value);
      });
    });
  }

  test("a Vm takes a DiskImage's path, hash, target and devices, and registers as LocalVm", async () => {
    const disk = new DiskImage("img", { kernel: "/kernels/hello.virtio" });
    const vm = new local.Vm("vm", { image: disk, ports: [{ host: 8080, guest: 80 }] });
    assert.equal(await settled(vm.pid), 42);
    const found = registered.find((r) => r.name === "vm");
    assert.ok(found);
    assert.equal(found.type, "pulumi-nodejs:dynamic/pulumi-mirage:LocalVm");
    assert.equal(found.inputs.image, image.path);
    assert.equal(found.inputs.imageSha256, image.sha256);
    assert.equal(found.inputs.target, "virtio");
    assert.deepEqual(found.inputs.manifest, manifest);
    assert.deepEqual(found.inputs.ports, [{ host: 8080, guest: 80 }]);
  });

  test("a Vm's console is as secret as its DiskImage's boot arguments", async () => {
    const plain = new local.Vm("vm-plain", {
      image: new DiskImage("img-plain", { kernel: "/kernels/hello.virtio", bootArgs: ["--a=1"] }),
    });
    const hidden = new local.Vm("vm-secret", {
      image: new DiskImage("img-secret", {
        kernel: "/kernels/hello.virtio",
        bootArgs: ["--a=1", pulumi.secret("--token=x")],
      }),
    });
    await Promise.all([settled(plain.pid), settled(hidden.pid)]);
    assert.equal(await pulumi.isSecret(plain.console), false);
    assert.equal(await pulumi.isSecret(hidden.console), true);
  });

  test("a waitFor's RegExp reaches the engine as its source, given plain or as an output", async () => {
    const plain = new local.Vm("vm-regexp", {
      image: "/images/disk.raw",
      waitFor: { console: /^Hello, (World|you)$/m, timeoutSeconds: 30 },
    });
    const later = new local.Process("proc-regexp", {
      kernel: "/kernels/hello",
      target: "unix",
      waitFor: pulumi.output("ready").apply((word) => ({ console: new RegExp(`^${word}`) })),
    });
    await Promise.all([settled(plain.pid), settled(later.pid)]);
    const inputs = (name: string) => registered.find((r) => r.name === name)?.inputs.waitFor;
    assert.deepEqual(inputs("vm-regexp"), { console: "^Hello, (World|you)$", timeoutSeconds: 30 });
    assert.deepEqual(inputs("proc-regexp"), { console: "^ready" });
  });

  test("a Process takes a kernel path with its target, and registers as LocalProcess", async () => {
    const process_ = new local.Process("proc", {
      kernel: "/kernels/hello",
      target: "unix",
      args: ["--hello=Hi"],
    });
    assert.equal(await settled(process_.pid), 42);
    const found = registered.find((r) => r.name === "proc");
    assert.ok(found);
    assert.equal(found.type, "pulumi-nodejs:dynamic/pulumi-mirage:LocalProcess");
    assert.deepEqual(
      [found.inputs.kernel, found.inputs.target, found.inputs.args],
      ["/kernels/hello", "unix", ["--hello=Hi"]],
    );
  });
});

describe("through the real dynamic-provider process", () => {
  // The engine stops the provider process after each operation: what create starts must outlive
  // it, and a later provider process must find it, see its death, and clean up.
  test("a VM outlives the provider that created it; another one reads and deletes it", async () => {
    const cacheDir = join(dir, "cache-grpc-vm");
    const hostPort = await freePort();
    // What the program sends, with a forward as 0.1 wrote it.
    const sent = {
      image: forever,
      ports: [{ host: hostPort, guest: 7 }],
      waitFor: { console: "keeps running", timeoutSeconds: 120 },
      cacheDir,
    };
    const first = await startDynamicProvider();
    let created: { id: string; outs: Record<string, unknown> };
    try {
      const { inputs, failures } = await first.check("local-vm", {}, sent);
      assert.deepEqual(failures, []);
      created = await first.create("local-vm", inputs);
    } finally {
      await first.stop();
    }
    const vm = created.outs as unknown as ProcessIdentity & { stateDir: string; console: string[] };
    started.push(vm);
    assert.deepEqual(vm.console, ["Hello from a VM that keeps running"]);
    assert.equal(isRunning(vm), true);

    const second = await startDynamicProvider();
    try {
      assert.equal((await second.read("local-vm", created.id, created.outs)).id, created.id);
      // The engine's news are inputs: the state without what create added (`accel` is the
      // accelerator used there, the input `accel` was not given).
      const { accel: _used, ...inputs } = created.outs;
      // A new waitFor changes nothing that runs: an update that keeps the VM.
      const news = { ...inputs, waitFor: { console: "Hello", timeoutSeconds: 5 } };
      const diff = await second.diff("local-vm", created.id, created.outs, news);
      assert.deepEqual([diff.changes, diff.replaces], [true, []]);
      const updated = await second.update("local-vm", created.id, created.outs, news);
      assert.equal(updated.outs.pid, vm.pid);
      // The forward renamed to the shape every resource's ports take changes nothing at all.
      const renamed = await second.check("local-vm", created.outs, {
        ...sent,
        ports: [{ port: 7, host: hostPort }],
      });
      assert.deepEqual(renamed.failures, []);
      const same = await second.diff("local-vm", created.id, created.outs, renamed.inputs);
      assert.deepEqual([same.changes, same.replaces], [false, []]);
      // A new image does not.
      const moved = await second.diff("local-vm", created.id, created.outs, {
        ...inputs,
        imageSha256: "0".repeat(64),
      });
      assert.deepEqual(
        [moved.changes, moved.replaces, moved.deleteBeforeReplace],
        [true, ["imageSha256"], true],
      );
      process.kill(vm.pid, "SIGKILL");
      while (isRunning(vm)) await sleep(20);
      assert.equal((await second.read("local-vm", created.id, created.outs)).id, "");
      await second.delete("local-vm", created.id, created.outs);
    } finally {
      await second.stop();
    }
    assert.equal(existsSync(vm.stateDir), false);
    assert.deepEqual(processesMentioning(cacheDir), []);
  });

  test("a unix process outlives the provider; delete from another provider stops it", async () => {
    const program = await testUnixProgram();
    const first = await startDynamicProvider();
    let created: { id: string; outs: Record<string, unknown> };
    try {
      const { inputs } = await first.check(
        "local-process",
        {},
        {
          kernel: program,
          target: "unix",
          args: ["--serve"],
          waitFor: { console: "^Command line is: '--serve'$", timeoutSeconds: 60 },
          cacheDir: join(dir, "cache-grpc-process"),
        },
      );
      created = await first.create("local-process", inputs);
    } finally {
      await first.stop();
    }
    const identity = created.outs as unknown as ProcessIdentity;
    assert.equal(isRunning(identity), true);
    const second = await startDynamicProvider();
    try {
      await second.delete("local-process", created.id, created.outs);
    } finally {
      await second.stop();
    }
    assert.equal(isRunning(identity), false);
  });

  test("the default program's chain: a Unikernel built, its DiskImage, booted in a local.Vm", async () => {
    // What examples/local declares with `source` set, as the SDK sends it; `mirage` is the
    // stand-in (test kernels). (Without it, test/default-program.test.ts: the demo kernel.)
    const standin = await Standin.setUp();
    const provider = await startDynamicProvider();
    const cacheDir = join(dir, "cache-chain");
    try {
      const run = async (module: "unikernel" | "disk-image" | "local-vm", news: Props) => {
        const { inputs, failures } = await provider.check(module, {}, news);
        assert.deepEqual(failures, [], module);
        return (await provider.create(module, inputs)).outs;
      };
      const kernel = await run("unikernel", {
        source: await standin.source("hello"),
        target: "virtio",
        mirage: STANDIN,
        cacheDir,
      });
      const image = await run("disk-image", {
        ...unikernelInputs(kernel),
        format: "raw",
        bootArgs: ["--hello=Hi"],
        cacheDir,
      });
      const vm = await run("local-vm", {
        image: image.path,
        imageSha256: image.sha256,
        target: image.target,
        manifest: image.manifest,
        ports: [],
        waitFor: { console: "^Command line is: ", timeoutSeconds: 120 },
        cacheDir,
      });
      started.push(vm as unknown as ProcessIdentity);
      // After the bootloader's own lines, the kernel's.
      const lines = vm.console as string[];
      const banner = lines.indexOf("Solo5-like test unikernel (pulumi-mirage) target=virtio");
      assert.ok(banner >= 0, lines.join("\n"));
      assert.deepEqual(lines.slice(banner + 1, banner + 3), [
        "Hello, World",
        "Command line is: '--hello=Hi'",
      ]);
      await provider.delete("local-vm", "", vm);
    } finally {
      await provider.stop();
      await standin.tearDown();
    }
    assert.deepEqual(processesMentioning(cacheDir), []);
  });

  test("check failures reach the engine with the property named", async () => {
    const provider = await startDynamicProvider();
    try {
      const { failures } = await provider.check(
        "local-process",
        {},
        { kernel: forever, target: "hvt", tender: "/nonexistent/solo5-hvt" },
      );
      assert.equal(failures[0].property, "tender");
      assert.match(failures[0].reason, /solo5-hvt/);
    } finally {
      await provider.stop();
    }
  });
});
