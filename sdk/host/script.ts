// The script a cloud instance runs at boot to host an spt or hvt unikernel under its Solo5
// tender; the same for every cloud but for a small module (HostCloud) saying how the host
// authenticates, downloads an object and reads a secret, and whether the cloud runs the script at
// every boot (GCE's startup-script) or at the first only (EC2's user data). It is idempotent: run
// again, it keeps the files it has when they are the planned ones and the service that runs. A
// pure function of its inputs: the same inputs give the same script, byte for byte, so an
// unchanged service keeps its instance.
//
// What it installs in the state directory, each step saying so on the serial console (a failure
// as a `FATAL:` line naming the step, with curl's HTTP status where there is one):
// - `host.sh`, sourced by the others: the settings, the console lines, `http` (curl, failing on
//   anything but 2xx; `try_http` leaves the failure to its caller) and the cloud's `fetch_object`
//   and `read_secret`;
// - `start`, run at every start: checks the kernel and the tender against their sha256 (fetching
//   them again when they are not the planned ones), runs `setup-network` (network.ts), reads the
//   boot arguments (from the cloud's secret store, when they are secret: they are never in the
//   script), runs the tender and says how it ended;
// - a systemd unit that runs `start` and restarts it, at every boot; without systemd, `supervise`
//   (a loop doing the same) and `boot`, which starts it unless it runs, run by the script and,
//   where the cloud runs the script at the first boot only, by cloud-init's per-boot scripts.
// The script itself fetches and checks the files first, so a wrong kernel installs nothing.
import { checkBootArgs } from "../../provider/image/bootargs";
import { type HostPort, nftRules, setupNetworkScript, tapAddresses, tapName } from "./network";
import { shellQuote, writeFile } from "./shell";

export type { HostPort } from "./network";

export interface HostFile {
  /** Where the host downloads it from (the cloud's `fetch_object` knows how). */
  url: string;
  sha256: string;
}

/** How a host of one cloud authenticates, downloads and reads secrets: shell for `host.sh`. */
export interface HostCloud {
  /** The cloud's name, for the script's first line. */
  name: string;
  /**
   * Shell settings and the functions `fetch_object STEP URL FILE` (the object at URL into FILE)
   * and `read_secret STEP REF` (the secret's value on stdout), which call `http`; values in it are
   * quoted already.
   */
  library: string;
  /** Throws if `ref` is not a reference to a secret of this cloud that the library can read. */
  checkSecret(ref: string): void;
  /**
   * The cloud runs the script at every boot (GCE's startup-script). Else it runs it at the first
   * boot only (EC2's user data), and without systemd a per-boot hook brings the service back.
   */
  everyBoot: boolean;
}

export interface HostScriptSpec {
  /** The service name: names the unit, the state directory and the console lines. */
  name: string;
  target: "spt" | "hvt";
  /** The kernel's file name on the host, e.g. `hello.spt`. */
  kernelName: string;
  kernel: HostFile;
  tender: HostFile;
  /** The network devices the kernel declares, in manifest order. */
  networks: string[];
  ports: HostPort[];
  /**
   * The unikernel's own arguments (the host adds `--ipv4` and `--ipv4-gateway` for one network):
   * in the script, or, when secret, the cloud's reference to a secret holding them
   * (`encodeSecretBootArgs`), read at every start.
   */
  bootArgs: string[] | { secret: string };
  /** Default: `/var/lib/pulumi-mirage/NAME`. */
  stateDir?: string;
  /** Where console lines go. Default: `/dev/ttyS0`, the serial console. */
  console?: string;
  /**
   * Where cloud-init takes the scripts it runs at every boot (used without systemd, by a cloud
   * that runs the script at the first boot only).
   */
  perBootDir?: string;
}

/** Seconds between the tender's end and its next start. */
const RESTART_SECONDS = 2;

/**
 * The value of the secret holding secret boot arguments: their count, then the arguments, all
 * separated by single spaces (boot arguments hold no spaces). A store refuses an empty value, and
 * the count lets the host refuse one that is not what was written.
 */
export function encodeSecretBootArgs(args: readonly string[]): string {
  return [String(args.length), ...args].join(" ");
}

/** The rules of a unikernel's arguments on a host: DiskImage's (bootargs.ts), and the host's own. */
export function checkHostBootArgs(args: readonly string[], networks: readonly string[]): void {
  checkBootArgs(args);
  const own = args.findIndex((a) => /^--ipv4(-gateway)?=/.test(a));
  if (own !== -1 && networks.length === 1) {
    // By position: the argument may be secret.
    throw new Error(
      `boot argument ${own} sets ${args[own].split("=")[0]}, which the host sets (the unikernel is ${tapAddresses(0).unikernel}/24 behind its tap): remove it`,
    );
  }
}

