// @ts-check
import { h, s } from './dom.js';

/**
 * Bar charts drawn as inline SVG. Labels are SVG text nodes (never markup), each bar carries a
 * <title> with its value, and the same figures are offered as a table for screen readers.
 */

/**
 * @typedef {{ label: string, values: number[] }} Row
 * @param {{ title: string, rows: Row[], series: string[], format: (v: number) => string, vertical?: boolean }} chart
 */
export function barChart({ title, rows, series, format, vertical = false }) {
  const figure = h('figure', { class: 'chart' }, h('figcaption', null, title));
  if (rows.length === 0) {
    figure.append(h('p', { class: 'muted' }, 'No data yet.'));
    return figure;
  }
  const max = Math.max(...rows.flatMap(r => r.values), 0) || 1;
  const svg = vertical ? columns(rows, series, max, format, title) : bars(rows, series, max, format, title);
  figure.append(svg);
  if (series.length > 1) figure.append(h('p', { class: 'legend' }, ...series.map((name, i) => h('span', null, h('span', { class: `swatch series-${i}`, 'aria-hidden': 'true' }), name))));
  figure.append(h('details', null, h('summary', null, 'Show as a table'),
    h('table', null, h('thead', null, h('tr', null, h('th', { scope: 'col' }, vertical ? 'Day' : 'Model'), ...series.map(n => h('th', { scope: 'col' }, n)))),
      h('tbody', null, ...rows.map(r => h('tr', null, h('th', { scope: 'row' }, r.label), ...r.values.map(v => h('td', null, format(v)))))))));
  return figure;
}

/**
 * Horizontal bars, one group per row.
 * @param {Row[]} rows @param {string[]} series @param {number} max @param {(v: number) => string} format @param {string} title
 */
function bars(rows, series, max, format, title) {
  const labelWidth = 140, valueWidth = 76, barHeight = 20, gap = 10, width = 440;
  const plot = width - labelWidth - valueWidth;
  const groupHeight = series.length * barHeight + gap;
  const height = rows.length * groupHeight + gap;
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title, class: 'bars' });
  rows.forEach((row, i) => {
    const y = gap + i * groupHeight;
    const label = row.label.length > 20 ? row.label.slice(0, 19) + '…' : row.label;
    svg.append(s('text', { x: labelWidth - 8, y: y + (series.length * barHeight) / 2 + 4, 'text-anchor': 'end', class: 'label' }, label));
    row.values.forEach((value, j) => {
      const w = Math.max(1, (value / max) * plot);
      const by = y + j * barHeight;
      svg.append(s('rect', { x: labelWidth, y: by, width: w, height: barHeight - 3, rx: 2, class: `bar series-${j}` },
        s('title', {}, `${row.label} ${series[j]}: ${format(value)}`)));
      svg.append(s('text', { x: labelWidth + w + 6, y: by + barHeight - 7, class: 'value' }, format(value)));
    });
  });
  return svg;
}

/**
 * Vertical columns, for a series over time.
 * @param {Row[]} rows @param {string[]} series @param {number} max @param {(v: number) => string} format @param {string} title
 */
function columns(rows, series, max, format, title) {
  const width = 440, height = 220, left = 58, bottom = 30, top = 12;
  const plot = height - bottom - top;
  const step = (width - left - 8) / rows.length;
  const barWidth = Math.max(2, step * 0.7);
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title, class: 'columns' });
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plot * (1 - fraction);
    svg.append(s('line', { x1: left, x2: width - 4, y1: y, y2: y, class: 'grid' }));
    svg.append(s('text', { x: left - 6, y: y + 4, 'text-anchor': 'end', class: 'value' }, format(max * fraction)));
  }
  const labelEvery = Math.ceil(rows.length / 7);
  rows.forEach((row, i) => {
    const value = row.values[0];
    const hgt = Math.max(1, (value / max) * plot);
    const x = left + i * step + (step - barWidth) / 2;
    svg.append(s('rect', { x, y: top + plot - hgt, width: barWidth, height: hgt, rx: 2, class: 'bar series-0' }, s('title', {}, `${row.label}: ${format(value)}`)));
    if (i % labelEvery === 0) svg.append(s('text', { x: x + barWidth / 2, y: height - bottom + 16, 'text-anchor': 'middle', class: 'label' }, row.label.slice(5)));
  });
  return svg;
}
