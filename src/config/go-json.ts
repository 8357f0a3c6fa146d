/** A JSON object (a YAML mapping) as parsed: not null, not an array. What Go decodes into a struct. */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Go's encoding/json matches object keys case-insensitively (the first key wins), and flannel's configs are read
 * that way: operators write "network" as often as "Network". Returns a lookup by field name.
 */
export function goJsonFields(obj: Readonly<Record<string, unknown>>): (name: string) => unknown {
  const lower = new Map<string, unknown>();
  for (const [key, value] of Object.entries(obj)) {
    if (!lower.has(key.toLowerCase())) lower.set(key.toLowerCase(), value);
  }
  return (name) => lower.get(name.toLowerCase());
}
