//! The `vigil` command line as users run it: demo, config check, file ingest, migrate, errors.

mod common;

use common::*;
use std::io::Write;
use vigil_store::{queries, Store};

#[test]
fn demo_ingests_simulated_traffic_into_the_embedded_store() {
    require_chdb();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("vigil-data");
    let out = vigil()
        .current_dir(dir.path())
        .args([
            "demo",
            "--duration",
            "8",
            "--every",
            "2",
            "--drift-after",
            "4",
            "--rate",
            "1000",
        ])
        // Port 0: the demo binds before it starts anything, so no other test's connection can
        // take the port between choosing it and listening on it.
        .args(["--bind", "127.0.0.1:0"])
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("embedded chDB 26."), "{stdout}");
    assert!(stdout.contains("[drifting]"), "{stdout}");
    // The default store is ./vigil-data, and a demo run writes to its own database there
    // (`vigil_demo`, emptied at the start of each run); what the demo's users were answered is
    // what the gateway recorded there (requests no backend answered are recorded too, as
    // failures).
    let rt = runtime();
    let store = rt
        .block_on(Store::open(&format!(
            "chdb://{}?database=vigil_demo",
            data.display()
        )))
        .unwrap();
    let totals = rt.block_on(queries::table_counts(&store)).unwrap();
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.contains("answered="))
        .unwrap();
    let field = |name: &str| -> u64 {
        last.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name}= in {last}"))
    };
    let (requests, answered) = (field("requests"), field("answered"));
    assert!(answered >= 4000, "{last}");
    assert!(
        totals.inference >= answered && totals.inference <= requests,
        "{last} vs {totals:?}"
    );
    assert!(totals.outcomes > 0 && totals.dead_letters > 0, "{totals:?}");
    assert!(
        totals.exposures > 0,
        "the gateway records exposures: {totals:?}"
    );
    // The configuration it wrote serves the same store again.
    let config = data.join("demo/vigil.toml");
    let check = vigil()
        .arg("--config")
        .arg(&config)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn config_check_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vigil.toml");
    std::fs::write(
        &path,
        "[store]\nurl = \"chdb:///tmp/x\"\n\n[collector]\nbatch_max_rows = \"lots\"\n",
    )
    .unwrap();
    let out = vigil()
        .arg("--config")
        .arg(&path)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 5") && err.contains("batch_max_rows"),
        "{err}"
    );

    std::fs::write(&path, "[store]\nurl = \"chdb:///tmp/x\"\n").unwrap();
    let out = vigil()
        .arg("--config")
        .arg(&path)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Environment overrides are validated too.
    let out = vigil()
        .arg("--config")
        .arg(&path)
        .args(["config", "check"])
        .env("VIGIL_STORE__URL", "mysql://nope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scheme"));
}

#[test]
fn usage_errors_exit_2() {
    let out = vigil().args(["ingest"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = vigil()
        .args([
            "assign",
            "--unit",
            "u1",
            "--seed",
            "s",
            "--weights",
            "0.9,0.9",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn missing_chdb_library_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = vigil()
        .current_dir(dir.path())
        .env("VIGIL_CHDB_LIB", dir.path().join("nope/libchdb.so"))
        .args(["migrate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bash scripts/services/chdb.sh install"),
        "{err}"
    );
}

#[test]
fn file_ingest_stores_good_lines_and_dead_letters_bad_ones() {
    let url = clickhouse_url(&unique("file"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    let mut f = std::fs::File::create(&path).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let mut sim = vigil_collector::simulate::TrafficSimulator::new(1, "file");
    for i in 0..3000 {
        writeln!(f, "{}", sim.inference(now).json).unwrap();
        if i % 100 == 0 {
            f.write_all(b"{\"event_id\": 12, \"broken\n").unwrap();
        }
    }
    f.write_all(&[0xff, 0xfe, b'\n']).unwrap();
    drop(f);
    for _ in 0..2 {
        // Twice: the second run is a replay and must not double-count.
        let out = vigil()
            .args(["--store", &url, "ingest", "--file"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("3000 stored, 31 rejected"), "{stdout}");
    }
    let rt = runtime();
    let store = rt.block_on(Store::open(&url)).unwrap();
    assert_eq!(
        rt.block_on(queries::count_events(&store, "inference_events"))
            .unwrap(),
        3000
    );
    let dead = rt.block_on(queries::dead_letter_summary(&store)).unwrap();
    assert!(
        dead.iter().all(|d| d.source.starts_with("file:")),
        "{dead:?}"
    );
    assert_eq!(dead.iter().map(|d| d.count).sum::<u64>(), 62);

    let out = vigil().args(["--store", &url, "migrate"]).output().unwrap();
    let latest = vigil_store::schema::migrations(&Default::default())
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!(
        "schema version {latest} (0 migration(s) applied now)"
    )));
    let out = vigil()
        .args(["--store", &url, "status", "--format", "json"])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["totals"]["inference"], 3000);
}

#[test]
fn bench_pages_times_every_dashboard_page_on_a_small_embedded_store() {
    require_chdb();
    let tmp = tempfile::tempdir().unwrap();
    let out = vigil()
        .env("TMPDIR", tmp.path())
        .args([
            "bench",
            "pages",
            "--events",
            "2000",
            "--requests",
            "2",
            "--compaction",
            "backfill",
            "--compaction-rounds",
            "1",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(r["stored_rows"], 2000);
    let pages = r["pages"].as_array().unwrap();
    // Every page of the router, each answered with the page itself every time.
    assert_eq!(pages.len(), vigil_dashboards::html::NAV.len(), "{stdout}");
    for p in pages {
        assert_eq!(p["first"]["n"], 1, "{p}");
        assert_eq!(p["steady"]["24h"]["n"], 2, "{p}");
        assert_eq!(p["first"]["errors"], 0, "{p}");
        assert_eq!(p["steady"]["24h"]["errors"], 0, "{p}");
        assert_eq!(p["during_compaction"]["backfill"]["errors"], 0, "{p}");
    }
    let passes = r["passes"].as_array().unwrap();
    assert_eq!(passes.len(), 1, "{stdout}");
    assert!(passes[0]["minutes"].as_u64().unwrap() >= 1, "{stdout}");
    // The temporary store is removed unless --keep.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("vigil-bench-pages")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
