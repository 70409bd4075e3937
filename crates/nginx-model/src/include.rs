//! How nginx finds the files of `include` (`ngx_conf_include`,
//! `ngx_conf_full_name`, `ngx_open_glob`), with the file system behind a
//! small trait so that the parser stays pure: the proxy passes the real
//! file system, tests pass a map.

use std::io;

/// What the parser asks of the file system.
pub trait Files {
    /// A file's bytes, as `ngx_conf_parse` reads them.
    fn read(&self, path: &str) -> io::Result<Vec<u8>>;
    /// The entry names of a directory (`.` and `..` excluded), any order.
    fn list(&self, dir: &str) -> io::Result<Vec<String>>;
    /// Whether the `user` directive is checked at all (`ngx_set_user`: only
    /// when nginx runs as root; otherwise it warns and ignores it).
    fn privileged(&self) -> bool {
        false
    }
    /// `getpwnam(name)` succeeds.
    fn user_exists(&self, _name: &str) -> bool {
        true
    }
    /// `getgrnam(name)` succeeds.
    fn group_exists(&self, _name: &str) -> bool {
        true
    }
}

/// No file system: every file is missing (a configuration parsed from
/// bytes alone; its `include`s fail as a missing file does in nginx).
pub struct NoFiles;

impl Files for NoFiles {
    fn read(&self, _: &str) -> io::Result<Vec<u8>> {
        Err(io::Error::from_raw_os_error(2))
    }
    fn list(&self, _: &str) -> io::Result<Vec<String>> {
        Err(io::Error::from_raw_os_error(2))
    }
}

/// `ngx_conf_full_name(cycle, name, 1)`: a relative name is taken from the
/// directory of the main configuration file (nginx's conf prefix, which
/// ends in `/` or is empty), never from the working directory.
pub fn full_name(conf_prefix: &str, name: &str) -> String {
    if name.starts_with('/') || conf_prefix.is_empty() {
        name.to_string()
    } else if conf_prefix.ends_with('/') {
        format!("{conf_prefix}{name}")
    } else {
        format!("{conf_prefix}/{name}")
    }
}

/// Whether `ngx_conf_include` globs the name (`strpbrk(name, "*?[")`).
pub fn is_glob(name: &str) -> bool {
    name.contains(['*', '?', '['])
}

/// `ngx_open_glob` + `ngx_read_glob`: glob(3) with no flags, so the matches
/// are sorted (byte order: nginx never calls setlocale), a wildcard does
/// not match a leading `.`, and no match is not an error (`gl->test`).
/// Unreadable directories are skipped, as glob(3) does without `GLOB_ERR`.
pub fn glob(files: &dyn Files, pattern: &str) -> Vec<String> {
    let absolute = pattern.starts_with('/');
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    let mut found: Vec<String> = vec![if absolute { "/".into() } else { String::new() }];
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut next = Vec::new();
        for base in &found {
            let dir = if base.is_empty() {
                ".".to_string()
            } else {
                base.clone()
            };
            let join = |name: &str| {
                if base.is_empty() || base.ends_with('/') {
                    format!("{base}{name}")
                } else {
                    format!("{base}/{name}")
                }
            };
            if is_glob(part) {
                let Ok(mut names) = files.list(&dir) else {
                    continue;
                };
                names.retain(|n| fnmatch(part.as_bytes(), n.as_bytes()));
                next.extend(names.iter().map(|n| join(n)));
            } else if last {
                // A literal last component must exist (glob(3) stats it).
                if files
                    .list(&dir)
                    .is_ok_and(|names| names.iter().any(|n| n == part))
                {
                    next.push(join(part));
                }
            } else {
                next.push(join(part));
            }
        }
        found = next;
    }
    found.retain(|f| !f.is_empty() && f != "/");
    found.sort();
    found.dedup();
    found
}

