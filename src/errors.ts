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

/** An etcd request failed. The subclasses say whether waiting helps. */
export class EtcdError extends FlannelError {}

/** etcd could not be reached, or did not answer in time: worth retrying with backoff. */
export class EtcdUnavailableError extends EtcdError {}

/** etcd answered with an error that is neither unreachability nor a refusal (e.g. too many requests). */
export class EtcdRequestError extends EtcdError {}

/**
 * etcd refused the request for who we are: retrying changes nothing until an operator fixes the credentials or the
 * role, so startup stops at once and a running daemon reports it (log, metric, /readyz) while it keeps forwarding.
 */
export class EtcdAccessDeniedError extends EtcdError {
  constructor(
    message: string,
    /** The --etcd-username we used, or undefined when none was given. */
    readonly user: string | undefined,
    /** The key (or prefix) the refused request was about. */
    readonly key: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Wrong user name or password, or a user name that etcd requires and we did not give. */
export class EtcdAuthError extends EtcdAccessDeniedError {}

/** The user's roles do not allow the operation on the key. */
export class EtcdPermissionError extends EtcdAccessDeniedError {}

/** Every attempt at a subnet lost the create race to another host; another round may win. */
export class LeaseContentionError extends FlannelError {}

/** The daemon is stopping: the operation was abandoned, not failed. */
export class StoppedError extends FlannelError {}

/** No free subnet is left between SubnetMin and SubnetMax. */
export class SubnetsExhaustedError extends FlannelError {}

/** The requested network interface or address does not exist on this host. */
export class InterfaceError extends FlannelError {}

/** A file we must read or write (TLS material, subnet file) is not accessible. */
export class FileAccessError extends FlannelError {}

/** What the kernel said when a system call failed, as Node's own system errors carry it. */
export interface SystemErrorInfo {
  /** The errno's name, e.g. `EADDRINUSE`. */
  readonly code?: string;
  /** The (positive) Linux errno. */
  readonly errno?: number;
  /** The call, with its request where that matters: `bind`, `ioctl(TUNSETIFF)`, `setsockopt(SO_REUSEPORT)`. */
  readonly syscall?: string;
}

/**
 * The `code`/`errno`/`syscall` of an error from a failed system call (the native addon's, or a KernelError that
 * carries them), so that a wrapping error keeps them; {} for any other error.
 */
export function systemErrorInfo(err: unknown): SystemErrorInfo {
  if (typeof err !== 'object' || err === null) return {};
  const { code, errno, syscall } = err as Record<string, unknown>;
  return typeof code === 'string' && typeof errno === 'number' && typeof syscall === 'string' ? { code, errno, syscall } : {};
}

/** A kernel operation (netlink, TUN ioctl, iptables) failed. */
export class KernelError extends FlannelError implements SystemErrorInfo {
  readonly code?: string;
  readonly errno?: number;
  readonly syscall?: string;

  constructor(message: string, options?: { cause?: unknown } & SystemErrorInfo) {
    super(message, options);
    this.code = options?.code;
    this.errno = options?.errno;
    this.syscall = options?.syscall;
  }
}

/** A running datapath stopped: one of its packet threads hit an error that would repeat on every call. */
export class DatapathFailedError extends KernelError {
  declare readonly code: string;
  declare readonly errno: number;
  declare readonly syscall: string;
  /** The TUN queue (and UDP socket) whose thread failed. */
  readonly queue: number;

  constructor(message: string, options: { queue: number; code: string; errno: number; syscall: string }) {
    super(message, options);
    this.queue = options.queue;
  }
}

/** The native addon is missing, or was built from other sources than this code. */
export class NativeAddonError extends FlannelError {}

/** An iptables binary we need is not on PATH: the rules it would write cannot be installed at all. */
export class IptablesNotFoundError extends KernelError {
  constructor(
    readonly binary: string,
    neededBy?: string,
  ) {
    super(`${binary} not found on PATH${neededBy ? `; ${neededBy} needs it` : ''} (install the iptables package)`);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The udp fast path cannot run here: its BPF object was not built, or the kernel refused or could not attach it. */
export class FastPathUnavailableError extends KernelError {}
