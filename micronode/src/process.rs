//! The node's measure of its own process for `/metrics`: the `process_*` series of
//! Prometheus' client conventions (resident memory, CPU seconds, open and maximum file
//! descriptors, start time), read from `/proc/self` when `/metrics` is rendered.
//!
//! Core stays pure: it renders what this [`ProcessProbe`] hands it and reads no file itself.
//! Where `/proc` is missing (not Linux) the probe answers `None` and the series are absent.
//! It does not measure threads, children or anything outside this process.

use std::path::Path;

use rewarder_core::service::{ProcessProbe, ProcessStats};

/// Clock ticks per second of the CPU times in `/proc/self/stat`: `USER_HZ`, fixed at 100 by
/// the Linux user ABI on every architecture (Prometheus' own `procfs` assumes the same).
const USER_HZ: f64 = 100.0;

/// Reads `/proc/self` on every sample.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSelf;

impl ProcessProbe for ProcSelf {
    fn sample(&self) -> Option<ProcessStats> {
        sample_from(Path::new("/proc"))
    }
}

/// One sample from a `/proc`-shaped directory (tests pass a fake one).
pub fn sample_from(proc_dir: &Path) -> Option<ProcessStats> {
    let me = proc_dir.join("self");
    let stat = std::fs::read_to_string(me.join("stat")).ok()?;
    let (cpu_ticks, start_ticks) = parse_stat(&stat)?;
    let status = std::fs::read_to_string(me.join("status")).ok()?;
    let limits = std::fs::read_to_string(me.join("limits")).ok()?;
    let boot_time = std::fs::read_to_string(proc_dir.join("stat")).ok().and_then(|s| parse_boot_time(&s));
    let open_fds = std::fs::read_dir(me.join("fd")).ok()?.count() as u64;
    Some(ProcessStats {
        resident_memory_bytes: parse_vm_rss_bytes(&status)?,
        cpu_seconds: cpu_ticks as f64 / USER_HZ,
        open_fds,
        max_fds: parse_max_open_files(&limits)?,
        start_time_seconds: boot_time.map_or(0.0, |b| b as f64 + start_ticks as f64 / USER_HZ),
    })
}

/// `utime + stime` and `starttime` (ticks) from `/proc/self/stat`. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_stat(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (state): utime is field 14, stime 15, starttime 22.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some((field(14)? + field(15)?, field(22)?))
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn parse_vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line["VmRSS:".len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// The soft limit of `Max open files` in `/proc/self/limits` (`unlimited` as `u64::MAX`).
fn parse_max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    match line["Max open files".len()..].split_whitespace().next()? {
        "unlimited" => Some(u64::MAX),
        soft => soft.parse().ok(),
    }
}

/// `btime` of `/proc/stat`: when the system booted, in Unix seconds.
fn parse_boot_time(stat: &str) -> Option<u64> {
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 \
                    3 0 123456 1000 200 18446744073709551615";
        assert_eq!(parse_stat(stat), Some((300, 123_456)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn status_limits_and_boot_time_parse() {
        assert_eq!(parse_vm_rss_bytes("Name:\tx\nVmRSS:\t    4828 kB\n"), Some(4828 * 1024));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_open_files(limits), Some(1024));
        assert_eq!(parse_max_open_files("Max open files  unlimited unlimited files"), Some(u64::MAX));
        assert_eq!(parse_boot_time("cpu 1 2 3\nbtime 1764000000\n"), Some(1_764_000_000));
    }

    #[test]
    fn this_process_is_measured_on_linux() {
        if !Path::new("/proc/self/stat").exists() {
            return;
        }
        let s = ProcSelf.sample().expect("a sample on Linux");
        assert!(s.resident_memory_bytes > 0);
        assert!(s.open_fds >= 3 && s.open_fds < s.max_fds, "{s:?}");
        assert!(s.start_time_seconds > 1.0e9, "{s:?}");
    }
}
