//! The replacement budget of `unhealthy-target`: per managed ASG, at most
//! `max(1, floor(percent × desired / 100))` instances replaced in any
//! window, counting Ballast's own marks from the `ballast:replaced` record
//! and the ASG's own health-check replacements from its scaling activities.

use crate::records::{self, items, Extra, Fields, Record, Unreadable};
use crate::tags;

pub use crate::resources::{replacement_cause, Replacement};

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

/// Ballast's own marks of one group, as the `ballast:replaced` tag keeps
/// them: `b=<epoch minute> m=<minutes after b>:<instance>.<...>`, only marks
/// inside the window. Minute resolution is enough against a window of
/// minutes; an instance is named by the last 8 characters of its ID, so that
/// a mark recorded and then refused (or cut by the deadline) is made again
/// by the next delivery without spending the budget twice. About 18 marks
/// fit the 256-character value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Replaced {
    /// Oldest first.
    pub marks: Vec<Mark>,
    /// Fields a later version wrote, kept.
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mark {
    /// Epoch seconds, at minute resolution.
    pub at: i64,
    /// [`instance_key`] of the marked instance.
    pub instance: String,
}

/// How the record names an instance: the last 8 characters of its ID.
fn instance_key(instance_id: &str) -> &str {
    let start = instance_id
        .char_indices()
        .rev()
        .nth(7)
        .map_or(0, |(i, _)| i);
    &instance_id[start..]
}

impl Record for Replaced {
    const TAG: &'static str = tags::REPLACED;
    const KEYS: &'static [&'static str] = &["b", "m"];

    fn from_fields(f: Fields<'_>, extra: Extra) -> Result<Self, String> {
        let base: i64 = f.number("b")?;
        let mut marks = items(f.one("m")?, '.')
            .into_iter()
            .map(|e| {
                let (offset, instance) = e.split_once(':').unwrap_or((&e, ""));
                let offset: i64 = offset
                    .parse()
                    .map_err(|_| format!("mark {e:?} has no minute offset"))?;
                Ok(Mark {
                    at: (base + offset) * 60,
                    instance: instance.to_string(),
                })
            })
            .collect::<Result<Vec<Mark>, String>>()?;
        marks.sort();
        Ok(Replaced { marks, extra })
    }

    fn to_fields(&self) -> Vec<(&'static str, String)> {
        let base = self.marks.first().map_or(0, |m| m.at / 60);
        let entries: Vec<String> = self
            .marks
            .iter()
            .map(|m| format!("{}:{}", m.at / 60 - base, m.instance))
            .collect();
        vec![("b", base.to_string()), ("m", entries.join("."))]
    }

    fn extra(&self) -> &Extra {
        &self.extra
    }
}

impl Replaced {
    pub fn parse(value: &str) -> Result<Replaced, Unreadable> {
        records::read(value)
    }

    /// The record with `instance` marked at `now`, and everything older
    /// than the window left out.
    pub fn with(&self, instance: &str, now: i64, window_secs: i64) -> Replaced {
        let mut marks: Vec<Mark> = self
            .marks
            .iter()
            .cloned()
            .chain([Mark {
                at: now,
                instance: instance_key(instance).to_string(),
            }])
            .map(|m| Mark {
                at: m.at - m.at.rem_euclid(60),
                ..m
            })
            .filter(|m| m.at > now - window_secs)
            .collect();
        marks.sort();
        Replaced {
            marks,
            extra: self.extra.clone(),
        }
    }

    /// The tag value; when every mark does not fit 256 characters, the
    /// newest that do (the older ones are still counted, as the user
    /// health-check activities the ASG logged for them).
    pub fn encode(&self) -> Option<String> {
        if self.marks.is_empty() {
            return None;
        }
        let mut keep = self.marks.len();
        loop {
            let value = records::write(&Replaced {
                marks: self.marks[self.marks.len() - keep..].to_vec(),
                extra: self.extra.clone(),
            });
            if value.len() <= tags::VALUE_MAX || keep == 1 {
                return Some(value);
            }
            keep -= 1;
        }
    }

    /// Marks inside the window before `now`.
    pub fn within(&self, now: i64, window_secs: i64) -> usize {
        self.marks
            .iter()
            .filter(|m| m.at > now - window_secs)
            .count()
    }

