import { createPrivateKey, generateKeyPairSync, type JsonWebKey, type KeyObject } from "node:crypto";
import { prop, str } from "../client/wire-json.ts";
import { GitHubRunnerError } from "../errors.ts";

/** The official runner's `.credentials_rsaparams`: the RSA private key's parameters, base64. */
export interface RsaParams {
  d: string;
  dp: string;
  dq: string;
  exponent: string;
  inverseQ: string;
  modulus: string;
  p: string;
  q: string;
}

const b64 = (b64url: string) => Buffer.from(b64url, "base64url").toString("base64");
const b64url = (base64: string) => Buffer.from(base64, "base64").toString("base64url");

/** A new runner key: RSA 2048, as the official runner makes. */
export function generateRunnerKey(): KeyObject {
  return generateKeyPairSync("rsa", { modulusLength: 2048, publicExponent: 0x10001 }).privateKey;
}

export function toRsaParams(key: KeyObject): RsaParams {
  const jwk = key.export({ format: "jwk" }) as JsonWebKey;
  const need = (v: string | undefined) => {
    if (!v) throw new Error("the runner key is not an RSA private key");
    return b64(v);
  };
  return {
    d: need(jwk.d),
    dp: need(jwk.dp),
    dq: need(jwk.dq),
    exponent: need(jwk.e),
    inverseQ: need(jwk.qi),
    modulus: need(jwk.n),
    p: need(jwk.p),
    q: need(jwk.q),
  };
}

/** Reads `.credentials_rsaparams` in either casing (JIT configs may carry PascalCase). */
export function fromRsaParams(json: unknown, file: string): KeyObject {
  const field = (name: string) => {
    const value = str(prop(json, name));
    if (!value) {
      throw new GitHubRunnerError("invalid_settings", `${file} lacks "${name}"`, "register the runner again");
    }
    return b64url(value);
  };
  try {
    return createPrivateKey({
      format: "jwk",
      key: {
        kty: "RSA",
        n: field("modulus"),
        e: field("exponent"),
        d: field("d"),
        p: field("p"),
        q: field("q"),
        dp: field("dp"),
        dq: field("dq"),
        qi: field("inverseQ"),
      },
    });
  } catch (error) {
    if (error instanceof GitHubRunnerError) throw error;
    throw new GitHubRunnerError("invalid_settings", `${file} is not a usable RSA key`, "register the runner again");
  }
}

/** The public half as the pipelines service takes it: unsigned big-endian bytes, base64. */
export function publicKeyParts(key: KeyObject): { exponent: string; modulus: string } {
  const { exponent, modulus } = toRsaParams(key);
  return { exponent, modulus };
}

/** The public half as GitHub REST's runner registration takes it (.NET's RSA XML form). */
export function publicKeyXml(key: KeyObject): string {
  const { exponent, modulus } = publicKeyParts(key);
  return `<RSAKeyValue><Modulus>${modulus}</Modulus><Exponent>${exponent}</Exponent></RSAKeyValue>`;
}
