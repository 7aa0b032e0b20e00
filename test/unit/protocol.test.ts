import { describe, expect, it } from 'vitest';
import { KangarooError } from '../../src/errors.js';
import { decodeFrame, encodeFrame, encodeFrameBuffer, Frame, FrameDecoder } from '../../src/protocol/frame.js';
import { Message, MessageType, OPCODES, PutOp } from '../../src/protocol/messages.js';
import { pooledPutBuffers, PUT_BUFFER_BYTES } from '../../src/util/put-buffers.js';
import { fuzzSeed, makeRng, mutate, randomChunks, rawFrame, refit } from '../helpers/fuzz.js';
import { SAMPLES } from '../helpers/protocol-samples.js';

/**
 * The wire protocol, byte by byte: every message round-trips, survives any
 * chunking a socket can produce, matches fixed fixtures, and every defect in
 * hostile input surfaces as a KangarooError with a protocol code, never as
 * anything else.
 */

const IDS = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff];

/** Every sample of every type, as [label, id, message, encoded bytes]. */
const CASES = (Object.entries(SAMPLES) as [MessageType, Message[]][]).flatMap(([type, msgs]) =>
  msgs.map((msg, i) => {
    const id = IDS[(i + OPCODES[type]) % IDS.length]!;
    return { label: `${type}#${i}`, type, id, msg, bytes: encodeFrameBuffer(id, msg) };
  }),
);

/**
 * Buffers replaced by their hex, for comparing: the matcher's element-by-element walk
 * over a 100 kB Buffer, hundreds of times, would take a minute.
 */
function plain(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return `<buffer ${v.toString('hex')}>`;
  if (Array.isArray(v)) return v.map(plain);
  // dataCrc is what the decoder learnt about a put's data, not a field on the wire
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).filter(([k]) => k !== 'dataCrc').map(([k, x]) => [k, plain(x)]));
  return v;
}

/** Feeds chunks to a fresh decoder and returns what it produced (buffers as hex, see plain). */
function feed(chunks: Buffer[], maxFrame?: number): unknown {
  const out: Frame[] = [];
  const d = new FrameDecoder((f) => out.push(f), maxFrame);
  for (const c of chunks) d.push(c);
  expect(d.pending).toBe(0);
  return plain(out);
}

/** Runs `fn` and returns the KangarooError it throws (failing if it throws anything else or nothing). */
function protocolError(fn: () => unknown): KangarooError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(KangarooError);
    return err as KangarooError;
  }
  throw new Error('expected a KangarooError, but nothing was thrown');
}

/** Split points for one frame: all of them for small frames; the header, the tail and a stride for big ones. */
function splitPoints(length: number): number[] {
  if (length <= 4096) return Array.from({ length: length + 1 }, (_, i) => i);
  const pts = new Set<number>();
  for (let i = 0; i <= 64; i++) pts.add(i).add(length - i);
  for (let i = 0; i < length; i += 997) pts.add(i);
  return [...pts].sort((a, b) => a - b);
}

