// Reading a file as the user nobody, to prove a secret on disk is its owner's alone (needs root).
import { execFile } from "node:child_process";
import { join, relative } from "node:path";
import { promisify } from "node:util";

const exec = promisify(execFile);
const q = (word: string) => `'${word.replaceAll("'", "'\\''")}'`;

/**
 * Reads `file` as nobody, through the directories from `root` down: `root` is bound onto /mnt in
 * a private mount namespace, so the private directories above it (the test run's TMPDIR) do not
 * decide, only `root` and what is below it. Resolves with what `cat` said when it could not.
 */
export async function readAsNobody(
  root: string,
  file: string,
): Promise<{ read: boolean; said: string }> {
  const inside = join("/mnt", relative(root, file));
  const script =
    `mount --bind ${q(root)} /mnt; ` +
    `exec setpriv --reuid=nobody --regid=nogroup --clear-groups cat -- ${q(inside)} >/dev/null`;
  return exec("unshare", ["-m", "sh", "-ec", script]).then(
    () => ({ read: true, said: "" }),
    (error: { stderr: string }) => ({ read: false, said: error.stderr }),
  );
}
