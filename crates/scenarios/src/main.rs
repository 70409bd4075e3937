//! `scenarios`: reproduce, explain and assert nginx → Go 502s.

use clap::{Args, Parser, Subcommand};
use scenarios::runner::{self, Programs, ProxyBackend, RunOptions, RunResult, UpstreamBackend, CONFORMANCE_PAIRS};
use scenarios::document::{self, Body, Document};
use scenarios::{catalogue, exit, html, matrix, report, Error};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const EXAMPLES: &str = "\
EXAMPLES:
  scenarios idle-race                      the main job: the idle race, its verdicts and timeline
  scenarios run my-case.toml               a scenario file of your own (scenarios schema)
  scenarios check --nginx-conf /etc/nginx/nginx.conf --go 'IdleTimeout=5s,WriteTimeout=30s'
                                           which 502s your settings allow, and the fix
  scenarios list                           every scenario, problem and remedy
  scenarios explain write-timeout          mechanism and fix in prose
  scenarios all --junit report.xml         the whole catalogue, JUnit for CI
  scenarios idle-race --proxy nginx        the same scenario against real nginx
  scenarios diagnose --error-log error.log --access-log access.log
                                           which mechanism your 502s are, and the fix
  scenarios matrix --methods GET,POST      502 rates over IdleTimeout × keepalive_timeout
  scenarios conformance                    built-in emulators vs real nginx and Go
  scenarios lab --fault pause              the docker-compose lab: both proxies side by side, a 504

Durations in scenarios are written at the articles' scale (WriteTimeout 3s);
runs use --scale 0.02 by default (3s → 60 ms). --scale 1 runs real seconds.
Exit status: 0 all expectations met, 1 an expectation failed, 2 bad usage or setup.";

/// Reproduces, explains and asserts why nginx returns 502 in front of Go
/// net/http servers. Runs on built-in emulators by default (no external
/// programs), or against real nginx and a real Go server.
#[derive(Parser)]
#[command(name = "scenarios", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Colour in the output: auto (on a terminal, unless NO_COLOR is set;
    /// CLICOLOR_FORCE=1 forces it), always, never.
    #[arg(long, value_enum, global = true, default_value = "auto")]
    color: report::Color,
}

