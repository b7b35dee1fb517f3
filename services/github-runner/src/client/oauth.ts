import { type KeyObject, randomUUID } from "node:crypto";
import { SignJWT } from "jose";
import type { Logger } from "pino";
import { GitHubRunnerError, HttpStatusError } from "../errors.ts";
import type { RunnerCredentials } from "../registration/runner-files.ts";
import { httpRequest, jsonOf } from "./http.ts";
import { num, prop, str } from "./wire-json.ts";

/** The client assertion lives five minutes, as the official runner's. */
const ASSERTION_LIFETIME_S = 5 * 60;

/**
 * The JWT that proves the runner holds its registered key: RS256, or PS256 when the credentials
 * require FIPS cryptography, as the official runner signs it. Claims sub = iss = clientId, aud =
 * the token endpoint, a fresh jti, nbf = now and exp = now + 5 min (no iat, like the official runner).
 */
export async function clientAssertion(
  credentials: RunnerCredentials,
  key: KeyObject,
  now = new Date(),
): Promise<string> {
  const seconds = Math.floor(now.getTime() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: credentials.requireFipsCryptography ? "PS256" : "RS256", typ: "JWT" })
    .setSubject(credentials.clientId)
    .setIssuer(credentials.clientId)
    .setAudience(credentials.authorizationUrl)
    .setJti(randomUUID())
    .setNotBefore(seconds)
    .setExpirationTime(seconds + ASSERTION_LIFETIME_S)
    .sign(key);
}

export interface AccessToken {
  token: string;
  /** When to ask for a new one: a minute before it expires. */
  refreshAt: number;
}

/**
 * The runner's OAuth access token for the pipelines service, the broker and the run service:
 * exchanged for a signed client assertion, cached, refreshed before it expires or when a call
 * answers 401. A refused assertion (`invalid_client`: the runner was deleted, or the key does
 * not match) is final.
 */
export class RunnerTokenSource {
  private current: AccessToken | undefined;
  private pending: Promise<AccessToken> | undefined;

  constructor(
    private readonly credentials: RunnerCredentials,
    private readonly key: KeyObject,
    private readonly log: Logger,
  ) {}

  async token(signal?: AbortSignal): Promise<string> {
    if (this.current && Date.now() < this.current.refreshAt) return this.current.token;
    this.pending ??= this.exchange(signal).finally(() => {
      this.pending = undefined;
    });
    this.current = await this.pending;
    return this.current.token;
  }

  /** Drops the cached token: the next call exchanges a new one. */
  invalidate(): void {
    this.current = undefined;
  }

  private async exchange(signal?: AbortSignal): Promise<AccessToken> {
    const form = new URLSearchParams({
      grant_type: "client_credentials",
      client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
      client_assertion: await clientAssertion(this.credentials, this.key),
    });
    try {
      const res = await httpRequest({
        method: "POST",
        url: this.credentials.authorizationUrl,
        headers: {
          "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
          Accept: "application/json",
        },
        body: form.toString(),
        timeoutMs: 60_000,
        ...(signal ? { signal } : {}),
      });
      const body = jsonOf(res);
      const token = str(prop(body, "access_token"));
      if (!token) throw new GitHubRunnerError("protocol_error", "the token endpoint answered without access_token");
      const expiresIn = num(prop(body, "expires_in")) ?? 3600;
      this.log.debug({ expires_in_s: expiresIn }, "runner access token renewed");
      return { token, refreshAt: Date.now() + Math.max(10, expiresIn - 60) * 1000 };
    } catch (error) {
      if (error instanceof HttpStatusError && (error.status === 400 || error.status === 401)) {
        // invalid_client is what GitHub says both for a runner it deleted and for an assertion
        // it cannot verify; its description tells which.
        throw new GitHubRunnerError(
          "credentials_refused",
          `GitHub refused the runner's credentials (${error.kind || error.status}: ${error.detail || "no detail"})`,
          "the runner was removed in GitHub (it removes runners that have not connected for a while), or .credentials_rsaparams no longer holds the registered key, or this machine's clock is more than 5 minutes off; fix the clock or register again",
          { cause: error },
        );
      }
      throw error;
    }
  }
}
