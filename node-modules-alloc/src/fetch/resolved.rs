//! The `resolved` URLs of a `package-lock.json`, by install path (the lockfile model keeps
//! only what the tree needs; the fetcher reads this one field again). Lockfiles of other
//! formats, or without `resolved`, give an empty map: packages are then fetched from the
//! configured registry by name and version.

use std::collections::HashMap;

use serde_json::Value;

/// At most this many bytes of `resolved` URLs in all (a hostile lockfile stays bounded).
const MAX_TOTAL: usize = 64 << 20;

/// `install path → resolved` for v1, v2 and v3 lockfiles; `http(s)` URLs only.
pub(crate) fn resolved_urls(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Ok(Value::Object(root)) = serde_json::from_str::<Value>(text) else {
        return out;
    };
    let mut total = 0usize;
    let mut keep = |path: String, resolved: Option<&Value>| {
        if let Some(Value::String(url)) = resolved
            && (url.starts_with("http://") || url.starts_with("https://"))
            && total.saturating_add(url.len()) <= MAX_TOTAL
        {
            total += url.len();
            out.insert(path, url.clone());
        }
    };
    if let Some(Value::Object(packages)) = root.get("packages") {
        for (path, entry) in packages {
            keep(path.clone(), entry.get("resolved"));
        }
    } else if let Some(Value::Object(deps)) = root.get("dependencies") {
        // v1: nested `dependencies`, walked iteratively.
        let mut stack: Vec<(String, &serde_json::Map<String, Value>)> = vec![(String::new(), deps)];
        while let Some((parent, deps)) = stack.pop() {
            for (name, dep) in deps {
                let path = if parent.is_empty() {
                    format!("node_modules/{name}")
                } else {
                    format!("{parent}/node_modules/{name}")
                };
                keep(path.clone(), dep.get("resolved"));
                if let Some(Value::Object(nested)) = dep.get("dependencies") {
                    stack.push((path, nested));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_and_v1() {
        let v3 = r#"{"lockfileVersion":3,"packages":{"":{},"node_modules/a":{"resolved":"https://r.example/a/-/a-1.0.0.tgz"},"node_modules/b":{"resolved":"file:../b"}}}"#;
        let map = resolved_urls(v3);
        assert_eq!(map.len(), 1);
        assert_eq!(map["node_modules/a"], "https://r.example/a/-/a-1.0.0.tgz");
        let v1 = r#"{"lockfileVersion":1,"dependencies":{"a":{"resolved":"http://r/a.tgz","dependencies":{"b":{"resolved":"http://r/b.tgz"}}}}}"#;
        let map = resolved_urls(v1);
        assert_eq!(map["node_modules/a/node_modules/b"], "http://r/b.tgz");
        assert!(resolved_urls("lockfileVersion: '9.0'").is_empty());
    }
}
