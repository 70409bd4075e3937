//! Every TOML file in catalogue/ is compiled in under its own name, and valid.

use scenarios::catalogue::{all, FILES};

#[test]
fn every_file_is_listed_and_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("catalogue");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .expect("catalogue dir")
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".toml").map(String::from))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = FILES.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    for s in &all().expect("valid catalogue") {
        assert!(FILES.iter().any(|(n, _)| *n == s.name), "file name = scenario name: {}", s.name);
    }
}

/// `--upstream-cmd --help` lists what a user's server must serve: every
/// path the catalogue requests (and the warm-up's `/ok` and `/sleep`).
#[test]
fn the_upstream_cmd_help_lists_every_path_the_catalogue_requests() {
    let help = harness::backend::UPSTREAM_CMD_HELP;
    let mut paths: Vec<String> = vec!["/ok".into(), "/sleep".into()];
    for s in &all().expect("valid catalogue") {
        paths.extend(s.requests.iter().map(|g| g.path.split('?').next().unwrap_or_default().to_string()));
    }
    paths.sort();
    paths.dedup();
    for p in paths {
        let listed = help.lines().any(|l| l.trim_start().starts_with(&p) && l.trim_start()[p.len()..].starts_with([' ', '?']));
        assert!(listed, "{p} is not in UPSTREAM_CMD_HELP");
    }
}
