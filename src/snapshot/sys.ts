/**
 * The few system calls Node does not offer: mknod, mkfifo, lsetxattr, llistxattr/lgetxattr.
 * They run in one python3 co-process per user (started on first use, one JSON line per call),
 * so a layer with thousands of whiteouts costs one process, not thousands. Nothing is ever
 * done through a symlink: every call passes follow_symlinks=False.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface, type Interface } from 'node:readline';
import { BaleiaError, internal } from '../lib/index.js';

const script = String.raw`
import sys, os, json, base64, errno
def reply(o):
    sys.stdout.write(json.dumps(o) + "\n"); sys.stdout.flush()
for line in sys.stdin:
    req = json.loads(line)
    op = req["op"]; p = req.get("path")
    try:
        if op == "mknod":
            os.mknod(p, req["mode"], os.makedev(req["major"], req["minor"])); reply({"ok": True})
        elif op == "mkfifo":
            os.mkfifo(p, req["mode"]); reply({"ok": True})
        elif op == "setxattr":
            os.setxattr(p, req["name"], base64.b64decode(req["value"]), follow_symlinks=False); reply({"ok": True})
        elif op == "getxattrs":
            out = {}
            for n in os.listxattr(p, follow_symlinks=False):
                out[n] = base64.b64encode(os.getxattr(p, n, follow_symlinks=False)).decode()
            reply({"ok": True, "value": out})
        else:
            reply({"ok": False, "error": "unknown op " + op, "code": ""})
    except OSError as e:
        reply({"ok": False, "error": e.strerror or str(e), "code": errno.errorcode.get(e.errno, "")})
`;

interface Reply {
  ok: boolean;
  error?: string;
  code?: string;
  value?: Record<string, string>;
}

export class Sys {
  #child: ChildProcessWithoutNullStreams | undefined;
  #lines: Interface | undefined;
  #waiting: Array<{ resolve: (r: Reply) => void; reject: (e: unknown) => void }> = [];
  #dead: unknown;

  #start(): void {
    const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
    const child = spawn(python, ['-c', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child = child;
    this.#lines = createInterface({ input: child.stdout });
    this.#lines.on('line', (line) => this.#waiting.shift()?.resolve(JSON.parse(line) as Reply));
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const fail = (err: unknown) => {
      this.#dead = err;
      for (const w of this.#waiting.splice(0)) w.reject(err);
    };
    child.on('error', (e) => fail(internal('Cannot start the python3 helper for mknod/xattr calls', { cause: e })));
    child.on('close', (code) => fail(internal(`The python3 helper for mknod/xattr calls exited with status ${code}: ${stderr.trim()}`)));
    child.stdin.on('error', () => {});
  }

  async #call(req: Record<string, unknown>): Promise<Reply> {
    if (this.#dead) throw this.#dead;
    if (!this.#child) this.#start();
    const reply = await new Promise<Reply>((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      this.#child!.stdin.write(JSON.stringify(req) + '\n');
    });
    if (!reply.ok) {
      const err = new BaleiaError('Internal', `${reply.error}`);
      (err as unknown as { code: string }).code = reply.code ?? '';
      throw err;
    }
    return reply;
  }

  async mknod(path: string, opts: { type: 'char' | 'block'; mode: number; major: number; minor: number }): Promise<void> {
    const typeBits = opts.type === 'char' ? 0o020000 : 0o060000;
    await this.#call({ op: 'mknod', path, mode: typeBits | (opts.mode & 0o7777), major: opts.major, minor: opts.minor });
  }

  async mkfifo(path: string, mode: number): Promise<void> {
    await this.#call({ op: 'mkfifo', path, mode: mode & 0o7777 });
  }

  async setxattr(path: string, name: string, value: Uint8Array): Promise<void> {
    await this.#call({ op: 'setxattr', path, name, value: Buffer.from(value).toString('base64') });
  }

  async getxattrs(path: string): Promise<Map<string, Buffer>> {
    const reply = await this.#call({ op: 'getxattrs', path });
    return new Map(Object.entries(reply.value ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
  }

  async close(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    this.#dead = internal('The python3 helper is closed');
    if (child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('close', () => resolve());
      child.stdin.end();
    });
  }
}
