/**
 * The guest's serial console: kept in full in a log file, its last lines in memory for error
 * messages, and watched for the moments that time a boot (the kernel's first line, "Run ... as
 * init process") and for a kernel panic.
 */
import { createWriteStream, type WriteStream } from 'node:fs';

export interface ConsoleEvents {
  /** Host time (ms since VMM start) of the first console byte: the kernel is running. */
  kernelAt?: number;
  /** Guest time (s, from the printk timestamp) when the kernel ran the first userspace init. */
  initGuestSec?: number;
  /** Host time (ms since VMM start) when that line arrived. */
  initAt?: number;
  /** The init the kernel ran ("/init" for an initramfs, then the image's). */
  initPaths: string[];
  panic?: string;
}

export class ConsoleLog {
  private tail: string[] = [];
  private partial = '';
  private readonly file: WriteStream | null;
  readonly events: ConsoleEvents = { initPaths: [] };
  private onPanic: ((line: string) => void) | null = null;

  constructor(
    path: string | null,
    private readonly started: number,
    private readonly echo: ((chunk: Buffer) => void) | null = null,
    private readonly keep = 200,
  ) {
    this.file = path ? createWriteStream(path) : null;
  }

  whenPanic(fn: (line: string) => void): void {
    this.onPanic = fn;
  }

  write(chunk: Buffer): void {
    const now = performance.now() - this.started;
    this.events.kernelAt ??= now;
    this.file?.write(chunk);
    this.echo?.(chunk);
    const text = this.partial + chunk.toString('utf8');
    const lines = text.split(/\r?\n/);
    this.partial = lines.pop() ?? '';
    for (const line of lines) this.line(line, now);
  }

  private line(line: string, now: number): void {
    this.tail.push(line);
    if (this.tail.length > this.keep) this.tail.shift();
    const run = /\[\s*([0-9]+\.[0-9]+)\]\s+Run (\S+) as init process/.exec(line);
    if (run) {
      this.events.initPaths.push(run[2]!);
      // the last one is the image's init (after an initramfs' /init switched root)
      this.events.initGuestSec = Number(run[1]);
      this.events.initAt = now;
    }
    // our initramfs hands over to the image's init and says when, on the guest's clock
    const handover = /rootforge-initrd: .*starting (\S+) at uptime ([0-9]+\.[0-9]+)s/.exec(line);
    if (handover) {
      this.events.initPaths.push(handover[1]!);
      this.events.initGuestSec = Number(handover[2]);
      this.events.initAt = now;
    }
    if (/Kernel panic - not syncing/.test(line) && !this.events.panic) {
      this.events.panic = line.replace(/^\[[^\]]*\]\s*/, '');
      this.onPanic?.(line);
    }
  }

  /** The last `n` lines (for failure messages). */
  lastLines(n = 40): string {
    const all = this.partial ? [...this.tail, this.partial] : this.tail;
    return all.slice(-n).join('\n');
  }

  async close(): Promise<void> {
    if (!this.file) return;
    await new Promise<void>((resolve) => this.file!.end(resolve));
  }
}
