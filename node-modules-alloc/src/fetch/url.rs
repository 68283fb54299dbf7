//! Registry URLs: parsing, tarball URLs, redaction for messages, npm's "nerf darts".

use std::fmt;

/// An `http`/`https` URL split into the parts the fetcher needs. Never printed with its
/// credentials or query: [`Display`](fmt::Display) shows `scheme://host[:port]/path`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub(crate) https: bool,
    /// Lowercase host, without brackets for IPv6.
    pub(crate) host: String,
    /// The port written in the URL, if any and not the scheme's default.
    pub(crate) port: Option<u16>,
    /// The path, starting with `/` (possibly just `/`), query and fragment removed.
    pub(crate) path: String,
    /// The query (without `?`), kept for the request only.
    pub(crate) query: Option<String>,
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.path)
    }
}

impl Url {
    /// Parses `http://` and `https://` URLs; userinfo is dropped (credentials come from
    /// `.npmrc`, never from a URL that would end up in a message).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (https, rest) = if let Some(rest) = strip_prefix_ci(text, "https://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ci(text, "http://") {
            (false, rest)
        } else {
            return None;
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query.to_owned())),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        let authority = authority.rsplit('@').next().unwrap_or_default();
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse::<u16>().ok()?),
                None if after.is_empty() => None,
                None => return None,
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port.parse::<u16>().ok()?)),
                None => (authority, None),
            }
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
            || path.bytes().any(|b| b.is_ascii_control() || b == b' ')
        {
            return None;
        }
        let default_port = if https { 443 } else { 80 };
        Some(Self {
            https,
            host: host.to_ascii_lowercase(),
            port: port.filter(|&p| p != default_port),
            path: path.to_owned(),
            query,
        })
    }

    /// `host[:port]` (IPv6 hosts in brackets).
    pub(crate) fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
    }

    /// The key of the per-host limit and breaker: scheme, host and port.
    pub(crate) fn host_key(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.authority())
    }

    /// npm's "nerf dart" of the URL: `//host[:port]/path` (no scheme, no query).
    pub(crate) fn nerf_dart(&self) -> String {
        format!("//{}{}", self.authority(), self.path)
    }

    /// The full URL for the request (query included, never userinfo).
    pub(crate) fn request_uri(&self) -> String {
        match &self.query {
            Some(q) => format!("{self}?{q}"),
            None => self.to_string(),
        }
    }

    /// The registry's tarball URL of `name@version`: `REGISTRY/NAME/-/BASE-VERSION.tgz`
    /// (`@scope/pkg` keeps its scope in the path; `BASE` is the name without it).
    pub(crate) fn tarball(&self, name: &str, version: &str) -> Self {
        let base = name.rsplit('/').next().unwrap_or(name);
        let prefix = self.path.trim_end_matches('/');
        Self {
            path: format!("{prefix}/{name}/-/{base}-{version}.tgz"),
            query: None,
            ..self.clone()
        }
    }

    /// Whether the path is a registry tarball path of `name@version`.
    pub(crate) fn is_registry_tarball_of(&self, name: &str, version: &str) -> bool {
        let base = name.rsplit('/').next().unwrap_or(name);
        let tail = format!("/{name}/-/{base}-{version}.tgz");
        let encoded = format!("/{}/-/{base}-{version}.tgz", name.replacen('/', "%2f", 1));
        let path = self.path.to_ascii_lowercase();
        path.ends_with(&tail.to_ascii_lowercase()) || path.ends_with(&encoded.to_ascii_lowercase())
    }
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

/// A package name that may appear in a URL path: npm's rules (no `..`, no spaces, at most one
/// scope separator), so a hostile lockfile name cannot make the fetcher request another path.
pub(crate) fn url_safe_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    let ok_part = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'!' | b'*')
            })
    };
    match parts.as_slice() {
        [one] => ok_part(one),
        [scope, rest] => scope
            .strip_prefix('@')
            .is_some_and(|s| ok_part(s) && ok_part(rest)),
        _ => false,
    }
}

/// A version that may appear in a URL path (semver characters only).
pub(crate) fn url_safe_version(version: &str) -> bool {
    !version.is_empty()
        && version.len() <= 256
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_redacts() {
        let url = Url::parse("https://user:secret@Registry.Example:443/npm/?token=x#frag").unwrap();
        assert_eq!(url.to_string(), "https://registry.example/npm/");
        assert_eq!(url.request_uri(), "https://registry.example/npm/?token=x");
        assert_eq!(url.nerf_dart(), "//registry.example/npm/");
        let local = Url::parse("http://127.0.0.1:4873").unwrap();
        assert_eq!(local.to_string(), "http://127.0.0.1:4873/");
        assert_eq!(local.host_key(), "http://127.0.0.1:4873");
        assert!(Url::parse("ftp://x/").is_none());
        assert!(Url::parse("http://bad host/").is_none());
        assert!(Url::parse("http://h:99999/").is_none());
        let v6 = Url::parse("http://[::1]:8080/a").unwrap();
        assert_eq!(v6.authority(), "[::1]:8080");
    }

    #[test]
    fn tarball_urls() {
        let reg = Url::parse("http://127.0.0.1:4873/").unwrap();
        let t = reg.tarball("@scope/pkg", "1.0.0");
        assert_eq!(
            t.to_string(),
            "http://127.0.0.1:4873/@scope/pkg/-/pkg-1.0.0.tgz"
        );
        assert!(t.is_registry_tarball_of("@scope/pkg", "1.0.0"));
        let sub = Url::parse("https://r.example/npm").unwrap();
        assert_eq!(
            sub.tarball("a", "2.0.0").to_string(),
            "https://r.example/npm/a/-/a-2.0.0.tgz"
        );
        assert!(
            !Url::parse("https://x/y.tgz")
                .unwrap()
                .is_registry_tarball_of("a", "1.0.0")
        );
    }

    #[test]
    fn hostile_names_are_refused() {
        assert!(url_safe_name("@scope/pkg"));
        assert!(url_safe_name("lodash.merge"));
        assert!(!url_safe_name("../etc"));
        assert!(!url_safe_name("a/b/c"));
        assert!(!url_safe_name("a b"));
        assert!(!url_safe_name("scope/pkg"));
        assert!(url_safe_version("1.0.0-beta.1+build"));
        assert!(!url_safe_version("1.0.0/../../x"));
    }
}
