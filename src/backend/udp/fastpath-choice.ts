import { FastPathUnavailableError, errorMessage, systemErrorInfo } from '../../errors.js';
import { log } from '../../log.js';
import { UdpFastPath, type FastPathLoadOptions } from '../../datapath/udp-fastpath.js';
import type { BackendSettings } from '../backend.js';

/**
 * Whether this host runs the fast path, decided once, before our lease is written, because the lease tells peers
 * so (they then send us what only a decapsulating kernel takes). `off` never loads it; `auto` loads it to let the
 * kernel verify it and, where the object was not built or the kernel refuses it, logs one line and leaves the
 * engine alone; `on` makes that a startup error. The programs loaded to decide are kept for the first network, so
 * that the kernel verifies them once at startup.
 */
export class FastPathChoice {
  private decided: boolean | undefined;
  private loaded: UdpFastPath | undefined;

  constructor(
    private readonly mode: BackendSettings['udpFastpath'],
    private readonly load: FastPathLoadOptions,
  ) {}

  runs(): boolean {
    this.decided ??= this.decide();
    return this.decided;
  }

  /**
   * Programs for a network to attach, owned (closed) by the caller; undefined when this host does not run the fast
   * path. The first network gets those loaded to decide, a later one (a restart) a fresh load.
   */
  take(): UdpFastPath | undefined {
    if (!this.runs()) return undefined;
    const fastPath = this.loaded ?? UdpFastPath.load(this.load);
    this.loaded = undefined;
    return fastPath;
  }

  private decide(): boolean {
    if (this.mode === 'off') return false;
    try {
      this.loaded = UdpFastPath.load(this.load);
      return true;
    } catch (err) {
      if (this.mode === 'on') throw new FastPathUnavailableError(`--udp-fastpath=on, but ${errorMessage(err)}`, { cause: err, ...systemErrorInfo(err) });
      log.warn({ event: 'fastpath-unavailable', reason: errorMessage(err) }, `udp fast path unavailable, the native engine carries everything: ${errorMessage(err)}`);
      return false;
    }
  }
}
