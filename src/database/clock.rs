//! The clock of litedal's statistics: a checkout's held time and each statement's duration.
//!
//! A point read is timed with four clock readings. `std::time::Instant::now` is a vDSO
//! `clock_gettime`, about 25 ns each on the benchmark machine: 2.5 % of a point read. This
//! clock reads the CPU's time-stamp counter instead where it is invariant (quanta, calibrated
//! once per process against the OS's monotonic clock, in about a millisecond) and falls back
//! to the OS clock elsewhere: point reads with statistics went from 0.98 to 1.00-1.01 of plain
//! diesel + r2d2 (PERFORMANCE.md).

use std::sync::OnceLock;
use std::time::Duration;

static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();

fn clock() -> &'static quanta::Clock {
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Calibrates the clock now (at open), rather than in the first timed read.
pub(crate) fn calibrate() {
    clock();
}

/// One reading of the statistics clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tick(u64);

impl Tick {
    /// The clock now.
    #[inline]
    pub(crate) fn now() -> Tick {
        Tick(clock().raw())
    }

    /// The time since this reading (zero if the clock read earlier, which an invariant
    /// counter does not do).
    #[inline]
    pub(crate) fn elapsed(self) -> Duration {
        let clock = clock();
        clock.delta(self.0, clock.raw())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_measures_a_sleep_in_real_time() {
        let start = Tick::now();
        std::thread::sleep(Duration::from_millis(20));
        let elapsed = start.elapsed();
        // The sleep's own lower bound, less what a calibrated counter may be off by; the upper
        // one only catches a clock scaled wrongly by an order of magnitude, not a slow machine.
        assert!(elapsed >= Duration::from_millis(19), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
        let later = Tick::now();
        assert!(later.elapsed() <= start.elapsed());
    }
}
