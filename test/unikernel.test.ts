// The Unikernel resource's engine code, called as the dynamic-provider process calls it, with the
// stand-in mirage (test/standins/mirage) as the toolchain.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import {
  chmod,
  copyFile,
  mkdir,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";
import { lookup } from "../provider/core/cache";
import { run } from "../provider/core/exec";
import { sha256File } from "../provider/core/hash";
import { provider } from "../provider/resources/unikernel";
import { UNKNOWN } from "../rules/values";
import { testKernel, testUnixProgram } from "./support/kernels";
import { alive, Started, waitFor } from "./support/process";
import { STANDIN, Standin } from "./support/standin";

type Props = Record<string, unknown>;

const standin = Standin.forThisFile();
const started = Started.forThisFile();

/** Inputs as the SDK sends them for a build from source with the stand-in toolchain. */
const sourceInputs = (source: string, extra: Props = {}) => standin.unikernelInputs(source, extra);

async function checked(news: Props, olds: Props = {}): Promise<Props> {
  const result = await provider.check(olds, news);
  assert.deepEqual(result.failures, [], "check passes");
  return result.inputs;
}

async function failures(news: Props): Promise<Record<string, string>> {
  const result = await provider.check({}, news);
  return Object.fromEntries((result.failures ?? []).map((f) => [f.property, f.reason]));
}

async function created(news: Props): Promise<Props> {
  const inputs = await checked(news);
  const { id, outs } = await provider.create(inputs);
  assert.equal(id, inputs.fingerprint);
  return outs;
}

