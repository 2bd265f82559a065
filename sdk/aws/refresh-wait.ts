import * as pulumi from "@pulumi/pulumi";
import { engineProvider } from "../engine";

export interface Ec2RefreshWaitArgs {
  /** The group, and the version of its launch template it must run everywhere. */
  group: {
    name: pulumi.Input<string>;
    launchTemplateId: pulumi.Input<string>;
    /** A version number (a rollback needs one). */
    version: pulumi.Input<number>;
  };
  /** How long the rollout may take, from above 0 to 2147483. */
  timeoutSeconds: pulumi.Input<number>;
  /** The group's region. Default: the AWS SDK's (AWS_REGION, the profile's region, ...). */
  region?: pulumi.Input<string>;
}

/**
 * Waits, when created, until an EC2 Auto Scaling group runs a launch template version on every
 * instance: the instance refresh @pulumi/aws starts for a new version succeeded (each replacement
 * healthy before an old instance went), or none was needed. Fails with the refresh's reason, the
 * instances and the failed scaling activities when it fails, is cancelled or rolls back.
 * Credentials: the AWS SDK's standard chain. A new version replaces it, and it waits again.
 */
export class Ec2RefreshWait extends pulumi.dynamic.Resource {
  /** How the move ended: the refresh and its status, or that none was needed. */
  declare readonly outcome: pulumi.Output<string>;

  constructor(name: string, args: Ec2RefreshWaitArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      engineProvider("ec2-refresh-wait"),
      name,
      { ...args, outcome: undefined },
      opts,
      "pulumi-mirage",
      "Ec2RefreshWait",
    );
  }
}
