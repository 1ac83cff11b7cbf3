/**
 * A real headless Chromium driven over the DevTools protocol through --remote-debugging-pipe
 * (fd 3: commands in, fd 4: events and replies out, NUL-terminated JSON). No WebSocket library
 * and no browser download: Debian's /usr/bin/chromium. Every wait has a timeout; close() kills
 * the browser and removes its profile directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { inflateSync } from 'node:zlib';

export const CHROMIUM = process.env['CHROMIUM'] ?? '/usr/bin/chromium';

export function chromiumMissing(): string | null {
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} is not installed (apt-get install chromium; .ci/run does)`;
}

type Msg = { id?: number; method?: string; params?: any; result?: any; error?: { message: string }; sessionId?: string };

export class Browser {
  private nextId = 1;
  private buf = '';
  private pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  private listeners: ((m: Msg) => void)[] = [];
  readonly events: Msg[] = [];

  private constructor(private readonly proc: ChildProcess, private readonly profile: string) {
    proc.once('exit', () => {
      for (const p of this.pending.values()) p.reject(new Error('chromium exited'));
      this.pending.clear();
    });
    const out = proc.stdio[4] as Readable;
    out.setEncoding('utf8');
    out.on('data', (chunk: string) => {
      this.buf += chunk;
      let i;
      while ((i = this.buf.indexOf('\0')) >= 0) {
        const m = JSON.parse(this.buf.slice(0, i)) as Msg;
        this.buf = this.buf.slice(i + 1);
        if (m.id !== undefined && this.pending.has(m.id)) {
          const p = this.pending.get(m.id)!;
          this.pending.delete(m.id);
          if (m.error) p.reject(new Error(`CDP: ${m.error.message}`));
          else p.resolve(m.result);
        } else {
          this.events.push(m);
          for (const l of this.listeners) l(m);
        }
      }
    });
  }

  static async launch(width = 1280, height = 900): Promise<Browser> {
    const profile = mkdtempSync(join(tmpdir(), 'rf-chromium-'));
    const args = [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-extensions', '--disable-dev-shm-usage', '--mute-audio',
      `--user-data-dir=${profile}`, `--window-size=${width},${height}`, '--remote-debugging-pipe', 'about:blank',
    ];
    // its own process group, so close() can end the renderer and helper processes too
    const proc = spawn(CHROMIUM, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'], detached: true });
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const b = new Browser(proc, profile);
    const exited = new Promise<never>((_, reject) => proc.once('exit', (c) => reject(new Error(`chromium exited ${c}: ${stderr}`))));
    exited.catch(() => undefined);
    await Promise.race([b.send('Browser.getVersion'), exited]);
    return b;
  }

  send(method: string, params: object = {}, sessionId?: string, timeoutMs = 60_000): Promise<any> {
    const id = this.nextId++;
    const msg = JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) });
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`CDP ${method} timed out`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => (clearTimeout(t), resolve(v)),
        reject: (e) => (clearTimeout(t), reject(e)),
      });
      (this.proc.stdio[3] as Writable).write(msg + '\0');
    });
  }

  waitFor(pred: (m: Msg) => boolean, timeoutMs = 60_000): Promise<Msg> {
    const hit = this.events.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.listeners = this.listeners.filter((l) => l !== on);
        reject(new Error('CDP event wait timed out'));
      }, timeoutMs);
      const on = (m: Msg) => {
        if (!pred(m)) return;
        clearTimeout(t);
        this.listeners = this.listeners.filter((l) => l !== on);
        resolve(m);
      };
      this.listeners.push(on);
    });
  }

  /** Opens a page, enables the domains tests watch and loads `url`; returns the session. */
  async open(url: string, width = 1280, height = 900): Promise<Page> {
    const { targetId } = await this.send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await this.send('Target.attachToTarget', { targetId, flatten: true });
    const page = new Page(this, sessionId);
    for (const d of ['Page', 'Runtime', 'Log', 'Network']) await page.send(`${d}.enable`);
    await page.send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false });
    await page.send('Page.navigate', { url });
    await this.waitFor((m) => m.sessionId === sessionId && m.method === 'Page.loadEventFired');
    return page;
  }

  /** Asks the browser to quit, kills its process group if it has not within 10 s, removes the profile. */
  async close(): Promise<void> {
    const gone = new Promise<void>((r) => (this.proc.exitCode !== null || this.proc.signalCode !== null ? r() : this.proc.once('exit', () => r())));
    const asked = this.send('Browser.close', {}, undefined, 10_000).catch((e: Error) => e);
    const timedOut = await Promise.race([gone.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 10_000).unref())]);
    await asked;
    try {
      process.kill(-this.proc.pid!, 'SIGKILL'); // helpers left behind (or everything, after the timeout)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e; // ESRCH: the group is already gone
    }
    if (timedOut) await gone;
    rmSync(this.profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }
}