describe("check", () => {
  it("refuses a missing source directory, one without config.ml, and a file", async () => {
    const missing = join(standin.scratch, "nowhere");
    assert.match((await failures(sourceInputs(missing))).source, /nowhere does not exist/);
    const empty = standin.path("empty");
    await mkdir(empty);
    assert.match((await failures(sourceInputs(empty))).source, /holds no config\.ml/);
    const file = standin.path("file");
    await writeFile(file, "x");
    assert.match((await failures(sourceInputs(file))).source, /is not a directory/);
    const looping = await standin.source();
    await symlink(".", join(looping, "again"));
    assert.match(
      (await failures(sourceInputs(looping))).source,
      /^cannot read .*again is a symbolic link/,
    );
  });

  it("refuses an unknown target, naming the known ones", async () => {
    const reason = (await failures(sourceInputs(await standin.source(), { target: "vmware" })))
      .target;
    assert.match(reason, /"vmware" is not a MirageOS target: use one of unix, hvt, spt, virtio/);
  });

  it("wants exactly one of source and kernel", async () => {
    const neither = await failures({ target: "virtio", mirage: STANDIN });
    assert.match(neither.source, /give source .* or kernel/);
    const both = await failures({
      ...sourceInputs(await standin.source()),
      kernel: await testKernel("virtio"),
    });
    assert.match(both.kernel, /not both/);
  });

  it("reads a prebuilt kernel's target from its Solo5 note, known at preview", async () => {
    for (const target of ["virtio", "hvt", "spt", "xen"] as const) {
      const inputs = await checked({ kernel: await testKernel(target) });
      assert.equal(inputs.target, target);
      // What an explicit, agreeing target gives: the same fingerprint, hence the same kernel.
      const given = await checked({ kernel: await testKernel(target), target });
      assert.equal(inputs.fingerprint, given.fingerprint);
    }
    // Not known yet (an output at preview): unknown, not missing.
    assert.equal((await checked({ kernel: UNKNOWN })).target, UNKNOWN);
  });

  it("refuses an explicit target the kernel's note contradicts, and says a unix build needs one", async () => {
    const virtio = await testKernel("virtio");
    assert.equal(
      (await failures({ kernel: virtio, target: "xen" })).target,
      `is xen, but ${virtio} is built for virtio (its Solo5 ABI1 note says so): leave target out (a prebuilt kernel's is read from that note) or give a xen kernel`,
    );
    const unix = await testUnixProgram();
    assert.match(
      (await failures({ kernel: unix })).kernel,
      /has no Solo5 ABI1 note.*; for a unix build, give target: "unix"$/,
    );
    assert.equal((await checked({ kernel: unix, target: "unix" })).target, "unix");
    assert.match(
      (await failures({ source: await standin.source(), mirage: STANDIN })).target,
      /^is required to build from source: give one of unix, hvt, spt, virtio/,
    );
  });

  it("refuses configure arguments that break the build's contract, naming the argument", async () => {
    const source = await standin.source();
    const refused: [string[], RegExp][] = [
      [["-t", "hvt"], /^"-t" sets the target: use the target property/],
      [["-thvt"], /^"-thvt" sets the target/],
      [["--target=hvt"], /^"--target=hvt" sets the target/],
      [["--tar", "hvt"], /^"--tar" sets the target/],
      [["-f", "other.ml"], /^"-f" names another configuration file: .*config\.ml in the source/],
      [["--file=other.ml"], /^"--file=other\.ml" names another configuration file/],
      [["--config-file", "x.ml"], /^"--config-file" names another configuration file/],
      [["--no-depext"], /^"--no-depext" is set by the depexts property/],
    ];
    for (const [configureArgs, reason] of refused)
      assert.match(
        (await failures(sourceInputs(source, { configureArgs }))).configureArgs ?? "",
        reason,
        configureArgs.join(" "),
      );
    const depexts = await failures(sourceInputs(source, { depexts: "no" }));
    assert.match(depexts.depexts, /must be true or false, not "no"/);
  });

  it("refuses a bad timeout, and a prebuilt kernel that is not a unikernel", async () => {
    const source = await standin.source();
    const timeout = await failures(sourceInputs(source, { buildTimeoutMinutes: -1 }));
    assert.match(timeout.buildTimeoutMinutes, /positive number of minutes/);
    const notKernel = join(source, "unikernel.ml");
    assert.ok((await failures({ kernel: notKernel, target: "virtio" })).kernel.includes(notKernel));
  });

  it("says how to install mirage when it is not on PATH", async () => {
    const path = process.env.PATH;
    process.env.PATH = standin.scratch; // holds no mirage
    try {
      const reason = (
        await failures({ ...sourceInputs(await standin.source()), mirage: undefined })
      ).mirage;
      assert.equal(
        reason,
        "mirage was not found on PATH: install it with `opam install mirage` or set the `mirage` property",
      );
    } finally {
      process.env.PATH = path;
    }
  });

  it("finds mirage on PATH by default", async () => {
    const bin = standin.path("bin");
    await mkdir(bin);
    await copyFile(STANDIN, join(bin, "mirage"));
    await chmod(join(bin, "mirage"), 0o755);
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path}`;
    try {
      const inputs = await checked({ ...sourceInputs(await standin.source()), mirage: undefined });
      assert.equal(inputs.mirageVersion, "v4.11.1");
    } finally {
      process.env.PATH = path;
    }
  });

  it("computes fingerprint, name and toolchain version without building anything", async () => {
    const before = (await standin.invocations()).length;
    const inputs = await checked(sourceInputs(await standin.source("web")));
    assert.match(String(inputs.fingerprint), /^[0-9a-f]{64}$/);
    assert.equal(inputs.name, "web");
    assert.equal(inputs.mirageVersion, "v4.11.1");
    assert.deepEqual(await standin.buildSteps(before), []);
    for (const configureArgs of [["-o", "api"], ["-oapi"], ["--output=api"], ["--output", "api"]]) {
      const named = await checked(sourceInputs(await standin.source("web"), { configureArgs }));
      assert.equal(named.name, "api", configureArgs.join(" "));
    }
  });

  it("keeps unknown inputs unknown at preview instead of failing", async () => {
    const source = await standin.source();
    for (const news of [
      sourceInputs(UNKNOWN),
      sourceInputs(source, { target: UNKNOWN }),
      sourceInputs(source, { configureArgs: UNKNOWN }),
      sourceInputs(source, { configureArgs: ["--net=direct", UNKNOWN] }),
      sourceInputs(source, { mirage: UNKNOWN }),
      { kernel: UNKNOWN, target: "virtio" },
    ]) {
      const inputs = await checked(news);
      assert.equal(inputs.fingerprint, UNKNOWN, JSON.stringify(news));
    }
    // What can be known is: the name does not need the target.
    const inputs = await checked(sourceInputs(source, { target: UNKNOWN }));
    assert.equal(inputs.name, "hello");
  });

  it("fingerprints the same after mirage configure ran in the source tree", async () => {
    const source = await standin.source();
    const before = await checked(sourceInputs(source));
    await new Promise<void>((done, fail) =>
      started
        .add(spawn(STANDIN, ["configure", "-t", "virtio"], { cwd: source, stdio: "ignore" }))
        .on("exit", (code) => (code === 0 ? done() : fail(new Error(`configure exited ${code}`)))),
    );
    assert.ok((await readdir(source)).includes("Makefile"));
    assert.equal((await checked(sourceInputs(source))).fingerprint, before.fingerprint);
  });

  it("changes the fingerprint with the source, target, configure arguments and mirage version", async () => {
    const source = await standin.source();
    const base = sourceInputs(source);
    const fingerprints = new Set<unknown>([(await checked(base)).fingerprint]);
    const expectNew = async (what: string, news: Props) => {
      const { fingerprint } = await checked(news);
      assert.ok(!fingerprints.has(fingerprint), `${what} changes the fingerprint`);
      fingerprints.add(fingerprint);
    };
    await expectNew("the target", { ...base, target: "xen" });
    await expectNew("a configure argument", { ...base, configureArgs: ["--net=socket"] });
    const newer = standin.path("mirage-4.12");
    await writeFile(newer, `#!/bin/sh\nMIRAGE_STANDIN_VERSION=v4.12.0 exec ${STANDIN} "$@"\n`);
    await chmod(newer, 0o755);
    await expectNew("the mirage version", { ...base, mirage: newer });
    await writeFile(join(source, "unikernel.ml"), "(* changed *)\n");
    await expectNew("a source file", base);
  });
});