/** A path we put in scripts and unit files: absolute, of characters no syntax gives meaning to. */
function checkPath(what: string, path: string): void {
  if (!/^(\/[A-Za-z0-9._-]+)+$/.test(path) || path.split("/").includes("..")) {
    throw new Error(
      `${what} ${JSON.stringify(path)}: use an absolute path of letters, digits, '.', '_', '-' and '/'`,
    );
  }
}

function checkSpec(spec: HostScriptSpec, cloud: HostCloud): void {
  if (!/^[a-z0-9][a-z0-9-]{0,39}$/.test(spec.name)) {
    throw new Error(
      `name ${JSON.stringify(spec.name)}: use up to 40 lowercase letters, digits and -`,
    );
  }
  if (spec.target !== "spt" && spec.target !== "hvt") {
    throw new Error(`target ${JSON.stringify(spec.target)}: a host runs spt or hvt unikernels`);
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(spec.kernelName)) {
    throw new Error(`kernelName ${JSON.stringify(spec.kernelName)} is not a plain file name`);
  }
  for (const [what, file] of [
    ["kernel", spec.kernel],
    ["tender", spec.tender],
  ] as const) {
    if (!/^[0-9a-f]{64}$/.test(file.sha256)) throw new Error(`${what}.sha256 is not a sha256`);
    if (!/^https?:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?\/[A-Za-z0-9._~%/-]*$/.test(file.url)) {
      throw new Error(
        `${what}.url ${JSON.stringify(file.url)}: use an http(s) URL of letters, digits and . _ ~ % / -`,
      );
    }
  }
  if (spec.networks.length > 200) throw new Error("networks: at most 200 devices");
  for (const net of spec.networks) {
    if (!/^[A-Za-z0-9_]{1,64}$/.test(net))
      throw new Error(`networks: ${JSON.stringify(net)} is not a device name`);
  }
  for (const p of spec.ports) {
    if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) {
      throw new Error(`ports: ${JSON.stringify(p.port)} is not a port number (1-65535)`);
    }
    if (p.protocol !== "tcp" && p.protocol !== "udp") {
      throw new Error(`ports: protocol ${JSON.stringify(p.protocol)}: use "tcp" or "udp"`);
    }
  }
  if (spec.ports.length > 0 && spec.networks.length === 0) {
    throw new Error("ports: the unikernel declares no network device to forward them to");
  }
  if (Array.isArray(spec.bootArgs)) {
    try {
      checkHostBootArgs(spec.bootArgs, spec.networks);
    } catch (error) {
      throw new Error(`bootArgs: ${(error as Error).message}`);
    }
  } else {
    cloud.checkSecret(spec.bootArgs.secret);
  }
  if (spec.stateDir !== undefined) checkPath("stateDir", spec.stateDir);
  if (spec.console !== undefined) checkPath("console", spec.console);
  if (spec.perBootDir !== undefined) checkPath("perBootDir", spec.perBootDir);
  if (spec.perBootDir !== undefined && cloud.everyBoot) {
    throw new Error(`perBootDir: ${cloud.name} runs the script at every boot, which needs no hook`);
  }
}

