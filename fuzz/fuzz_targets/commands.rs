#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wallet_fuzz::commands(data));
