/**
 * List filters as dockerd applies them: values OR within a key, AND across keys; `label` matches
 * `key` or `key=value`. Filters are passed as a Map of key → values (parsed by api/).
 */
import { BaleiaError } from '../lib/index.js';
import type { ContainerRecord } from './containers.js';

export type Filters = Map<string, string[]>;

export function matchLabels(labels: Record<string, string> | null | undefined, wanted: string[] | undefined): boolean {
  if (!wanted || wanted.length === 0) return true;
  return wanted.every((w) => {
    const eq = w.indexOf('=');
    if (eq < 0) return labels != null && w in labels;
    return labels != null && labels[w.slice(0, eq)] === w.slice(eq + 1);
  });
}

/** Docker's time filters accept a unix time (with fraction) or an RFC 3339 date. */
export function parseTimeFilter(value: string): number {
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000;
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new BaleiaError('InvalidArgument', `Cannot parse time filter ${JSON.stringify(value)}`);
  return t;
}

const containerFilterKeys = [
  'id', 'name', 'label', 'status', 'exited', 'ancestor', 'before', 'since', 'network', 'health', 'volume',
  'publish', 'expose', 'is-task', 'isolation',
];

export function containerMatcher(
  filters: Filters,
  ctx: {
    resolveContainer: (ref: string) => ContainerRecord | undefined;
    imageMatches: (ref: string, record: ContainerRecord) => boolean;
  },
): (c: ContainerRecord) => boolean {
  for (const key of filters.keys())
    if (!containerFilterKeys.includes(key)) throw new BaleiaError('InvalidArgument', `Invalid filter '${key}'`);
  const statuses = filters.get('status');
  for (const s of statuses ?? [])
    if (!['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead'].includes(s))
      throw new BaleiaError('InvalidArgument', `Invalid filter 'status=${s}'`);
  const before = filters.get('before')?.map((r) => ctx.resolveContainer(r)?.Created);
  const since = filters.get('since')?.map((r) => ctx.resolveContainer(r)?.Created);
  return (c) => {
    const any = (key: string, test: (v: string) => boolean) => {
      const values = filters.get(key);
      return !values || values.length === 0 || values.some(test);
    };
    return (
      any('id', (v) => c.Id.startsWith(v)) &&
      any('name', (v) => {
        try {
          return new RegExp(v).test(c.Name.slice(1)) || new RegExp(v).test(c.Name);
        } catch {
          return c.Name.slice(1).includes(v);
        }
      }) &&
      matchLabels(c.Config.Labels, filters.get('label')) &&
      any('status', (v) => c.State.Status === v) &&
      any('exited', (v) => !c.State.Running && c.State.FinishedAt !== '0001-01-01T00:00:00Z' && c.State.ExitCode === Number(v)) &&
      any('ancestor', (v) => ctx.imageMatches(v, c)) &&
      any('network', (v) => (c.HostConfig.NetworkMode === 'default' ? 'bridge' : c.HostConfig.NetworkMode) === v) &&
      any('expose', (v) => Object.keys(c.Config.ExposedPorts ?? {}).some((p) => p === v || p === `${v}/tcp`)) &&
      any('volume', (v) => (c.MountPoints ?? []).some((m) => m.Name === v || m.Source === v || m.Destination === v)) &&
      any('health', (v) => (c.State.Health && c.State.Running ? c.State.Health.Status === v : v === 'none')) &&
      (!before || before.every((t) => t !== undefined && c.Created < t)) &&
      (!since || since.every((t) => t !== undefined && c.Created > t))
    );
  };
}
