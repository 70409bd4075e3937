//! fixtures/nginx.conf is a real nginx config: `nginx -t` accepts it. And
//! the directives the proxy accepts as no-ops (`noop::<name>`): each
//! snippet, in its context, is accepted or refused by real `nginx -t` and by
//! the proxy's `-t` reading alike (the same `[emerg]` text), and an accepted
//! one is listed by `proxy -t` as not emulated unless it is one the proxy
//! has by construction (`zone`, `resolver`, `resolver_timeout`) or runs
//! (`worker_processes`: its event loops).
//! Without nginx the trials are reported as ignored, with the reason; with
//! BADGATEWAY_REQUIRE_NGINX=1 they fail instead.

use harness::require;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use std::process::ExitCode;

/// Where a snippet goes.
#[derive(Clone, Copy, Debug)]
enum At {
    Main,
    Events,
    Http,
    Server,
    Location,
    Upstream,
}

/// (trial name, context, snippet, listed by `proxy -t` when accepted).
const NOOPS: &[(&str, At, &str, bool)] = &[
    ("worker_processes", At::Main, "worker_processes 2;", false),
    ("worker_processes_auto", At::Main, "worker_processes auto;", false),
    ("worker_processes_bad", At::Main, "worker_processes many;", true),
    ("pid", At::Main, "pid run.pid;", true),
    ("daemon", At::Main, "daemon off;", true),
    ("master_process", At::Main, "master_process off;", true),
    ("worker_rlimit_nofile", At::Main, "worker_rlimit_nofile 4096;", true),
    ("worker_connections", At::Events, "worker_connections 512;", true),
    ("worker_connections_in_http", At::Http, "worker_connections 512;", true),
    ("multi_accept", At::Events, "multi_accept on;", true),
    ("use_epoll", At::Events, "use epoll;", true),
    ("default_type", At::Http, "default_type application/octet-stream;", true),
    ("sendfile", At::Http, "sendfile on;", true),
    ("sendfile_bad_flag", At::Http, "sendfile maybe;", true),
    ("tcp_nopush", At::Http, "tcp_nopush on;", true),
    ("tcp_nodelay", At::Location, "tcp_nodelay off;", true),
    ("proxy_buffering", At::Location, "proxy_buffering off;", false),
    ("proxy_max_temp_file_size", At::Location, "proxy_max_temp_file_size 0;", false),
    ("proxy_max_temp_file_size_2g", At::Location, "proxy_max_temp_file_size 2g;", false),
    ("proxy_max_temp_file_size_2048m", At::Location, "proxy_max_temp_file_size 2048m;", false),
    ("proxy_max_temp_file_size_small", At::Location, "proxy_max_temp_file_size 1k;", false),
    ("proxy_max_temp_file_size_small_buffers", At::Location, "proxy_buffer_size 1k; proxy_buffers 4 1k; proxy_max_temp_file_size 1k;", false),
    ("proxy_temp_file_write_size", At::Location, "proxy_temp_file_write_size 16k;", false),
    ("proxy_temp_file_write_size_small", At::Server, "proxy_temp_file_write_size 2k;", false),
    ("proxy_temp_path_levels", At::Location, "proxy_temp_path pt2 1 2;", false),
    ("proxy_temp_path_levels_past_ten", At::Location, "proxy_temp_path pt3 5 5 1;", true),
    ("proxy_temp_path_levels_ten", At::Location, "proxy_temp_path pt4 5 5;", false),
    ("proxy_ignore_headers", At::Location, "proxy_ignore_headers x-accel-buffering;", false),
    ("proxy_ignore_headers_others", At::Location, "proxy_ignore_headers X-Accel-Buffering Expires; proxy_ignore_headers Set-Cookie;", true),
    ("proxy_ignore_headers_bad", At::Location, "proxy_ignore_headers X-Nope;", true),
    ("client_keepalive_timeout", At::Server, "keepalive_timeout 65 60;", true),
    ("client_header_timeout", At::Http, "client_header_timeout 10s;", true),
    ("send_timeout", At::Location, "send_timeout 30s;", true),
    ("gzip", At::Http, "gzip on; gzip_types text/plain application/json; gzip_min_length 256;", true),
    ("types", At::Http, "types { text/html html; application/json json; }", true),
    ("server_names_hash_bucket_size", At::Http, "server_names_hash_bucket_size 64;", true),
    ("proxy_redirect", At::Location, "proxy_redirect off;", true),
    ("proxy_hide_header", At::Location, "proxy_hide_header X-Powered-By;", true),
    ("proxy_cache_bypass", At::Location, "proxy_cache_bypass $http_pragma;", true),
    ("limit_req_zone", At::Http, "limit_req_zone $binary_remote_addr zone=one:1m rate=10r/s;", true),
    ("limit_req_zone_unknown_zone_in_location", At::Location, "limit_req zone=nope;", true),
    ("map", At::Http, "map $http_upgrade $connection_upgrade { default upgrade; '' close; }", true),
    ("allow_deny", At::Location, "allow 127.0.0.1; deny all;", true),
    ("expires", At::Location, "expires 1h;", true),
    ("charset", At::Server, "charset utf-8;", true),
    ("if_in_server", At::Server, "if ($request_method = POST) { set $p 1; }", true),
    ("if_bad_condition", At::Location, "if $uri { }", true),
    ("client_body_temp_path", At::Http, "client_body_temp_path body 1 2;", true),
    ("zone", At::Upstream, "zone u 64k;", false),
    ("zone_without_size", At::Upstream, "zone u;", false),
    ("resolver", At::Http, "resolver 127.0.0.1 valid=30s ipv6=off;", false),
    ("resolver_timeout", At::Location, "resolver_timeout 5s;", false),
];