describe("diff", () => {
  it("sees no change when a program drops a prebuilt kernel's explicit target", async () => {
    const kernel = await testKernel("hvt");
    const cacheDir = standin.path("cache-inferred");
    const olds = await created({ kernel, target: "hvt", cacheDir });
    const news = await checked({ kernel, cacheDir });
    assert.deepEqual(await provider.diff("id", olds, news), {
      changes: false,
      replaces: [],
      deleteBeforeReplace: false,
    });
  });

  it("replaces only when the fingerprint changes, naming the properties", async () => {
    const source = await standin.source();
    const olds = await created(sourceInputs(source));
    const same = await provider.diff(
      "id",
      olds,
      await checked(sourceInputs(source, { cacheDir: olds.cacheDir })),
    );
    assert.deepEqual(same, { changes: false, replaces: [], deleteBeforeReplace: false });

    const timeout = await provider.diff(
      "id",
      olds,
      await checked(sourceInputs(source, { cacheDir: olds.cacheDir, buildTimeoutMinutes: 60 })),
    );
    assert.equal(timeout.changes, true);
    assert.deepEqual(timeout.replaces, []);

    const args = await provider.diff(
      "id",
      olds,
      await checked(
        sourceInputs(source, { cacheDir: olds.cacheDir, configureArgs: ["--net=socket"] }),
      ),
    );
    assert.deepEqual(args.replaces, ["fingerprint", "configureArgs"]);

    await writeFile(join(source, "unikernel.ml"), "(* edited *)\n");
    const edited = await provider.diff(
      "id",
      olds,
      await checked(sourceInputs(source, { cacheDir: olds.cacheDir })),
    );
    assert.deepEqual(edited.replaces, ["fingerprint"]);

    const preview = await provider.diff(
      "id",
      olds,
      await checked(sourceInputs(UNKNOWN, { cacheDir: olds.cacheDir })),
    );
    assert.equal(preview.changes, true);
    assert.ok(preview.replaces?.includes("fingerprint"));
  });
});

