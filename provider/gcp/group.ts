// The new VMs of a regional managed instance group, read through the Compute Engine API
// (regionInstanceGroupManagers.listManagedInstances): @pulumi/gcp's group resource does not
// output its instances, and a rolling update runs old and new VMs side by side.
import { setTimeout as sleep } from "node:timers/promises";
import { apiMessage, apiRequest } from "./api";
import type { Authorize } from "./auth";
import { SerialWaitError } from "./serial";

/** A regional managed instance group. */
export interface GroupRef {
  project: string;
  region: string;
  name: string;
}

/** What listManagedInstances says about one VM (the fields used here). */
interface ManagedInstance {
  instance?: string;
  instanceStatus?: string;
  currentAction?: string;
  version?: { instanceTemplate?: string };
  lastAttempt?: { errors?: { errors?: { message?: string }[] } };
}

/** Parses a group manager's selfLink or `projects/P/regions/R/instanceGroupManagers/N` path. */
export function parseGroup(ref: string): GroupRef {
  const m = /(?:^|\/)projects\/([^/]+)\/regions\/([^/]+)\/instanceGroupManagers\/([^/?#]+)$/.exec(
    ref,
  );
  if (!m) {
    throw new SerialWaitError(
      `"${ref}" is not a regional instance group manager: expected a selfLink or projects/P/regions/R/instanceGroupManagers/N`,
    );
  }
  return { project: m[1], region: m[2], name: m[3] };
}

/** A template URL's name: versions name templates by selfLink, with or without `?uniqueId=`. */
function templateName(link: string | undefined): string {
  return (link ?? "").split("?")[0].split("/").at(-1) ?? "";
}

/** States in which a VM exists and its serial console can be read. */
const STARTED = new Set([
  "RUNNING",
  "STOPPING",
  "STOPPED",
  "TERMINATED",
  "SUSPENDING",
  "SUSPENDED",
]);

async function listManaged(
  endpoint: string,
  group: GroupRef,
  authorize: Authorize,
  signal: AbortSignal | undefined,
): Promise<ManagedInstance[]> {
  const base = `${endpoint}/projects/${encodeURIComponent(group.project)}/regions/${encodeURIComponent(group.region)}/instanceGroupManagers/${encodeURIComponent(group.name)}/listManagedInstances`;
  const all: ManagedInstance[] = [];
  let pageToken: string | undefined;
  do {
    const url = pageToken ? `${base}?pageToken=${encodeURIComponent(pageToken)}` : base;
    const answer = await apiRequest(url, authorize, { method: "POST", signal });
    if (answer.status !== 200) {
      throw new SerialWaitError(
        `listing the instances of group ${group.name} (region ${group.region}, project ${group.project}) failed: HTTP ${answer.status}: ${apiMessage(answer.body)}`,
      );
    }
    const page = JSON.parse(answer.body) as {
      managedInstances?: ManagedInstance[];
      nextPageToken?: string;
    };
    all.push(...(page.managedInstances ?? []));
    pageToken = page.nextPageToken;
  } while (pageToken);
  return all;
}

function describe(m: ManagedInstance): string {
  const name = (m.instance ?? "").split("/").at(-1) || "(not created yet)";
  const errors = (m.lastAttempt?.errors?.errors ?? []).map((e) => e.message).filter(Boolean);
  return `${name}: ${m.instanceStatus ?? "no status"}, ${m.currentAction ?? "no action"}${errors.length > 0 ? ` (${errors.join("; ")})` : ""}`;
}

export interface NewInstancesOptions {
  endpoint: string;
  authorize: Authorize;
  /** The template the new VMs are made from (its selfLink). */
  template: string;
  /** How many new VMs the group must have. */
  size: number;
  deadline: number;
  pollMs?: number;
  signal?: AbortSignal;
}

/**
 * Waits until `size` VMs of the group run the template, and returns their selfLinks, sorted.
 * Fails at the deadline naming each new VM's state and the errors GCE gave for it (quota, an
 * organization policy refusing the instance, ...).
 */
export async function newInstances(
  group: GroupRef,
  options: NewInstancesOptions,
): Promise<string[]> {
  const wanted = templateName(options.template);
  const pollMs = options.pollMs ?? 5000;
  for (;;) {
    const managed = await listManaged(options.endpoint, group, options.authorize, options.signal);
    const fresh = managed.filter((m) => templateName(m.version?.instanceTemplate) === wanted);
    const started = fresh.filter((m) => m.instance && STARTED.has(m.instanceStatus ?? ""));
    if (started.length >= options.size) {
      return started.map((m) => m.instance as string).sort();
    }
    const left = options.deadline - Date.now();
    if (left <= 0) {
      throw new SerialWaitError(
        `group ${group.name} (region ${group.region}, project ${group.project}) has ${started.length} of ${options.size} VMs of template ${wanted} running:\n` +
          (fresh.length > 0 ? fresh.map((m) => `  ${describe(m)}`).join("\n") : "  (none yet)"),
      );
    }
    await sleep(Math.min(pollMs, left), undefined, { signal: options.signal });
  }
}
