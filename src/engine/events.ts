/**
 * The engine's event bus: every container and image action is published here, kept in a bounded
 * in-memory history (for `events --since`) and fanned out to live subscribers (`events`, compose).
 * Events have Docker's shape, including the deprecated `status`, `id` and `from` that compose 1.29 reads.
 */

export type EventType = 'container' | 'image' | 'network' | 'volume' | 'daemon';

export interface EngineEvent {
  status?: string;
  id?: string;
  from?: string;
  Type: EventType;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'local';
  time: number;
  timeNano: number;
}

export type EventListener = (event: EngineEvent) => void;

export class EventBus {
  #history: EngineEvent[] = [];
  #listeners = new Set<EventListener>();
  readonly #limit: number;
  #lastNano = 0n;

  constructor(options: { limit?: number } = {}) {
    this.#limit = options.limit ?? 1024;
  }

  publish(type: EventType, action: string, actorId: string, attributes: Record<string, string> = {}): EngineEvent {
    // Strictly increasing nanosecond times keep since/until ordering exact.
    let nano = BigInt(Date.now()) * 1_000_000n + process.hrtime.bigint() % 1_000_000n;
    if (nano <= this.#lastNano) nano = this.#lastNano + 1n;
    this.#lastNano = nano;
    const event: EngineEvent = {
      Type: type,
      Action: action,
      Actor: { ID: actorId, Attributes: attributes },
      scope: 'local',
      time: Number(nano / 1_000_000_000n),
      timeNano: Number(nano),
    };
    if (type === 'container' || type === 'image') {
      event.status = action;
      event.id = actorId;
      if (type === 'container' && attributes.image) event.from = attributes.image;
    }
    this.#history.push(event);
    if (this.#history.length > this.#limit) this.#history.splice(0, this.#history.length - this.#limit);
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // A broken subscriber must not stop the others.
      }
    }
    return event;
  }

  /** Past events with time in [sinceNano, untilNano]. */
  history(sinceNano?: number, untilNano?: number): EngineEvent[] {
    return this.#history.filter(
      (e) => (sinceNano === undefined || e.timeNano >= sinceNano) && (untilNano === undefined || e.timeNano <= untilNano),
    );
  }

  subscribe(listener: EventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
