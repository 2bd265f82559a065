// The host script of an spt unikernel on EC2 (sdk/aws/host-script.ts), run for real inside
// network namespaces this test makes (names with our pid; deleted whatever happens; no traffic
// leaves them):
//   client ns  --veth 192.0.2.0/24--  host ns (the "instance": the script runs here, with a local
//   server playing IMDS and S3)  --mtap0, made by the script--  tapwire  --uk0--  unikernel ns
//   (10.81.0.2, where a TCP server stands in for the unikernel's network stack).
// The stand-in tender (test/standins/solo5-spt) runs under the script's supervisor; tapwire
// (test/kernels/tapwire.c) is the cable a real tender's guest would be.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { findExecutable, run } from "../provider/exec";
import { sha256, sha256File } from "../provider/hash";
import { renderHostScript } from "../sdk/aws/host-script";
import { testKernel, testTapWire } from "./support/kernels";
import { waitFor } from "./support/process";
import { Scratch } from "./support/scratch";

const ROOT = resolve(__dirname, "..", "..");
const TENDER = join(ROOT, "test", "standins", "solo5-spt");
const FAKE_S3 = join(__dirname, "support", "fake-s3-host.js");
const PID = process.pid;
const HOST = `pmh${PID}`;
const CLIENT = `pmc${PID}`;
const UK = `pmu${PID}`;
const REGION = "eu-west-1";
const GREETING = "hello from behind the tap";

const missing = ["ip", "nft", "curl", "gcc"].filter((tool) => !findExecutable(tool));
const skip =
  process.getuid?.() !== 0
    ? "needs root (network namespaces)"
    : missing.length > 0
      ? `needs ${missing.join(", ")} (.ci/run installs them)`
      : false;

const scratch = Scratch.forThisFile("aws-host-test-");
const children: ChildProcess[] = [];
const supervisors: string[] = [];

/** A process in namespace `ns`, its own process group leader (so cleanup gets all of it). */
function startIn(ns: string, args: string[]): ChildProcess {
  const child = spawn("ip", ["netns", "exec", ns, ...args], {
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  return child;
}

/** The first stdout line of `child` (fails with its stderr if it exits first). */
function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolveLine, reject) => {
    let out = "";
    let err = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      err += chunk;
    });
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk;
      if (out.includes("\n")) resolveLine(out.split("\n")[0]);
    });
    child.once("exit", (code) => reject(new Error(`exited with ${code} first: ${err}`)));
  });
}

const ip = (...args: string[]) => run("ip", args, { timeoutMs: 30_000 });
const inNs = (ns: string, ...args: string[]) => ip("netns", "exec", ns, ...args);

function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // Gone already.
  }
}

/** Runs the rendered script in the host namespace, hiding systemd if this machine runs it. */
async function runScript(path: string): Promise<void> {
  const command = ["ip", "netns", "exec", HOST, "sh", path];
  if (existsSync("/run/systemd/system")) {
    await run(
      "unshare",
      ["-m", "sh", "-c", 'mount -t tmpfs tmpfs /run/systemd && exec "$@"', "sh", ...command],
      { timeoutMs: 120_000 },
    );
  } else {
    await run(command[0], command.slice(1), { timeoutMs: 120_000 });
  }
}

