/** `baleia search [registry/]term`, printed like the docker CLI's table. */
import type { Command } from '../command.js';
import { authFor, filtersJson, registryAuthHeader } from '../common.js';
import { formatList } from '../format.js';

interface SearchResult {
  name: string;
  description: string;
  star_count: number;
  is_official: boolean;
  is_automated: boolean;
}

export const searchCommand: Command = {
  name: 'search',
  usage: '[OPTIONS] TERM',
  description: 'Search a registry for images',
  flags: [
    { long: 'filter', short: 'f', type: 'list', description: 'Filter output based on conditions provided' },
    { long: 'format', type: 'string', description: 'Pretty-print search using a Go template' },
    { long: 'limit', type: 'int', description: 'Max number of search results' },
    { long: 'no-trunc', type: 'bool', description: "Don't truncate output" },
  ],
  args: { min: 1, max: 1 },
  async run(cli, { flags, args }) {
    const client = await cli.client();
    const term = args[0]!;
    const first = term.includes('/') ? term.slice(0, term.indexOf('/')) : '';
    const domain = first.includes('.') || first.includes(':') || first === 'localhost' ? first : 'docker.io';
    const results = await client.json<SearchResult[]>('GET', '/images/search', {
      query: { term, limit: flags.int('limit'), filters: filtersJson(flags.list('filter')) },
      // As the docker CLI does: the stored credentials of that registry, so a private one answers.
      headers: { 'X-Registry-Auth': registryAuthHeader(authFor(domain)) },
    });
    const trunc = (s: string) => (flags.bool('no-trunc') || s.length <= 45 ? s : `${s.slice(0, 42)}...`);
    const rows = (results ?? []).map((r) => ({
      Name: () => r.name,
      Description: () => trunc(r.description.replace(/\n/g, ' ')),
      StarCount: () => String(r.star_count),
      IsOfficial: () => (r.is_official ? '[OK]' : ''),
      IsAutomated: () => (r.is_automated ? '[OK]' : ''),
    }));
    cli.out(
      formatList(rows, {
        format: flags.string('format'),
        defaultFormat: 'table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}',
        headers: { Name: 'NAME', Description: 'DESCRIPTION', StarCount: 'STARS', IsOfficial: 'OFFICIAL', IsAutomated: 'AUTOMATED' },
      }),
    );
    return 0;
  },
};
