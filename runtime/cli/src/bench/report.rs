//! The run's report: a Markdown table (for a terminal, and to paste into an issue), JSON,
//! and CSV, all from the same rows.

use serde::Serialize;

use super::Plan;
use super::cases::{Case, CopyMode, Door, Measurement, Outcome};
use super::machine::Machine;
use super::measure::{MIN_SAMPLES, Stats};

/// How the run was made: when, which build, how long per case.
#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    /// The start of the report, UTC, ISO 8601 (`2026-11-27T16:05:04Z`).
    pub date: String,
    /// The version of the `wasmach` command.
    pub version: &'static str,
    /// `release` or `debug` (a debug build's figures are not representative).
    pub build: &'static str,
    /// The measuring time per case, in milliseconds.
    pub time_per_case_ms: f64,
    /// The samples a case takes at least.
    pub min_samples: usize,
    /// The copy modes measured (`--copy`).
    pub copy_modes: Vec<CopyMode>,
    /// Whether a mode measured could share pages: false when only `physical` was asked, or
    /// when the kernel lacks what virtual copies need (then every copy was physical).
    pub virtual_copies: bool,
}

/// Everything a run measured, with the machine and the run's settings.
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// The run.
    pub run: RunInfo,
    /// Every job's measurement, size by size in the order measured.
    pub measurements: Vec<Measurement>,
}

/// One measurement as printed: the JSON's objects and the CSV's rows.
#[derive(Debug, Serialize)]
pub struct Row {
    /// The transfer size in pages.
    pub pages: u32,
    /// The transfer size in bytes.
    pub bytes: u64,
    /// The case's name (the criterion bench's).
    pub case: &'static str,
    /// Who makes the copy.
    pub door: Door,
    /// The copy mode of a wasmach case; `null` for a baseline.
    pub copy_mode: Option<CopyMode>,
    /// Calls per sample.
    pub calls_per_sample: u32,
    /// `ok`, `skipped` or `failed`.
    pub status: &'static str,
    /// Why a case was skipped or failed.
    pub message: Option<String>,
    /// Samples taken.
    pub samples: Option<usize>,
    /// The median time per call, in nanoseconds.
    pub median_ns: Option<f64>,
    /// The first quartile, in nanoseconds per call.
    pub p25_ns: Option<f64>,
    /// The third quartile, in nanoseconds per call.
    pub p75_ns: Option<f64>,
    /// The fastest sample, in nanoseconds per call.
    pub min_ns: Option<f64>,
    /// The slowest sample, in nanoseconds per call.
    pub max_ns: Option<f64>,
    /// Half the interquartile range, in percent of the median.
    pub spread_pct: Option<f64>,
    /// Throughput at the median, in GiB/s.
    pub gib_per_s: Option<f64>,
    /// The memcpy baseline's median time over this one's (above 1: faster than memcpy).
    pub x_memcpy: Option<f64>,
}

/// The CSV's header, the fields of [`Row`] in order.
const CSV_HEADER: &str = "pages,bytes,case,door,copy_mode,calls_per_sample,status,samples,\
median_ns,p25_ns,p75_ns,min_ns,max_ns,spread_pct,gib_per_s,x_memcpy,message";

impl Report {
    /// The report of a run.
    pub fn new(
        machine: Machine,
        plan: &Plan,
        virtual_copies: bool,
        measurements: Vec<Measurement>,
    ) -> Report {
        Report {
            machine,
            run: RunInfo {
                date: utc_now(),
                version: env!("CARGO_PKG_VERSION"),
                build: if cfg!(debug_assertions) {
                    "debug"
                } else {
                    "release"
                },
                time_per_case_ms: plan.time.as_secs_f64() * 1e3,
                min_samples: MIN_SAMPLES,
                copy_modes: plan.copies.clone(),
                virtual_copies,
            },
            measurements,
        }
    }

    /// The memcpy baseline's median at `pages`, if it was measured.
    fn memcpy(&self, pages: u32) -> Option<f64> {
        self.measurements.iter().find_map(|m| match &m.outcome {
            Outcome::Measured(stats) if m.job.case == Case::Memcpy && m.job.size.pages == pages => {
                Some(stats.median)
            }
            _ => None,
        })
    }

