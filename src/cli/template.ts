/**
 * A small Go text/template, enough for docker's `--format` strings:
 *
 *   {{.ID}}   {{.State.Running}}   {{json .}}   {{.Names | join ","}}   {{index .Labels "a.b"}}
 *   {{if .State.Running}}up{{else}}down{{end}}   {{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}
 *   {{with .Config}}{{.Image}}{{end}}   {{.Label "com.example"}}   {{- trim -}}   {{/* comment *\/}}
 *
 * Values are plain JSON-like data; a field whose value is a function is a method and receives the
 * command's arguments (docker's `{{.Label "x"}}`). Printing follows Go: a missing map key prints
 * `<no value>`, a list `[a b]`, a map `map[k:v]`.
 */
import { BaleiaError } from '../lib/index.js';

type Value = unknown;

type Operand =
  | { kind: 'field'; base: 'dot' | 'var'; name?: string; path: string[] }
  | { kind: 'literal'; value: Value }
  | { kind: 'ident'; name: string }
  | { kind: 'pipe'; pipeline: Pipeline; path: string[] };

interface Command {
  operands: Operand[];
}

interface Pipeline {
  decl: string[];
  assign: boolean;
  commands: Command[];
}

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'action'; pipeline: Pipeline }
  | { kind: 'if' | 'with'; pipeline: Pipeline; then: Node[]; else: Node[] }
  | { kind: 'range'; pipeline: Pipeline; then: Node[]; else: Node[] };

const templateError = (message: string) => new BaleiaError('InvalidArgument', `Template parsing error: ${message}`);

// --- lexing actions -----------------------------------------------------------------------------

type Token =
  | { t: 'field'; path: string[] }
  | { t: 'var'; name: string; path: string[] }
  | { t: 'string'; value: string }
  | { t: 'number'; value: number }
  | { t: 'ident'; name: string }
  | { t: 'pipe' }
  | { t: 'lparen' }
  | { t: 'rparen' }
  | { t: 'declare' }
  | { t: 'assign' }
  | { t: 'comma' };

function lex(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const fieldPath = (): string[] => {
    const path: string[] = [];
    while (src[i] === '.') {
      i++;
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i));
      if (!m) break;
      path.push(m[0]);
      i += m[0].length;
    }
    return path;
  };
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '|') {
      tokens.push({ t: 'pipe' });
      i++;
    } else if (c === '(') {
      tokens.push({ t: 'lparen' });
      i++;
    } else if (c === ')') {
      tokens.push({ t: 'rparen' });
      i++;
    } else if (c === ',') {
      tokens.push({ t: 'comma' });
      i++;
    } else if (c === ':' && src[i + 1] === '=') {
      tokens.push({ t: 'declare' });
      i += 2;
    } else if (c === '=') {
      tokens.push({ t: 'assign' });
      i++;
    } else if (c === '.') {
      tokens.push({ t: 'field', path: fieldPath() });
      if (tokens.at(-1)!.t === 'field' && (tokens.at(-1) as { path: string[] }).path.length === 0 && src[i] === '.') {
        throw templateError(`bad field in "${src}"`);
      }
    } else if (c === '$') {
      i++;
      const m = /^[A-Za-z0-9_]*/.exec(src.slice(i))!;
      i += m[0].length;
      tokens.push({ t: 'var', name: `$${m[0]}`, path: fieldPath() });
    } else if (c === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== '"') j += src[j] === '\\' ? 2 : 1;
      if (j >= src.length) throw templateError(`unterminated quoted string in "${src}"`);
      tokens.push({ t: 'string', value: JSON.parse(src.slice(i, j + 1)) as string });
      i = j + 1;
    } else if (c === '`') {
      const j = src.indexOf('`', i + 1);
      if (j < 0) throw templateError(`unterminated raw string in "${src}"`);
      tokens.push({ t: 'string', value: src.slice(i + 1, j) });
      i = j + 1;
    } else if (/[-+0-9]/.test(c)) {
      const m = /^[-+]?\d+(\.\d+)?/.exec(src.slice(i));
      if (!m) throw templateError(`bad number in "${src}"`);
      tokens.push({ t: 'number', value: Number(m[0]) });
      i += m[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i))!;
      tokens.push({ t: 'ident', name: m[0] });
      i += m[0].length;
    } else {
      throw templateError(`unexpected "${c}" in "${src}"`);
    }
  }
  return tokens;
}

