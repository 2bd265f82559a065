// Kernel → disk image → boot: images of the test kernels really boot in QEMU (from disk.raw and
// from the extracted GCE archive) and print exactly the arguments given; builds are deterministic,
// sparse and atomic; every refusal says why.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { copyFile, mkdir, open, readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { promisify } from "node:util";
import { blockMap, mapDigest } from "../provider/core/block-map";
import { sha256File } from "../provider/core/hash";
import {
  buildImage,
  checkBootArgs,
  ImageError,
  type ImageFormat,
  MAX_BOOT_ARGS_BYTES,
} from "../provider/image";
import { diskSizeFor, fat32Capacity } from "../provider/image/disk";
import { writeGceArchive } from "../provider/image/gce-archive";
import { CLI, imageArgv } from "./support/cli";
import { type TestKernelName, testKernel, testUnixProgram } from "./support/kernels";
import { Started } from "./support/process";
import { Scratch } from "./support/scratch";

const exec = promisify(execFile);
const GIB = 1024 ** 3;
/** Arguments a MirageOS unikernel typically gets, and characters GRUB's and syslinux's config
 * languages would interpret if they were not passed verbatim. */
const ARGS = ["--ipv4=10.0.0.2/24", "--logs=*:debug", "a=b,c", "x=$y;#{}[]?|&<>%@~^`!()"];

const root = Scratch.forThisFile("image-test-");
const started = Started.forThisFile();

let dirs = 0;
async function freshDir(): Promise<string> {
  const dir = join(root.path, `d${dirs++}`);
  await mkdir(dir);
  return dir;
}

/** Boots `disk` in QEMU (IDE disk, COM1 to a file) and returns what the kernel printed. */
async function boot(disk: string): Promise<string[]> {
  const log = `${disk}.console`;
  await exec(
    "qemu-system-x86_64",
    [
      "-display",
      "none",
      "-m",
      "128",
      "-drive",
      `file=${disk},format=raw,if=ide`,
      "-serial",
      `file:${log}`,
      "-device",
      "isa-debug-exit,iobase=0x501",
      "-no-reboot",
    ],
    { timeout: 60_000 },
  ).catch((error: { code?: unknown; killed?: boolean }) => {
    // The kernel powers off through isa-debug-exit, which makes QEMU exit with status 1.
    if (error.code !== 1 || error.killed) throw error;
  });
  return (await readFile(log, "utf8")).split(/\r?\n/);
}

function assertBooted(lines: string[], target: string, args: string[]): void {
  assert.ok(
    lines.some((l) => l.endsWith(`Solo5-like test unikernel (pulumi-mirage) target=${target}`)),
    `no banner in:\n${lines.join("\n")}`,
  );
  assert.ok(lines.includes("Hello, World"), lines.join("\n"));
  // Exactly the arguments given: no placeholder word, none dropped.
  assert.ok(lines.includes(`Command line is: '${args.join(" ")}'`), lines.join("\n"));
  // The bootloader ran its whole configuration (GRUB prints `error: ...` for a command it lacks).
  assert.ok(!lines.some((l) => l.includes("error:")), lines.join("\n"));
}

/** Bytes the file really takes on disk. */
async function allocated(path: string): Promise<number> {
  return (await stat(path)).blocks * 512;
}

async function listArchive(archive: string): Promise<string[]> {
  const { stdout } = await exec("tar", ["-tvzf", archive]);
  return stdout.trim().split("\n");
}

/** Extracts the archive with GNU tar, keeping holes, into a fresh directory. */
async function extract(archive: string): Promise<string> {
  const dir = await freshDir();
  await exec("tar", ["-xSzf", archive, "-C", dir]);
  return join(dir, "disk.raw");
}

