/**
 * docker's list formatting: `--format` as `table <template>`, `json`, or a raw template per row;
 * tables are aligned like Go's tabwriter (min width 10, padding 3, blanks).
 */
import { Template, toJson } from './template.js';

/** Align tab-separated cells like text/tabwriter.NewWriter(out, 10, 1, 3, ' ', 0). */
export function tabwrite(lines: string[], options: { minWidth?: number; padding?: number } = {}): string {
  const minWidth = options.minWidth ?? 10;
  const padding = options.padding ?? 3;
  const rows = lines.map((l) => l.split('\t'));
  const widths: number[] = [];
  for (const cells of rows) {
    // Only tab-terminated cells are aligned; the text after the last tab is left as is.
    for (let j = 0; j < cells.length - 1; j++) {
      widths[j] = Math.max(widths[j] ?? 0, [...cells[j]!].length);
    }
  }
  return rows
    .map((cells) =>
      cells
        .map((cell, j) => (j < cells.length - 1 ? cell.padEnd(Math.max(minWidth, widths[j]! + padding) - ([...cell].length - cell.length)) : cell))
        .join(''),
    )
    .map((l) => l + '\n')
    .join('');
}

export interface ListFormat {
  /** The user's `--format` (may be empty). */
  format: string | undefined;
  /** The default `table ...` format. */
  defaultFormat: string;
  /** Field name → column header. */
  headers: Record<string, string>;
}

/** `table` and `\t`/`\n` escapes resolved: which template to run and whether it is a table. */
export function resolveFormat(format: string | undefined, defaultFormat: string): { table: boolean; template: string } {
  let f = format && format.trim() !== '' ? format : defaultFormat;
  if (f === 'json') f = '{{json .}}';
  const table = f.startsWith('table');
  if (table) {
    f = f.slice('table'.length).trim();
    if (f === '') f = defaultFormat.slice('table'.length).trim();
  }
  f = f.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  return { table, template: f };
}

function headerContext(headers: Record<string, string>): unknown {
  return new Proxy(
    {},
    {
      get: (_t, prop) => {
        if (typeof prop !== 'string') return undefined;
        const header = headers[prop] ?? prop.replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase();
        return () => header;
      },
    },
  );
}

/** Render rows (formatting contexts) as docker does; answers the whole text to print. */
export function formatList(rows: readonly object[], spec: ListFormat): string {
  const { table, template } = resolveFormat(spec.format, spec.defaultFormat);
  const tpl = new Template(template);
  const lines = rows.map((row) => tpl.execute(row));
  if (!table) return lines.map((l) => l + '\n').join('');
  const header = tpl.execute(headerContext(spec.headers));
  return tabwrite([header, ...lines].flatMap((l) => l.split('\n')));
}

/** A formatting context object whose `{{json .}}` lists its plain fields, sorted. */
export function sortedFields(record: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(record).sort()) out[key] = record[key];
  return out;
}

export { toJson };