/// fnmatch(3) as glob(3) uses it on one path component: `*`, `?`, `[...]`
/// (with `!` or `^` and ranges), `\` quoting; a leading `.` only literally.
pub fn fnmatch(pat: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pat.first() != Some(&b'.') {
        return false;
    }
    matches(pat, name)
}

/// Iterative, with one backtrack point (the last `*`): linear in practice,
/// never exponential (`*a*a*a*a*b` against a long name).
fn matches(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // After the last `*`: where the pattern resumes and the name index it tried.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < pat.len() && pat[p] == b'*' {
            p += 1;
            star = Some((p, n));
            continue;
        }
        if p == pat.len() && n == name.len() {
            return true;
        }
        if let (true, Some(&c)) = (p < pat.len(), name.get(n)) {
            if let Some(next) = one(pat, p, c) {
                p = next;
                n += 1;
                continue;
            }
        }
        match star {
            Some((sp, sn)) if sn < name.len() => {
                star = Some((sp, sn + 1));
                p = sp;
                n = sn + 1;
            }
            _ => return false,
        }
    }
}

/// Whether the pattern element at `pat[p]` (not `*`) matches `c`, and where
/// the pattern goes on.
fn one(pat: &[u8], p: usize, c: u8) -> Option<usize> {
    match pat[p] {
        b'?' => Some(p + 1),
        b'[' => match class(&pat[p + 1..], c) {
            Some((hit, after)) => hit.then_some(pat.len() - after.len()),
            // An unclosed `[` is a literal.
            None => (c == b'[').then_some(p + 1),
        },
        b'\\' if p + 1 < pat.len() => (pat[p + 1] == c).then_some(p + 2),
        lit => (lit == c).then_some(p + 1),
    }
}

/// A bracket expression after its `[`: whether `c` is in it, and the rest
/// of the pattern; `None` if it is not closed.
fn class(pat: &[u8], c: u8) -> Option<(bool, &[u8])> {
    let (negate, mut i) = match pat.first() {
        Some(b'!' | b'^') => (true, 1),
        _ => (false, 0),
    };
    let mut hit = false;
    let mut first = true;
    while i < pat.len() {
        if pat[i] == b']' && !first {
            return Some((hit != negate, &pat[i + 1..]));
        }
        first = false;
        if i + 2 < pat.len() && pat[i + 1] == b'-' && pat[i + 2] != b']' {
            hit |= (pat[i]..=pat[i + 2]).contains(&c);
            i += 3;
        } else {
            hit |= pat[i] == c;
            i += 1;
        }
    }
    None
}