    /// Whether `instance_id` was marked inside the window before `now`.
    pub fn has(&self, instance_id: &str, now: i64, window_secs: i64) -> bool {
        let key = instance_key(instance_id);
        self.marks
            .iter()
            .any(|m| m.at > now - window_secs && m.instance == key)
    }
}

/// The health-check replacements an ASG made by itself inside the window,
/// by cause (read from its scaling activities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OwnReplacements {
    /// `SetInstanceHealth` by anyone, Ballast included.
    pub user: usize,
    pub load_balancer: usize,
    pub ec2: usize,
}

impl OwnReplacements {
    pub fn count(causes: impl IntoIterator<Item = Replacement>) -> Self {
        let mut own = OwnReplacements::default();
        for c in causes {
            match c {
                Replacement::UserHealthCheck => own.user += 1,
                Replacement::LoadBalancerHealthCheck => own.load_balancer += 1,
                Replacement::Ec2HealthCheck => own.ec2 += 1,
            }
        }
        own
    }

    /// Replacements spent in the window, given Ballast's own `marks` in it.
    /// Each of Ballast's marks also shows up as a user health-check
    /// activity (once the ASG acts on it), so the two are counted once: the
    /// larger of them. The ASG's own ELB and EC2 health-check replacements
    /// are added.
    pub fn spent_with(&self, marks: usize) -> usize {
        marks.max(self.user) + self.load_balancer + self.ec2
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
        for k in 0..18 {
            r = r.with(
                &format!("i-0123456789ab{k:05x}"),
                now - 3600 + 200 * k + 30,
                3600,
            );
        }
        let value = r.encode().unwrap();
        assert!(value.len() <= tags::VALUE_MAX, "{} characters", value.len());
        assert!(
            value.starts_with("b=29935633 m=0:9ab00000.3:9ab00001."),
            "{value}"
        );
        let back = Replaced::parse(&value).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.within(now, 3600), 18);
        assert!(back.has("i-0123456789ab00011", now, 3600));
        assert!(!back.has("i-0123456789ab00099", now, 3600));
        // An hour later every mark has left the window.
        assert_eq!(back.within(now + 3600, 3600), 0);
        assert!(!back.has("i-0123456789ab00011", now + 3600, 3600));
        assert_eq!(back.with("i-1", now + 3600, 3600).marks.len(), 1);
        for bad in ["", "b=x m=1:a", "b=1 m=a:b", "m=1", "b=1", "b=1 b=2 m=1"] {
            assert!(Replaced::parse(bad).is_err(), "{bad}");
        }
        // A field a later version adds is read past and kept.
        let later = Replaced::parse("x=1 b=1 m=0:a").unwrap();
        assert_eq!(later.marks.len(), 1);
        assert_eq!(later.encode().unwrap(), "b=1 m=0:a x=1");
        assert_eq!(instance_key("i-0123456789abcdef0"), "9abcdef0");
        assert_eq!(instance_key("i-1"), "i-1");
    }

    #[test]
    fn a_record_too_long_for_a_tag_keeps_the_newest_marks() {
        let now = 1_796_141_563;
        let mut r = Replaced::default();
        for k in 0..60 {
            r = r.with(&format!("i-{k:017x}"), now - 7200 + 120 * k, 7200);
        }
        let value = r.encode().unwrap();
        assert!(value.len() <= tags::VALUE_MAX, "{} characters", value.len());
        let back = Replaced::parse(&value).unwrap();
        assert!(back.marks.len() >= 17, "{}", back.marks.len());
        assert_eq!(back.marks.last(), r.marks.last());
    }

    #[test]
    fn ballast_marks_and_user_health_check_activities_are_counted_once() {
        use Replacement::*;
        let own =
            OwnReplacements::count([UserHealthCheck, LoadBalancerHealthCheck, Ec2HealthCheck]);
        assert_eq!(own.spent_with(0), 3);
        // Ballast marked one (its activity is the user one), then two more
        // whose activities have not started yet.
        assert_eq!(own.spent_with(3), 5);
        let operator = OwnReplacements::count([UserHealthCheck, UserHealthCheck]);
        assert_eq!(operator.spent_with(1), 2);
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
