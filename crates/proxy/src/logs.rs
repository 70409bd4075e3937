//! The proxy's error.log and access.log sink: lines in nginx's formats
//! (`nginx_model::logs`), appended to the files the configuration names, as
//! nginx does, and kept in memory for readers in the same process (the
//! harness) only as far as the retention allows.

use nginx_model::logs::{render_access, AccessEntry};
use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use labkit::events::Retention;
use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// error.log and access.log: appended to files if configured, and the most
/// recent lines kept in memory by the retention.
#[derive(Clone)]
pub struct Logs {
    inner: Arc<Mutex<LogsInner>>,
}

struct LogsInner {
    retention: Retention,
    errors: VecDeque<String>,
    access: VecDeque<AccessEntry>,
    error_file: Option<File>,
    access_file: Option<(File, String)>,
}

impl Logs {
    pub fn new(error_path: Option<PathBuf>, access: Option<(PathBuf, String)>, retention: Retention) -> std::io::Result<Logs> {
        let open = |p: &PathBuf| OpenOptions::new().create(true).append(true).open(p);
        let error_file = error_path.as_ref().map(open).transpose()?;
        let access_file = match access {
            Some((p, fmt)) => Some((open(&p)?, fmt)),
            None => None,
        };
        let inner = LogsInner { retention, errors: VecDeque::new(), access: VecDeque::new(), error_file, access_file };
        Ok(Logs { inner: Arc::new(Mutex::new(inner)) })
    }

    pub fn error(&self, line: String) {
        tracing::info!(target: "proxy::error_log", "{line}");
        let mut g = self.inner.lock();
        if let Some(f) = g.error_file.as_mut() {
            let _ = writeln!(f, "{line}");
        }
        let keep = g.retention;
        retain(&mut g.errors, line, keep);
    }

    pub fn access(&self, e: AccessEntry) {
        let mut g = self.inner.lock();
        if let Some((f, fmt)) = g.access_file.as_mut() {
            let line = render_access(fmt, &e);
            let _ = writeln!(f, "{line}");
        }
        let keep = g.retention;
        retain(&mut g.access, e, keep);
    }

    pub fn errors(&self) -> Vec<String> {
        self.inner.lock().errors.iter().cloned().collect()
    }

    pub fn access_entries(&self) -> Vec<AccessEntry> {
        self.inner.lock().access.iter().cloned().collect()
    }
}


/// Appends `item`, dropping the oldest beyond the retention.
fn retain<T>(q: &mut VecDeque<T>, item: T, retention: Retention) {
    let Retention::Last(n) = retention else { return };
    if q.len() >= n {
        q.pop_front();
    }
    q.push_back(item);
}
