//! Hidden entry points for the test suite.

use napi_derive::napi;

use napi::Env;

use crate::error::guard;

/// Panics inside Rust on purpose, so the test suite can check that a panic
/// becomes a JS error with code `ERR_BREAKWATER_PANIC` and never aborts Node.
///
/// # Panics
///
/// Always, by design; [`guard`] turns the panic into that JS error.
#[napi(js_name = "__debugPanic")]
pub fn debug_panic(env: Env, message: String) -> napi::Result<()> {
    guard(&env, || -> crate::error::BwResult<()> {
        #[allow(clippy::panic)]
        {
            panic!("{message}")
        }
    })
}
