//! Lock-free metric primitives.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

/// A small, fixed set of label values (an enum), so a family of metrics is
/// an array indexed by it.
pub trait Label: Copy + 'static {
    /// The label's name in the exposition.
    const NAME: &'static str;
    /// Every value, in index order.
    const ALL: &'static [Self];
    /// This value as exposed.
    fn value(self) -> &'static str;
    /// Its position in [`Label::ALL`].
    fn index(self) -> usize;
}

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters and histograms touched for every delivery are split into
/// shards, one cache line each, and each thread updates its own: threads
/// delivering at once never contend for a line. Reads sum the shards.
const SHARDS: usize = 16;

/// The shard of the calling thread, assigned round-robin at its first use.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

/// Eight counts on a cache line of their own.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Line([AtomicU64; 8]);

/// Counts kept per shard: slot `i` of shard `s` is
/// `lines[s * per_shard + i / 8].0[i % 8]`.
#[derive(Debug)]
struct Sharded {
    lines: Box<[Line]>,
    per_shard: usize,
}

impl Sharded {
    /// `slots` counts per shard, all zero.
    fn new(slots: usize) -> Sharded {
        let per_shard = slots.div_ceil(8);
        Sharded {
            lines: (0..per_shard * SHARDS).map(|_| Line::default()).collect(),
            per_shard,
        }
    }

    /// The calling thread's shard.
    fn mine(&self) -> Shard<'_> {
        let start = shard() * self.per_shard;
        Shard(&self.lines[start..start + self.per_shard])
    }

    /// The sum over shards of the count at `slot`.
    fn sum(&self, slot: usize) -> u64 {
        (0..SHARDS)
            .map(|s| self.lines[s * self.per_shard + slot / 8].0[slot % 8].load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// One shard's counts.
struct Shard<'a>(&'a [Line]);

impl Shard<'_> {
    /// Adds `n` to the count at `slot`.
    fn add(&self, slot: usize, n: u64) {
        self.0[slot / 8].0[slot % 8].fetch_add(n, Ordering::Relaxed);
    }
}

/// A monotonically increasing count updated on the hot path (every
/// delivery): sharded, so cores counting at once do not contend.
#[derive(Debug)]
pub struct HotCounter(Sharded);

impl Default for HotCounter {
    fn default() -> Self {
        HotCounter(Sharded::new(1))
    }
}

impl HotCounter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.mine().add(0, n);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.sum(0)
    }
}

/// Observations counted into explicit buckets (upper bounds, in seconds).
/// Sharded like [`HotCounter`]: an observation is two relaxed atomic
/// additions on the calling thread's own cache line.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// The bounds in nanoseconds, to place an observation without floats.
    bound_nanos: Box<[u64]>,
    /// Per shard: one count per bound, then the `+Inf` bucket (not
    /// cumulative), then the sum of the observations in nanoseconds.
    counts: Sharded,
}

impl Histogram {
    /// An empty histogram with these bucket upper bounds (ascending).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        let nanos = |b: f64| {
            let d = std::time::Duration::from_secs_f64(b);
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
        };
        Histogram {
            bounds,
            bound_nanos: bounds.iter().map(|b| nanos(*b)).collect(),
            counts: Sharded::new(bounds.len() + 2),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: std::time::Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let bucket = self.bound_nanos.partition_point(|&b| b < nanos);
        let shard = self.counts.mine();
        shard.add(bucket, 1);
        shard.add(self.bounds.len() + 1, nanos);
    }

    /// The bucket bounds.
    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    /// Cumulative counts per bound, then the total count.
    pub fn cumulative(&self) -> Vec<u64> {
        let mut total = 0;
        (0..=self.bounds.len())
            .map(|i| {
                total += self.counts.sum(i);
                total
            })
            .collect()
    }

    /// Sum of the observations, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        let nanos = self.counts.sum(self.bounds.len() + 1);
        std::time::Duration::from_nanos(nanos).as_secs_f64()
    }
}

/// One metric per label value.
#[derive(Debug)]
pub struct Family<L, M> {
    members: Box<[M]>,
    label: PhantomData<L>,
}

impl<L: Label, M: Default> Default for Family<L, M> {
    fn default() -> Self {
        Family::new(|_| M::default())
    }
}

impl<L: Label, M> Family<L, M> {
    /// A family whose member for each label value is `make(value)`.
    pub fn new(make: impl Fn(L) -> M) -> Self {
        Family {
            members: L::ALL.iter().map(|l| make(*l)).collect(),
            label: PhantomData,
        }
    }

    /// The member for `label`.
    pub fn get(&self, label: L) -> &M {
        &self.members[label.index()]
    }

    /// Every label value with its member.
    pub fn iter(&self) -> impl Iterator<Item = (L, &M)> {
        L::ALL.iter().copied().zip(self.members.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sharded_counts_sum_every_thread() {
        let counter = HotCounter::default();
        let h = Histogram::new(&[1.0]);
        std::thread::scope(|scope| {
            for _ in 0..SHARDS + 3 {
                scope.spawn(|| {
                    for _ in 0..100 {
                        counter.add(2);
                        h.observe(Duration::from_millis(10));
                    }
                });
            }
        });
        let n = u64::try_from(SHARDS + 3).unwrap() * 100;
        assert_eq!(counter.get(), 2 * n);
        assert_eq!(h.cumulative(), [n, n]);
        assert!((h.sum_seconds() - 0.01 * n as f64).abs() < 1e-6);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        static BOUNDS: [f64; 3] = [0.001, 0.01, 0.1];
        let h = Histogram::new(&BOUNDS);
        for ms in [0, 1, 5, 50, 500] {
            h.observe(Duration::from_millis(ms));
        }
        assert_eq!(h.cumulative(), [2, 3, 4, 5]);
        assert!((h.sum_seconds() - 0.556).abs() < 1e-9);
    }
}
