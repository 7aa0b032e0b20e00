import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/relay-process.js';
import { firstHopBefore, ScriptedNextHop } from '../helpers/scripted-hop.js';

describe('the mover while a commit is outstanding', () => {
  // A program writes one file, computes, writes the next: each file's data must leave as
  // soon as it is spooled, not after the next hop answered the commit of the one before.
  it('sends ops accepted after a group was closed without waiting for that group\'s commit', async () => {
    // the next hop answers hello and bulk frames at once and holds every commit until released
    const next = new ScriptedNextHop();
    const { host, client } = await firstHopBefore(next);

    await client.put(host, '/out-0.dat', 0, Buffer.alloc(64 * 1024, 1));
    await client.commit();
    await waitFor(() => next.puts.includes('/out-0.dat') && next.commitsHeld > 0, 10_000, 'first file and its commit at the next hop');

    await client.put(host, '/out-1.dat', 0, Buffer.alloc(64 * 1024, 2));
    await client.commit();
    // the first commit is still unanswered: the second file must reach the next hop anyway
    await waitFor(() => next.puts.includes('/out-1.dat'), 5_000, 'second file sent while the first commit is held');
    expect(next.commitsHeld).toBeGreaterThan(0);
    next.releaseCommits();
  });
});
