//! `scenarios`: reproduce, explain and assert nginx → Go 502s.

use clap::{Args, Parser, Subcommand};
use scenarios::runner::{self, ProxyBackend, RunOptions, RunResult, UpstreamBackend};
use scenarios::{catalogue, matrix, report, timeline};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const EXAMPLES: &str = "\
EXAMPLES:
  scenarios idle-race                      the main job: the idle race, its verdicts and timeline
  scenarios list                           every scenario, problem and remedy
  scenarios explain write-timeout          mechanism and fix in prose
  scenarios all --junit report.xml         the whole catalogue, JUnit for CI
  scenarios idle-race --proxy nginx        the same scenario against real nginx
  scenarios matrix --methods GET,POST      502 rates over IdleTimeout × keepalive_timeout
  scenarios conformance                    built-in emulators vs real nginx and Go

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
}

#[derive(Subcommand)]
enum Cmd {
    /// List the scenarios.
    List,
    /// Print a scenario's mechanism and fix.
    Explain { name: String },
    /// Run one scenario (also: `scenarios NAME`).
    Run {
        name: String,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Run the whole catalogue and print the wall time.
    All(RunArgs),
    /// 502 rates over Go IdleTimeout × nginx keepalive_timeout × method.
    Matrix(MatrixArgs),
    /// Every scenario on the built-in emulators and on real nginx (and real
    /// Go where the scenario allows); prints the agreement table.
    Conformance(ReportArgs),
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
    /// Duration multiplier (article scale → run scale).
    #[arg(long, default_value_t = runner::DEFAULT_SCALE)]
    scale: f64,
}

impl ReportArgs {
    /// `--json -`: stdout carries only the JSON report.
    fn json_to_stdout(&self) -> bool {
        self.json.as_deref().is_some_and(|p| p.as_os_str() == "-")
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
    report: ReportArgs,
}

#[derive(Parser)]
#[command(name = "scenarios NAME")]
struct ScenarioCli {
    name: String,
    #[command(flatten)]
    args: RunArgs,
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
    /// Which proxy measures the rates (real nginx shows the real race window).
    #[arg(long, value_enum, default_value = "builtin")]
    proxy: ProxyBackend,
    /// Which upstream measures the rates.
    #[arg(long, value_enum, default_value = "builtin")]
    upstream: UpstreamBackend,
    #[command(flatten)]
    report: ReportArgs,
}

fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("scenarios: {msg}");
    ExitCode::from(2)
}

fn progress(i: usize, n: usize, what: &str) {
    if std::io::stderr().is_terminal() {
        let width = 30;
        let done = width * i / n.max(1);
        eprint!("\r\x1b[2K[{}{}] {i}/{n} {what}", "#".repeat(done), "-".repeat(width - done));
        if i == n {
            eprint!("\r\x1b[2K");
        }
    }
}

fn write_reports(r: &ReportArgs, results: &[RunResult], wall_ms: f64, suite: &str) -> Result<(), String> {
    if let Some(p) = &r.json {
        let j = report::json(results, wall_ms);
        if p.as_os_str() == "-" {
            println!("{j}");
        } else {
            std::fs::write(p, j).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        }
    }
    if let Some(p) = &r.junit {
        std::fs::write(p, report::junit(results, suite)).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    Ok(())
}

fn check_scale(scale: f64) -> Result<(), String> {
    if !(scale > 0.0 && scale <= 10.0) {
        return Err(format!("--scale {scale}: must be in (0, 10]"));
    }
    Ok(())
}

fn backend_names(r: &RunResult) -> (&'static str, &'static str) {
    (
        match r.proxy {
            ProxyBackend::Builtin => "nginx (emulated)",
            ProxyBackend::Nginx => "nginx (real)",
        },
        match r.upstream {
            UpstreamBackend::Builtin => "Go (emulated)",
            UpstreamBackend::Go => "Go (real)",
        },
    )
}

async fn run_one(name: &str, args: &RunArgs) -> ExitCode {
    let s = match catalogue::find(name) {
        Ok(s) => s,
        Err(e) => return usage_error(e),
    };
    if let Err(e) = check_scale(args.report.scale) {
        return usage_error(e);
    }
    let opts = RunOptions { proxy: args.proxy, upstream: args.upstream, scale: args.report.scale };
    let started = Instant::now();
    let r = match runner::run(&s, &opts).await {
        Ok(r) => r,
        Err(e) => return usage_error(format!("{name}: cannot run: {e}")),
    };
    let quiet_stdout = args.report.json_to_stdout();
    if !quiet_stdout {
        println!("{}", report::verdict(&r));
        if !args.no_timeline && r.skipped.is_none() {
            let (p, u) = backend_names(&r);
            println!("timeline:\n{}", timeline::render(&r.timeline, p, u));
        }
        println!("why: {}\n\nfix: {}", s.mechanism.trim(), s.fix.trim());
    }
    if let Err(e) = write_reports(&args.report, std::slice::from_ref(&r), started.elapsed().as_secs_f64() * 1e3, name) {
        return usage_error(e);
    }
    if r.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run_all(args: &RunArgs) -> ExitCode {
    if let Err(e) = check_scale(args.report.scale) {
        return usage_error(e);
    }
    let all = match catalogue::all() {
        Ok(a) => a,
        Err(e) => return usage_error(e),
    };
    let opts = RunOptions { proxy: args.proxy, upstream: args.upstream, scale: args.report.scale };
    let started = Instant::now();
    let mut results = Vec::new();
    let quiet_stdout = args.report.json_to_stdout();
    for (i, s) in all.iter().enumerate() {
        progress(i + 1, all.len(), &s.name);
        match runner::run(s, &opts).await {
            Ok(r) => {
                if !quiet_stdout {
                    println!("{}", report::summary_line(&r));
                    if !r.passed || args.timeline {
                        print!("{}", report::verdict(&r));
                    }
                    if args.timeline && r.skipped.is_none() {
                        let (p, u) = backend_names(&r);
                        println!("{}", timeline::render(&r.timeline, p, u));
                    }
                }
                results.push(r);
            }
            Err(e) => return usage_error(format!("{}: cannot run: {e}", s.name)),
        }
    }
    let wall = started.elapsed();
    let failed = results.iter().filter(|r| !r.passed).count();
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
    if let Err(e) = write_reports(&args.report, &results, wall.as_secs_f64() * 1e3, "scenarios all") {
        return usage_error(e);
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run_matrix(a: &MatrixArgs) -> ExitCode {
    if let Err(e) = check_scale(a.report.scale) {
        return usage_error(e);
    }
    let parse = |v: &[String]| -> Result<Vec<Duration>, String> { v.iter().map(|d| scenarios::scenario::parse_duration(d)).collect() };
    let (idle, keep) = match (parse(&a.idle_timeouts), parse(&a.keepalive_timeouts)) {
        (Ok(i), Ok(k)) => (i, k),
        (Err(e), _) | (_, Err(e)) => return usage_error(e),
    };
    if let Some(m) = a.methods.iter().find(|m| !matches!(m.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE")) {
        return usage_error(format!("--methods: unsupported method {m:?}"));
    }
    let opts = RunOptions { proxy: a.proxy, upstream: a.upstream, scale: a.report.scale };
    let started = Instant::now();
    match matrix::run(&idle, &keep, &a.methods, a.count, &opts, progress).await {
        Ok(cells) => {
            println!("{}", matrix::render(&cells));
            println!(
                "{} cells in {:.2} s wall ({:?} proxy, {:?} upstream; natural race: gaps swept ±1% around IdleTimeout)",
                cells.len(),
                started.elapsed().as_secs_f64(),
                a.proxy,
                a.upstream
            );
            if let Some(p) = &a.report.json {
                let j = serde_json::to_string_pretty(&cells).expect("json");
                if p.as_os_str() == "-" {
                    println!("{j}");
                } else if let Err(e) = std::fs::write(p, j) {
                    return usage_error(format!("cannot write {}: {e}", p.display()));
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(e),
    }
}

async fn run_conformance(a: &ReportArgs) -> ExitCode {
    if let Err(e) = check_scale(a.scale) {
        return usage_error(e);
    }
    let all = match catalogue::all() {
        Ok(x) => x,
        Err(e) => return usage_error(e),
    };
    if let Err(e) = harness::nginx::available() {
        return usage_error(format!("conformance needs real nginx: {e}"));
    }
    let go_ok = harness::go::build_go_upstream();
    if let Err(e) = &go_ok {
        return usage_error(format!("conformance needs Go: {e}"));
    }
    let started = Instant::now();
    let combos = [
        (ProxyBackend::Builtin, UpstreamBackend::Builtin),
        (ProxyBackend::Nginx, UpstreamBackend::Builtin),
        (ProxyBackend::Nginx, UpstreamBackend::Go),
    ];
    let mut results = Vec::new();
    let mut rows = Vec::new();
    let mut disagreements = 0;
    for (i, s) in all.iter().enumerate() {
        progress(i + 1, all.len(), &s.name);
        let mut runs = Vec::new();
        for (p, u) in combos {
            match runner::run(s, &RunOptions { proxy: p, upstream: u, scale: a.scale }).await {
                Ok(r) => runs.push(r),
                Err(e) => return usage_error(format!("{} on {p:?}/{u:?}: {e}", s.name)),
            }
        }
        let agree = scenarios::runner::agreement(&runs);
        if agree.is_err() {
            disagreements += 1;
        }
        let cell = |r: &RunResult| match (&r.skipped, r.passed) {
            (Some(_), _) => "n/a".to_string(),
            (None, true) => "pass".to_string(),
            (None, false) => "FAIL".to_string(),
        };
        rows.push(format!(
            "{:<32} {:<10} {:<12} {:<12} {}",
            s.name,
            cell(&runs[0]),
            cell(&runs[1]),
            cell(&runs[2]),
            match &agree {
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
    }
    if let Err(e) = write_reports(a, &results, wall.as_secs_f64() * 1e3, "scenarios conformance") {
        return usage_error(e);
    }
    if disagreements == 0 && results.iter().all(|r| r.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "error".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::List => match catalogue::all() {
            Ok(all) => {
                for s in all {
                    let tag = match &s.remedy_of {
                        Some(of) => format!("remedy of {of}"),
                        None => "problem".into(),
                    };
                    println!("{:<32} {:<36} {}", s.name, tag, s.title);
                }
                ExitCode::SUCCESS
            }
            Err(e) => usage_error(e),
        },
        Cmd::Explain { name } => match catalogue::find(&name) {
            Ok(s) => {
                println!("{} — {}\n\nMechanism:\n{}\n\nFix:\n{}", s.name, s.title, s.mechanism.trim(), s.fix.trim());
                if let Some(of) = &s.remedy_of {
                    println!("\nRemedy of: {of}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => usage_error(e),
        },
        Cmd::Run { name, args } => run_one(&name, &args).await,
        Cmd::All(args) => run_all(&args).await,
        Cmd::Matrix(a) => run_matrix(&a).await,
        Cmd::Conformance(a) => run_conformance(&a).await,
        Cmd::Scenario(argv) => match ScenarioCli::try_parse_from(std::iter::once("scenarios".to_string()).chain(argv)) {
            Ok(c) => run_one(&c.name, &c.args).await,
            Err(e) => {
                let _ = e.print();
                ExitCode::from(2)
            }
        },
    }
}
