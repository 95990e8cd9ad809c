//! SVG plot of one run's timeline: throughput per second on top, and (when the
//! workload measures latency) the per-second p50 / p99 / max latency below.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::report::RunResult;

const WIDTH: u32 = 960;
const PANEL_HEIGHT: u32 = 320;

/// Renders `run.timeline` to an SVG file at `path`.
pub fn plot_run(run: &RunResult, path: &Path) -> Result<()> {
    let has_latency = run.timeline.iter().any(|s| s.latency.is_some());
    let height = if has_latency {
        2 * PANEL_HEIGHT
    } else {
        PANEL_HEIGHT
    };
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = if has_latency {
        let (a, b) = root.split_vertically(PANEL_HEIGHT);
        (a, Some(b))
    } else {
        (root.clone(), None)
    };
    let x_max = run
        .timeline
        .iter()
        .map(|s| s.t_s)
        .fold(1.0f64, f64::max)
        .ceil();

    // Throughput panel: records/s for the fixed-rate e2e run, payload MB/s otherwise.
    let by_records = run.kind == "e2e";
    let series: Vec<(f64, f64)> = run
        .timeline
        .iter()
        .map(|s| {
            (
                s.t_s,
                if by_records {
                    s.records_per_s
                } else {
                    s.mb_per_s
                },
            )
        })
        .collect();
    let y_max = series.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1e-3) * 1.15;
    let (y_desc, series_name) = if by_records {
        ("records/s", "records/s")
    } else {
        ("MB/s (payload)", "MB/s")
    };
    let name = if run.label == run.kind {
        run.label.clone()
    } else {
        format!("{} ({})", run.label, run.kind)
    };
    let title = format!(
        "{name}: throughput per second — mean {:.1} MB/s, {:.0} rec/s",
        run.mb_per_s, run.records_per_s
    );
    let mut chart = ChartBuilder::on(&top)
        .caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(series, BLUE.stroke_width(2)))
        .map_err(err)?
        .label(series_name)
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(err)?;

    // Latency panel (milliseconds).
    if let Some(bottom) = bottom {
        let points = |f: fn(&crate::stats::LatencySummary) -> f64| -> Vec<(f64, f64)> {
            run.timeline
                .iter()
                .filter_map(|s| s.latency.as_ref().map(|l| (s.t_s, f(l).max(0.001))))
                .collect()
        };
        let p50 = points(|l| l.p50_ms);
        let p99 = points(|l| l.p99_ms);
        let max = points(|l| l.max_ms);
        let hi = max.iter().chain(&p99).map(|p| p.1).fold(0.01f64, f64::max) * 1.1;
        let what = if run.kind == "produce" {
            "send -> delivery report"
        } else {
            "send -> receive"
        };
        let title = match &run.latency {
            Some(l) => format!(
                "latency per second ({what}) — overall p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
                l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms
            ),
            None => format!("latency per second ({what})"),
        };
        let mut chart = ChartBuilder::on(&bottom)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max, 0f64..hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds since start")
            .y_desc("ms")
            .draw()
            .map_err(err)?;
        for (name, data, color) in [("p50", p50, GREEN), ("p99", p99, RED), ("max", max, BLACK)] {
            chart
                .draw_series(LineSeries::new(data, color.stroke_width(2)))
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::synthetic;

    #[test]
    fn plots_throughput_and_latency() {
        let dir = std::env::temp_dir().join(format!("phxq-bench-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.svg");
        plot_run(&synthetic("plot-test", 100.0, 5.0), &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("throughput per second"), "no title");
        assert!(svg.contains("p99"), "no legend");
        assert!(svg.contains("<polyline"), "no line drawn");

        // A run without latency (consume) gets only the throughput panel.
        let mut run = synthetic("no-latency", 10.0, 1.0);
        for s in &mut run.timeline {
            s.latency = None;
        }
        run.latency = None;
        plot_run(&run, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(!svg.contains("latency per second"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
