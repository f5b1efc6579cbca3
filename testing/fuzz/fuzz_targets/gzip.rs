//! libFuzzer entry of the `gzip` target (see `rewarder_fuzz::targets::gzip`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rewarder_fuzz::targets::gzip(data));
