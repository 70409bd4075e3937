//! Real-world nginx.conf: each directory of fixtures/nginx-corpus/ (a main
//! nginx.conf, its includes, and `expect`) is checked by the proxy's `-t`
//! path (`proxy::files::parse` + `proxy::check_config`, the same as
//! `proxy -t`) and by real `nginx -t`. The proxy must accept exactly what
//! nginx accepts and reject the rest at nginx's FILE:LINE; `expect` records
//! nginx 1.22.1's verdict so the proxy is checked even where nginx is not
//! installed (then the nginx half is ignored with the reason, or fails
//! with BADGATEWAY_REQUIRE_NGINX=1).
//!
//! Each entry is copied to a scratch directory first: absolute Debian
//! paths (/etc/nginx/, /var/log/nginx/, /run/nginx.pid) are rewritten into
//! it, and every `listen` address becomes a 127.0.0.1 port of its own,
//! because `nginx -t` binds its listening sockets.

use harness::require;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/nginx-corpus")
}

fn main() -> ExitCode {
    let mut entries: Vec<String> = std::fs::read_dir(corpus())
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    let mut trials = vec![Trial::test("corpus_has_eleven_accepted_and_three_rejected", {
        let entries = entries.clone();
        move || {
            let expects: Vec<String> = entries
                .iter()
                .map(|e| {
                    std::fs::read_to_string(corpus().join(e).join("expect")).unwrap_or_default()
                })
                .collect();
            let ok = expects.iter().filter(|x| x.trim() == "ok").count();
            if ok < 11 || expects.len() - ok < 3 {
                return Err(
                    format!("{ok} accepted, {} rejected entries", expects.len() - ok).into(),
                );
            }
            Ok(())
        }
    })];
    // The two trials of an entry run in parallel and both bind its listen
    // addresses (`-t` binds them): each gets its own block of ports.
    let n = entries.len();
    for (i, e) in entries.iter().enumerate() {
        let (a, b) = (e.clone(), e.clone());
        trials.push(Trial::test(
            format!("proxy::{}", e.replace('-', "_")),
            move || proxy_matches_expect(&a, i),
        ));
        trials.push(Trial::ignorable_test(
            format!("nginx::{}", e.replace('-', "_")),
            move || nginx_agrees(&b, n + i),
        ));
    }
    libtest_mimic::run(&Arguments::from_args(), trials).exit_code()
}

/// A verdict: accepted, or the message and where (`FILE:LINE` relative to
/// the entry's directory; no place for nginx's post-parse checks).
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Ok,
    Error {
        msg: String,
        place: Option<(String, usize)>,
    },
}

impl Verdict {
    fn parse(s: &str, dir: &str) -> Verdict {
        let s = s.trim();
        if s == "ok" {
            return Verdict::Ok;
        }
        let s = s.strip_prefix("error: ").unwrap_or(s).replace("@DIR@", dir);
        match s.rfind(" in ") {
            Some(i) => {
                let (msg, place) = (&s[..i], &s[i + 4..]);
                match place
                    .rsplit_once(':')
                    .and_then(|(f, l)| Some((f, l.parse().ok()?)))
                {
                    Some((f, l)) => Verdict::Error {
                        msg: msg.to_string(),
                        place: Some((
                            f.strip_prefix(&format!("{dir}/")).unwrap_or(f).to_string(),
                            l,
                        )),
                    },
                    None => Verdict::Error {
                        msg: s.to_string(),
                        place: None,
                    },
                }
            }
            None => Verdict::Error {
                msg: s.to_string(),
                place: None,
            },
        }
    }
}

/// The entry copied to `scratch/conf` with paths and listens rewritten;
/// returns the main file. Ports: 18600 + 20 × entry index + n.
fn stage(entry: &str, index: usize, scratch: &Path) -> Result<PathBuf, Failed> {
    let conf = scratch.join("conf");
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(&conf)?;
    let mut ports: BTreeMap<String, u16> = BTreeMap::new();
    copy(
        &corpus().join(entry),
        &conf,
        &conf,
        scratch,
        index,
        &mut ports,
    )?;
    Ok(conf.join("nginx.conf"))
}

fn copy(
    from: &Path,
    to: &Path,
    conf: &Path,
    scratch: &Path,
    index: usize,
    ports: &mut BTreeMap<String, u16>,
) -> Result<(), Failed> {
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            std::fs::create_dir_all(&dst)?;
            copy(&src, &dst, conf, scratch, index, ports)?;
            continue;
        }
        let text = std::fs::read_to_string(&src)?;
        let text = text
            .replace("/etc/nginx/", &format!("{}/", conf.display()))
            .replace("/var/log/nginx/", &format!("{}/", scratch.display()))
            .replace(
                "/run/nginx.pid",
                &format!("{}/nginx.pid", scratch.display()),
            );
        std::fs::write(&dst, rewrite_listens(&text, index, ports))?;
    }
    Ok(())
}

