// The host script of an spt unikernel on EC2 (sdk/host/script.ts with sdk/aws/host-script.ts),
// run for real as root inside network namespaces this test makes (names with our pid; deleted
// whatever happens; no traffic leaves them):
//   client ns  --veth 192.0.2.0/24--  host ns (the "instance": the script runs here, against
//   test/support/fake-aws-host.ts playing IMDSv2, S3 and SSM as strictly as AWS)  --mtap0, made
//   by the script--  tapwire  --uk0--  unikernel ns (10.81.0.2, where a TCP server stands in for
//   the unikernel's network stack).
// The stand-in tender (test/standins/solo5-spt) runs under the script's supervisor (this machine's
// systemd, if any, is hidden); tapwire (test/kernels/tapwire.c) is the cable a real tender's guest
// would be.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { findExecutable, run } from "../provider/core/exec";
import { sha256, sha256File } from "../provider/core/hash";
import { renderAwsHostScript } from "../sdk/aws/host-script";
import { encodeSecretBootArgs, type HostScriptSpec } from "../sdk/host/script";
import { HOST_ROLE, OTHER_ROLE } from "./support/fake-aws-host";
import { testKernel, testTapWire } from "./support/kernels";
import { waitFor } from "./support/process";
import { Scratch } from "./support/scratch";

const ROOT = resolve(__dirname, "..", "..");
const TENDER = join(ROOT, "test", "standins", "solo5-spt");
const FAKE_AWS = join(__dirname, "support", "fake-aws-host.js");
const PID = process.pid;
const HOST = `pmh${PID}`;
const CLIENT = `pmc${PID}`;
const UK = `pmu${PID}`;
const REGION = "eu-west-1";
const GREETING = "hello from behind the tap";
const SECRET = "/pulumi-mirage/secret/boot-args";
const FORBIDDEN = "/pulumi-mirage/forbidden";
/** Arguments a shell would act on, were they not quoted: they must reach the tender as they are. */
const SHELLY = ["--glob=*", "--semi=;", "--tick=`id`", "--pipe=|&<>", "--dollar=$HOME"];

const missing = ["ip", "nft", "curl", "gcc", "unshare"].filter((tool) => !findExecutable(tool));
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

