//! The replacement budget of `unhealthy-target` (issue 12, work in
//! progress): per managed ASG, at most `max(1, floor(percent × desired /
//! 100))` instances replaced in any window, counting Ballast's own marks
//! (the `ballast:replaced` record) and the ASG's own health-check
//! replacements (its scaling activities).

/// `BALLAST_MAX_REPLACED_PERCENT` / `BALLAST_REPLACEMENT_WINDOW_MINUTES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub percent: u8,
    pub window_secs: i64,
}

impl Budget {
    /// How many replacements a group of `desired` capacity may have in a
    /// window: at least one, so that a small group can still heal.
    pub fn allowance(&self, desired: i32) -> u32 {
        let desired = u32::try_from(desired.max(0)).unwrap_or(0);
        (u32::from(self.percent) * desired / 100).max(1)
    }
}

/// Why an Auto Scaling activity took an instance out of service, as its
/// `Cause` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replacement {
    /// `SetInstanceHealth`: Ballast's own marks (counted from its record)
    /// and any other caller's.
    UserHealthCheck,
    /// The ASG's own ELB or VPC Lattice health check.
    LoadBalancerHealthCheck,
    /// The ASG's EC2 status checks (stopped, terminated, impaired).
    Ec2HealthCheck,
}

/// Reads an activity's `Cause`: which health check took the instance out of
/// service, or `None` when it was not a health-check replacement (a user
/// request, a capacity change, a rebalance, an instance refresh).
///
/// The texts are AWS's (EC2 Auto Scaling User Guide, "View the reason for
/// health check failures", and published activity histories), e.g.
/// `At 2022-05-14T20:11:53Z an instance was taken out of service in response
/// to a user health-check.`
pub fn replacement_cause(cause: &str) -> Option<Replacement> {
    let cause = cause.to_ascii_lowercase();
    let (_, why) = cause.split_once("taken out of service in response to")?;
    if why.contains("user health-check") || why.contains("user health check") {
        Some(Replacement::UserHealthCheck)
    } else if why.contains("elb system health check")
        || why.contains("elb health check")
        || why.contains("vpc lattice health check")
    {
        Some(Replacement::LoadBalancerHealthCheck)
    } else if why.contains("ec2 health check") || why.contains("ec2 instance status check") {
        Some(Replacement::Ec2HealthCheck)
    } else {
        None
    }
}

/// Ballast's own marks of one group, as the `ballast:replaced` tag keeps
/// them: `b=<epoch minute> m=<minutes after b>.<...>`, only marks inside the
/// window (minute resolution is enough against a window of minutes, and
/// about 60 marks fit the 256-character value).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Replaced {
    /// Epoch seconds, at minute resolution, oldest first.
    pub marks: Vec<i64>,
}

impl Replaced {
    pub fn parse(value: &str) -> Option<Replaced> {
        let mut base = None;
        let mut offsets = None;
        for kv in value.split_whitespace() {
            match kv.split_once('=')? {
                ("b", b) => base = Some(b.parse::<i64>().ok()?),
                ("m", m) => {
                    offsets = Some(
                        m.split('.')
                            .filter(|o| !o.is_empty())
                            .map(|o| o.parse::<i64>().ok())
                            .collect::<Option<Vec<i64>>>()?,
                    )
                }
                _ => return None,
            }
        }
        let base = base?;
        let mut marks: Vec<i64> = offsets?.iter().map(|o| (base + o) * 60).collect();
        marks.sort_unstable();
        Some(Replaced { marks })
    }

    /// The record with `mark` added and everything older than the window
    /// before `now` left out.
    pub fn with(&self, mark: i64, now: i64, window_secs: i64) -> Replaced {
        let mut marks: Vec<i64> = self
            .marks
            .iter()
            .copied()
            .chain([mark])
            .map(|t| t - t.rem_euclid(60))
            .filter(|t| *t > now - window_secs)
            .collect();
        marks.sort_unstable();
        Replaced { marks }
    }

    pub fn encode(&self) -> Option<String> {
        let base = self.marks.first()? / 60;
        let offsets: Vec<String> = self
            .marks
            .iter()
            .map(|t| (t / 60 - base).to_string())
            .collect();
        Some(format!("b={base} m={}", offsets.join(".")))
    }

    /// Marks inside the window before `now`.
    pub fn within(&self, now: i64, window_secs: i64) -> usize {
        self.marks
            .iter()
            .filter(|t| **t > now - window_secs)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowance_is_a_share_of_desired_capacity_and_never_zero() {
        let b = Budget {
            percent: 30,
            window_secs: 3600,
        };
        assert_eq!(b.allowance(2), 1);
        assert_eq!(b.allowance(4), 1);
        assert_eq!(b.allowance(10), 3);
        assert_eq!(b.allowance(20), 6);
        assert_eq!(b.allowance(0), 1);
        assert_eq!(b.allowance(-1), 1);
        let all = Budget {
            percent: 100,
            window_secs: 3600,
        };
        assert_eq!(all.allowance(7), 7);
    }

    #[test]
    fn the_record_keeps_only_marks_inside_the_window_and_fits_a_tag() {
        let now = 1_796_141_563;
        let mut r = Replaced::default();
        for k in 0..60 {
            r = r.with(now - 3600 + 60 * k + 30, now, 3600);
        }
        let value = r.encode().unwrap();
        assert!(value.len() <= 256, "{} characters", value.len());
        let back = Replaced::parse(&value).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.within(now, 3600), 60);
        // An hour later every mark has left the window.
        assert_eq!(back.within(now + 3600, 3600), 0);
        assert_eq!(back.with(now + 3600, now + 3600, 3600).marks.len(), 1);
        for bad in ["", "b=x m=1", "b=1 m=a", "m=1", "b=1", "x=1 b=1 m=1"] {
            assert_eq!(Replaced::parse(bad), None, "{bad}");
        }
    }

    /// Causes as AWS writes them, from the user guide and published
    /// activity histories.
    #[test]
    fn health_check_replacements_are_told_from_other_activities() {
        let cases = [
            (
                "At 2022-05-14T20:11:53Z an instance was taken out of service in response to a user health-check.",
                Some(Replacement::UserHealthCheck),
            ),
            (
                "At 2024-02-24T07:49:27Z an instance was taken out of service in response to an ELB system health check failure.",
                Some(Replacement::LoadBalancerHealthCheck),
            ),
            (
                "At 2014-07-31T18:30:35Z an instance was taken out of service in response to a EC2 health check indicating it has been terminated or stopped.",
                Some(Replacement::Ec2HealthCheck),
            ),
            (
                "At 2022-06-14T00:07:30Z instance i-1234567890abcdef0 was taken out of service in response to a user request, shrinking the capacity from 4 to 3.",
                None,
            ),
            (
                "At 2024-01-12T16:58:21Z an instance was taken out of service in response to a difference between desired and actual capacity, shrinking the capacity from 4 to 0.",
                None,
            ),
            (
                "At 2024-01-12T16:58:21Z an instance was started in response to a difference between desired and actual capacity, increasing the capacity from 1 to 2.",
                None,
            ),
            ("", None),
        ];
        for (cause, expected) in cases {
            assert_eq!(replacement_cause(cause), expected, "{cause}");
        }
    }
}
