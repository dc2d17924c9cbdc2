/** A time chart of usage drawn by uPlot (canvas): one line per series, x in seconds. */

import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { ChartData } from "../usage/model";

// Colours that read on the light and the dark theme alike.
const COLOURS = ["#6366f1", "#10b981", "#f59e0b", "#ef4444"];
const HEIGHT = 260;

export function UsageChart({ chart, formatValue, testid }: { chart: ChartData; formatValue: (v: number) => string; testid?: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const format = useRef(formatValue);
  format.current = formatValue;
  const shape = chart.labels.join("|");

  // One uPlot per set of series; new data goes through setData.
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const options: uPlot.Options = {
      width: Math.max(el.clientWidth, 320),
      height: HEIGHT,
      series: [
        {},
        ...chart.labels.map((label, i) => ({
          label,
          stroke: COLOURS[i % COLOURS.length],
          fill: `${COLOURS[i % COLOURS.length]}22`,
          width: 2,
          points: { show: true, size: 4 },
          value: (_u: uPlot, v: number | null) => (v == null ? "—" : format.current(v)),
        })),
      ],
      axes: [{ stroke: "currentColor" }, { stroke: "currentColor", size: 70, values: (_u, ticks) => ticks.map((t) => format.current(t)) }],
      scales: { y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      legend: { live: true },
    };
    const made = new uPlot(options, chart.data as uPlot.AlignedData, el);
    plot.current = made;
    const resize = new ResizeObserver(() => made.setSize({ width: Math.max(el.clientWidth, 320), height: HEIGHT }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      made.destroy();
      plot.current = null;
    };
    // Rebuilt only when the series change; the data alone goes through setData below.
  }, [shape]);

  useEffect(() => {
    plot.current?.setData(chart.data as uPlot.AlignedData);
  }, [chart]);

  return <div class="usage-chart" ref={box} data-testid={testid} data-points={chart.data[0]?.length ?? 0} data-series={shape} />;
}
