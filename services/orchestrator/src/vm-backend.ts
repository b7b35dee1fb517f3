import { bhyveConfigSchema, loadConfig, type OrchestratorConfig } from "@solstice/config";
import {
  type CatalogEntry,
  catalogDiskImage,
  findCatalogEntry,
  type ImageCatalog,
  type LocalImage,
  loadImageCatalog,
} from "@solstice/images";
import { waitForSshBanner } from "@solstice/ssh";
import { addressPool, createBhyveBackend, createQemuBackend, hostCommandRunner, type VmBackend } from "@solstice/vm";
import type { Logger } from "pino";

/**
 * The VM backend `SOLSTICE_BACKEND` names: qemu (the default), or bhyve on an illumos host with
 * its `SOLSTICE_BHYVE_*` settings, read here so that a bad one stops the service at start-up
 * (ConfigError) rather than at the first job.
 */
export function vmBackendFor(
  config: OrchestratorConfig,
  log: Logger,
  env: NodeJS.ProcessEnv = process.env,
  /** Host loopback ports guests may reach (the job cache's); qemu only. */
  hostPorts: readonly number[] = [],
): VmBackend {
  if (config.backend === "qemu") {
    return createQemuBackend({
      log,
      hostPorts,
      accelerator: config.accelerator,
      // Guests must never reach the fleet's broker or database, wherever they run (the compose
      // network, another host): the namespace's own loopback only covers this host's.
      unreachableHosts: [new URL(config.amqpUrl).hostname, new URL(config.databaseUrl).hostname].filter(Boolean),
      ...(config.runDir ? { runRoot: config.runDir } : {}),
      ...(config.imageCache ? { imageCacheDir: config.imageCache } : {}),
    });
  }
  const bhyve = loadConfig("orchestrator", bhyveConfigSchema, env);
  const goldenSnapshot = (label: string) => `${bhyve.bhyveImageDataset}/${label}@${bhyve.bhyveGoldenSnapshot}`;
  let catalog: Promise<ImageCatalog> | undefined;
  return createBhyveBackend({
    runner: hostCommandRunner(bhyve.bhyveCommandTimeoutMs),
    log,
    cloneParent: bhyve.bhyveCloneParent,
    zonesRoot: bhyve.bhyveZonesRoot,
    link: bhyve.bhyveLink,
    seedRoot: bhyve.bhyveSeedRoot,
    goldenSnapshot: (image) => goldenSnapshot(image.label),
    addresses: addressPool(bhyve.bhyveAddresses, bhyve.bhyveGateway),
    ...(bhyve.bhyveGatewayInterface ? { gatewayInterface: bhyve.bhyveGatewayInterface } : {}),
    async ensureImage(label) {
      catalog ??= loadImageCatalog();
      catalog.catch(() => {
        catalog = undefined;
      });
      return zvolImage(findCatalogEntry(await catalog, label), goldenSnapshot);
    },
    waitForSsh: (host, port, opts) => waitForSshBanner(host, port, opts),
  });
}

/**
 * A catalog label as the bhyve backend boots it: the operator's zvol with the golden snapshot
 * (docs/illumos.md), with the catalog's user, readiness and default size.
 */
function zvolImage(entry: CatalogEntry, goldenSnapshot: (label: string) => string): LocalImage {
  const snapshot = goldenSnapshot(entry.label);
  return catalogDiskImage(entry, { path: snapshot, format: "raw", recipeHash: `zvol-${snapshot}` });
}
