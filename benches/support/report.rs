//! The benchmark's table: each case's samples, their median and spread, and two ratios: to
//! the case's floor (its first row: raw SQLite, the physical limit) and to its peer (the
//! plain diesel + r2d2 code a user would write instead, measured in the same run).

#![allow(dead_code)]

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

pub type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// What a row of a case is to the others.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    /// The case's first row, the others' "vs floor" denominator.
    Floor,
    /// What users write without litedal: the "vs peer" denominator.
    Peer,
    Other,
}

/// One row of the table: a variant of a case and its samples.
pub struct Measurement {
    pub case: String,
    pub variant: String,
    pub unit: &'static str,
    pub samples: Vec<f64>,
    pub role: Role,
}

impl Measurement {
    pub fn median(&self) -> f64 {
        let mut s = self.samples.clone();
        s.sort_by(f64::total_cmp);
        s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
    }

    pub fn min(&self) -> f64 {
        self.samples.iter().copied().fold(f64::INFINITY, f64::min)
    }

    pub fn max(&self) -> f64 {
        self.samples
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
    }

    /// Lower is better (latencies, costs).
    pub fn lower_is_better(&self) -> bool {
        matches!(self.unit, "us" | "ms" | "ns/op")
    }
}

#[derive(Default)]
pub struct Table {
    pub rows: Vec<Measurement>,
}

impl Table {
    /// Adds a row; the first row of a case is its floor.
    pub fn add(
        &mut self,
        case: impl Into<String>,
        variant: impl Into<String>,
        unit: &'static str,
        samples: Vec<f64>,
    ) {
        self.push(case, variant, unit, samples, Role::Other);
    }

    /// Adds the peer row of a case.
    pub fn add_peer(
        &mut self,
        case: impl Into<String>,
        variant: impl Into<String>,
        unit: &'static str,
        samples: Vec<f64>,
    ) {
        self.push(case, variant, unit, samples, Role::Peer);
    }

    fn push(
        &mut self,
        case: impl Into<String>,
        variant: impl Into<String>,
        unit: &'static str,
        samples: Vec<f64>,
        role: Role,
    ) {
        let case = case.into();
        let role = if role == Role::Other && !self.rows.iter().any(|r| r.case == case) {
            Role::Floor
        } else {
            role
        };
        self.rows.push(Measurement {
            case,
            variant: variant.into(),
            unit,
            samples,
            role,
        });
    }

    /// How much of `base`'s performance `row` has (for costs: base / value), so that 1.00
    /// is as good and lower is worse.
    fn ratio(row: &Measurement, base: Option<&Measurement>) -> String {
        let Some(base) = base else {
            return String::new();
        };
        let (b, v) = (base.median(), row.median());
        if !(b > 0.0 && v > 0.0) {
            return "NaN".into();
        }
        let ratio = if row.lower_is_better() { b / v } else { v / b };
        format!("{ratio:.2}")
    }

    /// The rows grouped by case, in the order cases first appeared.
    fn grouped(&self) -> Vec<&Measurement> {
        let mut cases: Vec<&str> = vec![];
        for row in &self.rows {
            if !cases.contains(&row.case.as_str()) {
                cases.push(&row.case);
            }
        }
        cases
            .iter()
            .flat_map(|case| self.rows.iter().filter(move |r| r.case == *case))
            .collect()
    }

    pub fn print(&self) {
        println!();
        println!(
            "| case | variant | median | min-max | unit | vs floor | vs peer |\n\
             |---|---|---:|---:|---|---:|---:|"
        );
        for row in self.grouped() {
            let of_case = |role| {
                self.rows
                    .iter()
                    .find(|r| r.case == row.case && r.role == role)
            };
            let mark = match row.role {
                Role::Floor => " (floor)",
                Role::Peer => " (peer)",
                Role::Other => "",
            };
            println!(
                "| {} | {}{} | {} | {}-{} | {} | {} | {} |",
                row.case,
                row.variant,
                mark,
                fmt(row.median()),
                fmt(row.min()),
                fmt(row.max()),
                row.unit,
                Self::ratio(row, of_case(Role::Floor)),
                Self::ratio(row, of_case(Role::Peer)),
            );
        }
    }
}

pub fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// The `p` quantile (0..=1) of sorted nanoseconds, in microseconds.
pub fn percentile_us(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_ns.len() - 1) as f64 * p).round() as usize;
    sorted_ns[i] as f64 / 1000.0
}

pub fn per_second(n: usize, started: Instant) -> f64 {
    n as f64 / started.elapsed().as_secs_f64()
}

/// A xorshift step: the next pseudo-random id in `1..=n`.
pub fn next_id(state: &mut u64, n: usize) -> i64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state % n as u64) as i64 + 1
}

/// The seed of thread `t`'s id sequence.
pub fn seed(t: usize) -> u64 {
    0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1)
}

/// Runs `threads` threads of `f(thread) -> T` after a common start; returns their results
/// and the wall time in seconds from the common start to the last one's end.
pub fn parallel<T: Send + 'static>(
    threads: usize,
    f: impl Fn(usize) -> BoxResult<T> + Send + Sync + 'static,
) -> BoxResult<(Vec<T>, f64)> {
    let f = Arc::new(f);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (f, barrier) = (f.clone(), barrier.clone());
            thread::spawn(move || -> Result<T, String> {
                barrier.wait();
                f(t).map_err(|e| e.to_string())
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let mut results = Vec::with_capacity(threads);
    for h in handles {
        results.push(h.join().map_err(|_| "thread panicked")??);
    }
    Ok((results, started.elapsed().as_secs_f64()))
}

/// [`parallel`] for threads that each return how many operations they did: ops/s.
pub fn ops_per_second(
    threads: usize,
    f: impl Fn(usize) -> BoxResult<usize> + Send + Sync + 'static,
) -> BoxResult<f64> {
    let (ops, seconds) = parallel(threads, f)?;
    Ok(ops.iter().sum::<usize>() as f64 / seconds)
}