export class Page {
  constructor(readonly browser: Browser, readonly sessionId: string) {}

  send(method: string, params: object = {}): Promise<any> {
    return this.browser.send(method, params, this.sessionId);
  }

  /** Evaluates an expression in the page and returns its (JSON) value; throws on a page exception. */
  async eval<T>(expression: string): Promise<T> {
    const r = await this.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true });
    if (r.exceptionDetails) throw new Error(`page: ${JSON.stringify(r.exceptionDetails)}`);
    return r.result.value as T;
  }

  async click(x: number, y: number): Promise<void> {
    for (const type of ['mouseMoved', 'mousePressed', 'mouseReleased']) {
      await this.send('Input.dispatchMouseEvent', { type, x, y, button: 'left', clickCount: type === 'mouseMoved' ? 0 : 1 });
    }
  }

  async screenshot(): Promise<Buffer> {
    const r = await this.send('Page.captureScreenshot', { format: 'png' });
    return Buffer.from(r.data as string, 'base64');
  }

  /** Console errors, uncaught exceptions and error log entries of this page so far. */
  errors(): string[] {
    const out: string[] = [];
    for (const m of this.browser.events) {
      if (m.sessionId !== this.sessionId) continue;
      if (m.method === 'Runtime.exceptionThrown') out.push(`exception: ${JSON.stringify(m.params.exceptionDetails)}`);
      if (m.method === 'Runtime.consoleAPICalled' && (m.params.type === 'error' || m.params.type === 'assert')) out.push(`console: ${JSON.stringify(m.params.args)}`);
      if (m.method === 'Log.entryAdded' && m.params.entry.level === 'error') out.push(`log: ${m.params.entry.text} ${m.params.entry.url ?? ''}`);
    }
    return out;
  }

  /** URLs the page requested. */
  requests(): string[] {
    return this.browser.events.filter((m) => m.sessionId === this.sessionId && m.method === 'Network.requestWillBeSent').map((m) => m.params.request.url as string);
  }
}

/**
 * Decodes an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium's screenshots are) into pixels,
 * so a test can count colours instead of trusting a file size.
 */
export function decodePng(png: Buffer): { width: number; height: number; channels: number; pixels: Buffer } {
  if (png.readUInt32BE(0) !== 0x89504e47) throw new Error('not a PNG');
  let off = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (off < png.length) {
    const len = png.readUInt32BE(off);
    const type = png.toString('latin1', off + 4, off + 8);
    const body = png.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      const depth = body[8];
      const colour = body[9];
      if (depth !== 8 || (colour !== 2 && colour !== 6) || body[12] !== 0) throw new Error(`unsupported PNG (depth ${depth}, colour ${colour})`);
      channels = colour === 6 ? 4 : 3;
    } else if (type === 'IDAT') idat.push(body);
    else if (type === 'IEND') break;
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? pixels[y * stride + x - channels]! : 0;
      const b = y > 0 ? pixels[(y - 1) * stride + x]! : 0;
      const c = x >= channels && y > 0 ? pixels[(y - 1) * stride + x - channels]! : 0;
      let v = line[x]!;
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      pixels[y * stride + x] = v & 0xff;
    }
  }
  return { width, height, channels, pixels };
}

/** Number of distinct colours in a screenshot (a blank page has one or two). */
export function distinctColours(png: Buffer): number {
  const { pixels, channels } = decodePng(png);
  const seen = new Set<number>();
  for (let i = 0; i < pixels.length; i += channels) seen.add((pixels[i]! << 16) | (pixels[i + 1]! << 8) | pixels[i + 2]!);
  return seen.size;
}
