// @ts-check
import { api, ApiError } from './api.js';
import { h, badge, duration } from './dom.js';
import { renderMarkdown } from './markdown.js';

/**
 * The chat of one thread: the conversation and, beside it, the live timeline of the team.
 *
 * Nothing lost: the view applies the thread's events strictly in seq order, each exactly once
 * (seq <= last rendered is a duplicate, a seq beyond last + 1 waits until the gap is filled), and
 * after every (re)connection it resumes from the last seq it rendered. Opening a thread replays it
 * from seq 0, so a reload, a second tab or a run started elsewhere all end in the same picture.
 */

/** @typedef {{ type: string, seq: number, thread_id: string, run_id: string, agent_name?: string, timestamp: string, data: any }} ApexEvent */

/**
 * @typedef {object} RunView
 * @property {string} id
 * @property {number} index
 * @property {string} status
 * @property {string} messageId
 * @property {string | null} answerId
 * @property {string} answer
 * @property {HTMLElement} turn
 * @property {HTMLElement} userText
 * @property {HTMLElement} answerEl
 * @property {HTMLElement} statusEl
 * @property {HTMLButtonElement} stop
 * @property {HTMLElement} section
 * @property {HTMLElement} sectionStatus
 * @property {HTMLOListElement} entries
 * @property {HTMLElement} approvalsEl
 * @property {Map<string, HTMLElement>} approvals
 * @property {boolean} renderQueued
 */

const GAP_WAIT_MS = 1500;

export class ChatView {
  /**
   * @param {import('./live.js').Live} live
   * @param {{ onThreadsChanged: () => void, navigate: (hash: string) => void }} hooks
   */
  constructor(live, hooks) {
    this.live = live;
    this.hooks = hooks;
    /** @type {string | null} */
    this.threadId = null;
    this.lastSeq = 0;
    /** @type {Map<number, ApexEvent>} */
    this.pending = new Map();
    /** @type {Map<string, RunView>} */
    this.runs = new Map();
    /** @type {Map<string, any>} */
    this.messages = new Map();
    /** @type {number | undefined} */
    this.gapTimer = undefined;
    /** @type {Promise<void> | null} */
    this.messagesLoading = null;
    this.messagesStale = false;
    this.generation = 0;
    this.build();
  }

