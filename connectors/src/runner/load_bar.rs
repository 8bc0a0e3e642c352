//! Progress of the initial load: a bar with rows, rate and ETA on a
//! terminal, and a log line every few seconds for logs.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use tracing::info;

use super::capture::LOAD_LOG_EVERY;
use crate::contract::LoadProgress;

pub(super) struct LoadBar {
    system: String,
    bar: Option<ProgressBar>,
    started: Option<Instant>,
    last_log: Option<Instant>,
    done: bool,
}

impl LoadBar {
    pub(super) fn new(system: &str) -> Self {
        LoadBar {
            system: system.to_string(),
            bar: None,
            started: None,
            last_log: None,
            done: false,
        }
    }

    pub(super) fn update(&mut self, p: LoadProgress) {
        if self.done {
            return;
        }
        let now = Instant::now();
        let started = *self.started.get_or_insert(now);
        let bar = self.bar.get_or_insert_with(|| {
            // Hidden by indicatif when stderr is not a terminal.
            let bar = ProgressBar::new(p.total.unwrap_or(0));
            if let Ok(style) = ProgressStyle::with_template(
                "{msg} [{bar:30}] {human_pos}/{human_len} rows, {per_sec}, ETA {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(format!("initial load of {}", self.system));
            bar
        });
        if let Some(total) = p.total {
            bar.set_length(total.max(p.done));
        }
        bar.set_position(p.done);
        if self.last_log.is_none_or(|t| now - t >= LOAD_LOG_EVERY) {
            self.last_log = Some(now);
            let secs = (now - started).as_secs_f64().max(0.001);
            info!(
                system = %self.system,
                rows = p.done,
                total = ?p.total,
                rows_per_s = (p.done as f64 / secs).round(),
                "initial load"
            );
        }
    }

    pub(super) fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        if let (Some(bar), Some(started)) = (self.bar.take(), self.started) {
            let rows = bar.position();
            bar.finish_and_clear();
            info!(
                system = %self.system,
                rows,
                seconds = started.elapsed().as_secs_f64(),
                "initial load done; streaming changes"
            );
        }
    }
}
