// The instances of an EC2 Auto Scaling group that run a given launch template version, read
// through the Auto Scaling API (DescribeAutoScalingGroups): @pulumi/aws's group does not output
// its instances, and a rolling refresh runs old and new ones side by side. When they do not come,
// the group's recent scaling activities say why (capacity, quota, a refused launch).
import { setTimeout as sleep } from "node:timers/promises";
import type {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommandOutput,
} from "@aws-sdk/client-auto-scaling";

/** A group and a version of its launch template. */
export interface GroupVersion {
  name: string;
  launchTemplateId: string;
  version: number;
}

/** A group and the template version whose instances to find. */
export interface GroupRef extends GroupVersion {
  /** How many such instances the group runs. */
  size: number;
}

/** What the API says of one of a group's instances, with its template version here. */
export interface GroupInstance {
  id: string;
  state: string;
  health: string;
  /** The version of the group's template it was launched from; "" for another template. */
  version: string;
}

export interface GroupOptions {
  /** Default: the SDK's chain. */
  region?: string;
  deadline: number;
  /** Between polls. Default: 5000. */
  pollMs?: number;
  signal?: AbortSignal;
}

/** Lifecycle states in which an instance exists and is not on its way out. */
export const LIVE = new Set(["Pending", "Pending:Wait", "Pending:Proceed", "InService"]);

/** An Auto Scaling client of the SDK's credential chain, loaded when first needed. */
export async function autoScalingClient(region?: string): Promise<AutoScalingClient> {
  const { AutoScalingClient } = await import("@aws-sdk/client-auto-scaling");
  return new AutoScalingClient({ region, maxAttempts: 8 });
}

/** An error of the API, with the group it was about. */
export function apiFailure(what: string, group: GroupVersion, error: unknown): Error {
  return new Error(
    `${what} of Auto Scaling group ${group.name} failed: ${(error as Error).name}: ${(error as Error).message}`,
    { cause: error },
  );
}

/** The group's instances; fails at once when there is no such group or the API refuses. */
export async function describeGroup(
  autoscaling: AutoScalingClient,
  group: GroupVersion,
  options: Pick<GroupOptions, "region" | "signal">,
): Promise<GroupInstance[]> {
  const { DescribeAutoScalingGroupsCommand } = await import("@aws-sdk/client-auto-scaling");
  let answer: DescribeAutoScalingGroupsCommandOutput;
  try {
    answer = await autoscaling.send(
      new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [group.name] }),
      { abortSignal: options.signal },
    );
  } catch (error) {
    throw apiFailure("reading the instances", group, error);
  }
  const described = answer.AutoScalingGroups?.[0];
  if (!described) {
    throw new Error(
      `there is no Auto Scaling group ${group.name}${options.region ? ` in ${options.region}` : ""}: was it deleted outside Pulumi? Run \`pulumi refresh\``,
    );
  }
  return (described.Instances ?? []).map((i) => ({
    id: i.InstanceId ?? "",
    state: i.LifecycleState ?? "no state",
    health: i.HealthStatus ?? "no health",
    version:
      i.LaunchTemplate?.LaunchTemplateId === group.launchTemplateId
        ? (i.LaunchTemplate.Version ?? "")
        : "",
  }));
}

/** The last failed or cancelled scaling activities' messages: why instances did not come. */
export async function failedActivities(
  autoscaling: AutoScalingClient,
  group: GroupVersion,
  signal: AbortSignal | undefined,
): Promise<string[]> {
  const { DescribeScalingActivitiesCommand } = await import("@aws-sdk/client-auto-scaling");
  try {
    const answer = await autoscaling.send(
      new DescribeScalingActivitiesCommand({ AutoScalingGroupName: group.name, MaxRecords: 10 }),
      { abortSignal: signal },
    );
    return (answer.Activities ?? [])
      .filter((a) => a.StatusCode === "Failed" || a.StatusCode === "Cancelled")
      .map((a) => `${a.Description ?? "an activity"}: ${a.StatusMessage ?? a.StatusCode}`);
  } catch (error) {
    return [`(the scaling activities could not be read: ${(error as Error).message})`];
  }
}

/** Instances as lines of an error message, and the failed activities after them. */
export function describeTrouble(instances: GroupInstance[], activities: string[]): string {
  const states = instances.map((i) => `  ${i.id}: ${i.state}, ${i.health}`);
  return (
    (states.length > 0 ? states.join("\n") : "  (none yet)") +
    (activities.length > 0
      ? `\nFailed scaling activities:\n${activities.map((a) => `  ${a}`).join("\n")}`
      : "")
  );
}

/**
 * Waits until `size` instances of the group run the template version, and returns their ids,
 * sorted. Fails at the deadline naming each such instance's state and the group's failed
 * scaling activities; at once when there is no such group or the API refuses the call.
 */
export async function groupInstances(group: GroupRef, options: GroupOptions): Promise<string[]> {
  const autoscaling = await autoScalingClient(options.region);
  for (;;) {
    const found = (await describeGroup(autoscaling, group, options)).filter(
      (i) => i.version === String(group.version),
    );
    const live = found.filter((i) => i.id && LIVE.has(i.state));
    if (live.length >= group.size) return live.map((i) => i.id).sort();
    const left = options.deadline - Date.now();
    if (left <= 0) {
      const activities = await failedActivities(autoscaling, group, options.signal);
      throw new Error(
        `Auto Scaling group ${group.name} has ${live.length} of ${group.size} instances of launch template ${group.launchTemplateId} version ${group.version}:\n${describeTrouble(found, activities)}`,
      );
    }
    await sleep(Math.min(options.pollMs ?? 5000, left), undefined, { signal: options.signal });
  }
}
