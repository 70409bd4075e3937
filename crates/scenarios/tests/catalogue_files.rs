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