describe("image boots", () => {
  const cases: [TestKernelName, string][] = [
    ["virtio", "virtio"],
    ["virtio-net", "virtio"],
    ["xen", "xen"],
    ["xen-net", "xen"],
  ];
  for (const [name, target] of cases) {
    test(`${name}: disk.raw and the extracted image.tar.gz boot and get the exact arguments`, async () => {
      const outDir = await freshDir();
      const result = await buildImage({
        kernel: await testKernel(name),
        outDir,
        format: "gce",
        bootArgs: ARGS,
      });
      assert.equal(result.target, target);
      assert.equal(result.disk.path, join(outDir, "disk.raw"));
      assert.equal(result.disk.size, GIB);
      assert.equal((await stat(result.disk.path)).size, GIB);
      assert.equal(mapDigest(await blockMap(result.disk.path)), result.disk.mapDigest);
      assert.ok(result.archive);
      assert.equal(result.archive.path, join(outDir, "image.tar.gz"));
      assert.equal(result.archive.size, (await stat(result.archive.path)).size);
      assert.equal(await sha256File(result.archive.path), result.archive.sha256);
      assert.deepEqual(await readdir(outDir), ["disk.raw", "image.tar.gz"]);

      assertBooted(await boot(result.disk.path), target, ARGS);

      const extracted = await extract(result.archive.path);
      assert.equal(await sha256File(extracted), await sha256File(result.disk.path));
      assert.ok((await allocated(extracted)) < 16 * 1024 ** 2, "the extracted disk is not sparse");
      assertBooted(await boot(extracted), target, ARGS);
    });
  }

  for (const name of ["virtio", "xen"] as const) {
    test(`${name}: raw format writes only disk.raw; no arguments give an empty command line`, async () => {
      const outDir = await freshDir();
      const result = await buildImage({
        kernel: await testKernel(name),
        outDir,
        format: "raw",
        bootArgs: [],
      });
      assert.equal(result.archive, undefined);
      assert.deepEqual(await readdir(outDir), ["disk.raw"]);
      assertBooted(await boot(result.disk.path), name, []);
    });
  }

  test(`the longest accepted command line (${MAX_BOOT_ARGS_BYTES} bytes) boots whole`, async () => {
    const long = ["--a=", "x".repeat(MAX_BOOT_ARGS_BYTES - 5 - 4), "--b"];
    assert.equal(Buffer.byteLength(long.join(" ")), MAX_BOOT_ARGS_BYTES);
    for (const name of ["virtio", "xen"] as const) {
      const result = await buildImage({
        kernel: await testKernel(name),
        outDir: await freshDir(),
        format: "raw",
        bootArgs: long,
      });
      assertBooted(await boot(result.disk.path), name, long);
    }
  });
});

