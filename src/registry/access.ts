/**
 * Who may do what to which repository: a small list of rules, read from a YAML or JSON access
 * file (`baleia registry serve --access FILE`), pure once loaded.
 *
 *   # access.yaml — rules add up; anything no rule grants is denied
 *   - { user: alice, repos: "team/*", actions: [pull, push] }
 *   - { users: [bob, carol], repos: "*", actions: [pull] }
 *   - { user: "*", repos: "public/*", actions: [pull] }       # any authenticated user
 *   - { user: anonymous, repos: "public/*", actions: [pull] } # no credentials at all
 *
 * The file may also be `{"rules": […]}` (or `access:`). In `repos`, `*` matches any run of
 * characters including `/` (`team/*` covers `team/a/b`); `actions` are `pull`, `push`, `delete`
 * or `*` for all three. Without a file every authenticated user may do everything;
 * `--allow-anonymous-pull` adds `{user: anonymous, repos: "*", actions: [pull]}` either way.
 * Listing the catalog (`registry:catalog:*`) is allowed to whoever may pull something.
 */
import { promises as fs } from 'node:fs';
import YAML from 'yaml';
import { BaleiaError } from '../lib/index.js';

export type RepositoryAction = 'pull' | 'push' | 'delete';

export const repositoryActions: readonly RepositoryAction[] = ['pull', 'push', 'delete'];

/** The user name of a request without credentials. */
export const anonymousUser = 'anonymous';

export interface AccessRule {
  /** User names; `*` is any authenticated user, `anonymous` a request without credentials. */
  users: string[];
  /** Repository globs. */
  repos: string[];
  actions: RepositoryAction[];
}

/** One entry of a token's `access` claim (Docker token spec). */
export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

function globRegExp(glob: string): RegExp {
  const body = glob
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`);
}

function strings(value: unknown, what: string, where: string): string[] {
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0 || !list.every((v) => typeof v === 'string' && v !== '')) {
    throw new BaleiaError('InvalidArgument', `Cannot read access rules: ${where}: "${what}" must be a non-empty string or list of strings`);
  }
  return list as string[];
}

/** Validates parsed rules (`[…]`, `{rules: […]}` or `{access: […]}`). */
export function parseAccessRules(value: unknown, source = 'access rules'): AccessRule[] {
  const list = Array.isArray(value) ? value : (value as { rules?: unknown; access?: unknown } | null)?.rules ?? (value as { access?: unknown } | null)?.access;
  if (!Array.isArray(list)) throw new BaleiaError('InvalidArgument', `Cannot read access rules from "${source}": expected a list of rules (or {"rules": [...]})`);
  return list.map((raw, i) => {
    const where = `"${source}" rule ${i + 1}`;
    if (typeof raw !== 'object' || raw === null) throw new BaleiaError('InvalidArgument', `Cannot read access rules: ${where} is not an object`);
    const r = raw as Record<string, unknown>;
    const users = strings(r.users ?? r.user ?? r.account, 'user', where);
    const repos = strings(r.repos ?? r.repo ?? r.repositories ?? r.name, 'repos', where);
    const named = strings(r.actions ?? r.action, 'actions', where);
    const actions = new Set<RepositoryAction>();
    for (const a of named) {
      if (a === '*') repositoryActions.forEach((x) => actions.add(x));
      else if ((repositoryActions as readonly string[]).includes(a)) actions.add(a as RepositoryAction);
      else throw new BaleiaError('InvalidArgument', `Cannot read access rules: ${where}: unknown action "${a}" (expected pull, push, delete or *)`);
    }
    return { users, repos, actions: [...actions] };
  });
}

export async function loadAccessRules(file: string): Promise<AccessRule[]> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new BaleiaError('NotFound', `Cannot read access file "${file}"`, { cause: err });
  }
  let value: unknown;
  try {
    // YAML 1.2 is a superset of JSON: one parser reads both.
    value = YAML.parse(text);
  } catch (err) {
    throw new BaleiaError('InvalidArgument', `Cannot parse access file "${file}": ${(err as Error).message}`, { cause: err });
  }
  return parseAccessRules(value, file);
}

export class AccessPolicy {
  readonly #rules: Array<AccessRule & { patterns: RegExp[] }>;

  /** `rules` undefined: every authenticated user may do everything. */
  constructor(options: { rules?: AccessRule[]; allowAnonymousPull?: boolean } = {}) {
    const rules = options.rules ? [...options.rules] : [{ users: ['*'], repos: ['*'], actions: [...repositoryActions] }];
    if (options.allowAnonymousPull) rules.push({ users: [anonymousUser], repos: ['*'], actions: ['pull'] });
    this.#rules = rules.map((r) => ({ ...r, patterns: r.repos.map(globRegExp) }));
  }

  /** What `user` (undefined: anonymous) may do to `repo`, in pull, push, delete order. */
  actionsOf(user: string | undefined, repo: string): RepositoryAction[] {
    const granted = new Set<RepositoryAction>();
    for (const rule of this.#rules) {
      const applies = user === undefined ? rule.users.includes(anonymousUser) : rule.users.includes(user) || rule.users.includes('*');
      if (!applies || !rule.patterns.some((p) => p.test(repo))) continue;
      rule.actions.forEach((a) => granted.add(a));
    }
    return repositoryActions.filter((a) => granted.has(a));
  }

  allows(user: string | undefined, repo: string, action: RepositoryAction): boolean {
    return this.actionsOf(user, repo).includes(action);
  }

  /** Whether `user` may pull anything at all (the catalog, the UI's list, search). */
  canBrowse(user: string | undefined): boolean {
    return this.#rules.some((r) => r.actions.includes('pull') && (user === undefined ? r.users.includes(anonymousUser) : r.users.includes(user) || r.users.includes('*')));
  }

  /**
   * The `access` claim for requested scopes (`repository:team/app:pull,push`,
   * `registry:catalog:*`): each narrowed to what the policy grants, as the token spec asks
   * (a token server grants the intersection; it does not fail).
   */
  grant(user: string | undefined, scopes: string[]): AccessEntry[] {
    const out: AccessEntry[] = [];
    for (const scope of scopes.flatMap((s) => s.split(' ')).filter(Boolean)) {
      const parsed = parseScope(scope);
      if (!parsed) continue;
      if (parsed.type === 'registry' && parsed.name === 'catalog') {
        if (this.canBrowse(user) && parsed.actions.includes('*')) out.push({ type: 'registry', name: 'catalog', actions: ['*'] });
        continue;
      }
      if (parsed.type !== 'repository') continue;
      const allowed = this.actionsOf(user, parsed.name);
      const wanted = parsed.actions.includes('*') ? [...repositoryActions] : parsed.actions;
      const actions = allowed.filter((a) => wanted.includes(a));
      const existing = out.find((e) => e.type === 'repository' && e.name === parsed.name);
      if (existing) existing.actions = repositoryActions.filter((a) => existing.actions.includes(a) || actions.includes(a));
      else out.push({ type: 'repository', name: parsed.name, actions });
    }
    return out;
  }
}

/** `type:name:actions` where name may contain `:` (a registry host with a port). */
export function parseScope(scope: string): { type: string; name: string; actions: string[] } | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',').filter(Boolean) };
}
