// Where a cloud host's script runs for real, as root, in network namespaces a test file makes
// (named with its pid; deleted whatever happens; no traffic leaves them):
//   client ns  --veth 192.0.2.0/24--  host ns (the "instance": the script runs here, against a
//   fake of the cloud's services)  --mtap0, made by the script--  tapwire  --uk0--  unikernel ns
//   (10.81.0.2, where a TCP server stands in for the unikernel's network stack).
// The stand-in tender (test/standins/solo5-spt) runs under the script's supervisor (this
// machine's systemd, if any, is hidden); tapwire (test/kernels/tapwire.c) is the cable a real
// tender's guest would be. Every process started here is killed, with its group, after the file.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before } from "node:test";
import { findExecutable, run } from "../../provider/core/exec";
import { testTapWire } from "./kernels";
import { waitFor } from "./process";

const missing = ["ip", "nft", "curl", "gcc", "unshare"].filter((tool) => !findExecutable(tool));
/** Why a host test cannot run here, or false. */
export const hostLabSkip =
  process.getuid?.() !== 0
    ? "needs root (network namespaces)"
    : missing.length > 0
      ? `needs ${missing.join(", ")} (.ci/run installs them)`
      : false;

const ip = (...args: string[]) => run("ip", args, { timeoutMs: 30_000 });

function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // Gone already.
  }
}

/** The first stdout line of `child` (fails with its stderr if it exits first). */
export function firstLine(child: ChildProcess): Promise<string> {
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

/** The pids of the tenders running `dir`'s tender (the stand-in is a node script: argv[1]). */
export function tenders(dir: string): number[] {
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
export class Console {
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

export class HostLab {
  private readonly pid = process.pid;
  readonly host = `pmh${this.pid}`;
  readonly client = `pmc${this.pid}`;
  readonly unikernel = `pmu${this.pid}`;
  private readonly children: ChildProcess[] = [];
  /** Supervisors' pid files: their process groups are killed after the file. */
  readonly supervisors: string[] = [];
  private constructor() {}

  /** The lab of this test file: made before its tests, taken down after them. */
  static forThisFile(): HostLab {
    const lab = new HostLab();
    before(() => lab.setUp());
    after(() => lab.tearDown());
    return lab;
  }

  private get namespaces() {
    return [this.host, this.client, this.unikernel];
  }

  private inNs(ns: string, ...args: string[]) {
    return ip("netns", "exec", ns, ...args);
  }

  private async setUp(): Promise<void> {
    // Leftovers of a crashed run of this very pid would be ours; nothing else is touched.
    for (const ns of this.namespaces) await ip("netns", "del", ns).catch(() => {});
    for (const ns of this.namespaces) await ip("netns", "add", ns);
    for (const ns of this.namespaces) await this.inNs(ns, "ip", "link", "set", "lo", "up");
    const [hostEnd, clientEnd] = [`vh${this.pid}`, `vc${this.pid}`];
    await ip(
      "link",
      "add",
      hostEnd,
      "netns",
      this.host,
      "type",
      "veth",
      "peer",
      "name",
      clientEnd,
      "netns",
      this.client,
    );
    await this.inNs(this.host, "ip", "addr", "add", "192.0.2.1/24", "dev", hostEnd);
    await this.inNs(this.host, "ip", "link", "set", hostEnd, "up");
    await this.inNs(this.client, "ip", "addr", "add", "192.0.2.2/24", "dev", clientEnd);
    await this.inNs(this.client, "ip", "link", "set", clientEnd, "up");
    const uk = (...args: string[]) => this.inNs(this.unikernel, ...args);
    await uk("ip", "tuntap", "add", "dev", "uk0", "mode", "tap");
    await uk("ip", "addr", "add", "10.81.0.2/24", "dev", "uk0");
    await uk("ip", "link", "set", "uk0", "up");
    await uk("ip", "route", "add", "default", "via", "10.81.0.1");
  }

  private async tearDown(): Promise<void> {
    for (const file of this.supervisors) await this.killSupervisorOf(file);
    for (const child of this.children) if (child.pid) killGroup(child.pid);
    for (const ns of this.namespaces) await ip("netns", "del", ns).catch(() => {});
  }

  /** A process in namespace `ns`, its own process group leader (so cleanup gets all of it). */
  startIn(ns: string, args: string[]): ChildProcess {
    const child = spawn("ip", ["netns", "exec", ns, ...args], {
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.children.push(child);
    return child;
  }

  /** Kills the supervisor (and its session's group) whose pid the file holds, if any. */
  private async killSupervisorOf(file: string): Promise<void> {
    const pid = Number(await readFile(file, "utf8").catch(() => ""));
    if (pid > 0) killGroup(pid);
  }

  /** Kills the supervisor of the service whose state is in `dir`, with its group. */
  killSupervisor(dir: string): Promise<void> {
    return this.killSupervisorOf(join(dir, "supervisor.pid"));
  }

  /** Kills a process this lab started, with its group. */
  stop(child: ChildProcess | undefined): void {
    if (child?.pid) killGroup(child.pid);
  }

  /** Runs a script in the host namespace as the cloud would at boot, with systemd hidden. */
  async runOnHost(path: string): Promise<void> {
    const command = ["ip", "netns", "exec", this.host, "sh", path];
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

  /** A command in the host namespace. */
  onHost(...args: string[]) {
    return this.inNs(this.host, ...args);
  }

  /** A TCP server at 10.81.0.2:8080 in the unikernel's namespace, answering `greeting`. */
  async serveBehindTap(greeting: string): Promise<void> {
    const server = this.startIn(this.unikernel, [
      process.execPath,
      "-e",
      `require("net").createServer((c) => c.end(${JSON.stringify(`${greeting}\n`)})).listen(8080, "10.81.0.2", () => console.log("listening"))`,
    ]);
    assert.equal(await firstLine(server), "listening");
  }

  /** The cable between the script's mtap0 and the unikernel namespace's uk0. */
  async wire(): Promise<ChildProcess> {
    const cable = this.startIn(this.host, [
      await testTapWire(),
      "mtap0",
      `/run/netns/${this.unikernel}`,
      "uk0",
    ]);
    assert.equal(await firstLine(cable), "wired");
    return cable;
  }

  /** A TCP connection from the client namespace to the host's forwarded port: what it reads. */
  async connect(): Promise<string> {
    const { stdout } = await this.inNs(
      this.client,
      process.execPath,
      "-e",
      `const s = require("net").connect(8080, "192.0.2.1"); s.setTimeout(60000, () => process.exit(3)); s.pipe(process.stdout);`,
    );
    return stdout.trim();
  }
}
