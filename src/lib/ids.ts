/** Identifiers in Docker's shapes: 64 lowercase hex characters, shown truncated to 12. */
import { randomBytes } from 'node:crypto';

export const newId = (): string => randomBytes(32).toString('hex');
export const shortId = (id: string): string => id.replace(/^sha256:/, '').slice(0, 12);
export const isFullId = (s: string): boolean => /^[0-9a-f]{64}$/.test(s);
