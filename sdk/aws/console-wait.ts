import * as pulumi from "@pulumi/pulumi";
import { engineProvider } from "../engine";

export interface Ec2ConsoleWaitArgs {
  /** Instance ids to watch. */
  instances: pulumi.Input<pulumi.Input<string>[]>;
  /** A regular expression (its source text) each instance's console output must match. */
  pattern: pulumi.Input<string>;
  /** How long each instance may take to print it. */
  timeoutSeconds: pulumi.Input<number>;
  /** The instances' region. Default: the AWS SDK's (AWS_REGION, the profile's region, ...). */
  region?: pulumi.Input<string>;
}

/**
 * Waits, when created, until every listed EC2 instance's console output (GetConsoleOutput, with
 * the AWS SDK's standard credential chain) matches a pattern; fails with the console's last lines
 * otherwise. Other instances replace it, and it waits again.
 */
export class Ec2ConsoleWait extends pulumi.dynamic.Resource {
  /** The matched text, per instance id. */
  declare readonly matched: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: Ec2ConsoleWaitArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      engineProvider("ec2-console-wait"),
      name,
      { ...args, matched: undefined },
      opts,
      "pulumi-mirage",
      "Ec2ConsoleWait",
    );
  }
}
