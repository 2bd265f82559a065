// xen.Domain and xen disk images against a real Xen: Xen 4.17 and a PVH dom0 booted in QEMU
// (test/support/xen-host.ts), the real xl over SSH, through the real dynamic-provider process.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, type TestContext, test } from "node:test";
import { run } from "../provider/core/exec";
import { buildImage } from "../provider/image";
import { consoleLogPath } from "../provider/resources/xen-domain";
import {
  type DynamicProvider,
  type Props,
  secret,
  startDynamicProvider,
} from "./support/dynamic-provider";
import { testKernel } from "./support/kernels";
import { waitFor } from "./support/process";
import { BRIDGE, startXenHost, type XenHost, xenHostSkipReason } from "./support/xen-host";

/** Generous: a loaded machine runs a domain's whole life in Xen under TCG in 5-60 s. */
const DOMAIN_MS = 5 * 60 * 1000;
const BANNER = "Solo5-like xen test unikernel (pulumi-mirage): PV console";
/** Where xen.Domain keeps its domains' files in dom0 (its default remoteDir). */
const REMOTE_DIR = "/var/lib/pulumi-mirage";
/** Where these tests put their own files in dom0. */
const TEST_DIR = "/root/xen-host-test";

/** The xen disk image's GRUB config and kernel, read out of its FAT partition (at 1 MiB). */
async function imageBootFiles(disk: string, dir: string): Promise<{ cfg: string; kernel: string }> {
  const files = { cfg: join(dir, "grub.cfg"), kernel: join(dir, "unikernel.bin") };
  const copy = (from: string, to: string) =>
    run("mcopy", ["-n", "-i", `${disk}@@1048576`, from, to], { env: { MTOOLS_SKIP_CHECK: "1" } });
  await copy("::/boot/grub/grub.cfg", files.cfg);
  await copy("::/boot/unikernel.bin", files.kernel);
  return files;
}

/** `xl create` of `config` in dom0, then the console lines once the domain is gone. */
async function runToEnd(host: XenHost, name: string, config: string): Promise<string[]> {
  const path = `${TEST_DIR}/${name}.cfg`;
  await host.sh(`mkdir -p ${TEST_DIR} && cat > ${path}`, config);
  await host.sh(`xl create ${path}`);
  // Polled every 5 s, and a dom0 too busy to answer (an HVM guest's device model under TCG) is
  // asked again rather than failing the test.
  await waitFor(
    `domain ${name} to finish`,
    async () => {
      await new Promise((resolve) => setTimeout(resolve, 5000));
      const listed = await host.sh("xl list").catch(() => undefined);
      return listed !== undefined && !listed.stdout.match(new RegExp(`^${name} `, "m"));
    },
    DOMAIN_MS,
  );
  const log = consoleLogPath(name);
  const { stdout } = await host.sh(`cat ${log}; rm -f ${log}`);
  return stdout.split("\n");
}

/**
 * The `Command line is: '...'` lines of a console (from where they start: a bootloader's
 * escape sequences may precede them on the line).
 */
const commandLines = (lines: string[]) =>
  lines.flatMap((l) => l.match(/Command line is: .*/)?.[0] ?? []);
/** Whether the kernel printed its banner. */
const ran = (lines: string[]) => lines.some((l) => l.includes(BANNER));

