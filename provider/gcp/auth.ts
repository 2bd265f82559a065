// Credentials for the Google APIs this package calls (the serial console, a group's instances),
// found where the Pulumi gcp provider finds its own, in the same order: the provider's
// `accessToken` / `credentials` when the component was given them, GOOGLE_OAUTH_ACCESS_TOKEN,
// GOOGLE_CREDENTIALS, then Application Default Credentials through google-auth-library
// (GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC file, the metadata server, workload identity
// federation, impersonation). Credentials are never printed: errors name where they came from.
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import type { AuthClient, GoogleAuth } from "google-auth-library";

/** The scope every call needs: IAM decides what the caller may do. */
const SCOPE = "https://www.googleapis.com/auth/cloud-platform";

/** Variables the gcp provider (and Terraform's google provider) honour. */
export const TOKEN_VARIABLE = "GOOGLE_OAUTH_ACCESS_TOKEN";
export const CREDENTIALS_VARIABLE = "GOOGLE_CREDENTIALS";

/** The gcp provider's own settings, when the component was given them. */
export interface GivenCredentials {
  /** An OAuth access token (the provider's `accessToken`). */
  accessToken?: string;
  /** A credentials JSON document or the path of one (the provider's `credentials`). */
  credentials?: string;
}

/** The headers that authorize one request to `url`. */
export type Authorize = (url: string) => Promise<Record<string, string>>;

/** No credentials anywhere; `message` lists each place looked at and what was found there. */
export class NoCredentialsError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NoCredentialsError";
  }
}

const bearer =
  (token: string): Authorize =>
  async () => ({ authorization: `Bearer ${token}` });

/** A client's headers for a request, as a plain record. */
function clientHeaders(client: AuthClient): Authorize {
  return async (url) => {
    const headers = await client.getRequestHeaders(url);
    return Object.fromEntries(headers.entries());
  };
}

/**
 * A GoogleAuth that signs service-account requests itself (a self-signed JWT with the scope, as
 * Google's own client libraries do), so a key needs no token endpoint.
 */
async function googleAuth(options: {
  credentials?: object;
  projectId?: string;
  tokenUri?: string;
}): Promise<GoogleAuth> {
  const { GoogleAuth } = await import("google-auth-library");
  const auth = new GoogleAuth({
    scopes: [SCOPE],
    credentials: options.credentials,
    // Known from the instances: spares GoogleAuth asking gcloud or the metadata server.
    projectId: options.projectId,
    // An authorized_user file may name its token endpoint, as Google's Python library honours.
    clientOptions: options.tokenUri ? { endpoints: { oauth2TokenUrl: options.tokenUri } } : {},
  });
  auth.useJWTAccessWithScope = true;
  return auth;
}

/** The token endpoint an authorized_user document names, if any. */
function userTokenUri(json: unknown): string | undefined {
  const j = json as { type?: string; token_uri?: unknown } | null;
  return j?.type === "authorized_user" && typeof j.token_uri === "string" ? j.token_uri : undefined;
}

/** Parses a credentials setting: the JSON itself or the path of a file holding it. */
async function credentialsJson(value: string, source: string): Promise<object> {
  const text = value.trimStart().startsWith("{")
    ? value
    : await readFile(value, "utf8").catch((error: NodeJS.ErrnoException) => {
        // The value is not JSON, so it is a path: safe to show.
        throw new Error(
          `${source} is neither a credentials JSON document nor a readable file: ${value} (${error.code ?? error.message})`,
        );
      });
  try {
    const json: unknown = JSON.parse(text);
    if (typeof json !== "object" || json === null || Array.isArray(json)) throw new Error();
    return json;
  } catch {
    // Never echo the text: it may be a key.
    throw new Error(`${source} does not hold a credentials JSON object`);
  }
}

async function fromJson(json: object, projectId: string | undefined): Promise<Authorize> {
  const auth = await googleAuth({ credentials: json, projectId, tokenUri: userTokenUri(json) });
  return clientHeaders(await auth.getClient());
}

/** Where gcloud keeps Application Default Credentials (`gcloud auth application-default login`). */
export function gcloudAdcFile(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.CLOUDSDK_CONFIG || join(env.HOME || homedir(), ".config", "gcloud");
  return join(dir, "application_default_credentials.json");
}

/**
 * How to authorize Google API requests, from the first place that holds credentials. A setting
 * that is present but unusable fails here, naming it, rather than falling through to the next.
 */
export async function authorizer(
  given: GivenCredentials = {},
  projectId?: string,
): Promise<Authorize> {
  const env = process.env;
  if (given.accessToken) return bearer(given.accessToken);
  if (given.credentials) {
    return fromJson(
      await credentialsJson(given.credentials, "the gcp provider's credentials"),
      projectId,
    );
  }
  const token = env[TOKEN_VARIABLE]?.trim();
  if (token) return bearer(token);
  const fromVariable = env[CREDENTIALS_VARIABLE]?.trim();
  if (fromVariable) {
    return fromJson(await credentialsJson(fromVariable, CREDENTIALS_VARIABLE), projectId);
  }

  const auth = await googleAuth({ projectId });
  let client: AuthClient;
  try {
    client = await auth.getClient();
  } catch (error) {
    const adcFile = env.GOOGLE_APPLICATION_CREDENTIALS;
    const metadata = env.GCE_METADATA_HOST || env.GCE_METADATA_IP || "169.254.169.254";
    throw new NoCredentialsError(
      "no Google Cloud credentials to call the Compute Engine API with. Looked at, in order:\n" +
        "  - the gcp provider given to the component: no accessToken or credentials\n" +
        `  - ${TOKEN_VARIABLE}: not set\n` +
        `  - ${CREDENTIALS_VARIABLE}: not set\n` +
        `  - GOOGLE_APPLICATION_CREDENTIALS: ${adcFile ? `${adcFile} unusable` : "not set"}\n` +
        `  - gcloud's Application Default Credentials file ${gcloudAdcFile(env)}: none\n` +
        `  - the metadata server (${metadata}): not reachable\n` +
        `(${(error as Error).message})\n` +
        "Run `gcloud auth application-default login`, or set one of the variables above.",
      { cause: error },
    );
  }
  // A user login file may name its own token endpoint: honour it.
  const tokenUri = userTokenUri(auth.jsonContent);
  if (tokenUri && auth.jsonContent) return fromJson(auth.jsonContent, projectId);
  return clientHeaders(client);
}