/** host.sh: what every script of the host sources. */
function library(spec: HostScriptSpec, cloud: HostCloud, dir: string): string {
  const tender = `solo5-${spec.target}`;
  return `# Sourced by the host's scripts: settings, console lines, downloads.
NAME=${shellQuote(spec.name)}
DIR=${shellQuote(dir)}
CONSOLE=${shellQuote(spec.console ?? "/dev/ttyS0")}
# curl's and setup-network's messages, in full.
LOG=${shellQuote(`${dir}/host.log`)}

# A line on the console (and on stderr, which goes to the journal or cloud-init's log).
say() {
  printf 'pulumi-mirage[%s]: %s\\n' "$NAME" "$*" >&2
  printf 'pulumi-mirage[%s]: %s\\n' "$NAME" "$*" >> "$CONSOLE" 2>/dev/null || true
}
fail() {
  say "FATAL: $*"
  exit 1
}

# try_http STEP FILE CURL_ARGS...: curl, writing the answer to FILE (to stdout when FILE is "").
# A status other than 2xx returns 1, leaving it in HTTP_STATUS and the answer's start in
# HTTP_ANSWER; no answer at all fails with curl's own message.
try_http() {
  step=$1
  file=$2
  shift 2
  if [ -n "$file" ]; then set -- -o "$file" "$@"; fi
  if ! answer=$(curl -sS --connect-timeout 10 --max-time 300 --retry 5 --retry-connrefused \\
    -w '\\n%{http_code}' "$@" 2>>"$LOG"); then
    fail "$step: curl failed: $(tail -n 1 "$LOG") (log: $LOG)"
  fi
  HTTP_STATUS=\${answer##*"
"}
  answer=\${answer%"
"*}
  case $HTTP_STATUS in
  2??)
    if [ -z "$file" ]; then printf '%s\\n' "$answer"; fi
    return 0
    ;;
  esac
  if [ -n "$file" ]; then
    answer=$(head -c 300 "$file")
    rm -f "$file"
  fi
  HTTP_ANSWER=$(printf '%s' "$answer" | tr '\\r\\n' '  ' | head -c 300)
  return 1
}

# http STEP FILE CURL_ARGS...: try_http, failing on a status other than 2xx with STEP, the status
# and the answer's start.
http() {
  try_http "$@" || fail "$1: HTTP $HTTP_STATUS: $HTTP_ANSWER"
}

sha256() {
  sha256sum "$1" | cut -d ' ' -f 1
}

# ensure URL FILE SHA256: FILE when it is the planned one; else downloaded again and checked.
ensure() {
  if [ -f "$2" ] && [ "$(sha256 "$2")" = "$3" ]; then return 0; fi
  what=$(basename "$2")
  if [ -e "$2" ]; then say "$what on disk is not the planned one (sha256 $(sha256 "$2")): fetching it again"; fi
  # Named by our pid: the script and the service it started may fetch at once.
  part="$2.$$.part"
  fetch_object "downloading $what from $1" "$1" "$part"
  actual=$(sha256 "$part")
  if [ "$actual" != "$3" ]; then
    rm -f "$part"
    fail "$what: sha256 is $actual, expected $3: refusing to run it"
  fi
  chmod 0555 "$part"
  mv -f "$part" "$2"
}

# The kernel and the tender, checked.
fetch_files() {
  ensure ${shellQuote(spec.kernel.url)} ${shellQuote(`${dir}/${spec.kernelName}`)} ${spec.kernel.sha256}
  ensure ${shellQuote(spec.tender.url)} ${shellQuote(`${dir}/${tender}`)} ${spec.tender.sha256}
}

# How this host reaches ${cloud.name}.
${cloud.library}`;
}

/** The shell that sets "$@" to the unikernel's own arguments. */
function bootArgsShell(spec: HostScriptSpec): string {
  if (Array.isArray(spec.bootArgs)) {
    return spec.bootArgs.length === 0
      ? "set --"
      : `set -- ${spec.bootArgs.map(shellQuote).join(" ")}`;
  }
  const ref = shellQuote(spec.bootArgs.secret);
  return `# Secret: read at every start, never written down. Split at spaces, with no globbing.
set -f
value=$(read_secret "reading the boot arguments from "${ref} ${ref})
set -- $value
if [ "$#" -eq 0 ] || [ "$1" != "$(($# - 1))" ]; then
  fail "the boot arguments in "${ref}" are not what pulumi-mirage writes (their count, then the arguments)"
fi
shift`;
}

/** `start`: run at every start of the service. */
function startScript(spec: HostScriptSpec, dir: string): string {
  const tender = `solo5-${spec.target}`;
  const devices = spec.networks.map((net, n) => `--net:${net}=${tapName(n)}`);
  const network =
    spec.networks.length === 1
      ? [
          `--ipv4=${tapAddresses(0).unikernel}/${tapAddresses(0).prefix}`,
          `--ipv4-gateway=${tapAddresses(0).host}`,
        ]
      : [];
  const command = [`${dir}/${tender}`, ...devices, "--", `${dir}/${spec.kernelName}`, ...network];
  return `#!/bin/sh
# Starts the unikernel: checks its files, sets up its network, runs ${tender}.
set -eu
. ${shellQuote(`${dir}/host.sh`)}
fetch_files
status=0
"$DIR/setup-network" 2>>"$LOG" || status=$?
if [ "$status" -ne 0 ]; then
  fail "setting up the network failed: setup-network exited with status $status ($(tail -n 1 "$LOG"); log: $LOG)"
fi
${bootArgsShell(spec)}
say "starting ${tender}"
status=0
${command.map(shellQuote).join(" ")} "$@" 2>&1 || status=$?
say "${tender} exited with status $status"
exit "$status"
`;
}

function unitFile(spec: HostScriptSpec, dir: string): string {
  return `[Unit]
Description=MirageOS unikernel ${spec.name} under solo5-${spec.target} (pulumi-mirage)
After=network-online.target
Wants=network-online.target
# Never give up: a download may fail for a while.
StartLimitIntervalSec=0

[Service]
ExecStart=${dir}/start
Restart=always
RestartSec=${RESTART_SECONDS}
# The unikernel's output on the console; our own lines reach it through say().
StandardOutput=journal+console
StandardError=journal

[Install]
WantedBy=multi-user.target
`;
}

