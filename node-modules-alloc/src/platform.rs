//! The platform a tree is allocated for: `os`, `cpu` and `libc`, named as npm names them
//! (`linux`/`darwin`/`win32`, `x64`/`arm64`/`ia32`, `glibc`/`musl`).
//!
//! # Why libc too
//!
//! Packages that ship native binaries publish one optional package per platform
//! (`@esbuild/linux-x64`, `@img/sharp-linuxmusl-x64`, ...) and restrict each with `os`, `cpu`
//! and, on Linux, `libc`. Filtering on `os`/`cpu` alone gives a glibc host the musl binary too
//! (or a tree whose binary fails to load): the allocator must pick exactly what npm picks.
//!
//! # How libc is detected
//!
//! Once per process ([`Platform::current`]), without spawning a process, the way the
//! `detect-libc` package does it on the filesystem: `/usr/bin/ldd` is read (at most 64 KiB; on
//! glibc it is a script naming the "GNU C Library", on musl a link to the musl loader, whose
//! bytes contain `musl`); when that says nothing, the dynamic loaders present decide
//! (`/lib/ld-musl-*` for musl, `/lib*/ld-linux*` for glibc). Anything else is unknown, and a
//! package restricted by `libc` then does not fit (as with npm). On other systems libc is
//! unknown. [`Platform::detect_with_root`] runs the same detection below another root (tests),
//! and [`PlatformConfig`] overrides any field (npm's `--os`, `--cpu`, `--libc`).
//!
//! ```
//! use node_modules_alloc::platform::{Libc, Platform};
//!
//! let glibc = Platform { os: "linux".into(), cpu: "x64".into(), libc: Some(Libc::Glibc) };
//! let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
//! assert!(glibc.mismatch(&list(&["linux"]), &list(&["x64", "arm64"]), &list(&["glibc"])).is_none());
//! assert!(glibc.mismatch(&[], &[], &list(&["musl"])).is_some());
//! assert!(glibc.mismatch(&list(&["!linux"]), &[], &[]).is_some());
//! ```

use std::fmt;
use std::fs;
use std::io::Read as _;
use std::path::Path;
use std::sync::OnceLock;

use resilience_core::ConfigError;
use serde::{Deserialize, Serialize};

/// A C library family, as npm's `libc` field names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Libc {
    /// GNU libc.
    Glibc,
    /// musl libc (Alpine and other small distributions).
    Musl,
}

impl Libc {
    /// `glibc` or `musl`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Glibc => "glibc",
            Self::Musl => "musl",
        }
    }
}

impl fmt::Display for Libc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of [`Libc::from_str`](std::str::FromStr).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid libc {0:?}: expected glibc or musl")]
pub struct ParseLibcError(pub String);

impl std::str::FromStr for Libc {
    type Err = ParseLibcError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "glibc" => Ok(Self::Glibc),
            "musl" => Ok(Self::Musl),
            other => Err(ParseLibcError(other.to_owned())),
        }
    }
}

/// The platform packages are filtered for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// npm's `process.platform` name: `linux`, `darwin`, `win32`, ...
    pub os: String,
    /// npm's `process.arch` name: `x64`, `arm64`, `ia32`, ...
    pub cpu: String,
    /// The C library family; `None` when unknown (any `libc` restriction then excludes it).
    pub libc: Option<Libc>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.libc {
            Some(libc) => write!(f, "{} {} {libc}", self.os, self.cpu),
            None => write!(f, "{} {} libc unknown", self.os, self.cpu),
        }
    }
}

/// Bytes of `ldd` read to recognize it.
const LDD_READ_LIMIT: u64 = 64 << 10;
/// Longest restriction list shown in a message.
const SHOWN_BYTES: usize = 200;

