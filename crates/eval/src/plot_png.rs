//! PNG charts for `--out DIR`, drawn with the `plotters` crate into an RGB buffer and
//! encoded with the `png` crate: the same three charts as the SVG ones in [`crate::plot`]
//! (accuracy per subject, perplexity per chunk, and the compare scatter of score against
//! cost), for places where SVG does not show (chat tools, slide decks, issue trackers).
//!
//! Design choices: plotters renders text through `ab_glyph`, a pure-Rust rasteriser, so no
//! C font stack is linked; it needs a TrueType file at run time. [`find_font`] takes
//! `JIKJI_FONT`, then a Hangul-capable font (Korean subject names must not come out as
//! boxes: NanumGothic, Noto CJK), then DejaVu / Liberation, then any `.ttf` under
//! `/usr/share/fonts`. Without one the PNG is a typed [`EvalError::NoFont`] and the caller
//! keeps the SVG. Charts are rendered to an [`Image`] first, so tests read pixels back.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::error::EvalError;

/// The bar and line colour (the SVG charts' `#3b6ea5`).
pub const INK: RGBColor = RGBColor(0x3b, 0x6e, 0xa5);
/// The second series' colour (deltas below zero, the scatter's labels).
pub const ACCENT: RGBColor = RGBColor(0xc0, 0x50, 0x30);

/// The fine grid's colour (light enough that the data stays in front).
const LIGHT: RGBColor = RGBColor(0xee, 0xee, 0xee);

/// An RGB image, rows top to bottom: `rgb.len() == width * height * 3`.
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Image {
    /// The colour at column `x`, row `y`.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = 3 * (y as usize * self.width as usize + x as usize);
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Writes the image as an 8-bit RGB PNG.
    pub fn write_png(&self, path: &Path) -> Result<(), EvalError> {
        let what = || format!("PNG {}", path.display());
        let file = std::fs::File::create(path).map_err(|e| EvalError::io(format!("cannot create {}", path.display()), e))?;
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), self.width, self.height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let plot = |e: png::EncodingError| EvalError::Plot { what: what(), reason: e.to_string() };
        let mut w = enc.write_header().map_err(plot)?;
        w.write_image_data(&self.rgb).map_err(plot)?;
        w.finish().map_err(plot)
    }
}

/// Where fonts are looked for, best first.
pub fn font_candidates() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::env::var_os("JIKJI_FONT").map(PathBuf::from).into_iter().collect();
    for p in [
        "/usr/share/fonts/truetype/nanum/NanumGothic.ttf",
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/System/Library/Fonts/Supplemental/Arial.ttf",
    ] {
        v.push(PathBuf::from(p));
    }
    v
}

/// The first readable TrueType file among `candidates`, else any `.ttf` under `fallback_dir`.
pub fn find_font(candidates: &[PathBuf], fallback_dir: &Path) -> Result<PathBuf, EvalError> {
    if let Some(p) = candidates.iter().find(|p| p.is_file()) {
        return Ok(p.clone());
    }
    let mut stack = vec![fallback_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("ttf")) {
                return Ok(p);
            }
        }
    }
    let looked = candidates.iter().map(|p| p.display().to_string()).chain([format!("{}/**.ttf", fallback_dir.display())]).collect::<Vec<_>>().join(", ");
    Err(EvalError::NoFont { looked })
}

/// Registers the font once per process as plotters' `sans-serif`.
fn ensure_font() -> Result<(), EvalError> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let r = DONE.get_or_init(|| {
        let path = find_font(&font_candidates(), Path::new("/usr/share/fonts")).map_err(|e| e.to_string())?;
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read font {}: {e}", path.display()))?;
        // plotters keeps fonts for the whole process: the bytes live as long.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).map_err(|_| format!("{} is not a TrueType font plotters can read", path.display()))
    });
    r.clone().map_err(|reason| EvalError::Plot { what: "chart labels".into(), reason })
}

fn plot_err<E: std::fmt::Debug>(what: &str) -> impl Fn(E) -> EvalError + '_ {
    move |e| EvalError::Plot { what: what.to_string(), reason: format!("{e:?}") }
}

