/** The block section's table, for the terminal and as Markdown. */

/** One device under one workload. */
export interface BlockRow {
  /** The guest and the workload. */
  group: string;
  /** The device. */
  name: string;
  /** Median rate over the repetitions. */
  value: number;
  unit: string;
  /** Ours ÷ QEMU's device: the median of the per-repetition ratios of rates. */
  ratio?: number;
  /** The device the ratio is against. */
  versus?: string;
  /** CPU time of our server per request, µs. */
  serverCpuUs?: number;
  /** CPU time of QEMU per request, µs. */
  qemuCpuUs?: number;
  /** Doorbell MMIO writes per request (our NVMe). */
  doorbellsPerRequest?: number;
  /** NVMe commands per request (our NVMe). */
  commandsPerRequest?: number;
}

const HEADER = ['device', 'median', 'unit', 'ours ÷ QEMU', 'server CPU/req', 'QEMU CPU/req', 'doorbells/req', 'commands/req'];

function cells(row: BlockRow): string[] {
  const us = (v: number | undefined): string => (v === undefined ? '' : `${v.toFixed(0)} µs`);
  return [
    row.name,
    row.value >= 100 ? row.value.toFixed(0) : row.value.toFixed(1),
    row.unit,
    row.ratio === undefined ? '' : row.ratio.toFixed(2),
    us(row.serverCpuUs),
    us(row.qemuCpuUs),
    row.doorbellsPerRequest === undefined ? '' : row.doorbellsPerRequest.toFixed(2),
    row.commandsPerRequest === undefined ? '' : row.commandsPerRequest.toFixed(2),
  ];
}

/** Aligned columns, a heading line per group. */
export function renderBlockTable(rows: readonly BlockRow[]): string[] {
  const all = rows.map(cells);
  const widths = HEADER.map((h, i) => Math.max(h.length, ...all.map((c) => c[i].length)));
  const line = (c: string[]): string => c.map((cell, i) => (i === 0 || i === 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  const out = [line(HEADER), widths.map((w) => '-'.repeat(w)).join('  ')];
  let group = '';
  rows.forEach((row, i) => {
    if (row.group !== group) {
      group = row.group;
      out.push(`[${group}]`);
    }
    out.push(line(all[i]));
  });
  return out;
}

/** The same as a Markdown table, the group in the first column. */
export function renderBlockMarkdown(rows: readonly BlockRow[], machine: string): string {
  const out = [
    `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${machine}.`,
    '',
    `| workload | ${HEADER.join(' | ')} |`,
    `| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |`,
  ];
  for (const row of rows) {
    out.push(`| ${row.group} | ${cells(row).join(' | ')} |`);
  }
  return `${out.join('\n')}\n`;
}