describe('every message type', () => {
  // Guards against a message type added to OPCODES without an encoding, a decoding or a test.
  it('has samples for every opcode, and opcodes are unique', () => {
    expect(Object.keys(SAMPLES).sort()).toEqual(Object.keys(OPCODES).sort());
    expect(new Set(Object.values(OPCODES)).size).toBe(Object.keys(OPCODES).length);
  });

  describe.each(CASES)('$label', ({ type, id, msg, bytes }) => {
    // Guards the encoding itself: decode(encode(m)) is m, and the header says what it should.
    it('round-trips through encodeFrameBuffer and decodeFrame', () => {
      const decoded = decodeFrame(bytes);
      expect(plain(decoded)).toEqual(plain({ id, msg }));
      if (bytes.length < 4096) expect(decoded).toEqual({ id, msg }); // the matcher itself, where it is fast enough
      expect(decoded.msg.type).toBe(type);
      expect(bytes.readUInt32BE(0)).toBe(bytes.length - 4);
      expect(bytes.readUInt8(8)).toBe(OPCODES[type]);
      expect(bytes.readUInt32BE(9)).toBe(id);
      // the zero-copy chunk list carries exactly the same bytes
      expect(Buffer.concat(encodeFrame(id, msg))).toEqual(bytes);
    });

    // Guards the decoder's buffering: a socket may cut a frame anywhere, even inside the length field.
    it('decodes the same frame when split into two chunks at every position', () => {
      const want = plain([{ id, msg }]);
      for (const at of splitPoints(bytes.length)) {
        expect(feed([bytes.subarray(0, at), bytes.subarray(at)]), `split at ${at}`).toEqual(want);
      }
    });

    // Guards the slow path that reassembles the length field and body from many tiny chunks
    // (for a big frame: its first and last 64 bytes one at a time, the middle in one piece).
    it('decodes the same frame fed byte by byte', () => {
      const single = (b: Buffer) => Array.from(b, (x) => Buffer.from([x]));
      const chunks =
        bytes.length <= 4096
          ? single(bytes)
          : [...single(bytes.subarray(0, 64)), bytes.subarray(64, -64), ...single(bytes.subarray(-64))];
      expect(feed(chunks)).toEqual(plain([{ id, msg }]));
    });
  });

  // Guards frame boundaries: many frames in one chunk come out whole and in order.
  it('decodes many frames concatenated in one chunk, in order', () => {
    const all = Buffer.concat(CASES.map((c) => c.bytes));
    expect(feed([all])).toEqual(plain(CASES.map((c) => ({ id: c.id, msg: c.msg }))));
  });

  // Guards frame boundaries when chunk edges fall anywhere across a stream of frames.
  it('decodes a stream of every frame cut into random chunks, in order', () => {
    const seed = fuzzSeed();
    console.log(`protocol chunking seed ${seed} (replay with KANGAROO_FUZZ_SEED=${seed})`);
    const rng = makeRng(seed);
    const small = CASES.filter((c) => c.bytes.length < 4096);
    for (let round = 0; round < 200; round++) {
      const picked = Array.from({ length: 1 + rng.int(12) }, () => rng.pick(small));
      const stream = Buffer.concat(picked.map((c) => c.bytes));
      const want = plain(picked.map((c) => ({ id: c.id, msg: c.msg })));
      expect(feed(randomChunks(rng, stream)), `seed ${seed} round ${round}`).toEqual(want);
    }
  });
});

/**
 * Large frames are read into buffers of their own: a put of up to 1 MiB into a put
 * buffer the relay gives back once the data is written (PutOp.recycle), so a stream
 * of puts reuses a few buffers instead of leaving one to the collector per MiB.
 */
describe('put buffers', () => {
  const bigPut = (fill: number, bytes = 1024 * 1024): Message => ({ type: 'put', seq: 9, host: 'far:1', path: '/f', offset: 0, data: Buffer.alloc(bytes, fill) });
  const socketChunks = (b: Buffer) => Array.from({ length: Math.ceil(b.length / 65536) }, (_, i) => b.subarray(i * 65536, (i + 1) * 65536));

  it('a 1 MiB put arriving in 64 KiB pieces lands in a put buffer, which its recycle gives to the next one', () => {
    const out: Frame[] = [];
    const d = new FrameDecoder((f) => out.push(f));
    for (const c of socketChunks(encodeFrameBuffer(1, bigPut(1)))) d.push(c);
    const first = out[0]!.msg as PutOp;
    expect(first.data.equals(Buffer.alloc(1024 * 1024, 1))).toBe(true);
    expect(first.data.buffer.byteLength).toBe(PUT_BUFFER_BYTES);
    expect(first.dataCrc).toBe(first.sum);
    const pooled = pooledPutBuffers();
    first.recycle!();
    first.recycle!(); // a second call changes nothing
    expect(pooledPutBuffers()).toBe(pooled + 1);
    for (const c of socketChunks(encodeFrameBuffer(2, bigPut(2)))) d.push(c);
    const second = out[1]!.msg as PutOp;
    expect(second.data.buffer).toBe(first.data.buffer);
    expect(second.data.every((b) => b === 2)).toBe(true);
    expect(pooledPutBuffers()).toBe(pooled);
  });

  it('frames that are not a single put of up to 1 MiB get no recycle (their data may be shared or larger)', () => {
    const out: Frame[] = [];
    const d = new FrameDecoder((f) => out.push(f));
    const bulk: Message = { type: 'bulk', ops: [bigPut(3, 300 * 1024) as PutOp, bigPut(4, 300 * 1024) as PutOp] };
    for (const msg of [bulk, bigPut(5, 2 * 1024 * 1024), { type: 'data', data: Buffer.alloc(512 * 1024, 6) } as Message, bigPut(7, 100 * 1024)]) {
      for (const c of socketChunks(encodeFrameBuffer(1, msg))) d.push(c);
    }
    expect(out.map((f) => f.msg.type)).toEqual(['bulk', 'put', 'data', 'put']);
    for (const op of (out[0]!.msg as Extract<Message, { type: 'bulk' }>).ops) expect((op as PutOp).recycle).toBeUndefined();
    expect((out[1]!.msg as PutOp).recycle).toBeUndefined();
    expect((out[3]!.msg as PutOp).recycle).toBeUndefined();
    expect((out[1]!.msg as PutOp).data.every((b) => b === 5)).toBe(true);
  });

  it('readBuffer and received: a large frame is read in place, to its last byte and no further', () => {
    const out: Frame[] = [];
    const d = new FrameDecoder((f) => out.push(f));
    const stream = Buffer.concat([encodeFrameBuffer(1, bigPut(8)), encodeFrameBuffer(2, { type: 'commit' })]);
    let at = 0;
    const offered: number[] = [];
    while (at < stream.length) {
      const into = d.readBuffer();
      offered.push(into.length);
      const n = stream.copy(into, 0, at, at + Math.min(into.length, 256 * 1024));
      at += n;
      d.received(n);
    }
    expect(out.map((f) => f.msg.type)).toEqual(['put', 'commit']);
    // the scratch buffer first, then exactly what is left of the put's frame
    const frame = stream.length - encodeFrameBuffer(2, { type: 'commit' }).length;
    expect(offered[1]).toBe(frame - offered[0]!);
    expect(d.pending).toBe(0);
  });
});