/// nginx's `(errno: strerror)` for a failed system call.
pub fn errno_text(e: &io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    match e.raw_os_error() {
        Some(n) => format!("{n}: {text}"),
        None => text,
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// An in-memory file system: path → bytes (directories implied).
    #[derive(Default)]
    pub struct MemFiles(pub BTreeMap<String, Vec<u8>>);

    impl MemFiles {
        pub fn with(files: &[(&str, &str)]) -> Self {
            MemFiles(
                files
                    .iter()
                    .map(|(p, s)| (p.to_string(), s.as_bytes().to_vec()))
                    .collect(),
            )
        }
    }

    impl Files for MemFiles {
        fn read(&self, path: &str) -> io::Result<Vec<u8>> {
            self.0
                .get(path)
                .cloned()
                .ok_or_else(|| io::Error::from_raw_os_error(2))
        }
        fn list(&self, dir: &str) -> io::Result<Vec<String>> {
            let prefix = if dir.ends_with('/') {
                dir.to_string()
            } else {
                format!("{dir}/")
            };
            let mut out: Vec<String> = self
                .0
                .keys()
                .filter_map(|k| k.strip_prefix(&prefix))
                .map(|r| r.split('/').next().unwrap_or("").to_string())
                .collect();
            out.dedup();
            if out.is_empty() {
                return Err(io::Error::from_raw_os_error(2));
            }
            Ok(out)
        }
    }

    #[test]
    fn full_names_are_relative_to_the_conf_prefix() {
        assert_eq!(
            full_name("/etc/nginx/", "mime.types"),
            "/etc/nginx/mime.types"
        );
        assert_eq!(
            full_name("/etc/nginx", "sites-enabled/*"),
            "/etc/nginx/sites-enabled/*"
        );
        assert_eq!(
            full_name("/etc/nginx/", "/usr/share/x.conf"),
            "/usr/share/x.conf"
        );
        assert_eq!(full_name("", "a.conf"), "a.conf");
    }

    #[test]
    fn globs_as_glob3() {
        let fs = MemFiles::with(&[
            ("/c/conf.d/b.conf", ""),
            ("/c/conf.d/a.conf", ""),
            ("/c/conf.d/.hidden.conf", ""),
            ("/c/conf.d/x.txt", ""),
            ("/c/sites/one/s.conf", ""),
            ("/c/sites/two/s.conf", ""),
        ]);
        assert_eq!(
            glob(&fs, "/c/conf.d/*.conf"),
            vec!["/c/conf.d/a.conf", "/c/conf.d/b.conf"]
        );
        assert_eq!(
            glob(&fs, "/c/conf.d/*"),
            vec!["/c/conf.d/a.conf", "/c/conf.d/b.conf", "/c/conf.d/x.txt"]
        );
        assert_eq!(
            glob(&fs, "/c/conf.d/.*.conf"),
            vec!["/c/conf.d/.hidden.conf"]
        );
        assert_eq!(
            glob(&fs, "/c/conf.d/[ab].conf"),
            vec!["/c/conf.d/a.conf", "/c/conf.d/b.conf"]
        );
        assert_eq!(glob(&fs, "/c/conf.d/[!a]?conf"), vec!["/c/conf.d/b.conf"]);
        assert_eq!(
            glob(&fs, "/c/sites/*/s.conf"),
            vec!["/c/sites/one/s.conf", "/c/sites/two/s.conf"]
        );
        assert!(
            glob(&fs, "/c/nothing/*.conf").is_empty(),
            "no match is not an error"
        );
    }

    #[test]
    fn fnmatch_classes() {
        assert!(fnmatch(b"a[0-9]", b"a5") && !fnmatch(b"a[0-9]", b"ax"));
        assert!(fnmatch(b"[]]", b"]") && fnmatch(b"a[", b"a["));
        assert!(fnmatch(b"\\*", b"*") && !fnmatch(b"\\*", b"x"));
        assert!(!fnmatch(b"*", b".dot") && fnmatch(b"*", b"dot"));
    }

    #[test]
    fn fnmatch_stars() {
        let table: &[(&[u8], &[u8], bool)] = &[
            (b"*.conf", b"a.conf", true),
            (b"*.conf", b"a.conf.bak", false),
            (b"a*b*c", b"axxbyyc", true),
            (b"a*b*c", b"axxbyy", false),
            (b"*", b"", true),
            (b"**x", b"abx", true),
            (b"*?", b"", false),
            (b"*[0-9]", b"site9", true),
            (b"*\\*", b"a*", true),
            (b"*\\*", b"ab", false),
            // Backtracking past a partial match of the text after `*`.
            (b"*ab", b"aab", true),
            // Many stars against a long name that does not match (exponential
            // for a naive recursive matcher).
            (b"*a*a*a*a*a*a*a*a*b", &[b'a'; 60], false),
            (b"*a*a*a*a*a*a*a*a*b", b"aaaaaaaaaaaaaaab", true),
        ];
        for (pat, name, want) in table {
            assert_eq!(fnmatch(pat, name), *want, "{} ~ {}", String::from_utf8_lossy(pat), String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn errno_as_nginx_prints_it() {
        assert_eq!(
            errno_text(&io::Error::from_raw_os_error(2)),
            "2: No such file or directory"
        );
    }
}
