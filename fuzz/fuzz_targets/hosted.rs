#![no_main]
// The body lives in tether_proto::fuzzing, compiled and corpus-tested in ordinary CI.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tether_proto::fuzzing::hosted(data));
