/**
 * rootforge's own configuration files in an image: /etc/rootforge/agent.json (the guest agent's;
 * its `init` field names the init program) and /etc/rootforge/image.json (written by `convert`
 * from an OCI image config; its `architecture` field). Both are optional; a present one must be a
 * JSON object whose fields verify reads have the right types.
 */
import { cannot } from '../errors.js';
import { IMAGE_JSON_PATH } from '../oci/image-json.js';
import { utf8ToByteString } from '../util/bytes.js';
import { archByName } from './arch.js';
import type { ImageFs } from './image-fs.js';
import type { VerifyCheck } from './types.js';

export const AGENT_JSON_PATH = '/etc/rootforge/agent.json';
export const IMAGE_JSON = `/${IMAGE_JSON_PATH}`;

export interface ImageConfig {
  agentJson: boolean;
  imageJson: boolean;
  /** agent.json's `init` (a byte string). */
  init?: string;
  /** image.json's `architecture`, else agent.json's (rootforge build records it), when known. */
  architecture?: string;
  /** Which file said the architecture. */
  architectureFrom?: 'image.json' | 'agent.json';
  check: VerifyCheck;
}

type JsonFile = { present: false } | { present: true; value?: Record<string, unknown>; error?: string };

async function readJson(fs: ImageFs, path: string): Promise<JsonFile> {
  const look = await fs.resolve(path);
  if (!look.ok) {
    if (look.code === 'ENOENT') return { present: false };
    return { present: true, error: cannot(`read ${path}`, look.reason) };
  }
  if (look.st.kind !== 'file') return { present: true, error: cannot(`read ${path}`, 'not a regular file', look.st.kind) };
  if (look.st.size > 1 << 20) return { present: true, error: cannot(`read ${path}`, 'larger than 1 MiB', look.st.size) };
  let value: unknown;
  try {
    value = JSON.parse((await fs.readSmall(look.st)).toString('utf8'));
  } catch (e) {
    // Only JSON.parse's SyntaxError lands here; it becomes this check's finding.
    return { present: true, error: cannot(`parse ${path}`, 'not valid JSON', (e as Error).message) };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { present: true, error: cannot(`parse ${path}`, 'not a JSON object') };
  return { present: true, value: value as Record<string, unknown> };
}

export async function readImageConfig(fs: ImageFs): Promise<ImageConfig> {
  const agent = await readJson(fs, AGENT_JSON_PATH);
  const image = await readJson(fs, IMAGE_JSON);
  const problems: string[] = [];
  const found: string[] = [];
  const out: Omit<ImageConfig, 'check'> = { agentJson: agent.present, imageJson: image.present };
  if (agent.present) {
    if (agent.error) problems.push(agent.error);
    const init = agent.value?.['init'];
    if (init !== undefined && typeof init !== 'string') problems.push(cannot(`use ${AGENT_JSON_PATH}`, 'the init field is not a string', JSON.stringify(init)));
    else if (typeof init === 'string' && init === '') problems.push(cannot(`use ${AGENT_JSON_PATH}`, 'the init field is empty'));
    else if (typeof init === 'string') out.init = utf8ToByteString(init);
    if (agent.value) found.push(`agent.json (init ${typeof init === 'string' ? utf8ToByteString(init) : 'not set'})`);
  }
  if (image.present) {
    if (image.error) problems.push(image.error);
    const arch = image.value?.['architecture'];
    if (arch !== undefined && typeof arch !== 'string') problems.push(cannot(`use ${IMAGE_JSON}`, 'the architecture field is not a string', JSON.stringify(arch)));
    else if (typeof arch === 'string' && arch !== '' && !archByName(arch)) problems.push(cannot(`use ${IMAGE_JSON}`, 'unknown architecture', arch));
    else if (typeof arch === 'string' && arch !== '') {
      out.architecture = archByName(arch)!.arch;
      out.architectureFrom = 'image.json';
    }
    if (image.value) found.push(`image.json (architecture ${out.architecture ?? 'not set'})`);
  }
  const agentArch = agent.present ? agent.value?.['architecture'] : undefined;
  if (agentArch !== undefined && typeof agentArch !== 'string') problems.push(cannot(`use ${AGENT_JSON_PATH}`, 'the architecture field is not a string', JSON.stringify(agentArch)));
  else if (typeof agentArch === 'string' && agentArch !== '' && !archByName(agentArch)) problems.push(cannot(`use ${AGENT_JSON_PATH}`, 'unknown architecture', agentArch));
  else if (typeof agentArch === 'string' && agentArch !== '' && out.architecture === undefined) {
    out.architecture = archByName(agentArch)!.arch;
    out.architectureFrom = 'agent.json';
  }
  const check: VerifyCheck =
    problems.length > 0
      ? { id: 'config', ok: false, severity: 'error', message: problems.join('; '), details: { problems } }
      : { id: 'config', ok: true, severity: 'error', message: found.length > 0 ? found.join(', ') : `no ${AGENT_JSON_PATH} or ${IMAGE_JSON} (defaults apply)` };
  return { ...out, check };
}
