//! The `haukictl` binary's exit statuses and messages: 0 ok, 1 a runtime error (one line on
//! stderr naming the channel), 2 a usage error.

use std::process::{Command, Output};

fn haukictl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_haukictl")).args(args).output().expect("haukictl runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn exit_statuses() {
    let dir = std::env::temp_dir().join(format!("haukictl-bin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sys")).unwrap();
    let d = dir.display().to_string();
    let with = |args: &[&str]| {
        let mut all = vec!["--dev-dir".to_string(), format!("{d}/dev"), "--sysfs-dir".into(), format!("{d}/sys")];
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        haukictl(&all)
    };

    let help = haukictl(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("Exit status"));
    assert_eq!(haukictl(&["cat", "--help"]).status.code(), Some(0));

    for usage in [&[][..], &["bogus"], &["cat"], &["send", "echo"], &["cat", "x", "-n", "lots"]] {
        let o = haukictl(usage);
        assert_eq!(o.status.code(), Some(2), "{usage:?}: {}", stderr(&o));
    }
    let o = with(&["send", "--hex", "echo", "0xZZ"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    let o = with(&["cat", "control"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "haukictl: no channel control (ENOENT: no /dev/hauki/control); haukictl channels lists them\n"
    );
    let o = with(&["send", "setpoint", "2.5"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("haukictl: no channel setpoint"), "{}", stderr(&o));

    let o = with(&["channels"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::write(dir.join("status"), "Hauki co-kernel 0.1.0 up 1.000 s\n").unwrap();
    let status = format!("{d}/status");
    let o = haukictl(&["--status-file", &status, "status"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = haukictl(&["--status-file", &status, "latency"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