    /// Every measurement as a row.
    pub fn rows(&self) -> Vec<Row> {
        self.measurements
            .iter()
            .map(|m| {
                let job = &m.job;
                let bytes = job.size.bytes();
                let (status, message, stats) = match &m.outcome {
                    Outcome::Measured(stats) => ("ok", None, Some(stats)),
                    Outcome::Skipped(why) => ("skipped", Some(why.clone()), None),
                    Outcome::Failed(why) => ("failed", Some(why.clone()), None),
                };
                let ns = |f: fn(&Stats) -> f64| stats.map(|s| f(s) * 1e9);
                Row {
                    pages: job.size.pages,
                    bytes,
                    case: job.case.name(),
                    door: job.case.door(),
                    copy_mode: job.mode,
                    calls_per_sample: job.size.calls,
                    status,
                    message,
                    samples: stats.map(|s| s.samples),
                    median_ns: ns(|s| s.median),
                    p25_ns: ns(|s| s.p25),
                    p75_ns: ns(|s| s.p75),
                    min_ns: ns(|s| s.min),
                    max_ns: ns(|s| s.max),
                    spread_pct: stats.map(|s| s.spread() * 100.0),
                    gib_per_s: stats
                        .filter(|s| s.median > 0.0)
                        .map(|s| bytes as f64 / s.median / f64::from(1 << 30)),
                    x_memcpy: stats
                        .filter(|s| s.median > 0.0)
                        .and_then(|s| Some(self.memcpy(job.size.pages)? / s.median)),
                }
            })
            .collect()
    }

    /// The Markdown report: the machine and the run, then one table (size × case), then
    /// the notes of skipped and failed cases.
    pub fn table(&self) -> String {
        let mut out = String::from("## wasmach bench: copies between two tasks\n\n");
        out.push_str(&format!("- machine: {}\n", self.machine.line()));
        let build = if self.run.build == "debug" {
            "debug build: not representative, use --release"
        } else {
            "release build"
        };
        let modes: Vec<&str> = self.run.copy_modes.iter().map(|m| m.name()).collect();
        let sharing = match (self.run.virtual_copies, &self.run.copy_modes[..]) {
            (_, [CopyMode::Physical]) => "",
            (true, _) => " (virtual copies available)",
            (false, _) => " (virtual copies unavailable here: every copy physical)",
        };
        out.push_str(&format!(
            "- run: {}, wasmach {} ({build}), copies: {}{sharing}, {} per case; time per call \
             is the median of the samples (at least {}), ± half their interquartile range\n\n",
            self.run.date.replace('T', " ").replace('Z', " UTC"),
            self.run.version,
            modes.join(", "),
            human_time(self.run.time_per_case_ms / 1e3),
            self.run.min_samples
        ));
        let several_modes = self.run.copy_modes.len() > 1;
        let mut header = vec!["size", "case"];
        if several_modes {
            header.push("copies");
        }
        header.extend(["time", "±", "GiB/s", "× memcpy", "samples", "calls"]);
        let mut lines: Vec<Vec<String>> = Vec::new();
        let mut notes = Vec::new();
        for (m, row) in self.measurements.iter().zip(self.rows()) {
            let mut line = vec![size_label(row.pages), row.case.to_owned()];
            if several_modes {
                line.push(row.copy_mode.map_or("", |c| c.name()).to_owned());
            }
            match (&m.outcome, row.median_ns) {
                (Outcome::Measured(_), Some(median)) => line.extend([
                    human_time(median / 1e9),
                    format!("{:.1}%", row.spread_pct.unwrap_or(0.0)),
                    row.gib_per_s.map_or("—".to_owned(), |g| format!("{g:.2}")),
                    row.x_memcpy.map_or("—".to_owned(), |x| format!("{x:.2}")),
                    row.samples.unwrap_or(0).to_string(),
                    row.calls_per_sample.to_string(),
                ]),
                _ => {
                    line.push(row.status.to_owned());
                    line.extend(["—"; 4].map(str::to_owned));
                    line.push(row.calls_per_sample.to_string());
                    notes.push(format!(
                        "- {} at {}: {}: {}",
                        m.job.label(),
                        size_label(row.pages),
                        row.status,
                        row.message.as_deref().unwrap_or("")
                    ));
                }
            }
            lines.push(line);
        }
        // Column widths, in characters, so that the raw text lines up as well.
        let widths: Vec<usize> = (0..header.len())
            .map(|c| {
                lines
                    .iter()
                    .map(|l| l[c].chars().count())
                    .chain([header[c].chars().count(), 3])
                    .max()
                    .unwrap_or(3)
            })
            .collect();
        // The figures (from `time` on) are right-aligned.
        let first_right = header.len() - 6;
        let cell = |c: usize, text: &str| {
            let pad = " ".repeat(widths[c] - text.chars().count());
            if c >= first_right {
                format!(" {pad}{text} |")
            } else {
                format!(" {text}{pad} |")
            }
        };
        out.push('|');
        for (c, h) in header.iter().enumerate() {
            out.push_str(&cell(c, h));
        }
        out.push_str("\n|");
        for (c, w) in widths.iter().enumerate() {
            let dashes = "-".repeat(*w);
            if c >= first_right {
                out.push_str(&format!(" {}: |", &dashes[1..]));
            } else {
                out.push_str(&format!(" {dashes} |"));
            }
        }
        out.push('\n');
        for line in &lines {
            out.push('|');
            for (c, text) in line.iter().enumerate() {
                out.push_str(&cell(c, text));
            }
            out.push('\n');
        }
        if !notes.is_empty() {
            out.push_str("\nNotes:\n\n");
            for note in notes {
                out.push_str(&note);
                out.push('\n');
            }
        }
        out
    }

