//! Replays the fuzzer's regression inputs (`fuzz/regressions/`, kept from
//! `make fuzz` runs) and the sample events through every function's parsing
//! and dispatch, on stable Rust: each must answer, never panic, and say why
//! it ignores what it ignores.

use ballast::reconcile::read_payload;
use ballast_tests::workspace_root;

fn inputs(dir: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(workspace_root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn regression_inputs_are_answered_without_panic() {
    let cases = inputs("fuzz/regressions");
    assert!(!cases.is_empty(), "fuzz/regressions holds the kept inputs");
    for (name, bytes) in cases {
        let answers = std::panic::catch_unwind(|| read_payload(&bytes))
            .unwrap_or_else(|_| panic!("{name}: panicked"));
        if let Ok(answers) = answers {
            for a in answers {
                if let Err(reason) = a {
                    assert!(!reason.is_empty(), "{name}: an empty reason");
                }
            }
        }
    }
}

#[test]
fn every_sample_event_is_understood_by_at_least_one_function_or_is_foreign() {
    for (name, bytes) in inputs("events") {
        if !name.ends_with(".json") {
            continue;
        }
        let answers = read_payload(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let understood = answers.iter().filter(|a| a.is_ok()).count();
        // Foreign, or AWS events that must move nothing: a Region-wide
        // Health issue, an ARC practice run.
        let foreign = [
            "s3-object-created.json",
            "rds-instance-backup.json",
            "health-ec2-issue-public.json",
            "arc-practice-run-interrupted.json",
        ]
        .iter()
        .any(|f| name.ends_with(f));
        assert_eq!(understood == 0, foreign, "{name}: {answers:?}");
    }
}
