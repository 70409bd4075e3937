//! The scenario catalogue: the TOML files in `catalogue/`, compiled in.

use crate::scenario::Scenario;
use crate::Error;

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
    "partial-write",
    "partial-write-remedy",
    "partial-write-http10",
    "idle-race",
    "idle-race-remedy",
    "idle-race-non-idempotent",
    "idle-race-no-retry",
    "idle-race-no-retry-remedy",
    "idle-race-natural",
    "idle-race-natural-remedy",
    "idle-fallback",
    "idle-fallback-remedy",
    "no-keepalive",
    "panic",
    "panic-remedy",
    "panic-unread-body",
    "panic-unread-body-remedy",
    "crash",
    "crash-remedy",
    "graceful-shutdown",
    "graceful-shutdown-remedy",
    "backlog-overflow",
    "backlog-overflow-remedy",
];

/// Every scenario, in [`FILES`] order.
pub fn all() -> Result<Vec<Scenario>, Error> {
    Ok(FILES.iter().map(|(name, src)| Scenario::from_toml(src, &format!("catalogue/{name}.toml"))).collect::<Result<_, _>>()?)
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
                    assert_ne!(r.expect.status, Some(502), "remedy {} expects a 502", t.name);
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