describe("image files", () => {
  const built: Record<string, { disk: string; archive: string }> = {};
  for (const name of ["virtio", "xen"] as const) {
    test(`${name}: builds give identical bytes, also in another timezone, umask and locale`, async () => {
      // The command checks the platform: a GCE image needs a network device, xen goes to aws.
      const kernel = await testKernel(`${name}-net`);
      const format = name === "virtio" ? "gce" : "aws";
      const first = await buildImage({
        kernel,
        outDir: await freshDir(),
        format: "gce",
        bootArgs: ARGS,
      });
      const second = await buildImage({
        kernel,
        outDir: await freshDir(),
        format: "gce",
        bootArgs: ARGS,
      });
      assert.equal(second.disk.mapDigest, first.disk.mapDigest);
      assert.equal(await sha256File(second.disk.path), await sha256File(first.disk.path));
      assert.ok(first.archive && second.archive);
      assert.equal(second.archive.sha256, first.archive.sha256);
      const { stdout } = await exec(
        "sh",
        [
          "-c",
          'umask 077 && exec "$@"',
          "sh",
          "node",
          ...imageArgv(kernel, await freshDir(), "--format", format, "--", ...ARGS),
        ],
        { env: { ...process.env, TZ: "Pacific/Kiritimati", LC_ALL: "C.UTF-8", LANG: "C.UTF-8" } },
      );
      const third = JSON.parse(stdout);
      assert.equal(third.disk.mapDigest, first.disk.mapDigest);
      assert.equal(third.archive?.sha256 ?? first.archive.sha256, first.archive.sha256);
      built[name] = { disk: first.disk.path, archive: first.archive.path };
    });

    test(`${name}: the bootloader configuration on the disk passes exactly the arguments`, async () => {
      const file = name === "xen" ? "::/boot/grub/grub.cfg" : "::/syslinux.cfg";
      const { stdout } = await exec("mtype", ["-i", `${built[name].disk}@@1048576`, file], {
        env: { ...process.env, MTOOLS_SKIP_CHECK: "1" },
      });
      const quoted = ARGS.map((arg) => `'${arg}'`).join(" ");
      const expected =
        name === "xen"
          ? [
              "serial --unit=0 --speed=115200",
              "terminal_input serial",
              "terminal_output serial",
              // Both legacy PICs masked before the kernel runs: a Xen HVM guest's BIOS leaves
              // the timer on the double-fault vector, which Solo5 xen does not mask.
              "outb 0x21 0xff",
              "outb 0xa1 0xff",
              // GRUB drops the file name itself and Solo5 xen keeps the rest: no placeholder.
              `multiboot /boot/unikernel.bin ${quoted}`,
              "boot",
            ]
          : [
              "SERIAL 0 115200",
              "DEFAULT unikernel",
              "LABEL unikernel",
              "  KERNEL mboot.c32",
              // mboot.c32 passes the file name as the first word, which Solo5 virtio drops.
              `  APPEND -aout unikernel.bin ${ARGS.join(" ")}`,
            ];
      assert.deepEqual(stdout.trimEnd().split("\n"), expected);
    });

    test(`${name}: every file on the disk has the fixed time, so the clock cannot change it`, async () => {
      const { stdout } = await exec(
        "mdir",
        ["-a", "-s", "-i", `${built[name].disk}@@1048576`, "::/"],
        {
          env: { ...process.env, MTOOLS_SKIP_CHECK: "1" },
        },
      );
      const entries = stdout.split("\n").filter((l) => /\d{4}-\d\d-\d\d/.test(l));
      assert.ok(entries.length >= 2, stdout);
      for (const line of entries) assert.match(line, /1980-01-01 +0:00/, line);
    });

    test(`${name}: disk.raw is 1 GiB, sparse, with one bootable FAT32 partition from 1 MiB`, async () => {
      const { disk } = built[name];
      assert.equal((await stat(disk)).size, GIB);
      assert.ok((await allocated(disk)) < 16 * 1024 ** 2, "disk.raw is not sparse");
      const { stdout } = await exec("sfdisk", ["--json", disk]);
      const table = JSON.parse(stdout).partitiontable;
      assert.equal(table.label, "dos");
      assert.equal(table.id, "0x4152494d");
      assert.deepEqual(
        table.partitions.map((p: Record<string, unknown>) => [p.start, p.size, p.type, p.bootable]),
        [[2048, GIB / 512 - 2048, "c", true]],
      );
    });

    test(`${name}: the sizing rule agrees with the filesystem mkfs.fat made`, async () => {
      const boot = Buffer.alloc(512);
      const file = await open(built[name].disk, "r");
      await file.read(boot, 0, 512, 1024 ** 2);
      await file.close();
      assert.equal(boot.readUInt32LE(28), 2048, "hidden sectors: the partition's start");
      const clusters = Math.floor((boot.readUInt32LE(32) - 32 - 2 * boot.readUInt32LE(36)) / 8);
      const capacity = fat32Capacity(GIB - 1024 ** 2);
      // Every cluster but the root directory's is free for files.
      assert.equal(capacity, (clusters - 1) * 4096);
      assert.equal(diskSizeFor(capacity), GIB);
      assert.equal(diskSizeFor(capacity + 1), 2 * GIB);
    });

    test(`${name}: image.tar.gz holds exactly one member, disk.raw, as a sparse file`, async () => {
      const lines = await listArchive(built[name].archive);
      assert.equal(lines.length, 1, lines.join("\n"));
      assert.match(lines[0], /^-rw-r--r-- 0\/0 +1073741824 1970-01-01 00:00 disk\.raw$/);
      const { stdout } = await exec("sh", [
        "-c",
        `gzip -dc '${built[name].archive}' | head -c 512 | od -An -c -j 156 -N 1`,
      ]);
      assert.equal(stdout.trim(), "S", "the member is not a GNU sparse entry");
      const header = Buffer.alloc(10);
      const file = await open(built[name].archive, "r");
      await file.read(header, 0, 10, 0);
      await file.close();
      // gzip header: deflate, no flags (no file name), mtime 0, Unix.
      assert.deepEqual([...header], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3]);
    });
  }
});

