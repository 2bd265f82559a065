// `pulumi-mirage doctor`: what it finds must agree with the machine, and its verdict must follow
// what a program needs to build, image and boot a unikernel here. PATH is what decides which
// tools exist, so the tests vary it.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  configuredKernel,
  defaultProgramCanRun,
  diagnose,
  type Finding,
  formatFindings,
} from "../provider/cli/doctor";
import { findExecutable } from "../provider/core/exec";
import { chooseAccel } from "../provider/local/accel";
import { kvmUsable } from "../provider/local/qemu";
import { testKernel } from "./support/kernels";

const NAMES = [
  "Node.js",
  "Pulumi CLI",
  "mirage",
  "opam",
  "QEMU",
  "KVM for QEMU",
  "KVM for Solo5 hvt",
  "syslinux",
  "mtools",
  "dosfstools",
  "sfdisk",
  "GRUB",
  "GNU tar",
  "solo5-hvt",
  "solo5-spt",
  "opam env",
  "dune",
  "ocamlfind",
  "solo5-elftool",
  "ocaml-solo5",
];

/** Whether the shell finds `tool` on PATH: a probe independent of the doctor's own lookup. */
function shellFinds(tool: string, path = process.env.PATH): boolean {
  return spawnSync("/bin/sh", ["-c", `command -v ${tool}`], { env: { PATH: path } }).status === 0;
}

async function diagnoseWithPath(
  path: string,
  options: { kernel?: string; switchPrefix?: string } = {},
): Promise<Finding[]> {
  const saved = { PATH: process.env.PATH, OPAM_SWITCH_PREFIX: process.env.OPAM_SWITCH_PREFIX };
  process.env.PATH = path;
  if (options.switchPrefix) process.env.OPAM_SWITCH_PREFIX = options.switchPrefix;
  else delete process.env.OPAM_SWITCH_PREFIX;
  try {
    return await diagnose({ kernel: options.kernel });
  } finally {
    for (const [key, value] of Object.entries(saved))
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
  }
}

const SWITCH_TOOLS = ["mirage", "dune", "ocamlfind", "solo5-elftool"];

/**
 * An opam switch as opam lays it out at `prefix`: bin/ with mirage and the build's tools (each
 * printing a version line, all the doctor reads) and .opam-switch/switch-state.
 */
async function fakeSwitch(prefix: string): Promise<string> {
  await mkdir(join(prefix, "bin"), { recursive: true });
  await mkdir(join(prefix, ".opam-switch"));
  for (const [tool, version] of [
    ["mirage", "v4.11.1"],
    ["dune", "3.17.0"],
    ["ocamlfind", "1.9.6"],
    ["solo5-elftool", "usage"],
  ]) {
    await writeFile(join(prefix, "bin", tool), `#!/bin/sh\necho ${version}\n`);
    await chmod(join(prefix, "bin", tool), 0o755);
  }
  await writeFile(
    join(prefix, ".opam-switch", "switch-state"),
    'opam-version: "2.0"\ninstalled: [\n  "mirage.4.11.1"\n  "ocaml-solo5.1.1.0"\n  "solo5.0.12.1"\n]\n',
  );
  return prefix;
}

/** Runs `pulumi-mirage doctor ARGS` with only `path` on PATH, in `cwd`. */
function doctorCli(path: string, args: string[] = [], cwd?: string, switchPrefix?: string) {
  return spawnSync(
    process.execPath,
    [join(__dirname, "..", "provider", "cli", "main.js"), "doctor", ...args],
    {
      env: { ...process.env, PATH: path, OPAM_SWITCH_PREFIX: switchPrefix },
      encoding: "utf8",
      cwd,
    },
  );
}

const byName = (findings: Finding[], name: string) => {
  const finding = findings.find((f) => f.name === name);
  assert.ok(finding, `no finding for ${name}`);
  return finding;
};

