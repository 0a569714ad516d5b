//! `wasmach bench`: the table, the JSON, the plot and CSV files, and the usage errors. Every
//! run here is one or two small sizes at 10 ms per case (well under a second in the dev
//! profile); the default sizes (up to 4096 pages) are never run in the tests.

use std::path::PathBuf;

use crate::{stderr, stdout, wasmach};

/// Every case's name, in the order printed (the criterion bench's names).
const CASES: [&str; 15] = [
    "baseline/memcpy",
    "baseline/vec_double_copy",
    "baseline/process_vm_readv",
    "baseline/guest_memory_copy",
    "guest/vm_read_overwrite",
    "guest/vm_write",
    "guest/vm_read+vm_deallocate",
    "guest/vm_copy_in_self",
    "guest/vm_copy_in_peer",
    "host/vm_read_overwrite",
    "host/vm_write",
    "host/vm_read",
    "host/vm_copy",
    "host/a_read_overwrite_b",
    "host/a_write_b",
];

/// A fresh directory for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wasmach-bench-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A time with its unit (`1.52 µs`) in seconds.
fn seconds(text: &str) -> Option<f64> {
    let (value, unit) = text.split_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let scale = match unit {
        "ns" => 1e-9,
        "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        _ => return None,
    };
    Some(value * scale)
}

