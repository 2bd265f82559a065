// How an EC2 host reaches its kernel, tender and secret boot arguments (the AWS module of
// sdk/host/script.ts). The instance role's temporary credentials come from the instance metadata
// service (IMDSv2: a PUT for a session token, then the role's name and credentials). Objects come
// from S3, signed by curl's SigV4 (`--aws-sigv4`, in Debian 12's curl 7.88). S3 refuses any SigV4
// request without `x-amz-content-sha256`, which that curl does not add: the script sends the
// empty body's sha256, and curl signs it along. Secret boot arguments come from SSM Parameter
// Store (GetParameter with decryption, a SecureString), by name and version. The credentials
// reach curl on its standard input (`-K -`), never on its command line, which every process on
// the instance can read.
import { type HostCloud, type HostScriptSpec, renderHostScript } from "../host/script";
import { checkServiceUrl, shellQuote } from "../host/shell";

/** sha256 of an empty body: the `x-amz-content-sha256` of a GET. */
export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

export interface AwsHostEndpoints {
  region: string;
  /** The instance metadata service. Default: `http://169.254.169.254`. */
  metadataUrl?: string;
  /** SSM's endpoint. Default: `https://ssm.REGION.amazonaws.com`. */
  ssmUrl?: string;
}

/** An SSM parameter and the version to read: `NAME:VERSION`. */
const PARAMETER = /^\/?[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*:[1-9][0-9]{0,9}$/;

function checkEndpoints(aws: AwsHostEndpoints): void {
  if (!/^[a-z]{2}(-[a-z]+)+-[0-9]+$/.test(aws.region)) {
    throw new Error(`region ${JSON.stringify(aws.region)} is not an AWS region name`);
  }
  checkServiceUrl("metadataUrl", aws.metadataUrl);
  checkServiceUrl("ssmUrl", aws.ssmUrl);
}

export function awsHost(aws: AwsHostEndpoints): HostCloud {
  checkEndpoints(aws);
  const library = `REGION=${shellQuote(aws.region)}
METADATA=${shellQuote(aws.metadataUrl ?? "http://169.254.169.254")}
SSM=${shellQuote(aws.ssmUrl ?? `https://ssm.${aws.region}.amazonaws.com`)}

# A field of the credentials JSON in $credentials.
field() {
  printf '%s\\n' "$credentials" | sed -n "s/.*\\"$1\\" *: *\\"\\([^\\"]*\\)\\".*/\\1/p" | head -n 1
}

# The instance role's credentials, as curl options for -K.
aws_credentials() {
  token=$(http "getting a token from the instance metadata service (IMDSv2)" "" -X PUT \\
    -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$METADATA/latest/api/token")
  role=$(http "reading the instance's IAM role (is an instance profile attached?)" "" \\
    -H "X-aws-ec2-metadata-token: $token" "$METADATA/latest/meta-data/iam/security-credentials/")
  case $role in
  '' | *[!A-Za-z0-9+=,.@_-]*) fail "the metadata service names no usable IAM role" ;;
  esac
  credentials=$(http "reading the credentials of the role $role" "" \\
    -H "X-aws-ec2-metadata-token: $token" "$METADATA/latest/meta-data/iam/security-credentials/$role")
  key=$(field AccessKeyId)
  secret=$(field SecretAccessKey)
  session=$(field Token)
  # They go into a curl config file, where a quote would end the value.
  case "$key:$secret:$session" in
  :* | *::* | *: | *[!A-Za-z0-9/+=:]*) fail "the credentials of the role $role are not in the metadata service's format" ;;
  esac
  printf 'user = "%s:%s"\\nheader = "x-amz-security-token: %s"\\n' "$key" "$secret" "$session"
}

# fetch_object STEP URL FILE: S3 GetObject.
fetch_object() {
  config=$(aws_credentials)
  printf '%s\\n' "$config" | http "$1" "$3" -K - --aws-sigv4 "aws:amz:$REGION:s3" \\
    -H "x-amz-content-sha256: ${EMPTY_SHA256}" "$2"
}

# read_secret STEP NAME:VERSION: an SSM SecureString's value.
read_secret() {
  config=$(aws_credentials)
  answer=$(printf '%s\\n' "$config" | http "$1" "" -K - --aws-sigv4 "aws:amz:$REGION:ssm" \\
    -H 'Content-Type: application/x-amz-json-1.1' -H 'X-Amz-Target: AmazonSSM.GetParameter' \\
    --data-binary "{\\"Name\\":\\"$2\\",\\"WithDecryption\\":true}" "$SSM/")
  # The value as JSON has it; one with an escape in it is not one we wrote.
  value=$(printf '%s\\n' "$answer" | sed -n 's/.*"Value" *: *"\\([^"\\\\]*\\)".*/\\1/p')
  if [ -z "$value" ]; then fail "$1: the answer holds no value that pulumi-mirage wrote"; fi
  printf '%s\\n' "$value"
}
`;
  return {
    name: "AWS EC2",
    library,
    // User data runs at the first boot only.
    everyBoot: false,
    checkSecret(ref) {
      if (!PARAMETER.test(ref)) {
        throw new Error(
          `bootArgs: ${JSON.stringify(ref)} is not an SSM parameter name with its version (NAME:VERSION)`,
        );
      }
    },
  };
}

/** The user data of an EC2 host instance. */
export function renderAwsHostScript(spec: HostScriptSpec, aws: AwsHostEndpoints): string {
  return renderHostScript(spec, awsHost(aws));
}
