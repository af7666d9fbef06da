//! `vigil ab analyze` on a per-unit CSV equals the gbstats-golden-tested engines run on the same
//! sufficient statistics; errors name the file, row and column.

use std::io::Write;
use vigil_experimenter::ab_cli::{run_ab_analyze, AbAnalyzeArgs, MetricType};
use vigil_experimenter::cli::OutputFormat;
use vigil_experimenter::stats::{
    self, ArmStats, BayesianConfig, CupedMoments, FrequentistConfig, Moments, SampleMoments,
    SequentialConfig,
};

fn args(path: &std::path::Path, covariate: bool) -> AbAnalyzeArgs {
    AbAnalyzeArgs {
        data: Some(path.to_path_buf()),
        experiment: None,
        control: Some("control".into()),
        variant_column: "variant".into(),
        metric_column: "value".into(),
        covariate_column: covariate.then(|| "pre".into()),
        metric_type: MetricType::Mean,
        weights: None,
        alpha: 0.05,
        format: OutputFormat::Json,
    }
}

/// Deterministic per-unit data: treatment has a +5% lift and correlated pre-period values.
fn units() -> Vec<(&'static str, f64, f64)> {
    let mut out = Vec::new();
    let mut x: u64 = 12345;
    for i in 0..6000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let u = (x >> 11) as f64 / (1u64 << 53) as f64;
        let pre = 10.0 + 5.0 * u;
        let arm = if i % 2 == 0 { "control" } else { "treatment" };
        let lift = if arm == "treatment" { 1.05 } else { 1.0 };
        let noise = ((x >> 3) % 1000) as f64 / 250.0;
        out.push((arm, (pre + noise) * lift, pre));
    }
    out
}

fn moments(data: &[(&str, f64, f64)], arm: &str) -> (SampleMoments, SampleMoments, f64) {
    let rows: Vec<_> = data.iter().filter(|r| r.0 == arm).collect();
    let v: Vec<f64> = rows.iter().map(|r| r.1).collect();
    let p: Vec<f64> = rows.iter().map(|r| r.2).collect();
    let cross = rows.iter().map(|r| r.1 * r.2).sum();
    (
        SampleMoments::from_values(&v),
        SampleMoments::from_values(&p),
        cross,
    )
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-300)
}

#[test]
fn cli_equals_the_engines_on_the_same_moments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("units.csv");
    let data = units();
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(f, "unit,variant,value,pre").unwrap();
    for (i, (arm, v, p)) in data.iter().enumerate() {
        writeln!(f, "u{i},{arm},{v},{p}").unwrap();
    }
    drop(f);
    let out: serde_json::Value =
        serde_json::from_str(&run_ab_analyze(&args(&path, true)).unwrap()).unwrap();

    let (cv, cp, cx) = moments(&data, "control");
    let (tv, tp, tx) = moments(&data, "treatment");
    let (c, t) = (ArmStats::Mean(cv), ArmStats::Mean(tv));
    let f = stats::frequentist::analyze(&c, &t, &FrequentistConfig::default()).unwrap();
    let s = stats::sequential::analyze(&c, &t, &SequentialConfig::default()).unwrap();
    let b = stats::bayesian::analyze(&c, &t, &BayesianConfig::default()).unwrap();
    let cc = CupedMoments {
        n: cv.n,
        metric: Moments::Mean(cv),
        covariate: Moments::Mean(cp),
        cross_sum: cx,
    };
    let tc = CupedMoments {
        n: tv.n,
        metric: Moments::Mean(tv),
        covariate: Moments::Mean(tp),
        cross_sum: tx,
    };
    let cu = stats::frequentist::analyze(
        &ArmStats::Cuped(cc),
        &ArmStats::Cuped(tc),
        &FrequentistConfig::default(),
    )
    .unwrap();
    let theta = stats::cuped::pooled_theta(&cc, &tc).unwrap();

    let got = &out["comparisons"]["treatment"];
    let num = |v: &serde_json::Value| v.as_f64().unwrap();
    assert!(close(num(&got["frequentist"]["expected"]), f.expected));
    assert!(close(num(&got["frequentist"]["p_value"]), f.p_value));
    assert!(
        close(num(&got["frequentist"]["ci"][0]), f.ci[0])
            && close(num(&got["frequentist"]["ci"][1]), f.ci[1])
    );
    assert!(close(num(&got["sequential"]["ci"][1]), s.ci[1]));
    assert!(close(
        num(&got["bayesian"]["chance_to_win"]),
        b.chance_to_win
    ));
    assert!(close(num(&got["bayesian"]["risk"][1]), b.risk.treatment));
    assert!(close(num(&got["cuped"]["expected"]), cu.expected));
    assert!(close(num(&got["cuped"]["theta"]), theta));
    // The +5% lift is found, CUPED narrows the interval, and the 50/50 split passes SRM.
    assert!(
        (num(&got["frequentist"]["expected"]) - 0.05).abs() < 0.01,
        "{got}"
    );
    let width = |r: &serde_json::Value| num(&r["ci"][1]) - num(&r["ci"][0]);
    assert!(width(&got["cuped"]) < width(&got["frequentist"]));
    assert!(num(&out["srm_p_value"]) > 0.001 && out["srm_mismatch"] == false);
}

#[test]
fn errors_name_file_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, "variant,value\ncontrol,1\ntreatment,abc\n").unwrap();
    let e = run_ab_analyze(&args(&path, false)).unwrap_err().to_string();
    assert!(
        e.contains("row 3") && e.contains("`value`") && e.contains("abc"),
        "{e}"
    );
    std::fs::write(&path, "variant,value\nb,1\nc,2\n").unwrap();
    assert!(run_ab_analyze(&args(&path, false))
        .unwrap_err()
        .to_string()
        .contains("control arm `control`"));
    let mut a = args(&path, false);
    a.metric_type = MetricType::Proportion;
    std::fs::write(&path, "variant,value\ncontrol,1\ntreatment,2\n").unwrap();
    assert!(run_ab_analyze(&a)
        .unwrap_err()
        .to_string()
        .contains("0 or 1"));
}

#[test]
fn power_reports_the_mde_at_which_power_is_the_target() {
    use vigil_experimenter::ab_cli::{run_ab_power, AbPowerArgs};
    let args = |lift: Option<f64>| AbPowerArgs {
        rate: Some(0.1),
        mean: None,
        stddev: None,
        units_per_arm: 10_000.0,
        alpha: 0.05,
        power: 0.8,
        lift,
    };
    let v: serde_json::Value = serde_json::from_str(&run_ab_power(&args(None)).unwrap()).unwrap();
    let mde = v["minimum_detectable_effect"].as_f64().unwrap();
    // Normal approximation by hand: 2.8 · sqrt(2 · 0.09 / 10 000) / 0.1 ≈ 0.119 (the exact
    // delta-method variance at the lifted rate is a little larger).
    assert!((0.115..0.14).contains(&mde), "{mde}");
    let at: serde_json::Value =
        serde_json::from_str(&run_ab_power(&args(Some(mde))).unwrap()).unwrap();
    assert!(
        (at["power_at_lift"].as_f64().unwrap() - 0.8).abs() < 1e-6,
        "{at}"
    );
    let mut bad = args(None);
    bad.rate = None;
    assert!(run_ab_power(&bad)
        .unwrap_err()
        .to_string()
        .contains("--rate"));
}
