/**
 * image: image references, configs and chainIDs, the name → image records, and docker-archive /
 * OCI-layout import and export. It owns the records; the bytes live in content/ (config,
 * manifests, layer blobs as shipped) and the unpacked layers in snapshot/ (keyed by chainID).
 * It does not pull or push (registry/ and engine/ do, then call createImage) and it does not
 * check whether containers use an image (engine/ does, before delete).
 *
 * Lifecycle: load / importRootfs / createImage → resolve(name) → ensureUnpacked(record) gives
 * the chainIDs a container mounts → tag / untag → save → delete.
 *
 *   const images = new ImageStore({ root, content, snapshots }); await images.init();
 *   const [{ id }] = await images.load(fs.createReadStream('busybox.tar'));
 *   const rec = await images.resolve('busybox');           // busybox:latest
 *   const lowers = await images.ensureUnpacked(rec);        // chainIDs, bottom → top
 *
 * Image ids are the sha256 of the config bytes; chainID(n) = sha256(chainID(n-1) + " " + diffID(n)).
 * Names are stored in Docker's familiar form ('busybox:latest', 'busybox@sha256:…').
 *
 * On disk, under the daemon root:
 *
 *   <root>/images/
 *     repositories.json        { "refs": { "busybox:latest": "sha256:<image id>", … } }
 *     by-id/<hex>.json         the record of one image (layers, sizes, manifest digest)
 *     tmp/<random>/            a load/import/delete in progress: staged files and intent.json
 *                              (layers and blobs it created or is removing); init() rolls back
 */
export { ImageStore, chainIds, goArch, type ImageLayer, type ImageRecord, type ImageConfig, type HistoryEntry } from './store.js';
export {
  parseReference,
  familiarName,
  familiarRepository,
  fullRepository,
  formatFamiliar,
  formatFull,
  withDefaultTag,
  defaultDomain,
  type Reference,
} from './reference.js';
export { parseChanges, splitWords, parseDuration, changeInstructions, type ContainerConfig } from './changes.js';
