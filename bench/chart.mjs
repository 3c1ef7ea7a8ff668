// Renders the benchmark rows as an SVG: throughput per workload and small-GET
// latency per configuration, as horizontal bars. No dependency: the SVG is
// small enough to write by hand.

const COLORS = ['#4c78a8', '#f58518', '#54a24b', '#b279a2'];
const escape = (text) =>
  String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;');

/**
 * One panel of grouped horizontal bars.
 * @param {{ title: string, unit: string, series: { label: string, values: number[] }[], names: string[], y: number }} panel
 */
function panel({ title, unit, series, names, y }) {
  const left = 230;
  const width = 520;
  const barHeight = 10;
  const groupHeight = series.length * barHeight + 10;
  const max = Math.max(
    1e-9,
    ...series.flatMap((s) => s.values.filter(Number.isFinite)),
  );
  const parts = [
    `<text x="10" y="${y + 16}" font-weight="bold">${escape(title)}</text>`,
  ];
  series.forEach((s, i) => {
    parts.push(
      `<rect x="${left + i * 150}" y="${y + 6}" width="10" height="10" fill="${COLORS[i]}"/>`,
      `<text x="${left + i * 150 + 14}" y="${y + 15}" font-size="11">${escape(s.label)}</text>`,
    );
  });
  names.forEach((name, row) => {
    const top = y + 28 + row * groupHeight;
    parts.push(
      `<text x="${left - 8}" y="${top + groupHeight / 2}" font-size="11" text-anchor="end">${escape(name)}</text>`,
    );
    series.forEach((s, i) => {
      const value = s.values[row];
      if (!Number.isFinite(value)) return;
      const w = Math.max(1, (value / max) * width);
      const barTop = top + i * barHeight;
      parts.push(
        `<rect x="${left}" y="${barTop}" width="${w.toFixed(1)}" height="${barHeight - 2}" fill="${COLORS[i]}"/>`,
        `<text x="${left + w + 4}" y="${barTop + 8}" font-size="9">${value.toFixed(1)} ${unit}</text>`,
      );
    });
  });
  return { svg: parts.join('\n'), height: 40 + names.length * groupHeight };
}

/** @param {any[]} rows the benchmark's result rows */
export function renderChart(rows) {
  const names = rows.map((r) => r.name);
  const throughput = panel({
    title: 'Throughput (MB/s, higher is better)',
    unit: 'MB/s',
    names,
    y: 0,
    series: [
      { label: 'upload', values: rows.map((r) => r.upload.mbps) },
      { label: 'download', values: rows.map((r) => r.download.mbps) },
      { label: 'parallel uploads', values: rows.map((r) => r.parallel.mbps) },
    ],
  });
  const latency = panel({
    title: 'Small GET latency (ms, lower is better)',
    unit: 'ms',
    names,
    y: throughput.height + 20,
    series: [
      { label: 'p50, 50 at a time', values: rows.map((r) => r.small.p50) },
      { label: 'p99, 50 at a time', values: rows.map((r) => r.small.p99) },
      { label: 'p50, one at a time', values: rows.map((r) => r.small.single) },
    ],
  });
  const height = throughput.height + latency.height + 40;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="860" height="${height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
${throughput.svg}
${latency.svg}
</svg>
`;
}
