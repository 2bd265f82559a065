import * as pulumi from "@pulumi/pulumi";
import { engineProvider } from "../engine";

export interface Ec2ConsoleWaitArgs {
  /** Instance ids to watch; or give `group`. */
  instances?: pulumi.Input<pulumi.Input<string>[]>;
  /**
   * An Auto Scaling group: its instances launched from `version` of the launch template (`size`
   * of them) are found through the Auto Scaling API, and each one's console is watched.
   * Default: none.
   */
  group?: {
    /** The group's name. */
    name: pulumi.Input<string>;
    /** The launch template its instances come from. */
    launchTemplateId: pulumi.Input<string>;
    /** The template's version (a number) the instances to watch were launched from. */
    version: pulumi.Input<number>;
    /** How many such instances the group runs. */
    size: number;
  };
  /** A regular expression (its source text) each instance's console output must match. */
  pattern: pulumi.Input<string>;
  /** How long each instance may take to print it. */
  timeoutSeconds: pulumi.Input<number>;
  /** The instances' region. Default: the AWS SDK's (AWS_REGION, the profile's region, ...). */
  region?: pulumi.Input<string>;
}

/**
 * Waits, when created, until every listed EC2 instance's console output (GetConsoleOutput, with
 * the AWS SDK's standard credential chain) matches a pattern; fails naming each instance that did
 * not, with its console's last lines. Other instances, or a group's new launch template version,
 * replace it, and it waits again.
 */
export class Ec2ConsoleWait extends pulumi.dynamic.Resource {
  /** The matched text, per instance id. */
  declare readonly matched: pulumi.Output<Record<string, string>>;
  /** The ids of the instances waited for (a group's, found through the API). */
  declare readonly waited: pulumi.Output<string[]>;

  constructor(name: string, args: Ec2ConsoleWaitArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      engineProvider("ec2-console-wait"),
      name,
      { ...args, matched: undefined, waited: undefined },
      opts,
      "pulumi-mirage",
      "Ec2ConsoleWait",
    );
  }
}
