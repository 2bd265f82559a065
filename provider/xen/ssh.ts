// Commands and file copies on a remote host over SSH, with the system `ssh` client.
//
// Host keys are always checked (StrictHostKeyChecking=yes) against the keys we are given: a key
// pinned by the user, or the keys `ssh-keyscan` recorded at the first connection (trust on first
// use). ssh never reads the user's config or known_hosts files, so what is checked is exactly what
// the resource state says. The private key only ever lives in a 0600 file in a private temporary
// directory that is removed after use; it is never an argument, never logged. Files written on
// the host (a config holding boot arguments, which may be secret) are readable by their owner
// only, in directories made private.

import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { formatCommand, type RunResult, run, ToolError } from "../core/exec";
import { withScratch } from "../core/scratch";
import { sparseUpload } from "./upload";

/** Where and as whom to connect. */
export interface SshTarget {
  host: string;
  port: number;
  user: string;
  /** An OpenSSH or PEM private key, in plaintext. */
  privateKey: string;
}

/** ssh looks host keys up under this name, so the known_hosts file needs no host:port syntax. */
const HOST_KEY_ALIAS = "pulumi-mirage-host";

const DEFAULT_TIMEOUT_MS = 2 * 60 * 1000;

const KEY_TYPE = /^(ssh-(rsa|dss|ed25519|ed448)|ecdsa-sha2-nistp(256|384|521)|sk-[\w@.-]+)$/;
const KEY_DATA = /^[A-Za-z0-9+/]+={0,3}$/;

/**
 * Reads host keys in any of the usual shapes: `TYPE KEY [comment]` (a `.pub` file), or
 * `HOST TYPE KEY` (a known_hosts line, `ssh-keyscan` output). Returns them as sorted, distinct
 * `TYPE KEY` lines. Throws a message saying what is wrong with the first line that is not a key.
 */
export function parseHostKeys(text: string): string[] {
  const keys = new Set<string>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const fields = line.split(/\s+/);
    const at = KEY_TYPE.test(fields[0]) ? 0 : 1;
    const [type, data] = [fields[at], fields[at + 1]];
    if (!type || !KEY_TYPE.test(type) || !data || !KEY_DATA.test(data)) {
      throw new Error(
        `"${line.slice(0, 60)}" is not an SSH public host key; give lines like ` +
          `"ssh-ed25519 AAAA...", as printed by ssh-keyscan or found in /etc/ssh/ssh_host_*_key.pub`,
      );
    }
    keys.add(`${type} ${data}`);
  }
  if (keys.size === 0) throw new Error("no SSH public host key given");
  return [...keys].sort();
}

/**
 * Trust on first use: asks the host for its public keys with `ssh-keyscan`. Whoever answers is
 * believed, so this is only done once per resource; every later connection pins what it found.
 */
export async function scanHostKeys(host: string, port: number): Promise<string[]> {
  // -T bounds the whole scan: one key exchange per key type, which a busy dom0 (or a Xen host
  // emulated in the tests) can take seconds each to answer.
  const { stdout } = await run("ssh-keyscan", ["-p", String(port), "-T", "60", "--", host], {
    timeoutMs: DEFAULT_TIMEOUT_MS,
  });
  if (stdout.trim() === "") {
    throw new Error(
      `could not read the SSH host key of ${host}:${port}: ssh-keyscan got no answer. ` +
        "Check that the host is reachable and runs sshd on that port, or pin the key with hostKey.",
    );
  }
  return parseHostKeys(stdout);
}

/** The host key did not match the pinned or recorded one: ssh refused to connect. */
export class HostKeyMismatchError extends Error {
  constructor(target: SshTarget, cause: ToolError) {
    super(
      `the SSH host key of ${target.host}:${target.port} does not match the expected key ` +
        "(the pinned hostKey, or the one recorded at the first connection), so ssh refused to " +
        "connect. If the host's key was changed on purpose, set hostKey to the new key " +
        `(ssh-keyscan -p ${target.port} ${target.host}); otherwise the connection may be intercepted.\n` +
        `ssh said:\n${cause.tail.join("\n")}`,
      { cause },
    );
    this.name = "HostKeyMismatchError";
  }
}

export interface RemoteRunOptions {
  /** Data for the remote command's standard input. */
  input?: string | Buffer | Readable;
  timeoutMs?: number;
}

