//! End-to-end tests of the CLI functions on CSV files, including the golden dataset cases.

use std::io::Write;
use std::path::PathBuf;

use serde_json::Value;
use vigil_analyzer::cli::{
    run_drift, run_fairness, DriftArgs, EmbeddingArgs, EmbeddingMethodArg, FairnessArgs, MethodArg,
    OutputFormat, StattestArgs,
};

fn tmp(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-analyzer-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).expect("create");
    f.write_all(content.as_bytes()).expect("write");
    p
}

fn drift_args(r: PathBuf, c: PathBuf) -> DriftArgs {
    DriftArgs {
        reference: r,
        current: c,
        numerical: vec![],
        categorical: vec![],
        stattests: StattestArgs::default(),
        drift_share: 0.5,
        format: OutputFormat::Json,
        embeddings: EmbeddingArgs::default(),
    }
}

fn load(name: &str) -> Value {
    let path = format!("{}/tests/golden/{}", env!("CARGO_MANIFEST_DIR"), name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) if s == "inf" => "inf".into(),
        Value::String(s) if s == "-inf" => "-inf".into(),
        Value::String(s) if s == "nan" => "nan".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => {
            let f = n.as_f64().expect("f64");
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", f as i64)
            } else {
                format!("{f:?}")
            }
        }
        other => other.to_string(),
    }
}

/// Rebuild a CSV from an encoded golden dataset (values lists + missing/inf counts appended).
fn frame_csv(cols: &Value, names: &[String]) -> String {
    let mut columns: Vec<Vec<String>> = Vec::new();
    for n in names {
        let c = &cols[n];
        let mut v: Vec<String> = c["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(cell)
            .collect();
        for _ in 0..c["missing"].as_u64().unwrap_or(0) {
            v.push(String::new());
        }
        for _ in 0..c["posinf"].as_u64().unwrap_or(0) {
            v.push("inf".into());
        }
        for _ in 0..c["neginf"].as_u64().unwrap_or(0) {
            v.push("-inf".into());
        }
        columns.push(v);
    }
    let rows = columns.iter().map(|c| c.len()).max().unwrap_or(0);
    let mut s = names.join(",") + "\n";
    for r in 0..rows {
        let line: Vec<String> = columns
            .iter()
            .map(|c| c.get(r).cloned().unwrap_or_default())
            .collect();
        s += &line.join(",");
        s += "\n";
    }
    s
}

#[test]
fn drift_cli_matches_evidently_preset_on_csv() {
    for case in load("drift_datasets.json").as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let mut names: Vec<String> = Vec::new();
        for k in ["numerical", "categorical"] {
            names.extend(
                case[k]
                    .as_array()
                    .expect("list")
                    .iter()
                    .map(|v| v.as_str().expect("s").to_string()),
            );
        }
        let r = tmp(
            &format!("{name}-ref.csv"),
            &frame_csv(&case["reference"], &names),
        );
        let c = tmp(
            &format!("{name}-cur.csv"),
            &frame_csv(&case["current"], &names),
        );
        // types inferred: every column of these frames is inferred as Evidently was told
        let out: Value =
            serde_json::from_str(&run_drift(&drift_args(r, c)).expect("drift")).expect("json");
        let exp = &case["expected"];
        assert_eq!(out["dataset_drift"], exp["dataset_drift"], "{name}");
        for e in exp["columns"].as_array().expect("cols") {
            let got = out["columns"]
                .as_array()
                .expect("cols")
                .iter()
                .find(|c| c["column"] == e["column"])
                .expect("column present");
            assert_eq!(got["method"], e["method"], "{name}/{}", e["column"]);
            assert_eq!(got["drift"], e["drift"], "{name}/{}", e["column"]);
            assert_eq!(got["type"], e["type"], "{name}/{}", e["column"]);
            let (g, w) = (
                got["score"].as_f64().expect("score"),
                e["score"].as_f64().expect("score"),
            );
            assert!(
                (g - w).abs() <= 1e-6 * w.abs(),
                "{name}/{}: {g} vs {w}",
                e["column"]
            );
        }
    }
}