describe("GCE archive writer", () => {
  test("a sparse map longer than the header holds (extension blocks) extracts identically", async () => {
    const dir = await freshDir();
    const path = join(dir, "disk.raw");
    const size = 8 * 1024 ** 2;
    const file = await open(path, "w");
    await file.truncate(size);
    // 60 scattered data blocks: 4 map entries fit the header, the rest need 3 extension blocks.
    for (let i = 0; i < 60; i++)
      await file.write(Buffer.from(`block ${i}`), 0, undefined, i * 131072 + (i % 7) * 4096 + 100);
    await file.close();
    const map = await blockMap(path);
    assert.equal(map.regions.length, 60);
    const archive = join(dir, "image.tar.gz");
    const written = await writeGceArchive(path, map.regions, size, archive);
    assert.deepEqual(written, {
      sha256: await sha256File(archive),
      size: (await stat(archive)).size,
    });
    const extracted = await extract(archive);
    assert.equal(await sha256File(extracted), await sha256File(path));
    assert.ok((await allocated(extracted)) <= 60 * 4096 + 64 * 1024);
  });

  test("a disk over 8 GiB gets its sizes in GNU base-256 and extracts to its full size", async () => {
    const dir = await freshDir();
    const path = join(dir, "disk.raw");
    const size = 9 * GIB;
    const marker = Buffer.from("the end of a big disk");
    const file = await open(path, "w");
    await file.truncate(size);
    await file.write(Buffer.from("start"), 0, undefined, 0);
    await file.write(marker, 0, undefined, size - 4096);
    await file.close();
    const regions = [
      { offset: 0, length: 4096 },
      { offset: size - 4096, length: 4096 },
    ];
    const archive = join(dir, "image.tar.gz");
    await writeGceArchive(path, regions, size, archive);
    const lines = await listArchive(archive);
    assert.match(lines[0], new RegExp(` ${size} 1970-01-01 00:00 disk\\.raw$`));
    const extracted = await extract(archive);
    assert.equal((await stat(extracted)).size, size);
    const tail = Buffer.alloc(marker.length);
    const copy = await open(extracted, "r");
    await copy.read(tail, 0, tail.length, size - 4096);
    await copy.close();
    assert.deepEqual(tail, marker);
    assert.ok((await allocated(extracted)) < 1024 ** 2);
  });
});

