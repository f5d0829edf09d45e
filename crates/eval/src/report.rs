//! What `--out DIR` holds besides `results.json`/`results.csv`: every chart as SVG and PNG
//! side by side, and `report.md`, a Markdown page that embeds the PNGs (they show in every
//! Markdown viewer; the SVGs sit next to them for browsers and diffs).
//!
//! A PNG that cannot be drawn (no font on the machine) is reported, not fatal: the SVG and
//! the numbers are still written.

use std::path::Path;

use crate::error::EvalError;
use crate::plot_png::Image;

/// One chart written as `STEM.svg` and, when it could be drawn, `STEM.png`.
pub struct Chart {
    pub stem: String,
    pub title: String,
    pub png: bool,
}

/// Writes `dir/STEM.svg` and `dir/STEM.png`; a PNG error comes back as the warning string.
pub fn write_chart(dir: &Path, stem: &str, title: &str, svg: &str, png: Result<Image, EvalError>) -> Result<(Chart, Option<String>), EvalError> {
    let sp = dir.join(format!("{stem}.svg"));
    std::fs::write(&sp, svg).map_err(|e| EvalError::io(format!("cannot write {}", sp.display()), e))?;
    let (ok, warning) = match png {
        Ok(img) => {
            img.write_png(&dir.join(format!("{stem}.png")))?;
            (true, None)
        }
        Err(e) => (false, Some(format!("{stem}.png not written: {e}"))),
    };
    Ok((Chart { stem: stem.into(), title: title.into(), png: ok }, warning))
}

/// A Markdown page: a title, body text (already Markdown: tables, lists), then each chart
/// as an embedded PNG (or a link to its SVG when no PNG was drawn).
pub fn markdown(title: &str, body: &str, charts: &[Chart]) -> String {
    let mut s = format!("# {title}\n\n{}\n", body.trim_end());
    for c in charts {
        s.push('\n');
        if c.png {
            s.push_str(&format!("![{}]({}.png)\n\n([SVG]({}.svg))\n", c.title, c.stem, c.stem));
        } else {
            s.push_str(&format!("[{}]({}.svg)\n", c.title, c.stem));
        }
    }
    s
}

/// `markdown(..)` written to `dir/report.md`.
pub fn write_markdown(dir: &Path, title: &str, body: &str, charts: &[Chart]) -> Result<(), EvalError> {
    let p = dir.join("report.md");
    std::fs::write(&p, markdown(title, body, charts)).map_err(|e| EvalError::io(format!("cannot write {}", p.display()), e))
}

/// A Markdown table from a header and rows (cells with `|` escaped).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cell = |c: &str| c.replace('|', "\\|");
    let mut s = format!("| {} |\n|{}|\n", header.iter().map(|h| cell(h)).collect::<Vec<_>>().join(" | "), header.iter().enumerate().map(|(i, _)| if i == 0 { "---" } else { "---:" }).collect::<Vec<_>>().join("|"));
    for r in rows {
        s.push_str(&format!("| {} |\n", r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_embeds_drawn_pngs_and_links_svgs_when_no_png_was_drawn() {
        let charts = [
            Chart { stem: "acc".into(), title: "accuracy".into(), png: true },
            Chart { stem: "ppl".into(), title: "perplexity".into(), png: false },
        ];
        let md = markdown("mmlu", "score 25 %", &charts);
        assert!(md.starts_with("# mmlu\n\nscore 25 %\n"));
        assert!(md.contains("![accuracy](acc.png)") && md.contains("[SVG](acc.svg)"));
        assert!(md.contains("[perplexity](ppl.svg)") && !md.contains("ppl.png"));
    }

    #[test]
    fn tables_escape_pipes_and_right_align_number_columns() {
        let t = table(&["run", "acc"], &[vec!["a|b".into(), "1.0".into()]]);
        assert_eq!(t, "| run | acc |\n|---|---:|\n| a\\|b | 1.0 |\n");
    }

    #[test]
    fn a_chart_whose_png_fails_still_writes_its_svg_and_says_why() {
        let dir = std::env::temp_dir().join(format!("jikji-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = Err(EvalError::NoFont { looked: "nowhere".into() });
        let (c, warn) = write_chart(&dir, "x", "x", "<svg/>", err).unwrap();
        assert!(!c.png && dir.join("x.svg").is_file() && !dir.join("x.png").exists());
        assert!(warn.unwrap().contains("JIKJI_FONT"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
