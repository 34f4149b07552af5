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

/// Samples processes `pids` (the nodes of one server), summing their RSS
/// and CPU time; zeros when none is given, and a process gone counts zero.
pub(crate) fn sample(pids: &[u32]) -> Sample {
    if pids.is_empty() {
        return Sample::default();
    }
    let (rss_kib, cpu_s) = pids
        .iter()
        .map(|&pid| process(pid))
        .fold((0, 0.0), |(rss, cpu), (r, c)| (rss + r, cpu + c));
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

/// RSS (KiB) and user plus system CPU time (s) of process `pid`.
fn process(pid: u32) -> (u64, f64) {
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
    (rss_kib, (ticks(11) + ticks(12)) as f64 / TICKS)
}