#[test]
fn drift_cli_explicit_types_method_and_quality() {
    let r = tmp("q-ref.csv", "x,c\n1,a\n2,b\n3,a\n4,b\n5,a\n6,b\n");
    let c = tmp("q-cur.csv", "x,c\n1,a\n,b\n30,z\n4,z\ninf,a\nfoo,b\n");
    let mut a = drift_args(r, c);
    a.numerical = vec!["x".into()];
    a.categorical = vec!["c".into()];
    a.stattests.stattest = MethodArg::Psi;
    let out: Value = serde_json::from_str(&run_drift(&a).expect("drift")).expect("json");
    let x = &out["columns"][0];
    assert_eq!(x["method"], "psi");
    assert_eq!(x["quality"]["missing"], 1);
    assert_eq!(x["quality"]["infinite"], 1);
    assert_eq!(x["quality"]["type_violations"], 1);
    assert_eq!(x["quality"]["out_of_range_share"], 1.0 / 3.0);
    let cc = &out["columns"][1];
    assert_eq!(cc["quality"]["new_categories"][0], "z");
    assert_eq!(cc["quality"]["new_category_rows"], 2);
    a.format = OutputFormat::Table;
    let t = run_drift(&a).expect("table");
    assert!(t.contains("dataset drift"));
}

#[test]
fn drift_cli_errors_name_file_and_column() {
    let r = tmp("e-ref.csv", "x,y\n1,2\n");
    let c = tmp("e-cur.csv", "x\n1\n");
    let mut a = drift_args(r.clone(), c);
    a.numerical = vec!["y".into()];
    let e = run_drift(&a).expect_err("missing column").to_string();
    assert!(e.contains("e-cur.csv") && e.contains("`y`"), "{e}");
    let bad = tmp("e-bad.csv", "x,y\n1,2\n3\n");
    let e = run_drift(&drift_args(r.clone(), bad))
        .expect_err("ragged")
        .to_string();
    assert!(e.contains("e-bad.csv") && e.contains("row 3"), "{e}");
    let cat = tmp("e-cat.csv", "x,y\na,b\n");
    let mut a = drift_args(r, cat);
    a.stattests.stattest = MethodArg::Ks;
    let e = run_drift(&a).expect_err("ks on text").to_string();
    assert!(e.contains("cannot be used on a categorical column"), "{e}");
}

/// `vigil drift` as the binary parses it (flags → [`DriftArgs`]).
#[derive(clap::Parser)]
struct DriftCli {
    #[command(flatten)]
    drift: DriftArgs,
}

/// Evidently's drift options (golden `options`, Evidently's names) as `vigil drift` flags, the
/// per-column ones comma-separated.
fn option_flags(options: &Value) -> Vec<String> {
    let mut flags = Vec::new();
    for (key, value) in options.as_object().expect("options") {
        let flag = format!("--{}", key.replace('_', "-"));
        match value {
            Value::Object(map) => {
                let pairs: Vec<String> = map
                    .iter()
                    .map(|(c, v)| format!("{c}={}", cell(v)))
                    .collect();
                flags.push(flag);
                flags.push(pairs.join(","));
            }
            v => {
                flags.push(flag);
                flags.push(cell(v));
            }
        }
    }
    flags
}

#[test]
fn drift_cli_per_column_options_match_evidently() {
    for case in load("drift_options.json").as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let list = |k: &str| -> Vec<String> {
            case[k]
                .as_array()
                .expect("list")
                .iter()
                .map(|v| v.as_str().expect("s").to_string())
                .collect()
        };
        let (numerical, categorical) = (list("numerical"), list("categorical"));
        let names: Vec<String> = numerical.iter().chain(&categorical).cloned().collect();
        let r = tmp(
            &format!("opt-{name}-ref.csv"),
            &frame_csv(&case["reference"], &names),
        );
        let c = tmp(
            &format!("opt-{name}-cur.csv"),
            &frame_csv(&case["current"], &names),
        );
        let mut argv: Vec<String> = vec![
            "drift".into(),
            "--reference".into(),
            r.display().to_string(),
            "--current".into(),
            c.display().to_string(),
            "--numerical".into(),
            numerical.join(","),
            "--categorical".into(),
            categorical.join(","),
        ];
        argv.extend(option_flags(&case["options"]));
        let args = <DriftCli as clap::Parser>::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("{name}: {argv:?}: {e}"))
            .drift;
        let out: Value = serde_json::from_str(&run_drift(&args).expect("drift")).expect("json");
        let exp = &case["expected"];
        let cols = out["columns"].as_array().expect("cols");
        assert_eq!(cols.len(), names.len(), "{name}");
        for e in exp["columns"].as_array().expect("cols") {
            let col = e["column"].as_str().expect("column");
            let got = cols
                .iter()
                .find(|c| c["column"] == e["column"])
                .expect("column present");
            for key in ["type", "method", "drift"] {
                assert_eq!(got[key], e[key], "{name}/{col}: {key}");
            }
            let close = |k: &str| {
                let (g, w) = (got[k].as_f64().expect(k), e[k].as_f64().expect(k));
                assert!(
                    (g - w).abs() <= 1e-6 * w.abs(),
                    "{name}/{col}: {k} {g} vs {w}"
                );
            };
            close("score");
            close("threshold");
        }
        assert_eq!(out["dataset_drift"], exp["dataset_drift"], "{name}");
        let share = out["drift_share"].as_f64().expect("share");
        assert!((share - exp["drift_share"].as_f64().expect("share")).abs() < 1e-12);
        // the table states each column's method and threshold too
        let mut table_args = args.clone();
        table_args.format = OutputFormat::Table;
        let table = run_drift(&table_args).expect("table");
        for e in exp["columns"].as_array().expect("cols") {
            let line = table
                .lines()
                .find(|l| l.split_whitespace().next() == e["column"].as_str())
                .expect("table row");
            assert!(
                line.contains(e["method"].as_str().expect("method")),
                "{line}"
            );
            assert!(
                line.contains(&cell(&e["threshold"])),
                "{line} / {}",
                e["threshold"]
            );
        }
    }
}

