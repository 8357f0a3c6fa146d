import { goJsonFields } from '../config/go-json.js';
import { ConfigError } from '../errors.js';
import type { BackendOptions } from './backend.js';

/**
 * Typed reads of a backend's keys in the `Backend` object, checked as Go's encoding/json decodes them into
 * flannel's config struct (keys case-insensitive, null or absent = the default, a wrong type is an error), plus the
 * ranges the kernel would otherwise reject later. Every failure is one ConfigError line naming the key.
 */
export class BackendOptionReader {
  private readonly field: (name: string) => unknown;

  constructor(options: BackendOptions) {
    this.field = goJsonFields(options);
  }

  /** A whole number in [min, max]; `what` describes it in the error ("a UDP port number"). */
  integer(name: string, fallback: number, range: { min: number; max: number; what: string }): number {
    const value = this.field(name) ?? fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < range.min || value > range.max) {
      throw new ConfigError(`"Backend.${name}" must be ${range.what} (${range.min}-${range.max}), got ${JSON.stringify(value)}`);
    }
    return value;
  }

  boolean(name: string, fallback = false): boolean {
    const value = this.field(name) ?? fallback;
    if (typeof value !== 'boolean') throw new ConfigError(`"Backend.${name}" must be true or false, got ${JSON.stringify(value)}`);
    return value;
  }
}

/** `Backend.Port` of the udp and vxlan backends; 0 means the backend's default. */
export const UDP_PORT_RANGE = { min: 0, max: 65535, what: 'a UDP port number' } as const;
