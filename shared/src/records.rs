//! The records Ballast keeps in tags (`ballast:replaced`,
//! `ballast:suspended`, `ballast:promotion`, `ballast:evacuated`,
//! `ballast:unreported`): one codec, one policy.
//!
//! A record's value is space-separated `key=value` fields (the README's
//! "Contract" gives each record's keys; format version 1). The policy:
//! - **forward-compatible:** a key this version does not know is ignored on
//!   read and kept on rewrite (after the known ones, while the value fits a
//!   tag), so a field a later version adds neither makes the record
//!   unreadable to this one nor is lost when this one rewrites it;
//! - **strict on what it knows:** a word that is not `key=value`, a known
//!   key given twice where the record has one, a missing or malformed known
//!   field: the record is [`Unreadable`]. Each caller then *holds* it — the
//!   record is never dropped or overwritten as if absent — and reports it.
//!
//! Each record type implements [`Record`]; [`read`] and [`write`] are the
//! only parser and printer of the formats (the CLI and the tests use them).

use crate::tags;

/// A tag value that is not a record this version of Ballast can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{tag}={value:?} is not a record Ballast wrote ({why})")]
pub struct Unreadable {
    pub tag: &'static str,
    pub value: String,
    /// What is wrong with it.
    pub why: String,
}

/// The fields of a record that this version does not know, in the order
/// read: written back after the known ones.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extra(Vec<(String, String)>);

impl Extra {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The unknown fields, `(key, value)`.
    pub fn fields(&self) -> &[(String, String)] {
        &self.0
    }
}

/// The known fields of a record as read, for [`Record::from_fields`].
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    words: &'a [(&'a str, &'a str)],
}

impl<'a> Fields<'a> {
    /// The value of `key`, which the record has exactly once.
    pub fn one(&self, key: &str) -> Result<&'a str, String> {
        self.opt(key)?.ok_or_else(|| format!("no {key}="))
    }

    /// The value of `key`, which the record has at most once.
    pub fn opt(&self, key: &str) -> Result<Option<&'a str>, String> {
        match self.all(key)[..] {
            [] => Ok(None),
            [v] => Ok(Some(v)),
            _ => Err(format!("{key}= twice")),
        }
    }

    /// Every value of `key`, a key the record may repeat.
    pub fn all(&self, key: &str) -> Vec<&'a str> {
        self.words
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .collect()
    }

    /// The value of `key`, parsed.
    pub fn number<T: std::str::FromStr>(&self, key: &str) -> Result<T, String> {
        let v = self.one(key)?;
        v.parse().map_err(|_| format!("{key}={v} is not a number"))
    }
}

/// A record Ballast keeps in a tag.
pub trait Record: Sized {
    /// The tag that holds it.
    const TAG: &'static str;
    /// The keys this version reads and writes.
    const KEYS: &'static [&'static str];
    /// A key whose value runs to the end of the record and may hold spaces
    /// (written last).
    const TAIL: Option<&'static str> = None;

    /// The record from its known fields; `extra` holds the others, to keep.
    fn from_fields(fields: Fields<'_>, extra: Extra) -> Result<Self, String>;

    /// Its known fields, in the order written.
    fn to_fields(&self) -> Vec<(&'static str, String)>;

    /// The unknown fields it was read with.
    fn extra(&self) -> &Extra;
}

/// Reads a record of type `R` from its tag value.
pub fn read<R: Record>(value: &str) -> Result<R, Unreadable> {
    let unreadable = |why: String| Unreadable {
        tag: R::TAG,
        value: value.to_string(),
        why,
    };
    let (head, tail) = match R::TAIL {
        Some(key) => split_tail(value, key),
        None => (value, None),
    };
    let mut known: Vec<(&str, &str)> = vec![];
    let mut extra = Extra::default();
    for word in head.split_whitespace() {
        let (k, v) = word
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| unreadable(format!("{word:?} is not key=value")))?;
        if R::KEYS.contains(&k) {
            known.push((k, v));
        } else {
            extra.0.push((k.to_string(), v.to_string()));
        }
    }
    if let (Some(key), Some(v)) = (R::TAIL, tail) {
        known.push((key, v));
    }
    R::from_fields(Fields { words: &known }, extra).map_err(unreadable)
}

/// `value` cut before the field `key=` that runs to its end.
fn split_tail<'a>(value: &'a str, key: &str) -> (&'a str, Option<&'a str>) {
    let marker = format!("{key}=");
    if let Some(rest) = value.strip_prefix(&marker) {
        return ("", Some(rest));
    }
    match value.find(&format!(" {marker}")) {
        Some(i) => (&value[..i], Some(&value[i + 1 + marker.len()..])),
        None => (value, None),
    }
}

/// The tag value of `record`: its known fields, then the unknown ones it was
/// read with while the value fits a tag (each one that would not fit is
/// left out), then its tail field.
pub fn write<R: Record>(record: &R) -> String {
    let mut fields = record.to_fields();
    let tail = R::TAIL.and_then(|key| {
        let i = fields.iter().position(|(k, _)| *k == key)?;
        Some(fields.remove(i))
    });
    let mut value = fields
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    let tail = tail.map(|(k, v)| format!("{k}={v}"));
    let reserved = tail.as_ref().map_or(0, |t| t.len() + 1);
    for (k, v) in record.extra().fields() {
        let word = format!("{k}={v}");
        if value.len() + 1 + word.len() + reserved <= tags::VALUE_MAX {
            push_word(&mut value, &word);
        }
    }
    if let Some(t) = tail {
        push_word(&mut value, &t);
    }
    value
}

