// The parts of Xen's `xl` toolstack we drive on a host: create, list, destroy.
import type { SshSession } from "./ssh";

export interface XlListEntry {
  name: string;
  id: number;
  /** MiB. */
  memory: number;
  vcpus: number;
  /** xl's six state flags, e.g. `-b----`. */
  state: string;
}

/**
 * Parses `xl list` output: a header `Name ID Mem VCPUs State Time(s)`, then one line per domain.
 * The name is everything before the last five columns.
 */
function parseXlList(stdout: string): XlListEntry[] {
  const entries: XlListEntry[] = [];
  for (const line of stdout.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields[0] === "" || (fields[0] === "Name" && fields[1] === "ID")) continue;
    const [id, memory, vcpus, state] = fields.slice(-5).map((f, i) => (i === 3 ? f : Number(f)));
    if (fields.length < 6 || ![id, memory, vcpus].every(Number.isInteger)) {
      throw new Error(`unexpected line in xl list output: ${JSON.stringify(line)}`);
    }
    entries.push({
      name: fields.slice(0, -5).join(" "),
      id: id as number,
      memory: memory as number,
      vcpus: vcpus as number,
      state: state as string,
    });
  }
  return entries;
}

/** The host's domains by name. */
export async function listDomains(ssh: SshSession): Promise<Map<string, XlListEntry>> {
  const { stdout } = await ssh.run(["xl", "list"]);
  return new Map(parseXlList(stdout).map((entry) => [entry.name, entry]));
}
