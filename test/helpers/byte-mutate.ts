// Random edits of a binary message for the codecs' fuzz tests (peer-link frames,
// heartbeat packets): set a byte, flip a bit, cut the tail, insert a few bytes.
import fc from 'fast-check';

export type Mutation =
  | { readonly kind: 'set'; readonly at: number; readonly value: number }
  | { readonly kind: 'flip'; readonly at: number; readonly bit: number }
  | { readonly kind: 'cut'; readonly at: number }
  | { readonly kind: 'insert'; readonly at: number; readonly bytes: Uint8Array };

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record(
    { kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) },
    { noNullPrototype: true },
  ),
  fc.record(
    { kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) },
    { noNullPrototype: true },
  ),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }, { noNullPrototype: true }),
  fc.record(
    {
      kind: fc.constant('insert' as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
    },
    { noNullPrototype: true },
  ),
);

export function mutate(original: Buffer, mutations: readonly Mutation[]): Buffer {
  let b = Buffer.from(original);
  for (const m of mutations) {
    const at = b.length === 0 ? 0 : m.at % b.length;
    switch (m.kind) {
      case 'set':
        if (b.length > 0) b[at] = m.value;
        break;
      case 'flip':
        if (b.length > 0) b[at]! ^= 1 << m.bit;
        break;
      case 'cut':
        b = b.subarray(0, at);
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
        break;
    }
  }
  return b;
}
