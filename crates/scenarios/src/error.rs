//! What can go wrong before a verdict: a bad scenario, an unknown name, a
//! backend that does not start, a report that cannot be written. Failed
//! expectations are not errors; they are in the run's result.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A scenario file that does not parse or validate.
    #[error(transparent)]
    Scenario(#[from] crate::scenario::Invalid),
    #[error("no scenario named {name:?}; {}", hint(suggestions))]
    UnknownScenario { name: String, suggestions: Vec<String> },
    /// A command-line value out of range or unreadable.
    #[error("{0}")]
    Usage(String),
    /// The command line did not parse (or asked for help).
    #[error(transparent)]
    Cli(#[from] clap::Error),
    /// A scenario that could not run on the backends asked for.
    #[error("{scenario}: cannot run: {source}")]
    CannotRun { scenario: String, source: Box<Error> },
    /// A backend did not start, or failed while running.
    #[error(transparent)]
    Backend(#[from] harness::BackendError),
    /// The client could not reach the proxy.
    #[error("{what} proxy {addr}: {source}")]
    Client { what: &'static str, addr: std::net::SocketAddr, source: std::io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// Two scenario files with one name, or a remedy of nothing.
    #[error("{0}")]
    Catalogue(String),
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A scenario's network namespace (`ip_local_port_range`) could not be
    /// made, where one is required, or set up.
    #[error("network namespace: {0}")]
    Netns(String),
    /// The docker-compose lab is not up, or a docker command failed (`scenarios lab`).
    #[error("lab: {0}")]
    Lab(String),
    #[error("cannot render JSON: {0}")]
    Json(#[from] serde_json::Error),
}

fn hint(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        "`scenarios list` shows them".to_string()
    } else {
        format!("did you mean {}?", suggestions.join(", "))
    }
}

impl Error {
    /// Exit status 2: bad usage, or a setup that cannot run (1 is kept for
    /// a failed expectation, see [`exit`]); 0 for `--help`.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Cli(e) => ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2)),
            _ => ExitCode::from(2),
        }
    }

    /// Says what went wrong on stderr and returns the exit status.
    pub fn report(&self) -> ExitCode {
        match self {
            // clap formats its own messages (usage, help).
            Error::Cli(e) => {
                let _ = e.print();
            }
            _ => eprintln!("scenarios: {self}"),
        }
        self.exit_code()
    }

    /// This error stopped scenario `scenario`.
    pub fn running(self, scenario: impl Into<String>) -> Error {
        Error::CannotRun { scenario: scenario.into(), source: Box::new(self) }
    }
}

/// The exit status of a command that ran: 0 when every expectation was met,
/// 1 when one failed.
pub fn exit(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
