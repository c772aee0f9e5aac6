//! The fleet breaker and the replacement budget of `unhealthy-target`, end
//! to end: the release binary under a Lambda Runtime API host, against moto
//! through the real SDK, fed the sample events. The seed's managed ASG `web`
//! (two instances) uses ELB health checks: it would replace every instance
//! its target group finds unhealthy by itself.

use ballast::report::{ActionStatus, Outcome, Severity};
use ballast::Report;
use ballast_tests::moto::Moto;
use ballast_tests::stack::{Stack, MANAGED_ASG, UNMANAGED_ASG};
use ballast_tests::{sample_event, start_function, Deployed};
use serde_json::Value;

const FUNCTION: &str = "unhealthy-target";
const REPLACE_UNHEALTHY: &str = "ReplaceUnhealthy";

struct Fleet {
    // Field order is drop order: the function before the emulator.
    function: Deployed,
    stack: Stack,
    _moto: Moto,
}

impl Fleet {
    async fn start(extra: &[(&str, &str)]) -> Fleet {
        let moto = Moto::start();
        let stack = Stack::seed(&moto.sdk_config()).await;
        let (host, process) = start_function(FUNCTION, &moto, &stack.topic_arn, extra).await;
        Fleet {
            function: Deployed { host, process },
            stack,
            _moto: moto,
        }
    }

    async fn run(&self, event: Value) -> Report {
        self.function.run(event).await
    }

    async fn alarm(&self) -> Report {
        self.run(self.stack.alarm_event("unhealthy-target-alarm.json"))
            .await
    }

    async fn ok(&self) -> Report {
        self.run(self.stack.alarm_event("unhealthy-target-alarm-ok.json"))
            .await
    }

    async fn sweep(&self) -> Report {
        self.run(sample_event("scheduled-sweep.json")).await
    }

    async fn suspended(&self) -> Vec<String> {
        self.stack.suspended_processes(MANAGED_ASG).await
    }

    async fn record(&self) -> Option<String> {
        self.stack
            .tag_of(MANAGED_ASG, ballast::tags::SUSPENDED)
            .await
    }

    /// A bad deploy: every instance of the target group fails.
    async fn every_target_down(&self) -> Vec<String> {
        let mut all = self.stack.instances(MANAGED_ASG).await;
        all.extend(self.stack.instances(UNMANAGED_ASG).await);
        self.stack.stop(&all).await;
        all
    }

    /// A bad deploy trips the breaker: declined, critical, ReplaceUnhealthy
    /// suspended with its record written.
    async fn trip(&self) -> (Vec<String>, Report) {
        let all = self.every_target_down().await;
        let report = self.alarm().await;
        assert_eq!(report.outcome, Outcome::Declined, "{report:#?}");
        assert_eq!(report.severity, Severity::Critical);
        assert_eq!(self.suspended().await, [REPLACE_UNHEALTHY]);
        (all, report)
    }
}

fn done<'a>(report: &'a Report, kind: &str) -> Vec<&'a str> {
    report
        .actions
        .iter()
        .filter(|a| a.kind == kind && a.status == ActionStatus::Done)
        .map(|a| a.target.as_str())
        .collect()
}

#[tokio::test]
async fn every_target_stopped_trips_the_breaker_and_pages() {
    let f = Fleet::start(&[]).await;
    let before = f.stack.all_asg_health().await;
    let (_, report) = f.trip().await;

    let record = f.record().await.expect("the breaker's record");
    assert!(
        record.starts_with("p=ReplaceUnhealthy at=") && record.contains(" why=share tg=web-tg/"),
        "{record}"
    );
    assert_eq!(done(&report, "tag-asg"), [MANAGED_ASG]);
    assert_eq!(done(&report, "suspend-processes"), [MANAGED_ASG]);
    assert!(
        report.summary.contains(
            "Breaker: ASG web replaces unhealthy instances by itself (health check type ELB)"
        ),
        "{}",
        report.summary
    );
    assert!(
        report.reason.as_deref().unwrap().contains("3 of 3 targets"),
        "{:?}",
        report.reason
    );
    assert_eq!(
        f.stack.all_asg_health().await,
        before,
        "no instance is marked"
    );
    // The unmanaged group is not Ballast's to suspend.
    assert!(f.stack.suspended_processes(UNMANAGED_ASG).await.is_empty());
    // The lease is given back.
    assert_eq!(f.stack.leases().await, vec![]);

    let deliveries = f.stack.reports().await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].attributes["outcome"], "declined");
    assert_eq!(deliveries[0].attributes["severity"], "critical");

    // While it lasts, every look pages again and changes nothing.
    let again = f.alarm().await;
    assert_eq!(
        (again.outcome, again.severity),
        (Outcome::Declined, Severity::Critical),
        "{again:#?}"
    );
    assert!(again.summary.contains("Breaker open"), "{}", again.summary);
    assert!(again
        .actions
        .iter()
        .all(|a| a.status == ActionStatus::Skipped));
    assert_eq!(f.record().await, Some(record));
}

