//! The oracle runs the emulators' own rules and nothing else: its modules
//! (and the scenario data they read) import only the pure models, labkit and
//! each other: no tokio, no emulator, no harness. Cargo checks the models'
//! own purity (`nginx-model` and `go-model` do not depend on tokio); this
//! checks the scenarios crate's share.

const PURE: &[(&str, &str)] = &[
    ("oracle", include_str!("../src/oracle.rs")),
    ("verdict", include_str!("../src/verdict.rs")),
    ("setup", include_str!("../src/setup.rs")),
    ("scenario", include_str!("../src/scenario.rs")),
];

// schemars: a derive that describes the data (the published JSON Schema), no I/O.
const ALLOWED: &[&str] = &["std", "serde", "schemars", "toml", "thiserror", "go_model", "nginx_model", "labkit", "super", "crate::oracle", "crate::verdict", "crate::setup", "crate::scenario"];

#[test]
fn the_oracle_modules_import_only_the_models() {
    let mut bad = Vec::new();
    for (module, src) in PURE {
        for (n, line) in src.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for forbidden in ["tokio", "harness", "upstream_sim", "proxy::", "crate::runner"] {
                if code.contains(forbidden) {
                    bad.push(format!("{module}.rs:{}: {forbidden}: {line}", n + 1));
                }
            }
            let t = code.trim_start();
            if let Some(path) = t.strip_prefix("use ").or_else(|| t.strip_prefix("pub use ")) {
                if !ALLOWED.iter().any(|a| path.starts_with(a)) {
                    bad.push(format!("{module}.rs:{}: imports {path}", n + 1));
                }
            }
        }
    }
    assert!(bad.is_empty(), "the oracle's modules must stay pure:\n{}", bad.join("\n"));
}