describe("doctor", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "doctor-test-"));
    // The KVM probe's answer goes here, never to the user's cache.
    process.env.PULUMI_MIRAGE_CACHE = join(dir, "cache");
  });
  after(async () => {
    delete process.env.PULUMI_MIRAGE_CACHE;
    await rm(dir, { recursive: true, force: true });
  });

  test("reports KVM for QEMU as the probe found it, and KVM for hvt as /dev/kvm opens", async () => {
    const findings = await diagnose();
    const qemu = findExecutable("qemu-system-x86_64");
    const forQemu = byName(findings, "KVM for QEMU");
    if (qemu) {
      const choice = await chooseAccel({ mode: "auto", qemu });
      assert.deepEqual(
        [forQemu.found, forQemu.detail],
        [choice.accel === "kvm", `auto uses ${choice.accel}: ${choice.reason}`],
      );
    } else {
      assert.equal(forQemu.found, false);
    }
    assert.equal(byName(findings, "KVM for Solo5 hvt").found, kvmUsable());
    assert.equal(forQemu.required, false);
  });

  test("on this machine: lists every prerequisite, as the shell finds them, with versions", async () => {
    const findings = await diagnose();
    assert.deepEqual(
      findings.map((f) => f.name),
      NAMES,
    );
    const tools: Record<string, string> = {
      "Pulumi CLI": "pulumi",
      mirage: "mirage",
      opam: "opam",
      QEMU: "qemu-system-x86_64",
      mtools: "mcopy",
      dosfstools: "mkfs.fat",
      sfdisk: "sfdisk",
      "solo5-hvt": "solo5-hvt",
      "solo5-spt": "solo5-spt",
    };
    for (const [name, tool] of Object.entries(tools)) {
      assert.equal(byName(findings, name).found, shellFinds(tool), name);
    }
    if (shellFinds("qemu-system-x86_64")) {
      const version = execFileSync("qemu-system-x86_64", ["--version"], { encoding: "utf8" });
      assert.equal(byName(findings, "QEMU").detail, version.split("\n")[0]);
    }
    assert.equal(byName(findings, "Node.js").detail, process.version);
    const report = formatFindings(findings);
    for (const finding of findings.filter((f) => !f.found)) assert.ok(report.includes(finding.fix));
    assert.equal(
      report.includes("install what\nis MISSING above"),
      findings.some((f) => f.required && !f.found),
    );
  });

  test("with nothing on PATH: every tool is missing, with how to install it", async () => {
    const empty = join(dir, "empty");
    await mkdir(empty);
    const findings = await diagnoseWithPath(empty);
    for (const name of ["Pulumi CLI", "mirage", "opam", "QEMU", "mtools", "dosfstools", "sfdisk"]) {
      const finding = byName(findings, name);
      assert.equal(finding.found, false, name);
      assert.equal(finding.required, true, name);
    }
    assert.match(byName(findings, "QEMU").fix, /apt-get install qemu-system-x86/);
    assert.equal(defaultProgramCanRun(findings), false);
    assert.match(formatFindings(findings), /MISSING +QEMU +qemu-system-x86_64 is not on PATH/);
  });

  test("a program can run once the required tools are on PATH, optional ones or not", async (t) => {
    const needed = ["qemu-system-x86_64", "syslinux", "mcopy", "mkfs.fat", "sfdisk"];
    const systemPath = `${process.env.PATH}:/usr/sbin:/sbin`;
    if (!needed.every((tool) => shellFinds(tool, systemPath))) {
      t.skip("QEMU, syslinux, mtools, dosfstools or sfdisk is not installed here");
      return;
    }
    const bin = join(dir, "bin");
    await mkdir(bin);
    for (const tool of needed) {
      const real = execFileSync("/bin/sh", ["-c", `command -v ${tool}`], {
        env: { PATH: systemPath },
        encoding: "utf8",
      }).trim();
      await symlink(real, join(bin, tool));
    }
    // The Pulumi CLI, mirage and opam may not be installed here: executables that only print a
    // version line stand in for them, as presence and version are all the doctor looks at.
    for (const [tool, version] of [
      ["pulumi", "v3.200.0"],
      ["opam", "2.3.0"],
    ]) {
      await writeFile(join(bin, tool), `#!/bin/sh\necho ${version}\n`);
      await chmod(join(bin, tool), 0o755);
    }
    // mirage and the tools of its opam switch, with the switch's environment loaded.
    const prefix = await fakeSwitch(join(dir, "switch-ok"));
    for (const tool of SWITCH_TOOLS) await symlink(join(prefix, "bin", tool), join(bin, tool));
    const findings = await diagnoseWithPath(bin, { switchPrefix: prefix });
    assert.equal(byName(findings, "mirage").detail, "v4.11.1");
    assert.equal(byName(findings, "ocaml-solo5").detail, `ocaml-solo5 1.1.0 in ${prefix}`);
    assert.equal(byName(findings, "solo5-hvt").found, false);
    assert.equal(defaultProgramCanRun(findings), true, formatFindings(findings));
    assert.match(
      formatFindings(findings),
      /Everything required is here: a program can build a unikernel,/,
    );
    const cli = doctorCli(bin, [], undefined, prefix);
    assert.equal(cli.status, 0, cli.stdout);
    assert.match(cli.stdout, /^ok +QEMU +QEMU emulator version/m);
  });

  test("mirage found without its switch's environment: says `eval $(opam env)`", async () => {
    const prefix = await fakeSwitch(join(dir, "switch-no-env"));
    // Only mirage itself on PATH (a link to the switch's), OPAM_SWITCH_PREFIX unset.
    const bin = join(dir, "bin-mirage-only");
    await mkdir(bin);
    await symlink(join(prefix, "bin", "mirage"), join(bin, "mirage"));
    const findings = await diagnoseWithPath(bin);
    const env = byName(findings, "opam env");
    assert.equal(env.found, false);
    assert.match(env.detail, /OPAM_SWITCH_PREFIX is unset\): run `eval \$\(opam env\)`/);
    for (const tool of ["dune", "ocamlfind", "solo5-elftool"]) {
      const finding = byName(findings, tool);
      assert.equal(finding.found, false, tool);
      assert.match(finding.detail, /in mirage's opam switch .* run `eval \$\(opam env/);
    }
    assert.equal(byName(findings, "ocaml-solo5").found, true, "installed in the switch");
    assert.match(formatFindings(findings), /MISSING +opam env/);

    // The switch's environment loaded: its bin/ on PATH, OPAM_SWITCH_PREFIX set.
    const loaded = await diagnoseWithPath(join(prefix, "bin"), { switchPrefix: prefix });
    for (const name of ["opam env", "dune", "ocamlfind", "solo5-elftool", "ocaml-solo5"])
      assert.equal(byName(loaded, name).found, true, name);
    assert.equal(byName(loaded, "dune").detail, "3.17.0");
  });

  test("a switch without ocaml-solo5 is reported", async () => {
    const prefix = await fakeSwitch(join(dir, "switch-no-solo5"));
    await writeFile(
      join(prefix, ".opam-switch", "switch-state"),
      'opam-version: "2.0"\ninstalled: [\n  "mirage.4.11.1"\n]\n',
    );
    const finding = byName(
      await diagnoseWithPath(join(prefix, "bin"), { switchPrefix: prefix }),
      "ocaml-solo5",
    );
    assert.equal(finding.found, false);
    assert.match(finding.fix, /opam install ocaml-solo5/);
  });

  test("with a prebuilt virtio kernel, mirage and opam are not required", async () => {
    const kernel = await testKernel("virtio");
    const empty = join(dir, "empty-kernel");
    await mkdir(empty);
    const findings = await diagnoseWithPath(empty, { kernel });
    for (const name of ["mirage", "opam"]) assert.equal(byName(findings, name).required, false);
    assert.equal(byName(findings, "QEMU").required, true);
    assert.deepEqual(byName(findings, "prebuilt kernel").found, true);
    const hvt = await diagnoseWithPath(empty, { kernel: await testKernel("hvt") });
    assert.match(byName(hvt, "prebuilt kernel").detail, /is an hvt kernel, not virtio/);
    assert.equal(byName(hvt, "prebuilt kernel").found, false);
    assert.equal(
      byName(hvt, "prebuilt kernel").fix,
      "build the unikernel with `mirage configure -t virtio && make depend && make build`, and give the dist/NAME.virtio it makes",
    );
  });

  test("finds the kernel `pulumi config set kernel` wrote in the stack config", async () => {
    const project = join(dir, "project");
    await mkdir(project);
    assert.equal(await configuredKernel(project), undefined);
    await writeFile(join(project, "Pulumi.yaml"), "name: pulumi-mirage-local\nruntime: nodejs\n");
    await writeFile(
      join(project, "Pulumi.dev.yaml"),
      "config:\n  pulumi-mirage-local:kernel: kernels/hello.virtio\n",
    );
    assert.equal(await configuredKernel(project), join(project, "kernels", "hello.virtio"));
    // The CLI reads it too: the missing file is reported, and mirage is no longer required.
    const cli = doctorCli(join(dir, "empty-cli-kernel"), [], project);
    assert.match(cli.stdout, /MISSING +prebuilt kernel +.*kernels\/hello\.virtio/);
    assert.match(cli.stdout, /^missing +mirage /m);
    const given = doctorCli(join(dir, "empty-cli-kernel"), [
      "--kernel",
      await testKernel("virtio"),
    ]);
    assert.match(given.stdout, /^ok +prebuilt kernel +.*\(virtio\)$/m);
  });

  test("the CLI exits 1 with what is missing when a program cannot run here", async () => {
    const empty = join(dir, "empty-cli");
    await mkdir(empty);
    const cli = doctorCli(empty);
    assert.equal(cli.status, 1);
    assert.match(cli.stdout, /^MISSING +Pulumi CLI +pulumi is not on PATH/m);
    // It speaks of the user's program, says what MISSING and missing mean, and names no
    // example of this repository (examples/ is not in the package).
    assert.match(
      cli.stdout,
      /^ok: found\. MISSING: required: a program cannot build a unikernel, image it and\nboot it here without it\. missing: optional: needed only for what its line says\.$/m,
    );
    assert.match(
      cli.stdout,
      /^A program cannot build a unikernel, image it and boot it here yet: install what\nis MISSING above\.$/m,
    );
    assert.doesNotMatch(cli.stdout, /examples\//);
  });
});
