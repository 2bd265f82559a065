// How a Compute Engine host reaches its kernel, tender and secret boot arguments (the GCE module
// of sdk/host/script.ts). The VM's service account's access token comes from the metadata server,
// which answers only requests carrying `Metadata-Flavor: Google`. Objects come from Cloud
// Storage's JSON API (the object's resource with `alt=media`), secrets from Secret Manager (a
// version's `:access`, whose payload is base64), both with the token as a Bearer credential. The
// token reaches curl on its standard input (`-K -`, from a here-document), never on its command
// line, which every process on the VM can read. The grants the VM relies on are made just before
// it, and a new grant can take minutes to reach a service: a 403 is retried for a while, saying
// so on the console. GCE runs the `startup-script` at every boot.
import { type HostCloud, type HostScriptSpec, renderHostScript } from "../host/script";
import { checkServiceUrl, shellQuote } from "../host/shell";

export interface GceHostEndpoints {
  /** The metadata server. Default: `http://metadata.google.internal`. */
  metadataUrl?: string;
  /** Secret Manager. Default: `https://secretmanager.googleapis.com`. */
  secretManagerUrl?: string;
  /** How long a 403 is retried (a grant on its way), in seconds: 0 to 3600. Default: 600. */
  grantWaitSeconds?: number;
}

/** Cloud Storage's JSON API. */
export const STORAGE_URL = "https://storage.googleapis.com";

/**
 * The URL a host downloads `object` of `bucket` from: the JSON API's object resource, whose
 * content `fetch_object` asks for (`alt=media`). The object's name is one path segment, so its
 * slashes are encoded.
 */
export function gcsObjectUrl(bucket: string, object: string, base = STORAGE_URL): string {
  return `${base}/storage/v1/b/${bucket}/o/${encodeURIComponent(object)}`;
}

/** A secret version, as Secret Manager names it: `projects/P/secrets/S/versions/V`. */
const SECRET_VERSION =
  /^projects\/[a-z0-9-]{1,63}\/secrets\/[A-Za-z0-9_-]{1,255}\/versions\/[1-9][0-9]{0,9}$/;

function checkEndpoints(gce: GceHostEndpoints): void {
  checkServiceUrl("metadataUrl", gce.metadataUrl);
  checkServiceUrl("secretManagerUrl", gce.secretManagerUrl);
  const wait = gce.grantWaitSeconds;
  if (wait !== undefined && !(Number.isInteger(wait) && wait >= 0 && wait <= 3600)) {
    throw new Error(`grantWaitSeconds ${JSON.stringify(wait)}: give a whole number from 0 to 3600`);
  }
}

export function gceHost(gce: GceHostEndpoints = {}): HostCloud {
  checkEndpoints(gce);
  const library = `METADATA=${shellQuote(gce.metadataUrl ?? "http://metadata.google.internal")}
SECRET_MANAGER=${shellQuote(gce.secretManagerUrl ?? "https://secretmanager.googleapis.com")}
GRANT_WAIT=${gce.grantWaitSeconds ?? 600}

# The VM's service account's access token.
gce_token() {
  answer=$(http "getting the service account's token from the metadata server (is a service account attached?)" "" \\
    -H 'Metadata-Flavor: Google' "$METADATA/computeMetadata/v1/instance/service-accounts/default/token") || exit 1
  token=$(printf '%s\\n' "$answer" | sed -n 's/.*"access_token" *: *"\\([^"]*\\)".*/\\1/p' | head -n 1)
  # It goes into a curl config file, where a quote or a backslash would end or change it.
  case $token in
  '' | *[!A-Za-z0-9._~+/=-]*) fail "the metadata server's token is not in its format" ;;
  esac
  printf '%s\\n' "$token"
}

# gce_get STEP FILE URL: a GET with the token, the answer into FILE (stdout when FILE is "").
gce_get() {
  waited=0
  while :; do
    token=$(gce_token) || exit 1
    if try_http "$1" "$2" -K - "$3" <<EOF
header = "Authorization: Bearer $token"
EOF
    then
      return 0
    fi
    if [ "$HTTP_STATUS" != 403 ] || [ "$waited" -ge "$GRANT_WAIT" ]; then
      fail "$1: HTTP $HTTP_STATUS: $HTTP_ANSWER"
    fi
    if [ "$waited" -eq 0 ]; then
      say "$1: HTTP 403: waiting up to $GRANT_WAIT s for the service account's new grant to take effect"
    fi
    sleep 5
    waited=$((waited + 5))
  done
}

# fetch_object STEP URL FILE: a Cloud Storage object's content (URL is its JSON API resource).
fetch_object() {
  gce_get "$1" "$3" "$2?alt=media"
}

# read_secret STEP projects/P/secrets/S/versions/V: the secret version's payload.
read_secret() {
  answer=$(gce_get "$1" "" "$SECRET_MANAGER/v1/$2:access") || exit 1
  data=$(printf '%s\\n' "$answer" | sed -n 's/.*"data" *: *"\\([A-Za-z0-9+/=]*\\)".*/\\1/p' | head -n 1)
  if [ -z "$data" ]; then fail "$1: the answer holds no payload"; fi
  value=$(printf '%s' "$data" | base64 -d) || fail "$1: the payload is not base64"
  printf '%s\\n' "$value"
}
`;
  return {
    name: "Google Compute Engine",
    library,
    // GCE runs the startup-script at every boot.
    everyBoot: true,
    checkSecret(ref) {
      if (!SECRET_VERSION.test(ref)) {
        throw new Error(
          `bootArgs: ${JSON.stringify(ref)} is not a Secret Manager version (projects/PROJECT/secrets/SECRET/versions/VERSION)`,
        );
      }
    },
  };
}

/** The startup-script of a Compute Engine host VM. */
export function renderGceHostScript(spec: HostScriptSpec, gce?: GceHostEndpoints): string {
  return renderHostScript(spec, gceHost(gce));
}