/// What `scenarios schema` describes.
#[derive(Clone, Copy, clap::ValueEnum)]
enum SchemaOf {
    /// Scenario files (FILE.toml; docs/SCENARIO-FORMAT.md).
    Scenario,
    /// The JSON report of every command (`--json`).
    Report,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the scenarios.
    List,
    /// Print a scenario's mechanism and fix.
    Explain {
        /// A catalogue name or a scenario file (FILE.toml).
        name: String,
    },
    /// Run one scenario (also: `scenarios NAME`).
    Run {
        /// A catalogue name (`scenarios list`) or a scenario file (FILE.toml,
        /// format: docs/SCENARIO-FORMAT.md, `scenarios schema`).
        name: String,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Run the whole catalogue and print the wall time.
    All {
        /// Run the *.toml scenario files in DIR instead of the built-in catalogue.
        #[arg(long, value_name = "DIR")]
        catalogue: Option<PathBuf>,
        /// Scenarios run at once, each on its own ports (1: one after the
        /// other). Most of a scenario's time is waiting (handler sleeps,
        /// idle timeouts), so they overlap well; results are printed in
        /// catalogue order either way. Default: all at once on the
        /// built-in emulators (measured: the same verdicts as one at a
        /// time, with both cores busy too); one at a time when real nginx
        /// or Go run (their timing under load changes some verdicts).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        jobs: Option<u16>,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Print a JSON Schema: of scenario files (the default), or of the
    /// reports `--json` writes.
    ///
    /// `scenarios schema report` covers every command's report in one
    /// schema: each document has `schema_version`, `tool` {name, version}
    /// and `report`, which says what the rest is: `runs` (`scenarios NAME`,
    /// `run`, `all`, `conformance`), `matrix`, `check`, `diagnose` or `lab`.
    Schema {
        #[arg(value_enum, default_value = "scenario")]
        of: SchemaOf,
    },
    /// Your nginx.conf and Go settings: which 502/504 mechanisms apply, and the fix.
    ///
    /// For every location that proxies to an upstream, each mechanism the
    /// settings decide (the idle race, WriteTimeout against
    /// proxy_read_timeout, ...) is predicted by the lab's model with your
    /// exact values. Exit status 1 when one gives clients a 502, 504 or a
    /// cut response (a CI gate), 0 when all are safe, 2 for bad input.
    Check(CheckArgs),
    /// Your error.log and access.log: which mechanism gave each 502, 504,
    /// 499 and cut response, the evidence, and the fix.
    ///
    /// Reads nginx's error.log (every upstream [crit]/[error]/[warn]/[info]
    /// line) and access.log (any log_format), joins them per request and
    /// names the catalogue mechanism each failed or retried request fits
    /// (`scenarios list`), with a confidence, the evidence, the fix, bursts
    /// in time, and what the logs lack to decide. Files may be gzip. Exit
    /// status 0 when the logs were read (whatever they show), 2 for bad
    /// input (unreadable file, bad log format).
    #[command(after_help = DIAGNOSE_EXAMPLES)]
    Diagnose(DiagnoseArgs),
    /// 502 rates over Go IdleTimeout × nginx keepalive_timeout × method.
    Matrix(MatrixArgs),
    /// The natural idle race's 502s and retries per hour for your traffic:
    /// the window measured on the emulators × how often nginx reuses a
    /// connection idle that long, with the calculation shown and a check run.
    #[command(after_help = RATE_EXAMPLES)]
    Rate(RateArgs),
    /// Every scenario on the built-in emulators and on real nginx (and real
    /// Go where the scenario allows); prints the agreement table.
    Conformance {
        /// Scenarios run at once (each runs its three backend pairs one
        /// after the other, on its own ports and nginx prefix). Default 2:
        /// at run scale some verdicts rest on margins of 20 ms, which real
        /// nginx and Go keep only while they get a core when they need it
        /// (measured on 2 cores: 0 of 12 runs with a disagreement at 2
        /// jobs, 4 of 30 at 4, from idle-race-natural-remedy's 20 ms
        /// keepalive_timeout on real nginx).
        #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
        jobs: u16,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// With the docker-compose lab up: a scenario through real nginx and the
    /// Rust proxy in their containers, verdicts side by side; then network
    /// faults between the containers (--fault pause|drop) and their 504s.
    Lab(scenarios::lab::LabArgs),
    #[command(external_subcommand)]
    Scenario(Vec<String>),
}

#[derive(Args, Clone)]
struct ReportArgs {
    /// Write a JSON report to FILE ("-" for stdout).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a self-contained HTML report to FILE: verdict tables and SVG
    /// timelines (for `matrix`: heatmaps of the 502 rate).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Duration multiplier (article scale → run scale).
    #[arg(long, default_value_t = scenarios::scenario::DEFAULT_SCALE)]
    scale: f64,
    /// A run that was skipped (these backends cannot run the scenario)
    /// fails the command (exit 1) instead of being reported and passed over.
    #[arg(long)]
    fail_on_skip: bool,
}

impl ReportArgs {
    /// `--json -`: stdout carries only the JSON report.
    fn json_to_stdout(&self) -> bool {
        self.json.as_deref().is_some_and(|p| p.as_os_str() == "-")
    }

    fn checked_scale(&self) -> Result<f64, Error> {
        if self.scale > 0.0 && self.scale <= 10.0 {
            Ok(self.scale)
        } else {
            Err(Error::Usage(format!("--scale {}: must be in (0, 10]", self.scale)))
        }
    }
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Which proxy: the built-in nginx emulator or real nginx.
    #[arg(long, value_enum, default_value = "builtin")]
    proxy: ProxyBackend,
    /// Which upstream: the built-in Go emulator or a real Go server.
    #[arg(long, value_enum, default_value = "builtin")]
    upstream: UpstreamBackend,
    /// Print each run's timeline (on by default for a single scenario).
    #[arg(long)]
    timeline: bool,
    /// Do not print the timeline.
    #[arg(long, conflicts_with = "timeline")]
    no_timeline: bool,
    #[command(flatten)]
    programs: ProgramArgs,
    #[command(flatten)]
    report: ReportArgs,
}

impl RunArgs {
    fn options(&self) -> Result<RunOptions, Error> {
        self.programs.options(self.proxy, self.upstream, self.report.checked_scale()?)
    }
}

/// Which real programs run (each flag implies its backend).
#[derive(Args, Clone)]
struct ProgramArgs {
    /// Run this nginx binary (implies --proxy nginx; else $BADGATEWAY_NGINX,
    /// else nginx on PATH, /usr/sbin, /usr/local/sbin, /usr/bin). Its version
    /// (nginx -V) decides the defaults; too old for a directive is an error.
    #[arg(long, value_name = "PATH")]
    nginx: Option<PathBuf>,
    /// Build the Go reference server with this `go` (implies --upstream go;
    /// else $BADGATEWAY_GO, else go on PATH). Built once into
    /// $BADGATEWAY_CACHE_DIR, else $XDG_CACHE_HOME/badgateway-lab, else
    /// ~/.cache/badgateway-lab.
    #[arg(long, value_name = "PATH")]
    go: Option<PathBuf>,
    /// Your own server as the upstream: 'CMD {addr}' (see --help).
    #[arg(long, value_name = "CMD", long_help = harness::backend::UPSTREAM_CMD_HELP, conflicts_with = "go")]
    upstream_cmd: Option<harness::backend::CmdTemplate>,
}

impl ProgramArgs {
    /// The backends the flags imply, checked before anything runs: a
    /// program named explicitly that cannot run is a usage error.
    fn options(&self, proxy: ProxyBackend, upstream: UpstreamBackend, scale: f64) -> Result<RunOptions, Error> {
        let proxy = if self.nginx.is_some() { ProxyBackend::Nginx } else { proxy };
        let upstream = match (&self.upstream_cmd, &self.go) {
            (Some(_), _) if upstream != UpstreamBackend::Builtin => {
                return Err(Error::Usage(format!("--upstream-cmd runs your server: it cannot be combined with --upstream {}", format!("{upstream:?}").to_lowercase())));
            }
            (Some(_), _) => UpstreamBackend::Cmd,
            (None, Some(_)) => UpstreamBackend::Go,
            (None, None) => upstream,
        };
        let programs = Programs { nginx: self.nginx.clone(), go: self.go.clone(), upstream_cmd: self.upstream_cmd.clone() };
        if self.nginx.is_some() {
            proxy.available(&programs).map_err(|e| Error::Usage(format!("--nginx: {e}")))?;
        }
        if self.go.is_some() {
            upstream.available(&programs).map_err(|e| Error::Usage(format!("--go: {e}")))?;
        }
        Ok(RunOptions { proxy, upstream, scale, programs, rtt: None })
    }
}

#[derive(Parser)]
#[command(name = "scenarios NAME")]
struct ScenarioCli {
    name: String,
    #[command(flatten)]
    args: RunArgs,
    /// Colour in the output: auto, always, never.
    #[arg(long, value_enum)]
    color: Option<report::Color>,
}

#[derive(Args)]
struct CheckArgs {
    /// Your nginx.conf.
    #[arg(long, value_name = "FILE")]
    nginx_conf: PathBuf,
    /// Only this server (its server_name or a listen address as written).
    #[arg(long, value_name = "NAME")]
    server: Option<String>,
    /// Only this location (its path as written, e.g. /api/).
    #[arg(long, value_name = "PATH")]
    location: Option<String>,
    /// Go's http.Server settings: 'IdleTimeout=5s,ReadTimeout=10s,WriteTimeout=30s,ReadHeaderTimeout=0'.
    #[arg(long, value_name = "SETTINGS", required_unless_present = "go_config", conflicts_with = "go_config")]
    go: Option<String>,
    /// The same settings from a file (one Field=value per line, # comments).
    #[arg(long, value_name = "FILE")]
    go_config: Option<PathBuf>,
    /// Go's release: 1.19 (default) or 1.20 (any later one).
    #[arg(long, value_name = "VERSION", default_value = "1.19")]
    go_version: String,
    /// nginx's defaults: legacy (≤ 1.29.6, e.g. Debian's 1.22), modern
    /// (≥ 1.29.7), or auto: from the version of --nginx PATH (else
    /// $BADGATEWAY_NGINX, else the nginx on PATH or in /usr/sbin).
    #[arg(long, value_enum, default_value = "legacy")]
    profile: ProfileChoice,
    /// Also fail (exit 1) on mechanisms your code, deploys or load set off
    /// ("exposed": a panic, a crash, a slow handler), not only on those
    /// your settings cause ("FAILS").
    #[arg(long)]
    strict: bool,
    /// Also run each applicable mechanism with your settings and show the verdicts.
    #[arg(long)]
    run: bool,
    /// With --run: which proxy.
    #[arg(long, value_enum, default_value = "builtin", requires = "run")]
    proxy: ProxyBackend,
    /// With --run: which upstream.
    #[arg(long, value_enum, default_value = "builtin", requires = "run")]
    upstream: UpstreamBackend,
    /// This nginx binary: --profile auto reads its version, and --run runs
    /// it (implies --proxy nginx).
    #[arg(long, value_name = "PATH")]
    nginx: Option<PathBuf>,
    /// With --run: your own server as the upstream, 'CMD {addr}' (see `scenarios run --help`).
    #[arg(long, value_name = "CMD", requires = "run")]
    upstream_cmd: Option<harness::backend::CmdTemplate>,
    /// Write the findings as JSON to FILE ("-" for stdout).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// `--profile`: a release's defaults, or the installed nginx's.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ProfileChoice {
    Legacy,
    Modern,
    Auto,
}

impl ProfileChoice {
    /// The profile, and where it came from when `auto` read a binary.
    fn resolve(self, nginx: Option<&Path>) -> Result<(nginx_model::Profile, Option<String>), Error> {
        match self {
            ProfileChoice::Legacy => Ok((nginx_model::Profile::Legacy, None)),
            ProfileChoice::Modern => Ok((nginx_model::Profile::Modern, None)),
            ProfileChoice::Auto => {
                let p = harness::nginx::locate(nginx).map_err(|e| Error::Usage(format!("--profile auto needs an nginx binary: {e}")))?;
                Ok((p.profile(), Some(p.describe())))
            }
        }
    }
}

const RATE_EXAMPLES: &str = "\
EXAMPLES:
  scenarios rate --go-idle-timeout 5s --keepalive-timeout 60s --rps 50
  scenarios rate --go-idle-timeout 5s --rps 0.2 --method-mix GET=0.8,POST=0.2
  scenarios rate --go-idle-timeout 5s --rps 0.2 --rtt 1ms --json -

With nginx keepalive_timeout below Go's IdleTimeout the race cannot happen:
rate says so and predicts 0.";

const DIAGNOSE_EXAMPLES: &str = "\
EXAMPLES:
  scenarios diagnose --error-log /var/log/nginx/error.log \\
      --access-log /var/log/nginx/access.log     (access.log in `combined`)
  scenarios diagnose --error-log error.log.1.gz --access-log access.log.1.gz \\
      --nginx-conf /etc/nginx/nginx.conf          (its access_log's log_format)
  scenarios diagnose --access-log access.log --log-format \\
      '$remote_addr [$time_local] \"$request\" $status \"$upstream_status\"'

Best evidence: $upstream_status, $upstream_response_time and $msec (or
$time_local) in the log_format, and error_log at level error (info adds 499s).";

#[derive(Args)]
struct DiagnoseArgs {
    /// nginx's error.log (plain or gzip).
    #[arg(long, value_name = "FILE")]
    error_log: Option<PathBuf>,
    /// nginx's access.log (plain or gzip).
    #[arg(long, value_name = "FILE")]
    access_log: Option<PathBuf>,
    /// The access log's log_format text (default: nginx's `combined`).
    #[arg(long, value_name = "TEXT", conflicts_with = "nginx_conf")]
    log_format: Option<String>,
    /// Take the log_format from the access_log of this nginx.conf (includes followed).
    #[arg(long, value_name = "FILE")]
    nginx_conf: Option<PathBuf>,
    /// Write the diagnosis as JSON to FILE ("-" for stdout, instead of the text).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn run_diagnose(a: &DiagnoseArgs) -> Result<bool, Error> {
    use scenarios::diagnose::{self, FormatFrom};
    let format = match (&a.log_format, &a.nginx_conf) {
        (Some(t), _) => FormatFrom::Text(t.clone()),
        (None, Some(c)) => FormatFrom::NginxConf(c.clone()),
        (None, None) => FormatFrom::Combined,
    };
    let report = diagnose::run_files(a.error_log.as_deref(), a.access_log.as_deref(), &format, diagnose::Options::default())?;
    let to_stdout = a.json.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if !to_stdout {
        print!("{}", report::glyphs(&diagnose::render::text(&report)));
    }
    if let Some(p) = &a.json {
        write_out(p, &Document::new(Body::Diagnose(report)).to_json()?)?;
    }
    Ok(true)
}

#[derive(Args)]
struct MatrixArgs {
    /// Go IdleTimeout values (article scale).
    #[arg(long, value_delimiter = ',', default_value = "2s,5s")]
    idle_timeouts: Vec<String>,
    /// nginx upstream keepalive_timeout values (article scale).
    #[arg(long, value_delimiter = ',', default_value = "1s,3s,60s")]
    keepalive_timeouts: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "GET,POST")]
    methods: Vec<String>,
    /// Requests per cell.
    #[arg(long, default_value_t = 20)]
    count: u32,
    /// The range of the gaps between requests, article scale (`99.2ms..100.4ms`);
    /// by default ±1% around each IdleTimeout.
    #[arg(long, value_name = "FROM..TO")]
    gaps: Option<String>,
    /// How the gaps spread over their range: independent uniform draws, or
    /// evenly in order.
    #[arg(long, value_enum, default_value = "uniform")]
    sweep: scenarios::scenario::Sweep,
    /// Seed of the uniform gaps (the same seed draws the same gaps).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A round trip of delay between nginx and Go (a relay in the runner,
    /// half each way; not scaled): distance moves and widens the window.
    #[arg(long, value_name = "DURATION")]
    rtt: Option<String>,
    /// Compare with a matrix measured before (`--json` of another run, e.g.
    /// real nginx + Go): each cell's failure rate as a ratio and its peak's
    /// distance; exit 1 outside 0.67–1.5× or beyond 0.2 ms.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Exit 1 when a cell's client 502 rate is above this (a fraction, `0.01`,
    /// or a percentage, `1%`): a CI threshold.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    max_502_rate: Option<f64>,
    /// Which proxy measures the rates (real nginx shows the real race window).
    #[arg(long, value_enum, default_value = "builtin")]
    proxy: ProxyBackend,
    /// Which upstream measures the rates.
    #[arg(long, value_enum, default_value = "builtin")]
    upstream: UpstreamBackend,
    #[command(flatten)]
    programs: ProgramArgs,
    #[command(flatten)]
    report: ReportArgs,
}

#[derive(Args)]
struct RateArgs {
    /// Go's http.Server IdleTimeout (or ReadTimeout, when IdleTimeout is 0).
    #[arg(long, value_name = "DURATION")]
    go_idle_timeout: String,
    /// nginx's upstream keepalive_timeout.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    keepalive_timeout: String,
    /// Requests per second through this upstream.
    #[arg(long)]
    rps: f64,
    /// nginx's `keepalive N` (idle connections cached).
    #[arg(long, default_value_t = 16)]
    keepalive: usize,
    /// How requests arrive.
    #[arg(long, value_enum, default_value = "poisson")]
    arrival: scenarios::rate::Arrival,
    /// How long the upstream holds a connection per request.
    #[arg(long, value_name = "DURATION", default_value = "1ms")]
    latency: String,
    /// Round trip between nginx and Go.
    #[arg(long, value_name = "DURATION", default_value = "0s")]
    rtt: String,
    /// Shares of request methods, summing to 1.
    #[arg(long, value_name = "METHOD=SHARE,...", default_value = "GET=0.8,POST=0.2")]
    method_mix: String,
    /// Requests per method in the calibration sweep.
    #[arg(long, default_value_t = 300)]
    calibration: u32,
    /// Requests in the check run at compressed scale (0: no check).
    #[arg(long, default_value_t = 400)]
    check_requests: u32,
    /// Simulated hours of arrivals for the density.
    #[arg(long, default_value_t = 24.0)]
    hours: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the result as JSON (`-`: stdout only).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// A progress bar on stderr, drawn only on a terminal. Results printed
/// through [`Progress::above`] appear above it, never glued to it; the bar
/// is gone when this is dropped.
struct Progress(indicatif::ProgressBar);

impl Progress {
    fn new() -> Progress {
        let bar = if std::io::stderr().is_terminal() {
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr())
        } else {
            indicatif::ProgressBar::hidden()
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template("[{bar:30}] {pos}/{len} {wide_msg}") {
            bar.set_style(style.progress_chars("#>-"));
        }
        Progress(bar)
    }

    /// `i` of `n` done, the last one `what`.
    fn at(&self, i: usize, n: usize, what: &str) {
        self.0.set_length(n as u64);
        self.0.set_position(i as u64);
        self.0.set_message(what.to_string());
    }

    /// Prints (to stdout) with the bar out of the way.
    fn above(&self, print: impl FnOnce()) {
        self.0.suspend(print)
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // A print that panicked inside `above` (stdout's reader gone) left
        // the bar's lock poisoned: leave the bar be, the unwinding goes on.
        if !std::thread::panicking() {
            self.0.finish_and_clear();
        }
    }
}

/// Writes `text` to `path`, or to stdout for "-".
fn write_out(path: &Path, text: &str) -> Result<(), Error> {
    if path.as_os_str() == "-" {
        println!("{text}");
        Ok(())
    } else {
        std::fs::write(path, text).map_err(|source| Error::Io { path: path.to_path_buf(), source })
    }
}

fn write_reports(r: &ReportArgs, results: &[RunResult], wall_ms: f64, suite: &str) -> Result<(), Error> {
    if let Some(p) = &r.json {
        write_out(p, &report::json(results, wall_ms)?)?;
    }
    if let Some(p) = &r.junit {
        write_out(p, &report::junit(results, suite))?;
    }
    if let Some(p) = &r.html {
        write_out(p, &html::runs_page(results, suite))?;
    }
    Ok(())
}

async fn run_one(name: &str, args: &RunArgs) -> Result<bool, Error> {
    let s = catalogue::resolve(name)?;
    let name = s.name.as_str();
    let opts = args.options()?;
    let started = Instant::now();
    let r = runner::run(&s, &opts).await.map_err(|e| e.running(name))?;
    if !args.report.json_to_stdout() {
        println!("{}", report::verdict(&r));
        if !args.no_timeline && r.skipped.is_none() {
            println!("timeline:\n{}", report::timeline(&r));
        }
        print!("{}\n{}", report::paragraph("why: ", s.explanation.trim()), report::paragraph("fix: ", s.fix.trim()));
    }
    write_reports(&args.report, std::slice::from_ref(&r), started.elapsed().as_secs_f64() * 1e3, name)?;
    if let (Some(why), true) = (&r.skipped, args.report.fail_on_skip) {
        eprintln!("scenarios: {name} was skipped ({why}): --fail-on-skip");
        return Ok(false);
    }
    Ok(!r.failed())
}

async fn run_all(args: &RunArgs, dir: Option<&Path>, jobs: Option<u16>) -> Result<bool, Error> {
    let opts = args.options()?;
    let all = match dir {
        Some(d) => catalogue::load_dir(d)?,
        None => catalogue::all()?,
    };
    let emulators = opts.proxy == ProxyBackend::Builtin && opts.upstream == UpstreamBackend::Builtin;
    let jobs = jobs.map_or(if emulators { all.len().max(1) } else { 1 }, usize::from);
    let started = Instant::now();
    let quiet_stdout = args.report.json_to_stdout();
    let print = |r: &RunResult| {
        if !quiet_stdout {
            println!("{}", report::summary_line(r));
            if r.failed() || args.timeline {
                print!("{}", report::verdict(r));
            }
            if args.timeline && r.skipped.is_none() {
                println!("{}", report::timeline(r));
            }
        }
    };
    // Up to `jobs` scenarios at once; each result is printed as soon as
    // every one before it in the catalogue is.
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(jobs));
    let mut running = tokio::task::JoinSet::new();
    for (i, s) in all.iter().cloned().enumerate() {
        let (gate, opts) = (gate.clone(), opts.clone());
        running.spawn(async move {
            let _slot = gate.acquire_owned().await;
            // Each scenario on a thread and event loop of its own: one that
            // moves megabytes (slow-client) then competes with the others
            // for CPU time, as separate processes would, instead of holding
            // the shared runtime's two workers while their timers are due.
            let r = tokio::task::spawn_blocking(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Error::Usage(format!("cannot start an event loop: {e}")))?;
                rt.block_on(runner::run(&s, &opts)).map_err(|e| e.running(&s.name))
            })
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            (i, r)
        });
    }
    let mut slots: Vec<Option<RunResult>> = vec![None; all.len()];
    let (mut printed, mut done) = (0, 0);
    let bar = Progress::new();
    while let Some(joined) = running.join_next().await {
        // A panic in a run is a bug: it goes on as one.
        let (i, r) = joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        slots[i] = Some(r?);
        done += 1;
        bar.at(done, all.len(), &all[i].name);
        while let Some(Some(r)) = slots.get(printed) {
            bar.above(|| print(r));
            printed += 1;
        }
    }
    drop(bar);
    let results: Vec<RunResult> = slots.into_iter().flatten().collect();
    let wall = started.elapsed();
    let failed = results.iter().filter(|r| r.failed()).count();
    let ran = results.iter().filter(|r| r.skipped.is_none()).count();
    if !quiet_stdout {
        println!(
            "\n{} scenarios, {} passed, {failed} failed, {} skipped in {:.2} s wall",
            results.len(),
            results.iter().filter(|r| r.passed && r.skipped.is_none()).count(),
            results.len() - ran,
            wall.as_secs_f64()
        );
    }
    write_reports(&args.report, &results, wall.as_secs_f64() * 1e3, "scenarios all")?;
    if args.report.fail_on_skip && ran < results.len() {
        eprintln!("scenarios: {} skipped: --fail-on-skip", results.len() - ran);
        return Ok(false);
    }
    Ok(failed == 0)
}

