//! The process's own figures, read from Linux's `/proc` at each scrape:
//! CPU time, memory, open files, start time.

use std::sync::OnceLock;

/// What `/proc` says about this process.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory, in bytes.
    pub resident_bytes: u64,
    /// Virtual memory, in bytes.
    pub virtual_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit on open file descriptors, if limited.
    pub max_fds: Option<u64>,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

/// This process's figures; `None` where `/proc` cannot be read (not Linux).
pub fn read() -> Option<Stats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let units = units();
    let mut stats = parse_stat(&stat, units)?;
    stats.start_time_seconds += boot_time(&boot)?;
    // The directory's own descriptor, open while it was listed, is not counted.
    stats.open_fds = u64::try_from(open_fds.saturating_sub(1)).unwrap_or(u64::MAX);
    stats.max_fds = max_open_files(&limits);
    Some(stats)
}

/// The kernel's units: clock ticks per second and page size.
#[derive(Debug, Clone, Copy)]
struct Units {
    ticks: u64,
    page: u64,
}

/// The units the kernel handed this process in its auxiliary vector
/// (`AT_CLKTCK`, `AT_PAGESZ`), read once; Linux's usual 100 and 4096 when
/// it cannot be read.
fn units() -> Units {
    static UNITS: OnceLock<Units> = OnceLock::new();
    *UNITS.get_or_init(|| {
        let auxv = std::fs::read("/proc/self/auxv").unwrap_or_default();
        parse_auxv(&auxv)
    })
}

/// Reads `AT_CLKTCK` (17) and `AT_PAGESZ` (6) from native-endian
/// `(type, value)` word pairs.
fn parse_auxv(auxv: &[u8]) -> Units {
    const AT_PAGESZ: u64 = 6;
    const AT_CLKTCK: u64 = 17;
    let word = std::mem::size_of::<usize>();
    let mut units = Units {
        ticks: 100,
        page: 4096,
    };
    let read = |b: &[u8]| -> u64 {
        let mut bytes = [0u8; 8];
        if cfg!(target_endian = "little") {
            bytes[..word].copy_from_slice(b);
            u64::from_le_bytes(bytes)
        } else {
            bytes[8 - word..].copy_from_slice(b);
            u64::from_be_bytes(bytes)
        }
    };
    for pair in auxv.chunks_exact(2 * word) {
        let (kind, value) = (read(&pair[..word]), read(&pair[word..]));
        match kind {
            AT_CLKTCK if value > 0 => units.ticks = value,
            AT_PAGESZ if value > 0 => units.page = value,
            _ => {}
        }
    }
    units
}

/// CPU time, memory and the start time since boot from `/proc/self/stat`.
fn parse_stat(stat: &str, units: Units) -> Option<Stats> {
    // The command name, in parentheses, may hold spaces and parentheses:
    // the fields that follow start after the last `)`.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    // `fields[0]` is field 3 of proc(5), the state.
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let ticks = units.ticks as f64;
    Some(Stats {
        cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)? * units.page,
        open_fds: 0,
        max_fds: None,
        start_time_seconds: field(22)? as f64 / ticks,
    })
}

/// The boot time (`btime`) from `/proc/stat`, in seconds since the epoch.
fn boot_time(stat: &str) -> Option<f64> {
    let line = stat.lines().find_map(|l| l.strip_prefix("btime "))?;
    line.trim().parse::<u64>().ok().map(|s| s as f64)
}

/// The soft limit of "Max open files" in `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "4242 (ss (hub) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 50 0 0 20 0 3 0 12345 987654321 2000 18446744073709551615";
        let units = Units {
            ticks: 100,
            page: 4096,
        };
        let s = parse_stat(stat, units).unwrap();
        assert!((s.cpu_seconds - 3.0).abs() < 1e-9);
        assert_eq!(s.virtual_bytes, 987_654_321);
        assert_eq!(s.resident_bytes, 2000 * 4096);
        assert!((s.start_time_seconds - 123.45).abs() < 1e-9);
        assert_eq!(boot_time("cpu 1 2 3\nbtime 1700000000\n"), Some(1.7e9));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(
            max_open_files(
                "Max open files            unlimited            unlimited            files"
            ),
            None
        );
    }

    #[test]
    fn auxv_gives_the_units() {
        let word = std::mem::size_of::<usize>();
        let mut auxv = Vec::new();
        for (kind, value) in [(6usize, 16384usize), (17, 250), (0, 0)] {
            auxv.extend_from_slice(&kind.to_ne_bytes()[..word]);
            auxv.extend_from_slice(&value.to_ne_bytes()[..word]);
        }
        let units = parse_auxv(&auxv);
        assert_eq!((units.ticks, units.page), (250, 16384));
        let none = parse_auxv(&[]);
        assert_eq!((none.ticks, none.page), (100, 4096));
    }

    #[test]
    fn reads_this_process() {
        let stats = read().expect("Linux /proc");
        assert!(stats.resident_bytes > 0);
        assert!(stats.open_fds >= 3, "stdin, stdout, stderr at least");
        assert!(stats.start_time_seconds > 1.5e9);
    }
}
