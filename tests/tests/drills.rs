//! The example stack's drills (`examples/multi-az-web/README.md`, "Run a
//! drill") run as written: every `aws` command in their shell blocks —
//! nested ones in `$(…)` too — is accepted by the pinned AWS CLI (1.46.3:
//! its service, operation, every option and its type, the required ones,
//! each `--query`, each file named), run against a closed port so that it
//! stops at the connection, and every name the drills take from the stacks
//! is one the templates create: each output they read, each alarm they set.

use std::collections::BTreeSet;
use std::process::Command;

use ballast_tests::workspace_root;
use yaml_serde::Value as Yaml;

/// The README's "Run a drill" section.
fn drills_text() -> String {
    let text =
        std::fs::read_to_string(workspace_root().join("examples/multi-az-web/README.md")).unwrap();
    let drills = &text[text.find("## Run a drill").expect("the drills section")..];
    drills[..drills.find("\n### Change freeze").unwrap_or(drills.len())].to_string()
}

/// The drills' shell blocks, each logical line (continuations joined,
/// comments dropped).
fn drill_lines() -> Vec<String> {
    let drills = drills_text();
    let mut lines = vec![];
    let mut in_block = false;
    let mut current = String::new();
    for line in drills.lines() {
        let line = line.trim();
        if line.starts_with("```") {
            in_block = line == "```sh";
            continue;
        }
        if !in_block || line.starts_with('#') {
            continue;
        }
        // A comment after a command (two spaces or more, then `#`).
        let line = line.split("  #").next().unwrap_or_default().trim_end();
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    lines
}

/// The end of the shell word group that starts at `from`: the first
/// unquoted `)` that closes nothing opened after `from`, or `;`, `&&`, `|`,
/// `}` at depth 0, or the end.
fn command_end(line: &str, from: usize) -> usize {
    let b = line.as_bytes();
    let (mut i, mut depth, mut quote) = (from, 0usize, None::<u8>);
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(b'"') if c == b'\\' => i += 1,
            Some(_) => {}
            None => match c {
                b'\'' | b'"' => quote = Some(c),
                b'(' => depth += 1,
                b')' if depth == 0 => return i,
                b')' => depth -= 1,
                b';' | b'|' | b'}' if depth == 0 => return i,
                b'&' if depth == 0 && b.get(i + 1) == Some(&b'&') => return i,
                _ => {}
            },
        }
        // `$(`, `$((` inside double quotes open a group too.
        if quote == Some(b'"') && c == b'(' && i > 0 && b[i - 1] == b'$' {
            depth += 1;
        } else if quote == Some(b'"') && c == b')' && depth > 0 {
            depth -= 1;
        }
        i += 1;
    }
    b.len()
}

/// Every `aws …` command of `line`, outermost first, as written.
fn aws_commands(line: &str) -> Vec<String> {
    let mut out = vec![];
    let mut at = 0;
    while let Some(i) = line[at..].find("aws ").map(|i| i + at) {
        let starts_word = i == 0 || matches!(line.as_bytes()[i - 1], b' ' | b'(' | b'{' | b'"');
        if starts_word {
            let end = command_end(line, i);
            out.push(line[i..end].trim().to_string());
        }
        at = i + 4;
    }
    out
}

/// `command` with each `$(…)` and `$((…))` group and each `$variable`
/// made `1` (a valid string and number): what the shell would hand the
/// CLI, up to values.
fn plain_words(command: &str) -> Vec<String> {
    let mut text = String::new();
    let mut rest = command;
    while let Some(i) = rest.find("$(") {
        text.push_str(&rest[..i]);
        let end = command_end(rest, i + 2);
        text.push('1');
        rest = rest.get(end + 1..).unwrap_or_default();
        // `$((…))`: the arithmetic's second closing parenthesis.
        rest = rest.strip_prefix(')').unwrap_or(rest);
    }
    text.push_str(rest);
    shlex::split(&text)
        .unwrap_or_else(|| panic!("not one shell command: {command}"))
        .into_iter()
        .map(|w| variables_as_one(&w))
        .collect()
}

/// `word` with each `$name` in it made `1`.
fn variables_as_one(word: &str) -> String {
    let mut out = String::new();
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        while chars
            .next_if(|n| n.is_ascii_alphanumeric() || *n == '_')
            .is_some()
        {}
        out.push('1');
    }
    out
}

fn template(path: &str) -> Yaml {
    let text = std::fs::read_to_string(workspace_root().join(path)).unwrap();
    yaml_serde::from_str(&text).unwrap()
}

fn outputs(t: &Yaml) -> BTreeSet<String> {
    t["Outputs"]
        .as_mapping()
        .unwrap()
        .keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect()
}