#[tokio::test]
async fn the_fix_rolls_out_and_the_ok_alarm_closes_the_breaker() {
    let f = Fleet::start(&[]).await;
    let (all, _) = f.trip().await;
    f.stack.reports().await;

    f.stack.start(&all).await;
    let closed = f.ok().await;
    assert_eq!(
        (closed.outcome, closed.severity),
        (Outcome::Remediated, Severity::Info),
        "{closed:#?}"
    );
    assert_eq!(done(&closed, "resume-processes"), [MANAGED_ASG]);
    assert_eq!(done(&closed, "untag-asg"), [MANAGED_ASG]);
    assert!(
        closed.summary.contains("the breaker closes"),
        "{}",
        closed.summary
    );
    assert!(f.suspended().await.is_empty());
    assert_eq!(f.record().await, None);
    let deliveries = f.stack.reports().await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].attributes["severity"], "info");

    // An OK with nothing to resume is a noop, and not published.
    let again = f.ok().await;
    assert_eq!(again.outcome, Outcome::Noop, "{again:#?}");
    assert!(f.stack.reports().await.is_empty());
}

#[tokio::test]
async fn the_sweep_closes_the_breaker_when_no_ok_arrives() {
    let f = Fleet::start(&[]).await;
    let (all, _) = f.trip().await;
    f.stack.start(&all).await;

    let sweep = f.sweep().await;
    assert_eq!(sweep.outcome, Outcome::Remediated, "{sweep:#?}");
    assert_eq!(done(&sweep, "resume-processes"), [MANAGED_ASG]);
    assert!(f.suspended().await.is_empty());
    assert_eq!(f.record().await, None);
}

#[tokio::test]
async fn an_operators_suspension_is_left_alone() {
    let f = Fleet::start(&[]).await;
    f.stack
        .suspend(MANAGED_ASG, &[REPLACE_UNHEALTHY, "AZRebalance"])
        .await;
    let all = f.every_target_down().await;

    let report = f.alarm().await;
    assert_eq!(report.outcome, Outcome::Declined, "{report:#?}");
    assert!(
        report.summary.contains("already suspended, not by Ballast"),
        "{}",
        report.summary
    );
    assert_eq!(
        f.record().await,
        None,
        "no record: Ballast suspended nothing"
    );

    f.stack.start(&all).await;
    for event in [f.ok().await, f.sweep().await] {
        assert_eq!(event.outcome, Outcome::Noop, "{event:#?}");
    }
    assert_eq!(f.suspended().await, ["AZRebalance", REPLACE_UNHEALTHY]);
}

#[tokio::test]
async fn a_second_failure_within_the_window_waits_for_the_budget() {
    // Two instances at 30%: one replacement per hour.
    let f = Fleet::start(&[]).await;
    let web = f.stack.instances(MANAGED_ASG).await;
    f.stack.stop(&web[..1]).await;
    let first = f.alarm().await;
    assert_eq!(first.outcome, Outcome::Remediated, "{first:#?}");
    assert_eq!(done(&first, "mark-unhealthy"), [web[0].as_str()]);
    let marks = f
        .stack
        .tag_of(MANAGED_ASG, ballast::tags::REPLACED)
        .await
        .expect("the mark is recorded");
    assert!(
        marks.ends_with(&format!(" m=0:{}", &web[0][web[0].len() - 8..])),
        "{marks}"
    );

    // The ASG replaces it; twenty minutes later the other instance stops.
    f.stack.replace(&web[0]).await;
    f.stack.stop(&web[1..]).await;
    let second = f.alarm().await;
    assert_eq!(
        (second.outcome, second.severity),
        (Outcome::Declined, Severity::Critical),
        "{second:#?}"
    );
    let reason = second.reason.as_deref().unwrap();
    assert!(
        reason.contains("replacement budget of ASG web: 1 instance(s) per 60 min")
            && reason.contains("1 already replaced in the window (1 marked by Ballast"),
        "{reason}"
    );
    // An ELB-checked group would replace it by itself: the breaker trips.
    assert_eq!(f.suspended().await, [REPLACE_UNHEALTHY]);
    assert!(f.record().await.unwrap().contains("why=budget"));
    assert_eq!(f.stack.asg_health(&web[1]).await, "Healthy");

    // An hour later the first mark has left the window: the breaker closes
    // and the instance is marked, the record written before the mark.
    let mut older =
        ballast::decide::unhealthy_target::Replaced::parse(&marks).expect("Ballast's record");
    for m in &mut older.marks {
        m.at -= 61 * 60;
    }
    f.stack
        .tag_group(
            MANAGED_ASG,
            ballast::tags::REPLACED,
            &older.encode().expect("one mark"),
        )
        .await;
    let later = f.sweep().await;
    assert_eq!(later.outcome, Outcome::Remediated, "{later:#?}");
    assert_eq!(done(&later, "resume-processes"), [MANAGED_ASG]);
    assert_eq!(done(&later, "mark-unhealthy"), [web[1].as_str()]);
    assert_eq!(f.stack.asg_health(&web[1]).await, "Unhealthy");
    assert!(f.suspended().await.is_empty());
}

#[tokio::test]
async fn dry_run_reports_the_breaker_and_suspends_nothing() {
    let f = Fleet::start(&[("BALLAST_DRY_RUN", "true")]).await;
    f.every_target_down().await;
    let report = f.alarm().await;
    assert_eq!(
        (report.outcome, report.severity),
        (Outcome::Declined, Severity::Critical),
        "{report:#?}"
    );
    assert!(
        report.summary.contains(
            "Dry run, nothing changed; would tag ASG web ballast:suspended=p=ReplaceUnhealthy"
        ),
        "{}",
        report.summary
    );
    assert!(report
        .summary
        .contains("suspend ReplaceUnhealthy of ASG web"));
    assert!(f.suspended().await.is_empty());
    assert_eq!(f.record().await, None);
    assert_eq!(f.stack.reports().await.len(), 1);
}
