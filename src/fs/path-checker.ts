import { ChildProcess, spawn } from 'node:child_process';
import type { Socket } from 'node:net';

/**
 * Stats paths under the mount from a small child process, never from the mount's
 * own threads. A thread of the serving process blocked in a request to its own
 * mount cannot be ended: killed, the kernel waits without end for an answer only
 * this process could give, so a `kill -9` left the mount in state D (the test that
 * SIGKILLs a mount right after a writer's close hung for minutes). A child blocked
 * the same way is released when the mount's process dies and the kernel aborts the
 * connection. One long-lived shell answers a line per path: `[ -e ]` is a stat(2)
 * and starts no process of its own.
 */
export class PathChecker {
  private child: ChildProcess | undefined;
  private waiting: (() => void)[] = [];

  /** Resolves once the path was stat'ed (whatever the answer), or the checker is gone. */
  check(p: string): Promise<void> {
    if (p.includes('\n')) return Promise.resolve(); // one path per line
    const child = this.start();
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      child.stdin!.write(p + '\n');
    });
  }

  stop(): void {
    const c = this.child;
    this.child = undefined;
    if (c?.pid !== undefined && c.exitCode === null) c.kill();
    this.answerAll();
  }

  private start(): ChildProcess {
    if (this.child) return this.child;
    const c = spawn('sh', ['-c', 'while IFS= read -r p; do [ -e "$p" ]; echo; done'], { stdio: ['pipe', 'pipe', 'ignore'] });
    c.stdout!.on('data', (d: Buffer) => {
      for (const b of d) if (b === 0x0a) this.waiting.shift()?.();
    });
    c.stdin!.on('error', () => undefined);
    c.on('error', () => undefined);
    c.on('exit', () => {
      if (this.child === c) this.child = undefined;
      this.answerAll();
    });
    // the mount's own work keeps the process alive; this child must not
    c.unref();
    (c.stdin as Socket).unref();
    (c.stdout as Socket).unref();
    this.child = c;
    return c;
  }

  private answerAll(): void {
    for (const w of this.waiting.splice(0)) w();
  }
}
