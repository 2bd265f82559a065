// A stand-in for the EC2 Auto Scaling API, a local HTTP server answering the AWS SDK pointed at it
// (AWS_ENDPOINT_URL_AUTO_SCALING) as the service documents it: the query protocol (POST / with a
// form body, Action=...&Version=2011-01-01), XML answers (<ActionResponse><ActionResult>), errors
// as <ErrorResponse><Error><Type><Code><Message>. It plays DescribeAutoScalingGroups (a group's
// instances, each with its lifecycle state, health and launch template version; an unknown name
// is simply not listed), DescribeScalingActivities and DescribeInstanceRefreshes (newest first,
// each with its status, reason and desired configuration). Like the service, it refuses a request
// without a valid SigV4 signature for `autoscaling` (sigv4-check.ts): 403 with
// MissingAuthenticationToken, InvalidClientTokenId or SignatureDoesNotMatch.
import type { IncomingMessage } from "node:http";
import { REGION, USER } from "./fake-aws";
import { FakeHttpServer, type Reply } from "./fake-http";
import { checkSigV4 } from "./sigv4-check";

export interface FakeGroupInstance {
  id: string;
  /** Pending, InService, Terminating, ... */
  state: string;
  health: "Healthy" | "Unhealthy";
  launchTemplateId: string;
  version: number;
}

export interface FakeActivity {
  description: string;
  statusCode: "Successful" | "Failed" | "Cancelled" | "InProgress";
  statusMessage?: string;
}

export interface FakeRefresh {
  id: string;
  /** Pending, InProgress, Successful, Failed, RollbackSuccessful, ... */
  status: string;
  reason?: string;
  percentage?: number;
  launchTemplateId: string;
  version: number;
}

export interface FakeGroup {
  instances: FakeGroupInstance[];
  activities: FakeActivity[];
  /** Newest first, as the service lists them. */
  refreshes?: FakeRefresh[];
}

const NS = "http://autoscaling.amazonaws.com/doc/2011-01-01/";

export class FakeAutoScaling extends FakeHttpServer {
  readonly groups = new Map<string, FakeGroup>();
  /** The actions answered, in order. */
  readonly actions: string[] = [];
  /** Called before each DescribeAutoScalingGroups is answered: a group changing over time. */
  onDescribe: (() => void) | undefined;
  /** Called before each DescribeInstanceRefreshes is answered: a refresh moving on. */
  onDescribeRefreshes: (() => void) | undefined;

  /** What points the AWS SDK's Auto Scaling client at this server, listening on `port`. */
  env(port: number): Record<string, string> {
    return { AWS_ENDPOINT_URL_AUTO_SCALING: `http://127.0.0.1:${port}` };
  }

  protected async handle(req: IncomingMessage, body: Buffer): Promise<Reply> {
    const checked = await checkSigV4(req, body, {
      service: "autoscaling",
      region: REGION,
      identities: [USER],
    });
    if ("refused" in checked) {
      const { kind, message } = checked.refused;
      const code =
        kind === "missing"
          ? "MissingAuthenticationToken"
          : kind === "unknown-key" || kind === "token"
            ? "InvalidClientTokenId"
            : kind === "signature"
              ? "SignatureDoesNotMatch"
              : "IncompleteSignature";
      return error(403, code, message);
    }
    return this.answer(req, body);
  }

