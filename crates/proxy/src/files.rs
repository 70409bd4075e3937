//! The file system as nginx.conf's `include` sees it: the real one, behind
//! `nginx_model::include::Files` so that the parser stays pure.

use nginx_model::conf::{self, ConfError, Source};
use nginx_model::include::Files;
use std::io::{self, Read};
use std::path::Path;

/// Reads files as `ngx_conf_parse` does: as many bytes as the file's size
/// said when it was opened (`ngx_fd_info`), so `/dev/zero` reads as empty
/// and nothing grows without bound; a directory is `EISDIR`.
pub struct Fs;

/// The largest configuration file the emulation reads. nginx streams a
/// file through a 4 KiB buffer and has no such limit; the proxy holds each
/// file whole, so a (sparse) file of gigabytes is refused, with its size.
pub const MAX_CONF_FILE: u64 = 64 << 20;

impl Files for Fs {
    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        let f = std::fs::File::open(path)?;
        let meta = f.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::from_raw_os_error(21));
        }
        if meta.len() > MAX_CONF_FILE {
            let msg = format!("{} bytes: larger than this emulation reads ({} MiB)", meta.len(), MAX_CONF_FILE >> 20);
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, msg));
        }
        let mut buf = Vec::with_capacity(meta.len().min(1 << 20) as usize);
        f.take(meta.len()).read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    }

    /// Running as root (the owner of `/proc/self` is the effective uid).
    fn privileged(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }

    /// In /etc/passwd (NSS sources other than files are not consulted).
    fn user_exists(&self, name: &str) -> bool {
        db_has("/etc/passwd", name)
    }

    /// In /etc/group.
    fn group_exists(&self, name: &str) -> bool {
        db_has("/etc/group", name)
    }
}

/// Whether a colon-separated database has an entry of this name.
fn db_has(path: &str, name: &str) -> bool {
    std::fs::read_to_string(path)
        .is_ok_and(|s| s.lines().any(|l| l.split(':').next() == Some(name)))
}

/// Parses configuration bytes read from `name` as `nginx -t -p PREFIX`
/// would: includes, `load_module` and `user` checked against this machine.
pub fn parse(bytes: &[u8], name: &str, prefix: &Path) -> Result<conf::Config, ConfError> {
    let mut prefix = prefix.display().to_string();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    conf::parse_files(
        bytes,
        name,
        &Source {
            files: &Fs,
            prefix,
            hosts: &crate::server::dns,
        },
    )
}

/// `nginx -t -p PREFIX -c FILE`'s reading: the main file (an `open()`
/// failure is nginx's message), its includes from the file system, host
/// names resolved. `Err` is the `[emerg]` text (with ` in FILE:LINE`).
pub fn read_conf(file: &Path, prefix: &Path) -> Result<conf::Config, String> {
    let name = file.display().to_string();
    let bytes = Fs.read(&name).map_err(|e| {
        format!(
            "open() \"{name}\" failed ({})",
            nginx_model::include::errno_text(&e)
        )
    })?;
    parse(&bytes, &name, prefix).map_err(|e| e.to_string())
}

/// The line `proxy -t` prints after nginx's lines: the directives read but
/// not run, sorted, each once; then what the emulation leaves out.
pub fn not_emulated_lines(cfg: &conf::Config, notes: &[(String, conf::Pos)]) -> Vec<String> {
    let mut out = Vec::new();
    if !cfg.not_emulated.0.is_empty() {
        let names: Vec<&str> = cfg.not_emulated.0.iter().map(|s| s.as_str()).collect();
        out.push(format!(
            "not emulated (no effect on the 502 model): {}",
            names.join(", ")
        ));
    }
    let mut seen: Vec<&str> = Vec::new();
    for (what, pos) in notes {
        if !seen.contains(&what.as_str()) {
            seen.push(what);
            out.push(format!("not emulated: {what}{pos}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_file_is_refused_without_being_read() {
        let dir = std::env::temp_dir().join(format!("badgateway-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("huge.conf");
        // Sparse: no disk space, and nothing is read.
        std::fs::File::create(&path).unwrap().set_len(100 << 30).unwrap();
        let err = Fs.read(path.to_str().unwrap()).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.to_string().contains("larger than this emulation reads"), "{err}");
        assert!(Fs.read("/dev/zero").unwrap().is_empty());
    }
}
