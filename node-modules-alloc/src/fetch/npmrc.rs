//! `.npmrc` handling: the registry, scoped registries and credentials.
//!
//! Read keys (everything else is ignored, as npm ignores keys it does not know):
//!
//! * `registry=URL` — the default registry;
//! * `@scope:registry=URL` — the registry of one scope;
//! * `//host[:port]/path/:_authToken=TOKEN` — a bearer token for URLs under that prefix;
//! * `//host[:port]/path/:_auth=BASE64` — basic credentials (`user:password` in base64).
//!
//! `${VAR}` in a value is replaced by the environment variable (empty when unset), as npm
//! does, so a CI secret stays out of the file. Lines starting with `#` or `;` are comments.
//!
//! Credentials are sent only to URLs whose `//host[:port]/path` starts with the key's
//! prefix (the longest matching prefix wins), never to another host; they are never logged
//! nor put in an error message ([`Secret`] prints as `<redacted>`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::url::Url;
use crate::error::{Error, Result};

/// A credential value: `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How requests under one prefix authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer TOKEN` (`_authToken`).
    Bearer(Secret),
    /// `Authorization: Basic BASE64` (`_auth`).
    Basic(Secret),
}

impl Credential {
    pub(crate) fn header_value(&self) -> String {
        match self {
            Self::Bearer(token) => format!("Bearer {}", token.expose()),
            Self::Basic(auth) => format!("Basic {}", auth.expose()),
        }
    }
}

/// Where packages come from: the default registry, per-scope registries and credentials per
/// URL prefix. Built from `.npmrc` files ([`Registries::load`]) and a `--registry` override.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registries {
    default: Option<Url>,
    scopes: BTreeMap<String, Url>,
    /// `//host[:port]/path/` → credential.
    auth: BTreeMap<String, Credential>,
}

impl Registries {
    /// No registry, no credentials: only `resolved` URLs of the lockfile can be fetched.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the default registry (`--registry`), overriding `.npmrc`.
    pub fn with_registry(mut self, url: &str) -> Result<Self> {
        self.default = Some(parse_registry(url, "--registry", None)?);
        Ok(self)
    }

    /// Sets the registry of `@scope`.
    pub fn with_scope(mut self, scope: &str, url: &str) -> Result<Self> {
        let scope = scope.trim_start_matches('@').to_owned();
        self.scopes
            .insert(scope, parse_registry(url, "scope registry", None)?);
        Ok(self)
    }

    /// Adds a bearer token for URLs under `//host[:port]/path/`.
    #[must_use]
    pub fn with_token(mut self, prefix: &str, token: Secret) -> Self {
        self.auth
            .insert(normalize_prefix(prefix), Credential::Bearer(token));
        self
    }

    /// Reads `.npmrc` files, the first one winning over later ones for a key (pass the
    /// project's file before the user's). Missing files are skipped; `${VAR}` is expanded
    /// with `env`.
    pub fn load(files: &[PathBuf], env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut registries = Self::default();
        for file in files.iter().rev() {
            let text = match std::fs::read_to_string(file) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("cannot read", file)(e)),
            };
            registries.apply(file, &text, &env)?;
        }
        Ok(registries)
    }

    /// Applies one file's keys over the current ones.
    pub fn apply(
        &mut self,
        file: &Path,
        text: &str,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<()> {
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let key = key.trim();
            let value = expand(unquote(value.trim()), env);
            let at = Some((file, number + 1));
            if key == "registry" {
                self.default = Some(parse_registry(&value, key, at)?);
            } else if let Some(scope) = key
                .strip_prefix('@')
                .and_then(|k| k.strip_suffix(":registry"))
            {
                self.scopes
                    .insert(scope.to_owned(), parse_registry(&value, key, at)?);
            } else if let Some(prefix) = key.strip_suffix(":_authToken") {
                self.auth
                    .insert(normalize_prefix(prefix), Credential::Bearer(Secret(value)));
            } else if let Some(prefix) = key.strip_suffix(":_auth") {
                self.auth
                    .insert(normalize_prefix(prefix), Credential::Basic(Secret(value)));
            }
        }
        Ok(())
    }

    /// The default registry, if any.
    pub fn default_registry(&self) -> Option<String> {
        self.default.as_ref().map(ToString::to_string)
    }

    /// The registry for package `name`: its scope's, else the default.
    pub(crate) fn registry_for(&self, name: &str) -> Option<&Url> {
        name.strip_prefix('@')
            .and_then(|rest| rest.split_once('/'))
            .and_then(|(scope, _)| self.scopes.get(scope))
            .or(self.default.as_ref())
    }

    /// The credential for `url`: the longest configured prefix of its nerf dart.
    pub(crate) fn credential_for(&self, url: &Url) -> Option<(&str, &Credential)> {
        let dart = url.nerf_dart();
        self.auth
            .iter()
            .filter(|(prefix, _)| dart.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(prefix, credential)| (prefix.as_str(), credential))
    }
}

