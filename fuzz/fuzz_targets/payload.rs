//! Any bytes, handed to the three functions as a Lambda payload: parsing,
//! classification and dispatch must answer (an intent or a reason), never
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(answers) = ballast::reconcile::read_payload(data) {
        for answer in answers {
            if let Err(reason) = answer {
                assert!(!reason.is_empty(), "an ignored payload says why");
            }
        }
    }
});
