// xen.Domain against a real sshd on loopback, with the xl stand-in on the remote PATH. Hostile
// inputs of issue 24 are here too (a domainDir not ours, the config's mode, a 1.9 GB kernel).
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, openSync } from "node:fs";
import {
  chmod,
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  truncate,
  writeFile,
} from "node:fs/promises";
import { createServer, Socket } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { blockMap, mapDigest } from "../provider/core/block-map";
import { run } from "../provider/core/exec";
import { sha256 } from "../provider/core/hash";
import { type DomainInputs, type DomainOutputs, provider } from "../provider/resources/xen-domain";
import { renderXlConfig } from "../provider/xen/xl-config";
import { Unikernel } from "../sdk/unikernel";
import { Domain } from "../sdk/xen";
import {
  type DynamicProvider,
  dynamicType,
  isSecret,
  type Props,
  type ProviderCallError,
  secret,
  startDynamicProvider,
} from "./support/dynamic-provider";
import { testKernel } from "./support/kernels";
import { readAsNobody } from "./support/nobody";
import { Started } from "./support/process";

const STANDIN_XL = resolve(__dirname, "../../test/standins/xl");
const started = Started.forThisFile();

/** A throwaway sshd on 127.0.0.1 whose sessions find the xl stand-in on their PATH. */
interface Sshd {
  port: number;
  user: string;
  clientKey: string;
  /** The server's public host key, `TYPE KEY`. */
  hostKey: string;
  /** The stand-in's state: domains, calls, knobs. */
  xlState: string;
  dir: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address() as { port: number };
  await new Promise((ok) => server.close(ok));
  return port;
}

async function waitForPort(port: number, child: ChildProcess, log: () => Promise<string>) {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (child.exitCode !== null) throw new Error(`sshd exited:\n${await log()}`);
    const open = await new Promise<boolean>((ok) => {
      const socket = new Socket();
      const done = (result: boolean) => {
        socket.destroy();
        ok(result);
      };
      socket.once("connect", () => done(true)).once("error", () => done(false));
      socket.connect(port, "127.0.0.1");
    });
    if (open) return;
    await new Promise((ok) => setTimeout(ok, 50));
  }
  throw new Error(`sshd did not listen on ${port}:\n${await log()}`);
}

/** ` NAME=value` for each of test/run.ts's variables this process has. */
function runEnvironment(): string {
  return ["PULUMI_MIRAGE_TEST_RUN", "TMPDIR"]
    .filter((name) => process.env[name])
    .map((name) => ` ${name}=${process.env[name]}`)
    .join("");
}