/** A connection context: run commands on the host and write files there. */
export interface SshSession {
  /** Runs `argv` on the host (each word quoted for the remote shell); rejects on failure. */
  run(argv: readonly string[], options?: RemoteRunOptions): Promise<RunResult>;
  /**
   * Writes `data` to `path` on the host: into a temporary name in the same directory, then
   * renamed, so the file is complete or absent. Creates the directory.
   */
  writeFile(path: string, data: string | Buffer, options?: { timeoutMs?: number }): Promise<void>;
  /**
   * Copies the local `file` to `path` on the host, like writeFile, in bounded memory and sending
   * only its data (holes stay holes: upload.ts). Kept only if its bytes hash to `sha256`; when
   * they do not (it changed since it was hashed), rejects with FileChangedError.
   */
  upload(
    path: string,
    file: string,
    sha256: string,
    options?: { timeoutMs?: number },
  ): Promise<void>;
}

/** The local file sent by `upload` no longer hashed to the sha256 expected: nothing was kept. */
export class FileChangedError extends Error {
  constructor(readonly file: string) {
    super(`${file} changed while it was being sent`);
    this.name = "FileChangedError";
  }
}

const q = (argv: string[]) => formatCommand(argv[0], argv.slice(1));

/**
 * A script that makes `path`'s directory, runs `write` (which fills `temp`, beside `path`) and
 * renames `temp` to `path`, so the file is complete or absent; on failure `temp` goes. umask
 * 077: what it makes is its owner's alone.
 */
function atomicWriteScript(path: string, temp: string, write: string): string {
  return (
    `umask 077 && ${q(["mkdir", "-p", "--", dirname(path)])} && ` +
    `{ ${write} && ${q(["mv", "-f", "--", temp, path])}; } || ` +
    `{ ${q(["rm", "-f", "--", temp])}; exit 1; }`
  );
}

/** A fresh temporary name beside `path` on the host. */
const tempBeside = (path: string) => join(dirname(path), `.${randomBytes(6).toString("hex")}.tmp`);

/**
 * Runs `work` with a session on `target` that trusts only `hostKeys`. The private key is written
 * to a 0600 file in a fresh private scratch directory (core/scratch.ts) and removed, with it, whatever
 * happens. With `logFile`, every command and what it printed is appended there (never the data
 * sent to it).
 */
export async function withSsh<T>(
  target: SshTarget,
  hostKeys: readonly string[],
  work: (session: SshSession) => Promise<T>,
  logFile?: string,
): Promise<T> {
  return withScratch({ name: "ssh" }, async (dir) => {
    const keyFile = join(dir, "id");
    const knownHosts = join(dir, "known_hosts");
    // OpenSSH rejects a key file without its final newline ("invalid format").
    const key = target.privateKey.endsWith("\n") ? target.privateKey : `${target.privateKey}\n`;
    await writeFile(keyFile, key, { mode: 0o600 });
    await writeFile(knownHosts, hostKeys.map((k) => `${HOST_KEY_ALIAS} ${k}\n`).join(""));
    const sshArgs = [
      "-F",
      "none",
      "-i",
      keyFile,
      "-p",
      String(target.port),
      "-o",
      "BatchMode=yes",
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      `UserKnownHostsFile=${knownHosts}`,
      "-o",
      "GlobalKnownHostsFile=/dev/null",
      "-o",
      `HostKeyAlias=${HOST_KEY_ALIAS}`,
      "-o",
      "CheckHostIP=no",
      "-o",
      "UpdateHostKeys=no",
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      "IdentityAgent=none",
      "-o",
      "ConnectTimeout=20",
      "-o",
      "ServerAliveInterval=15",
      "-o",
      "LogLevel=ERROR",
      "--",
      `${target.user}@${target.host}`,
    ];
    const remote = async (command: string, options: RemoteRunOptions = {}) => {
      try {
        return await run("ssh", [...sshArgs, command], {
          input: options.input,
          timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
          logFile,
        });
      } catch (error) {
        if (
          error instanceof ToolError &&
          error.tail.some((l) => l.includes("Host key verification failed"))
        ) {
          throw new HostKeyMismatchError(target, error);
        }
        throw error;
      }
    };
    const session: SshSession = {
      run: (argv, options) => remote(formatCommand(argv[0], argv.slice(1)), options),
      async writeFile(path, data, options) {
        const temp = tempBeside(path);
        const script = atomicWriteScript(path, temp, `${q(["cat"])} > ${q([temp])}`);
        await remote(script, { input: data, timeoutMs: options?.timeoutMs });
      },
      async upload(path, file, sha256, options) {
        const temp = tempBeside(path);
        const sending = await sparseUpload(file, sha256, temp);
        try {
          await remote(atomicWriteScript(path, temp, sending.write), {
            input: sending.input,
            timeoutMs: options?.timeoutMs,
          });
        } catch (error) {
          if (sending.changed()) throw new FileChangedError(file);
          throw error;
        }
      },
    };
    return await work(session);
  });
}
