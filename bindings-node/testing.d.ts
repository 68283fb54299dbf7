// `breakwater/testing`: hooks for testing the addon itself, not part of the public API.

/** Panics inside Rust on purpose; throws an `Error` with code `ERR_BREAKWATER_PANIC`. */
export declare function debugPanic(message: string): never;