fn parse_registry(value: &str, key: &str, at: Option<(&Path, usize)>) -> Result<Url> {
    Url::parse(value).ok_or_else(|| {
        let place = at
            .map(|(file, line)| format!("{}:{line}: ", file.display()))
            .unwrap_or_default();
        Error::Config(resilience_core::ConfigError::new(
            key.to_owned(),
            format!("{place}not an http:// or https:// URL"),
        ))
    })
}

/// `//host:port/path` → `//host:port/path/` (lowercase host, trailing slash).
fn normalize_prefix(prefix: &str) -> String {
    let rest = prefix.trim_start_matches('/');
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut out = format!("//{}/{}", host.to_ascii_lowercase(), path);
    if !out.ends_with('/') {
        out.push('/');
    }
    out
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// `${VAR}` → the variable's value (empty when unset).
fn expand(value: &str, env: &impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let (before, after) = rest.split_at(start);
        out.push_str(before);
        let after = after.get(2..).unwrap_or_default();
        if let Some(end) = after.find('}') {
            let name = after.get(..end).unwrap_or_default();
            out.push_str(&env(name).unwrap_or_default());
            rest = after.get(end + 1..).unwrap_or_default();
        } else {
            out.push_str("${");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Registries {
        let mut r = Registries::default();
        let env = |name: &str| (name == "NPM_TOKEN").then(|| "from-env".to_owned());
        r.apply(Path::new(".npmrc"), text, &env).unwrap();
        r
    }

    #[test]
    fn registries_scopes_and_tokens() {
        let r = parse(
            "# comment\nregistry=http://127.0.0.1:4873/\n@corp:registry=https://corp.example/npm/\n\
             //corp.example/npm/:_authToken=${NPM_TOKEN}\n//127.0.0.1:4873/:_authToken=\"local\"\nunknown=1\n",
        );
        assert_eq!(
            r.registry_for("a").unwrap().to_string(),
            "http://127.0.0.1:4873/"
        );
        let corp = r
            .registry_for("@corp/x")
            .unwrap()
            .tarball("@corp/x", "1.0.0");
        assert_eq!(
            corp.to_string(),
            "https://corp.example/npm/@corp/x/-/x-1.0.0.tgz"
        );
        let (prefix, cred) = r.credential_for(&corp).unwrap();
        assert_eq!(prefix, "//corp.example/npm/");
        assert_eq!(cred.header_value(), "Bearer from-env");
        // Never to another host, nor another path of the same host.
        assert!(
            r.credential_for(&Url::parse("https://evil.example/npm/x.tgz").unwrap())
                .is_none()
        );
        assert!(
            r.credential_for(&Url::parse("https://corp.example/other/x.tgz").unwrap())
                .is_none()
        );
        assert!(format!("{r:?}").contains("<redacted>"));
        assert!(!format!("{r:?}").contains("from-env"));
    }

    #[test]
    fn invalid_registry_names_file_and_line() {
        let mut r = Registries::default();
        let err = r
            .apply(Path::new("app/.npmrc"), "\nregistry=ftp://x/\n", &|_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("app/.npmrc:2"), "{err}");
    }

    #[test]
    fn first_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("project.npmrc");
        let user = dir.path().join("user.npmrc");
        std::fs::write(&project, "registry=http://127.0.0.1:1/\n").unwrap();
        std::fs::write(
            &user,
            "registry=http://127.0.0.1:2/\n@s:registry=http://127.0.0.1:3/\n",
        )
        .unwrap();
        let r = Registries::load(&[project, user, dir.path().join("missing")], |_| None).unwrap();
        assert_eq!(r.default_registry().unwrap(), "http://127.0.0.1:1/");
        assert_eq!(
            r.registry_for("@s/p").unwrap().to_string(),
            "http://127.0.0.1:3/"
        );
    }
}
