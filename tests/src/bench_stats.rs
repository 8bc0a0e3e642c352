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

/// A line of this process's `/proc/self/status` in KiB (`VmHWM`: peak
/// resident memory, `VmRSS`: resident now), if the system has it.
pub fn proc_status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// This process's peak resident memory in MiB (NaN where unknown).
pub fn peak_rss_mib() -> f64 {
    proc_status_kib("VmHWM").map_or(f64::NAN, |kib| kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_peak_resident_memory() {
        let now = proc_status_kib("VmRSS").expect("Linux has /proc/self/status");
        assert!(peak_rss_mib() * 1024.0 >= now as f64 * 0.99);
        assert_eq!(proc_status_kib("NoSuchLine"), None);
    }

    #[test]
    fn the_median_is_the_middle_or_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![7.0]), 7.0);
    }
}
