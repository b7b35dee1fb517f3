import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { ImageError } from "./errors.ts";

export type ChecksumAlgorithm = "sha256" | "sha512";

/** The hex digest of a file, streamed (images are gigabytes). */
export async function hashFile(path: string, algorithm: ChecksumAlgorithm, signal?: AbortSignal): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(path, { signal })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/**
 * The digest of `fileName` in a vendor checksum file. Understands GNU lines (`<hex>  name`,
 * `<hex> *name`), BSD lines (`SHA256 (name) = <hex>`) and a sidecar that holds only the hash.
 */
export function digestFromChecksumFile(
  text: string,
  fileName: string,
  algorithm: ChecksumAlgorithm,
  origin: string,
): string {
  const length = algorithm === "sha256" ? 64 : 128;
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  for (const line of lines) {
    const gnu = /^([0-9a-f]+)\s+\*?(.+)$/i.exec(line);
    if (gnu?.[1]?.length === length && baseName(gnu[2] ?? "") === fileName) return gnu[1].toLowerCase();
    const bsd = /^(\w+)\s*\((.+)\)\s*=\s*([0-9a-f]+)$/i.exec(line);
    if (bsd?.[3]?.length === length && baseName(bsd[2] ?? "") === fileName) return bsd[3].toLowerCase();
  }
  const bare = lines.length === 1 ? /^([0-9a-f]+)$/i.exec(lines[0] ?? "") : null;
  if (bare?.[1]?.length === length) return bare[1].toLowerCase();
  throw new ImageError("checksum_mismatch", `${origin} lists no ${algorithm} digest for ${fileName}`, {
    hint: "the vendor may have renamed the image; check source.url and checksum.file in images.yaml",
  });
}

function baseName(path: string): string {
  return path.trim().split("/").at(-1) ?? path;
}
