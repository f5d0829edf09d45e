//! Row-parallel maps over logits: each scored position's log-softmax is independent, so
//! rows are split into one contiguous run per thread (scoped threads, results in order).

/// `f(i, row)` for every `n_vocab`-wide row of `logits`, on up to `threads` threads, in
/// row order.
pub fn map_rows<T: Send>(logits: &[f32], n_vocab: usize, threads: usize, f: impl Fn(usize, &[f32]) -> T + Sync) -> Vec<T> {
    let n_rows = logits.len().checked_div(n_vocab).unwrap_or(0);
    let threads = threads.clamp(1, n_rows.max(1));
    if threads == 1 {
        return (0..n_rows).map(|i| f(i, &logits[i * n_vocab..(i + 1) * n_vocab])).collect();
    }
    let per = n_rows.div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let lo = (t * per).min(n_rows);
                let hi = ((t + 1) * per).min(n_rows);
                s.spawn(move || (lo..hi).map(|i| f(i, &logits[i * n_vocab..(i + 1) * n_vocab])).collect::<Vec<T>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

/// Threads for the row maps: what the machine offers.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_back_in_order_whatever_the_thread_count() {
        let logits: Vec<f32> = (0..30).map(|x| x as f32).collect();
        let one = map_rows(&logits, 3, 1, |i, r| (i, r[0]));
        for t in [2, 3, 7, 100] {
            assert_eq!(map_rows(&logits, 3, t, |i, r| (i, r[0])), one);
        }
        assert_eq!(one.len(), 10);
        assert_eq!(one[9], (9, 27.0));
    }
}