async fn run_rate(a: &RateArgs) -> Result<bool, Error> {
    use scenarios::rate;
    let d = |flag: &str, v: &str| {
        scenarios::scenario::parse_duration(v).map_err(|e| Error::Usage(format!("--{flag} {v:?}: {e}")))
    };
    let ms = |x: Duration| x.as_secs_f64() * 1e3;
    let idle = d("go-idle-timeout", &a.go_idle_timeout)?;
    if idle.is_zero() {
        return Err(Error::Usage("--go-idle-timeout 0: Go then keeps idle connections forever, and there is no race".into()));
    }
    if !(a.hours > 0.0 && a.hours <= 10_000.0) {
        return Err(Error::Usage(format!("--hours {}: between 0 and 10000", a.hours)));
    }
    if !(a.rps > 0.0 && a.rps.is_finite()) {
        return Err(Error::Usage(format!("--rps {}: must be above 0", a.rps)));
    }
    let mut mix = Vec::new();
    for part in a.method_mix.split(',') {
        let (m, share) = part.split_once('=').ok_or_else(|| Error::Usage(format!("--method-mix {part:?}: expected METHOD=SHARE")))?;
        let share: f64 = share.trim().parse().map_err(|_| Error::Usage(format!("--method-mix {part:?}: SHARE is a number")))?;
        let m = m.trim().to_ascii_uppercase();
        if !matches!(m.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
            return Err(Error::Usage(format!("--method-mix: unsupported method {m:?}")));
        }
        mix.push((m, share));
    }
    let total: f64 = mix.iter().map(|(_, s)| s).sum();
    if (total - 1.0).abs() > 1e-6 {
        return Err(Error::Usage(format!("--method-mix {}: shares sum to {total}, not 1", a.method_mix)));
    }
    let t = rate::Traffic {
        go_idle_timeout_ms: ms(idle),
        keepalive_timeout_ms: ms(d("keepalive-timeout", &a.keepalive_timeout)?),
        keepalive: a.keepalive,
        rps: a.rps,
        arrival: a.arrival,
        latency_ms: ms(d("latency", &a.latency)?),
        rtt_ms: ms(d("rtt", &a.rtt)?),
        method_mix: mix,
        seed: a.seed,
    };
    let rtt = Duration::from_secs_f64(t.rtt_ms / 1e3);
    let close = rate::go_close_ms(idle, rtt);
    let go = go_model::config::ServerConfig { idle_timeout: idle, ..Default::default() };
    let possible = a.keepalive > 0 && scenarios::oracle::idle_race_possible(&go, Duration::from_secs_f64(t.keepalive_timeout_ms / 1e3));
    let opts = RunOptions::default();
    let bar = Progress::new();
    let windows = if possible { rate::calibrate(&t, a.calibration, &opts, |i, n, what| bar.at(i, n, what)).await? } else { vec![] };
    let density = rate::density(&t, close, a.hours);
    let methods = rate::predict(&t, &density, &windows);
    let check = if possible && a.check_requests > 0 { Some(rate::check(&t, &windows, a.check_requests, &opts).await?) } else { None };
    drop(bar);
    let r = rate::Rate { traffic: t, go_close_ms: close, windows, density, methods, check };
    if a.json.as_deref().is_none_or(|p| p.as_os_str() != "-") {
        if !possible {
            println!("nginx drops idle connections first (keepalive_timeout {} < IdleTimeout {}): the race cannot happen.\n", a.keepalive_timeout, a.go_idle_timeout);
        }
        print!("{}", report::glyphs(&rate::render(&r)));
    }
    if let Some(p) = &a.json {
        write_out(p, &Document::new(Body::Rate(r.clone())).to_json()?)?;
    }
    Ok(r.check.as_ref().is_none_or(|c| c.consistent))
}

