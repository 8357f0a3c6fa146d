/**
 * Typed errors. Every setup failure that reaches the CLI becomes one line on stderr and exit code 1,
 * so messages must stand on their own: say what was wrong and where it came from.
 */
export class FlannelError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad flags, environment variables or command-line arguments. */
export class UsageError extends FlannelError {}

/** The network config in etcd (or a file) is missing, malformed or inconsistent. */
export class ConfigError extends FlannelError {}

/** etcd could not be reached or answered with an error we cannot recover from. */
export class EtcdUnavailableError extends FlannelError {}

/** No free subnet is left between SubnetMin and SubnetMax. */
export class SubnetsExhaustedError extends FlannelError {}

/** The requested network interface or address does not exist on this host. */
export class InterfaceError extends FlannelError {}

/** A file we must read or write (TLS material, subnet file) is not accessible. */
export class FileAccessError extends FlannelError {}

/** A kernel operation (netlink, TUN ioctl, iptables) failed. */
export class KernelError extends FlannelError {}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