/**
 * Fixed bytes, written out field by field. If one of these fails, the wire format
 * changed: old relays and spools can no longer be read. Change them only on purpose,
 * with a new PROTOCOL_VERSION.
 */
const FIXTURES: { name: string; id: number; msg: Message; hex: string }[] = [
  {
    name: 'commit',
    id: 7,
    msg: { type: 'commit' },
    hex: ['00000009', 'adc6c47e', '04', '00000007'].join(''), // length, crc, opcode, id; no body
  },
  {
    name: 'put',
    id: 1,
    msg: { type: 'put', seq: 5, host: 'h:1', path: '/f', offset: 2, sum: 0xd8932aac, data: Buffer.from('hi') },
    hex: [
      '0000002c', // length: 44 bytes follow
      '7744791f', // crc32 of everything after it
      '03', // opcode put
      '00000001', // id
      '0000000000000005', // seq
      '0003', '683a31', // host "h:1"
      '0002', '2f66', // path "/f"
      '0000000000000002', // offset
      'd8932aac', // sum: crc32 of the data, taken where it entered the system
      '00000002', '6869', // data "hi"
    ].join(''),
  },
  {
    name: 'hello',
    id: 0x01020304,
    msg: { type: 'hello', version: 1, clientId: 'c' },
    hex: ['0000000e', '86732e3b', '01', '01020304', '0001', '0001', '63'].join(''),
  },
  {
    name: 'error',
    id: 9,
    msg: { type: 'error', code: 'NOT_FOUND', message: 'no' },
    hex: ['00000018', '388d207d', '41', '00000009', '0009', '4e4f545f464f554e44', '0002', '6e6f'].join(''),
  },
  {
    name: 'bulk with one mkdir',
    id: 3,
    msg: { type: 'bulk', ops: [{ type: 'mkdir', seq: 0, host: 'h', path: '/d', mode: 0o755 }] },
    hex: [
      '00000025', '256bbc3e', '0d', '00000003',
      '00000001', // one op
      '09', '00000013', // opcode mkdir, 19 body bytes
      '0000000000000000', '0001', '68', '0002', '2f64', '000001ed', // seq, host "h", path "/d", mode 0755
    ].join(''),
  },
  {
    name: 'setattr',
    id: 2,
    msg: { type: 'setattr', seq: 1, host: 'h', path: '/f', mode: 0o644, mtimeMs: 1_700_000_000_000 },
    hex: [
      '00000024', 'f25bcb39', '10', '00000002',
      '0000000000000001', '0001', '68', '0002', '2f66', // seq, host "h", path "/f"
      '000001a4', // mode 0644
      '0000018bcfe56800', // mtimeMs 1700000000000
    ].join(''),
  },
];

describe('byte-level fixtures', () => {
  // Guards the wire format itself against accidental change, in both directions.
  it.each(FIXTURES)('$name decodes from and encodes to its exact bytes', ({ id, msg, hex }) => {
    const bytes = Buffer.from(hex, 'hex');
    expect(decodeFrame(bytes)).toEqual({ id, msg });
    expect(encodeFrameBuffer(id, msg).toString('hex')).toBe(hex);
    expect(feed([bytes.subarray(0, 5), bytes.subarray(5)])).toEqual(plain([{ id, msg }]));
  });
});

