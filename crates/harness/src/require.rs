//! Whether a real-program check can run here, decided in one place.
//!
//! A check whose program is missing is reported as *ignored, with the
//! reason*: never as passed. Where the programs must be present (CI sets
//! `BADGATEWAY_REQUIRE_NGINX=1` and `BADGATEWAY_REQUIRE_GO=1`), a missing
//! program fails the check instead.

use std::path::PathBuf;

/// A real program a check needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Nginx,
    Go,
}

impl Tool {
    /// The variable that makes the tool mandatory.
    pub fn require_var(self) -> &'static str {
        match self {
            Tool::Nginx => "BADGATEWAY_REQUIRE_NGINX",
            Tool::Go => "BADGATEWAY_REQUIRE_GO",
        }
    }

    /// Whether this environment demands the tool.
    pub fn required(self) -> bool {
        std::env::var(self.require_var()).as_deref() == Ok("1")
    }
}

/// The tool is not here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Missing {
    /// Report the check as ignored, with this reason.
    #[error("{0}")]
    Skip(String),
    /// The environment requires the tool: the check fails with this reason.
    #[error("{0} (required here by {1}=1)")]
    Required(String, &'static str),
}

fn missing(tool: Tool, why: String) -> Missing {
    if tool.required() {
        Missing::Required(why, tool.require_var())
    } else {
        Missing::Skip(why)
    }
}

/// The nginx binary, if a real-nginx check can run.
pub fn nginx() -> Result<PathBuf, Missing> {
    crate::nginx::available().map_err(|e| missing(Tool::Nginx, format!("needs nginx: {e}")))
}

/// The Go reference server binary (built on first use), if a real-Go check can run.
pub fn go() -> Result<PathBuf, Missing> {
    crate::go::build_go_upstream().map_err(|e| missing(Tool::Go, format!("needs Go: {e}")))
}

/// The program `tool`, if a check that needs it can run.
pub fn tool(tool: Tool) -> Result<PathBuf, Missing> {
    match tool {
        Tool::Nginx => nginx(),
        Tool::Go => go(),
    }
}

/// What a libtest-mimic trial returns for a missing tool: ignored with the
/// reason, or failed where the tool is required.
pub fn trial_outcome(m: Missing) -> Result<libtest_mimic::Completion, libtest_mimic::Failed> {
    match m {
        Missing::Skip(why) => Ok(libtest_mimic::Completion::ignored_with(why)),
        Missing::Required(..) => Err(m.to_string().into()),
    }
}

/// Makes a network namespace ([`crate::netns`], which needs root) mandatory
/// where it is set to 1, as CI sets it: a scenario that needs one then
/// fails instead of being skipped.
pub const NETNS_VAR: &str = "BADGATEWAY_REQUIRE_NETNS";

/// Whether this environment demands network namespaces.
pub fn netns_required() -> bool {
    std::env::var(NETNS_VAR).as_deref() == Ok("1")
}
