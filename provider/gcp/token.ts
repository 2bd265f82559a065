// An OAuth access token for the Compute Engine API, found the way a user already has one: the
// variable the Pulumi gcp provider reads, else the gcloud CLI's login. This package adds no
// Google client library, so service-account key files go through gcloud
// (`gcloud auth activate-service-account`) or a token minted outside.
import { run } from "../exec";

/** The token variable the gcp provider (and Terraform's google provider) honour. */
export const TOKEN_VARIABLE = "GOOGLE_OAUTH_ACCESS_TOKEN";

export async function accessToken(): Promise<string> {
  const fromEnv = process.env[TOKEN_VARIABLE]?.trim();
  if (fromEnv) return fromEnv;
  try {
    const { stdout } = await run("gcloud", ["auth", "print-access-token"], { timeoutMs: 60_000 });
    const token = stdout.trim();
    if (token !== "") return token;
  } catch (error) {
    throw new Error(
      `no Google Cloud access token to read the serial console: set ${TOKEN_VARIABLE}, or install ` +
        `the gcloud CLI and run \`gcloud auth login\`. (${(error as Error).message})`,
      { cause: error },
    );
  }
  throw new Error(
    `\`gcloud auth print-access-token\` printed nothing: run \`gcloud auth login\` or set ${TOKEN_VARIABLE}`,
  );
}
