import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { type Api, ApiError } from './api.ts';
import { formatNumber } from './format.ts';
import type { Usage, UsageRange } from './types.ts';
import { Alert, Spinner } from './ui.tsx';

const RANGES: Array<{ range: UsageRange; label: string }> = [
  { range: '24h', label: '24 hours' },
  { range: '7d', label: '7 days' },
  { range: '30d', label: '30 days' },
];

const OUTCOMES = [
  { field: 'served', label: 'Served', color: '#16a34a' },
  { field: 'failed', label: 'Failed', color: '#dc2626' },
  { field: 'rateLimited', label: 'Rate-limited', color: '#d97706' },
] as const;

type Totals = Record<(typeof OUTCOMES)[number]['field'], number>;

function totalsOf(usage: Usage): Totals {
  const totals: Totals = { served: 0, failed: 0, rateLimited: 0 };
  for (const bucket of usage.buckets) {
    for (const { field } of OUTCOMES) totals[field] += bucket[field];
  }
  return totals;
}

/**
 * Bars stacked by outcome: each series is drawn as the running sum up to its outcome, the largest
 * first, so every bar shows its parts. The legend reads the bucket's own counts.
 */
function chartData(usage: Usage): uPlot.AlignedData {
  const xs = usage.buckets.map((bucket) => Date.parse(bucket.start) / 1000);
  const stacked = OUTCOMES.map((_, index) =>
    usage.buckets.map((bucket) =>
      OUTCOMES.slice(0, index + 1).reduce((sum, { field }) => sum + bucket[field], 0),
    ),
  );
  return [xs, ...stacked.reverse()];
}

function Chart({ usage }: { usage: Usage }) {
  const container = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const element = container.current!;
    const byOutcome = [...OUTCOMES].reverse();
    const bars = uPlot.paths.bars!({ size: [0.7, 40], gap: 1 });
    const plot = new uPlot(
      {
        width: element.clientWidth,
        height: 240,
        cursor: { points: { show: false }, drag: { x: false, y: false } },
        legend: { live: true },
        scales: {
          x: { time: true },
          y: { range: (_u, _min, max) => [0, Math.max(4, Math.ceil(max * 1.15))] },
        },
        axes: [
          { stroke: '#4b5563', grid: { show: false }, ticks: { stroke: '#e5e7eb' } },
          { stroke: '#4b5563', grid: { stroke: '#eef0f3' }, ticks: { show: false }, size: 48 },
        ],
        series: [
          { label: usage.interval === 'hour' ? 'Hour' : 'Day' },
          ...byOutcome.map(({ field, label, color }) => ({
            label,
            fill: color,
            stroke: color,
            width: 0,
            paths: bars,
            points: { show: false },
            value: (_u: uPlot, _v: number | null, _series: number, index: number | null) =>
              index === null ? '–' : formatNumber(usage.buckets[index]?.[field] ?? 0),
          })),
        ],
      },
      chartData(usage),
      element,
    );
    const resize = new ResizeObserver(() =>
      plot.setSize({ width: element.clientWidth, height: 240 }),
    );
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [usage]);
  return <div class="chart" ref={container} aria-hidden="true" />;
}

export function UsagePanel({
  api,
  keyId,
  refreshed,
}: {
  api: Api;
  keyId: string;
  refreshed: number;
}) {
  const [range, setRange] = useState<UsageRange>('24h');
  const [usage, setUsage] = useState<Usage | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let current = true;
    setError(null);
    api.usage(keyId, range).then(
      (loaded) => current && setUsage(loaded),
      (failure: unknown) => {
        if (!current) return;
        setUsage(null);
        setError(
          failure instanceof ApiError && failure.status === 404
            ? 'This server does not report usage yet.'
            : failure instanceof Error
              ? failure.message
              : String(failure),
        );
      },
    );
    return () => {
      current = false;
    };
  }, [api, keyId, range, refreshed]);
  const totals = usage ? totalsOf(usage) : null;

  return (
    <section class="card" aria-labelledby="usage-heading">
      <div class="card-header">
        <h2 id="usage-heading">Usage</h2>
        <fieldset class="segmented">
          <legend class="sr-only">Period</legend>
          {RANGES.map((choice) => (
            <button
              key={choice.range}
              type="button"
              class={range === choice.range ? 'segment segment-on' : 'segment'}
              aria-pressed={range === choice.range}
              onClick={() => setRange(choice.range)}
            >
              {choice.label}
            </button>
          ))}
        </fieldset>
      </div>
      {error && <Alert tone="info">{error}</Alert>}
      {!usage && !error && <Spinner label="Loading usage…" />}
      {usage && totals && (
        <>
          <dl
            class="totals"
            data-testid="usage-totals"
            aria-label={`Requests in the last ${RANGES.find((r) => r.range === range)!.label}`}
          >
            {OUTCOMES.map(({ field, label }) => (
              <div key={field} class="total">
                <dt>
                  <span class={`swatch swatch-${field}`} aria-hidden="true" />
                  {label}
                </dt>
                <dd data-outcome={field}>{formatNumber(totals[field])}</dd>
              </div>
            ))}
          </dl>
          <Chart usage={usage} />
        </>
      )}
    </section>
  );
}
