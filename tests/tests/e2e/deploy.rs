//! The deployment files agree with the code: every command names a binary the workspace builds,
//! every variable they set is one the binaries read, `.env.example` documents each of them, and
//! the worker's grace period covers its shutdown timeout. Drift fails CI.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use adbudget_core::config::VARIABLES;
use serde_norway::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `[[bin]]` names of the workspace's crates.
fn binaries() -> BTreeSet<String> {
    let mut bins = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let mut in_bin = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_bin = line == "[[bin]]";
            } else if in_bin && let Some(name) = line.strip_prefix("name = ") {
                bins.insert(name.trim_matches('"').to_owned());
            }
        }
    }
    bins
}

fn known(var: &str) -> bool {
    VARIABLES.contains(&var)
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            let mut v = <Value as serde::Deserialize>::deserialize(doc).unwrap();
            v.apply_merge().unwrap();
            v
        })
        .collect()
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_workspace_builds_the_four_binaries_and_the_bench_tool() {
    let expected: BTreeSet<String> = [
        "adbudget",
        "adbudget-api",
        "adbudget-worker",
        "adbudget-beat",
        "adbudget-bench",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(binaries(), expected);
}

#[test]
fn compose_names_real_binaries_and_variables() {
    let bins = binaries();
    let compose = yaml_documents(&root().join("docker-compose.yml")).remove(0);
    let services = compose["services"].as_mapping().unwrap();
    let mut ours = 0;
    for (name, service) in services {
        let name = name.as_str().unwrap();
        if service["image"].as_str() != Some("adbudget:latest") {
            continue;
        }
        ours += 1;
        let command = str_list(&service["command"]);
        assert!(
            bins.contains(&command[0]),
            "service {name} runs {:?}, which the workspace does not build",
            command[0]
        );
        for (key, _) in service["environment"].as_mapping().unwrap() {
            let key = key.as_str().unwrap();
            assert!(
                known(key),
                "service {name} sets {key}, which no binary reads"
            );
        }
    }
    assert_eq!(ours, 4, "migrate, api, worker, beat");
    let worker = &services["worker"];
    assert!(
        worker["ports"].is_null(),
        "workers are scaled with --scale worker=N: no fixed host port"
    );
}

#[test]
fn kubernetes_manifests_name_real_binaries_and_variables() {
    let bins = binaries();
    let mut files = Vec::new();
    let mut stack = vec![root().join("deploy")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    let mut containers = 0;
    let mut shutdown_timeout = None;
    let mut worker_grace = None;
    for file in &files {
        for doc in yaml_documents(file) {
            let kind = doc["kind"].as_str().unwrap_or_default();
            match kind {
                "ConfigMap" | "Secret" => {
                    for section in ["data", "stringData"] {
                        if let Some(map) = doc[section].as_mapping() {
                            for (key, value) in map {
                                let key = key.as_str().unwrap();
                                assert!(
                                    known(key),
                                    "{}: {kind} sets {key}, which no binary reads",
                                    file.display()
                                );
                                if key == "ADBUDGET_SHUTDOWN_TIMEOUT_SECS" {
                                    shutdown_timeout =
                                        value.as_str().and_then(|v| v.parse::<u64>().ok());
                                }
                            }
                        }
                    }
                }
                "Kustomization" => {
                    for generator in doc["configMapGenerator"]
                        .as_sequence()
                        .into_iter()
                        .flatten()
                    {
                        for literal in str_list(&generator["literals"]) {
                            let key = literal.split('=').next().unwrap();
                            assert!(
                                known(key),
                                "{}: generator sets {key}, which no binary reads",
                                file.display()
                            );
                        }
                    }
                }
                "Deployment" | "Job" => {
                    let pod = &doc["spec"]["template"]["spec"];
                    for c in pod["containers"].as_sequence().unwrap() {
                        containers += 1;
                        let command = str_list(&c["command"]);
                        assert!(
                            bins.contains(&command[0]),
                            "{}: runs {:?}",
                            file.display(),
                            command[0]
                        );
                        for env in c["env"].as_sequence().into_iter().flatten() {
                            let key = env["name"].as_str().unwrap();
                            assert!(
                                known(key),
                                "{}: sets {key}, which no binary reads",
                                file.display()
                            );
                        }
                        for probe in ["livenessProbe", "readinessProbe"] {
                            if !c[probe].is_null() {
                                let path = c[probe]["httpGet"]["path"].as_str().unwrap();
                                assert!(
                                    ["/healthz", "/readyz"].contains(&path),
                                    "{probe} on {path}"
                                );
                            }
                        }
                    }
                    if doc["metadata"]["name"] == "adbudget-worker" {
                        worker_grace = pod["terminationGracePeriodSeconds"].as_u64();
                    }
                }
                _ => {}
            }
        }
    }
    assert_eq!(containers, 4, "api, worker, beat and the migration job");
    let (timeout, grace) = (shutdown_timeout.unwrap(), worker_grace.unwrap());
    assert!(
        grace > timeout,
        "the worker's grace period ({grace}s) covers its shutdown timeout ({timeout}s)"
    );
}

#[test]
fn compose_requires_a_database_password() {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let uses: Vec<&str> = text
        .match_indices("${POSTGRES_PASSWORD")
        .map(|(i, _)| &text[i..])
        .collect();
    assert!(!uses.is_empty());
    for u in uses {
        assert!(
            u.starts_with("${POSTGRES_PASSWORD:?"),
            "POSTGRES_PASSWORD has a default: {}",
            u.lines().next().unwrap_or_default()
        );
    }
}

#[test]
fn no_secret_value_ships_in_the_kubernetes_manifests() {
    // The Secret is generated from the operator's secrets.env (deploy/secrets.env.example); .ci/run
    // shows that an overlay without it does not render.
    let example = std::fs::read_to_string(root().join("deploy/secrets.env.example")).unwrap();
    for line in example
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
    {
        let (key, value) = line.split_once('=').unwrap();
        assert!(
            known(key),
            "secrets.env.example sets {key}, which no binary reads"
        );
        if key == "ADBUDGET_SECRET_KEY" {
            assert!(
                value.is_empty(),
                "an example signing key would be used as is"
            );
        }
    }
    for overlay in ["dev", "production"] {
        let k = std::fs::read_to_string(
            root().join(format!("deploy/overlays/{overlay}/kustomization.yaml")),
        )
        .unwrap();
        assert!(
            k.contains("secrets.env"),
            "{overlay} generates its Secret from secrets.env"
        );
    }
    assert!(!root().join("deploy/base/secret.yaml").exists());
}

#[test]
fn env_example_documents_every_variable() {
    let text = std::fs::read_to_string(root().join(".env.example")).unwrap();
    let documented: BTreeSet<&str> = text
        .lines()
        .map(|l| l.trim_start_matches('#').trim())
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .filter(|k| k.chars().all(|c| c.is_ascii_uppercase() || c == '_') && !k.is_empty())
        .collect();
    for var in VARIABLES {
        assert!(documented.contains(var), ".env.example documents {var}");
    }
    for var in &documented {
        assert!(
            known(var),
            ".env.example mentions {var}, which no binary reads"
        );
    }
}

#[test]
fn the_grafana_dashboard_queries_real_metrics() {
    use adbudget_core::telemetry::METRIC_NAMES;
    let text =
        std::fs::read_to_string(root().join("deploy/grafana/adbudget-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if let Some(name) = word.strip_prefix("adbudget_") {
                    let name = format!("adbudget_{name}");
                    let base = ["_bucket", "_sum", "_count"]
                        .iter()
                        .fold(name.clone(), |n, s| {
                            n.strip_suffix(s).map(str::to_owned).unwrap_or(n)
                        });
                    assert!(
                        METRIC_NAMES.contains(&base.as_str()),
                        "the dashboard queries {name}, which nothing emits"
                    );
                    used.insert(base);
                }
            }
        }
    }
    for name in METRIC_NAMES {
        assert!(used.contains(*name), "the dashboard shows {name}");
    }
}