describe("the spt host script", { skip }, () => {
  let port = 0;
  let kernel = "";

  before(async () => {
    // Leftovers of a crashed run of this very pid would be ours; nothing else is touched.
    for (const ns of [HOST, CLIENT, UK]) await ip("netns", "del", ns).catch(() => {});
    for (const ns of [HOST, CLIENT, UK]) await ip("netns", "add", ns);
    for (const ns of [HOST, CLIENT, UK]) await inNs(ns, "ip", "link", "set", "lo", "up");
    await ip(
      "link",
      "add",
      `vh${PID}`,
      "netns",
      HOST,
      "type",
      "veth",
      "peer",
      "name",
      `vc${PID}`,
      "netns",
      CLIENT,
    );
    await inNs(HOST, "ip", "addr", "add", "192.0.2.1/24", "dev", `vh${PID}`);
    await inNs(HOST, "ip", "link", "set", `vh${PID}`, "up");
    await inNs(CLIENT, "ip", "addr", "add", "192.0.2.2/24", "dev", `vc${PID}`);
    await inNs(CLIENT, "ip", "link", "set", `vc${PID}`, "up");
    await inNs(UK, "ip", "tuntap", "add", "dev", "uk0", "mode", "tap");
    await inNs(UK, "ip", "addr", "add", "10.81.0.2/24", "dev", "uk0");
    await inNs(UK, "ip", "link", "set", "uk0", "up");
    await inNs(UK, "ip", "route", "add", "default", "via", "10.81.0.1");

    kernel = await testKernel("spt-net");
    const objects = { "/bucket/kernel": kernel, "/bucket/tender": TENDER };
    port = Number(
      await firstLine(startIn(HOST, [process.execPath, FAKE_S3, REGION, JSON.stringify(objects)])),
    );
  });

  after(async () => {
    for (const file of supervisors) {
      const pid = Number(await readFile(file, "utf8").catch(() => ""));
      if (pid > 0) killGroup(pid);
    }
    for (const child of children) if (child.pid) killGroup(child.pid);
    for (const ns of [HOST, CLIENT, UK]) await ip("netns", "del", ns).catch(() => {});
  });

  /** The script for this test's server, with the files' real or given sha256. */
  async function script(
    name: string,
    kernelSha256?: string,
  ): Promise<{ path: string; dir: string; console: string }> {
    const dir = join(scratch.path, name);
    const console = join(scratch.path, `${name}.console`);
    const base = `http://127.0.0.1:${port}/bucket`;
    const text = renderHostScript({
      name,
      target: "spt",
      kernelName: `${name}.spt`,
      kernel: { url: `${base}/kernel`, sha256: kernelSha256 ?? (await sha256File(kernel)) },
      tender: { url: `${base}/tender`, sha256: await sha256File(TENDER) },
      region: REGION,
      networks: ["service"],
      ports: [{ port: 8080, protocol: "tcp" }],
      bootArgs: ["--hello=host"],
      stateDir: dir,
      console,
      metadataUrl: `http://127.0.0.1:${port}`,
    });
    const path = join(scratch.path, `${name}.sh`);
    await writeFile(path, text);
    return { path, dir, console };
  }

  test("fetches, checks, makes the tap and the forward, supervises the tender: a connection to the forwarded port reaches the program behind the tap", async () => {
    const { path, dir, console } = await script("web");
    supervisors.push(join(dir, "supervisor.pid"));
    await runScript(path);

    const lines = await readFile(console, "utf8");
    assert.match(lines, /pulumi-mirage\[web\]: started solo5-spt under a plain supervisor/);
    // The tender got the tap and the network configuration, then the unikernel's arguments.
    // The banner's last line is the attached tap; a loaded machine may take a while to get there.
    await waitFor(
      "the tender's banner on the console",
      async () => (await readFile(console, "utf8")).includes("stand-in: net 'service'"),
      5 * 60_000,
    ).catch(async (error) => {
      throw new Error(`${error.message}; console:\n${await readFile(console, "utf8")}`);
    });
    const banner = await readFile(console, "utf8");
    assert.ok(
      banner.includes(
        `solo5-spt stand-in: would run ${dir}/web.spt with --mem=512 and arguments '--ipv4=10.81.0.2/24 --ipv4-gateway=10.81.0.1 --hello=host'\nsolo5-spt stand-in: net 'service' on tap mtap0\n`,
      ),
      banner,
    );
    assert.equal(await sha256File(join(dir, "web.spt")), await sha256File(kernel));

    const server = startIn(UK, [
      process.execPath,
      "-e",
      `require("net").createServer((c) => c.end(${JSON.stringify(`${GREETING}\n`)})).listen(8080, "10.81.0.2", () => console.log("listening"))`,
    ]);
    assert.equal(await firstLine(server), "listening");
    const wire = startIn(HOST, [await testTapWire(), "mtap0", `/run/netns/${UK}`, "uk0"]);
    assert.equal(await firstLine(wire), "wired");

    const { stdout } = await inNs(
      CLIENT,
      process.execPath,
      "-e",
      `const s = require("net").connect(8080, "192.0.2.1"); s.setTimeout(60000, () => process.exit(3)); s.pipe(process.stdout);`,
    );
    assert.equal(stdout.trim(), GREETING);
  });

  test("a kernel whose sha256 is not the planned one stops the script with a clear console line", async () => {
    const wrong = sha256("another kernel");
    const { path, dir, console } = await script("bad", wrong);
    supervisors.push(join(dir, "supervisor.pid"));
    await assert.rejects(runScript(path), /exited with status 1/);
    const actual = await sha256File(kernel);
    assert.match(
      await readFile(console, "utf8"),
      new RegExp(
        `pulumi-mirage\\[bad\\]: FATAL: bad\\.spt: sha256 is ${actual}, expected ${wrong}: refusing to run it`,
      ),
    );
    assert.equal(existsSync(join(dir, "bad.spt")), false, "the bad kernel is not kept");
    assert.equal(existsSync(join(dir, "run")), false, "nothing is set up to run");
  });
});

describe("renderHostScript", () => {
  const spec = {
    name: "web",
    target: "spt" as const,
    kernelName: "web.spt",
    kernel: { url: "https://b.s3.eu-west-1.amazonaws.com/k", sha256: "a".repeat(64) },
    tender: { url: "https://b.s3.eu-west-1.amazonaws.com/t", sha256: "b".repeat(64) },
    region: "eu-west-1",
    networks: ["service"],
    ports: [
      { port: 80, protocol: "tcp" as const },
      { port: 53, protocol: "udp" as const },
    ],
    bootArgs: ["--hello=it's"],
  };

  test("is the same script for the same inputs, and another for another kernel", () => {
    assert.equal(renderHostScript({ ...spec }), renderHostScript({ ...spec }));
    assert.notEqual(
      renderHostScript(spec),
      renderHostScript({ ...spec, kernel: { ...spec.kernel, sha256: "c".repeat(64) } }),
    );
    const script = renderHostScript(spec);
    assert.match(
      script,
      /tcp dport \{ 80 \} dnat to 10\.81\.0\.2\n.*udp dport \{ 53 \} dnat to 10\.81\.0\.2/s,
    );
    assert.ok(script.includes(`'--hello=it'\\''s'`), "arguments are quoted for the shell");
  });

  test("refuses what the host sets itself and ports with nowhere to go, naming the field", () => {
    assert.throws(
      () => renderHostScript({ ...spec, bootArgs: ["--ipv4=10.0.0.2/24"] }),
      /bootArgs: --ipv4 is set by the host/,
    );
    assert.throws(
      () => renderHostScript({ ...spec, networks: [] }),
      /ports: the unikernel declares no network device/,
    );
  });
});
