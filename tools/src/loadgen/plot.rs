//! COLD (a measuring tool) — the percentile plot: latency against percentile on the classic
//! HdrHistogram axes (x = 1/(1−p), log scale, labelled 50 %, 90 %, 99 % …), one line per run, as
//! an SVG file. Series come from a histogram just measured or from `.hgrm` files written
//! earlier, so runs of different systems can be drawn on one plot (`loadgen plot`).

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

/// One line of the plot: (1/(1−p), latency µs) points, p increasing.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// Largest x drawn: the 99.999th percentile (x = 100 000). Beyond it a few samples make the line.
const X_MAX: f64 = 1e5;

/// The percentile distribution of `h` (values in ns) as points in µs.
pub fn series_from_histogram(label: &str, h: &Histogram<u64>) -> Series {
    let mut points = Vec::new();
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                points.push((1.0 / (1.0 - q), v.value_iterated_to() as f64 / 1_000.0));
            }
        }
        points.push((X_MAX.min(h.len() as f64).max(1.0), h.max() as f64 / 1_000.0));
    }
    Series {
        label: label.to_string(),
        points,
    }
}

/// Reads the points of an `.hgrm` percentile distribution (as `write_hgrm` writes it, values in
/// µs): `Value Percentile TotalCount 1/(1-Percentile)`. Header, comment and blank lines are
/// skipped; the last line (percentile 1.0, no fourth column) becomes the max.
pub fn series_from_hgrm(label: &str, text: &str) -> Result<Series, String> {
    let mut points = Vec::new();
    let mut count = 0.0f64;
    for (n, line) in text.lines().enumerate() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = cols.first() else { continue };
        if first.starts_with('#') || *first == "Value" {
            continue;
        }
        let num = |i: usize| -> Result<f64, String> {
            cols.get(i)
                .and_then(|c| c.parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("line {}: `{line}` is not an .hgrm row", n + 1))
        };
        let (value, q) = (num(0)?, num(1)?);
        count = num(2)?;
        if q < 1.0 {
            points.push((1.0 / (1.0 - q), value));
        } else {
            points.push((X_MAX.min(count).max(1.0), value));
        }
    }
    if points.is_empty() || count == 0.0 {
        return Err("no percentile rows (an empty histogram?)".into());
    }
    Ok(Series {
        label: label.to_string(),
        points,
    })
}

/// Draws `series` into an SVG file at `path`.
pub fn write_svg(path: &Path, title: &str, series: &[Series]) -> Result<(), String> {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let y_min = all().map(|p| p.1).fold(f64::INFINITY, f64::min).max(0.1);
    let y_max = all().map(|p| p.1).fold(0.0f64, f64::max).max(y_min * 10.0);
    let x_max = all().map(|p| p.0).fold(10.0f64, f64::max).min(X_MAX);
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (1.0f64..x_max).log_scale(),
            (y_min / 1.5..y_max * 1.5).log_scale(),
        )
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency, µs (log)")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    let palette = [&BLUE, &RED, &GREEN, &MAGENTA, &CYAN, &BLACK, &YELLOW];
    for (k, s) in series.iter().enumerate() {
        let color = palette.get(k % palette.len()).copied().unwrap_or(&BLACK);
        let style = ShapeStyle::from(color).stroke_width(2);
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied().filter(|p| p.0 <= x_max),
                style,
            ))
            .map_err(|e| err(&e))?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// 1/(1−p) → "99.9%".
fn percentile_label(x: f64) -> String {
    if x <= 1.0 {
        return "0%".into();
    }
    let p = 100.0 * (1.0 - 1.0 / x);
    let digits = (x.log10().round() as i32 - 2).max(0) as usize;
    format!("{p:.digits$}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels_name_the_nines() {
        assert_eq!(percentile_label(2.0), "50%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(100.0), "99%");
        assert_eq!(percentile_label(1_000.0), "99.9%");
        assert_eq!(percentile_label(10_000.0), "99.99%");
    }

    #[test]
    fn hgrm_rows_become_points_and_garbage_is_refused() {
        let text = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n\
                    10.000 0.500000000000 5 2.00\n\
                    20.000 0.900000000000 9 10.00\n\
                    30.000 1.000000000000 10\n#[Mean = 1]\n";
        let s = series_from_hgrm("x", text).unwrap();
        let want = [(2.0, 10.0), (10.0, 20.0), (10.0, 30.0)];
        assert_eq!(s.points.len(), want.len());
        for (got, want) in s.points.iter().zip(want) {
            assert!((got.0 - want.0).abs() < 1e-9 && got.1 == want.1, "{got:?}");
        }
        assert!(series_from_hgrm("x", "Value Percentile\n").is_err());
        assert!(series_from_hgrm("x", "10.0 abc 5 2.0\n").is_err());
    }
}