fn render(width: u32, height: u32, what: &str, draw: impl FnOnce(DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<(), EvalError>) -> Result<Image, EvalError> {
    ensure_font()?;
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    {
        let backend = BitMapBackend::with_buffer_and_format(&mut rgb, (width, height)).map_err(plot_err(what))?;
        let root = backend.into_drawing_area();
        root.fill(&WHITE).map_err(plot_err(what))?;
        draw(root.clone())?;
        root.present().map_err(plot_err(what))?;
    }
    Ok(Image { width, height, rgb })
}

/// Horizontal bars of `(label, value)` on a 0..`max` scale, the first bar on top.
pub fn bars_png(title: &str, bars: &[(String, f64)], max: f64) -> Result<Image, EvalError> {
    let n = bars.len().max(1) as i32;
    let height = (90 + 22 * bars.len()).clamp(160, 4000) as u32;
    let max = if max > 0.0 { max } else { 1.0 };
    let label_w = bars.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(4).clamp(4, 40) as u32 * 7 + 10;
    render(760 + label_w, height, title, |root| {
        let e = plot_err(title);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .margin_right(44)
            .x_label_area_size(28)
            .y_label_area_size(label_w)
            .build_cartesian_2d(0.0..max, (0..n).into_segmented())
            .map_err(&e)?;
        let labels: Vec<String> = bars.iter().map(|(l, _)| l.clone()).collect();
        let at = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => labels.get((n - 1 - i) as usize).cloned().unwrap_or_default(),
            SegmentValue::Last => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(LIGHT)
            .y_labels(bars.len().max(1))
            .y_label_formatter(&at)
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(&e)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                let row = n - 1 - i as i32;
                let mut r = Rectangle::new([(0.0, SegmentValue::Exact(row)), (v.clamp(0.0, max), SegmentValue::Exact(row + 1))], INK.filled());
                r.set_margin(3, 3, 0, 0);
                r
            }))
            .map_err(&e)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                Text::new(format!("{v:.1}"), (v.clamp(0.0, max) + max * 0.01, SegmentValue::CenterOf(n - 1 - i as i32)), ("sans-serif", 11).into_font())
            }))
            .map_err(&e)?;
        Ok(())
    })
}

/// A line through `values` at x = 1, 2, … (perplexity per chunk).
pub fn line_png(title: &str, y_label: &str, values: &[f64]) -> Result<Image, EvalError> {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo { (lo - (hi - lo) * 0.05, hi + (hi - lo) * 0.05) } else if lo.is_finite() { (lo - 1.0, lo + 1.0) } else { (0.0, 1.0) };
    let n = values.len().max(2) as f64;
    render(800, 450, title, |root| {
        let e = plot_err(title);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(34)
            .y_label_area_size(60)
            .build_cartesian_2d(1.0..n, lo..hi)
            .map_err(&e)?;
        chart
            .configure_mesh()
            .light_line_style(LIGHT)
            .x_desc("chunk")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc(y_label)
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(&e)?;
        let pts: Vec<(f64, f64)> = values.iter().enumerate().map(|(i, v)| ((i + 1) as f64, *v)).collect();
        chart.draw_series(std::iter::once(PathElement::new(pts.clone(), INK.stroke_width(2)))).map_err(&e)?;
        if pts.len() <= 60 {
            chart.draw_series(pts.iter().map(|p| Circle::new(*p, 3, INK.filled()))).map_err(&e)?;
        }
        Ok(())
    })
}

