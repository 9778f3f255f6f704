// @ts-check
import { api, accessToken } from './api.js';

// How often an open socket checks whether the page's access token was refreshed; the server closes a socket at its
// credential's expiry unless it re-authenticates (reauth), and tokens are refreshed a minute before they expire.
const REAUTH_CHECK_MS = 20_000;

/**
 * The one WebSocket of the page. It reconnects by itself (backoff, and at once when the network
 * comes back) and tells its owner when it is ready, so the owner can `resume` from its last seq.
 */
export class Live {
  /**
   * @param {(frame: any) => void} onFrame every frame the server sends
   * @param {(state: 'connecting' | 'online' | 'offline') => void} onState
   * @param {() => void} onReady the socket is registered: (re)send resume
   */
  constructor(onFrame, onState, onReady) {
    this.onFrame = onFrame;
    this.onState = onState;
    this.onReady = onReady;
    /** @type {WebSocket | null} */
    this.socket = null;
    this.stopped = true;
    this.attempt = 0;
    /** @type {number | undefined} */
    this.timer = undefined;
    /** @type {number | undefined} */
    this.reauthTimer = undefined;
    /** @type {string | null} */
    this.sentToken = null;
    this.wake = () => { if (!this.stopped && !this.isOpen()) this.connectSoon(0); };
    window.addEventListener('online', this.wake);
    document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') this.wake(); });
  }

  isOpen() {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.connectSoon(0);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.reauthTimer);
    const socket = this.socket;
    this.socket = null;
    socket?.close(1000, 'bye');
  }

  /** @param {number} delay */
  connectSoon(delay) {
    clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.connect(), delay);
  }

  async connect() {
    if (this.stopped || (this.socket && this.socket.readyState <= WebSocket.OPEN)) return;
    this.onState('connecting');
    let ticket;
    try {
      this.sentToken = await accessToken();
      ticket = (await api('POST', '/api/ws-ticket')).ticket;
    } catch {
      this.retry();
      return;
    }
    if (this.stopped) return;
    const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws?ticket=${encodeURIComponent(ticket)}`;
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.addEventListener('message', event => {
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      if (frame.type === 'connection_established') {
        this.attempt = 0;
        this.onState('online');
        this.onReady();
        clearInterval(this.reauthTimer);
        this.reauthTimer = window.setInterval(() => this.reauthenticate(), REAUTH_CHECK_MS);
        return;
      }
      if (frame.type === 'reauthenticated') return;
      this.onFrame(frame);
    });
    socket.addEventListener('close', () => {
      if (this.socket !== socket) return;
      clearInterval(this.reauthTimer);
      this.socket = null;
      this.retry();
    });
  }

  /** Hands the socket the page's refreshed access token, so it outlives the one it was opened with. */
  async reauthenticate() {
    let token;
    try {
      token = await accessToken();
    } catch {
      return;
    }
    if (token !== this.sentToken && this.send('reauth', { token })) this.sentToken = token;
  }

  retry() {
    if (this.stopped) return;
    this.onState('offline');
    this.attempt++;
    this.connectSoon(Math.min(10_000, 250 * 2 ** Math.min(this.attempt, 6)));
  }

  /**
   * @param {string} type
   * @param {any} payload
   */
  send(type, payload) {
    if (!this.isOpen()) return false;
    this.socket?.send(JSON.stringify({ type, payload }));
    return true;
  }
}
