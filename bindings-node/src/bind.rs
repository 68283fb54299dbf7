//! Bound native functions: the per-request entry points.
//!
//! napi-derive wraps every exported function that takes arguments (and
//! every class method) in a per-call borrow scope: a heap allocation, a
//! mutex and thread-local bookkeeping, which costs several hundred
//! nanoseconds. A function created with `Env::create_function_from_closure`
//! skips that glue, and its closure can own the native object (an `Arc` or
//! an `Rc<RefCell<..>>`) directly, so no table lookup is needed either.
//!
//! So each `*Create` export returns a plain JS object whose methods are such
//! closures (`{ deposit, tryWithdraw, stats }` for a budget); the JS wrapper
//! keeps that object in a private field. The closures own the native
//! object: when the wrapper and its method object are garbage-collected,
//! napi finalizes the closures and the object is dropped.
//!
//! Every closure runs its body through [`guard`], so a panic or an invalid
//! argument becomes a coded JS error, never an abort.

use napi::Env;
use napi::bindgen_prelude::{FromNapiValue, Function, FunctionCallContext, Object, ToNapiValue};

use crate::error::{BwError, BwResult, guard};

/// Adds a method `name` to `object`, running `body` for each call.
pub fn method<R, F>(env: &Env, object: &mut Object<'_>, name: &str, body: F) -> napi::Result<()>
where
    R: ToNapiValue,
    F: 'static + Fn(&FunctionCallContext<'_>) -> BwResult<R>,
{
    let function: Function<'_, (), R> =
        env.create_function_from_closure(name, move |ctx: FunctionCallContext<'_>| {
            let env = Env::from_raw(ctx.env.raw());
            guard(&env, || body(&ctx))
        })?;
    object.set(name, function)
}

/// Argument `index` of a bound call, converted to `T`; a wrong type is a
/// `TypeError` naming `name`.
pub fn arg<T: FromNapiValue>(
    ctx: &FunctionCallContext<'_>,
    index: usize,
    name: &str,
) -> BwResult<T> {
    ctx.get::<T>(index)
        .map_err(|_| BwError::type_error(format!("`{name}` has the wrong type")))
}