/// `0.01` or `1%`.
fn parse_rate(s: &str) -> Result<f64, String> {
    let (num, pct) = match s.strip_suffix('%') {
        Some(n) => (n, true),
        None => (s, false),
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("{s:?}: expected a fraction (0.01) or a percentage (1%)"))?;
    let v = if pct { v / 100.0 } else { v };
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{s:?}: a rate is between 0 and 1 (0% and 100%)"));
    }
    Ok(v)
}

async fn run_matrix(a: &MatrixArgs) -> Result<bool, Error> {
    let scale = a.report.checked_scale()?;
    let parse = |v: &[String]| -> Result<Vec<Duration>, Error> {
        v.iter().map(|d| scenarios::scenario::parse_duration(d).map_err(|e| Error::Usage(e.to_string()))).collect()
    };
    let (idle, keep) = (parse(&a.idle_timeouts)?, parse(&a.keepalive_timeouts)?);
    if let Some(m) = a.methods.iter().find(|m| !matches!(m.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE")) {
        return Err(Error::Usage(format!("--methods: unsupported method {m:?}")));
    }
    let gaps = match &a.gaps {
        None => None,
        Some(g) => {
            let (from, to) = g.split_once("..").ok_or_else(|| Error::Usage(format!("--gaps {g:?}: expected FROM..TO, e.g. 99.2ms..100.4ms")))?;
            let (from, to) = (parse(&[from.to_string()])?[0], parse(&[to.to_string()])?[0]);
            if from > to {
                return Err(Error::Usage(format!("--gaps {g:?}: FROM is above TO")));
            }
            Some((from, to))
        }
    };
    let plan = matrix::Plan { idle, keepalive: keep, methods: a.methods.clone(), count: a.count, gaps, sweep: a.sweep, seed: a.seed };
    let mut opts = a.programs.options(a.proxy, a.upstream, scale)?;
    opts.rtt = a.rtt.as_ref().map(|d| parse(std::slice::from_ref(d)).map(|v| v[0])).transpose()?;
    let baseline = match &a.baseline {
        Some(p) => Some(matrix::read_baseline(p)?),
        None => None,
    };
    let started = Instant::now();
    let bar = Progress::new();
    let cells = matrix::run(&plan, &opts, |i, n, what| bar.at(i, n, what)).await?;
    let compared = baseline.as_ref().map(|b| matrix::compare(&cells, b));
    drop(bar);
    let over: Vec<&matrix::Cell> = match a.max_502_rate {
        Some(max) => cells.iter().filter(|c| c.client_502_rate() > max).collect(),
        None => vec![],
    };
    if !a.report.json_to_stdout() {
        println!("{}", report::glyphs(&matrix::render(&cells)));
        let range = a.gaps.clone().unwrap_or_else(|| "±1% around IdleTimeout".into());
        let worst = cells.iter().map(|c| c.gap_error_max_ms).fold(0.0, f64::max);
        let p99 = cells.iter().map(|c| c.gap_error_p99_ms).fold(0.0, f64::max);
        let mean = cells.iter().map(|c| c.gap_error_mean_ms).sum::<f64>() / cells.len().max(1) as f64;
        let off: usize = cells.iter().map(|c| c.off_plan).sum();
        println!(
            "{} cells in {:.2} s wall ({} proxy, {} upstream, scale {scale})\ngaps {range} ({:?}, seed {}); achieved off plan by {mean:.3} ms mean, {p99:.3} p99, {worst:.3} worst; {off} of them more than {:.2} ms\npeak: the {} ms gap bucket (run scale) with the most failures, or the span failing at least half as often; CI: Wilson 95%",
            cells.len(),
            started.elapsed().as_secs_f64(),
            opts.proxy.description(),
            opts.upstream.description(),
            a.sweep,
            a.seed,
            matrix::pacing_limit_ms(cells.iter().map(|c| c.bucket_ms).fold(matrix::BUCKET_MS, f64::max)),
            cells.iter().map(|c| c.bucket_ms).fold(matrix::BUCKET_MS, f64::max)
        );
        if let Some(cmp) = &compared {
            print!("{}", report::glyphs(&matrix::render_comparison(cmp)));
        }
        for c in &over {
            println!(
                "over --max-502-rate: IdleTimeout {} keepalive_timeout {} {}: {:.2}% 502",
                c.idle_timeout,
                c.keepalive_timeout,
                c.method,
                c.client_502_rate() * 100.0
            );
        }
    }
    if let Some(p) = &a.report.json {
        let doc = Document::new(Body::Matrix(document::Matrix {
            scale,
            proxy: opts.proxy,
            upstream: opts.upstream,
            plan: plan.clone(),
            gaps: a.gaps.clone(),
            rtt: a.rtt.clone(),
            max_502_rate: a.max_502_rate,
            cells: cells.clone(),
            baseline: compared.clone(),
        }));
        write_out(p, &doc.to_json()?)?;
    }
    if let Some(p) = &a.report.junit {
        let props = [("scale", scale.to_string()), ("proxy", opts.proxy.description().to_string()), ("upstream", opts.upstream.description().to_string()), ("tool.version", env!("CARGO_PKG_VERSION").to_string())];
        write_out(p, &matrix::junit(&cells, &props))?;
    }
    if let Some(p) = &a.report.html {
        let about = format!("{} → {}, scale {scale}", opts.proxy.description(), opts.upstream.description());
        write_out(p, &html::matrix_page(&cells, &about))?;
    }
    // An inconclusive comparison (pacing off plan) fails too: it is not a pass.
    let agrees = compared.as_ref().is_none_or(|c| c.iter().all(|x| x.agrees && x.conclusive));
    // Where the race cannot happen, a 502 is a broken premise.
    Ok(agrees && over.is_empty() && !cells.iter().any(matrix::impossible_failures))
}

async fn run_conformance(a: &ReportArgs, jobs: u16) -> Result<bool, Error> {
    let scale = a.checked_scale()?;
    let all = catalogue::all()?;
    let programs = Programs::default();
    ProxyBackend::Nginx.available(&programs).map_err(|e| Error::Usage(format!("conformance needs real nginx: {e}")))?;
    UpstreamBackend::Go.available(&programs).map_err(|e| Error::Usage(format!("conformance needs Go: {e}")))?;
    let started = Instant::now();
    // Up to `jobs` scenarios at once, each with its pairs in order; the
    // table keeps the catalogue's order.
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(usize::from(jobs)));
    let mut running = tokio::task::JoinSet::new();
    for (i, s) in all.iter().cloned().enumerate() {
        let (gate, programs) = (gate.clone(), programs.clone());
        running.spawn(async move {
            let _slot = gate.acquire_owned().await;
            let mut runs = Vec::new();
            for (proxy, upstream) in CONFORMANCE_PAIRS {
                let opts = RunOptions { proxy, upstream, scale, programs: programs.clone(), rtt: None };
                runs.push(runner::run(&s, &opts).await.map_err(|e| e.running(format!("{} on {proxy:?}/{upstream:?}", s.name)))?);
            }
            Ok::<_, Error>((i, runs))
        });
    }
    let mut slots: Vec<Option<Vec<RunResult>>> = vec![None; all.len()];
    let bar = Progress::new();
    let mut done = 0;
    while let Some(joined) = running.join_next().await {
        let (i, runs) = joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        done += 1;
        bar.at(done, all.len(), &all[i].name);
        slots[i] = Some(runs);
    }
    drop(bar);
    let mut results = Vec::new();
    let mut rows = Vec::new();
    let mut disagreements = 0;
    for (s, runs) in all.iter().zip(slots.into_iter().flatten()) {
        let agree = runner::agreement(&runs);
        if agree.is_err() {
            disagreements += 1;
        }
        let cell = |r: &RunResult| match (&r.skipped, r.passed) {
            (Some(_), _) => "n/a",
            (None, true) => "pass",
            (None, false) => "FAIL",
        };
        rows.push(format!(
            "{:<32} {:<10} {:<12} {:<12} {}",
            s.name,
            cell(&runs[0]),
            cell(&runs[1]),
            cell(&runs[2]),
            match &agree {
                // Nothing to compare: real programs could not run it.
                Ok(()) if runs.iter().filter(|r| r.skipped.is_none()).count() < 2 => "emulator only".to_string(),
                Ok(()) => report::pass_word(true).replace("PASS", "agree"),
                Err(e) => format!("{} {e}", report::pass_word(false).replace("FAIL", "DISAGREE")),
            }
        ));
        results.extend(runs);
    }
    let wall = started.elapsed();
    if !a.json_to_stdout() {
        println!("{:<32} {:<10} {:<12} {:<12}", "scenario", "emulated", "nginx+emu-Go", "nginx+Go");
        for r in &rows {
            println!("{r}");
        }
        println!("\n{} scenarios × 3 backend pairs, {disagreements} disagreements, {:.2} s wall", all.len(), wall.as_secs_f64());
        // Why each failed run failed: a CI log then says what to look at.
        for r in results.iter().filter(|r| r.failed()) {
            println!("\n{} on {} → {}:", r.scenario, r.proxy.description(), r.upstream.description());
            for v in &r.verdicts {
                for m in &v.mismatches {
                    println!("  {} {}: {m}", v.method, v.path);
                }
            }
        }
    }
    write_reports(a, &results, wall.as_secs_f64() * 1e3, "scenarios conformance")?;
    Ok(disagreements == 0 && !results.iter().any(RunResult::failed))
}

