// The demo unikernel the package ships (build/kernels/demo.virtio, made by kernels/build-demo.sh
// from kernels/): the file is what its source makes, byte for byte, every time; it is a Solo5
// virtio kernel declaring one network device; booted with `pulumi-mirage boot` it prints its
// banner and its boot arguments, and halts without a NIC; with one, HTTP requests through a QEMU
// port forward reach it (which also takes its ARP answer: QEMU's user network asks first).
// Frame by frame, with a UDP socket as its Ethernet (QEMU's `-netdev socket,udp=`), it answers
// ARP and ping, and resets a connection to another port.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { after, describe, test } from "node:test";
import { run } from "../provider/core/exec";
import { inspectKernel } from "../provider/kernel/inspect";
import { startVmAndWait, stopVm, type VmProcess } from "../provider/local/boot";
import { QEMU, qemuArgs } from "../provider/local/qemu";
import { CLI, imageArgv, startCli } from "./support/cli";
import { freePort } from "./support/net";
import { processesMentioning, Started, waitFor } from "./support/process";
import { Scratch } from "./support/scratch";

/** build/test/demo-kernel.js → the repository root. */
const ROOT = resolve(__dirname, "..", "..");
const SHIPPED = join(ROOT, "build", "kernels", "demo.virtio");
const SCRIPT = join(ROOT, "kernels", "build-demo.sh");

const scratch = Scratch.forThisFile("demo-kernel-test-");
const started = Started.forThisFile();
// Nothing a test started (QEMU, the CLI) may outlive it: its command line names the directory.
after(() => assert.deepEqual(processesMentioning(scratch.path), []));

/** The demo kernel's disk image with `bootArgs`, made by `pulumi-mirage image` in `dir`. */
async function demoImage(dir: string, ...bootArgs: string[]): Promise<string> {
  const out = join(dir, "image");
  const made = await startCli(imageArgv(SHIPPED, out, "--", ...bootArgs), { TMPDIR: dir }).ended;
  assert.equal(made.status, 0, made.stderr);
  return join(out, "disk.raw");
}

/** The console's lines from the demo kernel's banner on. */
function fromBanner(console: string): string[] {
  const lines = console.split(/\r?\n/);
  const banner = lines.indexOf("pulumi-mirage demo unikernel (Solo5-like) target=virtio");
  assert.ok(banner >= 0, console);
  return lines.slice(banner);
}

