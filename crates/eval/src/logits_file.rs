//! llama.cpp's KL-divergence base file (`llama-perplexity --kl-divergence-base FILE`), read
//! and written byte for byte, so a base made by either engine serves the other.
//!
//! Layout (little-endian):
//! ```text
//! "_logits_"                        8 bytes
//! n_ctx   i32, n_vocab i32, n_chunk i32
//! tokens  i32 × (n_chunk · n_ctx)   the text's tokens (BOS not substituted)
//! then per chunk, per scored row (n_ctx − 1 − n_ctx/2 rows), nv = 2·⌈n_vocab/2⌉ + 4 u16:
//!   scale f32, min_log_prob f32     (the first four u16)
//!   q[n_vocab] u16                  log p ≈ scale · q + min_log_prob
//!   (one zero u16 of padding when n_vocab is odd)
//! ```
//! The quantization ([`quantize_row`]) clips log-probabilities 16 nats below the best token:
//! `min = max(min_logit, max_logit − 16)`, `scale = (max − min)/65535`,
//! `q = round((logit − min)/scale)` for logits above `min`, else 0. Rounding is llama.cpp's
//! `nearest_int` (the 1.5·2²³ trick: round half to even).

use std::io::{Read, Write};

use crate::error::EvalError;

const MAGIC: &[u8; 8] = b"_logits_";

/// u16 slots per row: header (two f32) + vocabulary, padded to an even count.
pub fn row_len(n_vocab: usize) -> usize {
    2 * n_vocab.div_ceil(2) + 4
}

/// The file's header.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub n_ctx: usize,
    pub n_vocab: usize,
    pub n_chunk: usize,
    /// `n_chunk · n_ctx` tokens.
    pub tokens: Vec<u32>,
}

fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// One row of logits as the file stores it (`row_len(n_vocab)` u16), and the nll of
/// `tok` (`max + ln Σ − logit`, in `f32`, as llama.cpp returns it).
pub fn quantize_row(logits: &[f32], tok: usize, out: &mut [u16]) -> f64 {
    let (mut max, mut min) = (logits[0], logits[0]);
    for &v in &logits[1..] {
        max = if max < v { v } else { max };
        min = if v < min { v } else { min };
    }
    min = if min < max - 16.0 { max - 16.0 } else { min };
    let sum: f64 = logits.iter().map(|&v| f64::from((v - max).exp())).sum();
    let log_sum = sum.ln() as f32;
    let min_log_prob = min - max - log_sum;
    let scale = (max - min) / 65535.0;
    out[..2].copy_from_slice(&split(scale));
    out[2..4].copy_from_slice(&split(min_log_prob));
    let q = &mut out[4..4 + logits.len()];
    if scale != 0.0 {
        let inv = 1.0 / scale;
        for (o, &v) in q.iter_mut().zip(logits) {
            *o = if v > min { nearest_int(inv * (v - min)) as u16 } else { 0 };
        }
    } else {
        q.fill(0);
    }
    for o in &mut out[4 + logits.len()..] {
        *o = 0;
    }
    f64::from(max + log_sum - logits[tok])
}

fn split(x: f32) -> [u16; 2] {
    let b = x.to_le_bytes();
    [u16::from_le_bytes([b[0], b[1]]), u16::from_le_bytes([b[2], b[3]])]
}

/// `(scale, min_log_prob)` of a stored row.
pub fn row_params(row: &[u16]) -> (f32, f32) {
    let f = |a: u16, b: u16| {
        let (x, y) = (a.to_le_bytes(), b.to_le_bytes());
        f32::from_le_bytes([x[0], x[1], y[0], y[1]])
    };
    (f(row[0], row[1]), f(row[2], row[3]))
}

/// Writes a base file: the header now, rows as chunks are scored.
pub struct Writer<W: Write> {
    out: W,
    n_vocab: usize,
}

impl<W: Write> Writer<W> {
    /// Writes the header; `tokens` holds at least `n_chunk · n_ctx` tokens.
    pub fn new(mut out: W, n_ctx: usize, n_vocab: usize, n_chunk: usize, tokens: &[u32]) -> Result<Self, EvalError> {
        let io = |e| EvalError::io("cannot write the KL-divergence base", e);
        let need = n_chunk * n_ctx;
        if tokens.len() < need {
            return Err(EvalError::Format(format!("{} tokens for {n_chunk} chunks of {n_ctx}", tokens.len())));
        }
        let mut head = Vec::with_capacity(20 + 4 * need);
        head.extend_from_slice(MAGIC);
        for v in [n_ctx, n_vocab, n_chunk] {
            head.extend_from_slice(&i32::try_from(v).map_err(|_| EvalError::Format(format!("{v} does not fit the base file")))?.to_le_bytes());
        }
        for &t in &tokens[..need] {
            head.extend_from_slice(&t.to_le_bytes());
        }
        out.write_all(&head).map_err(io)?;
        Ok(Writer { out, n_vocab })
    }

    /// Writes the stored rows of one chunk (`rows` is `k · row_len(n_vocab)` u16).
    pub fn write_rows(&mut self, rows: &[u16]) -> Result<(), EvalError> {
        debug_assert_eq!(rows.len() % row_len(self.n_vocab), 0);
        let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.out.write_all(&bytes).map_err(|e| EvalError::io("cannot write the KL-divergence base", e))
    }

