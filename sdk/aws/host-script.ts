// The user data of a Linux host instance running an spt or hvt unikernel under its Solo5 tender
// (UnikernelService on current EC2 types). A pure function of its inputs: the same inputs give
// the same script, byte for byte, so an unchanged service never replaces its instance.
//
// What the script does, in order, each step saying so on the serial console:
// 1. fetches the kernel and the tender from S3 with the instance role's credentials (IMDSv2, then
//    curl's SigV4 signing: Debian's curl has it), checks their sha256 and stops on a mismatch;
// 2. writes `setup-network`: a tap interface per declared network device (10.81.N.1/24 on the
//    host, the unikernel at 10.81.N.2), IP forwarding, and an nftables table that forwards the
//    declared ports from the instance's addresses to the first device's unikernel address (DNAT)
//    and masquerades the unikernel's own traffic; it is rerun before every start (taps and rules
//    do not survive a reboot);
// 3. runs the tender as a service that restarts on failure: a systemd unit (output in the journal
//    and on the console) where systemd runs, else a plain supervisor loop (its pid in
//    `supervisor.pid`, the leader of its own process group), for hosts without it.

export interface HostFile {
  /** Where the script downloads it from. */
  url: string;
  sha256: string;
}

export interface HostPort {
  port: number;
  protocol: "tcp" | "udp";
}

export interface HostScriptSpec {
  /** The service name: names the unit, the state directory and the console lines. */
  name: string;
  target: "spt" | "hvt";
  /** The kernel's file name on the host, e.g. `hello.spt`. */
  kernelName: string;
  kernel: HostFile;
  tender: HostFile;
  /** The S3 bucket's region (the signature covers it). */
  region: string;
  /** The network devices the kernel declares, in manifest order. */
  networks: string[];
  ports: HostPort[];
  /** The unikernel's own arguments; the host adds `--ipv4` and `--ipv4-gateway` for one network. */
  bootArgs: string[];
  /** Default: `/var/lib/pulumi-mirage/NAME`. */
  stateDir?: string;
  /** Where console lines go. Default: `/dev/ttyS0`, EC2's serial console. */
  console?: string;
  /** The instance metadata service. Default: `http://169.254.169.254`. */
  metadataUrl?: string;
}

/** The host side of network device `n` and the unikernel's address on it. */
export function tapAddresses(n: number): { host: string; unikernel: string; prefix: number } {
  return { host: `10.81.${n}.1`, unikernel: `10.81.${n}.2`, prefix: 24 };
}

/** One shell word, quoted so the shell passes it on unchanged. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function checkSpec(spec: HostScriptSpec): void {
  if (!/^[a-z0-9][a-z0-9-]{0,39}$/.test(spec.name)) {
    throw new Error(`name ${JSON.stringify(spec.name)}: use lowercase letters, digits and -`);
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(spec.kernelName)) {
    throw new Error(`kernelName ${JSON.stringify(spec.kernelName)} is not a plain file name`);
  }
  for (const [what, file] of [
    ["kernel", spec.kernel],
    ["tender", spec.tender],
  ] as const) {
    if (!/^[0-9a-f]{64}$/.test(file.sha256)) throw new Error(`${what}.sha256 is not a sha256`);
  }
  if (spec.networks.length > 200) throw new Error("networks: at most 200 devices");
  for (const net of spec.networks) {
    if (!/^[A-Za-z0-9_]+$/.test(net))
      throw new Error(`networks: ${JSON.stringify(net)} is not a device name`);
  }
  const own = spec.bootArgs.find((a) => /^--ipv4(-gateway)?=/.test(a));
  if (own && spec.networks.length === 1) {
    throw new Error(
      `bootArgs: ${own.split("=")[0]} is set by the host (the unikernel is ${tapAddresses(0).unikernel}/24 behind its tap); remove it`,
    );
  }
  if (spec.ports.length > 0 && spec.networks.length === 0) {
    throw new Error("ports: the unikernel declares no network device to forward them to");
  }
}

/** The unikernel's arguments: the network configuration of a single network, then the user's. */
function unikernelArgs(spec: HostScriptSpec): string[] {
  if (spec.networks.length !== 1) return spec.bootArgs;
  const { host, unikernel, prefix } = tapAddresses(0);
  return [`--ipv4=${unikernel}/${prefix}`, `--ipv4-gateway=${host}`, ...spec.bootArgs];
}

