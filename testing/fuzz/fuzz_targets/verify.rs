//! libFuzzer entry of the `verify` target (see `rewarder_fuzz::targets::verify`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rewarder_fuzz::targets::verify(data));
