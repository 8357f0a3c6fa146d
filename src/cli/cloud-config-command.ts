import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { isJsonObject } from '../config/go-json.js';
import { FlannelError, UsageError, errorMessage } from '../errors.js';
import { envName, parseFlags, type FlannelOptions } from './flags.js';

/**
 * `coreos.flannel.*` keys as CoreOS's cloud-config documents them, in the order coreos-cloudinit writes them,
 * each with the flanneld flag it feeds (the variable is that flag's FLANNELD_* name).
 */
const KEYS: readonly (readonly [key: string, flag: string])[] = [
  ['etcd_endpoints', 'etcd-endpoints'],
  ['etcd_cafile', 'etcd-cafile'],
  ['etcd_certfile', 'etcd-certfile'],
  ['etcd_keyfile', 'etcd-keyfile'],
  ['etcd_prefix', 'etcd-prefix'],
  ['ip_masq', 'ip-masq'],
  ['subnet_file', 'subnet-file'],
  ['interface', 'iface'],
  ['public_ip', 'public-ip'],
  ['etcd_username', 'etcd-username'],
  ['etcd_password', 'etcd-password'],
];

/** A cloud-config that cannot be translated: one line naming the file and what is wrong with it. */
export class CloudConfigError extends FlannelError {}

/**
 * One `Environment=` line that systemd reads back as exactly `name=value`. The whole assignment is double-quoted
 * (systemd.syntax(7)): inside quotes `\` and `"` are backslash-escaped, and `%` is doubled because systemd expands
 * specifiers before unquoting. `$` needs nothing: Environment= performs no variable expansion (systemd.exec(5)).
 */
export function environmentLine(name: string, value: string): string {
  const escaped = `${name}=${value}`.replace(/[\\"]/g, (c) => `\\${c}`).replace(/%/g, '%%');
  return `Environment="${escaped}"`;
}

/** Translates a `#cloud-config` document's `coreos.flannel` section into a systemd drop-in for flanneld. */
function translateCloudConfig(text: string, source: string): string {
  const fail = (what: string) => new CloudConfigError(`${source}: ${what}`);
  // coreos-cloudinit's test: the first line is exactly "#cloud-config" (a CRLF file is fine).
  const firstLine = text.split('\n', 1)[0].replace(/\r$/, '');
  if (firstLine !== '#cloud-config') {
    throw fail(`not a cloud-config: the first line must be "#cloud-config", found ${JSON.stringify(firstLine.slice(0, 40))}`);
  }
  // failsafe schema: every scalar stays the string it was written as (`ip_masq: true` → "true", `1e3` → "1e3"),
  // as CoreOS's Go structs of strings read it.
  const doc = parseDocument(text, { schema: 'failsafe', prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    const first = doc.errors[0].message.split('\n', 1)[0].replace(/:$/, '');
    throw fail(`invalid YAML: ${first}`);
  }
  const root: unknown = doc.toJS({ maxAliasCount: 100 });
  const coreos = isJsonObject(root) ? root.coreos : undefined;
  if (coreos === undefined || (isJsonObject(coreos) && coreos.flannel === undefined)) throw fail('no coreos.flannel section');
  if (!isJsonObject(coreos)) throw fail('coreos is not a mapping');
  const flannel = coreos.flannel;
  if (!isJsonObject(flannel)) throw fail('coreos.flannel is not a mapping of keys to values');

  const known = new Map(KEYS);
  const unknown = Object.keys(flannel).filter((k) => !known.has(k));
  if (unknown.length) {
    throw fail(`unknown key${unknown.length > 1 ? 's' : ''} coreos.flannel.${unknown.join(', coreos.flannel.')} (known: ${KEYS.map(([k]) => k).join(', ')})`);
  }

  const lines = ['[Service]'];
  for (const [key, flag] of KEYS) {
    if (!(key in flannel)) continue;
    const value = flannel[key];
    if (typeof value !== 'string') throw fail(`coreos.flannel.${key} must be a single value, not a ${Array.isArray(value) ? 'list' : 'mapping'}`);
    if (value === '') throw fail(`coreos.flannel.${key} has no value`);
    // systemd rejects non-printable characters in variable values, and a raw newline would end the line.
    if (/[\u0000-\u001f\u007f]/.test(value)) throw fail(`coreos.flannel.${key} contains a control character (newline, tab, ...)`);
    try {
      // The value must be one flanneld accepts for that flag (ip_masq: true/false, ...), else flanneld fails at boot.
      parseFlags([`--${flag}=${value}`], {});
    } catch (err) {
      throw fail(`coreos.flannel.${key}: ${errorMessage(err).replace(`--${flag}`, key)}`);
    }
    lines.push(environmentLine(envName(flag), value));
  }
  return lines.join('\n') + '\n';
}

async function readInput(file: string): Promise<string> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new CloudConfigError(`cannot read cloud-config ${file}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
  }
}

/** `flanneld cloud-config FILE|-`: prints the drop-in (e.g. /etc/systemd/system/flanneld.service.d/20-cloudinit.conf). */
export async function cloudConfigCommand(options: FlannelOptions): Promise<number> {
  const [, file, ...extra] = options.args;
  if (file === undefined || extra.length) throw new UsageError('usage: flanneld cloud-config FILE (or - for stdin)');
  const text = await readInput(file);
  process.stdout.write(translateCloudConfig(text, file === '-' ? '<stdin>' : file));
  return 0;
}