class ActionParser {
  #i = 0;
  constructor(private readonly tokens: Token[]) {}

  parsePipeline(): Pipeline {
    const decl: string[] = [];
    let assign = false;
    // `$x :=`, `$k, $v :=`, `$x =`
    const save = this.#i;
    while (this.tokens[this.#i]?.t === 'var' && (this.tokens[this.#i] as { path: string[] }).path.length === 0) {
      decl.push((this.tokens[this.#i] as { name: string }).name);
      this.#i++;
      if (this.tokens[this.#i]?.t === 'comma') {
        this.#i++;
        continue;
      }
      break;
    }
    const op = this.tokens[this.#i]?.t;
    if (decl.length > 0 && (op === 'declare' || op === 'assign')) {
      assign = op === 'assign';
      this.#i++;
    } else {
      decl.length = 0;
      this.#i = save;
    }
    const commands: Command[] = [this.parseCommand()];
    while (this.tokens[this.#i]?.t === 'pipe') {
      this.#i++;
      commands.push(this.parseCommand());
    }
    return { decl, assign, commands };
  }

  parseCommand(): Command {
    const operands: Operand[] = [];
    for (;;) {
      const tok = this.tokens[this.#i];
      if (!tok || tok.t === 'pipe' || tok.t === 'rparen') break;
      this.#i++;
      switch (tok.t) {
        case 'field':
          operands.push({ kind: 'field', base: 'dot', path: tok.path });
          break;
        case 'var':
          operands.push({ kind: 'field', base: 'var', name: tok.name, path: tok.path });
          break;
        case 'string':
        case 'number':
          operands.push({ kind: 'literal', value: tok.value });
          break;
        case 'ident':
          if (tok.name === 'true' || tok.name === 'false') operands.push({ kind: 'literal', value: tok.name === 'true' });
          else if (tok.name === 'nil') operands.push({ kind: 'literal', value: null });
          else operands.push({ kind: 'ident', name: tok.name });
          break;
        case 'lparen': {
          const pipeline = this.parsePipeline();
          if (this.tokens[this.#i]?.t !== 'rparen') throw templateError('unclosed left paren');
          this.#i++;
          let path: string[] = [];
          const next = this.tokens[this.#i];
          if (next?.t === 'field' && next.path.length > 0) {
            path = next.path;
            this.#i++;
          }
          operands.push({ kind: 'pipe', pipeline, path });
          break;
        }
        default:
          throw templateError(`unexpected token in command`);
      }
    }
    if (operands.length === 0) throw templateError('missing value for command');
    return { operands };
  }

  done(): boolean {
    return this.#i >= this.tokens.length;
  }
}

function parsePipelineText(text: string): Pipeline {
  const parser = new ActionParser(lex(text));
  const pipeline = parser.parsePipeline();
  if (!parser.done()) throw templateError(`unexpected ")" in "${text}"`);
  return pipeline;
}

// --- parsing the template -----------------------------------------------------------------------

type Piece = { kind: 'text'; text: string } | { kind: 'action'; text: string };

function split(template: string): Piece[] {
  const pieces: Piece[] = [];
  let i = 0;
  while (i < template.length) {
    const open = template.indexOf('{{', i);
    if (open < 0) {
      pieces.push({ kind: 'text', text: template.slice(i) });
      break;
    }
    let text = template.slice(i, open);
    let start = open + 2;
    if (template[start] === '-' && /\s/.test(template[start + 1] ?? '')) {
      text = text.replace(/\s+$/, '');
      start += 1;
    }
    if (text) pieces.push({ kind: 'text', text });
    const close = findClose(template, start);
    if (close < 0) throw templateError(`unclosed action in "${template}"`);
    let end = close;
    let trimAfter = false;
    if (template[close - 1] === '-' && /\s/.test(template[close - 2] ?? '')) {
      end = close - 1;
      trimAfter = true;
    }
    pieces.push({ kind: 'action', text: template.slice(start, end).trim() });
    i = close + 2;
    if (trimAfter) while (i < template.length && /\s/.test(template[i]!)) i++;
  }
  return pieces;
}

function findClose(template: string, from: number): number {
  let i = from;
  while (i < template.length) {
    const c = template[i]!;
    if (c === '"') {
      i++;
      while (i < template.length && template[i] !== '"') i += template[i] === '\\' ? 2 : 1;
      i++;
    } else if (c === '`') {
      i = template.indexOf('`', i + 1) + 1;
      if (i === 0) return -1;
    } else if (c === '}' && template[i + 1] === '}') {
      return i;
    } else i++;
  }
  return -1;
}

export class Template {
  readonly #nodes: Node[];

  constructor(source: string) {
    const pieces = split(source);
    let pos = 0;
    const parseList = (terminators: string[]): { nodes: Node[]; end: string } => {
      const nodes: Node[] = [];
      while (pos < pieces.length) {
        const piece = pieces[pos++]!;
        if (piece.kind === 'text') {
          nodes.push({ kind: 'text', text: piece.text });
          continue;
        }
        const text = piece.text;
        if (text.startsWith('/*')) continue;
        const word = /^[a-z]+\b/.exec(text)?.[0] ?? '';
        if (word === 'end' || word === 'else') {
          if (!terminators.includes(word)) throw templateError(`unexpected {{${word}}}`);
          return { nodes, end: text };
        }
        if (word === 'if' || word === 'with' || word === 'range') {
          nodes.push(parseBlock(word, text.slice(word.length).trim()));
          continue;
        }
        nodes.push({ kind: 'action', pipeline: parsePipelineText(text) });
      }
      if (terminators.length > 0) throw templateError('unexpected EOF');
      return { nodes, end: '' };
    };
    const parseBlock = (word: 'if' | 'with' | 'range', rest: string): Node => {
      const pipeline = parsePipelineText(rest);
      const body = parseList(['end', 'else']);
      let elseNodes: Node[] = [];
      if (body.end.startsWith('else')) {
        const elseRest = body.end.slice(4).trim();
        if (elseRest.startsWith('if ') || elseRest.startsWith('with ')) {
          const w = elseRest.startsWith('if ') ? 'if' : 'with';
          // `{{else if x}}` nests an if that shares the outer {{end}}.
          elseNodes = [parseBlock(w, elseRest.slice(w.length).trim())];
        } else {
          const tail = parseList(['end']);
          elseNodes = tail.nodes;
        }
      }
      return { kind: word, pipeline, then: body.nodes, else: elseNodes };
    };
    this.#nodes = parseList([]).nodes;
  }

  execute(data: Value): string {
    const out: string[] = [];
    const vars: Array<Map<string, Value>> = [new Map([['$', data]])];
    this.#walk(this.#nodes, data, vars, out);
    return out.join('');
  }

  #walk(nodes: Node[], dot: Value, vars: Array<Map<string, Value>>, out: string[]): void {
    for (const node of nodes) {
      switch (node.kind) {
        case 'text':
          out.push(node.text);
          break;
        case 'action': {
          const value = this.#pipeline(node.pipeline, dot, vars);
          if (node.pipeline.decl.length === 0) out.push(printValue(value));
          break;
        }
        case 'if':
        case 'with': {
          const scope = [...vars, new Map<string, Value>()];
          const value = this.#pipeline(node.pipeline, dot, scope);
          if (truthy(value)) this.#walk(node.then, node.kind === 'with' ? value : dot, scope, out);
          else this.#walk(node.else, dot, scope, out);
          break;
        }
        case 'range': {
          const scope = [...vars, new Map<string, Value>()];
          const decl = node.pipeline.decl;
          const value = this.#pipeline({ ...node.pipeline, decl: [] }, dot, scope);
          const entries: Array<[Value, Value]> = Array.isArray(value)
            ? value.map((v, i) => [i, v])
            : isObject(value)
              ? Object.keys(value)
                  .sort()
                  .map((k) => [k, (value as Record<string, Value>)[k]])
              : [];
          if (entries.length === 0) {
            this.#walk(node.else, dot, scope, out);
            break;
          }
          for (const [k, v] of entries) {
            const iterScope = [...vars, new Map<string, Value>()];
            if (decl.length === 1) iterScope.at(-1)!.set(decl[0]!, v);
            if (decl.length === 2) {
              iterScope.at(-1)!.set(decl[0]!, k);
              iterScope.at(-1)!.set(decl[1]!, v);
            }
            this.#walk(node.then, v, iterScope, out);
          }
          break;
        }
      }
    }
  }

  #pipeline(pipeline: Pipeline, dot: Value, vars: Array<Map<string, Value>>): Value {
    let value: Value = undefined;
    let first = true;
    for (const command of pipeline.commands) {
      value = this.#command(command, dot, vars, first ? [] : [value]);
      first = false;
    }
    if (pipeline.decl.length > 0) {
      const name = pipeline.decl[0]!;
      if (pipeline.assign) {
        const scope = [...vars].reverse().find((m) => m.has(name));
        if (!scope) throw templateError(`undefined variable: ${name}`);
        scope.set(name, value);
      } else vars.at(-1)!.set(name, value);
    }
    return value;
  }

  #command(command: Command, dot: Value, vars: Array<Map<string, Value>>, piped: Value[]): Value {
    const [head, ...rest] = command.operands;
    const evalArgs = () => [...rest.map((op) => this.#operand(op, dot, vars, [])), ...piped];
    if (head!.kind === 'ident') {
      const fn = functions[head!.name];
      if (!fn) throw templateError(`function "${head!.name}" not defined`);
      return fn(...evalArgs());
    }
    if (head!.kind === 'field' && (rest.length > 0 || piped.length > 0)) {
      return this.#operand(head!, dot, vars, evalArgs());
    }
    if (rest.length > 0) throw templateError(`can't give argument to non-function`);
    return this.#operand(head!, dot, vars, []);
  }

  #operand(op: Operand, dot: Value, vars: Array<Map<string, Value>>, args: Value[]): Value {
    switch (op.kind) {
      case 'literal':
        return op.value;
      case 'ident': {
        const fn = functions[op.name];
        if (!fn) throw templateError(`function "${op.name}" not defined`);
        return fn(...args);
      }
      case 'pipe':
        return walkPath(this.#pipeline(op.pipeline, dot, vars), op.path, args);
      case 'field': {
        let base = dot;
        if (op.base === 'var') {
          const scope = [...vars].reverse().find((m) => m.has(op.name!));
          if (!scope) throw templateError(`undefined variable "${op.name}"`);
          base = scope.get(op.name!);
        }
        return walkPath(base, op.path, args);
      }
    }
  }
}

function walkPath(base: Value, path: string[], args: Value[]): Value {
  let value = base;
  for (let i = 0; i < path.length; i++) {
    const name = path[i]!;
    if (value === undefined || value === null) return undefined;
    if (!isObject(value)) throw templateError(`can't evaluate field ${name} in type ${typeName(value)}`);
    const next = (value as Record<string, Value>)[name];
    if (typeof next === 'function') {
      value = i === path.length - 1 ? (next as (...a: Value[]) => Value).apply(value, args) : (next as () => Value).call(value);
      if (i === path.length - 1) return value;
    } else value = next;
  }
  if (args.length > 0 && typeof value !== 'function') {
    throw templateError(`can't give argument to non-function ${path.length ? '.' + path.join('.') : '.'}`);
  }
  return value;
}

function typeName(v: Value): string {
  if (Array.isArray(v)) return '[]interface {}';
  if (typeof v === 'number') return 'float64';
  return typeof v;
}

function isObject(v: Value): v is Record<string, Value> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function truthy(v: Value): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (isObject(v)) return Object.keys(v).length > 0;
  return true;
}

/** Go's default formatting of a value (`fmt.Sprint`). */
export function printValue(v: Value): string {
  if (v === undefined) return '<no value>';
  if (v === null) return '<nil>';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (typeof v === 'function') return '<func>';
  if (Array.isArray(v)) return `[${v.map((x) => (x === null || x === undefined ? '<nil>' : printValue(x))).join(' ')}]`;
  const obj = v as Record<string, Value>;
  return `map[${Object.keys(obj)
    .filter((k) => typeof obj[k] !== 'function')
    .sort()
    .map((k) => `${k}:${obj[k] === undefined || obj[k] === null ? '<nil>' : printValue(obj[k])}`)
    .join(' ')}]`;
}

/** JSON as Go's json.Marshal writes it: `<`, `>`, `&`, U+2028 and U+2029 escaped; methods left out. */
export function toJson(v: Value): string {
  if (v === undefined) return 'null';
  const text = JSON.stringify(v, (_k, value: Value) => (typeof value === 'bigint' ? Number(value) : value)) ?? 'null';
  return text.replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function compare(a: Value, b: Value): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
}

const functions: Record<string, (...args: Value[]) => Value> = {
  json: (v) => toJson(v),
  join: (list, sep) => (Array.isArray(list) ? list.map((x) => printValue(x)).join(String(sep)) : printValue(list)),
  split: (s, sep) => String(s).split(String(sep)),
  lower: (s) => String(s ?? '').toLowerCase(),
  upper: (s) => String(s ?? '').toUpperCase(),
  title: (s) => String(s ?? '').replace(/\b\w/g, (c) => c.toUpperCase()),
  truncate: (s, n) => {
    const text = String(s);
    const len = Number(n);
    return [...text].length > len ? [...text].slice(0, len).join('') : text;
  },
  pad: (s, left, right) => `${' '.repeat(Number(left))}${printValue(s)}${' '.repeat(Number(right))}`,
  print: (...args) => args.map(printValue).join(''),
  println: (...args) => args.map(printValue).join(' ') + '\n',
  printf: (format, ...args) => {
    let i = 0;
    return String(format).replace(/%([-+ 0#]*\d*(?:\.\d+)?)?([svdqtfx%])/g, (_m, _flags, verb: string) => {
      if (verb === '%') return '%';
      const arg = args[i++];
      if (verb === 'q') return JSON.stringify(printValue(arg));
      if (verb === 'x') return typeof arg === 'number' ? arg.toString(16) : Buffer.from(printValue(arg)).toString('hex');
      return printValue(arg);
    });
  },
  index: (collection, ...keys) => {
    let v = collection;
    for (const key of keys) {
      if (v === undefined || v === null) return undefined;
      v = (v as Record<string, Value>)[String(key)];
    }
    return v;
  },
  len: (v) => (Array.isArray(v) || typeof v === 'string' ? v.length : isObject(v) ? Object.keys(v).length : 0),
  eq: (a, ...bs) => bs.some((b) => a === b || (a !== null && b !== null && compare(a, b) === 0 && typeof a === typeof b)),
  ne: (a, b) => a !== b,
  lt: (a, b) => compare(a, b) < 0,
  le: (a, b) => compare(a, b) <= 0,
  gt: (a, b) => compare(a, b) > 0,
  ge: (a, b) => compare(a, b) >= 0,
  not: (v) => !truthy(v),
  and: (...args) => {
    for (const a of args) if (!truthy(a)) return a;
    return args.at(-1);
  },
  or: (...args) => {
    for (const a of args) if (truthy(a)) return a;
    return args.at(-1);
  },
};

/** Parse and run once. */
export function renderTemplate(source: string, data: Value): string {
  return new Template(source).execute(data);
}
