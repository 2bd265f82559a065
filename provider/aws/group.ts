// The instances of an EC2 Auto Scaling group that run a given launch template version, read
// through the Auto Scaling API (DescribeAutoScalingGroups): @pulumi/aws's group does not output
// its instances, and a rolling refresh runs old and new ones side by side. When they do not come,
// the group's recent scaling activities say why (capacity, quota, a refused launch).
import { setTimeout as sleep } from "node:timers/promises";
import type {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommandOutput,
} from "@aws-sdk/client-auto-scaling";

/** A group and the template version whose instances to find. */
export interface GroupRef {
  name: string;
  launchTemplateId: string;
  version: number;
  /** How many such instances the group runs. */
  size: number;
}

export interface GroupInstancesOptions {
  /** Default: the SDK's chain. */
  region?: string;
  deadline: number;
  /** Between polls. Default: 5000. */
  pollMs?: number;
  signal?: AbortSignal;
}

/** Lifecycle states in which an instance exists and is not on its way out. */
const LIVE = new Set(["Pending", "Pending:Wait", "Pending:Proceed", "InService"]);

async function client(region?: string): Promise<AutoScalingClient> {
  const { AutoScalingClient } = await import("@aws-sdk/client-auto-scaling");
  return new AutoScalingClient({ region, maxAttempts: 8 });
}

/** An error of the API, with the group it was about. */
function apiFailure(what: string, group: GroupRef, error: unknown): Error {
  return new Error(
    `${what} of Auto Scaling group ${group.name} failed: ${(error as Error).name}: ${(error as Error).message}`,
    { cause: error },
  );
}

/** The last failed or cancelled scaling activities' messages: why instances did not come. */
async function failedActivities(
  autoscaling: AutoScalingClient,
  group: GroupRef,
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

/**
 * Waits until `size` instances of the group run the template version, and returns their ids,
 * sorted. Fails at the deadline naming each such instance's state and the group's failed
 * scaling activities; at once when there is no such group or the API refuses the call.
 */
export async function groupInstances(
  group: GroupRef,
  options: GroupInstancesOptions,
): Promise<string[]> {
  const autoscaling = await client(options.region);
  const { DescribeAutoScalingGroupsCommand } = await import("@aws-sdk/client-auto-scaling");
  const wanted = String(group.version);
  for (;;) {
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
    const found = (described.Instances ?? []).filter(
      (i) =>
        i.LaunchTemplate?.LaunchTemplateId === group.launchTemplateId &&
        i.LaunchTemplate?.Version === wanted,
    );
    const live = found.filter((i) => i.InstanceId && LIVE.has(i.LifecycleState ?? ""));
    if (live.length >= group.size) return live.map((i) => i.InstanceId as string).sort();
    const left = options.deadline - Date.now();
    if (left <= 0) {
      const states = found.map(
        (i) =>
          `  ${i.InstanceId}: ${i.LifecycleState ?? "no state"}, ${i.HealthStatus ?? "no health"}`,
      );
      const activities = await failedActivities(autoscaling, group, options.signal);
      throw new Error(
        `Auto Scaling group ${group.name} has ${live.length} of ${group.size} instances of launch template ${group.launchTemplateId} version ${wanted}:\n` +
          (states.length > 0 ? states.join("\n") : "  (none yet)") +
          (activities.length > 0
            ? `\nFailed scaling activities:\n${activities.map((a) => `  ${a}`).join("\n")}`
            : ""),
      );
    }
    await sleep(Math.min(options.pollMs ?? 5000, left), undefined, { signal: options.signal });
  }
}
