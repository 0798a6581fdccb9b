//! The request validator on arbitrary bytes: strict JSON with structure
//! limits, the demo payment schema, injection detection on every string,
//! Content-Digest parsing. Nothing may panic or hang. Crash inputs go to
//! `corpus/validate/` as regression cases (the unit tests replay them).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = rampart::validate::fuzz_input(data);
});
