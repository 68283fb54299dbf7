//! The tarball's own `package.json`: name, version and bins.
//!
//! # Why a typed, lenient reader
//!
//! `package.json` comes from the tarball, so it is attacker-sized and attacker-shaped. It is
//! read with a typed visitor that keeps only `name`, `version`, `bin` and `directories.bin` and
//! skips everything else without building it (no `serde_json::Value` of the whole document);
//! the bytes kept in memory are capped by `ImportLimits::max_package_json_bytes` before the
//! entry is read. A field of an unexpected type (`"name": 5`) is ignored, as npm does, instead
//! of making the whole file unreadable.
//!
//! Bins are validated like the lockfile's (see [`crate::bins`]); an invalid one is *skipped*
//! with a warning event naming it, never linked: the package itself is fine to import, and the
//! lockfile written by npm carries the bins npm accepted anyway. `directories.bin` (used when
//! `bin` is absent) links every file below that directory, named after its file name, except
//! dot files, as npm does.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::bins::{BinError, bin_name_of_package, normalize_bin_target, validate_bin_name};

/// What a `package.json` declares that the store needs, bins validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PackageJson {
    /// `name`, when a string.
    pub(crate) name: Option<String>,
    /// `version`, when a string.
    pub(crate) version: Option<String>,
    /// Valid bins of `bin`: name → normalized target.
    pub(crate) bins: BTreeMap<String, String>,
    /// `directories.bin`, normalized, when `bin` is absent and the directory is valid.
    pub(crate) bin_dir: Option<String>,
    /// Bins (or `directories.bin`) refused, for warning events.
    pub(crate) skipped: Vec<SkippedBin>,
}

/// A bin that will not be linked, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SkippedBin {
    /// The bin name as written (`directories.bin` for the directory itself).
    pub(crate) name: String,
    /// The target as written.
    pub(crate) target: String,
    /// Why.
    pub(crate) reason: SkipReason,
}

/// Why a bin is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SkipReason {
    /// Invalid name or target.
    #[error(transparent)]
    Invalid(#[from] BinError),
    /// The target is not a string.
    #[error("bin target is not a string")]
    TargetNotAString,
    /// `bin` is a string but the package has no `name` to name it after.
    #[error("`bin` is a string but package.json has no `name`")]
    NoPackageName,
    /// `bin` is neither a string nor an object.
    #[error("`bin` is neither a string nor an object")]
    NotAStringOrObject,
}

/// Reads `name`, `version`, `bin` and `directories.bin` from `package.json` bytes.
///
/// This is the entry point the `fuzzing` feature wraps: whatever the bytes, it returns an error
/// or bins whose names and targets passed [`crate::bins`].
pub(crate) fn parse_package_json_bins(bytes: &[u8]) -> Result<PackageJson, serde_json::Error> {
    let raw: RawPackageJson = serde_json::from_slice(bytes)?;
    let mut out = PackageJson {
        name: raw.name,
        version: raw.version,
        ..PackageJson::default()
    };
    let add = |out: &mut PackageJson, name: String, target: Option<String>| {
        let Some(target) = target else {
            out.skipped.push(SkippedBin {
                name,
                target: String::new(),
                reason: SkipReason::TargetNotAString,
            });
            return;
        };
        match validate_bin_name(&name).and_then(|()| normalize_bin_target(&target)) {
            Ok(normalized) => {
                out.bins.insert(name, normalized);
            }
            Err(e) => out.skipped.push(SkippedBin {
                name,
                target,
                reason: e.into(),
            }),
        }
    };
    match raw.bin {
        RawBin::Absent => {
            if let Some(dir) = raw.bin_dir {
                match normalize_bin_target(&dir) {
                    Ok(normalized) => out.bin_dir = Some(normalized),
                    Err(e) => out.skipped.push(SkippedBin {
                        name: "directories.bin".to_owned(),
                        target: dir,
                        reason: e.into(),
                    }),
                }
            }
        }
        RawBin::Single(target) => match out.name.clone() {
            Some(package) => add(
                &mut out,
                bin_name_of_package(&package).to_owned(),
                Some(target),
            ),
            None => out.skipped.push(SkippedBin {
                name: String::new(),
                target,
                reason: SkipReason::NoPackageName,
            }),
        },
        RawBin::Map(entries) => {
            for (name, target) in entries {
                add(&mut out, name, target);
            }
        }
        RawBin::Other => out.skipped.push(SkippedBin {
            name: "bin".to_owned(),
            target: String::new(),
            reason: SkipReason::NotAStringOrObject,
        }),
    }
    Ok(out)
}

