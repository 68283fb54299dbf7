//! The JSON bodies of the v1 contract (docs/http-contract.md), by name.
//!
//! Unknown fields are ignored (the contract may add fields); missing fields,
//! wrong types and unknown states are errors naming the field.

use serde::{Deserialize, Serialize};

use crate::ids::{AppState, HostState};

/// A host in `GET /v1/hosts` and `PUT /v1/hosts/{host}/state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireHost {
    /// The platform's name of the host.
    pub name: String,
    /// How many apps it can run.
    pub capacity: u32,
    /// Its scheduling state.
    pub state: HostState,
    /// The version it runs.
    pub version: String,
}

/// An app in `GET /v1/apps`, `GET /v1/apps/{app}` and a migrate's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireApp {
    /// The platform's name of the app.
    pub name: String,
    /// The name of the host it is placed on.
    pub host: String,
    /// Its state (`running` is healthy).
    pub state: AppState,
}

/// `GET /v1/hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostList {
    /// Every host.
    pub hosts: Vec<WireHost>,
}

/// `GET /v1/apps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppList {
    /// Every app.
    pub apps: Vec<WireApp>,
}

/// The body of `PUT /v1/hosts/{host}/state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetStateRequest {
    /// The state wanted.
    pub state: HostState,
}

/// The body of `POST /v1/apps/{app}/migrate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateRequest {
    /// The receiving host's name.
    pub to: String,
    /// Chosen by the client once per migration, the same on every retry.
    pub request_id: String,
    /// How long the client waits for the answer, in milliseconds.
    pub timeout_ms: u64,
}

/// Every non-2xx body: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable code (`unknown_host`, `start_failed`, ...).
    pub code: String,
    /// For people.
    pub message: String,
}

impl ErrorBody {
    /// An error body.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

/// Whether `name` is a valid host or app name of the contract: 1 to 253
/// bytes of `[A-Za-z0-9._:-]`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Whether `id` is a valid migrate `request_id`: 1 to 128 bytes of
/// `[A-Za-z0-9_-]`.
pub fn is_valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_path_segment() {
        assert!(is_valid_name("old-1.rack:3_a"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a/b"));
        assert!(!is_valid_name("a b"));
        assert!(!is_valid_name(&"x".repeat(254)));
        assert!(is_valid_request_id("0af-_Z"));
        assert!(!is_valid_request_id("a.b"));
    }

    #[test]
    fn unknown_fields_are_ignored_and_missing_ones_named() {
        let host: WireHost = serde_json::from_str(
            r#"{"name":"h","capacity":3,"state":"cordoned","version":"v1","zone":"a"}"#,
        )
        .unwrap();
        assert_eq!(host.state, HostState::Cordoned);
        let err =
            serde_json::from_str::<WireHost>(r#"{"name":"h","state":"active","version":"v"}"#)
                .unwrap_err();
        assert!(err.to_string().contains("capacity"), "{err}");
    }
}
