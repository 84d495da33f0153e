// The randomness a production stack runs on: the ISN secret (RFC 6528 wants one an attacker
// cannot guess), SYN-cookie and hash keys, ephemeral ports, IP ids. node:crypto's CSPRNG, drawn
// in blocks so a call costs an array read. Simulations hand the Stack a seeded Prng instead.
import { randomFillSync } from 'node:crypto';

/** A source of uniform numbers in [0, 1) with 32 bits from the operating system's CSPRNG. */
export function cryptoRandom(block = 256): () => number {
  const words = new Uint32Array(block);
  let at = block;
  return () => {
    if (at === block) { randomFillSync(words); at = 0; }
    return words[at++]! / 0x100000000;
  };
}
