//! External programs a test needs (chromium, xmllint): where to find them,
//! and what a test does without one: ignored with the reason, or failed
//! where CI requires the program (`BADGATEWAY_REQUIRE_…=1`).

use libtest_mimic::{Completion, Failed};
use std::path::PathBuf;

/// `$var` when set (it must be a file), else the first of `names` on PATH
/// or in /usr/bin; `install` says how to get it.
pub fn find(var: &str, names: &[&str], install: &str) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(format!("${var} {} is not a file", p.display())) };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("needs {} ({install}; or ${var})", names[0]))
}

/// The outcome of a test whose program is missing.
pub fn missing(require: &str, why: String) -> Result<Completion, Failed> {
    if std::env::var(require).as_deref() == Ok("1") {
        Err(format!("{why} (required here by {require}=1)").into())
    } else {
        Ok(Completion::ignored_with(why))
    }
}
