//! The command line: byte-identical output with the reference client, help,
//! exit codes, clear errors.

use std::process::Command;

use crate::harness::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn client_stdout_matches_the_reference_c_client_byte_for_byte() {
    let Some(shared) = shared() else { return };
    let root = shared.join("vectors");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("vectors.json")).unwrap()).unwrap();
    let mut n = 0;
    for v in doc["vectors"].as_array().unwrap() {
        if v["timestamps"] != "frozen" {
            continue;
        }
        let cfg = &v["config"];
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in cfg["config_files"].as_object().unwrap() {
            std::fs::write(dir.path().join(name), content.as_str().unwrap()).unwrap();
        }
        std::fs::write(
            dir.path().join("key"),
            hex(cfg["key_file_hex"].as_str().unwrap()),
        )
        .unwrap();
        let input = root.join(v["input"].as_str().unwrap());
        let o = Command::new(D4)
            .args([
                "client",
                "-c",
                dir.path().to_str().unwrap(),
                "--timestamp",
                "1704067200",
                "--end-frame",
            ])
            .stdin(std::fs::File::open(&input).unwrap())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let want = std::fs::read(root.join(v["output"].as_str().unwrap())).unwrap();
        assert!(
            o.stdout == want,
            "{}: output differs from the reference",
            v["id"]
        );
        n += 1;
    }
    assert!(n >= 18);
}

#[test]
fn help_has_examples_and_usage_errors_exit_2() {
    for sub in [
        "server",
        "client",
        "stdout",
        "queue create",
        "sensor approve",
    ] {
        let mut args: Vec<&str> = sub.split(' ').collect();
        args.push("--help");
        let o = Command::new(D4).args(&args).output().unwrap();
        assert!(o.status.success());
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(text.contains("Example"), "d4 {sub} --help has no example");
    }
    let o = Command::new(D4).args(["queue", "create"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = Command::new(D4).args(["frobnicate"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn clear_runtime_errors_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    // No server here.
    let o = Command::new(D4)
        .args(["queue", "list", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8(o.stderr).unwrap();
    assert!(
        e.contains("no server found") && e.contains("--data-dir"),
        "{e}"
    );
    // A sensor without rootCA.crt refuses to send unverified.
    std::fs::write(dir.path().join("destination"), "127.0.0.1:9\n").unwrap();
    std::fs::write(dir.path().join("type"), "3\n").unwrap();
    let o = Command::new(D4)
        .args(["client", "-c"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8(o.stderr).unwrap();
    assert!(e.contains("rootCA.crt") && e.contains("--insecure"), "{e}");
    // The uuid was generated and written back.
    let u = std::fs::read_to_string(dir.path().join("uuid")).unwrap();
    assert!(d4_proto::is_v4(&uuid::Uuid::parse_str(u.trim()).unwrap()));
}

#[test]
fn client_refuses_a_server_signed_by_another_ca() {
    let s = Server::start(&[]);
    let other = Server::start(&[]);
    let sensor = Sensor::new(&s, 3);
    std::fs::copy(
        other.data_dir().join("tls/ca.crt"),
        sensor.dir.path().join("rootCA.crt"),
    )
    .unwrap();
    let o = sensor.run(b"x\n", &["--max-retries", "1"]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("TLS handshake") || e.contains("certificate"),
        "{e}"
    );
    // --insecure is an explicit opt-out.
    let q = s.create_queue("3", &[]);
    let o = sensor.run(b"unverified\n", &["--insecure"]);
    assert!(o.status.success());
    s.wait_queue_len(&q, 1);
}

#[test]
fn queue_commands() {
    let s = Server::start(&[]);
    let q = s.create_queue(
        "maltrail",
        &["--description", "for the IDS", "--max-size", "42"],
    );
    let list = String::from_utf8(s.d4_ok(&["queue", "list"])).unwrap();
    assert!(
        list.contains(&q) && list.contains("maltrail") && list.contains("for the IDS"),
        "{list}"
    );
    let show: serde_json::Value = serde_json::from_slice(&s.d4_ok(&["queue", "show", &q])).unwrap();
    assert_eq!(show["max_size"], 42);
    // Type mismatch in d4 stdout is a clear error.
    let o = s.d4(&["stdout", "-t", "3", "-u", &q, "--once"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is of type maltrail"));
    // -f only for queues whose items are the server's file paths.
    let lines = s.create_queue("3", &[]);
    let o = s.d4(&["stdout", "-t", "3", "-u", &lines, "-f", "--once"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("only queues of types 1, 4, 5 and 7"));
    let o = s.d4(&["queue", "create", "-t", "../etc"]);
    assert_eq!(o.status.code(), Some(1));
    s.d4_ok(&["queue", "delete", &q]);
    let o = s.d4(&["queue", "show", &q]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no queue"));
}

#[test]
fn stdout_follows_until_interrupted_and_loses_nothing() {
    let s = Server::start(&[]);
    let q = s.create_queue("3", &[]);
    let follower = Command::new(D4)
        .args(["stdout", "-t", "3", "-u", &q, "-n", "--data-dir"])
        .arg(s.data_dir())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let sensor = Sensor::new(&s, 3);
    let input: String = (0..3000).map(|i| format!("line {i}\n")).collect();
    sensor.send(input.as_bytes());
    // Once the queue is drained, interrupt the follower.
    std::thread::sleep(std::time::Duration::from_millis(500));
    wait_for("queue drained", std::time::Duration::from_secs(30), || {
        (s.queue_len(&q) == 0).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    Command::new("kill")
        .args(["-INT", &follower.id().to_string()])
        .status()
        .unwrap();
    let out = follower.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), input);
}

#[test]
fn client_interrupted_sends_what_it_read_and_exits_0() {
    use std::io::Write;
    let s = Server::start(&[]);
    let q = s.create_queue("3", &[]);
    let sensor = Sensor::new(&s, 3);
    let mut c = Command::new(D4)
        .args(["client", "-c", sensor.dir.path().to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    stdin.write_all(b"before ctrl-c\n").unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Ctrl-C reaches the client (and, in a shell pipeline, the producer, which then ends the input).
    Command::new("kill")
        .args(["-INT", &c.id().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    stdin.write_all(b"last words\n").unwrap();
    drop(stdin);
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("finishing"));
    s.wait_queue_len(&q, 2);
    assert_eq!(s.drain("3", &q, &["-n"]), b"before ctrl-c\nlast words\n");
}
