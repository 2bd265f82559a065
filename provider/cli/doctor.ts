// `pulumi-mirage doctor`: what this machine has of the tools pulumi-mirage drives, their versions,
// and how to install what is missing. "Required" means a program cannot build a unikernel from
// source, image it and boot it in QEMU here without it (the local path every program starts
// from); with a prebuilt kernel (`--kernel`, or `kernel` in the current directory's stack
// config) nothing is built, so mirage and opam are not required. Optional tools serve one target
// or cloud each, as their line says.
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { findExecutable, run } from "../core/exec";
import { inspectKernel } from "../kernel/inspect";
import { ACCEL_ENV, chooseAccel } from "../local/accel";
import { kvmUsable, QEMU } from "../local/qemu";
import { switchPrefix, switchVersions } from "../mirage/toolchain";
import { wrap } from "./usage";

export interface Finding {
  name: string;
  /** What pulumi-mirage uses it for. */
  purpose: string;
  required: boolean;
  found: boolean;
  /** The version, or what is wrong. */
  detail: string;
  /** How to install or fix it (shown when not found). */
  fix: string;
}

interface Check {
  name: string;
  purpose: string;
  required: boolean;
  /** Needed only to build from source: not required when a prebuilt kernel is configured. */
  buildsOnly?: boolean;
  fix: string;
  probe: () => Promise<{ found: boolean; detail: string }>;
}

const SYSLINUX_FILES = [
  "/usr/lib/syslinux/mbr/mbr.bin",
  "/usr/lib/syslinux/modules/bios/mboot.c32",
  "/usr/lib/syslinux/modules/bios/libcom32.c32",
];
const GRUB_MODULES = "/usr/lib/grub/i386-pc";

/** The first line a tool prints about its version (some print it on stderr), or why it failed. */
async function versionLine(tool: string, args: string[], pattern?: RegExp): Promise<string> {
  try {
    const { stdout, stderr } = await run(tool, args, { timeoutMs: 15_000 });
    const lines = `${stdout}\n${stderr}`.split("\n").map((line) => line.trim());
    return lines.find((line) => line !== "" && (!pattern || pattern.test(line))) ?? "";
  } catch (error) {
    return `installed, but \`${tool} ${args.join(" ")}\` failed: ${(error as Error).message.split("\n")[0]}`;
  }
}

/** A tool on PATH, with its version. */
function tool(
  executable: string,
  versionArgs: string[],
  pattern?: RegExp,
): () => Promise<{ found: boolean; detail: string }> {
  return async () => {
    const path = findExecutable(executable);
    if (!path) return { found: false, detail: `${executable} is not on PATH` };
    return { found: true, detail: await versionLine(path, versionArgs, pattern) };
  };
}

/**
 * A tool mirage's build runs from its opam switch (configure builds config.exe with dune; the
 * Solo5 link needs solo5-elftool): on PATH, or else whether the switch of the mirage on PATH has
 * it, which means the switch's environment is not loaded.
 */
function switchTool(
  executable: string,
  versionArgs: string[] | undefined,
): () => Promise<{ found: boolean; detail: string }> {
  return async () => {
    const path = findExecutable(executable);
    // solo5-elftool has no version option: its path says which switch it comes from.
    if (path && !versionArgs) return { found: true, detail: path };
    const probed = await tool(executable, versionArgs ?? [])();
    if (probed.found) return probed;
    const mirage = findExecutable("mirage");
    const prefix = mirage && (await switchPrefix(mirage));
    if (prefix && existsSync(join(prefix, "bin", executable)))
      return {
        found: false,
        detail: `${executable} is in mirage's opam switch (${prefix}) but not on PATH: run \`eval $(opam env --switch=${prefix} --set-switch)\``,
      };
    return probed;
  };
}

