// @ts-check
import { api, upload, describeProblem } from './api.js';
import { h, money, badge } from './dom.js';
import { barChart } from './charts.js';

/** The data page: upload with progress and its validation report, a sample, the summary and the charts. */
export class DataView {
  constructor() {
    this.file = /** @type {HTMLInputElement} */ (h('input', { type: 'file', id: 'workload-file', accept: '.csv,.jsonl,.ndjson,text/csv,application/jsonl' }));
    this.replace = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', id: 'replace' }));
    this.progress = /** @type {HTMLProgressElement} */ (h('progress', { id: 'upload-progress', max: 100, value: 0 }));
    this.progressText = h('span', { class: 'muted', 'aria-live': 'polite' });
    this.report = h('div', { class: 'report', 'aria-live': 'polite' });
    this.uploadButton = /** @type {HTMLButtonElement} */ (h('button', { type: 'submit' }, 'Upload'));
    this.days = /** @type {HTMLInputElement} */ (h('input', { type: 'number', id: 'days', min: 1, max: 90, value: '14', inputmode: 'numeric' }));
    this.perDay = /** @type {HTMLInputElement} */ (h('input', { type: 'number', id: 'per-day', min: 1, max: 5000, value: '300', inputmode: 'numeric' }));
    this.sampleButton = /** @type {HTMLButtonElement} */ (h('button', { type: 'submit' }, 'Generate sample data'));
    this.summary = h('div', { class: 'summary' });
    this.charts = h('div', { class: 'charts' });
    this.el = h('div', { class: 'page data-page' },
      h('h1', null, 'Your workload data'),
      h('p', { class: 'muted' }, 'One row per model call: timestamp, provider, model, prompt_tokens, completion_tokens, latency_ms, status; cost, prompt_hash, feature and team are optional.'),
      h('div', { class: 'cards' },
        h('form', { class: 'card', 'aria-labelledby': 'upload-title', onsubmit: (/** @type {Event} */ e) => { e.preventDefault(); this.upload(); } },
          h('h2', { id: 'upload-title' }, 'Upload a file'),
          h('label', { for: 'workload-file' }, 'CSV or JSONL file'), this.file,
          h('div', { class: 'check' }, this.replace, h('label', { for: 'replace' }, 'Replace my earlier data')),
          h('div', { class: 'row' }, this.uploadButton),
          h('label', { for: 'upload-progress' }, 'Upload progress'), h('div', { class: 'row' }, this.progress, this.progressText),
          this.report),
        h('form', { class: 'card', 'aria-labelledby': 'sample-title', onsubmit: (/** @type {Event} */ e) => { e.preventDefault(); this.sample(); } },
          h('h2', { id: 'sample-title' }, 'Or try a sample'),
          h('p', { class: 'muted' }, 'A realistic workload over several models; it replaces your earlier data.'),
          h('label', { for: 'days' }, 'Days'), this.days,
          h('label', { for: 'per-day' }, 'Calls per day'), this.perDay,
          h('div', { class: 'row' }, this.sampleButton))),
      h('section', { 'aria-labelledby': 'summary-title' }, h('h2', { id: 'summary-title' }, 'What is stored'), this.summary),
      h('section', { 'aria-labelledby': 'charts-title' }, h('h2', { id: 'charts-title' }, 'Charts'), this.charts));
  }

  async show() {
    await this.refresh();
  }

  async refresh() {
    try {
      const [summary, charts] = await Promise.all([api('GET', '/api/workloads'), api('GET', '/api/workloads/charts')]);
      this.renderSummary(summary);
      this.renderCharts(charts);
    } catch (error) {
      this.summary.replaceChildren(h('p', { class: 'error', role: 'alert' }, /** @type {Error} */ (error).message));
    }
  }

  /** @param {any} s */
  renderSummary(s) {
    if (!s.calls) {
      this.summary.replaceChildren(h('p', { class: 'muted' }, 'No workload data yet: upload a file or generate a sample.'));
      return;
    }
    const day = (/** @type {string} */ iso) => new Date(iso).toLocaleDateString();
    this.summary.replaceChildren(h('dl', { class: 'figures' },
      figure('Calls', s.calls.toLocaleString()), figure('Errors', `${s.errors.toLocaleString()} (${((100 * s.errors) / s.calls).toFixed(1)}%)`),
      figure('Tokens', (s.prompt_tokens + s.completion_tokens).toLocaleString()), figure('Total cost', money(s.total_cost_usd)),
      figure('From', day(s.first_call)), figure('To', day(s.last_call)), figure('Models', String(s.models.length))));
  }

