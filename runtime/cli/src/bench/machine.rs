//! The machine a run measured, as the OS tells it: CPU model, cores, memory, kernel, and
//! the transparent huge pages mode (task memories request huge pages).

use serde::Serialize;

/// The description of the machine that heads the output.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// The CPU model (`model name` of `/proc/cpuinfo`), when the OS tells it.
    pub cpu: Option<String>,
    /// The cores this process may use.
    pub cores: usize,
    /// The memory (`MemTotal` of `/proc/meminfo`), in bytes.
    pub memory_bytes: Option<u64>,
    /// The operating system, as Rust names it (`linux`).
    pub os: &'static str,
    /// The architecture (`x86_64`, `aarch64`).
    pub arch: &'static str,
    /// The kernel release (`/proc/sys/kernel/osrelease`).
    pub kernel: Option<String>,
    /// The transparent huge pages mode (`always`, `madvise`, `never`).
    pub transparent_huge_pages: Option<String>,
}

impl Machine {
    /// Describes this machine; what the OS does not tell is left out.
    pub fn describe() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        Machine {
            cpu: read("/proc/cpuinfo").and_then(|text| cpu_model(&text)),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: read("/proc/meminfo").and_then(|text| mem_total(&text)),
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            kernel: read("/proc/sys/kernel/osrelease").map(|text| text.trim().to_owned()),
            transparent_huge_pages: read("/sys/kernel/mm/transparent_hugepage/enabled")
                .and_then(|text| thp_mode(&text)),
        }
    }

    /// One line: `AMD EPYC, 2 cores, 23.5 GiB RAM, linux 6.18.4 x86_64, transparent huge
    /// pages: madvise`.
    pub fn line(&self) -> String {
        let mut parts = vec![
            self.cpu.clone().unwrap_or_else(|| "unknown CPU".to_owned()),
            format!(
                "{} core{}",
                self.cores,
                if self.cores == 1 { "" } else { "s" }
            ),
        ];
        if let Some(bytes) = self.memory_bytes {
            parts.push(format!("{:.1} GiB RAM", bytes as f64 / f64::from(1 << 30)));
        }
        let kernel = self.kernel.as_deref().unwrap_or("");
        parts.push(
            format!("{} {kernel} {}", self.os, self.arch)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        );
        if let Some(thp) = &self.transparent_huge_pages {
            parts.push(format!("transparent huge pages: {thp}"));
        }
        parts.join(", ")
    }
}

/// The first `model name` of `/proc/cpuinfo` (or, on CPUs that have none, `Hardware` or
/// `cpu` as some architectures print it).
fn cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Hardware", "cpu model", "cpu"]
        .iter()
        .find_map(|key| {
            cpuinfo.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                (name.trim() == *key && !value.trim().is_empty()).then(|| value.trim().to_owned())
            })
        })
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line["MemTotal:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// The selected mode of `/sys/kernel/mm/transparent_hugepage/enabled`: the bracketed word
/// of `always [madvise] never`.
fn thp_mode(text: &str) -> Option<String> {
    let start = text.find('[')? + 1;
    let end = start + text[start..].find(']')?;
    Some(text[start..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_os_files_parse() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("AMD EPYC"));
        assert_eq!(
            cpu_model("processor : 0\nHardware : BCM2835\n").as_deref(),
            Some("BCM2835")
        );
        assert_eq!(cpu_model("processor : 0\n"), None);
        assert_eq!(
            mem_total("MemTotal:       24684092 kB\nMemFree: 1 kB\n"),
            Some(24684092 * 1024)
        );
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(
            thp_mode("always [madvise] never\n").as_deref(),
            Some("madvise")
        );
        assert_eq!(
            thp_mode("[always] madvise never").as_deref(),
            Some("always")
        );
        assert_eq!(thp_mode("always madvise never"), None);
    }

    #[test]
    fn the_line_names_what_is_known() {
        let machine = Machine {
            cpu: None,
            cores: 1,
            memory_bytes: Some(3 << 29),
            os: "linux",
            arch: "x86_64",
            kernel: Some("6.18.4".to_owned()),
            transparent_huge_pages: Some("never".to_owned()),
        };
        assert_eq!(
            machine.line(),
            "unknown CPU, 1 core, 1.5 GiB RAM, linux 6.18.4 x86_64, transparent huge pages: never"
        );
    }
}
