//! Bin names and bin targets, validated the same way wherever they come from.
//!
//! # Why one place
//!
//! A bin becomes a symlink `node_modules/.bin/<name> -> ../<package>/<target>`. A name such as
//! `../../x` would put that link outside `.bin`, and a target such as `../../../etc/passwd` would
//! make it point outside the package. Bins are declared in two places that must agree on what
//! is acceptable: the lockfile (`packages[...].bin`) and the tarball's own `package.json`
//! (`bin`, or every file of `directories.bin`). Both go through these functions.
//!
//! A name must not be empty, `.` or `..`, nor contain `/`, `\` or NUL. A target is normalized
//! the way npm does (`\` read as `/`, `.` and empty components dropped, `..` resolved) and must
//! stay inside the package: not empty, not absolute, never above the package root.
//!
//! ```text
//! (internal API; the `fuzzing` feature exposes it)
//! assert_eq!(normalize_bin_target("./bin/../cli.js"), Ok("cli.js".to_owned()));
//! assert_eq!(normalize_bin_target("../../etc/passwd"), Err(BinError::EscapingTarget));
//! assert_eq!(validate_bin_name("../../x"), Err(BinError::BadCharacter));
//! ```

/// Why a bin name or target was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BinError {
    /// An empty name.
    #[error("bin name is empty")]
    EmptyName,
    /// `.` or `..` as a name.
    #[error("bin name must not be `.` or `..`")]
    DotName,
    /// `/`, `\` or NUL in a name.
    #[error("bin name must not contain `/`, `\\` or NUL")]
    BadCharacter,
    /// A target that normalizes to nothing (`""`, `.`, `./`).
    #[error("bin target is empty")]
    EmptyTarget,
    /// `/usr/bin/x`, `\x`.
    #[error("bin target is an absolute path")]
    AbsoluteTarget,
    /// A target whose `..` components climb above the package root.
    #[error("bin target leaves the package")]
    EscapingTarget,
    /// NUL in a target.
    #[error("bin target contains a NUL byte")]
    NulInTarget,
}

/// Checks a bin name (the file name created in `node_modules/.bin`).
pub(crate) fn validate_bin_name(name: &str) -> Result<(), BinError> {
    match name {
        "" => Err(BinError::EmptyName),
        "." | ".." => Err(BinError::DotName),
        _ if name.contains(['/', '\\', '\0']) => Err(BinError::BadCharacter),
        _ => Ok(()),
    }
}

/// Normalizes a bin target to a path inside the package (`./bin/cli.js` → `bin/cli.js`).
/// Linear in the target's length.
pub(crate) fn normalize_bin_target(target: &str) -> Result<String, BinError> {
    if target.contains('\0') {
        return Err(BinError::NulInTarget);
    }
    if target.starts_with(['/', '\\']) {
        return Err(BinError::AbsoluteTarget);
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in target.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(BinError::EscapingTarget);
                }
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(BinError::EmptyTarget);
    }
    Ok(parts.join("/"))
}

/// The bin name of a package whose `bin` is a single string: its name without the scope
/// (`@scope/tool` → `tool`).
pub(crate) fn bin_name_of_package(package: &str) -> &str {
    package.rsplit('/').next().unwrap_or(package)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_separators_dots_nul_and_empty() {
        assert_eq!(validate_bin_name("tool"), Ok(()));
        assert_eq!(validate_bin_name("a.b-c_d"), Ok(()));
        assert_eq!(validate_bin_name(""), Err(BinError::EmptyName));
        assert_eq!(validate_bin_name("."), Err(BinError::DotName));
        assert_eq!(validate_bin_name(".."), Err(BinError::DotName));
        for bad in ["../../x", "a/b", "a\\b", "a\0b"] {
            assert_eq!(validate_bin_name(bad), Err(BinError::BadCharacter), "{bad}");
        }
    }

    #[test]
    fn targets_are_normalized_inside_the_package() {
        assert_eq!(normalize_bin_target("./cli.js").unwrap(), "cli.js");
        assert_eq!(normalize_bin_target("bin//a.js").unwrap(), "bin/a.js");
        assert_eq!(normalize_bin_target("bin\\a.js").unwrap(), "bin/a.js");
        assert_eq!(normalize_bin_target("bin/../cli.js").unwrap(), "cli.js");
        assert_eq!(
            normalize_bin_target("../../etc/passwd"),
            Err(BinError::EscapingTarget)
        );
        assert_eq!(
            normalize_bin_target("bin/../../x"),
            Err(BinError::EscapingTarget)
        );
        assert_eq!(
            normalize_bin_target("/usr/bin/x"),
            Err(BinError::AbsoluteTarget)
        );
        assert_eq!(normalize_bin_target("\\x"), Err(BinError::AbsoluteTarget));
        for empty in ["", ".", "./", "a/.."] {
            assert_eq!(
                normalize_bin_target(empty),
                Err(BinError::EmptyTarget),
                "{empty}"
            );
        }
        assert_eq!(normalize_bin_target("a\0b"), Err(BinError::NulInTarget));
    }

    #[test]
    fn string_bins_are_named_after_the_package_without_its_scope() {
        assert_eq!(bin_name_of_package("@scope/tool"), "tool");
        assert_eq!(bin_name_of_package("tool"), "tool");
    }

    proptest::proptest! {
        /// Whatever the input, an accepted target has no `..`, `.` or empty component and is
        /// not absolute; an accepted name creates exactly one file inside `.bin`.
        #[test]
        fn accepted_bins_stay_inside(
            target in proptest::collection::vec(proptest::sample::select(vec!["a", "..", ".", "", "\\", "b/"]), 0..8),
            name in "[a-z./\\\\]{0,4}",
        ) {
            let target = target.concat();
            if let Ok(normalized) = normalize_bin_target(&target) {
                proptest::prop_assert!(!normalized.starts_with('/'));
                proptest::prop_assert!(normalized.split('/').all(|p| !p.is_empty() && p != "." && p != ".."));
            }
            if validate_bin_name(&name).is_ok() {
                proptest::prop_assert!(!name.is_empty() && name != "." && name != "..");
                proptest::prop_assert!(!name.contains(['/', '\\']));
            }
        }
    }
}