/// One point per `(label, x, y)`, labelled (score against cost per 1M tokens).
pub fn scatter_png(title: &str, x_label: &str, y_label: &str, points: &[(String, f64, f64)]) -> Result<Image, EvalError> {
    let (x0, x1) = crate::plot::padded_span(points.iter().map(|p| p.1));
    let (y0, y1) = crate::plot::padded_span(points.iter().map(|p| p.2));
    render(800, 500, title, |root| {
        let e = plot_err(title);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(14)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(&e)?;
        chart.configure_mesh().light_line_style(LIGHT).x_desc(x_label).y_desc(y_label).label_style(("sans-serif", 12)).draw().map_err(&e)?;
        chart.draw_series(points.iter().map(|(_, x, y)| Circle::new((*x, *y), 6, INK.filled()))).map_err(&e)?;
        // Labels sit up and right of their point (pixel offsets), not on it.
        chart
            .draw_series(points.iter().map(|(l, x, y)| {
                EmptyElement::at((*x, *y)) + Text::new(format!("{l} ({y:.2})"), (9, -18), ("sans-serif", 13).into_font().color(&ACCENT))
            }))
            .map_err(&e)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ink_columns_per_row(img: &Image) -> Vec<usize> {
        let ink = [INK.0, INK.1, INK.2];
        (0..img.height).map(|y| (0..img.width).filter(|&x| img.pixel(x, y) == ink).count()).collect()
    }

    #[test]
    fn bar_lengths_in_the_png_are_proportional_to_the_values() {
        let img = bars_png("acc", &[("half".into(), 50.0), ("full".into(), 100.0)], 100.0).expect("png");
        let rows = ink_columns_per_row(&img);
        let longest = *rows.iter().max().unwrap();
        let shorter = rows.iter().copied().filter(|&c| c > 10 && c < longest - 10).max().expect("a shorter bar");
        let ratio = shorter as f64 / longest as f64;
        assert!((ratio - 0.5).abs() < 0.03, "50 against 100 drew {shorter} and {longest} pixels");
        // The first bar is drawn on top: the short bar's rows come before the long bar's.
        let first_short = rows.iter().position(|&c| c == shorter).unwrap();
        let first_long = rows.iter().position(|&c| c == longest).unwrap();
        assert!(first_short < first_long);
        // Labels are drawn: dark text pixels left of the bars (and of the axis line).
        let ink = [INK.0, INK.1, INK.2];
        let bar_x = (0..img.width).find(|&x| (0..img.height).any(|y| img.pixel(x, y) == ink)).unwrap();
        let dark = (0..img.height).flat_map(|y| (0..bar_x.saturating_sub(4)).map(move |x| (x, y))).filter(|&(x, y)| img.pixel(x, y).iter().all(|&c| c < 110)).count();
        assert!(dark > 20, "{dark} label pixels left of the bars");
    }

    #[test]
    fn a_falling_perplexity_line_starts_higher_than_it_ends() {
        let img = line_png("ppl", "PPL", &[30.0, 20.0, 15.0, 12.0]).expect("png");
        let ink = [INK.0, INK.1, INK.2];
        let cols: Vec<u32> = (0..img.width).filter(|&x| (0..img.height).any(|y| img.pixel(x, y) == ink)).collect();
        let top = |x: u32| (0..img.height).find(|&y| img.pixel(x, y) == ink).unwrap();
        let (first, last) = (cols[0], *cols.last().unwrap());
        assert!(top(first) < top(last), "row {} at the left, {} at the right", top(first), top(last));
    }

    #[test]
    fn scatter_places_the_cheaper_better_run_left_and_higher() {
        let img = scatter_png("cmp", "cost", "acc", &[("a".into(), 1.0, 60.0), ("b".into(), 3.0, 40.0)]).expect("png");
        let ink = [INK.0, INK.1, INK.2];
        let mut pts: Vec<(u32, u32)> = Vec::new();
        for y in 0..img.height {
            for x in 0..img.width {
                if img.pixel(x, y) == ink {
                    pts.push((x, y));
                }
            }
        }
        let mid = (pts.iter().map(|p| p.0).min().unwrap() + pts.iter().map(|p| p.0).max().unwrap()) / 2;
        let left: Vec<_> = pts.iter().filter(|p| p.0 < mid).collect();
        let right: Vec<_> = pts.iter().filter(|p| p.0 >= mid).collect();
        let mean_y = |v: &[&(u32, u32)]| v.iter().map(|p| p.1 as f64).sum::<f64>() / v.len() as f64;
        assert!(!left.is_empty() && !right.is_empty());
        assert!(mean_y(&left) < mean_y(&right), "the higher score must sit higher");
    }

    #[test]
    fn png_files_carry_the_png_signature_and_size() {
        let dir = std::env::temp_dir().join(format!("jikji-png-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.png");
        line_png("ppl", "PPL", &[2.0, 1.0]).unwrap().write_png(&p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 800);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn missing_fonts_are_a_typed_error_naming_where_it_looked() {
        let e = find_font(&[PathBuf::from("/nonexistent/a.ttf")], Path::new("/nonexistent-dir")).unwrap_err();
        assert!(matches!(e, EvalError::NoFont { .. }));
        assert!(e.to_string().contains("/nonexistent/a.ttf") && e.to_string().contains("JIKJI_FONT"), "{e}");
    }
}