describe("the demo kernel", () => {
  test("is what kernels/build-demo.sh makes of its source, the same bytes every time", async () => {
    const dir = await scratch.fresh();
    const first = join(dir, "first.virtio");
    const second = join(dir, "second.virtio");
    await run("sh", [SCRIPT, first]);
    await run("sh", [SCRIPT, second]);
    const shipped = await readFile(SHIPPED);
    assert.ok(
      shipped.equals(await readFile(first)),
      "the shipped kernel is not its source's build",
    );
    assert.ok(shipped.equals(await readFile(second)), "two builds differ");
    // A few KB, as shipped in the package.
    assert.ok(shipped.length < 64 * 1024, `${shipped.length} bytes`);
  });

  test("is a Solo5 virtio kernel with a multiboot entry, declaring one network device", async () => {
    const info = await inspectKernel(SHIPPED);
    assert.equal(info.solo5?.target, "virtio");
    assert.equal(info.solo5?.abiVersion, 1);
    assert.equal(info.multiboot?.aout, true);
    assert.deepEqual(info.manifest?.devices, [{ name: "service", type: "net" }]);
  });

  test("boots with `pulumi-mirage boot`, prints its banner and arguments, and halts without a NIC", async () => {
    const dir = await scratch.fresh();
    const disk = await demoImage(dir, "--hello=demo");
    const env = { PULUMI_MIRAGE_CACHE: join(dir, "cache"), TMPDIR: dir };
    const boot = await startCli(
      [CLI, "boot", disk, "--expect", "^demo: no virtio-net NIC", "--timeout", "120"],
      env,
    ).ended;
    assert.equal(boot.status, 0, boot.stderr);
    assert.deepEqual(fromBanner(boot.stdout).slice(1, 4), [
      "Hello, World",
      "Command line is: '--hello=demo'",
      "demo: no virtio-net NIC, nothing to serve: halted (boot it with a NIC to reach it)",
    ]);
  });

  test("with a NIC, answers HTTP through a port forward, request after request", async () => {
    const dir = await scratch.fresh();
    const disk = await demoImage(dir);
    const port = await freePort();
    let vm: VmProcess | undefined;
    try {
      vm = await startVmAndWait(
        {
          image: disk,
          stateDir: join(dir, "vm"),
          forwards: [{ host: port, guest: 8080 }],
          cacheDir: join(dir, "cache"),
          onProgress: () => {},
        },
        { console: "^demo: serving on ", timeoutSeconds: 120 },
        "the demo VM",
      );
      for (const request of [1, 2]) {
        const response = await fetch(`http://127.0.0.1:${port}/hello`);
        assert.equal(response.status, 200);
        assert.equal(response.headers.get("content-type"), "text/plain");
        assert.equal(
          await response.text(),
          `Hello, World: the pulumi-mirage demo unikernel served request ${request}\n`,
        );
      }
      const lines = fromBanner(await readFile(vm.consoleLog, "utf8"));
      assert.match(lines[3], /^demo: virtio-net NIC at PCI 00:[0-9a-f]{2}\.0, MAC 52:54:00:/);
      assert.deepEqual(lines.slice(4, 7), [
        "demo: serving on 10.0.2.15: ARP, ping, and HTTP on TCP port 8080",
        "demo: HTTP request 1 from 10.0.2.2: GET /hello HTTP/1.1",
        "demo: HTTP request 2 from 10.0.2.2: GET /hello HTTP/1.1",
      ]);
    } finally {
      if (vm) await stopVm(vm);
    }
  });
});