describe("against a real Xen host", { skip: xenHostSkipReason() }, () => {
  let host: XenHost;
  let p: DynamicProvider;
  let work: string;
  let kernel: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "xen-host-test-"));
    // Xen boots while the package is packed and the provider process starts.
    [host, p, kernel] = await Promise.all([
      startXenHost(),
      startDynamicProvider({ env: { PULUMI_MIRAGE_CACHE: join(work, "cache") } }),
      testKernel("xenpv"),
    ]);
  });
  after(async () => {
    await p?.stop();
    await host?.stop();
    await rm(work, { recursive: true, force: true });
  });

  /**
   * What the SDK sends for a new domain on the Xen host, after check, with dom0's key pinned: trust
   * on first use (ssh-keyscan) is tested against a loopback sshd in xen-domain.test.ts; against a
   * freshly booted TCG dom0 its key exchange can outlast keyscan's timeout.
   */
  async function checked(name: string, bootArgs: string[]): Promise<Props> {
    const { inputs, failures } = await p.check(
      "xen-domain",
      {},
      {
        host: "127.0.0.1",
        port: host.port,
        user: host.user,
        privateKey: secret(host.clientKey),
        kernelPath: kernel,
        name,
        bootArgs,
        hostKey: host.hostKey,
      },
    );
    assert.deepEqual(failures, []);
    return inputs;
  }

  const xlList = async () => (await host.sh("xl list")).stdout;

  /**
   * A test against the host. Xen under TCG can stall for good (seen once in CI: dom0's sshd
   * stopped answering after a domain's delete, for minutes): when a test fails and dom0 no longer
   * answers, a fresh host runs it once more and the test says why. A failure on a host that still
   * answers is the test's own.
   */
  const onHost = (name: string, body: () => Promise<void>) =>
    test(name, async (t: TestContext) => {
      try {
        await body();
      } catch (error) {
        if (await host.answers()) throw error;
        t.diagnostic(`dom0 stopped answering; the test runs again on a fresh Xen host:\n${error}`);
        await host.stop();
        host = await startXenHost();
        await body();
      }
    });

  onHost(
    "xen.Domain: xl create runs it on the bridge; read sees it and its console; delete removes it",
    async () => {
      const inputs = await checked("served", ["--serve", "--hello=Hi"]);
      const { id, outs } = await p.create("xen-domain", inputs);
      assert.equal(outs.hostKey, host.hostKey, "the pinned key is the one recorded");
      assert.ok(Number(outs.domainId) > 0, `running with an id: ${outs.domainId}`);
      assert.match(await xlList(), new RegExp(`^served +${outs.domainId} +64 +1 `, "m"));
      // Its network interface is on the bridge (xl ran the vif-bridge hotplug script).
      const bridged = (await host.sh(`ls /sys/class/net/${BRIDGE}/brif`)).stdout;
      assert.match(bridged, new RegExp(`^vif${outs.domainId}\\.0$`, "m"));

      let read: { id: string; props: Props } = { id, props: outs };
      await waitFor(
        "the domain's command line on its console",
        async () => {
          read = await p.read("xen-domain", id, outs);
          return commandLines(read.props.console as string[]).length > 0;
        },
        DOMAIN_MS,
      );
      assert.equal(read.id, id);
      assert.deepEqual(read.props.console, [
        BANNER,
        "Hello, World",
        "Command line is: '--serve --hello=Hi'",
      ]);

      await p.delete("xen-domain", id, read.props);
      assert.doesNotMatch(await xlList(), /^served /m);
      assert.equal((await host.sh(`ls /sys/class/net/${BRIDGE}/brif`)).stdout, "", "vif removed");
      assert.equal((await host.sh(`ls -A ${REMOTE_DIR}`)).stdout, "", "its files are removed");
      assert.equal(
        (await host.sh(`ls -A /var/log/xen/console`)).stdout,
        "",
        "its console log is removed",
      );
    },
  );

  onHost("xen.Domain: a unikernel that exited reads as gone; delete still cleans up", async () => {
    const inputs = await checked("hello", ["--hello=Hi"]);
    const { id, outs } = await p.create("xen-domain", inputs);
    await waitFor(
      "the finished domain to read as gone",
      async () => (await p.read("xen-domain", id, outs)).id === "",
      DOMAIN_MS,
    );
    const console = (await host.sh(`cat ${consoleLogPath("hello")}`)).stdout;
    assert.match(console, /^Command line is: '--hello=Hi'$/m);
    await p.delete("xen-domain", id, outs);
    assert.equal((await host.sh(`ls -A ${REMOTE_DIR}`)).stdout, "");
    assert.equal((await host.sh(`ls -A /var/log/xen/console`)).stdout, "");
    assert.match(await xlList(), /^Name .*\nDomain-0 .*\n$/, "only dom0 is left");
  });

  /** A xen disk image of the test kernel with `bootArgs`, and its boot files. */
  async function xenImage(name: string, bootArgs: string[]) {
    const dir = join(work, name);
    await mkdir(dir);
    const { disk } = await buildImage({ kernel, outDir: dir, format: "raw", bootArgs });
    return { disk: disk.path, dir, ...(await imageBootFiles(disk.path, dir)) };
  }

  onHost("a xen disk image boots through PVH-GRUB with its boot arguments, exactly", async () => {
    const image = await xenImage("pvh-grub", ["--hello=Hi", "--x=1"]);
    // PVH-GRUB with the image's own grub.cfg and kernel in its memdisk.
    const grub = join(image.dir, "grub.pvh");
    await run("grub-mkstandalone", [
      ...["-O", "i386-xen_pvh", "-o", grub],
      `boot/grub/grub.cfg=${image.cfg}`,
      `boot/unikernel.bin=${image.kernel}`,
    ]);
    await host.upload(grub, `${TEST_DIR}/grub.pvh`);
    const lines = await runToEnd(
      host,
      "pvhgrub",
      `name = 'pvhgrub'\ntype = 'pvh'\nkernel = '${TEST_DIR}/grub.pvh'\nmemory = 64\n`,
    );
    assert.ok(ran(lines), `the kernel ran:\n${lines.join("\n")}`);
    assert.deepEqual(commandLines(lines), ["Command line is: '--hello=Hi --x=1'"]);
  });

  onHost(
    "a xen disk image boots as a Xen HVM guest (SeaBIOS, GRUB, multiboot) to its exact command line",
    async () => {
      const image = await xenImage("hvm", ["--hello=Hi"]);
      // The image's data sits at its start: its first 16 MiB boot like the whole disk.
      const head = join(image.dir, "head.raw");
      await run("sh", ["-c", 'head -c 16M "$1" > "$2"', "sh", image.disk, head]);
      await host.upload(head, `${TEST_DIR}/hvm.raw`);
      const lines = await runToEnd(
        host,
        "hvm",
        [
          "name = 'hvm'",
          "type = 'hvm'",
          "memory = 64",
          "device_model_version = 'qemu-xen'",
          "device_model_override = '/usr/libexec/xen-qemu-system-i386'",
          `disk = ['format=raw, vdev=hda, backendtype=qdisk, target=${TEST_DIR}/hvm.raw']`,
          "vga = 'none'",
          "nographic = 1",
          "vnc = 0",
          "",
        ].join("\n"),
      );
      assert.ok(ran(lines), `the kernel ran:\n${lines.join("\n")}`);
      assert.deepEqual(commandLines(lines), ["Command line is: '--hello=Hi'"], lines.join("\n"));
    },
  );

  onHost("nothing is left in dom0", async () => {
    await host.sh(`rm -rf ${TEST_DIR}`);
    assert.match(await xlList(), /^Name .*\nDomain-0 .*\n$/);
    assert.equal(
      (await host.sh(`ls -A ${REMOTE_DIR} /var/log/xen/console`)).stdout.trim(),
      `${REMOTE_DIR}:\n\n/var/log/xen/console:`,
    );
  });
});
