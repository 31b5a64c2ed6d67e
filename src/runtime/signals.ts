/** Signal names and numbers (pure): 'TERM', 'SIGTERM', 'sigterm', '15', 15 → 15. */
import { invalidArgument } from '../lib/index.js';

export const signalNumbers: Record<string, number> = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, IOT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10,
  SEGV: 11, USR2: 12, PIPE: 13, ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19,
  TSTP: 20, TTIN: 21, TTOU: 22, URG: 23, XCPU: 24, XFSZ: 25, VTALRM: 26, PROF: 27, WINCH: 28,
  IO: 29, POLL: 29, PWR: 30, SYS: 31,
};

export function parseSignal(signal: string | number): number {
  if (typeof signal === 'number') {
    if (Number.isInteger(signal) && signal >= 1 && signal <= 64) return signal;
    throw invalidArgument(`Cannot send signal ${signal}: not a valid signal number`);
  }
  const s = signal.trim().toUpperCase();
  if (/^\d+$/.test(s)) return parseSignal(Number(s));
  const name = s.startsWith('SIG') ? s.slice(3) : s;
  const rt = /^RTMIN(?:\+(\d+))?$/.exec(name) ?? /^RTMAX(?:-(\d+))?$/.exec(name);
  if (rt) {
    const n = name.startsWith('RTMIN') ? 34 + Number(rt[1] ?? 0) : 64 - Number(rt[1] ?? 0);
    if (n >= 34 && n <= 64) return n;
  }
  const n = signalNumbers[name];
  if (n === undefined) throw invalidArgument(`Cannot send signal "${signal}": unknown signal name`);
  return n;
}