/** Runs a script in the host namespace as cloud-init would, hiding systemd if this machine runs it. */
async function runOnHost(path: string): Promise<void> {
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

/** The pids of the tenders running `dir`'s tender (the stand-in is a node script: argv[1]). */
function tenders(dir: string): number[] {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
        return argv[1] === join(dir, "solo5-spt");
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

/** A service's console, read from `offset` on. */
class Console {
  constructor(readonly path: string) {}

  async text(offset = 0): Promise<string> {
    return (await readFile(this.path, "utf8").catch(() => "")).slice(offset);
  }

  async length(): Promise<number> {
    return (await this.text()).length;
  }

  /** Waits until the console holds `line` after `offset`; fails showing what it holds. */
  async waitFor(line: string, offset = 0): Promise<void> {
    await waitFor(
      `${JSON.stringify(line)} on the console`,
      async () => (await this.text(offset)).includes(line),
      5 * 60_000,
    ).catch(async (error) => {
      throw new Error(`${error.message}; console:\n${await this.text()}`);
    });
  }
}

describe("the spt host script on EC2", { skip }, () => {
  let port = 0;
  let netKernel = "";
  let plainKernel = "";
  let fakeOutput = "";
  /** Waits until the fake has logged `line` (method, path, status and error code). */
  const fakeAnswered = (line: string | RegExp) =>
    waitFor(
      `the fake to log ${line}`,
      () =>
        fakeOutput.split("\n").some((l) => (typeof line === "string" ? l === line : line.test(l))),
      10_000,
    ).catch((error) => {
      throw new Error(`${error.message}; it logged:\n${fakeOutput}`);
    });

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

    netKernel = await testKernel("spt-net");
    plainKernel = await testKernel("spt");
    const fake = startIn(HOST, [
      process.execPath,
      FAKE_AWS,
      JSON.stringify({
        region: REGION,
        objects: {
          "/bucket/net-kernel": netKernel,
          "/bucket/plain-kernel": plainKernel,
          "/bucket/tender": TENDER,
          // Not the tender the script is told to expect.
          "/bucket/tampered-tender": plainKernel,
        },
        parameters: {
          [SECRET]: {
            value: encodeSecretBootArgs(["--token=s3cr3t-value", ...SHELLY]),
            version: 2,
            readers: [HOST_ROLE.role],
          },
          [FORBIDDEN]: { value: "0", version: 1, readers: [OTHER_ROLE.role] },
        },
      }),
    ]);
    port = Number(await firstLine(fake));
    fake.stdout?.on("data", (chunk: Buffer) => {
      fakeOutput += chunk;
    });
  });

  after(async () => {
    for (const file of supervisors) {
      const pid = Number(await readFile(file, "utf8").catch(() => ""));
      if (pid > 0) killGroup(pid);
    }
    for (const child of children) if (child.pid) killGroup(child.pid);
    for (const ns of [HOST, CLIENT, UK]) await ip("netns", "del", ns).catch(() => {});
  });

  /** A service's script for this test's fake, and where its state and console go. */
  async function service(
    name: string,
    change: Partial<HostScriptSpec> & { kernelObject?: string; tenderObject?: string } = {},
  ) {
    const { kernelObject = "net-kernel", tenderObject = "tender", ...spec } = change;
    const dir = join(scratch.path, name);
    const kernel = kernelObject === "net-kernel" ? netKernel : plainKernel;
    const base = `http://127.0.0.1:${port}/bucket`;
    const text = renderAwsHostScript(
      {
        name,
        target: "spt",
        kernelName: `${name}.spt`,
        kernel: { url: `${base}/${kernelObject}`, sha256: await sha256File(kernel) },
        tender: { url: `${base}/${tenderObject}`, sha256: await sha256File(TENDER) },
        networks: ["service"],
        ports: [{ port: 8080, protocol: "tcp" }],
        bootArgs: ["--hello=host", ...SHELLY],
        stateDir: dir,
        console: join(scratch.path, `${name}.console`),
        perBootDir: join(scratch.path, "per-boot"),
        ...spec,
      },
      {
        region: REGION,
        metadataUrl: `http://127.0.0.1:${port}`,
        ssmUrl: `http://127.0.0.1:${port}`,
      },
    );
    const path = join(scratch.path, `${name}.sh`);
    await writeFile(path, text);
    supervisors.push(join(dir, "supervisor.pid"));
    return { path, dir, text, console: new Console(join(scratch.path, `${name}.console`)) };
  }

  /** A TCP connection from the client namespace to the host's forwarded port: what it reads. */
  async function connect(): Promise<string> {
    const { stdout } = await inNs(
      CLIENT,
      process.execPath,
      "-e",
      `const s = require("net").connect(8080, "192.0.2.1"); s.setTimeout(60000, () => process.exit(3)); s.pipe(process.stdout);`,
    );
    return stdout.trim();
  }

  /** The cable between the script's mtap0 and the unikernel namespace's uk0. */
  async function wire(): Promise<ChildProcess> {
    const cable = startIn(HOST, [await testTapWire(), "mtap0", `/run/netns/${UK}`, "uk0"]);
    assert.equal(await firstLine(cable), "wired");
    return cable;
  }
  let cable: ChildProcess | undefined;

  const web = {
    banner: (dir: string) =>
      `solo5-spt stand-in: would run ${dir}/web.spt with --mem=512 and arguments '--ipv4=10.81.0.2/24 --ipv4-gateway=10.81.0.1 --hello=host ${SHELLY.join(" ")}'\nsolo5-spt stand-in: net 'service' on tap mtap0\n`,
  };
  let webService: Awaited<ReturnType<typeof service>>;

  test("fetches from the strict S3, checks, makes the tap and the forward, and supervises the tender with exactly its arguments: the forwarded port reaches the program behind the tap", async () => {
    webService = await service("web");
    const { path, dir, console } = webService;
    await runOnHost(path);

    assert.match(
      await console.text(),
      /pulumi-mirage\[web\]: started solo5-spt under a plain supervisor/,
    );
    await console.waitFor(web.banner(dir));
    assert.equal(await sha256File(join(dir, "web.spt")), await sha256File(netKernel));
    // Every download was signed as S3 wants it, with the role's credentials from IMDSv2.
    await fakeAnswered("GET /bucket/net-kernel -> 200");
    await fakeAnswered("GET /bucket/tender -> 200");
    assert.ok(existsSync(join(scratch.path, "per-boot", "pulumi-mirage-web")), "a per-boot hook");

    const server = startIn(UK, [
      process.execPath,
      "-e",
      `require("net").createServer((c) => c.end(${JSON.stringify(`${GREETING}\n`)})).listen(8080, "10.81.0.2", () => console.log("listening"))`,
    ]);
    assert.equal(await firstLine(server), "listening");
    cable = await wire();
    assert.equal(await connect(), GREETING);
  });

  test("restarts the tender when it exits, with the same arguments", async () => {
    const { dir, console } = webService;
    const [first] = tenders(dir);
    assert.ok(first, "the tender runs");
    const offset = await console.length();
    process.kill(first, "SIGKILL");
    await console.waitFor("pulumi-mirage[web]: solo5-spt exited with status 137", offset);
    await console.waitFor("pulumi-mirage[web]: restarting in 2 s", offset);
    await console.waitFor(web.banner(dir), offset);
    assert.notEqual(tenders(dir)[0], first, "a new tender");
  });

  test("a tender changed on disk is not run: it is fetched again and checked first", async () => {
    const { dir, console } = webService;
    await writeFile(join(dir, "solo5-spt"), "#!/bin/sh\necho tampered\n");
    const offset = await console.length();
    for (const pid of tenders(dir)) process.kill(pid, "SIGKILL");
    await console.waitFor(
      `pulumi-mirage[web]: solo5-spt on disk is not the planned one (sha256 ${sha256("#!/bin/sh\necho tampered\n")}): fetching it again`,
      offset,
    );
    await console.waitFor(web.banner(dir), offset);
    assert.equal(await sha256File(join(dir, "solo5-spt")), await sha256File(TENDER));
    assert.ok(!(await console.text(offset)).includes("tampered"), "the changed tender never ran");
  });

  test("a failing setup-network is reported as such, and no tender starts until it works", async () => {
    const { dir, console } = webService;
    const rules = join(dir, "rules.nft");
    const good = await readFile(rules, "utf8");
    await writeFile(rules, "table ip pulumi_mirage { this is not nft }\n");
    const offset = await console.length();
    for (const pid of tenders(dir)) process.kill(pid, "SIGKILL");
    await console.waitFor(
      "pulumi-mirage[web]: FATAL: setting up the network failed: setup-network exited with status 1",
      offset,
    );
    await console.waitFor("pulumi-mirage[web]: restarting in 2 s", offset);
    const failing = await console.text(offset);
    assert.equal(failing.match(/solo5-spt exited/g)?.length, 1, `only the killed one:\n${failing}`);
    assert.ok(!failing.includes("starting solo5-spt"), failing);
    assert.match(failing, new RegExp(`log: ${dir}/host\\.log`));

    const mended = await console.length();
    await writeFile(rules, good);
    await console.waitFor(web.banner(dir), mended);
  });

  test("after a reboot (no taps, no rules, no processes), cloud-init's per-boot hook brings it back", async () => {
    const { dir, console } = webService;
    killGroup(Number(await readFile(join(dir, "supervisor.pid"), "utf8")));
    // The cable plays the tender's guest, which a reboot ends too.
    if (cable?.pid) killGroup(cable.pid);
    await waitFor("the tender to go", () => tenders(dir).length === 0, 30_000);
    await inNs(HOST, "ip", "link", "del", "mtap0");
    await inNs(HOST, "nft", "delete", "table", "ip", "pulumi_mirage");

    const offset = await console.length();
    await runOnHost(join(scratch.path, "per-boot", "pulumi-mirage-web"));
    await console.waitFor(web.banner(dir), offset);
    cable = await wire();
    assert.equal(await connect(), GREETING);
  });

  test("a kernel whose sha256 is not the planned one stops the script with a clear console line; nothing is installed", async () => {
    const wrong = sha256("another kernel");
    const { path, dir, console } = await service("bad", {
      kernel: { url: `http://127.0.0.1:${port}/bucket/net-kernel`, sha256: wrong },
    });
    await assert.rejects(runOnHost(path), /exited with status 1/);
    const actual = await sha256File(netKernel);
    assert.match(
      await console.text(),
      new RegExp(
        `pulumi-mirage\\[bad\\]: FATAL: bad\\.spt: sha256 is ${actual}, expected ${wrong}: refusing to run it`,
      ),
    );
    assert.equal(existsSync(join(dir, "bad.spt")), false, "the bad kernel is not kept");
    assert.equal(existsSync(join(dir, "start")), false, "nothing is set up to run");
  });

  test("a tender in the bucket that is not the planned one is refused", async () => {
    const { path, dir, console } = await service("swapped", { tenderObject: "tampered-tender" });
    await assert.rejects(runOnHost(path), /exited with status 1/);
    assert.match(
      await console.text(),
      new RegExp(
        `pulumi-mirage\\[swapped\\]: FATAL: solo5-spt: sha256 is ${await sha256File(plainKernel)}, expected ${await sha256File(TENDER)}: refusing to run it`,
      ),
    );
    assert.equal(existsSync(join(dir, "solo5-spt")), false);
  });

  test("a download S3 refuses names the step and S3's answer on the console", async () => {
    const { path, console } = await service("gone", { kernelObject: "no-such-kernel" });
    await assert.rejects(runOnHost(path), /exited with status 1/);
    assert.match(
      await console.text(),
      /pulumi-mirage\[gone\]: FATAL: downloading gone\.spt from http:\/\/127\.0\.0\.1:\d+\/bucket\/no-such-kernel: HTTP 403: .*<Code>AccessDenied<\/Code>/,
    );
  });

  test("secret boot arguments: read from SSM at start by the role's signed identity, exactly as stored; the script holds only the parameter's name", async () => {
    const { path, dir, text, console } = await service("secret", {
      kernelObject: "plain-kernel",
      networks: [],
      ports: [],
      bootArgs: { secret: `${SECRET}:2` },
    });
    assert.ok(!text.includes("s3cr3t"), "the secret is not in the user data");
    await runOnHost(path);
    await console.waitFor(
      `solo5-spt stand-in: would run ${dir}/secret.spt with --mem=512 and arguments '--token=s3cr3t-value ${SHELLY.join(" ")}'\n`,
    );
    await fakeAnswered("POST / -> 200");
    const lines = (await console.text()).split("\n").filter((l) => l.startsWith("pulumi-mirage["));
    assert.ok(!lines.some((line) => line.includes("s3cr3t")), "no console line of ours shows it");
    assert.ok(!(await readFile(join(dir, "host.log"), "utf8")).includes("s3cr3t"), "nor the log");
  });

  test("a parameter the role may not read stops the start with SSM's refusal on the console", async () => {
    const { path, dir, console } = await service("denied", {
      kernelObject: "plain-kernel",
      networks: [],
      ports: [],
      bootArgs: { secret: `${FORBIDDEN}:1` },
    });
    await runOnHost(path);
    await console.waitFor(
      `pulumi-mirage[denied]: FATAL: reading the boot arguments from ${FORBIDDEN}:1: HTTP 400: {"__type":"AccessDeniedException"`,
    );
    assert.deepEqual(tenders(dir), [], "no tender runs without its arguments");
    assert.ok(!(await console.text()).includes("starting solo5-spt"));
    assert.ok((await stat(join(dir, "supervisor.pid"))).size > 0, "the supervisor keeps trying");
  });
});