    pub fn finish(mut self) -> Result<W, EvalError> {
        self.out.flush().map_err(|e| EvalError::io("cannot write the KL-divergence base", e))?;
        Ok(self.out)
    }
}

/// Reads a base file: the header first, then one chunk of rows at a time.
#[derive(Debug)]
pub struct Reader<R: Read> {
    input: R,
    pub header: Header,
}

impl<R: Read> Reader<R> {
    pub fn new(mut input: R) -> Result<Self, EvalError> {
        let mut magic = [0u8; 8];
        read_exact(&mut input, &mut magic, "the header")?;
        if &magic != MAGIC {
            return Err(EvalError::Format("this does not look like a file of log-probabilities (no _logits_ magic)".into()));
        }
        let mut nums = [0u8; 12];
        read_exact(&mut input, &mut nums, "the header")?;
        let num = |i: usize| i32::from_le_bytes([nums[4 * i], nums[4 * i + 1], nums[4 * i + 2], nums[4 * i + 3]]);
        let (n_ctx, n_vocab, n_chunk) = (num(0), num(1), num(2));
        if n_ctx < 4 || n_vocab < 1 || n_chunk < 1 || n_ctx > 1 << 24 || n_chunk > 1 << 24 || n_vocab > 1 << 24 {
            return Err(EvalError::Format(format!("implausible base header: n_ctx {n_ctx}, n_vocab {n_vocab}, n_chunk {n_chunk}")));
        }
        let (n_ctx, n_vocab, n_chunk) = (n_ctx as usize, n_vocab as usize, n_chunk as usize);
        let n = n_ctx.checked_mul(n_chunk).filter(|&n| n <= 1 << 28).ok_or_else(|| EvalError::Format("base holds too many tokens".into()))?;
        let mut raw = vec![0u8; 4 * n];
        read_exact(&mut input, &mut raw, "the evaluation tokens")?;
        let tokens = raw.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u32).collect();
        Ok(Reader { input, header: Header { n_ctx, n_vocab, n_chunk, tokens } })
    }

    /// Rows scored per chunk, `n_ctx − 1 − n_ctx/2`.
    pub fn rows_per_chunk(&self) -> usize {
        self.header.n_ctx - 1 - self.header.n_ctx / 2
    }

    /// The stored rows of the next chunk, `[rows_per_chunk, row_len(n_vocab)]`.
    pub fn next_chunk(&mut self, chunk: usize) -> Result<Vec<u16>, EvalError> {
        let n = self.rows_per_chunk() * row_len(self.header.n_vocab);
        let mut raw = vec![0u8; 2 * n];
        read_exact(&mut self.input, &mut raw, &format!("the log-probs of chunk {chunk}"))?;
        Ok(raw.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect())
    }
}

fn read_exact(r: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), EvalError> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            EvalError::Format(format!("the KL-divergence base ends inside {what}"))
        } else {
            EvalError::io(format!("cannot read {what} of the KL-divergence base"), e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!([nearest_int(0.5), nearest_int(1.5), nearest_int(2.4), nearest_int(65535.0)], [0, 2, 2, 65535]);
    }

    #[test]
    fn a_row_round_trips_within_the_quantization_step() {
        let logits = [2.0f32, -1.0, 0.5, -30.0, 1.0];
        let mut row = vec![0u16; row_len(5)];
        assert_eq!(row.len(), 10);
        let nll = quantize_row(&logits, 2, &mut row);
        let lse = logits.iter().map(|&v| f64::from(v).exp()).sum::<f64>().ln();
        assert!((nll - (lse - 0.5)).abs() < 1e-5);
        let (scale, min) = row_params(&row);
        for (i, &l) in logits.iter().enumerate().take(3) {
            let lp = scale * row[4 + i] as f32 + min;
            assert!((f64::from(lp) - (f64::from(l) - lse)).abs() <= f64::from(scale), "{i}");
        }
        assert_eq!(row[4 + 3], 0, "more than 16 nats below the best is clipped");
        assert_eq!(row[9], 0, "padding");
    }

    #[test]
    fn a_written_file_reads_back_and_truncation_is_an_error() {
        let tokens: Vec<u32> = (0..16).collect();
        let mut w = Writer::new(Vec::new(), 8, 3, 2, &tokens).unwrap();
        let rows = vec![7u16; 3 * row_len(3) * 2];
        w.write_rows(&rows[..3 * row_len(3)]).unwrap();
        w.write_rows(&rows[..3 * row_len(3)]).unwrap();
        let bytes = w.finish().unwrap();
        let mut r = Reader::new(&bytes[..]).unwrap();
        assert_eq!(r.header, Header { n_ctx: 8, n_vocab: 3, n_chunk: 2, tokens });
        assert_eq!(r.rows_per_chunk(), 3);
        assert_eq!(r.next_chunk(0).unwrap(), vec![7u16; 3 * row_len(3)]);
        assert!(r.next_chunk(1).is_ok());
        assert!(r.next_chunk(2).unwrap_err().to_string().contains("chunk 2"));
        assert!(Reader::new(&bytes[..30]).is_err());
        assert!(Reader::new(&b"_notlog_xxxxxxxxxxxxxxxx"[..]).unwrap_err().to_string().contains("magic"));
    }
}