#[test]
fn drift_cli_mixed_file_needs_methods_per_type() {
    let r = tmp(
        "mix-ref.csv",
        "x,c\n1.5,a\n2.5,b\n3.5,a\n4.5,b\n5.5,a\n6.5,c\n",
    );
    let c = tmp(
        "mix-cur.csv",
        "x,c\n1.5,a\n2.5,b\n8.5,c\n9.5,c\n7.5,a\n6.5,c\n",
    );
    let parse = |flags: &[&str]| -> DriftArgs {
        let mut argv = vec![
            "drift".to_string(),
            "--reference".into(),
            r.display().to_string(),
            "--current".into(),
            c.display().to_string(),
        ];
        argv.extend(flags.iter().map(|f| f.to_string()));
        <DriftCli as clap::Parser>::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
            .drift
    };
    let run = |flags: &[&str]| -> Result<Value, String> {
        run_drift(&parse(flags))
            .map(|s| serde_json::from_str(&s).expect("json"))
            .map_err(|e| e.to_string())
    };
    let method = |v: &Value, i: usize| v["columns"][i]["method"].as_str().unwrap_or("").to_string();
    // one numerical-only test for a file with a categorical column: refused, naming both
    let e = run(&["--stattest", "ks"]).unwrap_err();
    assert!(
        e.contains("`c`") && e.contains("`ks`") && e.contains("--stattest"),
        "{e}"
    );
    // `--method` is the same option
    assert_eq!(run(&["--method", "ks"]).unwrap_err(), e);
    // the categorical column gets its own test: works
    let v = run(&["--stattest", "ks", "--cat-stattest", "psi"]).unwrap();
    assert_eq!((method(&v, 0), method(&v, 1)), ("ks".into(), "psi".into()));
    let v = run(&[
        "--num-stattest",
        "wasserstein",
        "--cat-stattest",
        "chi2",
        "--threshold",
        "0.3",
    ])
    .unwrap();
    assert_eq!(
        (method(&v, 0), method(&v, 1)),
        ("wasserstein".into(), "chisquare".into())
    );
    assert_eq!(v["columns"][0]["threshold"], 0.3);
    assert_eq!(v["columns"][1]["auto"], false);
    // per column beats per type beats every column; thresholds resolve on their own
    let v = run(&[
        "--stattest",
        "hellinger",
        "--stattest-threshold",
        "0.4",
        "--num-stattest",
        "psi",
        "--cat-stattest-threshold",
        "0.2",
        "--per-column-stattest",
        "x=kl_div",
        "--per-column-stattest",
        "c=auto",
        "--per-column-stattest-threshold",
        "x=0.7",
    ])
    .unwrap();
    assert_eq!(method(&v, 0), "kl");
    assert_eq!(v["columns"][0]["threshold"], 0.7);
    assert_eq!(v["columns"][1]["auto"], true);
    assert_eq!(v["columns"][1]["threshold"], 0.2);
    // a per-type test the type cannot take, named with its flag
    let e = run(&["--num-stattest", "chisquare"]).unwrap_err();
    assert!(
        e.contains("--num-stattest") && e.contains("chisquare"),
        "{e}"
    );
    // a per-column test the column cannot take
    let e = run(&["--per-column-stattest", "x=z"]).unwrap_err();
    assert!(
        e.contains("`x`") && e.contains("`z`") && e.contains("--per-column-stattest"),
        "{e}"
    );
    // a per-column option naming a column that is not analysed
    let e = run(&["--per-column-stattest", "nope=psi"]).unwrap_err();
    assert!(
        e.contains("`nope`") && e.contains("not analysed") && e.contains("c, x"),
        "{e}"
    );
    let e = run(&[
        "--numerical",
        "x",
        "--per-column-stattest-threshold",
        "c=0.1",
    ])
    .unwrap_err();
    assert!(
        e.contains("--per-column-stattest-threshold") && e.contains("`c`"),
        "{e}"
    );
    let e = run(&["--per-column-stattest", "x=psi,x=kl"]).unwrap_err();
    assert!(e.contains("twice"), "{e}");
    let e = run(&["--cat-stattest-threshold=-1"]).unwrap_err();
    assert!(e.contains("--cat-stattest-threshold"), "{e}");
    // malformed entries are usage errors from the parser
    let bad = |flags: &[&str]| {
        let mut argv = vec!["drift", "--reference", "r", "--current", "c"];
        argv.extend(flags);
        <DriftCli as clap::Parser>::try_parse_from(argv).is_err()
    };
    assert!(bad(&["--per-column-stattest", "x"]));
    assert!(bad(&["--per-column-stattest", "x=magic"]));
    assert!(bad(&["--per-column-stattest-threshold", "x=high"]));
}

