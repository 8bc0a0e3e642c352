//! `scripts/demo.sh`, the README's main job, runs against real servers
//! (nats-server, PostgreSQL with Odoo's res_partner, MariaDB with SuiteCRM's
//! contacts, a Salesforce CSV drop folder) with the debug `mdhub` binary,
//! and every system converges after an edit in each of them. The example
//! connector configs in deploy/connectors/ are valid as shipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mdhub_connectors::config::ConnectorFile;
use mdhub_tests::hub_runner::mdhub_binary;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace")
        .to_path_buf()
}

/// The table line of `person` that follows the step titled `step`.
fn row_after<'a>(stdout: &'a str, step: &str, person: &str) -> &'a str {
    let from = stdout
        .find(step)
        .unwrap_or_else(|| panic!("no step {step:?} in:\n{stdout}"));
    stdout[from..]
        .lines()
        .find(|l| l.trim_start().starts_with(person))
        .unwrap_or_else(|| panic!("no row for {person} after {step:?} in:\n{stdout}"))
}

/// `value` in all four columns: Odoo, SuiteCRM, Salesforce, golden record.
fn assert_everywhere(stdout: &str, step: &str, person: &str, value: &str) {
    let row = row_after(stdout, step, person);
    assert_eq!(
        row.matches(value).count(),
        4,
        "{person} should hold {value:?} in every system after {step:?}:\n{row}\n\n{stdout}"
    );
}

#[test]
fn the_demo_script_converges_every_system() {
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/demo.sh"))
        .env("MDHUB_BIN", mdhub_binary().expect("the mdhub binary"))
        .env("MDHUB_DEMO_TIMEOUT", "45")
        .stdin(Stdio::null())
        .output()
        .expect("running scripts/demo.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/demo.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("the hub holds all 11 source records"),
        "{stdout}"
    );
    // One golden record per person, holding the three source records.
    for links in [
        "links: crm/c0ffee00-0000-4000-8000-000000000001, erp/1, oa/003A000000AnnaS",
        "links: crm/c0ffee00-0000-4000-8000-000000000002, erp/2, oa/003A000000BenMu",
    ] {
        assert!(stdout.contains(links), "{links:?} missing:\n{stdout}");
    }
    assert_everywhere(&stdout, "Edit in Odoo", "Anna Schmidt", "Potsdam");
    assert_everywhere(
        &stdout,
        "Edit in SuiteCRM",
        "Ben Müller",
        "Head of Purchasing",
    );
    assert_everywhere(
        &stdout,
        "New Salesforce export",
        "Anna Schmidt",
        "Head of Sales",
    );
    assert_eq!(stdout.matches("converged in").count(), 3, "{stdout}");
    assert!(stdout.contains("Every system converged"), "{stdout}");
    // Temp dirs and servers are gone: the script removed what it made.
    let dir = stdout
        .split("temp dir ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .expect("the temp dir is printed");
    assert!(!Path::new(dir).exists(), "{dir} left behind");
    eprintln!("scripts/demo.sh took {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(120));
}

/// The example connector configs parse and check as shipped, with the
/// database URL a deployment puts in the environment given in the file
/// instead (the test does not change its own environment).
#[test]
fn the_example_connector_configs_are_valid() {
    let dir = repo_root().join("deploy/connectors");
    let urls = [
        (
            "ODOO_DATABASE_URL",
            "postgres://mdhub_erp@127.0.0.1:5432/odoo",
        ),
        (
            "SUITECRM_DATABASE_URL",
            "mysql://mdhub_crm@127.0.0.1:3306/suitecrm",
        ),
    ];
    let mut kinds = Vec::new();
    for name in ["odoo.toml", "suitecrm.toml", "rest.toml", "csv.toml"] {
        let path = dir.join(name);
        let mut text = std::fs::read_to_string(&path).expect("reading the example");
        for (var, url) in urls {
            text = text.replace(&format!("url_env = \"{var}\""), &format!("url = \"{url}\""));
        }
        let checked =
            ConnectorFile::parse(&text, name, &dir, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let f = &checked.file;
        kinds.push(match (&f.postgres, &f.mysql, &f.http, &f.csv) {
            (Some(_), ..) => "postgres",
            (_, Some(_), ..) => "mysql",
            (_, _, Some(_), _) => "http",
            _ => "csv",
        });
        // Every key is explained: by a trailing comment, or by the comment
        // above it or above the keys right before it.
        let is_key = |l: &str| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#') && !l.starts_with('[')
        };
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !is_key(line) || line.contains(" # ") {
                continue;
            }
            let above = lines[..i].iter().rev().find(|l| !is_key(l));
            assert!(
                above.is_some_and(|l| l.trim_start().starts_with('#')),
                "{name}: key without a comment: {line}"
            );
        }
    }
    assert_eq!(kinds, ["postgres", "mysql", "http", "csv"]);
}
