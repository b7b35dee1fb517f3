export { waitForSshBanner } from "./banner-probe.ts";
export { ChannelSession } from "./channel-session.ts";
export type { SshErrorCode } from "./errors.ts";
export { HostKeyMismatchError, SshError } from "./errors.ts";
export {
  ForgeKeysError,
  type ForgeKeysErrorCode,
  type ForgeKind,
  type ForgeUserKeysRequest,
  fetchForgeUserKeys,
  MAX_FORGE_KEYS,
} from "./forge-user-keys.ts";
export { freeLocalPort } from "./free-port.ts";
export type { ExecOptions, ExecResult, RunScriptOptions, RunScriptResult } from "./guest-session.ts";
export { GuestSession } from "./guest-session.ts";
export { dropbearHostKey, fingerprint, hostKeyBlob } from "./host-key.ts";
export type { JobKeys, KeyPair } from "./job-keys.ts";
export { generateJobKeys } from "./job-keys.ts";
export { LineSplitter, MAX_LINE_BYTES } from "./line-splitter.ts";
export { isPublicKeyLine, publicKeyFingerprint } from "./public-key-line.ts";
export { connectSsh, SshSession } from "./session.ts";
export { shellQuote } from "./shell-quote.ts";
export type { SshTarget } from "./target.ts";
