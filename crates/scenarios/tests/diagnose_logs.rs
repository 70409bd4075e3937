//! `scenarios diagnose` on the logs the catalogue's own runs write.
//!
//! * `diagnose::<backend>::<scenario>`: every catalogue scenario runs on the
//!   emulators (`builtin`) and on real nginx in front of the Go emulator
//!   (`nginx`); its error.log and access.log go through `diagnose`, which
//!   must put every request the client saw fail (502, 504, cut) and every
//!   retried failure down to the scenario's own `mechanism`, and a remedy
//!   twin's requests down to none beyond the failures its file expects
//!   (max-fails-cascade-remedy keeps the panic, only no longer marks the
//!   servers down). What counts as failed is what the run
//!   observed, not a table here. Where the logs cannot tell the mechanism
//!   from another (its companion lines, say refused connects around a
//!   shutdown, are absent), it must be named as a look-alike of the pick.
//! * `diagnose::<backend>::interleaved::*`: several scenarios run at once;
//!   their logs, merged line by line in time order, must give exact counts
//!   per mechanism.
//!
//! Without nginx the `nginx` trials are ignored with the reason;
//! BADGATEWAY_REQUIRE_NGINX=1 (set by .ci/run) makes them fail instead.

mod common;

use harness::require;
use libtest_mimic::{Completion, Failed, Trial};
use scenarios::diagnose::{self, signature, FormatFrom, Report};
use scenarios::runner::{self, ProxyBackend, RunOptions, RunResult, UpstreamBackend};
use scenarios::scenario::Scenario;
use scenarios::{catalogue, report};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let all = match catalogue::all() {
        Ok(all) => all,
        Err(e) => return libtest_mimic::run(&common::arguments(), vec![Trial::test("diagnose::catalogue", move || Err(e.into()))]).exit_code(),
    };
    let mut trials = Vec::new();
    for (backend, proxy) in [("builtin", ProxyBackend::Builtin), ("nginx", ProxyBackend::Nginx)] {
        for s in &all {
            let s = s.clone();
            trials.push(Trial::ignorable_test(format!("diagnose::{backend}::{}", common::trial_name(&s.name)), move || one_scenario(&s, proxy)));
        }
        for group in INTERLEAVED {
            let names: Vec<Scenario> = group.iter().map(|n| all.iter().find(|s| s.name == *n).expect("in the catalogue").clone()).collect();
            let label = group.iter().map(|n| common::trial_name(n)).collect::<Vec<_>>().join("+");
            trials.push(Trial::ignorable_test(format!("diagnose::{backend}::interleaved::{label}"), move || interleaved(&names, proxy)));
        }
    }
    libtest_mimic::run(&common::arguments(), trials).exit_code()
}

/// Scenarios run at the same time, on paths of their own (the logs of
/// separate proxies share connection numbers, which one nginx never does).
const INTERLEAVED: &[&[&str]] = &[&["idle-race", "write-timeout", "panic", "partial-write"], &["crash", "proxy-read-timeout", "panic-unread-body"]];

fn options(proxy: ProxyBackend) -> Result<RunOptions, Completion> {
    if proxy == ProxyBackend::Nginx {
        if let Err(m) = require::nginx() {
            return match require::trial_outcome(m) {
                Ok(c) => Err(c),
                Err(f) => panic!("{}", f.message().unwrap_or("nginx required")),
            };
        }
    }
    Ok(RunOptions { proxy, upstream: UpstreamBackend::Builtin, ..RunOptions::default() })
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("badgateway-diagnose-{}-{n}-{label}", std::process::id()));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn diagnose_dir(dir: &Path) -> Result<Report, String> {
    diagnose::run_files(Some(&dir.join("error.log")), Some(&dir.join("access.log")), &FormatFrom::Text(harness::nginx::LAB_FORMAT.into()), diagnose::Options::default()).map_err(|e| e.to_string())
}

/// What the run saw: requests the client saw fail, and failed attempts
/// nginx retried away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Seen {
    visible: u64,
    retried: u64,
}

fn seen(r: &RunResult) -> Seen {
    let mut s = Seen::default();
    for o in &r.observations {
        // A body error line counts too: the logs cannot tell a cut from a
        // whole length-delimited body nginx read on past (a reset after an
        // early 401, early-answer-unread-body).
        let body_error = o.errors.iter().any(|e| e.ends_with("-body"));
        // nginx's 500 after a failed auth_request subrequest.
        let auth_refused = o.status == Some(500) && o.errors.iter().any(|e| e == "auth-status");
        if matches!(o.status, Some(502 | 504)) || o.truncated || body_error || auth_refused {
            s.visible += 1;
        } else if o.upstream_status.iter().any(|&u| matches!(u, 502 | 504)) {
            s.retried += 1;
        }
    }
    s
}

fn found(rep: &Report, id: &str) -> Seen {
    rep.finding(id).map_or(Seen::default(), |f| Seen { visible: f.tally.visible(), retried: f.tally.requests - f.tally.visible() })
}

/// Requests whose expectations say the client sees a 502, 504 or a cut.
fn declared_failures(s: &Scenario) -> u64 {
    s.requests.iter().filter(|g| matches!(g.expect.status, Some(502 | 504)) || g.expect.truncated == Some(true)).map(|g| u64::from(g.count)).sum()
}

