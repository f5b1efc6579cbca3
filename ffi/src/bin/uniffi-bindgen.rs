//! The pinned UniFFI bindings generator (STYLE.md "Pinned bindgen"): the same UniFFI version
//! as the library, so the generated Kotlin and Swift always match its scaffolding.
//!
//! `cargo run -p rewarder-ffi --bin uniffi-bindgen -- generate --library
//! target/release/librewarder_ffi.so --language kotlin --out-dir build/bindings/kotlin`
//! (or `scripts/ffi-bindings.sh`, which does this for Kotlin and Swift).

fn main() {
    uniffi::uniffi_bindgen_main()
}