/// Known differences (ARCHITECTURE.md, "Known differences"): checks nginx
/// makes after parsing, for modules outside the 502 model, that the proxy
/// does not make. The trial checks that nginx still refuses with this text
/// and the proxy still accepts, so a change on either side shows.
const KNOWN: &[(&str, &str)] = &[
    ("limit_req_zone_unknown_zone_in_location", "zero size shared memory zone \"nope\""),
    ("zone_without_size", "zero size shared memory zone \"u\""),
];

fn main() -> ExitCode {
    let mut trials = vec![Trial::ignorable_test("fixture_passes_real_nginx_t", fixture_passes_real_nginx_t)];
    for &(name, at, snippet, listed) in NOOPS {
        let known = KNOWN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
        trials.push(Trial::ignorable_test(format!("noop::{name}"), move || noop_agrees(name, at, snippet, listed, known)));
    }
    libtest_mimic::run(&Arguments::from_args(), trials).exit_code()
}

fn fixture_passes_real_nginx_t() -> Result<Completion, Failed> {
    let bin = match require::nginx() {
        Ok(b) => b,
        Err(m) => return require::trial_outcome(m),
    };
    let prefix = std::env::temp_dir().join(format!("nginx-t-{}", std::process::id()));
    std::fs::create_dir_all(&prefix)?;
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/nginx.conf");
    let out = std::process::Command::new(bin)
        .args(["-t", "-p"])
        .arg(format!("{}/", prefix.display()))
        .args(["-e", "error.log", "-c"])
        .arg(&fixture)
        .output();
    std::fs::remove_dir_all(&prefix).ok();
    let out = out?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("nginx -t rejected the fixture: {err}").into());
    }
    if !err.contains("test is successful") {
        return Err(format!("nginx -t did not say the test is successful: {err}").into());
    }
    Ok(Completion::Completed)
}

/// The snippet in a configuration that is otherwise fine for both.
fn noop_conf(at: At, snippet: &str) -> String {
    let put = |here: At| if std::mem::discriminant(&here) == std::mem::discriminant(&at) { snippet } else { "" };
    format!(
        "{}\nevents {{ {} }}\nhttp {{\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n access_log off;\n {}\n upstream u {{ server 127.0.0.1:9; {} }}\n server {{\n  listen 127.0.0.1:9;\n  {}\n  location / {{ proxy_pass http://u; {} }}\n }}\n}}\n",
        put(At::Main),
        put(At::Events),
        put(At::Http),
        put(At::Upstream),
        put(At::Server),
        put(At::Location)
    )
}

fn noop_agrees(name: &str, at: At, snippet: &str, listed: bool, known: Option<&str>) -> Result<Completion, Failed> {
    let bin = match require::nginx() {
        Ok(b) => b,
        Err(m) => return require::trial_outcome(m),
    };
    // One directory per trial (they run in parallel).
    let prefix = std::env::temp_dir().join(format!("nginx-t-noop-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&prefix);
    std::fs::create_dir_all(&prefix)?;
    let file = prefix.join("nginx.conf");
    std::fs::write(&file, noop_conf(at, snippet))?;
    let out = std::process::Command::new(bin)
        .args(["-t", "-p"])
        .arg(format!("{}/", prefix.display()))
        .args(["-e", "error.log", "-c"])
        .arg(&file)
        .output();
    let ours = proxy::files::read_conf(&file, &prefix);
    std::fs::remove_dir_all(&prefix).ok();
    let out = out?;
    let err = String::from_utf8_lossy(&out.stderr);
    // `nginx: [emerg] TEXT in FILE:LINE` → TEXT in FILE:LINE.
    let nginx_emerg = err.lines().find_map(|l| l.split_once("[emerg] ").map(|(_, t)| t.to_string()));
    match (out.status.success(), nginx_emerg, ours) {
        (false, Some(theirs), Ok(_)) if known == Some(theirs.as_str()) => Ok(Completion::Completed),
        (_, theirs, _) if known.is_some() => Err(format!("{snippet:?}: the known difference changed: nginx -t now says {theirs:?}").into()),
        (true, _, Ok(cfg)) => {
            let names = &cfg.not_emulated.0;
            let first = snippet.split_whitespace().next().unwrap_or("");
            let is_listed = names.iter().any(|n| n.split_whitespace().next() == Some(first));
            if is_listed != listed {
                return Err(format!("both accept {snippet:?}, but proxy -t {} it as not emulated (listed: {names:?})", if listed { "does not list" } else { "lists" }).into());
            }
            Ok(Completion::Completed)
        }
        (false, Some(theirs), Err(mine)) if theirs == mine => Ok(Completion::Completed),
        (ok, theirs, mine) => Err(format!("{snippet:?}: nginx -t {} ({theirs:?}), proxy -t {}", if ok { "accepts" } else { "refuses" }, match mine {
            Ok(_) => "accepts".to_string(),
            Err(e) => format!("refuses ({e})"),
        })
        .into()),
    }
}