fn one_scenario(s: &Scenario, proxy: ProxyBackend) -> Result<Completion, Failed> {
    let opts = match options(proxy) {
        Ok(o) => o,
        Err(c) => return Ok(c),
    };
    let dir = TempDir::new(&s.name);
    let r = common::block_on(runner::run_keeping_logs(s, &opts, &dir.0)).map_err(|e| e.to_string())?;
    if let Some(why) = &r.skipped {
        return Ok(Completion::ignored_with(why.clone()));
    }
    let rep = diagnose_dir(&dir.0)?;
    let show = || format!("{}\n--- the run:\n{}", diagnose::render::text(&rep), report::verdict(&r));
    let (want, (visible, retried)) = (seen(&r), rep.totals());
    if !rep.unexplained.is_empty() {
        return Err(format!("requests left unexplained:\n{}", show()).into());
    }
    if (visible, retried) != (want.visible, want.retried) {
        return Err(format!("the run saw {want:?}, diagnose counted {visible} visible and {retried} retried\n{}", show()).into());
    }
    if s.is_remedy() {
        // A remedy twin fails only where its own file says so: a fix for
        // what follows a failure (servers marked down, a retried timeout)
        // leaves the failure itself, declared in its expectations.
        if visible != declared_failures(s) {
            return Err(format!("a remedy twin: no request may be put down to a failure mechanism beyond the {} its expectations declare\n{}", declared_failures(s), show()).into());
        }
        return Ok(Completion::Completed);
    }
    if want == Seen::default() {
        // Nothing failed where a log could see it (partial-write-http10's
        // silent truncation): nothing to name.
        return if rep.findings.is_empty() { Ok(Completion::Completed) } else { Err(format!("nothing failed, yet:\n{}", show()).into()) };
    }
    if found(&rep, &s.mechanism) == want && rep.findings.len() == 1 {
        return Ok(Completion::Completed);
    }
    // A mechanism whose telling lines are not in these logs may only be
    // a look-alike of what was named. So may one whose failure nginx logs
    // exactly as another's: early-answer-unread-body's 502 (writev() failed
    // (104) on a POST the handler ran for) is panic-unread-body's, line,
    // timing and method; its telling 401s are not in a run that failed.
    let ms = signature::mechanisms(&catalogue::all().map_err(|e| e.to_string())?);
    let m = ms.iter().find(|m| m.id == s.mechanism).ok_or("mechanism")?;
    let same_lines = s.mechanism == "early-answer-unread-body";
    let lookalike = (!m.companions.is_empty() || same_lines) && rep.findings.len() == 1 && rep.findings[0].tally.lookalikes.get(&s.mechanism) == Some(&want.visible.max(1));
    if lookalike && rep.findings[0].tally.requests == want.visible + want.retried {
        return Ok(Completion::Completed);
    }
    Err(format!("expected every failure put down to {} ({want:?})\n{}", s.mechanism, show()).into())
}

fn interleaved(group: &[Scenario], proxy: ProxyBackend) -> Result<Completion, Failed> {
    let opts = match options(proxy) {
        Ok(o) => o,
        Err(c) => return Ok(c),
    };
    let dirs: Vec<TempDir> = group.iter().map(|s| TempDir::new(&s.name)).collect();
    let runs = common::block_on(async {
        let futs = group.iter().zip(&dirs).map(|(s, d)| runner::run_keeping_logs(s, &opts, &d.0));
        futures_join(futs).await
    });
    let mut want: BTreeMap<String, Seen> = BTreeMap::new();
    for (s, r) in group.iter().zip(runs) {
        let r = r.map_err(|e| e.to_string())?;
        if let Some(why) = &r.skipped {
            return Ok(Completion::ignored_with(format!("{}: {why}", s.name)));
        }
        let w = want.entry(s.mechanism.clone()).or_default();
        let x = seen(&r);
        w.visible += x.visible;
        w.retried += x.retried;
    }
    let merged = TempDir::new("merged");
    merge_by_time(&dirs, "error.log", &merged.0, |l| l.get(..19).unwrap_or("").to_string());
    merge_by_time(&dirs, "access.log", &merged.0, |l| format!("{:>20}", l.split(' ').next().unwrap_or("")));
    let rep = diagnose_dir(&merged.0)?;
    let got: BTreeMap<String, Seen> = rep.findings.iter().map(|f| (f.mechanism.clone(), found(&rep, &f.mechanism))).collect();
    if got != want || !rep.unexplained.is_empty() {
        return Err(format!("per mechanism: want {want:?}\n got {got:?}\n{}", diagnose::render::text(&rep)).into());
    }
    Ok(Completion::Completed)
}

/// All futures, polled together on the current task.
async fn futures_join<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futs.map(Box::pin).collect();
    let mut out = Vec::new();
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, f) in pending.iter_mut().enumerate() {
            if let Some(fut) = f {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *f = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().map(|r| r.expect("ready")));
    out
}

/// Merges `name` from every dir into `to/name`, by `key` (a time), each
/// file's own order kept for equal keys.
fn merge_by_time(dirs: &[TempDir], name: &str, to: &Path, key: impl Fn(&str) -> String) {
    let mut lines: Vec<(String, usize, usize, String)> = Vec::new();
    for (fi, d) in dirs.iter().enumerate() {
        let text = std::fs::read_to_string(d.0.join(name)).unwrap_or_default();
        for (li, l) in text.lines().enumerate() {
            lines.push((key(l), fi, li, l.to_string()));
        }
    }
    lines.sort();
    let body: String = lines.into_iter().map(|(_, _, _, l)| l + "\n").collect();
    std::fs::write(to.join(name), body).expect("merged log");
}
