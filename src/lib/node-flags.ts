/**
 * Node (V8) flags our long-running processes start with; they cannot be set once node runs.
 * The ./baleia launcher passes the same ones (keep the two in step).
 *
 * Both processes move every byte of a pull, push, load or upload through short-lived buffers.
 * By default V8 sizes its old-generation limit from a heap of a few MB and counts buffer memory
 * against it, so a 700 MB push set off ~45 full mark-compacts (~1 s of CPU), and a 1 MiB young
 * generation promotes what a 1 MiB write batch still holds: a 315 MB `docker load` spent 0.6 s
 * of 2.5 s in the collector. A larger initial old space and semi-space leave that to cheap
 * scavenges (the load: 0.11 s of GC).
 */
export const registryNodeFlags = ['--initial-old-space-size=128'];
export const daemonNodeFlags = ['--initial-old-space-size=128', '--max-semi-space-size=32'];