async fn run_check(a: &CheckArgs) -> Result<bool, Error> {
    use scenarios::check;
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|source| Error::Read { path: p.to_path_buf(), source });
    let spec = match (&a.go, &a.go_config) {
        (Some(s), _) => s.clone(),
        (None, Some(f)) => read(f)?,
        (None, None) => return Err(Error::Usage("check needs Go's settings: --go or --go-config".into())),
    };
    let mut go = check::parse_go(&spec).map_err(|e| Error::Usage(format!("--go: {e}")))?;
    a.go_version.parse::<go_model::GoVersion>().map_err(|e| Error::Usage(format!("--go-version: {e}")))?;
    go.go_version = Some(a.go_version.clone());
    let file = a.nginx_conf.display().to_string();
    // Includes resolve against the main file's directory, as `nginx -c FILE`'s conf prefix.
    let prefix = a.nginx_conf.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let cfg = harness::read_nginx_conf(&a.nginx_conf, prefix).map_err(|e| Error::Usage(format!("nginx.conf: {e}")))?;
    let (profile, from) = a.profile.resolve(a.nginx.as_deref())?;
    let resolved = nginx_model::resolve::resolve(&cfg, profile).map_err(|e| Error::Usage(format!("nginx.conf: {e}")))?;
    let targets = check::targets(&resolved, a.server.as_deref(), a.location.as_deref());
    if targets.is_empty() {
        return Err(Error::Usage(format!("{file}: no location with proxy_pass to an upstream{}", if a.server.is_some() || a.location.is_some() { " matches --server/--location" } else { "" })));
    }
    let quiet = a.json.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if !quiet {
        let defaults = match profile {
            nginx_model::Profile::Legacy => "nginx ≤ 1.29.6 defaults",
            nginx_model::Profile::Modern => "nginx ≥ 1.29.7 defaults",
        };
        match &from {
            Some(prog) => println!("{defaults}, as {prog} runs\n"),
            None => println!("{defaults} (--profile auto reads your nginx's version)\n"),
        }
    }
    let mut all = Vec::new();
    let mut failing = false;
    for t in &targets {
        let findings = check::check(t, &go);
        failing |= check::gate_fails(&findings, a.strict);
        if !quiet {
            print!("{}", report::glyphs(&check::render(t, &go, &findings)));
        }
        let mut runs = Vec::new();
        if a.run {
            // The go binary comes from $BADGATEWAY_GO or PATH here: --go is Go's settings.
            let programs = ProgramArgs { nginx: a.nginx.clone(), go: None, upstream_cmd: a.upstream_cmd.clone() };
            let opts = programs.options(a.proxy, a.upstream, scenarios::scenario::DEFAULT_SCALE)?;
            for f in findings.iter().filter(|f| f.verdict != check::Verdict::CannotHappen) {
                for probe in &f.probes {
                    let r = runner::run(probe, &opts).await.map_err(|e| e.running(&probe.name))?;
                    let method = &probe.requests[0].method;
                    if !quiet {
                        print!("{}", report::glyphs(&check::run_line(f.mechanism, &r)));
                    }
                    runs.push(document::CheckRun { mechanism: f.mechanism.into(), method: method.clone(), passed: r.passed, skipped: r.skipped.clone() });
                    failing |= r.failed();
                }
            }
        }
        all.push(document::CheckedLocation { server: t.server.clone(), location: t.location.clone(), upstream: t.up.name.clone(), findings, runs });
        if !quiet {
            println!();
        }
    }
    if !quiet {
        let count = |v: check::Verdict| all.iter().flat_map(|t| &t.findings).filter(|f| f.verdict == v).count();
        let (n, exposed) = (count(check::Verdict::Applies), count(check::Verdict::Exposed));
        println!("{} location(s): {n} mechanism(s) give clients a 502, 504 or a cut response{}", targets.len(), if n > 0 { " (exit 1)" } else { "" });
        if exposed > 0 {
            println!("{exposed} more if code, deploys or load set them off (exposed{})", if a.strict { ": --strict, exit 1" } else { "; --strict fails on them" });
        }
        println!("mechanism and fix in prose: scenarios explain NAME");
    }
    if let Some(p) = &a.json {
        let doc = document::Check { nginx_conf: file, profile, profile_from: from, go, locations: all };
        write_out(p, &Document::new(Body::Check(doc)).to_json()?)?;
    }
    Ok(!failing)
}

