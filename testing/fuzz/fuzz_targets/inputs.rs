//! libFuzzer entry of the `inputs` target (see `rewarder_fuzz::targets::inputs`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rewarder_fuzz::targets::inputs(data));
