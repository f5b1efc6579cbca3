//! libFuzzer entry of the `policy` target (see `rewarder_fuzz::targets::policy`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rewarder_fuzz::targets::policy(data));
