import { randomBytes } from 'node:crypto';

/** A 48-bit MAC address, written as flannel writes VtepMAC: lower-case hex pairs joined by colons. */
export type Mac = string;

/**
 * Parses a 48-bit MAC in the forms Go's net.ParseMAC accepts for EUI-48 (`aa:bb:cc:dd:ee:ff`, `aa-bb-...`,
 * `aabb.ccdd.eeff`) and returns it in canonical form; undefined when it is not one.
 */
export function parseMac(text: unknown): Mac | undefined {
  if (typeof text !== 'string') return undefined;
  const groups = /^[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}$/i.test(text)
    ? text.split(/[:-]/)
    : /^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$/i.test(text)
      ? text.replaceAll('.', '').match(/../g)!
      : undefined;
  return groups?.join(':').toLowerCase();
}

export function macBytes(mac: Mac): Buffer {
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

export function macFromBytes(bytes: Uint8Array | undefined): Mac | undefined {
  return bytes && bytes.length === 6 ? [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':') : undefined;
}

/** A random unicast, locally administered MAC, as flannel gives its VTEPs. */
export function randomMac(): Mac {
  const b = randomBytes(6);
  b[0] = (b[0] & 0xfe) | 0x02;
  return macFromBytes(b)!;
}
