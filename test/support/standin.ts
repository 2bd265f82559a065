// The stand-in mirage (test/standins/mirage) set up for a test file: a directory of test kernels
// it builds from, an invocation log, and unikernel source trees.
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before } from "node:test";
import { type TestKernelName, testKernel, testUnixProgram } from "./kernels";
import { killCarrying } from "./process";

/** build/test/support/standin.js → test/standins/mirage in the repository. */
export const STANDIN = resolve(__dirname, "..", "..", "..", "test", "standins", "mirage");

export interface Invocation {
  argv: string[];
  cwd: string;
  pid: number;
  step: string;
  child?: number;
}

const KERNELS: TestKernelName[] = ["virtio", "virtio-net", "virtio-block", "xen", "xen-net", "hvt"];

export class Standin {
  private counter = 0;
  private dir: string | undefined;
  private constructor() {}

  /** The scratch directory (set up by setUp, or by the file's `before` hook for forThisFile). */
  get scratch(): string {
    if (this.dir === undefined) throw new Error("the stand-in is used before it is set up");
    return this.dir;
  }

  /**
   * A scratch directory with the test kernels, pointed to by MIRAGE_STANDIN_KERNELS, and an
   * invocation log in MIRAGE_STANDIN_LOG (both set in this process's environment, which the
   * code under test passes on to the tools it runs).
   */
  static async setUp(): Promise<Standin> {
    const standin = new Standin();
    await standin.start();
    return standin;
  }

  /** A Standin set up before the calling test file's tests and torn down after them. */
  static forThisFile(): Standin {
    const standin = new Standin();
    before(() => standin.start());
    after(() => standin.tearDown());
    return standin;
  }

  private async start(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), "mirage-standin-"));
    const kernels = join(this.dir, "kernels");
    await mkdir(kernels);
    for (const name of KERNELS) await symlink(await testKernel(name), join(kernels, name));
    await symlink(await testUnixProgram(), join(kernels, "unix"));
    process.env.MIRAGE_STANDIN_KERNELS = kernels;
    process.env.MIRAGE_STANDIN_LOG = join(this.dir, "invocations.jsonl");
  }

  /** Kills whatever the stand-in started that is still running, and removes the scratch dir. */
  async tearDown(): Promise<void> {
    const log = join(this.scratch, "invocations.jsonl");
    const pids = (await this.invocations()).flatMap((i) => (i.child ? [i.pid, i.child] : [i.pid]));
    await killCarrying(pids, `MIRAGE_STANDIN_LOG=${log}`);
    await rm(this.scratch, { recursive: true, force: true });
  }

  /** A fresh path under the scratch directory. */
  path(prefix: string): string {
    return join(this.scratch, `${prefix}-${this.counter++}`);
  }

  /** Unikernel inputs as the SDK sends them for a build from `source` with the stand-in. */
  unikernelInputs(source: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      source,
      target: "virtio",
      mirage: STANDIN,
      cacheDir: this.path("cache"),
      resourceName: "hello",
      ...extra,
    };
  }

  /** A unikernel source tree registering `name`; with `net`, its config.ml uses a stack. */
  async source(name = "hello", options: { net?: boolean; block?: boolean } = {}): Promise<string> {
    const dir = this.path("src");
    await mkdir(dir);
    const devices = options.net
      ? "(stackv4v6 @-> job)"
      : options.block
        ? "(block @-> job)"
        : "(time @-> job)";
    const impl = options.net ? "generic_stackv4v6 default_network" : "default_time";
    await writeFile(
      join(dir, "config.ml"),
      `open Mirage\nlet main = main "Unikernel.Main" ${devices}\nlet () = register "${name}" [main $ ${impl}]\n`,
    );
    await writeFile(
      join(dir, "unikernel.ml"),
      "module Main = struct let start _ = Lwt.return_unit end\n",
    );
    return dir;
  }

  /** Everything the stand-in was asked to do so far. */
  async invocations(): Promise<Invocation[]> {
    const text = await readFile(process.env.MIRAGE_STANDIN_LOG as string, "utf8").catch(() => "");
    return text
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as Invocation);
  }

  /** The invocations after the first `since` ones, without `--version` queries. */
  async buildSteps(since = 0): Promise<Invocation[]> {
    return (await this.invocations()).slice(since).filter((i) => i.step !== "version");
  }
}