/** The Internet checksum of `data` (RFC 1071), starting from `sum`. */
function checksum(data: Buffer, sum = 0): number {
  for (let i = 0; i < data.length; i += 2) sum += (data[i] << 8) | (data[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

const ME = { mac: Buffer.from("020000000001", "hex"), ip: Buffer.from([10, 0, 2, 2]) };
const GUEST_IP = Buffer.from([10, 0, 2, 15]);
const BROADCAST = Buffer.alloc(6, 0xff);

function ethernet(to: Buffer, type: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(14);
  to.copy(header, 0);
  ME.mac.copy(header, 6);
  header.writeUInt16BE(type, 12);
  return Buffer.concat([header, payload]);
}

function ipv4(protocol: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(20);
  header[0] = 0x45;
  header.writeUInt16BE(20 + payload.length, 2);
  header[8] = 64;
  header[9] = protocol;
  ME.ip.copy(header, 12);
  GUEST_IP.copy(header, 16);
  header.writeUInt16BE(checksum(header), 10);
  return Buffer.concat([header, payload]);
}

describe("the demo kernel's network stack, frame by frame", () => {
  test("answers ARP and ping, and resets a connection to a port it does not serve", async () => {
    const dir = await scratch.fresh();
    const disk = await demoImage(dir);
    const socket = createSocket("udp4");
    const frames: Buffer[] = [];
    socket.on("message", (frame) => frames.push(frame));
    await new Promise<void>((done) => socket.bind(0, "127.0.0.1", done));
    const qemuPort = await freePort();
    const consoleFile = join(dir, "console.log");
    const args = qemuArgs({ disk, consoleFile, kvm: false }).filter(
      (arg, i, all) => arg !== "-nic" && all[i - 1] !== "-nic",
    );
    const udp = `udp=127.0.0.1:${socket.address().port},localaddr=127.0.0.1:${qemuPort}`;
    args.push("-netdev", `socket,id=n0,${udp}`, "-device", "virtio-net-pci,netdev=n0,romfile=");
    const qemu = started.add(
      spawn(QEMU, args, { stdio: ["ignore", "ignore", "pipe"], detached: true }),
    );
    let said = "";
    qemu.stderr?.on("data", (chunk) => {
      said += chunk;
    });
    try {
      await waitFor(
        "the demo kernel to serve",
        async () => {
          if (qemu.exitCode !== null) throw new Error(`QEMU exited (${qemu.exitCode}): ${said}`);
          const text = await readFile(consoleFile, "utf8").catch(() => "");
          return text.includes("demo: serving on");
        },
        120_000,
      );
      const guestMac = Buffer.from(
        /MAC ([0-9a-f:]{17})/.exec(await readFile(consoleFile, "utf8"))?.[1].replaceAll(":", "") ??
          "",
        "hex",
      );
      const send = (frame: Buffer) =>
        new Promise<void>((done, fail) =>
          socket.send(frame, qemuPort, "127.0.0.1", (e) => (e ? fail(e) : done())),
        );
      /** The next frame of EtherType `type` the guest sends, after sending `frame`. */
      const exchange = async (frame: Buffer, type: number) => {
        frames.length = 0;
        await send(frame);
        let answer: Buffer | undefined;
        await waitFor(
          `an answer of EtherType ${type.toString(16)}`,
          () => {
            answer = frames.find((f) => f.readUInt16BE(12) === type);
            return answer !== undefined;
          },
          30_000,
        );
        return answer as Buffer;
      };

      // ARP: who has 10.0.2.15? Then the same for another address, which it leaves alone.
      const request = Buffer.alloc(28);
      request.writeUInt16BE(1, 0);
      request.writeUInt16BE(0x0800, 2);
      request[4] = 6;
      request[5] = 4;
      request.writeUInt16BE(1, 6);
      ME.mac.copy(request, 8);
      ME.ip.copy(request, 14);
      GUEST_IP.copy(request, 24);
      const arp = (await exchange(ethernet(BROADCAST, 0x0806, request), 0x0806)).subarray(14);
      assert.equal(arp.readUInt16BE(6), 2, "an ARP reply");
      assert.deepEqual(arp.subarray(8, 14), guestMac);
      assert.deepEqual(arp.subarray(14, 18), GUEST_IP);
      assert.deepEqual(arp.subarray(18, 28), request.subarray(8, 18));

      // ping: an echo reply with the request's identifier, sequence number and data.
      const echo = Buffer.concat([
        Buffer.from([8, 0, 0, 0, 0x12, 0x34, 0, 7]),
        Buffer.from("demo"),
      ]);
      echo.writeUInt16BE(checksum(echo), 2);
      const reply = await exchange(ethernet(guestMac, 0x0800, ipv4(1, echo)), 0x0800);
      assert.deepEqual(reply.subarray(0, 6), ME.mac);
      const ip = reply.subarray(14);
      assert.equal(checksum(ip.subarray(0, 20)), 0, "the IPv4 header checksum");
      assert.deepEqual([ip[9], ip.subarray(12, 16), ip.subarray(16, 20)], [1, GUEST_IP, ME.ip]);
      const icmp = ip.subarray(20, ip.readUInt16BE(2));
      assert.equal(icmp[0], 0, "an echo reply");
      assert.equal(checksum(icmp), 0, "the ICMP checksum");
      assert.deepEqual(icmp.subarray(4), echo.subarray(4));

      // TCP to port 80: a reset, acknowledging the SYN.
      const syn = Buffer.alloc(20);
      syn.writeUInt16BE(40000, 0);
      syn.writeUInt16BE(80, 2);
      syn.writeUInt32BE(1000, 4);
      syn[12] = 5 << 4;
      syn[13] = 0x02;
      syn.writeUInt16BE(65535, 14);
      const pseudo = Buffer.concat([ME.ip, GUEST_IP, Buffer.from([0, 6, 0, 20])]);
      syn.writeUInt16BE(checksum(Buffer.concat([pseudo, syn])), 16);
      const rst = (await exchange(ethernet(guestMac, 0x0800, ipv4(6, syn)), 0x0800)).subarray(34);
      assert.deepEqual([rst.readUInt16BE(0), rst.readUInt16BE(2)], [80, 40000]);
      assert.equal(rst[13], 0x14, "RST and ACK");
      assert.equal(rst.readUInt32BE(8), 1001);
    } finally {
      socket.close();
      qemu.kill("SIGKILL");
    }
  });
});
