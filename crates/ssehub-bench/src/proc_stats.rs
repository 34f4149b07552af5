//! What the server costs, read from `/proc`.

/// Clock ticks per second of `/proc/PID/stat` times (Linux: 100).
const TICKS: f64 = 100.0;

/// One sample of the server's processes and the kernel's socket memory.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(crate) struct Sample {
    /// Resident set size, KiB (summed over the processes).
    pub(crate) rss_kib: u64,
    /// User plus system CPU time, seconds (summed over the processes).
    pub(crate) cpu_s: f64,
    /// Kernel TCP buffer memory, KiB (`/proc/net/sockstat`, all sockets).
    pub(crate) tcp_mem_kib: u64,
}

/// One sample of one process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Process {
    /// Resident set size, KiB.
    pub(crate) rss_kib: u64,
    /// User plus system CPU time, seconds.
    pub(crate) cpu_s: f64,
    /// Open files (`/proc/PID/fd`).
    pub(crate) fds: u64,
}

/// Samples processes `pids` (the nodes of one server), summing their RSS
/// and CPU time; zeros when none is given, and a process gone counts zero.
pub(crate) fn sample(pids: &[u32]) -> Sample {
    if pids.is_empty() {
        return Sample::default();
    }
    let (rss_kib, cpu_s) = pids
        .iter()
        .map(|&pid| process(pid))
        .fold((0, 0.0), |(rss, cpu), p| (rss + p.rss_kib, cpu + p.cpu_s));
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let pages: u64 = sockstat
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .and_then(|l| {
            l.split_whitespace()
                .skip_while(|w| *w != "mem")
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    Sample {
        rss_kib,
        cpu_s,
        tcp_mem_kib: pages * 4,
    }
}

/// RSS, CPU time and open files of process `pid` (zeros once it is gone).
pub(crate) fn process(pid: u32) -> Process {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    Process {
        rss_kib,
        cpu_s: (ticks(11) + ticks(12)) as f64 / TICKS,
        fds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process_and_none_for_a_missing_one() {
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let me = process(std::process::id());
        assert!(me.rss_kib > 0 && me.fds >= 1, "{me:?}");
        drop(file);
        assert_eq!(process(u32::MAX), Process::default());
    }
}