#[test]
fn the_table_has_the_machine_and_a_row_per_case_with_its_figures() {
    let out = wasmach(&["bench", "--pages", "1", "--time", "10ms"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // stderr is a pipe here: no progress bar, nothing at all
    assert_eq!(stderr(&out), "");
    let text = stdout(&out);
    let machine = text
        .lines()
        .find(|l| l.starts_with("- machine: "))
        .unwrap_or_else(|| panic!("no machine line: {text}"));
    assert!(machine.contains("core"), "{machine}");
    let mut lines = text.lines().filter(|l| l.starts_with('|'));
    let header: Vec<&str> = lines
        .next()
        .expect("a table")
        .split('|')
        .map(str::trim)
        .collect();
    assert_eq!(
        header[1..header.len() - 1],
        [
            "size",
            "case",
            "time",
            "±",
            "GiB/s",
            "× memcpy",
            "samples",
            "calls"
        ],
        "{text}"
    );
    assert!(lines.next().expect("the separator").contains("---:"));
    let rows: Vec<Vec<&str>> = lines
        .map(|l| l.split('|').map(str::trim).skip(1).take(8).collect())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r[1]).collect();
    assert_eq!(names, CASES, "{text}");
    for row in &rows {
        assert_eq!(row[0], "64 KiB", "{row:?}");
        if row[1] == "baseline/process_vm_readv" && row[2] == "skipped" {
            continue; // a system that forbids it (the notes say why)
        }
        let time = seconds(row[2]).unwrap_or_else(|| panic!("time of {row:?}"));
        assert!(time > 0.0 && time < 0.1, "{row:?}");
        assert!(row[3].ends_with('%'), "{row:?}");
        let gib: f64 = row[4].parse().unwrap();
        let ratio: f64 = row[5].parse().unwrap();
        assert!(gib > 0.0 && ratio > 0.0, "{row:?}");
        assert!(row[6].parse::<usize>().unwrap() >= 5, "{row:?}");
        assert_eq!(row[7], "64", "the default calls at one page: {row:?}");
    }
    assert_eq!(rows[0][5], "1.00", "memcpy against itself");
}

#[test]
fn json_has_the_machine_and_every_case_at_every_size_with_the_calls_asked() {
    let out = wasmach(&[
        "bench", "--pages", "2,1", "--calls", "3,5", "--time", "10ms", "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let machine = &json["machine"];
    assert!(machine["cores"].as_u64().unwrap() >= 1, "{machine}");
    for key in ["cpu", "memory_bytes", "kernel", "transparent_huge_pages"] {
        assert!(machine.get(key).is_some(), "machine.{key}: {machine}");
    }
    assert_eq!(json["run"]["time_per_case_ms"], 10.0);
    let results = json["results"].as_array().expect("results");
    assert_eq!(results.len(), 2 * CASES.len());
    // smallest size first; each size keeps the calls given for it
    for (i, (pages, calls)) in [(1, 5), (2, 3)].into_iter().enumerate() {
        let rows = &results[i * CASES.len()..(i + 1) * CASES.len()];
        for (row, case) in rows.iter().zip(CASES) {
            assert_eq!(row["case"], case);
            assert_eq!(row["pages"], pages);
            assert_eq!(row["bytes"], pages * 65536);
            assert_eq!(row["calls_per_sample"], calls);
            if row["status"] == "skipped" && case == "baseline/process_vm_readv" {
                continue;
            }
            assert_eq!(row["status"], "ok", "{row}");
            let median = row["median_ns"].as_f64().unwrap();
            assert!(row["p25_ns"].as_f64().unwrap() <= median, "{row}");
            assert!(row["p75_ns"].as_f64().unwrap() >= median, "{row}");
            assert!(row["gib_per_s"].as_f64().unwrap() > 0.0, "{row}");
            assert!(row["x_memcpy"].as_f64().unwrap() > 0.0, "{row}");
            assert!(row["samples"].as_u64().unwrap() >= 5, "{row}");
        }
        assert_eq!(rows[0]["x_memcpy"], 1.0);
        assert_eq!(rows[0]["copy_mode"], serde_json::Value::Null);
        assert_eq!(rows[4]["copy_mode"], "auto", "the runtime's default");
    }
}

#[test]
fn copy_modes_measure_every_wasmach_case_in_each_mode_and_the_baselines_once() {
    let out = wasmach(&[
        "bench",
        "--pages",
        "1",
        "--time",
        "10ms",
        "--copy",
        "physical,virtual",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(
        json["run"]["copy_modes"],
        serde_json::json!(["physical", "virtual"])
    );
    let results = json["results"].as_array().expect("results");
    let count = |case: &str, mode: serde_json::Value| {
        results
            .iter()
            .filter(|r| r["case"] == case && r["copy_mode"] == mode)
            .count()
    };
    for case in CASES {
        if case.starts_with("baseline/") {
            assert_eq!(count(case, serde_json::Value::Null), 1, "{case}");
        } else {
            assert_eq!(count(case, "physical".into()), 1, "{case}");
            assert_eq!(count(case, "virtual".into()), 1, "{case}");
        }
    }
    assert_eq!(results.len(), 4 + 2 * 11);
}

#[test]
fn out_writes_an_svg_plot_and_a_csv_row_per_size_and_case() {
    let dir = scratch("out");
    let dir_arg = dir.join("nested");
    let out = wasmach(&[
        "bench",
        "--pages",
        "1,2",
        "--time",
        "10ms",
        "--out",
        dir_arg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("| baseline/memcpy"));
    let svg = std::fs::read_to_string(dir_arg.join("throughput.svg")).expect("the plot");
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{}",
        &svg[..100]
    );
    assert!(svg.trim_end().ends_with("</svg>"));
    for case in CASES {
        assert!(svg.contains(case), "{case} is not in the legend");
    }
    let csv = std::fs::read_to_string(dir_arg.join("throughput.csv")).expect("the CSV");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..3], ["pages", "bytes", "case"]);
    assert!(header.contains(&"median_ns") && header.contains(&"gib_per_s"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2 * CASES.len(), "{csv}");
    for (i, row) in rows.iter().enumerate() {
        let pages = if i < CASES.len() { "1" } else { "2" };
        assert_eq!(row[0], pages, "{row:?}");
        assert_eq!(row[2], CASES[i % CASES.len()], "{row:?}");
        if row[6] == "ok" {
            assert_eq!(row.len(), header.len(), "{row:?}");
            let gib = header.iter().position(|h| *h == "gib_per_s").unwrap();
            assert!(row[gib].parse::<f64>().unwrap() > 0.0, "{row:?}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_sizes_counts_and_durations_are_usage_errors_naming_the_problem() {
    for (args, problem) in [
        (&["--pages", "lots"][..], "`lots` is not a number of pages"),
        (&["--pages", "1,x"], "`x` is not a number of pages"),
        (&["--pages", "0"], "at least one page"),
        (&["--pages", "65537"], "above 4 GiB"),
        (&["--pages", "99999999999"], "above 4 GiB"),
        (&["--pages", "30000"], "at most 21845 pages"),
        (&["--calls", "0"], "at least one call"),
        (&["--calls", "many"], "`many` is not a number of calls"),
        (
            &["--pages", "1", "--calls", "1,2"],
            "--calls has 2 counts for 1 sizes",
        ),
        (&["--pages", "2", "--calls", "40000"], "above 4 GiB"),
        (&["--time", "soon"], "`soon` is not a duration"),
        (&["--time", "3h"], "unknown duration unit `h`"),
        (&["--time", "0s"], "not a positive duration"),
        (&["--copy", "lazy"], "invalid value 'lazy' for '--copy"),
    ] {
        let mut command = vec!["bench"];
        command.extend_from_slice(args);
        let out = wasmach(&command);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(problem),
            "{args:?}: expected `{problem}` in: {}",
            stderr(&out)
        );
        assert_eq!(stdout(&out), "", "{args:?} measured something");
    }
}