describe("create", () => {
  it("builds in a directory of its own and stores the kernel in the cache", async () => {
    const source = await standin.source("hello", { net: true });
    const before = (await standin.invocations()).length;
    const outs = await created(sourceInputs(source));
    const kernelPath = String(outs.kernelPath);
    assert.ok(kernelPath.startsWith(String(outs.cacheDir)), "the kernel is in the cache");
    assert.ok(kernelPath.endsWith("/hello.virtio"));
    assert.equal(outs.sha256, await sha256File(kernelPath));
    assert.equal(outs.sha256, await sha256File(await testKernel("virtio-net")));
    assert.equal(outs.size, (await stat(kernelPath)).size);
    assert.equal(outs.name, "hello");
    assert.equal(outs.target, "virtio");
    assert.equal(outs.mirageVersion, "v4.11.1");
    assert.deepEqual(outs.manifest, [{ name: "service", type: "net" }]);
    assert.equal(outs.architecture, "x86_64", "the kernel's ELF machine");
    const steps = await standin.buildSteps(before);
    assert.deepEqual(
      steps.map((s) => s.step),
      ["configure", "depend", "build"],
    );
    assert.ok(
      steps.every((s) => s.cwd !== source),
      "nothing ran in the source tree",
    );
    assert.deepEqual((await readdir(source)).sort(), ["config.ml", "unikernel.ml"]);
    assert.deepEqual(JSON.parse(JSON.stringify(outs)), outs, "outputs are plain JSON");
  });

  it("serves a cache hit without running any tool", async () => {
    const source = await standin.source();
    const first = await created(sourceInputs(source));
    const before = (await standin.invocations()).length;
    const { outs } = await provider.create(
      await checked(sourceInputs(source, { cacheDir: first.cacheDir })),
    );
    assert.deepEqual(await standin.buildSteps(before), []);
    assert.equal(outs.kernelPath, first.kernelPath);
    assert.equal(outs.sha256, first.sha256);
  });

  it("lets two resources build from one source at once", async () => {
    const source = await standin.source();
    const cacheDir = standin.path("cache");
    const before = (await standin.invocations()).length;
    const [virtio, xen, again] = await Promise.all([
      created(sourceInputs(source, { cacheDir })),
      created(sourceInputs(source, { cacheDir, target: "xen" })),
      created(sourceInputs(source, { cacheDir })),
    ]);
    assert.ok(String(virtio.kernelPath).endsWith("/hello.virtio"));
    assert.ok(String(xen.kernelPath).endsWith("/hello.xen"));
    assert.equal(again.kernelPath, virtio.kernelPath);
    const configures = (await standin.buildSteps(before)).filter((s) => s.step === "configure");
    assert.equal(configures.length, 2, "the same kernel is built once");
    assert.notEqual(configures[0]?.cwd, configures[1]?.cwd);
  });

  it("builds a unix target into a program that runs", async () => {
    const outs = await created(sourceInputs(await standin.source(), { target: "unix" }));
    assert.ok(String(outs.kernelPath).endsWith("/hello"));
    assert.deepEqual(outs.manifest, []);
    assert.equal(outs.architecture, undefined, "a program, not a Solo5 kernel");
    const { stdout } = await run(String(outs.kernelPath), ["--hello"]);
    assert.match(stdout, /Hello, World/);
  });

  it("takes a prebuilt kernel into the cache, with its manifest and architecture known at check", async () => {
    const kernel = await testKernel("xen-net");
    const inputs = await checked({ kernel, target: "xen", cacheDir: standin.path("cache") });
    assert.equal(inputs.mirageVersion, "prebuilt");
    assert.equal(inputs.sha256, await sha256File(kernel));
    assert.deepEqual(inputs.manifest, [{ name: "service", type: "net" }]);
    assert.equal(inputs.architecture, "x86_64");
    const { outs } = await provider.create(inputs);
    assert.notEqual(outs.kernelPath, kernel);
    assert.equal(await sha256File(String(outs.kernelPath)), inputs.sha256);
    assert.equal(outs.name, "xen-net");
  });

  it("says which step and command failed, with the output's tail and the log", async () => {
    const source = await standin.source();
    const inputs = await checked(sourceInputs(source));
    process.env.MIRAGE_STANDIN_FAIL = "build";
    let error: Error | undefined;
    try {
      await provider.create(inputs);
    } catch (e) {
      error = e as Error;
    } finally {
      delete process.env.MIRAGE_STANDIN_FAIL;
    }
    assert.ok(error, "the build fails");
    const [first] = error.message.split("\n");
    assert.equal(
      first,
      'mirage build failed at step "make build" (make build): exited with status 2',
    );
    assert.match(error.message, /last 40 lines of output:\n/);
    assert.match(error.message, /build output line 60\n/);
    assert.doesNotMatch(error.message, /build output line 10\n/);
    const log = /full log: (.*)$/.exec(error.message)?.[1] as string;
    const text = await readFile(log, "utf8");
    assert.match(text, /build output line 1\n/);
    assert.match(text, /\$ .*configure -t virtio/);
    assert.equal(
      await lookup(String(inputs.cacheDir), "kernel", String(inputs.fingerprint)),
      undefined,
    );
  });

  it("kills the build and everything it started when the timeout fires", async () => {
    const source = await standin.source();
    const inputs = await checked(sourceInputs(source, { buildTimeoutMinutes: 0.1 }));
    process.env.MIRAGE_STANDIN_SLEEP = "configure:120";
    const before = (await standin.invocations()).length;
    try {
      await assert.rejects(provider.create(inputs), {
        message:
          /^mirage build failed at step "mirage configure" \(\S+ configure -t virtio\): the build took longer than 0\.1 minutes \(buildTimeoutMinutes\) and was killed/,
      });
    } finally {
      delete process.env.MIRAGE_STANDIN_SLEEP;
    }
    const sleeper = (await standin.invocations()).slice(before).find((i) => i.child);
    assert.ok(sleeper?.child, "the stand-in started its child");
    await waitFor("the child to die", async () => !alive(sleeper.child as number), 10_000);
    assert.ok(!alive(sleeper.pid));
  });

  it("leaves no entry that serves when the build is interrupted", async () => {
    const source = await standin.source();
    const inputs = await checked(sourceInputs(source));
    const module = resolve(__dirname, "..", "provider", "resources", "unikernel.js");
    const before = (await standin.invocations()).length;
    // The provider process dies mid-build (Ctrl-C, a crash): nothing cleans up after it.
    const child = started.add(
      spawn(
        process.execPath,
        ["-e", `require(${JSON.stringify(module)}).provider.create(${JSON.stringify(inputs)})`],
        { env: { ...process.env, MIRAGE_STANDIN_SLEEP: "build:120" }, stdio: "ignore" },
      ),
    );
    let sleeper: { pid: number; child?: number } | undefined;
    await waitFor(
      "the build step",
      async () => {
        sleeper = (await standin.invocations()).slice(before).find((i) => i.child);
        return sleeper !== undefined;
      },
      30_000,
    );
    child.kill("SIGKILL");
    await new Promise((r) => child.on("exit", r));
    for (const pid of [sleeper?.pid, sleeper?.child])
      if (pid && alive(pid)) process.kill(pid, "SIGKILL");

    assert.equal(
      await lookup(String(inputs.cacheDir), "kernel", String(inputs.fingerprint)),
      undefined,
    );
    // Scratch areas are named .scratch-PID-START-XXXXXX (provider/core/scratch.ts).
    const areaOf = (names: string[]) => names.some((n) => n.startsWith(`.scratch-${child.pid}-`));
    const left = await readdir(join(String(inputs.cacheDir), "work"));
    assert.ok(areaOf(left), "the killed build left its scratch area");
    const after = (await standin.invocations()).length;
    const { outs } = await provider.create(inputs);
    assert.deepEqual(
      (await standin.buildSteps(after)).map((s) => s.step),
      ["configure", "depend", "build"],
      "the next create builds again (and is not stopped by the dead process's lock)",
    );
    assert.equal(outs.sha256, await sha256File(String(outs.kernelPath)));
    const work = await readdir(join(String(inputs.cacheDir), "work"));
    assert.ok(!areaOf(work), "the dead build's scratch area is removed");
  });
});

