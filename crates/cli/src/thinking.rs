//! Shows a reasoning model's thinking apart from its answer in `run` and `chat`.
//!
//! The split itself is `jikji_engine::reasoning` (shared with the server). Here only the
//! presentation: on a terminal the thinking is printed dimmed (ANSI SGR 2) and separated
//! from the answer by a blank line; into a pipe or file it is wrapped in `<think>` …
//! `</think>` lines so the output stays machine-readable even when the template opened the
//! thought itself; `--hide-thinking` drops it (an unterminated thought prints nothing).

use std::io::{self, Write};

use jikji_engine::{Part, ReasoningSplitter};

const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// Streams generated pieces to `out`, styling the thinking.
pub struct ThinkingView {
    splitter: ReasoningSplitter,
    hide: bool,
    terminal: bool,
    /// Inside a printed thought (dim on, or `<think>` written).
    open: bool,
    /// Some answer text has been printed.
    answered: bool,
}

impl ThinkingView {
    /// `rendered_prompt` tells whether the template already opened a thought.
    pub fn new(rendered_prompt: &str, hide: bool, terminal: bool) -> Self {
        ThinkingView { splitter: ReasoningSplitter::for_prompt(rendered_prompt), hide, terminal, open: false, answered: false }
    }

    /// Writes what `piece` makes certain.
    pub fn push(&mut self, out: &mut impl Write, piece: &str) -> io::Result<()> {
        let parts = self.splitter.push(piece);
        self.write_parts(out, parts)
    }

    /// Flushes held-back text and closes an open thought.
    pub fn finish(&mut self, out: &mut impl Write) -> io::Result<()> {
        let parts = self.splitter.finish();
        self.write_parts(out, parts)?;
        self.close(out)
    }

    fn close(&mut self, out: &mut impl Write) -> io::Result<()> {
        if self.open {
            self.open = false;
            if self.terminal {
                write!(out, "{RESET}")?;
            } else {
                write!(out, "\n</think>")?;
            }
        }
        Ok(())
    }

    fn write_parts(&mut self, out: &mut impl Write, parts: Vec<Part>) -> io::Result<()> {
        for part in parts {
            match part {
                Part::Reasoning(text) => {
                    if self.hide {
                        continue;
                    }
                    if !self.open {
                        if self.answered {
                            writeln!(out)?;
                        }
                        self.open = true;
                        if self.terminal {
                            write!(out, "{DIM}")?;
                        } else {
                            writeln!(out, "<think>")?;
                        }
                    }
                    write!(out, "{text}")?;
                }
                Part::Content(text) => {
                    if self.open {
                        self.close(out)?;
                        write!(out, "\n\n")?;
                    }
                    self.answered = true;
                    write!(out, "{text}")?;
                }
            }
        }
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(prompt: &str, pieces: &[&str], hide: bool, terminal: bool) -> String {
        let mut v = ThinkingView::new(prompt, hide, terminal);
        let mut out = Vec::new();
        for p in pieces {
            v.push(&mut out, p).expect("write");
        }
        v.finish(&mut out).expect("write");
        String::from_utf8(out).expect("utf-8")
    }

    const R1: &[&str] = &["<thi", "nk>\nhmm, ", "2+2</", "think>\n\n", "4"];

    #[test]
    fn terminal_shows_thinking_dimmed_then_the_answer() {
        assert_eq!(show("", R1, false, true), "\x1b[2mhmm, 2+2\x1b[0m\n\n4");
    }

    #[test]
    fn hide_thinking_prints_only_the_answer() {
        assert_eq!(show("", R1, true, true), "4");
        assert_eq!(show("", R1, true, false), "4");
        // A thought cut off by the token limit prints nothing when hidden.
        assert_eq!(show("<｜Assistant｜><think>\n", &["still going"], true, true), "");
    }

    #[test]
    fn pipes_get_explicit_tags_even_when_the_template_opened_the_thought() {
        let got = show("<｜User｜>hi<｜Assistant｜><think>\n", &["hmm", "</think>", "\n\nHello"], false, false);
        assert_eq!(got, "<think>\nhmm\n</think>\n\nHello");
    }

    #[test]
    fn answers_without_thinking_pass_through_unchanged() {
        assert_eq!(show("", &["Hello", ", <b>world</b>"], false, true), "Hello, <b>world</b>");
    }
}
