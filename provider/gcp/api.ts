// One authorized request to a Google REST API, and the API's own words when it refuses one.
import type { Authorize } from "./auth";

/** How long one request may take before it counts as a network error. */
const REQUEST_TIMEOUT_MS = 30_000;

export interface Answer {
  status: number;
  body: string;
}

export async function apiRequest(
  url: string,
  authorize: Authorize,
  options: { method?: "GET" | "POST"; signal?: AbortSignal } = {},
): Promise<Answer> {
  const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
  const response = await fetch(url, {
    method: options.method ?? "GET",
    headers: { ...(await authorize(url)), accept: "application/json" },
    signal: options.signal ? AbortSignal.any([options.signal, timeout]) : timeout,
  });
  return { status: response.status, body: await response.text() };
}

/** The API's own explanation of a refused request, if the body carries one. */
export function apiMessage(body: string): string {
  try {
    const message = (JSON.parse(body) as { error?: { message?: string } }).error?.message;
    if (message) return message;
  } catch {
    // Not JSON: show the text.
  }
  return body.slice(0, 300);
}