describe("the build environment", () => {
  /** Runs `work` with the stand-in knobs `env` set in this process's environment. */
  async function withEnv<T>(env: Record<string, string>, work: () => Promise<T>): Promise<T> {
    Object.assign(process.env, env);
    try {
      return await work();
    } finally {
      for (const key of Object.keys(env)) delete process.env[key];
    }
  }

  it("honours -o: the kernel is built and stored under that name", async () => {
    const outs = await created(
      sourceInputs(await standin.source("web"), { configureArgs: ["--output=api"] }),
    );
    assert.equal(outs.name, "api");
    assert.ok(String(outs.kernelPath).endsWith("/api.virtio"), String(outs.kernelPath));
  });

  it("runs one make depend at a time per switch, and make build side by side", async () => {
    const spans = standin.path("spans");
    const cacheDir = standin.path("cache");
    const inputs = await Promise.all(
      ["one", "two"].map(async (name) =>
        checked(sourceInputs(await standin.source(name), { cacheDir })),
      ),
    );
    // Each make build waits for the other: the creates can only finish if both run at once.
    const barrier = `build:${standin.path("barrier")}:2`;
    await withEnv(
      {
        MIRAGE_STANDIN_SPANS: spans,
        MIRAGE_STANDIN_SLEEP: "depend:1",
        MIRAGE_STANDIN_BARRIER: barrier,
      },
      () => Promise.all(inputs.map((i) => provider.create(i))),
    );
    const all = (await readFile(spans, "utf8"))
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { step: string; start: number; end: number });
    const [a, b] = all.filter((s) => s.step === "depend");
    assert.ok(a && b && (a.end <= b.start || b.end <= a.start), "the two make depend overlapped");
    const [c, d] = all.filter((s) => s.step === "build");
    assert.ok(c && d && c.start < d.end && d.start < c.end, "the two make build took turns");
  });

  it("reports missing system packages with the command to install them, without waiting", async () => {
    const inputs = await checked(sourceInputs(await standin.source()));
    // The stand-in asks for a sudo password on stdin, as opam would: a build must not wait.
    await withEnv({ MIRAGE_STANDIN_DEPEXTS: "libgmp-dev pkg-config" }, async () => {
      await assert.rejects(provider.create(inputs), (error: Error) => {
        assert.match(
          error.message,
          /^mirage build failed at step "make depend" \(make depend\): opam could not install the system packages the unikernel's libraries need \(depexts\): libgmp-dev pkg-config\. Install them by hand as root: `apt-get install -qq -yy libgmp-dev pkg-config`, then run the update again; .*set depexts: false/,
        );
        assert.match(error.message, /full log: /);
        return true;
      });
    });
  });

  it("passes --no-depext with depexts: false, without changing the fingerprint", async () => {
    const source = await standin.source();
    const on = await checked(sourceInputs(source));
    const off = await checked(sourceInputs(source, { depexts: false }));
    assert.equal(off.fingerprint, on.fingerprint);
    const before = (await standin.invocations()).length;
    await withEnv({ MIRAGE_STANDIN_DEPEXTS: "libgmp-dev" }, () => provider.create(off));
    const [configure] = await standin.buildSteps(before);
    assert.deepEqual(configure?.argv, ["configure", "-t", "virtio", "--no-depext"]);
  });

  it("fingerprints the Solo5 and ocaml-solo5 versions of mirage's opam switch", async () => {
    // An opam switch as opam lays it out: bin/mirage and .opam-switch/switch-state.
    const prefix = standin.path("switch");
    await mkdir(join(prefix, "bin"), { recursive: true });
    await mkdir(join(prefix, ".opam-switch"));
    const mirage = join(prefix, "bin", "mirage");
    await writeFile(mirage, `#!/bin/sh\nexec ${STANDIN} "$@"\n`);
    await chmod(mirage, 0o755);
    const state = join(prefix, ".opam-switch", "switch-state");
    const writeState = (solo5: string, ocamlSolo5: string) =>
      writeFile(
        state,
        `opam-version: "2.0"\ncompiler: ["ocaml-base-compiler.4.14.2"]\nroots: ["mirage.4.11.1"]\ninstalled: [\n  "dune.3.17.0"\n  "mirage.4.11.1"\n  "ocaml-solo5.${ocamlSolo5}"\n  "solo5.${solo5}"\n]\n`,
      );
    await writeState("0.12.1", "1.1.0");
    const source = await standin.source();
    const first = await checked(sourceInputs(source, { mirage }));
    assert.deepEqual(first.switchVersions, { "ocaml-solo5": "1.1.0", solo5: "0.12.1" });
    assert.equal((await checked(sourceInputs(source, { mirage }))).fingerprint, first.fingerprint);
    const plain = await checked(sourceInputs(source));
    assert.notEqual(plain.fingerprint, first.fingerprint, "a mirage outside opam");
    // opam rewrites switch-state on every install: a new mtime, read again.
    await new Promise((r) => setTimeout(r, 20));
    await writeState("0.12.0", "1.1.0");
    const older = await checked(sourceInputs(source, { mirage }));
    assert.equal((older.switchVersions as Props).solo5, "0.12.0");
    assert.notEqual(older.fingerprint, first.fingerprint);
  });
});