/// CSV with a plain column `id` and embedding columns e0.. from integer-coded golden rows.
fn embedding_csv(rows: &Value, scale: f64) -> String {
    let rows = rows.as_array().expect("rows");
    let d = rows[0].as_array().expect("row").len();
    let mut s = String::from("id");
    for j in 0..d {
        s += &format!(",e{j}");
    }
    s += "\n";
    for (i, r) in rows.iter().enumerate() {
        s += &format!("{}", i % 7);
        for v in r.as_array().expect("row") {
            s += &format!(",{:?}", v.as_i64().expect("int") as f64 / scale);
        }
        s += "\n";
    }
    s
}

#[test]
fn drift_cli_embeddings_match_evidently() {
    let g = load("embedding_drift.json");
    let scale = g["scale"].as_f64().expect("scale");
    let case = &g["cases"][1];
    let r = tmp("emb-ref.csv", &embedding_csv(&case["reference"], scale));
    let c = tmp("emb-cur.csv", &embedding_csv(&case["current"], scale));
    let cols: Vec<String> = (0..12).map(|j| format!("e{j}")).collect();
    let mut a = drift_args(r.clone(), c.clone());
    a.embeddings.embeddings = vec![format!("text={}", cols.join(","))];
    let golden = |method: &str, params: &str| -> (f64, bool) {
        let want: Value = serde_json::from_str(params).expect("params");
        let res = case["results"]
            .as_array()
            .expect("results")
            .iter()
            .find(|x| x["method"] == method && x["params"] == want)
            .expect("golden result");
        (
            res["value"].as_f64().expect("v"),
            res["drifted"].as_bool().expect("d"),
        )
    };
    let check = |a: &DriftArgs, want: (f64, bool), what: &str| {
        let out: Value = serde_json::from_str(&run_drift(a).expect("drift")).expect("json");
        // embedding columns are left out of the per-column analysis
        assert_eq!(out["columns"].as_array().expect("cols").len(), 1, "{what}");
        let e = &out["embeddings"][0];
        assert_eq!(e["name"], "text");
        let v = e["value"].as_f64().expect("value");
        assert!(
            (v - want.0).abs() <= 1e-6 * want.0.abs(),
            "{what}: {v} vs {}",
            want.0
        );
        assert_eq!(e["drifted"].as_bool(), Some(want.1), "{what}");
        assert!(e["threshold"].is_number(), "{what}");
    };
    // Evidently's default: model, bootstrapped (150 reference rows < 1000).
    let d = &case["default"];
    check(
        &a,
        (
            d["value"].as_f64().expect("v"),
            d["drifted"].as_bool().expect("d"),
        ),
        "default",
    );
    a.embeddings.embedding_method = Some(EmbeddingMethodArg::Distance);
    a.embeddings.embedding_dist = Some("cityblock".into());
    check(
        &a,
        golden("distance", r#"{"dist":"cityblock"}"#),
        "cityblock",
    );
    a.embeddings.embedding_dist = None;
    a.embeddings.embedding_method = Some(EmbeddingMethodArg::Mmd);
    a.embeddings.embedding_bootstrap = true;
    a.embeddings.embedding_pca_components = Some(4);
    check(
        &a,
        golden("mmd", r#"{"bootstrap":true,"pca_components":4}"#),
        "mmd",
    );
    a.embeddings.embedding_method = Some(EmbeddingMethodArg::Ratio);
    a.embeddings.embedding_bootstrap = false;
    a.embeddings.embedding_pca_components = None;
    a.embeddings.embedding_component_stattest = Some("ks".into());
    a.embeddings.embedding_component_stattest_threshold = Some(0.05);
    check(
        &a,
        golden(
            "ratio",
            r#"{"component_stattest":"ks","component_stattest_threshold":0.05}"#,
        ),
        "ratio ks",
    );
    a.format = OutputFormat::Table;
    assert!(run_drift(&a).expect("table").contains("text"));

    // Usage errors name the flag, the file, the row and the column.
    a.embeddings.embedding_method = Some(EmbeddingMethodArg::Model);
    let e = run_drift(&a).expect_err("stattest on model").to_string();
    assert!(e.contains("--embedding-component-stattest"), "{e}");
    let mut b = drift_args(r.clone(), c.clone());
    b.embeddings.embeddings = vec!["text".into()];
    let e = run_drift(&b).expect_err("no =").to_string();
    assert!(e.contains("NAME=COL1"), "{e}");
    let holey = tmp("emb-holey.csv", "id,e0,e1\n1,0.5,0.25\n2,,0.5\n");
    let mut b = drift_args(r, holey);
    b.embeddings.embeddings = vec!["t=e0,e1".into()];
    let e = run_drift(&b).expect_err("missing cell").to_string();
    assert!(
        e.contains("emb-holey.csv") && e.contains("row 3") && e.contains("`e0`"),
        "{e}"
    );
}

#[test]
fn fairness_cli_matches_fairlearn() {
    for case in load("fairness.json").as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let s = case["sensitive"].as_array().expect("s");
        let y = case["label"].as_array().expect("y");
        let p = case["prediction"].as_array().expect("p");
        let mut csv = String::from("group,label,pred\n");
        for i in 0..s.len() {
            csv += &format!("{},{},{}\n", s[i].as_str().expect("g"), y[i], p[i]);
        }
        let path = tmp(&format!("{name}-fair.csv"), &csv);
        let args = FairnessArgs {
            data: path,
            sensitive: "group".into(),
            label: "label".into(),
            prediction: "pred".into(),
            min_group_size: 0,
            format: OutputFormat::Json,
        };
        let out: Value =
            serde_json::from_str(&run_fairness(&args).expect("fairness")).expect("json");
        let exp = &case["expected"];
        let close = |g: &Value, w: &Value, what: &str| {
            let (g, w) = (g.as_f64(), w.as_f64());
            match (g, w) {
                (Some(g), Some(w)) => {
                    assert!((g - w).abs() <= 1e-6 * w.abs(), "{name}/{what}: {g} vs {w}")
                }
                (None, None) => {}
                _ => panic!("{name}/{what}: {g:?} vs {w:?}"),
            }
        };
        for k in [
            "demographic_parity_difference",
            "demographic_parity_ratio",
            "equalized_odds_difference",
            "equalized_odds_ratio",
            "equal_opportunity_difference",
            "equal_opportunity_ratio",
        ] {
            close(&out[k], &exp[k], k);
        }
        for (g, m) in exp["groups"].as_object().expect("groups") {
            for (k, v) in m.as_object().expect("m") {
                close(&out["groups"][g][k], v, &format!("{g}/{k}"));
            }
        }
        let args = FairnessArgs {
            format: OutputFormat::Table,
            ..args
        };
        assert!(run_fairness(&args).expect("table").contains("four-fifths"));
    }
}

#[test]
fn fairness_cli_rejects_non_binary_labels_with_row() {
    let path = tmp("fair-bad.csv", "g,y,p\na,1,0\nb,maybe,1\n");
    let args = FairnessArgs {
        data: path,
        sensitive: "g".into(),
        label: "y".into(),
        prediction: "p".into(),
        min_group_size: 0,
        format: OutputFormat::Json,
    };
    let e = run_fairness(&args).expect_err("bad label").to_string();
    assert!(
        e.contains("row 3") && e.contains("`y`") && e.contains("fair-bad.csv"),
        "{e}"
    );
}
