//! libFuzzer entry of the `handler` target (see `rewarder_fuzz::targets::handler`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rewarder_fuzz::targets::handler(data));