impl Platform {
    /// The platform of this process, detected once (later calls cost nothing).
    pub fn current() -> &'static Self {
        static CURRENT: OnceLock<Platform> = OnceLock::new();
        CURRENT.get_or_init(|| {
            let platform = Self::detect_with_root(Path::new("/"));
            tracing::debug!(os = %platform.os, cpu = %platform.cpu, libc = ?platform.libc, "platform detected");
            platform
        })
    }

    /// Detects the platform, reading libc markers below `root` instead of `/` (tests build a
    /// fake root). `os` and `cpu` come from how this binary was built.
    pub fn detect_with_root(root: &Path) -> Self {
        let os = match std::env::consts::OS {
            "macos" => "darwin",
            "windows" => "win32",
            other => other,
        };
        let cpu = match std::env::consts::ARCH {
            "x86_64" => "x64",
            "aarch64" => "arm64",
            "x86" => "ia32",
            "powerpc64" => "ppc64",
            other => other,
        };
        let libc = if os == "linux" {
            detect_libc(root)
        } else {
            None
        };
        Self {
            os: os.to_owned(),
            cpu: cpu.to_owned(),
            libc,
        }
    }

    /// This platform with the fields `config` sets replaced.
    #[must_use]
    pub fn with_overrides(&self, config: &PlatformConfig) -> Self {
        Self {
            os: config.os.clone().unwrap_or_else(|| self.os.clone()),
            cpu: config.cpu.clone().unwrap_or_else(|| self.cpu.clone()),
            libc: config.libc.or(self.libc),
        }
    }

    /// Why a package restricted by `os`, `cpu` and `libc` does not fit this platform, or `None`
    /// when it fits. Each list follows npm's rule: empty or `["any"]` allows everything, a
    /// `!value` entry excludes that value, and a list with positive entries needs one to match.
    pub fn mismatch(&self, os: &[String], cpu: &[String], libc: &[String]) -> Option<String> {
        if !allowed(os, &self.os) {
            return Some(format!("os {} excludes {}", shown(os), self.os));
        }
        if !allowed(cpu, &self.cpu) {
            return Some(format!("cpu {} excludes {}", shown(cpu), self.cpu));
        }
        if !libc.is_empty() {
            match self.libc {
                None => {
                    return Some(format!(
                        "libc {} cannot be checked: this system's libc is unknown",
                        shown(libc)
                    ));
                }
                Some(family) if !allowed(libc, family.as_str()) => {
                    return Some(format!("libc {} excludes {family}", shown(libc)));
                }
                Some(_) => {}
            }
        }
        None
    }
}

/// npm's `checkList` (npm-install-checks).
fn allowed(list: &[String], value: &str) -> bool {
    if list.is_empty() || (list.len() == 1 && list.first().is_some_and(|v| v == "any")) {
        return true;
    }
    let mut negated = 0;
    let mut matched = false;
    for entry in list {
        match entry.strip_prefix('!') {
            Some(test) => {
                negated += 1;
                if test == value {
                    return false;
                }
            }
            None => matched |= entry == value,
        }
    }
    matched || negated == list.len()
}

/// A restriction list for a message, cut (lockfile values are untrusted).
fn shown(list: &[String]) -> String {
    let text = format!("{list:?}");
    if text.len() <= SHOWN_BYTES {
        return text;
    }
    let mut cut = SHOWN_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", text.get(..cut).unwrap_or_default())
}

