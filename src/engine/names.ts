/** Generated container names in Docker's `adjective_noun` style. */
import { randomInt } from 'node:crypto';

const adjectives = [
  'admiring', 'bold', 'brave', 'calm', 'clever', 'dazzling', 'eager', 'elastic', 'epic', 'festive', 'focused',
  'friendly', 'gallant', 'gifted', 'happy', 'hopeful', 'jolly', 'keen', 'kind', 'lucid', 'magical', 'modest',
  'nifty', 'nostalgic', 'peaceful', 'quirky', 'relaxed', 'serene', 'sharp', 'stoic', 'sweet', 'tender', 'vibrant',
  'wizardly', 'zealous',
];
const nouns = [
  'baleen', 'beluga', 'blue', 'bowhead', 'bryde', 'cachalot', 'dolphin', 'fin', 'gray', 'humpback', 'minke',
  'narwhal', 'orca', 'porpoise', 'right', 'sei', 'sperm', 'vaquita', 'beaked', 'pilot', 'krill', 'plankton',
  'lagoon', 'reef', 'tide', 'current', 'harbor', 'atoll', 'fjord', 'delta',
];

export function generateName(taken: (name: string) => boolean): string {
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = `${adjectives[randomInt(adjectives.length)]}_${nouns[randomInt(nouns.length)]}`;
    const name = attempt < 10 ? base : `${base}${randomInt(10)}`;
    if (!taken(name)) return name;
  }
  return `baleia_${randomInt(1e9)}`;
}