  build() {
    this.title = h('h1', { class: 'thread-title', id: 'thread-title' }, 'New conversation');
    this.renameButton = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: 'secondary', onclick: () => this.startRename() }, 'Rename'));
    this.deleteButton = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: 'secondary danger', onclick: () => this.askDelete() }, 'Delete'));
    this.strategy = /** @type {HTMLSelectElement} */ (h('select', { id: 'strategy', onchange: () => this.changeStrategy() },
      h('option', { value: 'enqueue' }, 'Queue it'), h('option', { value: 'reject' }, 'Refuse it'), h('option', { value: 'interrupt' }, 'Stop the running one')));
    this.threadTools = h('div', { class: 'thread-tools' },
      h('label', { for: 'strategy', class: 'inline-label' }, 'While a run is active, a new message:'), this.strategy, this.renameButton, this.deleteButton);
    this.head = h('div', { class: 'thread-head' }, this.title, this.threadTools);
    this.headNote = h('p', { class: 'note', role: 'status' });
    this.announcer = h('p', { class: 'visually-hidden', 'aria-live': 'polite' });
    this.conversation = h('section', { class: 'conversation', 'aria-labelledby': 'thread-title', 'aria-live': 'off' });
    this.empty = h('div', { class: 'empty' },
      h('p', null, 'Ask the team about your LLM usage: where the money goes, why latency is high, which model to route to.'),
      h('p', { class: 'muted' }, 'No data yet? Generate a sample on the Data page first, and the answer comes with dollar figures.'));
    this.timelineRuns = h('div', { class: 'timeline-runs' });
    this.timeline = h('aside', { class: 'timeline', 'aria-labelledby': 'timeline-title' },
      h('h2', { id: 'timeline-title' }, 'Team timeline'), this.timelineRuns);
    this.input = /** @type {HTMLTextAreaElement} */ (h('textarea', { id: 'message', name: 'message', rows: 2, required: true, maxlength: 4000,
      placeholder: 'How can I cut my LLM costs?', onkeydown: (/** @type {KeyboardEvent} */ e) => {
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.form.requestSubmit(); }
      } }));
    this.sendButton = /** @type {HTMLButtonElement} */ (h('button', { type: 'submit' }, 'Send'));
    this.sendError = h('p', { class: 'error', role: 'alert' });
    this.form = /** @type {HTMLFormElement} */ (h('form', { class: 'composer', onsubmit: (/** @type {Event} */ e) => { e.preventDefault(); this.send(); } },
      h('label', { for: 'message', class: 'visually-hidden' }, 'Message'), this.input, this.sendButton, this.sendError));
    for (const el of [this.conversation, this.timeline]) {
      el.addEventListener('scroll', () => { el.dataset.follow = el.scrollHeight - el.scrollTop - el.clientHeight < 48 ? 'yes' : 'no'; }, { passive: true });
    }
    this.el = h('div', { class: 'chat' }, this.head, this.headNote,
      h('div', { class: 'chat-body' }, h('div', { class: 'conversation-column' }, this.conversation, this.form), this.timeline), this.announcer);
  }

  /** Resets the view for another thread (or none). */
  reset() {
    this.generation++;
    this.lastSeq = 0;
    this.pending.clear();
    this.runs.clear();
    this.messages.clear();
    clearTimeout(this.gapTimer);
    this.empty.hidden = false;
    this.conversation.replaceChildren(this.empty);
    this.timelineRuns.replaceChildren(h('p', { class: 'muted' }, 'Each agent, its thinking and its tool calls appear here as the team works.'));
    this.sendError.textContent = '';
    this.headNote.textContent = '';
    this.conversation.dataset.follow = this.timeline.dataset.follow = 'yes';
  }

  /** @param {string | null} threadId */
  async open(threadId) {
    if (threadId === this.threadId && threadId !== null) return;
    this.threadId = threadId;
    this.reset();
    this.threadTools.hidden = threadId === null;
    this.form.hidden = false;
    if (threadId === null) {
      this.title.textContent = 'New conversation';
      this.focusComposer();
      return;
    }
    const generation = this.generation;
    this.title.textContent = 'Loading…';
    try {
      const thread = await api('GET', `/api/threads/${encodeURIComponent(threadId)}`);
      if (generation !== this.generation) return;
      this.title.textContent = thread.title;
      this.strategy.value = thread.strategy;
      await this.loadMessages();
    } catch (error) {
      if (generation !== this.generation) return;
      this.title.textContent = 'Thread not found';
      this.threadTools.hidden = true;
      this.form.hidden = true;
      this.empty.hidden = true;
      this.headNote.textContent = error instanceof ApiError && error.status === 404
        ? 'This thread does not exist, or it is not yours.' : String(/** @type {Error} */ (error).message);
      return;
    }
    if (generation !== this.generation) return;
    this.resume();
    this.focusComposer();
  }

  focusComposer() {
    if (matchMedia('(min-width: 760px)').matches) this.input.focus({ preventScroll: true });
  }

  /** Asks the socket for every event after the last one rendered; called on open and after each reconnection. */
  resume() {
    if (!this.threadId) return;
    // switch_thread stops following the thread shown before; resume then replays this one from the cursor.
    this.live.send('switch_thread', { thread_id: this.threadId });
    this.live.send('resume', { thread_id: this.threadId, after_seq: this.lastSeq });
  }

  /** Reads every stored message of the thread (they carry the user's words, which events do not). */
  loadMessages() {
    if (this.messagesLoading) {
      // A load in flight may have missed the message asked for: read once more after it.
      this.messagesStale = true;
      return this.messagesLoading;
    }
    this.messagesStale = false;
    const threadId = this.threadId;
    const generation = this.generation;
    this.messagesLoading = (async () => {
      let cursor = null;
      do {
        const page = await api('GET', `/api/threads/${encodeURIComponent(/** @type {string} */ (threadId))}/messages?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        if (generation !== this.generation) return;
        for (const message of page.items) this.messages.set(message.id, message);
        cursor = page.next_cursor;
      } while (cursor);
      for (const run of this.runs.values()) this.fillTexts(run);
    })().finally(() => {
      this.messagesLoading = null;
      if (this.messagesStale && generation === this.generation) this.loadMessages().catch(() => {});
    });
    return this.messagesLoading;
  }

  /** @param {any} frame */
  handleFrame(frame) {
    if (frame.type === 'error') {
      if (frame.data?.code === 'not_found' && this.threadId) this.headNote.textContent = 'This thread is no longer there.';
      return;
    }
    if (!frame.seq || frame.thread_id !== this.threadId) return;
    this.accept(frame);
  }

  /** @param {ApexEvent} event */
  accept(event) {
    if (event.seq <= this.lastSeq) return;
    if (event.seq > this.lastSeq + 1) {
      this.pending.set(event.seq, event);
      this.armGapTimer();
      return;
    }
    this.apply(event);
    this.lastSeq = event.seq;
    let next;
    while ((next = this.pending.get(this.lastSeq + 1))) {
      this.pending.delete(next.seq);
      this.apply(next);
      this.lastSeq = next.seq;
    }
    for (const seq of this.pending.keys()) if (seq <= this.lastSeq) this.pending.delete(seq);
    if (this.pending.size === 0) clearTimeout(this.gapTimer);
    this.afterApply();
  }

  // A gap that the replay does not fill (events removed by retention) must not stall the view for ever.
  armGapTimer() {
    clearTimeout(this.gapTimer);
    this.gapTimer = window.setTimeout(() => {
      if (this.pending.size === 0) return;
      const first = Math.min(...this.pending.keys());
      this.lastSeq = first - 1;
      this.accept(/** @type {ApexEvent} */ (this.pending.get(first)));
    }, GAP_WAIT_MS);
  }

  afterApply() {
    this.updatePositions();
    // Follow the stream unless the person scrolled up to read.
    for (const el of [this.conversation, this.timeline]) if (el.dataset.follow !== 'no') el.scrollTop = el.scrollHeight;
  }

  /** @param {ApexEvent} e */
  apply(e) {
    const run = e.type === 'run_queued' ? this.createRun(e) : this.runs.get(e.run_id);
    if (!run) return;
    const d = e.data ?? {};
    const who = e.agent_name ?? d.agent ?? '';
    switch (e.type) {
      case 'run_queued':
        this.entry(run, e, 'queued', [h('strong', null, 'Queued'), ` (${d.strategy})`]);
        break;
      case 'run_started':
        this.setStatus(run, 'running');
        this.entry(run, e, 'run', [h('strong', null, 'Run started')]);
        break;
      case 'agent_started':
        this.entry(run, e, 'agent', [h('strong', null, d.agent), ' started'], d.depth);
        break;
      case 'agent_thinking':
        this.entry(run, e, 'thinking', [h('span', { class: 'agent' }, who), ' ', h('q', null, d.text)]);
        break;
      case 'tool_executing':
        this.entry(run, e, 'tool', [h('span', { class: 'agent' }, who), ' calls ', h('code', null, d.tool),
          details('Arguments', d.arguments)]);
        break;
      case 'tool_completed':
        this.entry(run, e, 'tool-done', [h('code', null, d.tool), ' ', badge(d.status), ' ', h('span', { class: 'muted' }, duration(d.duration_ms)),
          d.error ? h('span', { class: 'tool-error' }, ' ', d.error) : null,
          d.result !== undefined && d.result !== null ? details('Result', d.result) : null]);
        break;
      case 'approval_requested':
        this.setStatus(run, 'waiting');
        this.entry(run, e, 'approval', [h('span', { class: 'agent' }, who), ' asks to run ', h('code', null, d.tool), ' ', badge('waiting'),
          details('Arguments', d.arguments)]);
        this.showApproval(run, who, d);
        break;
      case 'approval_resolved':
        this.entry(run, e, 'approval-done', [h('code', null, d.tool), ' ', badge(d.status), d.reason ? h('span', { class: 'muted' }, ' ', d.reason) : null,
          d.arguments ? details('Edited arguments', d.arguments) : null]);
        this.closeApproval(run, d);
        if (run.status === 'waiting' && d.status !== 'cancelled') this.setStatus(run, 'running');
        break;
      case 'message_delta':
        run.answerId = d.message_id;
        run.answer += d.delta;
        this.renderAnswer(run);
        break;
      case 'agent_completed':
        this.entry(run, e, 'agent-done', [h('strong', null, d.agent), ' finished ', badge(d.status), ' ', h('span', { class: 'muted' }, duration(d.duration_ms))]);
        break;
      case 'agent_error':
        this.entry(run, e, 'agent-error', [h('strong', null, d.agent), ' ', badge(d.code === 'timeout' ? 'timeout' : d.code === 'invalid_result' ? 'invalid' : 'error'), ' ', d.message]);
        break;
      case 'run_completed':
        run.answerId = d.message_id;
        this.finish(run, 'completed', e, [h('strong', null, 'Run completed'), ' ', h('span', { class: 'muted' }, duration(d.duration_ms))]);
        if (!run.answer) this.fillTexts(run);
        break;
      case 'run_failed':
        this.finish(run, 'failed', e, [h('strong', null, 'Run failed'), ` (${d.reason}) `, d.message]);
        break;
      case 'run_cancelled':
        this.finish(run, 'cancelled', e, [h('strong', null, 'Run cancelled'), ` (${String(d.reason).replace(/_/g, ' ')})`]);
        break;
      default:
        this.entry(run, e, 'other', [e.type]);
    }
  }

  /** @param {ApexEvent} e */
  createRun(e) {
    if (this.runs.size === 0) {
      this.conversation.replaceChildren();
      this.timelineRuns.replaceChildren();
    }
    const index = this.runs.size + 1;
    const userText = h('div', { class: 'bubble-text' });
    const answerEl = h('div', { class: 'markdown', 'aria-busy': 'true' });
    const statusEl = h('span', { class: 'run-status' });
    const stop = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: 'stop danger' }, 'Stop'));
    const approvalsEl = h('div', { class: 'approvals' });
    const turn = h('article', { class: 'turn', dataset: { runId: e.run_id }, 'aria-label': `Message ${index}` },
      h('div', { class: 'bubble user' }, h('span', { class: 'visually-hidden' }, 'You: '), userText),
      h('div', { class: 'bubble assistant' }, h('span', { class: 'visually-hidden' }, 'Apex: '), answerEl, approvalsEl,
        h('div', { class: 'turn-foot' }, statusEl, stop)));
    const sectionStatus = h('span', { class: 'run-status' });
    const entries = /** @type {HTMLOListElement} */ (h('ol', { class: 'entries' }));
    const section = h('section', { class: 'run', dataset: { runId: e.run_id }, 'aria-label': `Run ${index}` },
      h('h3', null, `Run ${index} `, sectionStatus), entries);
    /** @type {RunView} */
    const run = { id: e.run_id, index, status: 'queued', messageId: e.data.message_id, answerId: null, answer: '', turn, userText, answerEl, statusEl, stop,
      section, sectionStatus, entries, approvalsEl, approvals: new Map(), renderQueued: false };
    stop.addEventListener('click', () => this.stopRun(run));
    this.runs.set(run.id, run);
    this.conversation.append(turn);
    this.timelineRuns.append(section);
    this.setStatus(run, 'queued');
    this.fillTexts(run);
    if (!this.messages.has(run.messageId)) this.loadMessages().catch(() => {});
    return run;
  }

  /** @param {RunView} run */
  fillTexts(run) {
    const message = this.messages.get(run.messageId);
    if (message) run.userText.textContent = message.content;
    else if (!run.userText.textContent) run.userText.textContent = '…';
    // Only when the events carry no answer (removed by retention) does the stored message stand in.
    if (!run.answer && run.answerId && this.messages.has(run.answerId)) {
      run.answer = this.messages.get(run.answerId).content;
      this.renderAnswer(run);
    }
  }

  /**
   * Renders at most once a frame while streaming; `now` renders at once (the run ended).
   * @param {RunView} run
   * @param {boolean} [now]
   */
  renderAnswer(run, now = false) {
    if (now) {
      // Safe: renderMarkdown escapes all of its input and emits only its own tags.
      run.answerEl.innerHTML = renderMarkdown(run.answer);
      return;
    }
    if (run.renderQueued) return;
    run.renderQueued = true;
    requestAnimationFrame(() => {
      run.renderQueued = false;
      this.renderAnswer(run, true);
    });
  }

  /**
   * @param {RunView} run
   * @param {string} status
   */
  setStatus(run, status) {
    run.status = status;
    run.turn.dataset.status = status;
    run.section.dataset.status = status;
    run.statusEl.replaceChildren(badge(status));
    run.sectionStatus.replaceChildren(badge(status));
    const active = status === 'queued' || status === 'running' || status === 'waiting';
    run.stop.hidden = !active;
    run.stop.textContent = status === 'queued' ? 'Cancel' : 'Stop';
    run.stop.setAttribute('aria-label', `${status === 'queued' ? 'Cancel' : 'Stop'} run ${run.index}`);
    run.stop.disabled = false;
    run.answerEl.setAttribute('aria-busy', String(active));
  }

  /**
   * @param {RunView} run
   * @param {string} status
   * @param {ApexEvent} e
   * @param {any[]} content
   */
  finish(run, status, e, content) {
    if (run.answer) this.renderAnswer(run, true);
    this.announcer.textContent = `Run ${run.index} ${status}.`;
    this.setStatus(run, status);
    this.entry(run, e, `end end-${status}`, content);
    if (status !== 'completed' && !run.answer) run.answerEl.replaceChildren(h('p', { class: 'muted' }, status === 'cancelled' ? 'Stopped before an answer.' : 'No answer: the run failed.'));
  }

  /** Queued runs show how many runs of the thread are ahead of them. */
  updatePositions() {
    let ahead = 0;
    for (const run of this.runs.values()) {
      if (run.status === 'queued') run.statusEl.replaceChildren(badge('queued'), ahead > 0 ? ` position ${ahead + 1}` : '');
      if (run.status === 'queued' || run.status === 'running' || run.status === 'waiting') ahead++;
    }
  }

  /**
   * @param {RunView} run
   * @param {ApexEvent} e
   * @param {string} kind
   * @param {any[]} content
   * @param {number} [depth]
   */
  entry(run, e, kind, content, depth) {
    const time = new Date(e.timestamp);
    const li = h('li', { class: `entry entry-${kind}`, dataset: { seq: String(e.seq), type: e.type } },
      h('time', { datetime: e.timestamp, class: 'muted' }, Number.isNaN(time.getTime()) ? '' : time.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' })),
      h('div', { class: 'entry-body' }, ...content));
    const level = depth ?? (e.agent_name && e.agent_name !== 'supervisor' ? 1 : 0);
    li.style.setProperty('--depth', String(Math.min(level, 4)));
    run.entries.append(li);
  }

  /**
   * A tool call that waits for the person's approval: its arguments (editable), a reason for a rejection, Approve and Reject.
   * @param {RunView} run
   * @param {string} who
   * @param {any} d the approval_requested data
   */
  showApproval(run, who, d) {
    if (run.approvals.has(d.call_id)) return;
    const original = JSON.stringify(d.arguments ?? {}, null, 2);
    const id = `approval-${run.index}-${run.approvals.size + 1}`;
    const args = /** @type {HTMLTextAreaElement} */ (h('textarea', { id: `${id}-args`, class: 'approval-args', rows: Math.min(8, original.split('\n').length + 1), spellcheck: false }));
    args.value = original;
    const reason = /** @type {HTMLInputElement} */ (h('input', { id: `${id}-reason`, class: 'approval-reason', maxlength: 1000, placeholder: 'Told to the model if you reject' }));
    const error = h('p', { class: 'error', role: 'alert' });
    const approve = /** @type {HTMLButtonElement} */ (h('button', { type: 'button' }, 'Approve'));
    const reject = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: 'danger' }, 'Reject'));
    const expires = new Date(d.expires_at);
    const card = h('div', { class: 'approval', role: 'group', 'aria-label': `Approve ${d.tool}`, dataset: { callId: d.call_id } },
      h('p', null, h('strong', null, who || 'An agent'), ' wants to run ', h('code', null, d.tool), '. It waits for your approval',
        Number.isNaN(expires.getTime()) ? '.' : ` until ${expires.toLocaleString([], { dateStyle: 'short', timeStyle: 'short' })}.`),
      h('label', { for: args.id }, 'Arguments (edit them to run it differently)'), args,
      h('label', { for: reason.id }, 'Reason'), reason,
      h('div', { class: 'approval-actions' }, approve, reject), error);
    /** @param {'approve' | 'reject'} decision */
    const decide = async (decision) => {
      /** @type {Record<string, any>} */
      const body = { decision };
      if (decision === 'approve' && args.value.trim() !== original.trim()) {
        try { body.arguments = JSON.parse(args.value); } catch (err) {
          error.textContent = `The arguments are not JSON: ${/** @type {Error} */ (err).message}`;
          args.focus();
          return;
        }
      }
      if (decision === 'reject' && reason.value.trim()) body.reason = reason.value.trim();
      error.textContent = '';
      approve.disabled = reject.disabled = true;
      try {
        await api('POST', `/api/runs/${encodeURIComponent(run.id)}/approvals/${encodeURIComponent(d.call_id)}`, body);
      } catch (err) {
        // 409: answered elsewhere (another tab, the CLI) or timed out; its approval_resolved says how.
        if (!(err instanceof ApiError && err.status === 409)) {
          error.textContent = /** @type {Error} */ (err).message;
          approve.disabled = reject.disabled = false;
        }
      }
    };
    approve.addEventListener('click', () => decide('approve'));
    reject.addEventListener('click', () => decide('reject'));
    run.approvals.set(d.call_id, card);
    run.approvalsEl.append(card);
    this.announcer.textContent = `Run ${run.index} waits for your approval of ${d.tool}.`;
  }

  /**
   * @param {RunView} run
   * @param {any} d the approval_resolved data
   */
  closeApproval(run, d) {
    const card = run.approvals.get(d.call_id);
    // The badge says approved or rejected; words only where it needs them.
    const outcome = { expired: ' not answered in time', cancelled: ' cancelled with the run' }[/** @type {string} */ (d.status)] ?? '';
    const done = h('p', { class: 'approval-done', dataset: { callId: d.call_id } }, h('code', null, d.tool), ' ', badge(d.status), outcome,
      d.reason ? `: ${d.reason}` : '');
    if (card) card.replaceWith(done); else run.approvalsEl.append(done);
    run.approvals.set(d.call_id, done);
  }

  /** @param {RunView} run */
  async stopRun(run) {
    run.stop.disabled = true;
    run.stop.textContent = 'Stopping…';
    try {
      await api('POST', `/api/runs/${encodeURIComponent(run.id)}/cancel`);
    } catch (error) {
      // 409: it ended meanwhile; its terminal event says how.
      if (!(error instanceof ApiError && error.status === 409)) this.sendError.textContent = /** @type {Error} */ (error).message;
      run.stop.disabled = false;
    }
  }

  async send() {
    const content = this.input.value.trim();
    if (!content) {
      this.sendError.textContent = 'Write a message first.';
      this.input.focus();
      return;
    }
    this.sendError.textContent = '';
    this.sendButton.disabled = true;
    try {
      if (!this.threadId) {
        const thread = await api('POST', '/api/threads', { title: content.length > 60 ? content.slice(0, 57) + '…' : content });
        this.hooks.onThreadsChanged();
        await this.open(thread.id);
        this.hooks.navigate(`#/t/${thread.id}`);
      }
      const sent = await api('POST', `/api/threads/${encodeURIComponent(/** @type {string} */ (this.threadId))}/messages`, { content });
      this.messages.set(sent.message.id, sent.message);
      const run = this.runs.get(sent.run.id);
      if (run) this.fillTexts(run);
      this.input.value = '';
    } catch (error) {
      this.sendError.textContent = /** @type {Error} */ (error).message;
    } finally {
      this.sendButton.disabled = false;
      this.input.focus();
    }
  }

  async changeStrategy() {
    if (!this.threadId) return;
    try {
      await api('PATCH', `/api/threads/${encodeURIComponent(this.threadId)}`, { strategy: this.strategy.value });
      this.headNote.textContent = `Saved: a message sent while a run is active will ${{ enqueue: 'wait in the queue', reject: 'be refused', interrupt: 'stop the active run' }[this.strategy.value]}.`;
    } catch (error) {
      this.headNote.textContent = /** @type {Error} */ (error).message;
    }
  }

  startRename() {
    if (!this.threadId) return;
    const input = /** @type {HTMLInputElement} */ (h('input', { id: 'rename', value: this.title.textContent ?? '', maxlength: 200, required: true }));
    const error = h('span', { class: 'error', role: 'alert' });
    const done = () => { form.replaceWith(this.head); this.renameButton.focus(); };
    const form = h('form', { class: 'thread-head rename', onsubmit: async (/** @type {Event} */ e) => {
      e.preventDefault();
      try {
        const thread = await api('PATCH', `/api/threads/${encodeURIComponent(/** @type {string} */ (this.threadId))}`, { title: input.value });
        this.title.textContent = thread.title;
        this.hooks.onThreadsChanged();
        done();
      } catch (err) {
        error.textContent = /** @type {Error} */ (err).message;
      }
    }, onkeydown: (/** @type {KeyboardEvent} */ e) => { if (e.key === 'Escape') done(); } },
      h('label', { for: 'rename' }, 'Thread title'), input, h('button', { type: 'submit' }, 'Save'),
      h('button', { type: 'button', class: 'secondary', onclick: done }, 'Cancel'), error);
    this.head.replaceWith(form);
    input.select();
  }

  askDelete() {
    if (!this.threadId) return;
    const id = this.threadId;
    const confirm = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: 'danger', onclick: async () => {
      try {
        await api('DELETE', `/api/threads/${encodeURIComponent(id)}`);
        this.hooks.onThreadsChanged();
        this.hooks.navigate('#/');
      } catch (error) {
        this.headNote.textContent = /** @type {Error} */ (error).message;
      }
    } }, 'Delete for good'));
    const cancel = h('button', { type: 'button', class: 'secondary', onclick: () => { box.remove(); this.deleteButton.focus(); } }, 'Keep it');
    const box = h('div', { class: 'confirm', role: 'group', 'aria-label': 'Confirm deletion' }, 'Delete this thread and all its messages? ', confirm, cancel);
    this.headNote.replaceChildren(box);
    confirm.focus();
  }
}

/**
 * A collapsible JSON block, written as text.
 * @param {string} label
 * @param {any} value
 */
function details(label, value) {
  let text;
  try { text = JSON.stringify(value, null, 2); } catch { text = String(value); }
  return h('details', null, h('summary', null, label), h('pre', null, text));
}
