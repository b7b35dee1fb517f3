// A test action made of @actions/artifact, the library actions/upload-artifact@v4 and
// download-artifact@v4 bundle: `mode: upload` uploads every file under `path` as artifact `name`,
// `mode: download` finds `name` in the run and extracts it into `path`.
import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import { DefaultArtifactClient } from "@actions/artifact";

const input = (name: string) => process.env[`INPUT_${name.toUpperCase()}`] ?? "";

async function main(): Promise<void> {
  // The library refuses every server but github.com and *.ghe.com (its GHES check). Jobs from
  // github.com pass it; Forgejo's own builds of these actions (forgejo/upload-artifact) drop the
  // check; the fakes live at test addresses, so the action says it runs against github.com.
  process.env.GITHUB_SERVER_URL = "https://github.com";
  const client = new DefaultArtifactClient();
  const name = input("name");
  const dir = path.resolve(input("path"));
  if (input("mode") === "upload") {
    const files = (readdirSync(dir, { recursive: true }) as string[])
      .map((file) => path.join(dir, file))
      .filter((file) => statSync(file).isFile());
    const uploaded = await client.uploadArtifact(name, files, dir);
    console.log(`uploaded ${name} id=${uploaded.id} size=${uploaded.size}`);
  } else {
    const { artifact } = await client.getArtifact(name);
    const { downloadPath } = await client.downloadArtifact(artifact.id, { path: dir });
    console.log(`downloaded ${name} id=${artifact.id} into ${downloadPath}`);
  }
}

main().catch((error: unknown) => {
  console.log(`::error::${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