/// The example stack's alarm names with the parameters' defaults, the zone
/// left as the drills' `$zone`.
fn alarm_names(t: &Yaml) -> BTreeSet<String> {
    let default = |p: &str| {
        t["Parameters"][p]["Default"]
            .as_str()
            .unwrap_or_else(|| panic!("parameter {p} has a default"))
            .to_string()
    };
    let sub = |s: &str| {
        s.replace("${AppName}", &default("AppName"))
            .replace("${Prefix}", &default("ZonalAlarmPrefix"))
            .replace("${Zone}", "$zone")
    };
    t["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
        .map(|r| match &r["Properties"]["AlarmName"] {
            Yaml::Tagged(tagged) => match &tagged.value {
                Yaml::String(s) => sub(s),
                Yaml::Sequence(parts) => sub(parts[0].as_str().unwrap()),
                other => panic!("an alarm name the test cannot read: {other:?}"),
            },
            other => panic!("an alarm name the test cannot read: {other:?}"),
        })
        .collect()
}

#[test]
fn every_drill_command_parses_and_names_what_the_stacks_create() {
    let lines = drill_lines();
    let commands: Vec<String> = lines.iter().flat_map(|l| aws_commands(l)).collect();
    assert!(
        commands.len() >= 11,
        "the drills' aws commands were not found: {commands:#?}"
    );

    // Each is accepted by the CLI's parser.
    let cli = workspace_root().join(".venv-awscli/bin/aws");
    assert!(
        cli.exists(),
        "{} is missing: run `make awscli` (make test does)",
        cli.display()
    );
    // The CLI parses and checks the whole command line (service, operation,
    // every option and its type, the required ones, a JMESPath --query,
    // the files it names) before it calls: pointed at a closed port, a
    // command that passes gets as far as the connection.
    let cwd = std::env::temp_dir().join(format!("ballast-drills-{}", std::process::id()));
    std::fs::create_dir_all(&cwd).unwrap();
    // What the drills' `printf … > payload.json` writes; the sample events.
    std::fs::write(cwd.join("payload.json"), r#"{"dbIdentifier":"db"}"#).unwrap();
    let events = cwd.join("events");
    if !events.exists() {
        std::os::unix::fs::symlink(workspace_root().join("events"), &events).unwrap();
    }
    for command in &commands {
        let words = plain_words(command);
        assert_eq!(words[0], "aws", "{command}");
        let out = Command::new(&cli)
            .args(&words[1..])
            .args(["--endpoint-url", "http://127.0.0.1:9"])
            .current_dir(&cwd)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "drill")
            .env("AWS_SECRET_ACCESS_KEY", "drill")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("AWS_RETRY_MODE", "standard")
            .output()
            .expect("the AWS CLI runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("Could not connect to the endpoint URL"),
            "the AWS CLI refuses `{command}` ({words:?}):\n{stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&cwd);

    // The names they read and set exist.
    let web = template("examples/multi-az-web/template.yaml");
    let ballast = template("template.yaml");
    let (web_outputs, ballast_outputs) = (outputs(&web), outputs(&ballast));
    let alarms = alarm_names(&web);
    let mut checked = 0;
    let text = drills_text();
    // `out <stack> <Output>` in the commands, `decisions <Output>` in the
    // commands and the prose.
    for (call, outputs) in [
        ("out web ", &web_outputs),
        ("out ballast ", &ballast_outputs),
        ("decisions ", &ballast_outputs),
    ] {
        for (i, _) in text.match_indices(call) {
            let key: String = text[i + call.len()..]
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            if key.is_empty() || !key.starts_with(|c: char| c.is_ascii_uppercase()) {
                continue; // `out ballast "$1"`: the function's parameter
            }
            assert!(outputs.contains(&key), "`{call}{key}`: no such output");
            checked += 1;
        }
    }
    for line in &lines {
        let words = shlex::split(line).unwrap_or_default();
        for pair in words.windows(2).filter(|p| p[0] == "--alarm-name") {
            assert!(
                alarms.contains(&pair[1]),
                "{} is not an alarm of the example stack: {alarms:?}",
                pair[1]
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "names checked: {checked}");
}

#[test]
fn the_command_scanner_finds_nested_commands_and_plain_words() {
    let line = r#"x=$(aws a b --c "$(out web K)") && aws d e --f "{\"k\":\"$v\"}" out.json"#;
    assert_eq!(
        aws_commands(line),
        [
            r#"aws a b --c "$(out web K)""#,
            r#"aws d e --f "{\"k\":\"$v\"}" out.json"#
        ]
    );
    assert_eq!(
        plain_words(
            r#"aws l f --s $(( ($(date +%s) - 600) * 1000 )) --n "$(out b "$1")" --q 'a b'"#
        ),
        ["aws", "l", "f", "--s", "1", "--n", "1", "--q", "a b"]
    );
    assert_eq!(
        plain_words(r#"aws c d --q "O[?K=='$2'].V" --a "x-$zone""#),
        ["aws", "c", "d", "--q", "O[?K=='1'].V", "--a", "x-1"]
    );
}