describe('defects', () => {
  const commit = encodeFrameBuffer(1, { type: 'commit' });

  // Guards memory: a huge length field is refused at once, not buffered while waiting for the body.
  it('refuses an oversized length field with FRAME_TOO_LARGE before the body arrives', () => {
    const frames: Frame[] = [];
    const d = new FrameDecoder((f) => frames.push(f));
    d.push(Buffer.from([0x7f, 0xff])); // half a length field: nothing to judge yet
    expect(d.pending).toBe(2);
    const e = protocolError(() => d.push(Buffer.from([0xff, 0xff])));
    expect(e.code).toBe('FRAME_TOO_LARGE');
    expect(d.pending).toBe(0);
    expect(frames).toEqual([]);
    expect(protocolError(() => new FrameDecoder(() => {}).push(Buffer.from('ffffffff', 'hex'))).code).toBe('FRAME_TOO_LARGE');
  });

  // Guards the limit's boundary: maxFrame counts the whole frame, length prefix included.
  it('accepts a frame of exactly maxFrame bytes and refuses one byte more', () => {
    const exact = encodeFrameBuffer(2, { type: 'data', data: Buffer.alloc(100) });
    expect(feed([exact], exact.length)).toHaveLength(1);
    const e = protocolError(() => feed([exact.subarray(0, 4)], exact.length - 1));
    expect(e.code).toBe('FRAME_TOO_LARGE');
  });

  // Guards against a length that cannot even hold crc + opcode + id.
  it.each([0, 1, 4, 8])('refuses length %i (< 9) with BAD_FRAME', (length) => {
    const b = Buffer.alloc(4 + length);
    b.writeUInt32BE(length, 0);
    expect(protocolError(() => feed([b])).code).toBe('BAD_FRAME');
    expect(protocolError(() => decodeFrame(Buffer.concat([b, Buffer.alloc(13)]))).code).toBe('BAD_FRAME');
  });

  // Guards decodeFrame's own checks on a buffer that is not exactly one frame.
  it('decodeFrame refuses a buffer shorter than a header or not matching its length field', () => {
    expect(protocolError(() => decodeFrame(commit.subarray(0, 12))).code).toBe('BAD_FRAME');
    expect(protocolError(() => decodeFrame(Buffer.concat([commit, Buffer.from([0])]))).code).toBe('BAD_FRAME');
  });

  // Guards integrity: a flipped bit anywhere after the length field (crc, opcode, id or body) is caught.
  it('refuses a bad crc with BAD_FRAME, wherever the flipped byte is', () => {
    const p = encodeFrameBuffer(5, SAMPLES.put[0]!);
    for (let i = 4; i < p.length; i++) {
      const bad = Buffer.from(p);
      bad[i]! ^= 0x01;
      const e = protocolError(() => feed([bad]));
      expect(e.code, `byte ${i}`).toBe('BAD_FRAME');
      expect(e.message).toMatch(/checksum/);
    }
  });

  // Guards dispatch: an opcode nobody knows is its own error, distinct from corruption (all 256 values are tried).
  it('refuses every unassigned opcode (valid crc, with or without a body) with UNKNOWN_OP', () => {
    const unknown = Array.from({ length: 256 }, (_, i) => i).filter((i) => !Object.values(OPCODES).includes(i));
    expect(unknown.length).toBe(256 - Object.keys(OPCODES).length);
    for (const opcode of unknown) {
      expect(protocolError(() => feed([rawFrame(opcode, 1)])).code, `opcode ${opcode}`).toBe('UNKNOWN_OP');
      expect(protocolError(() => decodeFrame(rawFrame(opcode, 1, Buffer.from('body')))).code, `opcode ${opcode}`).toBe('UNKNOWN_OP');
    }
  });

  /** Body defects behind a valid crc: only the body decoder can catch these. */
  const BAD_BODIES: [string, number, Buffer][] = [
    ['put whose blob length overruns the frame', OPCODES.put, Buffer.concat([
      Buffer.from('0000000000000001' + '0001' + '68' + '0002' + '2f66' + '0000000000000000', 'hex'),
      Buffer.from('00000010', 'hex'), // claims 16 bytes of data
      Buffer.from('abcd', 'hex'), // has 2
    ])],
    ['put cut inside its offset', OPCODES.put, Buffer.from('0000000000000001' + '0001' + '68' + '0002' + '2f66' + '00000000', 'hex')],
    ['stat whose string length overruns', OPCODES.stat, Buffer.from('ffff' + '6868', 'hex')],
    ['hello with no body', OPCODES.hello, Buffer.alloc(0)],
    ['get with a u64 offset past 2^53', OPCODES.get, Buffer.from('0000' + '0000' + 'ffffffffffffffff' + '00000000', 'hex')],
    ['commit with trailing bytes', OPCODES.commit, Buffer.from([0])],
    ['ok with trailing bytes', OPCODES.ok, Buffer.from('00000000', 'hex')],
    ['hello with trailing bytes', OPCODES.hello, Buffer.from('0001' + '0000' + '00', 'hex')],
    ['statReply with unknown file kind', OPCODES.statReply, Buffer.from('07' + '00'.repeat(20), 'hex')],
    ['json that is not JSON', OPCODES.json, Buffer.from('00000003' + '7b7b7b', 'hex')],
    ['listReply whose count exceeds the frame', OPCODES.listReply, Buffer.from('ffffffff', 'hex')],
    ['bulkReply whose count exceeds the frame', OPCODES.bulkReply, Buffer.from('00000100' + '00'.repeat(16), 'hex')],
    ['bulk whose count exceeds the frame', OPCODES.bulk, Buffer.from('7fffffff' + '00'.repeat(10), 'hex')],
    ['bulk with an entry whose body has trailing bytes', OPCODES.bulk, Buffer.from(
      '00000001' + '0a' + '00000010' + '0000000000000000' + '0001' + '68' + '0002' + '2f66' + '00', 'hex')],
    ['bufOpen with an unknown role', OPCODES.bufOpen, Buffer.from('0001' + '68' + '0001' + '62' + '03', 'hex')],
    ['bulk with an entry whose body is too short', OPCODES.bulk, Buffer.from('00000001' + '0a' + '00000002' + '0000', 'hex')],
  ];

  // Guards the body decoder: valid framing around a malformed body is BAD_FRAME, never a crash or a partial message.
  it.each(BAD_BODIES)('refuses %s with BAD_FRAME', (_name, opcode, body) => {
    const f = rawFrame(opcode, 42, body);
    expect(protocolError(() => decodeFrame(f)).code).toBe('BAD_FRAME');
    expect(protocolError(() => feed([f])).code).toBe('BAD_FRAME');
  });

  // Guards that bulk carries only ordered operations (a bulk cannot smuggle a hello, a commit, a reply or another bulk).
  it.each(['hello', 'commit', 'get', 'bulk', 'ok', 'error'] as MessageType[])('refuses a bulk containing a %s with BAD_FRAME', (inner) => {
    const innerBody = encodeFrameBuffer(0, SAMPLES[inner][0]!).subarray(13);
    const body = Buffer.alloc(4 + 5 + innerBody.length);
    body.writeUInt32BE(1, 0);
    body.writeUInt8(OPCODES[inner], 4);
    body.writeUInt32BE(innerBody.length, 5);
    innerBody.copy(body, 9);
    const e = protocolError(() => feed([rawFrame(OPCODES.bulk, 1, body)]));
    expect(e.code).toBe('BAD_FRAME');
    expect(e.message).toMatch(/not an ordered operation/);
  });

  // Guards the same rule for an opcode that does not exist at all.
  it('refuses a bulk containing an unknown opcode with BAD_FRAME', () => {
    const body = Buffer.from('00000001' + '63' + '00000000', 'hex');
    expect(protocolError(() => feed([rawFrame(OPCODES.bulk, 1, body)])).code).toBe('BAD_FRAME');
  });

  // Guards the contract "the first defect ends the stream": frames before it are delivered, nothing after it ever is.
  it('delivers the frames before a defect, then refuses all further input', () => {
    const frames: Frame[] = [];
    const d = new FrameDecoder((f) => frames.push(f));
    const bad = Buffer.from(commit);
    bad[6]! ^= 0xff;
    const first = protocolError(() => d.push(Buffer.concat([commit, bad, commit])));
    expect(first.code).toBe('BAD_FRAME');
    expect(frames).toHaveLength(1);
    expect(d.pending).toBe(0);
    for (const more of [commit, Buffer.alloc(0), Buffer.from([1, 2, 3])]) {
      const again = protocolError(() => d.push(more));
      expect(again).toBe(first);
    }
    expect(frames).toHaveLength(1);
  });
});

