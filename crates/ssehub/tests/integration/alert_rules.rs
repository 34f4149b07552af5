//! The example Prometheus alerting rules (`deploy/prometheus/alerts.yml`):
//! valid for `promtool check rules`, and each alert fires on the series of
//! its unit test (`alerts.test.yml`), and only on those.

use std::process::Command;

use crate::common::tool::{printed, repo_path, run};

/// Runs `promtool ARGS…` in `deploy/prometheus`; asserts it succeeds.
fn promtool(args: &[&str]) -> String {
    let mut cmd = Command::new("promtool");
    cmd.args(args).current_dir(repo_path("deploy/prometheus"));
    let output = run(cmd, "prometheus");
    let text = printed(&output);
    assert!(output.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn alert_rules_are_valid() {
    let text = promtool(&["check", "rules", "alerts.yml"]);
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn each_alert_fires_on_its_series_only() {
    let rules = std::fs::read_to_string(repo_path("deploy/prometheus/alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(repo_path("deploy/prometheus/alerts.test.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert: "))
        .collect();
    assert!(!alerts.is_empty(), "no alert in alerts.yml");
    for alert in alerts {
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "alert {alert} has no unit test in alerts.test.yml"
        );
    }
    let text = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(text.contains("SUCCESS"), "{text}");
}
