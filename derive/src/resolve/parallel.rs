//! Scoring many pairs on every core, with the same result as one thread.
//! Training and re-resolution score every candidate pair of the records
//! held while ingest waits for them; the work splits into contiguous
//! slices, one per core, and the results come back in input order, so
//! nothing depends on which thread finished first.

/// Below this many items one thread does it: starting threads costs more.
const MIN_PARALLEL: usize = 4_096;

/// `f` of every item, in the order of `items`.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    by_slices(items, |slice| slice.iter().map(&f).collect::<Vec<R>>())
        .into_iter()
        .flatten()
        .collect()
}

/// `f` of contiguous slices of `items`, one per core (one slice when
/// `items` is short), in order: for results that sum up a slice (counts)
/// rather than one per item, so memory holds a result per core.
pub fn by_slices<T: Sync, R: Send>(items: &[T], f: impl Fn(&[T]) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || items.len() < MIN_PARALLEL {
        return vec![f(items)];
    }
    let slice = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(slice)
            .map(|chunk| scope.spawn(move || f(chunk)))
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(part) => part,
                // A panic in `f` is a bug; let it surface as it would on
                // one thread.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_come_back_in_input_order_at_any_size() {
        for n in [0, 1, 10, super::MIN_PARALLEL, 3 * super::MIN_PARALLEL + 7] {
            let items: Vec<u64> = (0..n as u64).collect();
            let out = super::map(&items, |x| x * x);
            assert_eq!(
                out,
                items.iter().map(|x| x * x).collect::<Vec<_>>(),
                "n = {n}"
            );
        }
    }
}
