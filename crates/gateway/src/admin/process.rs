//! Process and build metrics for `/metrics`, in the names Prometheus's own
//! clients use (`process_*`), read from `/proc/self` on Linux; elsewhere
//! the process series are left out rather than reported as zero.

use std::fmt::Write;
use std::sync::OnceLock;

/// Version and commit of the running binary, set once at start by the
/// binary (its build script knows the commit).
static BUILD: OnceLock<(String, String)> = OnceLock::new();

/// Records the binary's version and commit for `portcullis_build_info`.
pub fn set_build_info(version: &str, commit: &str) {
    let _ = BUILD.set((version.to_owned(), commit.to_owned()));
}

/// `/proc` reports CPU times in clock ticks of `USER_HZ`, which Linux fixes
/// at 100 for every architecture it exposes `/proc` on.
const USER_HZ: f64 = 100.0;

/// The `portcullis_build_info` and `process_*` series.
pub fn prometheus() -> String {
    let (version, commit) = BUILD
        .get()
        .cloned()
        .unwrap_or_else(|| (env!("CARGO_PKG_VERSION").to_owned(), "unknown".to_owned()));
    let mut out = format!(
        "# HELP portcullis_build_info The running build: version and commit.\n# TYPE portcullis_build_info gauge\nportcullis_build_info{{version=\"{}\",commit=\"{}\"}} 1\n",
        version.replace('"', ""),
        commit.replace('"', "")
    );
    for (name, kind, help, value) in readings() {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    out
}

type Reading = (&'static str, &'static str, &'static str, f64);

fn readings() -> Vec<Reading> {
    let mut r = Vec::new();
    if let Some((cpu, start)) = stat() {
        r.push((
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
            cpu,
        ));
        r.push((
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
            start,
        ));
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map(|k| k * 1024.0)
    };
    if let Some(rss) = kib("VmRSS:") {
        r.push((
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size, in bytes.",
            rss,
        ));
    }
    if let Some(vm) = kib("VmSize:") {
        r.push((
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size, in bytes.",
            vm,
        ));
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        r.push((
            "process_open_fds",
            "gauge",
            "Open file descriptors (sockets included).",
            fds.count() as f64,
        ));
    }
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    if let Some(max) = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
    {
        r.push((
            "process_max_fds",
            "gauge",
            "Limit on open file descriptors.",
            max,
        ));
    }
    r
}

/// CPU seconds and start time (Unix seconds) from `/proc/self/stat` and
/// the boot time in `/proc/stat`.
fn stat() -> Option<(f64, f64)> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces and parentheses: fields start after the last `)`.
    let fields: Vec<&str> = text.get(text.rfind(')')? + 2..)?.split(' ').collect();
    // Counted from field 3 (`state`): utime is field 14, stime 15, starttime 22.
    let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    let cpu = (field(14)? + field(15)?) / USER_HZ;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse::<f64>()
        .ok()?;
    Some((cpu, boot + field(22)? / USER_HZ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn process_series_are_read_from_proc() {
        let text = super::prometheus();
        assert!(text.contains("portcullis_build_info{version=\""), "{text}");
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            let value: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing: {text}"))
                .parse()
                .unwrap();
            // CPU time is counted in 10 ms ticks: a young test process may have none.
            let floor = if name == "process_cpu_seconds_total" {
                0.0
            } else {
                1.0
            };
            assert!(value >= floor, "{name} = {value}");
        }
    }
}
