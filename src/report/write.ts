/** Writes the HTML content report of an image file (atomically: whole or not at all). */
import { basename } from 'node:path';
import { Ext4Image } from '../ext4/reader.js';
import { writeAtomically } from '../util/atomic.js';
import { diffHtml, reportHtml } from './html.js';
import { buildReport, type ImageReport } from './model.js';
import { diffImages, type ImageDiff } from './diff.js';

export async function writeReport(image: string, output: string): Promise<ImageReport> {
  const img = await Ext4Image.open(image);
  try {
    const report = await buildReport(img);
    const html = reportHtml(report, basename(image));
    await writeAtomically(output, async (fh) => fh.writeFile(html));
    return report;
  } finally {
    await img.close();
  }
}

/** Diffs two image files; writes the HTML form too when `html` is given. */
export async function diffImageFiles(pathA: string, pathB: string, html?: string): Promise<ImageDiff> {
  const a = await Ext4Image.open(pathA);
  try {
    const b = await Ext4Image.open(pathB);
    try {
      const d = await diffImages(a, b);
      if (html !== undefined) {
        const text = diffHtml(d, basename(pathA), basename(pathB));
        await writeAtomically(html, async (fh) => fh.writeFile(text));
      }
      return d;
    } finally {
      await b.close();
    }
  } finally {
    await a.close();
  }
}
