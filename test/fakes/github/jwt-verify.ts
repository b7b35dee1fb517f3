import { constants, type KeyObject, verify } from "node:crypto";

export interface VerifiedAssertion {
  clientId: string;
}

/** Why an assertion was refused; `deleted` when the client (runner) is unknown. */
export class AssertionError extends Error {
  constructor(
    readonly reason: "malformed" | "unknown_client" | "bad_signature" | "bad_claims" | "expired",
    message: string,
  ) {
    super(message);
  }
}

const SKEW_S = 5 * 60;

function part(text: string | undefined, what: string): Record<string, unknown> {
  try {
    const value = JSON.parse(Buffer.from(text ?? "", "base64url").toString("utf8")) as unknown;
    if (typeof value === "object" && value !== null) return value as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new AssertionError("malformed", `the client assertion's ${what} is not base64url JSON`);
}

/**
 * Checks a runner's client assertion as GitHub's token service does (protocol doc §2): RS256 or
 * PS256, signed by the key registered for `sub`; iss = sub; aud = the token endpoint; exp and nbf
 * within five minutes of skew; iat optional.
 */
export function verifyAssertion(
  jwt: string,
  audience: string,
  publicKeyOf: (clientId: string) => KeyObject | undefined,
  now = Date.now(),
): VerifiedAssertion {
  const [head, body, signature, extra] = jwt.split(".");
  if (extra !== undefined || !signature) throw new AssertionError("malformed", "the client assertion is not a JWS");
  const header = part(head, "header");
  const claims = part(body, "claims");
  const clientId = typeof claims.sub === "string" ? claims.sub : "";
  const key = publicKeyOf(clientId);
  if (!key) throw new AssertionError("unknown_client", `no runner has client id ${clientId || "(none)"}`);
  const data = Buffer.from(`${head}.${body}`);
  const sig = Buffer.from(signature, "base64url");
  let ok: boolean;
  if (header.alg === "RS256") {
    ok = verify("sha256", data, { key, padding: constants.RSA_PKCS1_PADDING }, sig);
  } else if (header.alg === "PS256") {
    ok = verify("sha256", data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig);
  } else {
    throw new AssertionError("malformed", `alg ${String(header.alg)} is not accepted (RS256 or PS256)`);
  }
  if (!ok)
    throw new AssertionError(
      "bad_signature",
      "the client assertion's signature does not verify against the runner's registered public key",
    );
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (claims.iss !== clientId || !aud.includes(audience)) {
    throw new AssertionError("bad_claims", `the client assertion must have iss = sub and aud = ${audience}`);
  }
  const seconds = now / 1000;
  if (typeof claims.exp !== "number") throw new AssertionError("bad_claims", "the client assertion has no exp");
  if (claims.exp < seconds - SKEW_S) {
    throw new AssertionError(
      "expired",
      `the client assertion expired. Current server time is ${new Date(now).toISOString()}`,
    );
  }
  if (typeof claims.nbf === "number" && claims.nbf > seconds + SKEW_S) {
    throw new AssertionError(
      "expired",
      `the client assertion is not valid yet. Current server time is ${new Date(now).toISOString()}`,
    );
  }
  return { clientId };
}
