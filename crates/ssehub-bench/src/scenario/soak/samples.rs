//! A soak's samples: every few seconds, the server's processes (RSS, open
//! files, CPU time) and the run's counts, kept for the trends and written
//! as CSV rows as they come (so a run cut short still leaves them).

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

use super::trend::Trend;
use crate::proc_stats::{process, Process};
use crate::publisher::Sent;
use crate::wire::Report;

/// The samples of a run.
pub(super) struct Samples {
    pids: Vec<u32>,
    csv: Option<std::io::BufWriter<std::fs::File>>,
    /// Seconds since publishing started, and each process then.
    rows: Vec<(f64, Vec<Process>)>,
}

/// The CSV columns before the per-process ones.
const COLUMNS: &str = "unix_s,elapsed_s,published,publish_errors,given_up,\
stable_received,stable_gaps,stable_dups,stable_failed,\
churn_opened,churn_closed,churn_failed,churn_received,churn_gaps,churn_dups";

impl Samples {
    /// Samples of processes `pids`, written to `csv` when given.
    pub(super) fn new(pids: &[u32], csv: Option<&Path>) -> anyhow::Result<Samples> {
        let csv = match csv {
            Some(path) => {
                let file = std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?;
                let mut csv = std::io::BufWriter::new(file);
                write!(csv, "{COLUMNS}")?;
                for node in 1..=pids.len() {
                    write!(csv, ",node{node}_rss_kib,node{node}_fds,node{node}_cpu_s")?;
                }
                writeln!(csv)?;
                csv.flush()?;
                Some(csv)
            }
            None => None,
        };
        Ok(Samples {
            pids: pids.to_vec(),
            csv,
            rows: Vec::new(),
        })
    }

    /// Samples the processes now, `elapsed` seconds into the run, with the
    /// counts so far; returns the processes' sample.
    pub(super) fn take(
        &mut self,
        elapsed: f64,
        sent: &Sent,
        totals: &Report,
    ) -> anyhow::Result<&[Process]> {
        let procs: Vec<Process> = self.pids.iter().map(|&pid| process(pid)).collect();
        if let Some(csv) = &mut self.csv {
            let unix = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            let c = &totals.churn;
            write!(
                csv,
                "{unix:.3},{elapsed:.3},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                sent.published(),
                sent.errors,
                sent.given_up,
                totals.received,
                totals.gaps,
                totals.dups,
                totals.failed,
                c.opened,
                c.closed,
                c.failed,
                c.received,
                c.gaps,
                c.dups
            )?;
            for p in &procs {
                write!(csv, ",{},{},{:.2}", p.rss_kib, p.fds, p.cpu_s)?;
            }
            writeln!(csv)?;
            csv.flush()?;
        }
        self.rows.push((elapsed, procs));
        Ok(&self.rows.last().expect("just pushed").1)
    }

    /// The trends of RSS (KiB) and open files of process `node` (an index
    /// into the pids), or of their sums without one, fitted from `from`
    /// seconds on.
    pub(super) fn trends(&self, node: Option<usize>, from: f64) -> (Option<Trend>, Option<Trend>) {
        let series = |field: fn(&Process) -> u64| -> Vec<(f64, f64)> {
            self.rows
                .iter()
                .map(|(t, procs)| {
                    let v: u64 = match node {
                        Some(i) => procs.get(i).map_or(0, field),
                        None => procs.iter().map(field).sum(),
                    };
                    (*t, v as f64)
                })
                .collect()
        };
        (
            Trend::of(&series(|p| p.rss_kib), from),
            Trend::of(&series(|p| p.fds), from),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_row_per_sample_and_fits_trends_per_process_and_summed() {
        let path = std::env::temp_dir().join(format!("soak-samples-{}.csv", std::process::id()));
        let me = std::process::id();
        let mut samples = Samples::new(&[me, me], Some(&path)).unwrap();
        let sent = Sent {
            errors: 2,
            given_up: 0,
            per_topic: vec![3, 4],
        };
        let totals = Report {
            received: 70,
            ..Report::default()
        };
        for t in [0.0, 30.0, 60.0] {
            let procs = samples.take(t, &sent, &totals).unwrap();
            assert_eq!(procs.len(), 2);
            assert!(procs[0].rss_kib > 0);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("unix_s,elapsed_s,published,"));
        assert!(lines[0].ends_with(",node2_rss_kib,node2_fds,node2_cpu_s"));
        let row: Vec<&str> = lines[2].split(',').collect();
        assert_eq!(row.len(), lines[0].split(',').count());
        assert_eq!(&row[1..6], ["30.000", "7", "2", "0", "70"]);
        let (rss, fds) = samples.trends(Some(1), 30.0);
        let (rss, fds) = (rss.unwrap(), fds.unwrap());
        assert!(rss.start > 0.0 && fds.start > 0.0);
        assert!(rss.slope_per_min.is_some(), "two samples in the window");
        let (sum, _) = samples.trends(None, 0.0);
        assert!(
            sum.unwrap().start >= 2.0 * rss.start - 1024.0,
            "both processes count"
        );
        assert!(
            samples.trends(Some(2), 0.0).0.unwrap().end == 0.0,
            "no third process"
        );
    }
}
