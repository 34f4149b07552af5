//! Whether a sampled quantity grows: its least-squares slope over a window.

use serde::Serialize;

/// Least-squares slope of the points (x, y): dy/dx, or `None` without two
/// distinct x.
pub(super) fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (sxy, sxx) = points.iter().fold((0.0, 0.0), |(sxy, sxx), (x, y)| {
        (sxy + (x - mx) * (y - my), sxx + (x - mx) * (x - mx))
    });
    (sxx > 0.0).then(|| sxy / sxx)
}

/// How a quantity sampled over a run moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Trend {
    /// The first sample.
    pub(super) start: f64,
    /// The first sample of the window.
    pub(super) window_start: f64,
    /// The last sample.
    pub(super) end: f64,
    /// The largest sample.
    pub(super) max: f64,
    /// Least-squares slope per minute over the window (`None` with fewer
    /// than two samples in it).
    pub(super) slope_per_min: Option<f64>,
}

impl Trend {
    /// The trend of `samples` (seconds, value), the window being the
    /// samples from `from` seconds on; `None` without samples.
    pub(super) fn of(samples: &[(f64, f64)], from: f64) -> Option<Trend> {
        let (first, last) = (samples.first()?, samples.last()?);
        let window: Vec<(f64, f64)> = samples
            .iter()
            .filter(|(t, _)| *t >= from)
            .map(|&(t, v)| (t / 60.0, v))
            .collect();
        Some(Trend {
            start: first.1,
            window_start: window.first().map_or(last.1, |p| p.1),
            end: last.1,
            max: samples.iter().map(|p| p.1).fold(f64::MIN, f64::max),
            slope_per_min: slope(&window),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_and_of_noise_around_it() {
        let line: Vec<_> = (0..10)
            .map(|x| (f64::from(x), 3.0 * f64::from(x) + 7.0))
            .collect();
        assert!((slope(&line).unwrap() - 3.0).abs() < 1e-9);
        let flat_noise = [(0.0, 5.0), (1.0, 7.0), (2.0, 5.0), (3.0, 7.0)];
        assert!((slope(&flat_noise).unwrap() - 0.4).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 2.0)]), None);
        assert_eq!(slope(&[(1.0, 2.0), (1.0, 3.0)]), None);
        assert_eq!(slope(&[]), None);
    }

    #[test]
    fn trend_fits_the_window_only_per_minute() {
        // Warm-up climbs, then flat at 100 from 600 s on, sampled every 60 s.
        let samples: Vec<_> = (0..=20)
            .map(|i| {
                let t = f64::from(i) * 60.0;
                (t, if t < 600.0 { t / 6.0 } else { 100.0 })
            })
            .collect();
        let trend = Trend::of(&samples, 600.0).unwrap();
        assert_eq!(trend.start, 0.0);
        assert_eq!(trend.window_start, 100.0);
        assert_eq!(trend.end, 100.0);
        assert_eq!(trend.max, 100.0);
        assert_eq!(trend.slope_per_min, Some(0.0));
        let climbing: Vec<_> = samples.iter().map(|&(t, _)| (t, 2.0 * t)).collect();
        let per_min = Trend::of(&climbing, 0.0).unwrap().slope_per_min.unwrap();
        assert!(
            (per_min - 120.0).abs() < 1e-9,
            "2 per second is 120 per minute, not {per_min}"
        );
        assert_eq!(Trend::of(&[], 0.0), None);
    }
}
