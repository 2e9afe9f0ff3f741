//! The standard `process_*` series (as every Prometheus client library exports
//! them), read from Linux's `/proc/self` at each scrape.
//!
//! prometheus-client has no process collector of its own, so this writes the ones
//! dashboards expect: CPU seconds, resident and virtual memory, open and maximum
//! file descriptors, start time, and threads. A file that cannot be read (not
//! Linux) leaves its series out rather than failing the scrape.

use prometheus_client::encoding::DescriptorEncoder;

use super::encode::{counter_f64, levels};

/// What `/proc/self` says now.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Process {
    pub(crate) cpu_seconds: Option<f64>,
    pub(crate) start_time_seconds: Option<f64>,
    pub(crate) resident_bytes: Option<u64>,
    pub(crate) virtual_bytes: Option<u64>,
    pub(crate) threads: Option<u64>,
    pub(crate) open_fds: Option<u64>,
    pub(crate) max_fds: Option<u64>,
}

/// Clock ticks per second, the unit of the times in `/proc/self/stat`.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant; it has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// A `Name:   value kB` line of `/proc/self/status`, in bytes (or as is, without kB).
fn status_field(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    let mut words = line[name.len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    Some(if words.next() == Some("kB") {
        value * 1024
    } else {
        value
    })
}

/// `/proc/self/stat` fields after the command name (which may hold spaces and
/// parentheses, so we split after its last `)`): index 0 is field 3, `state`.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().collect())
}

pub(crate) fn read() -> Process {
    let mut p = Process::default();
    let ticks = ticks_per_second();
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
        && let Some(fields) = stat_fields(&stat)
    {
        // utime and stime are fields 14 and 15; starttime is field 22.
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        if let (Some(user), Some(system)) = (field(14), field(15)) {
            p.cpu_seconds = Some((user + system) / ticks);
        }
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        });
        if let (Some(start), Some(boot)) = (field(22), boot) {
            p.start_time_seconds = Some(boot + start / ticks);
        }
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        p.resident_bytes = status_field(&status, "VmRSS:");
        p.virtual_bytes = status_field(&status, "VmSize:");
        p.threads = status_field(&status, "Threads:");
    }
    p.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    p.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            let line = l.lines().find(|l| l.starts_with("Max open files"))?;
            line["Max open files".len()..]
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        });
    p
}

/// Writes the `process_*` series that could be read.
pub(crate) fn encode(e: &mut DescriptorEncoder) -> std::fmt::Result {
    let p = read();
    if let Some(v) = p.cpu_seconds {
        counter_f64(
            e,
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            v,
        )?;
    }
    let f = |v: Option<u64>| v.map(|v| v as f64);
    #[rustfmt::skip]
    let gauges = [
        ("process_resident_memory_bytes", "Resident memory size in bytes.", f(p.resident_bytes)),
        ("process_virtual_memory_bytes", "Virtual memory size in bytes.", f(p.virtual_bytes)),
        ("process_open_fds", "Number of open file descriptors.", f(p.open_fds)),
        ("process_max_fds", "Maximum number of open file descriptors.", f(p.max_fds)),
        ("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", p.start_time_seconds),
        ("process_threads", "Number of OS threads in the process.", f(p.threads)),
    ];
    levels(e, &gauges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let p = read();
        assert!(p.resident_bytes.is_some_and(|b| b > 1024 * 1024));
        assert!(p.open_fds.is_some_and(|n| n >= 3));
        assert!(p.max_fds.is_some_and(|n| n >= 3));
        assert!(p.cpu_seconds.is_some());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = p.start_time_seconds.unwrap();
        assert!(start <= now + 1.0 && start > now - 86_400.0 * 365.0);
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_fields() {
        let stat = "42 (we ird) x) S 1 2 3";
        assert_eq!(stat_fields(stat).unwrap(), vec!["S", "1", "2", "3"]);
    }
}