  private answer(req: IncomingMessage, body: Buffer): Reply {
    const form = new URLSearchParams(body.toString("utf8"));
    const action = form.get("Action") ?? "";
    if (req.method !== "POST" || req.url !== "/" || form.get("Version") !== "2011-01-01") {
      return error(400, "InvalidAction", `The action ${action} is not valid for this version.`);
    }
    this.actions.push(action);
    if (action === "DescribeAutoScalingGroups") {
      this.onDescribe?.();
      const names = [...form.entries()]
        .filter(([k]) => k.startsWith("AutoScalingGroupNames.member."))
        .map(([, v]) => v);
      const members = names
        .filter((name) => this.groups.has(name))
        .map((name) => groupXml(name, this.groups.get(name) as FakeGroup))
        .join("");
      return xml(
        `<DescribeAutoScalingGroupsResponse xmlns="${NS}"><DescribeAutoScalingGroupsResult><AutoScalingGroups>${members}</AutoScalingGroups></DescribeAutoScalingGroupsResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></DescribeAutoScalingGroupsResponse>`,
      );
    }
    if (action === "DescribeScalingActivities") {
      const name = form.get("AutoScalingGroupName") ?? "";
      const activities = (this.groups.get(name)?.activities ?? [])
        .map(
          (a, i) =>
            `<member><ActivityId>a-${i}</ActivityId><AutoScalingGroupName>${name}</AutoScalingGroupName><Description>${xmlText(a.description)}</Description><Cause>a test</Cause><StartTime>2026-01-01T00:00:00Z</StartTime><StatusCode>${a.statusCode}</StatusCode>${a.statusMessage ? `<StatusMessage>${xmlText(a.statusMessage)}</StatusMessage>` : ""}<Progress>100</Progress></member>`,
        )
        .join("");
      return xml(
        `<DescribeScalingActivitiesResponse xmlns="${NS}"><DescribeScalingActivitiesResult><Activities>${activities}</Activities></DescribeScalingActivitiesResult><ResponseMetadata><RequestId>r-2</RequestId></ResponseMetadata></DescribeScalingActivitiesResponse>`,
      );
    }
    if (action === "DescribeInstanceRefreshes") {
      this.onDescribeRefreshes?.();
      const name = form.get("AutoScalingGroupName") ?? "";
      const refreshes = (this.groups.get(name)?.refreshes ?? [])
        .map(
          (r) =>
            `<member><InstanceRefreshId>${r.id}</InstanceRefreshId><AutoScalingGroupName>${name}</AutoScalingGroupName><Status>${r.status}</Status>${r.reason ? `<StatusReason>${xmlText(r.reason)}</StatusReason>` : ""}<StartTime>2026-01-01T00:00:00Z</StartTime><PercentageComplete>${r.percentage ?? 0}</PercentageComplete><InstancesToUpdate>1</InstancesToUpdate><DesiredConfiguration><LaunchTemplate><LaunchTemplateId>${r.launchTemplateId}</LaunchTemplateId><Version>${r.version}</Version></LaunchTemplate></DesiredConfiguration></member>`,
        )
        .join("");
      return xml(
        `<DescribeInstanceRefreshesResponse xmlns="${NS}"><DescribeInstanceRefreshesResult><InstanceRefreshes>${refreshes}</InstanceRefreshes></DescribeInstanceRefreshesResult><ResponseMetadata><RequestId>r-3</RequestId></ResponseMetadata></DescribeInstanceRefreshesResponse>`,
      );
    }
    return error(400, "InvalidAction", `The action ${action} is not valid for this web service.`);
  }
}

function groupXml(name: string, group: FakeGroup): string {
  const instances = group.instances
    .map(
      (i) =>
        `<member><InstanceId>${i.id}</InstanceId><InstanceType>t3.micro</InstanceType><AvailabilityZone>${REGION}a</AvailabilityZone><LifecycleState>${i.state}</LifecycleState><HealthStatus>${i.health}</HealthStatus><LaunchTemplate><LaunchTemplateId>${i.launchTemplateId}</LaunchTemplateId><LaunchTemplateName>web</LaunchTemplateName><Version>${i.version}</Version></LaunchTemplate><ProtectedFromScaleIn>false</ProtectedFromScaleIn></member>`,
    )
    .join("");
  const size = group.instances.length;
  return `<member><AutoScalingGroupName>${name}</AutoScalingGroupName><AutoScalingGroupARN>arn:aws:autoscaling:${REGION}:123456789012:autoScalingGroup:1:autoScalingGroupName/${name}</AutoScalingGroupARN><MinSize>${size}</MinSize><MaxSize>${size}</MaxSize><DesiredCapacity>${size}</DesiredCapacity><DefaultCooldown>300</DefaultCooldown><AvailabilityZones><member>${REGION}a</member></AvailabilityZones><HealthCheckType>EC2</HealthCheckType><HealthCheckGracePeriod>120</HealthCheckGracePeriod><Instances>${instances}</Instances><CreatedTime>2026-01-01T00:00:00Z</CreatedTime></member>`;
}

function xml(body: string, status = 200): Reply {
  return { status, body: `<?xml version="1.0"?>\n${body}`, type: "text/xml" };
}

const xmlText = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

function error(status: number, code: string, message: string): Reply {
  return {
    ...xml(
      `<ErrorResponse xmlns="${NS}"><Error><Type>Sender</Type><Code>${code}</Code><Message>${xmlText(message)}</Message></Error><RequestId>r-0</RequestId></ErrorResponse>`,
      status,
    ),
    code,
  };
}