describe("image refuses", () => {
  /** Runs a build expected to be refused; checks the message and that `dir` was left clean. */
  async function refused(
    options: { kernel: string; bootArgs?: string[]; format?: ImageFormat },
    message: RegExp,
  ): Promise<void> {
    const outDir = await freshDir();
    await assert.rejects(
      buildImage({ format: "gce", bootArgs: [], ...options, outDir }),
      (error: Error) => {
        assert.ok(error instanceof ImageError, error.stack);
        assert.match(error.message, message);
        return true;
      },
    );
    assert.deepEqual(await readdir(outDir), []);
  }

  for (const name of ["hvt", "spt", "muen", "genode"] as const) {
    test(`a ${name} kernel, naming virtio and xen instead`, async () => {
      await refused(
        { kernel: await testKernel(name) },
        new RegExp(
          `Solo5 ${name} kernel: an? ${name} kernel cannot boot from a disk image.*; for a disk image, .*-t virtio.*-t xen`,
        ),
      );
    });
  }

  test("a unix program, naming the alternative", async () => {
    await refused({ kernel: await testUnixProgram() }, /not a Solo5 unikernel.*-t virtio.*-t xen/);
  });

  test("a virtio kernel without a Multiboot1 header", async () => {
    await refused({ kernel: await testKernel("virtio-nomb") }, /without a Multiboot1 header/);
  });

  test("a kernel above the 2 GiB a kernel may be (FAT32 holds less than 4), before writing anything", async () => {
    const dir = await freshDir();
    const kernel = join(dir, "huge.virtio");
    await copyFile(await testKernel("virtio"), kernel);
    const file = await open(kernel, "r+");
    await file.truncate(4 * GIB); // sparse: a big kernel's headers, without its bytes
    await file.close();
    await refused(
      { kernel },
      /huge\.virtio is 4294967296 bytes, more than the 2 GiB taken for a kernel/,
    );
  });

  const badArgs: [string, string[], RegExp][] = [
    [
      "a space",
      ["--name=a b"],
      /boot argument 0 is refused at character 9 of 10: the bootloaders split the command line at whitespace/,
    ],
    [
      "a tab",
      ["ok", "a\tb"],
      /boot argument 1 is refused at character 2 of 3: the bootloaders split/,
    ],
    ["a newline", ["a\nDEFAULT x"], /at character 2 of 11: a line break ends/],
    ["a carriage return", ["a\rb"], /at character 2 of 3: a line break ends/],
    ["a control character", ["a\u0001"], /at character 2 of 2: control characters/],
    ["DEL", ["a\u007f"], /at character 2 of 2: control characters/],
    ["a single quote", ["it's"], /at character 3 of 4: GRUB re-escapes quotes/],
    ["a double quote", ['a="b"'], /at character 3 of 5: GRUB re-escapes quotes/],
    ["a backslash", ["a\\b"], /at character 2 of 3: GRUB re-escapes quotes and backslashes/],
    ["a non-ASCII character", ["name=café"], /at character 9 of 9: only printable ASCII/],
    ["an empty argument", ["a", ""], /boot argument 1 is empty/],
    [
      "---, mboot.c32's module separator",
      ["---"],
      /boot argument 0 is syslinux mboot.c32's module separator .* boot module/,
    ],
    [
      "a command line over the limit",
      ["x".repeat(MAX_BOOT_ARGS_BYTES + 1)],
      new RegExp(`${MAX_BOOT_ARGS_BYTES + 1} bytes long .* over the ${MAX_BOOT_ARGS_BYTES}`),
    ],
  ];
  for (const [what, args, message] of badArgs) {
    test(`a boot argument with ${what}`, async () => {
      assert.throws(() => checkBootArgs(args), message);
      // Refused for both bootloaders, before anything is written.
      for (const name of ["virtio", "xen"] as const)
        await refused({ kernel: await testKernel(name), bootArgs: args }, message);
    });
  }

  test("refusals say how to pass such a value instead", () => {
    assert.throws(
      () => checkBootArgs(["a b"]),
      /printable ASCII without spaces, quotes or backslashes/,
    );
  });

  test("refusals name the argument by position, never by value (it may be secret)", () => {
    assert.throws(
      () => checkBootArgs(["--ok", "--token=hunter2 x"]),
      (error: Error) =>
        /boot argument 1 is refused at character 16 of 17/.test(error.message) &&
        !error.message.includes("hunter2"),
    );
  });
});

