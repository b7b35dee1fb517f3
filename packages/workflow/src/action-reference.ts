/** What a step's `uses:` names, once its text is read. */
export type ActionReference =
  | {
      kind: "repository";
      /** `https://host` when the reference is a full URL (Forgejo's form); otherwise the job's actions URL is used. */
      baseUrl?: string;
      owner: string;
      name: string;
      /** The action's folder inside the repository, "" for its root. */
      path: string;
      ref: string;
    }
  | { kind: "docker"; image: string }
  | { kind: "local"; path: string };

const OWNER_NAME = /^[A-Za-z0-9_.-]+$/;

/**
 * Reads `uses:` as GitHub and Forgejo do: `owner/name[/path]@ref`, Forgejo's full
 * `https://host/owner/name[/path]@ref`, `docker://image`, or a local `./path`. Returns an error
 * text for anything else.
 */
export function parseActionReference(uses: string): ActionReference | { error: string } {
  const text = uses.trim();
  if (text.startsWith("docker://")) return { kind: "docker", image: text.slice("docker://".length) };
  if (text.startsWith("./") || text.startsWith("../")) return { kind: "local", path: text };
  let rest = text;
  let baseUrl: string | undefined;
  const url = /^(https?:\/\/[^/]+)\/(.*)$/i.exec(text);
  if (url?.[1] !== undefined && url[2] !== undefined) {
    baseUrl = url[1];
    rest = url[2];
  }
  const at = rest.lastIndexOf("@");
  if (at <= 0 || at === rest.length - 1) {
    return { error: `\`${text}\` names no version: write owner/name@ref, e.g. actions/setup-node@v4` };
  }
  const ref = rest.slice(at + 1);
  const parts = rest.slice(0, at).split("/");
  const [owner, name, ...path] = parts;
  if (owner === undefined || name === undefined || !OWNER_NAME.test(owner) || !OWNER_NAME.test(name)) {
    return { error: `\`${text}\` is not owner/name[/path]@ref` };
  }
  if (path.some((p) => p === "" || p === "." || p === "..")) {
    return { error: `\`${text}\`: the path inside the repository must not be empty or leave it` };
  }
  return { kind: "repository", ...(baseUrl ? { baseUrl } : {}), owner, name, path: path.join("/"), ref };
}