fn list() -> Result<bool, Error> {
    let w = report::width();
    let all = catalogue::all()?;
    // By mechanism (in catalogue order), each scenario with its key settings.
    let mut ids: Vec<&str> = Vec::new();
    for s in &all {
        if !ids.contains(&s.mechanism.as_str()) {
            ids.push(&s.mechanism);
        }
    }
    let mut out = String::from("mechanism\n  scenario (↳ its remedy)          key settings (keepalive N/timeout)\n");
    for id in ids {
        out.push_str(&format!("{id}\n"));
        for s in all.iter().filter(|s| s.mechanism == id) {
            let name = if s.is_remedy() { format!("↳ {}", s.name) } else { s.name.clone() };
            let head = format!("  {:<34}", report::fit(&name, 33));
            let room = w.saturating_sub(head.chars().count());
            out.push_str(&format!("{head}{}\n", report::fit(&report::key_settings(s), room)));
        }
    }
    print!("{}", report::glyphs(&out));
    Ok(true)
}

fn explain(name: &str) -> Result<bool, Error> {
    let s = catalogue::resolve(name)?;
    let mut out = report::paragraph("", &format!("{} — {}", s.name, s.title));
    out.push_str(&format!("mechanism: {}\n", s.mechanism));
    if let Some(of) = &s.remedy_of {
        out.push_str(&format!("remedy of: {of}\n"));
    }
    out.push('\n');
    out.push_str(&report::paragraph("how it happens: ", s.explanation.trim()));
    out.push('\n');
    out.push_str(&report::paragraph("fix: ", s.fix.trim()));
    out.push_str("\nGo (the http.Server this scenario runs):\n");
    out.push_str(&indent(&report::go_snippet(&s)));
    out.push_str("\nnginx (the nginx.conf lines both proxies run, at article scale):\n");
    out.push_str(&indent(&report::nginx_snippet(&s)));
    print!("{}", report::glyphs(&out));
    Ok(true)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

async fn command(cmd: Cmd) -> Result<bool, Error> {
    match cmd {
        Cmd::List => list(),
        Cmd::Explain { name } => explain(&name),
        Cmd::Run { name, args } => run_one(&name, &args).await,
        Cmd::All { catalogue, jobs, args } => run_all(&args, catalogue.as_deref(), jobs).await,
        Cmd::Check(a) => run_check(&a).await,
        Cmd::Diagnose(a) => run_diagnose(&a),
        Cmd::Schema { of } => {
            let schema = match of {
                SchemaOf::Scenario => schemars::schema_for!(scenarios::scenario::Scenario),
                SchemaOf::Report => document::schema(),
            };
            println!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(true)
        }
        Cmd::Matrix(a) => run_matrix(&a).await,
        Cmd::Rate(a) => run_rate(&a).await,
        Cmd::Conformance { jobs, report } => run_conformance(&report, jobs).await,
        Cmd::Lab(a) => scenarios::lab::command(&a).await,
        Cmd::Scenario(argv) => {
            let c = ScenarioCli::try_parse_from(std::iter::once("scenarios".to_string()).chain(argv))?;
            if let Some(color) = c.color {
                report::set_color(color);
            }
            run_one(&c.name, &c.args).await
        }
    }
}

/// `println!` panics when stdout's reader has gone (`scenarios list | head
/// -1`): that is the reader's choice, not a failure. The panic unwinds
/// (children the run started are stopped by their guards), is not printed,
/// and the exit status is 0.
fn is_broken_pipe(msg: &str) -> bool {
    msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe")
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied()).unwrap_or("")
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        // The emulated Go's own log (its "http: panic serving" lines) is a
        // scenario's expected behaviour, shown in the timeline: not an error
        // of this program. RUST_LOG brings it back.
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "error,upstream_sim=off".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let report_panic = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_broken_pipe(panic_text(info.payload())) {
            report_panic(info);
        }
    }));
    let cli = Cli::parse();
    report::set_color(cli.color);
    report::set_width(report::detect_width());
    report::set_ascii(report::locale_is_ascii());
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scenarios: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(command(cli.cmd))));
    drop(rt);
    match outcome {
        Ok(Ok(passed)) => exit(passed),
        Ok(Err(e)) => e.report(),
        Err(payload) if is_broken_pipe(panic_text(payload.as_ref())) => ExitCode::SUCCESS,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}
