//! Times as the hub records them: whole milliseconds, saturating rather than
//! wrapping (a `u128` of milliseconds does not fit a `u64` only after some
//! 584 million years, but a cast would not say so).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `d` in whole milliseconds.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds since the Unix epoch (0 for a clock set before it).
pub fn unix_ms() -> u64 {
    millis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    )
}
