import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * The runtime tokens the fakes issue: JWTs (HS256) as GitHub's and Forgejo's are, since
 * @actions/artifact reads the run and job ids from their `scp` claim
 * (`Actions.Results:<run>:<job>`, lib/internal/shared/util.js); Forgejo signs its own with the
 * instance's secret (services/actions/auth.go), which is what `secret` stands for here.
 */
export function issueRuntimeToken(claims: Record<string, unknown>, secret: Buffer): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const body = `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

/** The claims of a token this secret signed and that has not expired (`exp`, seconds), else undefined. */
export function verifyRuntimeToken(token: string, secret: Buffer): Record<string, unknown> | undefined {
  const [header, payload, signature] = token.split(".");
  if (!header || !payload || signature === undefined) return undefined;
  const expected = Buffer.from(createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url"));
  const given = Buffer.from(signature);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as Record<string, unknown>;
    if (typeof claims.exp === "number" && claims.exp * 1000 < Date.now()) return undefined;
    return claims;
  } catch {
    return undefined;
  }
}
