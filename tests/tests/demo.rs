//! `mdhub demo` runs, in one process and over a real nats-server, and shows
//! the two systems converging on the golden record.

use std::process::Command;

use mdhub_tests::hub_runner::mdhub_binary;
use mdhub_tests::nats::NatsServer;

fn run_demo(args: &[&str]) -> String {
    let out = Command::new(mdhub_binary().unwrap())
        .arg("demo")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn check(stdout: &str) {
    assert_eq!(
        stdout
            .matches("hub sent nothing: both systems hold the golden record")
            .count(),
        3,
        "{stdout}"
    );
    assert!(stdout.contains("conflict on phone"), "{stdout}");
    let crm = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("crm c-100  "))
        .expect("crm row");
    let erp = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("erp 4711  "))
        .expect("erp row");
    for field in [
        "city=Potsdam",
        "phone=+49305550000",
        "company=Lee Consulting GmbH",
    ] {
        assert!(
            crm.contains(field) && erp.contains(field),
            "both hold {field}:\n{crm}\n{erp}"
        );
    }
}

#[test]
fn demo_in_process() {
    check(&run_demo(&[]));
}

#[test]
fn demo_over_nats() {
    let nats = NatsServer::start().unwrap();
    let stdout = run_demo(&["--nats", nats.client_url()]);
    assert!(stdout.contains("over NATS"), "{stdout}");
    check(&stdout);
}