/** An sshd on a free loopback port; nothing is left behind if it cannot start. */
async function startSshd(): Promise<Sshd> {
  const dir = await mkdtemp(join(tmpdir(), "xen-domain-sshd-"));
  try {
    return await setUpSshd(dir);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

async function setUpSshd(dir: string): Promise<Sshd> {
  await chmod(dir, 0o700);
  const bin = join(dir, "bin");
  const xlState = join(dir, "xl-state");
  await mkdir(bin);
  await mkdir(xlState);
  await mkdir(join(dir, "home"));
  await symlink(STANDIN_XL, join(bin, "xl"));
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "host_key")]);
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "client_key")]);
  await writeFile(join(dir, "authorized_keys"), await readFile(join(dir, "client_key.pub")));
  // sshd running as root insists on its privilege separation directory.
  if (process.getuid?.() === 0) await mkdir("/run/sshd", { recursive: true, mode: 0o755 });
  const port = await freePort();
  const config = join(dir, "sshd_config");
  await writeFile(
    config,
    [
      "ListenAddress 127.0.0.1",
      `Port ${port}`,
      `HostKey ${join(dir, "host_key")}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      `PidFile ${join(dir, "sshd.pid")}`,
      // The product runs `xl` from the PATH of the host's sessions: put the stand-in there. An
      // empty HOME spares every command the test machine's own shell startup files.
      // The test run's marker and TMPDIR (test/run.ts) reach the sessions' processes too.
      `SetEnv PATH=${bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin XL_STANDIN_DIR=${xlState} HOME=${join(dir, "home")}${runEnvironment()}`,
      "",
    ].join("\n"),
  );
  await run("/usr/sbin/sshd", ["-t", "-f", config]);
  const logFile = join(dir, "sshd.log");
  const logFd = openSync(logFile, "a");
  const child = started.add(
    spawn("/usr/sbin/sshd", ["-D", "-e", "-f", config], { stdio: ["ignore", logFd, logFd] }),
  );
  closeSync(logFd);
  const log = () => readFile(logFile, "utf8").catch(() => "");
  await waitForPort(port, child, log);
  const hostKey = (await readFile(join(dir, "host_key.pub"), "utf8"))
    .split(" ")
    .slice(0, 2)
    .join(" ");
  return {
    port,
    user: userInfo().username,
    clientKey: await readFile(join(dir, "client_key"), "utf8"),
    hostKey,
    xlState,
    dir,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((ok) => child.once("exit", ok));
        child.kill("SIGTERM");
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A host key that is not the test sshd's (made once per directory), as `TYPE KEY`. */
async function strangerKey(dir: string): Promise<string> {
  const file = join(dir, "stranger");
  if (!existsSync(`${file}.pub`))
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", file]);
  return (await readFile(`${file}.pub`, "utf8")).split(" ").slice(0, 2).join(" ");
}

/** The stand-in's record of xl calls, one per line. */
async function xlCalls(sshd: Sshd): Promise<string[]> {
  const text = await readFile(join(sshd.xlState, "calls"), "utf8").catch(() => "");
  return text.split("\n").filter((line) => line !== "");
}

/** Runs the stand-in xl directly, as someone on the host would, behind the provider's back. */
async function xlOnHost(sshd: Sshd, args: string[]) {
  return run(STANDIN_XL, args, { env: { XL_STANDIN_DIR: sshd.xlState } });
}

describe("xl config", () => {
  test("is exactly the PVH domain asked for", () => {
    const config = renderXlConfig({
      name: "web",
      kernel: "/var/lib/pulumi-mirage/web/kernel-ab.xen",
      bootArgs: ["--ipv4=10.0.0.2/24", "--ipv4-gateway=10.0.0.1"],
      memory: 48,
      vcpus: 1,
      bridge: "xenbr1",
    });
    assert.equal(
      config,
      [
        "# Generated by pulumi-mirage: a MirageOS unikernel (Solo5 xen target, PVH only).",
        "name = 'web'",
        "type = 'pvh'",
        "kernel = '/var/lib/pulumi-mirage/web/kernel-ab.xen'",
        "cmdline = '--ipv4=10.0.0.2/24 --ipv4-gateway=10.0.0.1'",
        "memory = 48",
        "vcpus = 1",
        "vif = ['bridge=xenbr1']",
        "",
      ].join("\n"),
    );
  });

  test("refuses values xl or the unikernel would read differently", () => {
    const domain = { name: "web", kernel: "/k", memory: 48, vcpus: 1, bridge: "xenbr0" };
    for (const bootArgs of [
      ["a b"],
      ["it's"],
      ['say"hi"'],
      ["back\\slash"],
      ["tab\there"],
      [""],
      ["é"],
    ]) {
      assert.throws(() => renderXlConfig({ ...domain, bootArgs }), /^ImageError: boot argument 0 /);
    }
    assert.throws(() => renderXlConfig({ ...domain, bootArgs: [], kernel: "/k'\nmemory = 9" }));
    assert.throws(() => renderXlConfig({ ...domain, bootArgs: [], bridge: "br0,script=x" }));
    assert.throws(() => renderXlConfig({ ...domain, bootArgs: [], name: "a b" }));
  });
});

describe("xen.Domain engine, against a real sshd", () => {
  let sshd: Sshd;
  let work: string;
  let kernel: string;
  let kernelBytes: Buffer;
  let counter = 0;

  before(async () => {
    sshd = await startSshd();
    work = await mkdtemp(join(tmpdir(), "xen-domain-test-"));
    // Logs go to the cache's logs directory: keep them out of the real cache.
    process.env.PULUMI_MIRAGE_CACHE = join(work, "cache");
    kernel = await testKernel("xen");
    kernelBytes = await readFile(kernel);
  });
  after(async () => {
    await sshd?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Inputs as the SDK sends them, through check, with a fresh domain name. */
  async function checked(extra: Record<string, unknown> = {}): Promise<DomainInputs> {
    counter += 1;
    const { inputs, failures } = await provider.check(
      {},
      {
        host: "127.0.0.1",
        port: sshd.port,
        user: sshd.user,
        privateKey: sshd.clientKey,
        kernelPath: kernel,
        name: `hello${counter}`,
        bootArgs: ["--ipv4=10.0.0.2/24", "-l", "*:debug"],
        remoteDir: join(work, "remote"),
        ...extra,
      },
    );
    assert.deepEqual(failures, []);
    return inputs as DomainInputs;
  }

  test("check fills in defaults and fingerprints the kernel", async () => {
    const inputs = await checked();
    assert.equal(inputs.memory, 64);
    assert.equal(inputs.vcpus, 1);
    assert.equal(inputs.bridge, "xenbr0");
    assert.equal(inputs.kernelSha256, sha256(kernelBytes));
    assert.equal(inputs.hostKey, undefined, "no pinned key: trust on first use");
  });

  test("check refuses inputs that would break the xl config, naming the property", async () => {
    const { failures } = await provider.check(
      {},
      {
        host: "-oProxyCommand=x",
        port: 70000,
        privateKey: "/root/.ssh/id_ed25519",
        kernelPath: join(work, "missing.xen"),
        name: "hello world",
        memory: 1.5,
        bridge: "br0,script=/tmp/x",
        bootArgs: ["--name=it's"],
        remoteDir: "relative/dir",
        hostKey: "not a key",
      },
    );
    const properties = (failures ?? []).map((f) => f.property).sort();
    assert.deepEqual(properties, [
      "bootArgs",
      "bridge",
      "host",
      "hostKey",
      "kernel",
      "memory",
      "name",
      "port",
      "privateKey",
      "remoteDir",
    ]);
    const reasons = (failures ?? []).map((f) => f.reason).join("\n");
    assert.match(
      reasons,
      /boot argument 0 is refused at character \d+ of \d+: GRUB re-escapes quotes/,
    );
    assert.doesNotMatch(reasons, /id_ed25519/, "the privateKey value is never echoed");
  });

  test("check takes remoteDir as a clean absolute directory, never / or with '..'", async () => {
    const remote = async (remoteDir: string) => {
      const { inputs, failures } = await provider.check({}, { ...(await checked()), remoteDir });
      return failures?.length
        ? failures.map((f) => `${f.property}: ${f.reason}`)
        : inputs.remoteDir;
    };
    assert.equal(await remote("/srv//xen/"), "/srv/xen");
    for (const bad of ["/", "//", "/srv/../etc", "srv/xen", "/srv/my domains"]) {
      const result = await remote(bad);
      assert.ok(Array.isArray(result) && result[0].startsWith("remoteDir: "), `${bad}: ${result}`);
    }
  });

  test("check refuses a kernel built for another target, or not a unikernel at all", async () => {
    const inputs = await checked();
    const fromResource = await provider.check({}, { ...inputs, target: "virtio" });
    assert.equal(fromResource.failures?.[0]?.property, "kernel");
    assert.match(fromResource.failures?.[0]?.reason ?? "", /virtio unikernel.*target: "xen"/);
    const virtio = await testKernel("virtio");
    const fromFile = await provider.check(
      {},
      { ...inputs, kernelPath: virtio, kernelSha256: undefined },
    );
    assert.deepEqual(fromFile.failures, [
      {
        property: "kernel",
        reason: `${virtio} is a virtio unikernel; xen.Domain runs xen kernels (build it with target: "xen")`,
      },
    ]);
    const text = join(work, "notes.txt");
    await writeFile(text, "hello\n");
    const notKernel = await provider.check(
      {},
      { ...inputs, kernelPath: text, kernelSha256: undefined },
    );
    assert.equal(notKernel.failures?.[0]?.property, "kernel");
  });

  test("create copies the kernel and an xl config, runs xl create; read sees it; delete removes it", async () => {
    const inputs = await checked({ memory: 32, bridge: "br-test" });
    const { id, outs } = await provider.create(inputs);
    const domain = outs as DomainOutputs;

    // Trust on first use: the key the server really has is recorded in the state.
    assert.equal(domain.hostKey, sshd.hostKey);
    assert.ok(domain.domainId > 0);
    assert.deepEqual(await readFile(domain.kernelRemotePath), kernelBytes);
    assert.equal(
      domain.kernelRemotePath,
      join(work, "remote", inputs.name, `kernel-${sha256(kernelBytes)}.xen`),
    );
    const config = await readFile(domain.configPath, "utf8");
    for (const line of [
      `name = '${inputs.name}'`,
      "type = 'pvh'",
      `kernel = '${domain.kernelRemotePath}'`,
      "cmdline = '--ipv4=10.0.0.2/24 -l *:debug'",
      "memory = 32",
      "vcpus = 1",
      "vif = ['bridge=br-test']",
    ]) {
      assert.ok(config.split("\n").includes(line), `config has ${line}:\n${config}`);
    }
    assert.ok((await xlCalls(sshd)).includes(`xl create ${domain.configPath}`));
    const listed = (await xlOnHost(sshd, ["list"])).stdout;
    assert.match(listed, new RegExp(`^${inputs.name} +${domain.domainId} +32 +1 `, "m"));

    const found = await provider.read(id, domain);
    assert.equal(found.id, id);
    assert.equal(found.props?.domainId, domain.domainId);

    await provider.delete(id, domain);
    assert.ok((await xlCalls(sshd)).includes(`xl destroy ${inputs.name}`));
    assert.doesNotMatch(
      (await xlOnHost(sshd, ["list"])).stdout,
      new RegExp(`^${inputs.name} `, "m"),
    );
    assert.equal(existsSync(domain.domainDir), false, "the domain's files are removed");
  });

  test("read reports a domain destroyed behind Pulumi's back as gone; delete still cleans up", async () => {
    const { id, outs } = await provider.create(await checked());
    const domain = outs as DomainOutputs;
    await xlOnHost(sshd, ["destroy", domain.name]);
    const found = await provider.read(id, domain);
    assert.equal(found.id, "");
    await provider.delete(id, domain);
    assert.equal(existsSync(domain.domainDir), false);
  });

  test("a pinned host key that does not match is refused before anything runs", async () => {
    const otherKey = await strangerKey(work);
    const inputs = await checked({ hostKey: otherKey });
    const callsBefore = await xlCalls(sshd);
    await assert.rejects(provider.create(inputs), (error: Error) => {
      assert.match(error.message, /host key of 127\.0\.0\.1:\d+ does not match/);
      assert.match(error.message, /ssh-keyscan -p \d+ 127\.0\.0\.1/);
      return true;
    });
    assert.deepEqual(await xlCalls(sshd), callsBefore, "xl was never run");
    assert.equal(existsSync(join(inputs.remoteDir, inputs.name)), false);
  });

  test("a host whose key changed after the first connection is refused", async () => {
    const { id, outs } = await provider.create(await checked());
    const domain = outs as DomainOutputs;
    const otherKey = await strangerKey(work);
    await assert.rejects(provider.read(id, { ...domain, hostKey: otherKey }), /does not match/);
    await provider.delete(id, domain);
  });

  test("the pinned host key is accepted and kept", async () => {
    const inputs = await checked({ hostKey: `[127.0.0.1]:${sshd.port} ${sshd.hostKey}\n` });
    assert.equal(inputs.hostKey, sshd.hostKey, "known_hosts syntax is normalized");
    const { id, outs } = await provider.create(inputs);
    assert.equal((outs as DomainOutputs).hostKey, sshd.hostKey);
    await provider.delete(id, outs as DomainOutputs);
  });

  test("a failing xl create is reported with xl's output and leaves nothing behind", async () => {
    const inputs = await checked();
    const failure = "libxl: error: libxl_create.c:1234: Domain 7:cannot allocate 64 MiB";
    let logFile: string | undefined;
    await writeFile(join(sshd.xlState, "fail-create"), `${failure}\n`);
    try {
      await assert.rejects(provider.create(inputs), (error: Error) => {
        assert.match(error.message, /^xl create .* on \S+@127\.0\.0\.1:\d+ exited with status 3/);
        assert.ok(error.message.includes(failure), error.message);
        logFile = /full log: (\S+)$/.exec(error.message)?.[1];
        return true;
      });
    } finally {
      await rm(join(sshd.xlState, "fail-create"));
    }
    assert.equal(existsSync(join(inputs.remoteDir, inputs.name)), false);
    // The log, in the cache's logs directory, holds every command run and what it printed.
    assert.ok(
      logFile?.startsWith(join(work, "cache", "logs", `xen-domain-${inputs.name}-create-`)),
    );
    const log = await readFile(logFile as string, "utf8");
    assert.match(log, /xl create /);
    assert.ok(log.includes(failure));
    assert.ok(!log.includes(sshd.clientKey.split("\n")[1]), "no key in the log");
  });

  test("a domainDir that is not ours survives a refused create; delete takes only what create wrote", async () => {
    const inputs = await checked();
    const domainDir = join(inputs.remoteDir, inputs.name);
    await mkdir(domainDir, { recursive: true });
    await writeFile(join(domainDir, "keep.txt"), "the user's\n");
    const creates = async () => (await xlCalls(sshd)).filter((c) => c.startsWith("xl create "));
    const createsBefore = await creates();
    await assert.rejects(
      provider.create(inputs),
      new RegExp(
        `name: ${domainDir} on 127\\.0\\.0\\.1 already exists and was not made by xen\\.Domain`,
      ),
    );
    assert.deepEqual(await readdir(domainDir), ["keep.txt"], "nothing written, nothing removed");
    assert.deepEqual(await creates(), createsBefore, "xl create was never run");

    await rm(domainDir, { recursive: true });
    const { id, outs } = await provider.create(inputs);
    const domain = outs as DomainOutputs;
    await writeFile(join(domain.domainDir, "notes.txt"), "added since\n");
    await provider.delete(id, domain);
    assert.deepEqual(await readdir(domain.domainDir), ["notes.txt"]);
  });

  test("the config, holding the boot arguments, is its owner's alone on the host", async (t) => {
    if (process.getuid?.() !== 0) return t.skip("needs root, to read as nobody");
    // Reachable by anyone down to remoteDir: only what create makes decides.
    const root = join(work, "public");
    await mkdir(root, { mode: 0o755 });
    const control = join(root, "control.txt");
    await writeFile(control, "anyone may read this\n", { mode: 0o644 });
    assert.equal((await readAsNobody(root, control)).read, true, "the harness");
    const inputs = await checked({
      remoteDir: join(root, "remote"),
      bootArgs: ["--token=xen-hostile-secret"],
    });
    const { id, outs } = await provider.create(inputs);
    const domain = outs as DomainOutputs;
    try {
      assert.match(await readFile(domain.configPath, "utf8"), /--token=xen-hostile-secret/);
      assert.equal((await stat(domain.configPath)).mode & 0o077, 0, "the config is private");
      assert.equal((await stat(domain.domainDir)).mode & 0o077, 0, "so is its directory");
      assert.match((await readAsNobody(root, domain.configPath)).said, /Permission denied/);
    } finally {
      await provider.delete(id, domain);
    }
  });

  test("a name already running on the host is refused, and that domain is left alone", async () => {
    const { id, outs } = await provider.create(await checked());
    const domain = outs as DomainOutputs;
    await assert.rejects(
      provider.create({ ...(await checked()), name: domain.name }),
      /a domain named hello\d+ already runs on 127\.0\.0\.1/,
    );
    assert.equal((await provider.read(id, domain)).id, id);
    await provider.delete(id, domain);
  });

  test("diff replaces the domain for domain changes, updates connection details in place", async () => {
    const inputs = await checked();
    const olds = { ...inputs, hostKey: sshd.hostKey } as DomainOutputs;
    assert.deepEqual(await provider.diff("x", olds, inputs), {
      changes: false,
      replaces: [],
      deleteBeforeReplace: true,
    });
    const memory = await provider.diff("x", olds, { ...inputs, memory: 128 });
    assert.equal(memory.changes, true);
    assert.deepEqual(memory.replaces, ["memory"]);
    assert.equal(memory.deleteBeforeReplace, true, "xl cannot run two domains of one name");
    const renamed = await provider.diff("x", olds, { ...inputs, name: "other", bootArgs: [] });
    assert.deepEqual(renamed.replaces, ["name", "bootArgs"]);
    assert.equal(renamed.deleteBeforeReplace, false);
    const port = await provider.diff("x", olds, { ...inputs, port: 2222 });
    assert.equal(port.changes, true);
    assert.deepEqual(port.replaces, []);
    const pinned = await provider.diff("x", olds, { ...inputs, hostKey: "ssh-ed25519 AAAA" });
    assert.equal(pinned.changes, true);
    assert.deepEqual(pinned.replaces, []);
  });

  test("update of connection details checks the new connection and keeps the recorded key", async () => {
    const { id, outs } = await provider.create(await checked());
    const domain = outs as DomainOutputs;
    const updated = await provider.update(id, domain, {
      ...domain,
      hostKey: undefined,
      user: sshd.user,
    });
    assert.equal(updated.outs?.hostKey, sshd.hostKey);
    await assert.rejects(
      provider.update(id, domain, {
        ...domain,
        privateKey:
          "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
      }),
    );
    await provider.delete(id, domain);
  });

  test("the private key appears in no error, output or file left behind", async (t) => {
    const secret = sshd.clientKey.split("\n")[1];
    // A TMPDIR of this test's own: other test files (the real Xen host's) make key directories
    // in the run's TMPDIR at the same time.
    const outerTmp = process.env.TMPDIR;
    const ownTmp = await mkdtemp(join(tmpdir(), "key-dirs-"));
    process.env.TMPDIR = ownTmp;
    t.after(async () => {
      process.env.TMPDIR = outerTmp;
      await rm(ownTmp, { recursive: true, force: true });
    });
    // Key directories are made in this process's scratch area (provider/core/scratch.ts).
    const keyDirs = async () =>
      (await readdir(tmpdir(), { recursive: true })).filter((path) => /(^|\/)ssh-/.test(path));
    const inputs = await checked();
    const { id, outs } = await provider.create(inputs);
    const { privateKey: _, ...rest } = outs as DomainOutputs;
    assert.ok(!JSON.stringify(rest).includes(secret));
    const errors: string[] = [];
    await provider
      .create({ ...inputs })
      .catch((e: Error) => errors.push(e.message, String(e.stack)));
    await provider
      .read(id, {
        ...(outs as DomainOutputs),
        hostKey: await strangerKey(work),
      })
      .catch((e: Error) => errors.push(e.message, String(e.stack)));
    assert.equal(errors.length, 4);
    for (const text of errors) assert.ok(!text.includes(secret), text);
    await provider.delete(id, outs as DomainOutputs);
    assert.deepEqual(await keyDirs(), [], "the key's temporary directories are removed");
  });
});

describe("xen.Domain SDK resource", () => {
  test("sends the kernel, connection and defaults; the private key only as a secret", async () => {
    const registered: Record<string, Record<string, unknown>> = {};
    await pulumi.runtime.setMocks(
      {
        newResource(args) {
          registered[args.name] = { ...args.inputs, type: args.type };
          const built = args.type.endsWith(":Unikernel")
            ? { kernelPath: "/cache/kernels/hello.xen", sha256: "ab".repeat(32) }
            : {};
          return { id: `${args.name}-id`, state: { ...args.inputs, ...built } };
        },
        call: (args) => args.inputs,
      },
      "project",
      "stack",
      false,
    );
    const kernel = new Unikernel("hello", { kernel: "dist/hello.xen", target: "xen" });
    let privateKeyIsSecret: Promise<boolean> | undefined;
    const domain = new Domain(
      "web",
      {
        connection: { host: "xen1.example.org", privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----" },
        kernel,
        bootArgs: ["--ipv4=10.0.0.2/24"],
      },
      {
        transformations: [
          (t) => {
            privateKeyIsSecret = pulumi.isSecret(t.props.privateKey);
            return undefined;
          },
        ],
      },
    );
    await new Promise((resolve, reject) => {
      setTimeout(() => reject(new Error("not registered within 20 s")), 20_000).unref();
      domain.urn.apply(resolve);
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(await privateKeyIsSecret, true);
    const inputs = registered.web;
    assert.equal(inputs.type, dynamicType("xen-domain"));
    assert.equal(inputs.name, "web", "the domain is named after the resource by default");
    assert.equal(inputs.host, "xen1.example.org");
    assert.equal(inputs.kernelPath, "/cache/kernels/hello.xen");
    assert.equal(inputs.kernelSha256, "ab".repeat(32));
    assert.equal(inputs.target, "xen");
    assert.deepEqual(inputs.bootArgs, ["--ipv4=10.0.0.2/24"]);
    assert.equal(typeof inputs.__provider, "string", "the provider was serialized");
  });
});

describe("xen.Domain through the real dynamic-provider process", () => {
  let sshd: Sshd;
  let p: DynamicProvider;
  let work: string;
  let kernel: string;
  let counter = 0;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "xen-domain-process-"));
    // Both start at once; each is kept for the after hook even when the other fails.
    const starts = await Promise.allSettled([
      startSshd().then((s) => {
        sshd = s;
      }),
      startDynamicProvider({ env: { PULUMI_MIRAGE_CACHE: join(work, "cache") } }).then((q) => {
        p = q;
      }),
    ]);
    for (const start of starts) if (start.status === "rejected") throw start.reason;
    kernel = await testKernel("xen");
  });
  after(async () => {
    await p?.stop();
    await sshd?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** What the SDK sends for a new domain (the private key a secret), after check. */
  async function checked(extra: Props = {}): Promise<Props> {
    counter += 1;
    const { inputs, failures } = await p.check(
      "xen-domain",
      {},
      {
        host: "127.0.0.1",
        port: sshd.port,
        user: sshd.user,
        privateKey: secret(sshd.clientKey),
        kernelPath: kernel,
        name: `proc${counter}`,
        bootArgs: ["--ipv4=10.0.0.2/24"],
        remoteDir: join(work, "remote"),
        ...extra,
      },
    );
    assert.deepEqual(failures, []);
    return inputs;
  }

  test("create, read, read after the domain vanished, delete", async () => {
    const inputs = await checked();
    assert.ok(isSecret(inputs.privateKey), "the key stays secret through check");
    const { id, outs } = await p.create("xen-domain", inputs);
    assert.ok(isSecret(outs.privateKey), "the key is secret in the state");
    assert.equal(outs.hostKey, sshd.hostKey, "trust on first use recorded the host's key");
    const config = await readFile(String(outs.configPath), "utf8");
    assert.match(config, /^type = 'pvh'$/m);
    assert.match(config, /^cmdline = '--ipv4=10\.0\.0\.2\/24'$/m);
    assert.ok((await xlCalls(sshd)).includes(`xl create ${outs.configPath}`));

    assert.equal((await p.read("xen-domain", id, outs)).id, id);
    await xlOnHost(sshd, ["destroy", String(outs.name)]);
    assert.equal((await p.read("xen-domain", id, outs)).id, "", "a vanished domain reads as gone");

    const second = await p.create("xen-domain", await checked());
    await p.delete("xen-domain", second.id, second.outs);
    assert.ok((await xlCalls(sshd)).includes(`xl destroy ${second.outs.name}`));
    assert.equal(existsSync(String(second.outs.domainDir)), false, "its files are removed");
    await p.delete("xen-domain", id, outs);
    assert.equal(existsSync(String(outs.domainDir)), false);

    const diff = await p.diff("xen-domain", id, outs, { ...inputs, memory: 128 });
    assert.deepEqual(diff, { changes: true, replaces: ["memory"], deleteBeforeReplace: true });
  });

  test("a wrong host key is refused", async () => {
    const other = await strangerKey(work);
    const inputs = await checked({ hostKey: other });
    await assert.rejects(p.create("xen-domain", inputs), (error: ProviderCallError) => {
      assert.match(error.message, /SSH host key of 127\.0\.0\.1:\d+ does not match/);
      return true;
    });
    assert.equal(existsSync(join(work, "remote", String(inputs.name))), false);
  });

  test("a failing xl create is reported with its output", async () => {
    const inputs = await checked();
    await writeFile(join(sshd.xlState, "fail-create"), "libxl: error: out of memory (stand-in)\n");
    try {
      await assert.rejects(p.create("xen-domain", inputs), (error: ProviderCallError) => {
        assert.match(error.message, /xl create .* exited with status 3/);
        assert.match(error.message, /libxl: error: out of memory \(stand-in\)/);
        return true;
      });
    } finally {
      await rm(join(sshd.xlState, "fail-create"));
    }
  });

  test("a sparse 1.9 GB kernel is hashed and sent in bounded memory, and stays sparse on the host", async () => {
    const big = join(work, "big.xen");
    await copyFile(kernel, big);
    await truncate(big, 1_900_000_000);
    const { id, outs } = await p.create("xen-domain", await checked({ kernelPath: big }));
    try {
      const status = await readFile(`/proc/${p.pid}/status`, "utf8");
      const peakKiB = Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1]);
      assert.ok(peakKiB < 512 * 1024, `the provider's peak RSS: ${peakKiB} KiB`);
      const copy = String(outs.kernelRemotePath);
      const { size, blocks } = await stat(copy);
      assert.equal(size, 1_900_000_000);
      assert.ok(blocks * 512 < 64 * 1024 ** 2, `${blocks * 512} bytes allocated on the host`);
      // The same bytes: block maps read only the data, not 1.9 GB of holes.
      assert.equal(mapDigest(await blockMap(copy)), mapDigest(await blockMap(big)));
    } finally {
      await p.delete("xen-domain", id, outs);
      await rm(big);
    }
  });

  test("the private key is in no log line, log file or other output", async () => {
    const keyLines = sshd.clientKey.split("\n").filter((line) => line.length > 20);
    const { id, outs } = await p.create("xen-domain", await checked());
    // The provider process logs failed reads with their stack: make one fail.
    const other = await strangerKey(work);
    await assert.rejects(p.read("xen-domain", id, { ...outs, hostKey: other }), /does not match/);
    await p.delete("xen-domain", id, outs);
    const { privateKey: _, ...others } = outs;
    const logDir = join(work, "cache", "logs");
    const logFiles = await readdir(logDir);
    assert.ok(logFiles.length > 0, "creates and deletes were logged");
    const logs = await Promise.all(logFiles.map((f) => readFile(join(logDir, f), "utf8")));
    const visible = [JSON.stringify(others), ...p.logs, ...logs].join("\n");
    assert.match(p.logs.join("\n"), /does not match/, "the failed read was logged");
    for (const line of keyLines) assert.ok(!visible.includes(line), "a key line leaked");
  });
});
