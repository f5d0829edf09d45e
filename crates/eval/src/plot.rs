//! SVG charts for `--out DIR`: accuracy per subject (horizontal bars), perplexity per
//! chunk (a line) and score against cost (a scatter, `jikji eval compare`). Plain SVG
//! text written here — no plotting or font stack — so the files open in any browser and
//! diff cleanly; labels are escaped XML text. [`crate::plot_png`] draws the same charts
//! as PNG.

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Horizontal bars of `(label, value)` on a 0..`max` scale.
pub fn bars_svg(title: &str, bars: &[(String, f64)], max: f64) -> String {
    let (left, width, row) = (260.0, 420.0, 18.0);
    let h = 50.0 + row * bars.len() as f64 + 20.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"24\" font-size=\"16\">{}</text>\n",
        left + width + 70.0,
        esc(title)
    );
    let max = if max > 0.0 { max } else { 1.0 };
    for (i, (label, v)) in bars.iter().enumerate() {
        let y = 40.0 + row * i as f64;
        let w = (v / max).clamp(0.0, 1.0) * width;
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><rect x=\"{left}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"#3b6ea5\"/><text x=\"{}\" y=\"{}\">{v:.1}</text>\n",
            left - 6.0,
            y + 12.0,
            esc(label),
            row - 4.0,
            left + w + 4.0,
            y + 12.0
        ));
    }
    s.push_str("</svg>\n");
    s
}

/// A line through `values` (x = 1, 2, …).
pub fn line_svg(title: &str, y_label: &str, values: &[f64]) -> String {
    let (w, h, l, b) = (640.0, 360.0, 60.0, 40.0);
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo { (lo, hi) } else { (lo.min(0.0), lo.max(0.0) + 1.0) };
    let n = values.len().max(2) - 1;
    let pts: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", l + (w - l - 20.0) * i as f64 / n as f64, 30.0 + (h - 30.0 - b) * (1.0 - (v - lo) / (hi - lo))))
        .collect();
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" font-size=\"16\">{}</text>\n<polyline fill=\"none\" stroke=\"#3b6ea5\" stroke-width=\"2\" points=\"{}\"/>\n<text x=\"4\" y=\"34\">{hi:.2}</text><text x=\"4\" y=\"{}\">{lo:.2}</text><text x=\"{}\" y=\"{}\">chunk ({} values)</text><text x=\"4\" y=\"{}\">{}</text>\n</svg>\n",
        esc(title),
        pts.join(" "),
        h - b,
        w / 2.0 - 40.0,
        h - 10.0,
        values.len(),
        h / 2.0,
        esc(y_label)
    )
}

/// The axis range of a scatter: the values' span padded by 15 % each side, a unit around a
/// single value, 0..1 when there are none.
pub(crate) fn padded_span(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        (0.0, 1.0)
    } else if hi > lo {
        (lo - (hi - lo) * 0.15, hi + (hi - lo) * 0.15)
    } else {
        (lo - lo.abs().max(1.0) * 0.5, lo + lo.abs().max(1.0) * 0.5)
    }
}

/// One labelled point per `(label, x, y)` (score against cost per 1M tokens).
pub fn scatter_svg(title: &str, x_label: &str, y_label: &str, points: &[(String, f64, f64)]) -> String {
    let (w, h, l, b, t, r) = (640.0, 400.0, 70.0, 50.0, 40.0, 30.0);
    let (x0, x1) = padded_span(points.iter().map(|p| p.1));
    let (y0, y1) = padded_span(points.iter().map(|p| p.2));
    let px = |x: f64| l + (w - l - r) * (x - x0) / (x1 - x0);
    let py = |y: f64| t + (h - t - b) * (1.0 - (y - y0) / (y1 - y0));
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"22\" font-size=\"16\">{}</text>\n<polyline fill=\"none\" stroke=\"black\" points=\"{l},{t} {l},{} {},{}\"/>\n",
        esc(title),
        h - b,
        w - r,
        h - b
    );
    s.push_str(&format!(
        "<text x=\"{l}\" y=\"{}\">{x0:.3}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{x1:.3}</text><text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
        h - b + 16.0,
        w - r,
        h - b + 16.0,
        (l + w - r) / 2.0,
        h - 8.0,
        esc(x_label)
    ));
    s.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{y1:.2}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{y0:.2}</text><text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">{}</text>\n",
        l - 4.0,
        t + 10.0,
        l - 4.0,
        h - b,
        (t + h - b) / 2.0,
        (t + h - b) / 2.0,
        esc(y_label)
    ));
    for (label, x, y) in points {
        s.push_str(&format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"#3b6ea5\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#c05030\">{} ({y:.2})</text>\n",
            px(*x),
            py(*y),
            px(*x) + 8.0,
            py(*y) - 6.0,
            esc(label)
        ));
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_escaped_labels_and_one_bar_each() {
        let s = bars_svg("acc <mmlu>", &[("a&b".into(), 50.0), ("c".into(), 100.0)], 100.0);
        assert!(s.starts_with("<svg") && s.contains("acc &lt;mmlu&gt;") && s.contains("a&amp;b"));
        assert_eq!(s.matches("fill=\"#3b6ea5\"").count(), 2);
        let l = line_svg("ppl", "PPL", &[3.0, 2.0, 1.5]);
        assert!(l.contains("<polyline") && l.contains("3.00") && l.contains("1.50"));
        assert!(line_svg("empty", "", &[]).starts_with("<svg"));
    }

    #[test]
    fn scatter_puts_one_labelled_point_per_run_higher_score_higher() {
        let s = scatter_svg("cmp", "price", "acc", &[("q8".into(), 2.0, 60.0), ("q4 <x>".into(), 1.0, 40.0)]);
        assert_eq!(s.matches("<circle").count(), 2);
        assert!(s.contains("q4 &lt;x&gt; (40.00)"));
        let cy: Vec<f64> = s.split("cy=\"").skip(1).map(|p| p.split('"').next().unwrap().parse().unwrap()).collect();
        assert!(cy[0] < cy[1], "60 must sit above 40: {cy:?}");
    }
}
