// The tests every cloud's host script must pass (sdk/host/script.ts with the cloud's module), run
// for real as root in a HostLab against the cloud's strict fake: it fetches and checks the files,
// takes the DNAT path to the program behind the tap, runs the stand-in tender with exactly its
// arguments and restarts it, refuses a tampered or wrong tender or kernel, reads secret boot
// arguments from the cloud's store by its identity, and comes back after a reboot. A cloud's own
// test file calls describeHostScript with what differs, and adds its own tests.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { before, describe, test } from "node:test";
import { sha256, sha256File } from "../../provider/core/hash";
import { encodeSecretBootArgs, type HostScriptSpec } from "../../sdk/host/script";
import { Console, firstLine, HostLab, hostLabSkip, tenders } from "./host-lab";
import { testKernel } from "./kernels";
import { waitFor } from "./process";
import { Scratch } from "./scratch";

export const TENDER = join(resolve(__dirname, "..", "..", ".."), "test", "standins", "solo5-spt");
const GREETING = "hello from behind the tap";
/** Arguments a shell would act on, were they not quoted: they must reach the tender as they are. */
const SHELLY = ["--glob=*", "--semi=;", "--tick=`id`", "--pipe=|&<>", "--dollar=$HOME"];
/** The secret boot arguments the readable secret holds. */
export const SECRET_ARGS = ["--token=s3cr3t-value", ...SHELLY];

/** The files a cloud's fake serves: object names are these keys, plus `tampered-tender`. */
export interface LabFiles {
  "net-kernel": string;
  "plain-kernel": string;
  tender: string;
  /** Not the tender the script is told to expect (it is the plain kernel). */
  "tampered-tender": string;
}

/** What differs between clouds. */
export interface CloudUnderTest {
  /** As test names say it: "EC2", "Compute Engine". */
  name: string;
  /** The fake's program (build/test/support/fake-*.js). */
  fakeProgram: string;
  /**
   * The fake's options: it serves `files` to the host's identity, and holds the two secrets of
   * `secrets`, the readable one holding `encodeSecretBootArgs(SECRET_ARGS)`.
   */
  fakeOptions(files: LabFiles): unknown;
  /** The URL of a served object, `base` being the fake's root. */
  objectUrl(base: string, object: string): string;
  /** The script for `spec` against the fake at `base`. */
  render(spec: HostScriptSpec, base: string): string;
  /** Secret references: one the host's identity may read, one it may not. */
  secrets: { readable: string; forbidden: string };
  /** The fake's log line of the host's download of `object`. */
  downloaded(object: string): string;
  /** The fake's log line of the host's read of the readable secret. */
  secretRead: string;
  /** The console line of a download of an object the fake does not have, after `FATAL: `. */
  missingObject(url: string): RegExp;
  /** The console line of a read of the forbidden secret, after `FATAL: `. */
  forbiddenSecret: string;
  /** Whether the cloud runs the script at every boot; else it leaves a per-boot hook. */
  everyBoot: boolean;
}

/** What a cloud's own tests get to use. */
export interface HostSuite {
  lab: HostLab;
  scratch: Scratch;
  /** The fake's root URL. */
  base(): string;
  /** A service's script for this cloud's fake, and where its state and console go. */
  service(name: string, change?: ServiceChange): Promise<Service>;
  /** Waits until the fake has logged `line` (method, path, status and error code). */
  fakeAnswered(line: string | RegExp): Promise<void>;
  /** The console banner of the web service's tender. */
  webBanner(dir: string): string;
  /** The web service of the first test, once it ran. */
  web(): Service;
}

export type ServiceChange = Partial<HostScriptSpec> & {
  kernelObject?: "net-kernel" | "plain-kernel" | string;
  tenderObject?: string;
  /** Renders instead of the cloud's `render`. */
  render?: CloudUnderTest["render"];
  /** Where the objects are instead of the cloud's `objectUrl`. */
  objectUrl?: CloudUnderTest["objectUrl"];
};

export interface Service {
  path: string;
  dir: string;
  text: string;
  console: Console;
}