/// `listen ADDR ...` → `listen 127.0.0.1:PORT ...`, one port per distinct ADDR.
fn rewrite_listens(text: &str, index: usize, ports: &mut BTreeMap<String, u16>) -> String {
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if let Some(rest) = t
            .strip_prefix("listen")
            .filter(|r| r.starts_with([' ', '\t']))
        {
            let rest = rest.trim_start();
            let end = rest.find([' ', '\t', ';']).unwrap_or(rest.len());
            let addr = &rest[..end];
            let n = ports.len() as u16;
            let port = *ports
                .entry(addr.to_string())
                .or_insert(18600 + 20 * index as u16 + n);
            out.push_str(&line[..line.len() - t.len()]);
            out.push_str(&format!("listen 127.0.0.1:{port}{}", &rest[end..]));
        } else {
            out.push_str(line);
        }
    }
    out
}

fn scratch(entry: &str, who: &str) -> PathBuf {
    std::env::temp_dir().join(format!("conf-corpus-{}-{entry}-{who}", std::process::id()))
}

/// The proxy's `-t` on the staged entry, as a verdict relative to it.
fn proxy_t(main: &Path, prefix: &Path, dir: &str) -> Verdict {
    std::fs::create_dir_all(prefix).ok();
    let cfg = match proxy::files::read_conf(main, prefix) {
        Ok(c) => c,
        Err(e) => return Verdict::parse(&e, dir),
    };
    let opts = proxy::ProxyOptions {
        prefix: prefix.to_path_buf(),
        ..proxy::ProxyOptions::default()
    };
    match proxy::check_config(&cfg, &opts) {
        Ok(()) => Verdict::Ok,
        Err(e) => Verdict::parse(&e.to_string(), dir),
    }
}

fn proxy_matches_expect(entry: &str, index: usize) -> Result<(), Failed> {
    let s = scratch(entry, "proxy");
    let main = stage(entry, index, &s)?;
    let dir = s.join("conf").display().to_string();
    let want = Verdict::parse(
        &std::fs::read_to_string(corpus().join(entry).join("expect"))?,
        &dir,
    );
    let got = proxy_t(&main, &s.join("prefix"), &dir);
    let _ = std::fs::remove_dir_all(&s);
    if got != want {
        return Err(format!("proxy -t: {got:?}\nexpected (nginx 1.22.1): {want:?}").into());
    }
    Ok(())
}

fn nginx_agrees(entry: &str, index: usize) -> Result<Completion, Failed> {
    let bin = match require::nginx() {
        Ok(b) => b,
        Err(m) => return require::trial_outcome(m),
    };
    let s = scratch(entry, "nginx");
    let main = stage(entry, index, &s)?;
    let dir = s.join("conf").display().to_string();
    let prefix = s.join("prefix");
    std::fs::create_dir_all(&prefix)?;
    let out = Command::new(bin)
        .args(["-t", "-q", "-p"])
        .arg(format!("{}/", prefix.display()))
        .args(["-e", "error.log", "-c"])
        .arg(&main)
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let nginx = if out.status.success() {
        Verdict::Ok
    } else {
        let first = err
            .lines()
            .find(|l| l.contains("[emerg]"))
            .unwrap_or("")
            .to_string();
        Verdict::parse(
            first.split_once("[emerg] ").map(|x| x.1).unwrap_or(&first),
            &dir,
        )
    };
    let proxy = proxy_t(&main, &s.join("proxy-prefix"), &dir);
    let want = Verdict::parse(
        &std::fs::read_to_string(corpus().join(entry).join("expect"))?,
        &dir,
    );
    let _ = std::fs::remove_dir_all(&s);
    let same_outcome = match (&nginx, &proxy) {
        (Verdict::Ok, Verdict::Ok) => true,
        (Verdict::Error { place: a, .. }, Verdict::Error { place: b, .. }) => a == b,
        _ => false,
    };
    if !same_outcome {
        return Err(format!("nginx -t: {nginx:?}\nproxy -t: {proxy:?}").into());
    }
    if nginx != want {
        return Err(format!("nginx -t: {nginx:?}\nexpect file: {want:?} (update fixtures/nginx-corpus/{entry}/expect)").into());
    }
    Ok(Completion::Completed)
}
