//! Figures the benchmarks report.

/// The middle value; of an even count, the mean of the middle two (the
/// better of two rounds would flatter whichever side the noisy machine
/// favoured).
pub fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty(), "a median of no rounds");
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_is_the_middle_or_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![7.0]), 7.0);
    }
}
