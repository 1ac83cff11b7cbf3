/** A one-line progress meter on stderr: bytes done / total and rate. Silent when not a TTY. */
import { formatBytes } from '../util/size.js';

export class ProgressLine {
  private readonly started = Date.now(); // wall clock is fine here: display only, never in output
  private last = 0;
  private shown = false;
  private label = '';

  constructor(readonly enabled: boolean) {}

  /** A named phase of a long source (mmdebstrap's steps): shown before the byte count. */
  phase(name: string): void {
    if (!this.enabled) return;
    this.label = `${name}  `;
    process.stderr.write(`\r\x1b[K  ${this.label}`);
    this.shown = true;
  }

  update(done: number, total: number | undefined): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 100) return;
    this.last = now;
    const secs = Math.max(0.001, (now - this.started) / 1000);
    const rate = `${formatBytes(done / secs)}/s`;
    const of = total ? ` / ${formatBytes(total)} (${Math.floor((done / total) * 100)}%)` : '';
    process.stderr.write(`\r\x1b[K  ${this.label}${formatBytes(done)}${of}  ${rate}`);
    this.shown = true;
  }

  done(): void {
    if (this.shown) process.stderr.write('\r\x1b[K');
  }
}