describe("read", () => {
  it("reports a cached kernel that was removed or changed, and the next update gets it back", async () => {
    const source = await standin.source();
    const outs = await created(sourceInputs(source));
    const kernelPath = String(outs.kernelPath);
    assert.deepEqual((await provider.read("id", outs)).props, outs, "no drift");

    await rm(kernelPath);
    const gone = (await provider.read("id", outs)).props as Props;
    assert.equal(gone.sha256, "");
    const news = await checked(sourceInputs(source, { cacheDir: outs.cacheDir }));
    assert.deepEqual((await provider.diff("id", gone, news)).replaces, ["sha256"]);
    const rebuilt = await provider.create(news);
    assert.equal(rebuilt.outs.sha256, outs.sha256);

    await chmod(kernelPath, 0o644);
    await writeFile(kernelPath, "not a kernel any more");
    // The cache verifies its entry, finds it damaged and discards it: the refresh reports it gone.
    const changed = (await provider.read("id", rebuilt.outs)).props as Props;
    assert.equal(changed.sha256, "");
    assert.equal(existsSync(kernelPath), false);
    assert.deepEqual((await provider.diff("id", changed, news)).replaces, ["sha256"]);
    const before = (await standin.invocations()).length;
    const again = await provider.create(news);
    assert.equal(again.outs.sha256, outs.sha256, "the bad entry is discarded and rebuilt");
    assert.deepEqual(
      (await standin.buildSteps(before)).map((s) => s.step),
      ["configure", "depend", "build"],
    );
  });
});

