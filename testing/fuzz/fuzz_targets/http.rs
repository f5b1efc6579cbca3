//! libFuzzer entry of the `http` target (see `rewarder_fuzz::targets::http`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rewarder_fuzz::targets::http(data));