/// The libc family of the system below `root`, read from files only (see the module docs).
pub fn detect_libc(root: &Path) -> Option<Libc> {
    let ldd = root.join("usr/bin/ldd");
    if let Ok(file) = fs::File::open(&ldd) {
        let mut bytes = Vec::new();
        if file.take(LDD_READ_LIMIT).read_to_end(&mut bytes).is_ok() {
            if contains(&bytes, b"musl") {
                return Some(Libc::Musl);
            }
            if contains(&bytes, b"GNU C Library") || contains(&bytes, b"glibc") {
                return Some(Libc::Glibc);
            }
        }
    }
    let names = |dir: &str| -> Vec<String> {
        fs::read_dir(root.join(dir))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let lib = names("lib");
    if lib.iter().any(|n| n.starts_with("ld-musl-")) {
        return Some(Libc::Musl);
    }
    if lib
        .iter()
        .chain(names("lib64").iter())
        .any(|n| n.starts_with("ld-linux"))
    {
        return Some(Libc::Glibc);
    }
    None
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Overrides of the detected platform (npm's `--os`, `--cpu`, `--libc`): allocate for another
/// platform than the one running the allocator, or name the libc when it cannot be detected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlatformConfig {
    /// The `os` to filter for instead of this system's (`linux`, `darwin`, ...).
    pub os: Option<String>,
    /// The `cpu` to filter for instead of this system's (`x64`, `arm64`, ...).
    pub cpu: Option<String>,
    /// The libc to filter for instead of the detected one.
    pub libc: Option<Libc>,
}

impl PlatformConfig {
    /// Checks every field: `os` and `cpu` are 1 to 32 bytes of `[a-z0-9_]`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [("os", &self.os), ("cpu", &self.cpu)] {
            if let Some(value) = value
                && (value.is_empty()
                    || value.len() > 32
                    || !value
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
            {
                return Err(ConfigError::new(
                    field,
                    format!("{value:?} is not a platform name (1 to 32 of a-z, 0-9, _)"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    fn linux(libc: Option<Libc>) -> Platform {
        Platform {
            os: "linux".to_owned(),
            cpu: "x64".to_owned(),
            libc,
        }
    }

    #[test]
    fn lists_follow_npm_check_list() {
        assert!(allowed(&[], "linux"));
        assert!(allowed(&list(&["any"]), "linux"));
        assert!(allowed(&list(&["linux", "darwin"]), "linux"));
        assert!(!allowed(&list(&["darwin"]), "linux"));
        assert!(allowed(&list(&["!win32"]), "linux"));
        assert!(!allowed(&list(&["!linux"]), "linux"));
        assert!(!allowed(&list(&["!win32", "darwin"]), "linux"));
    }

    #[test]
    fn libc_restrictions_need_a_matching_known_libc() {
        let musl = list(&["musl"]);
        let glibc = list(&["glibc"]);
        assert!(
            linux(Some(Libc::Glibc))
                .mismatch(&[], &[], &glibc)
                .is_none()
        );
        let why = linux(Some(Libc::Glibc))
            .mismatch(&[], &[], &musl)
            .unwrap_or_default();
        assert!(why.contains("libc") && why.contains("glibc"), "{why}");
        assert!(linux(Some(Libc::Musl)).mismatch(&[], &[], &musl).is_none());
        assert!(linux(Some(Libc::Musl)).mismatch(&[], &[], &glibc).is_some());
        let why = linux(None).mismatch(&[], &[], &musl).unwrap_or_default();
        assert!(why.contains("unknown"), "{why}");
        // No restriction: fits whatever the libc.
        assert!(linux(None).mismatch(&[], &[], &[]).is_none());
    }

    #[test]
    fn long_restrictions_are_cut_in_messages() {
        let long = vec!["x".repeat(10_000)];
        let why = linux(None).mismatch(&long, &[], &[]).unwrap_or_default();
        assert!(why.len() < 400, "{}", why.len());
        let multibyte = vec!["é".repeat(500)];
        assert!(linux(None).mismatch(&multibyte, &[], &[]).is_some());
    }

    #[test]
    fn detects_musl_and_glibc_from_a_root() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(detect_libc(root.path()), None);

        // glibc: ldd is a script naming the GNU C Library.
        let glibc = tempfile::tempdir().unwrap();
        fs::create_dir_all(glibc.path().join("usr/bin")).unwrap();
        fs::write(
            glibc.path().join("usr/bin/ldd"),
            "#! /bin/bash\n# This file is part of the GNU C Library.\n",
        )
        .unwrap();
        assert_eq!(detect_libc(glibc.path()), Some(Libc::Glibc));

        // musl: no ldd, only the musl loader.
        let musl = tempfile::tempdir().unwrap();
        fs::create_dir_all(musl.path().join("lib")).unwrap();
        fs::write(musl.path().join("lib/ld-musl-x86_64.so.1"), b"\x7fELF").unwrap();
        assert_eq!(detect_libc(musl.path()), Some(Libc::Musl));

        // glibc by its loader alone.
        let loader = tempfile::tempdir().unwrap();
        fs::create_dir_all(loader.path().join("lib64")).unwrap();
        fs::write(loader.path().join("lib64/ld-linux-x86-64.so.2"), b"").unwrap();
        assert_eq!(detect_libc(loader.path()), Some(Libc::Glibc));

        // musl's ldd (a link to the loader) wins over anything else.
        fs::create_dir_all(loader.path().join("usr/bin")).unwrap();
        fs::write(loader.path().join("usr/bin/ldd"), b"\x7fELF...musl libc...").unwrap();
        assert_eq!(detect_libc(loader.path()), Some(Libc::Musl));
    }

    #[test]
    fn overrides_replace_detected_fields_and_are_validated() {
        let detected = linux(None);
        let config = PlatformConfig {
            libc: Some(Libc::Musl),
            cpu: Some("arm64".to_owned()),
            ..PlatformConfig::default()
        };
        config.validate().unwrap();
        let platform = detected.with_overrides(&config);
        assert_eq!(platform.libc, Some(Libc::Musl));
        assert_eq!(platform.cpu, "arm64");
        assert_eq!(platform.os, "linux");
        let bad = PlatformConfig {
            os: Some("../x".to_owned()),
            ..PlatformConfig::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("os"));
        let parsed: PlatformConfig = serde_json::from_str(r#"{"libc": "musl"}"#).unwrap();
        assert_eq!(parsed.libc, Some(Libc::Musl));
        assert!(serde_json::from_str::<PlatformConfig>(r#"{"libc": "uclibc"}"#).is_err());
    }

    #[test]
    fn this_system_is_detected_once() {
        let first = Platform::current();
        assert!(std::ptr::eq(first, Platform::current()));
        assert!(!first.os.is_empty() && !first.cpu.is_empty());
    }
}