function nftRules(spec: HostScriptSpec): string {
  const target = tapAddresses(0).unikernel;
  const forwards = (["tcp", "udp"] as const)
    .map((protocol) => {
      const ports = spec.ports.filter((p) => p.protocol === protocol).map((p) => p.port);
      return ports.length === 0
        ? ""
        : `    iifname != "mtap*" ${protocol} dport { ${ports.join(", ")} } dnat to ${target}\n`;
    })
    .join("");
  return `table ip pulumi_mirage {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
${forwards}  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 10.81.0.0/16 oifname != "mtap*" masquerade
  }
}`;
}

function setupNetwork(spec: HostScriptSpec): string {
  const taps = spec.networks.map((net, n) => {
    const { host, prefix } = tapAddresses(n);
    return [
      `# ${net}`,
      `ip link show mtap${n} >/dev/null 2>&1 || ip tuntap add dev mtap${n} mode tap`,
      `ip addr replace ${host}/${prefix} dev mtap${n}`,
      `ip link set mtap${n} up`,
    ].join("\n");
  });
  return `#!/bin/sh
# Taps and forwarding for the unikernel ${spec.name}; rerun before every start.
set -eu
${taps.join("\n")}
echo 1 > /proc/sys/net/ipv4/ip_forward
nft list table ip pulumi_mirage >/dev/null 2>&1 && nft delete table ip pulumi_mirage
nft -f - <<'RULES'
${nftRules(spec)}
RULES
`;
}

function runScript(spec: HostScriptSpec, dir: string): string {
  const tender = `solo5-${spec.target}`;
  const devices = spec.networks.map((net, n) => `--net:${net}=mtap${n}`);
  const words = [`${dir}/${tender}`, ...devices, "--", `${dir}/${spec.kernelName}`];
  return `#!/bin/sh
exec ${[...words, ...unikernelArgs(spec)].map(shellQuote).join(" ")}
`;
}

/** A heredoc writing `content` to `path` (mode `mode`); the delimiter never occurs in it. */
function writeFile(path: string, content: string, mode: string): string {
  return `cat > ${shellQuote(path)} <<'PULUMI_MIRAGE_EOF'
${content}PULUMI_MIRAGE_EOF
chmod ${mode} ${shellQuote(path)}`;
}