describe("update and delete", () => {
  it("moves to a new cache directory without building", async () => {
    const source = await standin.source();
    const olds = await created(sourceInputs(source));
    const news = await checked(sourceInputs(source, { cacheDir: standin.path("cache") }));
    assert.deepEqual((await provider.diff("id", olds, news)).replaces, []);
    const before = (await standin.invocations()).length;
    const { outs } = await provider.update("id", olds, news);
    assert.deepEqual(await standin.buildSteps(before), []);
    assert.ok(String(outs?.kernelPath).startsWith(String(news.cacheDir)));
    assert.equal(outs?.sha256, olds.sha256);
  });

  it("delete leaves the cache entry for other resources", async () => {
    const outs = await created(sourceInputs(await standin.source()));
    await provider.delete("id", outs);
    await stat(String(outs.kernelPath));
    assert.equal(
      (await lookup(String(outs.cacheDir), "kernel", String(outs.fingerprint)))?.path,
      outs.kernelPath,
    );
  });
});

describe("the stand-in mirage", () => {
  it("follows the mirage 4.11 contract: version, generated files, refusals", async () => {
    assert.equal((await run(STANDIN, ["--version"])).stdout, "v4.11.1\n");
    const source = await standin.source();
    await assert.rejects(run(STANDIN, ["configure", "-t", "vmware"], { cwd: source }), {
      message: /exited with status 1[\s\S]*invalid value 'vmware'/,
    });
    // No stack in config.ml: no --net, no --no-dhcp.
    for (const arg of ["--net=direct", "--no-dhcp"])
      await assert.rejects(run(STANDIN, ["configure", "-t", "hvt", arg], { cwd: source }), {
        message: /exited with status 1[\s\S]*unknown option/,
      });
    await assert.rejects(run(STANDIN, ["build"], { cwd: source }), /exited with status 124/);
    await run(STANDIN, ["configure", "-t", "xen", "-o", "other"], { cwd: source });
    await assert.rejects(run("make", ["build"], { cwd: source }), /run `make depend` first/);
    const marked = async (file: string) => {
      const lines = (await readFile(join(source, file), "utf8")).trim().split("\n");
      return [lines[0], lines[lines.length - 1]].find((l) => /Generated by mirage/.test(l ?? ""));
    };
    for (const file of [
      "Makefile",
      "dune",
      "dune-project",
      "dune-workspace",
      "dune.build",
      "dune.config",
      "dist/dune",
      "mirage/other.opam",
      "mirage/other.ml",
      "mirage/dune-workspace.config",
    ])
      assert.match((await marked(file)) ?? "", /Generated by mirage\.v4\.11\.1/, file);
    for (const file of ["mirage/context", "mirage/hello.xl", "mirage/hello.xl.in"])
      assert.equal(await marked(file), undefined, file);
    // Plain JSON; xen declares no devices there.
    const manifest = JSON.parse(await readFile(join(source, "mirage/manifest.json"), "utf8"));
    assert.deepEqual(manifest, { type: "solo5.manifest", version: 1, devices: [] });
    await stat(join(source, "mirage/hello_libvirt.xml"));
    await run("make", ["depend"], { cwd: source });
    await stat(join(source, "mirage/other.opam.locked"));
    await run("make", ["build"], { cwd: source });
    // The kernel takes the -o name; the xl files keep the register name.
    assert.deepEqual((await readdir(join(source, "dist"))).sort(), [
      "dune",
      "hello.xl",
      "hello.xl.in",
      "other.xen",
    ]);
  });

  it("names qubes and unix outputs as mirage does, and writes no .xl for qubes", async () => {
    for (const [target, file] of [
      ["qubes", "hello.xen"],
      ["unix", "hello"],
    ]) {
      const source = await standin.source();
      await run(STANDIN, ["configure", "-t", target as string], { cwd: source });
      await run("make", ["depend"], { cwd: source });
      await run("make", ["build"], { cwd: source });
      assert.deepEqual((await readdir(join(source, "dist"))).sort(), ["dune", file]);
      assert.ok(!(await readdir(join(source, "mirage"))).some((f) => f.endsWith(".xl")));
    }
  });
});
