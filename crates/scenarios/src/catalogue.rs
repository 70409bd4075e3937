//! The scenario catalogue: the TOML files in `catalogue/`, compiled in, or
//! a user's own files read at run time (`scenarios run FILE.toml`,
//! `scenarios all --catalogue DIR`).

use crate::scenario::Scenario;
use crate::Error;
use std::path::Path;

macro_rules! files {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../catalogue/", $name, ".toml")))),*]
    };
}

/// Every scenario file, problem before its remedy.
pub const FILES: &[(&str, &str)] = files![
    "write-timeout",
    "write-timeout-remedy",
    "write-timeout-keepalive",
    "write-timeout-keepalive-remedy",
    "stale-cached-connections",
    "stale-cached-connections-remedy",
    "proxy-read-timeout",
    "proxy-read-timeout-remedy",
    "read-timeout-retried",
    "read-timeout-retried-remedy",
    "sse-idle",
    "sse-idle-remedy",
    "partial-write",
    "partial-write-remedy",
    "partial-write-http10",
    "slow-client",
    "slow-client-remedy",
    "content-length-short",
    "content-length-short-remedy",
    "idle-race",
    "idle-race-remedy",
    "idle-race-non-idempotent",
    "idle-race-no-retry",
    "idle-race-no-retry-remedy",
    "idle-race-natural",
    "idle-race-natural-remedy",
    "idle-race-upgrade",
    "idle-race-upgrade-remedy",
    "idle-fallback",
    "idle-fallback-remedy",
    "read-header-timeout-idle",
    "read-header-timeout-idle-remedy",
    "no-keepalive",
    "panic",
    "panic-remedy",
    "panic-unread-body",
    "panic-unread-body-remedy",
    "early-answer-unread-body",
    "early-answer-unread-body-remedy",
    "localhost-ipv6",
    "localhost-ipv6-remedy",
    "crash",
    "crash-remedy",
    "reuseport-handoff",
    "reuseport-handoff-remedy",
    "graceful-shutdown",
    "graceful-shutdown-remedy",
    "backlog-overflow",
    "backlog-overflow-remedy",
    "fd-limit",
    "fd-limit-remedy",
    "port-exhaustion",
    "port-exhaustion-remedy",
    "max-fails-cascade",
    "max-fails-cascade-remedy",
    "too-big-header",
    "too-big-header-remedy",
    "auth-request-body",
    "auth-request-body-remedy",
];

/// Every scenario, in [`FILES`] order.
pub fn all() -> Result<Vec<Scenario>, Error> {
    Ok(FILES.iter().map(|(name, src)| Scenario::from_toml(src, &format!("catalogue/{name}.toml"))).collect::<Result<_, _>>()?)
}

/// One scenario file.
pub fn load_file(path: &Path) -> Result<Scenario, Error> {
    let src = std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    Ok(Scenario::from_toml(&src, &path.display().to_string())?)
}

/// Every `*.toml` file in `dir`, each problem followed by its remedies.
/// Names must be unique and every `remedy_of` must name a scenario there.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Read { path: dir.to_path_buf(), source })?;
    let mut files = Vec::new();
    for e in entries {
        let p = e.map_err(|source| Error::Read { path: dir.to_path_buf(), source })?.path();
        if p.extension().is_some_and(|x| x == "toml") && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::Catalogue(format!("{}: no *.toml scenario files", dir.display())));
    }
    let mut all: Vec<(Scenario, String)> = Vec::new();
    for f in &files {
        let s = load_file(f)?;
        if let Some((_, other)) = all.iter().find(|(o, _)| o.name == s.name) {
            return Err(Error::Catalogue(format!("{}: scenario name {:?} is already used by {other}", f.display(), s.name)));
        }
        all.push((s, f.display().to_string()));
    }
    for (s, f) in &all {
        if let Some(of) = &s.remedy_of {
            let Some((problem, _)) = all.iter().find(|(o, _)| &o.name == of) else {
                return Err(Error::Catalogue(format!("{f}: remedy_of {of:?}: no scenario of that name in {}", dir.display())));
            };
            // A remedy removes its problem's mechanism: one id for both.
            if problem.mechanism != s.mechanism {
                return Err(Error::Catalogue(format!("{f}: mechanism {:?}: a remedy shares its problem's mechanism ({of} has {:?})", s.mechanism, problem.mechanism)));
            }
        }
    }
    // Problem, then its remedies; otherwise by name.
    all.sort_by(|(a, _), (b, _)| {
        let key = |s: &Scenario| (s.remedy_of.clone().unwrap_or_else(|| s.name.clone()), s.is_remedy(), s.name.clone());
        key(a).cmp(&key(b))
    });
    Ok(all.into_iter().map(|(s, _)| s).collect())
}

/// A scenario by name from the built-in catalogue, or from a file when
/// `name` is a path (ends in `.toml` or names an existing file).
pub fn resolve(name: &str) -> Result<Scenario, Error> {
    let p = Path::new(name);
    if name.ends_with(".toml") || p.is_file() {
        load_file(p)
    } else {
        find(name)
    }
}

/// The scenario named `name`; if there is none, the names that contain it
/// or that it contains.
pub fn find(name: &str) -> Result<Scenario, Error> {
    let all = all()?;
    let suggestions = all.iter().map(|s| s.name.clone()).filter(|n| n.contains(name) || name.contains(n.as_str())).collect();
    all.into_iter().find(|s| s.name == name).ok_or_else(|| Error::UnknownScenario { name: name.to_string(), suggestions })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_502_scenario_has_a_remedy_twin_that_expects_no_502() {
        let all = all().unwrap();
        for s in all.iter().filter(|s| !s.is_remedy()) {
            let expects_502 = s.requests.iter().any(|r| r.expect.status == Some(502) || r.expect.status_in.as_ref().is_some_and(|v| v.contains(&502)));
            if !expects_502 {
                continue;
            }
            let twins: Vec<_> = all.iter().filter(|t| t.remedy_of.as_deref() == Some(s.name.as_str())).collect();
            assert!(!twins.is_empty(), "{} has no remedy twin", s.name);
            for t in twins {
                for r in &t.requests {
                    // The one 502 a remedy may keep is its problem's trigger,
                    // sent as the problem sends it (max-fails-cascade-remedy's
                    // panic: the fix is about what follows it).
                    let trigger = s.requests.iter().any(|p| (&p.method, &p.path, p.body, p.expect.status, &p.expect.upstream_status) == (&r.method, &r.path, r.body, r.expect.status, &r.expect.upstream_status));
                    assert!(r.expect.status != Some(502) || trigger, "remedy {} expects a 502", t.name);
                    assert!(r.expect.status.is_some() || r.expect.status_in.as_ref().is_some_and(|v| !v.contains(&502)), "remedy {} must pin its status", t.name);
                }
            }
        }
        for t in all.iter().filter(|s| s.is_remedy()) {
            let of = t.remedy_of.as_deref().unwrap();
            assert!(all.iter().any(|s| s.name == of), "{} is the remedy of unknown {of}", t.name);
        }
    }
}
