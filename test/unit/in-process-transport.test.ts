import { describe, expect, it } from 'vitest';
import { inProcessPair } from '../../src/client/in-process-transport.js';
import { Frame } from '../../src/protocol/frame.js';
import { Message } from '../../src/protocol/messages.js';

const MiB = 1024 * 1024;
const nextTurn = () => new Promise<void>((r) => setImmediate(r));

function receiver(end: ReturnType<typeof inProcessPair>[number]) {
  const frames: Frame[] = [];
  let drains = 0;
  let closed = false;
  end.listen({ frame: (f) => frames.push(f), malformed: () => undefined, drain: () => drains++, close: () => (closed = true) });
  return { frames, drains: () => drains, closed: () => closed };
}

describe('in-process transport', () => {
  it('delivers frames in order on a later turn, and backs a sender up while the receiver is paused', async () => {
    const [client, relay] = inProcessPair('mount', 'relay');
    const atClient = receiver(client);
    const atRelay = receiver(relay);
    relay.pause();
    const data = Buffer.alloc(MiB / 4, 7);
    const answers: boolean[] = [];
    for (let i = 0; i < 8; i++) answers.push(client.send(i + 1, { type: 'put', seq: 0, host: 'h:1', path: '/f', offset: i * data.length, data }));
    expect(atRelay.frames).toHaveLength(0);
    // 1 MiB held back: the fourth put is the one that tells the sender to wait
    expect(answers).toEqual([true, true, true, false, false, false, false, false]);
    expect(client.queuedBytes).toBeGreaterThanOrEqual(2 * MiB);
    await nextTurn();
    expect(atRelay.frames).toHaveLength(0);
    relay.resume();
    await nextTurn();
    expect(atRelay.frames.map((f) => f.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(client.queuedBytes).toBe(0);
    expect(atClient.drains()).toBe(1);
  });

  it('a put is a copy with the sum of its data; other messages are checked as from the wire', async () => {
    const [client, relay] = inProcessPair('mount', 'relay');
    const atClient = receiver(client);
    const atRelay = receiver(relay);
    const data = Buffer.alloc(300 * 1024, 1);
    let sent = false;
    client.send(1, { type: 'put', seq: 0, host: 'h:1', path: '/f', offset: 0, data }, () => (sent = true));
    expect(sent).toBe(true);
    data.fill(2); // the sender's buffer is its own again
    relay.send(2, { type: 'statReply', info: { kind: 'file', size: 1, mtimeMs: 1795334217108.6, mode: 0o644 } });
    await nextTurn();
    const put = atRelay.frames[0]!.msg as Extract<Message, { type: 'put' }>;
    expect(put.data.every((b) => b === 1)).toBe(true);
    expect(put.sum).toBe(put.dataCrc);
    expect(put.recycle).toBeTypeOf('function');
    // the wire carries whole milliseconds
    expect((atClient.frames[0]!.msg as Extract<Message, { type: 'statReply' }>).info.mtimeMs).toBe(1795334217109);
  });

  it('end closes both ends once the peer has taken what was sent; destroy at once', async () => {
    const [client, relay] = inProcessPair('mount', 'relay');
    const atClient = receiver(client);
    const atRelay = receiver(relay);
    client.send(1, { type: 'commit' });
    client.end();
    expect(client.destroyed).toBe(false);
    await nextTurn();
    await nextTurn();
    expect(atRelay.frames).toHaveLength(1);
    expect(atRelay.closed() && atClient.closed()).toBe(true);

    const [a, b] = inProcessPair('a', 'b');
    const atA = receiver(a);
    const atB = receiver(b);
    a.send(1, { type: 'commit' });
    b.destroy();
    await nextTurn();
    expect(atB.frames).toHaveLength(0);
    expect(atA.closed() && atB.closed() && a.destroyed).toBe(true);
  });
});
