//! The one JSON document shape every command writes with `--json`: the
//! schema version, the tool and its version, and `report` naming the body
//! (`runs` for `run`/`NAME`/`all`/`conformance`, `matrix`, `check`,
//! `diagnose`, `lab`). The documents are these types serialised, and `scenarios
//! schema report` prints the JSON Schema derived from the same types, so the
//! published schema cannot drift from what is written.

use crate::check;
use crate::diagnose;
use crate::matrix::Cell;
use crate::runner::RunResult;
use crate::scenario::GoSettings;
use harness::{ProxyBackend, UpstreamBackend};
use schemars::JsonSchema;
use serde::Serialize;

/// The version of the documents' shape: bumped when a field changes
/// meaning or goes away (new fields may appear without it).
pub const SCHEMA_VERSION: u32 = 2;

/// Durations in a run report: the expectations are at the articles' scale
/// ("WriteTimeout 3s"); observations, timelines and wall times are what the
/// run measured, at `scale` times that.
pub const SCALE_NOTE: &str = "expectations and scenario settings are at article scale; observations (latency_ms, gap_ms, upstream_response_time), timelines (at_ms) and wall_ms are at run scale = article scale × scale";

/// A report of any command, as `--json` writes it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Document {
    /// The shape's version (bumped when a field changes meaning or goes away).
    pub schema_version: u32,
    pub tool: Tool,
    #[serde(flatten)]
    pub body: Body,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

/// What the document reports; `report` says which.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(tag = "report", rename_all = "snake_case")]
pub enum Body {
    /// `scenarios NAME`, `run`, `all`, `conformance`: runs and their verdicts.
    Runs(Runs),
    /// `scenarios matrix`: 502 and retry rates per cell.
    Matrix(Matrix),
    /// `scenarios rate`: the natural race's failures per hour for a traffic.
    Rate(crate::rate::Rate),
    /// `scenarios check`: the mechanisms a configuration allows.
    Check(Check),
    /// `scenarios diagnose`: logged failures put down to mechanisms.
    Diagnose(diagnose::Report),
    /// `scenarios lab`: a scenario through both proxies of the
    /// docker-compose lab, and its network faults.
    Lab(crate::lab::LabReport),
}

impl Document {
    pub fn new(body: Body) -> Document {
        Document {
            schema_version: SCHEMA_VERSION,
            tool: Tool { name: "badgateway-lab scenarios".into(), version: env!("CARGO_PKG_VERSION").into() },
            body,
        }
    }

    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }
}

/// The JSON Schema of [`Document`].
pub fn schema() -> schemars::Schema {
    schemars::schema_for!(Document)
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Runs {
    /// Which values are at article scale and which at run scale.
    pub scales: String,
    /// No run failed (a skipped run is neither passed nor failed).
    pub passed: bool,
    pub ran: usize,
    pub skipped: usize,
    pub wall_ms: f64,
    pub runs: Vec<RunResult>,
}

impl Runs {
    pub fn new(results: &[RunResult], wall_ms: f64) -> Runs {
        let skipped = results.iter().filter(|r| r.skipped.is_some()).count();
        Runs {
            scales: SCALE_NOTE.into(),
            passed: !results.iter().any(RunResult::failed),
            ran: results.len() - skipped,
            skipped,
            wall_ms,
            runs: results.to_vec(),
        }
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Matrix {
    pub scale: f64,
    pub proxy: ProxyBackend,
    pub upstream: UpstreamBackend,
    /// Methods, requests per cell, how gaps are drawn.
    pub plan: crate::matrix::Plan,
    /// `--gaps FROM..TO` as given (article scale); `None`: ±1% around IdleTimeout.
    pub gaps: Option<String>,
    /// `--rtt` as given: delay between proxy and upstream (not scaled).
    pub rtt: Option<String>,
    pub max_502_rate: Option<f64>,
    pub cells: Vec<Cell>,
    /// Each cell against `--baseline`, when given.
    pub baseline: Option<Vec<crate::matrix::Comparison>>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Check {
    /// The nginx.conf checked, as given.
    pub nginx_conf: String,
    pub profile: nginx_model::Profile,
    /// The nginx program whose version chose the profile (`--profile auto`).
    pub profile_from: Option<String>,
    pub go: GoSettings,
    pub locations: Vec<CheckedLocation>,
}

/// One proxying location and what it allows.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CheckedLocation {
    pub server: String,
    pub location: String,
    pub upstream: String,
    pub findings: Vec<check::Finding>,
    /// With `--run`: each probe run.
    pub runs: Vec<CheckRun>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CheckRun {
    pub mechanism: String,
    pub method: String,
    pub passed: bool,
    /// Why the probe could not run on these backends.
    pub skipped: Option<String>,
}