/** `supervise`: systemd's job where there is no systemd. */
function superviseScript(dir: string): string {
  return `#!/bin/sh
# Runs start again ${RESTART_SECONDS} s after it ends, for ever.
. ${shellQuote(`${dir}/host.sh`)}
echo $$ > "$DIR/supervisor.pid"
while :; do
  "$DIR/start" || :
  say "restarting in ${RESTART_SECONDS} s"
  sleep ${RESTART_SECONDS}
done
`;
}

/**
 * `boot`: starts `supervise` in a session of its own, unless it runs (the script run again in the
 * same boot); run by the script, and at every boot.
 */
function bootScript(spec: HostScriptSpec, dir: string): string {
  return `#!/bin/sh
set -eu
. ${shellQuote(`${dir}/host.sh`)}
# After a reboot the file names a process of the last boot: only one running supervise is ours.
pid=$(cat "$DIR/supervisor.pid" 2>/dev/null || :)
case $pid in
'' | *[!0-9]*) ;;
*)
  if tr '\\0' '\\n' < "/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$DIR/supervise"; then
    say "solo5-${spec.target} runs already under its supervisor (pid $pid)"
    exit 0
  fi
  ;;
esac
rm -f "$DIR/supervisor.pid"
setsid "$DIR/supervise" >> "$CONSOLE" 2>> "$LOG" < /dev/null &
# Until setsid has run, the supervisor is in this script's process group, which whoever ran the
# script may kill once it ends: end only when the supervisor, in a session of its own, has
# written its pid.
waited=0
until [ -s "$DIR/supervisor.pid" ]; do
  [ "$waited" -lt 600 ] || fail "the supervisor did not start within 60 s"
  waited=$((waited + 1))
  sleep 0.1
done
say "started solo5-${spec.target} under a plain supervisor (no systemd): pid in $DIR/supervisor.pid"
`;
}

export function renderHostScript(spec: HostScriptSpec, cloud: HostCloud): string {
  checkSpec(spec, cloud);
  const dir = spec.stateDir ?? `/var/lib/pulumi-mirage/${spec.name}`;
  const tender = `solo5-${spec.target}`;
  const unit = `pulumi-mirage-${spec.name}.service`;
  const hook = `${spec.perBootDir ?? "/var/lib/cloud/scripts/per-boot"}/pulumi-mirage-${spec.name}`;
  // A script run at the first boot only leaves cloud-init a hook to run at the others.
  const perBoot = cloud.everyBoot
    ? ""
    : `  mkdir -p ${shellQuote(hook.slice(0, hook.lastIndexOf("/")))}
${writeFile(hook, `#!/bin/sh\nexec ${shellQuote(`${dir}/boot`)}\n`, "0755")}
`;
  const forwards = spec.ports.map((p) => `${p.protocol}/${p.port}`).join(" ") || "no ports";
  return `#!/bin/sh
# pulumi-mirage: host for the ${spec.target} unikernel ${spec.name} on ${cloud.name}. Generated; do not edit.
set -eu
umask 022
mkdir -p ${shellQuote(dir)}
${writeFile(`${dir}/host.sh`, library(spec, cloud, dir), "0644")}
. ${shellQuote(`${dir}/host.sh`)}

for tool in curl ip nft sha256sum setsid; do
  command -v "$tool" >/dev/null 2>&1 || missing="\${missing:-} $tool"
done
if [ -n "\${missing:-}" ]; then
  say "installing$missing"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl iproute2 nftables coreutils util-linux \\
    || fail "cannot install$missing"
fi

say "fetching the kernel and ${tender}"
fetch_files

say "${spec.networks.length} tap interface(s), forwarding ${forwards}"
${writeFile(`${dir}/rules.nft`, nftRules(spec.ports), "0644")}
${writeFile(`${dir}/setup-network`, setupNetworkScript(spec.networks, shellQuote(`${dir}/rules.nft`)), "0755")}
${writeFile(`${dir}/start`, startScript(spec, dir), "0755")}

if [ -d /run/systemd/system ]; then
${writeFile(`/etc/systemd/system/${unit}`, unitFile(spec, dir), "0644")}
  systemctl daemon-reload
  systemctl enable --now ${unit} || fail "systemctl could not start ${unit}"
  say "started ${unit}"
else
${writeFile(`${dir}/supervise`, superviseScript(dir), "0755")}
${writeFile(`${dir}/boot`, bootScript(spec, dir), "0755")}
${perBoot}  "$DIR/boot"
fi
`;
}
