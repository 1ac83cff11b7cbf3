/**
 * An ext4 image's tree as a tar, read back from the finished image so the tar holds exactly
 * what the image holds: types, modes, owners, nanosecond mtimes, xattrs (ACLs in the VFS
 * encoding), hard links (later names link to the first, in walk order), symlinks, devices.
 * Entries come in byte order of their paths, depth first; the root itself is not an entry (layer
 * tars do not carry one). Sockets cannot be stored in tar and are skipped with a warning.
 */
import { Ext4Image, type Stat } from '../ext4/reader.js';
import { TarWriter, type TarType } from './tar-writer.js';

const ROOT_INO = 2;

export interface RootfsTarStats {
  entries: number;
  skipped: string[];
}

export async function writeRootfsTar(image: string, sink: { write(b: Buffer): Promise<void> }, onWarning?: (message: string) => void): Promise<RootfsTarStats> {
  const img = await Ext4Image.open(image);
  const tar = new TarWriter(sink);
  const firstPath = new Map<number, string>();
  const stats: RootfsTarStats = { entries: 0, skipped: [] };
  try {
    const walk = async (dir: Stat, prefix: string): Promise<void> => {
      const listing = (await img.readdir(dir)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const stats_ = await img.statMany(listing.map((e) => e.ino));
      for (let i = 0; i < listing.length; i++) {
        const st = stats_[i]!;
        const path = prefix + listing[i]!.name;
        if (st.kind === 'socket') {
          stats.skipped.push(path);
          onWarning?.(`skipped socket /${path}: tar cannot hold sockets`);
          continue;
        }
        const xattrs = await img.xattrs(st);
        const base = { path, mode: st.perm, uid: st.uid, gid: st.gid, mtime: st.mtime, xattrs, size: 0 };
        stats.entries++;
        if (st.kind !== 'dir' && st.linksCount > 1) {
          const first = firstPath.get(st.ino);
          if (first !== undefined) {
            await tar.header({ ...base, type: 'link', linkname: first });
            continue;
          }
          firstPath.set(st.ino, path);
        }
        switch (st.kind) {
          case 'dir':
            await tar.header({ ...base, type: 'dir' });
            await walk(st, `${path}/`);
            break;
          case 'file': {
            await tar.header({ ...base, type: 'file', size: st.size });
            let n = 0;
            for await (const b of img.stream(st)) {
              await tar.data(b);
              n += b.length;
            }
            await tar.pad(n);
            break;
          }
          case 'symlink':
            await tar.header({ ...base, type: 'symlink', linkname: await img.readlink(st) });
            break;
          default:
            await tar.header({ ...base, type: st.kind as TarType, devmajor: st.major, devminor: st.minor });
        }
      }
    };
    await walk(await img.stat(ROOT_INO), '');
    await tar.finish();
    return stats;
  } finally {
    await img.close();
  }
}