/** The opam environment (`eval $(opam env)`) of the switch the mirage on PATH belongs to. */
async function opamEnvProbe(): Promise<{ found: boolean; detail: string }> {
  const mirage = findExecutable("mirage");
  if (!mirage) return { found: false, detail: "mirage is not on PATH" };
  const prefix = await switchPrefix(mirage, {});
  const loaded = process.env.OPAM_SWITCH_PREFIX;
  if (!prefix) return { found: false, detail: `${mirage} is not in an opam switch` };
  if (loaded === prefix) return { found: true, detail: `switch ${prefix}` };
  return {
    found: false,
    detail: loaded
      ? `mirage is in the switch ${prefix}, but the environment is that of ${loaded}: run \`eval $(opam env --switch=${prefix} --set-switch)\``
      : `mirage is in the switch ${prefix}, but its environment is not loaded (OPAM_SWITCH_PREFIX is unset): run \`eval $(opam env)\``,
  };
}

/** Whether mirage's opam switch has ocaml-solo5, the OCaml cross-compiler for Solo5 targets. */
async function ocamlSolo5Probe(): Promise<{ found: boolean; detail: string }> {
  const mirage = findExecutable("mirage");
  const prefix = mirage && (await switchPrefix(mirage));
  if (!prefix) return { found: false, detail: "no opam switch holds the mirage on PATH" };
  const version = (await switchVersions(prefix).catch(() => ({}) as Record<string, string>))[
    "ocaml-solo5"
  ];
  return version
    ? { found: true, detail: `ocaml-solo5 ${version} in ${prefix}` }
    : { found: false, detail: `ocaml-solo5 is not installed in ${prefix}` };
}

function nodeVersionOk(version: string): boolean {
  const [major, minor] = version.replace(/^v/, "").split(".").map(Number);
  return major > 20 || (major === 20 && minor >= 19);
}