impl PackageJson {
    /// Adds the bins of `directories.bin`: every path of `paths` below that directory whose
    /// components below it do not start with `.`, named after its file name (a later path wins
    /// a name clash; `paths` come sorted). Linear in the paths' length.
    pub(crate) fn expand_bin_dir<'p>(&mut self, paths: impl Iterator<Item = &'p str>) {
        let Some(dir) = self.bin_dir.take() else {
            return;
        };
        for path in paths {
            let Some(rest) = path
                .strip_prefix(dir.as_str())
                .and_then(|r| r.strip_prefix('/'))
            else {
                continue;
            };
            if rest.split('/').any(|c| c.starts_with('.')) {
                continue;
            }
            let name = rest.rsplit('/').next().unwrap_or(rest);
            match validate_bin_name(name) {
                Ok(()) => {
                    self.bins.insert(name.to_owned(), path.to_owned());
                }
                Err(e) => self.skipped.push(SkippedBin {
                    name: name.to_owned(),
                    target: path.to_owned(),
                    reason: e.into(),
                }),
            }
        }
    }
}

/// `package.json` as read: unknown fields skipped, fields of the wrong type ignored.
#[derive(Default)]
struct RawPackageJson {
    name: Option<String>,
    version: Option<String>,
    bin: RawBin,
    bin_dir: Option<String>,
}

#[derive(Default)]
enum RawBin {
    #[default]
    Absent,
    Single(String),
    Map(Vec<(String, Option<String>)>),
    Other,
}

/// Visitor methods that accept any other JSON value as `$default`, consuming it.
macro_rules! accept_other_values {
    ($default:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($default)
        }
    };
}

/// A string, or `None` for any other value.
struct LooseString(Option<String>);