  /** @param {any} c */
  renderCharts(c) {
    this.charts.replaceChildren(
      barChart({ title: 'Cost by model', rows: c.cost_by_model.map((/** @type {any} */ p) => ({ label: p.key, values: [p.cost_usd] })), series: ['cost'], format: money }),
      barChart({ title: 'Cost per day', rows: c.cost_by_day.map((/** @type {any} */ p) => ({ label: p.key, values: [p.cost_usd] })), series: ['cost'], format: money, vertical: true }),
      barChart({ title: 'Latency by model (p50 and p95)', rows: c.latency_by_model.map((/** @type {any} */ p) => ({ label: p.model, values: [p.p50_ms, p.p95_ms] })),
        series: ['p50', 'p95'], format: v => `${Math.round(v).toLocaleString()} ms` }));
  }

  async upload() {
    const file = this.file.files?.[0];
    if (!file) {
      this.report.replaceChildren(h('p', { class: 'error', role: 'alert' }, 'Choose a CSV or JSONL file first.'));
      this.file.focus();
      return;
    }
    const type = /\.(jsonl|ndjson)$/i.test(file.name) ? 'application/jsonl' : /\.csv$/i.test(file.name) ? 'text/csv' : file.type || 'text/csv';
    this.uploadButton.disabled = true;
    this.progress.value = 0;
    this.progressText.textContent = 'Uploading…';
    this.report.replaceChildren();
    try {
      const { status, json } = await upload(`/api/workloads${this.replace.checked ? '?replace=true' : ''}`, file, type, (loaded, total) => {
        this.progress.value = total ? Math.round((100 * loaded) / total) : 0;
        this.progressText.textContent = `${Math.round(loaded / 1024).toLocaleString()} of ${Math.round(total / 1024).toLocaleString()} KB`;
      });
      this.progress.value = 100;
      this.progressText.textContent = status >= 200 && status < 300 ? 'Uploaded.' : 'Refused.';
      this.renderReport(status >= 200 && status < 300 ? json : json?.report ?? null, status >= 300 ? describeProblem(json, status) : null);
      await this.refresh();
    } catch (error) {
      this.progressText.textContent = '';
      this.report.replaceChildren(h('p', { class: 'error', role: 'alert' }, /** @type {Error} */ (error).message));
    } finally {
      this.uploadButton.disabled = false;
    }
  }

  async sample() {
    this.sampleButton.disabled = true;
    this.report.replaceChildren();
    try {
      const report = await api('POST', '/api/workloads/sample', { days: Number(this.days.value), calls_per_day: Number(this.perDay.value) });
      this.renderReport(report, null);
      await this.refresh();
    } catch (error) {
      this.report.replaceChildren(h('p', { class: 'error', role: 'alert' }, /** @type {Error} */ (error).message));
    } finally {
      this.sampleButton.disabled = false;
    }
  }

  /**
   * @param {any} report the validation report (also carried by a refused upload)
   * @param {string | null} refusal
   */
  renderReport(report, refusal) {
    const parts = [];
    if (refusal) parts.push(h('p', { class: 'error', role: 'alert' }, refusal));
    if (report) {
      parts.push(h('p', { class: 'report-line' }, badge(report.rows_rejected ? 'partial' : 'ok'), ' ',
        `${report.rows_accepted.toLocaleString()} row(s) accepted, ${report.rows_rejected.toLocaleString()} rejected`,
        report.rows_priced_from_table ? `; ${report.rows_priced_from_table.toLocaleString()} priced from the price table` : '', '.'));
      if (report.unpriced_models?.length) parts.push(h('p', { class: 'muted' }, `No price known for: ${report.unpriced_models.join(', ')} (their cost counts as zero).`));
      if (report.errors?.length) {
        parts.push(h('h3', null, 'Rejected rows'), h('ul', { class: 'row-errors' },
          ...report.errors.map((/** @type {any} */ e) => h('li', null, h('strong', null, `Line ${e.line}`), ': ', e.reason))));
        if (report.rows_rejected > report.errors.length) parts.push(h('p', { class: 'muted' }, `Only the first ${report.errors.length} are listed.`));
      }
    }
    this.report.replaceChildren(...parts);
  }
}

/** @param {string} term @param {string} value */
function figure(term, value) {
  return h('div', null, h('dt', null, term), h('dd', null, value));
}