fn push_word(value: &mut String, word: &str) {
    if !value.is_empty() {
        value.push(' ');
    }
    value.push_str(word);
}

/// A list field's items: `sep`-separated, empty items left out.
pub fn items(value: &str, sep: char) -> Vec<String> {
    value
        .split(sep)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A record with a list, a number, a repeatable key and a tail.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Sample {
        n: i64,
        list: Vec<String>,
        by: Vec<String>,
        note: Option<String>,
        extra: Extra,
    }

    impl Record for Sample {
        const TAG: &'static str = "ballast:sample";
        const KEYS: &'static [&'static str] = &["n", "l", "by", "note"];
        const TAIL: Option<&'static str> = Some("note");

        fn from_fields(f: Fields<'_>, extra: Extra) -> Result<Self, String> {
            Ok(Sample {
                n: f.number("n")?,
                list: items(f.one("l")?, ','),
                by: f.all("by").into_iter().map(str::to_string).collect(),
                note: f.opt("note")?.map(str::to_string),
                extra,
            })
        }

        fn to_fields(&self) -> Vec<(&'static str, String)> {
            let mut out = vec![("n", self.n.to_string()), ("l", self.list.join(","))];
            out.extend(self.by.iter().map(|b| ("by", b.clone())));
            out.extend(self.note.iter().map(|n| ("note", n.clone())));
            out
        }

        fn extra(&self) -> &Extra {
            &self.extra
        }
    }

    fn word() -> impl Strategy<Value = String> {
        "[a-z0-9_.:/+@-]{1,12}"
    }

    fn sample() -> impl Strategy<Value = Sample> {
        (
            any::<i64>(),
            proptest::collection::vec(word(), 0..4),
            proptest::collection::vec(word(), 0..3),
            proptest::option::of("[a-z0-9 ]{0,20}[a-z0-9]"),
        )
            .prop_map(|(n, list, by, note)| Sample {
                n,
                list: list
                    .into_iter()
                    .map(|w| w.replace(',', ""))
                    .filter(|w| !w.is_empty())
                    .collect(),
                by,
                note,
                extra: Extra::default(),
            })
    }

    proptest! {
        /// What is written reads back as it was.
        #[test]
        fn a_record_reads_back_as_written(s in sample()) {
            prop_assert_eq!(read::<Sample>(&write(&s)), Ok(s));
        }

        /// Keys a later version adds are ignored on read and written back.
        #[test]
        fn unknown_keys_are_ignored_and_kept(s in sample(), key in "[a-z]{2,5}", v in word()) {
            prop_assume!(!Sample::KEYS.contains(&key.as_str()));
            let written = write(&s);
            let later = match written.find(" note=") {
                Some(i) => format!("{} {key}={v}{}", &written[..i], &written[i..]),
                None => format!("{written} {key}={v}"),
            };
            let read_back: Sample = read(&later).unwrap();
            prop_assert_eq!(&read_back.extra.0, &vec![(key.clone(), v.clone())]);
            prop_assert_eq!(Sample { extra: Extra::default(), ..read_back.clone() }, s);
            let rewritten = write(&read_back);
            prop_assert!(rewritten.contains(&format!(" {key}={v}")), "{}", rewritten);
            prop_assert_eq!(read::<Sample>(&rewritten), Ok(read_back));
        }
    }

    #[test]
    fn what_it_cannot_read_is_unreadable_with_the_reason() {
        for (bad, why) in [
            ("n=1", "no l="),
            ("l=a n=x", "n=x is not a number"),
            ("n=1 n=2 l=a", "n= twice"),
            ("n=1 l=a garbage", "\"garbage\" is not key=value"),
            ("n=1 l=a =x", "\"=x\" is not key=value"),
        ] {
            let e = read::<Sample>(bad).unwrap_err();
            assert_eq!(e.why, why, "{bad}");
            assert_eq!(e.tag, "ballast:sample");
            assert!(e.to_string().contains("is not a record Ballast wrote"));
        }
    }

    #[test]
    fn unknown_fields_that_no_longer_fit_are_left_out() {
        let long = "x".repeat(200);
        let s: Sample = read(&format!("n=1 l=a k1={long} k2=short")).unwrap();
        let v = write(&s);
        assert!(v.len() <= tags::VALUE_MAX, "{v}");
        assert_eq!(v, format!("n=1 l=a k1={long} k2=short"));
        let s: Sample = read(&format!("n=1 l=a k1={long} k2={long} k3=s")).unwrap();
        assert_eq!(write(&s), format!("n=1 l=a k1={long} k3=s"));
    }

    #[test]
    fn the_tail_keeps_its_spaces_and_a_key_inside_it() {
        let s: Sample = read("n=1 l=a note=a b=c n=2").unwrap();
        assert_eq!(s.note.as_deref(), Some("a b=c n=2"));
        assert_eq!(write(&s), "n=1 l=a note=a b=c n=2");
        // A record that starts with its tail has nothing before it.
        assert_eq!(
            read::<Sample>("note=only this n=1 l=a").unwrap_err().why,
            "no n="
        );
    }
}