impl<'de> de::Deserialize<'de> for LooseString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LooseString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LooseString, E> {
                Ok(LooseString(Some(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<LooseString, E> {
                Ok(LooseString(Some(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LooseString, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(LooseString(None))
            }
            accept_other_values!(LooseString(None));
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> de::Deserialize<'de> for RawBin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawBin;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a bin path or an object of bin name -> path")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawBin, E> {
                Ok(RawBin::Single(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<RawBin, E> {
                Ok(RawBin::Single(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawBin, A::Error> {
                let mut entries = Vec::new();
                while let Some((name, target)) = map.next_entry::<String, LooseString>()? {
                    entries.push((name, target.0));
                }
                Ok(RawBin::Map(entries))
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawBin, E> {
                Ok(RawBin::Absent)
            }
            fn visit_none<E: de::Error>(self) -> Result<RawBin, E> {
                Ok(RawBin::Absent)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawBin, E> {
                Ok(RawBin::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawBin, E> {
                Ok(RawBin::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawBin, E> {
                Ok(RawBin::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawBin, E> {
                Ok(RawBin::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawBin, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RawBin::Other)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `directories`: only its `bin`, when a string.
struct RawDirectories(Option<String>);

impl<'de> de::Deserialize<'de> for RawDirectories {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawDirectories;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawDirectories, A::Error> {
                let mut bin = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "bin" {
                        bin = map.next_value::<LooseString>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(RawDirectories(bin))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<RawDirectories, E> {
                Ok(RawDirectories(None))
            }
            accept_other_values!(RawDirectories(None));
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> de::Deserialize<'de> for RawPackageJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPackageJson;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a package.json object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawPackageJson, A::Error> {
                // Duplicate keys: the last one wins, as with JSON.parse.
                let mut out = RawPackageJson::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "name" => out.name = map.next_value::<LooseString>()?.0,
                        "version" => out.version = map.next_value::<LooseString>()?.0,
                        "bin" => out.bin = map.next_value::<RawBin>()?,
                        "directories" => out.bin_dir = map.next_value::<RawDirectories>()?.0,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// The build a `package.json` asks for: its `preinstall`, `install` and `postinstall` scripts
/// and `gypfile` (read the same lenient way: other fields skipped, wrong types ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Lifecycle {
    /// `(stage, command)` of every lifecycle script present as a non-empty string, in run order.
    pub(crate) scripts: Vec<(&'static str, String)>,
    /// `gypfile`, when a boolean (`false` turns off npm's implicit `node-gyp rebuild`).
    pub(crate) gypfile: Option<bool>,
    /// `os`, `cpu` and `libc` restrictions (strings of a list, or one string).
    pub(crate) os: Vec<String>,
    /// See `os`.
    pub(crate) cpu: Vec<String>,
    /// See `os`.
    pub(crate) libc: Vec<String>,
}

/// The lifecycle stages that run at install time, in order.
pub(crate) const INSTALL_STAGES: [&str; 3] = ["preinstall", "install", "postinstall"];

/// Reads the lifecycle scripts and `gypfile` from `package.json` bytes.
pub(crate) fn parse_lifecycle(bytes: &[u8]) -> Result<Lifecycle, serde_json::Error> {
    let raw: RawLifecycle = serde_json::from_slice(bytes)?;
    let mut scripts = Vec::new();
    for (stage, command) in INSTALL_STAGES.into_iter().zip(raw.scripts.0) {
        if let Some(command) = command.filter(|c| !c.trim().is_empty()) {
            scripts.push((stage, command));
        }
    }
    Ok(Lifecycle {
        scripts,
        gypfile: raw.gypfile.0,
        os: raw.os.0,
        cpu: raw.cpu.0,
        libc: raw.libc.0,
    })
}

#[derive(Default)]
struct RawLifecycle {
    scripts: RawScripts,
    gypfile: LooseBool,
    os: LooseList,
    cpu: LooseList,
    libc: LooseList,
}

/// A list of strings (non-strings skipped), one string, or empty for any other value.
#[derive(Default)]
struct LooseList(Vec<String>);

impl<'de> de::Deserialize<'de> for LooseList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LooseList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LooseList, E> {
                Ok(LooseList(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LooseList, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<LooseString>()? {
                    out.extend(item.0);
                }
                Ok(LooseList(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LooseList, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(LooseList::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<LooseList, E> {
                Ok(LooseList::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<LooseList, E> {
                Ok(LooseList::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<LooseList, E> {
                Ok(LooseList::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<LooseList, E> {
                Ok(LooseList::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<LooseList, E> {
                Ok(LooseList::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<LooseList, E> {
                Ok(LooseList::default())
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `scripts`: the three install stages, when strings (the last of duplicate keys wins).
#[derive(Default)]
struct RawScripts([Option<String>; 3]);

/// A boolean, or `None` for any other value.
#[derive(Default)]
struct LooseBool(Option<bool>);

impl<'de> de::Deserialize<'de> for LooseBool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LooseBool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<LooseBool, E> {
                Ok(LooseBool(Some(v)))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<LooseBool, E> {
                Ok(LooseBool(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LooseBool, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(LooseBool(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<LooseBool, E> {
                Ok(LooseBool(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<LooseBool, E> {
                Ok(LooseBool(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<LooseBool, E> {
                Ok(LooseBool(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<LooseBool, E> {
                Ok(LooseBool(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<LooseBool, E> {
                Ok(LooseBool(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LooseBool, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(LooseBool(None))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> de::Deserialize<'de> for RawScripts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawScripts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of scripts")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawScripts, A::Error> {
                let mut out = RawScripts::default();
                while let Some(key) = map.next_key::<String>()? {
                    let slot = INSTALL_STAGES
                        .iter()
                        .position(|s| *s == key)
                        .and_then(|i| out.0.get_mut(i));
                    match slot {
                        Some(slot) => *slot = map.next_value::<LooseString>()?.0,
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<RawScripts, E> {
                Ok(RawScripts::default())
            }
            accept_other_values!(RawScripts::default());
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> de::Deserialize<'de> for RawLifecycle {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawLifecycle;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a package.json object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawLifecycle, A::Error> {
                // Duplicate keys: the last one wins, as with JSON.parse.
                let mut out = RawLifecycle::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "scripts" => out.scripts = map.next_value::<RawScripts>()?,
                        "gypfile" => out.gypfile = map.next_value::<LooseBool>()?,
                        "os" => out.os = map.next_value::<LooseList>()?,
                        "cpu" => out.cpu = map.next_value::<LooseList>()?,
                        "libc" => out.libc = map.next_value::<LooseList>()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> PackageJson {
        parse_package_json_bins(json.as_bytes()).unwrap()
    }

    #[test]
    fn bins_from_string_and_map() {
        let pkg = parse(r#"{"name":"@s/tool","version":"1.0.0","bin":"./cli.js"}"#);
        assert_eq!(pkg.name.as_deref(), Some("@s/tool"));
        assert_eq!(pkg.version.as_deref(), Some("1.0.0"));
        assert_eq!(pkg.bins.get("tool").unwrap(), "cli.js");
        let pkg = parse(r#"{"bin":{"a":"bin/a","b":"./b"}}"#);
        assert_eq!(pkg.bins.len(), 2);
        assert_eq!(pkg.bins.get("b").unwrap(), "b");
        assert!(pkg.skipped.is_empty());
    }

    #[test]
    fn invalid_bins_are_skipped_never_kept() {
        let pkg = parse(
            r#"{"name":"x","bin":{"../../x":"cli.js","ok":"../../../etc/passwd",
                "abs":"/usr/bin/env","empty":"./","num":5,"":"a","good":"bin/../g.js"}}"#,
        );
        assert_eq!(pkg.bins.keys().collect::<Vec<_>>(), vec!["good"]);
        assert_eq!(pkg.bins.get("good").unwrap(), "g.js");
        let reasons: Vec<(&str, SkipReason)> = pkg
            .skipped
            .iter()
            .map(|s| (s.name.as_str(), s.reason))
            .collect();
        assert!(reasons.contains(&("../../x", SkipReason::Invalid(BinError::BadCharacter))));
        assert!(reasons.contains(&("ok", SkipReason::Invalid(BinError::EscapingTarget))));
        assert!(reasons.contains(&("abs", SkipReason::Invalid(BinError::AbsoluteTarget))));
        assert!(reasons.contains(&("empty", SkipReason::Invalid(BinError::EmptyTarget))));
        assert!(reasons.contains(&("num", SkipReason::TargetNotAString)));
        assert!(reasons.contains(&("", SkipReason::Invalid(BinError::EmptyName))));
    }

    #[test]
    fn string_bin_of_a_scoped_package_uses_the_part_after_the_scope() {
        let pkg = parse(r#"{"name":"@scope/..","bin":"cli.js"}"#);
        assert!(pkg.bins.is_empty());
        assert_eq!(
            pkg.skipped[0].reason,
            SkipReason::Invalid(BinError::DotName)
        );
        let pkg = parse(r#"{"bin":"cli.js"}"#);
        assert_eq!(pkg.skipped[0].reason, SkipReason::NoPackageName);
    }

    #[test]
    fn fields_of_unexpected_types_are_ignored() {
        let pkg = parse(
            r#"{"name":5,"version":["1"],"bin":true,"directories":"bin",
                "scripts":{"a":[1,{"b":null}]},"name":"last-wins"}"#,
        );
        assert_eq!(pkg.name.as_deref(), Some("last-wins"));
        assert_eq!(pkg.version, None);
        assert!(pkg.bins.is_empty());
        assert_eq!(pkg.skipped[0].reason, SkipReason::NotAStringOrObject);
        assert!(parse_package_json_bins(b"[1,2]").is_err());
        assert!(parse_package_json_bins(b"{\"name\":").is_err());
    }

    #[test]
    fn directories_bin_links_every_file_below_it() {
        let mut pkg = parse(r#"{"name":"d","directories":{"bin":"./bin/"}}"#);
        assert_eq!(pkg.bin_dir.as_deref(), Some("bin"));
        pkg.expand_bin_dir(
            [
                "bin/a",
                "bin/.hidden",
                "bin/sub/b.js",
                "bin/.dot/c",
                "binary",
                "lib/x",
            ]
            .into_iter(),
        );
        assert_eq!(
            pkg.bins,
            BTreeMap::from([
                ("a".to_owned(), "bin/a".to_owned()),
                ("b.js".to_owned(), "bin/sub/b.js".to_owned()),
            ])
        );
        let pkg = parse(r#"{"directories":{"bin":"../../.."}}"#);
        assert_eq!(pkg.bin_dir, None);
        assert_eq!(
            pkg.skipped[0].reason,
            SkipReason::Invalid(BinError::EscapingTarget)
        );
        // `bin` wins over `directories.bin`, as in npm.
        let pkg = parse(r#"{"name":"d","bin":"x.js","directories":{"bin":"bin"}}"#);
        assert_eq!(pkg.bin_dir, None);
    }

    #[test]
    fn deeply_nested_unknown_fields_are_an_error_not_a_crash() {
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        // serde_json's recursion limit or its iterative skipping: either way no stack overflow.
        let _ = parse_package_json_bins(deep.as_bytes());
    }

    #[test]
    fn lifecycle_scripts_and_gypfile_are_read_leniently() {
        let lc = parse_lifecycle(
            br#"{"name":"n","scripts":{"test":"jest","postinstall":"node build.js",
                "install":"node-gyp rebuild","preinstall":"  ","prepare":"tsc"},"gypfile":false}"#,
        )
        .unwrap();
        assert_eq!(
            lc.scripts,
            [
                ("install", "node-gyp rebuild".to_owned()),
                ("postinstall", "node build.js".to_owned())
            ]
        );
        assert_eq!(lc.gypfile, Some(false));
        let lc =
            parse_lifecycle(br#"{"scripts":{"install":5,"postinstall":["x"]},"gypfile":"yes"}"#)
                .unwrap();
        assert!(lc.scripts.is_empty());
        assert_eq!(lc.gypfile, None);
        let lc = parse_lifecycle(br#"{"scripts":"install","scripts":{"install":"a"}}"#).unwrap();
        assert_eq!(lc.scripts, [("install", "a".to_owned())]);
        let lc =
            parse_lifecycle(br#"{"os":["darwin",5,"!win32"],"cpu":"x64","libc":{"a":1}}"#).unwrap();
        assert_eq!(lc.os, ["darwin", "!win32"]);
        assert_eq!(lc.cpu, ["x64"]);
        assert!(lc.libc.is_empty());
        assert!(parse_lifecycle(b"[1]").is_err());
        assert!(parse_lifecycle(b"{\"scripts\":").is_err());
        let deep = format!(
            "{{\"scripts\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let _ = parse_lifecycle(deep.as_bytes());
    }
}