describe('hostile input', () => {
  const PROTOCOL_CODES = new Set(['BAD_FRAME', 'FRAME_TOO_LARGE', 'UNKNOWN_OP']);
  /** A decode step slower than this is a pathology (an infinite loop would hang the worker, so a clock is all we can check). */
  const SLOW_CASE_MS = 1000;
  const VALID = CASES.map((c) => c.bytes).filter((b) => b.length < 8192);

  /**
   * Feeds one input; returns 'ok' or the error code. Anything but a KangarooError with a protocol
   * code fails the test: FrameDecoder wraps whatever it catches with KangarooError.from, so a
   * TypeError or RangeError from a decoder bug would show up here as INTERNAL.
   */
  function tryInput(chunks: Buffer[], label: string): string {
    const started = performance.now();
    let outcome: string;
    const decoded: Frame[] = [];
    try {
      const d = new FrameDecoder((f) => decoded.push(f), 64 * 1024);
      for (const c of chunks) d.push(c);
      outcome = d.pending > 0 ? 'incomplete' : 'ok';
    } catch (err) {
      if (!(err instanceof KangarooError) || !PROTOCOL_CODES.has(err.code)) {
        const cause = err instanceof KangarooError ? err.cause : undefined;
        throw new Error(`${label}: decoder threw ${String(err)} (cause: ${String(cause)})`, { cause: err });
      }
      outcome = err.code;
    }
    // Whatever decodes must encode again, and decode to the same thing: a relay re-encodes
    // what it accepts (into its spool and to the next hop). Error texts are cut to 4000
    // characters and JSON is normalized on the way out, so those are only re-encoded.
    for (const f of decoded) {
      const again = decodeFrame(encodeFrameBuffer(f.id, f.msg));
      if (!['error', 'bulkReply', 'json'].includes(f.msg.type)) expect(plain(again), label).toEqual(plain(f));
    }
    const took = performance.now() - started;
    if (took > SLOW_CASE_MS) throw new Error(`${label}: took ${took.toFixed(0)} ms`);
    return outcome;
  }

  function tally(counts: Map<string, number>, key: string): void {
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }

  // Guards the decoder against arbitrary bytes: the only possible outcome is a protocol error (or frames).
  it('20,000 random byte strings only ever produce protocol errors', () => {
    const seed = fuzzSeed();
    console.log(`random-bytes fuzz seed ${seed} (replay with KANGAROO_FUZZ_SEED=${seed})`);
    const rng = makeRng(seed);
    const counts = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) {
      let input = rng.bytes(rng.int(rng.chance(0.9) ? 64 : 2048));
      // a plausible length prefix now and then, so random bytes get past the size check
      if (input.length >= 4 && rng.chance(0.3)) input.writeUInt32BE(input.length - 4, 0);
      tally(counts, tryInput(randomChunks(rng, input), `seed ${seed} case ${i} input ${input.toString('hex')}`));
    }
    console.log('random-bytes outcomes', Object.fromEntries(counts));
    expect([...counts.values()].reduce((a, b) => a + b)).toBe(20_000);
  }, 120_000);

  // Guards the body decoder: mutated valid frames, half with length and crc repaired so the
  // mutation reaches the field parsers; also a valid frame before the mutant, to exercise the stream.
  it('20,000 mutations of valid frames only ever produce protocol errors or valid frames', () => {
    const seed = fuzzSeed();
    console.log(`mutation fuzz seed ${seed} (replay with KANGAROO_FUZZ_SEED=${seed})`);
    const rng = makeRng(seed);
    const counts = new Map<string, number>();
    let refitted = 0;
    for (let i = 0; i < 20_000; i++) {
      const base = rng.pick(VALID);
      let mutant = mutate(rng, base);
      if (i % 2 === 0) {
        mutant = refit(mutant);
        refitted++;
      }
      const stream = rng.chance(0.25) ? Buffer.concat([rng.pick(VALID), mutant]) : mutant;
      const outcome = tryInput(randomChunks(rng, stream), `seed ${seed} case ${i} input ${stream.toString('hex')}`);
      tally(counts, `${i % 2 === 0 ? 'refit' : 'raw'}:${outcome}`);
    }
    console.log(`mutation outcomes (${refitted} with crc recomputed)`, Object.fromEntries(counts));
    // the repaired half must really reach the body decoder: both accepted and refused bodies
    expect(counts.get('refit:ok') ?? 0).toBeGreaterThan(500);
    expect(counts.get('refit:BAD_FRAME') ?? 0).toBeGreaterThan(500);
  }, 120_000);
});