describe("image is atomic", () => {
  // Each phase: the tools laying out the disk, mapping its data, writing the archive.
  for (const phase of ["laying out", "mapping", "writing the GCE archive"]) {
    test(`a build interrupted while ${phase} leaves no results, stale or new, and no scratch files`, async () => {
      const outDir = await freshDir();
      const kernel = await testKernel("xen");
      await buildImage({ kernel, outDir, format: "gce", bootArgs: [] });
      assert.deepEqual(await readdir(outDir), ["disk.raw", "image.tar.gz"]);
      const controller = new AbortController();
      await assert.rejects(
        buildImage({
          kernel,
          outDir,
          format: "gce",
          bootArgs: ["changed"],
          signal: controller.signal,
          onProgress: (line) => {
            if (line.includes(phase)) controller.abort(new Error("stop"));
          },
        }),
      );
      assert.ok(controller.signal.aborted, `no progress line mentions "${phase}"`);
      assert.deepEqual(await readdir(outDir), []);
    });
  }
});

describe("pulumi-mirage image", () => {
  test("prints one JSON line with each file's path, size and identity, and the seconds taken", async () => {
    const outDir = join(await freshDir(), "out");
    const kernel = await testKernel("virtio-net");
    const { stdout } = await exec(
      "node",
      imageArgv(kernel, outDir, "--format", "gce", "--", ...ARGS),
    );
    const lines = stdout.trimEnd().split("\n");
    assert.equal(lines.length, 1, stdout);
    const printed = JSON.parse(lines[0]);
    assert.deepEqual(Object.keys(printed), ["disk", "archive", "seconds"]);
    assert.equal(typeof printed.seconds, "number");
    for (const [key, name] of [
      ["disk", "disk.raw"],
      ["archive", "image.tar.gz"],
    ]) {
      const file = printed[key];
      assert.equal(file.path, join(outDir, name));
      assert.equal(file.size, (await stat(file.path)).size);
    }
    // The disk by its block map (hashing 1 GiB would take longer than the build), the archive by
    // its sha256.
    assert.equal(printed.disk.mapDigest, mapDigest(await blockMap(printed.disk.path)));
    assert.equal(printed.archive.sha256, await sha256File(printed.archive.path));
    assertBooted(await boot(printed.disk.path), "virtio", ARGS);
  });

  test("Ctrl-C stops the build, exits 130 and leaves DIR without results or scratch files", async () => {
    const outDir = await freshDir();
    const child = started.add(
      spawn("node", imageArgv(await testKernel("virtio-net"), outDir, "--format", "gce"), {
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
    let stderr = "";
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    // Interrupt once the build is under way: its scratch directory exists.
    while (!(await readdir(outDir)).some((name) => name.startsWith(".scratch-"))) {
      assert.equal(child.exitCode, null, `the build ended before it was interrupted:\n${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    child.kill("SIGINT");
    assert.equal(await exited, 130, stderr);
    assert.match(stderr, /interrupted by SIGINT; nothing written/);
    assert.deepEqual(await readdir(outDir), []);
  });

  test("raw is the default format; wrong usage and refusals exit non-zero with a message", async () => {
    const kernel = await testKernel("virtio");
    const outDir = await freshDir();
    const { stdout } = await exec("node", imageArgv(kernel, outDir));
    assert.deepEqual(Object.keys(JSON.parse(stdout)), ["disk", "seconds"]);

    const usage = await exec("node", [CLI, "image", kernel]).catch((e) => e);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--out DIR is missing/);

    const format = await exec("node", imageArgv(kernel, outDir, "--format", "vhd")).catch((e) => e);
    assert.equal(format.code, 2);
    assert.match(format.stderr, /--format "vhd" is not an image format: use one of raw, gce, aws/);

    const bad = await exec("node", imageArgv(kernel, outDir, "--", "a b")).catch((e) => e);
    assert.equal(bad.code, 1);
    assert.match(
      bad.stderr,
      /boot argument 0 is refused at character 2 of 3: the bootloaders split/,
    );
  });
});