    /// The report as JSON: `{"machine": {..}, "run": {..}, "results": [row, ..]}`.
    pub fn json(&self) -> serde_json::Result<String> {
        #[derive(Serialize)]
        struct Json<'a> {
            machine: &'a Machine,
            run: &'a RunInfo,
            results: Vec<Row>,
        }
        serde_json::to_string_pretty(&Json {
            machine: &self.machine,
            run: &self.run,
            results: self.rows(),
        })
    }

    /// The rows as CSV, with a header line; numbers in full precision, empty when unknown.
    pub fn csv(&self) -> String {
        let mut out = format!("{CSV_HEADER}\n");
        let number = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
        for row in self.rows() {
            let fields = [
                row.pages.to_string(),
                row.bytes.to_string(),
                row.case.to_owned(),
                format!("{:?}", row.door).to_lowercase(),
                row.copy_mode.map_or(String::new(), |c| c.name().to_owned()),
                row.calls_per_sample.to_string(),
                row.status.to_owned(),
                row.samples.map_or(String::new(), |s| s.to_string()),
                number(row.median_ns),
                number(row.p25_ns),
                number(row.p75_ns),
                number(row.min_ns),
                number(row.max_ns),
                number(row.spread_pct),
                number(row.gib_per_s),
                number(row.x_memcpy),
                row.message.unwrap_or_default(),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            out.push_str(&line.join(","));
            out.push('\n');
        }
        out
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// A size in pages as bytes: `64 KiB`, `1 MiB`, `256 MiB`.
pub fn size_label(pages: u32) -> String {
    human_bytes(u64::from(pages) * u64::from(wasmach::VM_PAGE_SIZE))
}

/// Bytes in the largest binary unit that divides them (`64 KiB`, `16 MiB`, `4 GiB`), or
/// with two decimals from 1 GiB up (`4.27 GiB`).
pub fn human_bytes(bytes: u64) -> String {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    match bytes {
        b if b >= GIB && b % GIB == 0 => format!("{} GiB", b / GIB),
        b if b >= GIB => format!("{:.2} GiB", b as f64 / GIB as f64),
        b if b >= MIB && b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b >= KIB && b % KIB == 0 => format!("{} KiB", b / KIB),
        b => format!("{b} B"),
    }
}

/// Seconds with three significant digits in the unit that fits: `812 ns`, `1.52 µs`,
/// `31.1 ms`, `2.00 s`.
pub fn human_time(seconds: f64) -> String {
    let (value, unit) = match seconds {
        s if s < 1e-6 => (s * 1e9, "ns"),
        s if s < 1e-3 => (s * 1e6, "µs"),
        s if s < 1.0 => (s * 1e3, "ms"),
        s => (s, "s"),
    };
    match value {
        v if v >= 99.95 => format!("{v:.0} {unit}"),
        v if v >= 9.995 => format!("{v:.1} {unit}"),
        v => format!("{v:.2} {unit}"),
    }
}

/// Now, UTC, as `2026-11-27T16:05:04Z`.
fn utc_now() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc(seconds)
}

/// A Unix time as `YYYY-MM-DDTHH:MM:SSZ` (the civil calendar from days since 1970).
fn utc(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_print_as_people_write_them() {
        assert_eq!(human_bytes(65536), "64 KiB");
        assert_eq!(human_bytes(16 << 20), "16 MiB");
        assert_eq!(human_bytes(17 << 16), "1088 KiB");
        assert_eq!(human_bytes(4 << 30), "4 GiB");
        assert_eq!(human_bytes(70000 << 16), "4.27 GiB");
        assert_eq!(human_time(1.523e-6), "1.52 µs");
        assert_eq!(human_time(31.07e-6), "31.1 µs");
        assert_eq!(human_time(812e-9), "812 ns");
        assert_eq!(human_time(2.0), "2.00 s");
        assert_eq!(human_time(0.2), "200 ms");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
    }

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_795_504), "2026-11-27T16:05:04Z");
    }
}