export function renderHostScript(spec: HostScriptSpec): string {
  checkSpec(spec);
  const dir = spec.stateDir ?? `/var/lib/pulumi-mirage/${spec.name}`;
  const tender = `solo5-${spec.target}`;
  const unit = `pulumi-mirage-${spec.name}.service`;
  const supervise = `#!/bin/sh
# The tender's supervisor where systemd is absent: restarts it one second after it exits.
echo $$ > ${shellQuote(`${dir}/supervisor.pid`)}
while :; do
  ${shellQuote(`${dir}/setup-network`)} && ${shellQuote(`${dir}/run`)} && status=0 || status=$?
  echo "pulumi-mirage[${spec.name}]: ${tender} exited with status $status; restarting in 1 s"
  sleep 1
done
`;
  const unitFile = `[Unit]
Description=MirageOS unikernel ${spec.name} under ${tender} (pulumi-mirage)
After=network-online.target
Wants=network-online.target

[Service]
ExecStartPre=${dir}/setup-network
ExecStart=${dir}/run
Restart=always
RestartSec=1
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
`;
  return `#!/bin/sh
# pulumi-mirage: host for the ${spec.target} unikernel ${spec.name}. Generated; do not edit.
set -eu
NAME=${shellQuote(spec.name)}
DIR=${shellQuote(dir)}
CONSOLE=${shellQuote(spec.console ?? "/dev/ttyS0")}
METADATA=${shellQuote(spec.metadataUrl ?? "http://169.254.169.254")}
REGION=${shellQuote(spec.region)}

say() {
  echo "pulumi-mirage[$NAME]: $*" >&2
  echo "pulumi-mirage[$NAME]: $*" >> "$CONSOLE" 2>/dev/null || true
}
fail() {
  say "FATAL: $*"
  exit 1
}
# A field of the metadata service's credentials JSON.
field() {
  printf '%s\\n' "$CREDENTIALS" | sed -n "s/.*\\"$1\\" *: *\\"\\([^\\"]*\\)\\".*/\\1/p" | head -n 1
}
# fetch URL FILE SHA256: downloads with the instance role's credentials, checks, moves into place.
fetch() {
  curl -fsS --retry 5 --aws-sigv4 "aws:amz:$REGION:s3" --user "$KEY_ID:$SECRET" \\
    -H "x-amz-security-token: $SESSION" -o "$2.part" "$1" || fail "downloading $1 failed"
  actual=$(sha256sum "$2.part" | cut -d ' ' -f 1)
  if [ "$actual" != "$3" ]; then
    rm -f "$2.part"
    fail "$(basename "$2"): sha256 is $actual, expected $3: refusing to run it"
  fi
  chmod 0555 "$2.part"
  mv -f "$2.part" "$2"
}

mkdir -p "$DIR"
for tool in curl ip nft sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || missing="\${missing:-} $tool"
done
if [ -n "\${missing:-}" ]; then
  say "installing$missing"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl iproute2 nftables coreutils \\
    || fail "cannot install$missing"
fi

say "fetching the kernel and ${tender}"
TOKEN=$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 600' "$METADATA/latest/api/token") \\
  || fail "no token from the instance metadata service"
ROLE=$(curl -fsS -H "X-aws-ec2-metadata-token: $TOKEN" "$METADATA/latest/meta-data/iam/security-credentials/") \\
  || fail "the instance has no IAM role to read the kernel with"
CREDENTIALS=$(curl -fsS -H "X-aws-ec2-metadata-token: $TOKEN" "$METADATA/latest/meta-data/iam/security-credentials/$ROLE") \\
  || fail "no credentials for the role $ROLE"
KEY_ID=$(field AccessKeyId)
SECRET=$(field SecretAccessKey)
SESSION=$(field Token)
fetch ${shellQuote(spec.kernel.url)} "$DIR/"${shellQuote(spec.kernelName)} ${spec.kernel.sha256}
fetch ${shellQuote(spec.tender.url)} "$DIR/${tender}" ${spec.tender.sha256}

${writeFile(`${dir}/setup-network`, setupNetwork(spec), "0755")}
${writeFile(`${dir}/run`, runScript(spec, dir), "0755")}
say "setting up ${spec.networks.length} tap interface(s) and forwarding ${spec.ports.map((p) => `${p.protocol}/${p.port}`).join(" ") || "no ports"}"
"$DIR/setup-network" || fail "setting up the network failed"

if [ -d /run/systemd/system ]; then
${writeFile(`/etc/systemd/system/${unit}`, unitFile, "0644")}
  systemctl daemon-reload
  systemctl enable --now ${unit} || fail "systemctl could not start ${unit}"
  say "started ${unit}"
else
${writeFile(`${dir}/supervise`, supervise, "0755")}
  rm -f "$DIR/supervisor.pid"
  setsid "$DIR/supervise" >> "$CONSOLE" 2>&1 < /dev/null &
  # Until setsid has run, the supervisor is in this script's process group, which whoever ran
  # the script may kill once it ends: end only when the supervisor, in a session of its own,
  # has written its pid.
  waited=0
  until [ -s "$DIR/supervisor.pid" ]; do
    [ "$waited" -lt 600 ] || fail "the supervisor did not start within 60 s"
    waited=$((waited + 1))
    sleep 0.1
  done
  say "started ${tender} under a plain supervisor (no systemd): pid in $DIR/supervisor.pid"
fi
`;
}