const CHECKS: Check[] = [
  {
    name: "Node.js",
    purpose: "runs Pulumi programs and the provider",
    required: true,
    fix: "install Node.js 20.19 or later",
    probe: async () => ({
      found: nodeVersionOk(process.version),
      detail: nodeVersionOk(process.version) ? process.version : `${process.version} is too old`,
    }),
  },
  {
    name: "Pulumi CLI",
    purpose: "runs `pulumi up`",
    required: true,
    fix: "install the Pulumi CLI (pulumi.com/docs/install) and put `pulumi` on PATH",
    probe: tool("pulumi", ["version"]),
  },
  {
    name: "mirage",
    purpose: "builds unikernels from source",
    required: true,
    fix: "`opam install mirage` (or give a prebuilt kernel: `pulumi config set kernel PATH`)",
    buildsOnly: true,
    probe: tool("mirage", ["--version"]),
  },
  {
    name: "opam",
    purpose: "installs a unikernel's dependencies (`make depend`)",
    required: true,
    fix: "`apt-get install opam`, then `opam init` (or give a prebuilt kernel: `pulumi config set kernel PATH`)",
    buildsOnly: true,
    probe: tool("opam", ["--version"]),
  },
  {
    name: "QEMU",
    purpose: "boots images locally (local.Vm, `pulumi-mirage run` and `boot`)",
    required: true,
    fix: "`apt-get install qemu-system-x86`",
    probe: tool("qemu-system-x86_64", ["--version"]),
  },
  {
    name: "KVM for QEMU",
    purpose: "runs local VMs at native speed (local.Vm, `pulumi-mirage run` and `boot`)",
    required: false,
    fix: "QEMU emulates the CPU instead (TCG, slower); for KVM, QEMU needs hardware virtualization it can use (a paravirtual KVM such as kvm-pvm is not enough) and /dev/kvm readable and writable by you (the kvm group)",
    probe: async () => {
      const qemu = findExecutable(QEMU);
      if (!qemu) return { found: false, detail: `${QEMU} is not on PATH` };
      // What `auto` decides (the probe, or a boot KVM stopped, remembered per host boot).
      const choice = await chooseAccel({ mode: "auto", qemu });
      const forced = process.env[ACCEL_ENV];
      const override = forced && forced !== "auto" ? `; ${ACCEL_ENV}=${forced} overrides it` : "";
      return {
        found: choice.accel === "kvm",
        detail: `auto uses ${choice.accel}: ${choice.reason}${override}`,
      };
    },
  },
  {
    name: "KVM for Solo5 hvt",
    purpose: "runs hvt kernels (local.Process, `pulumi-mirage run` with solo5-hvt)",
    required: false,
    fix: "use spt kernels instead (solo5-spt needs no KVM); for hvt, enable virtualization and make /dev/kvm readable and writable by you (the kvm group)",
    probe: async () =>
      kvmUsable()
        ? { found: true, detail: "/dev/kvm opens read-write" }
        : { found: false, detail: "/dev/kvm is missing or does not open read-write" },
  },
  {
    name: "syslinux",
    purpose: "makes virtio kernels' BIOS boot disks",
    required: true,
    fix: "`apt-get install syslinux syslinux-common`",
    probe: async () => {
      const missing = SYSLINUX_FILES.filter((file) => !existsSync(file));
      const probed = await tool("syslinux", ["--version"], /syslinux/i)();
      if (!probed.found) return probed;
      if (missing.length > 0) return { found: false, detail: `missing ${missing.join(", ")}` };
      return probed;
    },
  },
  {
    name: "mtools",
    purpose: "copies files into disk images without mounting them",
    required: true,
    fix: "`apt-get install mtools`",
    probe: tool("mcopy", ["--version"]),
  },
  {
    name: "dosfstools",
    purpose: "formats the images' FAT partition",
    required: true,
    fix: "`apt-get install dosfstools` (mkfs.fat is in /usr/sbin: have it on PATH)",
    probe: tool("mkfs.fat", ["--help"], /mkfs\.fat \d/),
  },
  {
    name: "sfdisk",
    purpose: "partitions disk images",
    required: true,
    fix: "`apt-get install fdisk` (sfdisk is in /usr/sbin: have it on PATH)",
    probe: tool("sfdisk", ["--version"]),
  },
  {
    name: "GRUB",
    purpose: "makes xen kernels' boot disks",
    required: false,
    fix: "`apt-get install grub-pc-bin` (needed for xen images only)",
    probe: async () => {
      const probed = await tool("grub-mkimage", ["--version"])();
      if (probed.found && !existsSync(GRUB_MODULES))
        return { found: false, detail: `${GRUB_MODULES} is missing` };
      return probed;
    },
  },
  {
    name: "GNU tar",
    purpose: "packs and unpacks GCE images (sparse)",
    required: false,
    fix: "`apt-get install tar` (GNU tar; needed for gce images only)",
    probe: async () => {
      const probed = await tool("tar", ["--version"])();
      if (probed.found && !probed.detail.includes("GNU tar"))
        return { found: false, detail: `${probed.detail} is not GNU tar` };
      return probed;
    },
  },
  {
    name: "solo5-hvt",
    purpose: "runs hvt kernels (local.Process, `pulumi-mirage run`)",
    required: false,
    fix: "`opam install solo5` (needed for hvt kernels only)",
    probe: tool("solo5-hvt", ["--version"]),
  },
  {
    name: "solo5-spt",
    purpose: "runs spt kernels (local.Process, `pulumi-mirage run`)",
    required: false,
    fix: "`opam install solo5` (needed for spt kernels only)",
    probe: tool("solo5-spt", ["--version"]),
  },
  {
    name: "opam env",
    purpose: "gives mirage's build its switch (PATH, OCAMLPATH, OPAM_SWITCH_PREFIX)",
    required: true,
    buildsOnly: true,
    fix: "run `eval $(opam env)` in the shell that runs pulumi (or give a prebuilt kernel)",
    probe: opamEnvProbe,
  },
  ...(
    [
      ["dune", "dune", "builds config.exe and the unikernel", ["--version"]],
      [
        "ocamlfind",
        "ocamlfind",
        "finds the OCaml libraries and the Solo5 toolchain",
        ["query", "-format", "%v", "findlib"],
      ],
      ["solo5-elftool", "solo5", "writes Solo5 kernels' device manifests", undefined],
    ] as const
  ).map(([executable, pkg, purpose, versionArgs]) => ({
    name: executable,
    purpose,
    required: true,
    buildsOnly: true,
    fix: `\`opam install ${pkg}\` in mirage's switch, then \`eval $(opam env)\` (or give a prebuilt kernel)`,
    probe: switchTool(executable, versionArgs ? [...versionArgs] : undefined),
  })),
  {
    name: "ocaml-solo5",
    purpose: "cross-compiles OCaml for Solo5 targets (all but unix)",
    required: true,
    buildsOnly: true,
    fix: "`opam install ocaml-solo5` in mirage's switch (or give a prebuilt kernel)",
    probe: ocamlSolo5Probe,
  },
];

