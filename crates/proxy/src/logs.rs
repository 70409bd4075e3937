//! The proxy's error.log and access.log sink: lines in nginx's formats
//! (`nginx_model::logs`), kept in memory for the harness and appended to the
//! files the configuration names.

use nginx_model::logs::{render_access, AccessEntry};
use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// error.log and access.log: in memory, and appended to files if configured.
#[derive(Clone, Default)]
pub struct Logs {
    inner: Arc<Mutex<LogsInner>>,
}

#[derive(Default)]
struct LogsInner {
    errors: Vec<String>,
    access: Vec<AccessEntry>,
    error_file: Option<File>,
    access_file: Option<(File, String)>,
}

impl Logs {
    pub fn new(error_path: Option<PathBuf>, access: Option<(PathBuf, String)>) -> std::io::Result<Logs> {
        let open = |p: &PathBuf| OpenOptions::new().create(true).append(true).open(p);
        let error_file = error_path.as_ref().map(open).transpose()?;
        let access_file = match access {
            Some((p, fmt)) => Some((open(&p)?, fmt)),
            None => None,
        };
        Ok(Logs { inner: Arc::new(Mutex::new(LogsInner { error_file, access_file, ..Default::default() })) })
    }

    pub fn error(&self, line: String) {
        tracing::info!(target: "proxy::error_log", "{line}");
        let mut g = self.inner.lock();
        if let Some(f) = g.error_file.as_mut() {
            let _ = writeln!(f, "{line}");
        }
        g.errors.push(line);
    }

    pub fn access(&self, e: AccessEntry) {
        let mut g = self.inner.lock();
        if let Some((f, fmt)) = g.access_file.as_mut() {
            let line = render_access(fmt, &e);
            let _ = writeln!(f, "{line}");
        }
        g.access.push(e);
    }

    pub fn errors(&self) -> Vec<String> {
        self.inner.lock().errors.clone()
    }

    pub fn access_entries(&self) -> Vec<AccessEntry> {
        self.inner.lock().access.clone()
    }
}