/** Defines the shared tests of `cloud`'s host script; `more` adds the cloud's own after them. */
export function describeHostScript(cloud: CloudUnderTest, more?: (suite: HostSuite) => void) {
  describe(`the spt host script on ${cloud.name}`, { skip: hostLabSkip }, () => {
    // The lab's processes end before the scratch directory they write into goes.
    const lab = HostLab.forThisFile();
    const scratch = Scratch.forThisFile("host-script-suite-");
    let base = "";
    let files: LabFiles;
    let fakeOutput = "";
    let webService: Service | undefined;
    let cable: ChildProcess | undefined;

    before(async () => {
      files = {
        "net-kernel": await testKernel("spt-net"),
        "plain-kernel": await testKernel("spt"),
        tender: TENDER,
        "tampered-tender": await testKernel("spt"),
      };
      const fake = lab.startIn(lab.host, [
        process.execPath,
        cloud.fakeProgram,
        JSON.stringify(cloud.fakeOptions(files)),
      ]);
      base = `http://127.0.0.1:${Number(await firstLine(fake))}`;
      fake.stdout?.on("data", (chunk: Buffer) => {
        fakeOutput += chunk;
      });
    });

    const suite: HostSuite = {
      lab,
      scratch,
      base: () => base,
      async service(name, change = {}) {
        const {
          kernelObject = "net-kernel",
          tenderObject = "tender",
          render = cloud.render,
          objectUrl = cloud.objectUrl,
          ...spec
        } = change;
        const dir = join(scratch.path, name);
        const kernel =
          kernelObject === "plain-kernel" ? files["plain-kernel"] : files["net-kernel"];
        const text = render(
          {
            name,
            target: "spt",
            kernelName: `${name}.spt`,
            kernel: { url: objectUrl(base, kernelObject), sha256: await sha256File(kernel) },
            tender: { url: objectUrl(base, tenderObject), sha256: await sha256File(TENDER) },
            networks: ["service"],
            ports: [{ port: 8080, protocol: "tcp" }],
            bootArgs: ["--hello=host", ...SHELLY],
            stateDir: dir,
            console: join(scratch.path, `${name}.console`),
            ...(cloud.everyBoot ? {} : { perBootDir: join(scratch.path, "per-boot") }),
            ...spec,
          },
          base,
        );
        const path = join(scratch.path, `${name}.sh`);
        await writeFile(path, text);
        lab.supervisors.push(join(dir, "supervisor.pid"));
        return { path, dir, text, console: new Console(join(scratch.path, `${name}.console`)) };
      },
      fakeAnswered: (line) =>
        waitFor(
          `the fake to log ${line}`,
          () =>
            fakeOutput
              .split("\n")
              .some((l) => (typeof line === "string" ? l === line : line.test(l))),
          10_000,
        ).catch((error) => {
          throw new Error(`${error.message}; it logged:\n${fakeOutput}`);
        }),
      webBanner: (dir) =>
        `solo5-spt stand-in: would run ${dir}/web.spt with --mem=512 and arguments '--ipv4=10.81.0.2/24 --ipv4-gateway=10.81.0.1 --hello=host ${SHELLY.join(" ")}'\nsolo5-spt stand-in: net 'service' on tap mtap0\n`,
      web() {
        assert.ok(webService, "the first test made the web service");
        return webService;
      },
    };
    const { service, fakeAnswered, webBanner } = suite;

    test("fetches from the strict fake, checks, makes the tap and the forward, and supervises the tender with exactly its arguments: the forwarded port reaches the program behind the tap", async () => {
      webService = await service("web");
      const { path, dir, console } = webService;
      await lab.runOnHost(path);

      assert.match(
        await console.text(),
        /pulumi-mirage\[web\]: started solo5-spt under a plain supervisor/,
      );
      await console.waitFor(webBanner(dir));
      assert.equal(await sha256File(join(dir, "web.spt")), await sha256File(files["net-kernel"]));
      // Every download was made with the host's identity, as the service wants it.
      await fakeAnswered(cloud.downloaded("net-kernel"));
      await fakeAnswered(cloud.downloaded("tender"));
      assert.equal(
        existsSync(join(scratch.path, "per-boot", "pulumi-mirage-web")),
        !cloud.everyBoot,
        cloud.everyBoot ? "no per-boot hook: the script runs at every boot" : "a per-boot hook",
      );

      await lab.serveBehindTap(GREETING);
      cable = await lab.wire();
      assert.equal(await lab.connect(), GREETING);
    });

    test("restarts the tender when it exits, with the same arguments", async () => {
      const { dir, console } = suite.web();
      const [first] = tenders(dir);
      assert.ok(first, "the tender runs");
      const offset = await console.length();
      process.kill(first, "SIGKILL");
      await console.waitFor("pulumi-mirage[web]: solo5-spt exited with status 137", offset);
      await console.waitFor("pulumi-mirage[web]: restarting in 2 s", offset);
      await console.waitFor(webBanner(dir), offset);
      assert.notEqual(tenders(dir)[0], first, "a new tender");
    });

    test("a tender changed on disk is not run: it is fetched again and checked first", async () => {
      const { dir, console } = suite.web();
      await writeFile(join(dir, "solo5-spt"), "#!/bin/sh\necho tampered\n");
      const offset = await console.length();
      for (const pid of tenders(dir)) process.kill(pid, "SIGKILL");
      await console.waitFor(
        `pulumi-mirage[web]: solo5-spt on disk is not the planned one (sha256 ${sha256("#!/bin/sh\necho tampered\n")}): fetching it again`,
        offset,
      );
      await console.waitFor(webBanner(dir), offset);
      assert.equal(await sha256File(join(dir, "solo5-spt")), await sha256File(TENDER));
      assert.ok(!(await console.text(offset)).includes("tampered"), "the changed tender never ran");
    });

    test("a failing setup-network is reported as such, and no tender starts until it works", async () => {
      const { dir, console } = suite.web();
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
      assert.equal(
        failing.match(/solo5-spt exited/g)?.length,
        1,
        `only the killed one:\n${failing}`,
      );
      assert.ok(!failing.includes("starting solo5-spt"), failing);
      assert.match(failing, new RegExp(`log: ${dir}/host\\.log`));

      const mended = await console.length();
      await writeFile(rules, good);
      await console.waitFor(webBanner(dir), mended);
    });

    test(`after a reboot (no taps, no rules, no processes), what ${cloud.name} runs at boot brings it back`, async () => {
      const { path, dir, console } = suite.web();
      await lab.killSupervisor(dir);
      // The cable plays the tender's guest, which a reboot ends too.
      lab.stop(cable);
      await waitFor("the tender to go", () => tenders(dir).length === 0, 30_000);
      await lab.onHost("ip", "link", "del", "mtap0");
      await lab.onHost("nft", "delete", "table", "ip", "pulumi_mirage");

      const offset = await console.length();
      await lab.runOnHost(
        cloud.everyBoot ? path : join(scratch.path, "per-boot", "pulumi-mirage-web"),
      );
      await console.waitFor(webBanner(dir), offset);
      cable = await lab.wire();
      assert.equal(await lab.connect(), GREETING);
    });

    test("a kernel whose sha256 is not the planned one stops the script with a clear console line; nothing is installed", async () => {
      const wrong = sha256("another kernel");
      const { path, dir, console } = await service("bad", {
        kernel: { url: cloud.objectUrl(base, "net-kernel"), sha256: wrong },
      });
      await assert.rejects(lab.runOnHost(path), /exited with status 1/);
      const actual = await sha256File(files["net-kernel"]);
      assert.match(
        await console.text(),
        new RegExp(
          `pulumi-mirage\\[bad\\]: FATAL: bad\\.spt: sha256 is ${actual}, expected ${wrong}: refusing to run it`,
        ),
      );
      assert.equal(existsSync(join(dir, "bad.spt")), false, "the bad kernel is not kept");
      assert.equal(existsSync(join(dir, "start")), false, "nothing is set up to run");
    });

    test("a tender in the store that is not the planned one is refused", async () => {
      const { path, dir, console } = await service("swapped", { tenderObject: "tampered-tender" });
      await assert.rejects(lab.runOnHost(path), /exited with status 1/);
      assert.match(
        await console.text(),
        new RegExp(
          `pulumi-mirage\\[swapped\\]: FATAL: solo5-spt: sha256 is ${await sha256File(files["tampered-tender"])}, expected ${await sha256File(TENDER)}: refusing to run it`,
        ),
      );
      assert.equal(existsSync(join(dir, "solo5-spt")), false);
    });

    test("a download the store refuses names the step and the store's answer on the console", async () => {
      const { path, console } = await service("gone", { kernelObject: "no-such-kernel" });
      await assert.rejects(lab.runOnHost(path), /exited with status 1/);
      const url = cloud.objectUrl(base, "no-such-kernel");
      const line = (await console.text()).split("\n").find((l) => l.includes("FATAL")) ?? "";
      assert.match(line, /^pulumi-mirage\[gone\]: FATAL: /);
      assert.match(line.replace("pulumi-mirage[gone]: FATAL: ", ""), cloud.missingObject(url));
    });

    test("secret boot arguments: read from the secret store at start by the host's identity, exactly as stored; the script holds only the secret's name", async () => {
      const { path, dir, text, console } = await service("secret", {
        kernelObject: "plain-kernel",
        networks: [],
        ports: [],
        bootArgs: { secret: cloud.secrets.readable },
      });
      assert.ok(!text.includes("s3cr3t"), "the secret is not in the script");
      await lab.runOnHost(path);
      await console.waitFor(
        `solo5-spt stand-in: would run ${dir}/secret.spt with --mem=512 and arguments '${SECRET_ARGS.join(" ")}'\n`,
      );
      await fakeAnswered(cloud.secretRead);
      const lines = (await console.text())
        .split("\n")
        .filter((l) => l.startsWith("pulumi-mirage["));
      assert.ok(!lines.some((line) => line.includes("s3cr3t")), "no console line of ours shows it");
      assert.ok(!(await readFile(join(dir, "host.log"), "utf8")).includes("s3cr3t"), "nor the log");
    });

    test("a secret the host may not read stops the start with the store's refusal on the console", async () => {
      const { path, dir, console } = await service("denied", {
        kernelObject: "plain-kernel",
        networks: [],
        ports: [],
        bootArgs: { secret: cloud.secrets.forbidden },
      });
      await lab.runOnHost(path);
      await console.waitFor(
        `pulumi-mirage[denied]: FATAL: reading the boot arguments from ${cloud.secrets.forbidden}: ${cloud.forbiddenSecret}`,
      );
      assert.deepEqual(tenders(dir), [], "no tender runs without its arguments");
      assert.ok(!(await console.text()).includes("starting solo5-spt"));
      assert.ok((await stat(join(dir, "supervisor.pid"))).size > 0, "the supervisor keeps trying");
    });

    more?.(suite);
  });
}

/** The value the readable secret holds. */
export const SECRET_VALUE = encodeSecretBootArgs(SECRET_ARGS);