/** The prebuilt kernel the user's program is given, when there is one. */
export interface DoctorOptions {
  kernel?: string;
}

/** A prebuilt kernel must be a virtio kernel, which QEMU can boot from an image. */
function prebuiltKernel(path: string): Check {
  return {
    name: "prebuilt kernel",
    purpose: "your program's unikernel (`pulumi config set kernel PATH`)",
    required: true,
    fix: "build the unikernel with `mirage configure -t virtio && make depend && make build`, and give the dist/NAME.virtio it makes",
    probe: async () => {
      try {
        const { solo5 } = await inspectKernel(path);
        if (solo5.target === "virtio") return { found: true, detail: `${path} (virtio)` };
        const article = solo5.target === "hvt" ? "an" : "a";
        return {
          found: false,
          detail: `${path} is ${article} ${solo5.target} kernel, not virtio (an image boots only virtio kernels)`,
        };
      } catch (error) {
        // inspectKernel's errors name the file and what is wrong with it.
        return { found: false, detail: (error as Error).message.split("\n")[0] };
      }
    },
  };
}

export async function diagnose(options: DoctorOptions = {}): Promise<Finding[]> {
  const checks = options.kernel ? [...CHECKS, prebuiltKernel(options.kernel)] : CHECKS;
  return Promise.all(
    checks.map(async (check) => {
      const { found, detail } = await check.probe();
      return {
        name: check.name,
        purpose: check.purpose,
        required: check.required && !(check.buildsOnly && options.kernel),
        found,
        detail,
        fix: check.fix,
      };
    }),
  );
}

/**
 * The `kernel` set in a stack config file (Pulumi.STACK.yaml) of `dir`, as `pulumi config set
 * kernel PATH` writes it (`  PROJECT:kernel: PATH`); undefined when none sets one.
 */
export async function configuredKernel(dir: string): Promise<string | undefined> {
  const files = (await readdir(dir).catch(() => [] as string[]))
    .filter((name) => /^Pulumi\.[^.]+\.ya?ml$/.test(name))
    .sort();
  for (const name of files) {
    const text = await readFile(join(dir, name), "utf8");
    const match = /^\s+[^\s:]+:kernel:\s*(.+?)\s*$/m.exec(text);
    if (match) return resolve(dir, match[1].replace(/^(["'])(.*)\1$/, "$2"));
  }
  return undefined;
}

/** True when everything required (a local build, image and boot) is there. */
export function defaultProgramCanRun(findings: readonly Finding[]): boolean {
  return findings.every((finding) => finding.found || !finding.required);
}

export function formatFindings(findings: readonly Finding[]): string {
  const width = Math.max(...findings.map((finding) => finding.name.length));
  const lines = findings.map((finding) => {
    const status = finding.found ? "ok" : finding.required ? "MISSING" : "missing";
    const head = `${status.padEnd(8)} ${finding.name.padEnd(width)}  `;
    if (finding.found) return `${head}${finding.detail}`;
    return `${head}${finding.detail}; ${finding.purpose}\n${" ".repeat(head.length)}fix: ${finding.fix}`;
  });
  const prebuilt = findings.some((finding) => finding.name === "prebuilt kernel");
  const what = prebuilt
    ? "image your prebuilt kernel and boot it here"
    : "build a unikernel, image it and boot it here";
  lines.push(
    "",
    ...wrap(
      `ok: found. MISSING: required: a program cannot ${what} without it. ` +
        "missing: optional: needed only for what its line says.",
    ),
    ...wrap(
      defaultProgramCanRun(findings)
        ? `Everything required is here: a program can ${what}.`
        : `A program cannot ${what} yet: install what is MISSING above.`,
    ),
  );
  return lines.join("\n");
}
