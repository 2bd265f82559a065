// Whether an Auto Scaling group has rolled to a launch template version. @pulumi/aws starts an
// instance refresh when the group's template version changes, and does not wait for it: this
// reads DescribeInstanceRefreshes until the refresh to that version ends. Successful: every
// instance runs it, each replacement having passed the group's health checks. Failed, cancelled
// or rolled back: the refresh's own reason, with the instances and the failed scaling activities.
import { setTimeout as sleep } from "node:timers/promises";
import type { DescribeInstanceRefreshesCommandOutput } from "@aws-sdk/client-auto-scaling";
import {
  apiFailure,
  autoScalingClient,
  describeGroup,
  describeTrouble,
  failedActivities,
  type GroupOptions,
  type GroupVersion,
  LIVE,
} from "./group";

/** Refresh states that end it without the version in place. */
const FAILED = new Set(["Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed"]);

type Refresh = NonNullable<DescribeInstanceRefreshesCommandOutput["InstanceRefreshes"]>[number];

/** The latest refresh of the group to `group.version` of its template, if any. */
async function refreshTo(
  autoscaling: Awaited<ReturnType<typeof autoScalingClient>>,
  group: GroupVersion,
  signal: AbortSignal | undefined,
): Promise<Refresh | undefined> {
  const { DescribeInstanceRefreshesCommand } = await import("@aws-sdk/client-auto-scaling");
  let answer: DescribeInstanceRefreshesCommandOutput;
  try {
    answer = await autoscaling.send(
      new DescribeInstanceRefreshesCommand({ AutoScalingGroupName: group.name }),
      { abortSignal: signal },
    );
  } catch (error) {
    throw apiFailure("reading the instance refreshes", group, error);
  }
  const started = (r: Refresh) => r.StartTime?.getTime() ?? 0;
  return (answer.InstanceRefreshes ?? [])
    .filter((r) => {
      const template = r.DesiredConfiguration?.LaunchTemplate;
      return (
        template?.LaunchTemplateId === group.launchTemplateId &&
        template?.Version === String(group.version)
      );
    })
    .sort((a, b) => started(b) - started(a))[0];
}

/**
 * Waits until the group runs `version` everywhere: its refresh to that version succeeded, or no
 * refresh was needed (a new group starts on it). Returns how it ended; fails when the refresh
 * failed, was cancelled or rolled back, and at the deadline, saying why.
 */
export async function waitForRefresh(group: GroupVersion, options: GroupOptions): Promise<string> {
  const autoscaling = await autoScalingClient(options.region);
  const what = `Auto Scaling group ${group.name}'s move to launch template ${group.launchTemplateId} version ${group.version}`;
  for (;;) {
    const refresh = await refreshTo(autoscaling, group, options.signal);
    const status = refresh?.Status ?? "";
    if (status === "Successful") return `instance refresh ${refresh?.InstanceRefreshId} Successful`;
    if (FAILED.has(status)) {
      const instances = await describeGroup(autoscaling, group, options);
      const activities = await failedActivities(autoscaling, group, options.signal);
      const back =
        status === "RollbackSuccessful" ? " (the group is back on its previous version)" : "";
      throw new Error(
        `${what} ended ${status}${back}: ${refresh?.StatusReason ?? "no reason given"}\n${describeTrouble(instances, activities)}`,
      );
    }
    const instances = await describeGroup(autoscaling, group, options);
    const live = instances.filter((i) => LIVE.has(i.state));
    if (!refresh && live.length > 0 && live.every((i) => i.version === String(group.version)))
      return `no refresh needed: every instance runs version ${group.version}`;
    const left = options.deadline - Date.now();
    if (left <= 0) {
      const activities = await failedActivities(autoscaling, group, options.signal);
      const state = refresh
        ? `is still ${status} (${refresh.PercentageComplete ?? 0}% done)`
        : "has not started: no instance refresh to it exists";
      throw new Error(`${what} ${state}:\n${describeTrouble(instances, activities)}`);
    }
    await sleep(Math.min(options.pollMs ?? 5000, left), undefined, { signal: options.signal });
  }
}
