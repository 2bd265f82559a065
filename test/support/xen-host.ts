// A real Xen host for the tests: Debian's Xen 4.17 and a PVH dom0 booted in QEMU (TCG), with
// sshd in dom0 reachable on a 127.0.0.1 port, so xen.Domain talks to it as to any Xen host.
//
// The dom0 initramfs is made at test time from the installed Debian packages (busybox, the
// toolstack and its libraries, the kernel's Xen modules, sshd, bash for the hotplug scripts,
// qemu-system-xen as the HVM device model) and cached by the packages' versions in the per-user
// test cache (pulumi-mirage-test/xen-host/). Boot flags are the ones docs/platforms.md (Xen)
// says are necessary under TCG: PVH dom0 behind an AMD IOMMU on q35, no RDTSCP or PKU in the
// CPU, noxsave in dom0.
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, openSync } from "node:fs";
import {
  chmod,
  copyFile,
  cp,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  realpath,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { produceAtomically } from "../../provider/core/atomic";
import { type RunResult, run, ToolError } from "../../provider/core/exec";
import { sha256 } from "../../provider/core/hash";
import { withLock } from "../../provider/core/lock";
import { withScratch } from "../../provider/core/scratch";
import { freePort } from "./net";

/** The Debian packages the host is made of, and a file each one installs. */
const PACKAGES: Record<string, string> = {
  "xen-hypervisor-4.17-amd64": "/boot/xen-4.17-amd64.gz",
  "xen-utils-4.17": "/usr/lib/xen-4.17/bin/xl",
  "linux-image-amd64": "/boot",
  "busybox-static": "/bin/busybox",
  "openssh-server": "/usr/sbin/sshd",
  "qemu-system-xen": "/usr/libexec/xen-qemu-system-i386",
  "qemu-system-x86": "/usr/bin/qemu-system-x86_64",
  "grub-xen-bin": "/usr/lib/grub/i386-xen_pvh/kernel.img",
  cpio: "/usr/bin/cpio",
};

const XEN_BIN = "/usr/lib/xen-4.17/bin";
/** Dynamically linked programs dom0 runs; each comes with the libraries ldd lists. */
const PROGRAMS = [
  "/bin/bash",
  "/usr/sbin/sshd",
  ...["xl", "xenstored", "xenconsoled", "xen-init-dom0", "libxl-save-helper"].map(
    (name) => `${XEN_BIN}/${name}`,
  ),
  ...["read", "write", "list", "rm", "exists"].map((name) => `/usr/bin/xenstore-${name}`),
  "/usr/libexec/xen-qemu-system-i386",
];
/** Whole files or directories copied as they are. */
const DATA = [
  "/bin/busybox",
  "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1", // xl aborts without it (pthread_cancel)
  "/etc/xen/scripts",
  "/etc/xen/xl.conf",
  "/usr/lib/xen-4.17/boot/hvmloader",
  "/usr/share/seabios",
  "/usr/share/qemu/keymaps", // the device model loads one even without a display
];
/** Kernel modules dom0 loads, with their dependencies first. */
const MODULES = [
  "xen-evtchn",
  "xenfs",
  "xen-privcmd",
  "xen-gntdev",
  "xen-gntalloc",
  "xen-netback",
  "xen-blkback",
  "loop",
  "bridge",
  "e1000",
];

/**
 * The built boot files, one directory per cache key, shared by concurrent test processes: in the
 * per-user test cache, beside the consumer projects (test/support/consumer.ts).
 */
const CACHE = join(
  process.env.XDG_CACHE_HOME || join(homedir(), ".cache"),
  "pulumi-mirage-test",
  "xen-host",
);

/** Output of the dom0 /init once everything runs; the fixture waits for it on the console. */
const READY = "xen-host: dom0 ready";
/** The bridge dom0 offers guests' network interfaces (xen.Domain's default). */
export const BRIDGE = "xenbr0";

const BUILD_TIMEOUT_MS = 10 * 60 * 1000;
/** A command in dom0, uploads included: a safety net, far above what they take. */
const COMMAND_TIMEOUT_MS = 3 * 60 * 1000;
/** How often a command is tried when dom0's sshd does not answer in ssh's ConnectTimeout. */
const SSH_ATTEMPTS = 3;
/** ssh's words for a connection on which sshd never answered (the command did not start). */
const UNANSWERED = /during banner exchange|kex_exchange_identification/;
/** Serial console lines that mean dom0 will never be ready. */
const FATAL = /Kernel panic|Dom0 crashed|Panic on CPU/;
/** Generous: a loaded 2-core machine boots Xen and dom0 in TCG in 20-60 s. */
const BOOT_TIMEOUT_MS = 10 * 60 * 1000;

/** The packages of PACKAGES that are not installed. */
function missingPackages(): string[] {
  return Object.entries(PACKAGES)
    .filter(([, path]) => !existsSync(path))
    .map(([name]) => name);
}

/**
 * Why the Xen host cannot run here, or undefined when it can: its packages are installed, or
 * missing but this process is root and startXenHost installs them.
 */
export function xenHostSkipReason(): string | undefined {
  const missing = missingPackages();
  if (missing.length === 0 || process.getuid?.() === 0) return undefined;
  return `the Debian packages ${missing.join(", ")} are missing and only root can install them`;
}

/** Installs the missing packages with apt-get (one process at a time). */
async function installPackages(): Promise<void> {
  await mkdir(CACHE, { recursive: true });
  await withLock(join(CACHE, "apt.lock"), async () => {
    const names = missingPackages();
    if (names.length === 0) return;
    const env = { DEBIAN_FRONTEND: "noninteractive" };
    // Others' apt-get may hold dpkg's lock: wait for it rather than fail.
    const wait = ["-o", "DPkg::Lock::Timeout=600"];
    await run("apt-get", [...wait, "update", "-qq"], { env, timeoutMs: BUILD_TIMEOUT_MS });
    await run("apt-get", [...wait, "install", "-y", "-qq", "--no-install-recommends", ...names], {
      env,
      timeoutMs: BUILD_TIMEOUT_MS,
    });
  });
}

/** The newest installed Linux kernel with its modules, e.g. `6.1.0-56-amd64`. */
async function kernelVersion(): Promise<string | undefined> {
  const boot = await readdir("/boot").catch(() => []);
  const versions = boot
    .filter((f) => f.startsWith("vmlinuz-"))
    .map((f) => f.slice("vmlinuz-".length))
    .filter((v) => existsSync(`/lib/modules/${v}/modules.dep`))
    .sort();
  return versions.at(-1);
}

/** What the cached files depend on: the packages' versions, the kernel, this builder. */
async function cacheKey(kernel: string): Promise<string> {
  const { stdout } = await run("dpkg-query", [
    "-W",
    "-f",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own ${field} syntax
    "${Package} ${Version}\\n",
    ...Object.keys(PACKAGES),
  ]);
  const builder = await readFile(__filename);
  return sha256(`${stdout}\n${kernel}\n${sha256(builder)}`).slice(0, 16);
}

/** The shared libraries `program` loads, as ldd resolves them. */
async function librariesOf(program: string): Promise<string[]> {
  const { stdout } = await run("ldd", [program]);
  return [...stdout.matchAll(/(\/\S+) \(0x/g)].map((m) => m[1]);
}

/** Copies `path` (its content, symlinks followed) to the same path under `root`. */
async function place(root: string, path: string): Promise<void> {
  const target = join(root, path);
  if (existsSync(target)) return;
  await mkdir(dirname(target), { recursive: true });
  await cp(await realpath(path), target, { recursive: true, dereference: true });
}

/** The modules in MODULES and what they need, dependencies first (modules.dep order). */
async function moduleFiles(kernel: string): Promise<string[]> {
  const dep = await readFile(`/lib/modules/${kernel}/modules.dep`, "utf8");
  const deps = new Map<string, string[]>();
  for (const line of dep.split("\n")) {
    const [file, rest] = line.split(":");
    if (file) deps.set(file, rest.trim().split(/\s+/).filter(Boolean));
  }
  const order: string[] = [];
  const visit = (file: string) => {
    if (order.includes(file)) return;
    for (const d of deps.get(file) ?? []) visit(d);
    order.push(file);
  };
  for (const name of MODULES) {
    const file = [...deps.keys()].find((f) => f.endsWith(`/${name}.ko`));
    if (!file) throw new Error(`kernel module ${name}.ko not found for Linux ${kernel}`);
    visit(file);
  }
  return order;
}

/** dom0's /init: the services a Debian Xen host runs, sshd, then the ready line. */
function initScript(kernel: string, modules: string[]): string {
  return `#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
for m in ${modules.join(" ")}; do insmod /lib/modules/${kernel}/$m || echo "xen-host: insmod $m failed"; done
mount -t xenfs xenfs /proc/xen
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
ip link add ${BRIDGE} type bridge
ip link set ${BRIDGE} up
${XEN_BIN}/xenstored --pid-file=/run/xenstored.pid
${XEN_BIN}/xen-init-dom0
${XEN_BIN}/xenconsoled --log=guest --pid-file=/run/xenconsoled.pid
# -r: no re-exec per connection, which costs seconds in a TCG guest on a loaded machine
/usr/sbin/sshd -r -E /var/log/sshd.log
echo "${READY}"
# A heartbeat on the console: when SSH stops answering, the serial log shows whether dom0 still
# runs, how loaded it is and how much memory it has left.
while true; do
  sleep 15
  echo "xen-host: alive, load $(cut -d' ' -f1-3 /proc/loadavg), $(grep MemAvailable /proc/meminfo)"
done
`;
}

/** Lays out dom0's root file system in `root`. */
async function layOut(root: string, kernel: string, keys: string): Promise<void> {
  const libraries = new Set<string>();
  for (const program of PROGRAMS) {
    await place(root, program);
    for (const library of await librariesOf(program)) libraries.add(library);
  }
  for (const path of [...libraries, ...DATA]) await place(root, path);
  await symlink(`${XEN_BIN}/xl`, join(root, "usr/sbin/xl"));
  const modules = await moduleFiles(kernel);
  for (const file of modules) await place(root, `/lib/modules/${kernel}/${file}`);
  for (const dir of ["proc", "sys", "dev", "tmp", "sbin", "usr/bin", "usr/sbin"])
    await mkdir(join(root, dir), { recursive: true });
  for (const dir of ["run/sshd", "run/xen", "run/lock", "root/.ssh"])
    await mkdir(join(root, dir), { recursive: true });
  for (const dir of ["var/lib/xen", "var/log/xen/console", "var/empty"])
    await mkdir(join(root, dir), { recursive: true });
  await symlink("/run", join(root, "var/run"));
  await symlink("/run/lock", join(root, "var/lock"));
  const etc = (name: string, text: string) => writeFile(join(root, "etc", name), text);
  await etc("passwd", "root:x:0:0:root:/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/bin/false\n");
  await etc("group", "root:x:0:\nnogroup:x:65534:\n");
  await etc("shadow", "root:*:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\n");
  await etc("nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files\n");
  await mkdir(join(root, "etc/ssh"));
  await etc(
    "ssh/sshd_config",
    [
      "HostKey /etc/ssh/ssh_host_ed25519_key",
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "AuthorizedKeysFile /root/.ssh/authorized_keys",
      "",
    ].join("\n"),
  );
  await copyFile(join(keys, "host_key"), join(root, "etc/ssh/ssh_host_ed25519_key"));
  await chmod(join(root, "etc/ssh/ssh_host_ed25519_key"), 0o600);
  await copyFile(join(keys, "client_key.pub"), join(root, "root/.ssh/authorized_keys"));
  await writeFile(join(root, "init"), initScript(kernel, modules), { mode: 0o755 });
}

/** The cached boot files: Xen as an ELF, dom0's kernel and initramfs, and the SSH keys. */
interface HostFiles {
  xen: string;
  kernel: string;
  initramfs: string;
  clientKey: string;
  hostKeyPub: string;
}

/** Builds (once per package versions, shared by concurrent test processes) the boot files. */
async function hostFiles(): Promise<HostFiles> {
  await installPackages();
  const kernel = await kernelVersion();
  if (!kernel) throw new Error("no Linux kernel with modules is installed (linux-image-amd64)");
  const parent = CACHE;
  const dir = join(parent, await cacheKey(kernel));
  await mkdir(parent, { recursive: true });
  await withLock(`${dir}.lock`, async () => {
    if (existsSync(dir)) return;
    await produceAtomically(dir, async (temp) => {
      await mkdir(temp);
      const keygen = (name: string) =>
        run("ssh-keygen", [
          "-q",
          "-t",
          "ed25519",
          "-N",
          "",
          "-C",
          "xen-host",
          "-f",
          join(temp, name),
        ]);
      await keygen("host_key");
      await keygen("client_key");
      await run("sh", ["-c", `zcat /boot/xen-4.17-amd64.gz > ${join(temp, "xen.elf")}`]);
      await withScratch({ name: "xen", parent }, async (scratch) => {
        const root = join(scratch, "root");
        await mkdir(join(root, "etc"), { recursive: true });
        await layOut(root, kernel, temp);
        await run(
          "sh",
          [
            "-c",
            `find . | sort | cpio --quiet -o -H newc -R 0:0 | gzip -1 > ${join(temp, "dom0.cpio.gz")}`,
          ],
          { cwd: root, timeoutMs: BUILD_TIMEOUT_MS },
        );
      });
    });
  });
  return {
    xen: join(dir, "xen.elf"),
    kernel: `/boot/vmlinuz-${kernel}`,
    initramfs: join(dir, "dom0.cpio.gz"),
    clientKey: join(dir, "client_key"),
    hostKeyPub: join(dir, "host_key.pub"),
  };
}

/** A running Xen host. */
export interface XenHost {
  /** The 127.0.0.1 port forwarded to dom0's sshd. */
  port: number;
  user: "root";
  /** The client's private key, as xen.Domain takes it. */
  clientKey: string;
  /** dom0's public host key, `TYPE KEY`. */
  hostKey: string;
  /** Xen's serial console so far (Xen, then dom0's kernel and /init). */
  console(): Promise<string>;
  /** Runs a shell command in dom0 as root. */
  sh(command: string, input?: string | Buffer): Promise<RunResult>;
  /** Copies a local file to `path` in dom0. */
  upload(local: string, path: string): Promise<void>;
  /** Whether dom0's sshd still runs a command (asked a few times). */
  answers(): Promise<boolean>;
  /** Milliseconds from starting QEMU to dom0's sshd answering. */
  bootMs: number;
  stop(): Promise<void>;
}

/** Kills QEMU's process group (QEMU is its leader). */
function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** Boots Xen and dom0 and waits until dom0's sshd runs commands. */
export async function startXenHost(): Promise<XenHost> {
  const files = await hostFiles();
  const dir = await mkdtemp(join(tmpdir(), "pulumi-mirage-xen-host-"));
  let child: ChildProcess | undefined;
  const onExit = () => killGroup(child?.pid);
  const stop = async () => {
    process.removeListener("exit", onExit);
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((ok) => child?.once("exit", ok));
      killGroup(child.pid);
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const port = await freePort();
    const log = join(dir, "serial.log");
    const console = () => readFile(log, "utf8").catch(() => "");
    const started = Date.now();
    const out = openSync(join(dir, "qemu.log"), "a");
    child = spawn(
      "qemu-system-x86_64",
      [
        ...["-accel", "tcg", "-machine", "q35", "-cpu", "max,-rdtscp,-pku", "-device", "amd-iommu"],
        ...["-m", "1024", "-smp", "1", "-display", "none", "-no-reboot"],
        ...["-serial", `file:${log}`],
        ...["-netdev", `user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:${port}-:22`],
        ...["-device", "e1000,netdev=n0"],
        ...["-kernel", files.xen],
        ...["-append", "console=com1 com1=115200 dom0=pvh dom0_mem=512M iommu=1 noreboot"],
        ...["-initrd", `${files.kernel} console=hvc0 noxsave,${files.initramfs}`],
      ],
      { stdio: ["ignore", out, out], detached: true },
    );
    closeSync(out);
    // Recorded at once: the file's hook and this process's exit both kill it by this pid.
    await writeFile(join(dir, "qemu.pid"), String(child.pid));
    process.once("exit", onExit);
    const clientKey = await readFile(files.clientKey, "utf8");
    const hostKey = (await readFile(files.hostKeyPub, "utf8")).split(" ").slice(0, 2).join(" ");
    const keyFile = join(dir, "client_key");
    await writeFile(keyFile, clientKey, { mode: 0o600 });
    await writeFile(join(dir, "known_hosts"), `[127.0.0.1]:${port} ${hostKey}\n`);
    const gone = () => child?.exitCode !== null || child?.signalCode !== null;
    const sshArgs = [
      ...["-F", "none", "-i", keyFile, "-p", String(port)],
      ...["-o", "BatchMode=yes", "-o", `UserKnownHostsFile=${join(dir, "known_hosts")}`],
      ...["-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR"],
      ...["-o", "ServerAliveInterval=15"],
    ];
    const ssh = (command: string, input?: string | Buffer) =>
      run("ssh", [...sshArgs, "root@127.0.0.1", command], { input, timeoutMs: COMMAND_TIMEOUT_MS });
    const sh = async (command: string, input?: string | Buffer) => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await ssh(command, input);
        } catch (error) {
          // A dom0 starved of CPU (TCG on a loaded machine) can miss ssh's banner deadline; the
          // command has not started then, so asking again is safe.
          const unanswered = error instanceof ToolError && UNANSWERED.test(error.tail.join("\n"));
          if (unanswered && attempt < SSH_ATTEMPTS && !gone()) continue;
          const tail = (await console()).trimEnd().split("\n").slice(-20).join("\n");
          const state = gone() ? "QEMU has exited" : "QEMU is running";
          throw new Error(
            `${(error as Error).message}\n(Xen host: ${state}; serial console:\n${tail})`,
            {
              cause: error,
            },
          );
        }
      }
    };
    const deadline = started + BOOT_TIMEOUT_MS;
    for (let text = await console(); !text.includes(READY); text = await console()) {
      if (gone() || FATAL.test(text) || Date.now() > deadline) {
        const why = gone()
          ? "QEMU exited"
          : FATAL.test(text)
            ? "Xen or dom0 crashed"
            : "dom0 was not ready in time";
        throw new Error(`Xen host: ${why}; serial console:\n${(await console()).slice(-4000)}`);
      }
      await new Promise((ok) => setTimeout(ok, 250));
    }
    for (;;) {
      try {
        await sh("true");
        break;
      } catch (error) {
        if (gone() || Date.now() > deadline) throw error;
        await new Promise((ok) => setTimeout(ok, 500));
      }
    }
    const bootMs = Date.now() - started;
    return {
      port,
      user: "root",
      clientKey,
      hostKey,
      console,
      sh,
      async upload(local, path) {
        await sh(`mkdir -p '${dirname(path)}' && cat > '${path}'`, await readFile(local));
      },
      answers: () =>
        sh("true").then(
          () => true,
          () => false,
        ),
      bootMs,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
